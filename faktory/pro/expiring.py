"""Expiring jobs: ``custom.expires_at`` (RFC3339) or ``custom.expires_in``
(seconds after PUSH).  A job fetched after its expiry is dropped instead of
handed out, logged as ``JID <jid>: Halt: job expired`` and counted; like the
real server, expired jobs wait in their queue until something fetches them.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from ..errors import Discard
from ..job import JobError, format_time, parse_time
from ..store import Store

log = Logger()


class ExpiringStore:
    """``stat:expired``: how many jobs were dropped for having expired."""

    def __init__(self, store: Store) -> None:
        self.redis = store.redis
        self.key = store.prefix + "stat:expired"

    def count(self) -> defer.Deferred:
        return self.redis.execute_command("INCR", self.key)

    def total(self) -> defer.Deferred:
        return self.redis.execute_command("GET", self.key).addCallback(lambda v: int(v or 0))


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class ExpiringPlugin:
    name = "expiring"
    description = "Drop jobs fetched after custom.expires_at / expires_in."

    def __init__(self) -> None:
        self.server = None
        self.store: ExpiringStore | None = None

    def setup(self, server) -> None:
        self.server = server
        self.store = ExpiringStore(server.store)
        server.manager.use("push", self.on_push, custom=("expires_in", "expires_at"))
        server.manager.use("fetch", self.on_fetch, custom=("expires_at",))
        server.admin.add_info(self.add_info)

    def shutdown(self, server) -> None:
        pass

    @staticmethod
    def check_job(job: dict) -> None:
        """What ``on_push`` would refuse, on a copy (cron templates)."""
        custom = job.get("custom")
        if isinstance(custom, dict):
            _expiry(dict(custom), 0.0)

    def on_push(self, job: dict) -> None:
        """Turn ``expires_in`` into an absolute ``expires_at`` and check both."""
        custom = job.get("custom")
        if custom:
            _expiry(custom, self.server.reactor.seconds())

    async def on_fetch(self, job: dict) -> None:
        custom = job.get("custom")
        if not custom or "expires_at" not in custom:
            return
        try:
            expiry = parse_time(custom["expires_at"])
        except (TypeError, ValueError):
            return  # checked at PUSH; a job stored before then is not ours to judge
        if expiry <= self.server.reactor.seconds():
            await self.store.count()
            raise Discard("job expired")

    async def add_info(self, info: dict) -> None:
        info["faktory"]["total_expired"] = await self.store.total()


def _expiry(custom: dict, now: float) -> None:
    """Check ``expires_in``/``expires_at``; ``expires_in`` becomes ``expires_at``."""
    if "expires_in" in custom:
        seconds = _seconds(custom["expires_in"])
        if seconds is None:
            raise JobError(
                f"invalid custom.expires_in {custom['expires_in']!r}: must be a number of seconds"
            )
        custom["expires_at"] = format_time(now + seconds)
        del custom["expires_in"]
    if "expires_at" in custom:
        value = custom["expires_at"]
        try:
            parse_time(value) if isinstance(value, str) else parse_time("")
        except ValueError as e:
            raise JobError(f"invalid custom.expires_at {value!r}: {e}") from None
