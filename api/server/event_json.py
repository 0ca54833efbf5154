"""JSON of change events for subscribers: each event is encoded once, however many
subscribers send it (fan-out to 100 WebSockets would otherwise encode it 100 times)."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from kvdb import ChangeEvent

__all__ = ["EventEncoder"]

_ENVELOPE = 64  # bytes of a message around its events: type, brackets, last_seq


class EventEncoder:
    """A bounded cache of encoded events, keyed by seq (unique for the life of a store)."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        self._cache: dict[int, bytes] = {}
        self._bytes = 0
        self._max_bytes = max_bytes

    def event(self, event: ChangeEvent) -> bytes:
        raw = self._cache.get(event.seq)
        if raw is None:
            # orjson returns its output in an over-allocated buffer (about 16 KiB for a 1.6 KiB
            # event); a cached copy must be exact-size or the budget means nothing.
            raw = bytes(memoryview(orjson.dumps(event.to_json())))
            if self._bytes + len(raw) > self._max_bytes:
                self._cache.clear()  # cheap, and the working set is the live tail
                self._bytes = 0
            self._cache[event.seq] = raw
            self._bytes += len(raw)
        return raw

    def array(self, events: Sequence[ChangeEvent]) -> bytes:
        return b"[" + b",".join(map(self.event, events)) + b"]"

    def message(self, kind: str, events: Sequence[ChangeEvent], last_seq: int) -> bytes:
        """``{"type": kind, "events": [...], "last_seq": N}``."""
        return b'{"type":"%s","events":%s,"last_seq":%d}' % (
            kind.encode(),
            self.array(events),
            last_seq,
        )

    def messages(
        self, kind: str, events: Sequence[ChangeEvent], last_seq: int, max_bytes: int
    ) -> list[bytes]:
        """``message`` cut into messages of at most about ``max_bytes`` each (an event larger
        than that goes alone): a client's frame limit bounds a message, not a batch. Each
        message's ``last_seq`` is its last event's seq, the last one's ``last_seq``."""
        if not events:
            return []
        budget = max_bytes - _ENVELOPE
        groups: list[tuple[list[bytes], int]] = []
        current: list[bytes] = []
        size = previous = 0
        for event in events:
            raw = self.event(event)
            if current and size + len(raw) + 1 > budget:
                groups.append((current, previous))
                current, size = [], 0
            current.append(raw)
            size += len(raw) + 1
            previous = event.seq
        groups.append((current, last_seq))
        return [
            b'{"type":"%s","events":[%s],"last_seq":%d}' % (kind.encode(), b",".join(raws), seq)
            for raws, seq in groups
        ]
