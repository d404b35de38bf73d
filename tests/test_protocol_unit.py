"""The work protocol byte for byte: a real ``FaktoryServer`` (booted in this
process on a real spawned Redis) with each connection on a ``StringTransport``,
so the exact bytes written, and whether the connection was closed, are visible.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import uuid

import pytest
import pytest_twisted
from inproc import start_server, until, until_true
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from faktory.protocol import password_hash
from helpers import pwdhash

_PEERS = itertools.count(1)
VECTOR = ("foobar", "55104dc76695721d", 1545)
VECTOR_HASH = "6d877f8e5544b1f2598768f817413ab8a357afffa924dedae99eb91472d4ec30"


@pytest_twisted.async_yield_fixture(scope="module")
async def server(redis):
    srv = await start_server(redis.url)
    yield srv
    await srv.stopService()


class Conn:
    """One protocol instance on a StringTransport."""

    def __init__(self, server) -> None:
        self.proto = server.factory.buildProtocol(None)
        # Each its own client address: failed HELLOs count per address.
        n = next(_PEERS)
        self.tr = StringTransport(
            peerAddress=IPv4Address("TCP", f"10.{n >> 16}.{n >> 8 & 255}.{n & 255}", 1)
        )
        self.proto.makeConnection(self.tr)
        self.buf = b""

    def send(self, *lines: str | bytes) -> None:
        data = b"".join((ln.encode() if isinstance(ln, str) else ln) + b"\r\n" for ln in lines)
        self.proto.dataReceived(data)

    def _drain(self) -> None:
        self.buf += self.tr.value()
        self.tr.clear()

    def _split(self) -> list[bytes]:
        out, rest = [], self.buf
        while rest:
            end = rest.find(b"\r\n")
            if end < 0:
                break
            if rest[:1] == b"$" and rest[1:end] != b"-1":
                total = end + 2 + int(rest[1:end]) + 2
                if len(rest) < total:
                    break
                out.append(rest[:total])
                rest = rest[total:]
            else:
                out.append(rest[: end + 2])
                rest = rest[end + 2 :]
        return out

    async def replies(self, n: int, timeout: float = 5.0) -> list[bytes]:
        """The next ``n`` complete RESP replies, byte for byte."""

        def ready():
            self._drain()
            return len(self._split()) >= n

        await until(ready, timeout, f"{n} replies (have {self.buf!r})")
        got = self._split()[:n]
        self.buf = self.buf[sum(len(r) for r in got) :]
        return got

    async def reply(self) -> bytes:
        return (await self.replies(1))[0]

    def pending_output(self) -> bytes:
        self._drain()
        return self.buf

    async def hello(self, **fields) -> bytes:
        await self.replies(1)  # the greeting
        fields.setdefault("v", 2)
        self.send("HELLO " + json.dumps(fields))
        return await self.reply()


def job(**fields) -> str:
    fields.setdefault("jid", uuid.uuid4().hex)
    fields.setdefault("jobtype", "T")
    fields.setdefault("args", [])
    return json.dumps(fields)


def bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


# -- handshake ---------------------------------------------------------------


def test_password_hash_test_vector():
    assert password_hash(*VECTOR) == VECTOR_HASH
    assert pwdhash(*VECTOR) == VECTOR_HASH
    # One iteration is a single SHA-256 of password + salt.
    assert password_hash("foobar", "55104dc76695721d", 1) == (
        hashlib.sha256(b"foobar55104dc76695721d").hexdigest()
    )


@pytest_twisted.ensureDeferred
async def test_greeting_and_hello_without_password(server):
    c = Conn(server)
    assert await c.reply() == b'+HI {"v":2}\r\n'
    c.send(json.dumps({"v": 2, "hostname": "h", "pid": 1}).join(["HELLO ", ""]))
    assert await c.reply() == b"+OK\r\n"
    assert not c.tr.disconnecting


@pytest_twisted.ensureDeferred
async def test_password_greeting_and_correct_hash(server, monkeypatch):
    monkeypatch.setattr(server, "password", "s3cret")
    c = Conn(server)
    greeting = await c.reply()
    m = re.fullmatch(rb'\+HI \{"v":2,"i":(\d+),"s":"([0-9a-f]+)"\}\r\n', greeting)
    assert m, greeting
    iterations, salt = int(m.group(1)), m.group(2).decode()
    assert 4000 <= iterations <= 8095
    c.send("HELLO " + json.dumps({"v": 2, "pwdhash": pwdhash("s3cret", salt, iterations)}))
    assert await c.reply() == b"+OK\r\n"
    # Salts are random per connection.
    other = (await Conn(server).reply()).split(b'"s":"')[1]
    assert other != m.group(2) + b'"}\r\n'


@pytest_twisted.ensureDeferred
async def test_hello_accepts_the_reference_test_vector(server, monkeypatch):
    monkeypatch.setattr(server, "password", "foobar")
    c = Conn(server)
    await c.reply()
    # Pin this connection's random salt and iteration count to the vector's.
    c.proto._salt, c.proto._iterations = VECTOR[1], VECTOR[2]
    c.send("HELLO " + json.dumps({"v": 2, "pwdhash": VECTOR_HASH}))
    assert await c.reply() == b"+OK\r\n"


@pytest_twisted.ensureDeferred
async def test_protocol_v1_clients_hash_once(server, monkeypatch):
    monkeypatch.setattr(server, "password", "s3cret")
    old = Conn(server)
    salt = json.loads((await old.reply())[4:])["s"]
    old.send("HELLO " + json.dumps({"pwdhash": pwdhash("s3cret", salt, 1)}))  # no "v"
    assert await old.reply() == b"+OK\r\n"
    # A v2 client must use the advertised count: one round is wrong for it.
    new = Conn(server)
    salt = json.loads((await new.reply())[4:])["s"]
    new.send("HELLO " + json.dumps({"v": 2, "pwdhash": pwdhash("s3cret", salt, 1)}))
    assert await new.reply() == b"-ERR Invalid password\r\n"
    assert new.tr.disconnecting


@pytest_twisted.ensureDeferred
async def test_wrong_password_is_refused_and_closed(server, monkeypatch):
    monkeypatch.setattr(server, "password", "s3cret")
    c = Conn(server)
    await c.reply()
    c.send('HELLO {"v":2,"pwdhash":"00"}')
    assert await c.reply() == b"-ERR Invalid password\r\n"
    assert c.tr.disconnecting
    c.send("INFO")  # nothing more is answered
    assert c.pending_output() == b""


@pytest_twisted.ensureDeferred
async def test_command_before_hello_gets_an_error_and_is_closed(server):
    for line in ("PUSH " + job(), "HELLO", "HELLO nope", 'HELLO {"v":300}', 'HELLO {"wid":5}'):
        c = Conn(server)
        await c.reply()
        c.send(line)
        reply = await c.reply()
        assert reply.startswith(b"-ERR ") and reply.endswith(b"\r\n"), (line, reply)
        assert c.tr.disconnecting, line


@pytest_twisted.ensureDeferred
async def test_handshake_times_out_after_two_seconds(server, monkeypatch):
    clock = task.Clock()
    monkeypatch.setattr(server, "reactor", clock)
    slow = Conn(server)
    clock.advance(1.9)
    assert not slow.tr.disconnecting
    clock.advance(0.2)
    assert slow.tr.disconnecting
    quick = Conn(server)
    assert await quick.hello() == b"+OK\r\n"
    clock.advance(10)
    assert not quick.tr.disconnecting  # no idle timeout once identified


@pytest_twisted.ensureDeferred
async def test_too_many_connections(server, monkeypatch):
    monkeypatch.setattr(server, "max_connections", server.connection_count)
    c = Conn(server)
    await c.reply()
    c.send('HELLO {"v":2}')
    n = server.connection_count
    assert await c.replies(2) == [b"+OK\r\n", b"-ERR too many connections: %d\r\n" % n]
    assert c.tr.disconnecting
    c.proto.connectionLost()
    assert server.connection_count == n - 1


# -- commands -----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_pipelined_commands_are_answered_in_order(server):
    c = Conn(server)
    await c.hello()
    q = "pipe" + uuid.uuid4().hex[:6]
    body = job(jid="pipe-0001", queue=q)
    c.send(
        "PUSH " + body,
        "NOPE",  # answered at once by itself, so it must wait its turn here
        "FETCH " + q,
        'ACK {"jid":"pipe-0001"}',
        "ACK",
        "FETCH",
        "push " + body,
        'HELLO {"v":2}',
        "INFO",
        "PUSH {",
    )
    r = await c.replies(10)
    assert r[0] == b"+OK\r\n"
    assert r[1] == b"-ERR unknown command NOPE\r\n"
    fetched = json.loads(r[2].split(b"\r\n")[1])
    assert fetched["jid"] == "pipe-0001" and fetched["queue"] == q
    assert r[2] == bulk(r[2].split(b"\r\n")[1])
    assert r[3] == b"+OK\r\n"
    assert r[4].startswith(b"-ERR invalid ACK : ")
    assert r[5] == b"-ERR must call fetch with at least one queue\r\n"
    assert r[6] == b"-ERR unknown command push\r\n"
    assert r[7] == b"-ERR unknown command HELLO\r\n"
    info = json.loads(r[8].split(b"\r\n")[1])
    assert info["faktory"]["queues"][q] == 0
    assert r[9].startswith(b"-ERR invalid JSON: ")
    assert not c.tr.disconnecting


@pytest_twisted.ensureDeferred
async def test_end_closes_without_a_reply(server):
    c = Conn(server)
    await c.hello()
    c.send("END", "INFO")
    assert c.tr.disconnecting
    assert c.pending_output() == b""


@pytest_twisted.ensureDeferred
async def test_exact_error_texts(server):
    c = Conn(server)
    await c.hello()
    cases = [
        ("FAIL {}", b"-ERR missing JID\r\n"),
        (
            'FAIL {"jid":5}',
            b'-ERR invalid FAIL {"jid":5}: json: cannot unmarshal number 5 '
            b"into Go struct field FailPayload.jid of type string\r\n",
        ),
        (
            'FAIL {"jid":"x","backtrace":"no"}',
            b'-ERR invalid FAIL {"jid":"x","backtrace":"no"}: json: cannot unmarshal string '
            b"into Go struct field FailPayload.backtrace of type []string\r\n",
        ),
        ('FAIL {"jid":"nope-nope"}', b"-ERR Job not found nope-nope\r\n"),
        ("FAIL [", b"-ERR invalid FAIL [: Expecting value: line 1 column 2 (char 1)\r\n"),
        (
            'ACK {"jid":"x","n":1}',
            b'-ERR invalid ACK {"jid":"x","n":1}: json: cannot unmarshal number 1 '
            b"into Go struct field map[string]string.n of type string\r\n",
        ),
        ('ACK {"n":"1"}', b'-ERR invalid ACK {"n":"1"}\r\n'),
        ('ACK {"jid":"never-seen"}', b"+OK\r\n"),
        (
            'BEAT {"wid":1}',
            b'-ERR invalid BEAT {"wid":1}: json: cannot unmarshal number 1 '
            b"into Go struct field ClientBeat.wid of type string\r\n",
        ),
        ('BEAT {"wid":"ghost"}', b"-ERR unknown worker ghost\r\n"),
        ("PUSH " + job(jid="short"), b"-ERR jobs must have a reasonable jid parameter\r\n"),
        ('PUSH {"jid":"12345678","args":[]}', b"-ERR jobs must have a jobtype parameter\r\n"),
        ('PUSH {"jid":"12345678","jobtype":"T"}', b"-ERR jobs must have an args parameter\r\n"),
        (
            "PUSH " + job(reserve_for=86401),
            b"-ERR jobs cannot be reserved for more than one day\r\n",
        ),
        (
            "PUSH " + job(queue="a:b"),
            b'-ERR cannot get "a:b" queue: queue names must match \\A[a-zA-Z0-9._-]+\\z\r\n',
        ),
        ("PUSHB " + json.dumps([json.loads(job(jid="pushb-001"))]), b"$2\r\n{}\r\n"),
        ("FLUSH", b"+OK\r\n"),
    ]
    c.send(*(line for line, _ in cases))
    got = await c.replies(len(cases))
    for (line, expected), reply in zip(cases, got):
        assert reply == expected, line
    c.send("PUSH " + job(at="tomorrow"))
    assert (await c.reply()).startswith(b"-ERR invalid timestamp for 'at': \"tomorrow\"")


@pytest_twisted.ensureDeferred
async def test_beat_replies(server):
    wid = "w" + uuid.uuid4().hex[:8]
    c = Conn(server)
    await c.hello(wid=wid, hostname="h", pid=1, labels=["x"])
    beat = json.dumps({"wid": wid, "rss_kb": 1234})
    c.send("BEAT " + beat)
    assert await c.reply() == b"+OK\r\n"
    c.send("BEAT " + json.dumps({"wid": wid, "current_state": "quiet"}))
    assert await c.reply() == b'$17\r\n{"state":"quiet"}\r\n'
    c.send("BEAT " + beat)  # repeated while the state lasts; no way back to running
    assert await c.reply() == b'$17\r\n{"state":"quiet"}\r\n'
    c.send("BEAT " + json.dumps({"wid": wid, "current_state": "terminate"}))
    assert await c.reply() == b'$21\r\n{"state":"terminate"}\r\n'
    c.send("BEAT " + json.dumps({"wid": wid, "current_state": "quiet"}))
    assert await c.reply() == b'$21\r\n{"state":"terminate"}\r\n'
    c.proto.connectionLost()  # the last connection of the wid: its record goes
    await until_true(
        lambda: server.workers.state(wid).addCallback(lambda st: st is None), what="record gone"
    )
    c2 = Conn(server)
    await c2.hello()
    c2.send("BEAT " + json.dumps({"wid": wid}))
    assert await c2.reply() == b"-ERR unknown worker %s\r\n" % wid.encode()


@pytest_twisted.ensureDeferred
async def test_shutdown_in_progress(server, monkeypatch):
    c = Conn(server)
    await c.hello()
    monkeypatch.setattr(server, "shutting_down", True)
    c.send("INFO")
    assert await c.reply() == b"-ERR shutdown in progress\r\n"
    assert c.tr.disconnecting


@pytest_twisted.ensureDeferred
async def test_line_too_long(server, monkeypatch):
    monkeypatch.setattr(server, "max_line_length", 1000)
    c = Conn(server)
    await c.hello()
    c.send("PUSH " + job(args=["x" * 2000]))
    assert await c.reply() == b"-ERR line too long (max 1000 bytes)\r\n"
    assert c.tr.disconnecting


@pytest_twisted.ensureDeferred
async def test_disconnect_abandons_a_waiting_fetch(server):
    q = "gone" + uuid.uuid4().hex[:6]
    c = Conn(server)
    await c.hello()
    c.send("FETCH " + q)
    await until(lambda: q in server.manager._waiters, what="FETCH to park")
    c.proto.connectionLost()
    assert q not in server.manager._waiters  # freed at once, not after 2 s


@pytest_twisted.ensureDeferred
async def test_job_reserved_for_a_vanished_client_goes_back(server):
    q = "back" + uuid.uuid4().hex[:6]
    producer = Conn(server)
    await producer.hello()
    producer.send("PUSH " + job(jid="back-0001", queue=q), "PUSH " + job(jid="back-0002", queue=q))
    await producer.replies(2)
    c = Conn(server)
    await c.hello()
    c.send("FETCH " + q)
    c.proto.connectionLost()  # before Redis has answered the FETCH
    await until_true(
        lambda: server.store.queue_sizes([q]).addCallback(lambda sizes: sizes[q] == 2),
        what="the job to be handed back",
    )
    assert await server.store.reservation("back-0001") is None
    other = Conn(server)
    await other.hello()
    other.send("FETCH " + q)
    reply = await other.reply()
    assert json.loads(reply.split(b"\r\n")[1])["jid"] == "back-0001"  # still first in line
    assert c.pending_output() == b""


@pytest.mark.parametrize("line", [b"\xff\xfe PUSH", b"", b" ", b"INFO extra args"])
@pytest_twisted.ensureDeferred
async def test_odd_lines_do_not_break_the_connection(server, line):
    c = Conn(server)
    await c.hello()
    c.send(line, "INFO")
    first, info = await c.replies(2)
    if line.startswith(b"INFO"):
        assert first.startswith(b"$")
    else:
        assert first.startswith(b"-ERR unknown command"), first
    assert json.loads(info.split(b"\r\n")[1])["server"]["description"] == "Faktory"


@pytest_twisted.ensureDeferred
async def test_a_disabled_built_in_feature_says_it_is_disabled(redis):
    """BATCH and TRACK are built in: turned off, they say so (never that they
    need another product)."""
    config = {"plugins": {"disabled": ["batch", "tracking"]}}
    srv = await start_server(redis.url, config=config)
    try:
        c = Conn(srv)
        await c.hello()
        c.send("BATCH NEW {}", "TRACK GET x")
        batch, track = await c.replies(2)
        assert (
            batch
            == b'-ERR batches are disabled on this server ([plugins] disabled has "batch")\r\n'
        )
        assert track == (
            b'-ERR job tracking is disabled on this server ([plugins] disabled has "tracking")\r\n'
        )
    finally:
        await srv.stopService()
