"""TLS and other listener endpoints through real server processes: automatic
TLS from the config directory with a CA made by the test, checked with a raw
TLS socket, pyfaktory, the Node client and the web UI over https; unix
sockets; endpoint strings refused before startup."""

import datetime
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from helpers import ROOT, ServerProcess, config_dir, short_tmpdir

ENV = {k: v for k, v in os.environ.items() if not k.startswith("FAKTORY_")}


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
    missing = shutil.which("node") is None or not os.path.isdir(
        os.path.join(node_dir, "node_modules")
    )
    if missing and not os.environ.get("CI"):  # CI installs it: there it must run
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
        [sys.executable, "-m", "twisted", "faktory", "--web", "none", "-d", d]
        + ["--bind", f"unix:{path}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
        cwd="/tmp",
    )
    try:
        s = _connect_unix(path, proc)
        f = s.makefile("rwb")
        assert f.readline().startswith(b"+HI")
        f.write(b'HELLO {"v":2}\r\nPUSH {"jid":"unix-00001","jobtype":"U","args":[]}\r\n')
        f.write(b"FETCH default\r\n")
        f.flush()
        assert f.readline() == b"+OK\r\n" and f.readline() == b"+OK\r\n"
        assert f.readline().startswith(b"$")
        assert json.loads(f.readline())["jid"] == "unix-00001"
        f.close()
        s.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(d, ignore_errors=True)


def _connect_unix(path: str, proc) -> socket.socket:
    """The socket file appears at bind(), a moment before listen(): retry."""
    deadline = time.monotonic() + 20
    while True:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_tls_below_1_2_is_refused(tls_server):
    srv, ca = tls_server
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer the old versions at all
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.recv(10)


@pytest.mark.parametrize(
    "flag,endpoint,message",
    [
        ("--bind", "ssl:7419:privateKey=/nonexistent/key.pem", "No such file"),
        ("--web", "tcp:notaport", "is not a usable endpoint"),
        ("--bind", "pigeon:coop=1", "is not a usable endpoint"),
    ],
)
def test_unusable_endpoints_stop_startup_with_a_message(flag, endpoint, message):
    args = ["--bind", "tcp:0", "--web", "none", flag, endpoint, "-d", short_tmpdir()]
    proc = subprocess.run(
        [sys.executable, "-m", "twisted", "faktory", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=ENV,
        cwd="/tmp",
    )
    assert proc.returncode != 0
    assert f"{flag} {endpoint!r}" in proc.stderr + proc.stdout
    assert message in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
