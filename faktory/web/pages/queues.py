"""The Queues list and one queue's page."""

from __future__ import annotations

from dataclasses import dataclass

from twisted.web.template import Tag

from .. import display, queue_filter
from ..layout import (
    PER_PAGE,
    Ctx,
    args_cell,
    badge,
    button,
    check_all,
    empty,
    pager,
    post_form,
    table,
    tags,
    when,
)
from ..queue_filter import QueueFilter


def _details(ctx: Ctx, job: dict) -> Tag:
    """A queued job's whole JSON, folded away under its row."""
    return tags.details(tags.summary(ctx._("JSON")), tags.pre(display.pretty(job), class_="json"))


# -- queues -------------------------------------------------------------------
@dataclass
class QueueRow:
    name: str
    size: int
    latency: float
    paused: bool


def queues(ctx: Ctx, rows: list[QueueRow]) -> Tag:
    if not rows:
        return empty(ctx._("No queues yet: push a job and its queue appears here."))
    trs = []
    for r in rows:
        status = badge(ctx._("paused"), "warn") if r.paused else badge(ctx._("active"), "ok")
        toggle = (
            button(ctx._("Resume"), "resume", kind="primary")
            if r.paused
            else button(ctx._("Pause"), "pause", kind="")
        )
        actions = post_form(
            ctx,
            f"/queues/{r.name}",
            toggle,
            button(
                ctx._("Clear"),
                "delete",
                kind="danger",
                confirm=ctx.ngettext(
                    "Delete {n} job in queue {queue} and remove the queue?",
                    "Delete all {n} jobs in queue {queue} and remove the queue?",
                    r.size,
                    queue=r.name,
                ),
            ),
            class_="inline",
        )
        trs.append(
            tags.tr(
                tags.td(tags.a(r.name, href=ctx.url(f"/queues/{r.name}")), " ", status),
                tags.td(ctx.number(r.size), class_="num"),
                tags.td(ctx.t.duration(r.latency) if r.size else "-", class_="num"),
                tags.td(actions, class_="actions"),
                **{"data-queue": r.name},
            )
        )
    return table([ctx._("Queue"), ctx._("Size"), ctx._("Latency"), ctx._("Actions")], trs)


def queue(
    ctx: Ctx,
    name: str,
    total: int,
    entries: list[tuple[int, bytes, dict]],
    page: int,
    paused: bool,
    token_of,
    filters: QueueFilter | None = None,
    more: bool = False,
) -> Tag:
    """``filters`` set: ``entries`` are matches (``total`` is the queue's
    size, ``more`` whether matches follow this page)."""
    filters = filters or QueueFilter()
    if filters:
        count = ctx._("Matching jobs (of {n})", n=ctx.number(total))
    else:
        count = ctx.ngettext("{n} job.", "{n} jobs.", total)
    head = tags.p(
        count,
        " ",
        ctx._("Lowest priority first, newest first within a priority: the last row runs next."),
        " ",
        badge(ctx._("paused"), "warn") if paused else "",
        class_="muted",
        **{"data-live": "summary"},
    )
    path = f"/queues/{name}"
    head = tags.div(head, queue_filter.form(ctx, path, filters), class_="list-head")
    if not entries:
        if filters:
            return tags.div(head, empty(ctx._("No jobs match this filter.")))
        return tags.div(head, empty(ctx._("This queue is empty.")))
    trs = []
    for priority, raw, job in entries:
        trs.append(
            tags.tr(
                tags.td(
                    tags.input(
                        type="checkbox",
                        name="bkey",
                        value=token_of(priority, raw),
                        **{"aria-label": ctx._("Select {jid}", jid=job.get("jid", ""))},
                    )
                ),
                tags.td(tags.code(str(job.get("jid", "")))),
                tags.td(display.job_type(job)),
                tags.td(ctx.number(priority), class_="num"),
                args_cell(job),
                tags.td(when(ctx, display.timestamp(job.get("enqueued_at")))),
                tags.td(_details(ctx, job)),
            )
        )
    last = (total + PER_PAGE - 1) // PER_PAGE
    form = post_form(
        ctx,
        f"/queues/{name}",
        tags.div(
            button(
                ctx._("Delete selected"),
                "delete_selected",
                kind="danger",
                confirm=ctx._("Delete the selected jobs?"),
            ),
            class_="toolbar",
        ),
        table(
            [
                check_all(ctx),
                ctx._("JID"),
                ctx._("Job"),
                ctx._("Priority"),
                ctx._("Arguments"),
                ctx._("Enqueued"),
                "",
            ],
            trs,
        ),
        hidden={"page": page},
    )
    if filters:
        return tags.div(head, form, pager(ctx, path, page, None, more, filters.params()))
    return tags.div(head, form, pager(ctx, path, page, last, False))
