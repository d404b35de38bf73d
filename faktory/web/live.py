"""Self-refreshing pages: the polling control list pages and job pages show
next to their title.  ``faktory.js`` fetches the page's own URL at the
chosen interval and swaps in the table bodies and the parts marked
``data-live``, pausing while the operator works on the page (rows ticked,
text typed or selected, a JSON view open) so nothing they did is lost."""

from __future__ import annotations

from twisted.web.template import Tag

from .layout import Ctx, tags

MIN_MS, MAX_MS, DEFAULT_MS = 2000, 20000, 5000
SCANNED_MS = 20000  # pages drawn by scanning (filters, groups, searches) poll at most this often


def control(ctx: Ctx, scanned: bool = False) -> Tag:
    """The polling interval slider, shared with the dashboard (same stored
    interval), and where the page says it is paused.  A page that had to
    scan a queue or set to be drawn (``scanned``) refreshes at most every
    ``SCANNED_MS``, whatever the slider says, to spare Redis."""
    return tags.div(
        tags.span(class_="beacon", id="beacon", title=ctx._("Updated")),
        tags.label(
            ctx._("Refresh every"),
            " ",
            tags.input(
                type="range",
                min=str(MIN_MS),
                max=str(MAX_MS),
                step="1000",
                value=str(DEFAULT_MS),
                id="poll-interval",
                **{"aria-label": ctx._("Polling interval in milliseconds")},
            ),
            tags.output(
                ctx.t.duration(DEFAULT_MS / 1000),
                id="poll-interval-value",
                **{"for": "poll-interval"},
            ),
        ),
        tags.span(
            "",
            class_="live-state",
            role="status",
            **{
                "data-live-state": "1",
                "data-paused-text": ctx._("Paused while you work on this page"),
            },
        ),
        class_="slider live-control",
        id="live-control",
        **{"data-min-interval": str(SCANNED_MS if scanned else MIN_MS)},
    )
