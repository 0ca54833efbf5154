"""Sources: which change events a pipeline reads, how they become records, and their time.

A ``Source`` selects events (key patterns, event types), decodes each into a record and gives
it an event time:

- ``decode``: ``"json"`` (default: the new value parsed as JSON), ``"text"`` (UTF-8),
  ``"bytes"``, ``"event"`` (the ``ChangeEvent`` itself), or a function of the event that
  returns the record or raises ``InvalidRecord``.
- ``event_time``: None for the commit time (``event.ts``), a field name of a JSON-object
  record (ISO-8601 string or epoch ms), or a function of the record.

An event that cannot become a record (a value that is not JSON, a missing event time) is
skipped and counted as ``invalid`` with the reason of the latest one, never silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from changestream import EventFilter, parse_event_types, parse_origins
from kvdb import ChangeEvent, EventType

from .errors import BadCallbackResult, InvalidRecord, PipelineDefinitionError
from .operators import show
from .records import RecordBatch
from .timestamps import parse_timestamp

__all__ = ["DECODERS", "Source", "SourceReader"]

DECODERS = ("json", "text", "bytes", "event")
Decode = str | Callable[[ChangeEvent], Any]
EventTime = str | Callable[[Any], Any] | None


@dataclass(frozen=True)
class Source:
    key_patterns: tuple[str, ...]
    event_types: frozenset[EventType] = field(
        default_factory=lambda: frozenset({EventType.INSERT, EventType.UPDATE})
    )
    decode: Decode = "json"
    event_time: EventTime = None
    out_of_orderness: int = 0
    origins: tuple[str, ...] = ()  # local, remote or node ids (empty: every origin)

    def __post_init__(self) -> None:
        if isinstance(self.key_patterns, str):
            raise PipelineDefinitionError("key_patterns must be a list of patterns, not a str")
        object.__setattr__(self, "key_patterns", tuple(self.key_patterns))
        try:
            object.__setattr__(self, "event_types", parse_event_types(self.event_types))
            object.__setattr__(self, "origins", parse_origins(self.origins))
            EventFilter(self.event_types, self.key_patterns, self.origins)
        except Exception as exc:  # InvalidPattern, InvalidStreamConfig: say it as ours
            raise PipelineDefinitionError(getattr(exc, "message", str(exc))) from None
        if not (self.decode in DECODERS or callable(self.decode)):
            raise PipelineDefinitionError(
                f"decode must be one of {', '.join(DECODERS)} or a function of the change "
                f"event, got {self.decode!r}"
            )
        if not (self.event_time is None or isinstance(self.event_time, str)) and not callable(
            self.event_time
        ):
            raise PipelineDefinitionError(
                "event_time must be None (the commit time), a field name or a function of the "
                f"record, got {self.event_time!r}"
            )
        if isinstance(self.event_time, str) and self.decode != "json" and not callable(self.decode):
            raise PipelineDefinitionError(
                f"event_time={self.event_time!r} reads a field of a JSON object, but decode is "
                f"{self.decode!r}; decode as json or pass a function as event_time"
            )

    def event_filter(self) -> EventFilter:
        return EventFilter(self.event_types, self.key_patterns, self.origins)

    def describe(self) -> dict[str, Any]:
        return {
            "key_patterns": list(self.key_patterns),
            "event_types": sorted(t.value for t in self.event_types),
            "decode": self.decode if isinstance(self.decode, str) else _qualname(self.decode),
            "event_time": self.event_time
            if self.event_time is None or isinstance(self.event_time, str)
            else _qualname(self.event_time),
            "out_of_orderness": self.out_of_orderness,
            "origins": list(self.origins),
        }


def _qualname(fn: Any) -> str:
    return str(getattr(fn, "__qualname__", type(fn).__name__))


class SourceReader:
    """Turns a source's change events into records. ``invalid`` counts the events skipped."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.filter = source.event_filter()
        self.invalid = 0
        self.last_invalid: str | None = None
        decode = source.decode
        self._decode: Callable[[ChangeEvent], Any] | None
        if decode == "json":
            self._decode = None  # the fast path below
        elif decode == "text":
            self._decode = _text
        elif decode == "bytes":
            self._decode = _bytes
        elif decode == "event":
            self._decode = _event
        else:
            assert callable(decode)
            self._decode = decode
        self._field = source.event_time if isinstance(source.event_time, str) else None
        self._time_fn = source.event_time if callable(source.event_time) else None

    def read(self, events: Sequence[ChangeEvent], positions: Iterable[int]) -> RecordBatch:
        """Records of ``events`` (the source's events, at ``positions`` of the batch)."""
        invalid_before = self.invalid
        values = self._decode_all(events)
        field_name, time_fn = self._field, self._time_fn
        if field_name is not None:
            try:
                times = [parse_timestamp(v.get(field_name)) for v in values]
            except AttributeError:  # a record that is not a JSON object
                times = [
                    parse_timestamp(v.get(field_name)) if type(v) is dict else None for v in values
                ]
        elif time_fn is not None:
            times = [self._call_time(time_fn, v) for v in values]
        else:
            times = [e.ts for e in events]
        if self.invalid == invalid_before and None not in times:
            return RecordBatch(times, list(positions), None, values)  # type: ignore[arg-type]
        return self._valid_only(events, positions, values, times)

    def _decode_all(self, events: Sequence[ChangeEvent]) -> list[Any]:
        if self._decode is None:
            try:
                return list(map(orjson.loads, [e.new_value for e in events]))  # type: ignore[arg-type]
            except (orjson.JSONDecodeError, TypeError):
                pass
        values = []
        for event in events:
            try:
                values.append(self._decode_one(event))
            except InvalidRecord as exc:
                self._invalid(event, exc.message)
                values.append(_SKIP)
        return values

    def _decode_one(self, event: ChangeEvent) -> Any:
        if self._decode is None:
            if event.new_value is None:
                raise InvalidRecord("a DELETE has no value to decode as JSON")
            try:
                return orjson.loads(event.new_value)
            except orjson.JSONDecodeError:
                raise InvalidRecord("the value is not JSON") from None
        try:
            return self._decode(event)
        except InvalidRecord:
            raise
        except Exception as exc:
            raise BadCallbackResult(
                f"the decoder raised {type(exc).__name__}: {exc} (event seq {event.seq}, key "
                f"{event.key!r}); raise InvalidRecord to skip an event"
            ) from exc

    def _call_time(self, time_fn: Callable[[Any], Any], value: Any) -> int | None:
        if value is _SKIP:
            return None
        try:
            result = time_fn(value)
        except InvalidRecord:
            return None
        except Exception as exc:
            raise BadCallbackResult(
                f"the event_time function raised {type(exc).__name__}: {exc} (record {show(value)})"
            ) from exc
        t = parse_timestamp(result)
        if t is None:
            raise BadCallbackResult(
                f"the event_time function returned {show(result)} for record {show(value)}; it "
                "must return epoch milliseconds, an ISO-8601 string or a datetime"
            )
        return t

    def _valid_only(
        self,
        events: Sequence[ChangeEvent],
        positions: Iterable[int],
        values: list[Any],
        times: list[int | None],
    ) -> RecordBatch:
        batch = RecordBatch.empty()
        for event, position, value, t in zip(events, positions, values, times, strict=True):
            if value is _SKIP:
                continue
            if t is None:
                self._invalid(event, self._time_problem(value))
                continue
            batch.times.append(t)
            batch.positions.append(position)
            batch.values.append(value)
        return batch

    def _time_problem(self, value: Any) -> str:
        if self._field is None:
            return "the event_time function rejected the record"
        if type(value) is not dict:
            return f"the record is not a JSON object, so it has no field {self._field!r}"
        if self._field not in value:
            return f"the event-time field {self._field!r} is missing"
        return (
            f"the event-time field {self._field!r} is {show(value[self._field], 60)}, not an "
            "ISO-8601 timestamp or epoch milliseconds"
        )

    def _invalid(self, event: ChangeEvent, reason: str) -> None:
        self.invalid += 1
        self.last_invalid = f"seq {event.seq}, key {event.key!r}: {reason}"


class _Skip:
    pass


_SKIP = _Skip()


def _text(event: ChangeEvent) -> str:
    if event.new_value is None:
        raise InvalidRecord("a DELETE has no value")
    try:
        return event.new_value.decode()
    except UnicodeDecodeError:
        raise InvalidRecord("the value is not UTF-8 text") from None


def _bytes(event: ChangeEvent) -> bytes:
    if event.new_value is None:
        raise InvalidRecord("a DELETE has no value")
    return event.new_value


def _event(event: ChangeEvent) -> ChangeEvent:
    return event
