"""Extension hooks: what a plugin (built-in or third-party) may add to a server.

A plugin is an object providing ``IFaktoryPlugin``.  When the server is up
(Redis connected, manager, worker registry and protocol factory built), each
enabled plugin's ``setup(server)`` is called; it registers what it adds:

* middleware around PUSH/FETCH/ACK/FAIL: ``server.manager.use(chain, fn)``
* protocol verbs: ``server.factory.add_command("VERB", handler)``
* periodic work: ``server.add_task(name, period_seconds, fn)``
* web UI pages and nav links: ``server.add_web_page(WebPage(...))``

and may return a Deferred.  ``shutdown(server)`` runs when the server stops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zope.interface import Attribute, Interface


class IFaktoryPlugin(Interface):
    name = Attribute("Unique name; the config enables plugins by it.")

    def setup(server: Any) -> Any:
        """Register hooks on a running server; may return a Deferred."""

    def shutdown(server: Any) -> Any:
        """Release resources when the server stops; may return a Deferred."""


@dataclass
class WebPage:
    """An extra web UI page: shown in the nav as ``title``, served at
    ``/<path>``; ``render(request)`` returns (a Deferred of) an HTML fragment
    (str, already escaped) or a ``twisted.web.template`` element that the web
    UI puts inside its page layout."""

    path: str
    title: str
    render: Callable[[Any], Any]
    nav: bool = True
