"""How the web UI reads jobs for people: plain functions, so every page (and
plugin pages) says things the same way.  Numbers, times and sizes depend on
the reader's language: see ``i18n.Translator`` (``ctx.t``)."""

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
