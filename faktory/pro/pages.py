"""Small building blocks for the Pro features' web UI pages: the same
escaping ``twisted.web.template`` tags as the core pages (the web UI puts the
fragment inside its layout)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.web.template import Tag, tags

from ..web.layout import sentence


def table(headers: Iterable[Any], rows: Iterable[Iterable[Any]], css: str = "table") -> Tag:
    """A table with every cell escaped."""
    return tags.table(
        tags.thead(tags.tr(*[tags.th(str(h)) for h in headers])),
        tags.tbody(*[tags.tr(*[tags.td(str(c)) for c in row]) for row in rows]),
        class_=css,
    )


def with_code(text: str, **codes: str) -> list[Any]:
    """A translated sentence whose ``{placeholders}`` are ``<code>`` (config
    names stay out of the translation)."""
    return sentence(text, **{k: tags.code(v) for k, v in codes.items()})
