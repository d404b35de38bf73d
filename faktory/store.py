"""Every Redis key the core uses, and the calls of its Lua scripts (their
sources are the ``faktory/lua/*.lua`` files, see ``faktory.luascript``).
Returns Python values; knows nothing of RESP or of lifecycle rules.

Layout (all keys under one prefix, ``fk:`` by default, so FLUSH, backups and a
shared Redis stay clean):

=========================  =====  ===========================================
``queues``                 SET    known queue names
``paused``                 SET    paused queue names
``q:<name>:<p>``           LIST   jobs of priority p (1-9); LPUSH in, RPOP out
``qp:<name>``              ZSET   priorities of ``<name>`` that hold jobs
``scheduled``              ZSET   score = ``at``; member = job JSON
``retries``                ZSET   score = next retry; member = job JSON
``dead``                   ZSET   score = expiry (death + 180 days)
``working``                HASH   jid -> reservation JSON
``working:exp``            ZSET   jid scored by reservation expiry
``held:<jid>``             LIST   "<p> <queue> <job>" of copies of a jid fetched
                                  while another copy was reserved (see FETCH)
``held``                   ZSET   jids with held copies, by when last checked
``stat:processed[:day]``   STR    counters (and daily history, kept HISTORY_TTL:
``stat:failures[:day]``    STR    see ``faktory.retention``)
``wait:<name>``            STR    set (3 s TTL) while some server has a FETCH
                                  waiting on the queue; PUSH publishes only then
``notify``                 chan   pub/sub channel carrying ``<origin> <queue>``
``throttle:conf``          HASH   queue -> "concurrency timeout worker rate period"
                                  (written by ``faktory.pro.throttle``)
``throttle:<q>``           ZSET   jids holding a concurrency slot, by lock expiry
``throttle:<q>:w:<wid>``   ZSET   the same, per worker process
``throttle:<q>:r:<n>``     STR    jobs fetched in rate window n (TTL: the period)
``throttle:held``          HASH   jid -> "<queue> <wid>" of a job holding slots
=========================  =====  ===========================================

FETCH walks the requested queues in order and pops from the highest non-empty
priority: O(log 9) per job, FIFO within a priority, nothing scanned.  Every
transition is one script, so two servers sharing a Redis cannot both take a
job or lose one.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from . import luascript
from .errors import gather
from .luascript import Script
from .namespace import glob_escape
from .redisconn import connect  # noqa: F401 - it lived here; kept importable

log = Logger()

HISTORY_DAYS = 180  # days of daily counters the web UI can show
HISTORY_TTL = (HISTORY_DAYS + 2) * 86400  # a day's counters outlive that, then go


def _script(name: str, fragments: dict[str, str] | None = None) -> Script:
    """A core script from ``faktory/lua/<name>.lua`` (see ``faktory.luascript``)."""
    return luascript.load(name, fragments=fragments, constants={"HISTORY_TTL": HISTORY_TTL})


def _jid_of(raw: bytes) -> Any:
    try:
        job = json.loads(raw)
    except ValueError:
        return None
    return job.get("jid") if isinstance(job, dict) else None


def _s(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


# Store attribute -> script name, for ``Store.use_fragment``.
_SCRIPT_NAMES = {
    "_push": "push",
    "_fetch": "fetch",
    "_ack": "ack",
    "_fail": "fail",
    "_release": "release",
    "_promote": "promote",
    "_purge": "purge",
    "_held_sweep": "held_sweep",
    "_queue_sizes": "queue_sizes",
    "_worker_connect": "worker_connect",
    "_worker_disconnect": "worker_disconnect",
    "_worker_beat": "worker_beat",
    "_worker_reap": "worker_reap",
    "_queue_page": "queue_page",
    "_queue_delete": "queue_delete",
    "_set_filter": "set_filter",
    "_set_act": "set_act",
    "_queue_oldest": "queue_oldest",
    "_queue_control": "queue_control",
    "_mutate_step": "mutate_step",
}


class Store:
    """Talks Redis for the manager and the admin API."""

    SETS = ("scheduled", "retries", "dead")

    _push = _script("push")
    _fetch = _script("fetch")
    _ack = _script("ack")
    _fail = _script("fail")
    _release = _script("release")
    _promote = _script("promote")
    _purge = _script("purge")
    _held_sweep = _script("held_sweep")
    _queue_sizes = _script("queue_sizes")
    _worker_connect = _script("worker_connect")
    _worker_disconnect = _script("worker_disconnect")
    _worker_beat = _script("worker_beat")
    _worker_reap = _script("worker_reap")

    def __init__(self, redis, prefix: str = "fk:", origin: str = "-") -> None:
        self.redis = redis
        self.prefix = prefix
        # Tells our own notifications apart from other servers' (see manager).
        self.origin = origin
        self.notify_channel = prefix + "notify"
        self._fragments: dict[str, str] = {}

    def use_fragment(self, name: str, text: str) -> None:
        """Build this store's scripts with ``text`` in place of the Lua fragment
        ``name`` (the throttle feature's limits go into FETCH, ACK, FAIL and
        RELEASE this way, in the same atomic step as the pop or the ACK)."""
        self._fragments[name] = text
        for attr, value in vars(Store).items():
            if isinstance(value, Script) and attr in _SCRIPT_NAMES:
                script = _script(_SCRIPT_NAMES[attr], self._fragments)
                if script.sha != value.sha:
                    setattr(self, attr, script)

    def key(self, name: str) -> str:
        return self.prefix + name

    # -- jobs -----------------------------------------------------------------
    def push(self, queue: str, priority: int, payload: str) -> defer.Deferred:
        return self._push(self.redis, (self.prefix, self.origin, queue, priority, payload))

    def schedule(self, name: str, score: float, payload: str) -> defer.Deferred:
        return self.redis.execute_command("ZADD", self.prefix + name, repr(score), payload)

    def fetch(
        self, queues: list[str], now: float, now_str: str, wid: str, wid_json: str
    ) -> defer.Deferred:
        """Pop and reserve the next job: fires with its JSON bytes, None when
        the queues are empty, or 0 when the worker is quiet/terminating."""
        return self._fetch(self.redis, (self.prefix, repr(now), now_str, wid_json, wid, *queues))

    def ack(self, jid: str, day: str) -> defer.Deferred:
        """Fires with the reservation JSON bytes, or None if it was not reserved."""
        return self._ack(self.redis, (self.prefix, jid, day))

    def reservation(self, jid: str) -> defer.Deferred:
        return self.redis.execute_command("HGET", self.prefix + "working", jid)

    def settle_failure(
        self, jid: str, day: str, reservation: bytes, target: str, score: float, payload: str
    ) -> defer.Deferred:
        """Fires True when this call removed the reservation and stored the outcome."""
        d = self._fail(
            self.redis, (self.prefix, jid, day, reservation, target, repr(score), payload)
        )
        return d.addCallback(bool)

    def release(
        self, jid: str, reservation: bytes, queue: str, priority: int, payload: str
    ) -> defer.Deferred:
        d = self._release(self.redis, (self.prefix, jid, reservation, queue, priority, payload))
        return d.addCallback(bool)

    def release_orphan(
        self,
        jid: str,
        reservation: bytes,
        queue: str,
        priority: int,
        payload: str,
        wid: str,
        cutoff: float,
    ) -> defer.Deferred:
        """Release a reservation only while its worker process ``wid`` is gone
        (no heartbeat since ``cutoff``): fires with 1 (released), 0 (the
        reservation changed) or -1 (the worker is alive)."""
        args = (self.prefix, jid, reservation, queue, priority, payload, wid, repr(cutoff))
        return self._release(self.redis, args).addCallback(int)

    def drop_orphan_expiry(self, jid: str) -> defer.Deferred:
        """Remove an expiry entry whose reservation is already gone."""
        return self.redis.execute_command("ZREM", self.prefix + "working:exp", jid)

    def expired_reservations(self, now: float, limit: int = 100, skip: int = 0) -> defer.Deferred:
        d = self.redis.execute_command(
            "ZRANGEBYSCORE", self.prefix + "working:exp", "-inf", repr(now), "LIMIT", skip, limit
        )
        return d.addCallback(lambda jids: [_s(j) for j in jids])

    def extend_reservation(self, jid: str, until: float) -> defer.Deferred:
        """Push a reservation's expiry later (never earlier)."""
        return self.redis.execute_command(
            "ZADD", self.prefix + "working:exp", "XX", "GT", repr(until), jid
        )

    def promote(self, name: str, now: float, now_str: str, limit: int = 100) -> defer.Deferred:
        # Origin '*': the notification also wakes FETCHes waiting on this
        # server, which has no local push to learn of the promoted jobs from.
        return self._promote(self.redis, (self.prefix, "*", name, repr(now), now_str, limit))

    def release_held(self, now: float, cutoff: float, limit: int = 100) -> defer.Deferred:
        """Hand back held copies of jids no longer reserved; fires with the count."""
        return self._held_sweep(self.redis, (self.prefix, repr(now), repr(cutoff), limit))

    def purge(self, name: str, now: float, limit: int = 100) -> defer.Deferred:
        return self._purge(self.redis, (self.prefix, name, repr(now), limit))

    # -- workers ----------------------------------------------------------------
    def worker_connect(self, wid: str, now: float, info_json: str) -> defer.Deferred:
        return self._worker_connect(self.redis, (self.prefix, wid, repr(now), info_json))

    def worker_disconnect(self, wid: str) -> defer.Deferred:
        return self._worker_disconnect(self.redis, (self.prefix, wid))

    def worker_beat(
        self, wid: str, now: float | None, rss_kb: int | None = None, state: str = ""
    ) -> defer.Deferred:
        """Fires with the worker's state after the beat, or None if unknown."""
        args = (
            self.prefix,
            wid,
            "" if now is None else repr(now),
            "" if rss_kb is None else int(rss_kb),
            state,
        )
        return self._worker_beat(self.redis, args).addCallback(lambda r: _s(r) or None)

    def reap_workers(self, cutoff: float) -> defer.Deferred:
        d = self._worker_reap(self.redis, (self.prefix, repr(cutoff)))
        return d.addCallback(lambda wids: [_s(w) for w in wids])

    @defer.inlineCallbacks
    def workers(self):
        """Every live worker record: [{wid, info..., beat, rss_kb, state, conns}]."""
        wids = yield self.redis.execute_command("ZRANGE", self.prefix + "workers", 0, -1)
        records = yield gather(
            [self.redis.execute_command("HGETALL", self.prefix + "worker:" + _s(w)) for w in wids]
        )
        out = []
        for wid, flat in zip(wids, records):
            if not flat:
                continue
            rec = {_s(flat[i]): _s(flat[i + 1]) for i in range(0, len(flat), 2)}
            rec["wid"] = _s(wid)
            out.append(rec)
        return out

    # -- queues and sets -----------------------------------------------------
    @defer.inlineCallbacks
    def queue_names(self):
        names = yield self.redis.execute_command("SMEMBERS", self.prefix + "queues")
        return sorted(_s(n) for n in names)

    @defer.inlineCallbacks
    def queue_sizes(self, names: list[str] | None = None):
        """{queue: size} for the given queues (default: every known queue)."""
        if names is None:
            names = yield self.queue_names()
        if not names:
            return {}
        flat = yield self._queue_sizes(self.redis, (self.prefix, *names))
        return {_s(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}

    @defer.inlineCallbacks
    def set_sizes(self):
        names = ("scheduled", "retries", "dead")
        sizes = yield gather(
            [self.redis.execute_command("ZCARD", self.prefix + n) for n in names]
            + [self.redis.execute_command("HLEN", self.prefix + "working")]
        )
        return dict(zip(names + ("working",), (int(s) for s in sizes)))

    @defer.inlineCallbacks
    def counters(self, day: str | None = None):
        keys = ["stat:processed", "stat:failures"]
        if day:
            keys += [f"stat:processed:{day}", f"stat:failures:{day}"]
        values = yield self.redis.execute_command("MGET", *(self.prefix + k for k in keys))
        return [_count(v) for v in values]

    @defer.inlineCallbacks
    def flush(self):
        """Delete every key under our prefix, and nothing else.

        Worker records survive, as the real server's in-memory heartbeats do:
        connected workers keep BEATing after a client test suite's FLUSH."""
        cursor = b"0"
        workers = (self.prefix + "workers").encode()
        worker = (self.prefix + "worker:").encode()
        while True:
            cursor, keys = yield self.redis.execute_command(
                "SCAN", cursor, "MATCH", glob_escape(self.prefix) + "*", "COUNT", 1000
            )
            keys = [k for k in keys if k != workers and not k.startswith(worker)]
            if keys:
                yield self.redis.execute_command("UNLINK", *keys)
            if cursor in (b"0", 0, "0"):
                return

    # -- web UI: paging and per-entry actions ------------------------------------
    _queue_page = _script("queue_page")
    _queue_delete = _script("queue_delete")
    _set_filter = _script("set_filter")
    _set_act = _script("set_act")

    @defer.inlineCallbacks
    def queue_page(self, queue: str, start: int, count: int):
        """(total, [(priority, job bytes)]) for one page of a queue."""
        flat = yield self._queue_page(self.redis, (self.prefix, queue, start, count))
        return int(flat[0]), [(int(flat[i]), flat[i + 1]) for i in range(1, len(flat), 2)]

    def queue_delete(self, queue: str, items: list[tuple[int, bytes]]) -> defer.Deferred:
        """Remove these exact (priority, job) entries; fires with how many went."""
        if not items:
            return defer.succeed(0)
        args = [self.prefix, queue]
        for priority, raw in items:
            args += [priority, raw]
        return self._queue_delete(self.redis, args).addCallback(int)

    @defer.inlineCallbacks
    def set_page(self, name: str, start: int, count: int, reverse: bool = False):
        """(total, [(score, job bytes)]): one page of a sorted set by index."""
        cmd = "ZREVRANGE" if reverse else "ZRANGE"
        key = self.prefix + name
        total, flat = yield gather(
            [
                self.redis.execute_command("ZCARD", key),
                self.redis.execute_command(cmd, key, start, start + count - 1, "WITHSCORES"),
            ]
        )
        return int(total), [(_s(flat[i + 1]), flat[i]) for i in range(0, len(flat), 2)]

    @defer.inlineCallbacks
    def set_filter(self, name: str, start: int, scan: int, reverse: bool, jobtype: str, text: str):
        """Matches among ``scan`` members from index ``start``:
        (next index or None at the end, [(score, job bytes)])."""
        flat = yield self._set_filter(
            self.redis,
            (self.prefix + name, start, scan, "1" if reverse else "0", jobtype, text),
        )
        nxt = int(flat[0])
        return (None if nxt < 0 else nxt), [
            (_s(flat[i]), flat[i + 1]) for i in range(1, len(flat), 2)
        ]

    @defer.inlineCallbacks
    def set_entry(self, name: str, score: str, jid: str):
        """The member of a sorted set with this exact score and jid, or None."""
        members = yield self.redis.execute_command(
            "ZRANGEBYSCORE", self.prefix + name, score, score
        )
        needle = ('"jid":' + json.dumps(jid, ensure_ascii=False)).encode()
        for raw in members:
            if needle in raw and _jid_of(raw) == jid:  # not a job that mentions it
                return raw
        return None

    def set_act(
        self,
        name: str,
        action: str,
        keys: list[tuple[str, str]] | None,
        now_str: str,
        dead_score: float,
        limit: int = 100,
    ) -> defer.Deferred:
        """``delete``/``retry``/``kill`` the entries ``keys`` ([(score, jid)]),
        or with ``keys=None`` the first ``limit`` entries; fires with the count."""
        args = [self.prefix, self.origin, name, action, now_str, repr(dead_score)]
        if keys is None:
            args += ["*", limit]
        else:
            for score, jid in keys:
                args += [score, '"jid":' + json.dumps(jid, ensure_ascii=False), jid]
        return self._set_act(self.redis, args).addCallback(int)

    def set_clear(self, name: str) -> defer.Deferred:
        return self.redis.execute_command("UNLINK", self.prefix + name)

    @defer.inlineCallbacks
    def busy_page(self, start: int, count: int):
        """(total, [reservation bytes]) ordered by reservation expiry."""
        total, jids = yield gather(
            [
                self.redis.execute_command("HLEN", self.prefix + "working"),
                self.redis.execute_command(
                    "ZRANGE", self.prefix + "working:exp", start, start + count - 1
                ),
            ]
        )
        if not jids:
            return int(total), []
        rows = yield self.redis.execute_command("HMGET", self.prefix + "working", *jids)
        return int(total), [r for r in rows if r is not None]

    _queue_oldest = _script("queue_oldest")
    _queue_control = _script("queue_control")
    _mutate_step = _script("mutate_step")

    def mutate_step(
        self,
        name: str,
        cursor: bytes | str,
        match: str,
        op: str,
        now_str: str,
        dead_score: float,
        needle: str,
        jids: list[str],
    ) -> defer.Deferred:
        """One ZSCAN step of a MUTATE, acted on atomically: (next cursor, count).
        ``jids`` alternates ``'"jid":<json>'`` needles and the jids they find."""
        args = (
            self.prefix,
            self.origin,
            name,
            cursor,
            match,
            op,
            now_str,
            repr(dead_score),
            needle,
        )
        d = self._mutate_step(self.redis, args + tuple(jids))
        return d.addCallback(lambda r: (r[0], int(r[1])))

    @defer.inlineCallbacks
    def queue_oldest(self, names: list[str]):
        """{queue: [enqueued_at of the oldest job of each priority]}."""
        if not names:
            return {}
        flat = yield self._queue_oldest(self.redis, (self.prefix, *names))
        return {_s(flat[i]): [_s(x) for x in flat[i + 1]] for i in range(0, len(flat), 2)}

    def queue_control(self, op: str, names: list[str]) -> defer.Deferred:
        """``pause``, ``resume`` or ``remove`` these known queues; fires with the count."""
        if not names:
            return defer.succeed(0)
        return self._queue_control(self.redis, (self.prefix, op, *names)).addCallback(int)

    @defer.inlineCallbacks
    def paused_queues(self):
        names = yield self.redis.execute_command("SMEMBERS", self.prefix + "paused")
        return {_s(n) for n in names}

    def reservations(self) -> defer.Deferred:
        """Every reservation (bytes): only for pages that checked HLEN is small."""
        return self.redis.execute_command("HVALS", self.prefix + "working")

    @defer.inlineCallbacks
    def redis_info_sections(self, *names: str):
        """INFO text of these sections (one call each: Redis 6 takes one)."""
        parts = yield gather([self.redis.execute_command("INFO", name) for name in names])
        return b"\n".join(parts)

    def redis_info(self) -> defer.Deferred:
        """Redis INFO text (bytes)."""
        return self.redis.execute_command("INFO")


def _count(value: bytes | None) -> int:
    """A stored counter; one some other program garbled reads as 0 rather
    than failing INFO, the dashboard and the metrics."""
    try:
        return int(value or 0)
    except ValueError:
        return 0
