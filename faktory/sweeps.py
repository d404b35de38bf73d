"""The manager's periodic sweeps: due scheduled and retry jobs into their
queues, expired dead jobs out, and reservations whose worker died or hung
failed (with the held copies of their jids handed back)."""

from __future__ import annotations

import time
from typing import Any

from twisted.logger import Logger

from .errors import StorageUnavailable
from .job import format_time

log = Logger()

BATCH = 100  # jobs moved per sweep step: bounded Redis work per call
HELD_RECHECK = 5.0  # seconds between two looks at one jid's held copies


class Sweeps:
    """Mixed into ``Manager``: it provides ``store``, ``now()``,
    ``task_stats`` and ``_fail_reservation``."""

    def _stat(self, name: str, **add: Any) -> dict[str, Any]:
        stats = self.task_stats.setdefault(name, {"cycles": 0, "enqueued": 0, "wall_time_sec": 0.0})
        for k, v in add.items():
            stats[k] = stats.get(k, 0) + v
        return stats

    async def promote(self, name: str) -> int:
        """Move due ``scheduled`` or ``retries`` jobs into their queues, 100 at a time."""
        started = time.monotonic()
        moved = 0
        while True:
            now = self.now()
            n = await self.store.promote(name, now, format_time(now), BATCH)
            moved += n
            if n < BATCH:
                break
        self._stat(
            name.capitalize(), cycles=1, enqueued=moved, wall_time_sec=time.monotonic() - started
        )
        return moved

    async def purge_dead(self) -> int:
        started = time.monotonic()
        gone = await self.store.purge("dead", self.now(), BATCH * 10)
        self._stat("Dead", cycles=1, wall_time_sec=time.monotonic() - started)
        return gone

    async def reap_reservations(self) -> int:
        """Fail jobs whose reservation ran out: their worker died or hung."""
        reaped = 0
        stuck = 0  # left reserved this pass: skipped, so they cannot hide the rest
        while True:
            jids = await self.store.expired_reservations(self.now(), BATCH, stuck)
            for jid in jids:
                raw = await self.store.reservation(jid)
                if raw is None:
                    await self.store.drop_orphan_expiry(jid)
                    continue
                try:
                    settled = await self._fail_reservation(
                        jid, raw, "ReservationExpired", "Faktory job reservation expired", None
                    )
                except StorageUnavailable:
                    raise
                except Exception:
                    # A job that a fail middleware chokes on stays reserved and is
                    # tried again next time; it must not hold up the others.
                    log.failure("Cannot fail job {jid} whose reservation expired", jid=jid)
                    stuck += 1
                    continue
                if settled:
                    reaped += 1
                    log.info("Reservation for job {jid} expired", jid=jid)
            if len(jids) < BATCH:
                break
        # Copies of a jid held while another was reserved, whose reservation
        # ended without handing them back (see lua/held.lua).
        now = self.now()
        await self.store.release_held(now, now - HELD_RECHECK, BATCH)
        stats = self.task_stats.setdefault("Busy", {"reaped": 0})
        stats["reaped"] += reaped
        return reaped
