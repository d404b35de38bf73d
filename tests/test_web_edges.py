"""The web UI's edges through real HTTP against a running server: what a
stranger can read, DNS rebinding, error bodies that echo input, and odd
values stored in Redis that every page must survive (one also in headless
Chromium)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import time
import urllib.parse

import pytest
from rawredis import RawRedis

from helpers import ServerProcess, config_dir, refused_start, wait_for_port

PASSWORD = "web-edges-secret"
STATIC_FILES = sorted(
    os.listdir(os.path.join(os.path.dirname(__file__), "..", "faktory", "web", "static"))
)


def request(
    srv,
    method: str,
    path: str,
    host: str | None = None,
    password: str | None = None,
    body: dict | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.web_port, timeout=30)
    headers = {}
    if host is not None:
        headers["Host"] = host
    if password is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"u:{password}".encode()).decode()
    data = None
    if body is not None:
        data = urllib.parse.urlencode(body)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    out = resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    conn.close()
    return out


@pytest.fixture(scope="module")
def locked():
    """A server whose UI has a password."""
    s = ServerProcess(env={"FAKTORY_PASSWORD": PASSWORD}).start()
    wait_for_port(s.web_port)
    yield s
    s.discard()


@pytest.mark.parametrize(
    "path",
    [
        "/", "/stats", "/metrics", "/debug", "/queues", "/busy", "/retries", "/morgue",
        "/nonexistent", "/static", "/static/", "/static/nope.css", "/static/x/y",
        "/static/..%2fapp.py", "/static/faktory.css/x", "/health/x", "/health/live/x",
        "/job/abc", "/retries/groups", "/%2e%2e/",
    ],
)  # fmt: skip
def test_without_credentials_only_health_and_static_files_answer(locked, path):
    status, headers, body = request(locked, "GET", path)
    assert status == 401, (path, status, body[:300])
    assert headers["content-type"].startswith("text/plain")
    assert body == b"Authorization required"  # no counters, endpoints or plugin list
    # With the password the same path is served (or a proper not-found page).
    status, _, _ = request(locked, "GET", path, password=PASSWORD)
    assert status in (200, 302, 307, 404), (path, status)


def test_health_and_real_static_files_stay_public(locked):
    status, headers, body = request(locked, "GET", "/health")
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert request(locked, "GET", "/health/live")[0] == 200
    for name in STATIC_FILES:
        status, headers, body = request(locked, "GET", f"/static/{name}")
        assert status == 200 and body, name


def test_error_bodies_that_echo_input_are_plain_text(locked):
    evil = "<script>alert(1)</script>"
    for path, form in (
        ("/queues/default", {"action": evil}),
        ("/busy", {"signal": evil, "wid": "x"}),
        ("/retries", {"action": evil, "key": "1|x"}),
    ):
        status, headers, body = request(locked, "POST", path, password=PASSWORD, body=form)
        assert status == 400, (path, status, body)
        assert headers["content-type"].startswith("text/plain"), (path, headers["content-type"])
        assert headers["x-content-type-options"] == "nosniff"


@pytest.fixture(scope="module")
def open_ui():
    """A development server without a password; one extra allowed name."""
    conf = config_dir('[web]\nallowed_hosts = ["faktory.internal"]\n')
    s = ServerProcess(args=["--config-dir", conf]).start()
    wait_for_port(s.web_port)
    yield s
    s.discard()
    shutil.rmtree(conf, ignore_errors=True)


def test_dns_rebinding_without_a_password_is_refused(open_ui):
    port = open_ui.web_port
    for host in (
        f"evil.example:{port}",
        "evil.example",
        f"127.0.0.1.nip.io:{port}",
        "attacker.localhost.evil:80",
    ):
        status, headers, body = request(open_ui, "GET", "/", host=host)
        assert status == 403, (host, status)
        assert b"DNS rebinding" in body and headers["content-type"].startswith("text/plain")
        assert b"processed" not in body.lower()
        assert request(open_ui, "GET", "/stats", host=host)[0] == 403
    for host in (
        f"127.0.0.1:{port}",
        f"localhost:{port}",
        "localhost",
        f"LOCALHOST.:{port}",
        f"faktory.internal:{port}",
        f"app.localhost:{port}",
    ):
        status, _, body = request(open_ui, "GET", "/", host=host)
        assert status == 200, (host, status, body[:200])


def test_allowed_hosts_must_be_a_list_of_strings():
    log = refused_start('[web]\nallowed_hosts = "faktory.internal"\n', web=True)
    assert "[web] allowed_hosts must be a list of strings" in log


# -- odd stored values ----------------------------------------------------------

NOW = time.time()
ODD_JOBS = [
    {"jid": "odd-nan", "jobtype": "Odd", "args": [1], "queue": "odd", "created_at": "nan",
     "enqueued_at": "nan", "at": "nan"},
    {"jid": "odd-future", "jobtype": "Odd", "args": [], "queue": "odd",
     "created_at": "9999-12-31T23:59:59.999999Z", "enqueued_at": "99999-01-01T00:00:00Z",
     "at": "+inf", "retry": 10**30, "reserve_for": 1e300},
    {"jid": "odd-types", "jobtype": {"not": "a string"}, "args": "not a list", "queue": 5,
     "created_at": 12345, "priority": "high", "custom": [1, 2], "retry": "x",
     "failure": {"retry_count": "many", "failed_at": "nan", "message": None, "errtype": ["x"],
                 "backtrace": "not a list", "next_at": 1e308}},
    {"jid": "odd-failure", "jobtype": "Odd", "args": [], "queue": "odd",
     "failure": "just a string", "created_at": "-999999-01-01T00:00:00Z"},
]  # fmt: skip
ODD_RAW = [
    b"not json at all",
    b"[1, 2, 3]",
    b'{"jid": 5}',
    b"null",
    b'{"jid": "odd-inf", "created_at": 1e999}',
]


def _fill_odd(srv) -> None:
    r = RawRedis(os.path.join(os.path.abspath(srv.data_dir), "redis.sock"))
    members = [json.dumps(j).encode() for j in ODD_JOBS] + ODD_RAW
    for raw in members:
        r("LPUSH", "fk:q:odd:5", raw)
    r("SADD", "fk:queues", "odd")
    r("ZADD", "fk:qp:odd", 5, 5)
    for key in ("retries", "scheduled", "dead"):
        for i, raw in enumerate(members):
            score = (NOW + 60, 1e300, "+inf", "-inf", 253402300800, 0, NOW, -1e20, NOW + 1)[i % 9]
            r("ZADD", f"fk:{key}", score, raw)
    for i, raw in enumerate(members):
        jid = f"work-{i}"
        reservation = (
            raw
            if i % 2
            else json.dumps(
                {
                    "job": json.loads(members[i % 4]),
                    "wid": "w-odd",
                    "reserved_at": "nan",
                    "expires_at": "9999-99-99",
                }
            ).encode()
        )
        r("HSET", "fk:working", jid, reservation)
        r("ZADD", "fk:working:exp", (1e300, "+inf", NOW + 30)[i % 3], jid)
    for wid, fields in {
        "w-odd": {
            "info": json.dumps({"hostname": ["x"], "pid": 1e300, "labels": "nope", "v": "two"}),
            "beat": "nan",
            "started_at": "-1e308",
            "rss_kb": "9" * 40,
            "state": "weird",
            "conns": "many",
        },
        "w-notjson": {
            "info": "not json",
            "beat": "9999999999999999999",
            "rss_kb": "-5",
            "started_at": "inf",
        },
        "w-empty": {"state": "quiet"},
    }.items():
        flat = [x for kv in fields.items() for x in kv]
        r("HSET", f"fk:worker:{wid}", *flat)
        r("ZADD", "fk:workers", NOW + 5, wid)
    # Daily history counters of past days garbled by some other program.
    for days_ago, value in ((3, "garbage"), (4, "1e999"), (5, "9" * 40), (6, "-7")):
        day = time.strftime("%Y-%m-%d", time.gmtime(NOW - days_ago * 86400))
        r("SET", f"fk:stat:processed:{day}", value)
        r("SET", f"fk:stat:failures:{day}", value)
    r.close()


@pytest.fixture(scope="module")
def odd():
    s = ServerProcess().start()
    wait_for_port(s.web_port)
    _fill_odd(s)
    yield s
    s.discard()


def test_every_page_survives_odd_stored_values(odd):
    pages = ["/", "/?days=7", "/queues", "/queues/odd", "/busy", "/retries", "/scheduled", "/morgue",
             "/retries/groups", "/morgue/groups", "/debug", "/stats", "/metrics",
             "/retries?order=asc", "/morgue?q=odd", "/queues/odd?page=2", "/busy?page=2"]  # fmt: skip
    seen = {}
    for path in pages:
        status, headers, body = request(odd, "GET", path)
        assert status == 200, (path, status, body[-500:])
        seen[path] = body
    # Every job link of the lists, and each odd job by its jid: never a 500.
    links = {"/job/" + urllib.parse.quote(job["jid"]) for job in ODD_JOBS}
    for body in seen.values():
        links |= {
            h.replace("&amp;", "&") for h in re.findall(r'href="(/job/[^"#]+)"', body.decode())
        }
    assert len(links) >= 20, links
    for path in sorted(links):
        status, _, body = request(odd, "GET", path)
        assert status < 500, (path, status, body[-500:])
    # The odd values are shown as they are (or as invalid), not hidden.
    assert b"odd-future" in seen["/retries"] and b"odd-nan" in seen["/queues/odd"]
    assert b"w-odd" in seen["/busy"] and b"w-notjson" in seen["/busy"]
    assert b">invalid<" in seen["/busy"] and b"(unreadable reservation)" in seen["/busy"]
    log = odd.log()
    assert "Traceback" not in log, log[log.find("Traceback") - 2000 :][:4000]


def test_odd_values_in_headless_chromium(odd):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from test_web_browser import CHROMEDRIVER, CHROMIUM, FLAGS

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(30)
        for path, text in (
            ("/busy", "w-odd"),
            ("/retries", "odd-future"),
            ("/queues/odd", "odd-nan"),
        ):
            driver.get(f"http://127.0.0.1:{odd.web_port}{path}")
            body = driver.find_element(By.TAG_NAME, "body").text
            assert text in driver.page_source, (path, body[:500])
            assert "not json at all" in body or path == "/busy"  # the unreadable entry, shown
            assert "Internal Server Error" not in body and "Traceback" not in body
            assert driver.find_elements(By.CSS_SELECTOR, "table"), path
    finally:
        driver.quit()
