"""The running server: one service that brings up Redis, then the store,
manager, worker registry, listeners and timers, in that order."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from twisted.application import internet, service
from twisted.internet import defer, endpoints, task
from twisted.logger import Logger

from . import (
    backup,
    datadir,
    fastpoll,
    multiproc,
    namespace,
    opcommands,
    plugins,
    reload,
    replication,
    retention,
    startup,
)
from .admin import Admin
from .audit import audit
from .awaitable import call
from .errors import RedisRefused, StorageUnavailable
from .manager import Manager
from .plugin import WebPage
from .pressure import Pressure
from .protocol import FaktoryFactory
from .redisconn import connect
from .redisproc import RedisProcess, find_redis_server, socket_path
from .sentinel import is_sentinel_url
from .store import Store
from .workers import Workers

log = Logger()

DRAIN_TIMEOUT = 10.0  # seconds a stop waits for in-flight commands (FETCH waits 2 s)


@dataclass
class Settings:
    """Everything the server needs to run; ``tap.Options`` fills it in."""

    bind: str = "tcp:7419:interface=127.0.0.1"
    web: str | None = "tcp:7420:interface=127.0.0.1"
    data_dir: str = os.path.expanduser("~/.faktory/db")
    environment: str = "development"
    password: str = ""
    web_password: str = ""
    redis_url: str = ""
    prefix: str = "fk:"
    max_connections: int = 2000
    max_line_length: int = 16 * 1024 * 1024
    fsync: str = "everysec"
    redis_maxmemory: int = 0  # bytes; 0 = no limit (the spawned Redis only)
    redis_loglevel: str = "warning"
    config_dir: str = ""
    config: dict[str, Any] = field(default_factory=dict)  # parsed conf.d TOML
    workers: int = 1  # server processes sharing the work port (see multiproc)
    reuse_port: bool = False  # open the work port with SO_REUSEPORT
    worker_argv: list[str] = field(default_factory=list)  # a child's command line
    redis_server: str = ""  # --redis-server / [faktory] redis_server ("" = PATH)
    config_files: list[str] = field(default_factory=list)  # conf.d files read
    password_source: str = ""  # where the password came from (for the log)


class FaktoryServer(service.MultiService):
    """Owns every part of one server process.  Redis-dependent parts exist
    once ``ready`` has fired."""

    def __init__(
        self,
        settings: Settings,
        reactor=None,
        builtins: Callable[[], Sequence[Any]] | None = None,
    ) -> None:
        """``builtins`` makes fresh built-in feature plugins (``faktory.pro``
        hands them in from ``tap``: the server itself knows no feature)."""
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor
        self.settings = settings
        self.reactor = reactor
        self.password = settings.password
        self.max_connections = settings.max_connections
        self.max_line_length = settings.max_line_length
        self.connection_count = 0
        self.command_count = 0
        self.shutting_down = False
        self.started_at = reactor.seconds()
        self.origin = uuid.uuid4().hex[:12]
        self.ready: defer.Deferred = defer.Deferred()
        self.redis = self.store = self.manager = self.workers = self.admin = None
        self.pressure: Pressure | None = None
        self.factory: FaktoryFactory | None = None
        self.ports: dict[str, Any] = {}
        self._running_tasks: set[str] = set()
        self.tasks: list[tuple[str, int, Callable[[], Any]]] = []
        self.web_pages: list[WebPage] = []
        self.plugins: list[Any] = plugins.enabled(
            settings.config, builtins() if builtins is not None else ()
        )
        self.plugins_started: list[Any] = []
        self._tick = 0
        self.redis_process: RedisProcess | None = None
        self.worker_processes: multiproc.WorkerProcesses | None = None
        self.data_lock: datadir.DataDirLock | None = None
        self.redis_binary: datadir.RedisBinary | None = None
        if not settings.redis_url:
            # Started by _boot once the data dir is ours and the ports are bound.
            self.redis_process = RedisProcess(
                settings.data_dir,
                reactor,
                fsync=settings.fsync,
                maxmemory=settings.redis_maxmemory,
                loglevel=settings.redis_loglevel,
                on_fatal=self._fatal,
            )

    @property
    def clock(self):
        """The reactor under its older name (plugins written against earlier
        docs use ``server.clock.seconds()``); new code uses ``server.reactor``."""
        return self.reactor

    # -- start / stop ---------------------------------------------------------
    def startService(self) -> None:
        super().startService()
        d = defer.ensureDeferred(self._boot())
        d.addErrback(self._boot_failed)

    async def _boot(self) -> None:
        """Data dir lock, then the ports (bound but not accepting), then Redis,
        then everything that needs Redis; the ports accept once all is up.  A
        second server on the same dir or ports stops before touching Redis."""
        s = self.settings
        plugins.prepare_all(self)  # before Redis starts: its config may depend on them
        if self.redis_process is not None:
            self._claim_data_dir()
        self.factory = FaktoryFactory(self)
        opcommands.install(self.factory)  # LIST, WORKERS, WORKER; audited QUEUE/MUTATE/FLUSH
        site = None
        if s.web:
            from twisted.web.server import Site

            from .web import WebUI, access_log

            site = Site(WebUI(self).resource())
            access_log.configure(site, s.config)
        fastpoll.install(self.reactor)
        if s.workers > 1 or s.reuse_port:
            self.ports["work"] = multiproc.listen_reuseport(self.reactor, s.bind, self.factory)
        else:
            await self._listen("work", s.bind, self.factory)
        if site is not None:
            await self._listen("web", s.web, site)
        for port in self.ports.values():
            port.stopReading()  # connections wait in the backlog until we are ready
        if self.redis_process is not None:
            self.redis_process.setServiceParent(self)
            await self.redis_process.ready
            url = self.redis_process.url
        else:
            url = s.redis_url
        redis_section = s.config.get("redis")
        self.redis, self.subscriber = await connect(
            url,
            self.reactor,
            self._on_notify,
            s.prefix,
            sentinel_password=replication.sentinel_password(redis_section),
        )
        self.redis.report_outages = self.redis_process is None  # else redisproc reports it
        await namespace.claim(self.redis, s.prefix)
        self.store = Store(self.redis, s.prefix, self.origin)
        await retention.retain_history(self.store, self.reactor.seconds())
        self.manager = Manager(self.store, self.reactor)
        self.workers = Workers(self.store, self.reactor)
        self.admin = Admin(self)
        self.add_task("scheduled", 1, lambda: self.manager.promote("scheduled"))
        self.add_task("retries", 1, lambda: self.manager.promote("retries"))
        # The spawned Redis's disk is watched by its server and --workers children.
        own = self.redis_process is not None or (
            url.startswith("unix:") and urlsplit(url).path == socket_path(s.data_dir)
        )
        self.pressure = Pressure(self.store, self.manager, s.data_dir if own else None)
        self.redis.on_refusal = self.pressure.refused
        self.add_task("pressure", 1, self.pressure.check)
        self.add_task("busy", 5, self.manager.reap_reservations)
        self.add_task("workers", 15, self.workers.reap)
        self.add_task("dead", 60, self.manager.purge_dead)
        backup.install(self)  # hourly snapshots in production
        await plugins.setup_all(self)
        replication.install(self, is_sentinel_url(url))  # after plugins added commands
        reload.install(self)  # SIGHUP re-reads conf.d (cron, throttles...)
        if s.workers > 1:
            self.worker_processes = multiproc.WorkerProcesses.for_server(self, url)
            self.worker_processes.startService()
        timer = internet.TimerService(1.0, self._run_tasks)
        timer.clock = self.reactor
        timer.setServiceParent(self)
        for port in self.ports.values():
            port.startReading()
        startup.log_summary(self)
        self.ready.callback(self)

    def _claim_data_dir(self) -> None:
        """Create and lock the data dir, and pick the Redis binary that may open it."""
        s = self.settings
        data_dir = datadir.prepare(s.data_dir)
        self.data_lock = datadir.DataDirLock(data_dir).acquire()
        explicit = bool(s.redis_server)
        path = s.redis_server or find_redis_server()
        self.redis_binary = datadir.probe_binary(path)
        datadir.check_redis(data_dir, self.redis_binary, explicit)
        self.redis_process.binary = self.redis_binary.path
        self.redis_process.identity = self.redis_binary
        restored = datadir.take_restore_note(data_dir)
        if restored is not None:
            audit(
                f"faktory-cli restore by {restored.get('by', '?')} at {restored.get('at', '?')}",
                "restored {keys} key(s) from {file}{how}",
                keys=restored.get("keys", "?"),
                file=restored.get("file", "?"),
                how=" (replacing what was there)" if restored.get("replace") else "",
            )
        log.info(
            "Redis binary {path}, version {version}",
            path=self.redis_binary.path,
            version=self.redis_binary.version,
        )

    async def _listen(self, name: str, description: str, factory) -> None:
        endpoint = endpoints.serverFromString(self.reactor, description)
        self.ports[name] = await endpoint.listen(factory)

    def _boot_failed(self, failure) -> None:
        if failure.check(*startup.EXPECTED):
            # Something for the operator to fix: one line, no traceback.
            log.critical("Faktory server failed to start: {why}", why=startup.reason(failure))
        else:
            log.failure("Faktory server failed to start", failure)
        if not self.ready.called:
            self.ready.errback(failure)
            self.ready.addErrback(lambda _: None)
        self._fatal()

    # Set by ``tap.makeService``: under twistd a server that cannot run must
    # exit non-zero (so systemd or a supervisor sees the failure), after the
    # normal shutdown has stopped Redis.  In-process (tests) it is left None.
    fatal_exit_status: int | None = None

    def _fatal(self) -> None:
        if self.fatal_exit_status is not None:
            self.reactor.addSystemEventTrigger(
                "after", "shutdown", os._exit, self.fatal_exit_status
            )
        if self.reactor.running:
            self.reactor.stop()
        else:
            # Failed before the reactor runs (twist starts services first):
            # stop as soon as it does, instead of running on with nothing.
            self.reactor.callWhenRunning(self._stop_reactor)

    def _stop_reactor(self) -> None:
        if self.reactor.running:
            self.reactor.stop()

    @defer.inlineCallbacks
    def stopService(self):
        """Stop accepting, let in-flight commands answer, then stop Redis."""
        self.shutting_down = True
        if self.worker_processes is not None:
            yield self.worker_processes.stopService()  # while Redis still serves them
        for port in self.ports.values():
            yield port.stopListening()
        self.ports.clear()
        yield self._drain()
        yield defer.ensureDeferred(plugins.shutdown_all(self))
        if self.redis is not None:
            self._disconnect()
        yield super().stopService()
        if self.data_lock is not None:
            self.data_lock.release()  # after Redis has saved and exited

    @defer.inlineCallbacks
    def _drain(self, timeout: float = DRAIN_TIMEOUT):
        """Wait until every command already running has answered (a FETCH may
        wait 2 s for work), so no client loses a reply it was promised."""
        if self.factory is None or not self.factory.in_flight:
            return
        log.info("Stopping: waiting for {n} command(s) in flight", n=self.factory.in_flight)
        deadline = self.reactor.seconds() + timeout
        while self.factory.in_flight and self.reactor.seconds() < deadline:
            yield task.deferLater(self.reactor, 0.02, lambda: None)
        if self.factory.in_flight:
            log.warn("Stopping with {n} command(s) unanswered", n=self.factory.in_flight)

    def _disconnect(self):
        self.subscriber.stopService()
        self.redis.disconnect()

    # -- notifications and timers --------------------------------------------
    def _on_notify(self, message) -> None:
        if self.manager is not None:
            self.manager.remote_notify(message)

    def add_task(self, name: str, period: int, fn: Callable[[], Any]) -> None:
        """Run ``fn`` (which may return a Deferred or coroutine) every ``period``
        seconds; a run still going when the next is due is not overlapped, and
        failures are logged.  Every server sharing a Redis runs every task, so
        tasks must be safe to run concurrently (atomic scripts)."""
        self.tasks.append((name, period, fn))

    def add_web_page(self, page: WebPage) -> None:
        self.web_pages.append(page)

    def _task_failed(self, failure, name: str) -> None:
        if failure.check(RedisRefused):
            return  # out of memory / disk full: logged once per episode (pressure)
        if failure.check(defer.FirstError):
            failure = failure.value.subFailure
        if failure.check(StorageUnavailable):
            # An outage is logged once where it is seen (Redis exited / the
            # connection dropped); a task skipped meanwhile is no news.
            log.debug("Task {task} skipped: {why}", task=name, why=failure.value)
            return
        log.failure("Task {task} failed", failure, task=name)

    def _run_tasks(self) -> None:
        self._tick += 1
        for name, period, fn in self.tasks:
            if self._tick % period == 0 and name not in self._running_tasks:
                self._running_tasks.add(name)
                d = defer.ensureDeferred(call(fn))
                d.addErrback(self._task_failed, name)
                d.addBoth(lambda _, n=name: self._running_tasks.discard(n))
