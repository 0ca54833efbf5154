"""``SyncService``: replication on one node. It runs the node's sync processors (declared by
the configuration file or made through the API, stored so they survive restarts), answers
other nodes through its ``SyncReceiver``, and keeps tombstones until every target has them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from changestream import ChangeStreamManager, Clock, SystemClock
from kvdb import ConflictRecord, Resolver, Store

from .config import SyncConfig
from .errors import InvalidSyncConfig, SyncProcessorExists, UnknownSyncProcessor
from .processor import RealtimeSyncProcessor, TargetFactory, remote_target
from .receiver import DEFAULT_MAX_CLOCK_SKEW_MS, SyncReceiver
from .target import SyncTarget

__all__ = ["SyncService"]

log = logging.getLogger("sync.service")

_RECORD_PREFIX = "sync/processors/"


class SyncService:
    def __init__(
        self,
        store: Store,
        streams: ChangeStreamManager,
        *,
        clock: Clock | None = None,
        max_clock_skew_ms: int = DEFAULT_MAX_CLOCK_SKEW_MS,
        target_factory: TargetFactory = remote_target,
    ) -> None:
        self.store = store
        self.streams = streams
        self.clock: Clock = clock or SystemClock()
        self.target_factory = target_factory
        self.receiver = SyncReceiver(store, self.resolver_for, max_clock_skew_ms=max_clock_skew_ms)
        self._processors: dict[str, RealtimeSyncProcessor] = {}
        self._started = False

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the stored processors and guard tombstones for them."""
        self.store.replica.tombstone_guard = self._every_target_has
        for key, raw in self.store.list_system_records(_RECORD_PREFIX):
            try:
                config = SyncConfig.from_dict(json.loads(raw)["config"])
            except (ValueError, KeyError, TypeError, InvalidSyncConfig) as exc:
                log.error("ignoring unreadable sync processor %s: %s", key, exc)
                continue
            await self._run(config)
        self._started = True

    async def stop(self) -> None:
        self.store.replica.tombstone_guard = None
        for processor in list(self._processors.values()):
            await processor.stop()
        self._processors.clear()
        self._started = False

    # -- processors ---------------------------------------------------------------------------

    def get(self, name: str) -> RealtimeSyncProcessor:
        try:
            return self._processors[name]
        except KeyError:
            raise UnknownSyncProcessor(name) from None

    def list(self) -> list[RealtimeSyncProcessor]:
        return [self._processors[name] for name in sorted(self._processors)]

    async def create(self, config: SyncConfig) -> RealtimeSyncProcessor:
        """Start (and store) a new sync processor."""
        if config.name in self._processors:
            raise SyncProcessorExists(config.name)
        self.check(config, self._processors.values())
        processor = await self._run(config)
        await self._persist(config)
        return processor

    async def attach(
        self, config: SyncConfig, targets: Mapping[str, SyncTarget]
    ) -> RealtimeSyncProcessor:
        """Start a processor whose targets the program made (``LocalSyncTarget``...). It is
        not stored: the program attaches it again after a restart (its checkpoints stay)."""
        if config.name in self._processors:
            raise SyncProcessorExists(config.name)
        self.check(config, self._processors.values())
        return await self._run(config, targets)

    async def remove(self, name: str) -> None:
        """Stop a processor and forget it, with its stream and the checkpoints that pinned
        the log for its targets."""
        processor = self.get(name)
        await processor.stop()
        await processor.forget()
        del self._processors[name]
        await self.store.delete_system_record(_RECORD_PREFIX + name)

    def check(self, config: SyncConfig, others: Iterable[RealtimeSyncProcessor]) -> None:
        """Refuse a config that targets this node, or a target another processor already
        replicates to (one key would travel twice to it)."""
        for target in config.targets:
            if target.kind == "kvdb" and target.node_id == self.store.node_id:
                raise InvalidSyncConfig(
                    f"sync {config.name!r}: target {target.node_id!r} is this node; a node "
                    "does not replicate to itself"
                )
        check_overlaps([config, *(p.config for p in others if p.name != config.name)])

    async def _run(
        self, config: SyncConfig, targets: Mapping[str, SyncTarget] | None = None
    ) -> RealtimeSyncProcessor:
        processor = RealtimeSyncProcessor(
            config,
            self.store,
            self.streams,
            clock=self.clock,
            targets=targets,
            target_factory=self.target_factory,
        )
        await processor.start()
        self._processors[config.name] = processor
        return processor

    async def _persist(self, config: SyncConfig, **ownership: Any) -> None:
        record = {"config": config.to_dict(), **ownership}
        await self.store.put_system_record(
            _RECORD_PREFIX + config.name, json.dumps(record, sort_keys=True).encode()
        )

    # -- the receiving side, and what the node shows ------------------------------------------

    def resolver_for(self, source: str) -> Resolver | None:
        """The conflict rules for batches from ``source``: those of the processor that sends
        to it, else of the first processor, else None (last writer wins)."""
        for processor in self._processors.values():
            if source in processor.channels:
                return processor.resolver
        first = next(iter(self._processors.values()), None)
        return None if first is None else first.resolver

    def _every_target_has(self, seq: int) -> bool:
        return all(p.min_delivered() >= seq for p in self._processors.values())

    def status(self) -> dict[str, Any]:
        replica = self.store.replica
        return {
            "node_id": self.store.node_id,
            "epoch": replica.epoch,
            "last_seq": self.store.last_seq,
            "conflicts": replica.conflict_count(),
            "processors": [processor.status() for processor in self.list()],
            "inbound": [
                {
                    "source": c.source,
                    "epoch": c.epoch,
                    "checkpoint": c.seq,
                    "updated_ms": c.updated_ms,
                }
                for c in replica.inbound_all()
            ],
        }

    def conflicts(self, since: int = 0, limit: int = 100) -> Sequence[ConflictRecord]:
        return self.store.replica.conflicts(since, limit)


def check_overlaps(configs: Sequence[SyncConfig]) -> None:
    """One node id (or external target name) may be the target of one processor only: two
    would send it the same keys (and whether two RE2 patterns overlap cannot be decided
    cheaply)."""
    owners: dict[str, str] = {}
    for config in configs:
        for target in config.targets:
            other = owners.setdefault(target.id, config.name)
            if other != config.name:
                raise InvalidSyncConfig(
                    f"sync {config.name!r} and {other!r} both replicate to {target.id!r}: "
                    "a key could travel twice; merge their source_patterns into one entry",
                    target=target.id,
                )
