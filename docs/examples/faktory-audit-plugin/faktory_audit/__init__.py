"""An audit trail for faktory-server, written as an example of every plugin hook.

* PUSH middleware refuses jobs whose jobtype is blocked (``-BLOCKED ...``),
  tags the others with ``custom.audited_by`` and records them;
* ACK and FAIL middleware record outcomes (FAIL with the error type);
* ``AUDIT [n]`` returns the newest n records as JSON;
* a web UI page ``/audit`` with a nav link lists them;
* a periodic task drops records older than ``max_age`` seconds;
* setup and shutdown log what they do.

Records live in one Redis sorted set under the server's key prefix, scored by
time, so every server sharing the Redis sees the same trail and each write or
sweep is a single atomic command.

Config (``conf.d/*.toml``)::

    [plugins]
    enabled = ["audit"]

    [plugins.audit]
    blocked = ["EvilJob"]   # job types refused at PUSH
    max_age = 86400         # seconds a record is kept
    sweep_every = 60        # seconds between retention sweeps
"""

from __future__ import annotations

import html
import json
import uuid
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from faktory.errors import CommandError, Halt
from faktory.plugin import IFaktoryPlugin, WebPage, plugin_settings

log = Logger()


class AuditTrail:
    """The audit state of one server (a plugin object may serve several
    servers in one process, e.g. in tests)."""

    def __init__(self, server: Any, settings: dict[str, Any]) -> None:
        self.server = server
        self.key = server.store.key("audit")
        self.blocked = _names(settings.get("blocked", []))
        self.max_age = _positive(settings.get("max_age", 86400), "max_age")
        self.sweep_every = int(_positive(settings.get("sweep_every", 60), "sweep_every"))

    # -- middleware -----------------------------------------------------------
    async def on_push(self, job: dict) -> None:
        if job["jobtype"] in self.blocked:
            await self.record("blocked", job)
            raise Halt(f"jobtype {job['jobtype']} is blocked by the audit plugin", "BLOCKED")
        custom = job.get("custom")
        if not isinstance(custom, dict):
            custom = job["custom"] = {}
        custom["audited_by"] = "faktory-audit-plugin"
        await self.record("push", job)

    async def on_ack(self, job: dict) -> None:
        await self.record("ack", job)

    async def on_fail(self, job: dict, failure: dict) -> None:
        await self.record("fail", job, errtype=failure.get("errtype", ""))

    async def record(self, event: str, job: dict, **extra: Any) -> None:
        now = self.server.reactor.seconds()
        entry = {
            "id": uuid.uuid4().hex[:12],
            "at": now,
            "event": event,
            "jid": job.get("jid"),
            "jobtype": job.get("jobtype"),
            "queue": job.get("queue"),
            **extra,
        }
        await self.server.redis.execute_command("ZADD", self.key, now, json.dumps(entry))

    async def recent(self, count: int) -> dict[str, Any]:
        raw = await self.server.redis.execute_command("ZREVRANGE", self.key, 0, count - 1)
        total = await self.server.redis.execute_command("ZCARD", self.key)
        return {"total": int(total), "entries": [json.loads(r) for r in raw]}

    # -- AUDIT [n] --------------------------------------------------------------
    def command(self, protocol: Any, arg: str) -> Any:
        arg = arg.strip()
        if arg and not (arg.isdigit() and 0 < int(arg) <= 1000):
            raise CommandError(f"AUDIT takes a count from 1 to 1000, not {arg!r}")
        return defer.Deferred.fromCoroutine(self.recent(int(arg or 20)))

    # -- periodic retention -----------------------------------------------------
    async def sweep(self) -> int:
        cutoff = self.server.reactor.seconds() - self.max_age
        gone = await self.server.redis.execute_command(
            "ZREMRANGEBYSCORE", self.key, "-inf", f"({cutoff}"
        )
        if gone:
            log.info("Audit: dropped {n} records older than {age} s", n=gone, age=self.max_age)
        return int(gone)

    # -- web page ---------------------------------------------------------------
    async def render(self, request: Any) -> str:
        data = await self.recent(100)
        rows = "".join(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                *(html.escape(str(e.get(k, ""))) for k in ("event", "jid", "jobtype", "queue"))
            )
            for e in data["entries"]
        )
        blocked = ", ".join(html.escape(b) for b in self.blocked) or "none"
        return (
            f"<h2>Audit trail</h2><p>{data['total']} records; blocked job types: {blocked}</p>"
            '<table class="table" id="audit-trail"><thead><tr><th>Event</th><th>JID</th>'
            f"<th>Job type</th><th>Queue</th></tr></thead><tbody>{rows}</tbody></table>"
        )


@implementer(IFaktoryPlugin)
class AuditPlugin:
    """Audit trail of pushes, acks and failures; refuses blocked job types."""

    name = "audit"
    description = "Audit trail of pushes, acks and failures; refuses blocked job types."

    def __init__(self) -> None:
        self.trails: dict[int, AuditTrail] = {}

    def setup(self, server: Any) -> None:
        trail = AuditTrail(server, plugin_settings(server, self.name))
        self.trails[id(server)] = trail
        server.manager.use("push", trail.on_push)
        server.manager.use("ack", trail.on_ack)
        server.manager.use("fail", trail.on_fail)
        server.factory.add_command("AUDIT", trail.command)
        server.add_web_page(WebPage(path="audit", title="Audit", render=trail.render))
        server.add_task("audit-retention", trail.sweep_every, trail.sweep)
        log.info(
            "Audit plugin ready: blocking {blocked}, keeping records {age} s",
            blocked=trail.blocked or "nothing",
            age=trail.max_age,
        )

    def shutdown(self, server: Any) -> None:
        self.trails.pop(id(server), None)
        log.info("Audit plugin shut down")


def _names(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("[plugins.audit] blocked must be a list of job types")
    return value


def _positive(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"[plugins.audit] {key} must be a positive number of seconds")
    return value
