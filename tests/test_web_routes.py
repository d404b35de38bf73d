"""Web UI routes through Klein, in process: ``treq.testing.StubTreq`` against
``WebUI(server).resource()`` of a real ``FaktoryServer`` on a real spawned
redis-server (one per module; each test gets its own key prefix)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
import uuid
from html import unescape

import pytest_twisted
from inproc import start_server
from treq.testing import StubTreq
from twisted.internet import defer, reactor, task
from twisted.python.failure import Failure
from twisted.web.template import tags

from faktory.job import format_time
from faktory.plugin import WebPage
from faktory.server import FaktoryServer
from faktory.web import WebUI
from faktory.web.app import queue_token
from helpers import short_tmpdir

HOST = "http://faktory.test"


class Web:
    """One server (own prefix) and an HTTP client for its web UI."""

    def __init__(self, server: FaktoryServer) -> None:
        self.server = server
        self.ui = WebUI(server)
        self.stub = StubTreq(self.ui.resource())

    @property
    def store(self):
        return self.server.store

    def cmd(self, *args):
        return self.server.redis.execute_command(*args)

    async def request(self, method: str, path: str, headers=None, **kw):
        """(response, body text); pumps the in-memory connection while the
        resource waits on Redis."""
        hdrs = {"Host": ["faktory.test"]}
        hdrs.update({k: v if isinstance(v, list) else [v] for k, v in (headers or {}).items()})
        d = self.stub.request(method, HOST + path, headers=hdrs, allow_redirects=False, **kw)
        response = await self._pump(d)
        body = await self._pump(self.stub.content(response))
        return response, body.decode()

    async def _pump(self, d):
        out = []
        d.addBoth(out.append)
        deadline = time.monotonic() + 10
        while not out:
            self.stub.flush()
            if time.monotonic() > deadline:
                raise AssertionError("no response")
            await task.deferLater(reactor, 0.001, lambda: None)
        if isinstance(out[0], Failure):
            out[0].raiseException()
        return out[0]

    async def get(self, path: str, **kw):
        return await self.request("GET", path, **kw)

    async def post(self, path: str, data, headers=None):
        h = {"Sec-Fetch-Site": "same-origin"}
        h.update(headers or {})
        return await self.request("POST", path, data=data, headers=h)

    async def push(self, **fields) -> dict:
        fields.setdefault("jid", uuid.uuid4().hex)
        fields.setdefault("jobtype", "SendEmail")
        fields.setdefault("args", [1])
        await self.server.manager.push_raw(json.dumps(fields))
        return fields

    async def zset(self, name: str) -> list[dict]:
        raw = await self.cmd("ZRANGE", self.store.prefix + name, 0, -1)
        return [json.loads(r) for r in raw]

    async def fail_into(self, name: str, **fields) -> dict:
        """Put a job into retries or dead the way a failing worker does."""
        job = await self.push(**fields)
        raw = await self.server.manager.fetch([job["queue"]] if "queue" in job else ["default"])
        assert json.loads(raw)["jid"] == job["jid"]
        await self.server.manager.fail(
            job["jid"], "RuntimeError", "boom <b>bold</b>", ["app.rb:1", "lib.rb:2"]
        )
        return job


@pytest_twisted.async_yield_fixture
async def web(redis):
    # No password here: the UI answers only names it knows (DNS rebinding).
    config = {"web": {"allowed_hosts": ["faktory.test"]}}
    server = await start_server(redis.url, data_dir=short_tmpdir("fkd"), config=config)
    yield Web(server)
    await server.store.flush()
    await defer.maybeDeferred(server.stopService)
    shutil.rmtree(server.settings.data_dir, ignore_errors=True)


def rows(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in html else ""
    return re.findall(r"<tr[ >].*?</tr>", body, re.S)


def keys_in(html: str) -> list[str]:
    """The entries listed: the values of their checkboxes."""
    return [unescape(k) for k in re.findall(r'type="checkbox" name="key" value="([^"]+)"', html)]


# -- pages ------------------------------------------------------------------------
@pytest_twisted.ensureDeferred
async def test_every_page_renders_with_summary_and_separators(web):
    await web.push(queue="critical")
    await web.fail_into("retries", retry=5)
    await web.push(at=format_time(time.time() + 3600))
    await web.cmd("SET", web.store.prefix + "stat:processed", 1234567)
    for path, title in [
        ("/", "Dashboard"),
        ("/queues", "Queues"),
        ("/queues/critical", "Queue critical"),
        ("/busy", "Busy"),
        ("/retries", "Retries"),
        ("/scheduled", "Scheduled"),
        ("/morgue", "Dead"),
        ("/debug", "Debug"),
    ]:
        response, html = await web.get(path)
        assert response.code == 200, (path, html[:300])
        assert f"<h1>{title}</h1>" in html
        assert response.headers.getRawHeaders("content-type") == ["text/html; charset=utf-8"]
        assert 'data-stat="processed">1,234,567<' in html
        assert 'data-stat="retries">1<' in html
        assert "/static/faktory.css?v=" in html and "cdn" not in html.lower()
    response, html = await web.get("/debug")
    assert "redis_version:" in html and "µs" in html


@pytest_twisted.ensureDeferred
async def test_dashboard_history_and_get_only(web):
    day = time.strftime("%Y-%m-%d")
    await web.cmd("SET", web.store.prefix + f"stat:processed:{day}", 4321)
    await web.cmd("SET", web.store.prefix + f"stat:failures:{day}", 21)
    response, html = await web.get("/?days=7")
    assert response.code == 200
    series = json.loads(unescape(re.search(r'data-history="([^"]*)"', html).group(1)))
    assert len(series) == 7 and series[-1] == {"date": day, "processed": 4321, "failed": 21}
    assert "4,321 processed, 21 failed in the last 7 days" in html
    _, html = await web.get("/?days=9999")
    assert len(json.loads(unescape(re.search(r'data-history="([^"]*)"', html).group(1)))) == 180
    _, html = await web.get("/?days=abc")
    assert len(json.loads(unescape(re.search(r'data-history="([^"]*)"', html).group(1)))) == 30
    response, body = await web.post("/", {})
    assert (response.code, body) == (405, "get only")


@pytest_twisted.ensureDeferred
async def test_job_values_are_escaped_everywhere(web):
    evil = "<script>alert('x')</script>"
    job = await web.fail_into("retries", args=[evil, {"k": evil}], custom={evil: evil})
    await web.push(args=[evil], jobtype=evil, queue="q1")
    for path in ["/retries", "/queues/q1"]:
        _, html = await web.get(path)
        assert "<script>alert" not in html
        assert "&lt;script&gt;alert" in html, path
    key = keys_in((await web.get("/retries"))[1])[0]
    _, html = await web.get("/retries/" + key.replace("|", "%7C"))
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert "boom &lt;b&gt;bold&lt;/b&gt;" in html
    assert job["jid"] in html


# -- queues -------------------------------------------------------------------------
@pytest_twisted.ensureDeferred
async def test_queue_pages_span_priorities_newest_first(web):
    jids = {}
    for i in range(30):
        pri = 9 if i % 2 else 1
        job = await web.push(queue="work", priority=pri, args=[i])
        jids.setdefault(pri, []).append(job["jid"])
    # Reverse processing order: priority 1 newest first, then priority 9.
    expected = list(reversed(jids[1])) + list(reversed(jids[9]))
    _, page1 = await web.get("/queues/work")
    _, page2 = await web.get("/queues/work?page=2")
    shown = re.findall(r"<code>([0-9a-f]{32})</code>", page1 + page2)
    assert shown == expected
    assert len(rows(page1)) == 25 and len(rows(page2)) == 5
    assert 'aria-current="page">2<' in page2
    _, clamped = await web.get("/queues/work?page=99")
    assert re.findall(r"<code>([0-9a-f]{32})</code>", clamped) == expected[25:]
    for bad in ("x", "-1", "1.5"):
        response, body = await web.get(f"/queues/work?page={bad}")
        assert (response.code, body) == (400, "Invalid parameter")
    response, _ = await web.get("/queues/nosuch")
    assert response.code == 302
    assert response.headers.getRawHeaders("location") == ["/queues"]


@pytest_twisted.ensureDeferred
async def test_queue_delete_selected_pause_resume_clear(web):
    a = await web.push(queue="mail", priority=3)
    b = await web.push(queue="mail")
    c = await web.push(queue="mail", priority=8)
    _, html = await web.get("/queues/mail")
    tokens = dict(
        (json.loads(base64.urlsafe_b64decode(t.split(":")[1] + "==="))["jid"], t)
        for t in re.findall(r'name="bkey" value="([^"]+)"', html)
    )
    assert set(tokens) == {a["jid"], b["jid"], c["jid"]}
    response, _ = await web.post(
        "/queues/mail", {"action": "delete_selected", "bkey": [tokens[a["jid"]], tokens[c["jid"]]]}
    )
    assert response.code == 302
    assert (await web.store.queue_sizes(["mail"])) == {"mail": 1}
    # Flash message on the next page, then gone.
    cookie = response.cookies()
    _, html = await web.get("/queues/mail", cookies=cookie)
    assert "Deleted 2 jobs from mail." in html

    await web.post("/queues/mail", {"action": "pause"})
    assert "mail" in await web.store.paused_queues()
    assert await web.server.manager.fetch(["mail"]) is None
    _, html = await web.get("/queues")
    assert "paused" in html and 'value="resume"' in html
    await web.post("/queues/mail", {"action": "resume"})
    assert json.loads(await web.server.manager.fetch(["mail"]))["jid"] == b["jid"]

    await web.push(queue="mail")
    response, _ = await web.post("/queues/mail", {"action": "delete"})
    assert response.headers.getRawHeaders("location") == ["/queues"]
    assert "mail" not in await web.store.queue_names()
    response, body = await web.post("/queues/mail", {"action": "bogus"})
    assert response.code == 400


def test_queue_token_roundtrip():
    from faktory.web.app import parse_queue_token

    raw = b'{"jid":"x","args":["\xc3\xa9"]}'
    assert parse_queue_token(queue_token(7, raw)) == (7, raw)


# -- sorted sets -------------------------------------------------------------------
@pytest_twisted.ensureDeferred
async def test_retries_actions_retry_delete_kill(web):
    jobs = [await web.fail_into("retries", retry=5, args=[i]) for i in range(4)]
    _, html = await web.get("/retries")
    keys = {k.split("|")[1]: k for k in keys_in(html)}
    assert set(keys) == {j["jid"] for j in jobs}

    before = time.time()
    response, _ = await web.post("/retries", {"action": "retry", "key": [keys[jobs[0]["jid"]]]})
    assert response.code == 302
    raw = await web.server.manager.fetch(["default"])
    job = json.loads(raw)
    assert job["jid"] == jobs[0]["jid"] and job["failure"]["retry_count"] == 0
    from faktory.job import parse_time

    assert parse_time(job["enqueued_at"]) >= before - 1

    await web.post("/retries", {"action": "delete", "key": [keys[jobs[1]["jid"]]]})
    await web.post("/retries", {"action": "kill", "key": [keys[jobs[2]["jid"]]]})
    assert [j["jid"] for j in await web.zset("retries")] == [jobs[3]["jid"]]
    assert [j["jid"] for j in await web.zset("dead")] == [jobs[2]["jid"]]

    response, body = await web.post(
        "/retries", {"action": "explode", "key": [keys[jobs[3]["jid"]]]}
    )
    assert (response.code, body) == (400, "invalid action: explode")
    response, body = await web.post("/retries", {"action": "delete", "key": ["notakey"]})
    assert response.code == 400
    # An old link to a gone entry sends the browser to the job's stable page.
    response, _ = await web.get("/retries/" + keys[jobs[1]["jid"]].replace("|", "%7C"))
    assert response.code == 307
    assert response.headers.getRawHeaders("location") == ["/job/" + jobs[1]["jid"]]


@pytest_twisted.ensureDeferred
async def test_all_actions_and_scheduled_add_to_queue(web):
    for i in range(3):
        await web.push(at=format_time(time.time() + 3600 + i), args=[i], queue="later")
    _, html = await web.get("/scheduled")
    assert len(keys_in(html)) == 3
    await web.post("/scheduled", {"action": "add_to_queue", "key": keys_in(html)[:1]})
    assert await web.store.queue_sizes(["later"]) == {"later": 1}
    await web.post("/scheduled", {"action": "add_to_queue", "key": "all"})
    assert await web.store.queue_sizes(["later"]) == {"later": 3}
    assert await web.zset("scheduled") == []

    for i in range(3):
        await web.fail_into("dead", retry=-1, args=[i], queue="graveyard")
    assert len(await web.zset("dead")) == 3
    _, html = await web.get("/morgue")
    assert "Delete all" in html
    await web.post("/morgue", {"action": "retry", "key": "all"})
    assert await web.zset("dead") == []
    assert await web.store.queue_sizes(["graveyard"]) == {"graveyard": 3}
    for i in range(2):
        await web.fail_into("dead", retry=-1, args=[i], queue="crypt")
    await web.post("/morgue", {"action": "delete", "key": "all"})
    assert await web.zset("dead") == []
    response, body = await web.post("/morgue", {"action": "kill", "key": "all"})
    assert response.code == 400


@pytest_twisted.ensureDeferred
async def test_job_page_shows_every_field(web):
    job = await web.fail_into(
        "retries",
        retry=3,
        args=[{"user": 42, "tags": ["a", "b"]}, "two"],
        custom={"tenant": "acme"},
        reserve_for=600,
        priority=7,
        queue="default",
    )
    _, html = await web.get("/retries")
    key = keys_in(html)[0]
    response, html = await web.get("/retries/" + key.replace("|", "%7C"))
    assert response.code == 200
    text = unescape(re.sub(r"<[^>]+>", " ", html))
    for expected in (
        job["jid"],
        "SendEmail",
        '"user": 42',
        '"two"',
        "tenant",
        '"acme"',
        "Priority",
        "7",
        "600 s",
        "RuntimeError",
        "boom <b>bold</b>",
        "app.rb:1",
        "lib.rb:2",
        "Retries remaining",
        "Next retry",
    ):
        assert expected in text, expected
    # Its buttons post the key back to the list.
    assert f'name="key" value="{key}"' in html.replace("&#124;", "|")
    response, _ = await web.post("/retries", {"action": "delete", "key": key})
    assert await web.zset("retries") == []


@pytest_twisted.ensureDeferred
async def test_dead_filter_by_text_and_jobtype_and_order(web):
    for i in range(30):
        await web.fail_into(
            "dead", retry=-1, jobtype="Billing" if i % 3 == 0 else "Mailer", args=[f"user-{i}"]
        )
    _, html = await web.get("/morgue?jobtype=Billing")
    assert len(keys_in(html)) == 10 and "Mailer" not in html.split("<tbody>")[1]
    _, html = await web.get("/morgue?q=USER-2")  # case-insensitive: user-2, user-20..29
    assert len(keys_in(html)) == 11
    _, html = await web.get("/morgue?q=user-2&jobtype=Mailer")
    assert len(keys_in(html)) == 8  # user-2, 20, 22, 23, 25, 26, 28, 29
    _, html = await web.get("/morgue?q=nothing-like-this")
    assert "No jobs match this filter." in html
    # Newest death first by default; ?order=asc flips it.
    _, desc = await web.get("/morgue")
    _, asc = await web.get("/morgue?order=asc")
    scores_desc = [float(k.split("|")[0]) for k in keys_in(desc)]
    scores_asc = [float(k.split("|")[0]) for k in keys_in(asc)]
    assert scores_desc == sorted(scores_desc, reverse=True) and scores_asc == sorted(scores_asc)
    # Filtered paging: 30 matches -> 25 on page 1, 5 on page 2, none after.
    _, p1 = await web.get("/morgue?q=user-")
    _, p2 = await web.get("/morgue?q=user-&page=2")
    assert len(keys_in(p1)) == 25 and len(keys_in(p2)) == 5
    assert not set(keys_in(p1)) & set(keys_in(p2))
    assert 'href="/morgue?q=user-&amp;page=2"' in p1
    response, _ = await web.get("/morgue?order=sideways")
    assert response.code == 400


@pytest_twisted.ensureDeferred
async def test_paging_stays_fast_with_100k_entries(web):
    """Fill the dead set with 100,000 entries inside Redis, then time the
    first and the last page (generous bounds: a shared machine)."""
    fill = """
    local key, now = KEYS[1], tonumber(ARGV[1])
    for i = 1, 100000 do
      redis.call('ZADD', key, now + i, '{"jid":"j' .. i .. '","jobtype":"Bulk","queue":"default","args":[' .. i .. ']}')
    end
    return redis.call('ZCARD', key)
    """
    started = time.monotonic()
    n = await web.cmd("EVAL", fill, 1, web.store.prefix + "dead", int(time.time()))
    assert n == 100_000, n
    fill_seconds = time.monotonic() - started

    timings = {}
    for label, path in [("first", "/morgue"), ("last", "/morgue?page=4000")]:
        started = time.monotonic()
        response, html = await web.get(path)
        timings[label] = time.monotonic() - started
        assert response.code == 200
        assert 'data-stat="dead">100,000<' in html
    _, last = await web.get("/morgue?page=4000")
    jids = [k.split("|")[1] for k in keys_in(last)]
    assert jids == [f"j{i}" for i in range(25, 0, -1)]  # the oldest deaths
    assert "4,000" in last  # pager shows the last page number
    assert max(timings.values()) < 2.0, (timings, fill_seconds)

    # An action on one entry of a big set is a lookup by score, not a scan.
    started = time.monotonic()
    await web.post("/morgue", {"action": "delete", "key": keys_in(last)[:1]})
    assert time.monotonic() - started < 2.0
    assert await web.cmd("ZCARD", web.store.prefix + "dead") == 99_999


# -- busy ------------------------------------------------------------------------------
@pytest_twisted.ensureDeferred
async def test_busy_lists_workers_and_signals_them(web):
    workers = web.server.workers
    conn1, conn2 = object(), object()
    await workers.connect(
        "w-one", {"hostname": "host-a", "pid": 11, "labels": ["ruby", "<b>x</b>"]}, conn1
    )
    await workers.connect("w-two", {"hostname": "host-b", "pid": 22}, conn2)
    await workers.beat("w-one", 150_000)
    await web.push()
    await web.server.manager.fetch(["default"], "w-one")
    _, html = await web.get("/busy")
    assert "host-a:11" in html and "host-b:22" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "146.5 MB" in html
    assert "Jobs in progress (1)" in html
    await web.post("/busy", {"wid": "w-one", "signal": "quiet"})
    assert await workers.state("w-one") == "quiet"
    assert await workers.state("w-two") == "running"
    await web.post("/busy", {"wid": "all", "signal": "terminate"})
    assert await workers.state("w-one") == "terminate"
    assert await workers.state("w-two") == "terminate"
    response, body = await web.post("/busy", {"wid": "w-one", "signal": "explode"})
    assert (response.code, body) == (400, "Invalid signal: explode")
    await workers.disconnect("w-one", conn1)
    await workers.disconnect("w-two", conn2)


# -- security -------------------------------------------------------------------------
@pytest_twisted.ensureDeferred
async def test_cross_origin_posts_are_refused(web):
    await web.push(queue="guarded")
    for headers in (
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
    ):
        response, body = await web.request(
            "POST", "/queues/guarded", data={"action": "pause"}, headers=headers
        )
        assert response.code == 403, headers
    assert await web.store.paused_queues() == set()
    # Same origin by either header, or a non-browser client, is let through.
    for headers in ({"Origin": "http://faktory.test"}, {"Sec-Fetch-Site": "same-origin"}, {}):
        response, _ = await web.request(
            "POST", "/queues/guarded", data={"action": "pause"}, headers=headers
        )
        assert response.code == 302
    # Reading is never blocked.
    response, _ = await web.get("/queues", headers={"Sec-Fetch-Site": "cross-site"})
    assert response.code == 200
    response, _ = await web.get("/")
    for name in ("content-security-policy", "x-frame-options", "x-content-type-options"):
        assert response.headers.getRawHeaders(name), name


@pytest_twisted.ensureDeferred
async def test_basic_auth_when_password_is_set(web):
    for attr in ("password", "web_password"):
        if attr == "password":
            web.server.password = "s3cret"
        else:
            web.server.password = ""
            web.server.settings.web_password = "s3cret"
        response, body = await web.get("/queues")
        assert (response.code, body) == (401, "Authorization required")
        assert response.headers.getRawHeaders("www-authenticate") == ['Basic realm="Faktory"']
        bad = "Basic " + base64.b64encode(b"admin:wrong").decode()
        response, body = await web.get("/queues", headers={"Authorization": bad})
        assert (response.code, body) == (401, "Authorization failed")
        good = "Basic " + base64.b64encode(b"anyone:s3cret").decode()
        response, _ = await web.get("/queues", headers={"Authorization": good})
        assert response.code == 200
        response, _ = await web.get("/stats")
        assert response.code == 401
        for open_path in ("/health", "/static/faktory.css"):
            response, _ = await web.get(open_path)
            assert response.code == 200, open_path
    web.server.settings.web_password = ""


@pytest_twisted.ensureDeferred
async def test_static_assets_cached_and_no_listing(web):
    response, css = await web.get("/static/faktory.css")
    assert response.code == 200 and ".summary" in css
    assert response.headers.getRawHeaders("cache-control") == ["public, max-age=3600"]
    response, js = await web.get("/static/faktory.js")
    assert response.code == 200 and "localStorage" in js
    response, _ = await web.get("/static/")
    assert response.code == 404
    response, _ = await web.get("/static/../app.py")
    assert response.code == 404


@pytest_twisted.ensureDeferred
async def test_reverse_proxy_prefix(web):
    headers = {"X-Script-Name": "/faktory/"}
    response, html = await web.get("/faktory/queues", headers=headers)
    assert response.code == 200
    assert 'href="/faktory/retries"' in html and 'href="/faktory/static/faktory.css?v=' in html
    response, _ = await web.post("/faktory/busy", {"wid": "all", "signal": "quiet"}, headers)
    assert response.headers.getRawHeaders("location") == ["/faktory/busy"]


# -- plugin pages ---------------------------------------------------------------------
@pytest_twisted.ensureDeferred
async def test_plugin_pages_render_inside_the_layout(web):
    seen = []

    def hello(request):
        seen.append(request.method)
        return '<p id="plugin-hello">Hello from a <em>plugin</em></p>'

    async def tagged(request):
        return tags.div("from a tag <escaped>", id="plugin-tag")

    web.server.add_web_page(WebPage("hello", "Hello", hello))
    web.server.add_web_page(WebPage("/tools/tagged/", "Tagged", tagged, nav=False))
    response, html = await web.get("/hello")
    assert response.code == 200
    assert '<p id="plugin-hello">Hello from a <em>plugin</em></p>' in html
    assert '<a href="/hello" aria-current="page" class="active">Hello</a>' in html
    assert "<h1>Hello</h1>" in html and 'data-stat="processed"' in html
    response, html = await web.get("/tools/tagged")
    assert "from a tag &lt;escaped&gt;" in html and ">Tagged</a>" not in html
    # Plugin forms get the same cross-origin protection.
    response, _ = await web.request("POST", "/hello", headers={"Origin": "http://evil.example"})
    assert response.code == 403
    response, _ = await web.post("/hello", {"x": "1"})
    assert response.code == 200 and seen == [b"GET", b"POST"]
    response, html = await web.get("/nothing/here")
    assert response.code == 404 and "No such page." in html
