"""What the server costs: CPU seconds and RSS of the server processes (every
process listening on the work port, plus their children such as the spawned
Redis), read from /proc so the numbers do not depend on the client."""

from __future__ import annotations

import glob
import os

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def listening_pids(port: int) -> list[int]:
    """Pids owning a listening TCP socket on ``port`` (several with SO_REUSEPORT
    or an inherited socket)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for row in f:
                    cols = row.split()
                    if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(f"socket:[{cols[9]}]")
        except OSError:
            continue
    pids = []
    for fd_dir in glob.glob("/proc/[0-9]*/fd"):
        try:
            for fd in os.listdir(fd_dir):
                if os.readlink(os.path.join(fd_dir, fd)) in inodes:
                    pids.append(int(fd_dir.split("/")[2]))
                    break
        except OSError:
            continue
    return sorted(pids)


def children(pid: int) -> list[int]:
    out = []
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            with open(path) as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return out


def process_tree(pids: list[int]) -> list[int]:
    """The given pids and all their descendants."""
    seen: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.append(pid)
        todo += children(pid)
    return seen


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE // 1024
    except (OSError, ValueError, IndexError):
        return 0


def is_redis(pid: int) -> bool:
    return comm(pid).startswith("redis")


def redis_socket(pids: list[int]) -> str | None:
    """The spawned Redis chdirs into the data dir, where its socket lives."""
    for pid in pids:
        if is_redis(pid):
            try:
                path = os.path.join(os.readlink(f"/proc/{pid}/cwd"), "redis.sock")
            except OSError:
                continue
            if os.path.exists(path):
                return path
    return None


class ServerCost:
    """CPU snapshots of the server's process tree, split into Faktory and Redis."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = process_tree(pids)
        self.start = self._sample()

    def _sample(self) -> dict[int, float]:
        return {pid: cpu_seconds(pid) for pid in self.pids}

    def used(self) -> dict[str, float]:
        now = self._sample()
        out = {"server": 0.0, "redis": 0.0}
        for pid, t in now.items():
            out["redis" if is_redis(pid) else "server"] += t - self.start.get(pid, 0.0)
        return out

    def rss(self) -> dict[str, int]:
        out = {"server": 0, "redis": 0}
        for pid in self.pids:
            out["redis" if is_redis(pid) else "server"] += rss_kb(pid)
        return out


def redis_memory(socket_path: str | None = None, url: str | None = None) -> dict[str, int]:
    """``INFO memory`` of the server's Redis (used_memory, used_memory_rss...)."""
    import redis

    if url:
        r = redis.Redis.from_url(url)
    elif socket_path:
        r = redis.Redis(unix_socket_path=socket_path)
    else:
        return {}
    try:
        mem = r.info("memory")
        return {k: mem[k] for k in ("used_memory", "used_memory_rss", "used_memory_peak")}
    finally:
        r.close()


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])
