"""The operator audit log: every action that changes jobs, queues or workers
(over the work protocol, the web UI or ``faktory-cli``) is one info line
``Operator action by <who>: <what>`` through ``twisted.logger``, in the
``faktory.audit`` namespace, so it can be filtered or shipped on its own."""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

log = Logger(namespace="faktory.audit")


def audit(who: str, what: str, /, **fields: Any) -> None:
    """Log one operator action; ``what`` is a format string over ``fields``."""
    log.info("Operator action by {operator}: " + what, operator=who, **fields)


def web_user(request) -> str:
    """The web UI's actor: Basic-auth user name (any name is accepted, the
    password counts) and the client address."""
    try:
        user = (request.getUser() or b"").decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - a malformed header names nobody
        user = ""
    peer = request.getClientAddress()
    host = getattr(peer, "host", None) or "unix"
    forwarded = request.getHeader(b"x-forwarded-for")
    via = f" via proxy for {forwarded.decode('latin-1')[:100]}" if forwarded else ""
    return f"web user {user or '-'!r} from {host}{via}"
