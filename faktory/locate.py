"""Finding stored jobs: one job by jid wherever it is (the web UI's
``/job/<jid>``), and the jobs of one queue matching a jid, job type or text.

Nothing indexes jobs by jid: keeping such an index would cost every PUSH,
FETCH and ACK a write.  So a reservation is found in O(1) (``working`` is a
hash by jid), a set entry in O(log n) when the caller knows its score, and
everything else by scanning inside Redis in bounded steps of ``SCAN``
entries, at most ``LIMIT`` entries per search, stopping at the first match.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer

from . import luascript
from .store import Store

SETS = ("retries", "dead", "scheduled")


def _object(raw: bytes) -> dict:
    """A stored JSON object, or {} for anything else (never an exception)."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _is_score(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def jid_needle(jid: str) -> str:
    """The text a stored job with this jid contains (jobs are stored as the
    server serialized them: ``"jid":"..."`` without spaces)."""
    return '"jid":' + json.dumps(jid, ensure_ascii=False)


def jobtype_needle(jobtype: str) -> str:
    return '"jobtype":' + json.dumps(jobtype, ensure_ascii=False)


def _jid_of(raw: bytes) -> Any:
    try:
        job = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return job.get("jid") if isinstance(job, dict) else None


@dataclass
class Location:
    """Where a job was found: ``where`` is ``working``, ``queue`` or a set
    (``retries``, ``scheduled``, ``dead``)."""

    where: str
    raw: bytes
    key: str = ""  # ``<score>|<jid>`` in a set
    queue: str = ""
    priority: int = 0
    reservation: dict = field(default_factory=dict)


@dataclass
class Search:
    """A search's outcome: the location (or None) and whether every place
    was examined (False when ``LIMIT`` entries were read without a match)."""

    found: Location | None
    complete: bool
    examined: int


class Finder:
    SCAN = 2000  # entries one step examines inside Redis
    LIMIT = 200_000  # entries one search examines at most

    _queue_filter = luascript.load("queue_filter")

    def __init__(self, store: Store) -> None:
        self.store = store
        self.redis = store.redis
        self.prefix = store.prefix

    @defer.inlineCallbacks
    def queue_step(self, queue: str, position: int, count: int, jid: str, jobtype: str, text: str):
        """(next position or None at the end, [(priority, job bytes)])."""
        flat = yield self._queue_filter(
            self.redis,
            (
                self.prefix,
                queue,
                position,
                count,
                jid_needle(jid) if jid else "",
                jobtype_needle(jobtype) if jobtype else "",
                text.encode().lower(),
            ),
        )
        nxt = int(flat[0])
        rows = [(int(flat[i]), flat[i + 1]) for i in range(1, len(flat), 2)]
        return (None if nxt < 0 else nxt), rows

    async def queue_filter(
        self, queue: str, start: int, count: int, jid: str = "", jobtype: str = "", text: str = ""
    ) -> tuple[list[tuple[int, bytes]], bool]:
        """One page of a queue's jobs matching every given filter (jid and
        job type exact, text case-insensitive for ASCII), skipping the first
        ``start`` matches: ([(priority, job bytes)], whether more follow).
        Scans in steps of ``SCAN`` and stops when the page is full."""
        position: int | None = 0
        skipped, found = 0, []
        while position is not None and len(found) <= count:
            position, rows = await self.queue_step(queue, position, self.SCAN, jid, jobtype, text)
            for row in rows:
                if jid and _jid_of(row[1]) != jid:
                    continue
                if skipped < start:
                    skipped += 1
                else:
                    found.append(row)
        return found[:count], len(found) > count

    async def locate(self, jid: str, hint: tuple[str, str] | None = None) -> Search:
        """Find the job ``jid``: in progress, then at ``hint`` (set, score) if
        given, then in retries, dead and scheduled, then in the queues."""
        raw = await self.store.reservation(jid)
        if raw is not None:
            reservation = _object(raw)
            job = reservation.pop("job", None)
            if not isinstance(job, dict):  # shown as the unreadable payload it is
                return Search(Location("working", raw, reservation=reservation), True, 1)
            return Search(
                Location(
                    "working",
                    json.dumps(job).encode(),
                    queue=str(job.get("queue", "")),
                    reservation=reservation,
                ),
                True,
                1,
            )
        if hint is not None and hint[0] in SETS and _is_score(hint[1]):
            raw = await self.store.set_entry(hint[0], hint[1], jid)
            if raw is not None:
                return Search(Location(hint[0], raw, key=f"{hint[1]}|{jid}"), True, 1)
        needle = jid_needle(jid)
        examined = 0
        for name in SETS:
            index: int | None = 0
            while index is not None:
                if examined >= self.LIMIT:
                    return Search(None, False, examined)
                start = index
                index, rows = await self.store.set_filter(name, index, self.SCAN, False, needle, "")
                examined += (index - start) if index is not None else self.SCAN
                for score, raw in rows:
                    if _jid_of(raw) == jid:
                        return Search(Location(name, raw, key=f"{score}|{jid}"), True, examined)
        for queue in await self.store.queue_names():
            position: int | None = 0
            while position is not None:
                if examined >= self.LIMIT:
                    return Search(None, False, examined)
                start = position
                position, rows = await self.queue_step(queue, position, self.SCAN, jid, "", "")
                examined += (position - start) if position is not None else self.SCAN
                for priority, raw in rows:
                    if _jid_of(raw) == jid:
                        loc = Location("queue", raw, queue=queue, priority=priority)
                        return Search(loc, True, examined)
        return Search(None, True, examined)
