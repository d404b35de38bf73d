"""The Redis gateway through real sockets: the ``redis`` package reads the
server's keys after AUTH, wrong or missing passwords are refused, and a real
redis-server replica follows the internal Redis through it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from faktory.redisproc import find_redis_server
from helpers import ServerProcess, config_dir, free_port, short_tmpdir

PASSWORD = "gw-secret"


@pytest.fixture(scope="module")
def srv():
    gw = free_port()
    s = ServerProcess(
        args=["--redis-gateway", f"tcp:{gw}:interface=127.0.0.1"],
        env={"FAKTORY_PASSWORD": PASSWORD},
        web=False,
    ).start()
    s.gateway_port = gw
    yield s
    s.discard()


def connect(srv, **kw) -> redis.Redis:
    # No retries: a refusal must show at once, not after redis-py's backoff.
    return redis.Redis(port=srv.gateway_port, retry=Retry(NoBackoff(), 0), socket_timeout=10, **kw)


def test_read_a_queue_through_the_gateway(srv):
    c = srv.client(password=PASSWORD)
    jid, reply = c.push(queue="gwq", args=["via gateway"])
    assert reply == "OK"
    r = connect(srv, password=PASSWORD)
    jobs = r.lrange("fk:q:gwq:5", 0, -1)
    assert len(jobs) == 1 and jid.encode() in jobs[0]
    assert r.sismember("fk:queues", "gwq")
    # Also with the Redis 6 form AUTH default <password>.
    r2 = connect(srv, username="default", password=PASSWORD)
    assert r2.llen("fk:q:gwq:5") == 1
    # And RESP3 clients, which authenticate inside HELLO 3 AUTH default <password>.
    r3 = connect(srv, password=PASSWORD, protocol=3)
    assert r3.llen("fk:q:gwq:5") == 1
    for conn in (r, r2, r3):
        conn.close()


def test_wrong_or_missing_password_is_refused(srv):
    with pytest.raises(redis.AuthenticationError):
        connect(srv, password="wrong").get("fk:queues")
    with pytest.raises(redis.AuthenticationError):
        connect(srv).get("fk:queues")
    # Raw: commands before AUTH get NOAUTH, a wrong password closes the connection.
    with socket.create_connection(("127.0.0.1", srv.gateway_port), timeout=10) as s:
        f = s.makefile("rwb")
        f.write(b"KEYS *\r\n")
        f.flush()
        assert f.readline() == b"-NOAUTH Authentication required.\r\n"
        f.write(b"*2\r\n$4\r\nAUTH\r\n$5\r\nwrong\r\n")
        f.flush()
        assert f.readline().startswith(b"-WRONGPASS")
        assert f.readline() == b""  # closed


def test_pipelined_auth_and_commands(srv):
    with socket.create_connection(("127.0.0.1", srv.gateway_port), timeout=10) as s:
        s.sendall(f"AUTH {PASSWORD}\r\nPING\r\nECHO hi\r\n".encode())
        f = s.makefile("rb")
        assert [f.readline() for _ in range(4)] == [b"+OK\r\n", b"+PONG\r\n", b"$2\r\n", b"hi\r\n"]


def test_replica_follows_through_the_gateway(srv):
    port = free_port()
    d = short_tmpdir("fkr")
    replica = subprocess.Popen(
        [
            find_redis_server(),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--replicaof", "127.0.0.1", str(srv.gateway_port),
            "--masterauth", PASSWORD,
            "--save", "",
            "--appendonly", "no",
            "--dir", d,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        c = srv.client(password=PASSWORD)
        jid, _ = c.push(queue="replicated", args=[1])
        r = redis.Redis(port=port, retry=Retry(NoBackoff(), 0))
        deadline = time.monotonic() + 20
        while True:
            try:
                jobs = r.lrange("fk:q:replicated:5", 0, -1)
            except redis.ConnectionError:
                jobs = []
            if jobs:
                break
            assert time.monotonic() < deadline, "the replica never caught up"
            time.sleep(0.1)
        assert jid.encode() in jobs[0]
        # And it keeps following: a later PUSH shows up too.
        jid2, _ = c.push(queue="replicated", args=[2])
        deadline = time.monotonic() + 10
        while r.llen("fk:q:replicated:5") < 2:
            assert time.monotonic() < deadline, "replication stopped"
            time.sleep(0.05)
        assert r.info("replication")["master_link_status"] == "up"
    finally:
        replica.terminate()
        replica.wait(10)
        shutil.rmtree(d, ignore_errors=True)


def test_gateway_from_config_needs_a_password():
    conf = config_dir(f'[redis]\ngateway = "127.0.0.1:{free_port()}"\n')
    s = ServerProcess(args=["--config-dir", conf], web=False).start(wait=False)
    try:
        s.proc.wait(30)  # refuses to expose Redis unprotected
        assert "the Redis gateway needs a password" in s.log()
    finally:
        s.discard()
        shutil.rmtree(conf, ignore_errors=True)


def test_gateway_from_config_with_its_own_password():
    gw = free_port()
    conf = config_dir(f'[redis]\ngateway = "127.0.0.1:{gw}"\npassword = "own"\n')
    s = ServerProcess(args=["--config-dir", conf], web=False).start()
    try:
        c = s.client()
        c.push(queue="own", args=[])
        r = redis.Redis(port=gw, password="own", retry=Retry(NoBackoff(), 0))
        assert r.llen("fk:q:own:5") == 1
        r.close()
    finally:
        s.discard()
        shutil.rmtree(conf, ignore_errors=True)
