"""Routes of the incident tools (in process, real Redis): the stable job
page ``/job/<jid>`` and the find box, queue filters, grouped failures,
releasing orphaned reservations."""

from __future__ import annotations

import json
import re
import time
from html import unescape

import pytest_twisted
import test_web_routes
from test_web_routes import keys_in
from twisted.logger import formatEvent, globalLogPublisher

from faktory.groups import Groups
from faktory.job import format_time
from faktory.locate import Finder

web = test_web_routes.web  # the fixture: a server with its own prefix on a real Redis


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def where(html: str) -> str:
    """The job page's one-line location."""
    section = html.split('id="job-where">', 1)[1].split("</section>", 1)[0]
    return text_of(section).strip()


# -- /job/<jid> -------------------------------------------------------------------
@pytest_twisted.ensureDeferred
async def test_job_url_follows_the_job_through_its_life(web):
    job = await web.push(queue="mail", jobtype="Welcome", priority=7, args=["ann"])
    jid = job["jid"]
    response, html = await web.get(f"/job/{jid}")
    assert response.code == 200
    assert f"<h1>Welcome {jid}</h1>" in html
    assert where(html).startswith("Enqueued Waiting in queue mail , priority 7")
    # In progress, then failed into retries: the same URL follows it.
    await web.server.manager.fetch(["mail"], wid="w-1")
    _, html = await web.get(f"/job/{jid}")
    assert where(html).startswith("In progress Reserved by w-1 since")
    await web.server.manager.fail(jid, "IOError", "disk full", [])
    _, html = await web.get(f"/job/{jid}")
    assert where(html).startswith("Retries In Retries (next retry in")
    assert "IOError" in html and 'value="retry"' in html
    # The retries list links each row to the stable URL, with where it was.
    _, listing = await web.get("/retries")
    key = keys_in(listing)[0]
    score = key.partition("|")[0]
    assert f'href="/job/{jid}?in=retries&amp;score={score}"' in listing
    # Retried: back in its queue.  The old score-keyed link and the list's
    # hinted link both still lead to it.
    await web.post("/retries", {"action": "retry", "key": [key]})
    response, _ = await web.get("/retries/" + key.replace("|", "%7C"))
    assert response.code == 307
    assert response.headers.getRawHeaders("location") == [f"/job/{jid}"]
    _, html = await web.get(f"/job/{jid}?in=retries&score={score}")
    assert where(html).startswith("Enqueued Waiting in queue mail")
    # Killed from a retry into the dead set, then gone for good.
    await web.server.manager.fetch(["mail"], wid="w-1")
    await web.server.manager.fail(jid, "IOError", "disk full", [])
    await web.post("/retries", {"action": "kill", "key": keys_in((await web.get("/retries"))[1])})
    _, html = await web.get(f"/job/{jid}")
    assert where(html).startswith("Dead In Dead (died")
    await web.post("/morgue", {"action": "delete", "key": "all"})
    response, html = await web.get(f"/job/{jid}")
    assert response.code == 404
    assert f"No job {jid} is waiting in a queue" in text_of(html)


@pytest_twisted.ensureDeferred
async def test_job_url_finds_scheduled_and_odd_jids(web):
    odd = "a/b c?d&<e>"
    await web.push(jid=odd, at=format_time(time.time() + 7200), queue="later")
    response, html = await web.get("/job/a%2Fb%20c%3Fd%26%3Ce%3E")
    assert response.code == 200
    assert where(html).startswith("Scheduled In Scheduled (when in 2 hours")
    assert "<e>" not in html and "a/b c?d&amp;&lt;e&gt;" in html
    # A job that mentions another job's jid in its arguments is not that job.
    await web.push(queue="q", args=[{"jid": "target"}])
    response, _ = await web.get("/job/target")
    assert response.code == 404


@pytest_twisted.ensureDeferred
async def test_find_box_redirects_to_the_job(web):
    response, _ = await web.get("/job?jid=%20abc%2F1%20")
    assert response.code == 302
    assert response.headers.getRawHeaders("location") == ["/job/abc%2F1"]
    response, _ = await web.get("/job?jid=")
    assert response.headers.getRawHeaders("location") == ["/"]
    _, html = await web.get("/queues")
    assert '<form method="get" action="/job" class="find" role="search">' in html


@pytest_twisted.ensureDeferred
async def test_job_search_is_bounded(web, monkeypatch):
    for i in range(30):
        await web.push(queue="big", args=[i])
    last = await web.push(queue="big", args=["last"])
    monkeypatch.setattr(Finder, "SCAN", 7)
    search = await Finder(web.store).locate(last["jid"])
    assert search.found is not None and search.found.queue == "big"
    monkeypatch.setattr(Finder, "LIMIT", 14)
    first = json.loads((await web.store.queue_page("big", 30, 1))[1][0][1])
    response, html = await web.get("/job/" + first["jid"])
    assert response.code == 404
    assert "was not found among the first" in text_of(html)


# -- orphaned reservations -------------------------------------------------------------
def busy_row(html: str, jid: str) -> str:
    return re.search(rf'<tr data-jid="{jid}"[^>]*>.*?</tr>', html, re.S).group(0)


@pytest_twisted.ensureDeferred
async def test_release_a_job_whose_worker_is_gone(web):
    store, manager = web.store, web.server.manager
    now = time.time()
    await store.worker_connect("w-alive", now, "{}")
    lost = await web.push(queue="work", args=["lost"])
    await manager.fetch(["work"], wid="w-crashed")  # no record: its process is gone
    held = await web.push(queue="work", args=["held"])
    await manager.fetch(["work"], wid="w-alive")
    waiting = await web.push(queue="work", args=["waiting"])
    _, html = await web.get("/busy")
    row = busy_row(html, lost["jid"])
    assert 'class="orphan"' in row and "worker gone" in row and 'value="release"' in row
    assert "worker gone" not in busy_row(html, held["jid"])
    stamp = re.search(r'name="reserved_at" value="([^"]+)"', row).group(1)

    # A stale form (another reservation time) releases nothing.
    response, _ = await web.post("/busy/release", {"jid": lost["jid"], "reserved_at": "x"})
    _, html = await web.get("/busy", cookies=response.cookies())
    assert "is no longer held by that reservation: nothing released." in html
    logged: list[str] = []
    observer = lambda event: logged.append(formatEvent(event))  # noqa: E731
    globalLogPublisher.addObserver(observer)
    try:
        response, _ = await web.post("/busy/release", {"jid": lost["jid"], "reserved_at": stamp})
    finally:
        globalLogPublisher.removeObserver(observer)
    assert response.headers.getRawHeaders("location") == ["/busy"]
    assert f"Operator released job {lost['jid']} (SendEmail) of gone worker w-crashed" in "".join(
        logged
    )
    _, html = await web.get("/busy", cookies=response.cookies())
    assert f"Released {lost['jid']} back to queue work." in html
    assert await store.reservation(lost["jid"]) is None
    # Back at the front of its queue: the next FETCH gets it before "waiting".
    assert json.loads(await manager.fetch(["work"], wid="w-alive"))["jid"] == lost["jid"]
    assert json.loads(await manager.fetch(["work"], wid="w-alive"))["jid"] == waiting["jid"]

    # A worker that sends heartbeats keeps its job, whatever the form says.
    raw = json.loads(await store.reservation(held["jid"]))
    response, _ = await web.post(
        "/busy/release", {"jid": held["jid"], "reserved_at": raw["reserved_at"]}
    )
    _, html = await web.get("/busy", cookies=response.cookies())
    assert "sends heartbeats again: nothing released." in html
    assert await store.reservation(held["jid"]) is not None


@pytest_twisted.ensureDeferred
async def test_release_refuses_a_worker_that_came_back(web):
    """The worker check runs inside the release script, after the page was drawn."""
    store, manager = web.store, web.server.manager
    job = await web.push(queue="work")
    await manager.fetch(["work"], wid="w-flaky")
    _, html = await web.get("/busy")
    assert "worker gone" in busy_row(html, job["jid"])
    stamp = re.search(r'name="reserved_at" value="([^"]+)"', html).group(1)
    await store.worker_connect("w-flaky", time.time(), "{}")
    response, _ = await web.post("/busy/release", {"jid": job["jid"], "reserved_at": stamp})
    _, html = await web.get("/busy", cookies=response.cookies())
    assert "sends heartbeats again" in html
    assert "worker gone" not in busy_row(html, job["jid"])
    # Silent for longer than the heartbeat timeout: gone again, and releasable.
    await web.cmd("HSET", store.prefix + "worker:w-flaky", "beat", time.time() - 61)
    await web.post("/busy/release", {"jid": job["jid"], "reserved_at": stamp})
    assert await store.reservation(job["jid"]) is None
    assert await store.queue_sizes(["work"]) == {"work": 1}


# -- failures grouped by cause ---------------------------------------------------------
async def failed(web, errtype: str, jobtype: str, retry: int = 5, message: str = "boom") -> dict:
    job = await web.push(queue="work", jobtype=jobtype, retry=retry)
    await web.server.manager.fetch(["work"], wid="w-1")
    await web.server.manager.fail(job["jid"], errtype, message, [])
    return job


def groups_in(html: str) -> dict[str, str]:
    return {
        unescape(value): text_of(row).strip()
        for value, row in re.findall(r'<tr data-group="([^"]*)">(.*?)</tr>', html, re.S)
    }


@pytest_twisted.ensureDeferred
async def test_retries_grouped_by_error_class_and_job_type(web, monkeypatch):
    for jobtype in ("Charge", "Charge", "Refund"):
        await failed(web, "Net::ReadTimeout", jobtype, message="read timeout <5s>")
    for _ in range(2):
        await failed(web, "KeyError", "Charge", message="key not found: :id")
    monkeypatch.setattr(Groups, "SCAN", 2)  # several steps, merged
    _, listing = await web.get("/retries")
    assert 'href="/retries/groups?by=errtype"' in listing
    response, html = await web.get("/retries/groups?by=errtype")
    assert response.code == 200 and "<h1>Retries by error class</h1>" in html
    groups = groups_in(html)
    assert list(groups) == ["Net::ReadTimeout", "KeyError"]  # largest first
    assert groups["Net::ReadTimeout"].startswith("Net::ReadTimeout 3 read timeout <5s>")
    assert groups["KeyError"].startswith("KeyError 2 key not found: :id")
    assert "5 jobs in 2 groups" in text_of(html)
    assert 'data-min-interval="20000"' in html  # counted in several steps: polled gently
    _, html = await web.get("/retries/groups?by=jobtype")
    assert [(k, v.split()[1]) for k, v in groups_in(html).items()] == [
        ("Charge", "4"),
        ("Refund", "1"),
    ]
    # The group's name links to the list filtered to it.
    _, filtered = await web.get("/retries?q=%22errtype%22%3A%22KeyError%22")
    assert len(keys_in(filtered)) == 2

    # Retry a whole class: those jobs go back to their queue, the others stay.
    response, _ = await web.post(
        "/retries/groups", {"by": "errtype", "value": "Net::ReadTimeout", "action": "retry"}
    )
    assert response.headers.getRawHeaders("location") == ["/retries/groups?by=errtype"]
    _, html = await web.get("/retries/groups?by=errtype", cookies=response.cookies())
    assert "Queued for retry: 3 jobs of Net::ReadTimeout." in html
    assert list(groups_in(html)) == ["KeyError"]
    assert await web.store.queue_sizes(["work"]) == {"work": 3}
    await web.post("/retries/groups", {"by": "jobtype", "value": "Charge", "action": "delete"})
    assert await web.zset("retries") == []

    for bad in ("/retries/groups?by=queue", "/morgue/groups?by="):
        response, body = await web.get(bad)
        assert (response.code, body) == (400, "Invalid parameter")
    response, _ = await web.post(
        "/morgue/groups", {"by": "errtype", "value": "x", "action": "kill"}
    )
    assert response.code == 400


@pytest_twisted.ensureDeferred
async def test_dead_groups_and_bounded_count(web, monkeypatch):
    for i in range(5):
        await failed(web, "Stripe::CardError" if i % 2 else "Timeout", "Charge", retry=-1)
    _, html = await web.get("/morgue/groups?by=errtype")
    assert {k: v.split()[1] for k, v in groups_in(html).items()} == {
        "Stripe::CardError": "2",
        "Timeout": "3",
    }
    monkeypatch.setattr(Groups, "SCAN", 2)
    monkeypatch.setattr(Groups, "LIMIT", 3)
    _, html = await web.get("/morgue/groups?by=jobtype")
    assert "(counted the first 4 entries)" in text_of(html)
    logged: list[str] = []
    observer = lambda event: logged.append(formatEvent(event))  # noqa: E731
    globalLogPublisher.addObserver(observer)
    try:
        await web.post("/morgue/groups", {"by": "errtype", "value": "Timeout", "action": "retry"})
    finally:
        globalLogPublisher.removeObserver(observer)
    assert "Operator retried 3 job(s) of error class 'Timeout' in dead" in "".join(logged)
    assert [j["failure"]["errtype"] for j in await web.zset("dead")] == ["Stripe::CardError"] * 2
    assert await web.store.queue_sizes(["work"]) == {"work": 3}


# -- queue filters ---------------------------------------------------------------------
def jids_in(html: str) -> list[str]:
    return re.findall(r"<td><code>([^<]+)</code></td>", html)


@pytest_twisted.ensureDeferred
async def test_queue_filters_by_jid_jobtype_and_text(web, monkeypatch):
    monkeypatch.setattr(Finder, "SCAN", 4)  # matches gathered over several steps
    mails = [
        await web.push(queue="mix", jobtype="Mail", args=[f"user{i}@Example.com"]) for i in range(6)
    ]
    others = [
        await web.push(queue="mix", jobtype="Resize", priority=9, args=[f"img-{i}.png"])
        for i in range(4)
    ]
    # A job mentioning another's jid is not that job.
    await web.push(queue="mix", jobtype="Audit", args=[{"jid": mails[0]["jid"]}])
    _, html = await web.get("/queues/mix")
    assert 'name="jobtype"' in html and 'name="jid"' in html and 'name="q"' in html
    _, html = await web.get("/queues/mix?jobtype=Mail")
    assert jids_in(html) == [j["jid"] for j in reversed(mails)]
    assert "Matching jobs (of 11)" in text_of(html)
    _, html = await web.get(f"/queues/mix?jid={mails[0]['jid']}")
    assert jids_in(html) == [mails[0]["jid"]]
    _, html = await web.get("/queues/mix?q=USER3%40example")
    assert jids_in(html) == [mails[3]["jid"]]
    _, html = await web.get("/queues/mix?jobtype=Resize&q=IMG-2")
    assert jids_in(html) == [others[2]["jid"]]
    _, html = await web.get("/queues/mix?jobtype=Nothing")
    assert "No jobs match this filter." in html
    # A filter that scanned more than one step refreshes at most every 20 s.
    assert 'data-min-interval="20000"' in html
    _, html = await web.get("/queues/mix")
    assert 'data-min-interval="2000"' in html
    # Paging a filtered list: previous/next only, the filter kept in the links.
    for i in range(30):
        await web.push(queue="many", jobtype="Bulk" if i % 2 else "Other", args=[i])
    _, page1 = await web.get("/queues/many?jobtype=Bulk")
    _, page2 = await web.get("/queues/many?jobtype=Bulk&page=2")
    assert len(jids_in(page1)) == 15 and len(jids_in(page2)) == 0
    for i in range(30, 52):
        await web.push(queue="many", jobtype="Bulk", args=[i])
    _, page1 = await web.get("/queues/many?jobtype=Bulk")
    _, page2 = await web.get("/queues/many?jobtype=Bulk&page=2")
    assert len(jids_in(page1)) == 25 and len(jids_in(page2)) == 12
    assert 'href="/queues/many?jobtype=Bulk&amp;page=2"' in page1
    assert not set(jids_in(page1)) & set(jids_in(page2))


@pytest_twisted.ensureDeferred
async def test_job_page_releases_a_job_whose_worker_is_gone(web):
    job = await web.push(queue="work", jobtype="Stuck")
    await web.server.manager.fetch(["work"], wid="w-dead")
    _, html = await web.get(f"/job/{job['jid']}")
    assert where(html).startswith("In progress Reserved by w-dead")
    assert "worker gone" in html and 'name="return" value="job"' in html
    stamp = re.search(r'name="reserved_at" value="([^"]+)"', html).group(1)
    response, _ = await web.post(
        "/busy/release", {"jid": job["jid"], "reserved_at": stamp, "return": "job"}
    )
    assert response.headers.getRawHeaders("location") == [f"/job/{job['jid']}"]
    _, html = await web.get(f"/job/{job['jid']}")
    assert where(html).startswith("Enqueued Waiting in queue work")
    # A job whose worker is alive has no release button on its page.
    await web.store.worker_connect("w-ok", time.time(), "{}")
    await web.server.manager.fetch(["work"], wid="w-ok")
    _, html = await web.get(f"/job/{job['jid']}")
    assert "Reserved by w-ok" in where(html) and 'value="release"' not in html


@pytest_twisted.ensureDeferred
async def test_odd_hints_and_unreadable_reservations_are_handled(web):
    job = await web.push(queue="q")
    for query in ("in=retries&score=abc", "in=retries&score=nan", "in=bogus&score=1", "score=1"):
        response, html = await web.get(f"/job/{job['jid']}?{query}")
        assert response.code == 200 and where(html).startswith("Enqueued"), query
    # A reservation that is not JSON: shown, never a 500, and not releasable.
    await web.cmd("HSET", web.store.prefix + "working", "broken", "not json{")
    response, html = await web.get("/job/broken")
    assert response.code == 200 and "(unreadable payload)" in html
    assert 'value="release"' not in html
    response, html = await web.get("/busy")
    assert response.code == 200 and 'value="release"' not in html
    response, _ = await web.post("/busy/release", {"jid": "broken", "reserved_at": ""})
    assert response.code == 302
    assert await web.cmd("HGET", web.store.prefix + "working", "broken") == b"not json{"
