"""What stands in front of every web UI route: the reverse-proxy prefix,
HTTP Basic auth, cross-origin protection for state-changing requests and
security headers.  Kept out of the routes so no page can forget them."""

from __future__ import annotations

import hmac
import os
import re
import time
from urllib.parse import urlsplit

from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request

from ..audit import web_user
from .hosts import HostPolicy

log = Logger()

# Paths anyone may read even when the UI has a password: exactly these, and
# files that exist in the static folder.  Anything else (a typo, /static/x/y,
# /health/z) needs the password, so no page with counters leaks to strangers.
OPEN_PATHS = ((b"health",), (b"health", b"live"))
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
STATIC_NAME = re.compile(rb"\A[a-z0-9][a-z0-9_.-]*\Z")
# Routes that change nothing and are polled by scripts: no origin check.
NO_ORIGIN_CHECK = (b"health", b"stats")
SAFE_METHODS = (b"GET", b"HEAD", b"OPTIONS")

SECURITY_HEADERS = {
    b"X-Content-Type-Options": b"nosniff",
    b"X-Frame-Options": b"DENY",
    b"Referrer-Policy": b"same-origin",
    # No inline or foreign scripts: even if some value escaped escaping, it
    # could not run.  Styles may be inline for plugin pages' fragments.
    b"Content-Security-Policy": b"default-src 'self'; script-src 'self'; "
    b"style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
}


def script_prefix(request: Request) -> str:
    """The path a reverse proxy mounts the UI under (``X-Script-Name``), or ''."""
    raw = request.getHeader(b"x-script-name") or b""
    parts = [p for p in raw.decode("utf-8", "replace").split("/") if p]
    return "/" + "/".join(parts) if parts else ""


def is_cross_origin(request: Request) -> bool:
    """True when a browser says this request comes from another site.

    Browsers send ``Sec-Fetch-Site`` (trust it) or at least ``Origin`` on
    POSTs (compare it with ``Host``).  Requests with neither do not come from
    a web page (curl, scripts) and cannot be forged by one."""
    site = request.getHeader(b"sec-fetch-site")
    if site is not None:
        return site not in (b"same-origin", b"none")
    origin = request.getHeader(b"origin")
    if origin is None:
        return False
    host = (request.getHeader(b"host") or b"").lower()
    return urlsplit(origin.decode("latin-1")).netloc.encode("latin-1").lower() != host


class Guard(Resource):
    """Wraps the Klein resource; ``password()`` is read per request so a
    changed setting applies at once."""

    isLeaf = True

    def __init__(self, inner: Resource, password, hosts: HostPolicy | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.password = password
        self.hosts = hosts or HostPolicy(None)

    def render(self, request: Request):
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)
        # Pages set text/html themselves; anything else (an error that names
        # what the client sent) must never be taken for HTML.
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        prefix = script_prefix(request)
        if prefix:
            segs = [p.encode() for p in prefix.strip("/").split("/")]
            if request.postpath[: len(segs)] == segs:
                request.prepath += request.postpath[: len(segs)]
                request.postpath = request.postpath[len(segs) :]
        first = request.postpath[0] if request.postpath else b""
        if not self.password() and not self.hosts.allows(request.getHeader(b"host")):
            request.setResponseCode(403)
            return (
                b"Forbidden: this web UI has no password and answers only to its own "
                b"address, localhost and [web] allowed_hosts (DNS rebinding protection)"
            )
        denied = None if is_public(request.postpath) else self._auth_failure(request)
        if denied is not None:
            request.setResponseCode(401)
            request.setHeader(b"WWW-Authenticate", b'Basic realm="Faktory"')
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return denied
        if (
            request.method not in SAFE_METHODS
            and first not in NO_ORIGIN_CHECK
            and is_cross_origin(request)
        ):
            request.setResponseCode(403)
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return b"Forbidden: cross-origin request refused"
        return self.inner.render(request)

    def _auth_failure(self, request: Request) -> bytes | None:
        password = self.password()
        if not password:
            return None
        header = request.getHeader(b"authorization")
        if not header or not header.lower().startswith(b"basic "):
            return b"Authorization required"
        # Any user name; only the password counts, as in Faktory.
        given = request.getPassword()
        if not hmac.compare_digest(given, password.encode()):
            _log_failed_login(request)
            return b"Authorization failed"
        return None


def is_public(path: list[bytes]) -> bool:
    """``/health``, ``/health/live`` and files of the static folder."""
    if tuple(path) in OPEN_PATHS:
        return True
    return (
        len(path) == 2
        and path[0] == b"static"
        and bool(STATIC_NAME.match(path[1]))
        and os.path.isfile(os.path.join(STATIC_DIR, path[1].decode("ascii")))
    )


_failed_logins: dict[str, list[float]] = {}  # client -> [last logged at, failures since]
FAILED_LOGIN_QUIET = 10.0  # seconds between two lines about the same client


def _log_failed_login(request: Request) -> None:
    """One warning per client per ``FAILED_LOGIN_QUIET`` seconds (with the
    count since the last), so a password-guessing loop cannot flood the log."""
    who = web_user(request)
    now = time.monotonic()
    seen = _failed_logins.get(who)
    if seen is not None and now - seen[0] < FAILED_LOGIN_QUIET:
        seen[1] += 1
        return
    if len(_failed_logins) > 10_000:
        _failed_logins.clear()
    earlier = seen[1] if seen else 0
    _failed_logins[who] = [now, 0]
    log.warn(
        "Web login failed: wrong password from {who} for {method} {path}{more}",
        who=who,
        method=request.method.decode("latin-1"),
        path=request.path.decode("latin-1", "replace")[:200],
        more=f" ({earlier} more failure(s) since the last line)" if earlier else "",
    )
