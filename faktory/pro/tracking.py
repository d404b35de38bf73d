"""Job tracking (Faktory Enterprise): a long job reports its progress, and
anyone can ask where a job is in its life.

Wire (reference §9.5; Go ``client/tracking.go``, Ruby ``tracking.rb``, faktory-rs)::

    TRACK SET {"jid":..,"percent":12,"desc":"..","reserve_until":"<RFC3339>"}  -> +OK
    TRACK GET <jid>  -> $ {"jid":..,"state":..,"updated_at":..,"percent":..,"desc":..}

Only jobs pushed with ``custom.track = 1`` get a lifecycle state: ``enqueued``
(at PUSH, scheduled or not), ``working`` (FETCH), ``success`` (ACK),
``failed`` (FAIL with a retry to come, or dropped), ``dead`` (out of
retries).  Anything else reads as ``{"jid":..,"state":"unknown","updated_at":""}``.
A finished job's record stays readable for 30 minutes; one still on its way
lives as long as a job can reasonably wait (30 days).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from .. import luascript, wire
from ..errors import CommandError
from ..job import MAX_RESERVE_FOR, dumps, format_time, parse_time
from ..protocol import OK
from ..store import Store

log = Logger()

DONE_TTL = 30 * 60  # after success, death or a final failure
ACTIVE_TTL = 30 * 24 * 3600  # enqueued, working or waiting for a retry

# Lifecycle outcome (manager "settled" chain) -> state and how long it is kept.
_SETTLED = {
    "ack": ("success", DONE_TTL),
    "retry": ("failed", ACTIVE_TTL),
    "dead": ("dead", DONE_TTL),
    "drop": ("failed", DONE_TTL),
    "discard": ("failed", DONE_TTL),
}


MAX_JID = 256


def _s(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class TrackingStore:
    """``track:<jid>`` HASH: state, updated_at, percent, desc (with a TTL)."""

    _state = luascript.load("tracking_state", "faktory.pro")
    _progress = luascript.load("tracking_progress", "faktory.pro")

    def __init__(self, store: Store) -> None:
        self.redis = store.redis
        self.prefix = store.prefix

    def set_state(self, jid: str, state: str, now: float, ttl: int) -> defer.Deferred:
        return self._state(self.redis, (self.prefix, jid, state, format_time(now), ttl))

    def set_progress(
        self, jid: str, now: float, percent: int | None, desc: str | None
    ) -> defer.Deferred:
        args = (
            self.prefix,
            jid,
            format_time(now),
            "" if percent is None else percent,
            "0" if desc is None else "1",
            desc or "",
            DONE_TTL,
        )
        return self._progress(self.redis, args)

    @defer.inlineCallbacks
    def get(self, jid: str):
        """{state, updated_at, percent, desc} as stored, or None."""
        values = yield self.redis.execute_command(
            "HMGET", self.prefix + "track:" + jid, "state", "updated_at", "percent", "desc"
        )
        if values[1] is None:
            return None
        return dict(zip(("state", "updated_at", "percent", "desc"), (_s(v) for v in values)))


def check_jid(jid: str) -> None:
    """A tracked jid must look like one a PUSH accepts: 8 to 256 characters,
    no spaces or control characters (``track:<jid>`` is the only key it names)."""
    if not 8 <= len(jid) <= MAX_JID or any(c.isspace() or ord(c) < 32 for c in jid):
        raise CommandError(
            f"invalid jid {jid[:80]!r}: 8 to {MAX_JID} characters, no spaces or control characters"
        )


def tracked(job: dict) -> bool:
    custom = job.get("custom")
    return bool(custom) and custom.get("track") in (1, True, "1")


class TrackingPlugin:
    name = "tracking"

    def __init__(self) -> None:
        self.server: Any = None
        self.store: TrackingStore | None = None

    def setup(self, server) -> None:
        self.server = server
        self.store = TrackingStore(server.store)
        server.factory.add_command("TRACK", self.command)
        server.manager.use("push", self.on_push, custom=("track",))
        server.manager.use("fetch", self.on_fetch, custom=("track",))
        server.manager.use("settled", self.on_settled, custom=("track",))

    def shutdown(self, server) -> None:
        pass

    def now(self) -> float:
        return self.server.reactor.seconds()

    # -- lifecycle ----------------------------------------------------------
    async def on_push(self, job: dict) -> None:
        if not tracked(job):
            return
        now = self.now()
        ttl = ACTIVE_TTL
        at = job.get("at")
        if at:
            ttl += max(0, int(parse_time(at) - now))
        await self.store.set_state(job["jid"], "enqueued", now, ttl)

    async def on_fetch(self, job: dict) -> None:
        if tracked(job):
            await self.store.set_state(job["jid"], "working", self.now(), ACTIVE_TTL)

    async def on_settled(self, job: dict, outcome: str, reservation: dict) -> None:
        if not tracked(job):
            return
        state, ttl = _SETTLED.get(outcome, ("failed", DONE_TTL))
        try:
            await self.store.set_state(job["jid"], state, self.now(), ttl)
        except Exception:  # noqa: BLE001 - the job itself is settled; never fail the ACK
            log.failure("Tracking update failed for job {jid}", jid=job.get("jid"))

    # -- protocol -------------------------------------------------------------
    def command(self, protocol, arg: str):
        sub, _, rest = arg.partition(" ")
        sub, rest = sub.upper(), rest.strip()
        if sub == "GET":
            if not rest or " " in rest:
                raise CommandError("TRACK GET takes one job id")
            check_jid(rest)
            return defer.Deferred.fromCoroutine(self.cmd_get(rest))
        if sub == "SET":
            return defer.Deferred.fromCoroutine(self.cmd_set(rest))
        raise CommandError(f"unknown TRACK subcommand {sub!r}: use GET or SET")

    async def cmd_get(self, jid: str) -> str:
        rec = await self.store.get(jid)
        if rec is None:
            return dumps({"jid": jid, "state": "unknown", "updated_at": ""})
        out: dict[str, Any] = {
            "jid": jid,
            "state": rec["state"] or "unknown",
            "updated_at": rec["updated_at"],
        }
        if rec["percent"] is not None:
            out["percent"] = int(rec["percent"])
        if rec["desc"] is not None:
            out["desc"] = rec["desc"]
        return dumps(out)

    async def cmd_set(self, rest: str):
        try:
            data = wire.loads(rest)  # Go's rules: depth, NaN, surrogates, number range
        except ValueError as e:
            raise CommandError(f"invalid TRACK SET: {e}") from None
        if not isinstance(data, dict):
            raise CommandError("invalid TRACK SET: takes a JSON object with a jid")
        jid = data.get("jid")
        if not isinstance(jid, str) or not jid:
            raise CommandError("invalid TRACK SET: jid is required")
        check_jid(jid)
        percent = data.get("percent")
        if percent is not None:
            if isinstance(percent, float) and percent.is_integer():
                percent = int(percent)
            if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
                raise CommandError("invalid TRACK SET: percent must be an integer from 0 to 100")
        desc = data.get("desc")
        if desc is not None and not isinstance(desc, str):
            raise CommandError("invalid TRACK SET: desc must be a string")
        until = data.get("reserve_until")
        now = self.now()
        if until is not None and until != "":
            try:
                ts = parse_time(until) if isinstance(until, str) else parse_time("")
            except ValueError as e:
                raise CommandError(f"invalid TRACK SET: reserve_until {until!r}: {e}") from None
            if ts > now:
                # Never earlier than the current expiry; at most as far ahead
                # as the longest reservation (a day, as clients enforce).
                await self.server.store.extend_reservation(jid, min(ts, now + MAX_RESERVE_FOR))
        await self.store.set_progress(jid, now, percent, desc[:1000] if desc else desc)
        return OK
