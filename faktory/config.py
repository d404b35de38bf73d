"""TOML configuration: every ``<config-dir>/conf.d/*.toml`` file, read in name
order and parsed as ONE document, as the real server does (so ``[[cron]]``
entries from several files add up)."""

from __future__ import annotations

import glob
import os
import tomllib
from typing import Any


class ConfigError(ValueError):
    """A config file that cannot be used; the text says which and why."""


def default_config_dir(environment: str) -> str:
    if environment == "development":
        return os.path.expanduser("~/.faktory")
    return "/etc/faktory"


def load(config_dir: str) -> dict[str, Any]:
    files = sorted(glob.glob(os.path.join(config_dir, "conf.d", "*.toml")))
    chunks = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            chunks.append(f.read())
    try:
        return tomllib.loads("\n".join(chunks))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"invalid TOML in {config_dir}/conf.d: {e}") from None
