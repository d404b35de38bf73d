"""Two server processes on one Redis (the second started with ``--redis-url``
pointing at the first one's socket): every job is handed out exactly once,
none is lost, and a FETCH waiting on one server wakes for a push to the other.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid

import pytest

from helpers import ServerProcess

N = 2000
FETCHERS_PER_SERVER = 4


@pytest.fixture(scope="module")
def servers():
    a = ServerProcess(web=False).start()
    b = ServerProcess(
        web=False, args=["--redis-url", "unix://" + os.path.join(a.data_dir, "redis.sock")]
    ).start()
    yield a, b
    b.discard()
    a.discard()


def pushb(client, jobs):
    reply = client.call("PUSHB " + json.dumps(jobs))
    assert reply == "{}", reply


def drain(servers, queue: str, expected: int) -> list[str]:
    """FETCH+ACK from every server at once until ``expected`` jobs came out;
    returns every jid handed out (duplicates included)."""
    got: list[str] = []
    by_server: dict[int, int] = {srv.port: 0 for srv in servers}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def fetcher(srv, n):
        c = srv.client(wid=f"w-{srv.port}-{n}")
        try:
            while True:
                with lock:
                    if len(got) >= expected:
                        return
                job = c.fetch(queue)
                if job is None:
                    continue
                with lock:
                    got.append(job["jid"])
                    by_server[srv.port] += 1
                assert c.call(json.dumps({"jid": job["jid"]}).join(["ACK ", ""])) == "OK"
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)
        finally:
            c.close()

    threads = [
        threading.Thread(target=fetcher, args=(srv, n))
        for srv in servers
        for n in range(FETCHERS_PER_SERVER)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    assert all(by_server.values()), f"a server handed out nothing: {by_server}"
    return got


def test_every_job_handed_out_exactly_once(servers):
    a, b = servers
    ca, cb = a.client(), b.client()
    pushed = [f"shared-{i:05d}-{uuid.uuid4().hex[:6]}" for i in range(N)]
    for start in range(0, N, 200):
        batch = [
            {"jid": j, "jobtype": "T", "args": [i], "queue": "shared"}
            for i, j in enumerate(pushed[start : start + 200], start)
        ]
        pushb(ca if start % 400 == 0 else cb, batch)
    assert ca.info()["faktory"]["queues"]["shared"] == N
    # the module's servers are shared: count from what the other tests left
    before = cb.info()["faktory"]

    got = drain(servers, "shared", N)

    assert len(got) == len(set(got)) == N  # nobody got a job twice
    assert set(got) == set(pushed)  # and none went missing
    for c in (ca, cb):
        fk = c.info()["faktory"]
        assert fk["queues"]["shared"] == 0
        assert fk["sets"]["working"] == before["sets"]["working"]
        assert fk["total_processed"] - before["total_processed"] == N


def test_scheduled_jobs_promoted_once_by_two_servers(servers):
    a, b = servers
    ca = a.client()
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
    jids = [f"sched-{i:04d}-{uuid.uuid4().hex[:6]}" for i in range(300)]
    pushb(ca, [{"jid": j, "jobtype": "T", "args": [], "queue": "later", "at": at} for j in jids])
    assert ca.info()["faktory"]["sets"]["scheduled"] == 300
    got = drain(servers, "later", 300)  # both servers' timers race to promote
    assert sorted(got) == sorted(jids)
    assert ca.info()["faktory"]["sets"]["scheduled"] == 0


@pytest.mark.parametrize("direction", ["a->b", "b->a"])
def test_fetch_waiting_on_one_server_wakes_for_a_push_to_the_other(servers, direction):
    a, b = servers
    producer_srv, worker_srv = (a, b) if direction == "a->b" else (b, a)
    producer = producer_srv.client()
    worker = worker_srv.client(wid=f"waker-{direction}")
    for n in range(3):
        queue = f"wake{n}{uuid.uuid4().hex[:6]}"
        worker.send(f"FETCH {queue}")
        time.sleep(0.3)  # parked on the worker's server by now
        started = time.monotonic()
        jid, reply = producer.push(queue=queue)
        assert reply == "OK"
        job = json.loads(worker.read_reply())
        took = time.monotonic() - started
        assert job["jid"] == jid
        # Without the cross-server wake-up it would come at the 2 s timeout
        # (1.7 s after the push) or on a later FETCH.
        assert took < 1.0, f"woke after {took:.2f} s"
        assert worker.call(json.dumps({"jid": jid}).join(["ACK ", ""])) == "OK"
