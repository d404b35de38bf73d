"""Unique jobs through the wire, with two servers sharing one Redis: the
lock is cluster-wide and released as the reference documents."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from faktory.job import format_time
from helpers import ReplyError, ServerProcess, redis_socket

NOTUNIQUE = "NOTUNIQUE Job not unique"


@pytest.fixture(scope="module")
def pair():
    a = ServerProcess(web=False).start()
    b = ServerProcess(args=["--redis-url", redis_socket(a)], web=False).start()
    yield a, b
    b.discard()
    a.discard()


@pytest.fixture
def clients(pair):
    ca, cb = pair[0].client(), pair[1].client()
    yield ca, cb
    ca.close()
    cb.close()


def unique_job(queue: str, **custom) -> dict:
    return {
        "jobtype": "UniqueJob",
        "args": [1, {"b": 2, "a": 1}],
        "queue": queue,
        "custom": {"unique_for": 60, **custom},
    }


def q() -> str:
    return "uq" + uuid.uuid4().hex[:8]


def push(c, job: dict) -> str:
    jid, reply = c.push(**job)
    return reply


def test_duplicate_refused_on_either_server_and_key_is_type_args_queue(clients):
    ca, cb = clients
    queue = q()
    job = unique_job(queue)
    assert push(ca, job) == "OK"
    reply = push(cb, job)
    assert isinstance(reply, ReplyError) and reply == NOTUNIQUE
    assert push(ca, job) == NOTUNIQUE
    # Same args in another key order are the same args.
    assert push(cb, dict(job, args=[1, {"a": 1, "b": 2}])) == NOTUNIQUE
    # Any difference in jobtype, args or queue is another job.
    assert push(cb, dict(job, args=[2])) == "OK"
    assert push(cb, dict(job, jobtype="Other")) == "OK"
    assert push(cb, dict(job, queue=q())) == "OK"
    # Without unique_for the check is bypassed.
    assert push(cb, dict(job, custom={})) == "OK"
    assert ca.info()["faktory"]["queues"][queue] == 4


def test_pushb_reports_notunique_per_job(clients):
    ca, _ = clients
    queue = q()
    first = dict(unique_job(queue), jid="pb-first-0001")
    dup = dict(unique_job(queue), jid="pb-dupe-00001")
    other = dict(unique_job(queue), jid="pb-other-0001", args=[9])
    reply = ca.call("PUSHB " + json.dumps([first, dup, other]))
    assert json.loads(reply) == {"pb-dupe-00001": NOTUNIQUE}
    assert ca.info()["faktory"]["queues"][queue] == 2


def test_until_success_held_through_fetch_and_failure_released_by_ack(clients):
    ca, cb = clients
    queue = q()
    job = unique_job(queue)
    assert push(ca, job) == "OK"
    fetched = cb.fetch(queue)
    assert push(ca, job) == NOTUNIQUE  # running
    assert cb.call("FAIL " + json.dumps({"jid": fetched["jid"], "message": "boom"})) == "OK"
    assert push(ca, job) == NOTUNIQUE  # waiting in retries
    # A second unique job, run to success, frees its lock at ACK.
    other = dict(job, args=["ok"])
    assert push(ca, other) == "OK"
    done = ca.fetch(queue)
    assert done["args"] == ["ok"]
    assert push(cb, other) == NOTUNIQUE
    assert ca.call("ACK " + json.dumps({"jid": done["jid"]})) == "OK"
    assert push(cb, other) == "OK"


def test_until_start_released_at_fetch(clients):
    ca, cb = clients
    queue = q()
    job = unique_job(queue, unique_until="start")
    assert push(ca, job) == "OK"
    assert push(cb, job) == NOTUNIQUE
    assert cb.fetch(queue)["custom"]["unique_until"] == "start"
    assert push(cb, job) == "OK"


def test_lock_expires_after_unique_for_plus_schedule_delay(clients):
    ca, cb = clients
    queue = q()
    short = unique_job(queue, unique_for=1)
    later = dict(unique_job(queue, unique_for=1), args=["later"])
    later["at"] = format_time(time.time() + 30)
    assert push(ca, short) == "OK"
    assert push(ca, later) == "OK"
    time.sleep(1.5)
    assert push(cb, short) == "OK"  # unique_for elapsed
    assert push(cb, later) == NOTUNIQUE  # still inside delay + unique_for


def test_expired_job_dropped_at_fetch_releases_its_lock(clients):
    ca, cb = clients
    queue = q()
    job = unique_job(queue, expires_at=format_time(time.time() - 5))
    assert push(ca, job) == "OK"
    assert push(ca, job) == NOTUNIQUE
    push(ca, {"jobtype": "Plain", "args": [], "queue": queue})
    assert cb.fetch(queue)["jobtype"] == "Plain"  # the expired one was dropped
    assert push(ca, job) == "OK"


def test_bad_unique_values_are_refused(clients):
    ca, _ = clients
    reply = push(ca, unique_job(q(), unique_for="soon"))
    assert isinstance(reply, ReplyError) and "unique_for" in reply
    reply = push(ca, unique_job(q(), unique_until="forever"))
    assert isinstance(reply, ReplyError) and "unique_until" in reply


def test_concurrent_duplicates_across_servers_admit_exactly_one(pair):
    queue = q()
    job = unique_job(queue)
    replies: list = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def pusher(server):
        c = server.client()
        start.wait()
        for _ in range(5):
            r = push(c, job)
            with lock:
                replies.append(r)
        c.close()

    threads = [threading.Thread(target=pusher, args=(pair[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert replies.count("OK") == 1
    assert replies.count(NOTUNIQUE) == 39
    assert pair[0].client().info()["faktory"]["queues"][queue] == 1


def test_pyfaktory_client_sees_notunique(pair):
    from pyfaktory import Client as PyClient
    from pyfaktory import Job, Producer
    from pyfaktory.client import FaktroyWorkProtocolError

    queue = q()
    job = Job(jobtype="PyUnique", args=[1], queue=queue, custom={"unique_for": 30})
    with PyClient(faktory_url=pair[0].url, role="producer") as client:
        assert Producer(client=client).push(job)
    with PyClient(faktory_url=pair[1].url, role="producer") as client:
        with pytest.raises(FaktroyWorkProtocolError, match="NOTUNIQUE Job not unique"):
            Producer(client=client).push(job.model_copy(update={"jid": uuid.uuid4().hex}))
