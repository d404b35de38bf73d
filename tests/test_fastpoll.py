"""The reactor's direct poll step (faktory.fastpoll): every ready socket is
still handled, a handler's error is logged and the loop goes on."""

from __future__ import annotations

import os

from twisted.internet.epollreactor import EPollReactor
from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import globalLogPublisher
from zope.interface import implementer

from faktory import fastpoll


@implementer(IReadDescriptor)
class Reader:
    def __init__(self, fd: int, fail: bool = False) -> None:
        self.fd, self.fail, self.reads = fd, fail, 0

    def fileno(self) -> int:
        return self.fd

    def doRead(self):
        self.reads += 1
        os.read(self.fd, 100)
        if self.fail:
            raise RuntimeError("handler broke")

    def connectionLost(self, reason) -> None:
        pass

    def logPrefix(self) -> str:
        return "Reader"


def test_ready_sockets_are_handled_and_a_failing_one_is_logged():
    reactor = EPollReactor()
    assert fastpoll.install(reactor)
    assert not fastpoll.install(reactor)  # once only
    pipes = [os.pipe() for _ in range(2)]
    bad, good = Reader(pipes[0][0], fail=True), Reader(pipes[1][0])
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        for r in (bad, good):
            reactor.addReader(r)
        for _, w in pipes:
            os.write(w, b"x")
        reactor.doIteration(1.0)
    finally:
        globalLogPublisher.removeObserver(events.append)
        for r in (bad, good):
            reactor.removeReader(r)
        for rd, w in pipes:
            os.close(rd)
            os.close(w)
    assert (bad.reads, good.reads) == (1, 1)
    assert any(
        "handler broke" in str(e.get("log_failure", "")) or "handler broke" in str(e)
        for e in events
    ), events


def test_other_reactors_are_left_alone():
    class Other(EPollReactor):
        pass

    assert not fastpoll.install(Other())
