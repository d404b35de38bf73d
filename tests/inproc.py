"""In-process helpers for tests that drive server parts on the test's own
reactor (pytest-twisted) against a real redis-server spawned by
``faktory.redisproc``."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable

from twisted.internet import defer, reactor, task

from faktory.pro import builtin_plugins
from faktory.redisproc import RedisProcess
from faktory.server import FaktoryServer, Settings
from helpers import short_tmpdir


class SpawnedRedis:
    """A real redis-server child on a unix socket in a short temp dir."""

    def __init__(self) -> None:
        self.data_dir = short_tmpdir("fkr")
        self.process = RedisProcess(self.data_dir, reactor, fsync="no")
        self.url = "unix://" + self.process.socket

    async def start(self) -> SpawnedRedis:
        self.process.startService()
        await self.process.ready
        return self

    async def stop(self) -> None:
        await defer.maybeDeferred(self.process.stopService)
        shutil.rmtree(self.data_dir, ignore_errors=True)


async def start_server(redis_url: str, **settings) -> FaktoryServer:
    """A FaktoryServer on this reactor: work protocol on a free loopback port,
    no web UI, its own key prefix on ``redis_url`` (``settings`` override)."""
    s = {
        "bind": "tcp:0:interface=127.0.0.1",
        "web": None,
        "redis_url": redis_url,
        "prefix": f"t{uuid.uuid4().hex[:8]}:",
        **settings,
    }
    server = FaktoryServer(Settings(**s), reactor, builtin_plugins)
    server.startService()
    await server.ready
    return server


async def until(cond: Callable[[], object], timeout: float = 5.0, what: str = "condition"):
    """Let the real reactor run until ``cond()`` is true (Redis replies are real I/O)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await task.deferLater(reactor, 0.002, lambda: None)


async def until_true(check: Callable[[], object], timeout: float = 5.0, what: str = "condition"):
    """Like ``until`` for a check that returns a Deferred or coroutine (a Redis query)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await defer.ensureDeferred(_awaitable(check()))
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await task.deferLater(reactor, 0.005, lambda: None)


async def _awaitable(value):
    if isinstance(value, defer.Deferred) or hasattr(value, "__await__"):
        return await value
    return value
