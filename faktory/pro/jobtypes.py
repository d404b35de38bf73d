"""The web UI's *Job types* page (``/jobtypes``, ``/jobtypes?type=<jobtype>``):
per job type, how many ran, how many failed and how long they took (50th,
95th and 99th percentile) over the last hour and the last day.

The figures are the metrics plugin's (``faktory.pro.metrics``): its
per-second flush adds every execution's outcome and duration bucket to the
totals hash and to two time slots, ``metrics:jobs:m:<n>`` (5 minutes) and
``metrics:jobs:h:<n>`` (1 hour), which expire once their window has passed.
The last hour is the 13 five-minute slots that overlap it, the last day the
25 hourly slots: a window is up to one slot longer than its name, never
shorter.  Percentiles are estimated from the histogram buckets, by linear
interpolation inside the bucket, as Prometheus' ``histogram_quantile`` does.

A Pro page: it plugs into the web UI through ``server.add_web_page``; the
core web UI knows nothing of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from ..errors import gather
from ..plugin import WebPage
from ..web.i18n import N_, Translator, for_request
from ..web.layout import empty, table, tags
from .jobstats import BUCKETS, window_keys

WINDOWS = (("hour", "m", 3600), ("day", "h", 86400))
QUANTILES = (0.5, 0.95, 0.99)


@dataclass
class Figures:
    """One job type's executions in a window."""

    ok: int = 0
    fail: int = 0
    us: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))

    def add(self, kind: str, n: int) -> None:
        if kind in ("ok", "fail", "us"):
            setattr(self, kind, getattr(self, kind) + n)
        elif kind.startswith("b") and kind[1:].isdigit() and int(kind[1:]) < len(self.buckets):
            self.buckets[int(kind[1:])] += n

    @property
    def processed(self) -> int:
        return self.ok + self.fail

    def mean(self) -> float | None:
        return self.us / 1e6 / self.processed if self.processed else None

    def percentile(self, q: float) -> float | None:
        """Seconds; ``inf`` when it falls past the last bucket bound."""
        count = sum(self.buckets)
        if not count:
            return None
        rank, seen = q * count, 0
        for i, n in enumerate(self.buckets):
            if n and seen + n >= rank:
                if i == len(BUCKETS):
                    return float("inf")
                lower = BUCKETS[i - 1] if i else 0.0
                return lower + (BUCKETS[i] - lower) * (rank - seen) / n
            seen += n
        return float("inf")


async def read(redis, keys: list[str]) -> dict[str, Figures]:
    """{jobtype: Figures} summed over the hashes ``keys``."""
    hashes = await gather([redis.execute_command("HGETALL", k) for k in keys])
    out: dict[str, Figures] = {}
    for flat in hashes:
        for i in range(0, len(flat), 2):
            name = flat[i].decode() if isinstance(flat[i], bytes) else str(flat[i])
            kind, _, jobtype = name.partition("|")
            out.setdefault(jobtype, Figures()).add(kind, int(flat[i + 1]))
    return out


class JobTypesPage:
    def __init__(self, metrics) -> None:
        self.metrics = metrics

    def attach(self, server) -> None:
        server.add_web_page(WebPage(path="jobtypes", title=N_("Job types"), render=self.render))

    async def windows(self) -> dict[str, dict[str, Figures]]:
        """{"hour"|"day"|"total": {jobtype: Figures}}, this server's
        unflushed counts included."""
        metrics = self.metrics
        await metrics.flush()
        server = metrics.server
        now, prefix = server.reactor.seconds(), server.store.prefix
        redis = server.store.redis
        out = {}
        for name, kind, seconds in WINDOWS:
            out[name] = await read(redis, window_keys(prefix, now, kind, seconds))
        out["total"] = await read(redis, [prefix + "metrics:jobs"])
        return out

    async def render(self, request):
        tr = for_request(request)
        raw = request.args.get(b"type")
        windows = await self.windows()
        if raw:
            return detail(tr, raw[0].decode("utf-8", "replace"), windows)
        return index(tr, windows)


def _seconds(tr: Translator, value: float | None) -> str:
    if value is None:
        return "-"
    if value == float("inf"):
        return "> " + tr.duration(BUCKETS[-1])
    return tr.duration(value)


def _link(jobtype: str) -> str:
    # Relative: the page is served at <prefix>/jobtypes, behind any proxy prefix.
    return "jobtypes?" + urlencode({"type": jobtype})


def index(tr: Translator, windows: dict[str, dict[str, Figures]]) -> Any:
    day, hour = windows["day"], windows["hour"]
    if not day:
        return empty(tr._("No job has finished in the last day."))
    rows = []
    for jobtype in sorted(day, key=lambda j: (-day[j].processed, j)):
        h, d = hour.get(jobtype, Figures()), day[jobtype]
        rows.append(
            tags.tr(
                tags.td(tags.a(tags.code(jobtype or "-"), href=_link(jobtype))),
                tags.td(tr.number(h.processed), class_="num"),
                tags.td(tr.number(h.fail), class_="num"),
                tags.td(_seconds(tr, h.percentile(0.5)), class_="num"),
                tags.td(_seconds(tr, h.percentile(0.95)), class_="num"),
                tags.td(tr.number(d.processed), class_="num"),
                tags.td(tr.number(d.fail), class_="num"),
                tags.td(_seconds(tr, d.percentile(0.95)), class_="num"),
                **{"data-jobtype": jobtype},
            )
        )
    headers = [
        tr._("Job type"),
        tr._("Processed, last hour"),
        tr._("Failed, last hour"),
        tr._("Median, last hour"),
        tr._("95th percentile, last hour"),
        tr._("Processed, last day"),
        tr._("Failed, last day"),
        tr._("95th percentile, last day"),
    ]
    note = tr._(
        "Executions that ended (ACK or FAIL) on every server sharing this Redis; "
        "durations from FETCH to ACK or FAIL."
    )
    return tags.div(tags.p(note, class_="muted"), table(headers, rows, "jobtypes"))


def detail(tr: Translator, jobtype: str, windows: dict[str, dict[str, Figures]]) -> Any:
    columns = [("hour", tr._("Last hour")), ("day", tr._("Last day")), ("total", tr._("In total"))]
    figures = [windows[name].get(jobtype, Figures()) for name, _ in columns]

    def rate(f: Figures) -> str:
        return (
            tr._("{n} %", n=tr.number(round(100 * f.fail / f.processed, 1))) if f.processed else "-"
        )

    lines: list[tuple[str, list[str]]] = [
        (tr._("Processed"), [tr.number(f.processed) for f in figures]),
        (tr._("Failed"), [tr.number(f.fail) for f in figures]),
        (tr._("Failure rate"), [rate(f) for f in figures]),
        (tr._("Average"), [_seconds(tr, f.mean()) for f in figures]),
    ]
    for q, label in zip(QUANTILES, (N_("Median"), N_("95th percentile"), N_("99th percentile"))):
        lines.append((tr._(label), [_seconds(tr, f.percentile(q)) for f in figures]))
    rows = [
        tags.tr(
            tags.th(label, scope="row"),
            *[tags.td(v, class_="num") for v in values],
            **{"data-figure": str(i)},
        )
        for i, (label, values) in enumerate(lines)
    ]
    links = tags.p(
        tags.a(tr._("All job types"), href="jobtypes"),
        " · ",
        tags.a(tr._("Its retries"), href="retries?" + _query(jobtype)),
        " · ",
        tags.a(tr._("Its dead jobs"), href="morgue?" + _query(jobtype)),
        class_="muted",
    )
    return tags.div(
        tags.h2(tags.code(jobtype or "-"), class_="jobtype"),
        links,
        table([""] + [label for _, label in columns], rows, "jobtype-figures"),
    )


def _query(jobtype: str) -> str:
    return urlencode({"jobtype": jobtype})
