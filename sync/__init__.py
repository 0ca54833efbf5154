"""Replication between nodes (DESIGN 5). Not built yet: no issue has asked for it so far."""
