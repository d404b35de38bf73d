"""The Retries, Scheduled and Dead pages: one page over the three sorted sets, told apart by their ``SetKind``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.web.template import Tag

from ...job import DEAD_TTL
from .. import display
from ..i18n import N_
from ..layout import (
    PER_PAGE,
    Ctx,
    args_cell,
    button,
    check_all,
    empty,
    job_href,
    pager,
    post_form,
    table,
    tags,
    when,
)


# -- retries, scheduled, dead -------------------------------------------------------
@dataclass
class SetKind:
    name: str  # Redis set
    path: str  # URL
    title: str
    when_label: str
    default_reverse: bool
    bulk: tuple[tuple[str, str, str, str], ...]  # (label, row label, action, kind)
    empty_text: str
    all_label: str  # the whole-set button of bulk[0]


# Labels are marked here and translated where drawn (ctx._).
SET_KINDS = {
    "retries": SetKind(
        "retries",
        "/retries",
        N_("Retries"),
        N_("Next retry"),
        False,
        (
            (N_("Retry now"), N_("Retry"), "retry", "primary"),
            (N_("Delete"), N_("Delete"), "delete", "danger"),
            (N_("Kill"), N_("Kill"), "kill", ""),
        ),
        N_("No retries were found."),
        N_("Retry all"),
    ),
    "scheduled": SetKind(
        "scheduled",
        "/scheduled",
        N_("Scheduled"),
        N_("When"),
        False,
        (
            (N_("Add to queue"), N_("Enqueue"), "add_to_queue", "primary"),
            (N_("Delete"), N_("Delete"), "delete", "danger"),
        ),
        N_("No scheduled jobs were found."),
        N_("Add all to queue"),
    ),
    "dead": SetKind(
        "dead",
        "/morgue",
        N_("Dead"),
        N_("Died"),
        True,
        (
            (N_("Retry now"), N_("Retry"), "retry", "primary"),
            (N_("Delete"), N_("Delete"), "delete", "danger"),
        ),
        N_("No dead jobs were found."),
        N_("Retry all"),
    ),
}


def _confirm(ctx: Ctx, action: str, one: bool) -> str:
    """Destructive actions ask first; putting jobs back to work does not."""
    if action == "delete":
        if one:
            return ctx._("Delete this job? This cannot be undone.")
        return ctx._("Delete the selected jobs? This cannot be undone.")
    if action == "kill":
        if one:
            return ctx._("Kill this job? It moves to the Dead set without further retries.")
        return ctx._("Kill the selected jobs? They move to the Dead set without further retries.")
    return ""


def entry_time(kind: SetKind, score: float) -> float:
    """When an entry matters to people: retry/run time, or time of death."""
    return score - DEAD_TTL if kind.name == "dead" else score


def _error_text(job: dict) -> str:
    failure = job.get("failure") or {}
    if not isinstance(failure, dict) or not failure:
        return ""
    return f"{failure.get('errtype', '')}: {failure.get('message', '')}"


@dataclass
class SetQuery:
    page: int
    reverse: bool
    jobtype: str
    text: str

    def params(self, kind: SetKind) -> dict[str, str]:
        out = {"jobtype": self.jobtype, "q": self.text}
        if self.reverse != kind.default_reverse:
            out["order"] = "desc" if self.reverse else "asc"
        return out


def set_list(
    ctx: Ctx,
    kind: SetKind,
    q: SetQuery,
    total: int | None,
    size: int,
    entries: list[tuple[str, bytes, dict]],
    more: bool,
    extra: Any = "",
) -> Tag:
    """``extra`` goes at the end of the list head (e.g. ``web.groups``' links)."""
    params = q.params(kind)
    filtered = bool(q.jobtype or q.text)
    flip = "asc" if q.reverse else "desc"
    arrow = " ↓" if q.reverse else " ↑"
    sort_link = tags.a(
        ctx._(kind.when_label) + arrow,
        href=ctx.url(kind.path, **dict(params, order=flip)),
        title=ctx._("Newest first") if not q.reverse else ctx._("Oldest first"),
        class_="sort",
    )
    filters = tags.form(
        tags.input(
            type="search",
            name="q",
            value=q.text,
            placeholder=ctx._("Text in the job…"),
            **{"aria-label": ctx._("Filter by text")},
        ),
        tags.input(
            type="text",
            name="jobtype",
            value=q.jobtype,
            placeholder=ctx._("Job type"),
            **{"aria-label": ctx._("Filter by job type")},
        ),
        *(
            [tags.input(type="hidden", name="order", value=params["order"])]
            if "order" in params
            else []
        ),
        tags.button(ctx._("Filter"), type="submit", class_="btn"),
        tags.a(ctx._("Clear"), href=ctx.url(kind.path), class_="btn link") if filtered else "",
        method="get",
        action=ctx.url(kind.path),
        class_="filters",
        role="search",
    )
    if filtered:
        summary = ctx._("Matching jobs (of {n})", n=ctx.number(size))
    else:
        summary = ctx.ngettext("{n} job", "{n} jobs", size)
    if not entries:
        return tags.div(
            tags.div(tags.p(summary, class_="muted"), filters, extra, class_="list-head"),
            empty(ctx._("No jobs match this filter.") if filtered else ctx._(kind.empty_text)),
        )
    rows: list[Tag] = []
    row_forms: list[Tag] = []
    back = ctx.url(kind.path, **params, page=q.page)
    for key, _raw, job in entries:
        score_text, _, jid = key.partition("|")
        score = float(score_text)
        href = job_href(ctx, jid, kind.name, score_text)
        failure = job.get("failure") if isinstance(job.get("failure"), dict) else {}
        cells = [
            tags.td(
                tags.input(
                    type="checkbox",
                    name="key",
                    value=key,
                    **{"aria-label": ctx._("Select {jid}", jid=job.get("jid", ""))},
                )
            ),
            tags.td(tags.a(when(ctx, entry_time(kind, score)), href=href)),
        ]
        if kind.name == "retries":
            cells.append(tags.td(ctx.number(failure.get("retry_count", 0)), class_="num"))
        queue_name = str(job.get("queue", ""))
        cells += [
            tags.td(tags.a(queue_name, href=ctx.url(f"/queues/{queue_name}"))),
            tags.td(tags.a(display.job_type(job), href=href)),
            args_cell(job),
        ]
        if kind.name != "scheduled":
            cells.append(tags.td(_error_text(job), class_="error"))
        # Row buttons submit their own small form (HTML forms cannot nest).
        form_id = f"row-{len(rows)}"
        row_forms.append(post_form(ctx, kind.path, hidden={"key": key, "return": back}, id=form_id))
        cells.append(
            tags.td(
                *[
                    button(
                        ctx._(short),
                        action,
                        kind=f"sm {k}",
                        confirm=_confirm(ctx, action, True),
                        form=form_id,
                        title=ctx._("{action}: this job", action=ctx._(label)),
                    )
                    for label, short, action, k in kind.bulk
                ],
                class_="actions row-actions",
            )
        )
        rows.append(tags.tr(*cells, **{"data-jid": str(job.get("jid", ""))}))
    headers: list[Any] = [check_all(ctx), sort_link]
    if kind.name == "retries":
        headers.append(ctx._("Retries"))
    headers += [ctx._("Queue"), ctx._("Job"), ctx._("Arguments")]
    if kind.name != "scheduled":
        headers.append(ctx._("Error"))
    headers.append("")
    bulk = [
        button(ctx._(label), action, kind=k, confirm=_confirm(ctx, action, False))
        for label, _short, action, k in kind.bulk
    ]
    form = post_form(
        ctx,
        kind.path,
        tags.div(tags.span(ctx._("Selected:"), class_="muted"), *bulk, class_="toolbar"),
        table(headers, rows),
        hidden={"return": back},
    )
    all_form = ""
    if not filtered:
        first = kind.bulk[0]
        all_form = post_form(
            ctx,
            kind.path,
            button(
                ctx._(kind.all_label),
                first[2],
                kind="",
                confirm=ctx.ngettext(
                    "{action}: {n} job?", "{action}: all {n} jobs?", size, action=ctx._(first[0])
                ),
            ),
            button(
                ctx._("Delete all"),
                "delete",
                kind="danger",
                confirm=ctx.ngettext("Delete {n} job?", "Delete all {n} jobs?", size),
            ),
            hidden={"key": "all"},
            class_="inline all-actions",
            **{"data-live": "all"},
        )
    last = None if total is None else (total + PER_PAGE - 1) // PER_PAGE
    return tags.div(
        tags.div(
            tags.p(summary, class_="muted", **{"data-live": "summary"}),
            filters,
            all_form,
            extra,
            class_="list-head",
        ),
        form,
        tags.div(*row_forms, hidden="hidden", **{"data-live": "row-forms"}),
        pager(ctx, kind.path, q.page, last, more, params),
    )
