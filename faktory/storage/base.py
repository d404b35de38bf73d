"""What every storage part shares: the connection, the key prefix, this
server's origin, and the core's Lua scripts (``faktory/lua/*.lua``)."""

from __future__ import annotations

import json
from typing import Any

from .. import luascript
from ..luascript import Script

HISTORY_DAYS = 180  # days of daily counters the web UI can show
HISTORY_TTL = (HISTORY_DAYS + 2) * 86400  # a day's counters outlive that, then go


def script(name: str, fragments: dict[str, str] | None = None) -> Script:
    """A core script from ``faktory/lua/<name>.lua`` (see ``faktory.luascript``)."""
    return luascript.load(name, fragments=fragments, constants={"HISTORY_TTL": HISTORY_TTL})


class StorageBase:
    """Set by ``Store.__init__``: the Redis client, the key prefix of this
    deployment and this server's origin (it tells our own notifications
    apart from other servers')."""

    redis: Any
    prefix: str
    origin: str


def _jid_of(raw: bytes) -> Any:
    try:
        job = json.loads(raw)
    except ValueError:
        return None
    return job.get("jid") if isinstance(job, dict) else None


def _s(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _count(value: bytes | None) -> int:
    """A stored counter; one some other program garbled reads as 0 rather
    than failing INFO, the dashboard and the metrics."""
    try:
        return int(value or 0)
    except ValueError:
        return 0
