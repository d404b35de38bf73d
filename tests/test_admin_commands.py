"""QUEUE, MUTATE, INFO and FLUSH through the wire against a real server."""

import json
import os
import threading
import time
import uuid

from rawredis import RawRedis

from helpers import ReplyError


def _raw(srv) -> RawRedis:
    return RawRedis(os.path.join(srv.data_dir, "redis.sock"))


def _fail_into_retries(c, queue: str, jobtype: str = "TestJob", n: int = 1) -> list[str]:
    jids = []
    for _ in range(n):
        jid, _ = c.push(queue=queue, jobtype=jobtype, retry=5)
        assert c.fetch(queue)["jid"] == jid
        assert c.call("FAIL " + json.dumps({"jid": jid, "message": "boom"})) == "OK"
        jids.append(jid)
    return jids


def _mutate(c, **op):
    return c.call("MUTATE " + json.dumps(op, separators=(",", ":")))


def test_queue_pause_resume_and_fetch_skips_paused(c):
    c.push(jid="pause-0001", queue="qp1")
    c.push(jid="pause-0002", queue="qp2")
    assert c.call("QUEUE PAUSE qp1 no-such-queue") == "OK"
    assert c.fetch("qp1", "qp2")["jid"] == "pause-0002"
    started = time.monotonic()
    assert c.fetch("qp1") is None  # paused: nothing handed out, after the 2 s wait
    assert time.monotonic() - started > 1.5
    assert c.call("QUEUE resume qp1") == "OK"  # subcommands are case-insensitive
    assert c.fetch("qp1")["jid"] == "pause-0001"


def test_queue_wildcard_pause_and_remove(c):
    for q in ("wa", "wb"):
        c.push(queue=q)
    assert c.call("QUEUE PAUSE *") == "OK"
    assert c.fetch("wa", "wb") is None
    assert c.call("QUEUE RESUME *") == "OK"
    assert c.call("QUEUE REMOVE wa") == "OK"
    queues = c.info()["faktory"]["queues"]
    assert "wa" not in queues and queues["wb"] == 1


def test_queue_latency(c):
    c.push(queue="lat1")
    time.sleep(0.3)
    reply = json.loads(c.call("QUEUE LATENCY lat1 lat-empty"))
    assert set(reply) == {"lat1", "lat-empty"}
    assert 0.25 < reply["lat1"] < 30 and reply["lat-empty"] == 0
    assert c.call("QUEUE LATENCY *") == ReplyError("ERR QUEUE LATENCY does not support wildcards")
    assert c.call("QUEUE FROB x") == ReplyError("ERR no such QUEUE subcommand: FROB")
    assert isinstance(c.call("QUEUE"), ReplyError)


def test_mutate_errors(c):
    assert c.call('MUTATE {"cmd": "kill", "target": "retries"}') == ReplyError("ERR invalid format")
    assert c.call("MUTATE") == ReplyError("ERR invalid format")
    assert c.call("MUTATE {nope").startswith("ERR ")
    assert _mutate(c, cmd="kill", target="queues") == ReplyError(
        "ERR invalid target for mutation command"
    )
    assert _mutate(c, cmd="zap", target="dead") == ReplyError("ERR unknown mutate operation")


def test_mutate_kill_requeue_discard_with_filters(srv, c):
    raw = _raw(srv)
    raw("UNLINK", "fk:retries", "fk:dead")
    a = _fail_into_retries(c, "mq", jobtype="Alpha", n=3)
    b = _fail_into_retries(c, "mq", jobtype="Beta", n=2)
    # jids filter wins over jobtype
    assert (
        _mutate(c, cmd="kill", target="retries", filter={"jids": [a[0]], "jobtype": "Beta"}) == "OK"
    )
    assert [j["jid"] for j in raw.jobs("fk:dead")] == [a[0]]
    # jobtype filter
    assert _mutate(c, cmd="requeue", target="retries", filter={"jobtype": "Beta"}) == "OK"
    fetched = {c.fetch("mq")["jid"] for _ in range(2)}
    assert fetched == set(b)
    for jid in b:
        c.call("ACK " + json.dumps({"jid": jid}))
    # regexp is a Redis glob
    assert _mutate(c, cmd="discard", target="retries", filter={"regexp": f"*{a[1]}*"}) == "OK"
    assert [j["jid"] for j in raw.jobs("fk:retries")] == [a[2]]
    # requeue from dead puts the job back in its queue
    assert _mutate(c, cmd="requeue", target="dead", filter={"jids": [a[0]]}) == "OK"
    assert c.fetch("mq")["jid"] == a[0]
    c.call("ACK " + json.dumps({"jid": a[0]}))
    # clear ignores the filter; discard without a filter clears too
    assert _mutate(c, cmd="clear", target="retries", filter={"jids": ["x"]}) == "OK"
    assert c.info()["faktory"]["sets"]["retries"] == 0
    raw.close()


def test_mutate_100k_is_chunked_and_server_stays_responsive(srv, c):
    raw = _raw(srv)
    raw("UNLINK", "fk:retries")
    # Retries due in an hour: the scheduler (every second) must not move any
    # of them before the mutation does.
    raw(
        "EVAL",
        "for i = 1, 100000 do redis.call('ZADD', KEYS[1], ARGV[1] + i, "
        '\'{"jid":"bulk-\' .. i .. \'","queue":"bulkq","jobtype":"Bulk","args":[],"retry":3}\') end',
        1,
        "fk:retries",
        int(time.time()) + 3600,
    )
    assert raw("ZCARD", "fk:retries") == 100000
    result = {}

    def run():
        other = srv.client()
        result["reply"] = _mutate(
            other, cmd="requeue", target="retries", filter={"jobtype": "Bulk"}
        )
        other.close()

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.2)
    slowest = 0.0
    while t.is_alive():
        started = time.monotonic()
        assert c.push(queue="probe")[1] == "OK"
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.05)
    t.join()
    assert result["reply"] == "OK"
    assert slowest < 1.0, f"a PUSH waited {slowest:.2f} s during the mutation"
    info = c.info()["faktory"]
    assert info["sets"]["retries"] == 0 and info["queues"]["bulkq"] == 100000
    assert c.call("QUEUE REMOVE bulkq probe") == "OK"
    raw.close()


def test_info_shape(c):
    info = c.info()
    assert list(info) == ["now", "server_utc_time", "faktory", "server"]
    fk = info["faktory"]
    for key in ("total_failures", "total_processed", "total_enqueued", "total_queues"):
        assert isinstance(fk[key], int)
    assert set(fk["sets"]) >= {"dead", "retries", "scheduled", "working"}
    for name in ("Busy", "Dead", "Retries", "Scheduled", "Workers"):
        assert isinstance(fk["tasks"][name]["size"], int)
    assert isinstance(fk["tasks"]["Scheduled"]["wall_time_sec"], float)
    server = info["server"]
    assert server["description"] == "Faktory" and server["faktory_version"] == "1.10.0"
    for key in ("uptime", "connections", "command_count", "used_memory_mb"):
        assert isinstance(server[key], int)


def test_flush_clears_ours_only_and_counters_survive_restart(server):
    c = server.client()
    jid, _ = c.push(queue="fl")
    c.fetch("fl")
    c.call("ACK " + json.dumps({"jid": jid}))
    c.close()
    server.stop()
    server.start()
    c = server.client()
    assert c.info()["faktory"]["total_processed"] == 1  # counters survive a restart
    raw = _raw(server)
    raw("SET", "someone-else:key", "keep")
    c.push(queue="fl")
    assert c.call("FLUSH") == "OK"
    info = c.info()["faktory"]
    assert info["total_processed"] == 0 and info["queues"] == {}
    assert raw("GET", "someone-else:key") == b"keep"
    assert not [k for k in raw("KEYS", "fk:*") if not k.startswith(b"fk:worker")]
    raw.close()


def test_beat_quiet_and_terminate_through_operator(srv, c):
    wid = "w-" + uuid.uuid4().hex[:8]
    worker = srv.client(wid=wid)
    assert worker.call(json.dumps({"wid": wid}).join(["BEAT ", ""])) == "OK"
    worker.push(queue="beatq")
    assert (
        worker.call("BEAT " + json.dumps({"wid": wid, "current_state": "quiet"}))
        == '{"state":"quiet"}'
    )
    # quiet workers get no work, and the state repeats on every BEAT
    assert worker.fetch("beatq") is None
    assert worker.call("BEAT " + json.dumps({"wid": wid, "rss_kb": 1000})) == '{"state":"quiet"}'
    assert (
        worker.call("BEAT " + json.dumps({"wid": wid, "current_state": "terminate"}))
        == '{"state":"terminate"}'
    )
    # forward only
    assert (
        worker.call("BEAT " + json.dumps({"wid": wid, "current_state": "quiet"}))
        == '{"state":"terminate"}'
    )
    worker.close()
    assert c.fetch("beatq") is not None
