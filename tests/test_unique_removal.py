"""A unique job an operator deletes or kills by hand gives its lock back, so
the same job can be pushed again at once: through ``MUTATE`` on the wire,
the web UI over real HTTP (set pages, bulk "all", queue pages, error
groups) and ``faktory-cli``, against one real server.  A lock another job
took since is never released by the old job's removal."""

from __future__ import annotations

import html
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from helpers import run_cli


def _job(queue: str, n: int = 0, unique_for: float = 600, **extra) -> dict:
    return {
        "jid": uuid.uuid4().hex,
        "jobtype": "Sync" + queue.replace("-", ""),
        "queue": queue,
        "args": [queue, n],
        "custom": {"unique_for": unique_for},
        **extra,
    }


def _push(c, job: dict):
    return c.call("PUSH " + json.dumps(job))


def _again(job: dict) -> dict:
    """The same job (type, args, queue) under a new jid: what a re-push is."""
    return dict(job, jid=uuid.uuid4().hex)


def _mutate(c, **op) -> str:
    return c.call("MUTATE " + json.dumps(op, separators=(",", ":")))


def _to_retries(c, job: dict) -> None:
    assert _push(c, dict(job, retry=5)) == "OK"
    assert c.fetch(job["queue"])["jid"] == job["jid"]
    fail = {"jid": job["jid"], "errtype": "Boom", "message": "boom"}
    assert c.call("FAIL " + json.dumps(fail)) == "OK"


def _scheduled(c, job: dict) -> None:
    assert _push(c, dict(job, at="2099-01-01T00:00:00Z")) == "OK"


def _held(c, job: dict) -> bool:
    """Whether the lock still refuses the job (a refused probe leaves nothing)."""
    reply = _push(c, _again(job))
    assert reply in ("OK", "NOTUNIQUE Job not unique"), reply
    return reply != "OK"


def test_mutate_discard_kill_and_clear_release_the_lock(c):
    jobs = {name: _job(f"urm-{name}") for name in ("discard", "kill", "sched", "clear", "nofilt")}
    _to_retries(c, jobs["discard"])
    _to_retries(c, jobs["kill"])
    _scheduled(c, jobs["sched"])
    _to_retries(c, jobs["clear"])
    _scheduled(c, jobs["nofilt"])
    assert all(_held(c, j) for j in jobs.values())

    assert _mutate(c, cmd="discard", target="retries", filter={"jids": [jobs["discard"]["jid"]]})
    assert not _held(c, jobs["discard"])
    assert _mutate(c, cmd="kill", target="retries", filter={"jids": [jobs["kill"]["jid"]]})
    assert not _held(c, jobs["kill"])
    assert _mutate(c, cmd="kill", target="scheduled", filter={"jobtype": "Syncurmsched"})
    assert not _held(c, jobs["sched"])
    assert _mutate(c, cmd="clear", target="retries") == "OK"
    assert not _held(c, jobs["clear"])
    assert _mutate(c, cmd="discard", target="scheduled") == "OK"  # no filter: clears the set
    assert not _held(c, jobs["nofilt"])


def test_a_lock_taken_since_by_another_job_is_kept(c):
    old = _job("urm-taken", unique_for=1)
    _to_retries(c, old)
    assert _held(c, old)
    time.sleep(1.3)  # the old job's lock expired; a new identical job takes it
    new = _again(old)
    assert _push(c, new) == "OK"
    assert _mutate(c, cmd="discard", target="retries", filter={"jids": [old["jid"]]}) == "OK"
    assert _held(c, new)  # compare-and-delete: the new job's lock stays
    assert c.fetch("urm-taken")["jid"] == new["jid"]


def test_clearing_a_large_set_releases_every_lock_in_steps(c):
    """More jobs than one step (Admin.ACT_BATCH = 500) of the clear."""
    jobs = [_job("urm-many", n) for n in range(1100)]
    reply = c.call("PUSHB " + json.dumps([dict(j, at="2099-01-01T00:00:00Z") for j in jobs]))
    assert json.loads(reply) == {}
    assert json.loads(_mutate(c, cmd="clear", target="scheduled", count=True))["done"] >= 1100
    again = [_again(j) for j in jobs]
    assert json.loads(c.call("PUSHB " + json.dumps(again))) == {}  # every one accepted


def test_removing_a_large_queue_releases_every_lock_and_forgets_it(c):
    """QUEUE REMOVE of more jobs than one step, two priorities, one queue paused."""
    jobs = [dict(_job("urm-bigq", n), priority=1 + n % 2 * 8) for n in range(1100)]
    assert json.loads(c.call("PUSHB " + json.dumps(jobs))) == {}
    assert c.call("QUEUE PAUSE urm-bigq") == "OK"
    assert "urm-bigq" in c.info()["faktory"]["paused"]
    assert c.call("QUEUE REMOVE urm-bigq") == "OK"
    info = c.info()["faktory"]
    assert "urm-bigq" not in info["queues"] and "urm-bigq" not in info["paused"]
    again = [_again(j) for j in jobs]
    assert json.loads(c.call("PUSHB " + json.dumps(again))) == {}  # every one accepted
    assert c.info()["faktory"]["queues"]["urm-bigq"] == 1100


# -- web UI over real HTTP -----------------------------------------------------


def _http(srv, path: str, data: dict | None = None) -> tuple[int, str]:
    body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{srv.web_port}{path}", data=body)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **kw):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=20) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _key(srv, path: str, jid: str) -> str:
    """The entry key (``<score>|<jid>``) the set page's checkbox carries."""
    status, page = _http(srv, path)
    assert status == 200
    found = re.search(r'value="([^"]*\|' + jid + ')"', page)
    assert found, f"{jid} not on {path}"
    return html.unescape(found.group(1))


def _queue_token(srv, queue: str, jid: str) -> str:
    status, page = _http(srv, f"/queues/{queue}")
    assert status == 200
    for token in re.findall(r'name="bkey" value="([^"]+)"', page):
        if jid in _decode_token(html.unescape(token)):
            return html.unescape(token)
    raise AssertionError(f"{jid} not on the page of {queue}")


def _decode_token(token: str) -> str:
    import base64

    b64 = token.partition(":")[2]
    return base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).decode()


def test_web_ui_delete_and_kill_release_the_lock(srv, c):
    retry_del, retry_kill = _job("urw-rdel"), _job("urw-rkill")
    sched_del, sched_kill = _job("urw-sdel"), _job("urw-skill")
    _to_retries(c, retry_del)
    _to_retries(c, retry_kill)
    _scheduled(c, sched_del)
    _scheduled(c, sched_kill)
    for job, path, action in (
        (retry_del, "/retries", "delete"),
        (retry_kill, "/retries", "kill"),
        (sched_del, "/scheduled", "delete"),
        (sched_kill, "/scheduled", "kill"),
    ):
        assert _held(c, job)
        key = _key(srv, path, job["jid"])
        assert _http(srv, path, {"action": action, "key": key})[0] == 302
        assert not _held(c, job), (path, action)


def test_web_ui_bulk_actions_release_every_lock(srv, c):
    killed = [_job("urw-kall", n) for n in range(3)]
    deleted = [_job("urw-dall", n) for n in range(3)]
    for job in killed:
        _to_retries(c, job)
    assert _http(srv, "/retries", {"action": "kill", "key": "all"})[0] == 302
    assert not any(_held(c, j) for j in killed)
    for job in deleted:
        _scheduled(c, job)
    assert _http(srv, "/scheduled", {"action": "delete", "key": "all"})[0] == 302
    assert not any(_held(c, j) for j in deleted)


def test_web_ui_queue_page_and_error_group_release_the_lock(srv, c):
    one, whole, grouped = _job("urw-qone"), _job("urw-qall"), _job("urw-grp")
    assert _push(c, one) == "OK" and _push(c, whole) == "OK"
    token = _queue_token(srv, "urw-qone", one["jid"])
    assert _http(srv, "/queues/urw-qone", {"action": "delete_selected", "bkey": token})[0] == 302
    assert not _held(c, one)
    assert _http(srv, "/queues/urw-qall", {"action": "delete"})[0] == 302
    assert not _held(c, whole)
    _to_retries(c, grouped)
    form = {"action": "delete", "value": grouped["jobtype"]}
    assert _http(srv, "/retries/groups?by=jobtype", form)[0] == 302
    assert not _held(c, grouped)


# -- faktory-cli ---------------------------------------------------------------


def test_cli_discard_kill_clear_and_queue_remove_release_the_lock(srv, c):
    discard, kill, clear, queued = (_job(f"urc-{n}") for n in ("disc", "kill", "clear", "q"))
    _to_retries(c, discard)
    _scheduled(c, kill)
    _to_retries(c, clear)
    assert _push(c, queued) == "OK"
    url = f"tcp://127.0.0.1:{srv.port}"
    for args, job in (
        (("retries", "discard", "--jid", discard["jid"]), discard),
        (("scheduled", "kill", "--jobtype", kill["jobtype"]), kill),
        (("retries", "clear"), clear),
        (("queue", "remove", "urc-q"), queued),
    ):
        assert _held(c, job)
        done = run_cli("--url", url, *args)
        assert done.returncode == 0, done.stderr
        assert not _held(c, job), args
