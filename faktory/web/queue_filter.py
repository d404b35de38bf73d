"""The Queue page's filters: by jid, by job type (exact) and by text in the
job (ASCII letters case-insensitive), like the set pages'.  A queue has no
index for them: ``faktory.locate.Finder.queue_filter`` scans it inside Redis
in bounded steps and stops when the page is full."""

from __future__ import annotations

from dataclasses import dataclass

from twisted.web.template import Tag

from .layout import Ctx, tags

MAX_LENGTH = 200


@dataclass
class QueueFilter:
    jid: str = ""
    jobtype: str = ""
    text: str = ""

    @classmethod
    def from_args(cls, arg) -> QueueFilter:
        """From the query (``arg(name)`` reads one parameter)."""
        return cls(*(arg(k).strip()[:MAX_LENGTH] for k in ("jid", "jobtype", "q")))

    def __bool__(self) -> bool:
        return bool(self.jid or self.jobtype or self.text)

    def params(self) -> dict[str, str]:
        return {"jid": self.jid, "jobtype": self.jobtype, "q": self.text}


def form(ctx: Ctx, path: str, f: QueueFilter) -> Tag:
    def field(name: str, value: str, placeholder: str, label: str, kind: str = "text") -> Tag:
        return tags.input(
            type=kind, name=name, value=value, placeholder=placeholder, **{"aria-label": label}
        )

    return tags.form(
        field("q", f.text, ctx._("Text in the job…"), ctx._("Filter by text"), "search"),
        field("jobtype", f.jobtype, ctx._("Job type"), ctx._("Filter by job type")),
        field("jid", f.jid, ctx._("JID"), ctx._("Filter by JID")),
        tags.button(ctx._("Filter"), type="submit", class_="btn"),
        tags.a(ctx._("Clear"), href=ctx.url(path), class_="btn link") if f else "",
        method="get",
        action=ctx.url(path),
        class_="filters",
        role="search",
    )
