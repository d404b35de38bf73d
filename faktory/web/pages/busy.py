"""The Busy page: jobs in progress and the worker processes."""

from __future__ import annotations

from twisted.web.template import Tag

from .. import display
from ..layout import (
    PER_PAGE,
    Ctx,
    args_cell,
    badge,
    button,
    empty,
    pager,
    post_form,
    table,
    tags,
    when,
)


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
