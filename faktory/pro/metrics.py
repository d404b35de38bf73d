"""Metrics: statsd (the names Faktory Pro/Enterprise sends) and a Prometheus
``/metrics`` endpoint on the web port.

statsd is configured like the real server (reference §9.7), in any
``conf.d/*.toml`` (or with ``DD_DOGSTATSD_URL=udp://host:port``)::

    [statsd]
    location = "127.0.0.1:8125"     # required to send anything
    namespace = "faktory."          # prefix of every name (default)
    tags = ["env:production"]       # DogStatsD tags added to every metric
    bufferSize = 15                 # metrics per packet; buffered at most 100 ms
    queueLatency = ["critical", "default"]
    interval = 30                   # seconds between gauges (our addition)

What is sent (names after the namespace; see docs/metrics.md):

* every 30 s, gauges: ``processed``, ``failures`` (totals), ``connections``,
  ``enqueued``, ``working``, ``scheduled``, ``retries``, ``dead``,
  ``queue.size`` (tag ``queue:<name>``, every queue), ``queue.latency``
  (seconds the oldest job has waited; tag ``queue:<name>``, the queues in
  ``queueLatency``), ``ops.redis.rtt_us``;
* on every ACK/FAIL (tags ``queue:<q>``, ``jobtype:<type>``): counter
  ``jobs.count``, counter ``jobs.failed`` (FAIL only), timing ``jobs.perform``
  (ms from FETCH to ACK/FAIL); counter ``jobs.expired`` when a job is dropped
  at FETCH.

Prometheus: per-jobtype execution counts and FETCH->ACK/FAIL duration
histograms are summed in a Redis hash, so every server sharing the Redis shows
the same cluster-wide numbers; each server adds its own counts there at most a
second late (and before it renders ``/metrics``).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from typing import Any
from urllib.parse import urlparse

from twisted.internet import defer
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from ..errors import gather
from ..job import parse_time
from ..plugin import WebPage
from .jobstats import BUCKETS, DEFAULT_LIMIT, MetricsStore, limit_setting
from .jobtypes import JobTypesPage

log = Logger()

GAUGE_PERIOD = 30  # seconds between global gauges, as the real server
FLUSH_DELAY = 0.1  # statsd lines wait at most this long for a full packet
# Duration histogram buckets (seconds) for the Prometheus endpoint.
TAG = re.compile(r"\A[a-zA-Z][\w\-:./]*\Z")
RESERVED_TAGS = ("host", "device", "source", "service")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
KINDS = ("ok", "fail", "us", *(f"b{i}" for i in range(len(BUCKETS) + 1)))  # hash fields


# TOML keys this module reads, for the generated configuration reference.
CONFIG_KEYS = [
    (
        "statsd",
        "location",
        "string",
        "(none: statsd off)",
        "``host:port`` of the statsd / DogStatsD agent (UDP; port 1 to 65535). "
        "``DD_DOGSTATSD_URL=udp://host:port`` in the environment does the same.",
    ),
    ("statsd", "namespace", "string", '"faktory."', "Prefix of every metric name."),
    (
        "metrics",
        "jobtypes",
        "integer",
        str(DEFAULT_LIMIT),
        "Job types with series of their own in ``/metrics`` (1 to 10 000): the busiest "
        'ones; the others are summed under ``jobtype="other"``.',
    ),
    (
        "statsd",
        "tags",
        "list of strings",
        "[]",
        "DogStatsD tags added to every metric; ``host``, ``device``, ``source`` and "
        "``service`` are reserved.",
    ),
    (
        "statsd",
        "bufferSize",
        "integer",
        "15",
        "Metrics per UDP packet, 1 to 1000 (each waits 100 ms at most).",
    ),
    (
        "statsd",
        "queueLatency",
        "list of queue names",
        "[]",
        "Queues whose ``queue.latency`` (age of the oldest job) is sent.",
    ),
    (
        "statsd",
        "interval",
        "integer",
        "30",
        "Seconds between the gauges (``processed``, ...), 1 to 86 400.",
    ),
]


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
        self._proto = _UDP()
        self._port = reactor.listenUDP(0, self._proto, interface="::" if ":" in address[0] else "")

    def _emit(self, name: str, value: Any, kind: str, tags: list[str] | None) -> None:
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


def bucket_index(seconds: float) -> int:
    for i, bound in enumerate(BUCKETS):
        if seconds <= bound:
            return i
    return len(BUCKETS)


class MetricsPlugin:
    """Times every ACK/FAIL, feeds statsd and the Prometheus endpoint."""

    name = "metrics"
    config_keys = CONFIG_KEYS  # the TOML keys it reads (config check, docs)

    def __init__(self) -> None:
        self.server: Any = None
        self.store: MetricsStore | None = None
        self.statsd: Statsd | None = None
        self.queue_latency: list[str] = []
        self.pending: dict[str, int] = defaultdict(int)

    @staticmethod
    def check_config(config: dict[str, Any]) -> None:
        statsd_settings(config, dict(os.environ))
        limit_setting(config)

    async def render_prometheus(self, request) -> bytes:
        """The web UI's ``/metrics``: Prometheus text for every server sharing the Redis."""
        text = await self.prometheus_text()
        request.setHeader("Content-Type", CONTENT_TYPE)
        request.setHeader("Cache-Control", "no-cache")
        return text.encode()

    async def setup(self, server) -> None:
        self.server = server
        self.store = MetricsStore(server.store, KINDS, limit_setting(server.settings.config))
        server.metrics = self
        server.manager.use("settled", self.on_settled)
        server.add_task("metrics-flush", 1, self.flush)
        JobTypesPage(self).attach(server)
        server.add_web_page(
            WebPage(
                path="metrics", title="Metrics", render=self.render_prometheus, nav=False, raw=True
            )
        )
        settings = statsd_settings(server.settings.config, dict(os.environ))
        if settings is not None:
            host = settings["host"]
            try:
                address = await server.reactor.resolve(host)
            except Exception as e:  # noqa: BLE001 - say which setting is wrong
                raise MetricsConfigError(
                    f"[statsd] location: cannot resolve {host!r}: {e}"
                ) from None
            self.statsd = Statsd(
                server.reactor,
                (address, settings["port"]),
                settings["namespace"],
                settings["tags"],
                settings["buffer_size"],
            )
            self.queue_latency = settings["queue_latency"]
            server.add_task("statsd", settings["interval"], self.send_gauges)
            log.info("Sending statsd metrics to {host}:{port}", host=host, port=settings["port"])

    def reload(self, server) -> None:
        """SIGHUP: a new ``[metrics] jobtypes`` applies at the next flush."""
        self.store.limit = limit_setting(server.settings.config)

    async def shutdown(self, server) -> None:
        try:
            await self.flush()
        except Exception:  # noqa: BLE001 - Redis may already be going away
            log.failure("Could not save the last job metrics")
        if self.statsd is not None:
            await self.statsd.close()

    # -- job timings ------------------------------------------------------
    def on_settled(self, job: dict, outcome: str, reservation: dict) -> None:
        jobtype = str(job.get("jobtype", ""))
        queue = str(job.get("queue", ""))
        if outcome == "discard":
            if self.statsd is not None:
                self.statsd.increment("jobs.expired", self._tags(queue, jobtype))
            return
        try:
            elapsed = max(
                0.0, self.server.reactor.seconds() - parse_time(reservation["reserved_at"])
            )
        except (KeyError, TypeError, ValueError):
            elapsed = 0.0
        ok = outcome == "ack"
        pending = self.pending
        pending[("ok|" if ok else "fail|") + jobtype] += 1
        pending["us|" + jobtype] += int(elapsed * 1e6)
        pending[f"b{bucket_index(elapsed)}|{jobtype}"] += 1
        if self.statsd is not None:
            tags = self._tags(queue, jobtype)
            self.statsd.increment("jobs.count", tags)
            if not ok:
                self.statsd.increment("jobs.failed", tags)
            self.statsd.timing("jobs.perform", elapsed * 1000, tags)

    @staticmethod
    def _tags(queue: str, jobtype: str) -> list[str]:
        return [f"queue:{_tag_value(queue)}", f"jobtype:{_tag_value(jobtype)}"]

    async def flush(self) -> None:
        """Add this server's counts since the last flush to the shared hash."""
        if not self.pending:
            return
        batch, self.pending = dict(self.pending), defaultdict(int)
        try:
            await self.store.add(batch, self.server.reactor.seconds())
        except Exception:
            for k, v in batch.items():  # keep them for the next try
                self.pending[k] += v
            raise

    # -- statsd gauges ----------------------------------------------------
    async def send_gauges(self) -> None:
        server, statsd = self.server, self.statsd
        store = server.store
        queues, sets, (processed, failures), rtt = await gather(
            [store.queue_sizes(), store.set_sizes(), store.counters(), self.store.rtt()]
        )
        latency = await server.admin.queue_latency([q for q in self.queue_latency if q])
        statsd.gauge("processed", processed)
        statsd.gauge("failures", failures)
        statsd.gauge("connections", server.connection_count)
        statsd.gauge("enqueued", sum(queues.values()))
        for name in ("working", "scheduled", "retries", "dead"):
            statsd.gauge(name, sets[name])
        for queue, n in sorted(queues.items()):
            statsd.gauge("queue.size", n, [f"queue:{_tag_value(queue)}"])
        for queue, seconds in latency.items():
            statsd.gauge("queue.latency", round(seconds, 3), [f"queue:{_tag_value(queue)}"])
        statsd.gauge("ops.redis.rtt_us", int(rtt * 1e6))
        statsd.flush()

    # -- Prometheus ---------------------------------------------------------
    async def prometheus_text(self) -> str:
        """Every metric in the Prometheus text exposition format (0.0.4)."""
        server = self.server
        store = server.store
        try:
            await self.flush()
        except Exception:  # noqa: BLE001 - render what Redis has
            log.failure("Could not save job metrics before rendering /metrics")
        queues, sets, (processed, failures), workers, jobstats, rtt = await gather(
            [
                store.queue_sizes(),
                store.set_sizes(),
                store.counters(),
                self.store.worker_count(),
                self.store.job_stats(),
                self.store.rtt(),
            ]
        )
        latency = await server.admin.queue_latency(sorted(queues))
        out: list[str] = []

        def metric(name: str, kind: str, help_: str, samples) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                out.append(f"{name}{_labels(labels)} {_num(value)}")

        metric(
            "faktory_jobs_processed_total",
            "counter",
            "Jobs ACKed or FAILed, all servers sharing this Redis.",
            [({}, processed)],
        )
        metric(
            "faktory_jobs_failed_total",
            "counter",
            "Job executions that FAILed, all servers.",
            [({}, failures)],
        )
        metric(
            "faktory_queue_size",
            "gauge",
            "Jobs waiting in each queue.",
            [({"queue": q}, n) for q, n in sorted(queues.items())],
        )
        metric(
            "faktory_queue_latency_seconds",
            "gauge",
            "How long the oldest job in each queue has waited (0 when empty).",
            [({"queue": q}, round(latency.get(q, 0.0), 6)) for q in sorted(queues)],
        )
        metric(
            "faktory_jobs",
            "gauge",
            "Jobs in the scheduled, retries and dead sets, and reserved by workers.",
            [({"set": name}, sets[name]) for name in ("scheduled", "retries", "dead", "working")],
        )
        metric(
            "faktory_connections",
            "gauge",
            "Client connections open on this server process.",
            [({}, server.connection_count)],
        )
        metric("faktory_workers", "gauge", "Worker processes sending heartbeats.", [({}, workers)])
        metric(
            "faktory_redis_rtt_seconds",
            "gauge",
            "Round trip of one Redis PING from this server.",
            [({}, round(rtt, 6))],
        )
        executions, buckets, sums, counts = [], [], [], []
        for jobtype in sorted(jobstats):
            st = jobstats[jobtype]
            executions.append(({"jobtype": jobtype, "outcome": "success"}, st.get("ok", 0)))
            executions.append(({"jobtype": jobtype, "outcome": "failure"}, st.get("fail", 0)))
            running = 0
            for i, bound in enumerate((*BUCKETS, "+Inf")):
                running += st.get(f"b{i}", 0)
                buckets.append(
                    (
                        {"jobtype": jobtype, "le": _num(bound) if i < len(BUCKETS) else bound},
                        running,
                    )
                )
            sums.append(({"jobtype": jobtype}, st.get("us", 0) / 1e6))
            counts.append(({"jobtype": jobtype}, running))
        metric(
            "faktory_job_executions_total",
            "counter",
            "Executions per jobtype by outcome (ACK = success, FAIL = failure), all servers.",
            executions,
        )
        out.append(
            "# HELP faktory_job_duration_seconds Time from FETCH to ACK or FAIL, all servers."
        )
        out.append("# TYPE faktory_job_duration_seconds histogram")
        for labels, value in buckets:
            out.append(f"faktory_job_duration_seconds_bucket{_labels(labels)} {_num(value)}")
        for (labels, total), (_, n) in zip(sums, counts):
            out.append(f"faktory_job_duration_seconds_sum{_labels(labels)} {_num(total)}")
            out.append(f"faktory_job_duration_seconds_count{_labels(labels)} {n}")
        return "\n".join(out) + "\n"


def _labels(labels: dict[str, Any]) -> str:
    if not labels:
        return ""
    body = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def find(server) -> MetricsPlugin | None:
    for plugin in getattr(server, "plugins", []):
        if isinstance(plugin, MetricsPlugin) and plugin.server is server:
            return plugin
    return None
