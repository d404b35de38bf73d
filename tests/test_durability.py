"""What an acknowledged PUSH survives, and how the server stops.

* ``kill -9`` of Redis and of the server right after a burst of PUSHes loses
  no acknowledged job, with ``--fsync everysec`` (the default: the AOF is
  written to the kernel before Redis replies, only the fsync is deferred; its
  data dir is on tmpfs, see ``helpers.memory_tmpdir``) and with ``--fsync
  always`` (on the real disk, however busy).
* SIGTERM: the port closes at once, a FETCH already waiting still gets its
  reply, Redis is stopped (it saves) and the process exits; the data is there
  at the next start.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import pytest
from rawredis import RawRedis

from helpers import ServerProcess, memory_tmpdir


def redis_pid(srv: ServerProcess) -> int:
    r = RawRedis(os.path.join(srv.data_dir, "redis.sock"))
    try:
        return r.pid()
    finally:
        r.close()


def pipelined_push(client, jids: list[str], queue: str, batch: int = 200) -> list[str]:
    """PUSH every jid, many lines in flight at once; the jids acknowledged with +OK."""
    acked = []
    for i in range(0, len(jids), batch):
        chunk = jids[i : i + batch]
        client.f.write(
            b"".join(
                b"PUSH "
                + json.dumps({"jid": j, "jobtype": "T", "args": [i], "queue": queue}).encode()
                + b"\r\n"
                for j in chunk
            )
        )
        client.f.flush()
        acked += [j for j in chunk if client.read_reply() == "OK"]
    return acked


def stored_jids(srv: ServerProcess, queue: str) -> list[str]:
    """Every job of ``queue`` as Redis has it, read without the server."""
    r = RawRedis(os.path.join(srv.data_dir, "redis.sock"))
    try:
        jids = []
        for key in r("KEYS", f"fk:q:{queue}:*"):
            jids += [json.loads(m)["jid"] for m in r("LRANGE", key, 0, -1)]
        return jids
    finally:
        r.close()


@pytest.mark.parametrize("fsync", ["everysec", "always"])
def test_acknowledged_pushes_survive_kill_9_of_redis_and_server(fsync):
    data_dir = memory_tmpdir() if fsync == "everysec" else None  # see memory_tmpdir
    srv = ServerProcess(data_dir, web=False, args=["--fsync", fsync]).start()
    try:
        c = srv.client()
        pid = redis_pid(srv)
        jids = [f"{fsync}-{n:05d}" for n in range(3000)]
        acked = pipelined_push(c, jids, "durable")
        assert len(acked) == len(jids)
        # No pause: the last +OK has just arrived.  Kill Redis first so it
        # cannot save on its way out, then the server.
        os.kill(pid, signal.SIGKILL)
        srv.proc.kill()
        srv.stop()
        c.close()
        srv.start()
        assert sorted(stored_jids(srv, "durable")) == sorted(acked)
        assert srv.client().info()["faktory"]["queues"]["durable"] == len(acked)
    finally:
        srv.discard()


def test_sigterm_answers_the_waiting_fetch_then_stops_redis_and_exits():
    srv = ServerProcess(web=False).start()
    try:
        c = srv.client()
        jid, ok = c.push(queue="kept")
        assert ok == "OK"
        redis = redis_pid(srv)
        c.send("FETCH nothing-here")  # waits up to 2 s for work
        time.sleep(0.3)
        started = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        # The listening port closes at once...
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", srv.port), timeout=0.2).close()
            except OSError:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the port still accepts connections after SIGTERM")
        # ...while the FETCH that was already waiting gets its (empty) answer.
        assert c.read_reply() is None
        waited = time.monotonic() - started
        assert waited < 5, f"the FETCH was answered after {waited:.1f} s"
        srv.proc.wait(20)
        assert srv.proc.returncode in (0, -signal.SIGTERM)
        with pytest.raises(ProcessLookupError):
            for _ in range(100):  # Redis is stopped with the server
                os.kill(redis, 0)
                time.sleep(0.05)
        log = srv.log()
        assert "waiting for 1 command(s) in flight" in log
        assert "Traceback" not in log
        srv.stop()
        srv.start()
        assert srv.client().fetch("kept")["jid"] == jid
    finally:
        srv.discard()
