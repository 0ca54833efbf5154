"""Small asyncio helpers shared by the change-stream layer and its users."""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import Any

__all__ = ["cancel_and_wait", "is_async_callable"]


def is_async_callable(fn: object) -> bool:
    """Whether calling ``fn`` returns a coroutine to await: an ``async def`` function or method,
    an object whose ``__call__`` is ``async def``, or a ``functools.partial`` of either.

    Code that runs plain callables in a thread must ask this, not
    ``inspect.iscoroutinefunction``, which says False for such an object: run in a thread, its
    coroutine would be created, never awaited, and the work silently skipped.
    """
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or (
        callable(fn)
        and not inspect.isclass(fn)
        and inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004
    )


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel ``tasks`` and wait until they have finished.

    Unlike ``gather``, ``asyncio.wait`` never re-raises a child's CancelledError in the caller:
    if the caller is itself cancelled meanwhile, it sees its own cancellation (which anyio's
    cancel scopes, for one, recognise by its message), and child exceptions are retrieved here
    rather than reported later as "never retrieved".
    """
    pending = {task for task in tasks if task is not None}
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    for task in pending:
        if task.done() and not task.cancelled():
            task.exception()
