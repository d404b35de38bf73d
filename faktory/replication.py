"""No acknowledged write lost on a failover: PUSH, PUSHB, ACK, FAIL and BATCH
are answered only once the connected replicas have the write.

Replication is asynchronous, so a primary that dies right after answering a
write may take it along.  Redis ``WAIT n timeout`` returns once ``n`` replicas
confirmed every earlier write of the connection.  All commands share one
connection (``redisconn``), so ONE WAIT sent at the end of a reactor turn
covers every write answered in that turn: the answers of those commands are
held (``RedisClient.replicated``) until it returns.

``n`` is ``[redis] wait_replicas`` capped by the replicas the primary reports
connected (``ROLE``, checked every second and on each new connection): with
no replica connected (a failover that left the new primary alone) writes go
on with the primary's own persistence and a warning is logged, rather than
stopping work.  A WAIT that times out short of ``n`` (a replica still
connected but not keeping up) fails the commands it held with ``Redis is
unavailable``: the write is on the primary only, so it is not acknowledged and
the client retries (at-least-once).  Once Redis drops the replica
(``repl-timeout``) the primary counts as alone and writes go on.

None of this is installed unless ``wait_replicas`` is above 0 (the default
with a Sentinel URL is 1), so the hot path of a plain setup is untouched.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

from .config import read_secret
from .protocol import _OK_WHEN_DONE, OK

log = Logger()

CONFIG_KEYS = [
    (
        "redis",
        "wait_replicas",
        "integer",
        "1 with a Sentinel URL, else 0",
        "Replicas that must have a PUSH/PUSHB/ACK/FAIL/BATCH before it is answered (Redis WAIT, "
        "one per reactor turn); capped by the replicas connected. 0 turns it off.",
    ),
    (
        "redis",
        "wait_timeout",
        "integer",
        "1000",
        "Milliseconds a WAIT may take; a write the replicas did not confirm by then is "
        "answered `Redis is unavailable` (the client retries).",
    ),
    (
        "redis",
        "sentinel_password",
        "string",
        '""',
        "Password of the Sentinels of a `redis+sentinel://` URL (the URL's own password is "
        "Redis's), or `/path` of a file holding it.",
    ),
]

WRITES = (b"PUSH", b"PUSHB", b"ACK", b"FAIL", b"BATCH")  # BATCH: new, commit, open...
ROLE_PERIOD = 1.0  # seconds between ROLE checks
WARN_EVERY = 30.0  # seconds between repeated warnings of one kind


class ReplicationError(ValueError):
    """A [redis] replication setting that cannot be used."""


def settings(section: Any, sentinel: bool) -> tuple[int, int]:
    """(wait_replicas, wait_timeout ms) from the ``[redis]`` table."""
    if not isinstance(section, dict):
        section = {}
    replicas = section.get("wait_replicas", 1 if sentinel else 0)
    timeout = section.get("wait_timeout", 1000)
    for key, value, top in (("wait_replicas", replicas, 100), ("wait_timeout", timeout, 9000)):
        if type(value) is not int or not 0 <= value <= top:
            raise ReplicationError(f"[redis] {key} must be an integer from 0 to {top}")
    if replicas and not timeout:
        raise ReplicationError("[redis] wait_timeout must be above 0 (0 would wait forever)")
    return replicas, timeout


def sentinel_password(section: Any) -> str:
    """``[redis] sentinel_password`` (a ``/path`` names a file holding it)."""
    value = section.get("sentinel_password", "") if isinstance(section, dict) else ""
    if not isinstance(value, str):
        raise ReplicationError("[redis] sentinel_password must be a string")
    return read_secret(value) if value else ""


def check(url: str, section: Any) -> None:
    """Raise ValueError (one line, no secret in it) if the Redis URL or the
    [redis] replication settings cannot be used."""
    from . import sentinel

    is_sentinel = sentinel.is_sentinel_url(url)
    if is_sentinel:
        sentinel.parse_url(url)
    settings(section, is_sentinel)
    sentinel_password(section)


class ReplicaMonitor:
    """Checks ROLE every second (a demoted primary is left, the replica count
    kept current) and logs when writes stop being replicated."""

    def __init__(self, redis, reactor, wanted: int) -> None:
        self.redis = redis
        self.reactor = reactor
        self.wanted = wanted
        self.alone = False
        self._last_shortfall_log = -WARN_EVERY
        redis.on_role = self._role_seen
        redis.on_shortfall = self._shortfall
        self._loop = task.LoopingCall(self._check)
        self._loop.clock = reactor

    def start(self) -> None:
        self._loop.start(ROLE_PERIOD, now=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def _check(self) -> defer.Deferred | None:
        proto = self.redis._proto
        if proto is None:
            return None
        d = proto.execute_command("ROLE")
        d.addCallback(self.redis.check_role, proto)
        d.addErrback(lambda f: None)  # an outage is reported by the commands themselves
        return d

    def _role_seen(self, redis) -> None:
        alone = self.wanted > 0 and redis.replicas == 0
        if alone and not self.alone:
            log.warn(
                "No Redis replica connected: writes are answered on the primary's own "
                "persistence (wait_replicas={n} resumes when a replica connects)",
                n=self.wanted,
            )
        elif self.alone and not alone:
            log.info("{n} Redis replica(s) connected: writes wait for them again", n=redis.replicas)
        self.alone = alone

    def _shortfall(self, acked: int, wanted: int) -> None:
        now = self.reactor.seconds()
        if now - self._last_shortfall_log >= WARN_EVERY:
            self._last_shortfall_log = now
            log.warn(
                "Redis WAIT timed out: {acked} of {wanted} replica(s) confirmed within "
                "{ms} ms; those writes were answered with an error ({n} such WAITs so far)",
                acked=acked,
                wanted=wanted,
                ms=self.redis.wait_timeout_ms,
                n=self.redis.replication_shortfalls,
            )


def _ok(_: Any) -> Any:
    return OK


def _held(handler, redis, answer_ok: bool):
    def command(proto, arg: str):
        result = handler(proto, arg)
        if isinstance(result, defer.Deferred):
            if answer_ok:
                result.addCallback(_ok)
            result.addCallback(redis.replicated)
        return result

    command.__doc__ = f"{handler.__doc__ or ''} (answered once the replicas have it)"
    return command


def install(server, sentinel: bool) -> ReplicaMonitor | None:
    """Hold the write commands' answers for WAIT if ``wait_replicas`` > 0.
    Call after the plugins registered their commands."""
    wanted, timeout = settings(server.settings.config.get("redis"), sentinel)
    redis = server.redis
    if not wanted and not sentinel:
        return None
    redis.require_primary = True
    if wanted:
        redis.wait_replicas = wanted
        redis.wait_timeout_ms = timeout
        commands = server.factory.commands
        for verb in WRITES:
            handler = commands.get(verb)
            if handler is not None:
                commands[verb] = _held(handler, redis, handler in _OK_WHEN_DONE)
        log.info(
            "Writes are answered once {n} replica(s) have them (WAIT, {ms} ms timeout)",
            n=wanted,
            ms=timeout,
        )
    monitor = ReplicaMonitor(redis, server.reactor, wanted)
    redis.companions.append(monitor)
    monitor.start()
    return monitor
