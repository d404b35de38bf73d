"""The Lua scripts run directly against a real redis-server: each ``.lua``
file compiles, the loader composes fragments and the Python constants, and
the core scripts keep their contracts (FETCH's reservation limits and
dead-set TTL, the throttle hooks that only the throttle feature fills in)."""

from __future__ import annotations

import json
import re
import uuid
from importlib import resources

import pytest
import pytest_twisted
from twisted.internet import reactor

from faktory import job as jobs
from faktory import luascript
from faktory.pro import batch_scripts
from faktory.redisconn import connect
from faktory.store import HISTORY_TTL, Store


def _scripts(package: str) -> list[str]:
    folder = resources.files(package).joinpath("lua")
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".lua"))


CORE = _scripts("faktory")
PRO = _scripts("faktory.pro")
# Everything a script may use by name, from the Python side.
NAMES = {
    **luascript.CONSTANTS,
    "HISTORY_TTL": HISTORY_TTL,
    "UNREADABLE": "(unreadable)",
    "OTHER": "other",
    "MAX_DEPTH": batch_scripts.MAX_DEPTH,
    "UNCOMMITTED_TTL": batch_scripts.UNCOMMITTED_TTL,
    "ACTIVE_TTL": batch_scripts.ACTIVE_TTL,
    "FINISHED_TTL": batch_scripts.FINISHED_TTL,
}


@pytest_twisted.async_yield_fixture
async def pool(redis):
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    conn, subscriber = await connect(redis.url, reactor, lambda m: None, prefix)
    conn.prefix = prefix
    yield conn
    await subscriber.stopService()
    await conn.disconnect()


def test_the_package_has_its_scripts_and_no_python_file_holds_lua():
    assert {"fetch", "ack", "fail", "push", "enqueue", "requeue", "throttle"} <= set(CORE)
    assert {"throttle", "batch", "batch_new", "jobstats_add"} <= set(PRO)
    root = resources.files("faktory")
    lua = re.compile(r"redis\.p?call\(")
    offenders = []
    for path in _walk(root):
        if path.name.endswith(".py") and lua.search(path.read_text(encoding="utf-8")):
            offenders.append(path.name)
    assert offenders == []


def _walk(folder):
    for p in folder.iterdir():
        if p.is_dir():
            yield from _walk(p)
        else:
            yield p


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("package", ["faktory", "faktory.pro"])
async def test_every_script_compiles_in_redis(pool, package):
    for name in _scripts(package):
        text = luascript.source(name, package, constants=NAMES)
        assert "-- include:" not in text, name
        sha = await pool.execute_command("SCRIPT", "LOAD", text)
        assert len(sha) == 40, name


def test_fragments_come_once_in_order_and_constants_by_name():
    text = luascript.source("fetch")
    # job, then the throttle hooks, then held: each defined once
    assert text.count("local function job_fields") == 1
    assert text.count("local function throttle_check") == 1
    assert text.index("job_fields") < text.index("throttle_check") < text.index("function hold")
    assert f"local DEAD_TTL = {jobs.DEAD_TTL}\n" in text
    assert f"local MAX_RESERVE_FOR = {jobs.MAX_RESERVE_FOR}\n" in text
    # a number the Python side owns is never written in a .lua file
    for name in CORE:
        raw = resources.files("faktory").joinpath("lua", name + ".lua").read_text()
        for value in (jobs.DEAD_TTL, jobs.MAX_RESERVE_FOR, HISTORY_TTL):
            assert str(value) not in raw, (name, value)
    # a replaced fragment takes the place of the file of that name
    swapped = luascript.source("fetch", fragments={"throttle": "-- mine\n"})
    assert "-- mine" in swapped and "throttle_check(p" in swapped
    assert "local function throttle_check" not in swapped


async def _push(store: Store, queue: str, **fields) -> dict:
    job = {"jid": uuid.uuid4().hex, "jobtype": "T", "args": [], "queue": queue, **fields}
    await store.push(queue, 5, json.dumps(job))
    return job


@pytest_twisted.ensureDeferred
async def test_fetch_clamps_reserve_for_to_the_python_limits(pool):
    store = Store(pool, pool.prefix, "a")
    now = 1_000_000.0
    for asked, expected in [
        (None, jobs.DEFAULT_RESERVE_FOR),
        (5, jobs.MIN_RESERVE_FOR),
        (10**9, jobs.MAX_RESERVE_FOR),
        (120, 120),
    ]:
        fields = {} if asked is None else {"reserve_for": asked}
        job = await _push(store, "q", **fields)
        raw = await store.fetch(["q"], now, "t", "", '""')
        assert json.loads(raw)["jid"] == job["jid"]
        score = await pool.execute_command("ZSCORE", pool.prefix + "working:exp", job["jid"])
        assert float(score) == now + expected, asked


@pytest_twisted.ensureDeferred
async def test_fetch_parks_an_unreadable_job_in_the_dead_set_for_dead_ttl(pool):
    store = Store(pool, pool.prefix, "a")
    now = 2_000_000.0
    await store.push("bad", 5, "not json")
    assert await store.fetch(["bad"], now, "t", "", '""') is None
    members = await pool.execute_command("ZRANGE", pool.prefix + "dead", 0, -1, "WITHSCORES")
    assert members == [b"not json", str(int(now + jobs.DEAD_TTL)).encode()]


@pytest_twisted.ensureDeferred
async def test_throttle_limits_apply_only_once_the_feature_puts_its_fragment_in(pool):
    # throttle:conf of a queue: concurrency 1, timeout 60, no per-worker or rate limit
    await pool.execute_command("HSET", pool.prefix + "throttle:conf", "tq", "1 60 0 0 0")
    plain = Store(pool, pool.prefix, "a")
    for _ in range(5):
        await _push(plain, "tq")
    # the core without the feature: no limit
    assert await plain.fetch(["tq"], 10.0, "t", "", '""') is not None
    assert await plain.fetch(["tq"], 10.0, "t", "", '""') is not None
    throttled = Store(pool, pool.prefix, "b")
    throttled.use_fragment("throttle", luascript.fragment("throttle", "faktory.pro"))
    assert throttled._fetch.sha != plain._fetch.sha
    assert throttled._push.sha == plain._push.sha  # scripts without the hook stay shared
    job = await throttled.fetch(["tq"], 10.0, "t", "", '""')
    assert job is not None  # takes the one slot...
    assert await throttled.fetch(["tq"], 10.0, "t", "", '""') is None  # ...and it is full
    await throttled.ack(json.loads(job)["jid"], "2026-12-03")
    assert await throttled.fetch(["tq"], 10.0, "t", "", '""') is not None  # ACK gave it back
