"""MkDocs hooks: add the generated configuration reference, and inline source
files into pages (``<!-- include: examples/x.py -->`` on a line of its own)
so the docs show the very code the tests run."""

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
