"""Redis under stress: out of memory, or unable to write to disk.

Redis then refuses writes (``OOM`` under ``maxmemory`` with ``noeviction``,
``MISCONF`` when an AOF write or an RDB snapshot failed).  Those refusals
reach clients as a clear ``-ERR Redis is out of memory ...`` or ``-ERR Redis
cannot write to disk ...`` instead of an internal error, each episode is
logged once when it starts and once when it ends, and the web UI shows a
banner while it lasts.

Memory is kept for the work already stored: once Redis uses ``HIGH_WATER``
of its ``maxmemory``, new PUSHes are refused by the server itself, so FETCH,
ACK and FAIL (which free memory or barely use any) keep working and workers
can drain the backlog; PUSHes are taken again below ``LOW_WATER``.  The
spawned Redis's disk is kept the same way: PUSH is refused while less than
``DISK_RESERVE`` is free.  A disk that fills up anyway stops every write in
Redis; it resumes by itself once there is space (the AOF is retried at once;
a failed RDB snapshot is retried here).
"""

from __future__ import annotations

import os
import re
import time

from twisted.internet import defer
from twisted.logger import Logger

from .errors import RedisRefused, StorageUnavailable

log = Logger()

HIGH_WATER = 0.90  # of maxmemory: new PUSHes refused from here...
LOW_WATER = 0.85  # ...until usage is back below this
BGSAVE_RETRY = 5.0  # seconds between snapshot attempts after one failed
DISK_RESERVE = 64 * 1024**2  # free bytes on the data dir's disk kept for stored work...
DISK_RESERVE_SHARE = 0.10  # ...or this share of the disk if that is less

SIZE = re.compile(r"\A\s*(\d+)\s*(b|k|kb|m|mb|g|gb)?\s*\Z", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2}
_UNITS.update({"g": 1000**3, "gb": 1024**3})

OUT_OF_MEMORY = (
    "Redis is out of memory (maxmemory reached; it evicts nothing): the command was "
    "refused. Let workers drain the queues, or raise redis_maxmemory"
)


def parse_size(value: str | int) -> int:
    """``512mb``, ``2gb``, ``1000000`` (Redis's units: kb/mb/gb are powers of
    1024, k/m/g of 1000) -> bytes; ValueError for anything else."""
    m = SIZE.match(str(value))
    if not m:
        raise ValueError(f"not a size: {value!r} (use bytes, or a number with kb, mb or gb)")
    return int(m.group(1)) * _UNITS[(m.group(2) or "").lower()]


def human(size: float) -> str:
    """Bytes for a message: ``512 B``, ``2.7 MiB``."""
    if size < 1024:
        return f"{size:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"


def refusal(text: str) -> RedisRefused | None:
    """The clear error for a Redis error reply that means "out of memory" or
    "cannot write to disk" (also when a script's error wraps it), else None."""
    if "OOM command not allowed" in text:
        return RedisRefused("memory", OUT_OF_MEMORY)
    at = text.find("MISCONF ")
    if at < 0:
        return None
    detail = text[at + 8 :].split(" script:")[0].split(". ")[0].strip().rstrip(".")
    return RedisRefused(
        "disk",
        f"Redis cannot write to disk ({detail}): nothing can be stored or acknowledged "
        "until it can; free space in its data directory, it resumes by itself",
    )


class Pressure:
    """Watches one Redis (INFO every second, and the refusals the connection
    reports): sets the manager's ``push_budget`` (the bytes of new jobs
    that fit below the high-water mark) and holds the problems to show."""

    def __init__(self, store, manager, data_dir: str | None = None) -> None:
        self.store = store
        self.manager = manager  # its push_budget / push_refusal are ours to set
        self.data_dir = data_dir  # the spawned Redis's: ours to watch and snapshot
        self.spawned = data_dir is not None
        self._disk_refusal: RedisRefused | None = None
        self.episodes: dict[str, str] = {}  # kind -> what the operator is told
        self._last_bgsave = 0.0
        self._memory_check: defer.Deferred | None = None
        manager.memory_check = self.check_memory

    def problems(self) -> list[str]:
        return list(self.episodes.values())

    def refused(self, error: RedisRefused) -> None:
        """Redis refused a command: the start of an episode unless one is on."""
        self._start(error.kind, error.message)

    def _start(self, kind: str, text: str) -> None:
        if kind not in self.episodes:
            log.error("{text}", text=text)
        self.episodes[kind] = text

    def _end(self, kind: str, text: str) -> None:
        if self.episodes.pop(kind, None) is not None:
            log.info("{text}", text=text)

    async def check(self) -> None:
        """Read Redis's memory and persistence state; start or end episodes."""
        try:
            raw = await self.store.redis_info_sections("memory", "persistence")
        except StorageUnavailable:
            return  # Redis away: reported elsewhere
        info = _fields(raw)
        self._space()
        self._memory(info)
        self._disk(info)

    def check_memory(self) -> defer.Deferred:
        """A fresh look at Redis's memory now (the manager's budget is spent);
        concurrent callers share one INFO."""
        if self._memory_check is None:
            self._memory_check = d = self.store.redis_info_sections("memory")
            d.addCallback(lambda raw: self._memory(_fields(raw)))
            d.addErrback(lambda f: f.trap(StorageUnavailable))

            def done(result):
                self._memory_check = None
                return result

            d.addBoth(done)
        waiter = defer.Deferred()
        self._memory_check.addBoth(lambda r: waiter.callback(None) or r)
        return waiter

    def _memory(self, info: dict[str, str]) -> None:
        self._memory_state(info)
        manager = self.manager
        if self._disk_refusal is not None:  # the disk's reserve is as binding
            manager.push_budget, manager.push_blocked = 0, True
            manager.push_refusal = self._disk_refusal

    def _space(self) -> None:
        """Keep the last of the data directory's disk for the stored work: an
        ACK or a FETCH appends to the AOF too, and a full disk stops them all."""
        if self.data_dir is None:
            return
        try:
            st = os.statvfs(self.data_dir)
        except OSError:
            return
        free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
        reserve = min(DISK_RESERVE, total * DISK_RESERVE_SHARE)
        low = "disk-space" in self.episodes
        if free < reserve or (low and free < reserve * 1.25):
            text = (
                f"Redis's disk is nearly full: {human(free)} free in {self.data_dir} "
                f"(the last {human(reserve)} are kept for the work already stored), so "
                "PUSH is refused until there is space again (FETCH, ACK and FAIL still work)"
            )
            self._disk_refusal = RedisRefused("disk", text)
            self._start("disk-space", text)
        else:
            self._disk_refusal = None
            self._end("disk-space", "Redis's disk has space again: new jobs are accepted")

    def _memory_state(self, info: dict[str, str]) -> None:
        manager = self.manager
        used, limit = _int(info.get("used_memory")), _int(info.get("maxmemory"))
        if not limit:
            manager.push_budget, manager.push_blocked = float("inf"), False
            self._end("memory", "Redis has memory again: new jobs are accepted")
            return
        share = used / limit
        if share >= HIGH_WATER or (share >= LOW_WATER and "memory" in self.episodes):
            manager.push_budget, manager.push_blocked = 0, True
            manager.push_refusal = RedisRefused(
                "memory",
                f"Redis is out of memory for new jobs: {share:.0%} of its maxmemory "
                f"({human(used)} of {human(limit)}) is used, so PUSH is refused until "
                "workers drain the queues (FETCH, ACK and FAIL still work)",
            )
            self._start("memory", manager.push_refusal.message)
            return
        # Until the next look, new jobs may use what is left below the mark.
        manager.push_budget, manager.push_blocked = HIGH_WATER * limit - used, False
        if share < LOW_WATER:
            self._end("memory", "Redis has memory again: new jobs are accepted")

    def _disk(self, info: dict[str, str]) -> None:
        aof_bad = info.get("aof_last_write_status") == "err"
        rdb_bad = info.get("rdb_last_bgsave_status") == "err"
        if not (aof_bad or rdb_bad):
            self._end("disk", "Redis can write to disk again: writes are accepted")
            return
        what = "writing its append-only file" if aof_bad else "saving its snapshot"
        self._start(
            "disk",
            f"Redis cannot write to disk (failed {what}): nothing can be stored or "
            "acknowledged until it can; free space in its data directory, it resumes by itself",
        )
        if rdb_bad and self.spawned and info.get("rdb_bgsave_in_progress") == "0":
            # Redis retries a failed snapshot only when its save points come due
            # again (up to minutes); writes stay refused until one succeeds.
            now = time.monotonic()
            if now - self._last_bgsave >= BGSAVE_RETRY:
                self._last_bgsave = now
                d = self.store.redis.execute_command("BGSAVE")
                d.addErrback(lambda f: None)  # still full: the next try will tell


def _fields(raw: bytes | str) -> dict[str, str]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key] = value.strip()
    return out


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
