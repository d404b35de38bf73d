"""Job lifecycle rules (faktory.manager + faktory.store) on a real spawned
redis-server, with time under test control (``task.Clock``).

Each test gets its own key prefix on one module-wide Redis, so tests do not
see each other's jobs.
"""

from __future__ import annotations

import json
import random
import time
import uuid

import pytest
import pytest_twisted
from inproc import until
from twisted.internet import defer, reactor, task

from faktory import job as jobs
from faktory.errors import CommandError
from faktory.failure import retry_delay
from faktory.manager import FETCH_WAIT, Manager
from faktory.redisconn import connect
from faktory.store import Store

DAY = 86400


class Env:
    """One prefix's worth of store + managers sharing a fake clock."""

    def __init__(self, pool, prefix: str) -> None:
        self.pool = pool
        self.prefix = prefix
        self.clock = task.Clock()
        self.clock.advance(time.time())
        self.managers: list[Manager] = []
        self.manager = self.new_manager("a")
        self.store = self.manager.store

    def new_manager(self, origin: str) -> Manager:
        m = Manager(Store(self.pool, self.prefix, origin), self.clock, random.Random(7))
        self.managers.append(m)
        return m

    def notify(self, message) -> None:
        for m in self.managers:
            m.remote_notify(message)

    @property
    def now(self) -> float:
        return self.clock.seconds()

    async def push(self, manager: Manager | None = None, **fields) -> dict:
        fields.setdefault("jid", uuid.uuid4().hex)
        fields.setdefault("jobtype", "T")
        fields.setdefault("args", [])
        await (manager or self.manager).push_raw(json.dumps(fields))
        return fields

    async def fetch(self, *queues: str, wid: str = "") -> dict | None:
        raw = await self.manager.fetch(list(queues or ("default",)), wid)
        return None if raw is None else json.loads(raw)

    def cmd(self, *args) -> defer.Deferred:
        return self.pool.execute_command(*args)

    async def zset(self, name: str) -> list[tuple[dict, float]]:
        flat = await self.cmd("ZRANGE", self.prefix + name, 0, -1, "WITHSCORES")
        return [(json.loads(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def counters(self) -> tuple[int, int]:
        processed, failures = await self.store.counters()
        return processed, failures


@pytest_twisted.async_yield_fixture
async def env(redis):
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    holder: list[Env] = []
    pool, subscriber = await connect(
        redis.url, reactor, lambda m: holder and holder[0].notify(m), prefix
    )
    e = Env(pool, prefix)
    holder.append(e)
    yield e
    await subscriber.stopService()
    await pool.disconnect()


def fetching(env: Env, *queues: str, manager: Manager | None = None, wid: str = ""):
    """Start a FETCH without waiting for it: a Deferred of the job dict or None."""
    m = manager or env.manager

    async def run():
        raw = await m.fetch(list(queues), wid)
        return None if raw is None else json.loads(raw)

    return defer.Deferred.fromCoroutine(run())


async def settled(d: defer.Deferred, timeout: float = 5.0):
    """The result of ``d``, failing (not hanging) if the real reactor does not fire it."""
    await until(lambda: d.called, timeout, "the FETCH to answer")
    return await d


def parked(manager: Manager, queue: str) -> bool:
    return bool(manager._waiters.get(queue))


# -- push / fetch / ack -------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_push_fetch_ack_sets_server_fields_and_counts(env):
    pushed = await env.push(args=[1, {"a": "é"}], custom={"k": 1}, at="", queue="")
    job = await env.fetch()
    assert job["jid"] == pushed["jid"] and job["args"] == [1, {"a": "é"}]
    assert job["queue"] == "default" and job["retry"] == 25 and "at" not in job
    assert job["created_at"] == job["enqueued_at"] == jobs.format_time(env.now)
    reservation = json.loads(await env.store.reservation(job["jid"]))
    assert reservation["job"] == job
    assert reservation["expiry"] == pytest.approx(env.now + 1800)
    await env.manager.ack(job["jid"])
    assert await env.store.reservation(job["jid"]) is None
    assert await env.counters() == (1, 0)
    # ACK of an unknown jid is accepted and counts nothing, like the real server.
    await env.manager.ack(job["jid"])
    assert await env.counters() == (1, 0)


@pytest_twisted.ensureDeferred
async def test_priority_order_then_fifo_within_a_priority(env):
    rng = random.Random(3)
    pushed = []
    for i in range(40):
        pri = rng.choice([None, 1, 3, 5, 9, 0, 12])  # 0 and 12 are clamped to 1 and 9
        fields = {"jid": f"job-{i:04d}"}
        if pri is not None:
            fields["priority"] = pri
        await env.push(**fields)
        pushed.append((-(min(9, max(1, pri)) if pri is not None else 5), i, fields["jid"]))
    got = [(await env.fetch())["jid"] for _ in range(40)]
    assert got == [jid for _, _, jid in sorted(pushed)]
    # Clamped priorities are stored as such.
    assert {
        json.loads(r)["job"].get("priority") for r in await env.cmd("HVALS", env.prefix + "working")
    } <= {1, 3, 5, 9, None}


@pytest_twisted.ensureDeferred
async def test_queues_are_checked_in_the_order_given(env):
    await env.push(jid="low-00001", queue="low", priority=9)
    await env.push(jid="high-0001", queue="high", priority=1)
    assert (await env.fetch("high", "low"))["jid"] == "high-0001"
    assert (await env.fetch("high", "low"))["jid"] == "low-00001"


# -- scheduled jobs -----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_scheduled_job_is_promoted_when_due(env):
    at = jobs.format_time(env.now + 10)
    pushed = await env.push(at=at, queue="later")
    [(stored, score)] = await env.zset("scheduled")
    assert stored["jid"] == pushed["jid"] and score == pytest.approx(env.now + 10)
    assert "enqueued_at" not in stored
    assert await env.manager.promote("scheduled") == 0
    env.clock.advance(9.9)
    assert await env.manager.promote("scheduled") == 0
    env.clock.advance(0.2)
    assert await env.manager.promote("scheduled") == 1
    assert await env.zset("scheduled") == []
    job = await env.fetch("later")
    assert job["jid"] == pushed["jid"] and job["at"] == at
    assert job["enqueued_at"] == jobs.format_time(env.now)
    assert env.manager.task_stats["Scheduled"]["enqueued"] == 1


@pytest_twisted.ensureDeferred
async def test_past_at_is_enqueued_at_once(env):
    await env.push(jid="past-0001", at=jobs.format_time(env.now - 5))
    assert await env.zset("scheduled") == []
    assert (await env.fetch())["jid"] == "past-0001"


@pytest_twisted.ensureDeferred
async def test_promotion_moves_more_than_one_batch(env):
    at = jobs.format_time(env.now + 1)
    for i in range(250):
        await env.push(jid=f"batch-{i:04d}", at=at, queue="many")
    env.clock.advance(2)
    assert await env.manager.promote("scheduled") == 250
    assert (await env.store.queue_sizes(["many"]))["many"] == 250


# -- failures, retries, dead --------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_first_failure_record_and_backoff_range(env):
    delays = []
    for i in range(60):
        await env.push(jid=f"fail-{i:04d}", retry=3)
        job = await env.fetch()
        await env.manager.fail(job["jid"], " Boom ", " it broke ", ["a.rb:1", "b.rb:2"])
    entries = await env.zset("retries")
    assert len(entries) == 60
    for stored, score in entries:
        f = stored["failure"]
        assert list(f) == [
            "failed_at",
            "next_at",
            "message",
            "errtype",
            "backtrace",
            "retry_count",
            "remaining",
        ]
        assert f["errtype"] == "Boom" and f["message"] == "it broke"
        assert f["backtrace"] == ["a.rb:1", "b.rb:2"]
        assert f["retry_count"] == 0 and f["remaining"] == 3
        assert f["failed_at"] == jobs.format_time(env.now)
        assert jobs.parse_time(f["next_at"]) == pytest.approx(score, abs=1e-6)
        delays.append(score - env.now)
        assert 15 <= score - env.now <= 44
    assert len({round(d) for d in delays}) > 5  # jittered, not a constant
    assert await env.counters() == (60, 60)


def test_backoff_formula_bounds():
    rng = random.Random(1)
    for count in range(6):
        samples = {retry_delay(count, rng) for _ in range(3000)}
        assert min(samples) == count**4 + 15
        assert max(samples) == count**4 + 15 + 29 * (count + 1)
        assert all((s - count**4 - 15) % (count + 1) == 0 for s in samples)


@pytest_twisted.ensureDeferred
async def test_retries_run_then_exhaust_into_dead(env):
    await env.push(jid="exhaust-1", retry=2, backtrace=1)
    first_failed_at = None
    for attempt in range(3):
        job = await env.fetch()
        assert job is not None and job["jid"] == "exhaust-1"
        await env.manager.fail("exhaust-1", f"E{attempt}", f"m{attempt}", ["l1", "l2", "l3"])
        if attempt < 2:
            [(stored, score)] = await env.zset("retries")
            f = stored["failure"]
            assert f["retry_count"] == attempt and f["remaining"] == 2 - attempt
            assert f["backtrace"] == ["l1"]  # the job asked for one line
            first_failed_at = first_failed_at or f["failed_at"]
            env.clock.advance(score - env.now - 0.5)
            assert await env.manager.promote("retries") == 0  # not due yet
            env.clock.advance(1)
            assert await env.manager.promote("retries") == 1
            assert await env.zset("retries") == []
    assert await env.zset("retries") == []
    [(dead, score)] = await env.zset("dead")
    f = dead["failure"]
    assert f["retry_count"] == 2 and f["remaining"] == 0
    assert f["errtype"] == "E2" and f["message"] == "m2"
    assert f["failed_at"] == first_failed_at  # never updated after the first failure
    assert jobs.parse_time(f["next_at"]) < env.now  # the last retry's, kept (as in Go)
    assert score == pytest.approx(env.now + 180 * DAY)
    assert await env.counters() == (3, 3)


@pytest_twisted.ensureDeferred
async def test_retry_zero_discards_and_negative_goes_straight_to_dead(env):
    await env.push(jid="zero-0001", retry=0)
    await env.push(jid="minus-001", retry=-1)
    for jid in ("zero-0001", "minus-001"):
        assert (await env.fetch())["jid"] == jid
        await env.manager.fail(jid, "", "", None)
    assert await env.zset("retries") == []
    [(dead, _)] = await env.zset("dead")
    assert dead["jid"] == "minus-001"
    assert dead["failure"]["errtype"] == "unknown" and dead["failure"]["message"] == "unknown"
    assert "backtrace" not in dead["failure"]
    assert await env.counters() == (2, 2)


@pytest_twisted.ensureDeferred
async def test_fail_of_unknown_job_is_refused(env):
    with pytest.raises(CommandError, match="Job not found nope-nope"):
        await env.manager.fail("nope-nope", "E", "m", [])


@pytest_twisted.ensureDeferred
async def test_client_supplied_junk_failure_does_not_wedge_the_job(env):
    junk = {"retry_count": "x", "failed_at": 5, "remaining": []}
    with pytest.raises(jobs.JobError, match="Job.failure.retry_count of type int"):
        await env.push(jid="junk-0001", failure=junk)  # refused at PUSH, as Go does
    # A job stored with such a failure anyway (by an older version) still fails.
    job = jobs.validate({"jid": "junk-0001", "jobtype": "T", "args": []}, env.now)
    await env.manager.push(dict(job, failure=junk))
    await env.fetch()
    await env.manager.fail("junk-0001", "E", "m", [])
    [(stored, _)] = await env.zset("retries")
    assert stored["failure"]["retry_count"] == 1
    assert stored["failure"]["failed_at"] == jobs.format_time(env.now)


# -- reservations -------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_expired_reservation_is_failed_and_retried(env):
    await env.push(jid="slow-0001", reserve_for=60)
    await env.push(jid="tiny-0001", reserve_for=5)  # raised to the 60 s minimum
    await env.fetch()
    await env.fetch()
    env.clock.advance(59)
    assert await env.manager.reap_reservations() == 0
    env.clock.advance(2)
    assert await env.manager.reap_reservations() == 2
    entries = {stored["jid"]: stored for stored, _ in await env.zset("retries")}
    assert set(entries) == {"slow-0001", "tiny-0001"}
    f = entries["slow-0001"]["failure"]
    assert f["errtype"] == "ReservationExpired"
    assert f["message"] == "Faktory job reservation expired"
    assert "backtrace" not in f and f["retry_count"] == 0
    assert await env.counters() == (2, 2)
    # The late worker's FAIL finds nothing; its ACK is accepted and counts nothing.
    with pytest.raises(CommandError, match="Job not found"):
        await env.manager.fail("slow-0001", "E", "m", [])
    await env.manager.ack("tiny-0001")
    assert await env.counters() == (2, 2)
    assert env.manager.task_stats["Busy"]["reaped"] == 2


@pytest_twisted.ensureDeferred
async def test_extended_reservation_is_not_reaped(env):
    await env.push(jid="long-0001", reserve_for=60)
    await env.fetch()
    await env.store.extend_reservation("long-0001", env.now + 600)
    env.clock.advance(120)
    assert await env.manager.reap_reservations() == 0
    env.clock.advance(500)
    assert await env.manager.reap_reservations() == 1


@pytest_twisted.ensureDeferred
async def test_undecodable_queue_entry_goes_dead_not_lost(env):
    await env.push(jid="good-0001", queue="mixed")
    # Something not JSON sits in front of it (written behind our back).
    await env.cmd("RPUSH", env.prefix + "q:mixed:5", "{not json")
    job = await env.fetch("mixed")
    assert job["jid"] == "good-0001"
    dead = await env.cmd("ZRANGE", env.prefix + "dead", 0, -1)
    assert dead == [b"{not json"]


@pytest_twisted.ensureDeferred
async def test_escaped_jid_and_reserve_for_are_read_right_at_fetch(env):
    # FETCH reads the jid of a plain job without decoding it; these need the decoder.
    for jid, extra in (
        ('quo"te-001', {}),
        ("back\\slash-1", {}),
        ("plain-0001", {"reserve_for": 600}),
    ):
        await env.push(jid=jid, queue="esc", **extra)
        job = await env.fetch("esc")
        assert job["jid"] == jid
        reservation = json.loads(await env.store.reservation(jid))
        assert reservation["job"]["jid"] == jid
        expected = 600 if extra else 1800
        assert reservation["expiry"] == pytest.approx(env.now + expected, abs=1)


# -- the waiting FETCH --------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_empty_fetch_waits_two_seconds_on_the_clock(env):
    d = fetching(env, "empty")
    await until(lambda: parked(env.manager, "empty"), what="FETCH to park")
    env.clock.advance(FETCH_WAIT - 0.1)
    assert not d.called
    env.clock.advance(0.2)
    assert d.called and await settled(d) is None
    assert not env.manager._waiters


@pytest_twisted.ensureDeferred
async def test_push_wakes_exactly_one_waiting_fetch(env):
    first = fetching(env, "wake", "other")
    second = fetching(env, "wake")
    await until(lambda: len(env.manager._waiters.get("wake", ())) == 2, what="two waiters")
    await env.push(jid="wake-0001", queue="wake")
    job = await settled(first)  # oldest waiter first, no clock movement needed
    assert job["jid"] == "wake-0001"
    assert not second.called
    assert list(env.manager._waiters) == ["wake"]  # `first` left every queue it waited on
    env.clock.advance(FETCH_WAIT)
    assert await settled(second) is None


@pytest_twisted.ensureDeferred
async def test_promoted_job_wakes_a_local_fetch(env):
    await env.push(jid="sched-001", queue="soon", at=jobs.format_time(env.now + 1))
    d = fetching(env, "soon")
    await until(lambda: parked(env.manager, "soon"), what="FETCH to park")
    env.clock.advance(1.0)
    assert await env.manager.promote("scheduled") == 1
    job = await settled(d)
    assert job["jid"] == "sched-001"


@pytest_twisted.ensureDeferred
async def test_push_through_another_server_wakes_fetch_via_pubsub(env):
    other = env.new_manager("b")
    d = fetching(env, "cross")
    await until(lambda: parked(env.manager, "cross"), what="FETCH to park")
    await env.push(manager=other, jid="cross-001", queue="cross")
    job = await settled(d)  # woken by the Redis `notify` message, not by the clock
    assert job["jid"] == "cross-001"


@pytest_twisted.ensureDeferred
async def test_notify_racing_an_empty_answer_is_not_lost(env):
    """The other server's notification can overtake our FETCH's empty reply
    (different connections); the FETCH must look again instead of sleeping."""
    other = Store(env.pool, env.prefix, "b")
    d = fetching(env, "race")
    # Pipelined on one connection behind the FETCH script: its empty answer is
    # decided first.  The wait key is dropped so the push publishes nothing:
    # only the notification delivered below can wake this FETCH.
    env.cmd("DEL", env.prefix + "wait:race")
    pushed = other.push(
        "race",
        5,
        jobs.serialize(
            jobs.validate({"jid": "race-0001", "jobtype": "T", "args": [], "queue": "race"})
        ),
    )
    env.manager.remote_notify(b"b race")  # arrives before either reply
    assert not d.called
    await pushed
    job = await settled(d)
    assert job["jid"] == "race-0001"


@pytest_twisted.ensureDeferred
async def test_fetch_that_keeps_losing_the_race_is_answered_at_its_deadline(env):
    """Woken FETCHes look again when a push raced their empty answer; if other
    workers take every job first, the FETCH still answers null after 2 s."""
    store, real_fetch = env.store, env.store.fetch
    reserves: list[float] = []

    def racing_fetch(queues, now, now_str, wid, wid_json):
        if wid != "loser" or len(reserves) >= 60:
            return real_fetch(queues, now, now_str, wid, wid_json)
        reserves.append(env.now)
        env.clock.advance(0.1)
        # Pipelined ahead of the loser's script: a job lands and a worker of
        # another server takes it, so the loser sees an empty queue and a push.
        env.manager.push_raw(
            json.dumps({"jid": uuid.uuid4().hex, "jobtype": "T", "args": [], "queue": "contended"})
        )
        real_fetch(queues, now, now_str, "thief", '"thief"')
        return real_fetch(queues, now, now_str, wid, wid_json)

    store.fetch = racing_fetch
    started = env.now
    d = fetching(env, "contended", wid="loser")
    assert await settled(d) is None
    assert env.now - started <= FETCH_WAIT + 0.1
    assert len(reserves) <= FETCH_WAIT / 0.1 + 1  # no spinning past the deadline
    assert not env.manager._waiters


@pytest_twisted.ensureDeferred
async def test_push_heard_by_a_parked_fetch_does_not_rerun_other_empty_fetches(env):
    """With many idle workers, a push wakes one parked FETCH; another FETCH
    whose empty answer crossed it parks too instead of running its script
    again (each push used to send every such FETCH back to Redis)."""
    reserves: list[str] = []
    real_fetch = env.store.fetch

    def counting_fetch(queues, now, now_str, wid, wid_json):
        reserves.append(wid)
        return real_fetch(queues, now, now_str, wid, wid_json)

    env.store.fetch = counting_fetch
    sleeper = fetching(env, "fleet", wid="sleeper")
    await until(lambda: parked(env.manager, "fleet"), what="the first FETCH to park")
    late = fetching(env, "fleet", wid="late")  # its empty answer is on its way
    # Pushed as if by another server, whose notification (made here, as it
    # can overtake the replies) is heard by the parked FETCH.  The push
    # itself publishes under our own origin, which this server ignores.
    job = jobs.validate({"jid": "fleet-0001", "jobtype": "T", "args": [], "queue": "fleet"})
    pushed = env.store.push("fleet", 5, jobs.serialize(job))
    env.manager.remote_notify(b"b fleet")
    await pushed
    assert (await settled(sleeper))["jid"] == "fleet-0001"
    await until(lambda: len(env.manager._waiters.get("fleet", ())) == 1, what="late to park")
    assert reserves.count("late") == 1
    env.clock.advance(FETCH_WAIT)
    assert await settled(late) is None


@pytest_twisted.ensureDeferred
async def test_quiet_worker_gets_no_job(env):
    await env.store.worker_connect("w-quiet", env.now, "{}")
    assert await env.store.worker_beat("w-quiet", env.now, None, "quiet") == "quiet"
    await env.push(jid="held-0001")
    d = fetching(env, "default", wid="w-quiet")
    await until(lambda: env.clock.getDelayedCalls(), what="quiet FETCH to wait")
    assert not d.called
    env.clock.advance(FETCH_WAIT)
    assert await settled(d) is None
    assert (await env.fetch())["jid"] == "held-0001"  # still there for others


@pytest_twisted.ensureDeferred
async def test_flush_empties_everything_but_worker_records(env):
    await env.store.worker_connect("w-keep", env.now, "{}")
    await env.push(jid="gone-0001")
    await env.push(jid="gone-0002", at=jobs.format_time(env.now + 60))
    await env.store.flush()
    assert await env.store.queue_sizes(["default"]) == {"default": 0}
    assert await env.zset("scheduled") == []
    assert await env.store.worker_beat("w-keep", env.now) == "running"


@pytest_twisted.ensureDeferred
async def test_released_job_goes_to_the_front_and_wakes_a_fetch(env):
    await env.push(jid="first-001", queue="rel")
    await env.push(jid="second-01", queue="rel")
    job = await env.fetch("rel")
    assert job["jid"] == "first-001"
    assert (await env.fetch("rel"))["jid"] == "second-01"
    d = fetching(env, "rel")
    await until(lambda: parked(env.manager, "rel"), what="FETCH to park")
    await env.manager.release(job)  # e.g. its client vanished mid-FETCH
    again = await settled(d)
    assert again["jid"] == "first-001"
    assert await env.counters() == (0, 0)  # a release is not a failure


@pytest_twisted.ensureDeferred
async def test_a_job_the_fail_middleware_chokes_on_does_not_block_the_reaper(env):
    def picky(job, failure):
        if job["jid"] == "cursed-01":
            raise RuntimeError("plugin bug")

    env.manager.use("fail", picky)
    await env.push(jid="cursed-01", reserve_for=60)
    await env.push(jid="normal-01", reserve_for=60)
    await env.fetch()
    await env.fetch()
    env.clock.advance(61)
    assert await env.manager.reap_reservations() == 1
    [(stored, _)] = await env.zset("retries")
    assert stored["jid"] == "normal-01"
    assert await env.store.reservation("cursed-01") is not None  # still held, retried later


@pytest_twisted.ensureDeferred
async def test_middleware_about_custom_keys_sees_only_those_jobs(env):
    seen: dict[str, list[str]] = {"push": [], "fetch": [], "settled": [], "every": []}

    def recorder(chain):
        def fn(job, *rest):
            seen[chain].append(job["jid"])

        return fn

    for chain in ("push", "fetch", "settled"):
        env.manager.use(chain, recorder(chain), custom=("flag",))
    env.manager.use("settled", recorder("every"))  # no filter: every job
    await env.push(jid="plain-001")
    await env.push(jid="other-001", custom={"unrelated": 1})
    # A job whose args merely mention the key is decoded at FETCH, but the
    # middleware is still skipped: only the ``custom`` object counts.
    await env.push(jid="looks-001", args=['"flag"'])
    await env.push(jid="flagged-1", custom={"flag": True})
    fetched = [(await env.fetch())["jid"] for _ in range(4)]
    for jid in fetched:
        await env.manager.ack(jid)
    assert seen["push"] == seen["fetch"] == seen["settled"] == ["flagged-1"]
    assert sorted(seen["every"]) == sorted(["plain-001", "other-001", "looks-001", "flagged-1"])


@pytest_twisted.ensureDeferred
async def test_fetch_middleware_without_a_filter_sees_every_job(env):
    seen = []
    env.manager.use("fetch", lambda job: seen.append(job["jid"]))
    await env.push(jid="any-00001")
    assert (await env.fetch())["jid"] == "any-00001"
    assert seen == ["any-00001"]
