"""User callables: "must this be awaited?" and "what does this import path name?"."""

from __future__ import annotations

import functools
import os
from collections import OrderedDict
from typing import Any

import pytest

from changestream import is_async_callable, resolve_import_path


async def coroutine_function(x: Any) -> None:
    pass


def plain_function(x: Any) -> None:
    pass


class AsyncCall:
    async def __call__(self, x: Any) -> None:
        pass

    async def method(self, x: Any) -> None:
        pass


class PlainCall:
    def __call__(self, x: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (coroutine_function, True),
        (AsyncCall(), True),  # inspect.iscoroutinefunction says False for this one
        (AsyncCall().method, True),
        (functools.partial(coroutine_function), True),
        (functools.partial(AsyncCall()), True),
        (functools.partial(functools.partial(coroutine_function)), True),
        (plain_function, False),
        (PlainCall(), False),
        (functools.partial(plain_function), False),
        (AsyncCall, False),  # calling the class makes an instance, not a coroutine
        (lambda x: coroutine_function(x), False),  # returns one, but is not declared async
        (None, False),
    ],
)
def test_is_async_callable(fn: Any, expected: bool) -> None:
    assert is_async_callable(fn) is expected


def test_resolve_import_path() -> None:
    assert resolve_import_path("os.path:join") is os.path.join
    assert resolve_import_path("collections:OrderedDict.fromkeys") == OrderedDict.fromkeys


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("os.path", "must be an import path such as 'package.module:function'"),
        ("os.path:join()", "must be an import path"),
        (None, "must be an import path"),
        ("no_such_module_here:f", "cannot import module 'no_such_module_here'"),
        ("os.path:nothing", "'os.path' has no attribute 'nothing'"),
        ("os:sep", "is a str, not a function"),
    ],
)
def test_resolve_import_path_says_what_is_wrong(path: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_import_path(path)
