"""Web UI logs: an operator action names the web user and the client, a
failed login is one warning per client (not one per guess), and the HTTP
access log is off by default and, when on, never logs the dashboard's
polling at info level."""

from __future__ import annotations

import base64
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request

from helpers import ServerProcess, config_dir

ENV = {"FAKTORY_PASSWORD": "webpw"}


def request(srv, path: str, password: str | None, data: dict | None = None, user: str = "alice"):
    headers = {}
    if password is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = "Basic " + token
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(
        f"http://127.0.0.1:{srv.web_port}{path}", data=body, headers=headers
    )

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **kw):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def wait_for(srv, text: str, timeout: float = 10) -> str:
    srv.wait_for_log(text, timeout)
    return srv.log()


def test_web_actions_and_failed_logins_are_logged_with_who():
    srv = ServerProcess(env=ENV).start()
    try:
        c = srv.client(password="webpw")
        c.push(queue="wa-q")
        assert request(srv, "/", "wrong", user="mallory") == 401
        for _ in range(5):
            assert request(srv, "/", "wrong", user="mallory") == 401
        log = wait_for(srv, "Web login failed")
        lines = [ln for ln in log.splitlines() if "Web login failed" in ln]
        assert len(lines) == 1, lines  # one line per client per 10 s, not one per guess
        assert "wrong password from web user 'mallory' from 127.0.0.1 for GET /" in lines[0]
        assert "webpw" not in log and "wrong" not in lines[0].split("password")[1]
        assert request(srv, "/", None) == 401  # no credentials yet: not a failed login
        assert request(srv, "/queues/wa-q", "webpw", {"action": "pause"}) in (302, 303)
        log = wait_for(srv, "paused queue wa-q")
        assert "Operator action by web user 'alice' from 127.0.0.1: paused queue wa-q" in log
        # The access log is off by default: no request lines at all.
        assert request(srv, "/stats", "webpw") == 200
        assert '"GET /stats' not in srv.log() and "web 127.0.0.1" not in srv.log()
    finally:
        srv.discard()


def test_access_log_when_on_skips_the_polling_at_info():
    conf = config_dir("[web]\naccess_log = true\n")
    srv = ServerProcess(args=["-c", conf]).start()
    try:
        assert request(srv, "/stats", None) == 200
        assert request(srv, "/health", None) == 200
        assert request(srv, "/queues", None) == 200
        log = wait_for(srv, '"GET /queues"')
        line = next(ln for ln in log.splitlines() if '"GET /queues"' in ln)
        assert "#info]" in line and "web 127.0.0.1" in line and " 200 " in line
        assert '"GET /stats"' not in log and '"GET /health"' not in log
    finally:
        srv.discard()
        shutil.rmtree(conf, ignore_errors=True)


def test_access_log_must_be_a_boolean():
    import subprocess
    import sys

    conf = config_dir('[web]\naccess_log = "yes"\n')
    try:
        p = subprocess.run(
            [sys.executable, "-m", "twisted", "faktory", "-c", conf, "--web", "none"],
            capture_output=True,
            text=True,
            timeout=30,
            env=dict(os.environ, PYTHONPATH=os.getcwd()),
        )
    finally:
        shutil.rmtree(conf, ignore_errors=True)
    assert p.returncode != 0
    assert "[web] access_log must be true or false, not 'yes'" in p.stdout + p.stderr
