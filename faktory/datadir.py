"""The data directory: one owner at a time, and only a Redis that can read it.

Two servers (or a server and ``faktory-cli backup``) on one data dir would
start two Redis on the same files; an older Redis than the one that wrote the
files silently starts empty.  Both are refused here, before Redis starts:

* ``DataDirLock``: an exclusive ``flock`` on ``<data dir>/faktory.lock`` (the
  kernel drops it when the process dies, so a crash leaves no stale lock);
  the file holds the owner's pid for the message.
* ``check_redis``: the Redis binary that last ran on the dir is recorded in
  ``<data dir>/redis-server.json``; another binary, or one too old for the
  files on disk (``appendonlydir/`` or the RDB version), is refused with the
  name of the binary that wrote them.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass

LOCK_FILE = "faktory.lock"
STAMP_FILE = "redis-server.json"

# The newest RDB format each Redis release reads (src/rdb.h RDB_VERSION).
RDB_VERSIONS = ((7, 4, 12), (7, 2, 11), (7, 0, 10), (5, 0, 9), (4, 0, 8), (3, 2, 7))


class DataDirError(Exception):
    """The data dir cannot be used; the message says why and what to do."""


def prepare(data_dir: str) -> str:
    """Create the data dir (0700) and prove it is writable by writing to it:
    ``os.access`` lies for root and read-only or immutable file systems."""
    data_dir = os.path.abspath(data_dir)
    try:
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
    except OSError as e:
        raise DataDirError(f"cannot create data dir {data_dir}: {e.strerror}") from None
    if not os.path.isdir(data_dir):
        raise DataDirError(f"data dir {data_dir} is not a directory")
    probe = os.path.join(data_dir, f".write-test-{os.getpid()}")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise DataDirError(f"data dir {data_dir} is not writable: {e.strerror}") from None
    return data_dir


class DataDirLock:
    """An exclusive lock on a data dir for the life of this process (or until
    ``release``).  Not inherited by children (Python fds are close-on-exec)."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = os.path.abspath(data_dir)
        self.path = os.path.join(self.data_dir, LOCK_FILE)
        self.fd: int | None = None

    def acquire(self) -> DataDirLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise DataDirError(f"cannot open lock file {self.path}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            owner = _read_pid(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = f"pid {owner}" if owner else "another process"
                raise DataDirError(
                    f"data dir {self.data_dir} in use by {who} (a running Faktory server "
                    f"or faktory-cli holds {self.path}); stop it first or choose another "
                    "--data-dir"
                ) from None
            raise DataDirError(f"cannot lock {self.path}: {e.strerror}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)
            except OSError:
                pass
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None


# -- which Redis may open the files ---------------------------------------------


@dataclass(frozen=True)
class RedisBinary:
    path: str
    version: str  # "7.0.15"

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return _vtuple(self.version)

    @property
    def describe(self) -> str:
        return f"{self.path} (Redis {self.version})"


def _vtuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def probe_binary(path: str) -> RedisBinary:
    """Run ``<path> --version``; DataDirError when it is not a usable redis-server."""
    path = os.path.abspath(path)
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DataDirError(f"cannot run redis-server {path}: {getattr(e, 'strerror', e)}") from None
    m = re.search(r"\bv=(\d+\.\d+(?:\.\d+)?)", out)
    if not m:
        first = (out.strip().splitlines() or [""])[0]
        raise DataDirError(f"{path} is not a redis-server (its --version says {first!r})")
    return RedisBinary(path, m.group(1))


def recorded(data_dir: str) -> RedisBinary | None:
    """The Redis that last ran on this data dir, as recorded at its start."""
    try:
        with open(os.path.join(data_dir, STAMP_FILE), encoding="utf-8") as f:
            doc = json.load(f)
        return RedisBinary(str(doc["path"]), str(doc["version"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record(data_dir: str, binary: RedisBinary) -> None:
    path = os.path.join(data_dir, STAMP_FILE)
    doc = {
        "path": binary.path,
        "version": binary.version,
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f)
        f.write("\n")
    os.replace(tmp, path)


def data_files(data_dir: str) -> dict[str, int]:
    """Redis data files in the dir and their sizes (``appendonlydir`` summed)."""
    out = {}
    for name in ("faktory.rdb", "faktory.aof"):
        try:
            out[name] = os.path.getsize(os.path.join(data_dir, name))
        except OSError:
            pass
    aof_dir = os.path.join(data_dir, "appendonlydir")
    if os.path.isdir(aof_dir):
        out["appendonlydir/"] = sum(
            os.path.getsize(os.path.join(aof_dir, n))
            for n in os.listdir(aof_dir)
            if os.path.isfile(os.path.join(aof_dir, n))
        )
    return out


def rdb_version(data_dir: str) -> int | None:
    try:
        with open(os.path.join(data_dir, "faktory.rdb"), "rb") as f:
            head = f.read(9)
    except OSError:
        return None
    if head[:5] == b"REDIS" and head[5:].isdigit():
        return int(head[5:])
    return None


def readable_rdb(version: tuple[int, ...]) -> int:
    for major, minor, rdb in RDB_VERSIONS:
        if version[:2] >= (major, minor):
            return rdb
    return 6


def check_redis(data_dir: str, binary: RedisBinary, explicit: bool) -> None:
    """Refuse a Redis that would not read (or would misread) this data dir.

    ``explicit``: the binary was chosen by ``--redis-server`` / the TOML key,
    so moving to the same or a newer Redis than the recorded one is the
    operator's decision (an upgrade); a binary found on PATH must be the
    recorded one."""
    files = data_files(data_dir)
    if not files:
        return
    fix = "start with --redis-server {path} (or [faktory] redis_server in the config)"
    before = recorded(data_dir)
    if before is not None:
        newer = before.version_tuple > binary.version_tuple
        if newer or (before.path != binary.path and not explicit):
            why = "a newer Redis than" if newer else "another Redis than"
            raise DataDirError(
                f"data dir {data_dir} was written by {before.describe}, {why} "
                f"{binary.describe}: " + fix.format(path=before.path)
            )
    if os.path.isdir(os.path.join(data_dir, "appendonlydir")) and binary.version_tuple < (7,):
        who = before.describe if before else "Redis 7 or newer (it has appendonlydir/)"
        raise DataDirError(
            f"data dir {data_dir} was written by {who}; {binary.describe} cannot read it: "
            + fix.format(path=before.path if before else "/path/to/redis-server-7")
        )
    rdb = rdb_version(data_dir)
    if rdb is not None and rdb > readable_rdb(binary.version_tuple):
        who = before.describe if before else f"a newer Redis (RDB format {rdb})"
        raise DataDirError(
            f"data dir {data_dir} was written by {who}; {binary.describe} cannot read "
            "faktory.rdb: " + fix.format(path=before.path if before else "/path/to/newer/redis")
        )


# -- a restore, for the audit log of the next start -----------------------------

RESTORE_NOTE = "last-restore.json"


def note_restore(data_dir: str, source: str, keys: int, replace: bool) -> None:
    """``faktory-cli restore`` runs with the server stopped: it leaves who
    restored what in the data dir, and the next start puts it in the audit log."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    doc = {
        "file": os.path.abspath(source),
        "keys": keys,
        "replace": replace,
        "by": f"{user}@{socket.gethostname()} (pid {os.getpid()})",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = os.path.join(data_dir, RESTORE_NOTE)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    os.replace(path + ".tmp", path)


def take_restore_note(data_dir: str) -> dict | None:
    """The note of a restore since the last start (then removed), or None."""
    path = os.path.join(data_dir, RESTORE_NOTE)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        os.unlink(path)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
