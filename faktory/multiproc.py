"""Several server processes on one work port and one Redis (``--workers N``).

A Python process uses one core.  Every job transition is one atomic Lua
script, so any number of server processes can share a Redis; with
``SO_REUSEPORT`` they can share the listening port too, and the kernel spreads
new connections across them.  The first process (the one started by the
operator) spawns Redis, the web UI and ``N - 1`` children that connect to its
Redis with ``--redis-url``; it restarts a child that dies and stops them all
when it stops.  Children die with it (``PR_SET_PDEATHSIG``) even on kill -9.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import time

from twisted.application import service
from twisted.internet import defer, error, protocol
from twisted.logger import Logger

from .redisproc import _LAUNCHER

log = Logger()

RESTARTS = 5  # unexpected child exits tolerated per RESTART_WINDOW, per child
RESTART_WINDOW = 60.0
RESTART_DELAY = 1.0
REDIS_URL_ENV = "FAKTORY_WORKER_REDIS_URL"  # the parent's Redis, for a child (internal)
_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT[\d:]+[+-]\d{4} ")  # the child's own timestamp


def parse_tcp_endpoint(description: str) -> tuple[int, str, int]:
    """``tcp:PORT[:interface=IP][:backlog=N]`` -> (port, interface, backlog)."""
    parts = [p.replace("\\:", ":") for p in re.split(r"(?<!\\):", description)]
    if parts[0] != "tcp" or len(parts) < 2:
        raise ValueError(f"sharing a port needs a tcp: endpoint, not {description!r}")
    port, interface, backlog = None, "", 50
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        if not eq and port is None:
            port = int(key)
        elif key == "port":
            port = int(value)
        elif key == "interface":
            interface = value
        elif key == "backlog":
            backlog = int(value)
        else:
            raise ValueError(f"unsupported option {key!r} in {description!r}")
    if port is None:
        raise ValueError(f"no port in {description!r}")
    return port, interface, backlog


def listen_reuseport(reactor, description: str, factory):
    """Listen like ``serverFromString(description).listen(factory)`` but with
    SO_REUSEPORT, so other processes can listen on the same port."""
    port, interface, backlog = parse_tcp_endpoint(description)
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((interface, port))
        sock.listen(backlog)
        sock.setblocking(False)
        return reactor.adoptStreamPort(sock.fileno(), family, factory)
    except OSError as e:
        raise error.CannotListenError(interface, port, e) from None
    finally:
        sock.close()  # the reactor holds its own duplicate


class _ChildOutput(protocol.ProcessProtocol):
    def __init__(self, owner: WorkerProcesses, number: int) -> None:
        self.owner = owner
        self.number = number
        self.ended: defer.Deferred = defer.Deferred()
        self._partial = b""

    def outReceived(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if line.strip():
                text = _STAMP.sub("", line.decode("utf-8", "replace"))
                log.info("worker {n}: {line}", n=self.number, line=text)

    errReceived = outReceived

    def processEnded(self, reason) -> None:
        self.ended.callback(None)
        self.owner._ended(self, reason)


class WorkerProcesses(service.Service):
    """Spawns and supervises the extra server processes of ``--workers N``."""

    def __init__(self, reactor, argv: list[str], count: int, redis_url: str = "") -> None:
        self.reactor = reactor
        self.argv = argv  # ``faktory --bind ...`` for a child
        self.count = count
        # Handed over in the environment, never on the command line: it may
        # hold a password, and any local user can read /proc/<pid>/cmdline.
        self.redis_url = redis_url
        self.children: dict[int, _ChildOutput] = {}
        self._exits: dict[int, list[float]] = {}
        self.stopping = False

    @classmethod
    def for_server(cls, server, redis_url: str) -> WorkerProcesses:
        """Children of ``server``: its options, the port it got, its Redis."""
        s = server.settings
        interface = parse_tcp_endpoint(s.bind)[1].replace(":", "\\:")
        bind = f"tcp:{server.ports['work'].getHost().port}:interface={interface}"
        argv = [*s.worker_argv, "--bind", bind]
        return cls(server.reactor, argv, s.workers - 1, redis_url)

    def startService(self) -> None:
        super().startService()
        self.stopping = False
        for n in range(1, self.count + 1):
            self._spawn(n)

    def _spawn(self, number: int) -> None:
        if self.stopping:
            return
        proto = _ChildOutput(self, number)
        args = [sys.executable, "-c", _LAUNCHER, sys.executable, "-m", "twisted"]
        args += ["--log-format", "text", *self.argv]
        env = dict(os.environ)
        env[REDIS_URL_ENV] = self.redis_url
        self.reactor.spawnProcess(proto, sys.executable, args, env=env)
        self.children[number] = proto
        log.info("Started server worker {n} (pid {pid})", n=number, pid=proto.transport.pid)

    def pids(self) -> list[int]:
        return [p.transport.pid for p in self.children.values() if p.transport.pid]

    def _ended(self, proto: _ChildOutput, reason) -> None:
        if self.children.get(proto.number) is proto:
            del self.children[proto.number]
        if self.stopping:
            return
        log.error(
            "Server worker {n} exited: {reason}", n=proto.number, reason=reason.getErrorMessage()
        )
        now = time.monotonic()
        exits = [t for t in self._exits.get(proto.number, []) if now - t < RESTART_WINDOW]
        self._exits[proto.number] = exits + [now]
        if len(exits) >= RESTARTS:
            log.critical("Server worker {n} keeps dying; not restarting it", n=proto.number)
            return
        self.reactor.callLater(RESTART_DELAY, self._spawn, proto.number)

    def stopService(self):
        super().stopService()
        self.stopping = True
        waits = []
        for proto in list(self.children.values()):
            try:
                proto.transport.signalProcess("TERM")
            except error.ProcessExitedAlready:
                continue
            timer = self.reactor.callLater(30, _kill, proto)
            proto.ended.addBoth(lambda _, t=timer: t.active() and t.cancel())
            waits.append(proto.ended)
        return defer.DeferredList(waits)


def _kill(proto: _ChildOutput) -> None:
    try:
        proto.transport.signalProcess("KILL")
    except error.ProcessExitedAlready:
        pass
