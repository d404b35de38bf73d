"""The core lifecycle through the wire against a real server process."""

import json
import time

from helpers import ReplyError


def test_greeting_and_hello(server):
    c = server.client()
    assert c.greeting == '+HI {"v":2}'
    assert c.hello_reply == "OK"


def test_push_fetch_ack(client):
    jid, reply = client.push(args=[1, "two", {"three": 3}], custom={"k": "v"})
    assert reply == "OK"
    job = client.fetch("default")
    assert job["jid"] == jid
    assert job["args"] == [1, "two", {"three": 3}]
    assert job["custom"] == {"k": "v"}
    assert job["queue"] == "default" and job["retry"] == 25
    assert job["created_at"].endswith("Z") and job["enqueued_at"].endswith("Z")
    assert client.info()["faktory"]["sets"]["working"] == 1
    assert client.call(json.dumps({"jid": jid}).join(["ACK ", ""])) == "OK"
    info = client.info()
    assert info["faktory"]["total_processed"] == 1
    assert info["faktory"]["sets"]["working"] == 0


def test_jobs_come_back_compact_whatever_the_client_wrote(client):
    """PUSH may keep a job's own text (job.parse_plain), but what is stored
    and handed out is always compact JSON with the same fields: the search
    filters (web UI, MUTATE) look for '"jobtype":"X"' in it."""
    sent = [
        # Go/Ruby/Node style: compact, args with objects and spaces in strings
        '{"jid":"compact-0001","jobtype":"Go","queue":"shape","args":[1,"a b",{"k":[2]}]}',
        # Python's json.dumps: spaces after every separator
        '{"jid": "spaced-0001", "jobtype": "Py", "queue": "shape", "args": [1, "x"]}',
        '{"jid":"commas-0001","jobtype":"T","queue":"shape","args":["a, b","c: d","[e ]"]}',
        '{ "jid":"brace-00001","jobtype":"T","queue":"shape","args":[] }',
        '{"jid":"nested-0001","jobtype":"T","queue":"shape","args":[[ 1 ]]}',
    ]
    for line in sent:
        assert client.call("PUSH " + line) == "OK"
    for line in sent:
        reply = client.call("FETCH shape")
        job = json.loads(reply)
        assert reply == json.dumps(job, separators=(",", ":"), ensure_ascii=False)
        assert reply.startswith('{"enqueued_at":"')
        want = json.loads(line)
        assert {k: job[k] for k in want} == want
        assert job["retry"] == 25 and job["created_at"]
        assert client.call("ACK " + json.dumps({"jid": job["jid"]})) == "OK"


def test_a_pushb_of_plain_jobs_comes_back_compact_and_whole(client):
    """PUSHB keeps each plain job's own text too (job.parse_batch_plain); a
    refused job is refused alone, the others are stored as sent."""
    jobs = [
        {"jid": f"pushb-plain-{i:04d}", "jobtype": "B", "queue": "pbq", "args": [i, "a b"]}
        for i in range(5)
    ]
    jobs[2].pop("queue")  # defaulted: stored in "default"
    jobs[3]["jid"] = "short"  # refused: not a reasonable jid
    reply = client.call("PUSHB " + json.dumps(jobs, separators=(",", ":")))
    assert json.loads(reply) == {"short": "jobs must have a reasonable jid parameter"}
    got = [client.call("FETCH pbq") for _ in range(3)] + [client.call("FETCH default")]
    for raw in got:
        job = json.loads(raw)
        assert raw == json.dumps(job, separators=(",", ":"), ensure_ascii=False)
        sent = next(j for j in jobs if j["jid"] == job["jid"])
        assert {k: job[k] for k in sent} == sent
        assert job["queue"] == sent.get("queue", "default")
        assert client.call("ACK " + json.dumps({"jid": job["jid"]})) == "OK"
    assert sorted(json.loads(r)["jid"] for r in got) == sorted(
        j["jid"] for j in jobs if j["jid"] != "short"
    )


def test_fetch_order_of_queues_and_priorities(client):
    client.push(jid="low-00001", queue="low")
    client.push(jid="def-00001")
    client.push(jid="def-00002", priority=9)
    client.push(jid="def-00003", priority=1)
    client.push(jid="def-00004")
    order = [client.fetch("default", "low")["jid"] for _ in range(5)]
    assert order == ["def-00002", "def-00001", "def-00004", "def-00003", "low-00001"]


def test_empty_fetch_waits_two_seconds(client):
    started = time.monotonic()
    assert client.fetch("nothing") is None
    assert 1.8 < time.monotonic() - started < 3.5


def test_waiting_fetch_wakes_on_push(server):
    worker = server.client(wid="w-wake")
    producer = server.client()
    worker.send("FETCH wake")
    time.sleep(0.3)
    started = time.monotonic()
    producer.push(jid="wake-0001", queue="wake")
    job = json.loads(worker.read_reply())
    assert job["jid"] == "wake-0001"
    assert time.monotonic() - started < 0.5


def test_fail_goes_to_retries_with_failure(client):
    jid, _ = client.push(retry=3, backtrace=5)
    client.fetch()
    reply = client.call(
        "FAIL "
        + json.dumps(
            {
                "jid": jid,
                "errtype": "RuntimeError",
                "message": " boom ",
                "backtrace": ["a.py:1", "b.py:2"],
            }
        )
    )
    assert reply == "OK"
    info = client.info()
    assert info["faktory"]["sets"]["retries"] == 1
    assert info["faktory"]["total_failures"] == 1


def test_retry_zero_discards_and_negative_goes_dead(client):
    a, _ = client.push(retry=0)
    b, _ = client.push(retry=-1)
    for jid in (a, b):
        client.fetch()
        assert client.call("FAIL " + json.dumps({"jid": jid, "message": "x"})) == "OK"
    sets = client.info()["faktory"]["sets"]
    assert sets["dead"] == 1 and sets["retries"] == 0


def test_scheduled_job_runs_when_due(client):
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
    jid, reply = client.push(at=at)
    assert reply == "OK"
    assert client.info()["faktory"]["sets"]["scheduled"] == 1
    deadline = time.monotonic() + 8
    job = None
    while job is None and time.monotonic() < deadline:
        job = client.fetch()
    assert job and job["jid"] == jid and job["at"] == at


def test_errors_keep_connection_usable(client):
    cases = {
        "push {}": "ERR unknown command push",
        "NOPE": "ERR unknown command NOPE",
        "PUSH {bad": "ERR invalid JSON",
        'PUSH {"jid":"12345678","args":[]}': "ERR jobs must have a jobtype parameter",
        'PUSH {"jid":"1","jobtype":"x","args":[]}': "ERR jobs must have a reasonable jid parameter",
        'PUSH {"jid":"12345678","jobtype":"x"}': "ERR jobs must have an args parameter",
        'PUSH {"jid":"12345678","jobtype":"x","args":{}}': "ERR invalid JSON",
        'PUSH {"jid":"12345678","jobtype":"x","args":[],"retry":"5"}': "ERR invalid JSON",
        'PUSH {"jid":"12345678","jobtype":"x","args":[],"queue":"a b"}': 'ERR cannot get "a b" queue',
        'PUSH {"jid":"12345678","jobtype":"x","args":[],"at":"tomorrow"}': "ERR invalid timestamp for 'at'",
        'PUSH {"jid":"12345678","jobtype":"x","args":[],"reserve_for":90000}': "ERR jobs cannot be reserved",
        "PUSH [1]": "ERR invalid JSON",
        "FETCH": "ERR must call fetch with at least one queue",
        "ACK": "ERR invalid ACK",
        'ACK {"jid":"x","n":1}': "ERR invalid ACK",
        "FAIL {}": "ERR missing JID",
        'FAIL {"jid":"nope-nope"}': "ERR Job not found nope-nope",
        'BEAT {"wid":"ghost"}': "ERR unknown worker ghost",
        "BATCH NEW {}": "ERR invalid batch: a success or complete callback is required",
    }
    for line, expected in cases.items():
        reply = client.call(line)
        assert isinstance(reply, ReplyError), (line, reply)
        assert reply.startswith(expected), (line, reply)
    assert client.push()[1] == "OK"


def test_commands_before_hello_get_an_error(server):
    c = server.client(hello=False)
    c.send("PUSH {}")
    reply = c.read_reply()
    assert isinstance(reply, ReplyError) and "HELLO" in reply
    # The server keeps serving others.
    assert server.client().push()[1] == "OK"


def test_huge_line_is_refused_not_fatal(server):
    from helpers import ServerProcess  # noqa: F401

    c = server.client()
    c.send(b"PUSH " + b"x" * (17 * 1024 * 1024))
    reply = c.read_reply()
    assert isinstance(reply, ReplyError) and "too long" in reply
    assert server.client().push()[1] == "OK"


def test_pushb(client):
    ok = {"jid": "pushb-0001", "jobtype": "x", "args": []}
    bad = {"jid": "pushb-0002", "args": []}
    assert client.call("PUSHB " + json.dumps([ok])) == "{}"
    reply = json.loads(client.call("PUSHB " + json.dumps([ok, bad])))
    assert reply == {"pushb-0002": "jobs must have a jobtype parameter"}


def test_pushb_keeps_the_batch_order(client):
    """Jobs are stored pipelined, except that one whose PUSH middleware waits
    on Redis (a unique job) holds back those after it."""
    batch = [
        {"jid": f"order-{n:04d}", "jobtype": "x", "args": [n], "queue": "order"} for n in range(300)
    ]
    batch[100]["custom"] = {"unique_for": 60}
    batch[200]["custom"] = {"unique_for": 60}
    batch[201] = dict(batch[200], jid="order-dupe")  # same unique key as 200: refused
    reply = json.loads(client.call("PUSHB " + json.dumps(batch)))
    assert reply == {"order-dupe": "NOTUNIQUE Job not unique"}
    fetched = [client.fetch("order")["jid"] for _ in range(299)]
    assert fetched == [j["jid"] for j in batch if j["jid"] != "order-dupe"]


def test_restart_keeps_jobs(server):
    c = server.client()
    jids = [c.push(queue="keep")[0] for _ in range(50)]
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    c.push(at=at)
    c.close()
    assert server.stop() in (0, -15)  # twist re-raises SIGTERM after a clean stop
    assert "Main loop terminated" in server.log()
    server.start()
    c = server.client()
    info = c.info()
    assert info["faktory"]["queues"]["keep"] == 50
    assert info["faktory"]["sets"]["scheduled"] == 1
    assert [c.fetch("keep")["jid"] for _ in range(50)] == jids


def test_password(tmp_path):
    from helpers import ServerProcess

    srv = ServerProcess(env={"FAKTORY_PASSWORD": "s3cret"}).start()
    try:
        c = srv.client(password="s3cret")
        assert '"i":' in c.greeting and '"s":' in c.greeting
        assert c.hello_reply == "OK"
        bad = srv.client(password="wrong")
        assert bad.hello_reply == "ERR Invalid password"
        # cdrx/faktory_worker_python hashes once and sends no "v".
        old = srv.client(hello=False)
        salt = json.loads(old.greeting[4:])["s"]
        from helpers import pwdhash

        assert old.call("HELLO " + json.dumps({"pwdhash": pwdhash("s3cret", salt, 1)})) == "OK"
    finally:
        srv.stop()
