"""The page for a URL that names nothing."""

from __future__ import annotations

from twisted.web.template import Tag

from ..layout import (
    Ctx,
    empty,
)


def not_found(ctx: Ctx, what: str) -> Tag:
    return empty(what)
