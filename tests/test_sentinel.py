"""Sentinel URLs end to end: Redis and Sentinel passwords, a db number,
``--workers`` children, a primary demoted while alive (READONLY,
``+switch-master``), a reservation carried across, TLS, and clear start-up
errors.  Real Redis and Sentinel processes (Debian's Redis 7) on loopback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
from sentinelset import REDIS, SERVICE, RedisHA, redis_call

from faktory import replication
from faktory.sentinel import parse_url
from helpers import ServerProcess, config_dir, free_port

pytestmark = pytest.mark.skipif(
    # CI installs it: there a missing binary fails the test instead of skipping it
    not os.access(REDIS, os.X_OK) and not os.environ.get("CI"),
    reason="needs Debian's redis-server (scripts/test installs it)",
)


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


def test_a_bad_sentinel_url_stops_startup_with_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "twisted", "faktory", "--web", "none"]
        + ["--bind", f"tcp:{free_port()}:interface=127.0.0.1"]
        + ["--redis-url", "redis+sentinel://:secret@127.0.0.1:1/svc/zero"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/tmp",
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "the db number must be an integer" in out, out
    assert "Traceback" not in out and "secret" not in out


@pytest.mark.parametrize(
    "url,message",
    [
        ("redis+sentinel://127.0.0.1:26379", "give the service name after the hosts"),
        ("redis+sentinel://127.0.0.1:x/svc", "'127.0.0.1:x' is not host:port"),
        ("redis+sentinel://:secret@127.0.0.1:1/svc/zero", "the db number must be an integer"),
    ],
)
def test_bad_sentinel_urls_are_named(url, message):
    with pytest.raises(ValueError, match=re.escape(message)) as e:
        replication.check(url, {})
    assert "secret" not in str(e.value)


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
