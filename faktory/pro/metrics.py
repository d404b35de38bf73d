"""Metrics: statsd (the names Faktory Pro/Enterprise sends) and a Prometheus
``/metrics`` endpoint on the web port.

statsd is configured like the real server (reference §9.7), in any
``conf.d/*.toml`` (or with ``DD_DOGSTATSD_URL=udp://host:port``); a SIGHUP
applies a changed table (``faktory.pro.statsd``)::

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
from collections import defaultdict
from typing import Any

from twisted.logger import Logger

from ..errors import gather
from ..job import parse_time
from ..plugin import WebPage
from .jobstats import BUCKETS, DEFAULT_LIMIT, MetricsStore, limit_setting
from .jobtypes import JobTypesPage
from .statsd import (
    Statsd,
    StatsdLink,
    _num,
    _tag_value,
    statsd_settings,
)

log = Logger()

# Duration histogram buckets (seconds) for the Prometheus endpoint.
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
        self.link: StatsdLink | None = None
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
        self.link = StatsdLink(server.reactor)
        await self.link.start(statsd_settings(server.settings.config, dict(os.environ)))
        # Every second, cheap when off: a SIGHUP may turn statsd on or change its interval.
        server.add_task("statsd", 1, self.send_gauges)

    @property
    def statsd(self) -> Statsd | None:
        """The running statsd client (None when off); a SIGHUP may swap it."""
        return self.link.client if self.link is not None else None

    async def reload(self, server) -> None:
        """SIGHUP: a new ``[metrics] jobtypes`` applies at the next flush, new
        ``[statsd]`` settings at once (checked already by ``check_config``)."""
        self.store.limit = limit_setting(server.settings.config)
        await self.link.reload(statsd_settings(server.settings.config, dict(os.environ)))

    async def shutdown(self, server) -> None:
        try:
            await self.flush()
        except Exception:  # noqa: BLE001 - Redis may already be going away
            log.failure("Could not save the last job metrics")
        if self.link is not None:
            await self.link.close()

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
        if not self.link.due():
            return
        server = self.server
        store = server.store
        queues, sets, (processed, failures), rtt = await gather(
            [store.queue_sizes(), store.set_sizes(), store.counters(), self.store.rtt()]
        )
        wanted = (self.link.settings or {}).get("queue_latency", [])
        latency = await server.admin.queue_latency([q for q in wanted if q])
        statsd = self.statsd  # after the waits: a SIGHUP may have swapped it
        if statsd is None:
            return
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
