"""A tiny blocking Redis client for tests that look at what the server stored
(or at the Redis process itself) without going through the server."""

from __future__ import annotations

import json
import socket


class RedisError(Exception):
    pass


class RawRedis:
    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.f = self.sock.makefile("rb")

    def __call__(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(parts))
        return self._read()

    def _read(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise AssertionError(f"bad reply {line!r}")

    def pid(self) -> int:
        info = self("INFO", "server").decode()
        return int(info.split("process_id:")[1].split()[0])

    def jobs(self, key: str) -> list[dict]:
        """Members of a sorted set of jobs, decoded."""
        return [json.loads(m) for m in self("ZRANGE", key, 0, -1)]

    def close(self) -> None:
        self.sock.close()
