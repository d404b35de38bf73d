"""faktory-cli for operators, run as a subprocess against real servers: the
list commands (paged, --json), workers list/quiet/stop, counts in every
mutation's output, queues that do not exist, paused queues in ``info``,
TLS with --cacert, a wrong port (the web UI's, or plain TCP to TLS) ending
in a hint within seconds, every error one line; the server's audit log
names who did what."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid

import pytest
from rawredis import RawRedis
from test_tls import make_ca_and_cert

from helpers import ServerProcess, config_dir


def cli(url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "faktory.cli", "--url", url, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def one_line_error(p: subprocess.CompletedProcess, status: int = 1) -> str:
    assert p.returncode == status, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("faktory-cli"), p.stderr
    assert "Traceback" not in p.stderr
    return lines[0]


def fail(srv, c, queue: str, jobtype: str, n: int) -> list[str]:
    """n jobs pushed, fetched and failed: they land in the retries set."""
    jids = []
    for i in range(n):
        jid, _ = c.push(queue=queue, jobtype=jobtype, retry=5, args=[i])
        assert c.fetch(queue)["jid"] == jid
        assert c.call("FAIL " + json.dumps({"jid": jid, "errtype": "Boom", "message": f"m{i}"}))
        jids.append(jid)
    # The first retry is due 15-45 s later; a slow machine must not see the
    # scheduler move them back to the queue mid-test: due in an hour instead.
    r = RawRedis(os.path.join(os.path.abspath(srv.data_dir), "redis.sock"))
    try:
        later = time.time() + 3600
        for member in r("ZRANGE", "fk:retries", 0, -1):
            r("ZADD", "fk:retries", "XX", repr(later), member)
    finally:
        r.close()
    return jids


def test_list_commands_are_paged_and_json(srv, c):
    jids = fail(srv, c, "cl-r", "ListJob", 23)
    out = cli(srv.url, "retries", "list", "--per-page", "10")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["jid", "type", "queue", "error", "next", "retry"]
    rows = [ln for ln in lines[2:-1]]
    assert len(rows) == 10
    assert all("ListJob" in r and "cl-r" in r and "Boom: m" in r for r in rows)
    assert "(in 1h)" in rows[0] or "(in 60m)" in rows[0], rows[0]
    assert lines[-1] == "retries: 23 job(s), page 1 of 3; next: --page 2"
    last = cli(srv.url, "retries", "list", "--per-page", "10", "--page", "3")
    assert last.stdout.splitlines()[-1] == "retries: 23 job(s), page 3 of 3"
    assert len(last.stdout.splitlines()) == 2 + 3 + 1
    doc = json.loads(cli(srv.url, "retries", "list", "--per-page", "10", "--json").stdout)
    assert doc["total"] == 23 and doc["pages"] == 3 and len(doc["jobs"]) == 10
    listed = set()
    for page in (1, 2, 3):
        d = json.loads(
            cli(
                srv.url, "--json", "retries", "list", "--page", str(page), "--per-page", "10"
            ).stdout
        )
        listed |= {e["job"]["jid"] for e in d["jobs"]}
    assert listed == set(jids)

    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 7200))
    sched = c.push(queue="cl-s", jobtype="Later", at=at)[0]
    out = cli(srv.url, "scheduled", "list", "--json")
    assert sched in {e["job"]["jid"] for e in json.loads(out.stdout)["jobs"]}
    text = cli(srv.url, "scheduled", "list").stdout
    assert "runs at" in text and "(in 2h)" in text

    # Every mutation says how many jobs it touched.
    out = cli(srv.url, "retries", "kill", "--jid", jids[0], "--jid", jids[1])
    assert out.stdout.strip() == "killed 2 job(s) in retries", out.stdout + out.stderr
    dead = cli(srv.url, "dead", "list")
    assert "dead: " in dead.stdout and jids[0] in dead.stdout and "expires" in dead.stdout
    out = cli(srv.url, "retries", "requeue", "--jobtype", "ListJob")
    assert out.stdout.strip() == "requeued 21 job(s) in retries"
    assert json.loads(cli(srv.url, "--json", "dead", "discard", "--jid", jids[0]).stdout) == {
        "action": "discard",
        "target": "dead",
        "done": 1,
    }
    log = srv.log()
    assert re.search(
        r"Operator action by 127\.0\.0\.1:\d+ \(hostname [^,]+, pid \d+\): MUTATE kill retries "
        r'\{"jids":\["' + jids[0],
        log,
    ), log[-2000:]
    assert "MUTATE requeue retries " in log and ": 21 job(s)" in log


def test_queues_counts_missing_and_paused_in_info(srv, c):
    for _ in range(3):
        c.push(queue="cl-q1")
    c.push(queue="cl-q2")
    out = cli(srv.url, "queue", "pause", "cl-q1", "cl-nope")
    assert out.stdout.strip() == "paused 1 queue(s): cl-q1"
    assert one_line_error(out) == "faktory-cli: no such queue: cl-nope"
    info = cli(srv.url, "info").stdout
    assert re.search(r"^cl-q1\s+3\s+paused$", info, re.M), info
    assert re.search(r"^cl-q2\s+1$", info, re.M), info
    assert json.loads(cli(srv.url, "--json", "info").stdout)["faktory"]["paused"].count("cl-q1")
    out = cli(srv.url, "queue", "remove", "cl-q1")
    assert (
        out.returncode == 0 and out.stdout.strip() == "removed 1 queue(s) and their 3 job(s): cl-q1"
    )
    assert "cl-q1" not in json.loads(cli(srv.url, "--json", "info").stdout)["faktory"]["queues"]
    assert "QUEUE PAUSE cl-q1" in srv.log() and "QUEUE REMOVE cl-q1" in srv.log()


def test_workers_list_quiet_stop(srv):
    wid = "w-" + uuid.uuid4().hex[:8]
    w = srv.client(wid=wid, hello={"labels": ["blue"]})
    assert w.call(json.dumps({"wid": wid}).join(["BEAT ", ""])) == "OK"
    out = cli(srv.url, "workers", "list")
    assert out.returncode == 0, out.stderr
    row = next(ln for ln in out.stdout.splitlines() if ln.startswith(wid))
    assert "running" in row and "blue" in row
    assert wid in {r["wid"] for r in json.loads(cli(srv.url, "workers", "list", "--json").stdout)}
    out = cli(srv.url, "workers", "quiet", wid)
    assert out.stdout.strip() == "sent quiet to 1 worker process(es)"
    assert json.loads(w.call("BEAT " + json.dumps({"wid": wid}))) == {"state": "quiet"}
    out = cli(srv.url, "workers", "stop", wid, "w-nobody")
    assert out.stdout.strip() == "sent terminate to 1 worker process(es)"
    assert one_line_error(out) == "faktory-cli: no such worker process: w-nobody"
    assert json.loads(w.call("BEAT " + json.dumps({"wid": wid}))) == {"state": "terminate"}
    one_line_error(cli(srv.url, "workers", "stop"))
    assert f"WORKER terminate {wid}: 1 process(es)" in srv.log()
    w.close()


def test_the_web_port_gives_a_hint_within_seconds(srv):
    started = time.monotonic()
    out = cli(f"tcp://127.0.0.1:{srv.web_port}", "info")
    took = time.monotonic() - started
    line = one_line_error(out)
    assert took < 15, took
    assert "no Faktory greeting" in line and "The web UI port (7420) speaks HTTP" in line


def test_command_line_mistakes_are_one_line(srv):
    one_line_error(cli(srv.url, "retries", "list", "--page", "x"), status=2)
    one_line_error(cli(srv.url, "nonsense"), status=2)
    one_line_error(cli("http://127.0.0.1:1", "info"))
    assert "cannot connect" in one_line_error(cli("tcp://127.0.0.1:1", "info"))


@pytest.fixture(scope="module")
def tls_server():
    cdir = config_dir("")
    ca = make_ca_and_cert(cdir)
    srv = ServerProcess(args=["-c", cdir], web=False).start()
    yield srv, ca
    srv.discard()


def test_tls_with_cacert_and_the_wrong_scheme(tls_server):
    srv, ca = tls_server
    tls_url = f"tcp+tls://localhost:{srv.port}"
    line = one_line_error(cli(tls_url, "info"))
    assert "not trusted" in line and "--cacert" in line
    ok = cli(tls_url, "--cacert", ca, "info")
    assert ok.returncode == 0 and "processed" in ok.stdout, ok.stderr
    started = time.monotonic()
    line = one_line_error(cli(f"tcp://localhost:{srv.port}", "info"))
    assert time.monotonic() - started < 15
    assert "a TLS port needs tcp+tls://" in line
    line = one_line_error(cli(f"tcp://localhost:{srv.port}", "--cacert", ca, "info"))
    assert "use a tcp+tls:// URL" in line


def test_tls_to_a_plain_port(srv):
    line = one_line_error(cli(f"tcp+tls://127.0.0.1:{srv.port}", "info"))
    assert "TLS handshake" in line and "A plain port needs tcp://" in line
