"""Start-up: which failures are the operator's to fix (one log line, no
traceback, non-zero exit) and the one summary line a started server logs."""

from __future__ import annotations

from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from . import FAKTORY_COMPAT_VERSION, __version__
from .backup import backups_enabled
from .datadir import DataDirError
from .namespace import NamespaceError
from .plugins import PluginError

log = Logger()

# Failures of a start-up that say what to fix in their message.
EXPECTED = (DataDirError, NamespaceError, PluginError, CannotListenError, RuntimeError, OSError)


def reason(failure) -> str:
    e = failure.value
    if isinstance(e, CannotListenError):
        what = e.socketError
        why = getattr(what, "strerror", None) or str(what)
        return f"cannot listen on {e.interface or '*'}:{e.port}: {why}"
    return str(e) or type(e).__name__


def summary(server) -> dict[str, str]:
    """What an operator wants to see once at start: never the password."""
    s = server.settings
    binary = server.redis_binary
    if server.redis_process is None:
        redis = f"external {_redact(s.redis_url)}"
        data = "(not used: external Redis)"
    else:
        redis = binary.describe if binary else "?"
        data = server.redis_process.data_dir
    return {
        "version": f"faktory-server {__version__} (Faktory protocol {FAKTORY_COMPAT_VERSION})",
        "environment": s.environment,
        "config": ", ".join(s.config_files) or f"none ({s.config_dir or '-'}/conf.d/*.toml)",
        "password": s.password_source or ("set" if s.password else "none"),
        "redis": redis,
        "data dir": data,
        "work": public_endpoint(s.bind),
        "web": public_endpoint(s.web or "disabled"),
        "tls": "on" if s.bind.startswith("ssl:") or (s.web or "").startswith("ssl:") else "off",
        "backups": "hourly" if backups_enabled(server) else "off",
        "processes": str(s.workers),
        "plugins": ", ".join(getattr(p, "name", "?") for p in server.plugins_started) or "none",
    }


def public_endpoint(description: str) -> str:
    """An endpoint string without the TLS key and certificate paths (for
    the log and the web UI's footer): ``ssl:7419:interface=0.0.0.0``."""
    for marker in (":privateKey=", ":certKey=", ":extraCertChain=", ":caCertsDir="):
        description = description.split(marker)[0]
    return description


def _redact(url: str) -> str:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    if parsed.password:
        return url.replace(":" + parsed.password + "@", ":***@", 1)
    return url


def log_summary(server) -> None:
    facts = summary(server)
    log.info(
        "Faktory server ready: " + "; ".join(f"{k} {{{_field(k)}}}" for k in facts),
        **{_field(k): v for k, v in facts.items()},
    )


def _field(key: str) -> str:
    return key.replace(" ", "_")
