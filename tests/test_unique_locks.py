"""When a unique lock is taken and when it goes, through the wire: a PUSH
refused by a later step (an unknown batch) or a PUSHB entry refused so leaves
no lock; ACK, FAIL with retry 0, death and expiry release it; a retry keeps
it.  Discard and kill by hand: tests/test_unique_removal.py."""

from __future__ import annotations

import json
import time
import uuid

from helpers import ReplyError


def _job(queue: str, **custom) -> dict:
    return {
        "jid": uuid.uuid4().hex,
        "jobtype": "Sync",
        "queue": queue,
        "args": [queue],
        "custom": {"unique_for": 600, **custom},
    }


def _push(c, job: dict):
    return c.call("PUSH " + json.dumps(job))


def _fail(c, jid: str):
    fail = {"jid": jid, "errtype": "E", "message": "boom"}
    return c.call("FAIL " + json.dumps(fail))


def _locked(c, queue: str) -> bool:
    """Whether a new identical job is refused now (and leave no job behind)."""
    job = _job(queue)
    reply = _push(c, job)
    if reply == "OK":
        assert c.fetch(queue)["jid"] == job["jid"]
        assert c.call(json.dumps({"jid": job["jid"]}).join(("ACK ", ""))) == "OK"
        return False
    assert reply == "NOTUNIQUE Job not unique", reply
    return True


def test_a_push_refused_by_a_later_step_leaves_no_lock(c):
    refused = _push(c, _job("ul-batch", bid="no-such-batch-xyz"))
    assert isinstance(refused, ReplyError) and "no such batch" in refused
    assert not _locked(c, "ul-batch")
    # In a PUSHB: the refused entry leaves no lock, the other one holds its own.
    bad, good = _job("ul-pushb", bid="no-such-batch-xyz"), _job("ul-pushb2")
    reply = json.loads(c.call("PUSHB " + json.dumps([bad, good])))
    assert list(reply) == [bad["jid"]] and "no such batch" in reply[bad["jid"]]
    assert not _locked(c, "ul-pushb")
    assert _locked(c, "ul-pushb2")


def test_ack_fail_with_retry_0_and_death_release_a_retry_keeps(c):
    job = _job("ul-ack")
    assert _push(c, job) == "OK" and _locked(c, "ul-ack")
    assert c.fetch("ul-ack")["jid"] == job["jid"]
    assert _locked(c, "ul-ack")  # running: still held
    assert c.call(json.dumps({"jid": job["jid"]}).join(("ACK ", ""))) == "OK"
    assert not _locked(c, "ul-ack")

    job = dict(_job("ul-r0"), retry=0)
    assert _push(c, job) == "OK"
    assert c.fetch("ul-r0")["jid"] == job["jid"]
    assert _fail(c, job["jid"]) == "OK"
    assert not _locked(c, "ul-r0")

    job = dict(_job("ul-dead"), retry=1)
    assert _push(c, job) == "OK"
    assert c.fetch("ul-dead")["jid"] == job["jid"]
    assert _fail(c, job["jid"]) == "OK"  # first failure: into the retry set
    assert _locked(c, "ul-dead")  # kept through retries
    requeue = {"cmd": "requeue", "target": "retries", "filter": {"jids": [job["jid"]]}}
    assert c.call("MUTATE " + json.dumps(requeue, separators=(",", ":"))) == "OK"
    assert c.fetch("ul-dead")["jid"] == job["jid"]
    assert _fail(c, job["jid"]) == "OK"  # last retry used: dead
    assert not _locked(c, "ul-dead")


def test_a_lock_expires_after_unique_for_even_in_the_retry_set(c):
    queue = "ul-expiry"
    job = dict(_job(queue), retry=5)
    job["custom"]["unique_for"] = 2
    assert _push(c, job) == "OK"
    assert c.fetch(queue)["jid"] == job["jid"]
    assert _fail(c, job["jid"]) == "OK"
    assert _locked(c, queue)  # kept through the retry set...
    time.sleep(2.5)  # ...until unique_for runs out, whatever happened
    assert not _locked(c, queue)


def test_unique_until_start_releases_at_fetch(c):
    job = _job("ul-start", unique_until="start")
    assert _push(c, job) == "OK" and _locked(c, "ul-start")
    assert c.fetch("ul-start")["jid"] == job["jid"]
    assert not _locked(c, "ul-start")
