"""Group commit: one thread owns every LMDB write transaction.

Writers from any thread or event loop submit a ``WriteTask`` and wait on its future. The
writer thread loops:

1. Block for the first task, then drain whatever else is queued (up to ``max_group_ops``).
2. Open one write transaction and apply each task in turn. A task whose precondition fails
   raises a ``KvdbError`` before it writes anything, so it fails alone and the others
   proceed. A task that fails any other way (a bug, an input validation missed) may have
   written part of itself: abort, answer that task with its error, and redo the group
   without it from step 2, so one bad write never fails the others (nor commits half).
3. Commit once (one fsync serves the whole group). On ``MapFullError`` abort, grow the map and
   redo the group from step 2; on any other failure abort and fail the group's tasks.
4. Call the commit listeners with the group's events, in seq order.
5. Answer every task: asyncio futures are resolved with one ``call_soon_threadsafe`` per event
   loop, so a group of 1,000 writers costs one wake-up, not 1,000.

Callers are answered only after step 3, so an acknowledged write is durable under the
configured durability mode.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import lmdb

from .env import Environment, translate_error
from .errors import KvdbError, StorageError, StorageFull, StoreClosed
from .events import ChangeEvent
from .hlc import HybridLogicalClock
from .space import SpaceGuard
from .stats import WriterStats
from .txn import WriteContext

__all__ = ["CommitListener", "GroupCommitWriter", "WriteTask"]

log = logging.getLogger("kvdb.writer")

CommitListener = Callable[[Sequence[ChangeEvent]], None]
AnyFuture = asyncio.Future[Any] | concurrent.futures.Future[Any]

_STOP = object()


class WriteTask:
    """A unit of work for the writer. ``apply`` runs inside the group's transaction and must
    not keep state between calls: after a map resize the whole group is applied again."""

    __slots__ = ("error", "frees_space", "future", "loop", "nbytes", "result", "size")

    def __init__(self, size: int = 1, *, frees_space: bool = False, nbytes: int = 0) -> None:
        self.size = size
        self.frees_space = frees_space  # may use the space headroom (space.py): deletes...
        self.nbytes = nbytes  # about how much it writes (its values, in the data and the log)
        self.future: AnyFuture | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.result: Any = None
        self.error: BaseException | None = None

    def apply(self, ctx: WriteContext) -> Any:
        raise NotImplementedError


class GroupCommitWriter:
    def __init__(
        self,
        env: Environment,
        clock: HybridLogicalClock,
        origin: str,
        last_seq: int,
        *,
        max_group_ops: int,
        flush_interval_s: float | None,
        space: SpaceGuard | None = None,
    ) -> None:
        self._env = env
        self._space = space
        self._clock = clock
        self._origin = origin
        self.last_seq = last_seq
        self._max_group_ops = max_group_ops
        self._flush_interval_s = flush_interval_s
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._batches: dict[asyncio.AbstractEventLoop, list[WriteTask]] = {}
        self._listeners: list[CommitListener] = []
        self._closed = False
        self.stats = WriterStats()
        self._thread = threading.Thread(target=self._run, name="kvdb-writer", daemon=True)
        self._thread.start()

    # -- submitting ---------------------------------------------------------------------------

    async def run(self, task: WriteTask) -> Any:
        """Submit ``task`` and wait for its commit. Tasks submitted during one iteration of an
        event loop reach the writer together, as one queue item: one wake-up, not one each."""
        if self._closed:
            raise StoreClosed("the store is closed; open it again to write")
        loop = asyncio.get_running_loop()
        task.loop = loop
        future = task.future = loop.create_future()
        batch = self._batches.get(loop)
        if batch is None:
            self._batches[loop] = [task]
            loop.call_soon(self._submit_batch, loop)
        else:
            batch.append(task)
        return await future

    def _submit_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        tasks = self._batches.pop(loop)
        if self._closed:
            for task in tasks:
                task.error = StoreClosed("the store closed before this write was queued")
            _resolve(tasks)
        else:
            self._queue.put(tasks)

    def run_sync(self, task: WriteTask, timeout: float | None = None) -> Any:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        task.future = future
        self._submit(task)
        return future.result(timeout)

    def _submit(self, task: WriteTask) -> None:
        if self._closed:
            raise StoreClosed("the store is closed; open it again to write")
        self._queue.put(task)

    # -- listeners ----------------------------------------------------------------------------

    def add_listener(self, listener: CommitListener) -> None:
        self._listeners = [*self._listeners, listener]

    def remove_listener(self, listener: CommitListener) -> None:
        self._listeners = [item for item in self._listeners if item is not listener]

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Finish every task already queued, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()

    # -- the writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        last_flush = time.monotonic()
        while not stopping:
            try:
                first = self._queue.get(timeout=self._flush_interval_s)
            except queue.Empty:
                first = None
            group: list[WriteTask] = []
            if first is _STOP:
                stopping = True
            elif first is not None:
                ops = _add(group, first)
                while ops < self._max_group_ops:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stopping = True
                        break
                    ops += _add(group, item)
            if group:
                self._commit_group(group)
            if self._flush_interval_s is not None and (
                stopping or time.monotonic() - last_flush >= self._flush_interval_s
            ):
                self._flush()
                last_flush = time.monotonic()

    def _flush(self) -> None:
        try:
            self._env.sync()
        except KvdbError:
            log.exception("periodic flush failed")

    def _commit_group(self, group: list[WriteTask]) -> None:
        started = time.perf_counter()
        answered: list[WriteTask] = []  # tasks that failed alone, left out of the redo
        into_headroom = False
        if self._space is not None and not all(task.frees_space for task in group):
            refusal = self._space.refusal(sum(task.nbytes for task in group))
            if refusal is not None:
                group = self._refuse_ordinary(group, refusal, answered)
                if not group:
                    return
        while True:
            txn = None
            try:
                txn = self._env.lmdb.begin(write=True)
                ctx = WriteContext(txn, self._env.dbs, self._clock, self._origin, self.last_seq)
                for task in group:
                    _apply(task, ctx)
                ctx.finish()
                txn.commit()
                break
            except _TaskFailed as failed:
                _abort(txn)
                task = failed.task
                if not isinstance(task.error, KvdbError):
                    log.error("a write failed; the rest of its group is redone without it",
                              exc_info=task.error)  # fmt: skip
                group = [other for other in group if other is not task]
                answered.append(task)
                self.stats.failed_tasks += 1
                if not group:
                    self._answer(answered)
                    return
            except lmdb.MapFullError:
                _abort(txn)
                try:
                    size = self._env.grow_map(into_headroom=into_headroom)
                except StorageFull as exc:
                    # At the limit for ordinary writes: those fail, the ones that free space
                    # (deletes...) go on in the headroom.
                    if into_headroom or all(not task.frees_space for task in group):
                        self._fail(group + answered, exc)
                        return
                    group = self._refuse_ordinary(group, exc, answered)
                    into_headroom = True
                    continue
                except KvdbError as exc:
                    self._fail(group + answered, exc)
                    return
                log.info("LMDB map grown to %d bytes", size)
            except lmdb.Error as exc:
                _abort(txn)
                self._fail(group + answered, translate_error(exc, self._env.path, "committing"))
                return
            except BaseException as exc:  # a bug outside any task must not kill the writer
                _abort(txn)
                log.exception("write group failed")
                self._fail(group + answered, exc)
                return
        self.last_seq = ctx.seq
        self.stats.record_commit(len(group), len(ctx.events), time.perf_counter() - started)
        if ctx.events:
            for listener in self._listeners:
                try:
                    listener(ctx.events)
                except Exception:
                    log.exception("commit listener %r failed", listener)
        self._answer(group + answered if answered else group)

    def _refuse_ordinary(
        self, group: list[WriteTask], exc: KvdbError, answered: list[WriteTask]
    ) -> list[WriteTask]:
        """Fail the group's writes that do not free space with ``exc`` (answering them if
        nothing is left to commit); return the others."""
        kept = [task for task in group if task.frees_space]
        for task in group:
            if not task.frees_space:
                task.error = exc
                answered.append(task)
        if not kept:
            self._answer(answered)
        return kept

    def _fail(self, group: list[WriteTask], exc: BaseException) -> None:
        self.stats.failed_commits += 1
        for task in group:
            task.error = exc
        self._answer(group)

    def _answer(self, group: list[WriteTask]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[WriteTask]] = {}
        for task in group:
            if task.loop is not None:
                by_loop.setdefault(task.loop, []).append(task)
            else:
                future = task.future
                assert isinstance(future, concurrent.futures.Future)
                if task.error is None:
                    future.set_result(task.result)
                else:
                    future.set_exception(task.error)
        for loop, tasks in by_loop.items():
            # RuntimeError: the loop closed while its write was in flight.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, tasks)


class _TaskFailed(Exception):
    """A task failed after it may have written: the group is redone without it."""

    def __init__(self, task: WriteTask) -> None:
        self.task = task


def _apply(task: WriteTask, ctx: WriteContext) -> None:
    """Apply one task of the group. A ``KvdbError`` raised before the task logged anything
    (a failed precondition: the tasks check before they write) fails that task alone, in
    place; any other failure, or one after the task logged events, may have left partial
    writes in the transaction, so it raises ``_TaskFailed`` and the group is redone without
    the task. ``MapFullError`` concerns the whole group and passes through."""
    seq = ctx.seq
    try:
        task.result = task.apply(ctx)
        task.error = None
    except lmdb.MapFullError:
        raise
    except Exception as exc:
        task.error = exc if isinstance(exc, KvdbError) else _unexpected(exc)
        if not isinstance(exc, KvdbError) or ctx.seq != seq:
            raise _TaskFailed(task) from exc


def _unexpected(exc: Exception) -> Exception:
    """What the caller of a task that failed unexpectedly gets: LMDB's errors translated
    (``lmdb.Error`` never leaves the package), anything else as it is (a bug: a 500)."""
    if isinstance(exc, lmdb.Error):
        return StorageError(f"this write cannot be stored: {exc}")
    return exc


def _add(group: list[WriteTask], item: WriteTask | list[WriteTask]) -> int:
    """Add a queue item (a task, or an event loop's batch of them) to ``group``; its size."""
    if isinstance(item, list):
        group.extend(item)
        return sum(task.size for task in item)
    group.append(item)
    return item.size


def _resolve(tasks: list[WriteTask]) -> None:
    for task in tasks:
        future = task.future
        assert isinstance(future, asyncio.Future)
        if future.done():  # the waiter was cancelled; the write itself stands
            continue
        if task.error is None:
            future.set_result(task.result)
        else:
            future.set_exception(task.error)


def _abort(txn: lmdb.Transaction | None) -> None:
    if txn is not None:
        with contextlib.suppress(lmdb.Error):
            txn.abort()
