"""``LocalSyncTarget``: a node in the same process, reached without HTTP (what
``BidirectionalSyncManager`` uses to pair two embedded nodes). It goes through the same
``SyncReceiver`` as ``POST /sync/apply``, so the rules are the same."""

from __future__ import annotations

from kvdb import ApplyResult, ClockSkew, EpochMismatch, RemoteBatch, SequenceGap, StoreClosed

from .errors import (
    InvalidSyncMessage,
    ResyncNeeded,
    TargetMismatch,
    TargetRefused,
    TargetUnavailable,
)
from .protocol import ApplyRequest, Hello, Mode, Welcome
from .receiver import SyncReceiver

__all__ = ["LocalSyncTarget"]


class LocalSyncTarget:
    endpoint = None

    def __init__(self, receiver: SyncReceiver) -> None:
        self.receiver = receiver
        self.node_id = receiver.store.node_id
        self.failovers = 0

    async def handshake(self, hello: Hello) -> Welcome:
        try:
            return self.receiver.welcome(hello)
        except InvalidSyncMessage as exc:
            raise TargetMismatch(exc.message, **exc.fields) from None
        except StoreClosed as exc:
            raise TargetUnavailable(f"{self.node_id}: {exc.message}") from None

    async def apply(self, batch: RemoteBatch, mode: Mode = "log") -> ApplyResult:
        try:
            return await self.receiver.apply(ApplyRequest(batch, mode))
        except (SequenceGap, EpochMismatch) as exc:
            raise ResyncNeeded(f"{self.node_id}: {exc.message}", reason=exc.code,
                               **exc.fields) from None  # fmt: skip
        except ClockSkew as exc:
            raise TargetRefused(f"{self.node_id}: {exc.message}", reason=exc.code,
                                **exc.fields) from None  # fmt: skip
        except StoreClosed as exc:
            raise TargetUnavailable(f"{self.node_id}: {exc.message}") from None

    async def check_health(self) -> bool:
        return True

    async def close(self) -> None:
        return None
