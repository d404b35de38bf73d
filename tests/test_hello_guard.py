"""The work protocol before HELLO, through real sockets: a stranger may send
one short line, failed HELLOs are logged with the address (no secrets), and
an address that keeps failing is shut out before any password hashing, so a
few connections guessing passwords cannot keep the server's core busy."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from twisted.internet import task

from faktory import authlimit
from faktory.protocol import MAX_HELLO_LENGTH
from helpers import Client, ServerProcess, pwdhash

PASSWORD = "s3cret-hello"
ATTACKER = "127.0.0.2"  # also loopback on Linux: a second client address


@pytest.fixture(scope="module")
def srv():
    s = ServerProcess(env={"FAKTORY_PASSWORD": PASSWORD}, web=False)
    s.args += ["--bind", f"tcp:{s.port}:interface=0.0.0.0"]  # reachable as 127.0.0.2 too
    s.start()
    yield s
    s.discard()


def connect(srv, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.settimeout(10)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", srv.port))
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return data
        if not chunk:
            return data
        data += chunk


def bad_hello(sock: socket.socket, greeting: bytes) -> None:
    info = json.loads(greeting[4:])
    hello = {"v": 2, "hostname": "h", "pid": 1, "pwdhash": pwdhash("wrong", info["s"], info["i"])}
    sock.sendall(b"HELLO " + json.dumps(hello).encode() + b"\r\n")


def test_only_a_short_line_before_hello(srv):
    # A stranger streaming bytes without a newline is cut off after a few KiB
    # with a clear error, instead of being buffered up to the 16 MiB PUSH limit.
    s = connect(srv)
    assert s.recv(100).startswith(b"+HI ")
    sent = 0
    try:
        while sent < 4 * 1024 * 1024:
            s.sendall(b"x" * 65536)
            sent += 65536
    except (BrokenPipeError, ConnectionResetError):
        pass
    reply = read_all(s)
    s.close()
    assert reply == b"-ERR line too long (max %d bytes before HELLO)\r\n" % MAX_HELLO_LENGTH
    assert sent < 4 * 1024 * 1024  # refused long before that

    # A too-long HELLO line is refused the same way.
    s = connect(srv)
    greeting = s.recv(100)
    info = json.loads(greeting[4:])
    hello = {"v": 2, "pwdhash": pwdhash(PASSWORD, info["s"], info["i"]), "x": "y" * 10000}
    s.sendall(b"HELLO " + json.dumps(hello).encode() + b"\r\n")
    assert read_all(s).startswith(b"-ERR line too long")
    s.close()

    # After HELLO the full limit applies, even for lines pipelined with it.
    c = Client(srv.port, password=PASSWORD, hello=False)
    info = json.loads(c.greeting[4:])
    hello = {"v": 2, "hostname": "h", "pid": 1, "pwdhash": pwdhash(PASSWORD, info["s"], info["i"])}
    job = {"jid": "big-after-hello", "jobtype": "T", "queue": "hg-big", "args": ["z" * 1_000_000]}
    c.f.write(f"HELLO {json.dumps(hello)}\r\nPUSH {json.dumps(job)}\r\n".encode())
    c.f.flush()
    assert c.read_reply() == "OK" and c.read_reply() == "OK"
    assert c.info()["faktory"]["queues"]["hg-big"] == 1
    c.close()


def test_failed_hellos_are_logged_without_secrets(srv):
    s = connect(srv)
    greeting = s.recv(100)
    bad_hello(s, greeting)
    assert read_all(s) == b"-ERR Invalid password\r\n"
    port = s.getsockname()[1]
    s.close()
    s = connect(srv)
    s.recv(100)
    s.sendall(b"HELLO {not json\r\n")
    assert read_all(s).startswith(b"-ERR invalid HELLO")
    port2 = s.getsockname()[1]
    s.close()
    log = srv.log()
    assert f"HELLO from 127.0.0.1:{port} refused: invalid password" in log
    assert f"HELLO from 127.0.0.1:{port2} refused: invalid HELLO" in log
    assert PASSWORD not in log and "pwdhash" not in log and "not json" not in log
    ok = Client(srv.port, password=PASSWORD)  # a success forgets the address's failures
    assert ok.hello_reply == "OK"
    ok.close()


def test_an_address_that_keeps_failing_is_shut_out_before_any_hashing(srv):
    # Twenty connections at once, each sending a wrong password: only the
    # first few cost a password hash; the others are refused without one.
    socks = [connect(srv, ATTACKER) for _ in range(20)]
    greetings = [s.recv(100) for s in socks]
    assert all(g.startswith(b"+HI ") for g in greetings)
    for s, g in zip(socks, greetings, strict=True):
        bad_hello(s, g)
    replies = [read_all(s) for s in socks]
    for s in socks:
        s.close()
    hashed = [r for r in replies if r == b"-ERR Invalid password\r\n"]
    shut_out = [r for r in replies if r.startswith(b"-ERR too many failed HELLOs")]
    assert len(hashed) == authlimit.LIMIT and len(shut_out) == 20 - authlimit.LIMIT, replies

    # Later connections from that address get no greeting (no salt, no work).
    results = []

    def hammer():
        for _ in range(10):
            s = connect(srv, ATTACKER)
            results.append(read_all(s))
            s.close()

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 40
    assert all(
        r.startswith(b"-ERR too many failed HELLOs from your address: try again in ")
        for r in results
    ), results[:3]
    # Even the right password is refused from there for now ...
    s = connect(srv, ATTACKER)
    assert read_all(s).startswith(b"-ERR too many failed HELLOs")
    s.close()
    # ... while every other address is served as usual.
    ok = Client(srv.port, password=PASSWORD)
    assert ok.hello_reply == "OK" and ok.push(queue="hg-ok")[1] == "OK"
    ok.close()
    assert f"HELLO: refusing {ATTACKER} for 60 s after 5 failures" in srv.log()


def test_the_address_table_is_bounded_and_forgets():
    clock = task.Clock()
    failures = authlimit.AuthFailures(clock, "HELLO", max_addresses=100)

    class Peer:
        def __init__(self, host: str) -> None:
            self.host, self.port = host, 1

    for i in range(5000):
        failures.failed(Peer(f"10.0.{i // 256}.{i % 256}"), "invalid password")
    assert len(failures.entries) == 100
    for _ in range(authlimit.LIMIT):
        failures.failed(Peer("10.9.9.9"), "invalid password")
    assert failures.blocked_for(Peer("10.9.9.9")) == authlimit.BLOCK
    # IPv6 clients count per /64: hopping addresses within it does not help.
    for i in range(authlimit.LIMIT):
        failures.failed(Peer(f"2001:db8::{i + 1}"), "invalid password")
    assert failures.blocked_for(Peer("2001:db8::ffff")) > 0
    clock.advance(authlimit.BLOCK + 1)
    assert failures.blocked_for(Peer("10.9.9.9")) == 0  # served again after the block


def test_without_a_password_bad_handshakes_are_logged_but_never_shut_out():
    # Nothing to guess: a client that speaks the wrong protocol (an HTTP probe,
    # a misconfigured worker) must not get its host's other workers refused.
    s = ServerProcess(web=False).start()
    try:
        for _ in range(authlimit.LIMIT + 3):
            sock = connect(s)
            assert sock.recv(100).startswith(b"+HI ")
            sock.sendall(b"GET / HTTP/1.1\r\n")
            assert read_all(sock) == b"-ERR expected HELLO, the connection must start with it\r\n"
            sock.close()
        ok = Client(s.port)
        assert ok.hello_reply == "OK" and ok.push(queue="hg-open")[1] == "OK"
        ok.close()
        log = s.log()
        assert "refused: no HELLO" in log and "HELLO: refusing" not in log
    finally:
        s.discard()
