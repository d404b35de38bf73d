"""The web UI's HTTP access log: off unless ``[web] access_log = true``.

Twisted's ``Site`` writes every request to the global log at info level by
default; the dashboard polls ``/stats`` every few seconds, which would bury
the lines that matter.  When on, requests go through ``twisted.logger`` (so
to the server's log), the polling and static routes at debug level only."""

from __future__ import annotations

from twisted.logger import Logger

log = Logger()

QUIET = (b"/stats", b"/health", b"/static/")


def configure(site, config: dict) -> None:
    """Replace ``site.log`` by ours (or by nothing, the default)."""
    web = config.get("web") if isinstance(config.get("web"), dict) else {}
    enabled = web.get("access_log") is True
    site.log = _logger(site) if enabled else (lambda request: None)
    site.noisy = False  # the start-up summary says where it listens


def _logger(site):
    def write(request) -> None:
        path = request.uri.split(b"?", 1)[0]
        quiet = any(path == q or (q.endswith(b"/") and path.startswith(q)) for q in QUIET)
        emit = log.debug if quiet else log.info
        emit(
            'web {client} "{method} {uri}" {code} {size} {user}',
            client=request.getClientAddress().host
            if hasattr(request.getClientAddress(), "host")
            else "-",
            method=request.method.decode("latin-1"),
            uri=request.uri.decode("latin-1")[:300],
            code=request.code,
            size=request.sentLength,
            user=_user(request),
        )

    return write


def _user(request) -> str:
    try:
        return (request.getUser() or b"").decode("utf-8", "replace") or "-"
    except Exception:  # noqa: BLE001 - a malformed header is not worth failing a log line
        return "-"
