"""Socket events handed to their connection without a logging context per event.

Twisted's epoll reactor calls each ready socket's handler through
``log.callWithLogger``: for every event it copies the legacy logging context,
adds the connection's log prefix and nests four calls, so that a legacy
``log.msg`` inside the handler carries that prefix.  That is about a tenth of
the CPU a PUSH costs here, and this server logs through ``twisted.logger``
(which names its source by namespace, not by that context).  ``install``
gives the reactor a poll step that calls the handler directly and logs
whatever escapes it, as ``callWithLogger`` does.
"""

from __future__ import annotations

import errno
from typing import Any

from twisted.internet.epollreactor import EPollReactor
from twisted.logger import Logger

log = Logger()


def install(reactor: Any) -> bool:
    """Use the direct poll step on Twisted's epoll reactor (nothing else is
    touched: another reactor, or one already changed, keeps its own)."""
    if type(reactor) is not EPollReactor or "doIteration" in vars(reactor):
        return False
    selectables = reactor._selectables
    handle = reactor._doReadOrWrite

    def do_poll(timeout: float | None) -> None:
        try:
            events = reactor._poller.poll(-1 if timeout is None else timeout, len(selectables))
        except OSError as e:
            if e.errno == errno.EINTR:
                return
            raise
        for fd, event in events:
            selectable = selectables.get(fd)
            if selectable is None:
                continue
            try:
                handle(selectable, fd, event)
            except KeyboardInterrupt:
                raise
            except BaseException:
                log.failure("Unhandled error on {selectable!r}", selectable=selectable)

    reactor.doIteration = do_poll
    return True
