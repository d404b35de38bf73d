"""Test helpers: run a real server process and talk to it over real sockets."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ``twist faktory`` in the foreground, logging plain text to stdout: how every
# test starts a server process (add the options after it).
TWIST = (sys.executable, "-m", "twisted", "--log-format", "text", "faktory")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def short_tmpdir(prefix: str = "fk") -> str:
    """Unix socket paths are limited to ~107 bytes: keep data dirs short."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


def memory_tmpdir(prefix: str = "fkm") -> str:
    """A data dir on tmpfs, for kill -9 tests of the default ``--fsync
    everysec``.  On a disk busy with other work Redis may hold an AOF write
    back for up to 2 s while it waits for the previous fsync (and reply
    meanwhile): a kill -9 then loses those writes, as Redis documents.  That is
    the disk's speed, not the server's doing; on tmpfs fsync is instant, so the
    test checks what the server controls.  ``--fsync always`` is tested on the
    real disk."""
    if os.access("/dev/shm", os.W_OK):
        return tempfile.mkdtemp(prefix=prefix, dir="/dev/shm")
    return short_tmpdir(prefix)


def config_dir(toml: str, name: str = "faktory.toml") -> str:
    """A fresh ``--config-dir`` whose ``conf.d/<name>`` holds ``toml``."""
    d = short_tmpdir("fkc")
    os.makedirs(os.path.join(d, "conf.d"))
    with open(os.path.join(d, "conf.d", name), "w") as f:
        f.write(toml)
    return d


def refused_start(toml: str, env=None, web: bool = False) -> str:
    """Start a server with ``toml`` as its configuration, expecting it to
    refuse: the test fails unless it exits non-zero within 30 s; its log."""
    conf = config_dir(toml)
    s = ServerProcess(args=["--config-dir", conf], env=env, web=web).start(wait=False)
    try:
        rc = s.proc.wait(30)
        log = s.log()
    finally:
        s.discard()
        shutil.rmtree(conf, ignore_errors=True)
    assert rc != 0, log
    return log


def redis_socket(server: ServerProcess) -> str:
    """The ``--redis-url`` that makes another server share ``server``'s Redis."""
    return "unix://" + os.path.join(os.path.abspath(server.data_dir), "redis.sock")


def wait_for_port(port: int, timeout: float = 20.0, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port} after {timeout} s")


class ServerProcess:
    """``twistd -n faktory`` in a subprocess with its own data dir and ports."""

    def __init__(self, data_dir: str | None = None, args=(), env=None, web: bool = True):
        self.data_dir = data_dir or short_tmpdir()
        self.port = free_port()
        self.web_port = free_port() if web else None
        self.args = list(args)
        self.env = dict(os.environ, **(env or {}))
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(self.data_dir, "server.log")

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> ServerProcess:
        cmd = [
            *TWIST,
            "--bind",
            f"tcp:{self.port}:interface=127.0.0.1",
            "--web",
            f"tcp:{self.web_port}:interface=127.0.0.1" if self.web_port else "none",
            "--data-dir",
            self.data_dir,
            *self.args,
        ]
        # ``twist`` runs in the foreground and logs to stdout.
        self.logfile = open(self.log_path, "ab")
        self.log_start = self.logfile.tell()  # a restart appends to the same log
        self.proc = subprocess.Popen(
            cmd, stdout=self.logfile, stderr=subprocess.STDOUT, env=self.env, cwd=self.data_dir
        )
        if wait:
            wait_for_port(self.port, proc=self.proc)
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        """The port is bound before Redis starts (connections wait in the
        backlog): the server is ready once it logs its start-up summary."""
        deadline = time.monotonic() + timeout
        while b"Faktory server ready" not in self._log_since_start():
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after {timeout} s")
            time.sleep(0.05)

    def _log_since_start(self) -> bytes:
        with open(self.log_path, "rb") as f:
            f.seek(self.log_start)
            return f.read()

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_for_log(self, text: str, timeout: float = 15.0) -> str:
        """The first log line holding ``text``, once it is there; the test
        fails with the log's tail if it is not within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()
            line = next((x for x in log.splitlines() if text in x), None)
            if line is not None:
                return line
            assert time.monotonic() < deadline, f"{text!r} not logged:\n{log[-1500:]}"
            time.sleep(0.05)

    def stop(self, sig=signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logfile.close()
        rc, self.proc = self.proc.returncode, None
        return rc

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def discard(self) -> None:
        """Stop it and delete its data dir: the end of a throw-away server."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def client(self, **kw) -> Client:
        return Client(port=self.port, **kw)


class Client:
    """A minimal blocking Faktory client that shows raw replies."""

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        password: str | None = None,
        wid: str | None = None,
        hello: dict | None = None,
        timeout: float = 10.0,
    ):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.f = self.sock.makefile("rwb")
        self.greeting = self.read_line()
        if hello is False:
            return
        payload = {"v": 2, "hostname": "test", "pid": os.getpid(), "labels": []}
        if wid:
            payload["wid"] = wid
        if password is not None:
            info = json.loads(self.greeting[4:])
            payload["pwdhash"] = pwdhash(password, info["s"], info["i"])
        payload.update(hello or {})
        self.hello_reply = self.call("HELLO " + json.dumps(payload))

    def read_line(self) -> str:
        line = self.f.readline()
        if not line:
            raise ConnectionError("connection closed")
        return line.decode().rstrip("\r\n")

    def read_reply(self):
        """'+OK' -> 'OK'; bulk -> str; nil -> None; '-ERR x' -> ReplyError."""
        line = self.read_line()
        kind, rest = line[0], line[1:]
        if kind == "+":
            return rest
        if kind == "-":
            return ReplyError(rest)
        if kind == "$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2].decode()
        if kind == ":":
            return int(rest)
        raise AssertionError(f"bad reply line {line!r}")

    def send(self, line: str | bytes) -> None:
        if isinstance(line, str):
            line = line.encode()
        self.f.write(line + b"\r\n")
        self.f.flush()

    def call(self, line: str | bytes):
        self.send(line)
        return self.read_reply()

    def push(self, **job):
        job.setdefault("jid", uuid.uuid4().hex)
        job.setdefault("jobtype", "TestJob")
        job.setdefault("args", [])
        return job["jid"], self.call("PUSH " + json.dumps(job))

    def fetch(self, *queues):
        reply = self.call("FETCH " + " ".join(queues or ("default",)))
        return json.loads(reply) if isinstance(reply, str) else reply

    def info(self) -> dict:
        return json.loads(self.call("INFO"))

    def close(self) -> None:
        # The file object holds its own reference to the socket: close both.
        for thing in (self.f, self.sock):
            try:
                thing.close()
            except OSError:
                pass


class ReplyError(str):
    """An error reply, e.g. ``ERR unknown command push``."""


def pwdhash(password: str, salt: str, iterations: int) -> str:
    digest = hashlib.sha256((password + salt).encode()).digest()
    for _ in range(iterations - 1):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``faktory-cli ARGS`` as an operator runs it (a subprocess), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "faktory.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
