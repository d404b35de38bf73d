"""The failover drill: servers on a Sentinel-watched Redis (primary with AOF,
one replica, three Sentinels, all real processes on loopback) keep taking
pushes and handing out jobs while the primary is SIGKILLed and stays dead.
Every PUSH answered +OK must be handed out afterwards (WAIT made the replica
have it before the answer), and pushes must resume within 15 s.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sentinelset import REDIS, RedisHA

from helpers import Client, ReplyError, ServerProcess, config_dir

pytestmark = pytest.mark.skipif(
    # CI installs it: there a missing binary fails the test instead of skipping it
    not os.access(REDIS, os.X_OK) and not os.environ.get("CI"),
    reason="needs Debian's redis-server (scripts/test installs it)",
)

LOAD_BEFORE = 3.0  # seconds of traffic before the kill
LOAD_AFTER = 2.0  # seconds of traffic once pushes work again
RESUME_LIMIT = 15.0
SCHEDULED = 20  # jobs due just after the failover, pushed before it


class Drill:
    """Producers and workers on the servers' port, counting everything."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.lock = threading.Lock()
        self.pushed_ok: dict[str, float] = {}  # jid -> when +OK came back
        self.push_errors: list[str] = []
        self.handed: list[str] = []
        self.acked = 0
        self.stop_pushing = threading.Event()
        self.stop_working = threading.Event()
        self.problems: list[BaseException] = []

    def drain(self, seconds: float, reserved=lambda jid: False) -> set[str]:
        """Wait until every acknowledged push was handed out, or all that are
        left are ``reserved``; returns what is left."""
        deadline = time.monotonic() + seconds
        while True:
            with self.lock:
                missing = set(self.pushed_ok) - set(self.handed)
            if not missing or time.monotonic() > deadline:
                return missing
            if len(missing) <= 10 and all(reserved(j) for j in missing):
                time.sleep(1.0)  # the workers are idle: nothing else is coming
                with self.lock:
                    return set(self.pushed_ok) - set(self.handed)
            time.sleep(0.2)

    def client(self, n: int, **kw) -> Client:
        return Client(port=self.ports[n % len(self.ports)], **kw)

    def producer(self, n: int) -> None:
        try:
            c = self.client(n)
            while not self.stop_pushing.is_set():
                jid = uuid.uuid4().hex
                reply = c.call(
                    json.dumps({"jid": jid, "jobtype": "Drill", "args": [], "queue": "drill"}).join(
                        ["PUSH ", ""]
                    )
                )
                with self.lock:
                    if reply == "OK":
                        self.pushed_ok[jid] = time.monotonic()
                    else:
                        self.push_errors.append(reply)
                if reply != "OK":
                    time.sleep(0.05)  # what a client does before retrying
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.problems.append(e)

    def worker(self, n: int) -> None:
        try:
            c = self.client(n, wid=f"drill-{n}")
            while not self.stop_working.is_set():
                reply = c.call("FETCH drill")
                if isinstance(reply, ReplyError):
                    time.sleep(0.05)
                    continue
                if reply is None:
                    continue
                jid = json.loads(reply)["jid"]
                with self.lock:
                    self.handed.append(jid)
                for _ in range(100):  # a worker retries its ACK until it is taken
                    if c.call(json.dumps({"jid": jid}).join(["ACK ", ""])) == "OK":
                        with self.lock:
                            self.acked += 1
                        break
                    time.sleep(0.1)
        except BaseException as e:  # noqa: BLE001
            self.problems.append(e)


def fetch_woken(fetch_port: int, push_port: int) -> object:
    """A FETCH parked on one server gets a job pushed through another: the
    wake-up subscription works (without it the FETCH answers null at 2 s)."""
    queue = "wake-" + uuid.uuid4().hex[:8]
    fetcher = Client(port=fetch_port, wid="waker")
    result: list = []
    t = threading.Thread(target=lambda: result.append(fetcher.call(f"FETCH {queue}")))
    t.start()
    time.sleep(0.5)
    Client(port=push_port).push(queue=queue)
    t.join(10)
    return result[0] if result else "no answer"


@pytest.fixture
def ha():
    ha = RedisHA().start()
    yield ha
    ha.stop()


def test_failover_drill_loses_no_acknowledged_job(ha):
    conf = config_dir("[redis]\nwait_replicas = 1\nwait_timeout = 1000\n")
    # A: two processes on one port (--workers 2); B: a separate server.
    a = ServerProcess(
        web=False, args=["--config-dir", conf, "--redis-url", ha.url, "--workers", "2"]
    )
    b = ServerProcess(web=False, args=["--config-dir", conf, "--redis-url", ha.url])
    a.start()
    b.start()
    try:
        drill = Drill([a.port, b.port])
        due = datetime.now(UTC) + timedelta(seconds=LOAD_BEFORE + 4)
        at = due.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        c = Client(port=a.port)
        for _ in range(SCHEDULED):
            jid, reply = c.push(queue="drill", jobtype="Drill", at=at)
            assert reply == "OK"
            drill.pushed_ok[jid] = time.monotonic()
        # State that must come through the switch: a unique lock, a retry.
        unique = {"queue": "drill-u", "jobtype": "Unique", "custom": {"unique_for": 600}}
        assert c.push(**unique)[1] == "OK"
        fc = Client(port=b.port, wid="drill-fail")
        fjid, _ = fc.push(queue="drill-f", retry=5)
        assert fc.fetch("drill-f")["jid"] == fjid
        assert fc.call(json.dumps({"jid": fjid, "message": "x"}).join(["FAIL ", ""])) == "OK"
        threads = [threading.Thread(target=drill.producer, args=(n,)) for n in range(2)]
        threads += [threading.Thread(target=drill.worker, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        time.sleep(LOAD_BEFORE)
        killed_at = time.monotonic()
        ha.kill("primary")
        # Pushes resume once the Sentinels promoted the replica.
        deadline = killed_at + RESUME_LIMIT + 5
        while time.monotonic() < deadline:
            with drill.lock:
                resumed = [t for t in drill.pushed_ok.values() if t > killed_at + 0.5]
            if resumed:
                break
            time.sleep(0.1)
        outage = (min(resumed) - killed_at) if resumed else None
        # Read now: the retry is due 15 s after the FAIL at the earliest.
        retries = ha.call("replica", "ZRANGE", "fk:retries", "0", "-1")
        time.sleep(LOAD_AFTER)
        drill.stop_pushing.set()

        # Drain: the workers go on until every acknowledged push came out.
        def is_reserved(jid: str) -> bool:
            return ha.call("replica", "HEXISTS", "fk:working", jid) == 1

        missing = drill.drain(20, is_reserved)
        # A FETCH that Redis carried out (and replicated) but whose answer the
        # kill cut off leaves its job reserved on the new primary: it comes
        # back when the reservation expires, as a retry (like real Faktory).
        # Expire those reservations now instead of waiting reserve_for, let
        # the reaper fail them into the retry set, bring the retry forward,
        # and the scheduler hands them out again.
        reserved = [j for j in missing if is_reserved(j)]
        for jid in reserved:
            ha.call("replica", "ZADD", "fk:working:exp", "XX", "0", jid)
        if reserved:
            ha.wait(
                lambda: not any(ha.call("replica", "HEXISTS", "fk:working", j) for j in reserved),
                20,
            )
            for member in ha.call("replica", "ZRANGE", "fk:retries", "0", "-1"):
                if json.loads(member)["jid"] in reserved:
                    ha.call("replica", "ZADD", "fk:retries", "XX", "0", member)
            missing = drill.drain(20)
        drill.stop_working.set()
        for t in threads:
            t.join(15)
        woken = fetch_woken(b.port, a.port)
        duplicate = Client(port=a.port).push(**unique)[1]
        info = Client(port=b.port).info()
        print(
            f"drill: pushed {len(drill.pushed_ok)} (+OK), handed out {len(drill.handed)} "
            f"({len(set(drill.handed))} distinct), lost {len(missing)}, "
            f"outage {outage and round(outage, 2)} s, push errors {len(drill.push_errors)}, "
            f"back through reservation expiry {len(reserved)}"
        )
        assert not drill.problems, drill.problems
        assert outage is not None and outage < RESUME_LIMIT, f"pushes did not resume: {outage}"
        assert not missing, f"{len(missing)} acknowledged pushes never handed out: " + ", ".join(
            f"{j} (reserved: {ha.call('replica', 'HEXISTS', 'fk:working', j)}, "
            f"queued: {any(j in x for x in ha.call('replica', 'LRANGE', 'fk:q:drill:5', '0', '-1'))})"
            for j in sorted(missing)[:5]
        )
        assert drill.push_errors, "the kill caused no error at all: was the primary killed?"
        assert all("Redis is unavailable" in e for e in drill.push_errors), set(drill.push_errors)
        assert ha.primary_port() == ha.ports["replica"]
        assert isinstance(woken, str) and json.loads(woken)["queue"].startswith("wake-"), woken
        assert duplicate.startswith("NOTUNIQUE"), duplicate  # the lock survived
        assert fjid in [json.loads(r)["jid"] for r in retries]
        # ACKs were replicated too: the counter has every one that was answered.
        assert info["faktory"]["total_processed"] >= drill.acked
        assert "failover of" in a.log() and "failover of" in b.log()
        # The --workers child followed by itself too (its lines carry "worker 1:").
        new_primary = f"primary of fkha is 127.0.0.1:{ha.ports['replica']}"
        assert any(
            line.count("worker 1:") and new_primary in line for line in a.log().splitlines()
        ), "the --workers child did not move to the new primary"
    finally:
        b.stop()
        a.stop()
