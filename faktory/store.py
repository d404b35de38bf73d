"""Every Redis key the core uses, and the calls of its Lua scripts (their
sources are the ``faktory/lua/*.lua`` files, see ``faktory.luascript``).
Returns Python values; knows nothing of RESP or of lifecycle rules.

Layout (all keys under one prefix, ``fk:`` by default, so FLUSH, backups and a
shared Redis stay clean):

=========================  =====  ===========================================
``queues``                 SET    known queue names
``paused``                 SET    paused queue names
``q:<name>:<p>``           LIST   jobs of priority p (1-9); LPUSH in, RPOP out
``qp:<name>``              ZSET   priorities of ``<name>`` that hold jobs
``scheduled``              ZSET   score = ``at``; member = job JSON
``retries``                ZSET   score = next retry; member = job JSON
``dead``                   ZSET   score = expiry (death + 180 days)
``working``                HASH   jid -> reservation JSON
``working:exp``            ZSET   jid scored by reservation expiry
``held:<jid>``             LIST   "<p> <queue> <job>" of copies of a jid fetched
                                  while another copy was reserved (see FETCH)
``held``                   ZSET   jids with held copies, by when last checked
``stat:processed[:day]``   STR    counters (and daily history, kept HISTORY_TTL:
``stat:failures[:day]``    STR    see ``faktory.retention``)
``wait:<name>``            STR    set (3 s TTL) while some server has a FETCH
                                  waiting on the queue; PUSH publishes only then
``notify``                 chan   pub/sub channel carrying ``<origin> <queue>``
``throttle:conf``          HASH   queue -> "concurrency timeout worker rate period"
                                  (written by ``faktory.pro.throttle``)
``throttle:<q>``           ZSET   jids holding a concurrency slot, by lock expiry
``throttle:<q>:w:<wid>``   ZSET   the same, per worker process
``throttle:<q>:r:<n>``     STR    jobs fetched in rate window n (TTL: the period)
``throttle:held``          HASH   jid -> "<queue> <wid>" of a job holding slots
=========================  =====  ===========================================

FETCH walks the requested queues in order and pops from the highest non-empty
priority: O(log 9) per job, FIFO within a priority, nothing scanned.  Every
transition is one script, so two servers sharing a Redis cannot both take a
job or lose one.
"""

from __future__ import annotations

from .luascript import Script
from .storage.base import HISTORY_DAYS, HISTORY_TTL, script
from .storage.queues import QueueStorage
from .storage.sets import SetStorage
from .storage.stats import StatsStorage
from .storage.workers import WorkerStorage
from .storage.working import WorkingStorage

__all__ = ["HISTORY_DAYS", "HISTORY_TTL", "Script", "Store"]


class Store(QueueStorage, WorkingStorage, SetStorage, WorkerStorage, StatsStorage):
    """Talks Redis for the manager and the admin API: one part per structure
    (``faktory.storage``), their scripts in ``faktory/lua``."""

    SETS = ("scheduled", "retries", "dead")

    def __init__(self, redis, prefix: str = "fk:", origin: str = "-") -> None:
        self.redis = redis
        self.prefix = prefix
        # Tells our own notifications apart from other servers' (see manager).
        self.origin = origin
        self._fragments: dict[str, str] = {}

    def use_fragment(self, name: str, text: str) -> None:
        """Build this store's scripts with ``text`` in place of the Lua fragment
        ``name`` (the throttle feature's limits go into FETCH, ACK, FAIL and
        RELEASE this way, in the same atomic step as the pop or the ACK)."""
        self._fragments[name] = text
        for attr in dir(type(self)):
            current = getattr(type(self), attr)
            if isinstance(current, Script) and current.name:
                rebuilt = script(current.name, self._fragments)
                if rebuilt.sha != current.sha:
                    setattr(self, attr, rebuilt)

    def key(self, name: str) -> str:
        return self.prefix + name
