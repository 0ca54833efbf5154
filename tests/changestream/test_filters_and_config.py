"""Key patterns (RE2, full match), event types, and StreamConfig validation."""

from __future__ import annotations

import pytest

from changestream import (
    EventFilter,
    InvalidPattern,
    InvalidStreamConfig,
    StreamConfig,
    compile_pattern_set,
)
from kvdb import ChangeEvent, EventType


def event(key: str, kind: EventType = EventType.INSERT) -> ChangeEvent:
    return ChangeEvent(1, kind, key, None, b"v", 0, "n", 1)


def test_patterns_must_match_the_whole_key() -> None:
    f = EventFilter(key_patterns=["users/[0-9]+", "orders/.*"])
    assert f.matches(event("users/42"))
    assert not f.matches(event("users/42/address"))  # full match, not a prefix
    assert not f.matches(event("my-users/42"))
    assert f.matches(event("orders/"))
    assert f.matches(event("orders/x/y"))


def test_a_pattern_set_says_which_patterns_match_the_whole_key() -> None:
    match = compile_pattern_set(["users/[0-9]+", "users/.*", "orders/.*"])
    assert sorted(match(b"users/42")) == [0, 1]
    assert list(match(b"users/42/address")) == [1]  # full match, not a prefix
    assert list(match(b"orders/x")) == [2]
    assert not match(b"my-users/42")
    assert not compile_pattern_set([])(b"anything")
    with pytest.raises(InvalidPattern, match=r"\(\?=x\)"):
        compile_pattern_set(["ok/.*", "(?=x)"])


def test_types_and_patterns_combine() -> None:
    f = EventFilter([EventType.DELETE, EventType.UPDATE], ["a.*"])
    assert f.matches(event("abc", EventType.DELETE))
    assert not f.matches(event("abc", EventType.INSERT))
    assert not f.matches(event("xyz", EventType.DELETE))
    assert EventFilter().matches_everything
    assert EventFilter(list(EventType)).matches_everything


def test_unicode_keys_match_by_character() -> None:
    f = EventFilter(key_patterns=["ключ/.", "caf."])
    assert f.matches(event("ключ/ж")) and f.matches(event("café"))


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(a)\\1", "invalid escape sequence"),
        ("(?=lookahead)", "invalid perl operator"),
        ("[unclosed", "missing ]"),
        ("", "non-empty"),
    ],
)
def test_invalid_patterns_name_the_pattern_and_the_reason(pattern: str, reason: str) -> None:
    with pytest.raises(InvalidPattern) as info:
        EventFilter(key_patterns=["fine.*", pattern])
    assert info.value.pattern == pattern
    assert reason in info.value.message


def test_pathological_patterns_run_in_linear_time() -> None:
    f = EventFilter(key_patterns=["(a+)+$"])  # catastrophic for a backtracking engine
    assert not f.matches(event("a" * 500 + "!"))


def test_stream_config_validation() -> None:
    config = StreamConfig("orders", event_types=["insert", "DELETE"], key_patterns=["orders/.*"])  # type: ignore[arg-type]
    assert config.event_types == {EventType.INSERT, EventType.DELETE}
    assert StreamConfig.from_dict(config.to_dict()) == config
    for bad, message in [
        ({"name": "bad name!"}, "stream name"),
        ({"name": "s", "event_types": ["UPSERT"]}, "unknown event type 'UPSERT'"),
        ({"name": "s", "key_patterns": "users/.*"}, "list of patterns"),
        ({"name": "s", "batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"name": "s", "batch_size": 20, "buffer_size": 10}, "cannot exceed buffer_size"),
        ({"name": "s", "start_from": "yesterday"}, "start_from"),
        ({"name": "s", "start_from": 0}, "start_from"),
        ({"name": "s", "on_overflow": "drop"}, "on_overflow"),
        ({"name": "s", "key_patterns": ["("]}, "missing \\)"),
        ({"name": "s", "batch_sise": 1}, "unknown stream field"),
    ]:
        with pytest.raises(InvalidStreamConfig, match=message):
            StreamConfig.from_dict(bad)
