"""The app's lifespan is the one place that starts and stops the node."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from api import NodeNotStarted, Settings, create_app
from api.server.errors import error_document
from kvdb import DataDirLocked, Store, StoreConfig
from tests.api.conftest import LocalClient


def test_the_lifespan_starts_and_stops_the_node(settings_factory: Callable[..., Settings]) -> None:
    app = create_app(settings_factory())
    assert not app.node.started
    with pytest.raises(NodeNotStarted):
        app.node.store  # noqa: B018 - the property is the check
    with LocalClient(app) as client:
        assert app.node.started
        assert client.get("/health").status_code == 200
    assert not app.node.started
    assert error_document(NodeNotStarted())[:2] == (
        503,
        {"error": "not_started", "message": NodeNotStarted().message},
    )


def test_a_node_that_cannot_start_fails_the_startup_with_its_error(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory()
    app = create_app(settings)
    with Store(StoreConfig(data_dir=settings.node.data_dir)), pytest.raises(DataDirLocked):
        LocalClient(app).__enter__()
    assert isinstance(app.startup_error, DataDirLocked)
    assert not app.node.started
