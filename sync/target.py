"""``SyncTarget``: where a sync processor sends a node's changes (STYLE 9: a small Protocol
with real implementations, ``RemoteDBSyncTarget``, ``LocalSyncTarget`` and the external
targets of ``sync.targets``, and a fake in ``sync.testing``; one contract suite runs against
all of them).

A target speaks the protocol of ``sync.protocol``: a handshake that says who it is and how far
it has applied the sender's log, then batches. It raises ``TargetError``s: ``ResyncNeeded``
when its position moved (gap, new epoch: handshake again), ``TargetRefused`` when retrying
the same batch cannot help until someone acts (clock skew, credentials), and
``TargetUnavailable`` for everything transient. Retrying and backing off is the caller's job.
``apply`` may be called again before an earlier call returned (a snapshot keeps a few pages
in flight): a target that cannot overlap batches takes them in turn.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from kvdb import ApplyResult, RemoteBatch

from .protocol import Hello, Mode, Welcome

__all__ = ["SyncTarget", "TargetHealth"]


class TargetHealth(Protocol):
    """What a status page shows about a target's connection."""

    endpoint: str | None
    failovers: int


@runtime_checkable
class SyncTarget(Protocol):
    node_id: str

    @property
    def endpoint(self) -> str | None:
        """The address in use (for status), or None for an in-process target."""
        ...

    async def handshake(self, hello: Hello) -> Welcome: ...

    async def apply(self, batch: RemoteBatch, mode: Mode = "log") -> ApplyResult: ...

    async def check_health(self) -> bool:
        """Probe the target (and fail back to a preferred endpoint once it answers again)."""
        ...

    async def close(self) -> None: ...
