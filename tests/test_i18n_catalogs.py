"""The web UI's message catalogs, without a server: every English string the
code marks (Python and the page script, extracted by Babel exactly as
``pybabel extract -F babel.cfg`` does) has a translation in every locale,
with the same placeholders and every plural form; plus negotiation and the
locale formats."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po

from faktory.web import i18n

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRANSLATED = [tag for tag in i18n.LANGUAGES if tag != i18n.DEFAULT]
PLACEHOLDER = re.compile(r"\{(\w*)\}")


def _code_messages() -> dict[str, tuple]:
    """msgid -> (msgid, plural or None, where) for everything marked in the code."""
    with open(os.path.join(ROOT, "babel.cfg")) as f:
        method_map, options_map = parse_mapping_cfg(f)
    found: dict[str, tuple] = {}
    code = os.path.join(ROOT, "faktory")
    for filename, lineno, message, _comments, _context in extract_from_dir(
        ROOT, method_map, options_map, directory_filter=lambda d: d == ROOT or d.startswith(code)
    ):
        ids = message if isinstance(message, tuple) else (message, None)
        if not ids[0]:
            continue
        found.setdefault(ids[0], (ids[0], ids[1], f"{filename}:{lineno}"))
    return found


CODE = _code_messages()


def _catalog(tag: str):
    with open(i18n.catalog_path(tag), "rb") as f:
        return read_po(f, locale=i18n.catalog_name(tag))


def _problems(tag: str) -> Iterator[str]:
    catalog = _catalog(tag)
    nplurals = get_plural(i18n.catalog_name(tag)).num_plurals
    for msgid, plural, where in CODE.values():
        key = msgid
        entry = catalog.get(key)
        if entry is None:
            yield f"{tag}: no translation of {msgid!r} ({where})"
            continue
        if entry.fuzzy:
            yield f"{tag}: {msgid!r} is marked fuzzy"
        strings = list(entry.string) if isinstance(entry.string, tuple | list) else [entry.string]
        if plural is not None and len(strings) != nplurals:
            yield f"{tag}: {msgid!r} needs {nplurals} plural forms, has {len(strings)}"
        wanted = set(PLACEHOLDER.findall(msgid)) | set(PLACEHOLDER.findall(plural or ""))
        for s in strings:
            if not s.strip():
                yield f"{tag}: {msgid!r} is not translated ({where})"
            elif set(PLACEHOLDER.findall(s)) - wanted:
                yield f"{tag}: {msgid!r} -> {s!r} uses a placeholder the code does not fill"
            elif plural is None and set(PLACEHOLDER.findall(s)) != wanted:
                yield f"{tag}: {msgid!r} -> {s!r} drops a placeholder"


def test_the_code_marks_its_strings():
    """Sanity of the extraction itself: Python, N_ labels and the script."""
    assert "Retry now" in CODE  # N_ in pages.SET_KINDS
    assert "Delete selected" in CODE  # ctx._ in pages
    assert "Waiting for data…" in CODE  # _() in faktory.js
    assert CODE["{n} job"][1] == "{n} jobs"  # ngettext keeps its plural
    assert set(i18n.js_messages()) <= set(CODE)


@pytest.mark.parametrize("tag", TRANSLATED)
def test_catalog_is_complete(tag):
    problems = list(_problems(tag))
    assert not problems, (
        f"{len(problems)} message(s) of {tag} need work (see docs/web-ui.md, Languages):\n"
        + "\n".join(problems[:40])
    )


def test_template_is_current():
    """messages.pot (what ``pybabel update`` merges from) has every id."""
    with open(os.path.join(i18n.LOCALE_DIR, "messages.pot"), "rb") as f:
        template = read_po(f)
    missing = sorted(m for m in CODE if m not in template)
    assert not missing, "run pybabel extract (docs/web-ui.md): " + ", ".join(missing[:20])


def test_the_sixteen_languages_are_served():
    wanted = "de es fr it ja ko nl pl pt-BR ru zh-CN uk sv tr ar he".split()
    assert sorted(TRANSLATED) == sorted(wanted)


def test_every_catalog_directory_is_served():
    present = {
        d for d in os.listdir(i18n.LOCALE_DIR) if os.path.isdir(os.path.join(i18n.LOCALE_DIR, d))
    }
    assert present == {i18n.catalog_name(t) for t in TRANSLATED}


# -- negotiation --------------------------------------------------------------------
@pytest.mark.parametrize(
    "header, cookie, served",
    [
        (None, None, "en"),
        ("", None, "en"),
        ("de-DE,de;q=0.9,en;q=0.5", None, "de"),
        ("en-US,en;q=0.9,de;q=0.8", None, "en"),
        ("pt-BR,pt;q=0.9", None, "pt-BR"),
        ("pt-PT", None, "pt-BR"),  # pt-PT -> pt -> our one Portuguese
        ("pt", None, "pt-BR"),
        ("zh-Hans-CN", None, "zh-CN"),
        ("xx-YY, tlh", None, "en"),  # nothing we have -> English
        ("fr;q=0.2, ja;q=0.8", None, "ja"),  # by quality, not order
        ("de;q=0, ar", None, "ar"),  # q=0 means "not this one"
        ("*", None, "en"),
        ("de", "he", "he"),  # the footer's choice wins
        ("de", "xx", "de"),  # an unknown cookie is ignored
        ("de;q=abc, es", None, "es"),  # a broken entry is skipped
        ("a" * 5000, None, "en"),
    ],
)
def test_negotiation(header, cookie, served):
    assert i18n.negotiate(header, cookie, i18n.NAMES) == served


def test_formats_follow_the_locale():
    de, ar, en = i18n.translator("de"), i18n.translator("ar"), i18n.translator("en")
    assert en.number(1234567) == "1,234,567" and de.number(1234567) == "1.234.567"
    assert de.number(12.5) == "12,5"
    assert en.time_ago(100, 400) == "5 minutes ago" and en.time_ago(400, 100) == "in 5 minutes"
    assert de.time_ago(100, 400) == "vor 5 Minuten"
    assert en.duration(3 * 86400 + 4 * 3600) == "3 days 4 hr"
    assert de.duration(12 * 60) == "12 Min."
    assert en.datetime(1e9) == "Sep 9, 2001, 1:46:40\u202fAM UTC"
    assert de.datetime(1e9) == "09.09.2001, 01:46:40 UTC"
    assert ar.rtl and ar.dir == "rtl" and not de.rtl
    assert en.ngettext("{n} job", "{n} jobs", 1) == "1 job"
    assert en.ngettext("{n} job", "{n} jobs", 1200) == "1,200 jobs"
