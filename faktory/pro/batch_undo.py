"""Taking back a batch member whose PUSH failed after the batch counted it
(a later middleware refused the job, or it could not be stored), so the batch
does not wait forever for a job that does not exist."""

from __future__ import annotations

from twisted.internet import defer

from ..job import format_time
from ..store import Script
from .batch_scripts import _LIB, _s

# ARGV[4..]: bid, jid.  Only a member still pushed-not-run ('p') is removed.
REMOVE_JOB = Script(
    _LIB
    + """
local bid, jid = ARGV[4], ARGV[5]
local k = bkey(bid)
if redis.call('EXISTS', k) == 0 then return {'nobatch'} end
if redis.call('HGET', k .. ':jobs', jid) ~= 'p' then return fired end
redis.call('HDEL', k .. ':jobs', jid)
redis.call('HINCRBY', k, 'total', -1)
redis.call('HINCRBY', k, 'pending', -1)
redis.call('HINCRBY', k, 'unrun', -1)
refresh(bid)
evaluate(bid)
return fired
"""
)


def remove_job(store, bid: str, jid: str, now: float) -> defer.Deferred:
    """Fires with (status, [queues that got a callback job])."""
    d = REMOVE_JOB(store.redis, (store.prefix, format_time(now), store.origin, bid, jid))
    return d.addCallback(lambda r: (_s(r[0]), [_s(q) for q in r[1:]]))
