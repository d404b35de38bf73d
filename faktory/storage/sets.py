"""The sorted sets: ``scheduled``, ``retries`` and ``dead`` (score = when),
moved back into queues when due, paged and acted on by the web UI and MUTATE."""

from __future__ import annotations

import json

from twisted.internet import defer

from ..errors import gather
from .base import StorageBase, _jid_of, _s, script


class SetStorage(StorageBase):
    _promote = script("promote")
    _purge = script("purge")
    _set_filter = script("set_filter")
    _set_act = script("set_act")
    _mutate_step = script("mutate_step")
    _set_drain = script("set_drain")

    def schedule(self, name: str, score: float, payload: str) -> defer.Deferred:
        return self.redis.execute_command("ZADD", self.prefix + name, repr(score), payload)

    def promote(self, name: str, now: float, now_str: str, limit: int = 100) -> defer.Deferred:
        # Origin '*': the notification also wakes FETCHes waiting on this
        # server, which has no local push to learn of the promoted jobs from.
        return self._promote(self.redis, (self.prefix, "*", name, repr(now), now_str, limit))

    def purge(self, name: str, now: float, limit: int = 100) -> defer.Deferred:
        return self._purge(self.redis, (self.prefix, name, repr(now), limit))

    @defer.inlineCallbacks
    def set_sizes(self):
        names = ("scheduled", "retries", "dead")
        sizes = yield gather(
            [self.redis.execute_command("ZCARD", self.prefix + n) for n in names]
            + [self.redis.execute_command("HLEN", self.prefix + "working")]
        )
        return dict(zip(names + ("working",), (int(s) for s in sizes)))

    @defer.inlineCallbacks
    def set_page(self, name: str, start: int, count: int, reverse: bool = False):
        """(total, [(score, job bytes)]): one page of a sorted set by index."""
        cmd = "ZREVRANGE" if reverse else "ZRANGE"
        key = self.prefix + name
        total, flat = yield gather(
            [
                self.redis.execute_command("ZCARD", key),
                self.redis.execute_command(cmd, key, start, start + count - 1, "WITHSCORES"),
            ]
        )
        return int(total), [(_s(flat[i + 1]), flat[i]) for i in range(0, len(flat), 2)]

    @defer.inlineCallbacks
    def set_filter(self, name: str, start: int, scan: int, reverse: bool, jobtype: str, text: str):
        """Matches among ``scan`` members from index ``start``:
        (next index or None at the end, [(score, job bytes)])."""
        flat = yield self._set_filter(
            self.redis,
            (self.prefix + name, start, scan, "1" if reverse else "0", jobtype, text),
        )
        nxt = int(flat[0])
        return (None if nxt < 0 else nxt), [
            (_s(flat[i]), flat[i + 1]) for i in range(1, len(flat), 2)
        ]

    @defer.inlineCallbacks
    def set_entry(self, name: str, score: str, jid: str):
        """The member of a sorted set with this exact score and jid, or None."""
        members = yield self.redis.execute_command(
            "ZRANGEBYSCORE", self.prefix + name, score, score
        )
        needle = ('"jid":' + json.dumps(jid, ensure_ascii=False)).encode()
        for raw in members:
            if needle in raw and _jid_of(raw) == jid:  # not a job that mentions it
                return raw
        return None

    def set_act(
        self,
        name: str,
        action: str,
        keys: list[tuple[str, str]] | None,
        now_str: str,
        dead_score: float,
        limit: int = 100,
        probe: str = "",
    ) -> defer.Deferred:
        """``delete``/``retry``/``kill`` the entries ``keys`` ([(score, jid)]),
        or with ``keys=None`` the first ``limit`` entries; fires with (count,
        the deleted/killed jobs ``probe`` wants: see faktory.removal)."""
        args = [self.prefix, self.origin, name, action, now_str, repr(dead_score), probe]
        if keys is None:
            args += ["*", limit]
        else:
            for score, jid in keys:
                args += [score, '"jid":' + json.dumps(jid, ensure_ascii=False), jid]
        return self._set_act(self.redis, args).addCallback(lambda r: (int(r[0]), r[1:]))

    def set_clear(self, name: str) -> defer.Deferred:
        return self.redis.execute_command("UNLINK", self.prefix + name)

    def set_drain(self, name: str, limit: int, probe: str) -> defer.Deferred:
        """Remove the first ``limit`` entries: (count, the jobs ``probe`` wants)."""
        d = self._set_drain(self.redis, (self.prefix, name, limit, probe))
        return d.addCallback(lambda r: (int(r[0]), r[1:]))

    def mutate_step(
        self,
        name: str,
        cursor: bytes | str,
        match: str,
        op: str,
        now_str: str,
        dead_score: float,
        needle: str,
        jids: list[str],
        probe: str = "",
    ) -> defer.Deferred:
        """One ZSCAN step of a MUTATE, acted on atomically: (next cursor, count,
        the discarded/killed jobs ``probe`` wants).  ``jids`` alternates
        ``'"jid":<json>'`` needles and the jids they find."""
        args = (
            self.prefix,
            self.origin,
            name,
            cursor,
            match,
            op,
            now_str,
            repr(dead_score),
            needle,
            probe,
        )
        d = self._mutate_step(self.redis, args + tuple(jids))
        return d.addCallback(lambda r: (r[0], int(r[1]), r[2:]))
