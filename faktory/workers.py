"""Worker registry: who is connected, their heartbeats, quiet and terminate.

Records live in Redis (``store``) so every server sharing it sees the same
workers and an operator's quiet/terminate reaches a worker whichever server
it talks to.  This module only adds what is per-process: the live
connections of each wid, closed when the worker is reaped.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from .job import dumps
from .store import Store

log = Logger()

HEARTBEAT_TTL = 60.0  # a worker silent for longer is gone
STATES = ("running", "quiet", "terminate")


class Workers:
    def __init__(self, store: Store, clock: IReactorTime) -> None:
        self.store = store
        self.clock = clock
        self.connections: dict[str, set[Any]] = {}
        self.reaped = 0

    def connect(self, wid: str, hello: dict, conn: Any) -> defer.Deferred:
        info = {
            "hostname": hello.get("hostname", ""),
            "pid": hello.get("pid", 0),
            "labels": hello.get("labels") or [],
            "v": hello.get("v", 0),
        }
        self.connections.setdefault(wid, set()).add(conn)
        return self.store.worker_connect(wid, self.clock.seconds(), dumps(info))

    def disconnect(self, wid: str, conn: Any) -> defer.Deferred:
        conns = self.connections.get(wid)
        if conns is None or conn not in conns:
            return defer.succeed(None)
        conns.discard(conn)
        if not conns:
            del self.connections[wid]
        return self.store.worker_disconnect(wid)

    def beat(self, wid: str, rss_kb: int | None, current_state: str = "") -> defer.Deferred:
        """Record a heartbeat; fires with the worker's state or None if unknown."""
        state = current_state if current_state in ("quiet", "terminate") else ""
        return self.store.worker_beat(wid, self.clock.seconds(), rss_kb, state)

    def state(self, wid: str) -> defer.Deferred:
        return self.store.worker_beat(wid, None)

    def signal(self, wid: str, state: str) -> defer.Deferred:
        """An operator's quiet/terminate; only moves forward."""
        if state not in ("quiet", "terminate"):
            raise ValueError(f"Invalid signal: {state}")
        return self.store.worker_beat(wid, None, None, state)

    @defer.inlineCallbacks
    def signal_all(self, state: str):
        for record in (yield self.store.workers()):
            yield self.signal(record["wid"], state)

    @defer.inlineCallbacks
    def reap(self):
        """Drop workers silent for over a minute and close their connections."""
        gone = yield self.store.reap_workers(self.clock.seconds() - HEARTBEAT_TTL)
        for wid in gone:
            log.warn(
                "Worker {wid} has not sent BEAT for {ttl} s; removing it. "
                "Workers should BEAT every 15 seconds.",
                wid=wid,
                ttl=int(HEARTBEAT_TTL),
            )
            for conn in list(self.connections.pop(wid, ())):
                conn.transport.loseConnection()
        self.reaped += len(gone)
        return len(gone)
