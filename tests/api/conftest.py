"""API fixtures: an in-process ASGI test client, and a real uvicorn server on a free loopback
port (in a thread) for the HTTP client and the CLI."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from fastapi.testclient import TestClient

from api import Settings, create_app, load_settings
from api.server.run import NodeServer, uvicorn_config
from tests.conftest import eventually_sync


class LocalClient(TestClient):
    """The ASGI test client as a program on the node's machine reaches it: at ``localhost``
    (a node without tokens refuses other host names, such as the default ``testserver``)."""

    def __init__(self, app: Any, base_url: str = "http://localhost", **kwargs: Any) -> None:
        super().__init__(app, base_url=base_url, **kwargs)

    def websocket_connect(self, url: str, *args: Any, **kwargs: Any) -> Any:
        return super().websocket_connect(urljoin("ws://localhost", url), *args, **kwargs)


def make_settings(tmp_path: Path, **sections: dict[str, Any]) -> Settings:
    node = {"data_dir": str(tmp_path / "data"), "id": "api-node", **sections.pop("node", {})}
    return load_settings(overrides={"node": node, **sections})


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    return lambda **sections: make_settings(tmp_path, **sections)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with LocalClient(create_app(make_settings(tmp_path))) as test_client:
        yield test_client


class LiveServer:
    """uvicorn serving a kvdb app on 127.0.0.1:<free port> from a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        config = uvicorn_config(self.app, host="127.0.0.1", port=0, log_level="warning")
        self.server = NodeServer(config, self.app, tune_gc=False)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        eventually_sync(self._started, timeout=30, interval=0.01)
        (sock,) = self.server.servers[0].sockets
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self

    def _started(self) -> bool:
        if not self.thread.is_alive():
            raise RuntimeError("the test server failed to start")
        return bool(self.server.started)

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path)) as server:
        yield server
