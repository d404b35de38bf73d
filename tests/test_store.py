"""The Lua scripts run directly against a real redis-server: each ``.lua``
file compiles, the loader composes fragments and the Python constants, and
the core scripts keep their contracts (FETCH's reservation limits and
dead-set TTL, the throttle hooks that only the throttle feature fills in)."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import uuid
from importlib import resources

import pytest
import pytest_twisted
from twisted.internet import reactor

import faktory
from faktory import job as jobs
from faktory import luascript, manager
from faktory.redisconn import connect
from faktory.store import Store


def _scripts(package: str) -> list[str]:
    folder = resources.files(package).joinpath("lua")
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".lua"))


CORE = _scripts("faktory")
PRO = _scripts("faktory.pro")


def _loaded() -> list[luascript.Script]:
    """Every script the server builds: the ones each module loads at import,
    and the core ones again with the throttle feature's fragment."""
    found: dict[int, luascript.Script] = {}
    for info in pkgutil.walk_packages(faktory.__path__, "faktory."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            # scripts are module constants or class attributes
            for v in [value, *(vars(value).values() if isinstance(value, type) else ())]:
                if isinstance(v, luascript.Script):
                    found[id(v)] = v
    scripts = list(found.values())
    throttle = {"throttle": luascript.fragment("throttle", "faktory.pro")}
    again = [
        luascript.load(s.name, fragments=throttle, constants=s.constants)
        for s in scripts
        if s.name in CORE
    ]
    return scripts + again


def _code(text: str) -> str:
    """Lua without its comments and strings."""
    return re.sub(r"--[^\n]*|'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"", " ", text)


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
async def test_every_script_the_server_builds_compiles_in_redis(pool):
    scripts = _loaded()
    # every .lua file is in some script the server builds, as script or fragment
    for package, names in (("faktory", CORE), ("faktory.pro", PRO)):
        for name in names:
            raw = resources.files(package).joinpath("lua", name + ".lua").read_text()
            own = re.sub(r"\A--\s*include:[^\n]*\n", "", raw)
            assert any(own in s.source.decode() for s in scripts), (package, name)
    for script in scripts:
        assert b"-- include:" not in script.source, script.name
        sha = await pool.execute_command("SCRIPT", "LOAD", script.source)
        assert sha.decode() == script.sha, script.name


def test_constants_come_from_python_by_name_never_as_bare_numbers():
    scripts = _loaded()
    # the core's constants, and every one a feature passes for its scripts
    provided = {**luascript.CONSTANTS, **{k: v for s in scripts for k, v in s.constants.items()}}
    assert {"DEAD_TTL", "MAX_RESERVE_FOR", "MAX_PRIORITY", "HISTORY_TTL", "MAX_DEPTH"} <= set(
        provided
    )
    assert provided["DEAD_TTL"] == jobs.DEAD_TTL and provided["MAX_DEPTH"] == 64
    # 0 and 1 are everywhere (indexes, flags); any other provided number must
    # be used by name.  Positions (ARGV[9], b[9], #ARGV > 9) are not constants.
    numbers = {
        float(v)
        for v in provided.values()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v not in (0, 1)
    }
    bare = []
    for package, names in (("faktory", CORE), ("faktory.pro", PRO)):
        for name in names:
            raw = resources.files(package).joinpath("lua", name + ".lua").read_text()
            for n, line in enumerate(_code(raw).splitlines(), 1):
                if "#ARGV" in line:
                    continue
                line = re.sub(r"\[\s*\d+\s*\]", " ", line)
                for m in re.finditer(r"(?<![\w.])(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?![\w.])", line):
                    if float(m.group(1)) in numbers:
                        bare.append(f"{package}/lua/{name}.lua:{n}: {m.group(1)}")
    assert bare == []


def test_the_loader_refuses_a_name_it_does_not_provide():
    # the same check stops the server at import if a .lua file has such a name
    mine = {"throttle": "-- include: job\nlocal x = NOT_PROVIDED + MAX_PRIORITY\n"}
    with pytest.raises(LookupError, match="fetch uses NOT_PROVIDED, which the loader"):
        luascript.load("fetch", fragments=mine)
    # a name the script declares itself, or one in a comment or string, is fine
    ok = {"throttle": "local MINE = 1 -- NOT_PROVIDED\nlocal y = MINE .. 'NOPE'\n"}
    assert luascript.load("fetch", fragments=ok).constants["DEAD_TTL"] == jobs.DEAD_TTL
    with_it = luascript.load("fetch", fragments=mine, constants={"NOT_PROVIDED": 7})
    assert b"local NOT_PROVIDED = 7\n" in with_it.source


def test_the_wait_flag_outlives_a_fetch_wait():
    # a PUSH publishes a wake-up only while the flag a waiting FETCH set is there
    assert luascript.WAIT_FLAG_MS / 1000 > manager.FETCH_WAIT
    assert "'PX', WAIT_FLAG_MS" in luascript.source("fetch")


def test_fragments_come_once_in_order_and_constants_by_name():
    text = luascript.source("fetch")
    # job, then the throttle hooks, then held: each defined once
    assert text.count("local function job_fields") == 1
    assert text.count("local function throttle_check") == 1
    assert text.index("job_fields") < text.index("throttle_check") < text.index("function hold")
    assert f"local DEAD_TTL = {jobs.DEAD_TTL}\n" in text
    assert f"local MAX_RESERVE_FOR = {jobs.MAX_RESERVE_FOR}\n" in text
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
