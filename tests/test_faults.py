"""Faults under load, counted job by job (loopback only, bounded in time).

Producer and worker threads talk to a real server while something is killed.
Afterwards every job whose PUSH got ``+OK`` must be either ACKed (the ACK got
``+OK``) or still stored (queue, reservation, retries): none lost, none handed
to two workers, none still stored after its ACK was acknowledged.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

from rawredis import RawRedis
from test_redis_supervision import redis_pid

from helpers import ReplyError, ServerProcess, memory_tmpdir

QUEUE = "fault"


class Load:
    """Two producers and two workers on their own connections."""

    def __init__(self, srv: ServerProcess) -> None:
        self.srv = srv
        self.stop = threading.Event()
        self.pushed: set[str] = set()  # PUSH answered +OK
        self.attempted: set[str] = set()
        self.fetched: list[str] = []
        self.acked: list[str] = []  # ACK answered +OK
        self.ack_unanswered: set[str] = set()  # ACK sent, no reply: either outcome is fine
        self.errors: list[str] = []
        self.threads = [
            threading.Thread(target=self._produce, args=(n,), daemon=True) for n in range(2)
        ] + [threading.Thread(target=self._work, daemon=True) for _ in range(2)]

    def start(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)
            assert not t.is_alive(), "a client thread hung"

    def _produce(self, n: int) -> None:
        try:
            c = self.srv.client(timeout=5)
            i = 0
            while not self.stop.is_set():
                jid = f"p{n}-{i:06d}"
                self.attempted.add(jid)
                _, reply = c.push(jid=jid, queue=QUEUE)
                if reply == "OK":
                    self.pushed.add(jid)
                    i += 1
                else:
                    self.errors.append(reply)
                    i += 1
                    time.sleep(0.02)
        except OSError:
            pass  # the server went away: nothing in flight counts as pushed

    def _work(self) -> None:
        try:
            c = self.srv.client(timeout=5)
            while not self.stop.is_set():
                job = c.fetch(QUEUE)
                if isinstance(job, ReplyError):
                    self.errors.append(job)
                    time.sleep(0.02)
                    continue
                if job is None:
                    continue
                self.fetched.append(job["jid"])
                while True:  # keep trying the ACK through a Redis outage
                    self.ack_unanswered.add(job["jid"])
                    reply = c.call(json.dumps({"jid": job["jid"]}).join(("ACK ", "")))
                    self.ack_unanswered.discard(job["jid"])
                    if reply == "OK":
                        self.acked.append(job["jid"])
                        break
                    self.errors.append(reply)
                    if self.stop.is_set():
                        break
                    time.sleep(0.02)
        except (OSError, ValueError):
            pass  # cut off, maybe in the middle of a reply


def stored(srv: ServerProcess) -> dict[str, list[str]]:
    """Jids the server holds for QUEUE, by place, read straight from Redis."""
    r = RawRedis(os.path.join(srv.data_dir, "redis.sock"))
    try:
        queued = []
        for key in r("KEYS", f"fk:q:{QUEUE}:*"):
            queued += [json.loads(m)["jid"] for m in r("LRANGE", key, 0, -1)]
        working = [k.decode() for k in r("HKEYS", "fk:working")]
        retries = [j["jid"] for j in r.jobs("fk:retries")]
        return {"queued": queued, "working": working, "retries": retries}
    finally:
        r.close()


def check_accounting(load: Load, places: dict[str, list[str]]) -> None:
    held = [j for jids in places.values() for j in jids]
    assert len(held) == len(set(held)), "a job is stored twice"
    assert len(load.fetched) == len(set(load.fetched)), "a job was handed out twice"
    acked = set(load.acked)
    lost = load.pushed - acked - set(held) - load.ack_unanswered
    assert len(load.ack_unanswered) <= 2  # at most one per worker connection
    assert not lost, f"{len(lost)} acknowledged jobs lost, e.g. {sorted(lost)[:5]}"
    assert not acked & set(held), "an ACKed job is still stored"
    assert set(held) <= load.attempted  # nothing made up


def test_kill_9_of_server_and_redis_under_load_loses_no_acknowledged_job():
    srv = ServerProcess(memory_tmpdir(), web=False).start()  # see memory_tmpdir
    try:
        load = Load(srv).start()
        time.sleep(1.5)
        os.kill(redis_pid(srv), signal.SIGKILL)
        srv.proc.kill()
        srv.stop()
        load.join()
        assert len(load.pushed) > 100 and len(load.acked) > 50, "too little load to tell"
        srv.start()
        places = stored(srv)
        check_accounting(load, places)
        # Jobs reserved by the workers that were cut off are still reserved
        # (the reaper returns them once reserve_for runs out).
        unacked_fetched = set(load.fetched) - set(load.acked) - load.ack_unanswered
        assert unacked_fetched <= set(places["working"])
        # The restarted server serves what was left.
        c = srv.client()
        info = c.info()["faktory"]
        assert info["queues"].get(QUEUE, 0) == len(places["queued"])
        assert info["sets"]["working"] == len(places["working"])
    finally:
        srv.discard()


def test_kill_9_of_redis_under_load_clients_see_errors_then_nothing_is_lost():
    # test_redis_supervision covers the restart itself; here clients are busy.
    srv = ServerProcess(memory_tmpdir(), web=False).start()  # see memory_tmpdir
    try:
        load = Load(srv).start()
        time.sleep(1.0)
        old = redis_pid(srv)
        os.kill(old, signal.SIGKILL)
        assert redis_pid(srv, other_than=old) != old
        pushed_at_restart = len(load.pushed)
        deadline = time.monotonic() + 10
        while len(load.pushed) < pushed_at_restart + 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        load.join()
        assert len(load.pushed) >= pushed_at_restart + 100, "serving did not resume"
        # Every refused command says why (including a Redis still LOADING its
        # data after the restart): never a hang, a drop or an "internal error".
        assert load.errors, "the outage was not noticed"
        assert all(e.startswith("ERR Redis is unavailable") for e in load.errors), set(load.errors)
        check_accounting(load, stored(srv))
        assert srv.proc.poll() is None
    finally:
        srv.discard()


def test_worker_killed_mid_job_gets_its_job_retried_after_a_restart():
    """The reservation survives a server restart in Redis; once reserve_for
    has run out the reaper fails the job into retries and it runs again.
    (tests/test_manager.py checks the expiry times with a fake clock; here
    the expiry is moved forward in Redis instead of waiting 60 s.)"""
    srv = ServerProcess(web=False).start()
    try:
        worker = srv.client(wid="doomed-worker")
        jid, _ = worker.push(queue="midjob", reserve_for=60)
        assert worker.fetch("midjob")["jid"] == jid
        worker.sock.close()  # the worker process dies without ACK or FAIL
        srv.kill()
        srv.start()
        r = RawRedis(os.path.join(srv.data_dir, "redis.sock"))
        reservation = json.loads(r("HGET", "fk:working", jid))
        assert reservation["wid"] == "doomed-worker"
        expiry = float(r("ZSCORE", "fk:working:exp", jid))
        assert 30 < expiry - time.time() <= 60
        r("ZADD", "fk:working:exp", time.time() - 1, jid)  # 60 s later
        deadline = time.monotonic() + 15  # the Busy task runs every 5 s
        while not r.jobs("fk:retries") and time.monotonic() < deadline:
            time.sleep(0.1)
        (job,) = r.jobs("fk:retries")
        assert job["jid"] == jid
        assert job["failure"]["errtype"] == "ReservationExpired"
        assert r("HGET", "fk:working", jid) is None
        r("ZADD", "fk:retries", time.time() - 1, r("ZRANGE", "fk:retries", 0, 0)[0])
        r.close()
        c = srv.client()
        again = None
        deadline = time.monotonic() + 10
        while again is None and time.monotonic() < deadline:
            again = c.fetch("midjob")
        assert again["jid"] == jid and again["failure"]["retry_count"] == 0
        assert c.call(json.dumps({"jid": jid}).join(("ACK ", ""))) == "OK"
    finally:
        srv.discard()
