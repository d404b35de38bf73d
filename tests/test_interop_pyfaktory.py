"""The real third-party client from PyPI, ``pyfaktory``, against our server:
its Producer pushes, its Consumer (a separate process, as users run it)
fetches, runs, ACKs and FAILs.  Unchanged client code, real sockets, real Redis.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from pyfaktory import Client, Job, Producer
from pyfaktory.util.exceptions import FaktroyWorkProtocolError
from rawredis import RawRedis

from faktory.job import format_time, parse_time
from helpers import ServerProcess

HERE = os.path.dirname(os.path.abspath(__file__))
# priority (None: pyfaktory's own Job, which sends none, i.e. 5) per job, in push order
PRIORITIES = [None, 1, 9, 5, 3, 9, None, 1, 7]


def wait_for(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def server():
    srv = ServerProcess().start()
    yield srv
    srv.discard()


@pytest.fixture(scope="module")
def run(server):
    """Push a mixed workload with pyfaktory, then let one pyfaktory Consumer
    process work through it; yields what happened."""
    url = f"tcp://127.0.0.1:{server.port}"
    client = Client(faktory_url=url, role="producer")
    client.connect()
    producer = Producer(client=client)
    prio = []
    for i, pri in enumerate(PRIORITIES):
        if pri is None:
            job = Job(jobtype="record", args=["prio", i], queue="prio")
            assert producer.push(job)
        else:
            # pyfaktory's Job model has no priority field; its raw push takes any payload.
            job = Job(jobtype="record", args=["prio", i], queue="prio").model_dump()
            assert client._push(dict(job, priority=pri))
        prio.append((-(pri or 5), i))
    bulk_result = producer.push_bulk(
        [Job(jobtype="record", args=["bulk", i], queue="bulk") for i in range(3)]
    )
    assert producer.push(
        Job(jobtype="boom", args=[7], queue="fails", retry=3, backtrace=5, jid="boom-job-1")
    )
    at = format_time(time.time() + 3)
    assert producer.push(Job(jobtype="record", args=["sched"], queue="later", at=at))
    info_before = client.info()

    record = os.path.join(server.data_dir, "record.jsonl")
    worker = subprocess.Popen(
        [
            sys.executable,
            os.path.join(HERE, "pyfaktory_worker.py"),
            url,
            record,
            "prio,bulk,fails,later",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(server.data_dir, "worker.log"), "wb"),
        start_new_session=True,
    )
    redis = RawRedis(os.path.join(server.data_dir, "redis.sock"))

    def records():
        if not os.path.exists(record):
            return []
        with open(record) as f:
            return [json.loads(line) for line in f if line.endswith("\n")]

    try:
        done = wait_for(
            lambda: (
                (r := records())
                and ["sched"] in [x["args"] for x in r]
                and redis("ZCARD", "fk:retries") == 1
                and r
            ),
            30,
            "the consumer to run everything",
        )
        info_during = client.info()
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    yield {
        "records": done,
        "prio_expected": [i for _, i in sorted(prio)],
        "bulk_result": bulk_result,
        "at": at,
        "retries": redis.jobs("fk:retries"),
        "info_before": info_before,
        "info_during": info_during,
        "info_after": client.info(),
    }
    redis.close()
    client.disconnect()


def test_pushes_are_queued(run):
    queues = run["info_before"]["faktory"]["queues"]
    assert queues["prio"] == len(PRIORITIES) and queues["bulk"] == 3 and queues["fails"] == 1
    assert run["info_before"]["faktory"]["sets"]["scheduled"] == 1
    assert run["bulk_result"] == {}


def test_consumer_runs_jobs_in_priority_order_fifo_within_one(run):
    prio = [r["args"][1] for r in run["records"] if r["args"][0] == "prio"]
    assert prio == run["prio_expected"]


def test_every_job_ran_once_and_was_acked(run):
    args = [tuple(r["args"]) for r in run["records"]]
    assert len(args) == len(set(args)) == len(PRIORITIES) + 3 + 1
    fk = run["info_after"]["faktory"]
    assert fk["total_processed"] == len(PRIORITIES) + 3 + 1 + 1  # + the FAILed one
    assert fk["total_failures"] == 1
    assert fk["sets"]["working"] == 0
    assert fk["total_enqueued"] == 0


def test_scheduled_job_ran_when_due(run):
    [sched] = [r for r in run["records"] if r["args"] == ["sched"]]
    assert sched["at"] >= parse_time(run["at"]) - 0.01


def test_failing_job_is_in_retries_with_its_failure(run):
    [job] = run["retries"]
    assert job["jid"] == "boom-job-1" and job["args"] == [7]
    f = job["failure"]
    assert f["errtype"] == "ValueError" and f["message"] == "kaboom 7"
    # pyfaktory sends the traceback it catches (its own frames), cut to the
    # job's `backtrace` count; the server keeps what it was sent.
    assert 1 <= len(f["backtrace"]) <= 5
    assert all(isinstance(line, str) and "File " in line for line in f["backtrace"])
    assert f["retry_count"] == 0 and f["remaining"] == 3
    delay = parse_time(f["next_at"]) - parse_time(f["failed_at"])
    assert 15 - 0.01 <= delay <= 44 + 0.01
    assert run["info_after"]["faktory"]["sets"]["retries"] == 1


def test_consumer_heartbeat_registered_it(run):
    assert run["info_during"]["faktory"]["tasks"]["Workers"]["size"] >= 1


def test_password_protected_server():
    srv = ServerProcess(env={"FAKTORY_PASSWORD": "pyf-s3cret"}, web=False).start()
    try:
        good = Client(faktory_url=f"tcp://:pyf-s3cret@127.0.0.1:{srv.port}", role="producer")
        good.connect()
        assert Producer(client=good).push(Job(jobtype="record", args=[1]))
        assert good.info()["faktory"]["queues"]["default"] == 1
        good.disconnect()
        bad = Client(faktory_url=f"tcp://:wrong@127.0.0.1:{srv.port}", role="producer")
        with pytest.raises(FaktroyWorkProtocolError, match="Invalid password"):
            bad.connect()
    finally:
        srv.discard()
