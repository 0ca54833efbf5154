"""``is_async_callable``: the one test of "must this be awaited?" every package uses."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from changestream import is_async_callable


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
