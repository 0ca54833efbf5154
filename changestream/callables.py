"""User callables, handled once for every package that runs them (processors here, handlers,
sinks, pipeline builders and, later, conflict resolvers): whether one must be awaited, and the
object an import path such as ``package.module:function`` names."""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from typing import Any

__all__ = ["is_async_callable", "resolve_import_path"]

_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def is_async_callable(fn: object) -> bool:
    """Whether calling ``fn`` returns a coroutine to await: an ``async def`` function or method,
    an object whose ``__call__`` is ``async def``, or a ``functools.partial`` of either.

    Code that runs plain callables in a thread must ask this, not
    ``inspect.iscoroutinefunction``, which says False for such an object: run in a thread, its
    coroutine would be created, never awaited, and the work silently skipped.
    """
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or (
        callable(fn)
        and not inspect.isclass(fn)
        and inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004
    )


def resolve_import_path(path: str) -> Any:
    """The callable at ``package.module:attribute`` (the attribute may be dotted). Raises
    ``ValueError`` saying what is wrong, for the caller to report in its own terms (a field
    error of the settings, ``InvalidHandler``...)."""
    if not isinstance(path, str) or not _IMPORT_PATH.match(path):
        raise ValueError(f"{path!r} must be an import path such as 'package.module:function'")
    module_name, _, attribute = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ValueError(
            f"cannot import module {module_name!r} of {path!r} ({type(exc).__name__}: {exc}); "
            "check the spelling and that the module is installed or on PYTHONPATH"
        ) from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(
                f"{path!r} does not resolve: {module_name!r} has no attribute {attribute!r}; "
                "check the function name"
            ) from None
    if not callable(target):
        raise ValueError(f"{path!r} is a {type(target).__name__}, not a function")
    return target
