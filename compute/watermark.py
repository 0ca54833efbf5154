"""The pipeline's watermark: how far event time has progressed.

One watermark per pipeline: ``max event time seen - out_of_orderness``. It never moves back.
An event with ``t >= watermark`` is on time; out-of-order events within ``out_of_orderness``
therefore are never late. A window ``[start, end)`` fires once ``watermark >= end`` (no
on-time event can fall in it any more). An event whose window has ``end + allowed_lateness <=
watermark`` is too late: it is counted in ``late_dropped`` and dropped. Events between the two
update a window that already fired, which fires again (a late firing).

The watermark advances per event, in seq order, and every decision about a record uses the
watermark as it was just before that record, so whether an event is late never depends on how
the log was cut into batches: a restarted pipeline makes the same decisions. (Windows are
fired at the end of each batch, with the batch's final watermark; in ``final`` mode a window
fires at most once per batch, with its latest value.)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NO_WATERMARK", "Watermark"]

NO_WATERMARK = -(2**63)  # before the first event: nothing is late, nothing fires


@dataclass(slots=True)
class Watermark:
    out_of_orderness: int = 0
    max_time: int = NO_WATERMARK

    @property
    def current(self) -> int:
        if self.max_time == NO_WATERMARK:
            return NO_WATERMARK
        return self.max_time - self.out_of_orderness

    def observe(self, t: int) -> int:
        """Account for an event at ``t``; returns the watermark after it."""
        if t > self.max_time:
            self.max_time = t
        return self.current
