"""Redis's disk full, through the wire against real servers whose data
directory is a small tmpfs (mounted here, unmounted at the end) that nearly,
then really, fills up: PUSH is refused before the disk is full so workers
can drain; once it is full every write gets a clear ``-ERR``; the episode is
logged once and shown on the dashboard; work resumes by itself once there is
space, and nothing acknowledged is lost (checked across a restart)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from test_redis_stress import DISK, DISK_ANY, _drain, _raw, _until

from helpers import ReplyError, ServerProcess, short_tmpdir


def _fill(path: str) -> None:
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


@contextlib.contextmanager
def _small_disk(web: bool = True) -> Iterator[tuple[ServerProcess, str]]:
    """A server (not started) whose data dir is an 8 MB tmpfs, and the path of
    a ballast file there; unmounted and removed at the end."""
    mount = short_tmpdir("fkd")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", mount], check=True)
    logs = short_tmpdir("fkl")
    srv = ServerProcess(data_dir=mount, web=web)
    srv.log_path = os.path.join(logs, "server.log")  # the log must not fill up too
    try:
        yield srv, os.path.join(mount, "ballast")
    finally:
        srv.stop()
        subprocess.run(["umount", "-l", mount], check=False)
        shutil.rmtree(mount, ignore_errors=True)
        shutil.rmtree(logs, ignore_errors=True)


def test_full_disk_is_reported_clearly_and_work_resumes_without_losing_jobs():
    with _small_disk() as (srv, ballast):
        srv.start()
        c = srv.client()
        acked = [c.push(queue="disk", args=["y" * 1000])[0] for _ in range(20)]
        # one job in retries, for the web UI's "delete all" to act on
        worker = srv.client(wid="disk-worker")
        retry, _ = c.push(queue="disk-retry", retry=5)
        assert worker.fetch("disk-retry")["jid"] == retry
        assert worker.call("FAIL " + json.dumps({"jid": retry, "message": "m"})) == "OK"
        redis = _raw(srv)
        _fill(ballast)
        # A snapshot fails too (Redis would retry it only when a save point is due).
        redis("BGSAVE")
        _until(
            lambda: b"rdb_last_bgsave_status:err" in redis("INFO", "persistence"),
            20,
            "the snapshot to fail",
        )
        refusal = None
        for _ in range(200):
            jid, reply = c.push(queue="disk", args=["y" * 1000])
            if reply != "OK":
                refusal = reply
                break
            acked.append(jid)  # +OK: Redis holds it and writes it once it can
            time.sleep(0.02)
        assert refusal is not None and refusal.startswith(DISK_ANY), refusal
        fetched = c.call("FETCH disk")
        assert isinstance(fetched, ReplyError) and fetched.startswith(DISK), fetched
        for _ in range(10):
            assert c.push(queue="disk")[1].startswith(DISK_ANY)
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.web_port}/", timeout=10) as r:
            assert "Redis cannot write to disk" in r.read().decode()
        post = urllib.request.Request(
            f"http://127.0.0.1:{srv.web_port}/retries",
            data=b"action=delete&key=all",
            headers={"Sec-Fetch-Site": "same-origin"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(post, timeout=10)
        assert refused.value.code == 503
        assert refused.value.read().decode().startswith("Redis cannot write to disk")
        assert c.info()["faktory"]["sets"]["retries"] == 1  # nothing half done
        os.unlink(ballast)  # space is back: nothing to do but wait
        jid, _ = _until(
            lambda: (lambda r: r[1] == "OK" and r)(c.push(queue="disk")), 30, "writes to resume"
        )
        acked.append(jid)
        assert b"rdb_last_bgsave_status:ok" in redis("INFO", "persistence")
        log = srv.log()
        assert log.count("Redis cannot write to disk") == 1, log
        assert "internal error" not in log and "Traceback" not in log, log
        _until(lambda: "Redis can write to disk again" in srv.log(), 10, "the end of the episode")
        c.close()
        # Everything acknowledged is on disk: it survives a restart.
        assert srv.stop() in (0, -15)  # twist re-raises SIGTERM after a clean stop
        srv.start()
        c = srv.client()
        assert sorted(_drain(c, "disk")) == sorted(acked)
        c.close()


def test_nearly_full_disk_refuses_push_but_workers_still_drain():
    """The last tenth of the data dir's disk (at most 64 MiB) is kept for the
    stored work: PUSH is refused before the disk is full, ACKs still land."""
    with _small_disk(web=False) as (srv, ballast):
        srv.start()
        c = srv.client()
        acked = [c.push(queue="low", args=["z" * 500])[0] for _ in range(30)]
        st = os.statvfs(srv.data_dir)
        with open(ballast, "wb") as f:  # leave about 300 KB of the 8 MB free
            f.write(b"\0" * (st.f_bavail * st.f_frsize - 300 * 1024))
        refusal = _until(
            lambda: (lambda r: r[1] != "OK" and r[1])(c.push(queue="low-probe")),
            20,
            "PUSH to be refused",
        )
        assert refusal.startswith("ERR Redis's disk is nearly full"), refusal
        assert "FETCH, ACK and FAIL still work" in refusal
        assert sorted(_drain(c, "low")) == sorted(acked)  # the reserve took the ACKs
        os.unlink(ballast)
        _until(lambda: c.push(queue="low")[1] == "OK", 20, "PUSH to be accepted again")
        log = srv.log()
        assert log.count("Redis's disk is nearly full") == 1, log
        assert "Redis's disk has space again" in log
        assert "cannot write to disk" not in log and "Traceback" not in log, log
        c.close()
