"""Batches (Faktory Enterprise): a group of jobs with ``complete`` and
``success`` callback jobs, fired exactly once.

Wire (reference §9.4 and the Go, Ruby, Rust and Python clients)::

    BATCH NEW {"description":..,"parent_bid":..,"success":{job},"complete":{job}}  -> $b-<id>
    BATCH OPEN <bid>             -> $<bid>   (-ERR no such batch <bid>)
    BATCH COMMIT <bid>           -> +OK
    BATCH STATUS <bid>           -> $<json: bid parent_bid description created_at
                                     complete_st success_st total pending failed>
    BATCH CHILD <parent> <child> -> +OK      (our extension: adopt an existing batch)

Member jobs carry ``custom.bid`` and are counted at PUSH.  ``complete`` fires
once every member has run once (ACK or FAIL) and every child batch's complete
phase is over; ``success`` fires once every member is ACKed, the complete
callback has itself been ACKed, and every child's success phase is over.
Callbacks wait for COMMIT (OPEN takes a batch back until the next COMMIT).

Every transition is one Lua script that also enqueues the callback job, so two
servers sharing a Redis can never fire a callback twice or miss one.  Callback
jobs carry ``custom._bid`` and ``custom._cb`` (``complete``/``success``) so
their ACK can be recognised.
"""

from __future__ import annotations

import secrets
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.template import Tag, tags

from .. import job as jobs
from .. import wire
from ..errors import CommandError, gather
from ..job import JobError, format_time
from ..luascript import Script
from ..plugin import WebPage
from ..protocol import OK
from ..store import Store
from ..web.i18n import N_, for_request
from .batch_scripts import (
    BID,
    MAX_DEPTH,
    STATUS_FIELDS,
    _s,
    script,
)
from .batch_undo import remove_job
from .pages import table

log = Logger()


def check_bid(bid: str, what: str = "batch id") -> str:
    """``bid`` if it can be a batch id; CommandError otherwise."""
    if not BID.match(bid):
        raise CommandError(f"invalid {what} {bid[:80]!r}: not a batch id")
    return bid


class BatchStore:
    """Redis side of batches: every key and script lives here."""

    _new = script("new")
    _open = script("open")
    _commit = script("commit")
    _add_job = script("add_job")
    _job_done = script("job_done")
    _callback_done = script("callback_done")
    _child = script("child")
    _sweep = script("sweep")

    def __init__(self, store: Store) -> None:
        self.redis = store.redis
        self.prefix = store.prefix
        self.origin = store.origin

    def _call(self, script: Script, now: float, *args: Any) -> defer.Deferred:
        """Fires with (status, [queues that got a callback job])."""
        d = script(self.redis, (self.prefix, format_time(now), self.origin, *args))
        return d.addCallback(lambda r: (_s(r[0]), [_s(q) for q in r[1:]]))

    def new(
        self,
        bid: str,
        now: float,
        parent: str,
        description: str,
        callbacks: dict[str, tuple[str, str, int]],
    ) -> defer.Deferred:
        args: list[Any] = [bid, parent, format_time(now), repr(now), description]
        for which in ("complete", "success"):
            args.extend(callbacks.get(which, ("", "", 0)))
        return self._call(self._new, now, *args)

    def open(self, bid: str, now: float) -> defer.Deferred:
        return self._call(self._open, now, bid)

    def commit(self, bid: str, now: float) -> defer.Deferred:
        return self._call(self._commit, now, bid)

    def add_job(self, bid: str, jid: str, now: float) -> defer.Deferred:
        return self._call(self._add_job, now, bid, jid)

    def job_done(self, bid: str, jid: str, ok: bool, now: float) -> defer.Deferred:
        return self._call(self._job_done, now, bid, jid, "1" if ok else "0")

    def callback_done(self, bid: str, which: str, now: float) -> defer.Deferred:
        return self._call(self._callback_done, now, bid, which)

    def adopt(self, parent: str, child: str, now: float) -> defer.Deferred:
        return self._call(self._child, now, parent, child)

    @defer.inlineCallbacks
    def status(self, bid: str):
        """The STATUS document, or None for an unknown (or expired) batch."""
        values = yield self.redis.execute_command(
            "HMGET", self.prefix + "batch:" + bid, *STATUS_FIELDS
        )
        if values[0] is None:
            return None
        out: dict[str, Any] = {}
        for name, value in zip(STATUS_FIELDS, values):
            text = _s(value)
            if name in ("total", "pending", "failed"):
                out[name] = int(text or 0)
            elif name in ("parent_bid", "description"):
                if text:  # absent, not "", as the real server (clients parse Option)
                    out[name] = text
            else:
                out[name] = text
        return out

    @defer.inlineCallbacks
    def recent(self, limit: int = 100):
        """Newest batches first, for the web UI."""
        bids = yield self.redis.execute_command("ZREVRANGE", self.prefix + "batches", 0, limit - 1)
        statuses = yield gather([self.status(_s(b)) for b in bids])
        return [s for s in statuses if s is not None]

    def count(self) -> defer.Deferred:
        return self.redis.execute_command("ZCARD", self.prefix + "batches").addCallback(int)

    def sweep(self, start: int, count: int) -> defer.Deferred:
        d = self._sweep(self.redis, (self.prefix, start, count))
        return d.addCallback(lambda r: (int(r[0]), int(r[1])))


def _callback(which: str, value: Any, bid: str, now: float) -> tuple[str, str, int]:
    """Validate one callback job template: (stored JSON, queue, priority)."""
    if not isinstance(value, dict):
        raise CommandError(f"invalid batch: {which} callback must be a job object")
    template = dict(value)
    template.setdefault("jid", secrets.token_urlsafe(12))
    template.setdefault("args", [])
    try:
        job = jobs.validate(template, now)
    except JobError as e:
        raise CommandError(f"invalid batch: {which} callback: {e}") from None
    job.pop("at", None)
    job.pop("enqueued_at", None)
    job.pop("failure", None)
    custom = dict(job.get("custom") or {})
    custom.update(_bid=bid, _cb=which)
    job["custom"] = custom
    return jobs.serialize(job), job["queue"], jobs.priority(job)


class BatchPlugin:
    """Registers BATCH, the member/callback middleware, the index sweep and
    the Batches web page."""

    name = "batch"

    def __init__(self) -> None:
        self.server: Any = None
        self.store: BatchStore | None = None
        self._sweep_at = 0
        self._dups: dict[int, str] = {}  # id(job) -> jid of pushes already in the batch

    def setup(self, server) -> None:
        self.server = server
        self.store = BatchStore(server.store)
        server.factory.add_command("BATCH", self.command)
        server.manager.use("push", self.on_push, custom=("bid",), undo=self.undo_push)
        server.manager.use("settled", self.on_settled, custom=("bid", "_cb"))
        server.add_task("batch-index", 60, self.sweep_index)
        server.add_web_page(WebPage(path="batches", title=N_("Batches"), render=self.render_page))

    def shutdown(self, server) -> None:
        pass

    def now(self) -> float:
        return self.server.reactor.seconds()

    def _wake(self, result: tuple[str, list[str]]) -> str:
        status, queues = result
        for queue in queues:
            self.server.manager.notify(queue)
        return status

    # -- protocol ---------------------------------------------------------
    def command(self, protocol, arg: str):
        sub, _, rest = arg.partition(" ")
        sub, rest = sub.upper(), rest.strip()
        handler = {
            "NEW": self.cmd_new,
            "OPEN": self.cmd_open,
            "COMMIT": self.cmd_commit,
            "STATUS": self.cmd_status,
            "CHILD": self.cmd_child,
        }.get(sub)
        if handler is None:
            raise CommandError(f"unknown BATCH subcommand {sub!r}: use NEW, OPEN, COMMIT, STATUS")
        return defer.Deferred.fromCoroutine(handler(rest))

    @staticmethod
    def _bid(rest: str, verb: str) -> str:
        bid = rest.strip()
        if not bid or " " in bid:
            raise CommandError(f"BATCH {verb} takes one batch id")
        return check_bid(bid)

    async def cmd_new(self, rest: str) -> str:
        try:
            spec = wire.loads(rest)  # Go's rules: depth, NaN, surrogates, number range
        except ValueError as e:
            raise CommandError(f"invalid batch: BATCH NEW takes a JSON object: {e}") from None
        if not isinstance(spec, dict):
            raise CommandError("invalid batch: BATCH NEW takes a JSON object")
        if spec.get("bid"):
            raise CommandError("invalid batch: bid must be blank, the server assigns it")
        now = self.now()
        bid = "b-" + secrets.token_urlsafe(12)
        callbacks = {
            which: _callback(which, spec[which], bid, now)
            for which in ("complete", "success")
            if spec.get(which) is not None
        }
        if not callbacks:
            raise CommandError("invalid batch: a success or complete callback is required")
        parent = spec.get("parent_bid") or ""
        description = spec.get("description") or ""
        if not isinstance(parent, str) or not isinstance(description, str):
            raise CommandError("invalid batch: parent_bid and description must be strings")
        if parent:
            check_bid(parent, "parent_bid")
        status = self._wake(await self.store.new(bid, now, parent, description[:1000], callbacks))
        if status == "noparent":
            raise CommandError(f"no such batch {parent}")
        if status == "toodeep":
            raise CommandError(f"batch {parent} is nested {MAX_DEPTH} deep: no deeper")
        log.debug("Batch {bid} created", bid=bid)
        return bid

    async def cmd_open(self, rest: str) -> str:
        bid = self._bid(rest, "OPEN")
        if self._wake(await self.store.open(bid, self.now())) == "nobatch":
            raise CommandError(f"no such batch {bid}")
        return bid

    async def cmd_commit(self, rest: str):
        bid = self._bid(rest, "COMMIT")
        if self._wake(await self.store.commit(bid, self.now())) == "nobatch":
            raise CommandError(f"no such batch {bid}")
        return OK

    async def cmd_status(self, rest: str) -> str:
        bid = self._bid(rest, "STATUS")
        status = await self.store.status(bid)
        if status is None:
            raise CommandError(f"no such batch {bid}")
        return jobs.dumps(status)

    async def cmd_child(self, rest: str):
        parts = rest.split()
        if len(parts) != 2:
            raise CommandError("BATCH CHILD takes a parent batch id and a child batch id")
        parent, child = check_bid(parts[0]), check_bid(parts[1])
        result = await self.store.adopt(parent, child, self.now())
        status = self._wake(result)
        if status == "noparent":
            raise CommandError(f"no such batch {parent}")
        if status == "nobatch":
            raise CommandError(f"no such batch {child}")
        if status == "hasparent":
            raise CommandError(f"batch {child} already has parent {result[1][0]}")
        if status == "cycle":
            raise CommandError(f"batch {parent} descends from {child}: no cycles")
        if status == "toodeep":
            raise CommandError(f"batch {parent} is nested {MAX_DEPTH} deep: no deeper")
        return OK

    # -- lifecycle hooks --------------------------------------------------
    async def on_push(self, job: dict) -> None:
        custom = job.get("custom")
        if not custom or "bid" not in custom:
            return
        bid = custom["bid"]
        if not isinstance(bid, str) or not BID.match(bid):
            raise JobError(f"invalid custom.bid {bid!r}: not a batch id")
        status = self._wake(await self.store.add_job(bid, job["jid"], self.now()))
        if status == "nobatch":
            raise CommandError(f"no such batch {bid}")
        if status == "dup":  # already a member: an undo must not take that one back
            self._dups[id(job)] = job["jid"]
            while len(self._dups) > 10_000:
                del self._dups[next(iter(self._dups))]

    async def undo_push(self, job: dict) -> None:
        """The PUSH failed after this job was counted: take it back."""
        if self._dups.pop(id(job), None) == job["jid"]:
            return
        bid, jid = job["custom"]["bid"], job["jid"]
        self._wake(await remove_job(self.store, bid, jid, self.now()))

    async def on_settled(self, job: dict, outcome: str, reservation: dict) -> None:
        custom = job.get("custom")
        if not custom:
            return
        try:
            which, owner = custom.get("_cb"), custom.get("_bid")
            if which in ("complete", "success") and isinstance(owner, str):
                if outcome == "ack":
                    self._wake(await self.store.callback_done(owner, which, self.now()))
                return
            bid = custom.get("bid")
            if isinstance(bid, str) and bid:
                # Any failure (retry, dead, dropped, discarded) means "ran once".
                ok = outcome == "ack"
                self._wake(await self.store.job_done(bid, job["jid"], ok, self.now()))
        except Exception:  # noqa: BLE001 - the job itself is settled; never fail the ACK
            log.failure("Batch bookkeeping failed for job {jid}", jid=job.get("jid"))

    # -- housekeeping and web UI -----------------------------------------
    async def sweep_index(self) -> None:
        """Forget expired batches in the web UI index, 500 entries a minute."""
        checked, removed = await self.store.sweep(self._sweep_at, 500)
        self._sweep_at = 0 if checked < 500 else self._sweep_at + checked - removed

    async def render_page(self, request) -> Tag:
        t = for_request(request)
        batches = await self.store.recent(100)
        total = await self.store.count()
        state = {"": t._("pending"), "1": t._("enqueued"), "2": t._("done")}
        rows = [
            [
                b["bid"],
                b.get("description", ""),
                b.get("parent_bid", ""),
                b["created_at"],
                t.number(b["total"]),
                t.number(b["pending"]),
                t.number(b["failed"]),
                state.get(b["complete_st"], b["complete_st"]),
                state.get(b["success_st"], b["success_st"]),
            ]
            for b in batches
        ]
        head = (
            t._("BID"),
            t._("Description"),
            t._("Parent"),
            t._("Created"),
            t._("Total"),
            t._("Pending"),
            t._("Failed"),
            t._("Complete"),
            t._("Success"),
        )
        shown = t.number(len(batches))
        if total > len(batches):
            shown = t._("{shown} of {total}", shown=shown, total=t.number(total))
        listing = table(head, rows, css="table batches")
        if not rows:
            listing.children[-1](tags.tr(tags.td(t._("No batches"), colspan="9")))
        return tags.transparent(
            tags.h3(t._("Batches"), " ", tags.small(shown, class_="batch-count")), listing
        )
