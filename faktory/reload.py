"""SIGHUP: re-read ``conf.d/*.toml`` and let each plugin pick up its part,
as the real server does on HUP (``systemctl reload faktory`` sends it).

A plugin that can reload defines ``reload(server)`` (may return a Deferred
or be a coroutine); it finds the new document in ``server.settings.config``.
A config that no longer parses is logged and the running one kept.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from . import config, plugins
from .awaitable import call

log = Logger()


def install(server: Any) -> None:
    """Reload ``server`` on SIGHUP (only possible from the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def on_hup(signum, frame) -> None:
        server.reactor.callFromThread(lambda: defer.ensureDeferred(reload(server)))

    signal.signal(signal.SIGHUP, on_hup)


async def reload(server: Any) -> None:
    settings = server.settings
    children = getattr(server, "worker_processes", None)
    if children is not None:  # --workers: each child reloads its own plugins
        for pid in children.pids():
            try:
                os.kill(pid, signal.SIGHUP)
            except OSError:
                pass  # already gone; the supervisor respawns it with the new config
    if not settings.config_dir:
        log.info("SIGHUP: no config dir, nothing to reload")
        return
    try:
        fresh = config.load(settings.config_dir)
        errors, _ = config.problems(fresh)
        if errors:
            raise config.ConfigError("; ".join(errors))
        plugins.check_config(fresh, getattr(server, "plugins_started", server.plugins))
    except (config.ConfigError, plugins.PluginError, OSError) as e:
        log.error("SIGHUP: config not reloaded, keeping the running one: {e}", e=e)
        return
    settings.config = fresh
    log.info("SIGHUP: reloading config from {dir}", dir=settings.config_dir)
    for plugin in getattr(server, "plugins_started", server.plugins):
        fn = getattr(plugin, "reload", None)
        if fn is None:
            continue
        try:
            await call(fn, server)
        except Exception:
            log.failure("Plugin {name} failed to reload", name=plugin.name)
