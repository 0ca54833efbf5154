"""Event handlers: what the bus delivers events to.

Contract of ``handle(events)``, which the bus calls with events in seq order, one call at a
time per handler:

* ``batch_size == 1``: the events are independent. The bus may pass many in one call (one
  hand-off instead of one per event); the handler handles them in order and, if event ``i``
  fails, raises ``PartialDelivery(i, cause)``. Any other exception does not say which event
  failed, so the bus hands the rest over one at a time to find out.
* ``batch_size > 1``: the call is one unit of at most ``batch_size`` events that succeeds or
  fails as a whole. A partial unit is delivered once its first event has waited
  ``flush_interval_ms``.

Plain (sync) functions run off the event loop, in a thread of the handler's own: a handler
that blocks stalls nobody else.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from changestream import is_async_callable
from kvdb import ChangeEvent

from .config import RetryPolicy, check_name
from .errors import InvalidHandler, PartialDelivery

__all__ = [
    "BaseEventHandler",
    "BatchEventHandler",
    "ConditionalEventHandler",
    "EventFunction",
    "EventHandler",
    "FunctionEventHandler",
]

EventFunction = Callable[[ChangeEvent], Awaitable[None] | None]
BatchFunction = Callable[[list[ChangeEvent]], Awaitable[None] | None]
Predicate = Callable[[ChangeEvent], Awaitable[bool] | bool]


@runtime_checkable
class EventHandler(Protocol):
    """What the bus needs from a handler; see the module docstring for ``handle``.
    ``retry`` None means the bus's default policy."""

    name: str
    batch_size: int
    flush_interval_ms: float
    retry: RetryPolicy | None

    async def start(self) -> None: ...

    async def handle(self, events: Sequence[ChangeEvent]) -> None: ...

    async def close(self) -> None: ...


class BaseEventHandler(abc.ABC):
    """Defaults for handlers, and a thread of their own for blocking work."""

    kind = "custom"

    def __init__(
        self,
        name: str,
        *,
        batch_size: int = 1,
        flush_interval_ms: float = 0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.name = check_name("handler", name, InvalidHandler)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidHandler(
                f"handler {name!r}: batch_size must be an integer >= 1, got {batch_size!r}"
            )
        if isinstance(flush_interval_ms, bool) or not (
            isinstance(flush_interval_ms, int | float) and flush_interval_ms >= 0
        ):
            raise InvalidHandler(
                f"handler {name!r}: flush_interval_ms must be a number >= 0, got "
                f"{flush_interval_ms!r}"
            )
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise InvalidHandler(f"handler {name!r}: retry must be a RetryPolicy, got {retry!r}")
        self.batch_size = batch_size
        self.flush_interval_ms = flush_interval_ms
        self.retry = retry
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    async def start(self) -> None:  # noqa: B027 - an optional hook, not an abstract method
        """Acquire resources (files, connections); called before the first ``handle``."""

    async def close(self) -> None:
        """Release them. A thread still running a blocked call is abandoned, not waited for."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    @abc.abstractmethod
    async def handle(self, events: Sequence[ChangeEvent]) -> None:
        """Handle ``events``; see the module docstring for what failures mean."""

    async def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` in this handler's own thread."""
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"bus-{self.name}"
            )
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def describe(self) -> dict[str, Any]:
        """What ``GET /bus/handlers`` shows about this handler."""
        return {
            "name": self.name,
            "kind": self.kind,
            "batch_size": self.batch_size,
            "flush_interval_ms": self.flush_interval_ms,
            "retry": None if self.retry is None else self.retry.to_dict(),
        }


def _returned_awaitable(handler: str, step: str, result: object) -> InvalidHandler:
    if inspect.iscoroutine(result):
        result.close()
    return InvalidHandler(
        f"handler {handler!r}: its {step} is a plain function but returned an awaitable; "
        "declare it 'async def' so the bus awaits it"
    )


class FunctionEventHandler(BaseEventHandler):
    """Calls ``fn(event)`` for each event routed to it."""

    kind = "function"

    def __init__(
        self,
        name: str,
        fn: EventFunction,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(name, retry=retry)
        if not callable(fn):
            raise InvalidHandler(f"handler {name!r}: fn must be callable, got {fn!r}")
        self.fn = fn
        self._is_async = is_async_callable(fn)

    async def handle(self, events: Sequence[ChangeEvent]) -> None:
        if not self._is_async:
            await self.run_blocking(self._call_each, events)
            return
        fn: Callable[[ChangeEvent], Awaitable[None]] = self.fn  # type: ignore[assignment]
        for index, event in enumerate(events):
            try:
                await fn(event)
            except Exception as exc:
                raise PartialDelivery(index, exc) from exc

    def _call_each(self, events: Sequence[ChangeEvent]) -> None:
        fn = self.fn
        for index, event in enumerate(events):
            try:
                result = fn(event)
            except Exception as exc:
                raise PartialDelivery(index, exc) from exc
            if result is not None and inspect.isawaitable(result):
                raise PartialDelivery(index, _returned_awaitable(self.name, "fn", result))


class ConditionalEventHandler(BaseEventHandler):
    """Calls ``fn(event)`` for the events for which ``predicate(event)`` is true; the others
    count as handled (``skipped``). A predicate that raises fails that event, like ``fn``."""

    kind = "conditional"

    def __init__(
        self,
        name: str,
        predicate: Predicate,
        fn: EventFunction,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(name, retry=retry)
        for label, value in (("predicate", predicate), ("fn", fn)):
            if not callable(value):
                raise InvalidHandler(f"handler {name!r}: {label} must be callable, got {value!r}")
        self.predicate = predicate
        self.fn = fn
        self.skipped = 0
        self._async_predicate = is_async_callable(predicate)
        self._async_fn = is_async_callable(fn)

    async def handle(self, events: Sequence[ChangeEvent]) -> None:
        if not (self._async_fn or self._async_predicate):
            await self.run_blocking(self._call_each, events)
            return
        for index, event in enumerate(events):
            try:
                wanted = self.predicate(event)
                if self._async_predicate:
                    wanted = await wanted  # type: ignore[misc]
                if not wanted:
                    self.skipped += 1
                    continue
                result = self.fn(event)
                if self._async_fn:
                    await result  # type: ignore[misc]
                elif result is not None and inspect.isawaitable(result):
                    raise _returned_awaitable(self.name, "fn", result)
            except Exception as exc:
                raise PartialDelivery(index, exc) from exc

    def _call_each(self, events: Sequence[ChangeEvent]) -> None:
        predicate, fn = self.predicate, self.fn
        for index, event in enumerate(events):
            try:
                wanted = predicate(event)
                if inspect.isawaitable(wanted):
                    raise _returned_awaitable(self.name, "predicate", wanted)
                if not wanted:
                    self.skipped += 1
                    continue
                result = fn(event)
                if result is not None and inspect.isawaitable(result):
                    raise _returned_awaitable(self.name, "fn", result)
            except Exception as exc:
                raise PartialDelivery(index, exc) from exc

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "skipped": self.skipped}


class BatchEventHandler(BaseEventHandler):
    """Calls ``fn(events)`` with lists of up to ``batch_size`` events: a full list as soon as
    there is one, a shorter one once its first event has waited ``flush_interval_ms``. A
    failure fails the whole list (it is retried, then dead-lettered, as one unit)."""

    kind = "batch"

    def __init__(
        self,
        name: str,
        fn: BatchFunction,
        batch_size: int = 100,
        flush_interval_ms: float = 1000,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(
            name, batch_size=batch_size, flush_interval_ms=flush_interval_ms, retry=retry
        )
        if not callable(fn):
            raise InvalidHandler(f"handler {name!r}: fn must be callable, got {fn!r}")
        self.fn = fn
        self._is_async = is_async_callable(fn)

    async def handle(self, events: Sequence[ChangeEvent]) -> None:
        batch = list(events)
        if self._is_async:
            await self.fn(batch)  # type: ignore[misc]
        else:
            await self.run_blocking(self._call, batch)

    def _call(self, batch: list[ChangeEvent]) -> None:
        result = self.fn(batch)
        if result is not None and inspect.isawaitable(result):
            raise _returned_awaitable(self.name, "fn", result)
