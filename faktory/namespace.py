"""The namespace: the prefix of every Redis key one deployment owns.

FLUSH, backups and restore act on "every key under the prefix", so two
deployments sharing a Redis must have prefixes of which neither starts the
other: ``fk`` beside ``fk:`` or ``fk:`` beside ``fk:eu:`` would let one
deployment's FLUSH delete the other's jobs.  A namespace therefore always ends
with ``:`` (``fk`` is read as ``fk:``), and every server records its namespace
in the Redis (``REGISTRY``) and refuses to start beside an overlapping one.
"""

from __future__ import annotations

from typing import Any

REGISTRY = "faktory:namespaces"  # SET of the namespaces in use on this Redis
# A registered namespace counts as in use while one of these keys exists.
_LIVE_KEYS = (
    "queues",
    "stat:processed",
    "stat:failures",
    "workers",
    "scheduled",
    "retries",
    "dead",
)
_GLOB = {c: "\\" + c for c in "\\*?[]^"}


class NamespaceError(ValueError):
    """A namespace that cannot be used; the text says why."""


def normalise(namespace: str) -> str:
    """``namespace`` ending with ``:``; NamespaceError for an empty one or
    one with spaces or control characters."""
    if not isinstance(namespace, str) or not namespace.strip(":"):
        raise NamespaceError(f"namespace {namespace!r} must name something, e.g. fk:")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in namespace):
        raise NamespaceError(f"namespace {namespace!r} must not hold spaces or control characters")
    return namespace if namespace.endswith(":") else namespace + ":"


def glob_escape(prefix: str | bytes) -> str:
    """``prefix`` as a literal in a Redis MATCH glob (``fk[1]:`` matches itself only)."""
    text = prefix.decode("utf-8", "surrogateescape") if isinstance(prefix, bytes) else prefix
    return "".join(_GLOB.get(c, c) for c in text)


def overlaps(a: str, b: str) -> bool:
    return a != b and (a.startswith(b) or b.startswith(a))


async def claim(redis: Any, namespace: str) -> None:
    """Record ``namespace`` in the Redis's registry; NamespaceError if an
    overlapping namespace there still holds keys (a stale entry is dropped)."""
    members = await redis.execute_command("SMEMBERS", REGISTRY)
    for raw in members or ():
        other = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else str(raw)
        if not overlaps(namespace, other):
            continue
        live = await redis.execute_command("EXISTS", *(other + k for k in _LIVE_KEYS))
        if int(live):
            raise NamespaceError(
                f"namespace {namespace!r} overlaps {other!r}, already used on this Redis: "
                "a FLUSH or restore of one would touch the other's keys; choose a namespace "
                "that neither starts nor is started by another"
            )
        await redis.execute_command("SREM", REGISTRY, other)
    await redis.execute_command("SADD", REGISTRY, namespace)
