"""Which plugins a server runs, and running their lifecycle safely.

Discovery goes through ``twisted.plugin.getPlugins`` over two drop-in
packages: ``faktory_plugins`` (ours) and ``twisted.plugins`` (for people who
already ship Twisted plugins).  Nothing third-party runs unless the config
names it, so installing a package never changes a running server by surprise::

    [plugins]
    enabled = ["audit"]        # set up in this order, after the built-ins
    disabled = ["cron"]        # built-in features to leave off

    [plugins.audit]            # the plugin's own settings (plugin_settings)
    blocked = ["EvilJob"]
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import Logger, globalLogPublisher
from twisted.plugin import getPlugins

import faktory_plugins
import twisted.plugins

from .awaitable import call
from .plugin import IFaktoryPlugin

log = Logger()

_DROPIN_FILE = re.compile(r"(faktory_plugins|twisted/plugins)/[^/]+\.py$")


# TOML keys this module reads, for the generated configuration reference:
# (table, key, type, default, description).
CONFIG_KEYS = [
    (
        "plugins",
        "enabled",
        "list of names",
        "[]",
        "Installed plugins to run, set up in this order after the built-in ones "
        "(``--plugin NAME`` adds to it). An unknown name stops startup.",
    ),
    (
        "plugins",
        "disabled",
        "list of names",
        "[]",
        "Built-in feature plugins to leave off (see ``twistd faktory --list-plugins``).",
    ),
    (
        "plugins.<name>",
        "*",
        "table",
        "{}",
        "The named plugin's own settings, read with ``faktory.plugin.plugin_settings``.",
    ),
]


class PluginError(Exception):
    """A plugin that cannot be used; the text names it and says why."""


@dataclass
class Discovery:
    """Every installed plugin, plus the drop-in modules that failed to import
    (so "unknown plugin" errors can say why it is missing)."""

    plugins: dict[str, Any] = field(default_factory=dict)
    broken: list[str] = field(default_factory=list)


def discover() -> Discovery:
    """Installed plugins by name; the first of two with the same name wins."""
    found = Discovery()

    def observe(event: dict) -> None:
        failure = event.get("log_failure") or event.get("failure")  # legacy log.err()
        if failure is not None:
            found.broken.append(_describe_import_failure(failure))

    globalLogPublisher.addObserver(observe)
    try:
        for package in (faktory_plugins, twisted.plugins):
            for plugin in getPlugins(IFaktoryPlugin, package):
                name = getattr(plugin, "name", None)
                if not isinstance(name, str) or not name:
                    found.broken.append(f"{_origin(plugin)}: plugin has no name")
                elif name in found.plugins:
                    log.warn(
                        "Plugin name {name} is used by both {a} and {b}; using the first",
                        name=name,
                        a=_origin(found.plugins[name]),
                        b=_origin(plugin),
                    )
                else:
                    found.plugins[name] = plugin
    finally:
        globalLogPublisher.removeObserver(observe)
    return found


def _describe_import_failure(failure: Any) -> str:
    where = "a plugin module"
    for frame in reversed(failure.frames):
        if _DROPIN_FILE.search(frame[1]):
            where = f"{frame[1]}:{frame[2]}"
            break
    return f"{where}: {failure.type.__name__}: {failure.getErrorMessage()}"


def _origin(plugin: Any) -> str:
    module = getattr(plugin, "__module__", None) or type(plugin).__module__
    return str(module)


def describe(plugin: Any) -> str:
    """One line for listings: the ``description`` attribute or the docstring's first line."""
    text = getattr(plugin, "description", None) or inspect.getdoc(plugin) or ""
    return " ".join(text.strip().split("\n\n")[0].split())


def _table(config: dict[str, Any]) -> dict[str, Any]:
    table = config.get("plugins", {})
    if not isinstance(table, dict):
        raise PluginError("[plugins] must be a table")
    for key, value in table.items():
        if key not in ("enabled", "disabled") and not isinstance(value, dict):
            raise PluginError(
                f"[plugins] {key}: unknown key (expected enabled, disabled "
                f"or a [plugins.<name>] settings table)"
            )
    return table


def _names(table: dict[str, Any], key: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise PluginError(f"[plugins] {key} must be a list of plugin names")
    return value


def enabled(config: dict[str, Any], builtins: Sequence[Any] = ()) -> list[Any]:
    """The plugins a server with this config runs, in setup order: the
    ``builtins`` (fresh built-in feature plugins, handed in by whoever
    assembles the server: this module knows no feature) less ``disabled``,
    then ``enabled`` as listed.  Each chosen plugin with a ``see_plugins``
    method is then shown the whole list (cron checks its entries with the
    other features' ``check_job``)."""
    table = _table(config)
    wanted = _names(table, "enabled")
    disabled = _names(table, "disabled")
    builtin_names = [p.name for p in builtins]
    for name in disabled:
        if name not in builtin_names:
            raise PluginError(
                f"[plugins] disabled: {name!r} is not a built-in plugin "
                f"(built-ins: {', '.join(builtin_names) or 'none'})"
            )
    chosen = [p for p in builtins if p.name not in disabled]
    taken = {p.name for p in chosen}
    found = discover() if any(n not in taken for n in wanted) else Discovery()
    for name in wanted:
        if name in taken:
            continue
        plugin = found.plugins.get(name)
        if plugin is None:
            raise PluginError(_unknown(name, found))
        chosen.append(plugin)
        taken.add(name)
    for plugin in chosen:
        see = getattr(plugin, "see_plugins", None)
        if see is not None:
            see(chosen)
    return chosen


def check_config(config: dict[str, Any], chosen: Sequence[Any]) -> Sequence[Any]:
    """Check ``config`` before it is used, at startup and on SIGHUP: every
    plugin in ``chosen`` with a ``check_config(config)`` gets to refuse it (a
    ValueError naming the setting).  Returns ``chosen``."""
    for plugin in chosen:
        check = getattr(plugin, "check_config", None)
        if check is None:
            continue
        try:
            check(config)
        except ValueError as e:
            raise PluginError(str(e)) from None
    return chosen


def _unknown(name: str, found: Discovery) -> str:
    known = ", ".join(sorted(found.plugins)) or "none"
    text = f"unknown plugin {name!r} (enabled in [plugins] or by --plugin; installed: {known})"
    if found.broken:
        text += "; plugin modules that failed to import: " + "; ".join(found.broken)
    return text


def listing(config: dict[str, Any], builtins: Sequence[Any]) -> list[tuple[str, str, str, str]]:
    """(name, status, module, description) of every built-in and installed
    plugin, for ``twistd faktory --list-plugins``."""
    table = config.get("plugins", {}) if isinstance(config.get("plugins"), dict) else {}
    wanted = table.get("enabled", []) if isinstance(table.get("enabled"), list) else []
    disabled = table.get("disabled", []) if isinstance(table.get("disabled"), list) else []
    rows = []
    for p in builtins:
        status = "disabled" if p.name in disabled else "built-in"
        rows.append((p.name, status, _origin(p), describe(p)))
    found = discover()
    names = {p.name for p in builtins}
    for name, p in found.plugins.items():
        if name not in names:
            status = "enabled" if name in wanted else "available"
            rows.append((name, status, _origin(p), describe(p)))
    for line in found.broken:
        rows.append(("?", "broken", line, ""))
    return rows


def prepare_all(server: Any) -> None:
    """Call each plugin's optional ``prepare(server)`` before anything starts
    (the built-in Redis is not spawned yet, so a plugin may add to its
    configuration); the first failure stops the start with its message."""
    for plugin in server.plugins:
        prepare = getattr(plugin, "prepare", None)
        if prepare is None:
            continue
        try:
            prepare(server)
        except Exception as e:  # noqa: BLE001 - reported as one line naming the plugin
            raise PluginError(f"plugin {plugin.name!r}: {e}") from e


async def setup_all(server: Any) -> None:
    """Set up ``server.plugins`` in order; the first failure stops the boot
    with an error naming the plugin (the ones already set up get shut down
    when the server stops)."""
    for plugin in server.plugins:
        try:
            await call(plugin.setup, server)
        except Exception as e:
            log.failure("Plugin {name} failed in setup", name=plugin.name)
            raise PluginError(
                f"plugin {plugin.name!r} failed in setup: {type(e).__name__}: {e}"
            ) from e
        server.plugins_started.append(plugin)
        log.info("Plugin {name} set up", name=plugin.name)


async def shutdown_all(server: Any) -> None:
    """Shut down every set-up plugin in reverse order; one failing plugin must
    not keep the others (or Redis) from stopping."""
    while server.plugins_started:
        plugin = server.plugins_started.pop()
        shutdown = getattr(plugin, "shutdown", None)
        if shutdown is None:
            continue
        try:
            await call(shutdown, server)
        except Exception:  # noqa: BLE001
            log.failure("Plugin {name} failed to shut down", name=plugin.name)


def enable(config: dict[str, Any], names: list[str]) -> None:
    """Add names to ``[plugins] enabled`` (what ``--plugin NAME`` does)."""
    if names:
        table = config.setdefault("plugins", {})
        if isinstance(table, dict):
            current = table.setdefault("enabled", [])
            if isinstance(current, list):
                current.extend(n for n in names if n not in current)


def print_listing(config: dict[str, Any], builtins: Sequence[Any]) -> None:
    rows = listing(config, builtins)
    if not rows:
        print("No plugins installed.")
        return
    width = max(len(r[0]) for r in rows)
    mwidth = max((len(r[2]) for r in rows if r[1] != "broken"), default=0)
    for name, status, module, text in rows:
        line = f"{name:<{width}}  {status:<9}  {module:<{mwidth}}  {text}"
        print(line.rstrip())
