"""Identifiers from clients cannot reach another structure's keys: a batch id
such as ``<bid>:jobs`` is refused by every BATCH subcommand and as
``custom.bid``; tracked jids are checked; and no sequence of BATCH NEW /
CHILD can make a cycle, however deep the chain."""

from __future__ import annotations

import json
import uuid

from test_pro_batch import new_batch, status

from helpers import ReplyError


def _is_error(reply, *words: str) -> bool:
    return isinstance(reply, ReplyError) and all(w in reply for w in words)


def test_batch_ids_naming_other_keys_are_refused(c):
    queue = f"bid-{uuid.uuid4().hex[:8]}"
    bid = new_batch(c, success={"jobtype": "Done", "queue": queue})
    jid = uuid.uuid4().hex
    member = {"jid": jid, "jobtype": "M", "queue": queue, "args": [], "custom": {"bid": bid}}
    assert c.call("PUSH " + json.dumps(member)) == "OK"
    before = status(c, bid)
    assert before["total"] == 1 and before["pending"] == 1
    for other in (f"{bid}:jobs", f"{bid}:kids", "x y", "a*", "", "b-" + "x" * 100):
        for verb in ("OPEN", "COMMIT", "STATUS"):
            reply = c.call(f"BATCH {verb} {other}")
            assert _is_error(reply), (verb, other, reply)
            assert "internal error" not in reply
        if other:
            word = "invalid batch id" if " " not in other else "BATCH CHILD takes"
            assert _is_error(c.call(f"BATCH CHILD {bid} {other}"), word)
            assert _is_error(c.call(f"BATCH CHILD {other} {bid}"), word)
            spec = {"parent_bid": other, "success": {"jobtype": "x"}}
            assert _is_error(c.call("BATCH NEW " + json.dumps(spec)), "invalid parent_bid")
            job = dict(member, jid=uuid.uuid4().hex, custom={"bid": other})
            assert _is_error(c.call("PUSH " + json.dumps(job)), "invalid custom.bid")
    for verb in ("OPEN", "COMMIT"):
        assert _is_error(c.call(f"BATCH {verb} {bid}:jobs"), "invalid batch id")
    # Nothing of the real batch changed; it still works end to end.
    assert status(c, bid) == before
    assert c.call(f"BATCH COMMIT {bid}") == "OK"
    assert c.fetch(queue)["jid"] == jid
    assert c.call(json.dumps({"jid": jid}).join(("ACK ", ""))) == "OK"
    assert c.fetch(queue)["jobtype"] == "Done"


def test_tracked_jids_are_checked(c):
    for bad in ("short", "x" * 300, "with\ttab-in-it"):
        reply = c.call("TRACK SET " + json.dumps({"jid": bad, "percent": 5}))
        assert _is_error(reply, "invalid jid"), (bad, reply)
    assert _is_error(c.call("TRACK GET short"), "invalid jid")


def test_no_cycle_at_any_depth(c):
    """Old servers walked 64 parents and then adopted anyway."""
    chain = [new_batch(c, success={"jobtype": "x"})]
    refused = None
    for _ in range(80):
        spec = {"parent_bid": chain[-1], "success": {"jobtype": "x"}}
        reply = c.call("BATCH NEW " + json.dumps(spec))
        if isinstance(reply, ReplyError):
            refused = reply
            break
        chain.append(reply)
    assert refused is not None and "no deeper" in refused, refused
    assert len(chain) == 64
    # The deepest batch cannot adopt the root: a cycle, found at full depth.
    assert _is_error(c.call(f"BATCH CHILD {chain[-1]} {chain[0]}"), "no cycles")
    # Two chains joined by CHILD: the walk never stops early and trusts.
    a = [new_batch(c, success={"jobtype": "x"})]
    b = [new_batch(c, success={"jobtype": "x"})]
    for line in (a, b):
        for _ in range(39):
            line.append(new_batch(c, parent_bid=line[-1], success={"jobtype": "x"}))
    assert c.call(f"BATCH CHILD {a[-1]} {b[0]}") == "OK"  # b hangs 40 deep under a
    reply = c.call(f"BATCH CHILD {b[-1]} {a[0]}")
    assert isinstance(reply, ReplyError), reply
    # Walking up from the deepest batch ends at a root: no loop was made.
    up, seen = b[-1], set()
    while up:
        assert up not in seen
        seen.add(up)
        up = status(c, up).get("parent_bid")
    assert a[0] in seen and len(seen) == 80


def test_a_member_refused_by_a_later_step_is_not_counted(tmp_path):
    """A plugin's PUSH middleware (after the batch's) refuses the job: the
    batch must not wait for it."""
    import os

    from test_cron_edges import FLAKY

    from helpers import ServerProcess, config_dir

    extra = tmp_path / "extra"
    (extra / "faktory_plugins").mkdir(parents=True)
    (extra / "faktory_plugins" / "flaky.py").write_text(FLAKY)
    old = os.environ.get("PYTHONPATH")
    env = {"PYTHONPATH": str(extra) + (os.pathsep + old if old else "")}
    d = config_dir('[plugins]\nenabled = ["flaky"]\n')
    srv = ServerProcess(args=["--config-dir", d], web=False, env=env).start()
    try:
        c = srv.client()
        bid = new_batch(c, success={"jobtype": "AllDone", "queue": "bu-cb"})
        ok = {"jid": uuid.uuid4().hex, "jobtype": "Fine", "queue": "bu", "args": []}
        ok["custom"] = {"bid": bid}
        bad = dict(ok, jid=uuid.uuid4().hex, jobtype="Flaky")
        assert c.call("PUSH " + json.dumps(ok)) == "OK"
        assert isinstance(c.call("PUSH " + json.dumps(bad)), ReplyError)
        reply = c.call("PUSHB " + json.dumps([dict(bad, jid=uuid.uuid4().hex)]))
        assert isinstance(reply, ReplyError), reply  # a middleware bug fails the PUSHB
        # A second PUSH of a member's jid that is refused leaves the member counted.
        assert isinstance(c.call("PUSH " + json.dumps(dict(ok, jobtype="Flaky"))), ReplyError)
        assert status(c, bid)["total"] == 1 and status(c, bid)["pending"] == 1
        assert c.call(f"BATCH COMMIT {bid}") == "OK"
        job = c.fetch("bu")
        assert job["jid"] == ok["jid"]
        assert c.call(json.dumps({"jid": job["jid"]}).join(("ACK ", ""))) == "OK"
        assert c.fetch("bu-cb")["jobtype"] == "AllDone"
    finally:
        srv.discard()
