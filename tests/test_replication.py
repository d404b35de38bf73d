"""Writes answered only once the replica has them (Redis WAIT, batched per
reactor turn), and Sentinel URLs: passwords, db number, a primary demoted
while alive, and clear start-up errors.  Real Redis processes (Debian's
Redis 7) on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sentinelset import REDIS, RedisHA

from faktory.sentinel import parse_url
from helpers import Client, ReplyError, ServerProcess, config_dir, free_port

pytestmark = pytest.mark.skipif(
    not os.access(REDIS, os.X_OK), reason="needs Debian's redis-server (scripts/test installs it)"
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


def test_sentinel_with_passwords_and_a_db_follows_a_demoted_primary():
    ha = RedisHA(password="redis-pw", sentinel_password="sentinel-pw").start()
    url = ha.url.replace("/fkha", "/fkha/3")
    srv = ServerProcess(
        web=False,
        args=["--config-dir", config_dir('[redis]\nsentinel_password = "sentinel-pw"\n')]
        + ["--redis-url", url, "--workers", "2"],
    )
    srv.start()
    try:
        # The --workers child got the URL, but not on its command line.
        ha.wait(lambda: "Started server worker 1 (pid" in srv.log(), 10)
        pid = int(srv.log().split("Started server worker 1 (pid ")[1].split(")")[0])
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert b"redis-pw" not in f.read()
        ha.wait(
            lambda: (
                "worker 1: " in srv.log() and "server ready" in srv.log().split("worker 1: ", 1)[1]
            ),
            20,
        )
        c = srv.client()
        assert c.push(queue="d")[1] == "OK"
        assert ha.call("primary", "LLEN", "fk:q:d:5", db=3) == 1
        assert ha.call("primary", "LLEN", "fk:q:d:5") == 0  # not db 0
        assert "redis-pw" not in srv.log() and "sentinel-pw" not in srv.log()
        # A job reserved before the switch, whose worker never ACKs.
        worker = srv.client(wid="gone-worker")
        rjid, _ = c.push(queue="r")
        assert worker.fetch("r")["jid"] == rjid
        # A failover with the old primary alive: it becomes a replica (READONLY).
        from sentinelset import SERVICE, redis_call

        redis_call(ha.sentinel_ports[0], "SENTINEL", "FAILOVER", SERVICE, password="sentinel-pw")
        ha.wait(lambda: ha.primary_port() == ha.ports["replica"], 20)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if c.push(queue="d")[1] == "OK" and ha.call("replica", "LLEN", "fk:q:d:5", db=3) >= 2:
                break
            time.sleep(0.1)
        assert ha.call("replica", "LLEN", "fk:q:d:5", db=3) >= 2  # the new primary took it
        assert "failover of fkha" in srv.log()
        # The reservation came along, and comes back through its expiry (as a
        # retry, like real Faktory) on the new primary.
        assert ha.call("replica", "HEXISTS", "fk:working", rjid, db=3) == 1
        ha.call("replica", "ZADD", "fk:working:exp", "XX", "0", rjid, db=3)  # time passes
        ha.wait(lambda: ha.call("replica", "ZCARD", "fk:retries", db=3) == 1, 15)
        retry = json.loads(ha.call("replica", "ZRANGE", "fk:retries", "0", "0", db=3)[0])
        assert retry["jid"] == rjid and retry["failure"]["errtype"] == "ReservationExpired"
    finally:
        srv.stop()
        ha.stop()


@pytest.mark.parametrize(
    "url,message",
    [
        ("redis+sentinel://127.0.0.1:26379", "give the service name after the hosts"),
        ("redis+sentinel://127.0.0.1:x/svc", "'127.0.0.1:x' is not host:port"),
        ("redis+sentinel://:secret@127.0.0.1:1/svc/zero", "the db number must be an integer"),
    ],
)
def test_a_bad_sentinel_url_stops_startup_with_one_line(url, message):
    proc = subprocess.run(
        [sys.executable, "-m", "twisted", "faktory", "--web", "none"]
        + ["--bind", f"tcp:{free_port()}:interface=127.0.0.1", "--redis-url", url],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/tmp",
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and message in out, out
    assert "Traceback" not in out and "secret" not in out


@pytest.mark.parametrize(
    "toml,message",
    [
        ("[redis]\nwait_replicas = -1\n", "[redis] wait_replicas must be an integer from 0 to 100"),
        ("[redis]\nwait_timeout = 'long'\n", "[redis] wait_timeout must be an integer"),
        ("[redis]\nwait_replicas = 1\nwait_timeout = 0\n", "wait_timeout must be above 0"),
    ],
)
def test_bad_replication_settings_stop_startup(toml, message):
    proc = subprocess.run(
        [sys.executable, "-m", "twisted", "faktory", "--web", "none", "-c", config_dir(toml)]
        + ["--bind", f"tcp:{free_port()}:interface=127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/tmp",
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and message in out, out
    assert "Traceback" not in out


def test_parse_url_reads_hosts_passwords_service_db_and_tls():
    spec = parse_url("rediss+sentinel://:p%40ss@10.0.0.1:26379,[::1]:26380,s3/mymaster/2")
    assert spec.sentinels == [("10.0.0.1", 26379), ("::1", 26380), ("s3", 26379)]
    assert (spec.service, spec.password, spec.db, spec.tls) == ("mymaster", "p@ss", 2, True)
    plain = parse_url("redis+sentinel://h:1/svc")
    assert (plain.password, plain.db, plain.tls) == (None, 0, False)


def test_rediss_sentinel_speaks_tls_to_the_sentinels_and_redis():
    ha = RedisHA(tls=True).start()
    # The throw-away CA is trusted through OpenSSL's SSL_CERT_FILE.
    srv = ServerProcess(
        web=False,
        args=["--config-dir", config_dir(""), "--redis-url", ha.url],
        env={"SSL_CERT_FILE": ha.ca},
    )
    srv.start()
    try:
        assert ha.url.startswith("rediss+sentinel://")
        c = srv.client()
        assert c.push(queue="tls")[1] == "OK"
        assert ha.call("replica", "LLEN", "fk:q:tls:5") == 1  # WAIT over TLS replication
        assert "Writes are answered once 1 replica(s) have them" in srv.log()
    finally:
        srv.stop()
        ha.stop()


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
