"""Undoing the PUSH middleware that finished when a later step fails.

A PUSH middleware may change things outside the job (a unique lock, a batch
count).  When a later middleware refuses the job, or storing it fails, the
ones that had finished are undone, last first, before the client gets the
error; the middleware that refused undoes its own work.  ``mark_step`` notes
on the exception which step raised it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from .awaitable import resolve

log = Logger()

STEP = "faktory_middleware_step"  # attribute set on the exception


def mark_step(error: Any, i: int) -> Any:
    """Note on an exception (or Failure) which middleware step raised it."""
    exc = error.value if isinstance(error, Failure) else error
    if not hasattr(exc, STEP):
        try:
            setattr(exc, STEP, i)
        except AttributeError:
            pass
    return error


class PushUndo:
    """The undo of each PUSH middleware (None for most), in chain order."""

    def __init__(self, custom: list[tuple[str, ...] | None]) -> None:
        self.undos: list[Callable[[dict], Any] | None] = []
        self.custom = custom  # the chain's custom keys, shared with the manager
        # (len(undos) when computed, whether a job without custom keys has an undo)
        self._for_all: tuple[int, bool] = (-1, False)

    def _applies(self, i: int, custom: Any) -> bool:
        keys = self.custom[i]
        return keys is None or (isinstance(custom, dict) and any(k in custom for k in keys))

    def wanted(self, job: dict) -> bool:
        """Whether some PUSH middleware that runs for this job has an undo."""
        custom = job.get("custom")
        if not isinstance(custom, dict) or not custom:  # most jobs: asked once per chain
            if self._for_all[0] != len(self.undos):
                self._for_all = (len(self.undos), self._wanted(None))
            return self._for_all[1]
        return self._wanted(custom)

    def _wanted(self, custom: Any) -> bool:
        return any(u is not None and self._applies(i, custom) for i, u in enumerate(self.undos))

    def errback(self, failure: Failure, job: dict) -> defer.Deferred:
        """Undo every step before the failing one (all of them when storing
        failed), then hand the failure on."""
        step = getattr(failure.value, STEP, len(self.undos))
        return defer.ensureDeferred(self.run(job, step)).addCallback(lambda _: failure)

    async def run(self, job: dict, step: int) -> None:
        custom = job.get("custom")
        for i in reversed(range(min(step, len(self.undos)))):
            undo = self.undos[i]
            if undo is None or not self._applies(i, custom):
                continue
            try:
                await resolve(defer.maybeDeferred(undo, job))
            except Exception:  # noqa: BLE001 - the other undos must still run
                log.failure("Undo of a PUSH middleware failed for job {jid}", jid=job.get("jid"))
