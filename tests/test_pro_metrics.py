"""Metrics through the wire: statsd packets caught by a real UDP listener,
and the Prometheus /metrics endpoint parsed by the official client's parser
(per-jobtype numbers shared by two servers on one Redis)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import ServerProcess, config_dir


def write_config(statsd: str) -> str:
    return config_dir(statsd, "statsd.toml")


@pytest.fixture(scope="module")
def udp():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    yield sock
    sock.close()


@pytest.fixture(scope="module")
def srv(udp):
    port = udp.getsockname()[1]
    conf = write_config(
        "[statsd]\n"
        f'location = "127.0.0.1:{port}"\n'
        'tags = ["env:test"]\n'
        'queueLatency = ["mlat"]\n'
        "interval = 1\n"
    )
    s = ServerProcess(args=["--config-dir", conf]).start()
    yield s
    s.discard()
    shutil.rmtree(conf, ignore_errors=True)


def collect(udp, until, timeout: float = 8.0) -> list[str]:
    """statsd lines received until ``until(lines)`` holds (or the time is up)."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(lines):
        try:
            data = udp.recv(65535)
        except TimeoutError:
            continue
        lines.extend(data.decode().split("\n"))
    return lines


def scrape(port: int) -> dict:
    """{(name, frozenset(labels)): value} from /metrics."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def run_job(c, queue: str, jobtype: str, ok: bool, hold: float = 0.0) -> str:
    jid, _ = c.push(queue=queue, jobtype=jobtype)
    job = c.fetch(queue)
    assert job["jid"] == jid
    if hold:
        time.sleep(hold)
    if ok:
        assert c.call("ACK " + json.dumps({"jid": jid})) == "OK"
    else:
        assert c.call("FAIL " + json.dumps({"jid": jid, "message": "x"})) == "OK"
    return jid


def test_statsd_job_metrics_and_gauges(srv, udp):
    c = srv.client()
    run_job(c, "mjobs", "StatsJob", ok=True, hold=0.05)
    run_job(c, "mjobs", "StatsJob", ok=False)
    c.push(queue="mlat", jobtype="Waiting")  # stays queued: size 1, latency > 0
    tags = "|#env:test,queue:mjobs,jobtype:StatsJob"
    count = f"faktory.jobs.count:1|c{tags}"

    def gauges_after_jobs(ls: list[str]) -> bool:
        """A full round of gauges sent after both executions were counted."""
        if ls.count(count) < 2:
            return False
        after = ls[max(i for i, x in enumerate(ls) if x == count) :]
        return any(x.startswith("faktory.ops.redis.rtt_us:") for x in after)

    lines = collect(udp, gauges_after_jobs)
    assert lines.count(f"faktory.jobs.count:1|c{tags}") == 2
    assert lines.count(f"faktory.jobs.failed:1|c{tags}") == 1
    timings = [x for x in lines if x.startswith("faktory.jobs.perform:")]
    assert len(timings) == 2 and all(x.endswith(f"|ms{tags}") for x in timings)
    assert max(float(x.split(":")[1].split("|")[0]) for x in timings) >= 40  # held 50 ms
    last = max(i for i, x in enumerate(lines) if x == count)
    gauges = {
        x.split(":")[0] + x.partition("|g")[2]: x.split(":")[1].split("|")[0]
        for x in lines[last:]
        if "|g" in x
    }
    assert int(gauges["faktory.processed|#env:test"]) >= 2
    assert int(gauges["faktory.failures|#env:test"]) >= 1
    assert gauges["faktory.queue.size|#env:test,queue:mlat"] == "1"
    assert float(gauges["faktory.queue.latency|#env:test,queue:mlat"]) > 0
    assert int(gauges["faktory.ops.redis.rtt_us|#env:test"]) > 0
    assert int(gauges["faktory.connections|#env:test"]) >= 1
    c.close()


def test_prometheus_endpoint_shared_by_two_servers(srv):
    c = srv.client()
    run_job(c, "pq", "PromJob", ok=True, hold=0.5)
    run_job(c, "pq", "PromJob", ok=False)
    c.push(queue="pwait", jobtype="Waiting")
    m = scrape(srv.web_port)
    job = frozenset({("jobtype", "PromJob")})
    assert m[("faktory_job_executions_total", job | {("outcome", "success")})] == 1
    assert m[("faktory_job_executions_total", job | {("outcome", "failure")})] == 1
    assert m[("faktory_job_duration_seconds_count", job)] == 2
    assert m[("faktory_job_duration_seconds_sum", job)] >= 0.45
    assert m[("faktory_job_duration_seconds_bucket", job | {("le", "0.25")})] == 1
    assert m[("faktory_job_duration_seconds_bucket", job | {("le", "+Inf")})] == 2
    assert m[("faktory_queue_size", frozenset({("queue", "pwait")}))] == 1
    assert m[("faktory_queue_latency_seconds", frozenset({("queue", "pwait")}))] > 0
    assert m[("faktory_jobs_processed_total", frozenset())] >= 2
    assert m[("faktory_jobs_failed_total", frozenset())] >= 1
    assert m[("faktory_jobs", frozenset({("set", "retries")}))] >= 1
    assert m[("faktory_connections", frozenset())] >= 1

    # A second server on the same Redis: its executions show up here too.
    sock = os.path.join(os.path.abspath(srv.data_dir), "redis.sock")
    other = ServerProcess(args=["--redis-url", f"unix://{sock}"], web=False).start()
    try:
        oc = other.client()
        run_job(oc, "pq", "PromJob", ok=True)
        oc.close()
        deadline = time.monotonic() + 5
        key = ("faktory_job_executions_total", job | {("outcome", "success")})
        while scrape(srv.web_port)[key] != 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert scrape(srv.web_port)[key] == 2
    finally:
        other.discard()
    c.close()


def test_bad_statsd_tag_refuses_to_start():
    conf = write_config('[statsd]\nlocation = "127.0.0.1:8125"\ntags = ["host:me"]\n')
    s = ServerProcess(args=["--config-dir", conf], web=False)
    try:
        with pytest.raises(RuntimeError):
            s.start()
        assert "reserved" in s.log()
    finally:
        s.discard()
        shutil.rmtree(conf, ignore_errors=True)
