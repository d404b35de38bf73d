"""The command connection to Redis: one pipelined connection, hiredis parsing.

Every PUSH, FETCH and ACK costs at least one Redis command, so the per-command
cost of the client library is paid several times per job.  txredisapi spends
about five Deferreds, a generator-based pool lookup and a timeout timer on
each command; here a command is one ``pack_command`` call, one write and one
Deferred fired straight from the parser.

Semantics the rest of the server relies on (the same as the txredisapi pool
wrapped by ``store.FailFast`` had):

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

from .errors import StorageUnavailable

log = Logger()


def _arg(value: Any) -> Any:
    """An argument as txredisapi wrote it (floats fixed-point, others str())."""
    if isinstance(value, (bytes, str, int)) and not isinstance(value, bool):
        return value
    if isinstance(value, float):
        return format(value, "f")
    return str(value)


class RedisProtocol(protocol.Protocol):
    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self.reader = hiredis.Reader(replyError=txredisapi.ResponseError)
        self.pending: deque = deque()  # (Deferred, sent at)

    def connectionMade(self) -> None:
        self.client._handshake(self)

    def send(self, args: tuple) -> defer.Deferred:
        if float in map(type, args) or bool in map(type, args):
            args = tuple(_arg(a) for a in args)
        try:
            packed = hiredis.pack_command(args)
        except TypeError:
            packed = hiredis.pack_command(tuple(_arg(a) for a in args))
        d = defer.Deferred()
        self.pending.append((d, self.client.clock.seconds()))
        self.transport.write(packed)
        return d

    def dataReceived(self, data: bytes) -> None:
        reader = self.reader
        try:
            reader.feed(data)
            reply = reader.gets()
        except hiredis.ProtocolError as e:
            log.error("Redis protocol error: {e}", e=e)
            self.transport.abortConnection()
            return
        pending = self.pending
        while reply is not False:
            if not pending:
                log.error("Redis sent a reply nobody asked for: {r!r}", r=reply)
                self.transport.abortConnection()
                return
            d = pending.popleft()[0]
            if isinstance(reply, txredisapi.ResponseError):
                d.errback(reply)
            else:
                d.callback(reply)
            reply = reader.gets()

    def fail_all(self, reason: str) -> None:
        pending, self.pending = self.pending, deque()
        for d, _ in pending:
            d.errback(StorageUnavailable(reason))

    def connectionLost(self, reason=protocol.connectionDone) -> None:
        self.client._lost(self)
        self.fail_all("connection lost")


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
        factory = protocol.Factory.forProtocol(lambda: RedisProtocol(self))
        self._service = ClientService(
            endpoint, factory, retryPolicy=backoffPolicy(*retry), clock=reactor
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

    def _handshake(self, proto: RedisProtocol) -> None:
        steps = []
        if self.password:
            steps.append(proto.send(("AUTH", self.password)))
        if self.db:
            steps.append(proto.send(("SELECT", self.db)))

        def ready(_):
            if proto.transport is None or proto.transport.disconnecting:
                return
            self._proto = proto
            waiters, self._ready_waiters = self._ready_waiters, []
            for d in waiters:
                d.callback(self)

        def refused(failure):
            log.error("Redis refused the connection setup: {e}", e=failure.value)
            proto.transport.abortConnection()

        defer.gatherResults(steps, consumeErrors=True).addCallbacks(ready, refused)

    def _lost(self, proto: RedisProtocol) -> None:
        if self._proto is proto:
            self._proto = None

    def _check_timeouts(self) -> None:
        proto = self._proto
        if proto is not None and proto.pending:
            sent = proto.pending[0][1]
            if self.clock.seconds() - sent > self.timeout:
                log.error("Redis did not answer within {t} s; reconnecting", t=self.timeout)
                proto.fail_all(f"no reply within {self.timeout:g} s")
                self._proto = None
                proto.transport.abortConnection()

    # -- commands ---------------------------------------------------------------
    def execute_command(self, *args: Any, **_: Any) -> defer.Deferred:
        proto = self._proto
        if proto is None:
            return defer.fail(StorageUnavailable("not connected"))
        return proto.send(args)
