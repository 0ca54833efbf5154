"""Which WebSocket connection holds each consumer of a named stream, so that a client that
comes back is not refused by its own previous connection.

A consumer has one reader at a time (``ConsumerBusy`` otherwise). A client that reconnects at
once may find its previous connection still holding the consumer: the server has not yet
processed its disconnect (nor the acks that came before it), or the connection is half-open
(the client's machine went away without a close). So a session releases its consumer the
moment it sees its client leave, and a new connection for a busy consumer pings the holder's
client first. A holder that answers keeps it (409 ``consumer_busy``: another live reader uses
that name). One whose connection is closing, or that does not answer within
``PROBE_TIMEOUT_S``, is given ``RELEASE_WAIT_S`` to process what its client sent last (its
final acks) and release; then it is released by force and its connection ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from changestream import ChangeStream, Consumer, ConsumerBusy

__all__ = ["PROBE_TIMEOUT_S", "RELEASE_WAIT_S", "ConsumerHolder", "ConsumerHolders"]

log = logging.getLogger("kvdb.ws")

PROBE_TIMEOUT_S = 2.0
RELEASE_WAIT_S = 2.0


class ConsumerHolder(Protocol):
    """A session that holds a consumer; ``released`` is set once it let it go."""

    released: asyncio.Event

    async def answers(self) -> bool:
        """Whether its client is still there (it answers a ping)."""
        ...

    def release(self, *, end: bool = False) -> None:
        """Detach its consumer now; ``end``: and end its connection."""
        ...


class ConsumerHolders:
    def __init__(self) -> None:
        self._holders: dict[tuple[str, str], ConsumerHolder] = {}

    async def attach(self, stream: ChangeStream, name: str, holder: ConsumerHolder) -> Consumer:
        """Attach ``holder`` as consumer ``name`` of ``stream``, taking it over from a holder
        whose client no longer answers."""
        key = (stream.name, name)
        try:
            consumer = await stream.attach(name)
        except ConsumerBusy:
            current = self._holders.get(key)
            if current is None or await current.answers():  # a processor, or a live reader
                raise
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RELEASE_WAIT_S):
                    await current.released.wait()  # after the acks its client sent last
            if not current.released.is_set():
                log.info("consumer %s of stream %s: taken over from a silent connection",
                         name, stream.name)  # fmt: skip
                current.release(end=True)
            consumer = await stream.attach(name)
        self._holders[key] = holder
        return consumer

    def forget(self, stream: str, name: str, holder: ConsumerHolder) -> None:
        if self._holders.get((stream, name)) is holder:
            del self._holders[(stream, name)]
