"""The connections to Redis: ``connect`` opens the pipelined command
connection (``RedisClient``) and the pub/sub connection for a URL (plain,
TLS, unix socket, or Sentinel: see ``faktory.sentinel``).

Every PUSH, FETCH and ACK costs one Redis command, so the per-command cost of
the client is paid three times per job.  We use txredisapi's protocol
(connection set-up, AUTH/SELECT, its hiredis reader and error types) on ONE
connection and call it directly: its pool wrapper adds a Deferred chain and a
lookup per command, its reply queue two more Deferreds, and its per-command
reply timer a ``callLater`` each.  So commands are packed with hiredis, go
out in one write per reactor turn, each waits as one Deferred in a FIFO, and
one watchdog replaces the timers.

Semantics the rest of the server relies on:

* while not connected a command fails at once with ``StorageUnavailable``
  instead of queueing for the whole outage;
* commands in flight when the connection drops, or unanswered after
  ``timeout`` seconds (the connection is then dropped), fail the same way;
* error replies fail with ``txredisapi.ResponseError`` (``Script`` traps
  ``NOSCRIPT`` with it), except Redis's out-of-memory and disk-full refusals,
  which fail with ``RedisRefused`` (a clear ``-ERR`` for the client, see
  ``faktory.pressure``) and are reported to ``on_refusal``;
* the connection comes back by itself (backoff between attempts), with AUTH
  and SELECT replayed;
* with ``require_primary`` (Sentinel, ``wait_replicas``) a connection is only
  used once ``ROLE`` says it reaches a primary, and a ``READONLY`` reply (the
  primary was demoted) drops it, so the next attempt finds the new primary;
* ``replicated(result)`` (see ``faktory.replication``) holds a write's answer
  until one ``WAIT`` sent at the end of the reactor turn confirms that the
  replicas have every write of that turn.
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
from .fastread import read_directly
from .fastwrite import send_now
from .pressure import refusal

log = Logger()


def _arg(value: Any) -> Any:
    """An argument as txredisapi writes it (floats fixed-point, others str())."""
    if isinstance(value, (bytes, str, int)) and not isinstance(value, bool):
        return value
    if isinstance(value, float):
        return format(value, "f")
    return str(value)


# NOREPLICAS: a primary with min-replicas-to-write that lost its replicas.
_NOT_READY = (
    "LOADING",
    "BUSY",
    "MASTERDOWN",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "READONLY",
    "NOREPLICAS",
)


class RedisProtocol(txredisapi.RedisProtocol):
    """txredisapi's protocol (connection set-up, AUTH/SELECT, its hiredis
    reader and error types) with a leaner command path.

    txredisapi answers each command through a DeferredQueue, a result
    Deferred and a closure, and writes each command on its own.  Here a
    command is one Deferred in a FIFO, replies are matched to it straight
    from the reader, and all commands issued in one reactor turn go out in
    one write at the end of the turn.  MULTI/pipelining helpers of
    txredisapi are not used on this connection.
    """

    def __init__(self, client: RedisClient) -> None:
        super().__init__(
            charset=None, password=client.password, dbid=client.db or None, convertNumbers=False
        )
        self.client = client
        self.waiting: deque[defer.Deferred] = deque()
        self.busy_since = 0.0  # when a command was sent with none in flight
        self.last_reply = 0.0  # when a reply last arrived (the watchdog's clock)
        self.lost_reason = ""
        self._out: list[bytes] = []
        self._flush_call = None
        self._replicated: list[tuple[defer.Deferred, Any]] = []  # answers held for WAIT
        self._wait_for = 0

    def execute_command(self, *args: Any, **_: Any) -> defer.Deferred:
        if self.transport is None or not self.connected:
            return defer.fail(StorageUnavailable(self.lost_reason or "not connected"))
        try:
            packed = hiredis.pack_command(args)
        except TypeError:
            packed = hiredis.pack_command(tuple(_arg(a) for a in args))
        out = self._out
        out.append(packed)
        if self._flush_call is None:
            self._flush_call = self.client.reactor.callLater(0, self._flush)
        waiting = self.waiting
        if not waiting:
            self.busy_since = self.client.clock.seconds()
        d = defer.Deferred()
        waiting.append(d)
        return d

    def _flush(self) -> None:
        """End of the reactor turn: one write for every command issued in it."""
        self._flush_call = None
        out = self._out
        if self._replicated:
            self._send_wait()
        if out and self.transport is not None:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            send_now(self.transport, data)

    def hold_for_replicas(self, result: Any, replicas: int) -> defer.Deferred:
        """``result`` once a WAIT at the end of this turn has confirmed it."""
        d = defer.Deferred()
        self._replicated.append((d, result))
        self._wait_for = replicas
        if self._flush_call is None:
            self._flush_call = self.client.reactor.callLater(0, self._flush)
        return d

    def _send_wait(self) -> None:
        held, self._replicated = self._replicated, []
        client = self.client
        self._out.append(hiredis.pack_command(("WAIT", self._wait_for, client.wait_timeout_ms)))
        if not self.waiting:
            self.busy_since = client.clock.seconds()
        d = defer.Deferred()
        self.waiting.append(d)
        d.addCallbacks(client._waited, client._wait_failed, (held, self._wait_for), None, (held,))

    def dataReceived(self, data: bytes, unpause: bool = False) -> None:
        reader = self._reader
        reader.feed(data)
        waiting = self.waiting
        self.last_reply = self.client.clock.seconds()
        while (reply := reader.gets()) is not False:
            if not waiting:
                # Out of step with Redis: every later reply would answer the
                # wrong command.  Start again on a new connection.
                if self.transport is not None and not self.transport.disconnecting:
                    log.error("Reply from Redis that no command waits for: {r!r}", r=reply)
                    self.lost_reason = "out of step with Redis"
                    self.transport.abortConnection()
                return
            d = waiting.popleft()
            if isinstance(reply, txredisapi.ResponseError):
                if str(reply).startswith(_NOT_READY):
                    # A restarted Redis still loading its data, or a replica/cluster
                    # not ready: the same "come back later" as no connection.
                    if str(reply).startswith("READONLY"):
                        self.client.drop(self, "the primary was demoted to a replica")
                    reply = StorageUnavailable(str(reply))
                else:
                    refused = refusal(str(reply))  # out of memory, disk full
                    if refused is not None:
                        reply = refused
                        if self.client.on_refusal is not None:
                            self.client.on_refusal(refused)
                d.errback(reply)
            else:
                d.callback(reply)

    def connectionMade(self):
        read_directly(self.transport, self)
        d = super().connectionMade()
        self.whenConnected().addCallback(self.client._ready)
        return d

    def connectionLost(self, why) -> None:
        self.client._lost(self)
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        self._out.clear()
        reason = self.lost_reason or "connection lost"
        waiting, self.waiting = self.waiting, deque()
        for d in waiting:
            d.errback(StorageUnavailable(reason))
        held, self._replicated = self._replicated, []
        for d, _ in held:
            d.errback(StorageUnavailable(reason))
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
        self.reactor = reactor  # flushes commands at the end of a reactor turn
        self.clock = reactor  # the watchdog's time (tests swap it for a task.Clock)
        self.password = password
        self.db = db
        self.timeout = timeout
        self.require_primary = False  # check ROLE before using a connection
        self.wait_replicas = 0  # replicas a write waits for (faktory.replication)
        self.wait_timeout_ms = 1000
        self.replicas = 0  # replicas the primary reported connected (ROLE)
        self.on_refusal = None  # told of every out-of-memory / disk-full refusal
        self.on_role: Any = None  # called with each ROLE reply (faktory.replication)
        self.companions: list[Any] = []  # things stopped with it (Sentinel watcher...)
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
        for companion in self.companions:
            companion.stop()
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
        if self.require_primary:
            d = proto.execute_command("ROLE")
            d.addCallback(self._role_checked, proto)
            d.addErrback(self._role_failed, proto)
            return
        self._take(proto)

    def _role_checked(self, role: Any, proto: RedisProtocol) -> None:
        if not self.check_role(role, proto):
            return
        if proto.transport is not None and not proto.transport.disconnecting:
            self._take(proto)

    def _role_failed(self, failure, proto: RedisProtocol) -> None:
        log.error("Redis ROLE failed: {e}", e=failure.getErrorMessage())
        self.drop(proto, "ROLE failed")

    def check_role(self, role: Any, proto: RedisProtocol) -> bool:
        """Keep ``proto`` only if ROLE says it is a primary; note its replicas."""
        if not isinstance(role, list) or not role or role[0] != b"master":
            what = role[0].decode() if isinstance(role, list) and role else repr(role)
            log.warn("Redis at the other end is a {what}, not the primary; reconnecting", what=what)
            self.drop(proto, "Redis is not the primary (failover in progress?)")
            return False
        self.replicas = len(role[2]) if len(role) > 2 and isinstance(role[2], list) else 0
        if self.on_role is not None:
            self.on_role(self)
        return True

    def drop(self, proto: RedisProtocol | None = None, reason: str = "dropped") -> None:
        """Abandon a connection (default: the current one); it is re-made at once."""
        proto = proto or self._proto
        if proto is None:
            return
        if self._proto is proto:
            self._proto = None
        proto.lost_reason = reason
        if proto.transport is not None and not proto.transport.disconnecting:
            proto.transport.abortConnection()

    # Log a lost connection (one line, and one when it is back).  A server
    # that supervises its own Redis turns it off: that outage is reported
    # where the process exit is seen (redisproc).
    report_outages = True
    _outage = False

    def _take(self, proto: RedisProtocol) -> None:
        self._proto = proto
        if self._outage:
            self._outage = False
            log.info("The connection to Redis is back; serving again")
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            d.callback(self)

    def _lost(self, proto: RedisProtocol) -> None:
        if self._proto is proto:
            self._proto = None
            if self.report_outages and not self._outage and self._watchdog.running:
                self._outage = True
                log.warn(
                    "Lost the connection to Redis ({why}); commands get -ERR Redis is "
                    "unavailable until it is back",
                    why=proto.lost_reason or "connection lost",
                )

    def _check_timeouts(self) -> None:
        proto = self._proto
        if proto is not None and proto.waiting:
            quiet = self.clock.seconds() - max(proto.busy_since, proto.last_reply)
            if quiet > self.timeout:
                log.error("Redis did not answer within {t} s; reconnecting", t=self.timeout)
                self._proto = None
                proto.lost_reason = f"no reply within {self.timeout:g} s"
                # txredisapi fails every command in flight on connectionLost.
                proto.transport.abortConnection()

    # -- replication -------------------------------------------------------------
    def replicated(self, result: Any) -> Any:
        """A write's answer, held until the replicas have it (one WAIT per
        reactor turn); at once when no replica is connected or none is wanted."""
        wanted = min(self.wait_replicas, self.replicas)
        proto = self._proto
        if not wanted or proto is None:
            return result
        return proto.hold_for_replicas(result, wanted)

    def _waited(self, acked: Any, held: list, wanted: int) -> None:
        if isinstance(acked, int) and acked < wanted:
            # Done on the primary only: not acknowledged, the client retries
            # (at-least-once), so a failover now cannot lose an answered write.
            self.replication_shortfalls += 1
            if self.on_shortfall is not None:
                self.on_shortfall(acked, wanted)
            error = StorageUnavailable(
                f"the replicas did not confirm the write within {self.wait_timeout_ms} ms"
            )
            for d, _ in held:
                d.errback(error)
            return
        for d, result in held:
            d.callback(result)

    def _wait_failed(self, failure, held: list) -> None:
        if failure.check(txredisapi.ResponseError):
            # A Redis (or proxy) without WAIT: say so in every answer.
            log.error("Redis refused WAIT: {e}", e=failure.getErrorMessage())
            failure = StorageUnavailable(f"WAIT failed: {failure.getErrorMessage()}")
        for d, _ in held:
            d.errback(failure)

    replication_shortfalls = 0  # WAITs that timed out short of the wanted replicas
    on_shortfall: Any = None

    # -- commands ---------------------------------------------------------------
    def execute_command(self, *args: Any, **_: Any) -> defer.Deferred:
        proto = self._proto
        if proto is None:
            return defer.fail(StorageUnavailable("not connected"))
        return proto.execute_command(*args)


REPLY_TIMEOUT = 10  # seconds; a dead Redis must not hang a client forever
RECONNECT_DELAY = (0.1, 1.0)  # first and longest wait between reconnection attempts


async def connect(
    url: str, reactor, on_notify, prefix: str = "fk:", sentinel_password: str | None = None
):
    """Open the command connection and the pub/sub connection for ``url``.

    ``url`` is ``unix:///path/redis.sock``, ``redis[s]://[:password@]host:port[/db]``
    or ``redis[s]+sentinel://[:password@]host:port,.../service[/db]`` (see
    ``faktory.sentinel``: both connections then follow the primary).
    Returns ``(redis, subscriber)``: ``redis.execute_command`` fails fast with
    StorageUnavailable while Redis is away (see ``redisconn``);
    ``on_notify(message)`` gets every ``notify`` message.
    """
    from urllib.parse import unquote, urlparse

    from twisted.internet import endpoints

    from . import sentinel

    spec = None
    parsed = urlparse(url)
    if sentinel.is_sentinel_url(url):
        spec = sentinel.parse_url(url)
        spec.sentinel_password = sentinel_password or None
        password, db = spec.password, spec.db
        endpoint = sentinel.SentinelEndpoint(reactor, spec)
    else:
        password = unquote(parsed.password) if parsed.password else None
        db = int(parsed.path.strip("/") or 0) if parsed.scheme != "unix" else 0
    if spec is not None:
        pass  # endpoint set above
    elif parsed.scheme == "unix":
        endpoint = endpoints.UNIXClientEndpoint(reactor, parsed.path)
    elif parsed.scheme in ("redis", "tcp", "rediss"):
        host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
        endpoint = endpoints.HostnameEndpoint(reactor, host, port)
        if parsed.scheme == "rediss":
            from twisted.internet.ssl import optionsForClientTLS

            endpoint = endpoints.wrapClientTLS(optionsForClientTLS(host), endpoint)
    else:
        raise ValueError(
            f"unsupported Redis URL scheme {parsed.scheme!r}: use unix:///path, "
            "redis://host:port/db or redis+sentinel://host:port,.../service"
        )

    channel = prefix + "notify"
    current: list = [None]  # the subscriber's live connection (dropped on a failover)

    class Subscriber(txredisapi.SubscriberProtocol):
        def connectionMade(self):
            current[0] = self
            d = super().connectionMade()
            d.addCallback(lambda _: self.subscribe(channel))
            d.addErrback(lambda f: log.failure("Cannot subscribe to {c}", f, c=channel))
            return d

        def messageReceived(self, pattern, channel, message):
            on_notify(message)

    from twisted.application.internet import ClientService, backoffPolicy
    from twisted.internet.protocol import Factory

    factory = Factory()
    factory.protocol = lambda: Subscriber(charset=None, password=password, convertNumbers=False)
    subscriber = ClientService(
        endpoint, factory, retryPolicy=backoffPolicy(*RECONNECT_DELAY), clock=reactor
    )
    subscriber.startService()
    await subscriber.whenConnected()
    redis = RedisClient(endpoint, reactor, password, db, REPLY_TIMEOUT, RECONNECT_DELAY)
    if spec is not None:
        redis.require_primary = True

        def on_switch(host: str, port: int) -> None:
            # Leave the demoted primary now (a connection already made to the
            # new one stays); both ask the Sentinels again on their next attempt.
            for proto in (redis._proto, current[0]):
                if proto is None or proto.transport is None:
                    continue
                peer = proto.transport.getPeer()
                if (getattr(peer, "host", None), getattr(peer, "port", None)) != (host, port):
                    if proto is redis._proto:
                        redis.drop(reason="failover: Sentinel switched the primary")
                    else:
                        proto.transport.abortConnection()

        watcher = sentinel.SwitchWatcher(reactor, spec, on_switch)
        redis.companions.append(watcher)
        watcher.start()
    await redis.start()
    return redis, subscriber
