"""The stable job URL ``/job/<jid>``: one job wherever it is now (waiting in
a queue, in progress, in retries, scheduled or dead), so a link keeps
working while the job moves.  ``/job?jid=`` serves the header's find box.

List rows link here with a hint of where the job was (``?in=<set>&score=``):
a job still there is read by its score, a job that moved is searched for
(``faktory.locate``)."""

from __future__ import annotations

from urllib.parse import quote

from twisted.web.template import Tag

from ..locate import SETS, Finder, Location, Search
from . import display, layout, pages
from .app import WebUI, _arg
from .i18n import N_
from .layout import Ctx, badge, button, post_form, tags, when
from .orphans import release_cell

app = WebUI.app

WHERE_TITLE = {
    "working": N_("In progress"),
    "queue": N_("Enqueued"),
    "retries": N_("Retries"),
    "scheduled": N_("Scheduled"),
    "dead": N_("Dead"),
}
ACTIVE_TAB = {"working": "busy", "queue": "queues"}
IN_SET = {
    "retries": N_("In {set} (next retry {when})."),
    "scheduled": N_("In {set} (when {when})."),
    "dead": N_("In {set} (died {when})."),
}


def job_path(jid: str) -> str:
    return "/job/" + quote(jid, safe="")


@app.route("/job", methods=["GET", "HEAD"])
async def find_job(self, request):
    """The header's *Find job* box."""
    jid = _arg(request, "jid").strip()
    if not jid:
        return self._redirect(request, "/", self._t(request)._("Enter a job ID (JID) to find."))
    return self._redirect(request, job_path(jid[:1000]))


@app.route("/job/<path:jid>", methods=["GET", "HEAD"])
async def job(self, request, jid):
    where, score = _arg(request, "in"), _arg(request, "score")
    hint = (where, score) if where in SETS and score else None
    search = await Finder(self.server.store).locate(jid, hint)
    ctx = await self._ctx(request)
    if search.found is None:
        request.setResponseCode(404)
        body = not_found(ctx, jid, search)
        return await self._html(
            ctx,
            "none",
            ctx._("Job {jid}", jid=jid),
            body,
            live="scanned" if search.examined > Finder.SCAN else True,
        )
    loc = search.found
    data = display.decode_job(loc.raw)
    title = f"{display.job_type(data)} {jid}"
    kind = pages.SET_KINDS.get(loc.where)
    body = tags.div(where_card(ctx, loc, data), pages.job_page(ctx, kind, loc.key, data))
    if kind is not None:
        actions = pages.job_actions(ctx, kind, loc.key)
    elif loc.where == "queue":
        actions = queue_job_actions(ctx, loc)
    else:  # in progress: releasable when its worker process is gone
        workers = await self.server.admin.worker_records()
        actions = release_cell(ctx, workers, back="job")({**loc.reservation, "job": data})
    active = kind.name if kind is not None else ACTIVE_TAB[loc.where]
    return await self._html(
        ctx,
        active,
        title,
        body,
        actions=actions,
        live="scanned" if search.examined > Finder.SCAN else True,
    )


def where_card(ctx: Ctx, loc: Location, job: dict) -> Tag:
    """Where the job is right now, in one line."""
    label = badge(ctx._(WHERE_TITLE[loc.where]), "info")
    if loc.where == "queue":
        detail = layout.sentence(
            ctx._("Waiting in queue {queue}, priority {priority}."),
            queue=tags.a(loc.queue, href=ctx.url(f"/queues/{loc.queue}")),
            priority=ctx.number(loc.priority),
        )
    elif loc.where == "working":
        res = loc.reservation
        detail = layout.sentence(
            ctx._("Reserved by {wid} since {since}; the reservation runs out {until}."),
            wid=tags.code(str(res.get("wid") or "-")),
            since=when(ctx, display.timestamp(res.get("reserved_at"))),
            until=when(ctx, display.timestamp(res.get("expiry"))),
        )
    else:
        kind = pages.SET_KINDS[loc.where]
        score = float(loc.key.partition("|")[0])
        detail = layout.sentence(
            ctx._(IN_SET[loc.where]),
            set=tags.a(ctx._(kind.title), href=ctx.url(kind.path)),
            when=when(ctx, pages.entry_time(kind, score)),
        )
    return tags.section(tags.p(label, " ", *detail), class_="card where", id="job-where")


def queue_job_actions(ctx: Ctx, loc: Location) -> Tag:
    from .app import queue_token

    return post_form(
        ctx,
        f"/queues/{loc.queue}",
        tags.a(ctx._("Back"), href=ctx.url(f"/queues/{loc.queue}"), class_="btn link"),
        button(
            ctx._("Delete"),
            "delete_selected",
            kind="danger",
            confirm=ctx._("Delete this job? This cannot be undone."),
        ),
        hidden={"bkey": queue_token(loc.priority, loc.raw)},
        class_="inline",
    )


def not_found(ctx: Ctx, jid: str, search: Search) -> Tag:
    if search.complete:
        text = ctx._(
            "No job {jid} is waiting in a queue, in progress, in retries, scheduled or dead. "
            "Jobs that finished are not kept.",
            jid=jid,
        )
    else:
        text = ctx._(
            "Job {jid} was not found among the first {n} stored jobs searched; "
            "a large queue may hold it further back.",
            jid=jid,
            n=ctx.number(search.examined),
        )
    return layout.empty(text)
