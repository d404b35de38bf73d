"""Lua scripts: their sources live in ``.lua`` files shipped with the package
(``faktory/lua/`` for the core, ``faktory/pro/lua/`` for the Pro features),
one file per script, read with ``importlib.resources``.

A script names the shared fragments it needs on its first line::

    -- include: job throttle held

and ``load`` puts each fragment (itself possibly including others) once, in
that order, before the script's own text.  A fragment is looked up in the
script's own directory, then in ``faktory/lua/``; ``fragments`` replaces one
by name (the throttle feature puts its FETCH/ACK limits in this way).

Numbers the Python side owns (the dead-set TTL, the reservation limits, the
priority range, the batch TTLs...) are never written in a ``.lua`` file: a
script uses them by an UPPER_CASE name, and ``load`` puts ``local NAME =
value`` lines for the names it uses at the top of the composed text, taking
the values from ``CONSTANTS`` (the core's) plus the caller's ``constants``
(a feature's own, e.g. ``pro.batch_scripts``).  A name that is neither
provided nor declared by a ``local`` in the script is refused at load (the
server does not start), and ``tests/test_store.py`` fails if a ``.lua`` file
writes one of the provided numbers as a bare literal.

Why at load time rather than in ARGV: the values are fixed for the process,
so they belong in the script's text; every EVALSHA then carries only the
arguments that change per call (FETCH and ACK stay short), and the SHA of a
script changes with its constants, so two servers with different values
never run each other's cached copy.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

import txredisapi
from twisted.internet import defer

from . import job

# How long a FETCH's "someone waits on this queue" flag lives (``wait:<queue>``,
# so a PUSH publishes a wake-up): longer than a FETCH waits (manager.FETCH_WAIT).
WAIT_FLAG_MS = 3000
SCAN_STEP = 100  # members one ZSCAN step of a set action reads (MUTATE, group actions)
REAP_STEP = 1000  # dead worker records one sweep removes at most

# The core's numbers every script may use by name.
CONSTANTS: dict[str, int | float | str] = {
    "DEAD_TTL": job.DEAD_TTL,
    "DEFAULT_RESERVE_FOR": job.DEFAULT_RESERVE_FOR,
    "MIN_RESERVE_FOR": job.MIN_RESERVE_FOR,
    "MAX_RESERVE_FOR": job.MAX_RESERVE_FOR,
    "DEFAULT_PRIORITY": job.DEFAULT_PRIORITY,
    "MIN_PRIORITY": job.MIN_PRIORITY,
    "MAX_PRIORITY": job.MAX_PRIORITY,
    "WAIT_FLAG_MS": WAIT_FLAG_MS,
    "SCAN_STEP": SCAN_STEP,
    "REAP_STEP": REAP_STEP,
}

_INCLUDE = re.compile(r"\A--\s*include:([^\n]*)\n")
# Lua comments and short strings, blanked before looking for names.
_NOISE = re.compile(r"--[^\n]*|'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")
_NAME = re.compile(r"\b[A-Z][A-Z0-9_]+\b")
_LOCAL = re.compile(r"\blocal[ \t]+([\w \t,]+?)[ \t]*=")
_LUA_GLOBALS = {"ARGV", "KEYS"}
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
    return _text(*_compose(name, package, fragments, constants))


def _text(used: Mapping[str, int | float | str], body: str) -> str:
    return "".join(f"local {k} = {v!r}\n" for k, v in used.items()) + body


def _compose(
    name: str,
    package: str,
    fragments: Mapping[str, str] | None,
    constants: Mapping[str, int | float | str] | None,
) -> tuple[dict[str, int | float | str], str]:
    """The constants script ``name`` uses (name -> value) and its text."""
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
    code = _NOISE.sub(" ", body)
    declared = {n.strip() for m in _LOCAL.finditer(code) for n in m.group(1).split(",")}
    names = set(_NAME.findall(code)) - declared - _LUA_GLOBALS
    missing = sorted(names - values.keys())
    if missing:
        raise LookupError(
            f"Lua script {package}:{name} uses {', '.join(missing)}, "
            "which the loader does not provide (see faktory.luascript)"
        )
    return {k: v for k, v in values.items() if k in names}, body


class Script:
    """A Lua script run by EVALSHA, loaded on first use or after a NOSCRIPT."""

    def __init__(
        self, source: str, name: str = "", constants: Mapping[str, int | float | str] | None = None
    ) -> None:
        self.name = name  # the .lua file's name, for ``Store.use_fragment``
        self.constants = dict(constants or {})  # what ``load`` declared at the top
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
    used, body = _compose(name, package, fragments, constants)
    return Script(_text(used, body), name, used)


def fragment(name: str, package: str = _CORE) -> str:
    """The text of one fragment file, to hand to ``load(fragments=...)``."""
    return _read(package, name)
