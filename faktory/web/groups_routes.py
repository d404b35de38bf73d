"""Routes of the retries/dead "group by error class or job type" pages
(the views are in ``web.groups``): registered on ``WebUI.app`` on import."""

from __future__ import annotations

from ..groups import Groups
from . import pages
from .app import BadParameter, WebUI, _arg
from .groups import BY_LABEL, KINDS, TITLES, grouped

app = WebUI.app


def _kind_by(request, set_path: str) -> tuple[pages.SetKind, str]:
    by = _arg(request, "by", "errtype")
    if by not in BY_LABEL:
        raise BadParameter(by)
    return KINDS[set_path], by


async def _page(self, request, set_path: str):
    kind, by = _kind_by(request, set_path)
    ctx = await self._ctx(request)
    result = await Groups(self.server.store, self.server.reactor).count(kind.name, by)
    title = ctx._(TITLES[kind.name, by])
    live = "scanned" if result.counted > Groups.SCAN else True
    return await self._html(ctx, kind.name, title, grouped(ctx, kind, by, result), live=live)


async def _act(self, request, set_path: str):
    kind, by = _kind_by(request, set_path)
    op, value = _arg(request, "action"), _arg(request, "value")
    if op not in ("retry", "delete"):
        raise BadParameter(op)
    groups = Groups(self.server.store, self.server.reactor)
    n = await groups.act(kind.name, by, value, op, self.server.manager)
    t = self._t(request)
    name = value or t._("(none)")
    if op == "retry":
        message = t.ngettext(
            "Queued for retry: {n} job of {group}.",
            "Queued for retry: {n} jobs of {group}.",
            n,
            group=name,
        )
    else:
        message = t.ngettext(
            "Deleted: {n} job of {group}.", "Deleted: {n} jobs of {group}.", n, group=name
        )
    return self._redirect(request, f"{kind.path}/groups?by={by}", message)


@app.route("/retries/groups", methods=["GET", "HEAD"])
async def retries_groups(self, request):
    return await _page(self, request, "retries")


@app.route("/retries/groups", methods=["POST"])
async def retries_groups_act(self, request):
    return await _act(self, request, "retries")


@app.route("/morgue/groups", methods=["GET", "HEAD"])
async def dead_groups(self, request):
    return await _page(self, request, "morgue")


@app.route("/morgue/groups", methods=["POST"])
async def dead_groups_act(self, request):
    return await _act(self, request, "morgue")
