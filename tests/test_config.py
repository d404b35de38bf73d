"""Environments, passwords, TOML configuration and automatic TLS, through real
server processes."""

import base64
import datetime
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from helpers import ROOT, Client, ServerProcess, config_dir, free_port, pwdhash, short_tmpdir

ENV = {k: v for k, v in os.environ.items() if not k.startswith("FAKTORY_")}


def run_server(*args, env=None, timeout=20):
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
            f"tcp:{free_port()}:interface=127.0.0.1",
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
    assert rc != 0 and "max_connections must be a integer" in out
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
        [
            sys.executable,
            "-m",
            "twisted",
            "--log-format",
            "text",
            "faktory",
            "-c",
            config_dir(toml),
            "-d",
            d,
        ],
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


# -- TLS ---------------------------------------------------------------------
def make_ca_and_cert(directory: str) -> str:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost signed by
    it, written as the two files the server looks for; returns the CA path."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "faktory test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    with open(os.path.join(directory, "private.key.pem"), "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    with open(os.path.join(directory, "public.cert.pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    ca_path = os.path.join(directory, "ca.pem")
    with open(ca_path, "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    return ca_path


@pytest.fixture(scope="module")
def tls_server():
    cdir = config_dir("")
    ca = make_ca_and_cert(cdir)
    srv = ServerProcess(args=["-c", cdir]).start()
    yield srv, ca
    srv.stop()


def test_tls_turns_on_by_itself_with_the_files_in_the_config_dir(tls_server):
    srv, ca = tls_server
    ctx = ssl.create_default_context(cafile=ca)
    assert ctx.minimum_version <= ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            assert s.version() in ("TLSv1.2", "TLSv1.3")
            f = s.makefile("rwb")
            assert f.readline().startswith(b"+HI ")
            f.write(b'HELLO {"v":2}\r\n')
            f.flush()
            assert f.readline() == b"+OK\r\n"
    # a plain-text client gets no Faktory greeting
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as plain:
        plain.sendall(b'HELLO {"v":2}\r\n')
        try:
            data = plain.recv(100)
        except OSError:
            data = b""
        assert not data.startswith(b"+HI")
    # the web UI is on https, trusted through the test CA
    with urllib.request.urlopen(
        f"https://127.0.0.1:{srv.web_port}/health", context=ctx, timeout=10
    ) as r:
        assert json.loads(r.read())["server"]["description"] == "Faktory"


def test_pyfaktory_over_tls(tls_server):
    srv, _ = tls_server
    from pyfaktory import Client as PyClient
    from pyfaktory import Job, Producer

    with PyClient(faktory_url=f"tcp+tls://127.0.0.1:{srv.port}", role="producer") as client:
        assert Producer(client=client).push(Job(jobtype="TlsJob", args=[1], queue="py-tls"))
    c = _tls_client(srv.port, tls_server[1])
    assert c.info_queue("py-tls") == 1


def test_node_client_over_tls(tls_server):
    srv, ca = tls_server
    node_dir = os.path.join(ROOT, "tests", "node")
    if shutil.which("node") is None or not os.path.isdir(os.path.join(node_dir, "node_modules")):
        pytest.skip("node client not installed")
    out = subprocess.run(
        [
            "node",
            os.path.join(node_dir, "scenario.js"),
            "tls",
            f"tcp+tls://localhost:{srv.port}",
            ca,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    events = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    assert events == [{"event": "tls", "queued": 1}], out.stdout + out.stderr


class _tls_client:
    def __init__(self, port, ca):
        ctx = ssl.create_default_context(cafile=ca)
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        self.f = self.s.makefile("rwb")
        self.f.readline()
        self.f.write(b'HELLO {"v":2}\r\n')
        self.f.flush()
        self.f.readline()

    def info_queue(self, name):
        self.f.write(b"INFO\r\n")
        self.f.flush()
        n = int(self.f.readline()[1:])
        return json.loads(self.f.read(n + 2))["faktory"]["queues"].get(name)


def test_unix_socket_bind():
    d = short_tmpdir()
    path = os.path.join(d, "work.sock")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "twisted",
            "faktory",
            "--web",
            "none",
            "-d",
            d,
            "--bind",
            f"unix:{path}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
        cwd="/tmp",
    )
    try:
        import time

        deadline = time.monotonic() + 20
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        f = s.makefile("rwb")
        assert f.readline().startswith(b"+HI")
        f.write(b'HELLO {"v":2}\r\nPUSH {"jid":"unix-00001","jobtype":"U","args":[]}\r\n')
        f.flush()
        assert f.readline() == b"+OK\r\n" and f.readline() == b"+OK\r\n"
        s.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(d, ignore_errors=True)


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
