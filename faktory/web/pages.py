"""The body of each web UI page, as ``twisted.web.template`` tags (escaped
by construction).  Routes (``app.py``) fetch the data; these only draw it."""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from typing import Any

from twisted.web.template import Tag

from .. import FAKTORY_COMPAT_VERSION, __version__
from ..job import DEAD_TTL
from . import display, queue_filter
from .i18n import N_
from .layout import (
    PER_PAGE,
    Ctx,
    args_cell,
    badge,
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
from .queue_filter import QueueFilter

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


def _details(ctx: Ctx, job: dict) -> Tag:
    return tags.details(tags.summary(ctx._("JSON")), tags.pre(display.pretty(job), class_="json"))


# -- busy -----------------------------------------------------------------------
def busy(
    ctx: Ctx,
    workers: list[dict],
    busy_by_wid: dict[str, int] | None,
    total: int,
    reservations: list[dict],
    page: int,
    release_cell=None,
) -> Tag:
    """``release_cell(reservation)`` draws the release button of a job whose
    worker is gone ('' for the others; see ``web.orphans``)."""
    wrows = []
    for w in workers:
        name = [tags.strong(f"{w['hostname']}:{w['pid']}")]
        for label in w["labels"]:
            name += [" ", badge(str(label))]
        if w["state"] != "running":
            state = {"quiet": ctx._("quiet"), "terminate": ctx._("terminate")}.get(w["state"])
            name += [" ", badge(state or str(w["state"]), "danger")]
        buttons = []
        if w["state"] == "running":
            buttons.append(button(ctx._("Quiet"), "quiet", name="signal"))
        if w["state"] != "terminate":
            buttons.append(
                button(
                    ctx._("Stop"),
                    "terminate",
                    name="signal",
                    kind="danger",
                    confirm=ctx._("Stop {wid}?", wid=w["wid"]),
                )
            )
        count = busy_by_wid.get(w["wid"], 0) if busy_by_wid is not None else None
        wrows.append(
            tags.tr(
                tags.td(tags.code(w["wid"])),
                tags.td(*name),
                tags.td(when(ctx, w["started_at"])),
                tags.td(when(ctx, w["beat"])),
                tags.td(ctx.number(w["conns"]), class_="num"),
                tags.td(ctx.t.size_kb(w["rss_kb"]), class_="num"),
                tags.td(ctx.number(count), class_="num"),
                tags.td(
                    post_form(ctx, "/busy", *buttons, hidden={"wid": w["wid"]}, class_="inline"),
                    class_="actions",
                ),
                **{"data-wid": w["wid"]},
            )
        )
    all_buttons = post_form(
        ctx,
        "/busy",
        button(
            ctx._("Quiet All"), "quiet", name="signal", confirm=ctx._("Quiet every worker process?")
        ),
        button(
            ctx._("Stop All"),
            "terminate",
            name="signal",
            kind="danger",
            confirm=ctx._("Stop every worker process?"),
        ),
        hidden={"wid": "all"},
        class_="inline",
    )
    processes = tags.section(
        tags.div(
            tags.h2(
                ctx._("Processes ({n})", n=ctx.number(len(workers))), **{"data-live": "processes"}
            ),
            all_buttons,
            class_="card-head",
        ),
        table(
            [
                ctx._("ID"),
                ctx._("Name"),
                ctx._("Started"),
                ctx._("Last beat"),
                ctx._("Connections"),
                ctx._("RSS"),
                ctx._("Busy"),
                "",
            ],
            wrows,
        )
        if wrows
        else empty(ctx._("No worker processes are connected.")),
        class_="card",
    )
    jrows = []
    for r in reservations:
        job = r.get("job") or {}
        queue_name = str(job.get("queue", ""))
        release = release_cell(r) if release_cell is not None else ""
        jrows.append(
            tags.tr(
                tags.td(tags.code(str(r.get("wid") or "-"))),
                tags.td(tags.code(str(job.get("jid", "")))),
                tags.td(tags.a(queue_name, href=ctx.url(f"/queues/{queue_name}"))),
                tags.td(display.job_type(job)),
                args_cell(job),
                tags.td(when(ctx, display.timestamp(r.get("reserved_at")))),
                tags.td(when(ctx, display.timestamp(r.get("expiry")))),
                tags.td(release, class_="actions"),
                **{"data-jid": str(job.get("jid", "")), **({"class": "orphan"} if release else {})},
            )
        )
    last = (total + PER_PAGE - 1) // PER_PAGE
    jobs = tags.section(
        tags.div(
            tags.h2(ctx._("Jobs in progress ({n})", n=ctx.number(total)), **{"data-live": "jobs"}),
            class_="card-head",
        ),
        table(
            [
                ctx._("Process"),
                ctx._("JID"),
                ctx._("Queue"),
                ctx._("Job"),
                ctx._("Arguments"),
                ctx._("Started"),
                ctx._("Expires"),
                "",
            ],
            jrows,
        )
        if jrows
        else empty(ctx._("No jobs are running.")),
        pager(ctx, "/busy", page, last, False),
        class_="card",
    )
    return tags.div(processes, jobs)


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


# -- one job ------------------------------------------------------------------------
def _row(label: str, *value: Any) -> Tag:
    return tags.tr(tags.th(label, scope="row"), tags.td(*value))


def job_page(ctx: Ctx, kind: SetKind | None, key: str, job: dict) -> Tag:
    """Every field of a job; ``kind``/``key`` add its set's times (None, '':
    a job in a queue or in progress)."""
    _ = ctx._
    score = float(key.partition("|")[0]) if key else 0.0
    t = lambda v: when(ctx, display.timestamp(v))  # noqa: E731
    args = job.get("args") if isinstance(job.get("args"), list) else [job.get("args")]
    rows = [
        _row(_("JID"), tags.code(str(job.get("jid", "")))),
        _row(_("Job"), display.job_type(job)),
    ]
    if display.job_type(job) != str(job.get("jobtype", "")):
        rows.append(_row(_("Job type"), str(job.get("jobtype", ""))))
    rows.append(
        _row(
            _("Arguments"),
            tags.ol(
                *[tags.li(tags.pre(display.pretty(a), class_="json")) for a in args],
                class_="args-list",
            )
            if args
            else tags.span(_("none"), class_="muted"),
        )
    )
    queue_name = str(job.get("queue", ""))
    rows += [
        _row(_("Queue"), tags.a(queue_name, href=ctx.url(f"/queues/{queue_name}"))),
        _row(_("Priority"), ctx.number(job.get("priority", 5))),
        _row(_("Created"), t(job.get("created_at"))),
    ]
    if job.get("at"):
        rows.append(_row(_("Scheduled for"), t(job.get("at"))))
    rows.append(
        _row(_("Enqueued"), t(job.get("enqueued_at")))
        if job.get("enqueued_at")
        else _row(_("Enqueued"), tags.span(_("Not yet enqueued"), class_="muted"))
    )
    rows.append(_row(_("Retry policy"), ctx.number(job.get("retry", 25))))
    if job.get("reserve_for"):
        rows.append(_row(_("Reserve for"), _("{n} s", n=ctx.number(job["reserve_for"]))))
    if job.get("backtrace"):
        rows.append(_row(_("Backtrace lines"), ctx.number(job["backtrace"])))
    custom = job.get("custom")
    if isinstance(custom, dict) and custom:
        rows.append(
            _row(
                _("Custom"),
                tags.dl(
                    *[
                        part
                        for k, v in custom.items()
                        for part in (
                            tags.dt(str(k)),
                            tags.dd(tags.code(json.dumps(v, ensure_ascii=False))),
                        )
                    ],
                    class_="custom",
                ),
            )
        )
    set_name = kind.name if kind is not None else ""
    if set_name == "dead":
        rows.append(_row(_("Died"), when(ctx, entry_time(kind, score))))
        rows.append(_row(_("Expires"), when(ctx, score)))
    elif set_name == "scheduled":
        rows.append(_row(_("Runs"), when(ctx, score)))
    info = tags.section(tags.table(tags.tbody(*rows), class_="table fields"), class_="card")
    sections = [info]
    failure = job.get("failure")
    if isinstance(failure, dict) and failure:
        frows = [
            _row(_("Error class"), tags.code(str(failure.get("errtype", "")))),
            _row(_("Message"), tags.pre(str(failure.get("message", "")), class_="message")),
            _row(_("Retry count"), ctx.number(failure.get("retry_count", 0))),
            _row(_("Retries remaining"), ctx.number(failure.get("remaining", 0))),
            _row(_("Originally failed"), t(failure.get("failed_at"))),
        ]
        if failure.get("next_at"):
            frows.append(_row(_("Next retry"), t(failure.get("next_at"))))
        backtrace = failure.get("backtrace") or []
        if backtrace:
            frows.append(
                _row(
                    _("Backtrace"),
                    tags.pre("\n".join(str(x) for x in backtrace), class_="backtrace"),
                )
            )
        sections.append(
            tags.section(
                tags.h2(_("Error")),
                tags.table(tags.tbody(*frows), class_="table fields"),
                class_="card error-card",
            )
        )
    sections.append(
        tags.section(
            tags.details(tags.summary(_("Raw JSON")), tags.pre(display.pretty(job), class_="json")),
            class_="card",
        )
    )
    return tags.div(*sections, class_="job")


def job_actions(ctx: Ctx, kind: SetKind, key: str) -> Tag:
    buttons = [tags.a(ctx._("Back"), href=ctx.url(kind.path), class_="btn link")]
    for label, _short, action, k in kind.bulk:
        buttons.append(button(ctx._(label), action, kind=k, confirm=_confirm(ctx, action, True)))
    return post_form(
        ctx,
        kind.path,
        *buttons,
        hidden={"key": key, "return": ctx.url(kind.path)},
        class_="inline",
    )


# -- debug --------------------------------------------------------------------------
def debug(ctx: Ctx, redis_info: str, rtt: float, facts: list[tuple[str, str]]) -> Tag:
    _ = ctx._
    micro = int(rtt * 1_000_000)
    level = "ok" if micro < 1000 else "info" if micro < 10000 else "danger"
    rows = [_row(_("Redis round trip"), badge(_("{n} µs", n=ctx.number(micro)), level))]
    rows += [_row(label, value) for label, value in facts]
    return tags.div(
        tags.section(tags.table(tags.tbody(*rows), class_="table fields"), class_="card"),
        tags.section(
            tags.h2(_("Redis INFO")),
            tags.pre(redis_info.replace("\r\n", "\n"), class_="info"),
            class_="card",
        ),
    )


def debug_facts(ctx: Ctx, redis_info: str) -> list[tuple[str, str]]:
    import gc
    import os
    import shutil

    import twisted

    server = ctx.server
    fields = dict(
        line.split(":", 1)
        for line in redis_info.splitlines()
        if ":" in line and not line.startswith("#")
    )
    proc = server.redis_process
    location = proc.socket if proc is not None else _hide_password(server.settings.redis_url)
    _, n = ctx._, ctx.number
    uptime = ctx.t.duration(ctx.now - server.started_at)
    runs = [_("gen{i}: {n} runs", i=i, n=n(s["collections"])) for i, s in enumerate(gc.get_stats())]
    facts = [
        (_("Version"), f"Faktory {FAKTORY_COMPAT_VERSION} (faktory-server {__version__})"),
        (
            "Redis",
            _("{version} on {where}", version=fields.get("redis_version", "?"), where=location),
        ),
        (_("Data directory"), server.settings.data_dir),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("Twisted", twisted.__version__),
        (_("Process"), _("pid {pid}, up {uptime}", pid=os.getpid(), uptime=uptime)),
        (
            _("Memory"),
            _("{n} MB resident", n=n(ctx.info["server"]["used_memory_mb"])),
        ),
        (_("Garbage collector"), ", ".join(runs)),
        (_("Redis memory"), fields.get("used_memory_human", "?").strip()),
    ]
    try:
        usage = shutil.disk_usage(server.settings.data_dir)
        free, total = round(usage.free / 2**30, 1), round(usage.total / 2**30, 1)
        facts.append((_("Disk"), _("{free} GB free of {total} GB", free=n(free), total=n(total))))
    except OSError:
        pass
    facts.append((_("Server time"), ctx.t.datetime(ctx.now)))
    return facts


def _hide_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def not_found(ctx: Ctx, what: str) -> Tag:
    return empty(what)
