"""Busy page: jobs reserved by a worker process that is gone are marked, with
a button that releases the job back to the front of its queue now
(``faktory.orphans``; the release is atomic and logged)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from twisted.web.template import Tag

from .. import orphans
from .app import WebUI, _arg
from .layout import Ctx, badge, button, post_form, tags

app = WebUI.app


def release_cell(ctx: Ctx, workers: list[dict], back: str = "") -> Callable[[dict], Tag | str]:
    """For ``pages.busy`` (and the job page, ``back="job"``): a reservation's
    mark and release button, or ''."""
    live = orphans.live_workers(workers, ctx.now)

    def cell(reservation: dict) -> Tag | str:
        if not orphans.is_orphan(reservation, live) or not reservation.get("reserved_at"):
            return ""  # (an unreadable reservation cannot be released from here)
        jid = str((reservation.get("job") or {}).get("jid", ""))
        return tags.div(
            badge(ctx._("worker gone"), "danger"),
            " ",
            post_form(
                ctx,
                "/busy/release",
                button(
                    ctx._("Release"),
                    "release",
                    kind="sm primary",
                    confirm=ctx._("Put this job back at the front of its queue now?"),
                    title=ctx._(
                        "Its worker process sends no heartbeat: put the job back in its queue"
                    ),
                ),
                hidden={
                    "jid": jid,
                    "reserved_at": str(reservation.get("reserved_at", "")),
                    "return": back,
                },
                class_="inline",
            ),
            class_="release",
        )

    return cell


@app.route("/busy/release", methods=["POST"])
async def release(self, request):
    jid = _arg(request, "jid")
    t = self._t(request)
    if not jid:
        return self._redirect(request, "/busy", t._("Nothing selected."))
    outcome, job = await orphans.release(self.server, jid, _arg(request, "reserved_at"))
    queue = str(job.get("queue", ""))
    message = {
        "released": t._("Released {jid} back to queue {queue}.", jid=jid, queue=queue),
        "gone": t._("Job {jid} is no longer held by that reservation: nothing released.", jid=jid),
        "alive": t._("The worker holding {jid} sends heartbeats again: nothing released.", jid=jid),
    }[outcome]
    back = "/job/" + quote(jid, safe="") if _arg(request, "return") == "job" else "/busy"
    return self._redirect(request, back, message)
