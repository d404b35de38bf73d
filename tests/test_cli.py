"""faktory-cli against a real server, run as a user would (a subprocess)."""

import json
import subprocess
import sys


def cli(srv, *args, env=None):
    cmd = [sys.executable, "-m", "faktory.cli", "--url", srv.url, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)


def test_info_table_and_json(srv, c):
    c.push(queue="cli-q")
    out = cli(srv, "info")
    assert out.returncode == 0, out.stderr
    assert "processed" in out.stdout and "cli-q" in out.stdout
    data = json.loads(cli(srv, "--json", "info").stdout)
    assert data["faktory"]["queues"]["cli-q"] >= 1


def test_queue_pause_resume_latency(srv, c):
    c.push(queue="cli-p")
    assert cli(srv, "queue", "pause", "cli-p").returncode == 0
    assert c.fetch("cli-p") is None
    assert cli(srv, "queue", "resume", "cli-p").returncode == 0
    lat = json.loads(cli(srv, "--json", "queue", "latency", "cli-p").stdout)
    assert set(lat) == {"cli-p"}
    assert c.fetch("cli-p") is not None


def test_mutate_retries_and_errors(srv, c):
    jid, _ = c.push(queue="cli-m", jobtype="CliJob", retry=3)
    c.fetch("cli-m")
    c.call("FAIL " + json.dumps({"jid": jid, "message": "x"}))
    out = cli(srv, "retries", "kill", "--jid", jid)
    assert out.returncode == 0, out.stderr
    assert c.info()["faktory"]["sets"]["dead"] >= 1
    out = cli(srv, "dead", "requeue", "--jobtype", "CliJob")
    assert out.returncode == 0
    assert c.fetch("cli-m")["jid"] == jid
    bad = subprocess.run(
        [sys.executable, "-m", "faktory.cli", "--url", "tcp://127.0.0.1:1", "info"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 1 and "cannot connect" in bad.stderr


def test_password(tmp_path):
    from helpers import ServerProcess

    srv = ServerProcess(env={"FAKTORY_PASSWORD": "pw1"}, web=False).start()
    try:
        url = f"tcp://:pw1@127.0.0.1:{srv.port}"
        ok = subprocess.run(
            [sys.executable, "-m", "faktory.cli", "--url", url, "info"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ok.returncode == 0, ok.stderr
        bad = subprocess.run(
            [sys.executable, "-m", "faktory.cli", "--url", url.replace("pw1", "x"), "info"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert bad.returncode == 1 and "Invalid password" in bad.stderr
    finally:
        srv.stop()
