"""Reservations whose worker process is gone: listed on the web UI's Busy
page, and released back to the front of their queue at an operator's word
instead of waiting for the reservation to run out (up to ``reserve_for``,
30 minutes by default).

A worker process is gone when no record of it is left (its last connection
closed, or the registry reaped it) or it has not sent a heartbeat for
``HEARTBEAT_TTL`` seconds.  The release is one Lua script (``store.RELEASE``
with a worker check) that settles only the exact reservation read here and
only while its worker is still gone, so it cannot take a job from a worker
that came back, nor a newer reservation of the same jid."""

from __future__ import annotations

import json
from typing import Any

from twisted.logger import Logger

from . import job as jobs
from .workers import HEARTBEAT_TTL

log = Logger()


def live_workers(records: list[dict], now: float) -> set[str]:
    """The wids of worker processes that sent a heartbeat recently."""
    cutoff = now - HEARTBEAT_TTL
    return {w["wid"] for w in records if w.get("beat") is not None and w["beat"] > cutoff}


def is_orphan(reservation: dict, live: set[str]) -> bool:
    return str(reservation.get("wid") or "") not in live


async def release(server: Any, jid: str, reserved_at: str) -> tuple[str, dict]:
    """Release ``jid``'s reservation made at ``reserved_at`` if its worker is
    gone.  Returns (outcome, job): ``released``; ``gone`` (no such
    reservation: finished, reaped or a newer one); ``alive`` (its worker
    sends heartbeats again)."""
    store = server.store
    raw = await store.reservation(jid)
    if raw is None:
        return "gone", {}
    try:
        reservation = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        reservation = None
    job = reservation.get("job") if isinstance(reservation, dict) else None
    # An unreadable reservation cannot be the one the page showed: refuse.
    if not isinstance(job, dict) or str(reservation.get("reserved_at", "")) != reserved_at:
        return "gone", {}
    wid = str(reservation.get("wid") or "")
    now = server.reactor.seconds()
    outcome = await store.release_orphan(
        jid,
        raw,
        str(job.get("queue", "default")),
        jobs.priority(job),
        jobs.serialize(job),
        wid,
        now - HEARTBEAT_TTL,
    )
    if outcome == -1:
        return "alive", job
    if outcome == 0:
        return "gone", job
    log.info(
        "Operator released job {jid} ({jobtype}) of gone worker {wid} back to queue {queue}",
        jid=jid,
        jobtype=job.get("jobtype", ""),
        wid=wid or "-",
        queue=job.get("queue", ""),
    )
    return "released", job
