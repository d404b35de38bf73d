"""Lifecycle rules: push, fetch (with waiting), ack, fail, retry backoff, the
dead set, and the periodic sweeps that move jobs along.

The manager decides *what* happens to a job; ``store`` makes each decision one
atomic Redis step.  Middleware chains (``push``, ``fetch``, ``ack``, ``fail``)
let built-in features and plugins alter, refuse or observe jobs.
"""

from __future__ import annotations

import functools
import json
import random
import time
from collections.abc import Callable
from types import CoroutineType
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from . import failure as failures
from . import job as jobs
from . import wire
from .awaitable import resolve
from .errors import CommandError, Discard
from .job import JobError, format_time
from .store import Store
from .sweeps import Sweeps
from .undo import STEP, PushUndo, mark_step

log = Logger()

FETCH_WAIT = 2.0  # seconds a FETCH waits for work, as the real server does
JOB_OVERHEAD = 128  # bytes Redis spends on a stored job beyond its JSON (estimate)

Middleware = Callable[..., Any]


_day: tuple[int, str] = (-1, "")


def local_day(ts: float) -> str:
    """Daily counters use the server's local date, like the real server."""
    global _day
    second = int(ts)
    if _day[0] != second:  # every ACK asks: compute it once per second
        _day = (second, time.strftime("%Y-%m-%d", time.localtime(second)))
    return _day[1]


def _none(_: Any) -> None:
    return None


@functools.lru_cache(maxsize=4096)
def _json_str(value: str) -> str:
    """A worker id as a JSON string (it goes into every reservation)."""
    return json.dumps(value)


def _settle(stored: list[tuple[str, defer.Deferred]], errors: dict[str, str]) -> defer.Deferred:
    """Wait for every stored job of a PUSHB so far, noting refusals by key;
    the first other failure is raised once all have fired.  One callback per
    job: awaiting each in turn, or a DeferredList, cost about twice as much."""
    batch, done, failures = list(stored), defer.Deferred(), []
    stored.clear()
    left = [len(batch)]

    def one(result: Any, key: str) -> None:
        if isinstance(result, Failure):
            if result.check(JobError, CommandError):
                errors[key] = str(result.value)
            elif not failures:
                failures.append(result)
        left[0] -= 1
        if left[0] == 0:
            done.callback(None)

    for key, d in batch:
        d.addBoth(one, key)
    if not batch:
        done.callback(None)
    return done.addCallback(lambda _: failures[0] if failures else None)


class _Waiter:
    """One FETCH parked until a listed queue gets work or its time runs out."""

    __slots__ = ("d", "timer")

    def __init__(self, d: defer.Deferred, timer) -> None:
        self.d = d
        self.timer = timer

    def fire(self, woke: bool) -> None:
        if self.d.called:
            return
        if self.timer.active():
            self.timer.cancel()
        self.d.callback(woke)


class FetchContext:
    """Lets the protocol abandon a FETCH that is only waiting (client gone)."""

    __slots__ = ("waiter",)

    def __init__(self) -> None:
        self.waiter: _Waiter | None = None

    def abandon(self) -> None:
        if self.waiter is not None:
            self.waiter.fire(False)


class Manager(Sweeps):
    def __init__(
        self, store: Store, clock: IReactorTime | None = None, rng: random.Random | None = None
    ) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self.store = store
        self.clock = clock
        self.rng = rng or random.Random()
        self.middleware: dict[str, list[Middleware]] = {
            "push": [],
            "fetch": [],
            "ack": [],
            "fail": [],
            # After a reservation is settled, exactly once: fn(job, outcome,
            # reservation) with outcome "ack", "retry", "dead", "drop" or "discard"
            # and the reservation's reserved_at/expiry/wid (batches, tracking, metrics).
            "settled": [],
            # After an operator removed a job by hand: fn(job, action) with
            # action "discard" or "kill" (see faktory.removal).
            "removed": [],
        }
        # Per middleware: the ``custom`` keys it is about (None: every job).
        self._custom: dict[str, list[tuple[str, ...] | None]] = {c: [] for c in self.middleware}
        # Per PUSH middleware: its undo (or None), run when a later step refuses
        # the job or it cannot be stored, so e.g. a unique lock is not left behind.
        self.undo = PushUndo(self._custom["push"])
        self._push_for_all = False  # some PUSH middleware runs for every job
        # FETCH decodes a job only if some middleware wants it: None = always,
        # else the byte strings one of which must appear in the raw job.
        self._fetch_probe: tuple[bytes, ...] | None = ()
        # queue -> parked FETCHes, oldest first (a dict is an ordered set:
        # O(1) to wake the first and to drop any one when it times out).
        self._waiters: dict[str, dict[_Waiter, None]] = {}
        # Jobs that landed while no parked FETCH of their queue heard of it: an
        # empty FETCH answer that raced one looks again.  A job some parked
        # FETCH was woken for is not counted: that FETCH takes it, and the
        # others sleep on (with many idle workers, counting every push made
        # each empty answer look again, several FETCH scripts per job).
        self._pushes = 0
        self.task_stats: dict[str, dict[str, Any]] = {}
        # Set by faktory.pressure: the bytes of new jobs Redis can still take
        # before its high-water mark (each stored job spends some, each check
        # of Redis's memory sets it again), and the refusal clients get once
        # it is spent, so stored work can still be processed.
        self.push_budget: float = float("inf")
        self.push_blocked = False  # at the high-water mark: no look at Redis helps
        self.push_refusal: CommandError = CommandError("Redis is out of memory for new jobs")
        self.memory_check: Callable[[], defer.Deferred] | None = None

    def now(self) -> float:
        return self.clock.seconds()

    def use(
        self,
        chain: str,
        fn: Middleware,
        custom: tuple[str, ...] | None = None,
        undo: Middleware | None = None,
    ) -> None:
        """Add a middleware to one chain (``push``, ``fetch``, ``ack``, ``fail``,
        ``settled``, ``removed``).  With ``custom`` it runs only for jobs whose ``custom``
        object has one of these keys: most jobs then skip it without a call,
        and FETCH does not even decode them.

        ``undo(job)`` (PUSH only) reverses what ``fn`` did when the PUSH fails
        after ``fn`` finished: a later middleware refused the job, or storing
        it failed.  A middleware that refuses a job undoes its own work."""
        self.middleware[chain].append(fn)
        if chain == "push":
            self.undo.undos.append(undo)
        elif undo is not None:
            raise ValueError("only PUSH middleware has an undo")
        keys = tuple(custom) if custom is not None else None
        self._custom[chain].append(keys)
        if chain == "push" and keys is None:
            self._push_for_all = True
        if chain == "fetch":
            if keys is None or self._fetch_probe is None:
                self._fetch_probe = None
            else:
                self._fetch_probe += tuple(b'"%s"' % k.encode() for k in keys)

    async def _run(self, chain: str, *args: Any) -> None:
        pending = self._chain(chain, *args)
        if pending is not None:
            await pending

    def _chain(self, chain: str, job: dict, *args: Any, start: int = 0) -> defer.Deferred | None:
        """Run a middleware chain; None if every function finished at once,
        else a Deferred for the rest of the chain.

        Most middleware are ``async def`` functions that return at once for a
        job that is not theirs.  Their coroutine is stepped here: if it ends
        on the first step no Deferred is made; if it waits, Twisted resumes it
        from there (awaiting a Deferred re-yields it until it has fired)."""
        fns = self.middleware[chain]
        wants = self._custom[chain]
        custom = job.get("custom")
        if not isinstance(custom, dict) or not custom:
            if None not in wants:
                return None  # every middleware here is about custom keys
            custom = None
        for i in range(start, len(fns)):
            keys = wants[i]
            if keys is not None and (custom is None or not any(k in custom for k in keys)):
                continue
            try:
                result = fns[i](job, *args)
                if isinstance(result, CoroutineType):
                    try:
                        result.send(None)
                    except StopIteration:
                        continue
                    d = defer.ensureDeferred(result)
                    d.addErrback(mark_step, i)
                    return d.addCallback(lambda _, i=i: self._chain(chain, job, *args, start=i + 1))
            except Exception as e:
                mark_step(e, i)
                raise
            if isinstance(result, defer.Deferred):
                d = result
            elif hasattr(result, "__await__"):
                d = defer.ensureDeferred(resolve(result))
            else:
                continue
            d.addErrback(mark_step, i)
            return d.addCallback(lambda _, i=i: self._chain(chain, job, *args, start=i + 1))
        return None

    # -- PUSH ---------------------------------------------------------------------
    # PUSH and ACK are plain functions returning Deferreds (awaitable like the
    # coroutines they were): they run for every job, and a coroutine plus its
    # Deferred wrapper cost about as much as the rest of the Python work.
    def push_raw(self, raw: bytes | str) -> defer.Deferred:
        """A client's PUSH (refused while Redis is short of memory: see pressure)."""
        if self.push_budget <= 0:
            return self._push_after_check(raw)
        try:
            if type(raw) is not str:
                raw = wire.text(raw)
            now = self.now()
            # A PUSH middleware for every job may change it: then it is re-encoded.
            plain = None if self._push_for_all else jobs.parse_plain(raw, now)
            if plain is None:
                return self.push(jobs.check(jobs.parse(raw), now))
            job, tail = plain
            if tail is None:
                return self.push(job)
            return self._store_as_written(job, tail, now)
        except Exception:
            return defer.fail()

    def _store_as_written(self, job: dict, tail: str, now: float) -> defer.Deferred:
        """Enqueue a plain job (``jobs.parse_plain``): no custom keys, so no
        PUSH middleware, and the client's JSON is stored as it is."""
        payload = '{"enqueued_at":"' + format_time(now) + '",' + tail
        self.push_budget -= len(payload) + JOB_OVERHEAD
        queue = job["queue"]
        d = self.store.push(queue, jobs.DEFAULT_PRIORITY, payload)
        # Once stored, not before: a NOSCRIPT retry would put it behind a woken FETCH.
        return d.addCallback(self._pushed, queue)

    def _push_after_check(self, raw: bytes | str) -> defer.Deferred:
        """The memory budget is spent: refuse at the high-water mark, else
        push once a fresh look at Redis's memory has renewed the budget."""
        if self.push_blocked or self.memory_check is None:
            return defer.fail(self.push_refusal)

        def decide(_):
            if self.push_budget <= 0:
                raise self.push_refusal
            return self.push_raw(raw)

        return self.memory_check().addCallback(decide)

    def push(self, job: dict, run_middleware: bool = True) -> defer.Deferred:
        """Store a validated job: scheduled if ``at`` is ahead, else enqueued.
        If a step fails, the PUSH middleware that had finished are undone."""
        try:
            if run_middleware and self.middleware["push"] and self._pushing_middleware(job):
                try:
                    pending = self._chain("push", job)
                    if pending is not None:
                        d = pending.addCallback(lambda _: self._store_job(job))
                    else:
                        d = self._store_job(job)
                except Exception:
                    d = defer.fail()
                if self.undo.wanted(job):
                    d.addErrback(self.undo.errback, job)
                return d
            return self._store_job(job)
        except Exception:
            return defer.fail()

    def _pushing_middleware(self, job: dict) -> bool:
        """Whether some PUSH middleware runs for ``job``.  Most middleware are
        about ``custom`` keys (see ``use``): a job without ``custom`` then
        skips the chain and its undo bookkeeping without a call."""
        if self._push_for_all:
            return True
        custom = job.get("custom")
        return isinstance(custom, dict) and bool(custom)

    def _store_job(self, job: dict) -> defer.Deferred:
        now = self.now()
        at = jobs.scheduled_at(job, now) if "at" in job else None
        if at is not None:
            job.pop("enqueued_at", None)
            payload = jobs.serialize(job)
            self.push_budget -= len(payload) + JOB_OVERHEAD
            d = self.store.schedule("scheduled", at, payload)
            return d.addCallback(_none)
        job["enqueued_at"] = format_time(now)
        queue = job["queue"]
        payload = jobs.serialize(job)
        self.push_budget -= len(payload) + JOB_OVERHEAD
        d = self.store.push(queue, jobs.priority(job), payload)
        return d.addCallback(self._pushed, queue)

    def _pushed(self, _: Any, queue: str) -> None:
        self.notify(queue)

    async def push_batch(self, raw: bytes | str) -> dict[str, str]:
        """PUSHB: each job on its own; returns {jid: error} for the ones refused.

        Jobs that no middleware holds up are stored pipelined (one write to
        Redis for many jobs); a job whose middleware must wait first lets the
        jobs before it land, so the batch keeps its order."""
        if self.push_budget <= 0 and not self.push_blocked and self.memory_check is not None:
            await self.memory_check()
        if self.push_budget <= 0:
            raise self.push_refusal
        if type(raw) is not str:
            raw = wire.text(raw)
        plain = None if self._push_for_all else jobs.parse_batch_plain(raw)
        batch = [job for job, _ in plain] if plain is not None else jobs.parse_batch(raw)
        now = self.now()
        created = format_time(now)
        errors: dict[str, str] = {}
        stored: list[tuple[str, defer.Deferred]] = []
        try:
            for n, job in enumerate(batch):
                key = job.get("jid", "")  # Go keys its answer by jid, even an empty one
                checked = None
                try:
                    if plain is not None:
                        job, tail = jobs.as_written(job, plain[n][1], now)
                        if tail is not None:
                            stored.append((key, self._store_as_written(job, tail, now)))
                            continue
                    if not job.get("created_at"):
                        job["created_at"] = created
                    checked = jobs.check(job, now)
                    pending = self._chain("push", job) if self.middleware["push"] else None
                    if pending is not None:
                        await _settle(stored, errors)
                        await pending
                except Exception as e:
                    if checked is not None and self.undo.wanted(job):
                        await self.undo.run(job, getattr(e, STEP, 0))
                    if not isinstance(e, (JobError, CommandError)):
                        raise
                    errors[key] = str(e)
                    continue
                d = self._store_job(job)
                if self.undo.wanted(job):
                    d.addErrback(self.undo.errback, job)
                stored.append((key, d))
        finally:
            await _settle(stored, errors)
        return errors

    # -- FETCH ----------------------------------------------------------------
    def notify(self, queue: str) -> None:
        """A job landed in ``queue``: wake one FETCH waiting on it."""
        waiting = self._waiters.get(queue)
        while waiting:
            waiter = next(iter(waiting))
            if waiter.d.called:
                del waiting[waiter]
                continue
            waiter.fire(True)  # unparks it from every queue it waits on
            return
        self._pushes += 1  # nobody was parked on it: a FETCH in flight must look again

    def remote_notify(self, message: bytes | str) -> None:
        """A pub/sub message ``<origin> <queue>`` from some server's PUSH or sweep."""
        if isinstance(message, bytes):
            message = message.decode()
        origin, _, queue = message.partition(" ")
        if origin != self.store.origin and queue:
            self.notify(queue)

    def _park(self, queues: list[str], timeout: float, ctx: FetchContext) -> defer.Deferred:
        d = defer.Deferred()
        waiter = _Waiter(d, self.clock.callLater(timeout, lambda: waiter.fire(False)))
        for q in queues:
            self._waiters.setdefault(q, {})[waiter] = None
        ctx.waiter = waiter

        def unpark(result):
            ctx.waiter = None
            for q in queues:
                waiting = self._waiters.get(q)
                if waiting is not None:
                    waiting.pop(waiter, None)
                    if not waiting:
                        del self._waiters[q]
            return result

        return d.addBoth(unpark)

    def fetch(
        self, queues: list[str], wid: str = "", ctx: FetchContext | None = None
    ) -> defer.Deferred:
        """The next job from the first non-empty queue, waiting up to 2 s for one.

        Fires with the job's JSON bytes or None.  When work is queued and no
        FETCH middleware is about the job, this is one Redis call and two
        callbacks; waiting and middleware take the slower ``_fetch`` loop."""
        now = self.now()
        pushes = self._pushes
        d = self._reserve(queues, wid, now)
        return d.addCallback(self._fetched, queues, wid, ctx, now + FETCH_WAIT, pushes)

    def _reserve(self, queues: list[str], wid: str, now: float) -> defer.Deferred:
        """One FETCH script: pop and reserve the next job (bytes), None, or 0 (quiet)."""
        return self.store.fetch(queues, now, format_time(now), wid, _json_str(wid))

    def _fetched(self, raw, queues, wid, ctx, deadline, pushes):
        if raw:
            probe = self._fetch_probe
            # A job without "custom" (no string can hold that with its quotes)
            # concerns no FETCH middleware here: one scan instead of one per key.
            if probe is not None and (b'"custom":' not in raw or not any(p in raw for p in probe)):
                return raw
        return defer.Deferred.fromCoroutine(
            self._fetch(raw, queues, wid, ctx or FetchContext(), deadline, pushes)
        )

    async def _fetch(
        self, raw: Any, queues: list[str], wid: str, ctx: FetchContext, deadline: float, pushes: int
    ) -> bytes | None:
        """The rest of a FETCH, given the first answer from Redis."""
        while True:
            if raw == 0:
                # Quiet or terminating: no work, but don't let the client spin.
                await self._park([], max(0.0, deadline - self.now()), ctx)
                return None
            if raw is not None:
                if not self.middleware["fetch"]:
                    return raw
                job = jobs.loads_stored(raw)
                try:
                    pending = self._chain("fetch", job)  # no coroutine when all answer at once
                    if pending is not None:
                        await pending
                except Discard as e:
                    log.info("JID {jid}: Halt: {why}", jid=job.get("jid"), why=e)
                    reservation = await self.store.reservation(job["jid"])
                    if reservation is not None and await self.store.settle_failure(
                        job["jid"], "", reservation, "", 0, ""
                    ):
                        res = json.loads(reservation)
                        res.pop("job", None)
                        await self._run("settled", job, "discard", res)
                except BaseException:
                    # Refused by middleware: the job goes back into its queue.
                    await self.release(job)
                    raise
                else:
                    return raw
            else:
                # Empty.  If a push landed while the answer was on its way, look
                # again rather than sleep through it, but never past the deadline:
                # a FETCH that keeps losing the race to other workers still gets
                # its null after 2 s, as clients expect.
                remaining = deadline - self.now()
                if remaining <= 0:
                    return None
                if pushes == self._pushes and not await self._park(queues, remaining, ctx):
                    return None
            pushes = self._pushes
            raw = await self._reserve(queues, wid, self.now())

    async def release(self, job: dict) -> None:
        """Undo a reservation without counting it (e.g. a FETCH middleware refusal)."""
        raw = await self.store.reservation(job["jid"])
        if raw is None:
            return
        stored = failures.stored_job(raw)
        if stored is None or not jobs.QUEUE_NAME.match(str(stored.get("queue"))):
            return  # unreadable: the reaper moves it to the dead set when it expires
        await self.store.release(
            job["jid"], raw, stored["queue"], jobs.priority(stored), failures.serialize(stored)
        )

    # -- ACK / FAIL -----------------------------------------------------------
    def ack(self, jid: str) -> defer.Deferred:
        return self.store.ack(jid, local_day(self.now())).addCallback(self._acked, jid)

    def _acked(self, raw: bytes | None, jid: str) -> defer.Deferred | None:
        if raw is None:
            log.debug("ACK for unknown job {jid}", jid=jid)
            return None
        if self.middleware["ack"] or self.middleware["settled"]:
            try:
                reservation = jobs.loads_stored(raw)
                job = reservation.pop("job")
            except (ValueError, RecursionError, AttributeError, KeyError):
                log.warn("ACK of job {jid}: its reservation cannot be read", jid=jid)
                return None
            if not isinstance(job, dict):
                return None
            pending = self._chain("ack", job)
            if pending is not None:
                return pending.addCallback(
                    lambda _: self._chain("settled", job, "ack", reservation)
                )
            return self._chain("settled", job, "ack", reservation)
        return None

    async def fail(
        self, jid: str, errtype: Any = "", message: Any = "", backtrace: Any = None
    ) -> None:
        raw = await self.store.reservation(jid)
        if raw is None:
            raise CommandError(f"Job not found {jid}")
        await self._fail_reservation(jid, raw, errtype, message, backtrace)

    async def _fail_reservation(
        self, jid: str, raw: bytes, errtype: Any, message: Any, backtrace: Any
    ) -> bool:
        job = failures.stored_job(raw)
        if job is None:
            return await self._bury_unreadable(jid, raw)
        now = self.now()
        failure = failures.record(job, now, errtype, message, backtrace)
        if self.middleware["fail"]:
            await self._run("fail", job, failure)
        target, score = failures.decide(job, now, self.rng)
        settled = await self.store.settle_failure(
            jid, local_day(now), raw, target, score, failures.serialize(job)
        )
        if settled and self.middleware["settled"]:
            reservation = json.loads(raw)
            reservation.pop("job", None)
            outcome = {"retries": "retry", "dead": "dead"}.get(target, "drop")
            await self._run("settled", job, outcome, reservation)
        return settled

    async def _bury_unreadable(self, jid: str, raw: bytes) -> bool:
        """A reservation whose job cannot be read cannot be retried: it goes to
        the dead set as stored, counted as a failure, rather than stay reserved."""
        now = self.now()
        log.warn("Job {jid}: its reservation cannot be read; moved to the dead set", jid=jid)
        stored = raw
        end = raw.rfind(b',"reserved_at":"')
        if raw.startswith(b'{"job":') and end > 7:
            stored = raw[7:end]  # the job as it was queued
        return await self.store.settle_failure(
            jid, local_day(now), raw, "dead", now + jobs.DEAD_TTL, stored.decode("utf-8", "replace")
        )
