"""``faktory-cli restore``: a backup file or an hourly ``.rdb`` snapshot into a
stopped server's data dir, never making things worse.

The whole file is read and checked before anything is touched (header, every
record, that each key is under the backup's namespace and has a sensible
name, the trailer's count); the keys are restored under a staging prefix and
swapped in for the old ones in one MULTI/EXEC.  A backup of another namespace
is refused, or moved with ``--from-namespace``.  The file format and the
temporary Redis are ``faktory.backup``'s.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from . import datadir
from .backup import (
    BATCH,
    FORMAT,
    PROGRESS_EVERY,
    BackupError,
    TemporaryRedis,
    _common,
    _fail,
    _keys,
    _progress,
    _Redis,
    _stderr,
)
from .namespace import NamespaceError, normalise

STAGE = "~restore:"  # under the namespace: a restore stages its keys here, then swaps
_ODD = frozenset(b"\x00\r\n")


def _check_key(path: str, key: bytes, source: bytes, n: int) -> bytes:
    """The part of ``key`` after the namespace ``source``; refuses a key of
    another namespace, an empty or odd one."""
    if not key.startswith(source):
        raise BackupError(
            f"{path}: key {n + 1} ({key[:80]!r}) is not under the backup's namespace "
            f"{source.decode(errors='replace')!r}"
        )
    rest = key[len(source) :]
    if not rest or _ODD.intersection(rest) or rest.startswith(STAGE.encode()):
        raise BackupError(f"{path}: key {n + 1} has an empty or odd name: {key[:80]!r}")
    return rest


def _header(path: str) -> dict[str, Any]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            header = json.loads(f.readline())
    except (ValueError, OSError, EOFError, zlib.error) as e:
        raise BackupError(f"{path} is not a faktory backup: {e}") from None
    if not isinstance(header, dict) or header.get("faktory_backup") != FORMAT:
        raise BackupError(f"{path} is not a faktory backup (format {FORMAT})")
    if not isinstance(header.get("prefix"), str) or not header["prefix"]:
        raise BackupError(f"{path}: the header names no namespace")
    return header


def _records(path: str, source: str) -> Iterator[tuple[bytes, int, bytes]]:
    """(key after the namespace, ttl ms, DUMP payload) of a backup file,
    checking every record, that each key is under ``source``, and the trailer."""
    prefix = source.encode("utf-8", "surrogateescape")
    n = 0
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            f.readline()  # the header, checked by _header
            for line in f:
                rec = json.loads(line)
                if not isinstance(rec, dict):
                    raise ValueError(f"record {n + 1} is not an object")
                if "end" in rec:
                    if rec["end"] != n:
                        raise BackupError(f"{path}: trailer says {rec['end']} keys, read {n}")
                    if f.readline():
                        raise BackupError(f"{path}: data after the trailer")
                    return
                key, ttl, value = rec["k"], rec["t"], rec["v"]
                if not isinstance(key, str) or not isinstance(value, str):
                    raise ValueError(f"record {n + 1}: k and v must be strings")
                if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
                    raise ValueError(f"record {n + 1}: t must be a whole number >= 0")
                rest = _check_key(path, key.encode("utf-8", "surrogateescape"), prefix, n)
                n += 1
                yield rest, ttl, base64.b64decode(value, validate=True)
    except BackupError:
        raise
    except (ValueError, KeyError, TypeError, OSError, EOFError, zlib.error) as e:
        raise BackupError(f"{path} is damaged after {n} keys: {e}") from None
    raise BackupError(f"{path} is truncated after {n} keys (no trailer)")


def _rdb_records(
    path: str, source: str, redis_server: str = ""
) -> Iterator[tuple[bytes, int, bytes]]:
    """The keys under ``source`` of an RDB snapshot (name after the
    namespace), read through a throw-away Redis (``redis_server``, else the
    one ``choose_redis`` picks)."""
    tmp = tempfile.mkdtemp(prefix="fkrs", dir="/tmp")  # short: a unix socket lives here
    prefix = source.encode("utf-8", "surrogateescape")
    n = 0
    try:
        shutil.copyfile(path, os.path.join(tmp, "faktory.rdb"))
        with TemporaryRedis(tmp, fsync="no", redis_server=redis_server) as r:
            batch: list[bytes] = []
            for key in _keys(r, prefix):
                batch.append(key)
                if len(batch) >= BATCH:
                    for key, ttl, value in _dumped(r, batch):
                        yield _check_key(path, key, prefix, n), ttl, value
                        n += 1
            for key, ttl, value in _dumped(r, batch):
                yield _check_key(path, key, prefix, n), ttl, value
                n += 1
            if n == 0 and r("DBSIZE"):
                raise BackupError(
                    f"{path} holds {r('DBSIZE')} keys but none under {source!r}: "
                    "pass the namespace it was taken with (--namespace or --from-namespace)"
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _dumped(r: _Redis, batch: list[bytes]) -> Iterator[tuple[bytes, int, bytes]]:
    replies = r.pipeline([c for k in batch for c in (("DUMP", k), ("PTTL", k))])
    for key, value, ttl in zip(batch, replies[::2], replies[1::2]):
        if value is not None:
            yield key, max(ttl, 0), value
    batch.clear()


def _kind(path: str) -> str:
    """``rdb`` or ``jsonl`` from the file's first bytes; BackupError otherwise."""
    if os.path.isdir(path):
        raise BackupError(f"{path} is a directory, not a backup file")
    try:
        with open(path, "rb") as f:
            magic = f.read(5)
    except OSError as e:
        raise BackupError(f"cannot read {path}: {e.strerror or e}") from None
    if magic == b"REDIS":
        return "rdb"
    if magic[:2] == b"\x1f\x8b":
        return "jsonl"
    raise BackupError(f"{path} is neither a faktory backup (.jsonl.gz) nor an RDB snapshot")


def _unlink_under(r: _Redis, prefix: bytes, keep: Callable[[bytes], bool] = lambda k: False):
    batch = [k for k in _keys(r, prefix) if not keep(k)]
    for i in range(0, len(batch), BATCH):
        r("UNLINK", *batch[i : i + BATCH])


def load(
    data_dir: str,
    path: str,
    prefix: str = "fk:",
    replace: bool = False,
    report: Callable[[str], None] = lambda _: None,
    from_prefix: str | None = None,
    redis_server: str = "",
) -> int:
    """Restore a ``faktory-cli backup`` file or an hourly ``.rdb`` snapshot
    into a stopped server's data dir; returns the number of keys.

    Nothing is deleted before the whole file has been read and checked: a
    ``.jsonl.gz`` is read twice (first only to check every record, the
    namespace of every key and the trailer); the keys are then restored under
    ``<namespace>~restore:`` and, only when all are in, swapped in for the old
    ones in one MULTI/EXEC (atomic in Redis and in its AOF).  On any problem
    the staged keys go and the data dir holds exactly what it held."""
    kind = _kind(path)
    if kind == "jsonl":
        header = _header(path)
        source = header["prefix"]
        if from_prefix is None and source != prefix:
            raise BackupError(
                f"{path} was taken with namespace {source!r}, not {prefix!r}: pass "
                f"--namespace {source} to restore it as it was, or --from-namespace {source} "
                f"to move its keys under {prefix!r}"
            )
        if from_prefix is not None and source != from_prefix:
            raise BackupError(
                f"{path} was taken with namespace {source!r}, not --from-namespace {from_prefix!r}"
            )
        checked = sum(1 for _ in _records(path, source))
        report(f"checked {checked:,} keys of {path}")
        records = _records(path, source)
    else:
        # The data dir's own Redis wrote the hourly snapshots: read them with it.
        recorded = datadir.recorded(data_dir) if os.path.isdir(data_dir) else None
        pinned = recorded.path if recorded and os.access(recorded.path, os.X_OK) else ""
        records = _rdb_records(path, from_prefix or prefix, redis_server or pinned)
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    target = prefix.encode("utf-8", "surrogateescape")
    stage = target + STAGE.encode()
    count = size = 0
    with TemporaryRedis(data_dir, redis_server=redis_server) as r:
        _unlink_under(r, stage)  # what an interrupted restore left
        existing = sum(1 for k in _keys(r, target) if not k.startswith(stage))
        if existing and not replace:
            raise BackupError(
                f"{data_dir} already holds {existing} keys under {prefix!r}; "
                "pass --replace to delete them and restore the backup in their place"
            )
        try:
            batch: list[tuple] = []
            for rest, ttl, value in records:
                batch.append(("RESTORE", stage + rest, ttl, value, "REPLACE"))
                count += 1
                size += len(value)
                if len(batch) >= BATCH:
                    r.pipeline(batch)
                    batch.clear()
                if count % PROGRESS_EVERY == 0:
                    _progress(report, "restored", count, size)
            if batch:
                r.pipeline(batch)
        except BaseException:
            _unlink_under(r, stage)
            raise
        _swap(r, target, stage)
    _progress(report, "restore complete:", count, size)
    return count


def _swap(r: _Redis, target: bytes, stage: bytes) -> None:
    """Replace every key under ``target`` by the staged ones, in one transaction."""
    old = [k for k in _keys(r, target) if not k.startswith(stage)]
    staged = list(_keys(r, stage))
    commands: list[tuple] = [("MULTI",)]
    commands += [("UNLINK", *old[i : i + BATCH]) for i in range(0, len(old), BATCH)]
    commands += [("RENAME", k, target + k[len(stage) :]) for k in staged]
    commands.append(("EXEC",))
    r.pipeline(commands)  # a staged key that expired meanwhile: its RENAME errs alone


def cmd_restore(args) -> int:
    try:
        source = normalise(args.from_namespace) if args.from_namespace else None
        n = load(
            args.data_dir,
            args.file,
            normalise(args.namespace),
            args.replace,
            _stderr,
            source,
            args.redis_server,
        )
    except (BackupError, NamespaceError, OSError) as e:
        return _fail("restore", e)
    try:
        datadir.note_restore(args.data_dir, args.file, n, args.replace)  # for the audit log
    except OSError as e:
        _stderr(f"faktory-cli restore: could not note the restore for the audit log: {e}")
    print(json.dumps({"keys": n}) if args.json else f"restored {n} keys into {args.data_dir}")
    return 0


def restore_args(p) -> None:
    _common(p)
    p.add_argument("file", help="a faktory-cli backup (.jsonl.gz) or an hourly .rdb snapshot")
    p.add_argument(
        "--replace",
        action="store_true",
        help="put the backup in place of the data dir's jobs (swapped in once all is read)",
    )
    p.add_argument(
        "--from-namespace",
        help="the namespace the backup was taken with, when restoring it under another",
    )


def register_commands(command: Callable) -> None:
    """Add ``restore`` to faktory-cli (called by faktory.cli)."""
    command(
        "restore", "restore a backup into a stopped server's data dir", cmd_restore, restore_args
    )
