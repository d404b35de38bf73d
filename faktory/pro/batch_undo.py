"""Taking back a batch member whose PUSH failed after the batch counted it
(a later middleware refused the job, or it could not be stored), so the batch
does not wait forever for a job that does not exist."""

from __future__ import annotations

from twisted.internet import defer

from ..job import format_time
from .batch_scripts import _s, script

REMOVE_JOB = script("remove_job")


def remove_job(store, bid: str, jid: str, now: float) -> defer.Deferred:
    """Fires with (status, [queues that got a callback job])."""
    d = REMOVE_JOB(store.redis, (store.prefix, format_time(now), store.origin, bid, jid))
    return d.addCallback(lambda r: (_s(r[0]), [_s(q) for q in r[1:]]))
