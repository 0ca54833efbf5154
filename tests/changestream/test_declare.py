"""The declaration rule (``changestream/declare.py``) and streams under it: what an owner
declares is created or updated, what it drops is orphaned and kept, prune removes orphans, and
what the API made is never an owner's."""

from __future__ import annotations

import json

import pytest

from changestream import (
    ChangeStreamManager,
    FunctionProcessor,
    Orphan,
    Orphaned,
    Ownership,
    OwnershipConflict,
    StreamConfig,
    plan_declaration,
)
from kvdb import Put, Store, StoreConfig
from tests.changestream.conftest import Recorder

MINE, API = Ownership("config"), Ownership()


def stream(name: str, **fields: object) -> StreamConfig:
    return StreamConfig(name, **fields)  # type: ignore[arg-type]


def test_the_plan_says_what_to_do_with_each_name() -> None:
    existing = {
        "same": (stream("same"), MINE),
        "changed": (stream("changed"), MINE),
        "dropped": (stream("dropped"), MINE),
        "orphan": (stream("orphan"), MINE.orphan()),
        "back": (stream("back"), MINE.orphan()),
        "api": (stream("api"), API),
        "other": (stream("other"), Ownership("sync")),
    }
    declared = [stream("same"), stream("changed", batch_size=5), stream("back"), stream("new")]
    plan = plan_declaration("stream", declared, existing, owner="config")
    assert [c.name for c in plan.create] == ["new"]
    assert [c.name for c in plan.update] == ["changed"]
    assert [c.name for c in plan.unchanged] == ["same", "back"]
    assert plan.adopt == ("back",) and plan.rewrites("back") and not plan.rewrites("same")
    assert plan.orphan == ("dropped",)  # newly orphaned; "orphan" stays as it was
    assert plan.kept == ("dropped", "orphan") and plan.prune == ()

    pruned = plan_declaration("stream", declared, existing, owner="config", prune=True)
    assert pruned.prune == ("dropped", "orphan") and pruned.orphan == pruned.kept == ()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("api", r"stream 'api' was made through the API, so 'config' cannot declare it"),
        ("other", r"stream 'other' is declared by 'sync', so 'config' cannot declare it"),
    ],
)
def test_a_name_held_by_someone_else_is_refused(name: str, message: str) -> None:
    existing = {"api": (stream("api"), API), "other": (stream("other"), Ownership("sync"))}
    with pytest.raises(OwnershipConflict, match=message) as raised:
        plan_declaration("stream", [stream(name)], existing, owner="config")
    assert (raised.value.kind, raised.value.name) == ("stream", name)


def test_a_name_declared_twice_is_refused() -> None:
    with pytest.raises(OwnershipConflict, match="declared more than once"):
        plan_declaration("stream", [stream("a"), stream("a")], {}, owner="config")


def test_only_definitions_stored_before_ownership_can_be_claimed() -> None:
    legacy = Ownership.split({"name": "a"})[1]
    recorded = Ownership.split({"name": "a", "owner": None, "orphaned": False})[1]
    assert legacy == recorded == API and not legacy.recorded and recorded.recorded
    plan = plan_declaration(
        "stream", [stream("a")], {"a": (stream("a"), legacy)}, owner="config",
        claim=lambda declared, stored: True,
    )  # fmt: skip
    assert plan.claimed == ("a",) and plan.rewrites("a")
    with pytest.raises(OwnershipConflict):
        plan_declaration(
            "stream", [stream("a")], {"a": (stream("a"), recorded)}, owner="config",
            claim=lambda declared, stored: True,
        )  # fmt: skip


def test_an_orphan_says_what_it_pins() -> None:
    orphan = Orphan("handler", "audit", "config", {"stream/_bus/audit": 7}, "DELETE /x")
    assert "checkpoint(s) stream/_bus/audit at seq 7" in orphan.describe()
    assert orphan.to_dict()["oldest_pinned_seq"] == 7
    assert "pins no change-log retention" in Orphan("route", "r", "config").describe()


DURABLE = {"enable_persistence": True, "start_from": "earliest"}


async def test_an_orphaned_stream_delivers_nothing_and_keeps_its_checkpoint(
    manager: ChangeStreamManager, store: Store
) -> None:
    await manager.declare([stream("a", **DURABLE), stream("b", **DURABLE)], owner="config")
    recorder = Recorder("p")
    await manager.get("b").add_processor(recorder)
    await store.batch([Put("k1", b"v"), Put("k2", b"v")])
    await recorder.wait_for(lambda r: r.seqs == [1, 2])
    await manager.get("b").consumers["p"].ack(2)

    plan = await manager.declare([stream("a", **DURABLE)], owner="config")
    assert plan.orphan == ("b",)
    orphan = manager.get("b")
    assert orphan.ownership == Ownership("config", orphaned=True) and orphan.consumers == {}
    with pytest.raises(Orphaned, match="stream 'b' is orphaned"):
        await orphan.attach("p")
    with pytest.raises(Orphaned):
        await manager.update(stream("b", batch_size=3))
    with pytest.raises(OwnershipConflict, match="declared by 'config'"):
        await manager.update(stream("a", batch_size=3))
    assert [(o.name, dict(o.pins)) for o in manager.orphans()] == [("b", {"stream/b/p": 2})]
    stored = json.loads(store.get_system_record("streams/b") or b"")
    assert (stored["owner"], stored["orphaned"]) == ("config", True)

    await store.put("k3", b"v")
    await manager.declare([stream("a", **DURABLE), stream("b", **DURABLE)], owner="config")
    again = Recorder("p")
    await manager.get("b").add_processor(again)  # adopted: resumes after its checkpoint
    await again.wait_for(lambda r: r.seqs == [3])

    await manager.declare([], owner="config", prune=True)
    assert [s.name for s in manager.list()] == []
    assert store.list_checkpoints() == []


async def test_orphans_survive_a_restart_and_api_streams_are_never_touched(
    store_config: StoreConfig,
) -> None:
    with Store(store_config) as store:
        manager = ChangeStreamManager(store)
        await manager.start()
        await manager.create(stream("made-by-api"))
        await manager.declare([stream("declared")], owner="config")
        await manager.declare([], owner="config")
        await manager.stop()
    with Store(store_config) as store:
        manager = ChangeStreamManager(store)
        await manager.start()
        assert manager.get("declared").ownership.orphaned
        await manager.declare([], owner="config", prune=True)
        assert [s.name for s in manager.list()] == ["made-by-api"]
        assert manager.get("made-by-api").ownership == API
        await manager.stop()


async def test_the_earlier_owner_lists_become_owners(store_config: StoreConfig) -> None:
    """An earlier version kept the file's stream names in one record per owner."""
    with Store(store_config) as store:
        for name in ("old", "api"):
            record = json.dumps(stream(name).to_dict()).encode()
            await store.put_system_record(f"streams/{name}", record)
        await store.put_system_record("stream-owners/config", b'["old"]')
    with Store(store_config) as store:
        manager = ChangeStreamManager(store)
        await manager.start()
        assert manager.get("old").ownership == Ownership("config")
        assert manager.get("api").ownership == API
        assert store.list_system_records("stream-owners/") == []
        plan = await manager.declare([], owner="config")
        assert plan.orphan == ("old",)
        await manager.stop()


async def test_an_embedding_programs_processor_is_stopped_when_its_stream_is_orphaned(
    manager: ChangeStreamManager, store: Store
) -> None:
    seen: list[int] = []
    await manager.declare([stream("s")], owner="config")
    await manager.get("s").add_processor(
        FunctionProcessor("f", lambda batch: seen.extend(e.seq for e in batch))
    )
    await manager.declare([], owner="config")
    await store.put("k", b"v")
    assert manager.get("s").consumers == {} and seen == []
