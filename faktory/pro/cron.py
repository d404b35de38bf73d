"""Cron: periodic jobs from ``[[cron]]`` entries in the TOML config.

Every server sharing a Redis runs the same ticker; each (entry, minute) slot
is claimed with ``SET NX`` before its job is pushed, so a tick enqueues one
job however many servers are up.  The minute the server starts in is
evaluated too: a restart inside a due minute does not lose that run, and the
claim keeps it from running twice.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.template import Tag, tags

from .. import job as jobs
from ..errors import CommandError
from ..job import JobError, format_time
from ..plugin import WebPage
from ..store import Store
from ..web.i18n import N_, for_request
from .pages import table, with_code

log = Logger()

CLAIM_TTL = 3 * 3600  # seconds a claimed slot is remembered (>> any clock skew)
CATCH_UP = 10  # minutes of missed slots replayed after a stall (blocked reactor)

_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    (
        "month",
        1,
        12,
        {
            m: i + 1
            for i, m in enumerate(
                ("JAN", "FEB", "MAR", "APR", "MAY", "JUN")
                + ("JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
            )
        },
    ),
    (
        "day of week",
        0,
        7,
        {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))},
    ),
)

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


# TOML keys this module reads, for the generated configuration reference.
CONFIG_KEYS = [
    (
        "cron",
        "schedule",
        "string",
        "(required)",
        "5-field cron expression (minute hour day month weekday) in server local time: "
        "lists, ranges, steps, JAN-DEC / SUN-SAT names, or @hourly/@daily/@weekly/"
        "@monthly/@yearly. Each ``[[cron]]`` entry is one periodic job.",
    ),
    ("cron.job", "type", "string", "(required)", "Job type of the pushed job."),
    ("cron.job", "queue", "string", '"default"', "Queue the job goes to."),
    ("cron.job", "args", "array", "[]", "Job arguments."),
    ("cron.job", "retry", "integer", str(jobs.DEFAULT_RETRY), "Retries, as in a pushed job."),
    (
        "cron.job",
        "reserve_for",
        "integer",
        str(jobs.DEFAULT_RESERVE_FOR),
        "Reservation in seconds.",
    ),
    (
        "cron.job",
        "priority",
        "integer",
        str(jobs.DEFAULT_PRIORITY),
        f"Priority {jobs.MIN_PRIORITY}-{jobs.MAX_PRIORITY}.",
    ),
    (
        "cron.job.custom",
        "*",
        "table",
        "{}",
        "The job's custom hash, e.g. ``expires_in = 60`` or ``unique_for = 300``.",
    ),
]


class CronError(ValueError):
    """A schedule or entry that cannot be used; the text says why."""


def _number(text: str, names: dict[str, int], what: str) -> int:
    value = names.get(text.upper())
    if value is not None:
        return value
    if not text.isdigit():
        raise CronError(f"bad {what} value {text!r}")
    return int(text)


def _parse_field(text: str, lo: int, hi: int, names: dict[str, int], what: str) -> frozenset:
    values: set[int] = set()
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"bad step {step_text!r} in {what} field")
            step = int(step_text)
        if rng == "*":
            start, end = lo, hi
        elif "-" in rng:
            a, _, b = rng.partition("-")
            start, end = _number(a, names, what), _number(b, names, what)
        else:
            start = _number(rng, names, what)
            end = hi if step_text else start
        if not (lo <= start <= hi and lo <= end <= hi) or start > end:
            raise CronError(f"{what} value out of range in {part!r} (allowed {lo}-{hi})")
        values.update(range(start, end + 1, step))
    return frozenset(values)


class CronSchedule:
    """A standard 5-field cron expression (minute hour day month weekday),
    with lists, ranges, steps, JAN-DEC / SUN-SAT names and @daily-style macros.
    Times are the server's local time, like cron itself."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        text = _MACROS.get(expression.strip().lower(), expression)
        parts = text.split()
        if len(parts) != 5:
            raise CronError(
                f"schedule {expression!r} must have 5 fields: minute hour day month weekday"
            )
        parsed = [
            _parse_field(p, lo, hi, names, what) for p, (what, lo, hi, names) in zip(parts, _FIELDS)
        ]
        self.minutes, self.hours, self.days, self.months, weekdays = parsed
        self.weekdays = frozenset(d % 7 for d in weekdays)  # 7 is Sunday too
        # Classic cron: when both day fields are restricted, either may match.
        self._day_star = parts[2].startswith("*")
        self._dow_star = parts[4].startswith("*")
        # Daylight saving: a fixed-hour entry runs once per local day (see fires).
        self.fixed_hour = not parts[1].startswith("*")

    def _day_matches(self, d: datetime.date) -> bool:
        dom = d.day in self.days
        dow = (d.isoweekday() % 7) in self.weekdays
        if self._day_star or self._dow_star:
            return dom and dow
        return dom or dow

    def matches(self, t: datetime.datetime) -> bool:
        return (
            t.minute in self.minutes
            and t.hour in self.hours
            and t.month in self.months
            and self._day_matches(t.date())
        )

    def next_after(self, t: datetime.datetime) -> datetime.datetime | None:
        """The first matching minute strictly after ``t`` (naive local time),
        or None if there is none within 5 years (e.g. ``0 0 31 2 *``)."""
        t = t.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
        limit = t + datetime.timedelta(days=5 * 366)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1) + datetime.timedelta(days=32)).replace(
                    day=1, hour=0, minute=0
                )
            elif not self._day_matches(t.date()):
                t = t.replace(hour=0, minute=0) + datetime.timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + datetime.timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += datetime.timedelta(minutes=1)
            else:
                return t
        return None


@dataclass
class CronEntry:
    """One ``[[cron]]`` table: a schedule and the job it pushes."""

    id: str
    schedule: CronSchedule
    job: dict[str, Any]

    def make_job(self, now: float) -> dict[str, Any]:
        """A new job from the template, with the defaults a PUSH would get."""
        job = json.loads(json.dumps(self.job))
        job["jid"] = uuid.uuid4().hex[:24]
        job["created_at"] = format_time(now)
        return jobs.validate(job, now)


_JOB_KEYS = {
    "type",
    "jobtype",
    "queue",
    "retry",
    "reserve_for",
    "args",
    "custom",
    "priority",
    "backtrace",
}


def parse_entries(
    config: dict[str, Any], checks: list[Callable[[dict], Any]] | None = None
) -> list[CronEntry]:
    """``[[cron]]`` tables -> entries; raises CronError naming the bad entry.

    Each template is also put through ``checks`` (the features' ``check_job``:
    what unique, expiring... would refuse at PUSH), so such an entry is refused
    at startup and on SIGHUP rather than failing every minute.  An entry's id
    is a digest of its schedule and job, so servers sharing a Redis with the
    same config claim the same slots whatever the file order."""
    checks = checks or []
    raw = config.get("cron", [])
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise CronError("[[cron]] must be an array of tables")
    entries: list[CronEntry] = []
    seen: dict[str, int] = {}
    for n, item in enumerate(raw, 1):
        where = f"[[cron]] entry {n}"
        if not isinstance(item, dict):
            raise CronError(f"{where} must be a table")
        schedule = item.get("schedule")
        if not isinstance(schedule, str):
            raise CronError(f'{where} needs schedule = "<5-field cron expression>"')
        try:
            sched = CronSchedule(schedule)
        except CronError as e:
            raise CronError(f"{where}: {e}") from None
        spec = item.get("job")
        if not isinstance(spec, dict):
            raise CronError(f"{where} needs a [cron.job] table")
        unknown = set(spec) - _JOB_KEYS
        if unknown:
            raise CronError(f"{where}: unknown job keys {sorted(unknown)}")
        jobtype = spec.get("type", spec.get("jobtype"))
        if not isinstance(jobtype, str) or not jobtype:
            raise CronError(f'{where}: the job needs type = "<JobType>"')
        job: dict[str, Any] = {"jobtype": jobtype, "args": spec.get("args", [])}
        for key in ("queue", "retry", "reserve_for", "custom", "priority", "backtrace"):
            if key in spec:
                job[key] = spec[key]
        # Validate the template once now, so a bad entry fails at startup.
        try:
            template = jobs.validate(json.loads(json.dumps(dict(job, jid="cron-validate"))))
            for check in checks:
                check(template)
        except (JobError, CommandError, ValueError, TypeError) as e:
            raise CronError(f"{where} ({jobtype}): {e}") from None
        digest = hashlib.sha1(
            json.dumps([schedule, job], sort_keys=True, default=str).encode()
        ).hexdigest()[:16]
        seen[digest] = seen.get(digest, 0) + 1
        entry_id = digest if seen[digest] == 1 else f"{digest}.{seen[digest]}"
        entries.append(CronEntry(entry_id, sched, job))
    return entries


def minute_slot(ts: float) -> int:
    """The Unix time of the start of the minute holding ``ts``."""
    return int(ts // 60) * 60


def due_slots(last: int | None, now: float) -> list[int]:
    """Minute slots to evaluate at ``now`` when ``last`` was the latest done:
    the current one on the first tick, every skipped one (up to CATCH_UP)
    after a stall, nothing if the minute has not changed."""
    current = minute_slot(now)
    if last is None:
        return [current]
    if current <= last:
        return []
    first = max(last + 60, current - (CATCH_UP - 1) * 60)
    return list(range(first, current + 1, 60))


def local_minute(slot: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(slot).replace(second=0, microsecond=0)


def fires(schedule: CronSchedule, slot: int) -> bool:
    """Whether ``schedule`` runs in the minute ``slot`` (server local time).

    Daylight saving: an entry with a fixed hour (``30 1 * * *``) runs once per
    local day.  When the clock goes back and repeats an hour it runs in the
    first pass only; when the clock jumps forward over its time it runs in the
    first minute after the jump.  An entry whose hour is ``*`` (or ``*/n``)
    follows real minutes: it runs in both passes of a repeated hour, and has
    nothing to catch up after a jump."""
    t = local_minute(slot)
    if schedule.fixed_hour and t.fold:
        return False  # the repeated hour: ran in the first pass
    if schedule.matches(t):
        return True
    if not schedule.fixed_hour:
        return False
    before = local_minute(slot - 60).replace(fold=0)
    skipped = (t.replace(fold=0) - before) // datetime.timedelta(minutes=1) - 1
    for n in range(1, min(skipped, 24 * 60) + 1):
        if schedule.matches(before + datetime.timedelta(minutes=n)):
            return True  # its time did not exist today: run now
    return False


class CronStore:
    """The Redis side: ``cron:<entry>:<slot>`` claim keys and per-entry
    ``cron:last`` hash (entry -> slot last enqueued, for the web UI)."""

    def __init__(self, store: Store) -> None:
        self.redis = store.redis
        self.prefix = store.prefix

    def claim(self, entry_id: str, slot: int) -> defer.Deferred:
        """Fires True for the one caller (of any server) that owns the slot."""
        d = self.redis.execute_command(
            "SET", f"{self.prefix}cron:{entry_id}:{slot}", "1", "NX", "EX", CLAIM_TTL
        )
        return d.addCallback(lambda r: r is not None and r not in (b"", ""))

    def unclaim(self, entry_id: str, slot: int) -> defer.Deferred:
        return self.redis.execute_command("DEL", f"{self.prefix}cron:{entry_id}:{slot}")

    def mark(self, entry_id: str, slot: int) -> defer.Deferred:
        return self.redis.execute_command("HSET", f"{self.prefix}cron:last", entry_id, slot)

    @defer.inlineCallbacks
    def forget_others(self, ids: list[str]):
        """Drop ``cron:last`` fields of entries no longer configured (an edited
        entry has a new id), so the hash never outgrows the config."""
        known = yield self.redis.execute_command("HKEYS", f"{self.prefix}cron:last")
        keep = set(ids)
        stale = [k for k in known if (k.decode() if isinstance(k, bytes) else k) not in keep]
        if stale:
            yield self.redis.execute_command("HDEL", f"{self.prefix}cron:last", *stale)
        return len(stale)

    @defer.inlineCallbacks
    def last_runs(self, ids: list[str]):
        if not ids:
            return {}
        values = yield self.redis.execute_command("HMGET", f"{self.prefix}cron:last", *ids)
        return {i: int(v) for i, v in zip(ids, values) if v}


class CronPlugin:
    name = "cron"
    config_keys = CONFIG_KEYS  # the TOML keys it reads (config check, docs)
    description = "Periodic jobs from [[cron]] config entries."

    def __init__(self) -> None:
        self.job_checks: list[Callable[[dict], Any]] = []
        self.entries: list[CronEntry] = []
        self.last_slot: int | None = None
        self.server = None
        self.clock = None
        self.store: CronStore | None = None
        # (entry id, slot) -> entry: runs that failed for a passing reason
        # (Redis, a middleware's bug), tried again each tick for CATCH_UP minutes.
        self.pending: dict[tuple[str, int], CronEntry] = {}
        self.failing: dict[str, str] = {}  # entry id -> error last logged
        self.prune = True  # forget the last runs of removed entries at the next tick

    def setup(self, server) -> None:
        self.server = server
        self.clock = server.reactor
        self.store = CronStore(server.store)
        self.configure(server.settings.config)
        server.add_task("cron", 1, self.tick)
        server.add_web_page(WebPage(path="cron", title=N_("Cron"), render=self.render))

    def shutdown(self, server) -> None:
        pass

    def see_plugins(self, chosen: list[Any]) -> None:
        """The plugins this config enables (``faktory.plugins.enabled``): an
        entry is checked with their ``check_job`` as a PUSH would be."""
        self.job_checks = [p.check_job for p in chosen if hasattr(p, "check_job")]

    def check_config(self, config: dict[str, Any]) -> None:
        parse_entries(config, self.job_checks)

    def configure(self, config: dict[str, Any]) -> None:
        """(Re)load ``[[cron]]`` entries; a bad config raises, keeping the old ones."""
        checks = [p.check_job for p in self.server.plugins if hasattr(p, "check_job")]
        entries = parse_entries(config, checks)
        self.entries = entries
        if entries:
            log.info("Cron: {n} periodic job(s) configured", n=len(entries))

    def reload(self, server) -> None:
        """SIGHUP: take the re-read entries.  The current minute is evaluated
        again so a new entry due now runs; claims stop repeats of the others."""
        try:
            self.configure(server.settings.config)
        except CronError as e:
            log.error("Cron config not reloaded: {e}", e=e)
            return
        self.last_slot = None
        self.prune = True

    async def tick(self) -> int:
        """Enqueue every entry due in the minutes not yet evaluated, and retry
        the runs that failed for a passing reason.  One entry's failure never
        keeps the others from firing."""
        if self.prune:
            self.prune = False
            await self.store.forget_others([e.id for e in self.entries])
        if not self.entries:
            return 0
        now = self.clock.seconds()
        pushed = 0
        oldest = minute_slot(now) - (CATCH_UP - 1) * 60
        for (entry_id, slot), entry in list(self.pending.items()):
            del self.pending[(entry_id, slot)]
            if slot >= oldest and entry in self.entries and await self.fire(entry, slot):
                pushed += 1
        for slot in due_slots(self.last_slot, now):
            for entry in self.entries:
                if fires(entry.schedule, slot) and await self.fire(entry, slot):
                    pushed += 1
            self.last_slot = slot
        return pushed

    async def fire(self, entry: CronEntry, slot: int) -> bool:
        """Enqueue one run; False if it was someone else's, or failed (logged
        once per entry while it keeps failing)."""
        try:
            if not await self.store.claim(entry.id, slot):
                return False
        except Exception as e:  # noqa: BLE001 - Redis trouble: try the slot again
            self.pending[(entry.id, slot)] = entry
            self._failed(entry, e)
            return False
        try:
            job = entry.make_job(self.clock.seconds())
            await self.server.manager.push(job)
        except (CommandError, JobError) as e:
            # Refused (e.g. NOTUNIQUE): this run is over, the next one will try.
            self._failed(entry, e)
            return False
        except Exception as e:  # noqa: BLE001 - logged; must not stop the other entries
            self.pending[(entry.id, slot)] = entry
            self._failed(entry, e)
            try:
                await self.store.unclaim(entry.id, slot)  # any server may retry it
            except Exception:  # noqa: BLE001 - the claim expires by itself
                pass
            return False
        if self.failing.pop(entry.id, None) is not None:
            log.info("Cron {entry}: enqueued again", entry=self.describe(entry))
        await self.store.mark(entry.id, slot)
        log.debug("Cron enqueued {jobtype} {jid}", jobtype=job["jobtype"], jid=job["jid"])
        return True

    def describe(self, entry: CronEntry) -> str:
        n = next((i for i, e in enumerate(self.entries, 1) if e is entry), "?")
        return f"entry {n} ({entry.schedule.expression!r} {entry.job['jobtype']})"

    def _failed(self, entry: CronEntry, error: Exception) -> None:
        text = str(error) or type(error).__name__
        if entry.id in self.failing:
            return  # logged once until it succeeds again
        self.failing[entry.id] = text
        log.error(
            "Cron {entry}: run not enqueued: {error} (logged once until it runs again)",
            entry=self.describe(entry),
            error=text,
        )

    # -- web UI ---------------------------------------------------------------
    async def render(self, request) -> Tag:
        tr = for_request(request)
        if not self.entries:
            text = tr._(
                "No periodic jobs configured. Add {entries} entries to a {file} file (see docs/cron.md)."
            )
            return tags.p(*with_code(text, entries="[[cron]]", file="conf.d/*.toml"))
        last = await self.store.last_runs([e.id for e in self.entries])
        now = datetime.datetime.fromtimestamp(self.clock.seconds())
        rows = []
        for e in self.entries:
            upcoming, t = [], now
            for _ in range(3):
                t = e.schedule.next_after(t)
                if t is None:
                    break
                upcoming.append(t.strftime("%Y-%m-%d %H:%M"))
            prev = last.get(e.id)
            rows.append(
                [
                    e.schedule.expression,
                    e.job["jobtype"],
                    e.job.get("queue", "default"),
                    json.dumps(e.job.get("args", [])),
                    local_minute(prev).strftime("%Y-%m-%d %H:%M") if prev else tr._("never"),
                    ", ".join(upcoming) or tr._("never"),
                ]
            )
        head = [
            tr._("Schedule"),
            tr._("Job type"),
            tr._("Queue"),
            tr._("Arguments"),
            tr._("Last enqueued"),
            tr._("Next runs"),
        ]
        tz = now.astimezone().tzname() or tr._("local")
        note = tr._("Times are server local time ({tz}).", tz=tz)
        return tags.transparent(tags.p(note), table(head, rows))
