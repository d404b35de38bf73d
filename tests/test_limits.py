"""Resource limits through the wire: connection cap, line length, silent and
slow clients, and handler failures answered with an error instead of a crash."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import pytest_twisted
from inproc import start_server
from twisted.internet import defer, threads
from twisted.logger import globalLogPublisher

from faktory import protocol
from helpers import Client, ServerProcess


@pytest.fixture(scope="module")
def small():
    """A server allowing 3 identified connections and 4 KB lines."""
    srv = ServerProcess(args=["--max-connections", "3", "--max-line-length", "4096"], web=False)
    srv.start()
    yield srv
    srv.stop()


def _closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            return data  # an aborted connection (RST) is closed too
        if not chunk:
            return data
        data += chunk


def _close(c: Client) -> None:
    """Really close (``Client.close`` leaves the fd open while its makefile lives)."""
    c.f.close()
    c.close()


def _wait_connections(client: Client, n: int) -> None:
    deadline = time.monotonic() + 10
    while client.info()["server"]["connections"] != n:
        assert time.monotonic() < deadline, "connection count did not settle"
        time.sleep(0.02)


def test_max_connections_refuses_politely_after_hello(small):
    first = small.client()
    _wait_connections(first, 1)
    others = [small.client() for _ in range(2)]
    assert all(c.hello_reply == "OK" for c in others)
    extra = small.client()
    assert extra.hello_reply == "OK"  # as the real server: +OK first, then the refusal
    assert extra.read_line() == "-ERR too many connections: 4"
    assert _closed(extra.sock) == b""
    # the three admitted connections keep working, and a freed slot is reusable
    assert first.push(queue="limits")[1] == "OK"
    _close(others[0])
    _wait_connections(first, 2)
    again = small.client()
    assert again.push(queue="limits")[1] == "OK"
    for c in (first, others[1], again):
        _close(c)


def test_line_too_long_is_refused_and_others_keep_working(small):
    c, other = small.client(), small.client()
    c.send("PUSH " + json.dumps({"jid": "long-1", "jobtype": "T", "args": ["x" * 5000]}))
    assert c.read_line() == "-ERR line too long (max 4096 bytes)"
    assert _closed(c.sock) == b""
    assert other.push(queue="limits", args=["y" * 3000])[1] == "OK"
    _close(other)


def test_a_silent_client_is_cut_off_after_the_handshake_deadline(small):
    started = time.monotonic()
    s = socket.create_connection(("127.0.0.1", small.port), timeout=10)
    data = _closed(s)
    elapsed = time.monotonic() - started
    assert data.startswith(b"+HI ") and data.count(b"\r\n") == 1
    assert 1.5 < elapsed < 8, elapsed
    s.close()


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_client_that_never_reads_its_replies_stops_being_read(small):
    """Each line below earns a 29-byte error reply: 4 million of them would be
    ~120 MB of replies queued in the server if it kept reading."""
    c = small.client()
    before = _rss_kb(small.proc.pid)
    payload = b"NOPE x\r\n" * (4 * 1024 * 1024)
    sent = [0]

    def flood():
        try:
            c.sock.settimeout(4)
            view = memoryview(payload)
            while sent[0] < len(payload):
                sent[0] += c.sock.send(view[sent[0] : sent[0] + 65536])
        except OSError:
            pass  # timed out: the server stopped reading, as it should

    t = threading.Thread(target=flood)
    t.start()
    t.join(30)
    assert sent[0] < len(payload), "the server read everything a non-reading client sent"
    grown_mb = (_rss_kb(small.proc.pid) - before) / 1024
    assert grown_mb < 40, f"server grew by {grown_mb:.0f} MB"
    # everyone else is still served
    other = small.client()
    assert other.push(queue="limits")[1] == "OK"
    _close(other)
    _close(c)


# -- in-process: a failing command handler, the unidentified-connection cap ---------


@pytest_twisted.async_yield_fixture(scope="module")
async def inproc(redis):
    srv = await start_server(redis.url)
    yield srv, srv.ports["work"].getHost().port
    await srv.stopService()


@pytest_twisted.ensureDeferred
async def test_a_failing_command_handler_is_logged_and_answered(inproc):
    srv, port = inproc

    def boom(proto, arg):
        raise KeyError("secret internals")

    def later(proto, arg):
        return defer.fail(ZeroDivisionError("deferred internals"))

    srv.factory.add_command("BOOM", boom)
    srv.factory.add_command("LATER", later)
    logged = []
    observer = logged.append
    globalLogPublisher.addObserver(observer)
    try:

        def talk():
            c = Client(port)
            replies = [c.call("BOOM now"), c.call("LATER"), c.push(queue="after-boom")[1]]
            _close(c)
            return replies

        replies = await threads.deferToThread(talk)
    finally:
        globalLogPublisher.removeObserver(observer)
        del srv.factory.commands[b"BOOM"], srv.factory.commands[b"LATER"]
    assert replies == ["ERR internal error", "ERR internal error", "OK"]
    failures = [e for e in logged if "log_failure" in e]
    assert {type(e["log_failure"].value) for e in failures} >= {KeyError, ZeroDivisionError}


@pytest_twisted.ensureDeferred
async def test_connections_that_never_say_hello_are_capped(inproc, monkeypatch):
    srv, port = inproc
    monkeypatch.setattr(protocol, "MAX_UNIDENTIFIED", 2)

    def talk():
        quiet = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
        greetings = [s.recv(100) for s in quiet]
        refused = socket.create_connection(("127.0.0.1", port), timeout=10)
        refusal = _closed(refused)
        refused.close()
        for s in quiet:
            s.close()
        deadline = time.monotonic() + 10
        while srv.factory.unidentified and time.monotonic() < deadline:
            time.sleep(0.02)
        ok = Client(port).hello_reply  # the slots are free again
        return greetings, refusal, ok

    greetings, refusal, ok = await threads.deferToThread(talk)
    assert all(g.startswith(b"+HI ") for g in greetings)
    assert refusal == b"-ERR too many connections: 3 unidentified\r\n"
    assert ok == "OK"
