"""YAML that must not load: alias bombs (refused before they expand), duplicate keys,
duplicate tokens and tokens that can never be presented (#15)."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from api import load_settings
from api.errors import ConfigError

TOKEN = "0123456789abcdef0123"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kvdb.yaml"
    path.write_text(text)
    return path


BOMB = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
node: {limits: *i}
"""


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    path = write(tmp_path, BOMB)
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(ConfigError, match="expands to more than 100000 values") as info:
            load_settings(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 2 and peak < 20 * 1024 * 1024
    assert str(info.value).startswith(f"{path}:")


def test_ordinary_aliases_still_work(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "streams:\n  - {name: a, key_patterns: &orders ['orders/.*']}\n"
        "  - {name: b, key_patterns: *orders}\n",
    )
    assert [s.key_patterns for s in load_settings(path).streams] == [("orders/.*",)] * 2


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("node:\n  id: a\n  id: b\n", 3),
        ("server: {port: 1, port: 2}\n", 1),
        ("node: {}\nnode: {}\n", 2),
    ],
)
def test_duplicate_keys_are_refused(tmp_path: Path, text: str, line: int) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="appears twice") as info:
        load_settings(path)
    assert str(info.value).startswith(f"{path}:{line}:")


def test_a_token_given_twice_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"server:\n  tokens:\n    - {{token: {TOKEN}, role: admin}}\n"
        f"    - {{token: {TOKEN}, role: read}}\n",
    )
    with pytest.raises(ConfigError, match="tokens 0 and 1 are the same token") as info:
        load_settings(path)
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize("token", [f" {TOKEN}", f"{TOKEN} ", f"{TOKEN[:8]} {TOKEN[8:]}",
                                   f"{TOKEN}\\t", f"{TOKEN}é"])  # fmt: skip
def test_a_token_that_could_never_be_presented_is_refused(tmp_path: Path, token: str) -> None:
    path = write(tmp_path, f'server:\n  tokens:\n    - {{token: "{token}", role: admin}}\n')
    with pytest.raises(ConfigError, match="visible ASCII characters, without spaces") as info:
        load_settings(path)
    assert TOKEN not in str(info.value)


def test_nesting_too_deep_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "node: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nests too deeply"):
        load_settings(path)
