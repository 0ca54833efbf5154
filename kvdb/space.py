"""Space headroom: the store keeps room for the writes that reclaim space.

A store that ran out of space (its map at ``max_map_size``, or its disk full) would refuse
every write, deletes included, and a delete is how space is reclaimed through the API. So,
like etcd once its space quota is exceeded (only reads and deletes are accepted, until space
is freed and the alarm disarmed), the store refuses ordinary writes with ``StorageFull`` once
less than ``headroom`` bytes are left, and keeps those bytes for writes that free space:
deletes, change-log compaction, checkpoints (which let compaction advance) and removals of
definitions. Writes resume by themselves once there is room again (deleted values' pages are
reused once compaction has removed the change-log entries that still hold them).

Room left = the pages inside the data file that are free, plus what the file may still grow
by (the disk's free bytes, within ``max_map_size``). Measuring it all takes about 50 us, so it
is measured in full only when the room to grow is short; otherwise each commit group only
reads the file's high-water mark (2 us), which must rise for the room to shrink, and it is
measured again every ``_RECHECK_S`` (another process may fill the disk).
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

from .env import Environment
from .errors import StorageFull

__all__ = ["SpaceGuard"]

_RECHECK_S = 0.25
_PLENTY = 2  # growth above this many headrooms needs no measure but every _RECHECK_S
_META_PAGES = 2


class SpaceGuard:
    def __init__(self, env: Environment, headroom: int) -> None:
        self._env = env
        self.headroom = headroom
        self._page = env.lmdb.stat()["psize"]
        self._checked = -_RECHECK_S
        self._high = 0  # the file's last page at the last measure
        self._growth = 0  # and how far it could grow then

    def measure(self) -> tuple[int, int]:
        """``(room, growth)``: the bytes the store can still write (free pages in the data
        file, plus growth), and how many of them the file can still grow by (free disk,
        within ``max_map_size``)."""
        env = self._env
        info = env.lmdb.info()
        used = _META_PAGES + _pages(env.lmdb.stat())
        with env.read() as txn:
            for db in env.dbs.values():
                used += _pages(txn.stat(db))
        high_water = (info["last_pgno"] + 1) * self._page
        try:
            file_size = os.stat(env.path / "data.mdb").st_size
            disk_free = shutil.disk_usage(env.path).free
        except OSError:
            return 2**62, 2**62  # cannot tell: do not refuse
        growth = disk_free + max(0, file_size - high_water)
        limit = env.config.max_map_size
        if limit is not None:
            growth = min(growth, max(0, limit - high_water))
        return high_water - used * self._page + growth, growth

    def refusal(self, incoming: int) -> StorageFull | None:
        """``StorageFull`` if ordinary writes of about ``incoming`` bytes must be refused now
        (they would leave less than the headroom), else None."""
        now = time.monotonic()
        high = self._env.lmdb.info()["last_pgno"]
        grown = (high - self._high) * self._page
        plenty = self._growth - grown - incoming > _PLENTY * self.headroom
        if plenty and now - self._checked < _RECHECK_S:
            return None
        room, self._growth = self.measure()
        self._checked, self._high = now, high
        if room - incoming >= self.headroom:
            return None
        return StorageFull(
            f"the store is nearly out of space ({room} bytes left, less than the "
            f"{self.headroom} bytes of node.space_headroom kept for deletes): only deletes "
            "are accepted until space is freed. Delete data (its space is reused once the "
            "change log no longer holds it: lower node.retention), free disk space, or raise "
            "node.max_map_size",
            room=room,
            headroom=self.headroom,
        )


def _pages(stat: Any) -> int:  # lmdb's stat TypedDict
    return stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]
