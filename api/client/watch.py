"""``watch()``: change events from a node's ``WS /ws/changes``, as an iterator that reconnects.

    async for event in AsyncClient(url).watch(patterns=["orders/.*"], since=0):
        print(event.seq, event.key)

    for event in Client(url).watch(since="now"):      # the blocking form
        ...

After a dropped connection it reconnects by itself with ``since`` set to the last seq it
received (events or progress bookmarks), and drops any event at or below that seq, so the
caller sees every matching event once, in order: no gap, no duplicate. With ``stream=<name>``
it consumes a named durable stream: events are acknowledged once the caller asks for the next
one (the stream's checkpoint follows), and after a reconnect the server resumes after the
checkpoint; events redelivered from there are dropped here too.

Failures: a URL that is not http(s) fails at once, and so does a node that cannot be reached
the first time (``ConnectionFailed``); once connected, a lost connection is retried with
backoff, ``on_retry(attempt, error)`` is called before each retry, and after ``retries``
consecutive failures (default 10; None: forever) ``WatchError`` (``gave_up``) says why. A
node that shuts down, or a consumer still held by a previous connection (``consumer_busy``),
is retried the same way. Messages may be ``max_message_size`` bytes (64 MiB: the largest
event of a node with default limits; the node cuts its batches into messages of 1 MiB).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any, Self

import orjson
import websockets
from websockets.asyncio.client import ClientConnection as AsyncConnection
from websockets.asyncio.client import connect as async_connect
from websockets.sync.client import ClientConnection as SyncConnection
from websockets.sync.client import connect as sync_connect

from kvdb import ChangeEvent

from .errors import ClientError, ConnectionFailed

__all__ = ["DEFAULT_RETRIES", "MAX_MESSAGE_SIZE", "AsyncWatch", "RetryCallback", "Watch",
           "WatchError"]  # fmt: skip

ACK_EVERY = 100
ACK_INTERVAL_S = 0.2
MAX_BACKOFF_S = 5.0
DEFAULT_RETRIES = 10
MAX_MESSAGE_SIZE = 64 * 1024 * 1024
_MESSAGE_TOO_BIG = 1009

RetryCallback = Callable[[int, Exception], None]  # (attempt, what failed)


class WatchError(ClientError):
    """The server refused or ended the subscription (``code``: compacted, invalid_pattern...);
    ``status`` is the refusal's HTTP status, 0 for an error sent on the open subscription."""

    def __init__(self, code: str, message: str, body: dict[str, Any], status: int = 0) -> None:
        super().__init__(status, code, message, body)

    @property
    def oldest_seq(self) -> int | None:
        return self.body.get("oldest_seq")


# Errors sent on an open subscription after which the next connection may do better.
_RETRYABLE_CODES = {"closed", "shutting_down", "consumer_busy"}


class _WatchState:
    """What both forms share: the URL, the resume position, and message handling."""

    def __init__(
        self,
        url: str,
        token: str | None,
        patterns: Iterable[str],
        types: Iterable[str],
        since: int | str | None,
        stream: str | None,
        consumer: str | None,
        reconnect: _Reconnect,
    ) -> None:
        self.http_url = url
        self.base = _websocket_base(url)
        self.reconnect = reconnect
        self.ever_connected = False
        self.failures = 0
        self.last_error: Exception | None = None
        self.headers = {"authorization": f"Bearer {token}"} if token else {}
        self.patterns = list(patterns)
        self.types = list(types)
        self.stream = stream
        self.consumer = consumer
        self.since = since
        self.last_seq: int | None = since if isinstance(since, int) else None
        self.caught_up = False
        self.pending: collections.deque[ChangeEvent] = collections.deque()
        self.unacked: int | None = None
        self.unacked_count = 0
        self.last_ack = time.monotonic()
        self.backoff = 0.1

    def url(self) -> str:
        query: list[tuple[str, str]] = [("pattern", p) for p in self.patterns]
        query += [("type", t) for t in self.types]
        if self.stream:
            query.append(("stream", self.stream))
            if self.consumer:
                query.append(("consumer", self.consumer))
        elif self.last_seq is not None:
            query.append(("since", str(self.last_seq)))
        elif self.since is not None:
            query.append(("since", str(self.since)))
        return f"{self.base}/ws/changes?{urllib.parse.urlencode(query)}"

    def handle(self, raw: str | bytes) -> None:
        message = orjson.loads(raw)
        kind = message.get("type")
        if kind == "events":
            for doc in message["events"]:
                if self.last_seq is None or doc["seq"] > self.last_seq:
                    self.pending.append(ChangeEvent.from_json(doc))
                    self.last_seq = doc["seq"]
            self._going()
        elif kind in ("caught_up", "progress"):
            if self.last_seq is None or message["seq"] > self.last_seq:
                self.last_seq = message["seq"]
            self.caught_up = self.caught_up or kind == "caught_up"
            self._going()
        elif kind == "error":
            code = message.get("code", "error")
            error = WatchError(code, message.get("message", ""), message)
            if code not in _RETRYABLE_CODES:
                raise error
            self.last_error = error  # the server closes next: retried then

    def _going(self) -> None:
        self.backoff = 0.1
        self.failures = 0
        self.last_error = None

    def connected(self) -> None:
        self.ever_connected = True

    def lost(self, error: Exception) -> float:
        """The connection failed or ended: the seconds to wait before the next attempt, or
        the error that ends the watch (a first connection that fails, a message too big,
        too many failures in a row)."""
        if isinstance(error, websockets.exceptions.ConnectionClosed):
            if error.sent is not None and error.sent.code == _MESSAGE_TOO_BIG:
                raise WatchError(
                    "message_too_big",
                    f"a message from the node exceeded {self.reconnect.max_message_size} "
                    "bytes: raise max_message_size (a node's largest message is about "
                    "2 x node.limits.max_value_size, base64-encoded)",
                    {},
                ) from error
            error = self.last_error or error
        if not self.ever_connected:
            raise ConnectionFailed(
                0, "connection_failed", f"cannot reach kvdb at {self.http_url}: {error}"
            ) from error
        self.failures += 1
        retries = self.reconnect.retries
        if retries is not None and self.failures > retries:
            raise WatchError(
                "gave_up",
                f"gave up after {retries} attempts to reconnect to {self.http_url}: {error}",
                {},
            ) from error
        if self.reconnect.on_retry is not None:
            self.reconnect.on_retry(self.failures, error)
        return self.next_backoff()

    def take(self) -> tuple[ChangeEvent, bool]:
        """The next event, and whether the previous ones should be acknowledged now."""
        event = self.pending.popleft()
        due = (
            self.stream is not None
            and self.unacked is not None
            and (
                self.unacked_count >= ACK_EVERY
                or time.monotonic() - self.last_ack >= ACK_INTERVAL_S
            )
        )
        return event, due

    def ack_message(self) -> str | None:
        if self.unacked is None:
            return None
        message = orjson.dumps({"ack": self.unacked}).decode()
        self.unacked = None
        self.unacked_count = 0
        self.last_ack = time.monotonic()
        return message

    def handed_out(self, event: ChangeEvent) -> None:
        """The caller asked for the event after ``event``: it is processed."""
        if self.stream is not None:
            self.unacked = event.seq
            self.unacked_count += 1

    def next_backoff(self) -> float:
        delay = self.backoff * random.uniform(0.5, 1.0)
        self.backoff = min(MAX_BACKOFF_S, self.backoff * 2)
        return delay


class _Reconnect:
    """How a watch retries: ``retries`` failures in a row (None: forever), ``on_retry``
    told of each, messages of at most ``max_message_size`` bytes."""

    def __init__(
        self, retries: int | None, on_retry: RetryCallback | None, max_message_size: int
    ) -> None:
        self.retries = retries
        self.on_retry = on_retry
        self.max_message_size = max_message_size


def _websocket_base(url: str) -> str:
    """``ws(s)://host[:port][/prefix]`` for an ``http(s)://`` URL; anything else fails now."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https", "ws", "wss") or not parsed.netloc:
        raise WatchError(
            "invalid_url",
            f"{url!r} is not a node's URL: give http://HOST:PORT or https://HOST:PORT",
            {},
        )
    scheme = {"http": "ws", "https": "wss"}.get(parsed.scheme, parsed.scheme)
    return f"{scheme}://{parsed.netloc}{parsed.path.rstrip('/')}"


def _refused(exc: websockets.exceptions.InvalidStatus) -> WatchError:
    response = exc.response
    try:
        body = orjson.loads(response.body or b"{}")
    except orjson.JSONDecodeError:
        body = {}
    return WatchError(
        body.get("error", f"http_{response.status_code}"),
        body.get("message", str(exc)),
        body,
        response.status_code,
    )


class _Watch:
    """What both forms share: the state, and where the watch is (``last_seq``: the resume
    position; ``caught_up``: it has reached the head once)."""

    def __init__(self, url: str, *, token: str | None = None, patterns: Iterable[str] = (),
                 types: Iterable[str] = (), since: int | str | None = None,
                 stream: str | None = None, consumer: str | None = None,
                 retries: int | None = DEFAULT_RETRIES, on_retry: RetryCallback | None = None,
                 max_message_size: int = MAX_MESSAGE_SIZE) -> None:  # fmt: skip
        reconnect = _Reconnect(retries, on_retry, max_message_size)
        self._state = _WatchState(url, token, patterns, types, since, stream, consumer, reconnect)
        self._previous: ChangeEvent | None = None

    @property
    def last_seq(self) -> int | None:
        return self._state.last_seq

    @property
    def caught_up(self) -> bool:
        return self._state.caught_up


class AsyncWatch(_Watch):
    """Async iterator of ``ChangeEvent``."""

    _ws: AsyncConnection | None = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ChangeEvent:
        state = self._state
        if self._previous is not None:
            state.handed_out(self._previous)
        while not state.pending:
            await self._receive()
        event, ack_due = state.take()
        if ack_due:
            await self._send_ack()
        self._previous = event
        return event

    async def ack(self) -> None:
        """Acknowledge every event handed out so far (named streams)."""
        if self._previous is not None:
            self._state.handed_out(self._previous)
            self._previous = None
        await self._send_ack()

    async def _send_ack(self) -> None:
        message = self._state.ack_message()
        if message is not None and self._ws is not None:
            # If the connection is gone, the unacknowledged events come again after the
            # reconnect and are dropped by seq.
            with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                await self._ws.send(message)

    async def _receive(self) -> None:
        state = self._state
        if self._ws is None:
            try:
                self._ws = await async_connect(
                    state.url(),
                    additional_headers=state.headers,
                    max_size=state.reconnect.max_message_size,
                )
            except websockets.exceptions.InvalidStatus as exc:
                raise _refused(exc) from exc
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                await asyncio.sleep(state.lost(exc))
                return
            state.connected()
        try:
            state.handle(await self._ws.recv())
        except websockets.exceptions.ConnectionClosed as exc:
            self._ws = None
            await asyncio.sleep(state.lost(exc))

    async def aclose(self) -> None:
        await self.ack()
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Watch(_Watch):
    """The blocking form of ``AsyncWatch``, for scripts and the CLI."""

    _ws: SyncConnection | None = None

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self._connection = contextlib.ExitStack()  # websockets' sync connect is a context manager

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> ChangeEvent:
        state = self._state
        if self._previous is not None:
            state.handed_out(self._previous)
        while not state.pending:
            self._receive()
        event, ack_due = state.take()
        if ack_due:
            self._send_ack()
        self._previous = event
        return event

    def ack(self) -> None:
        if self._previous is not None:
            self._state.handed_out(self._previous)
            self._previous = None
        self._send_ack()

    def _send_ack(self) -> None:
        message = self._state.ack_message()
        if message is not None and self._ws is not None:
            with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                self._ws.send(message)

    def _receive(self) -> None:
        state = self._state
        if self._ws is None:
            try:
                self._ws = self._connection.enter_context(
                    sync_connect(
                        state.url(),
                        additional_headers=state.headers,
                        max_size=state.reconnect.max_message_size,
                    )
                )
            except websockets.exceptions.InvalidStatus as exc:
                raise _refused(exc) from exc
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                time.sleep(state.lost(exc))
                return
            state.connected()
        try:
            state.handle(self._ws.recv())
        except websockets.exceptions.ConnectionClosed as exc:
            self._ws = None
            self._connection.close()
            time.sleep(state.lost(exc))

    def close(self) -> None:
        self.ack()
        self._ws = None
        self._connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
