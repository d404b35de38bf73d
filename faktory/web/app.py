"""Klein routes of the web UI.  ``WebUI(server)`` holds no globals: each
server instance gets its own app (``app`` is bound per instance).

Routes read request parameters, call ``faktory.admin`` (the same operations
the protocol and the CLI use) and hand the data to ``pages``; ``guard``
adds auth, cross-origin protection and the proxy prefix in front of all."""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from klein import Klein
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.template import Tag, flattenString

from .. import health
from ..audit import audit, web_user
from ..awaitable import resolve
from ..errors import RedisRefused, StorageUnavailable, gather
from ..job import MAX_PRIORITY, MIN_PRIORITY, QUEUE_NAME
from ..locate import Finder
from . import display, hosts, i18n, layout, pages
from .groups import KINDS, group_links
from .guard import Guard, script_prefix
from .live import control as live_control
from .orphans import release_cell
from .queue_filter import QueueFilter

if TYPE_CHECKING:  # the server builds this; imports run downwards only
    from ..server import FaktoryServer

log = Logger()

FLASH_COOKIE = b"faktory_flash"


class BadParameter(ValueError):
    """A query value the page cannot use: 400 ``Invalid parameter``."""


STATIC_TYPES = {
    ".css": b"text/css; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
}
STATIC_NAME = re.compile(r"\A[a-z0-9][a-z0-9_.-]*\Z")


def _arg(request, name: str, default: str = "") -> str:
    values = request.args.get(name.encode())
    if not values:
        return default
    return values[0].decode("utf-8", "replace")


def _args(request, name: str) -> list[str]:
    return [v.decode("utf-8", "replace") for v in request.args.get(name.encode(), [])]


def _page(request) -> int:
    raw = _arg(request, "page", "1").strip() or "1"
    try:
        page = int(raw)
    except ValueError:
        raise BadParameter(raw) from None
    if page < 0:
        raise BadParameter(raw)
    return max(1, page)


def queue_token(priority: int, raw: bytes) -> str:
    """A queue entry's checkbox value: its priority and exact payload
    (base64url), so deleting it removes precisely that job."""
    return f"{priority}:" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def parse_queue_token(token: str) -> tuple[int, bytes]:
    pri, _, b64 = token.partition(":")
    try:
        priority = int(pri)
        raw = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
    except (ValueError, binascii.Error):
        raise BadParameter(token) from None
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise BadParameter(token)
    return priority, raw


# URL path of each set page -> its kind (``/morgue`` is the dead set, as in the real UI).
_SET_BY_PATH = {kind.path.strip("/"): kind for kind in pages.SET_KINDS.values()}
_SET_PATHS = "any(" + ", ".join(sorted(_SET_BY_PATH)) + ")"


class WebUI:
    app = Klein()

    def __init__(self, server: FaktoryServer) -> None:
        self.server = server

    def resource(self):
        return Guard(self.app.resource(), self._password, hosts.policy_for(self.server.settings))

    def _password(self) -> str:
        return getattr(self.server.settings, "web_password", "") or self.server.password or ""

    # -- helpers ----------------------------------------------------------------
    async def _ctx(self, request) -> layout.Ctx:
        info = await self.server.admin.info()
        flash = ""
        cookie = request.getCookie(FLASH_COOKIE)
        if cookie:
            flash = unquote(cookie.decode("latin-1"))[:300]
            self._set_flash(request, "", expire=True)
        return layout.Ctx(
            server=self.server,
            request=request,
            prefix=script_prefix(request),
            now=self.server.reactor.seconds(),
            info=info,
            flash=flash,
            pages=list(self.server.web_pages),
            t=i18n.for_request(request),
        )

    def _set_flash(self, request, message: str, expire: bool = False) -> None:
        request.addCookie(
            FLASH_COOKIE,
            quote(message).encode(),
            path=(script_prefix(request) or "") + "/",
            max_age="0" if expire else "60",
            httpOnly=True,
            sameSite="strict",
        )

    def _redirect(self, request, path: str, message: str = "", code: int = 302) -> bytes:
        """Redirect to a UI path; after a POST, tell the operator what happened
        (``message`` already in the request's language: see ``_t``)."""
        if message:
            self._set_flash(request, message)
        request.setResponseCode(code)
        request.setHeader(b"Location", (script_prefix(request) + path).encode())
        return b""

    @staticmethod
    def _t(request) -> i18n.Translator:
        """The request's language, for flash messages and titles."""
        return i18n.for_request(request)

    async def _html(
        self, ctx: layout.Ctx, active: str, title: str, body, live: bool | str = False, **kw
    ) -> bytes:
        """A page in the layout; ``live`` pages refresh themselves (``web.live``;
        ``live="scanned"``: a page drawn by scanning, refreshed less often)."""
        ctx.request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        ctx.request.setHeader(b"Cache-Control", b"no-store")
        ctx.request.setHeader(b"Vary", b"Accept-Language, Cookie")  # the language served
        if live:
            kw["live"] = live_control(ctx, scanned=live == "scanned")
        return await layout.render_page(ctx, active, title, body, **kw)

    @app.handle_errors(BadParameter)
    def bad_parameter(self, request, failure):
        request.setResponseCode(400)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"Invalid parameter"

    @app.handle_errors(StorageUnavailable, RedisRefused)
    def storage_unavailable(self, request, failure):
        request.setResponseCode(503)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Retry-After", b"5")
        return str(failure.value).encode()

    # -- JSON -------------------------------------------------------------------
    @app.route("/stats")
    async def stats(self, request):
        info = await self.server.admin.info()
        request.setHeader("Content-Type", "application/json")
        request.setHeader("Cache-Control", "no-cache")
        return json.dumps(info)

    @app.route("/health")
    async def health(self, request):
        """Readiness: 200 only when Redis answers a PING within a second,
        else 503 with the reason (``faktory.health``)."""
        code, doc = await health.report(self.server)
        request.setResponseCode(code)
        request.setHeader("Content-Type", "application/json")
        request.setHeader("Cache-Control", "no-store")
        if code != 200:
            request.setHeader("Retry-After", "5")
        return json.dumps(doc)

    @app.route("/health/live")
    async def live(self, request):
        """Liveness: the process answers HTTP (whatever Redis does)."""
        request.setHeader("Content-Type", "application/json")
        return b'{"status": "alive"}'

    @app.route("/static/<name>")
    async def static(self, request, name):
        """Package assets only (no listing, no paths); cacheable for an hour,
        as their URLs carry a content hash."""
        kind = STATIC_TYPES.get(os.path.splitext(name)[1])
        path = os.path.join(layout.STATIC_DIR, name)
        if kind is None or not STATIC_NAME.match(name) or not os.path.isfile(path):
            request.setResponseCode(404)
            return b"Not found"
        with open(path, "rb") as f:
            data = f.read()
        request.setHeader(b"Content-Type", kind)
        request.setHeader(b"Cache-Control", b"public, max-age=3600")
        return data

    # -- dashboard --------------------------------------------------------------
    @app.route("/")
    async def dashboard(self, request):
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            request.setHeader(b"Allow", b"GET, HEAD")
            return b"get only"
        try:
            days = int(_arg(request, "days", "30"))
        except ValueError:
            days = 30
        days = min(max(days, 1), 180)
        ctx = await self._ctx(request)
        history = await self.server.admin.history(days)
        body = pages.dashboard(ctx, history, days)
        return await self._html(ctx, "dashboard", ctx._("Dashboard"), body)

    # -- queues -------------------------------------------------------------------
    @app.route("/queues", methods=["GET", "HEAD"])
    async def queues(self, request):
        ctx = await self._ctx(request)
        admin = self.server.admin
        sizes = ctx.info["faktory"]["queues"]
        names = sorted(sizes)
        paused, latency = await gather(
            [
                defer.ensureDeferred(resolve(admin.paused_queues())),
                defer.ensureDeferred(admin.queue_latency(names)),
            ]
        )
        rows = [pages.QueueRow(n, sizes[n], latency.get(n, 0.0), n in paused) for n in names]
        return await self._html(ctx, "queues", ctx._("Queues"), pages.queues(ctx, rows), live=True)

    @app.route("/queues/<name>", methods=["GET", "HEAD"])
    async def queue(self, request, name):
        ctx = await self._ctx(request)
        if name not in ctx.info["faktory"]["queues"]:
            return self._redirect(request, "/queues")
        page = _page(request)
        admin = self.server.admin
        filters = QueueFilter.from_args(lambda k: _arg(request, k))
        more = False
        if filters:
            total = ctx.info["faktory"]["queues"][name]
            rows, more = await Finder(self.server.store).queue_filter(
                name,
                (page - 1) * layout.PER_PAGE,
                layout.PER_PAGE,
                filters.jid,
                filters.jobtype,
                filters.text,
            )
        else:
            total, rows = await admin.queue_page(
                name, (page - 1) * layout.PER_PAGE, layout.PER_PAGE
            )
        last = max(1, (total + layout.PER_PAGE - 1) // layout.PER_PAGE)
        if page > last and not filters:
            page = last
            total, rows = await admin.queue_page(
                name, (page - 1) * layout.PER_PAGE, layout.PER_PAGE
            )
        entries = [(pri, raw, display.decode_job(raw)) for pri, raw in rows]
        paused = name in await resolve(admin.paused_queues())
        body = pages.queue(ctx, name, total, entries, page, paused, queue_token, filters, more)
        toggle = layout.post_form(
            ctx,
            f"/queues/{name}",
            layout.button(ctx._("Resume"), "resume", kind="primary")
            if paused
            else layout.button(ctx._("Pause"), "pause"),
            layout.button(
                ctx._("Clear queue"),
                "delete",
                kind="danger",
                confirm=ctx.ngettext(
                    "Delete {n} job in {queue}?",
                    "Delete all {n} jobs in {queue}?",
                    total,
                    queue=name,
                ),
            ),
            hidden={"return": "queue"},
            class_="inline",
        )
        title = ctx._("Queue {name}", name=name)
        live = "scanned" if filters and total > Finder.SCAN else True
        return await self._html(ctx, "queues", title, body, actions=toggle, live=live)

    @app.route("/queues/<name>", methods=["POST"])
    async def queue_action(self, request, name):
        admin = self.server.admin
        t = self._t(request)
        if not QUEUE_NAME.match(name):
            return self._redirect(request, "/queues")
        action = _arg(request, "action")
        back = f"/queues/{quote(name)}" if _arg(request, "return") == "queue" else "/queues"
        if action == "delete_selected" or (action == "delete" and _args(request, "bkey")):
            items = [parse_queue_token(t) for t in _args(request, "bkey")]
            n = await admin.delete_queue_jobs(name, items)
            audit(web_user(request), "deleted {n} job(s) from queue {q}", n=n, q=name)
            page = _page(request)
            return self._redirect(
                request,
                f"/queues/{quote(name)}?page={page}",
                t.ngettext(
                    "Deleted {n} job from {queue}.", "Deleted {n} jobs from {queue}.", n, queue=name
                ),
            )
        if action == "delete":
            size = (await self.server.store.queue_sizes([name])).get(name, 0)
            await admin.remove_queues([name])
            audit(web_user(request), "cleared queue {q} ({n} job(s))", q=name, n=size)
            return self._redirect(
                request,
                "/queues",
                t.ngettext(
                    "Queue {queue} cleared: {n} job deleted.",
                    "Queue {queue} cleared: {n} jobs deleted.",
                    size,
                    queue=name,
                ),
            )
        if action == "pause":
            await admin.pause_queues([name])
            audit(web_user(request), "paused queue {q}", q=name)
            return self._redirect(request, back, t._("Queue {queue} paused.", queue=name))
        if action == "resume":
            await admin.resume_queues([name])
            audit(web_user(request), "resumed queue {q}", q=name)
            return self._redirect(request, back, t._("Queue {queue} resumed.", queue=name))
        request.setResponseCode(400)
        return f"invalid action: {action}".encode()

    # -- busy -------------------------------------------------------------------------
    @app.route("/busy", methods=["GET", "HEAD"])
    async def busy(self, request):
        ctx = await self._ctx(request)
        page = _page(request)
        admin = self.server.admin
        workers = await admin.worker_records()
        total, reservations = await admin.busy_page((page - 1) * layout.PER_PAGE, layout.PER_PAGE)
        by_wid: dict[str, int] | None = None
        if total <= 5000:
            by_wid = {}
            for raw in await self.server.store.reservations():
                try:
                    wid = json.loads(raw).get("wid") or ""
                except (ValueError, AttributeError):
                    continue  # not a reservation: the list shows it as unreadable
                by_wid[wid] = by_wid.get(wid, 0) + 1
        cell = release_cell(ctx, workers)
        body = pages.busy(ctx, workers, by_wid, total, reservations, page, cell)
        return await self._html(ctx, "busy", ctx._("Busy"), body, live=True)

    @app.route("/busy", methods=["POST"])
    async def busy_action(self, request):
        wid = _arg(request, "wid")
        signal = _arg(request, "signal")
        if signal not in ("quiet", "terminate"):
            request.setResponseCode(400)
            return f"Invalid signal: {signal}".encode()
        workers = self.server.workers
        t = self._t(request)
        if wid == "all":
            await workers.signal_all(signal)
            if signal == "quiet":
                msg = t._("Told every worker process to quiet.")
            else:
                msg = t._("Told every worker process to stop.")
        else:
            state = await workers.signal(wid, signal)
            if not state:
                msg = t._("No worker process {wid}.", wid=wid)
            elif signal == "quiet":
                msg = t._("Told {wid} to quiet.", wid=wid)
            else:
                msg = t._("Told {wid} to stop.", wid=wid)
        audit(web_user(request), "sent {signal} to worker {wid}", signal=signal, wid=wid)
        return self._redirect(request, "/busy", msg)

    # -- retries, scheduled, dead -----------------------------------------------
    def _set_query(self, request, kind: pages.SetKind) -> pages.SetQuery:
        order = _arg(request, "order")
        if order not in ("", "asc", "desc"):
            raise BadParameter(order)
        reverse = kind.default_reverse if not order else order == "desc"
        return pages.SetQuery(
            page=_page(request),
            reverse=reverse,
            jobtype=_arg(request, "jobtype").strip()[:200],
            text=_arg(request, "q").strip()[:200],
        )

    async def _set_list(self, request, kind: pages.SetKind):
        ctx = await self._ctx(request)
        q = self._set_query(request, kind)
        admin = self.server.admin
        per = layout.PER_PAGE
        total, rows, more = await admin.set_page(
            kind.name, (q.page - 1) * per, per, q.reverse, q.jobtype, q.text
        )
        if total is not None and q.page > 1 and not rows:
            q.page = max(1, (total + per - 1) // per)
            total, rows, more = await admin.set_page(
                kind.name, (q.page - 1) * per, per, q.reverse, q.jobtype, q.text
            )
        size = ctx.info["faktory"]["sets"][kind.name]
        entries = [(key, raw, display.decode_job(raw)) for key, raw in rows]
        extra = group_links(ctx, kind) if kind in KINDS.values() and size else ""
        body = pages.set_list(ctx, kind, q, total, size, entries, more, extra)
        return await self._html(ctx, kind.name, ctx._(kind.title), body, live=True)

    async def _set_action(self, request, kind: pages.SetKind):
        action = _arg(request, "action")
        keys = _args(request, "key")
        back = _arg(request, "return")
        prefix = script_prefix(request)
        if not back.startswith(prefix + kind.path) or back.startswith("//"):
            back = prefix + kind.path
        back = back[len(prefix) :]
        t = self._t(request)
        if not keys:
            return self._redirect(request, back, t._("Nothing selected."))
        try:
            n = await self.server.admin.act_on_set(
                kind.name, action, None if keys == ["all"] else keys
            )
        except ValueError as e:
            request.setResponseCode(400)
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return str(e).encode()
        audit(
            web_user(request),
            "{action} {n} job(s) in {set} ({which})",
            action=action,
            n=n,
            set=kind.name,
            which="all" if keys == ["all"] else f"{len(keys)} selected",
        )
        message = {
            "delete": t.ngettext("Deleted {n} job.", "Deleted {n} jobs.", n),
            "retry": t.ngettext("Queued {n} job for retry.", "Queued {n} jobs for retry.", n),
            "add_to_queue": t.ngettext(
                "Added {n} job to its queue.", "Added {n} jobs to their queues.", n
            ),
            "kill": t.ngettext(
                "Moved {n} job to the Dead set.", "Moved {n} jobs to the Dead set.", n
            ),
        }[action]
        return self._redirect(request, back, message)

    async def _set_entry(self, request, kind: pages.SetKind, key: str):
        key = unquote(key)
        raw = await self.server.admin.set_entry(kind.name, key)
        if raw is None:
            jid = key.partition("|")[2]
            if jid:  # an old link: the job's stable page finds where it went
                return self._redirect(request, "/job/" + quote(jid, safe=""), code=307)
            gone = self._t(request)._("That job is no longer there.")
            return self._redirect(request, kind.path, gone, code=307)
        ctx = await self._ctx(request)
        job = display.decode_job(raw)
        body = pages.job_page(ctx, kind, key, job)
        actions = pages.job_actions(ctx, kind, key)
        title = f"{display.job_type(job)} {job.get('jid', '')}"
        return await self._html(ctx, kind.name, title, body, actions=actions)

    # One route per action over the three sets (``/retries``, ``/scheduled``,
    # ``/morgue``): the set's ``SetKind`` says how its pages differ.
    @app.route(f"/<{_SET_PATHS}:where>", methods=["GET", "HEAD"])
    async def set_list(self, request, where):
        return await self._set_list(request, _SET_BY_PATH[where])

    @app.route(f"/<{_SET_PATHS}:where>", methods=["POST"])
    async def set_action(self, request, where):
        return await self._set_action(request, _SET_BY_PATH[where])

    @app.route(f"/<{_SET_PATHS}:where>/<path:key>", methods=["GET", "HEAD"])
    async def set_entry(self, request, where, key):
        return await self._set_entry(request, _SET_BY_PATH[where], key)

    @app.route("/dead")
    async def dead(self, request):
        return self._redirect(request, "/morgue")

    # -- language -------------------------------------------------------------------
    @app.route("/locale", methods=["POST"])
    async def choose_locale(self, request):
        """The footer's language selector: remember the choice in a cookie
        (an unknown value forgets it: the browser's languages apply again)
        and go back to the page it was made on."""
        chosen = i18n.match(_arg(request, "locale")[:40])
        prefix = script_prefix(request)
        back = _arg(request, "return")
        rest = back[len(prefix) :]
        if (
            not back.startswith(prefix + "/")
            or rest[1:2] in ("/", "\\")
            or any(ord(c) < 32 for c in back)
        ):
            back = prefix + "/"
        request.addCookie(
            i18n.COOKIE,
            (chosen or "").encode(),
            path=prefix + "/",
            max_age="0" if chosen is None else str(365 * 86400),
            httpOnly=True,
            sameSite="lax",
        )
        request._faktory_translator = i18n.translator(chosen or i18n.DEFAULT)
        return self._redirect(request, back[len(prefix) :] or "/", code=303)

    # -- debug --------------------------------------------------------------------
    @app.route("/debug", methods=["GET", "HEAD"])
    async def debug(self, request):
        ctx = await self._ctx(request)
        text, rtt = await self.server.admin.redis_debug()
        body = pages.debug(ctx, text, rtt, pages.debug_facts(ctx, text))
        return await self._html(ctx, "debug", ctx._("Debug"), body)

    # -- plugin pages ---------------------------------------------------------------
    @app.route("/<path:sub>", methods=["GET", "HEAD", "POST"])
    async def plugin_page(self, request, sub):
        page = next((p for p in self.server.web_pages if p.path.strip("/") == sub.strip("/")), None)
        if page is None:
            ctx = await self._ctx(request)
            request.setResponseCode(404)
            body = pages.not_found(ctx, ctx._("No such page."))
            return await self._html(ctx, "none", ctx._("Not found"), body)
        if page.raw:
            if request.method not in (b"GET", b"HEAD"):
                request.setResponseCode(405)
                request.setHeader("Allow", "GET, HEAD")
                return b""
            return await resolve(page.render(request))
        result = await resolve(page.render(request))
        if request.code in (301, 302, 303, 307, 308) or request.finished:
            return result if isinstance(result, bytes | str) else b""
        ctx = await self._ctx(request)
        active = "plugin:/" + page.path.strip("/")
        if isinstance(result, bytes):
            result = result.decode()
        title = ctx._(page.title)
        if isinstance(result, str):
            return await self._html(ctx, active, title, None, raw=result)
        if isinstance(result, Tag) or hasattr(result, "render"):
            return await self._html(ctx, active, title, result)
        # Anything else: show it as text rather than guess at HTML.
        fragment = (await flattenString(None, str(result))).decode()
        return await self._html(ctx, active, title, None, raw=fragment)


__all__ = ["WebUI", "queue_token", "parse_queue_token"]
