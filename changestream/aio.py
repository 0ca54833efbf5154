"""Small asyncio helpers shared by the change-stream layer and its users."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait"]


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
