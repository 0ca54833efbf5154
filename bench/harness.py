"""What the benchmarks share: free ports, server processes (kvdb and etcd), CPU and memory
readings of a process, and the median-and-spread summaries they print."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# A script run as ``python bench/X.py`` has bench/ first on sys.path, where bench/sync.py would
# stand in for the ``sync`` package: put this checkout first (the servers run from it too).
if sys.path[:1] != [str(REPO)]:
    sys.path.insert(0, str(REPO))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STARTUP_TIMEOUT_S = 30.0

__all__ = [
    "CLOCK_TICKS",
    "REPO",
    "ServerProcess",
    "free_port",
    "percentile",
    "process_cpu_s",
    "rss_bytes",
    "started_etcd",
    "started_kvdb",
    "summary",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def summary(values: Sequence[float], fmt: str = ",.0f") -> str:
    """``median X (min A, max B, spread S%, n=N)``; the spread is (max - min) / median."""
    median = statistics.median(values)
    spread = (max(values) - min(values)) / median * 100 if median else 0.0
    return (
        f"median {median:{fmt}}  (min {min(values):{fmt}}, max {max(values):{fmt}}, "
        f"spread {spread:.1f}%, n={len(values)})"
    )


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The value at ``fraction`` (0..1) of already sorted values (nearest rank)."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds a process has used (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int, kind: str = "VmRSS") -> int:
    """Resident memory of a process: ``VmRSS`` (all), ``RssAnon`` (heap, not file pages)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(kind + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(kind)


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def _wait_until_up(server: ServerProcess, path: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"server exited ({server.process.returncode}):\n{server.log.read_text()}"
            )
        try:
            with urllib.request.urlopen(server.url + path, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    raise RuntimeError(f"server at {server.url} did not come up:\n{server.log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def _started(command: list[str], url: str, health: str, workdir: Path) -> Iterator[ServerProcess]:
    log = workdir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    server = ServerProcess(url, process, log)
    try:
        _wait_until_up(server, health)
        yield server
    finally:
        _stop(process)


@contextlib.contextmanager
def started_kvdb(
    *args: str, data_dir: Path | None = None, prefix: Sequence[str] = (), port: int | None = None
) -> Iterator[ServerProcess]:
    """``kvdb serve`` (durability full unless ``args`` say otherwise) on ``port`` (default: a
    free one), with a fresh temporary data dir unless ``data_dir`` is given; stopped (SIGTERM)
    on exit. ``prefix`` goes before the command, e.g. ``["taskset", "-c", "0"]``."""
    with tempfile.TemporaryDirectory(prefix="bench-kvdb-") as tmp:
        port = port or free_port()
        command = [*prefix, sys.executable, "-m", "api.cli", "serve", "--port", str(port)]
        command += ["--data-dir", str(data_dir or Path(tmp) / "data"), *args]
        with _started(command, f"http://127.0.0.1:{port}", "/health", Path(tmp)) as server:
            yield server


@contextlib.contextmanager
def started_etcd(binary: str = "etcd", prefix: Sequence[str] = ()) -> Iterator[ServerProcess]:
    """A single-member etcd on loopback with a fresh temporary data dir."""
    if shutil.which(binary) is None:
        raise SystemExit(f"{binary} not found: install it (Debian: apt-get install etcd-server)")
    with tempfile.TemporaryDirectory(prefix="bench-etcd-") as tmp:
        url = f"http://127.0.0.1:{free_port()}"
        peer = f"http://127.0.0.1:{free_port()}"
        command = [*prefix, binary, "--data-dir", f"{tmp}/data", "--name", "default"]
        command += ["--listen-client-urls", url, "--advertise-client-urls", url]
        command += ["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer]
        command += ["--initial-cluster", f"default={peer}"]
        with _started(command, url, "/health", Path(tmp)) as server:
            yield server
