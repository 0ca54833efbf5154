"""Scans with cursors, and the limits checked before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvdb import (
    BatchTooLarge,
    Delete,
    InvalidKey,
    Limits,
    Put,
    ReservedKey,
    Store,
    StoreConfig,
    ValidationError,
    ValueTooLarge,
)


@pytest.fixture
def filled(store: Store) -> Store:
    store.batch_sync([Put(f"user/{i:03d}", f"u{i}".encode()) for i in range(25)])
    store.batch_sync([Put("order/1", b"o1"), Put("order/2", b"o2"), Put("zeta", b"z")])
    store.delete_sync("user/005")
    return store


def test_prefix_scan_skips_deleted_keys(filled: Store) -> None:
    page = filled.scan(prefix="user/", limit=100)
    keys = [item.key for item in page.items]
    assert len(keys) == 24 and "user/005" not in keys
    assert keys == sorted(keys)
    assert page.next is None


def test_range_scan_is_half_open(filled: Store) -> None:
    page = filled.scan(start="order/", end="user/002")
    assert [i.key for i in page.items] == ["order/1", "order/2", "user/000", "user/001"]


def test_cursor_walks_every_key_exactly_once(filled: Store) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = filled.scan(prefix="user/", limit=7, cursor=cursor)
        seen.extend(item.key for item in page.items)
        pages += 1
        if page.next is None:
            break
        cursor = page.next
    assert seen == [f"user/{i:03d}" for i in range(25) if i != 5]
    assert pages == 4


def test_cursor_survives_writes_between_pages(filled: Store) -> None:
    first = filled.scan(prefix="user/", limit=3)
    filled.put_sync("user/0045", b"new key sorts between pages")
    filled.delete_sync("user/003")
    second = filled.scan(prefix="user/", limit=3, cursor=first.next)
    assert [i.key for i in second.items] == ["user/004", "user/0045", "user/006"]


def test_bad_cursor_and_limit_are_clear_errors(filled: Store) -> None:
    with pytest.raises(ValidationError, match="not a cursor"):
        filled.scan(cursor="!!!")
    with pytest.raises(ValidationError, match="limit must be within"):
        filled.scan(limit=0)


def test_unicode_keys_with_slashes(store: Store) -> None:
    store.put_sync("café/ünïcode/ключ", b"v")
    entry = store.get("café/ünïcode/ключ")
    assert entry is not None and entry.value == b"v"
    assert [i.key for i in store.scan(prefix="café/").items] == ["café/ünïcode/ключ"]


@pytest.mark.parametrize(
    ("key", "error", "match"),
    [
        ("", InvalidKey, "empty"),
        ("k" * 512, InvalidKey, "512 bytes; the limit is 511"),
        ("é" * 256, InvalidKey, "512 bytes"),
        ("_system", ReservedKey, "reserved"),
        ("\udcff", InvalidKey, "not valid UTF-8"),
    ],
)
def test_bad_keys_are_refused_before_writing(
    store: Store, key: str, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        store.put_sync(key, b"v")
    with pytest.raises(error, match=match):
        store.batch_sync([Put("fine", b"v"), Delete(key)])
    assert store.last_seq == 0


def test_longest_key_is_accepted(store: Store) -> None:
    store.put_sync("k" * 511, b"v")
    assert store.get("k" * 511) is not None


def test_value_and_batch_limits_name_the_setting(tmp_path: Path) -> None:
    """Errors name a limit as the configuration file sets it (#17)."""
    limits = Limits(max_value_bytes=10, max_batch_ops=3, max_batch_bytes=25)
    with Store(StoreConfig(data_dir=tmp_path / "d", limits=limits)) as store:
        store.put_sync("k", b"x" * 10)
        with pytest.raises(ValueTooLarge, match=r"\(node\.limits\.max_value_size\)") as info:
            store.put_sync("k", b"x" * 11)
        assert (info.value.size, info.value.limit) == (11, 10)
        assert info.value.fields["setting"] == "node.limits.max_value_size"
        with pytest.raises(BatchTooLarge, match=r"\(node\.limits\.max_batch_ops\)"):
            store.batch_sync([Put(f"k{i}", b"") for i in range(4)])
        with pytest.raises(BatchTooLarge, match=r"\(node\.limits\.max_batch_size\)"):
            store.batch_sync([Put("a", b"x" * 10), Put("b", b"x" * 10), Put("c", b"x" * 10)])
        assert store.last_seq == 1
