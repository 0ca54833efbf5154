"""Content types are media types (RFC 9110, ASCII, at most 255 bytes), checked before a write
joins a commit group: a stored type is written raw into response heads."""

from __future__ import annotations

import pytest

from kvdb import InvalidContentType, Put, Store
from kvdb.validation import is_media_type

GOOD = [
    "text/plain",
    "application/json",
    "text/plain; charset=utf-8",
    "text/plain;charset=UTF-8",
    'multipart/form-data; boundary="a b;c"',
    "application/vnd.api+json",
    "text/plain;",
    'a/b; x="q\\"uoted"',
    "t/" + "s" * 253,
]
BAD = [
    "text/plain\r\nSet-Cookie: s=evil",
    "text/plain\nx",
    "text/☃",
    "text",
    "text/",
    "/plain",
    "text/plain; charset",
    "text/plain; charset=",
    "text/pl ain",
    'text/plain; a="unterminated',
    "t/" + "s" * 254,  # 256 bytes
    " text/plain",
]


@pytest.mark.parametrize("media_type", GOOD)
def test_media_types_that_are_stored(store: Store, media_type: str) -> None:
    assert is_media_type(media_type)
    store.put_sync("k", b"v", content_type=media_type)
    entry = store.get("k")
    assert entry is not None and entry.content_type == media_type


@pytest.mark.parametrize("media_type", BAD)
def test_what_is_not_a_media_type_is_refused_before_writing(store: Store, media_type: str) -> None:
    assert not is_media_type(media_type)
    with pytest.raises(InvalidContentType) as info:
        store.put_sync("k", b"v", content_type=media_type)
    assert "RFC 9110" in info.value.message and info.value.code == "invalid_content_type"
    with pytest.raises(InvalidContentType):
        store.batch_sync([Put("a", b"1"), Put("b", b"2", media_type)])
    assert store.last_seq == 0 and store.get("a") is None


@pytest.mark.parametrize("bad", [42, b"text/plain", ["text/plain"]])
def test_a_content_type_that_is_not_a_string(store: Store, bad: object) -> None:
    with pytest.raises(InvalidContentType, match="must be a string"):
        store.batch_sync([Put("a", b"1", bad)])  # type: ignore[arg-type]
    assert store.last_seq == 0
