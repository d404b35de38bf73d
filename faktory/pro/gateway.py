"""Redis gateway: the private Redis (a unix socket in the data dir) exposed
on a TCP endpoint behind a password, so a replica, a backup job or
``redis-cli`` can reach it::

    [redis]
    gateway = "tcp:6380:interface=10.0.0.5"   # or "10.0.0.5:6380"
    password = "..."                          # default: the server password

(or ``twistd faktory --redis-gateway tcp:6380``).

Each connection must authenticate first, as with a Redis ``requirepass``:
``AUTH <password>``, ``AUTH default <password>`` or ``HELLO <v> AUTH default
<password>``.  Until then every other command gets ``-NOAUTH`` (a replica
starts with PING and expects exactly that); a wrong password gets
``-WRONGPASS`` and the connection is closed.  After that the bytes are
relayed unchanged to Redis, so replication (PSYNC) works through it.
"""

from __future__ import annotations

import hmac
from typing import Any

from twisted.internet import endpoints, protocol
from twisted.logger import Logger

log = Logger()

AUTH_TIMEOUT = 10.0  # seconds a connection may stay unauthenticated
MAX_PREAUTH_BYTES = 64 * 1024
MAX_PREAUTH_COMMANDS = 16
MAX_ARG = 4096

NOAUTH = b"-NOAUTH Authentication required.\r\n"
WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"


# TOML keys this module reads, for the generated configuration reference.
CONFIG_KEYS = [
    (
        "redis",
        "gateway",
        "endpoint string",
        '""',
        'Expose the built-in Redis here, e.g. ``"tcp:6380:interface=10.0.0.5"`` or '
        '``"10.0.0.5:6380"`` (``--redis-gateway`` overrides). Clients must AUTH first.',
    ),
    (
        "redis",
        "password",
        "string",
        "the server password",
        "Password the Redis gateway requires; without one the gateway refuses to start.",
    ),
]


class GatewayError(ValueError):
    """A gateway setting that cannot be used; the text says why."""


class RespError(ValueError):
    """Bytes that are not a Redis command."""


def parse_command(buf: bytes) -> tuple[list[bytes], bytes] | None:
    """Split one command (RESP array or inline) off ``buf``: ``(args, rest)``,
    or None when more bytes are needed.  Only used before AUTH, so commands
    are small."""
    if buf.startswith(b"*"):
        nl = buf.find(b"\r\n")
        if nl < 0:
            return None
        try:
            count = int(buf[1:nl])
        except ValueError:
            raise RespError("invalid multibulk length") from None
        if not 0 < count <= 16:
            raise RespError("invalid multibulk length")
        pos, args = nl + 2, []
        for _ in range(count):
            if pos >= len(buf):
                return None
            if buf[pos : pos + 1] != b"$":
                raise RespError("expected '$'")
            nl = buf.find(b"\r\n", pos)
            if nl < 0:
                return None
            try:
                size = int(buf[pos + 1 : nl])
            except ValueError:
                raise RespError("invalid bulk length") from None
            if not 0 <= size <= MAX_ARG:
                raise RespError("invalid bulk length")
            start, end = nl + 2, nl + 2 + size
            if len(buf) < end + 2:
                return None
            if buf[end : end + 2] != b"\r\n":
                raise RespError("bulk not terminated by CRLF")
            args.append(buf[start:end])
            pos = end + 2
        return args, buf[pos:]
    nl = buf.find(b"\n")
    if nl < 0:
        return None
    return buf[:nl].rstrip(b"\r").split(), buf[nl + 1 :]


def encode_command(args: list[bytes]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class _Backend(protocol.Protocol):
    """Our side of the relay to Redis."""

    def __init__(self, front: GatewayProtocol) -> None:
        self.front = front

    def connectionMade(self) -> None:
        self.front.backend_ready(self)

    def dataReceived(self, data: bytes) -> None:
        self.front.transport.write(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.front.transport.loseConnection()


class GatewayProtocol(protocol.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.authed = False
        self.backend: _Backend | None = None
        self.commands = 0
        self.timer = None

    def connectionMade(self) -> None:
        gw = self.factory.gateway
        gw.connections.add(self)
        self.timer = gw.reactor.callLater(AUTH_TIMEOUT, self.transport.abortConnection)

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.gateway.connections.discard(self)
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        if self.backend is not None:
            self.backend.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self.backend is not None:
            self.backend.transport.write(data)
            return
        self.buffer += data
        if self.authed:
            return  # relayed once the backend connection is up
        if len(self.buffer) > MAX_PREAUTH_BYTES:
            self._refuse(b"-ERR Protocol error: too much data before AUTH\r\n")
            return
        while not self.authed and not self.transport.disconnecting:
            try:
                parsed = parse_command(self.buffer)
            except RespError as e:
                self._refuse(b"-ERR Protocol error: %s\r\n" % str(e).encode())
                return
            if parsed is None:
                return
            args, self.buffer = parsed
            if args:
                self._preauth(args)

    def _preauth(self, args: list[bytes]) -> None:
        self.commands += 1
        verb = args[0].upper()
        if verb == b"AUTH":
            if len(args) not in (2, 3):
                self.transport.write(b"-ERR wrong number of arguments for 'auth' command\r\n")
            else:
                self._authenticate(args[1:], None)
        elif verb == b"HELLO" and b"AUTH" in (a.upper() for a in args):
            i = [a.upper() for a in args].index(b"AUTH")
            if len(args) < i + 3:
                self.transport.write(b"-ERR Syntax error in HELLO option 'auth'\r\n")
            else:
                rest = args[:i] + args[i + 3 :]
                self._authenticate(args[i + 1 : i + 3], encode_command(rest))
        elif verb == b"QUIT":
            self.transport.write(b"+OK\r\n")
            self.transport.loseConnection()
        else:
            self.transport.write(NOAUTH)
        if not self.authed and self.commands >= MAX_PREAUTH_COMMANDS:
            self.transport.loseConnection()

    def _authenticate(self, creds: list[bytes], first: bytes | None) -> None:
        gw = self.factory.gateway
        user = creds[0] if len(creds) == 2 else b"default"
        ok = hmac.compare_digest(creds[-1], gw.password) and user == b"default"
        if not ok:
            log.warn("Redis gateway: wrong password from {peer}", peer=self.transport.getPeer())
            self._refuse(WRONGPASS)
            return
        self.authed = True
        self.timer.cancel()
        if first is None:
            self.transport.write(b"+OK\r\n")
        else:
            self.buffer = first + self.buffer  # HELLO without AUTH: Redis answers it
        self.transport.pauseProducing()
        d = gw.backend.connect(protocol.Factory.forProtocol(lambda: _Backend(self)))
        d.addErrback(self._backend_failed)

    def backend_ready(self, backend: _Backend) -> None:
        if self.transport.disconnecting:
            backend.transport.loseConnection()
            return
        self.backend = backend
        # Flow control both ways: a slow reader pauses the other side.
        self.transport.registerProducer(backend.transport, True)
        backend.transport.registerProducer(self.transport, True)
        if self.buffer:
            backend.transport.write(self.buffer)
            self.buffer = b""
        self.transport.resumeProducing()

    def _backend_failed(self, failure) -> None:
        log.error("Redis gateway: cannot reach Redis: {e}", e=failure.value)
        self._refuse(b"-ERR Faktory's Redis is not reachable\r\n")

    def _refuse(self, reply: bytes) -> None:
        self.transport.write(reply)
        self.transport.loseConnection()


class Gateway:
    """A listening gateway for one server."""

    def __init__(self, reactor, socket_path: str, password: str) -> None:
        self.reactor = reactor
        self.password = password.encode()
        self.backend = endpoints.UNIXClientEndpoint(reactor, socket_path)
        self.connections: set[GatewayProtocol] = set()
        self.port = None

    async def listen(self, description: str) -> Any:
        factory = protocol.Factory.forProtocol(GatewayProtocol)
        factory.gateway = self
        self.port = await endpoints.serverFromString(self.reactor, description).listen(factory)
        return self.port

    async def close(self) -> None:
        if self.port is not None:
            await self.port.stopListening()
            self.port = None
        for conn in list(self.connections):
            conn.transport.loseConnection()


def gateway_settings(server) -> tuple[str, str] | None:
    """(endpoint, password) if the gateway is configured, else None."""
    from ..tap import endpoint_string

    section = server.settings.config.get("redis", {})
    if not isinstance(section, dict):
        raise GatewayError("[redis] must be a table")
    where = section.get("gateway") or ""
    if not where:
        return None
    if not isinstance(where, str):
        raise GatewayError('[redis] gateway must be an endpoint string like "tcp:6380"')
    password = section.get("password") or server.password
    if not isinstance(password, str) or not password:
        raise GatewayError(
            "the Redis gateway needs a password: set the server password "
            "(FAKTORY_PASSWORD or [faktory] password) or [redis] password"
        )
    return endpoint_string(where, 6380), password


class GatewayPlugin:
    name = "redis-gateway"
    description = "Expose the built-in Redis on a password-protected TCP endpoint."

    def __init__(self) -> None:
        self.gateway: Gateway | None = None

    async def setup(self, server) -> None:
        settings = gateway_settings(server)
        if settings is None:
            return
        where, password = settings
        if server.redis_process is None:
            raise GatewayError(
                "the Redis gateway exposes the built-in Redis; with --redis-url, "
                "give replicas that Redis's own address instead"
            )
        self.gateway = Gateway(server.reactor, server.redis_process.socket, password)
        await self.gateway.listen(where)
        log.info("Redis gateway listening on {where}", where=where)

    async def shutdown(self, server) -> None:
        if self.gateway is not None:
            await self.gateway.close()
