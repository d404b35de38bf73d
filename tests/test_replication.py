"""Writes answered only once the replica has them (Redis WAIT, batched per
reactor turn), a replica that does not confirm, a primary left alone, and
clear start-up errors.  Real Redis processes (Debian's Redis 7) on loopback;
Sentinel URLs are in test_sentinel.py."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from sentinelset import REDIS, RedisHA

from faktory import replication
from helpers import Client, ReplyError, ServerProcess, config_dir, free_port

pytestmark = pytest.mark.skipif(
    # CI installs it: there a missing binary fails the test instead of skipping it
    not os.access(REDIS, os.X_OK) and not os.environ.get("CI"),
    reason="needs Debian's redis-server (scripts/test installs it)",
)


@pytest.fixture
def pair():
    """A primary and one replica, no Sentinel."""
    ha = RedisHA(sentinels=0).start()
    yield ha
    ha.stop()


def serve(url: str, toml: str = "") -> ServerProcess:
    return ServerProcess(web=False, args=["--config-dir", config_dir(toml), "--redis-url", url])


def send_pushes(c: Client, n: int, queue: str, tag: int = 0) -> None:
    """``n`` PUSHes sent in one write (pipelined)."""
    lines = [
        "PUSH "
        + json.dumps(
            {"jid": f"{queue}-{tag:04d}-{i:06d}", "jobtype": "T", "args": [], "queue": queue}
        )
        for i in range(n)
    ]
    c.f.write(("\r\n".join(lines) + "\r\n").encode())
    c.f.flush()


def pushes(c: Client, n: int, queue: str) -> list:
    """``n`` pipelined PUSHes and their replies."""
    send_pushes(c, n, queue)
    return [c.read_reply() for _ in range(n)]


def test_writes_are_answered_once_the_replica_has_them_with_one_wait_per_turn(pair):
    srv = serve(f"redis://127.0.0.1:{pair.ports['primary']}", "[redis]\nwait_replicas = 1\n")
    srv.start()
    try:
        # 30 connections with 10 pushes each in flight: a connection's next
        # command waits for its answer, so batching is across connections.
        clients = [srv.client() for _ in range(30)]
        for n, client in enumerate(clients):
            send_pushes(client, 10, "w", n)
        assert [client.read_reply() for client in clients for _ in range(10)] == ["OK"] * 300
        # Answered means the replica has every one of them already.
        assert pair.call("replica", "LLEN", "fk:q:w:5") == 300
        waits = pair.command_calls("primary", "wait")
        assert 1 <= waits < 150, waits  # batched: far fewer WAITs than writes
        c = srv.client(wid="w1")
        job = c.fetch("w")
        assert c.call(json.dumps({"jid": job["jid"]}).join(["ACK ", ""])) == "OK"
        assert pair.call("replica", "HLEN", "fk:working") == 0  # the ACK is there too
        assert pair.call("replica", "GET", "fk:stat:processed") == "1"
        spec = {"description": "ha", "success": {"jobtype": "Done", "args": [], "queue": "w"}}
        bid = c.call("BATCH NEW " + json.dumps(spec))
        assert bid.startswith("b-")
        assert pair.call("replica", "EXISTS", f"fk:batch:{bid}") == 1  # BATCH waited too
    finally:
        srv.stop()


def test_a_replica_that_does_not_confirm_gets_no_ok_and_the_job_is_kept(pair):
    toml = "[redis]\nwait_replicas = 1\nwait_timeout = 300\n"
    srv = serve(f"redis://127.0.0.1:{pair.ports['primary']}", toml)
    srv.start()
    try:
        c = srv.client()
        assert c.push(queue="s")[1] == "OK"
        pair.signal("replica", signal.SIGSTOP)  # connected, but confirms nothing
        try:
            t0 = time.monotonic()
            jid, reply = c.push(queue="s")
            took = time.monotonic() - t0
        finally:
            pair.signal("replica", signal.SIGCONT)
        assert isinstance(reply, ReplyError), reply
        assert "Redis is unavailable: the replicas did not confirm the write" in reply
        assert 0.25 < took < 5, took
        assert "Redis WAIT timed out: 0 of 1 replica(s)" in srv.log()
        # Not lost either: the primary has it (the client's retry makes it at-least-once).
        pair.wait(lambda: c.push(queue="s")[1] == "OK", 10)
        assert pair.call("primary", "LLEN", "fk:q:s:5") == 3
    finally:
        srv.stop()


def test_a_primary_left_alone_goes_on_with_a_warning(pair):
    srv = serve(f"redis://127.0.0.1:{pair.ports['primary']}", "[redis]\nwait_replicas = 1\n")
    srv.start()
    try:
        c = srv.client()
        pair.kill("replica")
        pair.wait(lambda: "No Redis replica connected" in srv.log(), 10)
        t0 = time.monotonic()
        assert c.push(queue="alone")[1] == "OK"
        assert time.monotonic() - t0 < 1.0
    finally:
        srv.stop()


def test_without_wait_replicas_no_wait_is_sent(pair):
    srv = serve(f"redis://127.0.0.1:{pair.ports['primary']}")
    srv.start()
    try:
        assert pushes(srv.client(), 50, "plain") == ["OK"] * 50
        assert pair.command_calls("primary", "wait") == 0
        assert pair.command_calls("primary", "role") == 0
    finally:
        srv.stop()


def test_bad_replication_settings_stop_startup():
    proc = subprocess.run(
        [sys.executable, "-m", "twisted", "faktory", "--web", "none"]
        + ["-c", config_dir("[redis]\nwait_replicas = -1\n")]
        + ["--bind", f"tcp:{free_port()}:interface=127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/tmp",
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "[redis] wait_replicas must be an integer from 0 to 100" in out, out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    "section,message",
    [
        ({"wait_replicas": -1}, "[redis] wait_replicas must be an integer from 0 to 100"),
        ({"wait_timeout": "long"}, "[redis] wait_timeout must be an integer"),
        ({"wait_replicas": 1, "wait_timeout": 0}, "wait_timeout must be above 0"),
        ({"wait_replicas": True}, "[redis] wait_replicas must be an integer"),
        ({"sentinel_password": 5}, "[redis] sentinel_password must be a string"),
    ],
)
def test_bad_replication_settings_are_named(section, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        replication.check("", section)


def test_a_primary_refusing_writes_without_replicas_answers_unavailable(pair):
    """``min-replicas-to-write`` (the runbook's advice): Redis refuses writes
    once the replica is gone; clients get the retryable error, no internal error."""
    pair.call("primary", "CONFIG", "SET", "min-replicas-to-write", "1")
    srv = serve(f"redis://127.0.0.1:{pair.ports['primary']}")
    srv.start()
    try:
        c = srv.client()
        assert c.push(queue="nr")[1] == "OK"
        pair.kill("replica")
        pair.wait(lambda: "connected_slaves:0" in pair.call("primary", "INFO", "replication"))
        reply = c.push(queue="nr")[1]
        assert reply.startswith("ERR Redis is unavailable: NOREPLICAS"), reply
    finally:
        srv.stop()
