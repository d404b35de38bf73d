"""The lean Redis command connection against a real redis-server: replies,
error replies, pipelining, fail-fast while Redis is away, reconnection,
AUTH, and the reply timeout (with a socket that never answers)."""

import os
import socket

import pytest
import pytest_twisted
import txredisapi
from inproc import SpawnedRedis, until
from twisted.internet import defer, endpoints, reactor, task

from faktory.errors import StorageUnavailable
from faktory.redisconn import RedisClient


def client_for(path: str, **kw) -> RedisClient:
    return RedisClient(endpoints.UNIXClientEndpoint(reactor, path), reactor, **kw)


@pytest_twisted.ensureDeferred
async def test_replies_errors_and_pipelining(redis):
    c = client_for(redis.process.socket)
    await c.start()
    assert c.connected
    assert await c.execute_command("SET", "rc:k", "v") == b"OK"
    assert await c.execute_command("GET", "rc:k") == b"v"
    assert await c.execute_command("GET", "rc:missing") is None
    assert await c.execute_command("INCRBY", "rc:n", 5) == 5
    assert await c.execute_command("ZADD", "rc:z", 1.5, "m") == 1
    assert await c.execute_command("ZSCORE", "rc:z", "m") == b"1.5"
    with pytest.raises(txredisapi.ResponseError, match="NOSCRIPT"):
        await c.execute_command("EVALSHA", "0" * 40, 0)
    # Many commands in flight at once come back in order.
    replies = await defer.gatherResults([c.execute_command("ECHO", str(i)) for i in range(500)])
    assert replies == [str(i).encode() for i in range(500)]
    await c.disconnect()
    assert not c.connected
    with pytest.raises(StorageUnavailable):
        await c.execute_command("PING")


@pytest_twisted.ensureDeferred
async def test_fails_fast_while_redis_is_away_and_reconnects():
    r = await SpawnedRedis().start()
    c = client_for(r.process.socket, retry=(0.05, 0.2))
    await c.start()
    assert await c.execute_command("PING") == b"PONG"
    await defer.maybeDeferred(r.process.stopService)
    await until(lambda: not c.connected, what="the client to notice Redis left")
    with pytest.raises(StorageUnavailable, match="not connected"):
        await c.execute_command("PING")
    r.process.startService()
    await r.process.ready
    await until(lambda: c.connected, timeout=10, what="reconnection")
    assert await c.execute_command("PING") == b"PONG"
    await c.disconnect()
    await r.stop()


@pytest_twisted.ensureDeferred
async def test_auth_is_sent_on_connect(redis):
    admin = client_for(redis.process.socket)
    await admin.start()
    await admin.execute_command("CONFIG", "SET", "requirepass", "s3cret")
    try:
        c = client_for(redis.process.socket, password="s3cret")
        await c.start()
        assert await c.execute_command("PING") == b"PONG"
        await c.disconnect()
    finally:
        await admin.execute_command("AUTH", "s3cret")
        await admin.execute_command("CONFIG", "SET", "requirepass", "")
        await admin.disconnect()


@pytest_twisted.ensureDeferred
async def test_unanswered_command_times_out_and_drops_the_connection(tmp_path):
    # A listener that accepts and never answers: a hung Redis.
    path = os.path.join("/tmp", f"fkrc-{os.getpid()}.sock")
    mute = socket.socket(socket.AF_UNIX)
    mute.bind(path)
    mute.listen(5)
    try:
        clock = task.Clock()
        c = RedisClient(endpoints.UNIXClientEndpoint(reactor, path), reactor, timeout=2)
        c.clock = clock  # the watchdog's notion of time only
        c._watchdog.clock = clock
        await c.start()
        d = c.execute_command("PING")
        clock.advance(1)
        assert not d.called
        clock.advance(2)
        with pytest.raises(StorageUnavailable, match="no reply"):
            await d
        assert not c.connected
        await until(lambda: c.connected, what="reconnection to the mute socket")
        await c.disconnect()
    finally:
        mute.close()
        os.unlink(path)


class _Client:
    """What RedisProtocol needs of its RedisClient, on a fake clock."""

    def __init__(self) -> None:
        self.reactor = self.clock = task.Clock()
        self.password = None
        self.db = 0
        self.ready = []

    def _ready(self, proto) -> None:
        self.ready.append(proto)

    def _lost(self, proto) -> None:
        pass


def test_commands_of_one_reactor_turn_go_out_in_one_write_and_replies_match_in_order():
    from twisted.internet.testing import StringTransport

    from faktory.redisconn import RedisProtocol

    client = _Client()
    proto = RedisProtocol(client)
    transport = StringTransport()
    proto.makeConnection(transport)
    assert client.ready == [proto]
    writes = []
    transport.write = writes.append  # count the writes
    a = proto.execute_command("SET", "k", "v")
    b = proto.execute_command("INCRBY", "n", 2)
    c = proto.execute_command("EVALSHA", "0" * 40, 0)
    d = proto.execute_command("GET", "k")
    assert writes == []  # nothing until the end of the turn
    client.reactor.advance(0)
    assert len(writes) == 1
    assert writes[0].count(b"*") == 4 and b"INCRBY" in writes[0]
    proto.dataReceived(b"+OK\r\n:2\r\n-NOSCRIPT No matching script\r\n$1\r")
    assert a.result == b"OK" and b.result == 2
    assert not d.called  # its reply is not complete yet
    with pytest.raises(txredisapi.ResponseError, match="NOSCRIPT"):
        c.result.raiseException()
    c.addErrback(lambda f: None)
    proto.dataReceived(b"\nv\r\n")
    assert d.result == b"v"
    # A Redis still loading its data is "unavailable", like no connection.
    e = proto.execute_command("GET", "k")
    client.reactor.advance(0)
    proto.dataReceived(b"-LOADING Redis is loading the dataset in memory\r\n")
    assert e.result.check(StorageUnavailable)
    e.addErrback(lambda f: None)
    # Commands in flight when the connection drops fail the same way.
    f = proto.execute_command("GET", "k")
    proto.connectionLost(Exception("gone"))
    assert f.result.check(StorageUnavailable)
    f.addErrback(lambda f: None)
    assert not client.reactor.getDelayedCalls()  # the pending flush was cancelled


def test_a_reply_nobody_waits_for_drops_the_connection():
    from twisted.internet.testing import StringTransport

    from faktory.redisconn import RedisProtocol

    proto = RedisProtocol(_Client())
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(b"+OK\r\n")  # out of step: later replies would be misread
    assert transport.disconnecting


def _wait_calls(info: bytes) -> int:
    for line in info.decode().splitlines():
        if line.startswith("cmdstat_wait:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


@pytest_twisted.ensureDeferred
async def test_answers_held_in_one_turn_share_one_wait(redis):
    """``replicated``: every answer held in one reactor turn waits on ONE WAIT;
    a WAIT short of the replicas fails them (not acknowledged); with no
    replica connected nothing is held and no WAIT is sent."""
    c = client_for(redis.process.socket)
    await c.start()
    before = _wait_calls(await c.execute_command("INFO", "commandstats"))
    assert c.replicated("x") == "x"  # no replica connected: answered as is
    # Pretend one replica is connected: this standalone Redis confirms none.
    c.wait_replicas, c.replicas, c.wait_timeout_ms = 1, 1, 20
    held = [c.replicated(i) for i in range(25)]
    results = await defer.DeferredList(held, consumeErrors=True)
    assert all(not ok and r.check(StorageUnavailable) for ok, r in results)
    assert "did not confirm the write within 20 ms" in str(results[0][1].value)
    held = [c.replicated(i) for i in range(5)]  # a later turn: its own WAIT
    await defer.DeferredList(held, consumeErrors=True)
    after = _wait_calls(await c.execute_command("INFO", "commandstats"))
    assert after - before == 2
    assert c.replication_shortfalls == 2
    await c.disconnect()
