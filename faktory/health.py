"""Is this server able to take work right now?  ``/health`` asks here.

Alive is not enough: a server whose Redis is frozen or restarting accepts
connections but cannot store a job.  So the check PINGs Redis with a short
timeout and says why it failed."""

from __future__ import annotations

import time

from twisted.internet import defer

from .errors import StorageUnavailable

PING_TIMEOUT = 1.0  # seconds; a healthy Redis answers in well under 1 ms


async def check(server, timeout: float = PING_TIMEOUT) -> tuple[bool, str, float | None]:
    """(ready, reason when not, PING round trip in seconds when it answered)."""
    if server.shutting_down:
        return False, "shutting down", None
    if server.redis is None or not server.ready.called:
        return False, "starting", None
    proc = server.redis_process
    if proc is not None and proc.proto is None:
        return False, "Redis is restarting", None
    started = time.perf_counter()
    d = server.redis.execute_command("PING")
    d.addTimeout(timeout, server.reactor)
    try:
        await d
    except defer.TimeoutError:
        return False, f"Redis did not answer PING within {timeout:g} s", None
    except StorageUnavailable as e:
        return False, str(e), None
    except Exception as e:  # noqa: BLE001 - any other answer is a reason to report
        return False, f"Redis: {e}", None
    return True, "", time.perf_counter() - started


async def report(server) -> tuple[int, dict]:
    """(HTTP status, JSON document) of ``/health``."""
    from . import FAKTORY_COMPAT_VERSION, __version__
    from .job import format_time

    ok, reason, rtt = await check(server)
    doc = {
        "status": "ok" if ok else "unavailable",
        "now": format_time(server.reactor.seconds()),
        "server": {
            "description": "Faktory",
            "faktory_version": FAKTORY_COMPAT_VERSION,
            "version": __version__,
            "connections": server.connection_count,
            "command_count": server.command_count,
        },
        "redis": {"ok": ok, "ping_ms": round(rtt * 1000, 3) if rtt is not None else None},
    }
    if not ok:
        doc["reason"] = reason
    return (200 if ok else 503), doc
