"""Job integrity through the wire and HTTP against a real server: two live
jobs sharing a jid are each tracked, and jid filters touch only the jobs
whose ``jid`` it is (never one that merely mentions it in its args)."""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta

from rawredis import RawRedis

from helpers import ReplyError


def _raw(srv) -> RawRedis:
    return RawRedis(os.path.join(srv.data_dir, "redis.sock"))


def _later(minutes: int = 30) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _members(redis, key: str) -> list[dict]:
    return [json.loads(m) for m in redis("ZRANGE", key, 0, -1)]


def test_two_live_copies_of_a_jid_are_each_tracked_and_neither_is_lost(srv):
    q, jid = "dup-q", "dup-jid-0001"
    a, b = srv.client(wid="worker-a"), srv.client(wid="worker-b")
    try:
        assert a.push(jid=jid, queue=q, args=["first"])[1] == "OK"
        assert a.push(jid=jid, queue=q, args=["second"])[1] == "OK"  # a retried PUSH
        assert a.push(jid="dup-other-01", queue=q)[1] == "OK"
        assert a.fetch(q)["args"] == ["first"]
        # The second copy is not handed out while the first is reserved: B
        # gets the next job instead, so one ACK cannot settle both.
        other = b.fetch(q)
        assert other["jid"] == "dup-other-01"
        assert b.call('ACK {"jid":"dup-other-01"}') == "OK"
        assert a.call(f'ACK {{"jid":"{jid}"}}') == "OK"
        # The first copy's ACK handed the second back to the front of the queue.
        second = b.fetch(q)
        assert second["jid"] == jid and second["args"] == ["second"]
        assert srv.client().info()["faktory"]["sets"]["working"] == 1
        # It is reserved in its own right: its FAIL lands it in the retries.
        fail = {"jid": jid, "errtype": "E", "message": "boom"}
        assert b.call("FAIL " + json.dumps(fail)) == "OK"
        retried = [j for j in _members(_raw(srv), "fk:retries") if j["jid"] == jid]
        assert [j["args"] for j in retried] == [["second"]]
        assert b.fetch(q) is None  # nothing else left behind
    finally:
        a.close()
        b.close()


def test_held_copy_follows_a_fail_and_a_vanished_reservation(srv):
    """Every end of the reserved copy hands the held one back: a FAIL, and
    (swept by the reaper) a reservation removed behind the server's back."""
    q, jid = "dup-q2", "dup-jid-0002"
    a = srv.client(wid="worker-c")
    redis = _raw(srv)
    try:
        for n in range(3):
            assert a.push(jid=jid, queue=q, args=[n], retry=0)[1] == "OK"
        assert a.push(jid="dup-other-02", queue=q)[1] == "OK"
        assert a.fetch(q)["args"] == [0]
        assert a.fetch(q)["jid"] == "dup-other-02"  # copies 1 and 2 are held
        assert a.call('ACK {"jid":"dup-other-02"}') == "OK"
        assert redis("LLEN", "fk:held:" + jid) == 2
        assert a.call("FAIL " + json.dumps({"jid": jid})) == "OK"
        assert a.fetch(q)["args"] == [1]
        # Copy 1's reservation disappears without an ACK (e.g. an operator
        # edited Redis): the reaper's sweep still hands copy 2 back.
        redis("HDEL", "fk:working", jid)
        redis("ZREM", "fk:working:exp", jid)
        deadline = time.monotonic() + 30
        job = None
        while job is None and time.monotonic() < deadline:
            job = a.fetch(q)
        assert job is not None and job["args"] == [2]
        assert a.call(f'ACK {{"jid":"{jid}"}}') == "OK"
        assert redis("EXISTS", "fk:held:" + jid) == 0
        assert redis("ZCARD", "fk:held") == 0
    finally:
        a.close()


def _two_lookalikes(c, prefix: str) -> tuple[str, str]:
    """A scheduled job and, at the same time, one whose args mention its jid.
    The impostor's jid sorts first, so a substring match would pick it."""
    target, impostor = f"zz-{prefix}-target", f"aa-{prefix}-impostor"
    at = _later()
    assert c.push(jid=target, at=at, args=["the target"])[1] == "OK"
    lookalike = [{"jid": target}, f'"jid":"{target}"']
    assert c.push(jid=impostor, at=at, args=lookalike)[1] == "OK"
    return target, impostor


def test_mutate_jids_filter_touches_only_that_jid(srv, c):
    redis = _raw(srv)
    target, impostor = _two_lookalikes(c, "mut")
    op = {"cmd": "kill", "target": "scheduled", "filter": {"jids": [target]}}
    assert _mutate(c, op) == "OK"
    assert [j["jid"] for j in _members(redis, "fk:dead")] == [target]
    assert impostor in [j["jid"] for j in _members(redis, "fk:scheduled")]
    op = {"cmd": "discard", "target": "dead", "filter": {"jids": [target]}}
    assert _mutate(c, op) == "OK"
    assert redis("ZCARD", "fk:dead") == 0
    op = {"cmd": "requeue", "target": "scheduled", "filter": {"jids": [target, "nope"]}}
    assert _mutate(c, op) == "OK"
    assert impostor in [j["jid"] for j in _members(redis, "fk:scheduled")]
    assert not isinstance(_mutate(c, op), ReplyError)


def _mutate(c, op: dict):
    return c.call("MUTATE " + json.dumps(op, separators=(",", ":")))


def _http(srv, method: str, path: str, form: dict | None = None) -> tuple[int, str]:
    data = urllib.parse.urlencode(form, doseq=True).encode() if form is not None else None
    req = urllib.request.Request(
        f"http://127.0.0.1:{srv.web_port}{path}",
        data=data,
        method=method,
        headers={"Sec-Fetch-Site": "same-origin"},
    )

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kw):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_web_job_page_and_actions_touch_only_that_jid(srv, c):
    redis = _raw(srv)
    target, impostor = _two_lookalikes(c, "web")
    flat = redis("ZRANGE", "fk:scheduled", 0, -1, "WITHSCORES")
    scores = {json.loads(flat[i])["jid"]: flat[i + 1].decode() for i in range(0, len(flat), 2)}
    assert scores[target] == scores[impostor]
    key = f"{scores[target]}|{target}"
    status, page = _http(srv, "GET", "/scheduled/" + urllib.parse.quote(key))
    assert status == 200
    assert "the target" in page and impostor not in page
    status, _ = _http(srv, "POST", "/scheduled", {"action": "kill", "key": [key]})
    assert status == 302
    assert [j["jid"] for j in _members(redis, "fk:dead")] == [target]
    assert impostor in [j["jid"] for j in _members(redis, "fk:scheduled")]
    dead_key = redis("ZRANGE", "fk:dead", 0, -1, "WITHSCORES")[1].decode() + "|" + target
    status, _ = _http(srv, "POST", "/morgue", {"action": "delete", "key": [dead_key]})
    assert status == 302
    assert redis("ZCARD", "fk:dead") == 0
    assert impostor in [j["jid"] for j in _members(redis, "fk:scheduled")]
