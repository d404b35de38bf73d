"""The body of each web UI page, as ``twisted.web.template`` tags (escaped
by construction).  Routes (``app.py``) fetch the data; these only draw it."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from typing import Any

from twisted.web.template import Tag

from .. import FAKTORY_COMPAT_VERSION, __version__
from ..job import DEAD_TTL
from . import display
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
        _stat_box("Version", srv["faktory_version"], "faktory_version"),
        _stat_box("Uptime", display.duration(srv["uptime"]), "uptime"),
        _stat_box("Connections", display.number(srv["connections"]), "connections"),
        _stat_box("Memory", f"{display.number(srv['used_memory_mb'])} MB", "used_memory_mb"),
        _stat_box("Commands", display.number(srv["command_count"]), "command_count"),
        class_="boxes",
    )
    slider = tags.label(
        "Polling interval ",
        tags.input(
            type="range",
            min="2000",
            max="20000",
            step="1000",
            value="5000",
            id="poll-interval",
            **{"aria-label": "Polling interval in milliseconds"},
        ),
        tags.output("5 s", id="poll-interval-value", **{"for": "poll-interval"}),
        class_="slider",
    )
    live = tags.section(
        tags.div(
            tags.h2(tags.span(class_="beacon", id="beacon", title="Updated"), "Real-time"),
            slider,
            class_="card-head",
        ),
        tags.div(
            class_="chart",
            id="live-chart",
            role="img",
            **{
                "aria-label": "Jobs processed and failed per polling interval",
                "data-stats-url": ctx.url("/stats"),
            },
        ),
        class_="card",
    )
    choices = [
        tags.a(
            f"{d} day{'s' if d > 1 else ''}",
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
        tags.div(tags.h2("History"), tags.div(*choices, class_="chips"), class_="card-head"),
        tags.p(
            f"{display.number(processed)} processed, {display.number(failed)} failed "
            f"in the last {days} day{'s' if days > 1 else ''}.",
            class_="muted",
        ),
        tags.div(
            class_="chart",
            id="history-chart",
            role="img",
            **{
                "aria-label": f"Jobs processed and failed per day, last {days} days",
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
        return empty("No queues yet: push a job and its queue appears here.")
    trs = []
    for r in rows:
        status = badge("paused", "warn") if r.paused else badge("active", "ok")
        toggle = (
            button("Resume", "resume", kind="primary")
            if r.paused
            else button("Pause", "pause", kind="")
        )
        actions = post_form(
            ctx,
            f"/queues/{r.name}",
            toggle,
            button(
                "Clear",
                "delete",
                kind="danger",
                confirm=f"Delete all {r.size:,} jobs in queue {r.name} and remove the queue?",
            ),
            class_="inline",
        )
        trs.append(
            tags.tr(
                tags.td(tags.a(r.name, href=ctx.url(f"/queues/{r.name}")), " ", status),
                tags.td(display.number(r.size), class_="num"),
                tags.td(display.duration(r.latency) if r.size else "-", class_="num"),
                tags.td(actions, class_="actions"),
                **{"data-queue": r.name},
            )
        )
    return table(["Queue", "Size", "Latency", "Actions"], trs)


def queue(
    ctx: Ctx,
    name: str,
    total: int,
    entries: list[tuple[int, bytes, dict]],
    page: int,
    paused: bool,
    token_of,
) -> Tag:
    head = tags.p(
        f"{display.number(total)} job{'s' if total != 1 else ''}, lowest priority first, "
        "newest first within a priority: the last row runs next.",
        " ",
        badge("paused", "warn") if paused else "",
        class_="muted",
        **{"data-live": "summary"},
    )
    if not entries:
        return tags.div(head, empty("This queue is empty."))
    trs = []
    for priority, raw, job in entries:
        trs.append(
            tags.tr(
                tags.td(
                    tags.input(
                        type="checkbox",
                        name="bkey",
                        value=token_of(priority, raw),
                        **{"aria-label": f"Select {job.get('jid', '')}"},
                    )
                ),
                tags.td(tags.code(str(job.get("jid", "")))),
                tags.td(display.job_type(job)),
                tags.td(str(priority), class_="num"),
                args_cell(job),
                tags.td(when(display.timestamp(job.get("enqueued_at")), ctx.now)),
                tags.td(_details(job)),
            )
        )
    last = (total + PER_PAGE - 1) // PER_PAGE
    form = post_form(
        ctx,
        f"/queues/{name}",
        tags.div(
            button(
                "Delete selected",
                "delete_selected",
                kind="danger",
                confirm="Delete the selected jobs?",
            ),
            class_="toolbar",
        ),
        table(
            [check_all(), "JID", "Job", "Priority", "Arguments", "Enqueued", ""],
            trs,
        ),
        hidden={"page": page},
    )
    return tags.div(head, form, pager(ctx, f"/queues/{name}", page, last, False))


def _details(job: dict) -> Tag:
    return tags.details(tags.summary("JSON"), tags.pre(display.pretty(job), class_="json"))


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
            name += [" ", badge(w["state"], "danger")]
        buttons = []
        if w["state"] == "running":
            buttons.append(button("Quiet", "quiet", name="signal"))
        if w["state"] != "terminate":
            buttons.append(
                button(
                    "Stop", "terminate", name="signal", kind="danger", confirm=f"Stop {w['wid']}?"
                )
            )
        count = busy_by_wid.get(w["wid"], 0) if busy_by_wid is not None else None
        wrows.append(
            tags.tr(
                tags.td(tags.code(w["wid"])),
                tags.td(*name),
                tags.td(when(w["started_at"], ctx.now)),
                tags.td(when(w["beat"], ctx.now)),
                tags.td(display.number(w["conns"]), class_="num"),
                tags.td(display.rss(w["rss_kb"]), class_="num"),
                tags.td(display.number(count), class_="num"),
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
        button("Quiet All", "quiet", name="signal", confirm="Quiet every worker process?"),
        button(
            "Stop All",
            "terminate",
            name="signal",
            kind="danger",
            confirm="Stop every worker process?",
        ),
        hidden={"wid": "all"},
        class_="inline",
    )
    processes = tags.section(
        tags.div(
            tags.h2(f"Processes ({display.number(len(workers))})", **{"data-live": "processes"}),
            all_buttons,
            class_="card-head",
        ),
        table(
            ["ID", "Name", "Started", "Last beat", "Connections", "RSS", "Busy", ""],
            wrows,
        )
        if wrows
        else empty("No worker processes are connected."),
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
                tags.td(when(display.timestamp(r.get("reserved_at")), ctx.now)),
                tags.td(when(display.timestamp(r.get("expiry")), ctx.now)),
                tags.td(release, class_="actions"),
                **{"data-jid": str(job.get("jid", "")), **({"class": "orphan"} if release else {})},
            )
        )
    last = (total + PER_PAGE - 1) // PER_PAGE
    jobs = tags.section(
        tags.div(
            tags.h2(f"Jobs in progress ({display.number(total)})", **{"data-live": "jobs"}),
            class_="card-head",
        ),
        table(["Process", "JID", "Queue", "Job", "Arguments", "Started", "Expires", ""], jrows)
        if jrows
        else empty("No jobs are running."),
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
    bulk: tuple[tuple[str, str, str], ...]  # (label, action, kind)
    empty_text: str


SET_KINDS = {
    "retries": SetKind(
        "retries",
        "/retries",
        "Retries",
        "Next retry",
        False,
        (("Retry now", "retry", "primary"), ("Delete", "delete", "danger"), ("Kill", "kill", "")),
        "No retries were found.",
    ),
    "scheduled": SetKind(
        "scheduled",
        "/scheduled",
        "Scheduled",
        "When",
        False,
        (("Add to queue", "add_to_queue", "primary"), ("Delete", "delete", "danger")),
        "No scheduled jobs were found.",
    ),
    "dead": SetKind(
        "dead",
        "/morgue",
        "Dead",
        "Died",
        True,
        (("Retry now", "retry", "primary"), ("Delete", "delete", "danger")),
        "No dead jobs were found.",
    ),
}


def _confirm(action: str, what: str) -> str:
    """Destructive actions ask first; putting jobs back to work does not."""
    if action == "delete":
        return f"Delete {what}? This cannot be undone."
    if action == "kill":
        return f"Kill {what}? They move to the Dead set without further retries."
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
) -> Tag:
    params = q.params(kind)
    filtered = bool(q.jobtype or q.text)
    flip = "asc" if q.reverse else "desc"
    arrow = " ↓" if q.reverse else " ↑"
    sort_link = tags.a(
        kind.when_label + arrow,
        href=ctx.url(kind.path, **dict(params, order=flip)),
        title="Newest first" if not q.reverse else "Oldest first",
        class_="sort",
    )
    filters = tags.form(
        tags.input(
            type="search",
            name="q",
            value=q.text,
            placeholder="Text in the job…",
            **{"aria-label": "Filter by text"},
        ),
        tags.input(
            type="text",
            name="jobtype",
            value=q.jobtype,
            placeholder="Job type",
            **{"aria-label": "Filter by job type"},
        ),
        *(
            [tags.input(type="hidden", name="order", value=params["order"])]
            if "order" in params
            else []
        ),
        tags.button("Filter", type="submit", class_="btn"),
        tags.a("Clear", href=ctx.url(kind.path), class_="btn link") if filtered else "",
        method="get",
        action=ctx.url(kind.path),
        class_="filters",
        role="search",
    )
    if filtered:
        summary = f"Matching jobs (of {display.number(size)})"
    else:
        summary = f"{display.number(size)} job{'s' if size != 1 else ''}"
    if not entries:
        return tags.div(
            tags.div(tags.p(summary, class_="muted"), filters, class_="list-head"),
            empty("No jobs match this filter." if filtered else kind.empty_text),
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
                    **{"aria-label": f"Select {job.get('jid', '')}"},
                )
            ),
            tags.td(tags.a(when(entry_time(kind, score), ctx.now), href=href)),
        ]
        if kind.name == "retries":
            cells.append(tags.td(display.number(failure.get("retry_count", 0)), class_="num"))
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
                        label.split()[0] if action != "add_to_queue" else "Enqueue",
                        action,
                        kind=f"sm {k}",
                        confirm=_confirm(action, "this job"),
                        form=form_id,
                        title=f"{label}: this job",
                    )
                    for label, action, k in kind.bulk
                ],
                class_="actions row-actions",
            )
        )
        rows.append(tags.tr(*cells, **{"data-jid": str(job.get("jid", ""))}))
    headers: list[Any] = [check_all(), sort_link]
    if kind.name == "retries":
        headers.append("Retries")
    headers += ["Queue", "Job", "Arguments"]
    if kind.name != "scheduled":
        headers.append("Error")
    headers.append("")
    bulk = [
        button(label, action, kind=k, confirm=_confirm(action, "the selected jobs"))
        for label, action, k in kind.bulk
    ]
    form = post_form(
        ctx,
        kind.path,
        tags.div(tags.span("Selected:", class_="muted"), *bulk, class_="toolbar"),
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
                f"{first[0].split()[0]} all" if first[1] != "add_to_queue" else "Add all to queue",
                first[1],
                kind="",
                confirm=f"{first[0]}: all {size:,} jobs?",
            ),
            button("Delete all", "delete", kind="danger", confirm=f"Delete all {size:,} jobs?"),
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
    score = float(key.partition("|")[0]) if key else 0.0
    t = lambda v: when(display.timestamp(v), ctx.now)  # noqa: E731
    args = job.get("args") if isinstance(job.get("args"), list) else [job.get("args")]
    rows = [
        _row("JID", tags.code(str(job.get("jid", "")))),
        _row("Job", display.job_type(job)),
    ]
    if display.job_type(job) != str(job.get("jobtype", "")):
        rows.append(_row("Job type", str(job.get("jobtype", ""))))
    rows.append(
        _row(
            "Arguments",
            tags.ol(
                *[tags.li(tags.pre(display.pretty(a), class_="json")) for a in args],
                class_="args-list",
            )
            if args
            else tags.span("none", class_="muted"),
        )
    )
    queue_name = str(job.get("queue", ""))
    rows += [
        _row("Queue", tags.a(queue_name, href=ctx.url(f"/queues/{queue_name}"))),
        _row("Priority", str(job.get("priority", 5))),
        _row("Created", t(job.get("created_at"))),
    ]
    if job.get("at"):
        rows.append(_row("Scheduled for", t(job.get("at"))))
    rows.append(
        _row("Enqueued", t(job.get("enqueued_at")))
        if job.get("enqueued_at")
        else _row("Enqueued", tags.span("Not yet enqueued", class_="muted"))
    )
    rows.append(_row("Retry policy", display.number(job.get("retry", 25))))
    if job.get("reserve_for"):
        rows.append(_row("Reserve for", f"{display.number(job['reserve_for'])} s"))
    if job.get("backtrace"):
        rows.append(_row("Backtrace lines", display.number(job["backtrace"])))
    custom = job.get("custom")
    if isinstance(custom, dict) and custom:
        rows.append(
            _row(
                "Custom",
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
        rows.append(_row("Died", when(entry_time(kind, score), ctx.now)))
        rows.append(_row("Expires", when(score, ctx.now)))
    elif set_name == "scheduled":
        rows.append(_row("Runs", when(score, ctx.now)))
    info = tags.section(tags.table(tags.tbody(*rows), class_="table fields"), class_="card")
    sections = [info]
    failure = job.get("failure")
    if isinstance(failure, dict) and failure:
        frows = [
            _row("Error class", tags.code(str(failure.get("errtype", "")))),
            _row("Message", tags.pre(str(failure.get("message", "")), class_="message")),
            _row("Retry count", display.number(failure.get("retry_count", 0))),
            _row("Retries remaining", display.number(failure.get("remaining", 0))),
            _row("Originally failed", t(failure.get("failed_at"))),
        ]
        if failure.get("next_at"):
            frows.append(_row("Next retry", t(failure.get("next_at"))))
        backtrace = failure.get("backtrace") or []
        if backtrace:
            frows.append(
                _row(
                    "Backtrace", tags.pre("\n".join(str(x) for x in backtrace), class_="backtrace")
                )
            )
        sections.append(
            tags.section(
                tags.h2("Error"),
                tags.table(tags.tbody(*frows), class_="table fields"),
                class_="card error-card",
            )
        )
    sections.append(
        tags.section(
            tags.details(tags.summary("Raw JSON"), tags.pre(display.pretty(job), class_="json")),
            class_="card",
        )
    )
    return tags.div(*sections, class_="job")


def job_actions(ctx: Ctx, kind: SetKind, key: str) -> Tag:
    buttons = [tags.a("Back", href=ctx.url(kind.path), class_="btn link")]
    for label, action, k in kind.bulk:
        buttons.append(button(label, action, kind=k, confirm=_confirm(action, "this job")))
    return post_form(
        ctx,
        kind.path,
        *buttons,
        hidden={"key": key, "return": ctx.url(kind.path)},
        class_="inline",
    )


# -- debug --------------------------------------------------------------------------
def debug(ctx: Ctx, redis_info: str, rtt: float, facts: list[tuple[str, str]]) -> Tag:
    micro = int(rtt * 1_000_000)
    level = "ok" if micro < 1000 else "info" if micro < 10000 else "danger"
    rows = [_row("Redis round trip", badge(f"{micro:,} µs", level))]
    rows += [_row(label, value) for label, value in facts]
    return tags.div(
        tags.section(tags.table(tags.tbody(*rows), class_="table fields"), class_="card"),
        tags.section(
            tags.h2("Redis INFO"),
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
    facts = [
        ("Version", f"Faktory {FAKTORY_COMPAT_VERSION} (faktory-server {__version__})"),
        ("Redis", f"{fields.get('redis_version', '?')} on {location}"),
        ("Data directory", server.settings.data_dir),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("Twisted", twisted.__version__),
        ("Process", f"pid {os.getpid()}, up {display.duration(ctx.now - server.started_at)}"),
        ("Memory", f"{display.number(ctx.info['server']['used_memory_mb'])} MB resident"),
        (
            "Garbage collector",
            ", ".join(f"gen{i}: {s['collections']:,} runs" for i, s in enumerate(gc.get_stats())),
        ),
        ("Redis memory", fields.get("used_memory_human", "?").strip()),
    ]
    try:
        usage = shutil.disk_usage(server.settings.data_dir)
        facts.append(
            (
                "Disk",
                f"{usage.free / 2**30:,.1f} GB free of {usage.total / 2**30:,.1f} GB",
            )
        )
    except OSError:
        pass
    facts.append(("Server time", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ctx.now))))
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
