"""The Faktory work protocol: handshake, command dispatch and RESP replies.

Protocol code parses lines and writes replies; every decision is delegated to
the manager, the worker registry or the admin API.  Commands on one
connection are answered strictly in order: while one is in flight, later
lines wait their turn.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, protocol
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from . import wire
from .authlimit import AuthFailures
from .errors import CommandError, StorageUnavailable
from .fastwrite import send_now
from .job import JobError, dumps
from .manager import FetchContext

if TYPE_CHECKING:  # the server builds this; imports run downwards only
    from .server import FaktoryServer

log = Logger()

HANDSHAKE_TIMEOUT = 2.0
MAX_PENDING = 256  # queued lines before we stop reading from a pipelining client
MAX_UNIDENTIFIED = 1000  # connections allowed at once before their HELLO
MAX_HELLO_LENGTH = 8192  # the longest line accepted before HELLO succeeds


class _OK:
    """Marker for a ``+OK`` reply."""


OK = _OK()


def password_hash(password: str, salt: str, iterations: int) -> str:
    """Faktory's iterated SHA-256: hash(password+salt), then re-hash the raw
    digest ``iterations - 1`` more times; lowercase hex."""
    digest = hashlib.sha256((password + salt).encode()).digest()
    for _ in range(iterations - 1):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def encode_reply(value: Any) -> bytes:
    if value is OK:
        return b"+OK\r\n"
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, str):
        value = value.encode()
    elif not isinstance(value, bytes):
        value = dumps(value).encode()
    return b"$%d\r\n%s\r\n" % (len(value), value)


def encode_error(message: str, code: str = "ERR") -> bytes:
    text = f"{code} {message}".replace("\r", " ").replace("\n", " ")
    return b"-" + text.encode("utf-8", "replace") + b"\r\n"


def _json_arg(verb: str, arg: str, typ: wire.Type) -> Any:
    """A command's JSON decoded as the Go server decodes it; its refusal names
    the command, echoes the argument (cut short) and says what is wrong."""
    try:
        value = wire.decode(arg, typ)
    except ValueError as e:
        shown = arg if len(arg) <= 200 else arg[:200] + "..."
        raise CommandError(f"invalid {verb} {shown}: {e}") from None
    if value is None:
        raise CommandError(f"invalid {verb} {arg}")
    return value


class FaktoryProtocol(LineReceiver):
    delimiter = b"\n"

    def __init__(self) -> None:
        self.identified = False
        self.wid = ""
        self.hello: dict[str, Any] = {}
        self._busy = False
        self._pending: list[bytes] = []
        self._paused = False
        self._fetch_ctx: FetchContext | None = None
        self._handshake_timer = None
        self._salt = ""
        self._iterations = 0
        self._gone = False
        self._unidentified = False

    # -- connection lifecycle -------------------------------------------------
    def connectionMade(self) -> None:
        server = self.factory.server
        # Until HELLO succeeds a client may send one short line, not the
        # 16 MiB a PUSH may take: strangers cannot make us buffer megabytes.
        self.MAX_LENGTH = MAX_HELLO_LENGTH
        if hasattr(self.transport, "setTcpNoDelay"):
            # Replies are whole and waited for: send them now, as Go's server does.
            self.transport.setTcpNoDelay(True)
        # A client that never says HELLO is cut off after HANDSHAKE_TIMEOUT; a
        # flood of them is capped too, so they cannot use up file descriptors.
        self._unidentified = True
        self.factory.unidentified += 1
        if self.factory.unidentified > MAX_UNIDENTIFIED:
            self.transport.write(
                encode_error(f"too many connections: {self.factory.unidentified} unidentified")
            )
            self.transport.loseConnection()
            return
        if self._shut_out():
            return
        greeting: dict[str, Any] = {"v": 2}
        if server.password:
            self._iterations = random.randint(4000, 8095)
            self._salt = format(secrets.randbits(63), "x")
            greeting.update(i=self._iterations, s=self._salt)
        self.transport.write(b"+HI " + dumps(greeting).encode() + b"\r\n")
        self._handshake_timer = server.reactor.callLater(
            HANDSHAKE_TIMEOUT, self.transport.abortConnection
        )

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self._gone = True
        self._uncount()
        if self._handshake_timer is not None and self._handshake_timer.active():
            self._handshake_timer.cancel()
        if self._fetch_ctx is not None:
            self._fetch_ctx.abandon()
        server = self.factory.server
        if self.identified:
            self.identified = False
            server.connection_count -= 1
            if self.wid:
                server.workers.disconnect(self.wid, self).addErrback(_worker_gone_failed)

    def _uncount(self) -> None:
        if self._unidentified:
            self._unidentified = False
            self.factory.unidentified -= 1

    def resumeProducing(self) -> None:
        """The transport drained its output buffer."""
        if self.transport.disconnecting:
            # a closing transport waits for a paused producer: let it close
            self.transport.unregisterProducer()
            return
        super().resumeProducing()
        if self._paused:  # still too many pipelined lines waiting their turn
            self.transport.pauseProducing()

    def lineLengthExceeded(self, line: bytes) -> None:
        if not self.identified:
            self._hello_failed(
                "HELLO too long", f"line too long (max {self.MAX_LENGTH} bytes before HELLO)"
            )
            return
        self.transport.write(encode_error(f"line too long (max {self.MAX_LENGTH} bytes)"))
        self.transport.loseConnection()

    def _shut_out(self) -> bool:
        """Refuse a client whose address failed HELLO too often lately, before
        any password hashing; True if it was refused."""
        left = self.factory.auth_failures.blocked_for(self.transport.getPeer())
        if not left:
            return False
        self.transport.write(
            encode_error(f"too many failed HELLOs from your address: try again in {left:.0f} s")
        )
        self.transport.loseConnection()
        return True

    def _hello_failed(self, reason: str, reply: str):
        """Refuse a HELLO and close; counted against the client's address and
        logged with it (never with what the client sent)."""
        self.factory.auth_failures.failed(
            self.transport.getPeer(), reason, count=bool(self.factory.server.password)
        )
        self.transport.write(encode_error(reply))
        self.transport.loseConnection()
        return _NO_REPLY

    # -- line handling --------------------------------------------------------
    def lineReceived(self, line: bytes) -> None:
        if self.transport.disconnecting:
            return  # closing: what the client sent after END or a refusal is ignored
        if self._busy:
            self._pending.append(line)
            if len(self._pending) >= MAX_PENDING:
                self._paused = True
                self.transport.pauseProducing()
            return
        self._handle(line)

    def _handle(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if self.factory.server.shutting_down:
            self.transport.write(encode_error("shutdown in progress"))
            self.transport.loseConnection()
            return
        if not self.identified:
            self._busy = True
            d = defer.maybeDeferred(self._hello, line)
        else:
            verb, _, arg = line.partition(b" ")
            handler = self.factory.commands.get(verb)
            if handler is None:
                self._reply_error(
                    CommandError(f"unknown command {verb.decode('utf-8', 'replace')}")
                )
                return
            self.factory.server.command_count += 1
            try:
                result = handler(self, wire.text(arg).strip())
            except Exception as e:  # noqa: BLE001 - every failure becomes a reply
                self._reply_error(e)
                return
            if not isinstance(result, defer.Deferred):
                self._reply(result)
                return
            self._busy = True
            d = result
            if handler in _OK_WHEN_DONE:
                self.factory.in_flight += 1
                d.addBoth(self._answer_ok)
                return
        self.factory.in_flight += 1  # a graceful stop waits for these replies
        d.addBoth(self._answer)

    def _answer(self, result: Any) -> None:
        """A command's Deferred fired: reply, then take the next waiting line."""
        try:
            ctx = self._fetch_ctx
            if ctx is not None:
                self._fetch_ctx = None
                if self._gone and isinstance(result, bytes):
                    self._hand_back(result)
                    return
            if isinstance(result, Failure):
                self._reply_failure(result)
            elif result is not _NO_REPLY:
                send_now(self.transport, encode_reply(result))
        finally:
            self._next()

    def _answer_ok(self, result: Any) -> None:
        """``_answer`` for commands whose success is ``+OK`` (PUSH, ACK, FAIL)."""
        if isinstance(result, Failure) or self._fetch_ctx is not None:
            self._answer(result if isinstance(result, Failure) else OK)
            return
        try:
            send_now(self.transport, b"+OK\r\n")
        finally:
            self._next()

    def _hand_back(self, raw: bytes) -> None:
        """The client left while its job was being reserved: nobody will run
        it, so hand it straight back instead of waiting out the reservation."""
        factory = self.factory
        factory.in_flight += 1  # a graceful stop waits for this too

        def done(result):
            factory.in_flight -= 1
            if isinstance(result, Failure):
                log.failure("Could not hand back the job of a closed connection", result)

        d = defer.Deferred.fromCoroutine(factory.server.manager.release(json.loads(raw)))
        d.addBoth(done)

    def _next(self) -> None:
        self.factory.in_flight -= 1
        self._busy = False
        while self._pending and not self._busy and not self.transport.disconnecting:
            self._handle(self._pending.pop(0))
        if self._paused and not self._pending:
            self._paused = False
            if not self.paused:  # LineReceiver's flag: replies are not backed up
                self.transport.resumeProducing()

    def _reply(self, value: Any) -> None:
        if value is not _NO_REPLY:
            send_now(self.transport, encode_reply(value))

    def _reply_failure(self, failure: Failure) -> None:
        if failure.check(defer.CancelledError):
            return
        self._reply_error(failure.value, failure)

    def _reply_error(self, exc: BaseException, failure: Failure | None = None) -> None:
        if isinstance(exc, CommandError):
            self.transport.write(encode_error(exc.message, exc.code))
        elif isinstance(exc, (JobError, ValueError)):
            self.transport.write(encode_error(str(exc)))
        else:
            log.failure("Command failed", failure or Failure(exc))
            self.transport.write(encode_error("internal error"))

    # -- handshake ------------------------------------------------------------
    async def _hello(self, line: bytes):
        server = self.factory.server
        if not line.startswith(b"HELLO {"):
            return self._hello_failed(
                "no HELLO", "expected HELLO, the connection must start with it"
            )
        try:
            hello = wire.decode(wire.text(line[6:]), wire.HELLO)
            v = hello.get("v", 0)
        except ValueError as e:
            return self._hello_failed("invalid HELLO", f"invalid HELLO: {e}")
        if server.password:
            if self._shut_out():  # failed on other connections meanwhile: no hashing
                return _NO_REPLY
            iterations = self._iterations if v >= 2 else 1
            expected = password_hash(server.password, self._salt, iterations)
            if not hmac.compare_digest(expected, str(hello.get("pwdhash") or "")):
                return self._hello_failed("invalid password", "Invalid password")
        self.MAX_LENGTH = server.max_line_length
        self.factory.auth_failures.succeeded(self.transport.getPeer())
        if self._handshake_timer is not None and self._handshake_timer.active():
            self._handshake_timer.cancel()
        self.hello = hello
        self._uncount()
        # Output backpressure: LineReceiver is a push producer, so a client
        # that does not read its replies stops being read from once ~64 KB
        # of replies are queued, instead of growing the server's buffers.
        # Only now: during a TLS handshake the TLS layer pauses producers,
        # and pausing our reads then would stall the handshake itself.
        self.transport.registerProducer(self, True)
        self.identified = True
        server.connection_count += 1
        self.wid = hello.get("wid") or ""
        if self.wid:
            await server.workers.connect(self.wid, hello, self)
        self.transport.write(b"+OK\r\n")
        if server.connection_count > server.max_connections:
            self.transport.write(encode_error(f"too many connections: {server.connection_count}"))
            self.transport.loseConnection()
        return _NO_REPLY

    # -- commands -------------------------------------------------------------
    def cmd_end(self, arg: str):
        self.transport.loseConnection()
        return _NO_REPLY

    def cmd_push(self, arg: str):
        return self.factory.server.manager.push_raw(arg)

    def cmd_pushb(self, arg: str):
        return defer.Deferred.fromCoroutine(self.factory.server.manager.push_batch(arg))

    def cmd_fetch(self, arg: str):
        queues = arg.split()
        if not queues:
            raise CommandError("must call fetch with at least one queue")
        ctx = self._fetch_ctx = FetchContext()
        return self.factory.server.manager.fetch(queues, self.wid, ctx)

    def cmd_ack(self, arg: str):
        if arg.startswith('{"jid":"') and arg.endswith('"}'):
            # What every client sends: no need for a JSON parser.
            jid = arg[8:-2]
            if jid and '"' not in jid and "\\" not in jid and jid.isprintable():
                return self.factory.server.manager.ack(jid)
        jid = _json_arg("ACK", arg, wire.STRINGS).get("jid")
        if jid is None:
            raise CommandError(f"invalid ACK {arg}")
        return self.factory.server.manager.ack(jid)

    def cmd_fail(self, arg: str):
        data = _json_arg("FAIL", arg, wire.FAIL)
        jid = data.get("jid")
        if not jid:
            raise CommandError("missing JID")
        return defer.Deferred.fromCoroutine(
            self.factory.server.manager.fail(
                jid, data.get("errtype"), data.get("message"), data.get("backtrace")
            )
        )

    def cmd_beat(self, arg: str):
        data = _json_arg("BEAT", arg, wire.BEAT)
        wid = data.get("wid", "")
        d = self.factory.server.workers.beat(wid, data.get("rss_kb"), data.get("current_state", ""))

        def reply(state):
            if state is None:
                raise CommandError(f"unknown worker {wid}")
            if state == "running":
                return OK
            return dumps({"state": state})

        return d.addCallback(reply)

    def cmd_info(self, arg: str):
        return self.factory.server.admin.info().addCallback(dumps)

    def cmd_flush(self, arg: str):
        return self.factory.server.admin.flush().addCallback(lambda _: OK)

    def cmd_queue(self, arg: str):
        sub, _, rest = arg.partition(" ")
        if not sub:
            raise CommandError("QUEUE needs a subcommand: PAUSE, RESUME, REMOVE or LATENCY")
        names = rest.split()
        if sub.upper() in ("PAUSE", "RESUME", "REMOVE") and not names:
            raise CommandError(f"QUEUE {sub.upper()} needs queue names or *")
        d = defer.Deferred.fromCoroutine(self.factory.server.admin.queue_command(sub, names))
        return d.addCallback(lambda r: OK if r is None else dumps(r))

    def cmd_mutate(self, arg: str):
        if not arg or " " in arg:
            raise CommandError("invalid format")
        try:
            op = wire.decode(arg, wire.OPERATION)  # as Go: its error is the reply
        except ValueError as e:
            raise CommandError(str(e)) from None
        d = defer.Deferred.fromCoroutine(
            self.factory.server.admin.mutate(
                op.get("cmd", ""), op.get("target", ""), op.get("filter")
            )
        )
        return d.addCallback(lambda _: OK)

    # What BATCH and TRACK answer when their built-in feature is disabled
    # (``[plugins] disabled``): the plugins replace these verbs when they run.
    def cmd_batch(self, arg: str):
        raise CommandError('batches are disabled on this server ([plugins] disabled has "batch")')

    def cmd_track(self, arg: str):
        raise CommandError(
            'job tracking is disabled on this server ([plugins] disabled has "tracking")'
        )


_NO_REPLY = object()


def _worker_gone_failed(failure: Failure) -> None:
    if failure.check(StorageUnavailable):
        return  # Redis is away (logged once there); the heartbeat reaper tidies up
    log.failure("worker disconnect", failure)


Command = Callable[[FaktoryProtocol, str], Any]

# Built-in handlers returning a Deferred whose success means ``+OK``: answered
# without an extra callback to turn their result into OK.
_OK_WHEN_DONE = frozenset(
    {FaktoryProtocol.cmd_push, FaktoryProtocol.cmd_ack, FaktoryProtocol.cmd_fail}
)


class FaktoryFactory(protocol.Factory):
    """Builds work-protocol connections for one server; ``commands`` is the
    dispatch table, open to plugins (``add_command``)."""

    protocol = FaktoryProtocol
    noisy = False  # the start-up summary says where it listens

    BUILTIN = {
        "END": FaktoryProtocol.cmd_end,
        "QUEUE": FaktoryProtocol.cmd_queue,
        "MUTATE": FaktoryProtocol.cmd_mutate,
        "PUSH": FaktoryProtocol.cmd_push,
        "PUSHB": FaktoryProtocol.cmd_pushb,
        "FETCH": FaktoryProtocol.cmd_fetch,
        "ACK": FaktoryProtocol.cmd_ack,
        "FAIL": FaktoryProtocol.cmd_fail,
        "BEAT": FaktoryProtocol.cmd_beat,
        "INFO": FaktoryProtocol.cmd_info,
        "FLUSH": FaktoryProtocol.cmd_flush,
        "BATCH": FaktoryProtocol.cmd_batch,
        "TRACK": FaktoryProtocol.cmd_track,
    }

    def __init__(self, server: FaktoryServer) -> None:
        self.server = server
        self.in_flight = 0  # commands waiting for their reply (server.stopService drains them)
        self.unidentified = 0  # connections that have not said HELLO yet
        self.auth_failures = AuthFailures(server.reactor, "HELLO")
        self.commands: dict[bytes, Command] = {
            verb.encode(): fn for verb, fn in self.BUILTIN.items()
        }

    def add_command(self, verb: str, handler: Command) -> None:
        """Register or replace a verb; ``handler(protocol, arg)`` returns a reply
        value (``OK``, bytes/str/JSON-able for a bulk string, None for nil) or a
        Deferred of one, or raises CommandError."""
        self.commands[verb.encode()] = handler


__all__ = ["FaktoryFactory", "FaktoryProtocol", "OK", "password_hash"]
