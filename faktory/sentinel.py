"""Redis Sentinel: find the primary of a service and follow it through failovers.

``--redis-url redis+sentinel://[:password@]host1:port1,host2:port2/service[/db]``
(``rediss+sentinel://`` for TLS) names Sentinels instead of a Redis.  Every
connection attempt of the command and pub/sub connections goes through
``SentinelEndpoint``: it asks the Sentinels (one after the other, a short
timeout each) for the current primary of ``service`` and connects there, so a
connection lost to a dead primary comes back to the new one by itself.  The
command connection then checks ``ROLE`` (a Sentinel can still name a demoted
primary for a moment).  ``SwitchWatcher`` listens to Sentinel's
``+switch-master`` messages and drops our connections at once, so a primary
that is still reachable but demoted (it answers ``READONLY``) is left at
once, not at the next error.

The replies are read with hiredis directly: a Sentinel conversation is two
commands, not worth txredisapi's connection machinery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

import hiredis
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer, endpoints, protocol
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.logger import Logger
from zope.interface import implementer

log = Logger()

SCHEMES = ("redis+sentinel", "rediss+sentinel")
QUERY_TIMEOUT = 1.0  # seconds one Sentinel may take to name the primary
SWITCH_CHANNEL = b"+switch-master"


class SentinelError(Exception):
    """No Sentinel could name a primary (the text says why)."""


@dataclass
class SentinelSpec:
    """What a ``redis+sentinel://`` URL says."""

    sentinels: list[tuple[str, int]]
    service: str
    password: str | None = None  # of Redis (primary and replicas)
    sentinel_password: str | None = None  # of the Sentinels (``[redis] sentinel_password``)
    db: int = 0
    tls: bool = False


def is_sentinel_url(url: str) -> bool:
    return url.split("://", 1)[0] in SCHEMES


def parse_url(url: str) -> SentinelSpec:
    """``redis+sentinel://[:password@]host:port,host:port/service[/db]``.

    Raises ValueError with a one-line explanation (the URL's password left out).
    """
    scheme, sep, rest = url.partition("://")
    if scheme not in SCHEMES or not sep:
        raise ValueError("a Sentinel URL starts with redis+sentinel:// or rediss+sentinel://")
    netloc, _, path = rest.partition("/")
    password = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        _user, _, password = userinfo.partition(":")
        password = unquote(password) or None
    sentinels = []
    for item in netloc.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon:
            host, port = item.strip(), "26379"
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"Sentinel URL: {item.strip()!r} is not host:port")
        sentinels.append((host, int(port)))
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise ValueError("Sentinel URL: give the service name after the hosts: .../mymaster[/db]")
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise ValueError(f"Sentinel URL: the db number must be an integer, not {parts[1]!r}")
        db = int(parts[1])
    return SentinelSpec(sentinels, unquote(parts[0]), password, None, db, scheme == SCHEMES[1])


def _tcp(reactor, host: str, port: int, tls: bool):
    endpoint = endpoints.HostnameEndpoint(reactor, host, port, timeout=QUERY_TIMEOUT * 2)
    if tls:
        from twisted.internet.ssl import optionsForClientTLS

        endpoint = endpoints.wrapClientTLS(optionsForClientTLS(host), endpoint)
    return endpoint


class _Conversation(protocol.Protocol):
    """Send some commands, collect their replies, hang up."""

    def __init__(self, commands: list[tuple]) -> None:
        self.commands = commands
        self.replies: list = []
        self.done: defer.Deferred = defer.Deferred()
        self._reader = hiredis.Reader()

    def connectionMade(self) -> None:
        self.transport.write(b"".join(hiredis.pack_command(c) for c in self.commands))

    def dataReceived(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            self.replies.append(reply)
        if len(self.replies) >= len(self.commands) and not self.done.called:
            self.done.callback(self.replies)
            self.transport.loseConnection()

    def connectionLost(self, reason) -> None:
        if not self.done.called:
            self.done.errback(SentinelError("connection closed"))


def _auth(password: str | None) -> list[tuple]:
    return [("AUTH", password)] if password else []


async def ask_primary(reactor, spec: SentinelSpec) -> tuple[str, int]:
    """The primary's (host, port) according to the first Sentinel that knows."""
    problems = []
    for host, port in list(spec.sentinels):
        conv = _Conversation(
            _auth(spec.sentinel_password) + [("SENTINEL", "get-master-addr-by-name", spec.service)]
        )
        try:
            factory = protocol.Factory.forProtocol(lambda c=conv: c)
            factory.noisy = False
            d = _tcp(reactor, host, port, spec.tls).connect(factory)
            await d.addTimeout(QUERY_TIMEOUT, reactor)
            replies = await conv.done.addTimeout(QUERY_TIMEOUT, reactor)
        except Exception as e:  # noqa: BLE001 - every Sentinel failure is the same to us
            problems.append(f"{host}:{port}: {e.__class__.__name__}")
            if conv.transport is not None:
                conv.transport.abortConnection()
            continue
        reply = replies[-1]
        if isinstance(reply, hiredis.ReplyError) or any(
            isinstance(r, hiredis.ReplyError) for r in replies
        ):
            problems.append(
                f"{host}:{port}: {next(r for r in replies if isinstance(r, Exception))}"
            )
            continue
        if not reply:
            problems.append(f"{host}:{port}: does not know {spec.service!r}")
            continue
        # The Sentinel that answered goes first next time.
        spec.sentinels.remove((host, port))
        spec.sentinels.insert(0, (host, port))
        return reply[0].decode(), int(reply[1])
    raise SentinelError(f"no Sentinel names a primary for {spec.service!r}: " + "; ".join(problems))


@implementer(IStreamClientEndpoint)
class SentinelEndpoint:
    """Connects to whatever Redis the Sentinels name as primary right now."""

    def __init__(self, reactor, spec: SentinelSpec) -> None:
        self.reactor = reactor
        self.spec = spec
        self.primary: tuple[str, int] | None = None

    def __repr__(self) -> str:
        hosts = ",".join(f"{h}:{p}" for h, p in self.spec.sentinels)
        return f"<primary of {self.spec.service!r} from Sentinels {hosts}>"

    def connect(self, factory) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._connect(factory))

    async def _connect(self, factory):
        try:
            addr = await ask_primary(self.reactor, self.spec)
        except SentinelError as e:
            log.warn("Redis Sentinel: {e}", e=e)
            raise
        if addr != self.primary:
            log.info(
                "Redis Sentinel: primary of {service} is {host}:{port}",
                service=self.spec.service,
                host=addr[0],
                port=addr[1],
            )
            self.primary = addr
        return await _tcp(self.reactor, addr[0], addr[1], self.spec.tls).connect(factory)


class _SwitchSubscriber(protocol.Protocol):
    """SUBSCRIBE +switch-master on one Sentinel; reports switches of our service."""

    def __init__(self, watcher: SwitchWatcher) -> None:
        self.watcher = watcher
        self._reader = hiredis.Reader()

    def connectionMade(self) -> None:
        commands = _auth(self.watcher.spec.sentinel_password) + [("SUBSCRIBE", SWITCH_CHANNEL)]
        self.transport.write(b"".join(hiredis.pack_command(c) for c in commands))

    def dataReceived(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            if isinstance(reply, hiredis.ReplyError):
                log.error("Redis Sentinel refused SUBSCRIBE {c}: {e}", c=SWITCH_CHANNEL, e=reply)
                self.transport.loseConnection()
            elif isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                self.watcher.message(reply[2])


@implementer(IStreamClientEndpoint)
class _RotatingEndpoint:
    """Each connection attempt goes to the next Sentinel of the list."""

    def __init__(self, reactor, spec: SentinelSpec) -> None:
        self.reactor, self.spec, self.attempt = reactor, spec, 0

    def connect(self, factory):
        host, port = self.spec.sentinels[self.attempt % len(self.spec.sentinels)]
        self.attempt += 1
        return _tcp(self.reactor, host, port, self.spec.tls).connect(factory)


class SwitchWatcher:
    """Calls ``on_switch(host, port)`` when a Sentinel announces a new primary
    for our service (``+switch-master``), from one Sentinel at a time."""

    def __init__(self, reactor, spec: SentinelSpec, on_switch: Callable[[str, int], None]) -> None:
        self.spec = spec
        self.on_switch = on_switch
        factory = protocol.Factory.forProtocol(lambda: _SwitchSubscriber(self))
        factory.noisy = False
        self.service = ClientService(
            _RotatingEndpoint(reactor, spec),
            factory,
            retryPolicy=backoffPolicy(0.1, 2.0),
            clock=reactor,
        )

    def start(self) -> None:
        self.service.startService()

    def stop(self) -> defer.Deferred:
        return defer.maybeDeferred(self.service.stopService)

    def message(self, data: bytes) -> None:
        # "<name> <old-ip> <old-port> <new-ip> <new-port>"
        fields = data.decode("utf-8", "replace").split()
        if len(fields) == 5 and fields[0] == self.spec.service and fields[4].isdigit():
            log.warn(
                "Redis Sentinel: failover of {service}: {old} -> {new}",
                service=self.spec.service,
                old=f"{fields[1]}:{fields[2]}",
                new=f"{fields[3]}:{fields[4]}",
            )
            self.on_switch(fields[3], int(fields[4]))


__all__ = [
    "SentinelEndpoint",
    "SentinelError",
    "SentinelSpec",
    "SwitchWatcher",
    "ask_primary",
    "is_sentinel_url",
    "parse_url",
]
