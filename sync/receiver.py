"""``SyncReceiver``: the receiving end of replication, behind ``POST /sync/handshake`` and
``POST /sync/apply`` (and ``LocalSyncTarget`` in process).

It answers handshakes from this store's inbound checkpoints and applies batches through
``store.replica`` with the conflict policy this node has for the sender: the one of the sync
processor that replicates to that node (so both ends of a pair use the same rules), else of
the first processor, else ``lww``. Every node of a topology should configure the same
policies, or the sides of a pair may pick different winners.
"""

from __future__ import annotations

from collections.abc import Callable

from kvdb import ApplyResult, Resolver, Store

from .errors import InvalidSyncMessage
from .protocol import ApplyRequest, Hello, Welcome

__all__ = ["DEFAULT_MAX_CLOCK_SKEW_MS", "SyncReceiver"]

DEFAULT_MAX_CLOCK_SKEW_MS = 5000


class SyncReceiver:
    def __init__(
        self,
        store: Store,
        resolver_for: Callable[[str], Resolver | None] = lambda source: None,
        *,
        max_clock_skew_ms: int = DEFAULT_MAX_CLOCK_SKEW_MS,
    ) -> None:
        self.store = store
        self.resolver_for = resolver_for
        self.max_clock_skew_ms = max_clock_skew_ms

    def welcome(self, hello: Hello) -> Welcome:
        replica = self.store.replica
        if hello.target != self.store.node_id:
            raise InvalidSyncMessage(
                f"this is node {self.store.node_id!r}, not {hello.target!r}: the sender's "
                "target endpoint points at another node",
                node_id=self.store.node_id,
            )
        if hello.source == self.store.node_id:
            raise InvalidSyncMessage(
                f"the sender has this node's id {hello.source!r}: every node needs its own id"
            )
        inbound = replica.inbound(hello.source)
        checkpoint = inbound.seq if inbound and inbound.epoch == hello.source_epoch else 0
        return Welcome(self.store.node_id, replica.epoch, checkpoint)

    async def apply(self, request: ApplyRequest) -> ApplyResult:
        batch, replica = request.batch, self.store.replica
        if request.mode == "snapshot_end":
            if batch.items:
                raise InvalidSyncMessage("a snapshot_end message carries no items")
            checkpoint = await replica.finish_snapshot(
                batch.source, batch.source_epoch, batch.last_seq, batch.target_epoch
            )
            return ApplyResult(checkpoint.seq, 0, 0, 0)
        return await replica.apply(
            batch,
            resolver=self.resolver_for(batch.source),
            max_clock_skew_ms=self.max_clock_skew_ms,
        )
