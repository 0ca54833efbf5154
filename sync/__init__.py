"""Replication between nodes (DESIGN 5). Not built yet: only its error root exists so far."""

from __future__ import annotations

from .errors import SyncError

__all__ = ["SyncError"]
