"""Replies written at once instead of at the next reactor turn.

Twisted's ``transport.write`` queues the bytes, turns on write interest for
the socket (an ``epoll_ctl``), sends on the next reactor turn and turns write
interest off again (another ``epoll_ctl``).  A reply to a command that just
arrived nearly always fits the socket buffer, so when nothing is queued ahead
of it we send it straight away; anything unsent, and every case this does not
understand (TLS, other transports, a closing connection), goes through the
normal ``write``, which keeps the ordering and error handling Twisted's.
"""

from __future__ import annotations

from twisted.internet import tcp


def send_now(transport, data: bytes) -> None:
    if (
        type(transport) is tcp.Server
        and not transport._tempDataLen
        and not transport.dataBuffer
        and transport.connected
        and not transport.disconnecting
        and not getattr(transport, "TLS", False)
    ):
        try:
            sent = transport.socket.send(data)
        except OSError:
            sent = 0  # EAGAIN, or a dead socket that Twisted's write path will notice
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)
