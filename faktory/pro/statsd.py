"""The statsd client of the metrics feature: its ``[statsd]`` settings, the
UDP sender, and ``StatsdLink``, which opens it at start and swaps it on
SIGHUP (new host/port/namespace/tags/interval take effect, the old socket is
closed, statsd turned on or off), logged as an operator action.

A bad value never gets here: ``MetricsPlugin.check_config`` refuses the
whole config (at start, or the whole reload, keeping the running one).  A
host that no longer resolves at a reload keeps the running client.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

from twisted.internet import defer
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from ..audit import audit

log = Logger()

GAUGE_PERIOD = 30  # seconds between global gauges, as the real server
FLUSH_DELAY = 0.1  # statsd lines wait at most this long for a full packet
TAG = re.compile(r"\A[a-zA-Z][\w\-:./]*\Z")
RESERVED_TAGS = ("host", "device", "source", "service")


class MetricsConfigError(ValueError):
    """A ``[statsd]`` setting that cannot be used; the text says which."""


class _UDP(DatagramProtocol):
    """Fire-and-forget sender: statsd must never slow or break the server."""

    def send(self, data: bytes, address: tuple[str, int]) -> None:
        if self.transport is None:
            return
        try:
            self.transport.write(data, address)
        except (OSError, OverflowError, ValueError) as e:  # e.g. ECONNREFUSED
            log.debug("statsd send failed: {e}", e=e)


class Statsd:
    """Buffers DogStatsD lines into packets of ``buffer_size`` lines or
    ``FLUSH_DELAY`` seconds, whichever comes first."""

    def __init__(
        self,
        reactor,
        address: tuple[str, int],
        namespace: str = "faktory.",
        tags: list[str] | None = None,
        buffer_size: int = 15,
    ) -> None:
        self.reactor = reactor
        self.address = address
        self.namespace = namespace
        self.tags = list(tags or [])
        self.buffer_size = max(1, buffer_size)
        self.lines: list[str] = []
        self._timer = None
        self.closed = False
        self._proto = _UDP()
        self._port = reactor.listenUDP(0, self._proto, interface="::" if ":" in address[0] else "")

    def _emit(self, name: str, value: Any, kind: str, tags: list[str] | None) -> None:
        if self.closed:
            return
        line = f"{self.namespace}{name}:{value}|{kind}"
        all_tags = self.tags + (tags or [])
        if all_tags:
            line += "|#" + ",".join(all_tags)
        self.lines.append(line)
        if len(self.lines) >= self.buffer_size:
            self.flush()
        elif self._timer is None:
            self._timer = self.reactor.callLater(FLUSH_DELAY, self.flush)

    def gauge(self, name: str, value: float, tags: list[str] | None = None) -> None:
        self._emit(name, _num(value), "g", tags)

    def increment(self, name: str, tags: list[str] | None = None, n: int = 1) -> None:
        self._emit(name, n, "c", tags)

    def timing(self, name: str, ms: float, tags: list[str] | None = None) -> None:
        self._emit(name, _num(ms), "ms", tags)

    def flush(self) -> None:
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        if self.lines:
            self._proto.send("\n".join(self.lines).encode(), self.address)
            self.lines = []

    def close(self) -> defer.Deferred:
        self.flush()
        self.closed = True
        return defer.maybeDeferred(self._port.stopListening)


def _num(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0")


def _tag_value(value: str) -> str:
    # DogStatsD separators cannot appear inside a tag.
    return re.sub(r"[|,#\s]", "_", value)


def statsd_settings(config: dict[str, Any], env: dict[str, str]) -> dict[str, Any] | None:
    """Validated ``[statsd]`` settings, or None when statsd is off."""
    section = config.get("statsd")
    url = env.get("DD_DOGSTATSD_URL", "")
    if section is None and not url:
        return None
    section = dict(section or {})
    if not isinstance(section, dict):
        raise MetricsConfigError("[statsd] must be a table")
    location = section.get("location")
    if not location and url:
        parsed = urlparse(url)
        if parsed.scheme not in ("udp", "") or not parsed.hostname:
            raise MetricsConfigError(f"DD_DOGSTATSD_URL {url!r}: use udp://host:port")
        location = f"{parsed.hostname}:{parsed.port or 8125}"
    if not isinstance(location, str) or not location:
        raise MetricsConfigError('[statsd] location is required, e.g. location = "localhost:8125"')
    host, sep, port = location.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise MetricsConfigError(f"[statsd] location {location!r}: use host:port")
    if not 1 <= int(port) <= 65535:
        raise MetricsConfigError(f"[statsd] location {location!r}: port must be from 1 to 65535")
    namespace = section.get("namespace", "faktory.")
    tags = section.get("tags", [])
    latency = section.get("queueLatency", [])
    size = section.get("bufferSize", 15)
    interval = section.get("interval", GAUGE_PERIOD)
    if not isinstance(namespace, str):
        raise MetricsConfigError("[statsd] namespace must be a string")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise MetricsConfigError("[statsd] tags must be a list of strings")
    for tag in tags:
        if not TAG.match(tag):
            raise MetricsConfigError(
                f"[statsd] tag {tag!r} must match \\A[a-zA-Z][\\w\\-\\:\\.\\/]*\\z"
            )
        if tag.partition(":")[0] in RESERVED_TAGS:
            raise MetricsConfigError(
                f"[statsd] tag {tag!r}: {', '.join(RESERVED_TAGS)} are reserved"
            )
    if not isinstance(latency, list) or not all(isinstance(q, str) for q in latency):
        raise MetricsConfigError("[statsd] queueLatency must be a list of queue names")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 1000:
        raise MetricsConfigError(f"[statsd] bufferSize must be from 1 to 1000, not {size!r}")
    if isinstance(interval, bool) or not isinstance(interval, int) or not 1 <= interval <= 86400:
        raise MetricsConfigError(
            f"[statsd] interval must be from 1 to 86400 seconds, not {interval!r}"
        )
    return {
        "interval": interval,
        "host": host.strip("[]"),
        "port": int(port),
        "namespace": namespace,
        "tags": tags,
        "queue_latency": latency,
        "buffer_size": size,
    }


class StatsdLink:
    """The running ``Statsd`` (None: statsd off) and the settings it was
    built from; the gauge task asks ``due`` every second, so a reload can
    change the interval too."""

    def __init__(self, reactor) -> None:
        self.reactor = reactor
        self.client: Statsd | None = None
        self.settings: dict[str, Any] | None = None
        self.next_gauges = 0.0

    async def _open(self, settings: dict[str, Any]) -> Statsd:
        host = settings["host"]
        try:
            address = await self.reactor.resolve(host)
        except Exception as e:  # noqa: BLE001 - say which setting is wrong
            raise MetricsConfigError(f"[statsd] location: cannot resolve {host!r}: {e}") from None
        return Statsd(
            self.reactor,
            (address, settings["port"]),
            settings["namespace"],
            settings["tags"],
            settings["buffer_size"],
        )

    async def start(self, settings: dict[str, Any] | None) -> None:
        """At start: an unresolvable host stops the server (MetricsConfigError)."""
        if settings is not None:
            self.client = await self._open(settings)
            log.info(
                "Sending statsd metrics to {host}:{port}",
                host=settings["host"],
                port=settings["port"],
            )
        self._use(settings)

    async def reload(self, settings: dict[str, Any] | None) -> None:
        """SIGHUP: apply changed settings; the old client's buffered lines are
        sent and its socket closed."""
        if settings == self.settings:
            return
        new = None
        if settings is not None:
            try:
                new = await self._open(settings)
            except MetricsConfigError as e:
                log.error("SIGHUP: statsd settings not applied, still as before: {e}", e=e)
                return
        old, self.client = self.client, new
        self._use(settings)
        if old is not None:
            await old.close()
        if settings is None:
            audit("SIGHUP (config reload)", "statsd turned off")
        else:
            audit(
                "SIGHUP (config reload)",
                "statsd now sends to {host}:{port} (namespace {namespace!r}, tags {tags}, "
                "every {interval} s)",
                host=settings["host"],
                port=settings["port"],
                namespace=settings["namespace"],
                tags=settings["tags"],
                interval=settings["interval"],
            )

    def _use(self, settings: dict[str, Any] | None) -> None:
        self.settings = settings
        if settings is not None:
            self.next_gauges = self.reactor.seconds() + settings["interval"]

    def due(self) -> bool:
        """Whether the gauges are to be sent now (and when next)."""
        if self.client is None or self.settings is None:
            return False
        now = self.reactor.seconds()
        if now + 0.5 < self.next_gauges:  # the task ticks about every second
            return False
        self.next_gauges = now + self.settings["interval"]
        return True

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
