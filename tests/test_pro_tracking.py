"""Job tracking through the wire: TRACK SET/GET and the states a tracked job
goes through."""

from __future__ import annotations

import json
import os
import time
import uuid

from rawredis import RawRedis


def ttl(r, key: str) -> int:
    return r("TTL", key)


def q() -> str:
    return "trk-" + uuid.uuid4().hex[:8]


def get(c, jid: str) -> dict:
    return json.loads(c.call(f"TRACK GET {jid}"))


def track_set(c, **fields) -> str:
    return c.call("TRACK SET " + json.dumps(fields))


def test_states_through_a_successful_life(c):
    queue = q()
    jid, _ = c.push(queue=queue, custom={"track": 1})
    st = get(c, jid)
    assert st["jid"] == jid and st["state"] == "enqueued" and st["updated_at"].endswith("Z")
    assert "percent" not in st and "desc" not in st
    job = c.fetch(queue)
    assert job["jid"] == jid
    assert get(c, jid)["state"] == "working"
    assert track_set(c, jid=jid, percent=32, desc="Still processing...") == "OK"
    assert track_set(c, jid=jid, percent=33) == "OK"  # desc kept
    st = get(c, jid)
    assert (st["state"], st["percent"], st["desc"]) == ("working", 33, "Still processing...")
    assert c.call("ACK " + json.dumps({"jid": jid})) == "OK"
    st = get(c, jid)
    assert (st["state"], st["percent"], st["desc"]) == ("success", 33, "Still processing...")
    # Progress may still be written after the end; the state stays.
    assert track_set(c, jid=jid, percent=100, desc="Final stage.") == "OK"
    st = get(c, jid)
    assert (st["state"], st["percent"], st["desc"]) == ("success", 100, "Final stage.")


def test_failed_then_dead(c):
    queue = q()
    jid, _ = c.push(queue=queue, retry=3, custom={"track": 1})
    c.fetch(queue)
    assert c.call("FAIL " + json.dumps({"jid": jid, "errtype": "E", "message": "m"})) == "OK"
    assert get(c, jid)["state"] == "failed"  # waiting in retries
    # A job on its last retry (as the retry set would hand it back) dies.
    failure = {"retry_count": 0, "remaining": 1, "failed_at": "2024-01-01T00:00:00Z"}
    jid2, _ = c.push(queue=queue, retry=1, failure=failure, custom={"track": 1})
    c.fetch(queue)
    assert c.call("FAIL " + json.dumps({"jid": jid2, "message": "again"})) == "OK"
    assert get(c, jid2)["state"] == "dead"
    assert c.info()["faktory"]["sets"]["dead"] >= 1
    # retry 0: dropped after one failure
    jid3, _ = c.push(queue=queue, retry=0, custom={"track": 1})
    c.fetch(queue)
    assert c.call("FAIL " + json.dumps({"jid": jid3})) == "OK"
    assert get(c, jid3)["state"] == "failed"


def test_unknown_and_untracked_jobs(c):
    assert c.call("TRACK GET nosuchjob123") == (
        '{"jid":"nosuchjob123","state":"unknown","updated_at":""}'
    )
    jid, _ = c.push(queue=q())
    assert c.call(f"TRACK GET {jid}") == f'{{"jid":"{jid}","state":"unknown","updated_at":""}}'
    sched, _ = c.push(
        queue=q(),
        at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600)),
        custom={"track": 1},
    )
    assert get(c, sched)["state"] == "enqueued"


def test_reserve_until_extends_the_reservation(srv, c):
    queue = q()
    jid, _ = c.push(queue=queue, reserve_for=60, custom={"track": 1})
    c.fetch(queue)
    r = RawRedis(os.path.join(os.path.abspath(srv.data_dir), "redis.sock"))
    before = float(r("ZSCORE", "fk:working:exp", jid))
    assert before is not None and before < time.time() + 120
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    assert track_set(c, jid=jid, percent=5, reserve_until=later) == "OK"
    assert float(r("ZSCORE", "fk:working:exp", jid)) > time.time() + 3000
    earlier = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 600))
    assert track_set(c, jid=jid, reserve_until=earlier) == "OK"
    assert float(r("ZSCORE", "fk:working:exp", jid)) > time.time() + 3000  # never moved earlier
    far = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 10 * 86400))
    assert track_set(c, jid=jid, reserve_until=far) == "OK"
    assert float(r("ZSCORE", "fk:working:exp", jid)) < time.time() + 86400 + 60  # capped at a day
    assert c.call("ACK " + json.dumps({"jid": jid})) == "OK"
    r.close()


def test_errors(c):
    assert "jid is required" in track_set(c, percent=3)
    assert "percent" in track_set(c, jid="abcdefgh1", percent=101)
    assert "percent" in track_set(c, jid="abcdefgh1", percent="10")
    assert "desc" in track_set(c, jid="abcdefgh1", desc=7)
    assert "reserve_until" in track_set(c, jid="abcdefgh1", reserve_until="tomorrow")
    assert c.call("TRACK SET nope").startswith("ERR invalid TRACK SET")
    assert c.call("TRACK GET").startswith("ERR TRACK GET takes")
    assert c.call("TRACK FROB x").startswith("ERR unknown TRACK subcommand")
    # The connection keeps working after errors.
    assert get(c, "abcdefgh1")["jid"] == "abcdefgh1"


def test_finished_record_kept_thirty_minutes(srv, c):
    r = RawRedis(os.path.join(os.path.abspath(srv.data_dir), "redis.sock"))
    queue = q()
    jid, _ = c.push(queue=queue, custom={"track": 1})
    assert ttl(r, f"fk:track:{jid}") > 29 * 86400  # still on its way
    c.fetch(queue)
    assert c.call("ACK " + json.dumps({"jid": jid})) == "OK"
    assert 1700 < ttl(r, f"fk:track:{jid}") <= 1800
    r.close()
