"""The web UI's language over HTTP (StubTreq against a real server on a real
Redis): ``Accept-Language`` picks the catalog, the footer's selector POSTs
to ``/locale`` and a cookie remembers the choice; words, numbers, times,
flash messages and the script's strings follow it."""

from __future__ import annotations

import html as htmllib
import json
import re

import pytest_twisted
from test_web_routes import Web, web  # noqa: F401 - the fixture

from faktory.web import i18n


def lang_of(page: str) -> tuple[str, str]:
    m = re.search(r'<html lang="([^"]+)" dir="([^"]+)"', page)
    assert m, page[:200]
    return m.group(1), m.group(2)


def script_blob(page: str) -> dict:
    m = re.search(r'data-i18n="([^"]*)"', page)
    return json.loads(htmllib.unescape(m.group(1)))


def set_cookie(response) -> str:
    return ";".join(response.headers.getRawHeaders("set-cookie") or [])


@pytest_twisted.ensureDeferred
async def test_accept_language_picks_the_catalog(web):  # noqa: F811
    await web.cmd("SET", web.store.prefix + "stat:processed", 1234567)
    response, page = await web.get("/", headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    assert lang_of(page) == ("de", "ltr")
    assert response.headers.getRawHeaders("vary") == ["Accept-Language, Cookie"]
    assert "<h1>Übersicht</h1>" in page and ">Warteschlangen</a>" in page
    assert 'data-stat="processed">1.234.567<' in page  # German digit grouping
    assert "<h1>Dashboard</h1>" not in page
    blob = script_blob(page)
    assert blob["locale"] == "de" and blob["dir"] == "ltr"
    assert blob["messages"]["Waiting for data…"] == "Warte auf Daten…"
    # pt-PT -> pt -> our Brazilian catalog; Arabic and Hebrew right to left.
    for header, served in (("pt-PT,pt;q=0.8", ("pt-BR", "ltr")), ("ar", ("ar", "rtl"))):
        _, page = await web.get("/queues", headers={"Accept-Language": header})
        assert lang_of(page) == served
    assert "<h1>Filas</h1>" in (await web.get("/queues", headers={"Accept-Language": "pt"}))[1]
    _, page = await web.get("/queues", headers={"Accept-Language": "he-IL"})
    assert lang_of(page) == ("he", "rtl") and "<h1>תורים</h1>" in page
    # No header, or only languages we lack: English.
    for header in (None, "tlh, xx-YY;q=0.5"):
        _, page = await web.get("/", headers={"Accept-Language": header} if header else {})
        assert lang_of(page) == ("en", "ltr") and "<h1>Dashboard</h1>" in page
        assert 'data-stat="processed">1,234,567<' in page


@pytest_twisted.ensureDeferred
async def test_selector_sets_a_cookie_that_wins(web):  # noqa: F811
    _, page = await web.get("/queues", headers={"Accept-Language": "en-US"})
    form = re.search(r'<form method="post" action="/locale" class="language">(.*?)</form>', page)
    assert form and 'name="return" value="/queues"' in form.group(1)
    assert '<option value="de" lang="de">Deutsch</option>' in form.group(1)
    response, _ = await web.post("/locale", {"locale": "de", "return": "/queues?x=1"})
    assert response.code == 303
    assert response.headers.getRawHeaders("location") == ["/queues?x=1"]
    cookie = set_cookie(response)
    assert "faktory_locale=de" in cookie and "Max-Age=31536000" in cookie
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    # The cookie beats the browser's languages.
    _, page = await web.get(
        "/queues", headers={"Accept-Language": "en-US", "Cookie": "faktory_locale=de"}
    )
    assert lang_of(page)[0] == "de" and "<h1>Warteschlangen</h1>" in page
    assert '<option value="de" lang="de" selected="selected">' in page
    # An unknown choice forgets the cookie: the browser's languages apply again.
    response, _ = await web.post("/locale", {"locale": "xx", "return": "/"})
    assert response.code == 303 and "faktory_locale=;" in set_cookie(response)
    assert "Max-Age=0" in set_cookie(response)
    _, page = await web.get("/", headers={"Cookie": "faktory_locale=xx"})
    assert lang_of(page)[0] == "en"


@pytest_twisted.ensureDeferred
async def test_selector_is_not_an_open_redirect_nor_cross_site(web):  # noqa: F811
    for back in ("//evil.example/", "/\\evil.example", "https://evil.example/", "", "/a\r\nX: y"):
        response, _ = await web.post("/locale", {"locale": "de", "return": back})
        assert response.code == 303
        assert response.headers.getRawHeaders("location") == ["/"], back
    # Another site cannot switch the operator's language (Guard's origin rule).
    response, _ = await web.post(
        "/locale", {"locale": "de"}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert response.code == 403 and not set_cookie(response)
    # Behind a proxy prefix the cookie and the redirect stay under it.
    response, _ = await web.post(
        "/fk/locale", {"locale": "de", "return": "/fk/busy"}, headers={"X-Script-Name": "/fk"}
    )
    assert response.headers.getRawHeaders("location") == ["/fk/busy"]
    assert "Path=/fk/" in set_cookie(response)


@pytest_twisted.ensureDeferred
async def test_flash_and_confirmations_are_translated(web):  # noqa: F811
    job = await web.fail_into("retries", retry=5)
    de = {"Cookie": "faktory_locale=de"}
    _, page = await web.get("/retries", headers=de)
    assert "Jetzt wiederholen" in page and "Retry now" not in page
    assert "Diesen Job löschen? Das lässt sich nicht rückgängig machen." in page
    # Relative time in German words, the exact time as Germans write dates.
    assert re.search(
        r'<time datetime="[^"]+" title="\d\d\.\d\d\.\d{4}, \d\d:\d\d:\d\d UTC">'
        r"in \d+ (Sekunden|Minuten?)</time>",
        page,
    ), re.findall("<time.*?</time>", page)
    key = re.search(r'name="key" value="([^"]+)"', page).group(1)
    response, _ = await web.post("/retries", {"action": "retry", "key": key}, headers=de)
    assert response.code == 302
    flash = re.search(r"faktory_flash=([^;]*)", set_cookie(response)).group(1)
    _, page = await web.get(
        "/retries", headers={"Cookie": f"faktory_locale=de; faktory_flash={flash}"}
    )
    assert '<div class="flash" role="status">1 Job zur Wiederholung eingereiht.</div>' in page
    assert job["jid"] not in page


def test_every_served_locale_has_its_name_and_direction():
    for tag in i18n.LANGUAGES:
        t = i18n.translator(tag)
        assert t.tag == tag and t.dir == ("rtl" if tag in ("ar", "he") else "ltr")
