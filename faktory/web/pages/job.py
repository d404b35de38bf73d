"""One job's page (in a set, a queue or in progress) and its actions."""

from __future__ import annotations

import json
from typing import Any

from twisted.web.template import Tag

from ...job import DEFAULT_RETRY
from .. import display
from ..layout import (
    Ctx,
    button,
    post_form,
    tags,
    when,
)
from .sets import SetKind, _confirm, entry_time


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
    rows.append(_row(_("Retry policy"), ctx.number(job.get("retry", DEFAULT_RETRY))))
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
