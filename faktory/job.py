"""The job payload: the one place that knows its fields, defaults and rules.

Jobs arrive as JSON, are validated once at PUSH and then stored and handed
out as bytes; nothing on the hot path decodes them again.  The stored JSON
always starts with ``{"enqueued_at":"...",`` when the job has been enqueued so
the Lua scripts that move jobs into queues can refresh that stamp without a
JSON encoder (see ``store.py``).
"""

from __future__ import annotations

import calendar
import json
import math
import re
import time
from typing import Any

QUEUE_NAME = re.compile(r"\A[a-zA-Z0-9._-]+\Z")
DEFAULT_RETRY = 25
DEFAULT_PRIORITY = 5
DEFAULT_RESERVE_FOR = 1800
MAX_RESERVE_FOR = 86400
MIN_RESERVE_FOR = 60
DEAD_TTL = 180 * 24 * 3600

# Field -> accepted JSON types, in the order we serialize them.  ``enqueued_at``
# comes first on purpose (module docstring).
_FIELDS: dict[str, tuple[type, ...]] = {
    "enqueued_at": (str,),
    "jid": (str,),
    "queue": (str,),
    "jobtype": (str,),
    "args": (list,),
    "created_at": (str,),
    "at": (str,),
    "priority": (int,),
    "retry": (int,),
    "reserve_for": (int,),
    "backtrace": (int,),
    "custom": (dict,),
    "failure": (dict,),
}
_GO_TYPE = {str: "string", list: "array", int: "integer", dict: "object"}

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


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


_RFC3339 = re.compile(
    r"\A(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z"
)


_parsed: tuple[str, float] = ("", 0.0)


def parse_time(value: str) -> float:
    """Parse an RFC3339(Nano) timestamp into Unix seconds; ValueError if malformed."""
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
    if len(value) >= 20 and value[-1] in "Zz" and value[19] in ".Zz":
        _parsed = (value[:19], float(int(ts)))
    return ts


def _parse_time(value: str) -> float:
    m = _RFC3339.match(value)
    if not m:
        raise ValueError("not an RFC3339 timestamp (e.g. 2006-01-02T15:04:05Z)")
    year, mon, day, hh, mm, ss = (int(m.group(i)) for i in range(1, 7))
    if not (1 <= mon <= 12 and 1 <= day <= 31 and hh < 24 and mm < 60 and ss < 61):
        raise ValueError("timestamp field out of range")
    ts = calendar.timegm((year, mon, day, hh, mm, ss, 0, 0, 0))
    if m.group(7):
        ts += float(m.group(7))
    if m.group(9):
        offset = int(m.group(10)) * 3600 + int(m.group(11)) * 60
        ts -= offset if m.group(9) == "+" else -offset
    return float(ts)


def check_queue_name(name: str) -> None:
    if not QUEUE_NAME.match(name):
        raise JobError(f'cannot get "{name}" queue: queue names must match \\A[a-zA-Z0-9._-]+\\z')


def decode(raw: str | bytes) -> Any:
    """Parse client JSON; errors read like the real server's ``invalid JSON: ...``."""
    try:
        if isinstance(raw, str) and not raw.startswith("\ufeff"):
            return _decoder.decode(raw)  # one decoder for all: loads(**kw) builds one a call
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise JobError(f"invalid JSON: {e}") from None


def _no_constant(name: str) -> Any:
    # NaN and Infinity are not JSON: no other client could read the job back.
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


_decoder = json.JSONDecoder(parse_constant=_no_constant)
_stored_decoder = json.JSONDecoder()


def loads_stored(raw: bytes) -> Any:
    """Decode JSON the server stored itself (UTF-8): without ``json.loads``'
    encoding detection, which every ACK would pay for."""
    return _stored_decoder.decode(raw.decode())


def validate(obj: Any, now: float | None = None) -> dict:
    """Check and default one job dict as the real server does; returns a new dict.

    Unknown top-level keys are dropped (the real server re-serializes from a
    typed struct), except ``priority`` which we honour.
    """
    if not isinstance(obj, dict):
        raise JobError("invalid JSON: a job must be a JSON object")
    job: dict[str, Any] = {}
    for key, types in _FIELDS.items():
        if key not in obj:
            continue
        value = obj[key]
        if value is None:
            continue
        if key == "priority":
            # The real server ignores the legacy key, so whatever a client
            # sends must be accepted: out of range is clamped, junk ignored.
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                job[key] = max(1, min(9, int(value)))
            continue
        # bool is an int subclass in Python but not in JSON.
        if not isinstance(value, types) or isinstance(value, bool):
            if types == (int,) and isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise JobError(
                    f"invalid JSON: cannot use {json.dumps(value)[:40]} as "
                    f"{_GO_TYPE[types[0]]} for field {key!r}"
                )
        job[key] = value
    if len(job.get("jid", "")) < 8:
        raise JobError("jobs must have a reasonable jid parameter")
    if not job.get("jobtype"):
        raise JobError("jobs must have a jobtype parameter")
    if "args" not in job:
        raise JobError("jobs must have an args parameter")
    if job.get("reserve_for", 0) > MAX_RESERVE_FOR:
        raise JobError("jobs cannot be reserved for more than one day")
    job.setdefault("retry", DEFAULT_RETRY)
    if not job.get("queue"):
        job["queue"] = "default"  # missing or empty, as the real server does
    check_queue_name(job["queue"])
    if job.get("at") == "":
        del job["at"]  # Go omits the empty string
    if "at" in job:
        try:
            parse_time(job["at"])
        except ValueError as e:
            raise JobError(f"invalid timestamp for 'at': {json.dumps(job['at'])}: {e}") from None
    if not job.get("created_at"):
        job["created_at"] = format_time(now)
    if job.get("custom") == {}:
        del job["custom"]
    return job


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
    if type(value) is int and 1 <= value <= 9:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return max(1, min(9, int(value)))
    return DEFAULT_PRIORITY


def reserve_seconds(job: dict) -> int:
    """The reservation length the real server grants at FETCH."""
    value = job.get("reserve_for") or DEFAULT_RESERVE_FOR
    return max(MIN_RESERVE_FOR, min(MAX_RESERVE_FOR, value))
