"""Files on disk are the server user's alone.

The data dir holds every job (RDB, AOF), the config written for Redis, and
backups: readable by other local users they would give away business data.
At every start the data dir and what is in it are set back to 0700 (dirs)
and 0600 (files), even when an older version, an operator's ``cp`` or a
loose umask left them open; Redis runs with umask 077 so what it writes
later (a new RDB, Redis 7's ``appendonlydir/``) is born private.
"""

from __future__ import annotations

import os
import stat

from twisted.logger import Logger

log = Logger()

UMASK = 0o077  # for Redis and anything else writing into the data dir
DIR_MODE, FILE_MODE = 0o700, 0o600


def open_private(path: str, mode: str = "wb"):
    """``open(path, mode)`` for writing, created 0600 whatever the umask (an
    existing file is set to 0600 too)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return os.fdopen(fd, mode)


def make_private(data_dir: str) -> list[str]:
    """Set the data dir to 0700, its files to 0600 and its sub-directories
    (``appendonlydir``, ``backups``) and their files likewise, one level
    down; symlinks and sockets are left alone.  Returns the paths it could
    not change (logged: owned by another user)."""
    failed = []
    for path, is_dir in _entries(data_dir):
        want = DIR_MODE if is_dir else FILE_MODE
        try:
            st = os.lstat(path)
            if stat.S_IMODE(st.st_mode) & ~want:
                os.chmod(path, stat.S_IMODE(st.st_mode) & want)
        except FileNotFoundError:
            continue  # removed meanwhile (Redis rotating a temp file)
        except OSError as e:
            failed.append(path)
            log.warn(
                "Cannot make {path} private to this user ({why}); other local users may read it",
                path=path,
                why=e.strerror,
            )
    return failed


def _entries(data_dir: str):
    yield data_dir, True
    for top in _scan(data_dir):
        if top.is_dir(follow_symlinks=False):
            yield top.path, True
            for inner in _scan(top.path):
                if inner.is_file(follow_symlinks=False):
                    yield inner.path, False
        elif top.is_file(follow_symlinks=False):
            yield top.path, False


def _scan(path: str) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except OSError:
        return []
