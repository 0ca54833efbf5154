"""The ``sync:`` section's bad input (issue 9, "Bad input"): each mistake is a config error
naming the file, the line and the field, before anything starts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api import load_settings
from api.errors import ConfigError

TARGET = """
      - node_id: b
        endpoints: ["http://127.0.0.1:8081"]
"""

CASES = {
    "an endpoint that is not http(s)": (
        """
node: {id: a}
sync:
  - name: mesh
    targets:
      - node_id: b
        endpoints: ["http://127.0.0.1:8081", "ftp://127.0.0.1:8082"]
""",
        r"kvdb\.yaml:6: sync\.0\.targets\.0\.endpoints: endpoint 'ftp://127\.0\.0\.1:8082' is not an http\(s\) URL",
    ),
    "a target with this node's id": (
        """
node: {id: a}
sync:
  - name: mesh
    targets:
      - node_id: a
        endpoints: ["http://127.0.0.1:8081"]
""",
        r"kvdb\.yaml:5: sync\.0\.targets\.0\.node_id: 'a' is this node's own id",
    ),
    "an unknown policy": (
        """
node: {id: a}
sync:
  - name: mesh
    conflict_policy: first_wins
    targets:"""
        + TARGET,
        r"kvdb\.yaml:4: sync\.0\.conflict_policy: Input should be 'lww', 'delete_wins' or 'update_wins', got 'first_wins'",
    ),
    "an unknown policy in a rule": (
        """
node: {id: a}
sync:
  - name: mesh
    policies:
      - key_patterns: ["carts/.*"]
        policy: newest
    targets:"""
        + TARGET,
        r"kvdb\.yaml:6: sync\.0\.policies\.0\.policy: Input should be .*got 'newest'",
    ),
    "a resolver whose module does not import": (
        """
node: {id: a}
sync:
  - name: mesh
    resolver: no_such_module.conflicts:resolve
    targets:"""
        + TARGET,
        r"kvdb\.yaml:4: sync\.0\.resolver: resolver: cannot import module 'no_such_module\.conflicts'",
    ),
    "a resolver that is not in its module": (
        """
node: {id: a}
sync:
  - name: mesh
    resolver: json:no_such_function
    targets:"""
        + TARGET,
        r"kvdb\.yaml:4: sync\.0\.resolver: resolver: .*no_such_function",
    ),
    "two processors replicating to one node": (
        """
node: {id: a}
sync:
  - name: everything
    targets:"""
        + TARGET
        + """
  - name: carts
    source_patterns: ["carts/.*"]
    targets:
      - node_id: b
        endpoints: ["http://127.0.0.1:9081"]
""",
        r"kvdb\.yaml:2: sync: sync 'carts' and 'everything' both replicate to 'b': a key could travel twice",
    ),
    "a source pattern that is not RE2": (
        """
node: {id: a}
sync:
  - name: mesh
    source_patterns: ["(unclosed"]
    targets:"""
        + TARGET,
        r"kvdb\.yaml:3: sync\.0: source_patterns: key pattern '\(unclosed' is not a valid RE2",
    ),
    "a duration without a unit": (
        """
node: {id: a}
sync:
  - name: mesh
    retry_delay: 100
    targets:"""
        + TARGET,
        r"kvdb\.yaml:4: sync\.0\.retry_delay: expected a duration with a unit",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_sync_section_names_file_line_and_field(tmp_path: Path, case: str) -> None:
    text, expected = CASES[case]
    path = tmp_path / "kvdb.yaml"
    path.write_text(text.lstrip("\n"))
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert str(path) in message
    assert re.search(expected, message), message


def test_the_node_id_from_the_command_line_counts_too(tmp_path: Path) -> None:
    path = tmp_path / "kvdb.yaml"
    path.write_text(
        "sync:\n  - name: mesh\n    targets:\n      - node_id: a\n        endpoints: [http://h:1]\n"
    )
    with pytest.raises(ConfigError, match=r"kvdb\.yaml:4: sync\.0\.targets\.0\.node_id: 'a' is"):
        load_settings(path, overrides={"node": {"id": "a"}})
    assert load_settings(path, overrides={"node": {"id": "b"}}).sync[0].name == "mesh"
