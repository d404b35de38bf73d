"""Batches in Redis: the limits and the Lua scripts (``pro/lua/batch_*.lua``,
all built on ``batch.lua``) every batch change runs, each one atomic; shared
by ``batch`` and ``batch_undo``."""

from __future__ import annotations

import re
from typing import Any

from .. import luascript
from ..luascript import Script

UNCOMMITTED_TTL = 30 * 60  # a batch never committed vanishes after 30 min idle
ACTIVE_TTL = 30 * 24 * 3600  # committed, still waiting on jobs (retries last ~3 weeks)
FINISHED_TTL = 24 * 3600  # kept readable (STATUS, OPEN, web UI) after success
MAX_DEPTH = 64  # batches nest at most this deep (the cycle check walks it all)
# A batch id: what BATCH NEW hands out ("b-" + 16 URL-safe characters) and,
# for ids from elsewhere, letters, digits, "_", "-" and "." only: never ":",
# so no id can name another structure's key (``batch:<bid>:jobs``...).
BID = re.compile(r"\A[A-Za-z0-9_.\-]{1,64}\Z")
STATUS_FIELDS = (
    "bid",
    "parent_bid",
    "description",
    "created_at",
    "complete_st",
    "success_st",
    "total",
    "pending",
    "failed",
)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else ("" if value is None else str(value))


def script(name: str) -> Script:
    """``pro/lua/batch_<name>.lua`` with the batch limits above."""
    return luascript.load(
        "batch_" + name,
        "faktory.pro",
        constants={
            "MAX_DEPTH": MAX_DEPTH,
            "UNCOMMITTED_TTL": UNCOMMITTED_TTL,
            "ACTIVE_TTL": ACTIVE_TTL,
            "FINISHED_TTL": FINISHED_TTL,
        },
    )
