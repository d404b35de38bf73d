"""Failed logins per client address: repeated failures shut the address out
for a while.

A wrong password costs the server real work (Faktory's HELLO hash is
4000-8095 rounds of SHA-256, ~3 ms of the one reactor thread), so a client
guessing passwords in a loop, even from a few connections, could keep a core
busy and the other clients waiting.  After ``limit`` failures within
``window`` seconds an address is refused for ``block`` seconds, before any
hashing (at the greeting, and at a HELLO already under way).

Memory is bounded: at most ``max_addresses`` are remembered (the least
recently failed are forgotten first) and entries expire by themselves.
IPv6 clients are grouped by /64, as one host usually owns a whole /64.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict

from twisted.logger import Logger

log = Logger()

LIMIT = 5  # failures per address ...
WINDOW = 60.0  # ... within this many seconds ...
BLOCK = 60.0  # ... shut it out for this long
MAX_ADDRESSES = 10_000


def address_key(peer) -> str | None:
    """The address a failure counts against: the IP (IPv6: its /64); None for
    peers without one (unix sockets: local users, not counted)."""
    host = getattr(peer, "host", None)
    if not isinstance(host, str) or not host:
        return None
    if ":" in host:
        try:
            return str(ipaddress.ip_network(f"{host.split('%')[0]}/64", strict=False))
        except ValueError:
            return host
    return host


def describe_peer(peer) -> str:
    """``host:port`` of a peer for log lines (unix sockets: their repr)."""
    host = getattr(peer, "host", None)
    if host is None:
        return "a local client"
    return f"[{host}]:{peer.port}" if ":" in host else f"{host}:{peer.port}"


class AuthFailures:
    """Failures per address: ``[count, first failure, blocked until]``."""

    def __init__(
        self,
        clock,
        what: str,
        limit: int = LIMIT,
        window: float = WINDOW,
        block: float = BLOCK,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self.clock = clock
        self.what = what  # "HELLO", "Redis gateway AUTH": for the log
        self.limit = limit
        self.window = window
        self.block = block
        self.max_addresses = max_addresses
        self.entries: OrderedDict[str, list[float]] = OrderedDict()

    def blocked_for(self, peer) -> float:
        """Seconds this peer's address stays refused (0: let it try)."""
        key = address_key(peer)
        entry = self.entries.get(key) if key is not None else None
        if entry is None:
            return 0.0
        left = entry[2] - self.clock.seconds()
        return left if left > 0 else 0.0

    def failed(self, peer, reason: str, count: bool = True) -> None:
        """Record and log one failure (never with what the client sent).

        ``count=False`` only logs it: with no password there is nothing to
        guess, and shutting an address out would only lock out its other
        (well-behaved) clients."""
        key = address_key(peer) if count else None
        now = self.clock.seconds()
        if key is None:
            log.warn(
                "{what} from {peer} refused: {reason}",
                what=self.what,
                peer=describe_peer(peer),
                reason=reason,
            )
            return
        entry = self.entries.pop(key, None)
        if entry is None or now - entry[1] > self.window and entry[2] <= now:
            entry = [0, now, 0.0]
        entry[0] += 1
        self.entries[key] = entry  # most recent last
        while len(self.entries) > self.max_addresses:
            self.entries.popitem(last=False)
        if entry[2] > now:
            return  # already shut out: its refusals were announced once
        log.warn(
            "{what} from {peer} refused: {reason} ({n} in {w:g} s)",
            what=self.what,
            peer=describe_peer(peer),
            reason=reason,
            n=int(entry[0]),
            w=self.window,
        )
        if entry[0] >= self.limit:
            entry[2] = now + self.block
            log.warn(
                "{what}: refusing {key} for {block:g} s after {n} failures",
                what=self.what,
                key=key,
                block=self.block,
                n=int(entry[0]),
            )

    def succeeded(self, peer) -> None:
        """A client that got in is forgotten (its earlier typo does not count)."""
        key = address_key(peer)
        if key is not None and key in self.entries and self.entries[key][2] <= self.clock.seconds():
            del self.entries[key]
