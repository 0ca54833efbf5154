"""``SyncService``: replication on one node. It runs the node's sync processors (declared by
the configuration file or made through the API, stored so they survive restarts), answers
other nodes through its ``SyncReceiver``, and keeps tombstones until every target has them.

Declarations follow the rule of every subsystem (``changestream/declare.py``): what the file
declares is created or updated; what it declared before and no longer does is orphaned,
stopped and kept (its stream's checkpoints keep the log for its targets) until deleted or
pruned; processors made through the API are never touched by the file.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from changestream import (
    ChangeStreamManager,
    Clock,
    DeclarePlan,
    Orphan,
    Ownership,
    SystemClock,
    UnknownStream,
    plan_declaration,
)
from kvdb import ConflictRecord, Resolver, Store

from .channel import target_epochs_prefix
from .config import SyncConfig
from .errors import InvalidSyncConfig, SyncError, SyncProcessorExists, UnknownSyncProcessor
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
        self._ownership: dict[str, Ownership] = {}
        self._orphans: dict[str, tuple[SyncConfig, Ownership]] = {}
        self._started = False

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the stored processors (orphans stay stopped) and guard tombstones for them."""
        self.store.replica.tombstone_guard = self._every_target_has
        for name, (config, ownership) in self._stored().items():
            if ownership.orphaned:
                self._orphans[name] = (config, ownership)
            else:
                await self._run(config)
                self._ownership[name] = ownership
        self._started = True

    async def declare(
        self,
        configs: Sequence[SyncConfig],
        *,
        owner: str,
        prune: bool = False,
        dry_run: bool = False,
    ) -> DeclarePlan[SyncConfig]:
        """Store what ``owner`` declares (before ``start``, which runs it): created, updated
        or adopted back; orphan what it no longer declares; with ``prune`` forget its orphans
        with their streams and checkpoints. Checked whole first (ownership, targets, overlaps):
        on an error nothing changes. ``dry_run`` only plans and checks."""
        if self._started:
            raise SyncError("declare sync processors before the service starts")
        existing = self._stored()
        plan = plan_declaration("sync processor", configs, existing, owner=owner, prune=prune)
        leaving = {*plan.orphan, *plan.prune, *plan.kept}
        staying = [
            config for name, (config, ownership) in existing.items()
            if name not in leaving and not ownership.orphaned
            and name not in {c.name for c in configs}
        ]  # fmt: skip
        for config in configs:
            self.check(config, ())
        check_overlaps([*configs, *staying])
        if dry_run:
            return plan
        for config in plan.create:
            await self._persist(config, Ownership(owner))
        for config in (*plan.update, *plan.unchanged):
            if config in plan.update or plan.rewrites(config.name):
                await self._persist(config, Ownership(owner))
        for name in plan.orphan:
            config, ownership = existing[name]
            await self._persist(config, ownership.orphan())
        for name in plan.prune:
            await self._forget(existing[name][0])
            log.warning("pruned sync processor %s (no longer declared by %s)", name, owner)
        return plan

    def orphans(self) -> tuple[Orphan, ...]:
        """The orphaned processors, with the checkpoints by which they still pin the log."""
        found = []
        for name, (config, ownership) in sorted(self._orphans.items()):
            prefix = f"stream/{config.stream_name}/"
            pins = {
                cp.name: cp.seq
                for cp in self.store.list_checkpoints()
                if cp.name.startswith(prefix)
            }
            found.append(Orphan("sync processor", name, ownership.owner or "", pins,
                                delete=f"DELETE /sync/processors/{name}"))  # fmt: skip
        return tuple(found)

    def _stored(self) -> dict[str, tuple[SyncConfig, Ownership]]:
        stored: dict[str, tuple[SyncConfig, Ownership]] = {}
        for key, raw in self.store.list_system_records(_RECORD_PREFIX):
            try:
                doc, ownership = Ownership.split(json.loads(raw))
                config = SyncConfig.from_dict(doc["config"])
            except (ValueError, KeyError, TypeError, InvalidSyncConfig) as exc:
                log.error("ignoring unreadable sync processor %s: %s", key, exc)
                continue
            stored[config.name] = (config, ownership)
        return stored

    async def stop(self) -> None:
        self.store.replica.tombstone_guard = None
        for processor in list(self._processors.values()):
            await processor.stop()
        self._processors.clear()
        self._orphans.clear()
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
        """Start (and store) a new sync processor, made through the API (no owner)."""
        if config.name in self._processors or config.name in self._orphans:
            raise SyncProcessorExists(config.name)
        self.check(config, self._processors.values())
        processor = await self._run(config)
        self._ownership[config.name] = Ownership()
        await self._persist(config, Ownership())
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
        """Stop a processor (running or orphaned) and forget it, with its stream and the
        checkpoints that pinned the log for its targets."""
        if name in self._orphans:
            config, _ = self._orphans.pop(name)
            await self._forget(config)
            return
        processor = self.get(name)
        await processor.stop()
        del self._processors[name]
        self._ownership.pop(name, None)
        await self._forget(processor.config)

    async def _forget(self, config: SyncConfig) -> None:
        """Forget a processor: its stream (and the checkpoints that pinned the log for its
        targets), the epochs it knew of its targets, its definition."""
        with contextlib.suppress(UnknownStream):
            await self.streams.remove(config.stream_name)
        for key, _ in self.store.list_system_records(target_epochs_prefix(config.name)):
            await self.store.delete_system_record(key)
        await self.store.delete_system_record(_RECORD_PREFIX + config.name)

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

    async def _persist(self, config: SyncConfig, ownership: Ownership) -> None:
        record = {"config": config.to_dict(), **ownership.to_fields()}
        await self.store.put_system_record(
            _RECORD_PREFIX + config.name, json.dumps(record, sort_keys=True).encode()
        )

    # -- the receiving side, and what the node shows ------------------------------------------

    def ownership(self, name: str) -> Ownership:
        if name in self._orphans:
            return self._orphans[name][1]
        return self._ownership.get(name, Ownership())

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
            "processors": [
                {**processor.status(), **self.ownership(processor.name).to_dict()}
                for processor in self.list()
            ],
            "orphaned": [orphan.to_dict() for orphan in self.orphans()],
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
