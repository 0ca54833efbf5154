"""``JetStreamSyncTarget`` on the machine's NATS: subjects any key can take, messages with
their id, headers and payload, the stream it makes, where it resumes, and what wrong
credentials or no server do."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import msgpack
import nats
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvdb import RemoteBatch, RemoteItem
from sync import TargetRefused, TargetUnavailable
from sync.protocol import Hello
from sync.targets.jetstream import JetStreamSyncTarget, _PublishFailed, subject_matches
from sync.targets.options import JetStreamOptions
from sync.targets.subjects import Message, key_of_subject, key_tokens
from tests.services import (
    NATS_URL,
    delete_stream,
    event_seqs,
    private_nats,
    stream_messages,
)


def item(seq: int, key: str, value: bytes | None, hlc: int = 1 << 56) -> RemoteItem:
    return RemoteItem(seq, key, value is None, value, "text/plain", hlc, "a", {"a": hlc}, seq)


@pytest.mark.parametrize(("key", "tokens"), [
    ("users/42", "users.42"), ("a.b c", "a%2Eb%20c"), ("/x//", "%.x.%.%"),
    ("ü", "%C3%BC"), ("*>", "%2A%3E"), ("%", "%25"), ("A-z_9", "A-z_9"),
])  # fmt: skip
def test_keys_become_subject_tokens(key: str, tokens: str) -> None:
    assert key_tokens(key) == tokens
    assert key_of_subject(f"kvdb.a.{tokens}", "kvdb.a") == key


@given(st.text(min_size=1, max_size=100).filter(lambda k: len(k.encode()) <= 511))
def test_any_utf8_key_makes_valid_tokens_that_decode_back(key: str) -> None:
    tokens = key_tokens(key)
    assert all(t and t.isascii() and t.isprintable() and not set(t) & set(" *>")
               for t in tokens.split("."))  # fmt: skip
    assert key_of_subject("p.n." + tokens, "p.n") == key


def test_subject_patterns_match_as_nats_does() -> None:
    assert subject_matches("kvdb.a.>", "kvdb.a.x.y")
    assert subject_matches("kvdb.*.>", "kvdb.a.x")
    assert not subject_matches("kvdb.a.>", "kvdb.a")
    assert not subject_matches("kvdb.b.*", "kvdb.a.x")


async def test_events_are_messages_with_id_headers_and_payload(
    jetstream_options: JetStreamOptions,
) -> None:
    for payload in ("json", "msgpack"):
        options = dataclasses.replace(
            jetstream_options,
            payload=payload,
            subject_prefix=jetstream_options.subject_prefix + payload,
            stream=f"{jetstream_options.stream}{payload}",
        )
        target = JetStreamSyncTarget("js", options)
        welcome = await target.handshake(Hello("a", "ep", "js"))
        result = await target.apply(RemoteBatch("a", "ep", 0, 2, [
            item(1, "users/1", b"\xff"), item(2, "users/1", None)], welcome.epoch))  # fmt: skip
        assert (result.checkpoint, result.applied) == (2, 2)
        subject = options.node_subject("a")
        messages = await stream_messages(NATS_URL, options.stream_for("a"), subject + ".>")
        assert [m.subject for m in messages] == [subject + ".users.1"] * 2
        first = messages[0]
        assert first.headers["Nats-Msg-Id"] == "a:ep:1"
        assert {k: first.headers[k] for k in ("Kvdb-Seq", "Kvdb-Epoch", "Kvdb-Hlc",
                "Kvdb-Origin", "Kvdb-Type")} == {"Kvdb-Seq": "1", "Kvdb-Epoch": "ep",
                "Kvdb-Hlc": str(1 << 56), "Kvdb-Origin": "a", "Kvdb-Type": "UPDATE"}  # fmt: skip
        if payload == "json":
            doc = orjson.loads(first.data)
            assert (doc["new_value"], doc["encoding"], doc["hlc"]) == (
                "/w==",
                "base64",
                str(1 << 56),
            )
        else:
            doc = msgpack.unpackb(first.data)
            assert (doc["new_value"], doc["hlc"]) == (b"\xff", 1 << 56)
        assert messages[1].headers["Kvdb-Type"] == "DELETE"
        await target.close()
        await delete_stream(NATS_URL, options.stream_for("a"))


async def test_the_stream_is_made_as_configured(jetstream_options: JetStreamOptions) -> None:
    options = dataclasses.replace(jetstream_options, retention="interest", max_age_ms=3_600_000,
                                  max_msgs=1000, duplicate_window_ms=5000)  # fmt: skip
    target = JetStreamSyncTarget("js", options)
    await target.handshake(Hello("a", "ep", "js"))
    nc = await nats.connect(NATS_URL)
    assert options.stream is not None
    config = (await nc.jetstream().stream_info(options.stream)).config
    await nc.close()
    assert config.subjects == [options.node_subject("a") + ".>"]
    assert (config.retention, config.storage, config.num_replicas) == (
        "interest", "memory", 1)  # fmt: skip
    assert (config.max_age, config.max_msgs, config.duplicate_window) == (3600, 1000, 5)
    await target.close()


async def test_a_stream_that_does_not_take_the_node_s_subjects_is_refused(
    jetstream_options: JetStreamOptions,
) -> None:
    other = dataclasses.replace(
        jetstream_options, subjects=(jetstream_options.subject_prefix + ".zzz.>",)
    )
    first = JetStreamSyncTarget("js", other)
    await first.handshake(Hello("zzz", "ep", "js"))
    await first.close()
    target = JetStreamSyncTarget("js", jetstream_options)
    with pytest.raises(TargetRefused, match="does not take subjects"):
        await target.handshake(Hello("a", "ep", "js"))
    await target.close()


async def test_it_resumes_from_the_larger_of_the_node_s_checkpoint_and_the_stream_s(
    jetstream_options: JetStreamOptions,
) -> None:
    first = JetStreamSyncTarget("js", jetstream_options)
    await first.apply(RemoteBatch("a", "ep", 0, 3, [item(i, f"k{i}", b"v") for i in (1, 2, 3)]))
    await first.close()
    fresh = JetStreamSyncTarget("js", jetstream_options)
    assert (await fresh.handshake(Hello("a", "ep", "js", 1))).checkpoint == 3  # the stream's
    assert (await fresh.handshake(Hello("a", "ep", "js", 9))).checkpoint == 9  # the node's
    assert (await fresh.handshake(Hello("a", "other-epoch", "js"))).checkpoint == 0
    await fresh.close()


async def test_wrong_credentials_are_refused(
    tmp_path: Path, jetstream_options: JetStreamOptions
) -> None:
    server = private_nats(tmp_path, "--user", "kvdb", "--pass", "right")
    url = f"nats://127.0.0.1:{server.port}"
    try:
        wrong = dataclasses.replace(
            jetstream_options, servers=(url,), user="kvdb", password="wrong"
        )
        refused = JetStreamSyncTarget("js", wrong)
        with pytest.raises(TargetRefused, match="authorization"):
            await refused.handshake(Hello("a", "ep", "js"))
        await refused.close()
        right = JetStreamSyncTarget("js", dataclasses.replace(wrong, password="right"))
        assert (await right.handshake(Hello("a", "ep", "js"))).checkpoint == 0
        await right.close()
    finally:
        server.kill()


async def test_no_server_is_unavailable(jetstream_options: JetStreamOptions) -> None:
    options = dataclasses.replace(jetstream_options, servers=("nats://127.0.0.1:1",))
    target = JetStreamSyncTarget("js", options)
    with pytest.raises(TargetUnavailable):
        await target.handshake(Hello("a", "ep", "js"))
    assert not await target.check_health()


async def test_a_hole_in_a_window_is_filled_from_the_missing_event(
    jetstream_options: JetStreamOptions,
) -> None:
    """The stream stored events 5 and 6 but refused 4 (a clustered stream changing leader):
    the retry publishes 4 again rather than resuming after the stream's last seq, 6."""
    target = JetStreamSyncTarget("js", jetstream_options)
    await target.apply(RemoteBatch("a", "ep", 0, 3, [item(i, f"k{i}", b"v") for i in (1, 2, 3)]))
    publish = target._publish

    async def with_a_hole(messages: list[Message]) -> int:
        await publish(messages[1:])
        raise _PublishFailed(0, "refused", True, True)

    target._publish = with_a_hole  # type: ignore[method-assign]
    batch = RemoteBatch("a", "ep", 3, 6, [item(i, f"k{i}", b"v") for i in (4, 5, 6)])
    with pytest.raises(TargetRefused):
        await target.apply(batch)
    target._publish = publish  # type: ignore[method-assign]
    result = await target.apply(batch)
    assert (result.applied, result.skipped) == (1, 2)  # 5 and 6: JetStream's duplicates
    subject = jetstream_options.node_subject("a") + ".>"
    messages = await stream_messages(NATS_URL, jetstream_options.stream_for("a"), subject)
    assert event_seqs(messages) == [1, 2, 3, 5, 6, 4]
    await target.close()
