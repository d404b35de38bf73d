"""Small HTML helpers for the Pro features' web UI pages (fragments the web
UI puts inside its layout)."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any


def table(headers: Iterable[str], rows: Iterable[Iterable[Any]], css: str = "table") -> str:
    """An HTML table with every cell escaped."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def with_code(text: str, **codes: str) -> str:
    """A translated sentence as HTML: escaped, its ``{placeholders}`` filled
    with ``<code>`` (config names stay out of the translation)."""
    return html.escape(text).format(
        **{k: f"<code>{html.escape(v)}</code>" for k, v in codes.items()}
    )
