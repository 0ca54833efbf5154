"""What the event bus tells about its handlers: figures and descriptions, orphans included
(for ``/bus/handlers``, ``/stats`` and ``/metrics``). A mixin of ``EventBus``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kvdb.stats import Histogram

from .stats import HandlerStats

if TYPE_CHECKING:
    from changestream import Ownership

    from .dead_letters import DeadLetterStore
    from .handlers import EventHandler
    from .orphans import OrphanedDefinitions
    from .runner import HandlerRunner

__all__ = ["BusInspection"]


class BusInspection:
    """Read-only views of an ``EventBus``; what they read, the bus defines."""

    _runners: dict[str, HandlerRunner]
    orphaned: OrphanedDefinitions
    dead_letters: DeadLetterStore

    def handler(self, name: str) -> EventHandler:
        raise NotImplementedError

    def source(self, name: str) -> str:
        raise NotImplementedError

    def ownership(self, kind: str, name: str) -> Ownership:
        raise NotImplementedError

    def _handler_routes(self, name: str) -> list[str]:
        raise NotImplementedError

    def stats(self) -> dict[str, HandlerStats]:
        """Every handler's figures, orphans included (state ``orphaned``)."""
        stats = {name: self._runners[name].stats() for name in self._runners}
        stats.update({name: self.orphaned.stats(name) for name in self.orphaned.handlers()})
        return {name: stats[name] for name in sorted(stats)}

    def latency_histograms(self) -> dict[str, Histogram]:
        """Commit-to-handled seconds per handler (for Prometheus)."""
        return {name: self._runners[name].counters.latency for name in sorted(self._runners)}

    def handler_stats(self, name: str) -> HandlerStats:
        if ("handler", name) in self.orphaned:
            return self.orphaned.stats(name)
        self.handler(name)
        return self._runners[name].stats()

    def describe(self, name: str) -> dict[str, Any]:
        if ("handler", name) in self.orphaned:
            base = self.orphaned.describe(name)
        else:
            handler = self.handler(name)
            describe = getattr(handler, "describe", None)
            base = describe() if callable(describe) else {"name": name, "kind": "custom"}
        return {
            **base,
            "source": self.source(name),
            **self.ownership("handler", name).to_dict(),
            "routes": self._handler_routes(name),
            "dead_letters": self.dead_letters.count(name),
        }
