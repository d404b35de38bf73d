"""The body of each web UI page, as ``twisted.web.template`` tags (escaped
by construction).  Routes (``app.py``) fetch the data; these only draw it.

One module per page; the names are re-exported here, so routes say
``pages.queue(...)``."""

from __future__ import annotations

from .busy import busy
from .dashboard import HISTORY_DAYS, dashboard
from .debug import debug, debug_facts
from .job import job_actions, job_page
from .not_found import not_found
from .queues import QueueRow, queue, queues
from .sets import SET_KINDS, SetKind, SetQuery, entry_time, set_list

__all__ = [
    "HISTORY_DAYS",
    "QueueRow",
    "SET_KINDS",
    "SetKind",
    "SetQuery",
    "busy",
    "dashboard",
    "debug",
    "debug_facts",
    "entry_time",
    "job_actions",
    "job_page",
    "not_found",
    "queue",
    "queues",
    "set_list",
]
