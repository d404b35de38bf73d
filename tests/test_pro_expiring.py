"""Expiring jobs through the wire: dropped at FETCH once expired, counted,
logged; ``expires_in`` becomes an absolute ``expires_at`` at PUSH."""

from __future__ import annotations

import json
import time
import uuid

from faktory.job import format_time, parse_time
from helpers import ReplyError


def q() -> str:
    return "xq" + uuid.uuid4().hex[:8]


def expired_total(c) -> int:
    return c.info()["faktory"]["total_expired"]


def test_expired_job_is_dropped_counted_and_logged(srv, c):
    queue = q()
    # the module's server is shared: count from what the other tests left
    start = c.info()["faktory"]
    before, sets = start["total_expired"], start["sets"]
    old, _ = c.push(queue=queue, custom={"expires_at": format_time(time.time() - 1)})
    fresh, _ = c.push(queue=queue, custom={"expires_at": format_time(time.time() + 600)})
    plain, _ = c.push(queue=queue)
    # FIFO: the expired job comes first but is never handed out.
    assert c.fetch(queue)["jid"] == fresh
    assert c.fetch(queue)["jid"] == plain
    assert expired_total(c) == before + 1
    info = c.info()["faktory"]
    # Only the two handed out are reserved; the expired one is gone.
    assert info["queues"][queue] == 0 and info["sets"]["working"] == sets["working"] + 2
    for jid in (fresh, plain):
        assert c.call("ACK " + json.dumps({"jid": jid})) == "OK"
    info = c.info()["faktory"]
    # Dropping is not a failure: nothing in retries or dead for it.
    assert info["sets"]["working"] == sets["working"]
    assert info["sets"]["retries"] == sets["retries"] and info["sets"]["dead"] == sets["dead"]
    srv.wait_for_log(f"JID {old}: Halt: job expired", timeout=5)


def test_expires_in_is_relative_to_push(c):
    queue = q()
    pushed = time.time()
    jid, reply = c.push(queue=queue, custom={"expires_in": 600, "keep": "me"})
    assert reply == "OK"
    job = c.fetch(queue)
    assert job["jid"] == jid
    assert "expires_in" not in job["custom"] and job["custom"]["keep"] == "me"
    assert abs(parse_time(job["custom"]["expires_at"]) - (pushed + 600)) < 5

    before = expired_total(c)
    short, _ = c.push(queue=queue, custom={"expires_in": 0.5})
    later, _ = c.push(queue=queue)
    time.sleep(0.8)
    assert c.fetch(queue)["jid"] == later
    assert expired_total(c) == before + 1


def test_only_expired_jobs_in_queue_gives_empty_fetch(c):
    """The faktory-rs e2e check: a queue holding only an expired job comes
    back empty."""
    queue = q()
    c.push(queue=queue, custom={"expires_at": "2001-01-01T00:00:00Z"})
    assert c.fetch(queue) is None
    assert c.info()["faktory"]["queues"][queue] == 0


def test_bad_expiry_values_are_refused(c):
    _, reply = c.push(queue=q(), custom={"expires_at": "tomorrow"})
    assert isinstance(reply, ReplyError) and "expires_at" in reply
    _, reply = c.push(queue=q(), custom={"expires_in": "60"})
    assert isinstance(reply, ReplyError) and "expires_in" in reply
