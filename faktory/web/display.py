"""How the web UI words numbers, times, sizes and jobs for people: plain
functions, so every page (and plugin pages) says things the same way."""

from __future__ import annotations

import json
from typing import Any

from ..job import parse_time

ACTIVE_JOB_WRAPPER = "ActiveJob::QueueAdapters::FaktoryAdapter::JobWrapper"
MAILER_JOBS = (
    "ActionMailer::DeliveryJob",
    "ActionMailer::MailDeliveryJob",
    "ActionMailer::Parameterized::DeliveryJob",
)
ARG_LIMIT = 1024  # characters of one argument shown in a table cell


def number(n: int | float | None) -> str:
    """Counts with comma thousands separators: 1234567 -> '1,234,567'."""
    if n is None:
        return "-"
    return f"{n:,}" if isinstance(n, int) else f"{n:,.2f}"


def _span(seconds: float) -> str:
    minutes = round(seconds / 60)
    if seconds < 45:
        return "less than a minute"
    if minutes < 2:
        return "1 minute"
    if minutes < 45:
        return f"{minutes} minutes"
    if minutes < 90:
        return "about 1 hour"
    hours = round(seconds / 3600)
    if hours < 24:
        return f"about {hours} hours"
    days = round(seconds / 86400)
    if hours < 42:
        return "1 day"
    if days < 30:
        return f"{days} days"
    if days < 45:
        return "about 1 month"
    if days < 365:
        return f"{round(days / 30)} months"
    years, rest = divmod(days, 365)
    if rest < 91:
        return "about 1 year" if years == 1 else f"about {years} years"
    if rest < 274:
        return f"over {years} year{'s' if years > 1 else ''}"
    return f"almost {years + 1} years"


def time_ago(ts: float | None, now: float) -> str:
    """'3 minutes ago' for the past, 'in 5 minutes' for the future."""
    if ts is None:
        return "never"
    delta = now - ts
    if delta >= 0:
        return "just now" if delta < 5 else _span(delta) + " ago"
    return "in " + _span(-delta)


def timestamp(value: Any) -> float | None:
    """A job time field (RFC3339 text or Unix seconds) as Unix seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value:
        try:
            return parse_time(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return None
    return None


def duration(seconds: float) -> str:
    """Uptime and latency: '3 d 4 h', '12 min', '1.5 s', '250 ms'."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, hours, days = seconds / 60, seconds / 3600, seconds / 86400
    if minutes < 60:
        return f"{minutes:.0f} min"
    if hours < 24:
        return f"{int(hours)} h {int(minutes % 60)} min"
    return f"{int(days)} d {int(hours % 24)} h"


def rss(kb: Any) -> str:
    """Resident memory of a worker, as reported in BEAT (kilobytes)."""
    try:
        kb = int(kb)
    except (TypeError, ValueError):
        return "-"
    if kb < 100_000:
        return f"{kb:,} KB"
    if kb < 10_000_000:
        return f"{kb / 1024:.1f} MB"
    return f"{kb / 1024 / 1024:.1f} GB"


def job_type(job: dict) -> str:
    """The type people know the job by: ActiveJob and mailer wrappers unwrapped."""
    jobtype = str(job.get("jobtype", ""))
    if jobtype == ACTIVE_JOB_WRAPPER:
        custom = job.get("custom") or {}
        wrapped = custom.get("wrapped") if isinstance(custom, dict) else None
        if wrapped:
            jobtype = str(wrapped)
            args = job.get("args") or []
            if jobtype in MAILER_JOBS and args and isinstance(args[0], dict):
                inner = args[0].get("arguments") or []
                if len(inner) >= 2:
                    return f"{inner[0]}#{inner[1]}"
    return jobtype


def short_args(job: dict, limit: int = ARG_LIMIT) -> list[str]:
    """Each argument as compact JSON, cut to ``limit`` characters."""
    args = job.get("args")
    if not isinstance(args, list):
        args = [args]
    out = []
    for arg in args:
        text = json.dumps(arg, ensure_ascii=False)
        out.append(text if len(text) <= limit else text[:limit] + "…")
    return out


def pretty(value: Any) -> str:
    """Indented JSON for detail views."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def decode_job(raw: bytes | str) -> dict:
    """A stored payload as a dict; something unreadable is shown, not fatal."""
    try:
        job = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        job = None
    if not isinstance(job, dict):
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        return {"jid": "?", "jobtype": "(unreadable payload)", "args": [text[:2000]]}
    return job
