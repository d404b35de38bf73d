"""The blocking work-protocol connection of ``faktory-cli``.

Every way of talking to the wrong thing ends in one line that says what to
do: a port that never greets (the web UI's, or a TLS port spoken to in plain
TCP) times out with a hint, a TLS handshake with a plain port or an untrusted
certificate says so, and a reply that never comes times out too."""

from __future__ import annotations

import json
import os
import socket
import ssl
from typing import Any
from urllib.parse import unquote, urlparse

from .protocol import password_hash

CONNECT_TIMEOUT = 5.0  # seconds for TCP connect, TLS handshake and the greeting


class ServerError(Exception):
    """An ``-ERR`` reply of the server."""


class CLIError(Exception):
    """Anything else that stops a command; the message is the whole story."""


class _Closed(CLIError):
    """The server closed the connection."""


def wrong_port_hint(host: str, port: int, tls: bool) -> str:
    scheme = "tcp+tls" if tls else "tcp"
    other = (
        "a plain port needs tcp://"
        if tls
        else "a TLS port needs tcp+tls:// (and --cacert if its certificate is self-signed)"
    )
    return (
        f"no Faktory greeting from {scheme}://{host}:{port} (silence for up to {{t:g}} s, "
        "or the connection dropped): is it the work "
        f"port (7419 by default)? The web UI port (7420) speaks HTTP; {other}"
    )


class Connection:
    """One identified connection (HELLO done), enough for admin commands."""

    def __init__(
        self,
        url: str,
        timeout: float = 30.0,
        cacert: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        parsed = urlparse(url if "://" in url else "tcp://" + url)
        if parsed.scheme not in ("tcp", "tcp+tls", "tls"):
            raise CLIError(f"--url {url!r}: use tcp://host:port or tcp+tls://host:port")
        try:
            host, port = parsed.hostname or "127.0.0.1", parsed.port or 7419
        except ValueError as e:
            raise CLIError(f"--url {url!r}: {e}") from None
        self.where = f"{host}:{port}"
        self.timeout = timeout
        tls = "tls" in parsed.scheme
        try:
            sock = socket.create_connection((host, port), timeout=connect_timeout)
        except TimeoutError:
            raise CLIError(
                f"cannot connect to {self.where}: no answer within {connect_timeout:g} s"
            ) from None
        except OSError as e:
            raise CLIError(f"cannot connect to {self.where}: {e.strerror or e}") from None
        if tls:
            sock = self._tls(sock, host, cacert, cert, key, connect_timeout)
        elif cacert or cert:
            sock.close()
            raise CLIError("--cacert/--cert are for TLS: use a tcp+tls:// URL")
        self.sock = sock
        self.f = sock.makefile("rwb")
        try:
            greeting = self._read()
        except (TimeoutError, ConnectionError, _Closed):
            # Silence, then maybe a reset: an HTTP server, or a TLS server
            # waiting for a handshake that plain TCP never starts.
            sock.close()
            raise CLIError(wrong_port_hint(host, port, tls).format(t=connect_timeout)) from None
        if not isinstance(greeting, str) or not greeting.startswith("HI "):
            sock.close()
            said = str(greeting)[:60]
            raise CLIError(f"{self.where} is not a Faktory server (it said {said!r})")
        sock.settimeout(timeout)
        hello: dict[str, Any] = {"v": 2, "hostname": socket.gethostname(), "pid": os.getpid()}
        try:
            info = json.loads(greeting[3:])
        except ValueError:
            info = {}
        if "s" in info:
            password = unquote(parsed.password or "")
            hello["pwdhash"] = password_hash(password, info["s"], info.get("i", 1))
        try:
            self.call("HELLO " + json.dumps(hello))
        except ServerError as e:
            if "password" in str(e).lower():
                raise CLIError(
                    f"{e} (give it in the URL: tcp://:PASSWORD@{self.where}, or $FAKTORY_URL)"
                ) from None
            raise

    def _tls(self, sock, host, cacert, cert, key, timeout):
        try:
            ctx = ssl.create_default_context(cafile=cacert)
            if cert:
                ctx.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as e:
            sock.close()
            what = getattr(e, "strerror", None) or getattr(e, "reason", None) or e
            raise CLIError(f"cannot load --cacert/--cert/--key: {what}") from None
        sock.settimeout(timeout)
        try:
            return ctx.wrap_socket(sock, server_hostname=host)
        except ssl.SSLCertVerificationError as e:
            sock.close()
            raise CLIError(
                f"TLS: the certificate of {self.where} is not trusted ({e.verify_message}): "
                "pass --cacert FILE (the CA, or the server's own self-signed certificate)"
            ) from None
        except ssl.SSLError as e:
            sock.close()
            raise CLIError(
                f"TLS handshake with {self.where} failed ({e.reason or e}): is TLS on at that "
                "port? A plain port needs tcp://"
            ) from None
        except TimeoutError:
            sock.close()
            raise CLIError(
                f"TLS handshake with {self.where} got no answer within {timeout:g} s: is it "
                "the work port? The web UI port speaks HTTP"
            ) from None

    def _read(self) -> Any:
        line = self.f.readline()
        if not line:
            raise _Closed(f"{self.where} closed the connection")
        line = line.decode("utf-8", "replace").rstrip("\r\n")
        kind, rest = line[:1], line[1:]
        if kind == "-":
            raise ServerError(rest)
        if kind == "$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2].decode("utf-8", "replace")
        if kind == "+":
            return rest
        return line

    def call(self, line: str) -> Any:
        try:
            self.f.write(line.encode() + b"\r\n")
            self.f.flush()
            return self._read()
        except TimeoutError:
            raise CLIError(
                f"no reply from {self.where} within {self.timeout:g} s (--timeout)"
            ) from None

    def close(self) -> None:
        try:
            self.f.write(b"END\r\n")
            self.f.flush()
        except OSError:
            pass
        self.sock.close()
