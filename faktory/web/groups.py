"""Retries and Dead grouped by error class or job type
(``/retries/groups?by=errtype``, ``/morgue/groups?by=jobtype``): how many
jobs each cause holds, and buttons that retry or delete a whole group
(``faktory.groups``: bounded atomic steps, logged)."""

from __future__ import annotations

from twisted.web.template import Tag

from ..groups import Grouping
from . import pages
from .i18n import N_
from .layout import Ctx, button, empty, post_form, table, tags

BY_LABEL = {"errtype": N_("Error class"), "jobtype": N_("Job type")}
TITLES = {
    ("retries", "errtype"): N_("Retries by error class"),
    ("retries", "jobtype"): N_("Retries by job type"),
    ("dead", "errtype"): N_("Dead by error class"),
    ("dead", "jobtype"): N_("Dead by job type"),
}
KINDS = {"retries": pages.SET_KINDS["retries"], "morgue": pages.SET_KINDS["dead"]}


def group_links(ctx: Ctx, kind: pages.SetKind, active: str = "") -> Tag:
    """'Group by: Error class · Job type' chips, and back to the list."""
    chips = [
        tags.a(
            ctx._(label),
            href=ctx.url(f"{kind.path}/groups", by=by),
            class_="chip active" if by == active else "chip",
            **({"aria-current": "true"} if by == active else {}),
        )
        for by, label in BY_LABEL.items()
    ]
    if active:
        chips.insert(0, tags.a(ctx._("List"), href=ctx.url(kind.path), class_="chip"))
    return tags.nav(
        tags.span(ctx._("Group by"), class_="muted"),
        *chips,
        class_="chips group-by",
        **{"aria-label": ctx._("Group by")},
    )


def _list_link(ctx: Ctx, kind: pages.SetKind, by: str, value: str) -> str:
    """The list filtered to a group: exactly by job type; by error class the
    text filter finds the class name (and, rarely, a job mentioning it)."""
    if by == "jobtype":
        return ctx.url(kind.path, jobtype=value)
    return ctx.url(kind.path, q=f'"errtype":"{value}"')


def grouped(ctx: Ctx, kind: pages.SetKind, by: str, result: Grouping) -> Tag:
    head = tags.div(group_links(ctx, kind, by), class_="list-head")
    if not result.groups:
        return tags.div(head, empty(ctx._(kind.empty_text)))
    total = sum(g.count for g in result.groups)
    summary = ctx.ngettext(
        "{n} job in {groups}",
        "{n} jobs in {groups}",
        total,
        groups=ctx.ngettext("{n} group", "{n} groups", len(result.groups)),
    )
    if not result.complete:
        summary += " " + ctx._("(counted the first {n} entries)", n=ctx.number(result.counted))
    rows = []
    for g in result.groups:
        name = g.value or ctx._("(none)")
        actions = post_form(
            ctx,
            f"{kind.path}/groups",
            button(
                ctx._("Retry all"),
                "retry",
                kind="sm primary",
                confirm=ctx.ngettext(
                    "Retry the {n} job of {group} now?",
                    "Retry all {n} jobs of {group} now?",
                    g.count,
                    group=name,
                ),
            ),
            button(
                ctx._("Delete all"),
                "delete",
                kind="sm danger",
                confirm=ctx.ngettext(
                    "Delete the {n} job of {group}? This cannot be undone.",
                    "Delete all {n} jobs of {group}? This cannot be undone.",
                    g.count,
                    group=name,
                ),
            ),
            hidden={"by": by, "value": g.value},
            class_="inline",
        )
        cells = [
            tags.td(tags.a(tags.code(name), href=_list_link(ctx, kind, by, g.value))),
            tags.td(ctx.number(g.count), class_="num"),
        ]
        if by == "errtype":
            cells.append(tags.td(g.sample, class_="error"))
        cells.append(tags.td(actions, class_="actions"))
        rows.append(tags.tr(*cells, **{"data-group": g.value}))
    headers = [ctx._(BY_LABEL[by]), ctx._("Jobs")]
    headers += [ctx._("Example message")] if by == "errtype" else []
    headers.append("")
    return tags.div(
        head,
        tags.p(summary, class_="muted", **{"data-live": "summary"}),
        table(headers, rows),
    )
