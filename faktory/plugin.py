"""Extension hooks: what a plugin (built-in or third-party) may add to a server.

A plugin is an object providing ``IFaktoryPlugin``, found by
``twisted.plugin.getPlugins`` in a ``faktory_plugins/<module>.py`` drop-in (or
``twisted/plugins``) and run when the config enables it by name (see
``faktory.plugins``).  Once the server is up (Redis connected, manager, worker
registry and protocol factory built, listeners not yet open), each enabled
plugin's ``setup(server)`` is called; it registers what it adds:

* middleware: ``server.manager.use(chain, fn)``; ``fn`` may return a Deferred or
  be a coroutine function:

  - ``"push"``  ``fn(job)`` before a job is stored: may change the job dict,
    or raise ``faktory.errors.Halt(msg, code)`` to refuse it (the client gets
    ``-<code> <msg>``);
  - ``"fetch"`` ``fn(job)`` after a job is reserved, before it is sent: may
    change what the worker receives, raise ``Halt`` (the job goes back to its
    queue, the worker gets the error) or ``faktory.errors.Discard`` (the job
    is dropped and the next one fetched);
  - ``"ack"``   ``fn(job)`` after a job was acknowledged: observe only;
  - ``"fail"``  ``fn(job, failure)`` before a failure is recorded: may change
    the ``failure`` dict (e.g. ``retry_count``) or observe;
  - ``"settled"`` ``fn(job, outcome, reservation)`` once a reservation is
    settled (exactly once, even with several servers): ``outcome`` is
    ``"ack"``, ``"retry"``, ``"dead"``, ``"drop"`` (failed, retry 0) or
    ``"discard"`` (dropped at fetch); ``reservation`` has ``reserved_at``.
  - ``"removed"`` ``fn(job, action)`` after an operator deleted (``"discard"``)
    or killed (``"kill"``) a job by hand: web UI, ``MUTATE``, ``faktory-cli``.

  ``use(chain, fn, custom=("key", ...))`` runs ``fn`` only for jobs whose
  ``custom`` object has one of those keys: every other job skips it without
  a call (and FETCH does not even decode it), so features keyed on custom
  fields cost nothing on the jobs that do not use them.

* protocol verbs: ``server.factory.add_command("VERB", handler)``;
* periodic work: ``server.add_task(name, period_seconds, fn)``;
* web UI pages and nav links: ``server.add_web_page(WebPage(...))``;

and may return a Deferred or be a coroutine.  An optional ``prepare(server)``
runs before anything starts (the built-in Redis is not spawned yet): the
place to check settings or protect that Redis (``server.redis_process``).
``shutdown(server)`` runs when
the server stops, in reverse setup order, before Redis is disconnected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.plugin import IPlugin
from zope.interface import Attribute


class IFaktoryPlugin(IPlugin):
    """Extends ``IPlugin`` because ``getPlugins`` only collects objects that
    provide it: ``@implementer(IFaktoryPlugin)`` on the class is enough."""

    name = Attribute("Unique name; the config enables plugins by it.")
    description = Attribute("Optional one-line summary for --list-plugins.")

    def setup(server: Any) -> Any:
        """Register hooks on a running server; may return a Deferred."""

    def shutdown(server: Any) -> Any:
        """Release resources when the server stops; may return a Deferred."""


@dataclass
class WebPage:
    """An extra web UI page: shown in the nav as ``title``, served at
    ``/<path>``; ``render(request)`` returns (a Deferred of) an HTML fragment
    (str, already escaped) or a ``twisted.web.template`` element that the web
    UI puts inside its page layout.  A ``raw`` page (e.g. the metrics plugin's
    Prometheus ``/metrics``) answers GET/HEAD with what ``render`` returns,
    as is: the render sets its own headers."""

    path: str
    title: str
    render: Callable[[Any], Any]
    nav: bool = True
    raw: bool = False


def plugin_settings(server: Any, name: str) -> dict[str, Any]:
    """The plugin's own ``[plugins.<name>]`` config table (empty if absent), so
    every plugin reads its settings from the one config the server loaded."""
    table = server.settings.config.get("plugins", {})
    value = table.get(name, {}) if isinstance(table, dict) else {}
    return value if isinstance(value, dict) else {}
