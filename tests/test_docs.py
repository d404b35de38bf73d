"""The generated configuration reference matches what the server accepts."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

from helpers import ROOT


def _gen_config():
    path = os.path.join(ROOT, "docs", "gen_config.py")
    spec = importlib.util.spec_from_file_location("gen_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_lists_every_option_twistd_accepts_with_its_default():
    page = _gen_config().render()
    help_text = subprocess.run(
        [sys.executable, "-m", "twisted", "faktory", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/tmp",
    ).stdout
    flags = set(re.findall(r"^\s+(?:-\w, )?--([\w-]+)", help_text, re.MULTILINE))
    flags -= {"help", "version"}
    assert {"bind", "web", "data-dir", "plugin", "list-plugins"} <= flags
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\|.*?`--([\w-]+)[=`].*$", page, re.M)}
    assert set(rows) == flags
    assert "`tcp:7419:interface=127.0.0.1`" in rows["bind"]
    assert "`-b`" in rows["bind"]


def test_reference_lists_every_declared_toml_key():
    gen = _gen_config()
    page = gen.render()
    keys = gen.config_keys()
    assert ("plugins", "enabled") in {(k[0], k[1]) for k in keys}
    for table, key, *_ in keys:
        assert re.search(rf"^\| `\[{re.escape(table)}\]` \| `{re.escape(key)}` \|", page, re.M)
