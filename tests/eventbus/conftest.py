"""Event-bus fixtures: a started bus over a temporary store, handlers that record what they
get (and fail or stall on demand), and a real HTTP receiver on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from changestream import ChangeStreamManager
from changestream.testing import ManualClock
from eventbus import BaseEventHandler, BusConfig, BusSetup, EventBus, RetryPolicy
from kvdb import ChangeEvent, Store

FAST_RETRY = RetryPolicy(max_attempts=3, initial_delay_ms=0, max_delay_ms=0)


class Recorder(BaseEventHandler):
    """Records every call; raises for seqs in ``fail`` (while they stay there) and waits for
    ``gate`` before each call."""

    kind = "recorder"

    def __init__(
        self,
        name: str,
        *,
        batch_size: int = 1,
        flush_interval_ms: float = 0,
        retry: RetryPolicy | None = FAST_RETRY,
    ) -> None:
        super().__init__(
            name, batch_size=batch_size, flush_interval_ms=flush_interval_ms, retry=retry
        )
        self.calls: list[list[ChangeEvent]] = []
        self.attempts = 0
        self.fail: set[int] = set()
        self.gate = asyncio.Event()
        self.gate.set()

    async def handle(self, events: Sequence[ChangeEvent]) -> None:
        await self.gate.wait()
        self.attempts += 1
        failing = [event.seq for event in events if event.seq in self.fail]
        if failing:
            raise RuntimeError(f"refusing seq {failing[0]}")
        self.calls.append(list(events))

    @property
    def seqs(self) -> list[int]:
        return [event.seq for call in self.calls for event in call]

    @property
    def keys(self) -> list[str]:
        return [event.key for call in self.calls for event in call]


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def make_bus(store: Store) -> AsyncIterator[Callable[..., Any]]:
    """``await make_bus(setup, clock=..., config=...)``: a started bus over ``store`` with a
    manager of its own (on ``clock``, if given); both stopped afterwards."""
    started: list[tuple[EventBus, ChangeStreamManager]] = []

    async def make(
        setup: BusSetup | None = None,
        *,
        clock: ManualClock | None = None,
        config: BusConfig | None = None,
    ) -> EventBus:
        manager = ChangeStreamManager(store, clock=clock)
        await manager.start()
        bus = EventBus(store, manager, config, rng=random.Random(7))
        started.append((bus, manager))
        await bus.start(setup)
        return bus

    yield make
    for bus, manager in reversed(started):
        await bus.stop()
        await manager.stop()


class Receiver:
    """A real HTTP server on 127.0.0.1 that records webhook POSTs. ``status`` is what it
    answers; ``stop()``/``start()`` take it down and bring it back on the same port."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        self.delay = 0.0
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def seqs(self) -> list[int]:
        return [event["seq"] for body in self.requests for event in body["events"]]

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                receiver._connections.add(self.connection)

            def finish(self) -> None:
                receiver._connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if receiver.delay:
                    threading.Event().wait(receiver.delay)
                status = receiver.status
                if 200 <= status < 300:
                    receiver.requests.append(json.loads(body))
                    receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                reply = b'{"ok": true}' if status < 300 else b'{"error": "nope"}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop the open (keep-alive) connections: really down."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for connection in list(self._connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()
