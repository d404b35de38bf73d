"""Queues: ``q:<name>:<p>`` lists, their ``qp:<name>`` priority index, the
``queues`` and ``paused`` sets; PUSH and FETCH."""

from __future__ import annotations

from twisted.internet import defer

from .base import StorageBase, _s, script


class QueueStorage(StorageBase):
    _push = script("push")
    _fetch = script("fetch")
    _queue_sizes = script("queue_sizes")
    _queue_page = script("queue_page")
    _queue_delete = script("queue_delete")
    _queue_drain = script("queue_drain")
    _queue_oldest = script("queue_oldest")
    _queue_control = script("queue_control")

    def push(self, queue: str, priority: int, payload: str) -> defer.Deferred:
        return self._push(self.redis, (self.prefix, self.origin, queue, priority, payload))

    def fetch(
        self, queues: list[str], now: float, now_str: str, wid: str, wid_json: str
    ) -> defer.Deferred:
        """Pop and reserve the next job: fires with its JSON bytes, None when
        the queues are empty, or 0 when the worker is quiet/terminating."""
        return self._fetch(self.redis, (self.prefix, repr(now), now_str, wid_json, wid, *queues))

    @defer.inlineCallbacks
    def queue_names(self):
        names = yield self.redis.execute_command("SMEMBERS", self.prefix + "queues")
        return sorted(_s(n) for n in names)

    @defer.inlineCallbacks
    def queue_sizes(self, names: list[str] | None = None):
        """{queue: size} for the given queues (default: every known queue)."""
        if names is None:
            names = yield self.queue_names()
        if not names:
            return {}
        flat = yield self._queue_sizes(self.redis, (self.prefix, *names))
        return {_s(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}

    @defer.inlineCallbacks
    def queue_page(self, queue: str, start: int, count: int):
        """(total, [(priority, job bytes)]) for one page of a queue."""
        flat = yield self._queue_page(self.redis, (self.prefix, queue, start, count))
        return int(flat[0]), [(int(flat[i]), flat[i + 1]) for i in range(1, len(flat), 2)]

    def queue_delete(
        self, queue: str, items: list[tuple[int, bytes]], probe: str = ""
    ) -> defer.Deferred:
        """Remove these exact (priority, job) entries; fires with (how many
        went, the removed jobs ``probe`` wants: see faktory.removal)."""
        if not items:
            return defer.succeed((0, []))
        args = [self.prefix, queue, probe]
        for priority, raw in items:
            args += [priority, raw]
        return self._queue_delete(self.redis, args).addCallback(lambda r: (int(r[0]), r[1:]))

    def queue_drain(self, queue: str, limit: int, probe: str) -> defer.Deferred:
        """Delete up to ``limit`` jobs of a queue, forgetting it once empty:
        (jobs deleted, whether it is gone, the jobs ``probe`` wants)."""
        d = self._queue_drain(self.redis, (self.prefix, queue, limit, probe))
        return d.addCallback(lambda r: (int(r[0]), bool(int(r[1])), r[2:]))

    @defer.inlineCallbacks
    def queue_oldest(self, names: list[str]):
        """{queue: [enqueued_at of the oldest job of each priority]}."""
        if not names:
            return {}
        flat = yield self._queue_oldest(self.redis, (self.prefix, *names))
        return {_s(flat[i]): [_s(x) for x in flat[i + 1]] for i in range(0, len(flat), 2)}

    def queue_control(self, op: str, names: list[str]) -> defer.Deferred:
        """``pause``, ``resume`` or ``remove`` these known queues; fires with the count."""
        if not names:
            return defer.succeed(0)
        return self._queue_control(self.redis, (self.prefix, op, *names)).addCallback(int)

    @defer.inlineCallbacks
    def paused_queues(self):
        names = yield self.redis.execute_command("SMEMBERS", self.prefix + "paused")
        return {_s(n) for n in names}
