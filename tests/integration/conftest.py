"""Helpers for multi-process tests: real kvdb servers on free loopback ports, and concurrent
writers that run until the server is killed under them."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from api.client import AsyncClient, ClientError
from tests.conftest import eventually, eventually_sync


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``kvdb serve`` in a child process. ``kill()`` is SIGKILL: no shutdown code runs."""

    def __init__(self, data_dir: Path, *extra: str, node_id: str = "it-node") -> None:
        self.data_dir = data_dir
        self.extra = extra
        self.node_id = node_id
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"server-{self.port}.log"

    def start(self, timeout: float = 20.0) -> ServerProcess:
        command = [
            sys.executable, "-m", "api.cli", "serve",
            "--data-dir", str(self.data_dir), "--port", str(self.port), "--node-id", self.node_id,
            *self.extra,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy()
            )
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
