"""Replies from Redis read without detours.

The Redis connection is a unix socket opened through an endpoint, so each
read goes through Twisted's ``_SendmsgMixin.doRead`` (``recvmsg`` with room
for file descriptors, then a scan of the ancillary data) and the endpoint's
``_WrappingProtocol`` before it reaches the protocol.  Redis never passes
file descriptors and our protocol's ``dataReceived`` returns nothing, so
``read_directly`` gives the transport a ``doRead`` that does ``recv`` and
calls the protocol: two Python calls and a syscall's extra work less for
every batch of replies (PUSH, FETCH and ACK each wait for one).  End of file
and errors are reported as Twisted's own ``doRead`` reports them, so the
connection's loss still runs through the whole protocol chain.
"""

from __future__ import annotations

import errno
from typing import Any

from twisted.internet import main, tcp, unix


def read_directly(transport: Any, proto: Any) -> None:
    """Let ``transport`` (a plain TCP or unix-socket client) hand what it
    reads straight to ``proto``; any other transport (TLS...) is left alone."""
    if type(transport) not in (unix.Client, tcp.Client) or getattr(transport, "TLS", False):
        return
    sock = transport.socket
    size = transport.bufferSize
    received = proto.dataReceived

    def doRead() -> Any:
        try:
            data = sock.recv(size)
        except OSError as e:
            if e.args[0] == errno.EWOULDBLOCK:
                return None
            return main.CONNECTION_LOST
        if not data:
            return main.CONNECTION_DONE
        received(data)
        return None

    transport.doRead = doRead
