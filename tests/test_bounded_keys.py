"""Nothing the server creates grows forever.  After a long, varied run (many
job types and queues, retries, deaths, scheduled, unique, expiring, tracked
and batch jobs, throttles, cron, workers beating, a config reload) every key
in the Redis is listed, and each one either has a TTL or belongs to a
pattern whose size is bounded (checked here against its bound): the jobs
themselves, single counters, or structures capped by the config."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import uuid

from rawredis import RawRedis

from faktory.pro.metrics import BUCKETS
from helpers import ServerProcess, config_dir

JOBTYPES_LIMIT = 5
QUEUES = [f"kq{i}" for i in range(6)]
KINDS = 3 + len(BUCKETS) + 1  # ok, fail, us and one field per histogram bucket
TOML = f"""
[metrics]
jobtypes = {JOBTYPES_LIMIT}

[throttles]
kq0 = {{ concurrency = 50, timeout = 60 }}
kq1 = {{ rate = 100000, period = 60 }}
kq2 = {{ worker = 50, timeout = 60 }}

[[cron]]
schedule = "* * * * *"
[cron.job]
type = "CronA"
queue = "kq5"

[[cron]]
schedule = "* * * * *"
[cron.job]
type = "CronB"
queue = "kq5"
"""

# Keys without a TTL: pattern -> why they are bounded.  A key the server
# creates that matches none of these must expire.
BOUNDED = {
    r"fk:queues": "queue names in use (QUEUE REMOVE forgets one)",
    r"fk:paused": "a subset of the queue names",
    r"fk:q:[^:]+:[1-9]": "the jobs waiting in a queue (gone when empty)",
    r"fk:qp:[^:]+": "at most 9 priorities",
    r"fk:(scheduled|retries)": "jobs, each leaving when due",
    r"fk:dead": "dead jobs, purged 180 days after death",
    r"fk:working(:exp)?": "reservations, reaped when they run out",
    r"fk:held(:.+)?": "copies of a reserved jid, handed back when it settles",
    r"fk:stat:(processed|failures|expired)": "one counter",
    r"fk:workers": "live workers (reaped after 60 s of silence)",
    r"fk:worker:.+": "one per live worker",
    r"fk:throttle:conf": "the configured throttles",
    r"fk:throttle:held": "jobs holding throttle slots (released or lapsed)",
    r"fk:throttle:[^:]+(:w:.+)?": "slots held, each lapsing after its timeout",
    r"fk:cron:last": "one field per configured entry",
    r"fk:batches": "index of live batches (swept every minute)",
    r"fk:metrics:jobs": "(jobtypes + 1) series of the job metrics",
    r"fk:metrics:jobtypes": "at most [metrics] jobtypes",
    r"faktory:namespaces": "one member per deployment on the Redis",
}


def _hello_worker(srv: ServerProcess, wid: str):
    c = srv.client(wid=wid)
    assert c.call(json.dumps({"wid": wid}).join(("BEAT ", ""))) == "OK"
    return c


def _run(srv: ServerProcess) -> None:
    c = _hello_worker(srv, "w-" + uuid.uuid4().hex[:8])
    producer = srv.client()
    bid = producer.call("BATCH NEW " + json.dumps({"success": {"jobtype": "BatchDone"}}))
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    jobs = []
    for n in range(1200):
        job = {
            "jid": uuid.uuid4().hex,
            "jobtype": f"Type{n % 40}",  # far more job types than the metrics keep
            "queue": QUEUES[n % 5],
            "args": [n],
            "retry": n % 3,
        }
        custom = {}
        if n % 7 == 0:
            custom["unique_for"] = 600
        if n % 11 == 0:
            custom["expires_in"] = 0.001 if n % 2 else 3600
        if n % 13 == 0:
            custom["track"] = 1
        if n % 17 == 0:
            custom["bid"] = bid
        if custom:
            job["custom"] = custom
        if n % 19 == 0:
            job["at"] = later
        jobs.append(job)
    for i in range(0, len(jobs), 100):
        reply = producer.call("PUSHB " + json.dumps(jobs[i : i + 100]))
        assert reply.startswith("{"), reply
    assert producer.call(f"BATCH COMMIT {bid}") == "OK"
    assert producer.call("QUEUE PAUSE kq4") == "OK"
    assert producer.call("QUEUE RESUME kq4") == "OK"
    time.sleep(0.05)  # the short expiries pass
    done = 0
    while True:
        job = c.fetch(*QUEUES)
        if job is None:
            break
        done += 1
        jid = job["jid"]
        if job["args"] and job["args"][0] % 4 == 0:
            fail = {"jid": jid, "errtype": "E", "message": "boom"}
            assert c.call("FAIL " + json.dumps(fail)) == "OK"
        else:
            if done % 10 == 0:
                track = {"jid": jid, "percent": 50, "desc": "half"}
                assert c.call("TRACK SET " + json.dumps(track)) == "OK"
            assert c.call(json.dumps({"jid": jid}).join(("ACK ", ""))) == "OK"
    assert done > 900
    requeue = {"cmd": "requeue", "target": "retries", "filter": {"jobtype": "Type8"}}
    assert producer.call("MUTATE " + json.dumps(requeue, separators=(",", ":"))) == "OK"
    c.close()
    producer.close()


def test_every_key_expires_or_is_bounded():
    d = config_dir(TOML)
    srv = ServerProcess(args=["--config-dir", d], web=False).start()
    try:
        _run(srv)
        # A reload that changes the cron entries: the removed ones' last runs go.
        path = os.path.join(d, "conf.d", "faktory.toml")
        with open(path, "w") as f:
            f.write(TOML.replace('type = "CronB"', 'type = "CronC"'))
        srv.proc.send_signal(signal.SIGHUP)
        time.sleep(2.5)  # cron ticks, metrics flush (every second)
        r = RawRedis(os.path.join(srv.data_dir, "redis.sock"))
        try:
            _check(r)
        finally:
            r.close()
    finally:
        srv.discard()


def _check(r) -> None:
    keys = sorted(k.decode() for k in r("KEYS", "*"))
    patterns = {p: re.compile(p + r"\Z") for p in BOUNDED}
    seen: dict[str, list[str]] = {}
    for key in keys:
        ttl = r("TTL", key)
        assert ttl != -2
        if ttl > 0:
            continue
        match = next((p for p, rx in patterns.items() if rx.match(key)), None)
        assert match is not None, f"{key} has no TTL and no bound: it would grow forever"
        seen.setdefault(match, []).append(key)
    # The run exercised the daily counters, and they expire (history for the UI).
    day_keys = [k for k in keys if re.match(r"fk:stat:(processed|failures):\d{4}-", k)]
    assert len(day_keys) == 2
    for k in day_keys:
        assert 180 * 86400 < r("TTL", k) <= 182 * 86400
    # Bounded structures, within their bounds.
    jobtypes = r("ZRANGE", "fk:metrics:jobtypes", 0, -1)
    assert len(jobtypes) == JOBTYPES_LIMIT
    fields = [f.decode() for f in r("HKEYS", "fk:metrics:jobs")]
    series = {f.partition("|")[2] for f in fields}
    assert "other" in series and len(series) <= JOBTYPES_LIMIT + 1, series
    assert len(fields) <= (JOBTYPES_LIMIT + 1) * KINDS
    # The Job types page's time slots: as bounded as the totals, and expiring.
    slots = [k for k in keys if re.match(r"fk:metrics:jobs:[mh]:\d+\Z", k)]
    assert len(slots) == 2
    for k in slots:
        assert 0 < r("TTL", k) and r("HLEN", k) <= (JOBTYPES_LIMIT + 1) * KINDS
    assert r("SCARD", "fk:queues") <= len(QUEUES)
    assert r("HLEN", "fk:cron:last") <= 2
    assert r("HLEN", "fk:throttle:conf") == 3
    assert r("ZCARD", "fk:workers") <= 1
    # Keys that must expire, and were created: claims, locks, tracking, batches.
    for pattern in (r"fk:cron:\w+:\d+", r"fk:unique:\w+", r"fk:track:\w+", r"fk:batch:.+"):
        found = [k for k in keys if re.match(pattern + r"\Z", k)]
        assert found, pattern
        assert all(r("TTL", k) > 0 for k in found), pattern


def test_metrics_keep_the_busiest_jobtypes_and_sum_the_rest_as_other():
    from test_pro_metrics import scrape

    d = config_dir("[metrics]\njobtypes = 3\n")
    srv = ServerProcess(args=["--config-dir", d]).start()
    try:
        c = srv.client()
        plan = [(f"Rare{n}", 1) for n in range(40)] + [("Busy", 30), ("Steady", 20)]
        total = 0
        for jobtype, runs in plan:
            for _ in range(runs):
                jid, _ = c.push(queue="mq", jobtype=jobtype)
                assert c.fetch("mq")["jid"] == jid
                assert c.call(json.dumps({"jid": jid}).join(("ACK ", ""))) == "OK"
                total += 1
            if jobtype == "Rare20":
                time.sleep(1.5)  # some flushes happen in between
        time.sleep(1.5)
        samples = scrape(srv.web_port)
        runs = {
            dict(labels)["jobtype"]: value
            for (name, labels), value in samples.items()
            if name == "faktory_job_executions_total" and dict(labels)["outcome"] == "success"
        }
        assert "Busy" in runs and "Steady" in runs and "other" in runs, runs
        assert len(runs) <= 4, runs
        assert runs["Busy"] == 30 and runs["Steady"] == 20
        assert sum(runs.values()) == total  # nothing lost: the rest is under other
    finally:
        srv.discard()


def test_old_daily_counters_get_their_ttl_at_start():
    srv = ServerProcess(web=False).start()
    try:
        srv.stop()

        def day(ago: int) -> str:
            return time.strftime("%Y-%m-%d", time.localtime(time.time() - ago * 86400))

        from faktory.backup import TemporaryRedis

        with TemporaryRedis(srv.data_dir) as r:
            r("SET", f"fk:stat:processed:{day(10)}", 5)  # written by an older version
            r("SET", f"fk:stat:failures:{day(400)}", 7)  # older than any history shown
        srv.start()
        r = RawRedis(os.path.join(srv.data_dir, "redis.sock"))
        try:
            assert 171 * 86400 < r("TTL", f"fk:stat:processed:{day(10)}") <= 172 * 86400
            assert r("EXISTS", f"fk:stat:failures:{day(400)}") == 0
        finally:
            r.close()
    finally:
        srv.discard()
