"""The job payload: the one place that knows its fields, defaults and rules.

Jobs arrive as JSON, are validated once at PUSH and then stored and handed
out as bytes; nothing on the hot path decodes them again.  The stored JSON
always starts with ``{"enqueued_at":"...",`` when the job has been enqueued so
the Lua scripts that move jobs into queues can refresh that stamp without a
JSON encoder (see ``lua/requeue.lua``).
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

from . import wire

QUEUE_NAME = re.compile(r"\A[a-zA-Z0-9._-]+\Z")
DEFAULT_RETRY = 25
DEFAULT_PRIORITY = 5
MIN_PRIORITY, MAX_PRIORITY = 1, 9
DEFAULT_RESERVE_FOR = 1800
MAX_RESERVE_FOR = 86400
MIN_RESERVE_FOR = 60
DEAD_TTL = 180 * 24 * 3600

# The fields in the order we serialize them (the decoding rules are in
# ``wire.JOB``).  ``enqueued_at`` comes first on purpose (module docstring),
# and every scalar field comes before ``args`` (see ``lua/job.lua``).
_FIELDS = (
    "enqueued_at",
    "jid",
    "queue",
    "jobtype",
    "priority",
    "retry",
    "reserve_for",
    "backtrace",
    "created_at",
    "at",
    # Last: the values that may nest deeper than Redis' cjson decodes; the
    # scripts read the scalar fields from the part before ``,"args":``.
    "args",
    "custom",
    "failure",
)

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False)
_dumps = _encoder.encode
if json.encoder.c_make_encoder is not None and json.encoder.c_encode_basestring is not None:
    # ``encode`` builds a new C encoder for every call, which costs about as
    # much as encoding a small job: build it once (every PUSH encodes a job).
    _iterencode = json.encoder.c_make_encoder(
        None, _encoder.default, json.encoder.c_encode_basestring, None, ":", ",", False, False, True
    )

    def _dumps(value: Any) -> str:  # noqa: F811 - the fast version of the above
        return "".join(_iterencode(value, 0))


class JobError(ValueError):
    """A job that the server refuses; the text is what the client sees."""


def dumps(value: Any) -> str:
    """Compact JSON, the form the real server writes."""
    return _dumps(value)


_second: tuple[int, str] = (-1, "")


def format_time(ts: float | None = None) -> str:
    """RFC3339Nano in UTC with trailing zeros trimmed, as Go's ``time.RFC3339Nano``."""
    if ts is None:
        secs, frac = divmod(time.time_ns(), 1_000_000_000)
    else:
        # Seconds and fraction apart: ``ts * 1e9`` would lose the last digits.
        secs = math.floor(ts)
        frac = round((ts - secs) * 1e9)
        if frac >= 1_000_000_000:
            secs, frac = secs + 1, frac - 1_000_000_000
    global _second
    if _second[0] != secs:  # every command stamps a time: format each second once
        _second = (secs, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)))
    base = _second[1]
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return base + "Z"


# Go's time.Parse with the RFC3339 layout: 'T' and 'Z' in capitals, any
# number of fraction digits (after '.' or ','; beyond nine they are cut),
# offsets up to 24:60, and every field checked against the calendar.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(?:(Z)|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


_parsed: tuple[str, float] = ("", 0.0)


def parse_time(value: str) -> float:
    """Parse an RFC3339(Nano) timestamp into Unix seconds as Go's
    ``time.Parse(time.RFC3339Nano)`` does; ValueError (Go's reason) if it refuses."""
    global _parsed
    # Fast path for our own UTC stamps (``format_time``): every ACK reads
    # one, and most fall in the second parsed last time.
    if value[:19] == _parsed[0] and value[-1:] == "Z":
        frac = value[19:-1]
        if not frac:
            return _parsed[1]
        if frac[0] == "." and 1 < len(frac) <= 10 and frac[1:].isascii() and frac[1:].isdigit():
            return _parsed[1] + float(frac)
    ts = _parse_time(value)
    if len(value) >= 20 and value[-1] == "Z" and value[19] in ".Z":
        _parsed = (value[:19], float(math.floor(ts)))
    return ts


def _parse_time(value: str) -> float:
    m = _RFC3339.match(value)
    if not m:
        raise ValueError(f"parsing time {json.dumps(value)}: not RFC 3339 (2006-01-02T15:04:05Z)")
    if m.end() != len(value):
        raise ValueError(f"parsing time {json.dumps(value)}: extra text: {value[m.end() :]!r}")
    year, mon, day, hh, mm, ss = (int(m.group(i)) for i in range(1, 7))
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    for bad, what in (
        (not 1 <= mon <= 12, "month"),
        (not 1 <= day <= _MONTH_DAYS[mon if 1 <= mon <= 12 else 0], "day"),
        (mon == 2 and day == 29 and not leap, "day"),
        (hh > 23, "hour"),
        (mm > 59, "minute"),
        (ss > 59, "second"),
        (m.group(9) and int(m.group(10)) > 24, "time zone offset hour"),
        (m.group(9) and int(m.group(11)) > 60, "time zone offset minute"),
    ):
        if bad:
            raise ValueError(f"parsing time {json.dumps(value)}: {what} out of range")
    # Days from 1970-01-01 in the proleptic Gregorian calendar (years 0000-9999).
    y = year - (mon <= 2)
    era, yoe = divmod(y, 400)
    doy = (153 * (mon + (-3 if mon > 2 else 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    ts = float(days * 86400 + hh * 3600 + mm * 60 + ss)
    if m.group(7):
        ts += int(m.group(7)[:9].ljust(9, "0")) / 1e9
    if m.group(9):
        offset = int(m.group(10)) * 3600 + int(m.group(11)) * 60
        ts -= offset if m.group(9) == "+" else -offset
    return ts


def check_queue_name(name: str) -> None:
    if not QUEUE_NAME.match(name):
        raise JobError(f'cannot get "{name}" queue: queue names must match \\A[a-zA-Z0-9._-]+\\z')


def decode(raw: str | bytes) -> Any:
    """Parse free-form client JSON by Go's rules (``wire``); errors read
    like the real server's ``invalid JSON: ...``."""
    try:
        return wire.loads(raw if isinstance(raw, str) else wire.text(raw))
    except ValueError as e:
        raise JobError(f"invalid JSON: {e}") from None


def parse(raw: str | bytes) -> dict:
    """PUSH's argument -> the job's fields, decoded as Go decodes a ``Job``."""
    try:
        return wire.decode(raw if isinstance(raw, str) else wire.text(raw), wire.JOB)
    except ValueError as e:
        raise JobError(f"invalid JSON: {e}") from None


# The fields a PUSH may carry for its JSON to be stored as the client wrote it.
_AS_WRITTEN = frozenset(("jid", "jobtype", "args", "queue", "retry", "created_at", "reserve_for"))
# Whitespace outside strings always touches a structural character; inside
# one it may too ("a, b"), which only costs such a job its re-encoding.  The
# stored JSON must be compact: the search filters (admin, web UI, MUTATE and
# the job locator) look for '"jobtype":"X"' as serialize writes it.
_HAS_SPACE = re.compile(r"\s")
_LOOSE = re.compile(r"[\[{,:]\s|\s[\]},:]")
# check() fills these in when they are missing (queue/created_at also when empty).
_DEFAULTED = ("retry", "queue", "created_at")


def parse_plain(raw: str, now: float | None = None) -> tuple[dict, str | None] | None:
    """A PUSH as most clients send it: its checked fields, and the JSON to
    store after ``{"enqueued_at":"...",`` (the client's own text, with any
    field ``check`` defaulted put first, or None if ``serialize`` must write
    it); None when the job needs ``parse``.

    Re-encoding such a job would give the same JSON value (the keys in
    another order), at a fifth of a PUSH's cost: see ``wire.plain_struct``
    for what may be kept as written.  Raises JobError as ``check`` does."""
    job = wire.plain_struct(raw, wire.JOB, _AS_WRITTEN)
    return None if job is None else as_written(job, raw, now)


def as_written(job: dict, text: str, now: float | None = None) -> tuple[dict, str | None]:
    """``check(job)`` and the tail to store (``parse_plain``) of a plain
    job decoded from ``text``."""
    missing = [k for k in _DEFAULTED if k not in job]
    if (
        not job.get("queue", "default")
        or not job.get("created_at", "x")
        or "reserve_for" in job  # check may change these written values
        or (_HAS_SPACE.search(text) and _LOOSE.search(text))
    ):
        return check(job, now), None
    check(job, now)
    head = "".join(f'"{k}":{_dumps(job[k])},' for k in missing)
    return job, head + text[1:]


_SPACE = re.compile(r"[ \t\n\r]*")


def parse_batch_plain(raw: str) -> list[tuple[dict, str]] | None:
    """PUSHB's jobs, each with its own text, when every one is plain
    (``wire.plain_struct``); None: the caller uses ``parse_batch``."""
    if "\\" in raw:
        return None
    i = _SPACE.match(raw).end()
    if raw[i : i + 1] != "[":
        return None
    out = []
    i = _SPACE.match(raw, i + 1).end()
    while True:
        found = wire.plain_at(raw, i, wire.JOB, _AS_WRITTEN)
        if found is None:
            return None
        fields, end = found
        text = raw[i:end]
        if text.count("{") + text.count("[") > wire.PLAIN_DEPTH:
            return None
        out.append((fields, text))
        i = _SPACE.match(raw, end).end()
        if raw[i : i + 1] != ",":
            break
        i = _SPACE.match(raw, i + 1).end()
    if raw[i : i + 1] != "]" or _SPACE.match(raw, i + 1).end() != len(raw):
        return None
    return out


def parse_batch(raw: str | bytes) -> list[dict]:
    """PUSHB's argument -> each job's fields; one undecodable job refuses the
    whole batch, as in Go (``null`` is an empty batch, a null job an empty one)."""
    try:
        return wire.decode(raw if isinstance(raw, str) else wire.text(raw), wire.JOBS) or []
    except ValueError as e:
        raise JobError(f"invalid JSON: {e}") from None


_stored_decoder = json.JSONDecoder()


def loads_stored(raw: bytes) -> Any:
    """Decode JSON the server stored itself (UTF-8): without ``json.loads``'
    encoding detection, which every ACK would pay for."""
    return _stored_decoder.decode(raw.decode())


def validate(obj: Any, now: float | None = None) -> dict:
    """Check and default one job given as Python data (a batch template, a
    cron entry): decoded as Go would, then ``check``-ed; returns a new dict."""
    if not isinstance(obj, dict):
        raise JobError("invalid JSON: a job must be a JSON object")
    try:
        fields = wire.convert(obj, wire.JOB)
    except ValueError as e:
        raise JobError(f"invalid JSON: {e}") from None
    return check(fields, now)


def check(job: dict, now: float | None = None) -> dict:
    """The real server's rules for a decoded job (``parse``), in its order,
    plus its defaults; ``job`` is changed in place and returned.

    Zero-valued optional fields that Go omits are dropped, so a job is handed
    back as the real server would hand it back."""
    jid = job.get("jid", "")
    if len(jid) < 8 and len(jid.encode()) < 8:  # Go counts bytes
        raise JobError("jobs must have a reasonable jid parameter")
    if not job.get("jobtype"):
        raise JobError("jobs must have a jobtype parameter")
    if "args" not in job:
        raise JobError("jobs must have an args parameter")
    reserve_for = job.get("reserve_for")
    if reserve_for is not None:
        if reserve_for > MAX_RESERVE_FOR:
            raise JobError("jobs cannot be reserved for more than one day")
        if not reserve_for:
            del job["reserve_for"]
    if "retry" not in job:
        job["retry"] = DEFAULT_RETRY
    if not job.get("queue"):
        job["queue"] = "default"  # missing or empty, as the real server does
    check_queue_name(job["queue"])
    at = job.get("at")
    if at is not None:
        if not at:
            del job["at"]  # Go omits the empty string
        else:
            try:
                parse_time(at)
            except ValueError as e:
                raise JobError(f"invalid timestamp for 'at': {json.dumps(at)}: {e}") from None
    if not job.get("created_at"):
        job["created_at"] = format_time(now)
    if not job.keys() <= _PLAIN:  # most jobs have none of the fields needing care
        _optional(job)
    return job


_PLAIN = frozenset(("jid", "jobtype", "args", "queue", "retry", "created_at", "at", "reserve_for"))


def _optional(job: dict) -> None:
    if "priority" in job:
        # The real server ignores the legacy key, so whatever a client sends
        # must be accepted: out of range is clamped, junk ignored.
        job["priority"] = _clamp_priority(job["priority"])
        if job["priority"] is None:
            del job["priority"]
    if job.get("backtrace") == 0:
        del job["backtrace"]
    if job.get("custom") == {}:
        del job["custom"]
    if job.get("enqueued_at") == "":
        del job["enqueued_at"]
    failure = job.get("failure")
    if failure is not None:
        # Go's Failure struct: known fields only, the always-written ones present.
        job["failure"] = {
            "failed_at": failure.get("failed_at", ""),
            **{
                k: failure[k]
                for k in ("next_at", "message", "errtype", "backtrace")
                if failure.get(k)
            },
            "retry_count": failure.get("retry_count", 0),
            "remaining": failure.get("remaining", 0),
        }


def _clamp_priority(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return max(MIN_PRIORITY, min(MAX_PRIORITY, int(value)))
    if wire.is_big(value):
        return MIN_PRIORITY if value.text.startswith("-") else MAX_PRIORITY
    return None


def scheduled_at(job: dict, now: float) -> float | None:
    """The Unix time a job should wait for, or None to enqueue it now."""
    at = job.get("at")
    if not at:
        return None
    ts = parse_time(at)
    return ts if ts > now else None


def serialize(job: dict) -> str:
    """Job dict -> stored JSON with ``enqueued_at`` first (see module docstring)."""
    return dumps({k: job[k] for k in _FIELDS if k in job})


def priority(job: dict) -> int:
    """1-9; a stored job may hold anything there (validate clamps at PUSH)."""
    value = job.get("priority", DEFAULT_PRIORITY)
    if type(value) is int and MIN_PRIORITY <= value <= MAX_PRIORITY:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return max(MIN_PRIORITY, min(MAX_PRIORITY, int(value)))
    return DEFAULT_PRIORITY
