"""Declaring objects from a configuration file: one rule for every subsystem.

Streams, event-bus handlers, routes and aggregations, pipelines (and sync processors) can be
made two ways: through the API (or by a program), or declared by an *owner* such as the
node's configuration file. Each stored definition carries its ``Ownership``: the owner that
declared it (None: made through the API, and never touched by a file) and whether it is
*orphaned*. A package's ``declare(configs, owner=...)`` plans with ``plan_declaration`` and
applies the plan its own way. For each name:

1. declared, and nothing of that name exists: **create** it.
2. declared, and held by the same owner: **update** it if its definition changed, else leave
   it **unchanged**; an orphan declared again is **adopted**: it resumes from its checkpoint.
3. declared, but made through the API (or declared by another owner): refuse the whole
   declaration with ``OwnershipConflict`` before anything is applied. A file never takes over
   an object it did not make; delete the other one or rename the entry.
4. held by the owner and no longer declared: **orphan** it: stopped and kept, with its
   checkpoints (which keep holding back change-log retention) and its state, until it is
   deleted explicitly or the owner declares with ``prune=True``, which removes every orphan.

An owner that does not declare at all (a node started without a configuration file) changes
nothing: its objects keep running as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .errors import OwnershipConflict

__all__ = [
    "DeclarePlan",
    "Orphan",
    "Ownership",
    "plan_declaration",
    "warn_about_orphans",
]

C = TypeVar("C")  # what is declared (a StreamConfig, a HandlerSpec, ...)
D = TypeVar("D")  # what is stored (usually the same type)


@dataclass(frozen=True)
class Ownership:
    """Who made an object: ``owner`` None for the API (or a program); otherwise the owner
    that declared it, and whether it no longer does (``orphaned``). ``recorded`` is False for
    a definition stored before ownership was (see ``claim`` in ``plan_declaration``)."""

    owner: str | None = None
    orphaned: bool = False
    recorded: bool = field(default=True, compare=False)

    @property
    def declared(self) -> bool:
        return self.owner is not None

    def describe(self) -> str:
        if self.owner is None:
            return "made through the API"
        state = "no longer declared by" if self.orphaned else "declared by"
        return f"{state} {self.owner!r}"

    def to_fields(self) -> dict[str, Any]:
        """The fields stored with a definition."""
        return {"owner": self.owner, "orphaned": self.orphaned}

    def to_dict(self) -> dict[str, Any]:
        """For listings: ``owner`` (null: the API) and ``orphaned``."""
        return {"owner": self.owner, "orphaned": self.orphaned}

    @classmethod
    def split(cls, doc: Mapping[str, Any]) -> tuple[dict[str, Any], Ownership]:
        """A stored record without its ownership fields, and the ownership they held."""
        rest = {k: v for k, v in doc.items() if k not in ("owner", "orphaned")}
        owner = doc.get("owner")
        owner = owner if isinstance(owner, str) else None
        return rest, cls(owner, doc.get("orphaned") is True, recorded="owner" in doc)

    def adopted(self) -> Ownership:
        return Ownership(self.owner, False)

    def orphan(self) -> Ownership:
        return Ownership(self.owner, True)


@dataclass(frozen=True)
class DeclarePlan(Generic[C]):
    """What a declaration does, per name. ``adopt`` names orphans declared again, ``claimed``
    objects that had no owner and now have this one (both are also in ``update`` or
    ``unchanged``, and need their ownership rewritten); ``kept`` names the orphans left."""

    kind: str
    owner: str
    create: tuple[C, ...] = ()
    update: tuple[C, ...] = ()
    unchanged: tuple[C, ...] = ()
    adopt: tuple[str, ...] = ()
    orphan: tuple[str, ...] = ()
    prune: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    claimed: tuple[str, ...] = ()

    @property
    def declared(self) -> tuple[C, ...]:
        return (*self.create, *self.update, *self.unchanged)

    def rewrites(self, name: str) -> bool:
        """Whether the declared ``name``'s stored ownership changes (adopted or claimed)."""
        return name in self.adopt or name in self.claimed


def plan_declaration(
    kind: str,
    declared: Iterable[C],
    existing: Mapping[str, tuple[D, Ownership]],
    *,
    owner: str,
    prune: bool = False,
    name_of: Callable[[C], str] = lambda item: item.name,  # type: ignore[attr-defined]
    same: Callable[[C, D], bool] = lambda a, b: a == b,
    claim: Callable[[C, D], bool] | None = None,
) -> DeclarePlan[C]:
    """Compare what ``owner`` declares with what ``existing`` holds (name -> definition and
    ownership) and say what to do with each (see the module docstring). ``kind`` names the
    objects in errors ("stream", "handler"...). Raises ``OwnershipConflict`` for a name that
    is declared twice or that belongs to the API or another owner; nothing is planned then.

    ``claim`` is for definitions stored before ownership was (``Ownership.recorded`` False):
    it says whether such an object may be the owner's after all, its ownership then rewritten
    (an aggregation, which only a file could declare then, or a SQL pipeline whose text is
    the very one declared). An object the API made since is never claimed."""
    create: list[C] = []
    update: list[C] = []
    unchanged: list[C] = []
    adopt: list[str] = []
    claimed: list[str] = []
    names: set[str] = set()
    for item in declared:
        name = name_of(item)
        if name in names:
            raise OwnershipConflict(
                kind, name, owner, f"{kind} {name!r} is declared more than once by {owner!r}"
            )
        names.add(name)
        if name not in existing:
            create.append(item)
            continue
        definition, ownership = existing[name]
        legacy = ownership.owner is None and not ownership.recorded
        if legacy and claim is not None and claim(item, definition):
            claimed.append(name)
        elif ownership.owner != owner:
            raise OwnershipConflict.declared_elsewhere(kind, name, owner, ownership.owner)
        if ownership.orphaned:
            adopt.append(name)
        (unchanged if same(item, definition) else update).append(item)
    orphan: list[str] = []
    pruned: list[str] = []
    kept: list[str] = []
    for name in sorted(existing):
        ownership = existing[name][1]
        if name in names or ownership.owner != owner:
            continue
        if prune:
            pruned.append(name)
            continue
        if not ownership.orphaned:
            orphan.append(name)
        kept.append(name)
    return DeclarePlan(
        kind, owner, tuple(create), tuple(update), tuple(unchanged), tuple(adopt),
        tuple(orphan), tuple(pruned), tuple(kept), tuple(claimed),
    )  # fmt: skip


@dataclass(frozen=True)
class Orphan:
    """An orphaned object and what it still holds: ``pins`` maps each of its checkpoints to
    the seq it holds change-log retention at; ``delete`` says how to remove it."""

    kind: str
    name: str
    owner: str
    pins: Mapping[str, int] = field(default_factory=dict)
    delete: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "owner": self.owner,
            "pins": dict(self.pins),
            "oldest_pinned_seq": min(self.pins.values(), default=None),
        }

    def describe(self) -> str:
        if self.pins:
            held = ", ".join(f"{cp} at seq {seq}" for cp, seq in sorted(self.pins.items()))
            pins = f"it still pins change-log retention with checkpoint(s) {held}"
        else:
            pins = "it pins no change-log retention"
        how = f"{self.delete}, " if self.delete else ""
        note = f"; {self.note}" if self.note else ""
        return (
            f"{self.kind} {self.name!r} is orphaned: {self.owner!r} no longer declares it, so it "
            f"is stopped and kept; {pins}{note}. Remove it with {how}or prune: true in the file"
        )


def warn_about_orphans(orphans: Iterable[Orphan], logger: logging.Logger) -> None:
    """One warning line per orphan, saying what it pins and how to remove it."""
    for orphan in orphans:
        logger.warning("%s", orphan.describe())
