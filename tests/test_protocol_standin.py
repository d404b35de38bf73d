"""The work protocol alone, in Twisted's style: ``FaktoryProtocol`` on a
``StringTransport`` against a stand-in server and manager (no Redis, no
waiting: every reply is there as soon as the stand-in's Deferred fires).
What the manager answers is the test's to decide, so ordering and
pipelining are checked exactly; test_protocol_unit.py covers the same bytes
against a real server."""

from __future__ import annotations

import json

from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from faktory.errors import CommandError
from faktory.protocol import FaktoryFactory


class StandInManager:
    """Records each call; FETCH answers come from Deferreds the test fires."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.fetches: list[defer.Deferred] = []

    def push_raw(self, raw):
        self.calls.append(("push", json.loads(raw)["jid"]))
        return defer.succeed(None)

    def fetch(self, queues, wid, ctx=None):
        self.calls.append(("fetch", tuple(queues)))
        d = defer.Deferred()
        self.fetches.append(d)
        return d

    def ack(self, jid):
        self.calls.append(("ack", jid))
        if jid == "unknown-to-manager":
            return defer.fail(CommandError("Job not found unknown-to-manager"))
        return defer.succeed(None)


class StandInWorkers:
    async def connect(self, wid, hello, conn):
        pass

    def disconnect(self, wid, conn):
        return defer.succeed(None)


class StandInServer:
    password = ""
    max_connections = 100
    max_line_length = 1 << 20
    shutting_down = False

    def __init__(self) -> None:
        self.reactor = task.Clock()
        self.manager = StandInManager()
        self.workers = StandInWorkers()
        self.connection_count = 0
        self.command_count = 0


def connect(server: StandInServer) -> tuple[object, StringTransport]:
    proto = FaktoryFactory(server).buildProtocol(None)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", 4000))
    proto.makeConnection(transport)
    assert transport.value().startswith(b"+HI ")
    transport.clear()
    proto.dataReceived(b'HELLO {"v":2,"wid":"w1"}\r\n')
    assert transport.value() == b"+OK\r\n"
    transport.clear()
    return proto, transport


def test_push_and_ack_answer_ok_at_once():
    server = StandInServer()
    proto, tr = connect(server)
    proto.dataReceived(b'PUSH {"jid":"a","jobtype":"T","args":[]}\r\nACK {"jid":"a"}\r\n')
    assert tr.value() == b"+OK\r\n+OK\r\n"
    assert server.manager.calls == [("push", "a"), ("ack", "a")]
    assert server.command_count == 2


def test_pipelined_commands_wait_for_the_fetch_before_them():
    server = StandInServer()
    proto, tr = connect(server)
    proto.dataReceived(b'FETCH critical default\r\nACK {"jid":"b"}\r\n')
    assert tr.value() == b""  # the FETCH is not answered yet: nothing, not even the ACK
    assert server.manager.calls == [("fetch", ("critical", "default"))]
    job = b'{"jid":"b","jobtype":"T","args":[]}'
    server.manager.fetches[0].callback(job)
    assert tr.value() == b"$%d\r\n%s\r\n+OK\r\n" % (len(job), job)
    assert server.manager.calls[-1] == ("ack", "b")


def test_an_empty_fetch_is_nil():
    server = StandInServer()
    proto, tr = connect(server)
    proto.dataReceived(b"FETCH default\r\n")
    server.manager.fetches[0].callback(None)
    assert tr.value() == b"$-1\r\n"


def test_manager_errors_and_unknown_verbs_are_faktory_errors():
    server = StandInServer()
    proto, tr = connect(server)
    proto.dataReceived(b'ACK {"jid":"unknown-to-manager"}\r\nNOPE x\r\nFETCH\r\n')
    assert tr.value() == (
        b"-ERR Job not found unknown-to-manager\r\n"
        b"-ERR unknown command NOPE\r\n"
        b"-ERR must call fetch with at least one queue\r\n"
    )
    assert not tr.disconnecting


def test_a_silent_client_is_cut_off_by_the_handshake_timer():
    server = StandInServer()
    proto = FaktoryFactory(server).buildProtocol(None)
    tr = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.2", 4000))
    proto.makeConnection(tr)
    server.reactor.advance(1.9)
    assert not tr.disconnecting and not tr.disconnected
    server.reactor.advance(0.2)
    assert tr.disconnecting or tr.disconnected
