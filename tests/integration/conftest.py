"""Helpers for multi-process tests: real kvdb servers on free loopback ports, concurrent
writers that run until the server is killed under them, and replication clusters."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from api.client import AsyncClient, ClientError
from tests.conftest import eventually, eventually_sync
from tests.integration.proxy import ProxyLoop

if TYPE_CHECKING:
    from tests.integration.cluster import Cluster


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``kvdb serve`` in a child process. ``kill()`` is SIGKILL: no shutdown code runs.

    ``config`` is passed as ``--config`` (the command line still sets the data directory,
    port and node id); ``env`` adds to the child's environment (e.g. the test-only
    ``KVDB_TEST_CLOCK_SKEW_MS``). ``start()`` again after ``stop()`` or ``kill()`` restarts
    it on the same port with the same data directory."""

    def __init__(
        self,
        data_dir: Path,
        *extra: str,
        node_id: str = "it-node",
        config: Path | None = None,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.extra = extra
        self.node_id = node_id
        self.config = config
        self.env = dict(env or {})
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"server-{self.port}.log"

    def start(self, timeout: float = 20.0) -> ServerProcess:
        self.spawn()
        return self.wait_healthy(timeout)

    def spawn(self) -> None:
        """Start the process without waiting for it to serve (``wait_healthy``)."""
        command = [
            sys.executable, "-m", "api.cli", "serve",
            "--data-dir", str(self.data_dir), "--port", str(self.port), "--node-id", self.node_id,
            *(("--config", str(self.config)) if self.config is not None else ()),
            *self.extra,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
            )

    def wait_healthy(self, timeout: float = 20.0) -> ServerProcess:
        try:
            eventually_sync(self._healthy, timeout, interval=0.05)
        except AssertionError:
            raise RuntimeError(f"server did not become healthy:\n{self.log.read_text()}") from None
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"server exited with {self.process.returncode}:\n{self.log.read_text()}"
            )
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


async def write_until_killed(
    server: ServerProcess,
    write: Callable[[AsyncClient, int, int], Awaitable[None]],
    *,
    writers: int,
    until: Callable[[], bool] = lambda: True,
    then: tuple[float, float] = (0.0, 0.0),
) -> None:
    """Call ``write(kv, writer, i)`` for i = 0, 1, ... from ``writers`` clients at once until
    ``until()`` holds (under load, wait for progress rather than for a time), for a random
    ``then`` seconds more, then SIGKILL the server mid-stream. A write the kill cuts off raises
    ``ClientError`` (it may or may not have committed) and ends its writer."""
    stop = asyncio.Event()

    async def writer(w: int) -> None:
        async with AsyncClient(server.url, timeout=5) as kv:
            i = 0
            while not stop.is_set():
                try:
                    await write(kv, w, i)
                except ClientError:
                    return
                i += 1

    tasks = [asyncio.create_task(writer(w)) for w in range(writers)]
    await eventually(until, timeout=60, interval=0.01)
    await asyncio.sleep(random.uniform(*then))
    await asyncio.to_thread(server.kill)
    stop.set()
    await asyncio.gather(*tasks)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[type[ServerProcess]]:
    started: list[ServerProcess] = []

    class Tracked(ServerProcess):
        def start(self, timeout: float = 20.0) -> ServerProcess:
            started.append(self)
            return super().start(timeout)

    yield Tracked
    for server in started:
        server.kill()


@pytest.fixture
def proxy_loop() -> Iterator[ProxyLoop]:
    loop = ProxyLoop()
    yield loop
    loop.close()


@pytest.fixture
async def cluster(tmp_path: Path, proxy_loop: ProxyLoop) -> AsyncIterator[Cluster]:
    """A replication cluster (tests/integration/cluster.py); every node it started is killed
    and every proxy closed at the end."""
    from tests.integration.cluster import Cluster  # it imports this module

    made = Cluster(tmp_path, proxy_loop)
    try:
        yield made
    finally:
        await made.aclose()
