"""A failed job's failure record and where it goes next (retries, the dead
set, or nowhere), worked out from whatever the stored job holds.

A job comes back from Redis as someone stored it: a client may push its own
``failure``, an older server or an operator may have written odd values.
Every field is read defensively (huge, negative, NaN, strings where numbers
belong), because a job whose failure cannot be computed would stay reserved
and be tried again at every reaper pass: it must still fail, retry and die.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

from . import job as jobs
from . import wire
from .job import format_time

MAX_BACKTRACE = 50  # backtrace lines kept in a failure, as the real server does
MAX_NUMBER = 1_000_000_000  # counts beyond this are absurd: clamped, so they stay plain JSON
MAX_RETRY_DELAY = 366 * 24 * 3600  # backoff of an absurd retry count is capped at a year


def retry_delay(count: int, rng: random.Random | Any = random) -> int:
    """Faktory's backoff: count^4 + 15 + rand(0..29) * (count + 1) seconds."""
    return count**4 + 15 + rng.randint(0, 29) * (count + 1)


def number(value: Any, default: int) -> int:
    """A stored count as an int in ±MAX_NUMBER; ``default`` for anything that
    is not a finite JSON number (strings, booleans, NaN, infinities)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    if isinstance(value, float) and not math.isfinite(value):
        return default
    return max(-MAX_NUMBER, min(MAX_NUMBER, int(value)))


def stored_job(reservation: bytes) -> dict | None:
    """The job inside a reservation, or None when it cannot be read (not
    JSON, not an object, nested too deep for the decoder)."""
    try:
        job = json.loads(reservation).get("job")
    except (ValueError, AttributeError, RecursionError, UnicodeDecodeError):
        return None
    return job if isinstance(job, dict) and isinstance(job.get("jid"), str) else None


def record(job: dict, now: float, errtype: Any, message: Any, backtrace: Any) -> dict:
    """Set ``job["failure"]`` for this failure (one more retry counted) and return it."""
    # Go trims Unicode spaces and cuts bytes, not characters (wire.cut).
    errtype = wire.cut(wire.trim(str(errtype) if errtype else ""), 100) or "unknown"
    message = wire.cut(wire.trim(str(message) if message else ""), 1000) or "unknown"
    # The job's ``backtrace`` asks for that many lines; the real server's
    # cap of 50 applies either way.
    keep = number(job.get("backtrace"), 0)
    keep = min(keep, MAX_BACKTRACE) if keep > 0 else MAX_BACKTRACE
    lines = [str(x) for x in backtrace[:keep]] if isinstance(backtrace, list) else []
    old = job.get("failure") if isinstance(job.get("failure"), dict) else None
    failed_at = old.get("failed_at") if old else None
    failure: dict[str, Any] = {
        "failed_at": failed_at if isinstance(failed_at, str) and failed_at else format_time(now)
    }
    # As in Go, a failure that is not retried keeps the next_at of the last retry.
    next_at = old.get("next_at") if old else None
    failure["next_at"] = next_at if isinstance(next_at, str) else ""
    failure["message"] = message
    failure["errtype"] = errtype
    if lines:
        failure["backtrace"] = lines
    if old:
        failure["retry_count"] = min(MAX_NUMBER, max(0, number(old.get("retry_count"), 0)) + 1)
        remaining = number(old.get("remaining"), 0)
        failure["remaining"] = remaining - 1 if remaining > 0 else remaining
    else:
        failure["retry_count"] = 0
        failure["remaining"] = retries_allowed(job)
    job["failure"] = failure
    return failure


def retries_allowed(job: dict) -> int:
    return number(job.get("retry"), jobs.DEFAULT_RETRY)


def decide(job: dict, now: float, rng: random.Random | Any = random) -> tuple[str, float]:
    """(target set or '' to drop it, score) for a job whose ``failure`` is
    recorded; sets ``failure.next_at`` for a retry."""
    failure = job["failure"]
    retry = retries_allowed(job)
    count = number(failure.get("retry_count"), 0)
    if retry == 0:
        target, score = "", 0.0
    elif count < retry:
        score = now + min(retry_delay(count, rng), MAX_RETRY_DELAY)
        target = "retries"
        failure["next_at"] = format_time(score)
    else:
        target, score = "dead", now + jobs.DEAD_TTL
    if not failure.get("next_at"):
        failure.pop("next_at", None)
    return target, score


def serialize(job: dict) -> str:
    """The job as stored JSON; a stored NaN or infinity (which no client could
    parse back) becomes null."""
    try:
        job = _finite(job)
    except RecursionError:
        pass  # nested deeper than we walk: stored as it came
    return jobs.serialize(job)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
