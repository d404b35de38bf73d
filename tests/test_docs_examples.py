"""Examples in the docs run as written: the Node TLS example of
docs/security.md (with the ``tlsOptions`` the client needs), and the openssl
recipe of docs/deployment.md makes a certificate the server and
``faktory-cli --cacert`` accept."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from helpers import ROOT, ServerProcess, config_dir


def _block(page: str, lang: str, marker: str) -> str:
    with open(os.path.join(ROOT, "docs", page), encoding="utf-8") as f:
        text = f.read()
    for block in re.findall(rf"```{lang}\n(.*?)```", text, re.S):
        if marker in block:
            return block
    raise AssertionError(f"no {lang} block with {marker!r} in docs/{page}")


def _openssl_cert(conf: str) -> None:
    """The deployment page's openssl command, for localhost instead of the
    example's host name, writing into ``conf``."""
    cmd = _block("deployment.md", "sh", "openssl req -x509")
    cmd = cmd[cmd.index("openssl req") : cmd.index("chown")]
    cmd = cmd.replace("/etc/faktory", conf).replace("faktory.internal", "localhost")
    cmd = cmd.replace("IP:10.0.0.5", "IP:127.0.0.1")
    subprocess.run(["sh", "-c", cmd], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def tls_server():
    conf = config_dir("")
    _openssl_cert(conf)
    srv = ServerProcess(args=["-c", conf], web=False).start()
    yield srv, os.path.join(conf, "public.cert.pem")
    srv.discard()
    shutil.rmtree(conf, ignore_errors=True)


def test_the_openssl_recipe_makes_a_certificate_the_cli_trusts(tls_server):
    srv, cert = tls_server
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "faktory.cli",
            "--url",
            f"tcp+tls://localhost:{srv.port}",
            "--cacert",
            cert,
            "info",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0 and "processed" in p.stdout, p.stderr


def test_the_node_tls_example_runs_as_written(tls_server, tmp_path):
    srv, cert = tls_server
    modules = os.path.join(ROOT, "tests", "node", "node_modules")
    if (shutil.which("node") is None or not os.path.isdir(modules)) and not os.environ.get("CI"):
        pytest.skip("node client not installed (cd tests/node && npm install)")
    script = tmp_path / "push-tls.js"
    script.write_text(_block("security.md", "js", "push-tls.js"))
    p = subprocess.run(
        ["node", str(script), f"tcp+tls://localhost:{srv.port}", cert],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, NODE_PATH=modules),
    )
    assert p.returncode == 0, p.stdout + p.stderr
    jid = re.fullmatch(r"pushed (\S+)\n", p.stdout).group(1)
    c = srv_client_tls(srv, cert)
    job = json.loads(c)
    assert job["jid"] == jid and job["jobtype"] == "SendEmail"


def srv_client_tls(srv, cert: str) -> str:
    """FETCH the pushed job over TLS with a raw socket."""
    import socket
    import ssl

    ctx = ssl.create_default_context(cafile=cert)
    with ctx.wrap_socket(
        socket.create_connection(("127.0.0.1", srv.port), timeout=10), server_hostname="localhost"
    ) as s:
        f = s.makefile("rwb")
        f.readline()
        f.write(b'HELLO {"v":2}\r\n')
        f.flush()
        assert f.readline() == b"+OK\r\n"
        f.write(b"FETCH default\r\n")
        f.flush()
        size = int(f.readline()[1:])
        return f.read(size + 2)[:-2].decode()
