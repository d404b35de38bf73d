"""MkDocs hooks: add the generated configuration reference, inline source
files into pages (``<!-- include: examples/x.py -->`` on a line of its own)
so the docs show the very code the tests run, and list pages missing from
the nav under "More" so a new page is never unreachable."""

from __future__ import annotations

import logging
import os
import re
import sys

from mkdocs.structure.files import File

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_config  # noqa: E402 - lives beside this file

log = logging.getLogger("mkdocs.hooks.faktory")

INCLUDE = re.compile(r"^<!-- include: (\S+) -->$", re.MULTILINE)
LANGUAGES = {".py": "python", ".toml": "toml", ".sh": "bash", ".js": "javascript"}


def on_config(config):
    listed = set(_nav_files(config["nav"] or []))
    docs = config["docs_dir"]
    extra = []
    for name in sorted(os.listdir(docs)):
        if name.endswith(".md") and name not in listed:
            extra.append({_title(os.path.join(docs, name)): name})
    if extra and config["nav"] is not None:
        config["nav"].append({"More": extra})
    return config


def _nav_files(nav):
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            yield from _nav_files(value)
        else:
            yield value


def _title(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("# "):
                return line[2:].strip()
    return os.path.basename(path)[:-3]


def on_files(files, config):
    files.append(File.generated(config, gen_config.PAGE, content=gen_config.render()))
    return files


def on_page_markdown(markdown, page, config, files):
    def include(match: re.Match) -> str:
        rel = match.group(1)
        path = os.path.normpath(os.path.join(config["docs_dir"], rel))
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read().rstrip("\n")
        except OSError as e:
            # A warning fails `mkdocs build --strict`: a stale include is a bug.
            log.warning("%s: cannot include %s: %s", page.file.src_uri, rel, e.strerror)
            return match.group(0)
        lang = LANGUAGES.get(os.path.splitext(rel)[1], "")
        return f"`{rel}`:\n\n```{lang}\n{text}\n```"

    return INCLUDE.sub(include, markdown)
