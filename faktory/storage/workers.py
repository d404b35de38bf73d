"""Worker processes: ``worker:<wid>`` records and the ``workers`` index by
last heartbeat."""

from __future__ import annotations

from twisted.internet import defer

from ..errors import gather
from .base import StorageBase, _s, script


class WorkerStorage(StorageBase):
    _worker_connect = script("worker_connect")
    _worker_disconnect = script("worker_disconnect")
    _worker_beat = script("worker_beat")
    _worker_reap = script("worker_reap")

    def worker_connect(self, wid: str, now: float, info_json: str) -> defer.Deferred:
        return self._worker_connect(self.redis, (self.prefix, wid, repr(now), info_json))

    def worker_disconnect(self, wid: str) -> defer.Deferred:
        return self._worker_disconnect(self.redis, (self.prefix, wid))

    def worker_beat(
        self, wid: str, now: float | None, rss_kb: int | None = None, state: str = ""
    ) -> defer.Deferred:
        """Fires with the worker's state after the beat, or None if unknown."""
        args = (
            self.prefix,
            wid,
            "" if now is None else repr(now),
            "" if rss_kb is None else int(rss_kb),
            state,
        )
        return self._worker_beat(self.redis, args).addCallback(lambda r: _s(r) or None)

    def reap_workers(self, cutoff: float) -> defer.Deferred:
        d = self._worker_reap(self.redis, (self.prefix, repr(cutoff)))
        return d.addCallback(lambda wids: [_s(w) for w in wids])

    @defer.inlineCallbacks
    def workers(self):
        """Every live worker record: [{wid, info..., beat, rss_kb, state, conns}]."""
        wids = yield self.redis.execute_command("ZRANGE", self.prefix + "workers", 0, -1)
        records = yield gather(
            [self.redis.execute_command("HGETALL", self.prefix + "worker:" + _s(w)) for w in wids]
        )
        out = []
        for wid, flat in zip(wids, records):
            if not flat:
                continue
            rec = {_s(flat[i]): _s(flat[i + 1]) for i in range(0, len(flat), 2)}
            rec["wid"] = _s(wid)
            out.append(rec)
        return out
