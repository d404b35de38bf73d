"""DNS rebinding protection for a web UI without a password.

A page on ``evil.example`` can make its own name resolve to 127.0.0.1 and
then read ``http://evil.example:7420/`` as same-origin: the browser talks to
the local UI, but the request's ``Host`` is still ``evil.example``.  So when
no password protects the UI, only requests for a name we know are answered:
the bound address, ``localhost`` (and ``*.localhost``, which browsers keep
on the loopback), the loopback addresses, and ``[web] allowed_hosts``.  On a
wildcard bind (``0.0.0.0``) any IP address is accepted too: rebinding needs
a name, an address is its own origin.
"""

from __future__ import annotations

import ipaddress
import re

LOOPBACK = {"localhost", "127.0.0.1", "::1"}
_INTERFACE = re.compile(r"(?:^|(?<!\\):)interface=((?:\\:|[^:])*)")


def _interface(endpoint: str | None) -> str | None:
    """The interface of a ``tcp:``/``ssl:`` endpoint string ('' = all), or
    None for other endpoints (unix sockets)."""
    if not endpoint or not endpoint.startswith(("tcp:", "ssl:")):
        return None
    m = _INTERFACE.search(endpoint)
    return m.group(1).replace("\\:", ":") if m else ""


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_name(header: bytes) -> str:
    """``Host`` without its port, lower case, no trailing dot, IPv6 unbracketed."""
    text = header.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return text.rstrip(".")


class HostPolicy:
    """Which ``Host`` values a password-less UI answers."""

    def __init__(self, web_endpoint: str | None, extra: list[str] | None = None) -> None:
        interface = _interface(web_endpoint)
        self.any_ip = interface in ("", "0.0.0.0", "::")
        self.names = set(LOOPBACK) | {n.strip().lower().rstrip(".") for n in extra or ()}
        if interface:
            self.names.add(interface.lower())

    def allows(self, header: bytes | None) -> bool:
        if header is None:
            return True  # no Host: not a browser (HTTP/1.0 scripts), no rebinding
        name = host_name(header)
        if name in self.names or name.endswith(".localhost"):
            return True
        return self.any_ip and _is_ip(name)


def policy_for(settings) -> HostPolicy:
    web = settings.config.get("web", {}) if isinstance(settings.config, dict) else {}
    extra = web.get("allowed_hosts", []) if isinstance(web, dict) else []
    return HostPolicy(settings.web, extra if isinstance(extra, list) else [])
