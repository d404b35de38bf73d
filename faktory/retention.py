"""Daily counters do not outlive the history the web UI shows.

``stat:processed:<day>`` / ``stat:failures:<day>`` get a TTL of
``store.HISTORY_TTL`` when the day's first job settles (in the ACK/FAIL
scripts).  Counters written before that rule (by an older version) have none:
at every start this pass gives each of the last ``LOOKBACK`` days' counters
the TTL it would have had, and deletes those already past it.  Keys are named
by date, so this is one script over a known list, never a SCAN.
"""

from __future__ import annotations

from twisted.internet import defer

from . import luascript
from .manager import local_day
from .store import HISTORY_TTL

LOOKBACK = 3 * 366  # days of old counters looked at
_RETAIN = luascript.load("retain")


def retain_history(store, now: float) -> defer.Deferred:
    """Give old daily counters their TTL; fires with how many were fixed."""
    args: list[object] = []
    for age in range(LOOKBACK):
        day = local_day(now - age * 86400)
        left = HISTORY_TTL - age * 86400
        for name in ("processed", "failures"):
            args += [f"{store.prefix}stat:{name}:{day}", left]
    return _RETAIN(store.redis, args)
