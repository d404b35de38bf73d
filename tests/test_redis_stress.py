"""Redis under stress, through the wire against real servers: out of memory
(a small ``--redis-maxmemory``, and Redis pushed past it); the full disk is in
test_redis_disk_full.py.  Clients get a clear
``-ERR`` saying what is wrong, the episode is logged once and shown on the
dashboard, stored work can still be drained, nothing acknowledged is lost,
and work resumes by itself once memory or space is back."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

import pytest
from rawredis import RawRedis

from helpers import ReplyError, ServerProcess, short_tmpdir

OOM = "ERR Redis is out of memory"
DISK = "ERR Redis cannot write to disk"
# A PUSH may also meet the server's own disk reserve first (its next look).
DISK_ANY = (DISK, "ERR Redis's disk is nearly full")


def _raw(srv) -> RawRedis:
    return RawRedis(os.path.join(srv.data_dir, "redis.sock"))


def _until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _drain(c, queue: str) -> list[str]:
    """FETCH and ACK until the queue is empty; the jids in order."""
    done = []
    while True:
        job = c.fetch(queue)
        assert not isinstance(job, ReplyError), job
        if job is None:
            return done
        assert c.call(json.dumps({"jid": job["jid"]}).join(["ACK ", ""])) == "OK"
        done.append(job["jid"])


def test_high_water_mark_refuses_push_while_workers_drain_the_backlog():
    srv = ServerProcess(args=["--redis-maxmemory", "3mb"]).start()
    try:
        c = srv.client()
        acked, refusal = [], None
        for _ in range(5000):
            jid, reply = c.push(queue="mem", args=["x" * 8000])
            if reply != "OK":
                refusal = reply
                break
            acked.append(jid)
        assert refusal is not None and refusal.startswith(OOM), refusal
        assert "PUSH is refused" in refusal and "FETCH, ACK and FAIL still work" in refusal
        assert len(acked) > 100  # ~2.7 MB of jobs went in before the mark
        for _ in range(20):  # refused again and again: logged once
            assert c.push(queue="mem")[1].startswith(OOM)
        assert (
            c.call("PUSHB " + json.dumps([{"jid": "b" * 12, "jobtype": "T", "args": []}]))[:26]
            == OOM[:26]
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.web_port}/", timeout=10) as r:
            page = r.read().decode()
        assert 'role="alert"' in page and "Redis is out of memory" in page
        # Memory was kept for the stored work: every job can be fetched and ACKed.
        assert sorted(_drain(c, "mem")) == sorted(acked)
        jid, reply = _until(lambda: (lambda r: r[1] == "OK" and r)(c.push(queue="mem")), 20, "PUSH")
        assert c.fetch("mem")["jid"] == jid
        log = srv.log()
        assert log.count("Redis is out of memory for new jobs") == 1, log
        assert log.count("Redis has memory again") == 1
        assert "Traceback" not in log and "internal error" not in log, log
        c.close()
    finally:
        srv.discard()


def test_past_maxmemory_fetch_ack_fail_and_beat_still_work(server):
    c = server.client(wid="stress-worker")
    jids = [c.push(queue="over", retry=3)[0] for _ in range(3)]
    redis = _raw(server)
    redis("CONFIG", "SET", "maxmemory", "1")  # Redis is now past its limit
    try:
        _, reply = c.push(queue="over")
        assert reply.startswith(OOM), reply
        job = c.fetch("over")
        assert job["jid"] == jids[0]
        assert c.call(f'ACK {{"jid":"{jids[0]}"}}') == "OK"
        assert c.fetch("over")["jid"] == jids[1]
        assert c.call("FAIL " + json.dumps({"jid": jids[1], "message": "x"})) == "OK"
        assert c.fetch("empty-q") is None  # an empty FETCH answers null, not an error
        assert c.call(json.dumps({"wid": "stress-worker"}).join(["BEAT ", ""])) == "OK"
        assert redis("ZCARD", "fk:retries") == 1
    finally:
        redis("CONFIG", "SET", "maxmemory", "0")
    _until(lambda: c.push(queue="over")[1] == "OK", 20, "PUSH to be accepted again")
    assert "internal error" not in server.log() and "Traceback" not in server.log()
    c.close()


def test_redis_maxmemory_from_toml_or_flag_and_bad_values_refused():
    from test_config import run_server

    from helpers import config_dir

    srv = ServerProcess(args=["-c", config_dir('[faktory]\nredis_maxmemory = "5mb"\n')], web=False)
    srv.start()
    try:
        redis = _raw(srv)
        assert redis("CONFIG", "GET", "maxmemory") == [b"maxmemory", b"5242880"]
        assert redis("CONFIG", "GET", "maxmemory-policy")[1] == b"noeviction"
    finally:
        srv.discard()
    rc, out = run_server("-c", config_dir('[faktory]\nredis_maxmemory = "lots"\n'))
    assert rc != 0 and "[faktory] redis_maxmemory must be a size such as 512mb" in out, out
    rc, out = run_server("--redis-maxmemory", "-1", "-d", short_tmpdir())
    assert rc != 0 and "--redis-maxmemory must be a size such as 512mb or 2gb" in out, out
    assert "Traceback" not in out


def test_refusals_of_redis_6_and_7_and_sizes_are_read():
    from faktory.pressure import parse_size, refusal

    wrapped6 = (
        "ERR Error running script (call to f_1): @user_script:3: @user_script: 3: "
        "-MISCONF Errors writing to the AOF file: No space left on device"
    )
    assert refusal(wrapped6).message.startswith(
        "Redis cannot write to disk (Errors writing to the AOF file: No space left on device):"
    )
    rdb = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to "
    assert refusal(rdb + "persist to disk. Commands that may modify...").kind == "disk"
    oom7 = "OOM command not allowed when used memory > 'maxmemory'. script: 78, on @user_script:1."
    assert refusal(oom7).kind == "memory" and refusal(oom7).message.startswith(OOM[4:])
    assert refusal("ERR wrong number of arguments") is None
    assert [parse_size(v) for v in ("0", "512mb", "2GB", "1k", " 100 ")] == [
        0,
        512 * 1024**2,
        2 * 1024**3,
        1000,
        100,
    ]
    for bad in ("-1", "lots", "1.5gb", "1tb", ""):
        with pytest.raises(ValueError):
            parse_size(bad)
