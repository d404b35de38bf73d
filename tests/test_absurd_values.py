"""Jobs whose stored values are absurd, written straight into the Redis of a
real server: they still FAIL, retry, die and are reaped like any other, and
never hold up the reaper, the scheduler or the dead-set purge for the rest."""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest_twisted
from rawredis import RawRedis
from twisted.internet import reactor

from faktory.manager import Manager
from faktory.redisconn import connect
from faktory.store import Store
from helpers import ReplyError


def _raw(srv) -> RawRedis:
    return RawRedis(os.path.join(srv.data_dir, "redis.sock"))


def _strict(raw: bytes) -> dict:
    """Decode as Go, Ruby and Node clients would: no NaN, no Infinity."""

    def refuse(name):
        raise AssertionError(f"{name} stored: no client could read it")

    return json.loads(raw, parse_constant=refuse)


def _enqueue(redis: RawRedis, queue: str, *members: str) -> None:
    redis("SADD", "fk:queues", queue)
    for m in members:
        redis("LPUSH", f"fk:q:{queue}:5", m)
    redis("ZADD", f"fk:qp:{queue}", 5, 5)


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _where(redis: RawRedis) -> dict[str, str]:
    """jid -> the set it is in (retries or dead)."""
    out = {}
    for name in ("retries", "dead"):
        for m in redis("ZRANGE", "fk:" + name, 0, -1):
            try:
                out[_strict(m)["jid"]] = name
            except (ValueError, KeyError, TypeError):
                out[m[:40].decode("utf-8", "replace")] = name
    return out


def test_absurd_failure_records_still_fail_retry_and_die(server, client):
    q = "absurd-fail"
    jobs = {
        "abs-inf-count": '"retry":25,"failure":{"retry_count":1e400,"remaining":"x","failed_at":12}',
        "abs-nan-count": '"args":[NaN],"failure":{"retry_count":NaN,"remaining":Infinity}',
        "abs-huge-count": '"retry":25,"failure":{"retry_count":1e300}',
        "abs-neg-count": '"retry":"lots","failure":{"retry_count":-7,"remaining":-1e308}',
        "abs-far-backoff": '"retry":1e30,"failure":{"retry_count":10000000}',
        "abs-stamps": '"reserve_for":NaN,"priority":1e300,"backtrace":-1e999,'
        '"created_at":"99999-99-99T99:99:99Z","at":12,"failure":"broken"',
    }
    redis = _raw(server)
    _enqueue(
        redis,
        q,
        *(
            f'{{"enqueued_at":"0000-00-00T00:00:00Z","jid":"{jid}","queue":"{q}",'
            f'"jobtype":"Odd","args":[],{extra}}}'
            for jid, extra in jobs.items()
        ),
    )
    for _ in jobs:
        job = client.fetch(q)
        assert isinstance(job, dict), job
        reply = client.call("FAIL " + json.dumps({"jid": job["jid"], "message": "boom"}))
        assert reply == "OK", (job["jid"], reply)
    assert client.info()["faktory"]["sets"]["working"] == 0
    where = _where(redis)
    assert where == {
        "abs-inf-count": "retries",
        "abs-nan-count": "retries",
        "abs-huge-count": "dead",
        "abs-neg-count": "retries",
        "abs-far-backoff": "retries",
        "abs-stamps": "retries",
    }
    # The backoff of an absurd retry count is capped (a year), not an overflow.
    flat = redis("ZRANGE", "fk:retries", 0, -1, "WITHSCORES")
    scores = {_strict(flat[i])["jid"]: float(flat[i + 1]) for i in range(0, len(flat), 2)}
    assert scores["abs-far-backoff"] <= time.time() + 367 * 86400


def _reservation(jid: str, job: str) -> str:
    return f'{{"job":{job},"reserved_at":"2020-01-01T00:00:00Z","expiry":1,"wid":"w"}}'


def test_unreadable_and_absurd_reservations_never_block_the_reaper(server, client):
    redis = _raw(server)
    jid, reply = client.push(queue="reap-q", reserve_for=60)
    assert reply == "OK"
    assert client.fetch("reap-q")["jid"] == jid
    redis("ZADD", "fk:working:exp", time.time() - 5, jid)  # its worker died
    deep = "[" * 100_000 + "]" * 100_000
    variants = [
        lambda j: "not json at all",
        lambda j: '{"job":"a string"}',
        lambda j: "[]",
        lambda j: _reservation(j, f'{{"jid":"{j}","queue":"reap-q","args":{deep}}}'),
        lambda j: _reservation(
            j,
            f'{{"jid":"{j}","queue":"reap-q","jobtype":"T","args":[],"retry":NaN,'
            f'"failure":{{"retry_count":1e999}}}}',
        ),
    ]
    odd = []
    for i in range(120):  # more than one reaper batch, all expired before the real one
        j = f"odd-res-{i:04d}"
        redis("HSET", "fk:working", j, variants[i % len(variants)](j))
        redis("ZADD", "fk:working:exp", time.time() - 1000 + i, j)
        odd.append(j)
    _wait(lambda: redis("HLEN", "fk:working") == 0, 30, "the reaper to settle every reservation")
    assert redis("ZCARD", "fk:working:exp") == 0
    retried = {_strict(m)["jid"]: _strict(m) for m in redis("ZRANGE", "fk:retries", 0, -1)}
    assert retried[jid]["failure"]["errtype"] == "ReservationExpired"
    # readable ones are retried (retry NaN counts as the default 25)...
    assert all(f"odd-res-{i:04d}" in retried for i in range(4, 120, 5))
    # ...unreadable ones rest in the dead set, as stored, rather than stay
    # reserved (byte-identical garbage is one member of the sorted set).
    dead = redis("ZRANGE", "fk:dead", 0, -1)
    assert {m for m in dead if not m.startswith(b'{"jid"')} == {
        b"not json at all",
        b'{"job":"a string"}',
        b"[]",
    }
    assert len(dead) == 3 + 24
    assert redis("ZCARD", "fk:retries") == 25


def test_absurd_jobs_due_in_retries_and_scheduled_still_move(server, client):
    redis = _raw(server)
    q = "absurd-due"

    def job(jid: str, extra: str = "", queue: str = q, head: str = "") -> str:
        return f'{{{head}"jid":"{jid}","queue":{json.dumps(queue)},"jobtype":"T","args":[]{extra}}}'

    due = time.time() - 5
    good, bad = [], []
    for name in ("retries", "scheduled"):
        members = {
            f"{name}-normal": job(f"{name}-normal"),
            f"{name}-pri-huge": job(f"{name}-pri-huge", ',"priority":1e300'),
            f"{name}-pri-nan": job(f"{name}-pri-nan", ',"priority":NaN'),
            f"{name}-pri-text": job(f"{name}-pri-text", ',"priority":"urgent"'),
            f"{name}-pri-neg": job(f"{name}-pri-neg", ',"priority":-1e999'),
            f"{name}-stamp-quote": job(
                f"{name}-stamp-quote", head='"enqueued_at":"20\\"20-01-01T00:00:00Z",'
            ),
            f"{name}-stamp-odd": job(
                f"{name}-stamp-odd", ',"created_at":"99999-12-31T00:00:00Z","at":-1e999'
            ),
        }
        good += members
        for member in members.values():
            redis("ZADD", "fk:" + name, due, member)
        for jid, member in {
            f"{name}-bad-queue": job(f"{name}-bad-queue", queue="no such:queue"),
            f"{name}-num-queue": job(f"{name}-num-queue").replace(f'"{q}"', "42"),
        }.items():
            bad.append(jid)
            redis("ZADD", "fk:" + name, due, member)
        redis("ZADD", "fk:" + name, due - 1, f"{name} is not json")
    _wait(
        lambda: redis("ZCARD", "fk:retries") + redis("ZCARD", "fk:scheduled") == 0,
        15,
        "the scheduler to move every due entry",
    )
    priorities = {int(p) for p in redis("ZRANGE", f"fk:qp:{q}", 0, -1)}
    assert priorities <= set(range(1, 10)), priorities
    fetched = []
    while True:
        raw = client.call(f"FETCH {q}")
        if raw is None:
            break
        assert not isinstance(raw, ReplyError), raw
        job_ = json.loads(raw)  # still JSON after its enqueued_at was refreshed
        assert job_["enqueued_at"] != '20"20-01-01T00:00:00Z'
        fetched.append(job_["jid"])
        assert client.call(f'ACK {{"jid":"{job_["jid"]}"}}') == "OK"
    assert sorted(fetched) == sorted(good)
    dead = [m for m in redis("ZRANGE", "fk:dead", 0, -1)]
    assert len(dead) == len(bad) + 2
    assert {_strict(m)["jid"] for m in dead if m.startswith(b"{")} == set(bad)


@pytest_twisted.ensureDeferred
async def test_absurd_dead_entries_never_block_the_purge(redis):
    """The dead-set purge (every 60 s in a server, so run directly here)."""
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    pool, subscriber = await connect(redis.url, reactor, lambda m: None, prefix)
    try:
        manager = Manager(Store(pool, prefix, "a"))
        now = reactor.seconds()
        expired = ["not json", '{"jid":NaN}', "[" * 1000 + "]" * 1000]
        expired += [f'{{"jid":"gone-{i:04d}","retry_count":1e999}}' for i in range(1200)]
        for i, m in enumerate(expired):
            await pool.execute_command("ZADD", prefix + "dead", now - 10_000 + i, m)
        await pool.execute_command("ZADD", prefix + "dead", "-inf", "minus infinity")
        await pool.execute_command("ZADD", prefix + "dead", now + 3600, '{"jid":"kept"}')
        while await manager.purge_dead():
            pass
        left = await pool.execute_command("ZRANGE", prefix + "dead", 0, -1)
        assert left == [b'{"jid":"kept"}']
    finally:
        await subscriber.stopService()
        await pool.disconnect()
