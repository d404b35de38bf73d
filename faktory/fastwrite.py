"""Bytes written at once instead of at the next reactor turn.

Twisted's ``transport.write`` queues the bytes, turns on write interest for
the socket (an ``epoll_ctl``), sends on the next reactor turn and turns write
interest off again (another ``epoll_ctl``).  A reply to a command that just
arrived, or the commands one reactor turn sends to Redis, nearly always fit
the socket buffer, so when nothing is queued ahead of them we send them
straight away; anything unsent, and every case this does not understand
(TLS, other transports, a closing connection, file descriptors to pass),
goes through the normal ``write``, which keeps Twisted's ordering and error
handling.
"""

from __future__ import annotations

from twisted.internet import tcp, unix

_PLAIN = (tcp.Server, tcp.Client)
_UNIX = (unix.Server, unix.Client)


def send_now(transport, data: bytes) -> None:
    kind = type(transport)
    if (
        (kind in _PLAIN or (kind in _UNIX and not getattr(transport, "_sendmsgQueue", None)))
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
