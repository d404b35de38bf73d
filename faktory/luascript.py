"""Lua scripts: their sources live in ``.lua`` files shipped with the package
(``faktory/lua/`` for the core, ``faktory/pro/lua/`` for the Pro features),
one file per script, read with ``importlib.resources``.

A script names the shared fragments it needs on its first line::

    -- include: job throttle held

and ``load`` puts each fragment (itself possibly including others) once, in
that order, before the script's own text.  A fragment is looked up in the
script's own directory, then in ``faktory/lua/``; ``fragments`` replaces one
by name (the throttle feature puts its FETCH/ACK limits in this way).

Numbers the Python side owns (the dead-set TTL, the reservation limits...)
are never written in a ``.lua`` file: a script uses them by name and ``load``
declares the ones it uses as ``local NAME = value`` from ``constants``
(``CONSTANTS`` plus the caller's), so they come from one place in Python.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

import txredisapi
from twisted.internet import defer

from .job import DEAD_TTL, DEFAULT_RESERVE_FOR, MAX_RESERVE_FOR, MIN_RESERVE_FOR

# The core's numbers every script may use by name.
CONSTANTS: dict[str, int | float | str] = {
    "DEAD_TTL": DEAD_TTL,
    "DEFAULT_RESERVE_FOR": DEFAULT_RESERVE_FOR,
    "MIN_RESERVE_FOR": MIN_RESERVE_FOR,
    "MAX_RESERVE_FOR": MAX_RESERVE_FOR,
}

_INCLUDE = re.compile(r"\A--\s*include:([^\n]*)\n")
_CORE = "faktory"


def _read(package: str, name: str) -> str:
    return resources.files(package).joinpath("lua", name + ".lua").read_text(encoding="utf-8")


def _find(package: str, name: str) -> str:
    try:
        return _read(package, name)
    except FileNotFoundError:
        if package == _CORE:
            raise
        return _read(_CORE, name)


def source(
    name: str,
    package: str = _CORE,
    fragments: Mapping[str, str] | None = None,
    constants: Mapping[str, int | float | str] | None = None,
) -> str:
    """The full text of script ``name``: its fragments, then its own text,
    after ``local`` declarations of the constants it uses."""
    fragments = fragments or {}
    seen: set[str] = set()
    parts: list[str] = []

    def add(text: str) -> None:
        m = _INCLUDE.match(text)
        if m:
            for dep in m.group(1).split():
                if dep not in seen:
                    seen.add(dep)
                    add(fragments[dep] if dep in fragments else _find(package, dep))
            text = text[m.end() :]
        parts.append(text)

    add(_read(package, name))
    body = "".join(parts)
    values = {**CONSTANTS, **(constants or {})}
    used = [k for k in values if re.search(rf"\b{k}\b", body)]
    header = "".join(f"local {k} = {values[k]!r}\n" for k in used)
    return header + body


class Script:
    """A Lua script run by EVALSHA, loaded on first use or after a NOSCRIPT."""

    def __init__(self, source: str, name: str = "") -> None:
        self.name = name  # the .lua file's name, for ``Store.use_fragment``
        self.source = source.encode()
        self.sha = hashlib.sha1(self.source).hexdigest()

    def __call__(self, redis, args: Iterable[Any]) -> defer.Deferred:
        if type(args) is not tuple:
            args = tuple(args)
        d = redis.execute_command("EVALSHA", self.sha, 0, *args)
        return d.addErrback(self._noscript, redis, args)

    def _noscript(self, failure, redis, args: tuple) -> Any:
        failure.trap(txredisapi.ResponseError)
        if not str(failure.value).startswith("NOSCRIPT"):
            return failure
        return redis.execute_command("EVAL", self.source, 0, *args)


def load(
    name: str,
    package: str = _CORE,
    fragments: Mapping[str, str] | None = None,
    constants: Mapping[str, int | float | str] | None = None,
) -> Script:
    """``Script(source(...))``: the script ``lua/<name>.lua`` of ``package``."""
    return Script(source(name, package, fragments, constants), name)


def fragment(name: str, package: str = _CORE) -> str:
    """The text of one fragment file, to hand to ``load(fragments=...)``."""
    return _read(package, name)
