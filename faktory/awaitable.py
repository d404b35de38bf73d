"""Hooks (middleware, plugin callbacks, tasks, web pages) may answer with a
plain value, a Deferred or a coroutine: one place turns any of them into a
value to use."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from twisted.internet import defer


async def resolve(value: Any) -> Any:
    """``value``, awaited first when it is a Deferred or any other awaitable."""
    if isinstance(value, defer.Deferred) or inspect.isawaitable(value):
        return await value
    return value


async def call(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` resolved; an exception it raises at once comes out the same
    way as a failed Deferred (``defer.ensureDeferred(call(...))`` never raises)."""
    return await resolve(fn(*args))
