"""Busy page: jobs reserved by a worker process that is gone are marked, with
a button that releases the job back to the front of its queue now
(``faktory.orphans``; the release is atomic and logged)."""

from __future__ import annotations

from collections.abc import Callable

from twisted.web.template import Tag

from .. import orphans
from .layout import Ctx, badge, button, post_form, tags


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
