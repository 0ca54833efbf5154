"""``JetStreamSyncTarget``: a node's change events into a NATS JetStream stream (nats-py).

Each event becomes one message (``sync.targets.subjects``: subject, message id, headers,
payload). A batch is published pipelined, up to ``max_pending`` messages in flight on one
connection, and its acks are awaited in order: the stream holds a batch's events in log order.

Exactly once into the stream (REPLICATION 7):

1. The message id ``<node>:<epoch>:<seq>`` makes JetStream drop a republished event within
   its ``duplicate_window``.
2. Past the window, the stream itself says how far it got: the handshake answers the larger
   of the sender's own checkpoint, the position this target last saw acked, and the ``seq``
   header of the stream's last message for this node and epoch. So an event stored whose ack
   was lost (a crash, a dropped connection) is not published again.
3. The connection never reconnects by itself (``allow_reconnect=False``): a publish buffered
   across a reconnect could land after later ones. After any failure the next attempt
   connects afresh and reads the stream's position again.

That holds while this bridge is the only publisher of its node's subjects. Retention that
removes messages (``interest``, ``workqueue``, limits) only makes the stream forget its
position; the sender's checkpoint still counts.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Sequence
from typing import Any, overload

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import AuthorizationError
from nats.errors import Error as NatsError
from nats.js.api import RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from kvdb import ApplyResult, RemoteBatch, RemoteItem

from ..errors import ResyncNeeded, TargetMismatch, TargetRefused, TargetUnavailable
from ..protocol import Hello, Mode, Welcome
from .options import JetStreamOptions, redact_url
from .subjects import (
    HEADER_EPOCH,
    HEADER_SEQ,
    Message,
    event_message,
    snapshot_end_message,
    snapshot_message,
)

__all__ = ["JetStreamSyncTarget", "subject_matches"]

log = logging.getLogger("sync.targets.jetstream")

_STREAM_IN_USE = 10058  # JetStream's err_code: "stream name already in use"
_STORED: dict[str, Any] = {}
_FLUSH_EVERY = 256  # messages handed to the socket at a time while a window is sent


class _PublishFailed(Exception):
    """``stored`` messages were acked before the first that was not; ``hole``: a later one
    was stored all the same (the stream skipped one)."""

    def __init__(self, stored: int, reason: str, refused: bool, hole: bool) -> None:
        super().__init__(reason)
        self.stored, self.reason, self.refused, self.hole = stored, reason, refused, hole


class _Built(Sequence[Message]):
    """Messages made as they are sent, so making the next overlaps the server storing the
    ones sent before."""

    def __init__(self, items: Sequence[RemoteItem], make: Callable[[RemoteItem], Message]):
        self.items, self.make = items, make

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, index: int) -> Message: ...
    @overload
    def __getitem__(self, index: slice) -> _Built: ...
    def __getitem__(self, index: int | slice) -> Message | _Built:
        if isinstance(index, slice):
            return _Built(self.items[index], self.make)
        return self.make(self.items[index])


class _Window:
    """The acks of one pipelined window: an ack (a dict) or an error (a str) per message."""

    __slots__ = ("done", "missing", "nc", "results")

    def __init__(self, size: int, nc: Client) -> None:
        self.results: list[Any] = [None] * size
        self.missing = size
        self.done = asyncio.Event()
        self.nc = nc

    def arrived(self, index: int, result: Any) -> None:
        if self.results[index] is None:
            self.missing -= 1
        self.results[index] = result
        if not self.missing:
            self.done.set()


class JetStreamSyncTarget:
    kind = "jetstream"

    def __init__(self, name: str, options: JetStreamOptions, *, timeout_ms: int = 10_000) -> None:
        self.node_id = name
        self.options = options
        self.timeout = timeout_ms / 1000
        self.failovers = 0
        self.reordered = 0  # events stored after a later one (see _publish)
        self._nc: Client | None = None
        self._server = 0
        self._inbox = ""
        self._stream: str | None = None  # checked or created on this connection
        self._incarnation = ""
        self._position: tuple[str, int] | None = None  # (source epoch, seq) the stream holds
        self._floor: int | None = None
        self._windows = itertools.count()
        self._acks: dict[str, _Window] = {}
        self._one_batch = asyncio.Lock()  # batches sent together (snapshot pages) go in turn

    @property
    def endpoint(self) -> str:
        return redact_url(self.options.servers[self._server])

    # -- SyncTarget ---------------------------------------------------------------------------

    async def handshake(self, hello: Hello) -> Welcome:
        if hello.target != self.node_id:
            raise TargetMismatch(f"this is JetStream target {self.node_id!r}, not {hello.target!r}")
        await self._ready(hello.source)
        known = self._known(hello.source_epoch)
        in_stream = await self._last_in_stream(hello.source, hello.source_epoch)
        checkpoint = max(hello.checkpoint, known or 0, in_stream)
        self._position = (hello.source_epoch, checkpoint)
        return Welcome(self.node_id, self._incarnation, checkpoint)

    async def apply(self, batch: RemoteBatch, mode: Mode = "log") -> ApplyResult:
        async with self._one_batch:  # each batch moves the stream position the next starts at
            return await self._apply(batch, mode)

    async def _apply(self, batch: RemoteBatch, mode: Mode) -> ApplyResult:
        await self._ready(batch.source)
        if batch.target_epoch is not None and batch.target_epoch != self._incarnation:
            raise ResyncNeeded(
                f"stream {self._stream} was recreated since the handshake", reason="epoch"
            )
        position = self._known(batch.source_epoch)
        if position is None:
            position = await self._last_in_stream(batch.source, batch.source_epoch)
            if self._floor is not None:
                position, self._floor = min(position, self._floor), None
            self._position = (batch.source_epoch, position)
        node_subject = self.options.node_subject(batch.source)
        args = (node_subject, batch.source, batch.source_epoch, self.options.payload)
        if mode == "snapshot":
            messages = [snapshot_message(item, *args) for item in batch.items]
            return await self._send(messages, [], batch.source_epoch, position)
        if mode == "snapshot_end":
            end = snapshot_end_message(batch.last_seq, *args)
            return await self._send([end], [batch.last_seq], batch.source_epoch, batch.last_seq)
        if batch.last_seq <= position:
            return ApplyResult(position, 0, len(batch.items), 0, duplicate=True)
        if batch.prev_seq > position:
            raise ResyncNeeded(
                f"stream {self._stream} holds this node's events up to seq {position}, "
                f"not {batch.prev_seq}",
                reason="sequence_gap", checkpoint=position,
            )  # fmt: skip
        items = [item for item in batch.items if item.seq > position]
        made = _Built(items, lambda item: event_message(item, *args))
        return await self._send(made, [i.seq for i in items], batch.source_epoch, batch.last_seq)

    async def check_health(self) -> bool:
        try:
            nc = await self._connect()
            await nc.flush(timeout=max(1, int(self.timeout)))
        except Exception:
            return False
        return True

    async def close(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            try:
                await nc.close()
            except Exception:  # closing a dead connection must not fail the shutdown
                log.debug("closing the NATS connection failed", exc_info=True)

    # -- the stream ---------------------------------------------------------------------------

    def _known(self, epoch: str) -> int | None:
        if self._position is not None and self._position[0] == epoch:
            return self._position[1]
        return None

    async def _ready(self, node: str) -> None:
        nc = await self._connect()
        name = self.options.stream_for(node)
        if self._stream == name:
            return
        js = nc.jetstream(timeout=self.timeout)
        try:
            info = await self._stream_info(js, name, node)
        except Exception as exc:
            raise await self._translate(exc, f"setting up stream {name}") from None
        wanted = self.options.node_subject(node) + ".x"
        if not any(subject_matches(s, wanted) for s in info.config.subjects or ()):
            raise TargetRefused(
                f"stream {name} does not take subjects {self.options.node_subject(node)}.>: "
                f"its subjects are {info.config.subjects}; add it, or name another stream",
                stream=name,
            )
        created = info.created.isoformat() if info.created else ""
        self._stream, self._incarnation = name, f"{name}@{created}"

    async def _stream_info(self, js: Any, name: str, node: str) -> StreamInfo:
        try:
            info: StreamInfo = await js.stream_info(name)
            return info
        except NotFoundError:
            pass
        opts = self.options
        config = StreamConfig(
            name=name,
            subjects=list(opts.subjects_for(node)),
            retention=RetentionPolicy(opts.retention),
            storage=StorageType(opts.storage),
            num_replicas=opts.replicas,
            max_age=opts.max_age_ms / 1000 if opts.max_age_ms else None,
            max_msgs=opts.max_msgs or -1,
            max_bytes=opts.max_bytes or -1,
            duplicate_window=opts.duplicate_window_ms / 1000,
        )
        try:
            info = await js.add_stream(config)
        except APIError as exc:
            if exc.err_code != _STREAM_IN_USE:
                raise
            info = await js.stream_info(name)
        log.info("created JetStream stream %s for %s", name, config.subjects)
        return info

    async def _last_in_stream(self, node: str, epoch: str) -> int:
        """The ``Kvdb-Seq`` of the stream's last message for ``node``, if of ``epoch``."""
        assert self._nc is not None and self._stream is not None
        js = self._nc.jetstream(timeout=self.timeout)
        try:
            msg = await js.get_last_msg(self._stream, self.options.node_subject(node) + ".>")
        except NotFoundError:
            return 0
        except Exception as exc:
            raise await self._translate(exc, "reading the stream's last message") from None
        headers = msg.headers or {}
        if headers.get(HEADER_EPOCH) != epoch or HEADER_SEQ not in headers:
            return 0  # another incarnation's, or a snapshot cut short
        return int(headers[HEADER_SEQ])

    # -- publishing ---------------------------------------------------------------------------

    async def _send(
        self, messages: Sequence[Message], seqs: list[int], epoch: str, through: int
    ) -> ApplyResult:
        """Publish ``messages`` (``seqs`` are the log seqs they carry, if any) and move the
        position to ``through`` once every one is stored."""
        try:
            duplicates = await self._publish(messages)
        except _PublishFailed as exc:
            self._position = None  # read it from the stream again before the retry
            if exc.hole and seqs:  # the stream's last seq is past a missing event: not it
                self._floor = seqs[exc.stored - 1] if exc.stored else seqs[0] - 1
            error = TargetRefused if exc.refused else TargetUnavailable
            raise error(
                f"JetStream {self.endpoint}: {exc.reason} after {exc.stored} of "
                f"{len(messages)} messages", endpoint=self.endpoint,
            ) from None  # fmt: skip
        self._position = (epoch, through)
        applied = len(messages) - duplicates
        return ApplyResult(through, applied, duplicates, 0)

    async def _publish(self, messages: Sequence[Message]) -> int:
        """Publish in order, ``max_pending`` at a time, and wait for every ack; returns how
        many were duplicates. Raises ``_PublishFailed`` saying how many were stored first."""
        nc = await self._connect()
        fast = getattr(nc, "_send_command", None)
        flush = getattr(nc, "_flush_pending", None)
        if flush is None:
            fast = None
        duplicates = stored = 0
        size = self.options.max_pending
        for start in range(0, len(messages), size):
            chunk = messages[start : start + size]
            window = f"{next(self._windows)}_"
            acks = self._acks[window] = _Window(len(chunk), nc)
            results = acks.results
            try:
                reply = f"{self._inbox}{window}"
                for index, message in enumerate(chunk):
                    if fast is not None and flush is not None:  # nats-py's checks cost most
                        await fast(_hpub(message, f"{reply}{index}"))
                        if index % _FLUSH_EVERY == _FLUSH_EVERY - 1:
                            await flush()  # let the server start on these while we go on
                            await asyncio.sleep(0)
                    else:
                        await nc.publish(
                            message.subject,
                            message.payload,
                            reply=f"{reply}{index}",
                            headers=message.headers,
                        )
                if flush is not None:
                    await flush()
                await asyncio.wait_for(acks.done.wait(), self.timeout)
                if any(r is None for r in results):
                    raise ConnectionError("the connection closed")
            except Exception as exc:
                await self._drop()
                reason = await self._reason(exc)
                first = _stored_prefix(results)
                raise _PublishFailed(stored + first, reason, False, self._hole(results, first),
                                     ) from None  # fmt: skip
            finally:
                del self._acks[window]
            for index, result in enumerate(results):
                if isinstance(result, str):
                    raise _PublishFailed(stored + index, result, True, self._hole(results, index))
                duplicates += bool(result.get("duplicate"))
            stored += len(chunk)
        return duplicates

    def _hole(self, results: list[Any], first: int) -> bool:
        """Whether a message after ``first`` (not stored) was stored: then the stream holds a
        later event before an earlier one, and the retry republishes from ``first``."""
        if not any(isinstance(r, dict) for r in results[first + 1 :]):
            return False
        self.reordered += 1
        log.error("JetStream %s stored messages after one it did not (%s); republishing from "
                  "that one: it lands out of order", self.endpoint, results[first])  # fmt: skip
        return True

    async def _on_ack(self, msg: Msg) -> None:
        window, _, index = msg.subject[len(self._inbox) :].partition("_")
        acks = self._acks.get(window + "_")
        if acks is None:
            return  # the ack of a window given up on
        data = msg.data
        if msg.headers and msg.headers.get("Status") == "503":
            result: Any = "no stream answers for this subject (503)"
        elif data.startswith(b'{"stream":') and b'"error"' not in data and b'"dup' not in data:
            result = _STORED  # the common ack: no need to parse it
        else:
            try:
                doc = orjson.loads(data)
            except orjson.JSONDecodeError:
                doc = {"error": {"description": f"unreadable ack {msg.data[:80]!r}"}}
            error = doc.get("error")
            result = doc if error is None else str(error.get("description", error))
        acks.arrived(int(index), result)

    def _closed_callback(self, nc: Client) -> Any:
        async def closed() -> None:
            """Wake whoever waits for acks on ``nc``: none will come any more."""
            for acks in self._acks.values():
                if acks.nc is nc:
                    acks.done.set()

        return closed

    # -- the connection -----------------------------------------------------------------------

    async def _connect(self) -> Client:
        if self._nc is not None and self._nc.is_connected:
            return self._nc
        await self._drop()
        opts = self.options
        last: Exception | None = None
        for index, server in enumerate(opts.servers):
            nc = Client()
            try:
                await nc.connect(
                    server, allow_reconnect=False, connect_timeout=max(1, int(self.timeout)),
                    max_reconnect_attempts=1, reconnect_time_wait=0,  # else it tries for minutes
                    name=f"kvdb sync {self.node_id}", user=opts.user, password=opts.password,
                    token=opts.token, user_credentials=opts.creds, error_cb=_ignore,
                    closed_cb=self._closed_callback(nc),
                    disconnected_cb=self._closed_callback(nc),
                    pending_size=64 * 1024 * 1024,
                )  # fmt: skip
            except Exception as exc:
                last = exc
                await _close_failed(nc)
                continue
            if index != self._server:
                self.failovers += index > 0
                self._server = index
            self._inbox = nc.new_inbox() + "."
            await nc.subscribe(self._inbox + "*", cb=self._on_ack,
                               pending_msgs_limit=1 << 20, pending_bytes_limit=1 << 30)  # fmt: skip
            self._nc, self._stream = nc, None
            return nc
        assert last is not None
        raise await self._translate(last, "connecting")

    async def _drop(self) -> None:
        nc, self._nc = self._nc, None
        self._stream = None
        if nc is not None and not nc.is_closed:
            try:
                await nc.close()
            except Exception:
                log.debug("closing the NATS connection failed", exc_info=True)

    async def _reason(self, exc: BaseException) -> str:
        if isinstance(exc, asyncio.TimeoutError | TimeoutError):
            return f"no ack within {self.timeout:g} s"
        return str(exc) or type(exc).__name__

    async def _translate(self, exc: BaseException, doing: str) -> Exception:
        where = f"JetStream {self.endpoint}: {doing}"
        if isinstance(exc, AuthorizationError) or "authorization" in str(exc).lower():
            return TargetRefused(
                f"{where}: authorization failed ({exc}); check user, password, token or creds",
                endpoint=self.endpoint,
            )
        if isinstance(exc, ServiceUnavailableError):
            return TargetUnavailable(f"{where}: JetStream is not available ({exc})")
        if isinstance(exc, APIError):
            return TargetRefused(f"{where}: {exc.description or exc}", endpoint=self.endpoint)
        if isinstance(exc, NatsError | OSError | asyncio.TimeoutError):
            await self._drop()
            return TargetUnavailable(f"{where}: {await self._reason(exc)}", endpoint=self.endpoint)
        return TargetUnavailable(f"{where}: {type(exc).__name__}: {exc}", endpoint=self.endpoint)


async def _close_failed(nc: Client) -> None:
    """Close the socket a failed connect leaves open (nats-py's ``close()`` would wait for a
    connection that never was)."""
    transport = getattr(nc, "_transport", None)
    if transport is not None:
        try:
            transport.close()
            await transport.wait_closed()
        except Exception:
            log.debug("closing a failed NATS connection failed", exc_info=True)


async def _ignore(exc: Exception) -> None:
    """nats-py reports connection errors here too; the target reports them as it raises."""


def _hpub(message: Message, reply: str) -> bytes:
    """The HPUB command of ``message``: what ``Client.publish`` sends, without re-checking
    subjects and header values that ``subjects`` made valid by construction."""
    head = "".join([f"{k}: {v}\r\n" for k, v in message.headers.items()])
    header = f"NATS/1.0\r\n{head}\r\n".encode()
    total = len(header) + len(message.payload)
    line = f"HPUB {message.subject} {reply} {len(header)} {total}\r\n".encode()
    return b"".join((line, header, message.payload, b"\r\n"))


def _stored_prefix(results: list[Any]) -> int:
    for index, result in enumerate(results):
        if not isinstance(result, dict):
            return index
    return len(results)


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether NATS subject ``pattern`` (with ``*`` and ``>``) matches ``subject``."""
    want, have = pattern.split("."), subject.split(".")
    for index, token in enumerate(want):
        if token == ">":
            return len(have) > index
        if index >= len(have) or (token != "*" and token != have[index]):
            return False
    return len(want) == len(have)
