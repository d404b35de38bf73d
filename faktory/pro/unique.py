"""Unique jobs: a job with ``custom.unique_for`` (seconds) is refused with
``NOTUNIQUE Job not unique`` while another job with the same jobtype, args
and queue holds the lock.

The lock is one Redis key per (jobtype, args, queue) digest, taken with
``SET NX PX`` (atomic across servers) and holding the owner's jid, so only
the owner can release it: at FETCH for ``unique_until = "start"``, at ACK
for ``"success"`` (the default, kept through retries), when the job will not
run again (FAIL with ``retry: 0``, death after its last retry, an expired job
dropped at FETCH, deleted or killed by an operator), and when the PUSH that
took it fails after all (a later middleware refused the job, or it could not
be stored).  It always expires
after ``unique_for`` seconds, plus the delay of a scheduled job.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from .. import luascript
from ..errors import Halt
from ..job import JobError, scheduled_at
from ..store import Store

log = Logger()

_RELEASE = luascript.load("unique_release", "faktory.pro")


class UniqueStore:
    """``unique:<sha256 of jobtype, args, queue>`` -> owner jid, with a TTL."""

    def __init__(self, store: Store) -> None:
        self.redis = store.redis
        self.prefix = store.prefix

    def key(self, job: dict) -> str:
        # sort_keys: {"a":1,"b":2} and {"b":2,"a":1} are the same args
        identity = json.dumps(
            [job["jobtype"], job.get("args", []), job.get("queue", "default")],
            sort_keys=True,
            separators=(",", ":"),
        )
        return self.prefix + "unique:" + hashlib.sha256(identity.encode()).hexdigest()

    def lock(self, job: dict, ttl: float) -> defer.Deferred:
        """Fires True if this job now holds the lock."""
        ms = max(1, int(ttl * 1000))
        d = self.redis.execute_command("SET", self.key(job), job["jid"], "NX", "PX", ms)
        return d.addCallback(lambda r: r is not None)

    def release(self, job: dict) -> defer.Deferred:
        return _RELEASE(self.redis, (self.key(job), job["jid"]))


def unique_terms(job: dict) -> tuple[float, str] | None:
    """(unique_for, unique_until) of a job that asks for uniqueness, else None;
    JobError when the values make no sense."""
    custom = job.get("custom")
    if not custom or custom.get("unique_for") is None:
        return None
    seconds = custom["unique_for"]
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
        raise JobError(
            f"invalid custom.unique_for {seconds!r}: must be a positive number of seconds"
        )
    until = custom.get("unique_until") or "success"
    if until not in ("success", "start"):
        raise JobError(f'invalid custom.unique_until {until!r}: must be "success" or "start"')
    return float(seconds), until


class UniquePlugin:
    name = "unique"
    description = "Refuse duplicate jobs while custom.unique_for holds a lock."

    def __init__(self) -> None:
        self.server = None
        self.store: UniqueStore | None = None

    def setup(self, server) -> None:
        self.server = server
        self.store = UniqueStore(server.store)
        server.manager.use("push", self.on_push, custom=("unique_for",), undo=self.undo_push)
        server.manager.use("fetch", self.on_fetch, custom=("unique_for",))
        server.manager.use("settled", self.on_settled, custom=("unique_for",))
        server.manager.use("removed", self.on_removed, custom=("unique_for",))

    def shutdown(self, server) -> None:
        pass

    @staticmethod
    def check_job(job: dict) -> None:
        """What ``on_push`` would refuse, without taking a lock (cron templates)."""
        unique_terms(job)

    async def on_push(self, job: dict) -> None:
        terms = unique_terms(job)
        if terms is None:
            return
        seconds, _ = terms
        now = self.server.reactor.seconds()
        at = scheduled_at(job, now)
        ttl = seconds + (at - now if at is not None else 0.0)
        if not await self.store.lock(job, ttl):
            raise Halt("Job not unique", "NOTUNIQUE")

    async def undo_push(self, job: dict) -> None:
        """The PUSH failed after the lock was taken: give it back."""
        if _terms_or_none(job) is not None:
            await self.store.release(job)

    async def on_fetch(self, job: dict) -> None:
        terms = _terms_or_none(job)
        if terms is not None and terms[1] == "start":
            await self.store.release(job)

    async def on_settled(self, job: dict, outcome: str, reservation: Any = None) -> None:
        """ACK ends the lock; so does every end after which the job will not
        run again (FAIL with retry 0, death, expired at FETCH).  A failure
        that will be retried keeps it."""
        if outcome == "retry":
            return
        if _terms_or_none(job) is not None:
            await self.store.release(job)

    async def on_removed(self, job: dict, action: str) -> None:
        """An operator deleted or killed the job by hand: it will not run
        again, so a re-push must be accepted.  The release is compare-and-
        delete, so a lock another job took since is left alone."""
        if _terms_or_none(job) is not None:
            await self.store.release(job)


def _terms_or_none(job: dict) -> Any:
    try:
        return unique_terms(job)
    except JobError:
        return None  # stored before the rules applied: it never took a lock
