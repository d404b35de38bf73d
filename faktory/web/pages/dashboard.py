"""The dashboard: totals, the history chart and Redis facts."""

from __future__ import annotations

import json

from twisted.web.template import Tag

from ..layout import (
    Ctx,
    tags,
)

HISTORY_DAYS = (1, 7, 30, 90, 180)


# -- dashboard ----------------------------------------------------------------
def _stat_box(label: str, value: str, key: str) -> Tag:
    return tags.div(
        tags.div(value, class_="value", **{"data-server": key}),
        tags.div(label, class_="label"),
        class_="box",
    )


def dashboard(ctx: Ctx, history: list[dict], days: int) -> Tag:
    srv = ctx.info["server"]
    boxes = tags.div(
        _stat_box(ctx._("Version"), srv["faktory_version"], "faktory_version"),
        _stat_box(ctx._("Uptime"), ctx.t.duration(srv["uptime"]), "uptime"),
        _stat_box(ctx._("Connections"), ctx.number(srv["connections"]), "connections"),
        _stat_box(
            ctx._("Memory"), ctx._("{n} MB", n=ctx.number(srv["used_memory_mb"])), "used_memory_mb"
        ),
        _stat_box(ctx._("Commands"), ctx.number(srv["command_count"]), "command_count"),
        class_="boxes",
    )
    slider = tags.label(
        ctx._("Polling interval"),
        " ",
        tags.input(
            type="range",
            min="2000",
            max="20000",
            step="1000",
            value="5000",
            id="poll-interval",
            **{"aria-label": ctx._("Polling interval in milliseconds")},
        ),
        tags.output(ctx.t.duration(5), id="poll-interval-value", **{"for": "poll-interval"}),
        class_="slider",
    )
    live = tags.section(
        tags.div(
            tags.h2(
                tags.span(class_="beacon", id="beacon", title=ctx._("Updated")), ctx._("Real-time")
            ),
            slider,
            class_="card-head",
        ),
        tags.div(
            class_="chart",
            id="live-chart",
            role="img",
            **{
                "aria-label": ctx._("Jobs processed and failed per polling interval"),
                "data-stats-url": ctx.url("/stats"),
            },
        ),
        class_="card",
    )
    choices = [
        tags.a(
            ctx.ngettext("{n} day", "{n} days", d),
            href=ctx.url("/", days=d),
            class_="chip active" if d == days else "chip",
            **({"aria-current": "true"} if d == days else {}),
        )
        for d in HISTORY_DAYS
    ]
    series = [
        {"date": h["date"], "processed": h["processed"], "failed": h["failed"]}
        for h in reversed(history)
    ]
    processed = sum(h["processed"] for h in history)
    failed = sum(h["failed"] for h in history)
    hist = tags.section(
        tags.div(tags.h2(ctx._("History")), tags.div(*choices, class_="chips"), class_="card-head"),
        tags.p(
            ctx.ngettext(
                "{processed} processed, {failed} failed in the last {n} day.",
                "{processed} processed, {failed} failed in the last {n} days.",
                days,
                processed=ctx.number(processed),
                failed=ctx.number(failed),
            ),
            class_="muted",
        ),
        tags.div(
            class_="chart",
            id="history-chart",
            role="img",
            **{
                "aria-label": ctx.ngettext(
                    "Jobs processed and failed per day, last {n} day",
                    "Jobs processed and failed per day, last {n} days",
                    days,
                ),
                "data-history": json.dumps(series),
            },
        ),
        class_="card",
    )
    return tags.div(boxes, live, hist, class_="dashboard")
