"""Queue throttles from the ``[throttles]`` config table::

    [throttles]
    instagram = { concurrency = 4, timeout = 60 }   # 4 running cluster-wide
    bulk      = { worker = 5, timeout = 60 }        # 5 per worker process
    api       = { rate = 10, period = 1 }           # 10 fetched per second

Enforcement lives in the FETCH script itself (``pro/lua/throttle.lua``, put
into the core's scripts with ``Store.use_fragment`` at setup): a
queue at its limit is skipped, not waited on, and the slot is taken in the
same atomic step as the pop, so any number of servers sharing the Redis
cannot overshoot.  ACK, FAIL, the reservation reaper and a refused FETCH give
the slot back; a lock older than ``timeout`` seconds lapses (a worker that
died holding it).  This module turns the config into ``throttle:conf``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.template import Tag, tags

from .. import luascript
from ..job import QUEUE_NAME
from ..plugin import WebPage
from ..store import Store
from ..web.i18n import N_, for_request
from .pages import table, with_code

log = Logger()

DEFAULT_TIMEOUT = 60
_CONFIGURE = luascript.load("throttle_configure", "faktory.pro")
_USAGE = luascript.load("throttle_usage", "faktory.pro")


# TOML keys this module reads, for the generated configuration reference.
CONFIG_KEYS = [
    (
        "throttles",
        "<queue>",
        "inline table",
        "(none)",
        "Limits for one queue: ``concurrency`` (running at once, cluster-wide), "
        "``worker`` (running at once per worker process), ``rate`` jobs per ``period`` "
        "seconds (default 1), and ``timeout`` (seconds before a slot held by a job that "
        "was never ACKed or FAILed lapses, default 60). A throttled queue is skipped by FETCH. "
        "Ranges: ``concurrency`` and ``worker`` 0 to 1 000 000, ``rate`` 0 to 10⁹, "
        "``period`` 1 to 86 400 s, ``timeout`` 1 to 604 800 s.",
    ),
]


# Allowed range of each key: (lowest, highest, unit).
LIMITS = {
    "concurrency": (0, 1_000_000, ""),
    "worker": (0, 1_000_000, ""),
    "rate": (0, 1_000_000_000, ""),
    "period": (1, 86_400, " seconds"),
    "timeout": (1, 7 * 86_400, " seconds"),
}


class ThrottleError(ValueError):
    """A ``[throttles]`` entry that cannot be used; the text says which and why."""


@dataclass(frozen=True)
class Throttle:
    queue: str
    concurrency: int = 0
    worker: int = 0
    rate: int = 0
    period: int = 1
    timeout: int = DEFAULT_TIMEOUT

    def spec(self) -> str:
        """The ``throttle:conf`` value the FETCH script reads."""
        return f"{self.concurrency} {self.timeout} {self.worker} {self.rate} {self.period}"


def parse_throttles(config: dict[str, Any]) -> list[Throttle]:
    table_ = config.get("throttles", {})
    if not isinstance(table_, dict):
        raise ThrottleError("[throttles] must be a table of queue = { ... } entries")
    out = []
    for queue, spec in table_.items():
        where = f"[throttles] {queue}"
        if not QUEUE_NAME.match(queue):
            raise ThrottleError(f"{where}: not a valid queue name")
        if not isinstance(spec, dict):
            raise ThrottleError(f"{where} must be a table like {{ concurrency = 4, timeout = 60 }}")
        unknown = set(spec) - {"concurrency", "worker", "rate", "period", "timeout"}
        if unknown:
            raise ThrottleError(f"{where}: unknown keys {sorted(unknown)}")
        values = {}
        for key, value in spec.items():
            lo, hi, unit = LIMITS[key]
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ThrottleError(
                    f"{where}: {key} must be a whole number from {lo} to {hi}{unit}, not {value!r}"
                )
            values[key] = value
        t = Throttle(queue, **values)
        if not (t.concurrency or t.worker or t.rate):
            raise ThrottleError(f"{where}: set concurrency, worker or rate")
        out.append(t)
    return out


class ThrottleStore:
    def __init__(self, store: Store) -> None:
        self.redis = store.redis
        self.prefix = store.prefix

    def configure(self, throttles: list[Throttle]) -> defer.Deferred:
        args = [self.prefix + "throttle:conf"]
        for t in throttles:
            args += [t.queue, t.spec()]
        return _CONFIGURE(self.redis, args)

    @defer.inlineCallbacks
    def usage(self, queues: list[str], now: float):
        """{queue: (in use, busiest worker's count, fetched this rate window)}."""
        if not queues:
            return {}
        flat = yield _USAGE(self.redis, (self.prefix, repr(now), *queues))
        return {q: tuple(int(x) for x in flat[i * 3 : i * 3 + 3]) for i, q in enumerate(queues)}


class ThrottlePlugin:
    name = "throttle"
    config_keys = CONFIG_KEYS  # the TOML keys it reads (config check, docs)
    description = "Per-queue concurrency and rate limits from [throttles]."

    def __init__(self) -> None:
        self.server = None
        self.store: ThrottleStore | None = None
        self.throttles: list[Throttle] = []

    async def setup(self, server) -> None:
        self.server = server
        # The limits run inside the core's FETCH/ACK/FAIL/RELEASE scripts.
        server.store.use_fragment("throttle", luascript.fragment("throttle", "faktory.pro"))
        self.store = ThrottleStore(server.store)
        await self.configure(server.settings.config)
        server.add_web_page(WebPage(path="throttles", title=N_("Throttles"), render=self.render))

    def shutdown(self, server) -> None:
        pass

    @staticmethod
    def check_config(config: dict[str, Any]) -> None:
        parse_throttles(config)

    async def configure(self, config: dict[str, Any]) -> None:
        """Write this server's throttles to Redis.  Every server sharing a
        Redis should carry the same ``[throttles]``: the last one to start
        (or reload) wins."""
        self.throttles = parse_throttles(config)
        await self.store.configure(self.throttles)
        for t in self.throttles:
            log.info("Throttle on queue {queue}: {spec}", queue=t.queue, spec=_describe(t))

    async def reload(self, server) -> None:
        try:
            await self.configure(server.settings.config)
        except ThrottleError as e:
            log.error("Throttles not reloaded: {e}", e=e)

    async def usage(self) -> dict[str, tuple[int, int, int]]:
        return await self.store.usage(
            [t.queue for t in self.throttles], self.server.reactor.seconds()
        )

    async def render(self, request) -> Tag:
        tr = for_request(request)
        n = tr.number
        if not self.throttles:
            text = tr._(
                "No queue is throttled. Add a {table} table to a {file} file (see docs/throttles.md)."
            )
            return tags.p(*with_code(text, table="[throttles]", file="conf.d/*.toml"))
        usage = await self.usage()
        rows = []
        for t in self.throttles:
            running, busiest, fetched = usage[t.queue]
            rows.append(
                [
                    t.queue,
                    f"{n(running)} / {n(t.concurrency)}" if t.concurrency else "-",
                    f"{n(busiest)} / {n(t.worker)}" if t.worker else "-",
                    tr._(
                        "{used} / {rate} per {seconds} s",
                        used=n(fetched),
                        rate=n(t.rate),
                        seconds=n(t.period),
                    )
                    if t.rate
                    else "-",
                    tr._("{n} s", n=n(t.timeout)),
                ]
            )
        head = [
            tr._("Queue"),
            tr._("Running (cluster)"),
            tr._("Busiest worker"),
            tr._("Rate"),
            tr._("Lock timeout"),
        ]
        return table(head, rows)


def _describe(t: Throttle) -> str:
    parts = []
    if t.concurrency:
        parts.append(f"{t.concurrency} at once")
    if t.worker:
        parts.append(f"{t.worker} per worker")
    if t.rate:
        parts.append(f"{t.rate} per {t.period} s")
    return ", ".join(parts) + f", locks expire after {t.timeout} s"
