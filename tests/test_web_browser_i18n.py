"""Every page in every language, in real headless Chromium (one server, one
browser for the module): no English left where the catalog has a
translation (visible text, tooltips, placeholders, confirmations and the
script's own words, compared with the English message ids extracted from
the code), no page wider than the window, ``<html lang>`` as served and
``dir="rtl"`` for Arabic and Hebrew, and the live script wording relative
times and durations exactly as the server's Babel does.  Also the footer's
selector, through the UI's Origin rules and Content-Security-Policy, and
locale numbers in the script."""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
from selenium.webdriver.common.by import By  # noqa: E402, I001
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from test_i18n_catalogs import CODE, _catalog
from test_web_browser import UI, browser, fail_job  # noqa: F401 - fixtures

from faktory.job import format_time
from faktory.web import i18n
from helpers import ServerProcess, config_dir, wait_for_port

CONFIG = """
[[cron]]
  schedule = "*/5 * * * *"
  [cron.job]
    type = "NightlyRollup"
    queue = "reports"
[throttles]
reports = { concurrency = 2, rate = 10, period = 60, timeout = 60 }
"""

# What a page shows people: its visible text nodes, the words in attributes
# and the title; plus its language, direction and width.
# The walk's pages that must answer 404 (every other one must answer 200: a
# plugin page that is gone fails the walk instead of being walked as a 404).
NOT_FOUND = ("/job/no-such-jid", "/no-such-page")


COLLECT = """
const out = new Set([document.title]);
const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
for (const el of document.body.querySelectorAll('*')) {
  if (['SCRIPT', 'STYLE', 'PRE', 'CODE', 'OPTION', 'SELECT'].includes(el.tagName)) continue;
  for (const a of ['title', 'placeholder', 'aria-label', 'alt', 'data-confirm', 'data-paused-text']) {
    const v = el.getAttribute(a);
    if (v) out.add(v.trim());
  }
  let shown = null;
  for (const n of el.childNodes) {
    if (n.nodeType !== 3 || !n.textContent.trim()) continue;
    if (shown === null) shown = visible(el);
    if (!shown) break;
    const text = n.textContent.replace(/\\s+/g, ' ').trim();
    out.add(text);
    out.add(text.replace(/^[ ,.;:()]+|[ ,.;:()]+$/g, ''));
  }
}
const root = document.documentElement;
return {
  texts: [...out], lang: root.getAttribute('lang'), dir: root.getAttribute('dir'),
  scroll: root.scrollWidth, width: window.innerWidth,
  status: performance.getEntriesByType('navigation')[0].responseStatus,
};
"""


def _pattern(message: str) -> re.Pattern:
    parts = re.split(r"\{\w*\}", message)
    return re.compile("(?:.+?)".join(re.escape(p) for p in parts), re.S)


class Untranslated:
    """Finds English message ids in a page's texts.  A text is untranslated
    when it is (or fully matches, placeholders filled) an English message
    whose translation in this locale reads differently."""

    def __init__(self, tag: str) -> None:
        english: dict[str, list[str]] = {}
        for msgid, plural, _where in CODE.values():
            english[msgid] = [msgid] + ([plural] if plural else [])
        self.catalog = _catalog(tag) if tag != i18n.DEFAULT else None
        self.exact: set[str] = set()
        self.patterns: list[tuple[re.Pattern, list[re.Pattern]]] = []
        for msgid, forms in english.items():
            entry = self.catalog.get(msgid) if self.catalog is not None else None
            strings = []
            if entry is not None:
                strings = list(entry.string) if isinstance(entry.string, tuple) else [entry.string]
            for form in forms:
                if form in strings:
                    continue  # the same words in this language
                if "{" not in form:
                    self.exact.add(form)
                    continue
                literal = re.sub(r"\{\w*\}|[^A-Za-z]", "", form)
                if len(literal) >= 6:  # "{shown} of {total}" would match Dutch "of"
                    self.patterns.append((_pattern(form), [_pattern(s) for s in strings]))
                # The words between placeholders, as a text node beside a
                # link or a time shows them (unless the translation has them).
                for piece in re.split(r"\{\w*\}", form):
                    piece = piece.strip(" ,.;:()")
                    if len(piece) >= 4 and not any(piece in s for s in strings):
                        self.exact.add(piece)
        self.combined = re.compile("|".join(f"(?:{p.pattern})" for p, _ in self.patterns), re.S)

    def find(self, texts: set[str]) -> list[str]:
        found = sorted(t for t in texts if t in self.exact)
        for text in texts:
            if text in self.exact or not self.combined.fullmatch(text):
                continue
            for english, translated in self.patterns:
                if english.fullmatch(text) and not any(p.fullmatch(text) for p in translated):
                    found.append(text)
                    break
        return found


@pytest.fixture(scope="module")
def site():
    """One server with something on every page."""
    srv = ServerProcess(args=["--config-dir", config_dir(CONFIG)]).start()
    wait_for_port(srv.web_port)
    c = srv.client()
    c.push(queue="mailers", jobtype="SendInvoice", args=[41, {"k": "v"}], priority=7)
    queued = c.push(queue="mailers", jobtype="SendInvoice", args=[42])[0]
    c.push(queue="reports", jobtype="WeeklyRollup", at=format_time(time.time() + 7200))
    retry = fail_job(srv, "billing", jobtype="ChargeCard", retry=5)
    fail_job(srv, "billing", jobtype="ChargeCard", retry=0)  # dead
    wid = "wk-" + uuid.uuid4().hex[:6]
    worker = srv.client(wid=wid, hello={"hostname": "box-1"})
    c.push(queue="images", jobtype="ResizeImage", args=[7])
    held = worker.fetch("images")
    worker.call(json.dumps({"wid": wid, "rss_kb": 123456}).join(["BEAT ", ""]))
    pages = [
        "/",
        "/busy",
        "/queues",
        "/queues/mailers",
        "/retries",
        "/retries?jobtype=ChargeCard",
        "/scheduled",
        "/morgue",
        f"/job/{retry['jid']}",
        f"/job/{queued}",
        f"/job/{held['jid']}",
        NOT_FOUND[0],
        "/retries/groups?by=errtype",
        "/morgue/groups?by=jobtype",
        "/jobtypes",
        "/jobtypes?type=ChargeCard",
        "/debug",
        "/cron",
        "/throttles",
        "/batches",
        NOT_FOUND[1],
    ]
    yield srv, pages
    worker.close()
    c.close()
    srv.discard()


DELTAS = [-200, -3, 90, 5400, -7200, 86400 * 10, -86400 * 40, 86400 * 400]
SPANS = [0.25, 12.3, 720, 3 * 3600 + 1500, 3 * 86400 + 4 * 3600]
SCRIPT_WORDS = """
const [deltas, spans] = arguments;
return deltas.map((d) => Faktory.relativeTime(new Date(1e12 + d * 1000), new Date(1e12)))
  .concat(spans.map((s) => Faktory.duration(s)));
"""


def _walk(ui: UI, pages: list[str], tag: str) -> tuple[set[str], list[str]]:
    texts: set[str] = set()
    problems: list[str] = []
    want_dir = "rtl" if tag in ("ar", "he") else "ltr"
    for path in pages:
        ui.d.get(ui.base + path)
        got = ui.d.execute_script(COLLECT)
        texts.update(got["texts"])
        if got["status"] != (404 if path in NOT_FOUND else 200):
            problems.append(f"{tag} {path}: HTTP status {got['status']}")
        if got["lang"] != tag or got["dir"] != want_dir:
            problems.append(f"{tag} {path}: lang={got['lang']} dir={got['dir']}")
        if got["scroll"] > got["width"]:
            problems.append(f"{tag} {path}: {got['scroll']} px wide in a {got['width']} px window")
    return texts, problems


def test_every_page_in_every_language(browser, site):  # noqa: F811
    srv, pages = site
    ui = UI(browser, srv)
    ui.open("/")
    problems: list[str] = []
    for tag in i18n.LANGUAGES:
        browser.add_cookie({"name": "faktory_locale", "value": tag, "path": "/"})
        texts, found = _walk(ui, pages, tag)
        problems += found
        # The live script words times and durations as the server does.
        t = i18n.translator(tag)
        script = [t.time_ago(1e9 + d, 1e9) for d in DELTAS] + [t.duration(s) for s in SPANS]
        live = ui.d.execute_script(SCRIPT_WORDS, DELTAS, SPANS)
        problems += [f"{tag}: script {a!r}, server {b!r}" for a, b in zip(live, script) if a != b]
        english = Untranslated(tag).find(texts)
        if tag == i18n.DEFAULT:
            # The detector sees English where it is: it would catch a miss.
            assert {"Retry now", "Dashboard", "Waiting for data…"} <= set(english)
            assert {"Reserved by", "the reservation runs out"} <= set(english)
        else:
            problems += [f"{tag}: untranslated {t!r}" for t in english]
    errors = [
        e
        for e in browser.get_log("browser")
        if e["level"] == "SEVERE" and "404 (Not Found)" not in e["message"]
    ]
    assert not problems, "\n".join(problems[:60])
    assert errors == []


def test_selector_switches_language_and_script_speaks_it(browser, site):  # noqa: F811
    srv, _pages = site
    ui = UI(browser, srv)
    browser.delete_all_cookies()
    ui.open("/queues")
    assert ui.d.execute_script("return document.documentElement.lang") == "en"
    select = ui.one(".language select")
    assert not ui.one(".language button").is_displayed()  # the script submits on change
    ui.d.execute_script("window.__before_click = true")
    select.find_element(By.CSS_SELECTOR, 'option[value="de"]').click()
    WebDriverWait(ui.d, 10).until(
        lambda d: d.execute_script(
            "return !window.__before_click && document.readyState === 'complete'"
        )
    )
    assert ui.d.current_url.endswith("/queues")
    assert ui.h1() == "Warteschlangen"
    assert {c["name"]: c["value"] for c in browser.get_cookies()}["faktory_locale"] == "de"
    # The live dashboard writes numbers and words the German way too.
    ui.open("/")
    box = ui.one("#live-chart")
    assert "Verarbeitet" in box.text and "Fehlgeschlagen" in box.text
    clock = ui.one("[data-clock]").text
    assert re.fullmatch(r"\d\d:\d\d:\d\d UTC", clock), clock
    blob = json.loads(ui.d.execute_script("return document.documentElement.dataset.i18n"))
    assert blob["locale"] == "de" and blob["messages"]["Processed"] == "Verarbeitet"
    formatted = ui.d.execute_script("return window.Faktory.number(1234567)")
    assert formatted == "1.234.567"
    assert ui.d.execute_script("return window.Faktory.duration(3 * 86400 + 4 * 3600)") == (
        "3 Tg. 4 Std."
    )
    # Arabic: right to left, Latin digits as on the server.
    browser.add_cookie({"name": "faktory_locale", "value": "ar", "path": "/"})
    ui.open("/")
    assert ui.d.execute_script("return document.documentElement.dir") == "rtl"
    assert ui.d.execute_script("return window.Faktory.number(1234567)") == "1,234,567"
    assert ui.d.execute_script("return getComputedStyle(document.body).direction") == "rtl"
    browser.delete_all_cookies()
