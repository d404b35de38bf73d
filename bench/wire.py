"""A bare-bones Faktory wire client for load generation.

Speed over convenience: commands are pre-built bytes, replies are parsed
straight out of one receive buffer, and several commands may be in flight on
one connection (pipelining), so the load tool spends little CPU per job and
the server, not the client, sets the pace.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from urllib.parse import urlparse

OK = object()  # a "+OK" reply
NIL = None  # a "$-1" nil reply


class ReplyError(Exception):
    """The server answered ``-ERR ...``."""


def parse_url(url: str) -> tuple[str, int, str | None]:
    """``tcp://[:password@]host:port`` (the FAKTORY_URL form) -> host, port, password."""
    if "://" not in url:
        url = "tcp://" + url
    u = urlparse(url)
    return u.hostname or "127.0.0.1", u.port or 7419, u.password


def pwdhash(password: str, salt: str, iterations: int) -> str:
    digest = hashlib.sha256((password + salt).encode()).digest()
    for _ in range(iterations - 1):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


class Conn:
    """One identified connection with a receive buffer and a reply parser."""

    def __init__(self, url: str, wid: str | None = None, timeout: float = 30.0) -> None:
        host, port, password = parse_url(url)
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        greeting = self._line()
        if not greeting.startswith(b"+HI "):
            raise ReplyError(greeting.decode(errors="replace"))
        hello = {"v": 2, "hostname": socket.gethostname(), "pid": os.getpid(), "labels": ["bench"]}
        if wid:
            hello["wid"] = wid
        info = json.loads(greeting[4:])
        if "s" in info:
            hello["pwdhash"] = pwdhash(password or "", info["s"], info.get("i", 1))
        self.sock.sendall(b"HELLO " + json.dumps(hello).encode() + b"\r\n")
        reply = self.reply()
        if isinstance(reply, ReplyError):
            raise reply

    def fileno(self) -> int:
        return self.sock.fileno()

    def _fill(self) -> None:
        data = self.sock.recv(262144)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def _line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return line
            self._fill()

    def try_reply(self):
        """A complete reply from the buffer, or ``...`` (Ellipsis) if more bytes
        are needed.  Bulk replies come back as bytes, ``+OK`` as ``OK``, nil as
        None, errors as ReplyError instances."""
        buf = self.buf
        i = buf.find(b"\r\n")
        if i < 0:
            return ...
        kind = buf[0]
        if kind == 36:  # '$'
            n = int(buf[1:i])
            if n < 0:
                del buf[: i + 2]
                return None
            end = i + 2 + n
            if len(buf) < end + 2:
                return ...
            value = bytes(buf[i + 2 : end])
            del buf[: end + 2]
            return value
        line = bytes(buf[1:i])
        del buf[: i + 2]
        if kind == 43:  # '+'
            return OK if line == b"OK" else line
        if kind == 45:  # '-'
            return ReplyError(line.decode(errors="replace"))
        if kind == 58:  # ':'
            return int(line)
        raise ConnectionError(f"bad reply {bytes(buf[:80])!r}")

    def reply(self):
        """Block until one reply is complete."""
        while True:
            value = self.try_reply()
            if value is not ...:
                return value
            self._fill()

    def call(self, line: bytes):
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def close(self) -> None:
        try:
            self.sock.sendall(b"END\r\n")
        except OSError:
            pass
        self.sock.close()


def jid_of(job: bytes) -> bytes:
    """The jid of a fetched job without decoding the JSON."""
    i = job.index(b'"jid":"') + 7
    return job[i : job.index(b'"', i)]
