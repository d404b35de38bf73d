"""The frame around every page (nav, summary bar, footer) and the small
building blocks pages share: links, forms, buttons, pagers, times.

Pages are ``twisted.web.template`` tags, so every string that reaches the
HTML is escaped by the flattener; raw HTML exists only for plugin pages'
fragments, spliced in after flattening (``render_page``).

Every word a page shows goes through the request's translator:
``ctx._("Text {name}", name=...)``, ``ctx.ngettext(...)``, and numbers and
times through ``ctx.t`` (``number``, ``time_ago``, ``datetime``, ``duration``)
or ``when(ctx, ts)``.  Module-level labels are marked ``N_("...")`` and
translated where they are drawn (see ``i18n``)."""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from twisted.web.template import Comment, Tag, flattenString
from twisted.web.template import tags as _known

from .. import FAKTORY_COMPAT_VERSION, __version__
from ..startup import public_endpoint
from . import alerts, display, i18n
from .i18n import N_


class _Tags:
    """``twisted.web.template.tags``, plus HTML5 names it lacks (``main``)."""

    def __getattr__(self, name: str) -> Tag:
        try:
            return getattr(_known, name)
        except AttributeError:
            return Tag(name)


tags = _Tags()

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
PER_PAGE = 25

TABS = (
    ("dashboard", N_("Dashboard"), "/"),
    ("busy", N_("Busy"), "/busy"),
    ("queues", N_("Queues"), "/queues"),
    ("retries", N_("Retries"), "/retries"),
    ("scheduled", N_("Scheduled"), "/scheduled"),
    ("dead", N_("Dead"), "/morgue"),
)


def _asset_version(names: tuple[str, ...]) -> str:
    """Content hash for static URLs, so browsers caching them for an hour
    still pick up a new release at once."""
    digest = hashlib.sha1()
    for name in names:
        try:
            with open(os.path.join(STATIC_DIR, name), "rb") as f:
                digest.update(f.read())
        except OSError:
            pass
    return digest.hexdigest()[:10]


ASSET_VERSION = _asset_version(("faktory.css", "faktory.js", "logo.svg"))


@dataclass
class Ctx:
    """One request's view of the server: what every page needs to draw."""

    server: Any
    request: Any
    prefix: str
    now: float
    info: dict
    flash: str = ""
    pages: list = field(default_factory=list)
    t: i18n.Translator = field(default_factory=lambda: i18n.translator(i18n.DEFAULT))

    def _(self, message: str, **values: Any) -> str:
        """The request's translation of ``message`` (see ``i18n.Translator``)."""
        return self.t._(message, **values)

    def ngettext(self, singular: str, plural: str, n: int, **values: Any) -> str:
        return self.t.ngettext(singular, plural, n, **values)

    def number(self, n: int | float | None) -> str:
        return self.t.number(n)

    def url(self, path: str, **query: Any) -> str:
        """A link inside the UI (prefixed for a reverse proxy), with query."""
        q = {k: v for k, v in query.items() if v not in (None, "")}
        return self.prefix + path + ("?" + urlencode(q) if q else "")

    def static(self, name: str) -> str:
        return f"{self.prefix}/static/{name}?v={ASSET_VERSION}"


def quote_key(key: str) -> str:
    return quote(key, safe="")


def job_href(ctx: Ctx, jid: str, where: str = "", score: str = "") -> str:
    """The stable link to a job (``/job/<jid>``, see ``web.jobs``); ``where``
    and ``score`` say where it was listed, so a job that has not moved is
    read by its score rather than searched for."""
    return ctx.url(
        "/job/" + quote(jid, safe=""), **({"in": where, "score": score} if where else {})
    )


# -- small pieces -------------------------------------------------------------
MIN_TIME, MAX_TIME = -62135596800.0, 253402300799.0  # 0001-01-01 .. 9999-12-31 UTC


def valid_time(ts: Any) -> bool:
    """Whether ``ts`` (Unix seconds) is a time the calendar functions can show."""
    return isinstance(ts, int | float) and MIN_TIME <= ts <= MAX_TIME


def when(ctx: Ctx, ts: float | None) -> Tag | str:
    """A relative time in the request's language, the exact UTC time on hover."""
    if ts is None:
        return "-"
    if not valid_time(ts):
        # A stored value no calendar can show (NaN, year 99999): say so.
        return tags.span(ctx._("invalid"), class_="invalid", title=repr(ts))
    return tags.time(
        ctx.t.time_ago(ts, ctx.now),
        datetime=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)),
        title=ctx.t.datetime(ts),
    )


def sentence(text: str, **parts: Any) -> list[Any]:
    """A translated sentence whose ``{placeholders}`` are tags (links, times):
    the pieces in the translation's order, ready to put in a tag."""
    out: list[Any] = []
    pos = 0
    for m in re.finditer(r"\{(\w+)\}", text):
        if m.group(1) not in parts:
            continue
        out += [text[pos : m.start()], parts[m.group(1)]]
        pos = m.end()
    out.append(text[pos:])
    return [p for p in out if p != ""]


def button(
    label: str, value: str, name: str = "action", kind: str = "", confirm: str = "", **extra: str
) -> Tag:
    attrs: dict[str, str] = {"type": "submit", "name": name, "value": value, **extra}
    attrs["class"] = f"btn {kind}".strip()
    if confirm:
        attrs["data-confirm"] = confirm
    return tags.button(label, **attrs)


def post_form(ctx: Ctx, path: str, *children: Any, hidden: dict | None = None, **attrs) -> Tag:
    form = tags.form(method="post", action=ctx.url(path), **attrs)
    for k, v in (hidden or {}).items():
        form(tags.input(type="hidden", name=k, value=str(v)))
    return form(*children)


def badge(text: str, kind: str = "") -> Tag:
    return tags.span(text, class_=f"badge {kind}".strip())


def empty(text: str) -> Tag:
    return tags.div(tags.p(text), class_="empty")


def table(headers: list[Any], rows: list[Tag], cls: str = "") -> Tag:
    head = tags.tr(*[tags.th(h) for h in headers])
    return tags.div(
        tags.table(tags.thead(head), tags.tbody(*rows), class_=f"table {cls}".strip()),
        class_="table-wrap",
    )


def check_all(ctx: Ctx) -> Tag:
    label = ctx._("Select all on this page")
    return tags.input(type="checkbox", title=label, **{"aria-label": label, "data-check-all": "1"})


def args_cell(job: dict) -> Tag:
    return tags.td(
        *[tags.code(a, class_="arg") for a in display.short_args(job)],
        class_="args",
    )


def pager(
    ctx: Ctx, path: str, page: int, last: int | None, more: bool, query: dict | None = None
) -> Tag | str:
    """«  ‹  1 … 4 [5] 6 … 20  ›  » ; with ``last=None`` (a filtered view
    whose size is unknown) only the neighbours are shown."""
    query = dict(query or {})
    if last is not None and last <= 1:
        return ""
    if last is None and page == 1 and not more:
        return ""

    def link(label: str, target: int | None, current: bool = False, title: str = "") -> Tag:
        if target is None or current:
            return tags.li(
                tags.span(label, **({"aria-current": "page"} if current else {})),
                class_="current" if current else "disabled",
            )
        return tags.li(tags.a(label, href=ctx.url(path, **query, page=target), title=title))

    items = [
        link("«", 1 if page > 1 else None, title=ctx._("First page")),
        link("‹", page - 1 if page > 1 else None, title=ctx._("Previous page")),
    ]
    if last is None:
        items.append(link(str(page), page, current=True))
    else:
        shown = sorted({1, last, *range(max(1, page - 2), min(last, page + 2) + 1)})
        prev = 0
        for n in shown:
            if n - prev > 1:
                items.append(tags.li(tags.span("…"), class_="gap"))
            items.append(link(ctx.number(n), n, current=n == page))
            prev = n
    has_next = more if last is None else page < last
    items.append(link("›", page + 1 if has_next else None, title=ctx._("Next page")))
    if last is not None:
        items.append(link("»", last if page < last else None, title=ctx._("Last page")))
    return tags.nav(
        tags.ul(*items), class_="pager", **{"aria-label": ctx._("Pages"), "data-live": "pager"}
    )


# -- the frame ----------------------------------------------------------------
def _summary(ctx: Ctx) -> Tag:
    fk = ctx.info["faktory"]
    entries = [
        ("processed", ctx._("Processed"), fk["total_processed"], None),
        ("failed", ctx._("Failed"), fk["total_failures"], None),
        ("busy", ctx._("Busy"), fk["sets"]["working"], "/busy"),
        ("enqueued", ctx._("Enqueued"), fk["total_enqueued"], "/queues"),
        ("retries", ctx._("Retries"), fk["sets"]["retries"], "/retries"),
        ("scheduled", ctx._("Scheduled"), fk["sets"]["scheduled"], "/scheduled"),
        ("dead", ctx._("Dead"), fk["sets"]["dead"], "/morgue"),
    ]
    cells = []
    for key, label, value, path in entries:
        inner = [
            tags.span(ctx.number(value), class_="value", **{"data-stat": key}),
            tags.span(label, class_="label"),
        ]
        if path:
            cells.append(tags.li(tags.a(*inner, href=ctx.url(path)), class_=f"stat-{key}"))
        else:
            cells.append(tags.li(tags.div(*inner), class_=f"stat-{key}"))
    return tags.section(tags.ul(*cells), class_="summary", **{"aria-label": ctx._("Summary")})


def _nav(ctx: Ctx, active: str) -> Tag:
    links = []
    for key, label, path in TABS:
        attrs = {"href": ctx.url(path)}
        if key == active:
            attrs["aria-current"] = "page"
            attrs["class"] = "active"
        links.append(tags.li(tags.a(ctx._(label), **attrs)))
    for page in ctx.pages:
        if not page.nav:
            continue
        path = "/" + page.path.strip("/")
        attrs = {"href": ctx.url(path)}
        if active == "plugin:" + path:
            attrs["aria-current"] = "page"
            attrs["class"] = "active"
        links.append(tags.li(tags.a(ctx._(page.title), **attrs)))
    busy = ctx.info["faktory"]["sets"]["working"]
    state = "active" if busy else "idle"
    state_text = ctx._("active") if busy else ctx._("idle")
    return tags.header(
        tags.div(
            tags.a(
                tags.img(src=ctx.static("logo.svg"), alt="", width="28", height="28"),
                tags.span("Faktory"),
                href=ctx.url("/"),
                class_="brand",
            ),
            tags.span(
                tags.span(class_="dot"),
                tags.span(state_text, class_="status-text"),
                class_=f"status {state}",
                title=ctx._("Jobs in progress: {n}", n=ctx.number(busy)),
                **{"data-status": "1"},
            ),
            class_="brand-row",
        ),
        tags.nav(tags.ul(*links), class_="tabs", **{"aria-label": ctx._("Main")}),
        tags.form(
            tags.input(
                type="search",
                name="jid",
                placeholder=ctx._("Find job by JID"),
                required="required",
                **{"aria-label": ctx._("Find job by JID")},
            ),
            method="get",
            action=ctx.url("/job"),
            class_="find",
            role="search",
        ),
        class_="topbar",
    )


def _footer(ctx: Ctx) -> Tag:
    s = ctx.server.settings
    return tags.footer(
        tags.ul(
            tags.li(f"faktory-server {__version__}", class_="version"),
            tags.li(f"Faktory {FAKTORY_COMPAT_VERSION}", class_="protocol-version"),
            tags.li(tags.code(public_endpoint(s.bind)), title=ctx._("Work protocol endpoint")),
            tags.li(tags.span(ctx.t.clock(ctx.now), **{"data-clock": "1"})),
            tags.li(s.environment, class_=f"env env-{s.environment}"),
            tags.li(tags.a(ctx._("Debug"), href=ctx.url("/debug"))),
            _docs_link(ctx),
            tags.li(_language_form(ctx)),
        ),
        class_="footer",
    )


def _docs_link(ctx: Ctx) -> Tag | str:
    """This server's documentation where the operator published it
    (``[web] docs_url``); none rather than the Go server's wiki."""
    web = ctx.server.settings.config.get("web")
    url = web.get("docs_url") if isinstance(web, dict) else ""
    if not url:
        return ""
    return tags.li(tags.a(ctx._("Docs"), href=url, rel="noopener noreferrer"))


def _language_form(ctx: Ctx) -> Tag:
    """The footer's language selector: a same-origin POST to ``/locale``
    (the script submits it on change; the button is for browsers without)."""
    here = "/"
    if ctx.request is not None:
        here = ctx.request.uri.decode("utf-8", "replace")
        if not here.startswith(ctx.prefix + "/"):
            here = ctx.prefix + here
    options = [
        tags.option(
            name, value=tag, lang=tag, **({"selected": "selected"} if tag == ctx.t.tag else {})
        )
        for tag, name in i18n.LANGUAGES.items()
    ]
    label = ctx._("Language")
    return post_form(
        ctx,
        "/locale",
        tags.select(*options, name="locale", title=label, **{"aria-label": label}),
        tags.button(ctx._("Change"), type="submit", class_="btn sm"),
        hidden={"return": here},
        class_="language",
    )


async def render_page(
    ctx: Ctx,
    active: str,
    title: str,
    body: Any,
    raw: str | None = None,
    actions: Any = "",
    live: Any = "",
) -> bytes:
    """The whole HTML document.  ``raw`` (a plugin's HTML fragment) replaces
    the body; it is spliced in after flattening at a marker no escaped value
    can produce (``<`` is always escaped in values).  ``live`` (the polling
    control of ``web.live``) makes the page refresh itself."""
    marker = None
    if raw is not None:
        marker = "faktory-raw-" + uuid.uuid4().hex
        body = tags.div(Comment(marker), class_="plugin")
    flash = tags.div(ctx.flash, class_="flash", role="status") if ctx.flash else ""
    doc = tags.html(lang=ctx.t.tag, dir=ctx.t.dir, **{"data-i18n": ctx.t.js_blob()})(
        tags.head(
            tags.meta(charset="utf-8"),
            tags.meta(name="viewport", content="width=device-width, initial-scale=1"),
            tags.title(f"{title} · Faktory"),
            tags.link(rel="icon", href=ctx.static("logo.svg"), type="image/svg+xml"),
            tags.link(rel="stylesheet", href=ctx.static("faktory.css")),
            tags.script(src=ctx.static("faktory.js"), defer="defer"),
        ),
        tags.body(**{"data-page": active.split(":")[0]})(
            _nav(ctx, active),
            _summary(ctx),
            tags.main(
                alerts.banner(ctx.server),
                flash,
                tags.div(
                    tags.h1(title),
                    live,
                    tags.div(actions, class_="page-actions", **{"data-live": "actions"}),
                    class_="page-head",
                ),
                tags.div(body, **({"data-live-root": "1"} if live else {})),
                class_="container",
            ),
            _footer(ctx),
        ),
    )
    html = b"<!DOCTYPE html>\n" + await flattenString(None, doc)
    if marker is not None:
        html = html.replace(f"<!--{marker}-->".encode(), raw.encode(), 1)
    return html
