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
    assert where(html).startswith("Scheduled In Scheduled (when in about 2 hours")
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
