"""The server supervises its Redis child: ``kill -9`` of redis-server is logged
loudly, Redis is restarted on the same data (AOF), commands during the outage
get an ``-ERR`` at once instead of hanging, and serving resumes.  A Redis that
keeps dying stops the server rather than leaving it up without storage."""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import pytest
from rawredis import RawRedis

from helpers import ReplyError, ServerProcess


@pytest.fixture
def server():
    srv = ServerProcess(web=False).start()
    yield srv
    srv.discard()


def redis_pid(srv: ServerProcess, timeout: float = 10.0, other_than: int | None = None) -> int:
    """The pid of the redis-server answering on the server's socket."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = RawRedis(os.path.join(srv.data_dir, "redis.sock"), timeout=1)
            try:
                pid = r.pid()
            finally:
                r.close()
            if pid != other_than:
                return pid
        except (OSError, ConnectionError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError("Redis did not come back")
        time.sleep(0.05)


def timed_call(client, line):
    started = time.monotonic()
    reply = client.call(line)
    return reply, time.monotonic() - started


def test_kill_9_redis_is_survived(server):
    c = server.client()
    jids = [c.push(queue="keep")[0] for _ in range(20)]
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    assert c.push(at=at)[1] == "OK"
    old = redis_pid(server)

    os.kill(old, signal.SIGKILL)
    replies = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        reply, took = timed_call(
            c,
            "PUSH "
            + json.dumps(
                {"jid": f"after-{len(replies):04d}", "jobtype": "T", "args": [], "queue": "after"}
            ),
        )
        assert took < 3, f"a command hung {took:.1f} s during the outage"
        replies.append(reply)
        if reply == "OK":
            break
        time.sleep(0.02)
    errors, last = replies[:-1], replies[-1]
    assert last == "OK", replies
    assert errors, "no command saw the outage"
    for e in errors:
        assert isinstance(e, ReplyError) and e.startswith("ERR Redis is unavailable"), e

    new = redis_pid(server)
    assert new != old
    # The supervisor's own readiness probe may log "back" a moment after the
    # command connection has already reconnected.
    deadline = time.monotonic() + 10
    while "Redis is back" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = server.log()
    assert "Redis exited unexpectedly" in log and "Redis is back" in log
    # Everything stored before the crash is still there; the server serves on.
    info = c.info()["faktory"]
    assert info["queues"]["keep"] == 20 and info["queues"]["after"] == 1
    assert info["sets"]["scheduled"] == 1
    assert [c.fetch("keep")["jid"] for _ in range(20)] == jids
    other = server.client()
    assert other.push()[1] == "OK"
    assert other.fetch()["jid"]
    # The connection that saw the errors is still usable too.
    assert c.call('ACK {"jid":"' + jids[0] + '"}') == "OK"


def test_redis_that_keeps_dying_stops_the_server(server):
    pid = redis_pid(server)
    for _ in range(5):  # tolerated: restarted each time
        os.kill(pid, signal.SIGKILL)
        pid = redis_pid(server, other_than=pid)
    os.kill(pid, signal.SIGKILL)  # the sixth death within a minute
    try:
        server.proc.wait(15)
    except Exception:  # noqa: BLE001
        pytest.fail("the server kept running without a working Redis")
    assert "Redis died 6 times" in server.log()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
