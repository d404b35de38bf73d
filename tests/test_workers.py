"""Worker registry with a fake clock against a real Redis: heartbeats, expiry
after 60 s of silence (connections closed), several connections per wid."""

from __future__ import annotations

import time
import uuid

import pytest_twisted
from twisted.internet import reactor, task

from faktory.redisconn import connect
from faktory.store import Store
from faktory.workers import HEARTBEAT_TTL, Workers


class FakeTransport:
    def __init__(self) -> None:
        self.closed = False

    def loseConnection(self) -> None:
        self.closed = True


class FakeConn:
    def __init__(self) -> None:
        self.transport = FakeTransport()


@pytest_twisted.ensureDeferred
async def test_silent_worker_expires_and_its_connections_close(redis):
    pool, sub = await connect(redis.url, reactor, lambda m: None, "fkw:")
    try:
        clock = task.Clock()
        clock.advance(time.time())
        workers = Workers(Store(pool, "fkw:" + uuid.uuid4().hex[:6] + ":"), clock)
        hello = {"hostname": "h1", "pid": 42, "labels": ["blue"], "v": 2}
        a, b, other = FakeConn(), FakeConn(), FakeConn()
        await workers.connect("w-old", hello, a)
        await workers.connect("w-old", hello, b)  # one process, two connections
        await workers.connect("w-live", hello, other)
        records = {r["wid"]: r for r in await workers.store.workers()}
        assert records["w-old"]["conns"] == "2"

        clock.advance(HEARTBEAT_TTL - 5)
        assert await workers.beat("w-live", 1234) == "running"
        assert await workers.reap() == 0  # nobody silent for a minute yet

        clock.advance(10)  # w-old: 65 s without BEAT; w-live beat 10 s ago
        assert await workers.reap() == 1
        assert a.transport.closed and b.transport.closed and not other.transport.closed
        assert await workers.beat("w-old", None) is None  # BEAT now: unknown worker
        assert [r["wid"] for r in await workers.store.workers()] == ["w-live"]

        # The record also goes as soon as the last connection closes.
        await workers.disconnect("w-live", other)
        assert await workers.store.workers() == []
    finally:
        sub.stopService()
        pool.disconnect()
