"""Operator actions and statistics: one implementation behind the work
protocol (INFO, FLUSH, QUEUE, MUTATE), the web UI and ``faktory-cli``."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer

from . import FAKTORY_COMPAT_VERSION
from .job import format_time
from .manager import local_day


class Admin:
    def __init__(self, server) -> None:
        # ``server`` is the FaktoryServer: store, manager, workers, counters.
        self.server = server
        self.store = server.store
        self.manager = server.manager
        self.workers = server.workers
        self.info_extensions: list[Callable[[dict], Any]] = []

    def add_info(self, fn: Callable[[dict], Any]) -> None:
        """Let a feature add its figures to INFO: ``fn(info)`` updates the
        document in place and may return a Deferred or be a coroutine."""
        self.info_extensions.append(fn)

    @defer.inlineCallbacks
    def info(self):
        """The INFO document, shaped exactly like the real server's."""
        store = self.store
        now = self.server.clock.seconds()
        queues, sets, (processed, failures), workers = yield defer.gatherResults(
            [store.queue_sizes(), store.set_sizes(), store.counters(), store.workers()]
        )
        tasks = {}
        for name in ("Scheduled", "Retries", "Dead"):
            st = self.manager.task_stats.get(name, {})
            tasks[name] = {
                "cycles": int(st.get("cycles", 0)),
                "enqueued": int(st.get("enqueued", 0)),
                "size": sets[name.lower()],
                "wall_time_sec": float(st.get("wall_time_sec", 0.0)),
            }
        tasks["Busy"] = {
            "reaped": int(self.manager.task_stats.get("Busy", {}).get("reaped", 0)),
            "size": sets["working"],
        }
        tasks["Workers"] = {"reaped": self.workers.reaped, "size": len(workers)}
        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        doc = {
            "now": format_time(now),
            "server_utc_time": time.strftime("%H:%M:%S UTC", time.gmtime(now)),
            "faktory": {
                "queues": queues,
                "sets": sets,
                "tasks": dict(sorted(tasks.items())),
                "total_failures": failures,
                "total_processed": processed,
                "total_enqueued": sum(queues.values()),
                "total_queues": len(queues),
            },
            "server": {
                "description": "Faktory",
                "faktory_version": FAKTORY_COMPAT_VERSION,
                "uptime": int(now - self.server.started_at),
                "connections": self.server.connection_count,
                "command_count": self.server.command_count,
                "used_memory_mb": _current_rss_mb() or rss_kb // 1024,
            },
        }
        for extend in self.info_extensions:
            yield defer.ensureDeferred(_awaitable(extend(doc)))
        return doc

    @defer.inlineCallbacks
    def history(self, days: int):
        """Daily processed/failed counts for the last ``days`` days, newest first."""
        if days > 180:
            raise ValueError("days value can't be greater than 180")
        now = self.server.clock.seconds()
        out = []
        for i in range(days):
            day = local_day(now - i * 86400)
            _, _, processed, failed = yield self.store.counters(day)
            out.append({"date": day, "processed": processed, "failed": failed})
        return out

    def flush(self) -> defer.Deferred:
        return self.store.flush()


async def _awaitable(result: Any) -> Any:
    if isinstance(result, defer.Deferred) or hasattr(result, "__await__"):
        return await result
    return result


def _current_rss_mb() -> int:
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // (1024 * 1024)
    except (OSError, ValueError, IndexError):
        return 0


def info_counts(info: dict[str, Any]) -> dict[str, int]:
    """The summary numbers the web UI and the CLI show from an INFO document."""
    fk = info["faktory"]
    return {
        "processed": fk["total_processed"],
        "failed": fk["total_failures"],
        "busy": fk["sets"]["working"],
        "enqueued": fk["total_enqueued"],
        "retries": fk["sets"]["retries"],
        "scheduled": fk["sets"]["scheduled"],
        "dead": fk["sets"]["dead"],
    }
