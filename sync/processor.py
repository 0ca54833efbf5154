"""``RealtimeSyncProcessor``: one ``SyncConfig`` at work. It reads a durable change stream of
the keys the config selects and fans each batch out to its targets in parallel, each target
through a ``TargetChannel`` of its own (its own checkpoint, retries and state), and probes
each target every ``health_check_interval`` (which is also how a failed-over target fails
back)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from changestream import ChangeStreamManager, Clock, StreamConfig
from changestream.aio import cancel_and_wait
from changestream.consumer import checkpoint_key
from changestream.cursor import CursorState
from kvdb import Store

from .channel import TargetChannel
from .config import SyncConfig, TargetConfig
from .conflicts import ConflictResolver
from .errors import TargetError
from .remote import RemoteDBSyncTarget
from .target import SyncTarget
from .targets import external_target

__all__ = ["RealtimeSyncProcessor", "TargetFactory"]

log = logging.getLogger("sync.processor")

TargetFactory = Callable[[SyncConfig, TargetConfig], SyncTarget]


def remote_target(config: SyncConfig, target: TargetConfig) -> SyncTarget:
    """The target a ``TargetConfig`` describes: another node over HTTP (``kind: kvdb``) or an
    external system (``sync.targets``)."""
    if target.kind != "kvdb":
        return external_target(config, target)
    return RemoteDBSyncTarget(
        target, max_retry_count=config.max_retry_count, timeout_ms=config.request_timeout_ms
    )


class RealtimeSyncProcessor:
    def __init__(
        self,
        config: SyncConfig,
        store: Store,
        streams: ChangeStreamManager,
        *,
        clock: Clock,
        targets: Mapping[str, SyncTarget] | None = None,
        target_factory: TargetFactory = remote_target,
    ) -> None:
        self.config = config
        self.store = store
        self.streams = streams
        self.clock = clock
        self.resolver = ConflictResolver(config)
        made = dict(targets or {})
        for target in config.targets:
            if target.id not in made:
                made[target.id] = target_factory(config, target)
        self.channels = {
            node: TargetChannel(config, target, store, clock) for node, target in made.items()
        }
        self._health: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def stream_config(self) -> StreamConfig:
        patterns = (
            () if self.config.source_patterns in ((), (".*",)) else self.config.source_patterns
        )
        return StreamConfig(
            self.config.stream_name,
            key_patterns=patterns,
            buffer_size=max(10_000, self.config.batch_size),
            batch_size=self.config.batch_size,
            batch_timeout_ms=0,
            enable_persistence=True,
            start_from="earliest",
        )

    async def start(self) -> None:
        stream = await self.streams.upsert(self.stream_config())
        await self._forget_old_targets()
        for channel in self.channels.values():
            await stream.add_processor(channel)
        self._health = asyncio.create_task(self._check_health(), name=f"sync {self.name} health")

    async def _forget_old_targets(self) -> None:
        """A target removed from the config no longer holds back the log (nor tombstones)."""
        prefix = f"stream/{self.config.stream_name}/"
        for checkpoint in self.store.list_checkpoints():
            target = checkpoint.name.removeprefix(prefix)
            if checkpoint.name.startswith(prefix) and target not in self.channels:
                log.info("sync %s: %s is no longer a target; releasing its checkpoint at seq %d",
                         self.name, target, checkpoint.seq)  # fmt: skip
                await self.store.delete_checkpoint(checkpoint.name)

    async def stop(self) -> None:
        health, self._health = self._health, None
        await cancel_and_wait(health)
        with contextlib.suppress(Exception):
            stream = self.streams.get(self.config.stream_name)
            for name in self.channels:
                await stream.remove_processor(name)
        for channel in self.channels.values():
            await channel.close()
            await channel.target.close()

    def pause(self) -> None:
        for channel in self.channels.values():
            channel.pause()

    def resume(self) -> None:
        for channel in self.channels.values():
            channel.resume()

    def min_delivered(self) -> int:
        """The seq every target has (for tombstone collection)."""
        return min((c.delivered_through for c in self.channels.values()), default=1 << 63)

    async def _check_health(self) -> None:
        """Every ``health_check_interval``, for each target: probe it; if healthy and idle,
        check that it still holds what it acknowledged (``TargetChannel.verify``); and restart
        a channel whose stream position the log's hard cap compacted away (``_recover``)."""
        interval = self.config.health_check_interval_ms
        while True:
            await self.clock.sleep(interval)
            for channel in self.channels.values():
                try:
                    healthy = await channel.target.check_health()
                    channel.stats["healthy"] = healthy
                    if healthy and self._compacted(channel):
                        await self._recover(channel)
                    elif healthy:
                        await channel.verify()
                except TargetError as exc:
                    log.info("sync %s -> %s: %s", self.name, channel.name, exc.message)
                except Exception:  # a probe must never stop the loop
                    log.exception("health check of %s failed", channel.name)
                    channel.stats["healthy"] = False

    def _compacted(self, channel: TargetChannel) -> bool:
        consumer = self.streams.get(self.config.stream_name).consumers.get(channel.name)
        return consumer is not None and consumer.cursor.state is CursorState.COMPACTED

    async def _recover(self, channel: TargetChannel) -> None:
        """The channel's stream cursor stopped: the log was compacted past its checkpoint.
        Bring the target up to a seq the log still follows (a snapshot), then restart the
        channel's consumer after that seq."""
        position = await channel.resync()
        stream = self.streams.get(self.config.stream_name)
        await stream.remove_processor(channel.name)
        await self.store.set_checkpoint(checkpoint_key(stream.name, channel.name), position)
        channel.delivered_through = max(channel.delivered_through, position)
        await stream.add_processor(channel)
        log.warning("sync %s -> %s: the log was compacted past the target's position; resumed "
                    "after seq %d", self.name, channel.name, position)  # fmt: skip

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "forward": self.config.forward.value,
            "source_patterns": list(self.config.source_patterns),
            "conflict_policy": self.config.conflict_policy.value,
            "targets": [channel.status() for channel in self.channels.values()],
        }
