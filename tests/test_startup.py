"""Start safely or not at all: one server per data dir (a lock taken before
anything else), the ports bound before Redis starts, every failed start a
non-zero exit within seconds with one line that says why, and one summary
line when the server is up."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
from rawredis import RawRedis

from helpers import ROOT, TWIST, ServerProcess, config_dir, free_port, short_tmpdir

ENV = dict(os.environ, PYTHONPATH=ROOT)
ENV.pop("FAKTORY_PASSWORD", None)
ENV.pop("FAKTORY_ENV", None)


def run_server(*args: str, timeout: float = 20) -> tuple[int, str, float]:
    """Run ``twistd -n faktory`` to its end: (exit status, output, seconds)."""
    started = time.monotonic()
    proc = subprocess.run(
        [*TWIST, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        cwd="/tmp",
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


def redis_pid(data_dir: str) -> int:
    """The pid of the Redis answering on the data dir's socket."""
    r = RawRedis(os.path.join(data_dir, "redis.sock"), timeout=5)
    try:
        return r.pid()
    finally:
        r.close()


def test_a_second_server_on_the_same_data_dir_is_refused():
    a = ServerProcess(web=False).start()
    try:
        c = a.client()
        assert c.push(queue="mine")[1] == "OK"
        redis_before = redis_pid(a.data_dir)
        b_port = free_port()
        rc, out, took = run_server(
            "-d", a.data_dir, "--bind", f"tcp:{b_port}:interface=127.0.0.1", "--web", "none"
        )
        assert rc == 1, out
        assert took < 10, f"took {took:.1f} s to give up"
        assert f"in use by pid {a.proc.pid}" in out, out
        assert "Traceback" not in out
        # It never started a Redis of its own, nor took over the socket.
        assert "redis: " not in out and "Redis is ready" not in out
        assert redis_pid(a.data_dir) == redis_before
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", b_port), timeout=1).close()
        # The first one serves on, its job intact.
        assert c.info()["faktory"]["queues"]["mine"] == 1
        assert a.client().fetch("mine")["queue"] == "mine"
        # faktory-cli backup/restore take the same lock.
        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "faktory.cli",
                "backup",
                "--data-dir",
                a.data_dir,
                "-o",
                "/dev/null",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            env=ENV,
        )
        assert cli.returncode == 1
        assert f"in use by pid {a.proc.pid}" in cli.stderr, cli.stderr
        assert len(cli.stderr.strip().splitlines()) == 1, cli.stderr
    finally:
        a.discard()


def test_ports_are_bound_before_redis_starts():
    """A port already taken stops the start before any Redis runs on the data dir."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        d = short_tmpdir()
        try:
            rc, out, took = run_server(
                "-d",
                d,
                "--bind",
                f"tcp:{busy.getsockname()[1]}:interface=127.0.0.1",
                "--web",
                "none",
            )
            assert rc == 1 and took < 10, out
            assert f"cannot listen on 127.0.0.1:{busy.getsockname()[1]}" in out, out
            assert "Traceback" not in out
            assert "redis: " not in out  # no Redis output: it never ran
            assert not os.path.exists(os.path.join(d, "redis.sock"))
            # The lock is free again for the next try.
            assert open(os.path.join(d, "faktory.lock")).read() == ""
        finally:
            shutil.rmtree(d, ignore_errors=True)


def test_an_unwritable_data_dir_exits_non_zero_within_seconds():
    if shutil.which("chattr") is None:
        pytest.fail("chattr is needed to make a directory read-only even for root")
    d = short_tmpdir()
    subprocess.run(["chattr", "+i", d], check=True)
    try:
        rc, out, took = run_server("-d", d, "--web", "none", "--bind", f"tcp:{free_port()}")
    finally:
        subprocess.run(["chattr", "-i", d], check=True)
        shutil.rmtree(d, ignore_errors=True)
    assert rc == 1 and took < 10, out
    assert f"data dir {d} is not writable: Operation not permitted" in out, out
    assert "Traceback" not in out


def test_a_data_dir_that_cannot_be_created_exits_non_zero():
    parent = short_tmpdir()
    blocker = os.path.join(parent, "file")
    open(blocker, "w").close()
    try:
        rc, out, took = run_server(
            "-d", os.path.join(blocker, "db"), "--web", "none", "--bind", f"tcp:{free_port()}"
        )
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    assert rc == 1 and took < 10, out
    assert f"cannot create data dir {blocker}/db: Not a directory" in out, out
    assert "Traceback" not in out


def test_a_redis_that_does_not_start_ends_the_server_at_once(tmp_path):
    fake = tmp_path / "redis-server"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = --version ]; then echo "Redis server v=6.2.14 sha=0"; exit 0; fi\n'
        'echo "FATAL CONFIG FILE ERROR: something is off"\nexit 1\n'
    )
    fake.chmod(0o755)
    d = short_tmpdir()
    try:
        rc, out, took = run_server(
            "-d", d, "--redis-server", str(fake), "--web", "none", "--bind", f"tcp:{free_port()}"
        )
    finally:
        shutil.rmtree(d, ignore_errors=True)
    assert rc == 1 and took < 10, out
    assert "failed to start" in out and "FATAL CONFIG FILE ERROR: something is off" in out, out
    assert "Traceback" not in out


def test_not_a_redis_server_is_refused(tmp_path):
    d = short_tmpdir()
    try:
        rc, out, _ = run_server("-d", d, "--redis-server", "/bin/true", "--web", "none")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    assert rc == 1 and "/bin/true is not a redis-server" in out, out


def test_one_summary_line_at_start():
    conf = config_dir('[faktory]\npassword = "s3cret-pw"\n')
    with open(os.path.join(conf, "conf.d", "web.toml"), "w") as f:
        f.write("[web]\n")
    srv = ServerProcess(args=["-c", conf, "-e", "production"])
    srv.env = dict(ENV)
    srv.start()
    try:
        lines = [ln for ln in srv.log().splitlines() if "Faktory server ready" in ln]
        assert len(lines) == 1
        line = lines[0]
        from faktory import FAKTORY_COMPAT_VERSION, __version__

        for part in (
            f"version faktory-server {__version__} (Faktory protocol {FAKTORY_COMPAT_VERSION})",
            "environment production",
            f"config {conf}/conf.d/faktory.toml, {conf}/conf.d/web.toml",
            "password [faktory] password in conf.d",
            f"data dir {os.path.abspath(srv.data_dir)}",
            f"work tcp:{srv.port}:interface=127.0.0.1",
            f"web tcp:{srv.web_port}:interface=127.0.0.1",
            "tls off",
            "backups hourly",
        ):
            assert part in line, (part, line)
        import re

        assert re.search(r"redis /\S+redis-server \(Redis \d+\.\d+\.\d+\)", line), line
        assert "s3cret-pw" not in srv.log()
    finally:
        srv.discard()
        shutil.rmtree(conf, ignore_errors=True)


def test_version_option():
    proc = subprocess.run(
        [sys.executable, "-m", "twisted", "faktory", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        env=ENV,
    )
    from faktory import FAKTORY_COMPAT_VERSION, __version__

    assert proc.returncode == 0
    assert proc.stdout.strip() == (
        f"faktory-server {__version__} (Faktory protocol {FAKTORY_COMPAT_VERSION})"
    )


def _two_files(second: bytes) -> str:
    conf = short_tmpdir("fkc")
    os.makedirs(os.path.join(conf, "conf.d"))
    with open(os.path.join(conf, "conf.d", "10-first.toml"), "w") as f:
        f.write('[faktory]\nnamespace = "fk:"\n\n# three more lines\n\n\n')
    with open(os.path.join(conf, "conf.d", "20-second.toml"), "wb") as f:
        f.write(second)
    return conf


def test_a_bad_toml_in_the_second_file_names_that_file_and_its_line():
    conf = _two_files(b'[web]\npassword = "x"\n\nbroken = = 3\n')
    try:
        rc, out, took = run_server("-c", conf, "--web", "none", "-d", short_tmpdir())
    finally:
        shutil.rmtree(conf, ignore_errors=True)
    assert rc != 0 and took < 10, out
    assert f"invalid TOML in {conf}/conf.d/20-second.toml, line 4, column 10" in out, out
    assert "Traceback" not in out


def test_a_config_file_that_is_not_utf8_is_named():
    conf = _two_files('[web]\npassword = "caf\u00e9"\n'.encode("latin-1"))
    try:
        rc, out, _ = run_server("-c", conf, "--web", "none", "-d", short_tmpdir())
    finally:
        shutil.rmtree(conf, ignore_errors=True)
    assert rc != 0, out
    assert f"{conf}/conf.d/20-second.toml, line 2: not UTF-8 text (byte 0xe9)" in out, out
    assert "Traceback" not in out


def test_a_missing_config_dir_is_reported():
    rc, out, _ = run_server("-c", "/nonexistent/faktory-conf", "--web", "none")
    assert rc != 0
    assert "--config-dir /nonexistent/faktory-conf: no such directory" in out
    assert "Traceback" not in out and "--bind=" not in out  # no page of usage text
