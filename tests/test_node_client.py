"""The real Node client (npm ``faktory-worker``) against a real srv."""

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
import uuid

import pytest

NODE_DIR = os.path.join(os.path.dirname(__file__), "node")
pytestmark = pytest.mark.skipif(
    # CI installs them: there a missing client fails the tests instead of skipping them
    (shutil.which("node") is None or not os.path.isdir(os.path.join(NODE_DIR, "node_modules")))
    and not os.environ.get("CI"),
    reason="node or tests/node/node_modules missing (scripts/test runs npm install)",
)


def node(*args, **kw):
    return subprocess.Popen(
        ["node", os.path.join(NODE_DIR, "scenario.js"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def events(proc, timeout=60):
    out, err = proc.communicate(timeout=timeout)
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    return {e["event"]: e for e in lines}, err


def test_node_worker_push_process_pause_mutate_info(srv):
    got, err = events(node("basic", srv.url))
    assert "error" not in got, got.get("error", {}).get("message") or err
    assert got["processed"]["args"] == [1, "two"]
    assert got["while_paused"]["processed"] == 1  # the paused queue was not fetched from
    assert got["resumed"]["processed"] == 2
    assert got["mutated"] == {"event": "mutated", "retries": 0, "dead": 1}
    assert got["info"]["processed"] >= 3 and got["info"]["failures"] >= 1
    assert got["info"]["version"] == "1.10.0"


def _signal(srv, wid, signal):
    data = urllib.parse.urlencode({"wid": wid, "signal": signal}).encode()
    url = f"http://127.0.0.1:{srv.web_port}/busy"
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as r:
        assert r.status == 200


def test_node_worker_obeys_quiet_and_terminate(srv):
    wid = "node-" + uuid.uuid4().hex[:8]
    proc = node("controlled", srv.url, wid)
    c = srv.client()
    try:
        line = proc.stdout.readline()
        assert json.loads(line)["event"] == "started", line + proc.stderr.read()
        c.push(queue="node-ctl", jobtype="CtlJob", args=[1])
        assert json.loads(proc.stdout.readline()) == {"event": "ran", "n": 1}
        _signal(srv, wid, "quiet")  # the operator presses Quiet in the web UI
        time.sleep(2.5)  # a few heartbeats carry {"state":"quiet"}
        c.push(queue="node-ctl", jobtype="CtlJob", args=[2])
        time.sleep(3)
        assert c.info()["faktory"]["queues"]["node-ctl"] == 1  # quiet: job 2 not fetched
        _signal(srv, wid, "terminate")
        proc.wait(timeout=20)  # terminate: the Node worker shuts down by itself
        assert proc.returncode is not None
    finally:
        if proc.poll() is None:
            proc.kill()
        c.close()
