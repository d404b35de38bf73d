"""Jobs an operator removed by hand (web UI, ``MUTATE``, ``faktory-cli``):
the ``removed`` middleware chain, so features that keep state for a job (the
unique lock) can let go of it, as ``settled`` lets them at ACK or death.

The Redis scripts that delete or kill jobs hand back, with their count, the
payloads a ``removed`` middleware wants (found by the same ``custom`` keys
the middleware was registered with, as a plain substring test inside Redis),
so jobs no feature cares about cost nothing and are never sent back.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from .errors import gather

if TYPE_CHECKING:
    from .manager import Manager

log = Logger()

DISCARD = "discard"  # deleted outright
KILL = "kill"  # moved to the dead set: it will not run again unless retried by hand


def probe(manager: Manager) -> str:
    """What the removing scripts hand back (``removed_wanted`` in Lua): ``''``
    nothing (no ``removed`` middleware), ``'*'`` every job, else ``'"key"'``
    needles separated by newlines."""
    wants = manager._custom["removed"]
    if not wants:
        return ""
    if None in wants:
        return "*"
    return "\n".join(dict.fromkeys(f'"{k}"' for keys in wants for k in keys))


async def notify(manager: Manager, payloads: list[bytes], action: str) -> None:
    """Run the ``removed`` chain for each job (concurrently: a "kill all" may
    hand back hundreds).  The jobs are already gone, so a middleware that
    fails is logged, never turned into the operator's error."""
    if not payloads:
        return
    pending = []
    for raw in payloads:
        try:
            job = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        if isinstance(job, dict):
            pending.append(_one(manager, job, action))
    await gather([defer.ensureDeferred(p) for p in pending])


async def _one(manager: Manager, job: dict, action: str) -> None:
    try:
        await manager._run("removed", job, action)
    except Exception:  # noqa: BLE001 - the job is removed; report, carry on
        log.failure("removed hook for job {jid}", jid=job.get("jid"))


def split(reply: list[Any], head: int) -> tuple[list[Any], list[bytes]]:
    """A removing script's reply: its ``head`` usual fields, then payloads."""
    return list(reply[:head]), list(reply[head:])
