"""The banner every page shows while Redis is in trouble (out of memory,
cannot write to disk: see ``faktory.pressure``), so an operator looking at
the UI learns at once why PUSHes are refused."""

from __future__ import annotations

from typing import Any

from twisted.web.template import tags


def banner(server: Any) -> Any:
    """A ``role="alert"`` block with one line per problem, or '' when all is well."""
    pressure = getattr(server, "pressure", None)
    problems = pressure.problems() if pressure is not None else []
    if not problems:
        return ""
    return tags.div(*(tags.p(text) for text in problems), class_="alert redis-alert", role="alert")
