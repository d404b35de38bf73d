"""Files on disk stay the server user's alone, with real processes: at every
start the data dir, Redis's RDB/AOF (and Redis 7's ``appendonlydir/``), the
config written for Redis and the backups are set to 0700/0600 even if they
were left open, what Redis writes later is born private, and backups
(hourly and ``faktory-cli backup``) are created 0600 whatever the umask."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest
import pytest_twisted
from rawredis import RawRedis
from twisted.internet import reactor

from faktory import backup
from faktory.server import FaktoryServer, Settings
from helpers import ServerProcess, run_cli, short_tmpdir

DEBIAN_REDIS = "/usr/bin/redis-server"  # Redis 7: AOF in appendonlydir/


def mode(path: str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def everything(data_dir: str) -> dict[str, int]:
    """Mode of the data dir and every file/dir in it, one level down (what
    the server owns), sockets aside."""
    out = {data_dir: mode(data_dir)}
    for name in os.listdir(data_dir):
        path = os.path.join(data_dir, name)
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            continue
        out[path] = mode(path)
        if os.path.isdir(path):
            for inner in os.listdir(path):
                out[os.path.join(path, inner)] = mode(os.path.join(path, inner))
    return out


def loosen(data_dir: str) -> None:
    """What a careless copy or an old version leaves: readable by all."""
    for path in everything(data_dir):
        os.chmod(path, 0o755 if os.path.isdir(path) else 0o644)


def assert_private(data_dir: str) -> None:
    modes = everything(data_dir)
    loose = {p: oct(m) for p, m in modes.items() if m & 0o077}
    assert not loose, loose
    assert modes[data_dir] == 0o700


def path_with(binary: str, d: str) -> str:
    os.symlink(binary, os.path.join(d, "redis-server"))
    return d + os.pathsep + os.environ["PATH"]


@pytest.mark.parametrize("redis_server", ["path", "debian"])
def test_data_dir_is_private_at_every_start(redis_server):
    if redis_server == "debian" and not os.path.exists(DEBIAN_REDIS):
        pytest.fail("Debian's redis-server is part of the test setup (scripts/test)")
    bindir = short_tmpdir("fkbin")
    env = {"PATH": path_with(DEBIAN_REDIS, bindir)} if redis_server == "debian" else {}
    old = os.umask(0o022)  # the usual umask: the server must not rely on a strict one
    srv = ServerProcess(env=env, web=False)
    try:
        srv.start()
        c = srv.client()
        jid, _ = c.push(queue="private", args=["secret business data"])
        c.close()
        redis = RawRedis(os.path.join(srv.data_dir, "redis.sock"))
        assert redis("SAVE") in ("OK", b"OK")  # Redis writes a new RDB now
        redis.close()
        os.makedirs(os.path.join(srv.data_dir, "backups"), exist_ok=True)
        with open(
            os.path.join(srv.data_dir, "backups", "faktory-20200101T000000.000000000Z.rdb"), "wb"
        ) as f:
            f.write(b"old backup")
        os.chmod(os.path.join(srv.data_dir, "backups"), 0o755)
        os.chmod(f.name, 0o644)
        if redis_server == "debian":
            assert os.path.isdir(os.path.join(srv.data_dir, "appendonlydir"))
        # What Redis itself wrote while running is private already ...
        assert mode(os.path.join(srv.data_dir, "faktory.rdb")) == 0o600
        assert mode(os.path.join(srv.data_dir, "redis.conf")) == 0o600
        srv.stop()
        # ... and whatever was opened up meanwhile is closed again at the next start.
        loosen(srv.data_dir)
        assert mode(srv.data_dir) == 0o755
        srv.start()
        assert_private(srv.data_dir)
        c = srv.client()
        assert c.fetch("private")["jid"] == jid  # the data survived the chmods
        c.close()
    finally:
        os.umask(old)
        srv.discard()
        shutil.rmtree(bindir, ignore_errors=True)


def test_cli_backup_output_is_private(tmp_path):
    old = os.umask(0o022)
    srv = ServerProcess(web=False).start()
    try:
        c = srv.client()
        c.push(queue="private-backup", args=["x"])
        c.close()
        srv.stop()
        out = str(tmp_path / "b.jsonl.gz")
        made = run_cli("backup", "--data-dir", srv.data_dir, "--output", out)
        assert made.returncode == 0, made.stderr
        assert mode(out) == 0o600
        assert_private(srv.data_dir)  # the CLI's own Redis wrote private files too
    finally:
        os.umask(old)
        srv.discard()


@pytest_twisted.ensureDeferred
async def test_hourly_snapshot_is_private():
    data_dir = short_tmpdir()
    old = os.umask(0o022)
    server = FaktoryServer(
        Settings(bind="tcp:0:interface=127.0.0.1", web=None, data_dir=data_dir,
                 environment="production", password="secret"),
        reactor,
    )  # fmt: skip
    server.startService()
    try:
        await server.ready
        await server.manager.push_raw(
            json.dumps({"jid": "hourly-private", "jobtype": "T", "args": []})
        )
        path = await backup.snapshot(server.redis, data_dir, reactor)
        assert mode(path) == 0o600 and mode(os.path.dirname(path)) == 0o700
    finally:
        os.umask(old)
        await server.stopService()
        shutil.rmtree(data_dir, ignore_errors=True)
