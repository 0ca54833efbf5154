"""Conflict policies: deterministic and symmetric, per key pattern, and custom resolvers."""

from __future__ import annotations

import itertools

import pytest

from kvdb import Version, VersionedValue
from sync import ConflictPolicy, ConflictResolver, InvalidSyncConfig, PolicyRule, SyncConfig
from sync.conflicts import pick


def value(hlc: int, origin: str, *, deleted: bool = False) -> VersionedValue:
    return VersionedValue(
        "k", None if deleted else b"v", None, Version(hlc, origin), {origin: hlc}, deleted
    )


PAIRS = [
    (value(5, "a"), value(7, "b")),  # two updates: the later wins
    (value(7, "a"), value(7, "b")),  # same hlc: the origin decides
    (value(9, "a", deleted=True), value(3, "b")),  # a later delete and an update
    (value(3, "a", deleted=True), value(9, "b")),  # an earlier delete and an update
    (value(4, "a", deleted=True), value(6, "b", deleted=True)),  # two deletes
]


@pytest.mark.parametrize("policy", list(ConflictPolicy))
@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_every_policy_picks_the_same_winner_from_either_side(
    policy: ConflictPolicy, a: VersionedValue, b: VersionedValue
) -> None:
    resolver = ConflictResolver(SyncConfig("s", conflict_policy=policy))
    on_a = resolver("k", local=a, remote=b)
    on_b = resolver("k", local=b, remote=a)
    winner_on_a = b if on_a.remote_wins else a
    winner_on_b = a if on_b.remote_wins else b
    assert winner_on_a == winner_on_b == pick(policy, a, b)
    assert on_a.policy == on_b.policy == policy.value


def test_what_each_policy_prefers() -> None:
    later_delete, earlier_update = PAIRS[2]
    earlier_delete, later_update = PAIRS[3]
    assert pick(ConflictPolicy.LWW, later_delete, earlier_update) is later_delete
    assert pick(ConflictPolicy.LWW, earlier_delete, later_update) is later_update
    assert pick(ConflictPolicy.DELETE_WINS, earlier_delete, later_update) is earlier_delete
    assert pick(ConflictPolicy.UPDATE_WINS, later_delete, earlier_update) is earlier_update
    assert pick(ConflictPolicy.DELETE_WINS, *PAIRS[0]) is PAIRS[0][1]  # no delete: lww


def test_rules_apply_per_key_pattern_first_match_wins() -> None:
    config = SyncConfig(
        "s",
        policies=(
            PolicyRule(("carts/.*",), ConflictPolicy.DELETE_WINS),
            PolicyRule(("carts/keep-.*", "profiles/.*"), ConflictPolicy.UPDATE_WINS),
        ),
    )
    resolver = ConflictResolver(config)
    assert resolver.policy_for("carts/keep-1") is ConflictPolicy.DELETE_WINS
    assert resolver.policy_for("profiles/7") is ConflictPolicy.UPDATE_WINS
    assert resolver.policy_for("orders/1") is ConflictPolicy.LWW


def longest_value(key: str, a: VersionedValue, b: VersionedValue) -> VersionedValue:
    """A custom resolver for the tests: the longer value wins, ties by version."""
    size_a, size_b = len(a.value or b""), len(b.value or b"")
    return b if (size_b, b.version) > (size_a, a.version) else a


def wrong_answer(key: str, a: VersionedValue, b: VersionedValue) -> str:
    return "neither"


def test_a_custom_resolver_gets_the_pair_in_version_order() -> None:
    resolver = ConflictResolver(SyncConfig("s", resolver="tests.sync.test_conflicts:longest_value"))
    short = VersionedValue("k", b"x", None, Version(9, "a"), {"a": 9}, False)
    long = VersionedValue("k", b"xxxx", None, Version(2, "b"), {"b": 2}, False)
    for local, remote in itertools.permutations((short, long)):
        result = resolver("k", local, remote)
        assert (remote if result.remote_wins else local) is long
        assert result.policy == "resolver:tests.sync.test_conflicts:longest_value"
    broken = ConflictResolver(SyncConfig("s", resolver="tests.sync.test_conflicts:wrong_answer"))
    with pytest.raises(ValueError, match="must return one of the two versions"):
        broken("k", short, long)


def test_a_resolver_that_does_not_import_is_a_config_error() -> None:
    with pytest.raises(InvalidSyncConfig, match="cannot import module"):
        ConflictResolver(SyncConfig("s", resolver="no_such_module_xyz:fn"))
