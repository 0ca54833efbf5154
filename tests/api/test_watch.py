"""Client.watch / AsyncClient.watch and `kvdb watch` against a real server."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from api.cli import main
from api.client import AsyncClient, Client, WatchError
from kvdb import EventType
from tests.api.conftest import LiveServer
from tests.conftest import eventually


async def test_async_watch_history_filters_and_live(live_server: LiveServer) -> None:
    async with AsyncClient(live_server.url) as kv:
        await kv.put("users/1", "a")
        await kv.put("orders/1", "o")
        async with kv.watch(patterns=["users/.*"], since=0) as events:
            first = await anext(events)
            assert (first.seq, first.key, first.type) == (1, "users/1", EventType.INSERT)
            await kv.put("users/1", "b")
            second = await anext(events)
            assert (second.seq, second.old_value, second.new_value) == (3, b"a", b"b")
            assert events.caught_up and events.last_seq == 3


def test_sync_watch_from_now(live_server: LiveServer) -> None:
    with Client(live_server.url) as kv:
        kv.put("before", "x")
        received: list[int] = []
        ready = threading.Event()

        def consume() -> None:
            with kv.watch() as events:  # since="now"
                ready.set()
                for event in events:
                    received.append(event.seq)
                    if len(received) == 3:
                        return

        thread = threading.Thread(target=consume)
        thread.start()
        ready.wait(5)
        import time

        time.sleep(0.3)  # let the subscription start before writing
        for i in range(3):
            kv.put(f"after/{i}", "y")
        thread.join(10)
        assert received == [2, 3, 4]


async def test_watch_a_named_stream_acknowledges_what_was_consumed(live_server: LiveServer) -> None:
    async with AsyncClient(live_server.url) as kv:
        import httpx

        async with httpx.AsyncClient(base_url=live_server.url) as http:
            await http.post(
                "/streams",
                json={"name": "jobs", "enable_persistence": True, "start_from": "earliest"},
            )
        for i in range(5):
            await kv.put(f"job/{i}", "x")
        async with kv.watch(stream="jobs") as events:
            seqs = [(await anext(events)).seq for _ in range(3)]
            await events.ack()
        assert seqs == [1, 2, 3]
        store = live_server.app.node.store
        # the server commits the ack after it reads it
        await eventually(lambda: (c := store.get_checkpoint("stream/jobs/ws")) and c.seq >= 3)
        checkpoint = store.get_checkpoint("stream/jobs/ws")
        assert checkpoint is not None
        async with httpx.AsyncClient(base_url=live_server.url) as http:
            stats = (await http.get("/streams/jobs/stats")).json()
        assert checkpoint.seq == 3, stats
        async with kv.watch(stream="jobs") as events:
            assert (await anext(events)).seq == 4  # resumes after the checkpoint


async def test_watch_reports_refusals(live_server: LiveServer) -> None:
    async with AsyncClient(live_server.url) as kv:
        with pytest.raises(WatchError) as info:
            async with kv.watch(patterns=["("]) as events:
                await asyncio.wait_for(anext(events), 10)
        assert info.value.code == "invalid_pattern"


def test_cli_watch(live_server: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    with Client(live_server.url) as kv:
        kv.put("a", "1")
        kv.put("b", "2")
        kv.delete("a")
    status = main(
        ["watch", "--since", "0", "--type", "DELETE", "--count", "1", "--url", live_server.url]
    )
    lines = capsys.readouterr().out.splitlines()
    assert status == 0 and [json.loads(line)["type"] for line in lines] == ["DELETE"]
    assert json.loads(lines[0])["old_value"] == "1"
