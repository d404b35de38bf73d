"""Counters (``stat:processed``/``stat:failures`` and their daily history),
Redis INFO, and FLUSH."""

from __future__ import annotations

from twisted.internet import defer

from ..errors import gather
from ..namespace import glob_escape
from .base import StorageBase, _count


class StatsStorage(StorageBase):
    @defer.inlineCallbacks
    def counters(self, day: str | None = None):
        keys = ["stat:processed", "stat:failures"]
        if day:
            keys += [f"stat:processed:{day}", f"stat:failures:{day}"]
        values = yield self.redis.execute_command("MGET", *(self.prefix + k for k in keys))
        return [_count(v) for v in values]

    @defer.inlineCallbacks
    def flush(self):
        """Delete every key under our prefix, and nothing else.

        Worker records survive, as the real server's in-memory heartbeats do:
        connected workers keep BEATing after a client test suite's FLUSH."""
        cursor = b"0"
        workers = (self.prefix + "workers").encode()
        worker = (self.prefix + "worker:").encode()
        while True:
            cursor, keys = yield self.redis.execute_command(
                "SCAN", cursor, "MATCH", glob_escape(self.prefix) + "*", "COUNT", 1000
            )
            keys = [k for k in keys if k != workers and not k.startswith(worker)]
            if keys:
                yield self.redis.execute_command("UNLINK", *keys)
            if cursor in (b"0", 0, "0"):
                return

    @defer.inlineCallbacks
    def redis_info_sections(self, *names: str):
        """INFO text of these sections (one call each: Redis 6 takes one)."""
        parts = yield gather([self.redis.execute_command("INFO", name) for name in names])
        return b"\n".join(parts)

    def redis_info(self) -> defer.Deferred:
        """Redis INFO text (bytes)."""
        return self.redis.execute_command("INFO")
