"""Test doubles for replication (as ``bytewax.testing``): ``FakeSyncTarget``, an in-memory
``SyncTarget`` with the protocol's semantics and switchable faults. The contract suite in
``tests/sync/test_target_contract.py`` runs the same checks against it and the real targets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from kvdb import ApplyResult, RemoteBatch, RemoteItem, Version

from .errors import ResyncNeeded, TargetMismatch, TargetRefused, TargetUnavailable
from .protocol import Hello, Mode, Welcome

__all__ = ["FakeSyncTarget", "Faults"]


@dataclass
class Faults:
    """Faults to inject: ``unavailable`` requests fail as if the node were down, ``refuse``
    makes every batch be refused (as for clock skew) until cleared, ``lose_replies`` applies a
    batch but fails as if the reply were lost."""

    unavailable: int = 0
    refuse: str | None = None
    lose_replies: int = 0


@dataclass
class FakeSyncTarget:
    node_id: str
    epoch: str = field(default_factory=lambda: os.urandom(8).hex())
    faults: Faults = field(default_factory=Faults)
    values: dict[str, RemoteItem] = field(default_factory=dict)
    checkpoints: dict[str, tuple[str, int]] = field(default_factory=dict)
    batches: list[RemoteBatch] = field(default_factory=list)
    failovers: int = 0
    endpoint: str | None = None

    async def handshake(self, hello: Hello) -> Welcome:
        self._maybe_unavailable()
        if hello.target != self.node_id:
            raise TargetMismatch(f"this is {self.node_id!r}, not {hello.target!r}")
        epoch, seq = self.checkpoints.get(hello.source, ("", 0))
        return Welcome(self.node_id, self.epoch, seq if epoch == hello.source_epoch else 0)

    async def apply(self, batch: RemoteBatch, mode: Mode = "log") -> ApplyResult:
        self._maybe_unavailable()
        if self.faults.refuse:
            raise TargetRefused(self.faults.refuse, reason="clock_skew")
        if batch.target_epoch is not None and batch.target_epoch != self.epoch:
            raise ResyncNeeded(f"{self.node_id} is incarnation {self.epoch}", reason="epoch")
        epoch, checkpoint = self.checkpoints.get(batch.source, ("", 0))
        if epoch != batch.source_epoch:
            if mode == "log" and batch.prev_seq != 0:
                raise ResyncNeeded("unknown incarnation of the source", reason="epoch")
            checkpoint = 0
        if mode == "snapshot_end":
            self.checkpoints[batch.source] = (batch.source_epoch, batch.last_seq)
            return ApplyResult(batch.last_seq, 0, 0, 0)
        if mode == "log":
            if batch.last_seq <= checkpoint:
                return ApplyResult(checkpoint, 0, len(batch.items), 0, duplicate=True)
            if batch.prev_seq > checkpoint:
                raise ResyncNeeded("gap", reason="sequence_gap", checkpoint=checkpoint)
        self.batches.append(batch)
        applied = skipped = 0
        for item in batch.items:
            if mode == "log" and item.seq <= checkpoint:
                continue
            current = self.values.get(item.key)
            if current is None or Version(item.hlc, item.origin) > current.version:
                self.values[item.key] = item
                applied += 1
            else:
                skipped += 1
        if mode == "log":
            checkpoint = batch.last_seq
            self.checkpoints[batch.source] = (batch.source_epoch, checkpoint)
        if self.faults.lose_replies:
            self.faults.lose_replies -= 1
            raise TargetUnavailable("the reply was lost")
        return ApplyResult(checkpoint, applied, skipped, 0)

    async def check_health(self) -> bool:
        return self.faults.unavailable == 0

    async def close(self) -> None:
        return None

    def live_values(self) -> dict[str, bytes]:
        return {k: v.value for k, v in self.values.items() if not v.deleted and v.value is not None}

    def wipe(self) -> None:
        """Lose everything, as a node whose data directory was recreated."""
        self.values.clear()
        self.checkpoints.clear()
        self.epoch = os.urandom(8).hex()

    def _maybe_unavailable(self) -> None:
        if self.faults.unavailable:
            self.faults.unavailable -= 1
            raise TargetUnavailable(f"{self.node_id} is down (injected)")
