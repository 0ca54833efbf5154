"""``TargetChannel``: sends one node's changes to one target, as a processor of the sync
processor's durable stream (so each target has its own checkpoint, pinning the log for it).

The receiver's checkpoint is the authority (REPLICATION 1: CouchDB keeps checkpoints on both
sides and trusts the target's). For every batch the stream delivers:

1. Handshake if needed: the target says who it is, its epoch, and ``remote``, how far it has
   applied this node's log.
2. If ``remote`` is behind the batch, resend the log after it (the target lost a batch or was
   wiped); if the log no longer holds that far back (``Compacted``), send a snapshot: the
   versioned scan, then "resume after the seq the scan started at".
3. Send the batch's events past ``remote`` that this target should get, in batches that never
   split a transaction (a transaction cut by the stream's batch size is completed from the
   log), and move ``remote`` to the receiver's answer. A stretch of skipped events moves it too,
   at most once a second, so a restart does not rescan it.
4. On failure: ``ResyncNeeded`` handshakes again at once; anything else is retried forever,
   with exponential backoff and full jitter, and the target shows ``unhealthy``. Nothing is
   acknowledged (and so nothing leaves the retained log) before the target has it.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from changestream import Batch, Clock
from changestream.aio import cancel_and_wait
from kvdb import ApplyResult, ChangeEvent, Compacted, RemoteBatch, RemoteItem, Store

from .backoff import Backoff
from .config import Forward, SyncConfig
from .errors import ResyncNeeded, TargetError, TargetRefused
from .protocol import Hello, Mode, item_of
from .target import SyncTarget

__all__ = ["HEARTBEAT_MS", "TargetChannel", "TargetState"]

log = logging.getLogger("sync.channel")

SNAPSHOT_WINDOW = 3  # snapshot pages in flight at once
HEARTBEAT_MS = 1000  # a stretch of skipped events moves the peer's checkpoint this often
_READ_PAGE = 1000


def target_epochs_prefix(processor: str) -> str:
    """Where a processor keeps the epoch of each of its targets (system records)."""
    return f"sync/target-epochs/{processor}/"


class _Prepared(NamedTuple):
    items: list[RemoteItem]
    through: int


class TargetState(enum.StrEnum):
    LIVE = "live"
    CATCHING_UP = "catching_up"
    SNAPSHOT = "snapshot"
    UNHEALTHY = "unhealthy"
    PAUSED = "paused"


class TargetChannel:
    def __init__(
        self,
        config: SyncConfig,
        target: SyncTarget,
        store: Store,
        clock: Clock,
        *,
        rng: Callable[[float, float], float] | None = None,
    ) -> None:
        self.config = config
        self.target = target
        self.name = target.node_id  # the stream consumer, so the checkpoint, is per node
        self.store = store
        self.clock = clock
        self.node_id = store.node_id
        self._key_filter = config.key_filter()
        backoff_args = {} if rng is None else {"rng": rng}
        self.backoff = Backoff(config.retry_delay_ms, config.max_retry_delay_ms, **backoff_args)
        self.remote: int | None = None  # the target's checkpoint for this node; None: ask
        self.remote_epoch: str | None = None
        checkpoint = store.get_checkpoint(f"stream/{config.stream_name}/{self.name}")
        self.delivered_through = checkpoint.seq if checkpoint else 0
        self.state = TargetState.CATCHING_UP
        self._resume = asyncio.Event()
        self._resume.set()
        self._last_send_ms = 0.0
        self._snapshot_after: str | None = None  # a snapshot in progress: the last key sent,
        self._snapshot_start = 0  # the seq it is of,
        self._snapshot_epoch: str | None = None  # and the target incarnation it goes to
        self._needs_snapshot = False  # the log lacks what the target needs, or it was wiped
        self._busy = asyncio.Lock()  # one attempt at a time (the stream, or verify/resync)
        self._inflight: asyncio.Task[None] | None = None  # the batch being delivered
        self._resyncs = 0
        self.stats: dict[str, Any] = {
            "sent": 0, "applied": 0, "skipped": 0, "conflicts": 0, "batches": 0,
            "retries": 0, "snapshots": 0, "last_error": None, "last_error_ms": None,
            "last_success_ms": None, "healthy": None,
        }  # fmt: skip

    # -- the processor ------------------------------------------------------------------------

    async def process(self, events: Sequence[ChangeEvent]) -> None:
        await self.process_batch(Batch(list(events), events[-1].seq, True))

    async def process_batch(self, batch: Batch) -> None:
        """Deliver ``batch`` to the target, retrying until it has it.

        While the stream has more (``not batch.caught_up``), the delivery goes on in the
        background and the next batch is read and prepared meanwhile: one batch is in flight,
        so reading the log here and applying there overlap. The stream's checkpoint may then
        run one batch ahead of the target; the target's own checkpoint is the authority (a
        batch that reaches past a gap first resends it from the log), so nothing is lost."""
        prepared = self._prepare(batch)
        await self.settle()
        self._inflight = asyncio.create_task(
            self._until_delivered(batch, prepared), name=f"sync {self.config.name} -> {self.name}"
        )
        if batch.caught_up:
            await self.settle()

    async def settle(self) -> None:
        """Wait until the batch in flight (if any) is delivered."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    async def close(self) -> None:
        """Stop delivering (a batch in flight is abandoned: it comes again from the log)."""
        task, self._inflight = self._inflight, None
        await cancel_and_wait(task)

    def _prepare(self, batch: Batch) -> _Prepared | None:
        """The batch, completed to a transaction's end, as the items this target wants (None
        if the log no longer has the rest of its transaction: the delivery deals with it)."""
        try:
            return self._prepare_now(batch)
        except Compacted:
            return None

    def _prepare_now(self, batch: Batch) -> _Prepared:
        events, through = batch.events, batch.through
        if events:
            events, through = self._complete_transaction(events, through)
        items = [item_of(e) for e in events if self._wants(e)]
        return _Prepared(items, through)

    async def _until_delivered(self, batch: Batch, prepared: _Prepared | None) -> None:
        while True:
            await self._resume.wait()
            try:
                async with self._busy:
                    await self._deliver(batch, prepared)
            except ResyncNeeded as exc:
                self._failed(exc)
                self.remote = None
                self._resyncs += 1
                if self._resyncs > 1:  # again and again: something is off, do not spin
                    await self.clock.sleep(self.backoff.next_delay())
                continue
            except TargetError as exc:
                self._failed(exc)
                await self.clock.sleep(self.backoff.next_delay())
                continue
            self.delivered_through = max(self.delivered_through, batch.through)
            self._succeeded(batch)
            return

    def pause(self) -> None:
        self._resume.clear()
        self.state = TargetState.PAUSED

    def resume(self) -> None:
        if not self._resume.is_set():
            self.state = TargetState.CATCHING_UP
            self._resume.set()

    async def verify(self) -> None:
        """While idle (no batch in flight): ask the target where it stands, and if it lost what
        it had (wiped, restored), refill it now rather than at this node's next write."""
        pending = self._needs_snapshot or self._snapshot_after is not None
        if self._busy.locked() or self.state is TargetState.PAUSED:
            return
        if self.state is not TargetState.LIVE and not pending:
            return
        async with self._busy:
            if not pending:
                self.remote = None
            await self._position()
            if self._needs_snapshot or self._snapshot_after is not None:
                await self._snapshot()
                self.state = TargetState.LIVE

    async def resync(self) -> int:
        """The stream lost this target's position to compaction (the hard cap): make sure the
        target holds this node's state as of a seq the log still has everything after (by a
        snapshot unless it already does), and return that seq, where the stream resumes."""
        async with self._busy:
            remote = await self._position()
            if self._needs_snapshot or remote < self.store.oldest_seq() - 1:
                await self._snapshot()
            remote = self._remote()
            caught_up = remote >= self.store.last_seq
            self.state = TargetState.LIVE if caught_up else TargetState.CATCHING_UP
            return remote

    # -- one attempt --------------------------------------------------------------------------

    async def _deliver(self, batch: Batch, prepared: _Prepared | None) -> None:
        try:
            await self._deliver_from_log(batch, prepared)
        except Compacted as exc:  # what the target lacks left the log while it was away
            log.warning("sync %s -> %s: %s; sending a snapshot", self.config.name, self.name,
                        exc.message)  # fmt: skip
            self._needs_snapshot = True
            await self._snapshot()

    async def _deliver_from_log(self, batch: Batch, prepared: _Prepared | None) -> None:
        remote = await self._position()
        if self._needs_snapshot or self._snapshot_after is not None:
            await self._snapshot()  # needed, or interrupted: (resume and) finish it first
            remote = self._remote()
        if batch.through <= remote:
            return  # the target has all of it (from a snapshot, or an earlier attempt)
        start = batch.events[0].seq if batch.events else batch.through
        if remote < start - 1:
            await self._catch_up(remote, start - 1)
        if prepared is None:
            prepared = self._prepare_now(batch)  # Compacted: a snapshot, in _deliver
        through = prepared.through
        items = [item for item in prepared.items if item.seq > self._remote()]
        if items:
            await self._send(items, through)
        elif through > self._remote() and self._heartbeat_due():
            await self._send([], through)

    async def _position(self) -> int:
        if self.remote is None:
            welcome = await self.target.handshake(
                Hello(self.node_id, self.store.epoch, self.target.node_id, self.delivered_through)
            )
            # Another incarnation than the one this node replicated to: the target was wiped
            # or restored and lost writes of every origin, not only this node's log.
            known = self.remote_epoch or self._stored_epoch()
            if known is not None and welcome.epoch != known:
                self._needs_snapshot = True
            if welcome.epoch != known:
                await self.store.put_system_record(self.epoch_record, welcome.epoch.encode())
            self.remote, self.remote_epoch = welcome.checkpoint, welcome.epoch
            log.info("sync %s -> %s: target has this node's log up to seq %d",
                     self.config.name, self.name, welcome.checkpoint)  # fmt: skip
        return self.remote

    @property
    def epoch_record(self) -> str:
        """The system record keeping the target's epoch, so a wipe is noticed after restarts."""
        return target_epochs_prefix(self.config.name) + self.name

    def _stored_epoch(self) -> str | None:
        raw = self.store.get_system_record(self.epoch_record)
        return None if raw is None else raw.decode()

    def _remote(self) -> int:
        assert self.remote is not None
        return self.remote

    def _wants(self, event: ChangeEvent) -> bool:
        """Split horizon (REPLICATION 4) and what the user selected."""
        if event.key.startswith("_") or not self._key_filter.matches_key(event.key):
            return False
        if self.config.forward is Forward.OWN:
            return event.origin == self.node_id
        return event.origin != self.name and event.source != self.name

    def _complete_transaction(
        self, events: list[ChangeEvent], through: int
    ) -> tuple[list[ChangeEvent], int]:
        """A batch must not end inside a transaction: read the rest of it from the log."""
        last = events[-1]
        extra: list[ChangeEvent] = []
        position = last.seq
        limit = 1  # most batches end between transactions: one event tells
        while True:
            more = self.store.read_changes(position, limit=limit)
            tail = [e for e in more if e.txn == last.txn]
            extra.extend(tail)
            if len(tail) < len(more) or not more:
                break
            position, limit = more[-1].seq, _READ_PAGE
        if not extra:
            return events, through
        return events + extra, max(through, extra[-1].seq)

    async def _catch_up(self, remote: int, until: int) -> None:
        """Resend ``(remote, until]`` from the log; a snapshot if it is gone."""
        self.state = TargetState.CATCHING_UP
        position = remote
        while position < until:
            try:
                page = self.store.read_changes(position, limit=min(_READ_PAGE, until - position))
            except Compacted as exc:
                log.warning("sync %s -> %s: %s; sending a snapshot", self.config.name, self.name,
                            exc.message)  # fmt: skip
                self._needs_snapshot = True
                await self._snapshot()
                return
            if not page:
                break
            page_through = page[-1].seq
            page, page_through = self._complete_transaction(page, page_through)
            items = [item_of(e) for e in page if e.seq > self._remote() and self._wants(e)]
            await self._send(items, page_through)
            position = self._remote()

    async def _snapshot(self) -> None:
        """Send every current version (tombstones included), then resume after ``start``:
        writes made while scanning come again from the log and merge as no-ops."""
        self.state = TargetState.SNAPSHOT
        if self._snapshot_after is None or self._snapshot_epoch != self.remote_epoch:
            # A new snapshot (a resumed one keeps its start: pages already sent are of then).
            self.stats["snapshots"] += 1
            self._snapshot_after = None
            self._snapshot_start = self.store.last_seq
            self._snapshot_epoch = self.remote_epoch
        start = self._snapshot_start
        await self._send_snapshot_pages()
        await self._apply([], start, start, "snapshot_end")
        self.remote = start
        self._needs_snapshot = False
        log.info("sync %s -> %s: snapshot done; resuming after seq %d", self.config.name,
                 self.name, start)  # fmt: skip

    async def _send_snapshot_pages(self) -> None:
        """Send the versioned scan from where the snapshot stands, with up to
        ``SNAPSHOT_WINDOW`` pages in flight while the next is scanned (pages are independent
        merges, so the receiver decodes one while it commits another). ``_snapshot_after``,
        where a resumed snapshot goes on, moves only past pages the target has applied, in
        key order; a failure leaves the later pages to be sent again (merges are idempotent)."""
        replica = self.store.replica
        scan_from = self._snapshot_after
        window: deque[tuple[asyncio.Task[ApplyResult] | None, str | None]] = deque()
        try:
            while True:
                page, after = replica.scan_versions(scan_from, self.config.batch_size)
                items = [i for i in page if self._key_filter.matches_key(i.key)]
                task = None
                if items:
                    task = asyncio.create_task(self._apply(items, 0, 0, "snapshot"))
                window.append((task, after))
                while window and (len(window) > SNAPSHOT_WINDOW or window[0][0] is None):
                    await self._page_done(window)
                if after is None:
                    break
                scan_from = after
            while window:
                await self._page_done(window)
        finally:
            await cancel_and_wait(*(task for task, _ in window))

    async def _page_done(
        self, window: deque[tuple[asyncio.Task[ApplyResult] | None, str | None]]
    ) -> None:
        task, after = window[0]
        if task is not None:
            await task
        window.popleft()
        self._snapshot_after = after

    async def _send(self, items: list[RemoteItem], through: int) -> None:
        """Send ``items`` (all past the target's checkpoint) in batches of at most
        ``batch_size`` that end between transactions (a larger transaction goes whole), the
        last one reaching ``through``."""
        chunks = _chunks(items, self.config.batch_size)
        for index, chunk in enumerate(chunks):
            last = through if index == len(chunks) - 1 else chunk[-1].seq
            await self._apply(chunk, self._remote(), last, "log")
            self.remote = max(self._remote(), last)
            self._last_send_ms = self.clock.now_ms()

    async def _apply(
        self, items: list[RemoteItem], prev: int, last: int, mode: Mode
    ) -> ApplyResult:
        batch = RemoteBatch(
            self.node_id, self.store.epoch, prev, last, items, self.remote_epoch,
            snapshot=mode == "snapshot",
        )  # fmt: skip
        result = await self.target.apply(batch, mode)
        stats = self.stats
        stats["batches"] += 1
        stats["sent"] += len(items)
        stats["applied"] += result.applied
        stats["skipped"] += result.skipped
        stats["conflicts"] += result.conflicts
        return result

    def _heartbeat_due(self) -> bool:
        return self.clock.now_ms() - self._last_send_ms >= HEARTBEAT_MS

    # -- bookkeeping --------------------------------------------------------------------------

    def _failed(self, exc: TargetError) -> None:
        self.stats["retries"] += 1
        self.stats["last_error"] = exc.message
        self.stats["last_error_ms"] = self.clock.now_ms()
        if isinstance(exc, ResyncNeeded):
            log.info("sync %s -> %s: %s; handshaking again", self.config.name, self.name,
                     exc.message)  # fmt: skip
            return
        self.state = TargetState.UNHEALTHY
        level = logging.ERROR if isinstance(exc, TargetRefused) else logging.WARNING
        log.log(level, "sync %s -> %s: %s (retry %d)", self.config.name, self.name,
                exc.message, self.backoff.failures + 1)  # fmt: skip

    def _succeeded(self, batch: Batch) -> None:
        self.backoff.reset()
        self._resyncs = 0
        self.stats["last_success_ms"] = self.clock.now_ms()
        if self.state is not TargetState.PAUSED:
            self.state = TargetState.LIVE if batch.caught_up else TargetState.CATCHING_UP

    def status(self) -> dict[str, Any]:
        last_seq = self.store.last_seq
        position = max(self.delivered_through, self.remote or 0)
        lag_events = max(0, last_seq - position)
        lag_ms = 0.0
        if lag_events:
            try:
                pending = self.store.read_changes(position, limit=1)
            except Compacted:
                pending = []
            if pending:
                lag_ms = max(0.0, self.clock.now_ms() - pending[0].ts)
        return {
            "node_id": self.name,
            "kind": getattr(self.target, "kind", "kvdb"),
            "state": self.state.value,
            "endpoint": self.target.endpoint,
            "checkpoint": self.delivered_through,
            "remote_checkpoint": self.remote,
            "lag_events": lag_events,
            "lag_ms": lag_ms,
            "failovers": getattr(self.target, "failovers", 0),
            "retry_delay_ceiling_ms": self.backoff.ceiling() if self.backoff.failures else 0,
            **self.stats,
        }


def _chunks(items: list[RemoteItem], size: int) -> list[list[RemoteItem]]:
    chunks: list[list[RemoteItem]] = []
    current: list[RemoteItem] = []
    for _, group in itertools.groupby(items, key=lambda item: item.txn):
        members = list(group)
        if current and len(current) + len(members) > size:
            chunks.append(current)
            current = []
        current.extend(members)
    chunks.append(current)
    return chunks
