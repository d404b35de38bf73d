"""Backups: ``faktory-cli backup``/``restore`` on a stopped server's data dir
bring back every job (queues of several priorities, scheduled, retries, dead,
reservations, counters); a production server's hourly task writes RDB
snapshots into ``<data dir>/backups`` and keeps the newest 24, and such a
snapshot restores too."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import time

import pytest
import pytest_twisted
from rawredis import RawRedis
from twisted.internet import defer, reactor

from faktory import backup
from faktory.server import FaktoryServer, Settings
from helpers import ServerProcess, run_cli, short_tmpdir

cli = run_cli


def contents(data_dir: str) -> dict[str, object]:
    """Every persistent key of a stopped server's data dir and its full value."""
    with backup.TemporaryRedis(data_dir):
        return _contents(data_dir)


def _contents(data_dir: str) -> dict[str, object]:
    r = RawRedis(os.path.join(data_dir, "redis.sock"))
    try:
        out: dict[str, object] = {}
        for key in r("KEYS", "fk:*"):
            if r("PTTL", key) >= 0:
                continue  # short-lived markers (a FETCH waiting, rate windows)
            kind = r("TYPE", key)
            if kind == "list":
                value: object = r("LRANGE", key, 0, -1)
            elif kind == "zset":
                value = r("ZRANGE", key, 0, -1, "WITHSCORES")
            elif kind == "set":
                value = sorted(r("SMEMBERS", key))
            elif kind == "hash":
                flat = r("HGETALL", key)
                value = dict(zip(flat[::2], flat[1::2]))
            else:
                value = r("GET", key)
            out[key.decode()] = value
        return out
    finally:
        r.close()


def fill(srv: ServerProcess) -> dict[str, list[str]]:
    """Jobs in every state the server keeps; returns jids by state."""
    c = srv.client()
    jids: dict[str, list[str]] = {"queued": [], "scheduled": [], "retries": [], "dead": []}
    for n in range(30):
        jids["queued"].append(c.push(queue=f"bq{n % 3}", priority=1 + n % 9, args=[n])[0])
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    for _ in range(5):
        jids["scheduled"].append(c.push(queue="bq0", at=later)[0])
    for retry, state in ((25, "retries"), (-1, "dead")):
        for _ in range(3):
            jid, _ = c.push(queue="bfail", retry=retry)
            assert c.fetch("bfail")["jid"] == jid
            fail = {"jid": jid, "errtype": "E", "message": "boom", "backtrace": ["x"]}
            assert c.call("FAIL " + json.dumps(fail)) == "OK"
            jids[state].append(jid)
    jid, _ = c.push(queue="bdone")
    assert c.fetch("bdone")["jid"] == jid
    assert c.call(json.dumps({"jid": jid}).join(("ACK ", ""))) == "OK"
    jids["working"] = [c.push(queue="bwork")[0]]
    assert c.fetch("bwork")["jid"] == jids["working"][0]
    c.close()
    return jids


@pytest.fixture
def filled():
    srv = ServerProcess(web=False).start()
    jids = fill(srv)
    srv.stop()
    before = contents(srv.data_dir)
    srv.start()
    yield srv, jids, before
    srv.discard()


def test_cli_backup_wipe_restore_brings_every_job_back(filled, tmp_path):
    srv, jids, before = filled
    out = str(tmp_path / "b.jsonl.gz")
    refused = cli("backup", "--data-dir", srv.data_dir, "--output", out)
    assert refused.returncode == 1 and f"in use by pid {srv.proc.pid}" in refused.stderr
    assert not os.path.exists(out)

    srv.stop()
    made = cli("backup", "--data-dir", srv.data_dir, "--output", out)
    assert made.returncode == 0, made.stderr
    assert "backup complete" in made.stderr  # progress goes to stderr
    shutil.rmtree(srv.data_dir)
    restored = cli("restore", out, "--data-dir", srv.data_dir)
    assert restored.returncode == 0, restored.stderr
    assert "restore complete" in restored.stderr
    assert contents(srv.data_dir) == before

    srv.start()
    c = srv.client()
    info = c.info()["faktory"]
    assert info["sets"] == {"scheduled": 5, "retries": 3, "dead": 3, "working": 1}
    assert info["total_processed"] == 1 + 6 and info["total_failures"] == 6
    # Through the wire: the jobs come out, highest priority first, and the
    # reservation taken before the backup can still be ACKed.
    got = [c.fetch("bq0", "bq1", "bq2") for _ in range(30)]
    assert sorted(j["jid"] for j in got) == sorted(jids["queued"])
    assert [j["priority"] for j in got if j["queue"] == "bq0"] == sorted(
        (j["priority"] for j in got if j["queue"] == "bq0"), reverse=True
    )
    assert c.call('ACK {"jid":"' + jids["working"][0] + '"}') == "OK"
    assert c.info()["faktory"]["sets"]["working"] == 30  # the 30 just fetched


def test_restore_refuses_a_data_dir_with_jobs_and_a_damaged_file(filled, tmp_path):
    srv, _, before = filled
    srv.stop()
    out = str(tmp_path / "b.jsonl.gz")
    assert cli("backup", "--data-dir", srv.data_dir, "-o", out).returncode == 0
    again = cli("restore", out, "--data-dir", srv.data_dir)
    assert again.returncode == 1 and "--replace" in again.stderr
    # A file cut short (disk full, copy interrupted) is refused, not half-loaded.
    with gzip.open(out, "rt") as f:
        lines = f.readlines()
    cut = str(tmp_path / "cut.jsonl.gz")
    with gzip.open(cut, "wt") as f:
        f.writelines(lines[:-3])
    empty = short_tmpdir()
    bad = cli("restore", cut, "--data-dir", empty)
    assert bad.returncode == 1 and "truncated" in bad.stderr
    shutil.rmtree(empty, ignore_errors=True)
    # --replace puts the backup in place of what is there.
    assert cli("restore", out, "--data-dir", srv.data_dir, "--replace").returncode == 0
    assert contents(srv.data_dir) == before


@pytest_twisted.ensureDeferred
async def test_hourly_task_on_a_production_server_keeps_the_newest_24(tmp_path):
    data_dir = short_tmpdir()
    server = FaktoryServer(
        Settings(
            bind="tcp:0:interface=127.0.0.1",
            web=None,
            data_dir=data_dir,
            environment="production",
            password="secret",
        ),
        reactor,
    )
    server.startService()
    try:
        await server.ready
        (name, period, run) = next(t for t in server.tasks if t[0] == "backup")
        assert period == 3600
        for n in range(3):
            await server.manager.push_raw(
                json.dumps({"jid": f"hourly-job-{n:04d}", "jobtype": "T", "args": []})
            )
        folder = os.path.join(data_dir, "backups")
        os.makedirs(folder)
        for n in range(25):  # backups of earlier days, to be pruned
            open(os.path.join(folder, f"faktory-20200101T{n:02d}0000.000000000Z.rdb"), "wb").close()
        open(os.path.join(folder, "notes.txt"), "w").close()  # not ours: left alone
        path = await defer.ensureDeferred(run())
        kept = backup.snapshots(folder)
        assert len(kept) == 24 and kept[-1] == path
        assert os.path.exists(os.path.join(folder, "notes.txt"))
        with open(path, "rb") as f:
            assert f.read(5) == b"REDIS"
    finally:
        await server.stopService()
    # The snapshot restores into an empty data dir with every job.
    target = short_tmpdir()
    done = await defer.ensureDeferred(_in_thread(cli, "restore", path, "--data-dir", target))
    assert done.returncode == 0, done.stderr
    srv = ServerProcess(data_dir=target, web=False).start()
    try:
        assert srv.client().info()["faktory"]["queues"]["default"] == 3
    finally:
        srv.stop()
        shutil.rmtree(target, ignore_errors=True)
        shutil.rmtree(data_dir, ignore_errors=True)


async def _in_thread(fn, *args):
    from twisted.internet import threads

    return await threads.deferToThread(fn, *args)
