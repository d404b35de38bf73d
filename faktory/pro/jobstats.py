"""Per-jobtype execution counts and duration histograms, kept bounded.

``metrics:jobs`` HASH, field ``<kind>|<jobtype>``: ``ok``/``fail`` execution
counts, ``us`` summed microseconds, ``b<i>`` jobs whose duration fell in
histogram bucket i.  ``metrics:jobtypes`` ZSET ranks the job types that have a
series of their own by executions.  At most ``limit`` job types have one: the
top ``limit`` by volume, kept with the Space-Saving rule (a new job type takes
the place of the least busy one, whose counts move into the ``other`` series,
and starts from that one's count), so thousands of job types never make
``/metrics`` or the hash grow past ``limit + 1`` series.  Every change is one
script, so servers sharing the Redis agree.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from twisted.internet import defer

from .. import luascript
from ..store import Store

DEFAULT_LIMIT = 100  # job types with a series of their own
MAX_LIMIT = 10_000
OTHER = "other"


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# Histogram bucket bounds, seconds (Prometheus ``le``): shared by the store,
# the Prometheus text and the job types page.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
SLOTS = {"m": 300, "h": 3600}  # slot lengths, seconds
KEEP = {"m": 3600 + 900, "h": 86400 + 7200}  # slot TTLs: their window, and a margin


def slot_args(now: float) -> list[Any]:
    """For the metrics ADD script: (key suffix, ttl) of the slots of ``now``."""
    out: list[Any] = []
    for kind, length in SLOTS.items():
        out += [f":{kind}:{int(now // length)}", KEEP[kind]]
    return out


def window_keys(prefix: str, now: float, kind: str, seconds: int) -> list[str]:
    length = SLOTS[kind]
    first, last = int((now - seconds) // length), int(now // length)
    return [f"{prefix}metrics:jobs:{kind}:{n}" for n in range(first, last + 1)]


class MetricsStore:
    """The Redis side of the Prometheus job metrics."""

    _add = luascript.load("jobstats_add", "faktory.pro", constants={"OTHER": OTHER})

    def __init__(self, store: Store, kinds: tuple[str, ...], limit: int = DEFAULT_LIMIT) -> None:
        self.store = store
        self.redis = store.redis
        self.prefix = store.prefix
        self.kinds = " ".join(kinds)
        self.limit = limit

    def add(self, increments: dict[str, int], now: float) -> defer.Deferred:
        """Add ``{"<kind>|<jobtype>": n}`` counts (``ok``/``fail`` are executions)
        to the totals and to the time slots ``now`` falls in."""
        by_type: dict[str, dict[str, int]] = defaultdict(dict)
        for name, n in increments.items():
            kind, _, jobtype = name.partition("|")
            by_type[jobtype][kind] = n
        args: list[Any] = [self.prefix, self.limit, self.kinds, *slot_args(now)]
        for jobtype, counts in by_type.items():
            args += [jobtype, counts.get("ok", 0) + counts.get("fail", 0), len(counts)]
            for kind, n in counts.items():
                args += [kind, n]
        return self._add(self.redis, args)

    @defer.inlineCallbacks
    def job_stats(self):
        """{jobtype: {kind: count}}"""
        flat = yield self.redis.execute_command("HGETALL", self.prefix + "metrics:jobs")
        out: dict[str, dict[str, int]] = defaultdict(dict)
        for i in range(0, len(flat), 2):
            kind, _, jobtype = _s(flat[i]).partition("|")
            out[jobtype][kind] = int(flat[i + 1])
        return dict(out)

    def worker_count(self) -> defer.Deferred:
        return self.redis.execute_command("ZCARD", self.prefix + "workers").addCallback(int)

    @defer.inlineCallbacks
    def rtt(self):
        """Seconds one PING takes."""
        started = time.perf_counter()
        yield self.redis.execute_command("PING")
        return time.perf_counter() - started


def limit_setting(config: dict[str, Any]) -> int:
    """``[metrics] jobtypes``; ValueError naming it when out of range."""
    section = config.get("metrics", {})
    if not isinstance(section, dict):
        raise ValueError("[metrics] must be a table")
    unknown = set(section) - {"jobtypes"}
    if unknown:
        raise ValueError(f"[metrics]: unknown keys {sorted(unknown)}")
    value = section.get("jobtypes", DEFAULT_LIMIT)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise ValueError(f"[metrics] jobtypes must be a whole number from 1 to {MAX_LIMIT}")
    return value
