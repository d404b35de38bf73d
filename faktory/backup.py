"""Backups of the server's data.

Two kinds, because they answer different needs:

* **Hourly snapshots** (production, running server): ``BGSAVE`` makes Redis
  fork and write a point-in-time RDB; we copy it to
  ``<data dir>/backups/faktory-<UTC time>.rdb`` and keep the newest 24.  A
  snapshot is consistent (no job half-way between two keys) and costs the
  server nothing but a fork.
* **``faktory-cli backup`` / ``restore``** (server stopped): a temporary
  redis-server is started on the data dir and every key under the namespace is
  written with ``DUMP`` (with its TTL) into a gzip'd JSON-lines file; restore
  loads such a file (or one of the hourly ``.rdb`` snapshots) back with
  ``RESTORE``.  The file names our keys only, so it can be restored into a
  data dir, or a Redis, that holds other things.

File format (``.jsonl.gz``): a header ``{"faktory_backup": 1, "prefix": ...}``,
one ``{"k": key, "t": ttl_ms, "v": base64(DUMP)}`` per key (``t`` 0 = no
expiry), and a trailer ``{"end": <keys>}`` that proves the file is complete.
DUMP payloads restore into the same or a newer Redis major version.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import hiredis
from twisted.internet import task, threads
from twisted.logger import Logger

from . import datadir, private_files
from .namespace import REGISTRY, NamespaceError, glob_escape, normalise
from .redisproc import RedisProcess, find_redis_server, socket_path

log = Logger()

FORMAT = 1
BACKUP_DIR = "backups"
KEEP = 24
INTERVAL = 3600  # seconds between production snapshots
PROGRESS_EVERY = 10_000  # keys between progress lines
BATCH = 500  # commands pipelined per round trip
RDB_PREFIX, RDB_SUFFIX = "faktory-", ".rdb"


class BackupError(Exception):
    """Something the operator must fix; the message says what."""


# -- hourly snapshots of a running server ----------------------------------------


def backups_enabled(server) -> bool:
    """Hourly snapshots run on a production server that runs its own Redis
    (with ``--redis-url`` the Redis belongs to someone else, who backs it up)."""
    return server.settings.environment == "production" and server.redis_process is not None


def install(server) -> None:
    """Register the hourly snapshot when ``backups_enabled``."""
    if backups_enabled(server):
        data_dir = server.redis_process.data_dir
        server.add_task(
            "backup", INTERVAL, lambda: snapshot(server.redis, data_dir, server.reactor)
        )


def _info(raw: Any) -> dict[str, str]:
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


async def snapshot(
    redis, data_dir: str, reactor=None, keep: int = KEEP, timeout: float = 3600.0
) -> str:
    """BGSAVE, wait for it, copy the RDB into ``<data_dir>/backups``, prune to
    ``keep``.  Returns the new file's path."""
    if reactor is None:
        from twisted.internet import reactor
    started = time.time()
    reply = None
    while reply is None:
        try:
            reply = await redis.execute_command("BGSAVE", "SCHEDULE")
        except Exception as e:  # noqa: BLE001 - a save of its own is running: wait, then ours
            if "already in progress" not in str(e):
                raise
            await _wait_saved(redis, reactor, 0, timeout)
    await _wait_saved(redis, reactor, started, timeout)
    src = os.path.join(data_dir, "faktory.rdb")
    folder = os.path.join(data_dir, BACKUP_DIR)
    path = await threads.deferToThreadPool(
        reactor, reactor.getThreadPool(), _copy_snapshot, src, folder, keep
    )
    log.info(
        "Backup {path} written ({size} bytes, {secs:.1f} s)",
        path=path,
        size=os.path.getsize(path),
        secs=time.time() - started,
    )
    return path


async def _wait_saved(redis, reactor, since: float, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        info = _info(await redis.execute_command("INFO", "persistence"))
        idle = info.get("rdb_bgsave_in_progress") == "0" and (
            info.get("aof_rewrite_in_progress") == "0"
        )
        if idle and int(info.get("rdb_last_save_time", 0)) >= int(since):
            if info.get("rdb_last_bgsave_status", "ok") != "ok":
                raise BackupError("Redis could not write its snapshot (see the Redis log)")
            return
        if time.monotonic() > deadline:
            raise BackupError(f"Redis did not finish its snapshot within {timeout:g} s")
        await task.deferLater(reactor, 0.05, lambda: None)


def _copy_snapshot(src: str, folder: str, keep: int) -> str:
    # Opening the file pins the inode: a later save renames a new file over the
    # name, and we still copy the complete snapshot we opened.
    os.makedirs(folder, mode=0o700, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}Z"
    path = os.path.join(folder, RDB_PREFIX + stamp + RDB_SUFFIX)
    tmp = path + ".tmp"
    with open(src, "rb") as fin, private_files.open_private(tmp) as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())
    os.replace(tmp, path)
    prune(folder, keep)
    return path


def snapshots(folder: str) -> list[str]:
    """Hourly snapshot files in ``folder``, oldest first (names sort by time)."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(
        os.path.join(folder, n)
        for n in names
        if n.startswith(RDB_PREFIX) and n.endswith(RDB_SUFFIX)
    )


def prune(folder: str, keep: int = KEEP) -> list[str]:
    """Delete all but the newest ``keep`` snapshots; returns the deleted paths."""
    old = snapshots(folder)[:-keep] if keep > 0 else snapshots(folder)
    for path in old:
        os.unlink(path)
    return old


# -- offline backup / restore (faktory-cli) ----------------------------------------


class _Redis:
    """A blocking, pipelining RESP client: the CLI has no reactor to run."""

    def __init__(self, path: str, timeout: float = 60.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.reader = hiredis.Reader()

    def pipeline(self, commands: list[tuple]) -> list[Any]:
        self.sock.sendall(b"".join(hiredis.pack_command(c) for c in commands))
        replies: list[Any] = []
        while len(replies) < len(commands):
            reply = self.reader.gets()
            if reply is False:
                data = self.sock.recv(1 << 20)
                if not data:
                    raise BackupError("Redis closed the connection")
                self.reader.feed(data)
                continue
            replies.append(reply)
        for r in replies:
            if isinstance(r, hiredis.ReplyError):
                raise BackupError(f"Redis: {r}")
        return replies

    def __call__(self, *args: Any) -> Any:
        return self.pipeline([args])[0]

    def close(self) -> None:
        self.sock.close()


def server_running(data_dir: str) -> bool:
    """Whether a Redis (so a server) answers on the data dir's socket.  Any
    answer counts: with the Redis gateway on, PING gets ``-NOAUTH``."""
    sock = socket_path(data_dir)
    if not os.path.exists(sock):
        return False
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(sock)
            s.sendall(b"PING\r\n")
            return bool(s.recv(64))
    except OSError:
        return False


class TemporaryRedis:
    """redis-server on ``data_dir`` with the server's own configuration, for
    the time of one CLI command; ``SHUTDOWN`` makes it save on the way out."""

    def __init__(self, data_dir: str, fsync: str = "everysec", redis_server: str = "") -> None:
        self.lock = _lock(data_dir)  # the server takes it too: never both at once
        try:
            if server_running(data_dir):
                raise BackupError(
                    f"a Faktory server is running on {data_dir} (its redis.sock answers): "
                    "stop it first (e.g. systemctl stop faktory); a running production "
                    f"server writes hourly snapshots to {os.path.join(data_dir, BACKUP_DIR)}"
                )
            self.binary = choose_redis(data_dir, redis_server)
        except BaseException:
            self.lock.release()
            raise
        self.process = RedisProcess(data_dir, fsync=fsync)
        self.proc: subprocess.Popen | None = None
        self.client: _Redis | None = None

    def __enter__(self) -> _Redis:
        try:
            return self._start()
        except BaseException:
            self.__exit__()
            raise

    def _start(self) -> _Redis:
        conf = self.process.write_config()
        if os.path.exists(self.process.socket):
            os.unlink(self.process.socket)  # stale: nothing answered on it
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [self.binary.path, conf],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            umask=private_files.UMASK,  # its RDB/AOF private, as the server's
        )
        deadline = time.monotonic() + 600
        while True:
            if self.proc.poll() is not None:
                self.log.seek(0)
                out = self.log.read().decode(errors="replace").strip()
                raise BackupError(f"redis-server exited at start:\n{out[-2000:]}")
            try:
                self.client = _Redis(self.process.socket)
                self.client("PING")
                return self.client
            except (OSError, BackupError) as e:
                if self.client is not None:
                    self.client.close()
                    self.client = None
                if time.monotonic() > deadline:
                    raise BackupError(f"redis-server did not answer: {e}") from None
                time.sleep(0.05 if "LOADING" not in str(e) else 0.5)

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            try:
                self.client.sock.sendall(hiredis.pack_command(("SHUTDOWN", "SAVE")))
                self.client.sock.recv(1024)
            except OSError:
                pass
            self.client.close()
        if self.proc is not None:
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.log.close()
            self.proc = None
        self.lock.release()


def _lock(data_dir: str) -> datadir.DataDirLock:
    try:
        return datadir.DataDirLock(datadir.prepare(data_dir)).acquire()
    except datadir.DataDirError as e:
        raise BackupError(f"{e}") from None


def choose_redis(data_dir: str, redis_server: str = "") -> datadir.RedisBinary:
    """``redis_server`` if given, else the binary recorded in the data dir
    (the one that wrote it), else the one a server would find; refused when
    it cannot read the files (see ``datadir.check_redis``)."""
    try:
        before = datadir.recorded(data_dir)
        if redis_server:
            path = redis_server
        elif before is not None and os.access(before.path, os.X_OK):
            path = before.path
        else:
            path = find_redis_server()
        binary = datadir.probe_binary(path)
        datadir.check_redis(data_dir, binary, explicit=bool(redis_server))
    except (datadir.DataDirError, RuntimeError) as e:
        raise BackupError(str(e)) from None
    return binary


def _keys(r: _Redis, prefix: str | bytes) -> Iterator[bytes]:
    cursor = b"0"
    pattern = glob_escape(prefix) + "*"
    while True:
        cursor, keys = r("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
        yield from keys
        if cursor == b"0":
            return


def _progress(report: Callable[[str], None], verb: str, keys: int, size: int) -> None:
    report(f"{verb} {keys:,} keys ({size / 1e6:.1f} MB)")


def dump(
    data_dir: str,
    output: str,
    prefix: str = "fk:",
    report: Callable[[str], None] = lambda _: None,
    redis_server: str = "",
    allow_empty: bool = False,
) -> int:
    """Write every key under ``prefix`` of a stopped server's data dir to
    ``output``; returns the number of keys."""
    if not os.path.isdir(data_dir):
        raise BackupError(f"no data dir {data_dir}")
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise BackupError(f"cannot write {output}: no directory {folder}")
    tmp = output + ".tmp"
    try:
        count, size = _dump(data_dir, tmp, prefix, report, redis_server, allow_empty)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    os.replace(tmp, output)
    _progress(report, "backup complete:", count, size)
    return count


def _dump(
    data_dir: str,
    tmp: str,
    prefix: str,
    report: Callable[[str], None],
    redis_server: str = "",
    allow_empty: bool = False,
) -> tuple[int, int]:
    count = size = 0
    files = datadir.data_files(data_dir)
    temporary = TemporaryRedis(data_dir, redis_server=redis_server)
    private_files.open_private(tmp).close()  # created 0600: a backup holds every job
    with temporary as r, gzip.open(tmp, "wt", encoding="utf-8") as out:
        version = _info(r("INFO", "server")).get("redis_version", "")
        header = {
            "faktory_backup": FORMAT,
            "prefix": prefix,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "redis_version": version,
        }
        out.write(json.dumps(header) + "\n")
        batch: list[bytes] = []

        def flush() -> None:
            nonlocal count, size
            replies = r.pipeline([c for k in batch for c in (("DUMP", k), ("PTTL", k))])
            for key, value, ttl in zip(batch, replies[::2], replies[1::2]):
                if value is None:
                    continue  # expired since the SCAN
                record = {
                    "k": key.decode("utf-8", "surrogateescape"),
                    "t": max(ttl, 0),
                    "v": base64.b64encode(value).decode(),
                }
                out.write(json.dumps(record) + "\n")
                count += 1
                size += len(value)
                if count % PROGRESS_EVERY == 0:
                    _progress(report, "backed up", count, size)
            batch.clear()

        for key in _keys(r, prefix):
            batch.append(key)
            if len(batch) >= BATCH:
                flush()
        flush()
        if count == 0 and not allow_empty:
            known = sorted(n.decode(errors="replace") for n in r("SMEMBERS", REGISTRY))
            others = int(r("DBSIZE")) - int(r("EXISTS", REGISTRY))
            _refuse_empty(data_dir, prefix, files, others, known, temporary.binary)
        out.write(json.dumps({"end": count}) + "\n")
    return count, size


EMPTY_RDB = 256  # bytes: an RDB without keys is ~100 (header and aux fields)


def _refuse_empty(
    data_dir: str, prefix: str, files: dict[str, int], others: int, known: list[str], binary
) -> None:
    """A backup of nothing from files that hold something is not a success:
    the wrong namespace, or files this Redis did not read."""
    if others:
        seen = f" (namespaces recorded: {', '.join(known)})" if known else ""
        raise BackupError(
            f"{data_dir} holds {others:,} keys but none under {prefix!r}{seen}: "
            "is --namespace right?"
        )
    held = {n: b for n, b in files.items() if b > (EMPTY_RDB if n.endswith(".rdb") else 0)}
    if held:
        listed = ", ".join(f"{n} {b:,} bytes" for n, b in sorted(held.items()))
        raise BackupError(
            f"read no keys from {data_dir}, whose data files are not empty ({listed}), "
            f"with {binary.describe}; refusing to write an empty backup (pass "
            "--allow-empty if the server really holds nothing)"
        )


# -- faktory-cli subcommands ---------------------------------------------------------


def _default_data_dir() -> str:
    env = os.environ.get("FAKTORY_ENV", "development")
    return os.path.expanduser("~/.faktory/db") if env == "development" else "/var/lib/faktory/db"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _fail(command: str, e: BaseException) -> int:
    if isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        e = f"{where}{e.strerror or e}"
    _stderr(f"faktory-cli {command}: {e}")
    return 1


def cmd_backup(args) -> int:
    output = args.output or time.strftime("faktory-backup-%Y%m%dT%H%M%SZ.jsonl.gz", time.gmtime())
    try:
        n = dump(
            args.data_dir,
            output,
            normalise(args.namespace),
            _stderr,
            args.redis_server,
            args.allow_empty,
        )
    except (BackupError, NamespaceError, OSError) as e:
        return _fail("backup", e)
    print(json.dumps({"file": output, "keys": n}) if args.json else f"{output}: {n} keys")
    return 0


def _common(p) -> None:
    p.add_argument(
        "--data-dir",
        default=_default_data_dir(),
        help="the stopped server's data dir (default ~/.faktory/db, or /var/lib/faktory/db "
        "when $FAKTORY_ENV is not development)",
    )
    p.add_argument("--namespace", default="fk:", help="key prefix of the server (default fk:)")
    p.add_argument(
        "--redis-server",
        default="",
        help="redis-server binary to read the data dir with (default: the one recorded "
        "in the data dir, else redis-server on PATH)",
    )


def _backup_args(p) -> None:
    _common(p)
    p.add_argument("--output", "-o", help="file to write (default faktory-backup-<time>.jsonl.gz)")
    p.add_argument(
        "--allow-empty",
        action="store_true",
        help="succeed even when no key is found although the data files are not empty",
    )


def register_commands(command: Callable) -> None:
    """Add ``backup`` to faktory-cli (called by faktory.cli)."""
    command("backup", "back up a stopped server's data dir to a file", cmd_backup, _backup_args)


__all__ = ["BackupError", "dump", "install", "prune", "snapshot", "snapshots"]
