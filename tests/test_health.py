"""Honest health: ``/health`` answers 200 only when Redis answers a PING
within a second, else 503 with the reason (a frozen Redis, SIGSTOP here);
``/health/live`` is the liveness probe.  During a Redis restart every command
gets ``-ERR Redis is unavailable``, never ``internal error``, and the outage
is one log line, not tracebacks."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request

import pytest
from rawredis import RawRedis

from helpers import ReplyError, ServerProcess


@pytest.fixture
def server():
    srv = ServerProcess().start()
    yield srv
    srv.discard()


def redis_pid(srv: ServerProcess) -> int:
    r = RawRedis(os.path.join(srv.data_dir, "redis.sock"), timeout=5)
    try:
        return r.pid()
    finally:
        r.close()


def get(srv: ServerProcess, path: str) -> tuple[int, dict, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.web_port}{path}", timeout=10) as r:
            code, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        code, body = e.code, e.read()
    return code, json.loads(body), time.monotonic() - started


def test_health_is_503_while_redis_is_frozen(server):
    code, doc, _ = get(server, "/health")
    assert code == 200 and doc["status"] == "ok" and doc["redis"]["ok"] is True
    assert doc["redis"]["ping_ms"] < 1000
    pid = redis_pid(server)
    os.kill(pid, signal.SIGSTOP)
    try:
        code, doc, took = get(server, "/health")
        assert code == 503, doc
        assert doc["status"] == "unavailable"
        assert doc["reason"] == "Redis did not answer PING within 1 s"
        assert took < 5
        live, alive, _ = get(server, "/health/live")
        assert live == 200 and alive == {"status": "alive"}
    finally:
        os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 10
    while get(server, "/health")[0] != 200:
        assert time.monotonic() < deadline, "health did not come back"
        time.sleep(0.1)


def test_a_redis_restart_gives_every_command_a_clear_error_and_one_log_line(server):
    c = server.client()
    assert c.push(queue="h")[1] == "OK"
    os.kill(redis_pid(server), signal.SIGKILL)
    replies: dict[str, list] = {"INFO": [], "PUSH": [], "QUEUE": [], "MUTATE": []}
    deadline = time.monotonic() + 15
    back = False
    while time.monotonic() < deadline and not back:
        replies["INFO"].append(c.call("INFO"))
        replies["PUSH"].append(c.push(queue="h")[1])
        replies["QUEUE"].append(c.call("QUEUE PAUSE h"))
        replies["MUTATE"].append(c.call('MUTATE {"cmd":"kill","target":"retries","filter":{}}'))
        back = all(not isinstance(v[-1], ReplyError) for v in replies.values())
        time.sleep(0.01)
    assert back, {k: v[-3:] for k, v in replies.items()}
    errors = [r for v in replies.values() for r in v if isinstance(r, ReplyError)]
    assert errors, "no command saw the outage"
    for e in errors:
        assert e.startswith("ERR Redis is unavailable"), e
    log = server.log()
    assert log.count("Redis exited unexpectedly") == 1
    assert "Traceback" not in log and "Unhandled error" not in log
    assert "internal error" not in log


def test_no_bare_gather_results_in_the_server():
    """``defer.gatherResults`` wraps a StorageUnavailable in FirstError (an
    ``internal error`` for the client, a traceback in the log) and logs the
    other failures as unhandled: the server uses ``errors.gather``."""
    import faktory

    root = os.path.dirname(faktory.__file__)
    offenders = []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(".py") and name != "errors.py":
                with open(path, encoding="utf-8") as f:
                    if "defer.gatherResults(" in f.read():
                        offenders.append(os.path.relpath(path, root))
    assert offenders == []


def test_an_external_redis_outage_is_one_line_and_one_when_back(server):
    from helpers import redis_socket

    b = ServerProcess(web=False, args=["--redis-url", redis_socket(server)]).start()
    try:
        c = b.client()
        os.kill(redis_pid(server), signal.SIGKILL)
        replies = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            replies.append(c.call("INFO"))
            seen_error = any(isinstance(r, ReplyError) for r in replies)
            if seen_error and not isinstance(replies[-1], ReplyError):
                break
            time.sleep(0.02)
        errors = [r for r in replies if isinstance(r, ReplyError)]
        assert errors and all(e.startswith("ERR Redis is unavailable") for e in errors)
        b.wait_for_log("connection to Redis is back")
        log = b.log()
        assert log.count("Lost the connection to Redis") == 1
        assert log.count("The connection to Redis is back") == 1
        assert "Traceback" not in log and "Unhandled error" not in log
        # The server that runs this Redis reports the exit, not a lost connection too.
        assert "Lost the connection to Redis" not in server.log()
    finally:
        b.discard()
