"""The command connection to Redis: one pipelined txredisapi connection.

Every PUSH, FETCH and ACK costs at least one Redis command, so the per-command
cost of the client is paid several times per job.  We use txredisapi's
protocol (hiredis parsing, AUTH/SELECT on connect) on ONE connection and
call it directly: its pool wrapper adds a Deferred chain and a lookup per
command, and its per-command reply timer adds a ``callLater`` each, so this
module keeps one watchdog instead and packs commands with hiredis.

Semantics the rest of the server relies on:

* while not connected a command fails at once with ``StorageUnavailable``
  instead of queueing for the whole outage;
* commands in flight when the connection drops, or unanswered after
  ``timeout`` seconds (the connection is then dropped), fail the same way;
* error replies fail with ``txredisapi.ResponseError`` (``Script`` traps
  ``NOSCRIPT`` with it);
* the connection comes back by itself (backoff between attempts), with AUTH
  and SELECT replayed.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import hiredis
import txredisapi
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer, error, protocol, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from .errors import StorageUnavailable

log = Logger()


def _arg(value: Any) -> Any:
    """An argument as txredisapi writes it (floats fixed-point, others str())."""
    if isinstance(value, (bytes, str, int)) and not isinstance(value, bool):
        return value
    if isinstance(value, float):
        return format(value, "f")
    return str(value)


_NOT_READY = ("LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "READONLY")


class RedisProtocol(txredisapi.RedisProtocol):
    """txredisapi's protocol, packing commands with hiredis and remembering
    when each in-flight command was sent (for the watchdog)."""

    def __init__(self, client: RedisClient) -> None:
        super().__init__(
            charset=None, password=client.password, dbid=client.db or None, convertNumbers=False
        )
        self.client = client
        self.sent: deque[float] = deque()
        self.lost_reason = ""

    def _build_command(self, *args, **kwargs):
        try:
            return hiredis.pack_command(args)
        except TypeError:
            return hiredis.pack_command(tuple(_arg(a) for a in args))

    def send(self, args: tuple) -> defer.Deferred:
        sent = self.sent
        sent.append(self.client.clock.seconds())
        d = self.execute_command(*args, apply_timeout=False)

        def done(result):
            sent.popleft()
            if isinstance(result, Failure):
                if result.check(txredisapi.ConnectionError):
                    reason = self.lost_reason or str(result.value) or "connection lost"
                    raise StorageUnavailable(reason)
                if result.check(txredisapi.ResponseError) and str(result.value).startswith(
                    _NOT_READY
                ):
                    # A restarted Redis still loading its data, or a replica/cluster
                    # not ready: the same "come back later" as no connection.
                    raise StorageUnavailable(str(result.value))
            return result

        return d.addBoth(done)

    def connectionMade(self):
        d = super().connectionMade()
        self.whenConnected().addCallback(self.client._ready)
        return d

    def connectionLost(self, why) -> None:
        self.client._lost(self)
        super().connectionLost(why)


class _Factory(protocol.Factory):
    """What txredisapi's protocol expects of its factory when AUTH/SELECT fail."""

    isLazy = False

    def __init__(self, client: RedisClient) -> None:
        self.client = client

    def buildProtocol(self, addr):
        p = RedisProtocol(self.client)
        p.factory = self
        return p

    def stopTrying(self) -> None:
        pass

    def connectionError(self, msg: str) -> None:
        log.error("{msg}", msg=msg)


class RedisClient:
    """One reconnecting, pipelined command connection (see module docstring)."""

    def __init__(
        self,
        endpoint,
        reactor,
        password: str | None = None,
        db: int = 0,
        timeout: float = 10.0,
        retry: tuple[float, float] = (0.1, 1.0),
    ) -> None:
        self.clock = reactor
        self.password = password
        self.db = db
        self.timeout = timeout
        self._proto: RedisProtocol | None = None  # set once AUTH/SELECT passed
        self._ready_waiters: list[defer.Deferred] = []
        self._service = ClientService(
            endpoint, _Factory(self), retryPolicy=backoffPolicy(*retry), clock=reactor
        )
        self._watchdog = task.LoopingCall(self._check_timeouts)
        self._watchdog.clock = reactor

    # -- life cycle -------------------------------------------------------------
    def start(self) -> defer.Deferred:
        """Fires once the first connection is ready for commands."""
        self._service.startService()
        self._watchdog.start(1.0, now=False)
        d = defer.Deferred()
        self._ready_waiters.append(d)
        return d

    def disconnect(self) -> defer.Deferred:
        if self._watchdog.running:
            self._watchdog.stop()
        self._proto = None
        d = defer.maybeDeferred(self._service.stopService)
        # Stopping while a reconnection attempt is half-way can trip Twisted's
        # connector; the connection is going away either way.
        return d.addErrback(lambda f: f.trap(error.NotConnectingError))

    @property
    def connected(self) -> bool:
        return self._proto is not None

    def _ready(self, proto: RedisProtocol) -> None:
        """AUTH/SELECT passed (txredisapi's connectionMade): take commands."""
        if proto.transport is None or proto.transport.disconnecting:
            return
        self._proto = proto
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            d.callback(self)

    def _lost(self, proto: RedisProtocol) -> None:
        if self._proto is proto:
            self._proto = None

    def _check_timeouts(self) -> None:
        proto = self._proto
        if proto is not None and proto.sent:
            if self.clock.seconds() - proto.sent[0] > self.timeout:
                log.error("Redis did not answer within {t} s; reconnecting", t=self.timeout)
                self._proto = None
                proto.lost_reason = f"no reply within {self.timeout:g} s"
                # txredisapi fails every command in flight on connectionLost.
                proto.transport.abortConnection()

    # -- commands ---------------------------------------------------------------
    def execute_command(self, *args: Any, **_: Any) -> defer.Deferred:
        proto = self._proto
        if proto is None:
            return defer.fail(StorageUnavailable("not connected"))
        return proto.send(args)
