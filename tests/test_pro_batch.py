"""Batches through the wire: counts, callback order, nesting, exactly-once
callbacks with two servers sharing one Redis, a real client (pyfaktory), and
the web UI page."""

from __future__ import annotations

import json
import os
import threading
import urllib.request
import uuid

from rawredis import RawRedis

from helpers import ReplyError, ServerProcess


def ttl(r, key: str) -> int:
    return r("TTL", key)


def q(prefix: str) -> str:
    """A queue name of its own for each test (the server is shared)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def new_batch(c, **spec) -> str:
    bid = c.call("BATCH NEW " + json.dumps(spec))
    assert isinstance(bid, str) and not isinstance(bid, ReplyError), bid
    return bid


def status(c, bid: str) -> dict:
    return json.loads(c.call(f"BATCH STATUS {bid}"))


def ack(c, jid: str) -> None:
    assert c.call("ACK " + json.dumps({"jid": jid})) == "OK"


def fail(c, jid: str) -> None:
    reply = c.call("FAIL " + json.dumps({"jid": jid, "errtype": "E", "message": "boom"}))
    assert reply == "OK"


def size(c, queue: str) -> int:
    return c.info()["faktory"]["queues"].get(queue, 0)


def test_counts_commit_and_callback_order(c):
    jq, cbq = q("bjobs"), q("bcb")
    bid = new_batch(
        c,
        description="three jobs",
        complete={"jobtype": "Done", "args": [1], "queue": cbq},
        success={"jobtype": "AllGood", "args": [2], "queue": cbq},
    )
    assert bid.startswith("b-")
    jids = [c.push(queue=jq, custom={"bid": bid})[0] for _ in range(3)]
    st = status(c, bid)
    assert st["bid"] == bid and st["description"] == "three jobs"
    assert (st["total"], st["pending"], st["failed"]) == (3, 3, 0)
    assert (st["complete_st"], st["success_st"]) == ("", "")
    assert "parent_bid" not in st and st["created_at"].endswith("Z")

    # Jobs run before COMMIT, but callbacks wait for it.
    first = c.fetch(jq)
    assert first["custom"]["bid"] == bid
    ack(c, first["jid"])
    second = c.fetch(jq)
    fail(c, second["jid"])
    st = status(c, bid)
    assert (st["total"], st["pending"], st["failed"]) == (3, 2, 1)
    assert c.call(f"BATCH COMMIT {bid}") == "OK"
    assert size(c, cbq) == 0  # one job has not run yet

    third = c.fetch(jq)
    ack(c, third["jid"])
    st = status(c, bid)
    assert (st["pending"], st["failed"], st["complete_st"], st["success_st"]) == (1, 1, "1", "")
    assert size(c, cbq) == 1
    cb = c.fetch(cbq)
    assert cb["jobtype"] == "Done" and cb["args"] == [1]
    assert cb["custom"]["_bid"] == bid and cb["custom"]["_cb"] == "complete"
    ack(c, cb["jid"])
    st = status(c, bid)
    assert (st["complete_st"], st["success_st"]) == ("2", "")
    assert size(c, cbq) == 0  # the failed job keeps success waiting

    # The failed job runs again (same jid) and succeeds: success fires.
    assert {first["jid"], second["jid"], third["jid"]} == set(jids)
    c.push(jid=second["jid"], queue=jq, custom={"bid": bid})
    again = c.fetch(jq)
    assert again["jid"] == second["jid"]
    ack(c, again["jid"])
    st = status(c, bid)
    assert (st["total"], st["pending"], st["failed"], st["success_st"]) == (3, 0, 0, "1")
    cb = c.fetch(cbq)
    assert cb["jobtype"] == "AllGood" and cb["custom"]["_cb"] == "success"
    ack(c, cb["jid"])
    assert status(c, bid)["success_st"] == "2"
    assert size(c, cbq) == 0


def test_empty_batch_fires_on_commit_and_failed_success_stays_enqueued(c):
    cbq = q("bempty")
    bid = new_batch(
        c,
        complete={"jobtype": "C", "args": [], "queue": cbq},
        success={"jobtype": "S", "args": [], "queue": cbq},
    )
    st = status(c, bid)
    assert (st["total"], st["complete_st"], st["success_st"]) == (0, "", "")
    assert size(c, cbq) == 0
    assert c.call(f"BATCH COMMIT {bid}") == "OK"
    st = status(c, bid)
    assert (st["complete_st"], st["success_st"]) == ("1", "")
    cb = c.fetch(cbq)
    assert cb["jobtype"] == "C"
    ack(c, cb["jid"])
    st = status(c, bid)
    assert (st["complete_st"], st["success_st"]) == ("2", "1")
    cb = c.fetch(cbq)
    assert cb["jobtype"] == "S"
    fail(c, cb["jid"])
    assert status(c, bid)["success_st"] == "1"  # a failed callback stays enqueued


def test_success_only_batch_and_reopen(c):
    jq, cbq = q("bre"), q("brecb")
    # pyfaktory-style callback: no jid, default queue filled by the server.
    bid = new_batch(c, success={"jobtype": "S", "args": [], "queue": cbq})
    jid, _ = c.push(queue=jq, custom={"bid": bid})
    assert c.call(f"BATCH COMMIT {bid}") == "OK"
    assert c.call(f"BATCH OPEN {bid}") == bid  # the bid, as a bulk string
    c.push(queue=jq, custom={"bid": bid})
    for _ in range(2):
        ack(c, c.fetch(jq)["jid"])
    st = status(c, bid)
    assert (st["total"], st["pending"], st["complete_st"], st["success_st"]) == (2, 0, "", "")
    assert size(c, cbq) == 0  # reopened: waits for the next COMMIT
    assert c.call(f"BATCH COMMIT {bid}") == "OK"
    assert status(c, bid)["success_st"] == "1"
    cb = c.fetch(cbq)
    assert cb["jobtype"] == "S" and len(cb["jid"]) >= 8
    ack(c, cb["jid"])
    assert status(c, bid)["success_st"] == "2"


def test_nested_batches_parent_waits_for_child_callbacks(c):
    jq, cbq = q("bnest"), q("bnestcb")
    parent = new_batch(
        c,
        description="parent",
        complete={"jobtype": "ParentComplete", "args": [], "queue": cbq},
        success={"jobtype": "ParentSuccess", "args": [], "queue": cbq},
    )
    child = new_batch(
        c,
        description="child",
        parent_bid=parent,
        complete={"jobtype": "ChildComplete", "args": [], "queue": cbq},
        success={"jobtype": "ChildSuccess", "args": [], "queue": cbq},
    )
    grandchild = new_batch(
        c, parent_bid=child, success={"jobtype": "GrandSuccess", "args": [], "queue": cbq}
    )
    assert status(c, child)["parent_bid"] == parent
    assert status(c, grandchild)["parent_bid"] == child
    c.push(queue=jq, custom={"bid": parent})
    c.push(queue=jq, custom={"bid": child})
    c.push(queue=jq, custom={"bid": grandchild})
    for bid in (grandchild, child, parent):
        assert c.call(f"BATCH COMMIT {bid}") == "OK"
    for _ in range(3):
        ack(c, c.fetch(jq)["jid"])

    # Each callback is enqueued only once what it waits for has been ACKed.
    order = []
    while size(c, cbq):
        job = c.fetch(cbq)
        order.append(job["jobtype"])
        ack(c, job["jid"])
    assert sorted(order) == sorted(
        ["ChildComplete", "GrandSuccess", "ChildSuccess", "ParentComplete", "ParentSuccess"]
    )
    at = order.index
    assert at("ChildSuccess") > max(at("GrandSuccess"), at("ChildComplete"))
    assert at("ParentComplete") > at("ChildComplete")
    assert at("ParentSuccess") > max(at("ParentComplete"), at("ChildSuccess"))
    for bid in (parent, child):
        st = status(c, bid)
        assert (st["complete_st"], st["success_st"]) == ("2", "2")
    assert status(c, grandchild)["success_st"] == "2"


def test_child_subcommand_links_existing_batch(c):
    cbq = q("bchild")
    parent = new_batch(c, complete={"jobtype": "P", "args": [], "queue": cbq})
    child = new_batch(c, complete={"jobtype": "K", "args": [], "queue": cbq})
    assert c.call(f"BATCH CHILD {parent} {child}") == "OK"
    assert status(c, child)["parent_bid"] == parent
    assert c.call(f"BATCH CHILD {child} {parent}").startswith("ERR batch")  # no cycles
    assert c.call(f"BATCH COMMIT {parent}") == "OK"
    assert size(c, cbq) == 0  # waits for the child
    assert c.call(f"BATCH COMMIT {child}") == "OK"
    assert c.fetch(cbq)["jobtype"] == "K" and size(c, cbq) == 0
    # (K not yet ACKed: P still waits)


def test_errors(c):
    assert c.call("BATCH OPEN b-nope") == "ERR no such batch b-nope"
    assert c.call("BATCH STATUS b-nope") == "ERR no such batch b-nope"
    assert c.call("BATCH COMMIT b-nope") == "ERR no such batch b-nope"
    assert "callback is required" in c.call('BATCH NEW {"description":"x"}')
    assert "JSON object" in c.call("BATCH NEW [1]")
    assert "bid must be blank" in c.call('BATCH NEW {"bid":"b-1","success":{"jobtype":"x"}}')
    assert "no such batch b-gone" in c.call(
        'BATCH NEW {"parent_bid":"b-gone","success":{"jobtype":"x"}}'
    )
    assert "jobtype" in c.call('BATCH NEW {"success":{"args":[]}}')
    assert "unknown BATCH subcommand" in c.call("BATCH FROB x")
    _, reply = c.push(custom={"bid": "b-missing"})
    assert reply == "ERR no such batch b-missing"
    assert c.call('BATCH NEW {"complete":{"jobtype":"ok","args":[]}}').startswith("b-")


def _drain(port: int, queue: str, stop: threading.Event, errors: list) -> None:
    from helpers import Client

    try:
        w = Client(port=port, wid=uuid.uuid4().hex[:12])
        while not stop.is_set():
            job = w.fetch(queue)
            if job is None:
                continue
            ack(w, job["jid"])
        w.close()
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append(e)


def test_callbacks_fire_exactly_once_with_two_servers():
    a = ServerProcess().start()
    sock = os.path.join(os.path.abspath(a.data_dir), "redis.sock")
    b = ServerProcess(args=["--redis-url", f"unix://{sock}"], web=False).start()
    try:
        ca, cb = a.client(), b.client()
        jq, cbq = q("bx"), q("bxcb")
        bids = []
        for i in range(20):
            producer = ca if i % 2 else cb
            bid = new_batch(
                producer,
                complete={"jobtype": "C", "args": [i], "queue": cbq},
                success={"jobtype": "S", "args": [i], "queue": cbq},
            )
            for _ in range(5):
                producer.push(queue=jq, custom={"bid": bid})
            assert producer.call(f"BATCH COMMIT {bid}") == "OK"
            bids.append(bid)
        stop, errors = threading.Event(), []
        threads = [
            threading.Thread(target=_drain, args=(port, jq, stop, errors))
            for port in (a.port, b.port, a.port, b.port)
        ]
        for t in threads:
            t.start()
        # Every batch's complete, then success, callback appears exactly once.
        seen = []
        while len(seen) < 40:
            job = (ca if len(seen) % 2 else cb).fetch(cbq)
            assert job is not None, f"only {len(seen)} callbacks: {seen}"
            assert job["jobtype"] == "C" or ("C", job["args"][0]) in seen
            seen.append((job["jobtype"], job["args"][0]))
            ack(ca if len(seen) % 3 else cb, job["jid"])
        stop.set()
        for t in threads:
            t.join(10)
        assert not errors
        assert sorted(seen) == sorted((kind, i) for kind in "CS" for i in range(20))
        assert size(ca, cbq) == 0 and size(ca, jq) == 0
        for bid in bids:
            st = status(cb, bid)
            assert (st["total"], st["pending"], st["complete_st"], st["success_st"]) == (
                5,
                0,
                "2",
                "2",
            )
    finally:
        b.discard()
        a.discard()


def test_pyfaktory_batch_api(srv, c):
    from pyfaktory import Client as PyClient
    from pyfaktory import Job, Producer
    from pyfaktory.models import Batch, TargetJob

    jq, cbq = q("bpy"), q("bpycb")
    with PyClient(faktory_url=f"tcp://127.0.0.1:{srv.port}", role="producer") as client:
        producer = Producer(client=client)
        raw = producer.batch_new(
            Batch(
                parent_bid=None,
                description="from pyfaktory",
                success=TargetJob(jobtype="PySuccess", args=[7], queue=cbq),
                complete=None,
            )
        )
        bid = raw.split("\r\n")[1]
        assert bid.startswith("b-")
        for n in range(3):
            producer.push(Job(jobtype="PyJob", args=[n], queue=jq, custom={"bid": bid}))
        assert producer.batch_commit(bid)
    assert status(c, bid)["total"] == 3
    for _ in range(3):
        ack(c, c.fetch(jq)["jid"])
    cb = c.fetch(cbq)
    assert cb["jobtype"] == "PySuccess" and cb["args"] == [7]
    ack(c, cb["jid"])
    assert status(c, bid)["success_st"] == "2"


def test_web_page_lists_batches_escaped(srv, c):
    bid = new_batch(
        c, description="<b>bold</b> & co", complete={"jobtype": "C", "args": [], "queue": q("w")}
    )
    url = f"http://127.0.0.1:{srv.web_port}/batches"
    with urllib.request.urlopen(url, timeout=10) as resp:
        page = resp.read().decode()
    assert "Batches" in page  # the nav link / title of the page
    assert bid in page
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in page and "<b>bold</b>" not in page


def test_expiry_policy(srv, c):
    r = RawRedis(os.path.join(os.path.abspath(srv.data_dir), "redis.sock"))
    jq = q("bttl")
    bid = new_batch(c, complete={"jobtype": "C", "args": [], "queue": q("bttlcb")})
    c.push(queue=jq, custom={"bid": bid})
    key = f"fk:batch:{bid}"
    assert 1700 < ttl(r, key) <= 1800  # uncommitted: 30 minutes
    assert 1700 < ttl(r, key + ":jobs") <= 1800
    assert c.call(f"BATCH COMMIT {bid}") == "OK"
    assert ttl(r, key) > 29 * 86400  # committed, waiting on its job
    r.close()
