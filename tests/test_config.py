"""Environments, passwords, TOML configuration and automatic TLS, through real
server processes."""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from helpers import TWIST, Client, ServerProcess, config_dir, free_port, pwdhash, short_tmpdir

ENV = {k: v for k, v in os.environ.items() if not k.startswith("FAKTORY_")}


def run_server(*args, env=None, timeout=20, port=None):
    """Start a server expected to refuse to start; returns (returncode, output)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "twisted",
            "faktory",
            "--web",
            "none",
            "--bind",
            f"tcp:{port or free_port()}:interface=127.0.0.1",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or ENV,
        cwd="/tmp",
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_production_refuses_to_start_without_a_password():
    rc, out = run_server("-e", "production", "-d", short_tmpdir(), "-c", config_dir(""))
    assert rc != 0
    assert "faktory requires a password to be set in staging or production" in out


def test_invalid_environment_and_bad_config_values_are_refused():
    rc, out = run_server("-e", "nowhere")
    assert rc != 0 and 'Invalid environment "nowhere"' in out
    rc, out = run_server("-c", config_dir("[faktory]\nmax_connections = 'lots'\n"))
    assert rc != 0 and "max_connections must be an integer" in out
    rc, out = run_server("-c", config_dir("[faktory\n"))
    assert rc != 0 and "invalid TOML" in out


def test_skip_password_env_allows_production():
    srv = ServerProcess(
        args=["-e", "production", "-c", config_dir("")],
        env={"FAKTORY_SKIP_PASSWORD": "yes"},
        web=False,
    )
    srv.env = {k: v for k, v in srv.env.items() if k != "FAKTORY_PASSWORD"}
    srv.start()
    try:
        assert srv.client().push()[1] == "OK"
    finally:
        srv.stop()


def test_toml_feeds_password_binding_and_web_password_and_warns_on_unknown_keys():
    port, web_port = free_port(), free_port()
    toml = (
        f'[faktory]\nbinding = "127.0.0.1:{port}"\npassword = "tomlpw"\nsurprise = 1\n'
        f'[web]\nbinding = "127.0.0.1:{web_port}"\npassword = "webpw"\n[mystery]\nx = 1\n'
    )
    d = short_tmpdir()
    proc = subprocess.Popen(
        [*TWIST, "-c", config_dir(toml), "-d", d],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
        cwd="/tmp",
    )
    try:
        from helpers import wait_for_port

        wait_for_port(port, proc=proc)
        c = Client(port, password="tomlpw")
        assert c.hello_reply == "OK"
        assert Client(port, password="nope").hello_reply.startswith("ERR Invalid password")
        url = f"http://127.0.0.1:{web_port}/"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url, timeout=10)
        assert e.value.code == 401
        req = urllib.request.Request(
            url, headers={"Authorization": "Basic " + base64.b64encode(b"x:webpw").decode()}
        )
        assert urllib.request.urlopen(req, timeout=10).status == 200
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0]
        shutil.rmtree(d, ignore_errors=True)
    assert "unknown config key [faktory] surprise" in out
    assert "unknown config section [mystery]" in out


def test_password_file_option(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("filepw\n")
    srv = ServerProcess(args=["--password-file", str(pw)], web=False)
    srv.env = dict(ENV)
    srv.start()
    try:
        c = srv.client(password="filepw")
        assert c.hello_reply == "OK"
        info = json.loads(c.greeting[4:])
        assert pwdhash("filepw", info["s"], info["i"])
    finally:
        srv.stop()


def test_flags_override_toml_and_toml_feeds_the_rest():
    toml_port = free_port()
    toml = (
        f'[faktory]\nbinding = "127.0.0.1:{toml_port}"\nmax_connections = 1\n'
        "max_line_length = 2000\n"
    )
    srv = ServerProcess(args=["-c", config_dir(toml), "--max-connections", "2"], web=False)
    srv.env = dict(ENV)
    srv.start()  # waits on its --bind port, which wins over [faktory] binding
    try:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", toml_port), timeout=2).close()
        a, b = srv.client(), srv.client()  # --max-connections 2 beats max_connections = 1
        assert b.push()[1] == "OK" and a.push()[1] == "OK"
        b.send("PUSH " + json.dumps({"jid": "x" * 12, "jobtype": "T", "args": ["y" * 2500]}))
        assert b.read_line() == "-ERR line too long (max 2000 bytes)"  # from the TOML
    finally:
        srv.stop()


@pytest.mark.parametrize(
    "toml,message",
    [
        ('[faktory]\nfsync = "sometimes"\n', "[faktory] fsync must be always, everysec or no"),
        ("[faktory]\nmax_line_length = -5\n", "max_line_length must be a positive integer"),
        ("[faktory]\nnamespace = 7\n", "[faktory] namespace must be a string, not 7"),
        ("faktory = 3\n", "[faktory] must be a table"),
    ],
)
def test_bad_toml_values_stop_startup_with_a_message(toml, message):
    rc, out = run_server("-c", config_dir(toml), "-d", short_tmpdir())
    assert rc != 0 and message in out, out
    assert "Traceback" not in out


def test_sections_of_the_pro_features_are_known():
    from faktory import config, tap

    doc = {
        "faktory": {"binding": ":7419", "fsync": "always", "typo_key": 1},
        "web": {"password": "x"},
        "cron": [],
        "throttles": {},
        "statsd": {},
        "redis": {},
        "plugins": {},
        "nonsense": {},
    }
    errors, warnings = config.problems(doc, tap.config_keys())
    assert errors == []
    assert sorted(warnings) == [
        "unknown config key [faktory] typo_key",
        "unknown config section [nonsense]",
    ]


def test_password_sources_and_their_order(tmp_path, monkeypatch):
    from faktory import config, tap

    system = tmp_path / "password"
    system.write_text("from-etc\n")
    secret = tmp_path / "secret"
    secret.write_text("  from-docker-secret \n")
    monkeypatch.setattr(config, "SYSTEM_PASSWORD_FILE", str(system))
    monkeypatch.delenv("FAKTORY_SKIP_PASSWORD", raising=False)
    toml = {"faktory": {"password": "from-toml"}}
    assert config.resolve_password("production", "from-env", toml) == "from-env"
    assert config.resolve_password("production", "", toml) == "from-toml"
    assert config.resolve_password("staging", "", {}) == "from-etc"
    assert config.resolve_password("development", "", {}) == ""  # never read, never required
    assert config.resolve_password("production", "", {"faktory": {"password": str(secret)}}) == (
        "from-docker-secret"
    )
    monkeypatch.setenv("FAKTORY_PASSWORD", str(secret))
    assert tap.read_password(None) == "from-docker-secret"
    monkeypatch.setenv("FAKTORY_PASSWORD", "plain")
    assert tap.read_password(None) == "plain"
    system.unlink()
    with pytest.raises(config.ConfigError, match="requires a password"):
        config.resolve_password("staging", "", {})
    for value in ("1", "true", "yes"):
        monkeypatch.setenv("FAKTORY_SKIP_PASSWORD", value)
        assert config.resolve_password("production", "", {}) == ""


def test_a_server_that_cannot_start_exits_non_zero():
    """A busy port (found only when listening) must not look like a clean exit."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        d = short_tmpdir()
        rc, out = run_server("-d", d, port=busy.getsockname()[1], timeout=30)
        shutil.rmtree(d, ignore_errors=True)
    assert rc == 1, out[-2000:]
    assert "failed to start" in out
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _is_redis_on(p, d)]


def _is_redis_on(pid: str, data_dir: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return data_dir.encode() in f.read()
    except OSError:
        return False
