"""The hybrid logical clock never goes backwards: not within a run, not across restarts."""

from __future__ import annotations

from pathlib import Path

from kvdb import HybridLogicalClock, Store, StoreConfig, hlc_to_ms
from tests.conftest import StepClock


def test_ticks_follow_wall_time_and_count_within_a_millisecond(clock: StepClock) -> None:
    hlc = HybridLogicalClock(clock)
    a, b = hlc.now(), hlc.now()
    assert hlc_to_ms(a) == hlc_to_ms(b) == clock.now_ms
    assert b == a + 1
    clock.advance(5)
    c = hlc.now()
    assert hlc_to_ms(c) == clock.now_ms and c & 0xFFFF == 0


def test_wall_clock_stepping_back_does_not_go_backwards(clock: StepClock) -> None:
    hlc = HybridLogicalClock(clock)
    before = hlc.now()
    clock.advance(-60_000)
    after = [hlc.now() for _ in range(3)]
    assert after == [before + 1, before + 2, before + 3]
    clock.advance(120_000)
    assert hlc_to_ms(hlc.now()) == clock.now_ms


def test_counter_overflow_carries_into_the_milliseconds(clock: StepClock) -> None:
    hlc = HybridLogicalClock(clock)
    stamps = [hlc.now() for _ in range(70_000)]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert hlc_to_ms(stamps[-1]) == clock.now_ms + 1


def test_observe_moves_past_a_remote_timestamp(clock: StepClock) -> None:
    hlc = HybridLogicalClock(clock)
    remote = (clock.now_ms + 10_000) << 16
    assert hlc.observe(remote) == remote + 1
    assert hlc.now() == remote + 2


def test_restart_with_a_clock_that_stepped_back(tmp_path: Path, clock: StepClock) -> None:
    config = StoreConfig(data_dir=tmp_path / "d", node_id="n1")
    with Store(config, clock=clock) as store:
        last = store.put_sync("a", b"1").version
    clock.advance(-3_600_000)  # the machine comes back an hour in the past
    with Store(config, clock=clock) as store:
        result = store.put_sync("a", b"2")
        assert result.version is not None and result.version > last
        assert result.seq == 2
        events = store.read_changes(0)
        assert events[1].hlc > events[0].hlc
