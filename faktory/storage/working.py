"""Jobs in progress: the ``working`` reservations and their ``working:exp``
expiry index, held copies of a reserved jid; ACK, FAIL, release."""

from __future__ import annotations

from twisted.internet import defer

from ..errors import gather
from .base import StorageBase, _s, script


class WorkingStorage(StorageBase):
    _ack = script("ack")
    _fail = script("fail")
    _release = script("release")
    _held_sweep = script("held_sweep")

    def ack(self, jid: str, day: str) -> defer.Deferred:
        """Fires with the reservation JSON bytes, or None if it was not reserved."""
        return self._ack(self.redis, (self.prefix, jid, day))

    def reservation(self, jid: str) -> defer.Deferred:
        return self.redis.execute_command("HGET", self.prefix + "working", jid)

    def settle_failure(
        self, jid: str, day: str, reservation: bytes, target: str, score: float, payload: str
    ) -> defer.Deferred:
        """Fires True when this call removed the reservation and stored the outcome."""
        d = self._fail(
            self.redis, (self.prefix, jid, day, reservation, target, repr(score), payload)
        )
        return d.addCallback(bool)

    def release(
        self, jid: str, reservation: bytes, queue: str, priority: int, payload: str
    ) -> defer.Deferred:
        d = self._release(self.redis, (self.prefix, jid, reservation, queue, priority, payload))
        return d.addCallback(bool)

    def release_orphan(
        self,
        jid: str,
        reservation: bytes,
        queue: str,
        priority: int,
        payload: str,
        wid: str,
        cutoff: float,
    ) -> defer.Deferred:
        """Release a reservation only while its worker process ``wid`` is gone
        (no heartbeat since ``cutoff``): fires with 1 (released), 0 (the
        reservation changed) or -1 (the worker is alive)."""
        args = (self.prefix, jid, reservation, queue, priority, payload, wid, repr(cutoff))
        return self._release(self.redis, args).addCallback(int)

    def drop_orphan_expiry(self, jid: str) -> defer.Deferred:
        """Remove an expiry entry whose reservation is already gone."""
        return self.redis.execute_command("ZREM", self.prefix + "working:exp", jid)

    def expired_reservations(self, now: float, limit: int = 100, skip: int = 0) -> defer.Deferred:
        d = self.redis.execute_command(
            "ZRANGEBYSCORE", self.prefix + "working:exp", "-inf", repr(now), "LIMIT", skip, limit
        )
        return d.addCallback(lambda jids: [_s(j) for j in jids])

    def extend_reservation(self, jid: str, until: float) -> defer.Deferred:
        """Push a reservation's expiry later (never earlier)."""
        return self.redis.execute_command(
            "ZADD", self.prefix + "working:exp", "XX", "GT", repr(until), jid
        )

    def release_held(self, now: float, cutoff: float, limit: int = 100) -> defer.Deferred:
        """Hand back held copies of jids no longer reserved; fires with the count."""
        return self._held_sweep(self.redis, (self.prefix, repr(now), repr(cutoff), limit))

    @defer.inlineCallbacks
    def busy_page(self, start: int, count: int):
        """(total, [reservation bytes]) ordered by reservation expiry."""
        total, jids = yield gather(
            [
                self.redis.execute_command("HLEN", self.prefix + "working"),
                self.redis.execute_command(
                    "ZRANGE", self.prefix + "working:exp", start, start + count - 1
                ),
            ]
        )
        if not jids:
            return int(total), []
        rows = yield self.redis.execute_command("HMGET", self.prefix + "working", *jids)
        return int(total), [r for r in rows if r is not None]

    def reservations(self) -> defer.Deferred:
        """Every reservation (bytes): only for pages that checked HLEN is small."""
        return self.redis.execute_command("HVALS", self.prefix + "working")
