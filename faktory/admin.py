"""Operator actions and statistics: one implementation behind the work
protocol (INFO, FLUSH, QUEUE, MUTATE), the web UI and ``faktory-cli``."""

from __future__ import annotations

import json
import math
import os
import resource
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from . import FAKTORY_COMPAT_VERSION, removal
from .awaitable import resolve
from .errors import gather
from .job import DEAD_TTL, format_time, parse_time
from .manager import local_day

if TYPE_CHECKING:  # the server builds the Admin; imports run downwards only
    from .server import FaktoryServer

log = Logger()


class Admin:
    def __init__(self, server: FaktoryServer) -> None:
        # The server's store, manager, workers and counters.
        self.server = server
        self.store = server.store
        self.manager = server.manager
        self.workers = server.workers
        self.info_extensions: list[Callable[[dict], Any]] = []

    def add_info(self, fn: Callable[[dict], Any]) -> None:
        """Let a feature add its figures to INFO: ``fn(info)`` updates the
        document in place and may return a Deferred or be a coroutine."""
        self.info_extensions.append(fn)

    @defer.inlineCallbacks
    def info(self):
        """The INFO document, shaped exactly like the real server's."""
        store = self.store
        now = self.server.reactor.seconds()
        queues, sets, (processed, failures), workers, paused = yield gather(
            [
                store.queue_sizes(),
                store.set_sizes(),
                store.counters(),
                store.workers(),
                store.paused_queues(),
            ]
        )
        tasks = {}
        for name in ("Scheduled", "Retries", "Dead"):
            st = self.manager.task_stats.get(name, {})
            tasks[name] = {
                "cycles": int(st.get("cycles", 0)),
                "enqueued": int(st.get("enqueued", 0)),
                "size": sets[name.lower()],
                "wall_time_sec": float(st.get("wall_time_sec", 0.0)),
            }
        tasks["Busy"] = {
            "reaped": int(self.manager.task_stats.get("Busy", {}).get("reaped", 0)),
            "size": sets["working"],
        }
        tasks["Workers"] = {"reaped": self.workers.reaped, "size": len(workers)}
        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        doc = {
            "now": format_time(now),
            "server_utc_time": time.strftime("%H:%M:%S UTC", time.gmtime(now)),
            "faktory": {
                "queues": queues,
                "sets": sets,
                "tasks": dict(sorted(tasks.items())),
                "total_failures": failures,
                "total_processed": processed,
                "total_enqueued": sum(queues.values()),
                "total_queues": len(queues),
                # Not in the real server's INFO: the queues FETCH skips.
                "paused": sorted(paused),
            },
            "server": {
                "description": "Faktory",
                "faktory_version": FAKTORY_COMPAT_VERSION,
                "uptime": int(now - self.server.started_at),
                "connections": self.server.connection_count,
                "command_count": self.server.command_count,
                "used_memory_mb": _current_rss_mb() or rss_kb // 1024,
            },
        }
        for extend in self.info_extensions:
            yield defer.ensureDeferred(resolve(extend(doc)))
        return doc

    @defer.inlineCallbacks
    def history(self, days: int):
        """Daily processed/failed counts for the last ``days`` days, newest first."""
        if days > 180:
            raise ValueError("days value can't be greater than 180")
        now = self.server.reactor.seconds()
        out = []
        for i in range(days):
            day = local_day(now - i * 86400)
            _, _, processed, failed = yield self.store.counters(day)
            out.append({"date": day, "processed": processed, "failed": failed})
        return out

    def flush(self) -> defer.Deferred:
        return self.store.flush()

    # -- web UI: pages of queues and sets, per-entry actions ---------------------
    # Every read is one page (by list/sorted-set index), never a whole set, so
    # pages stay fast with 100k jobs.  Sorted-set entries are named by the key
    # ``<score>|<jid>`` (score exactly as Redis returns it).

    SETS = ("retries", "scheduled", "dead")
    SET_ACTIONS = {"delete": "delete", "retry": "retry", "add_to_queue": "retry", "kill": "kill"}
    FILTER_SCAN = 2000  # members one filter step examines inside Redis
    ACT_BATCH = 500  # entries one "all" step moves

    def queue_page(self, name: str, start: int, count: int) -> defer.Deferred:
        """(total, [(priority, job bytes)]): lowest priority first, newest
        first within a priority, i.e. the reverse of the order FETCH takes them."""
        return self.store.queue_page(name, start, count)

    def pause_queues(self, names: list[str]) -> defer.Deferred:
        """FETCH skips a paused queue; only queues that exist are paused."""
        return self.store.queue_control("pause", names)

    def resume_queues(self, names: list[str]) -> defer.Deferred:
        return self.store.queue_control("resume", names)

    async def remove_queues(self, names: list[str]) -> int:
        """Delete every job of these queues and forget them; returns how many
        queues were known.  One atomic step per call when no feature needs to
        hear of the jobs; else each queue goes in steps of ``ACT_BATCH`` jobs
        (each atomic) handed to the ``removed`` hook, at most its size at the
        start plus two steps, then whatever racing pushes added goes at once."""
        wanted = removal.probe(self.manager)
        if not wanted:
            return await self.store.queue_control("remove", names)
        known = 0
        sizes = await self.store.queue_sizes(names)
        for name in dict.fromkeys(names):
            steps = sizes.get(name, 0) // self.ACT_BATCH + 2
            gone, seen = False, False
            while not gone and steps > 0:
                n, gone, removed = await self.store.queue_drain(name, self.ACT_BATCH, wanted)
                await removal.notify(self.manager, removed, removal.DISCARD)
                seen = seen or gone or n > 0
                steps -= 1
            if not gone:
                seen = await self.store.queue_control("remove", [name]) > 0 or seen
            known += seen
        return known

    def paused_queues(self) -> defer.Deferred:
        return self.store.paused_queues()

    async def queue_latency(self, names: list[str]) -> dict[str, float]:
        """Seconds the longest-waiting job of each queue has waited (0 if empty)."""
        now = self.server.reactor.seconds()
        out = {}
        for name, stamps in (await self.store.queue_oldest(names)).items():
            times = []
            for stamp in stamps:
                try:
                    times.append(parse_time(stamp))
                except ValueError:
                    pass
            out[name] = max(0.0, now - min(times)) if times else 0.0
        return out

    async def delete_queue_jobs(self, name: str, items: list[tuple[int, bytes]]) -> int:
        """Remove these exact (priority, payload) entries from a queue."""
        n, removed = await self.store.queue_delete(name, items, removal.probe(self.manager))
        await removal.notify(self.manager, removed, removal.DISCARD)
        return n

    async def set_page(
        self,
        name: str,
        start: int,
        count: int,
        reverse: bool = False,
        jobtype: str = "",
        text: str = "",
    ) -> tuple[int | None, list[tuple[str, bytes]], bool]:
        """(total or None when filtered, [(key, job bytes)], whether more follow).

        Unfiltered pages are one ZRANGE by index.  A filter (exact job type,
        case-insensitive text in the JSON) has no index to use: it scans in
        bounded steps inside Redis and stops as soon as the page is full."""
        self._check_set(name)
        if not jobtype and not text:
            total, rows = await self.store.set_page(name, start, count, reverse)
            return total, [(entry_key(s, raw), raw) for s, raw in rows], start + count < total
        needle = '"jobtype":' + json.dumps(jobtype, ensure_ascii=False) if jobtype else ""
        lowered = text.encode().lower()  # ASCII-only, like Lua's string.lower
        index: int | None = 0
        skipped, found = 0, []
        while index is not None and len(found) <= count:
            index, rows = await self.store.set_filter(
                name, index, self.FILTER_SCAN, reverse, needle, lowered
            )
            for row in rows:
                if skipped < start:
                    skipped += 1
                else:
                    found.append(row)
        more = len(found) > count
        return None, [(entry_key(s, raw), raw) for s, raw in found[:count]], more

    async def set_entry(self, name: str, key: str) -> bytes | None:
        """The job stored under ``key`` in a set, or None (gone, or a bad key)."""
        self._check_set(name)
        try:
            score, jid = split_key(key)
        except ValueError:
            return None
        return await self.store.set_entry(name, score, jid)

    async def act_on_set(self, name: str, action: str, keys: list[str] | None) -> int:
        """``delete``, ``retry``/``add_to_queue`` (back into the queue now) or
        ``kill`` (into the dead set) the entries ``keys``, or every entry with
        ``keys=None``; returns how many were acted on.  ValueError for an
        unknown action or a malformed key."""
        self._check_set(name)
        op = self.SET_ACTIONS.get(action)
        if op is None or (op == "kill" and name == "dead"):
            raise ValueError(f"invalid action: {action}")
        now = self.server.reactor.seconds()
        now_str, dead_score = format_time(now), now + DEAD_TTL
        wanted = removal.probe(self.manager) if op != "retry" else ""
        gone = removal.KILL if op == "kill" else removal.DISCARD
        if keys is None:
            if op == "delete":
                return await self.clear_set(name)
            done = 0
            while True:
                n, removed = await self.store.set_act(
                    name, op, None, now_str, dead_score, self.ACT_BATCH, wanted
                )
                await removal.notify(self.manager, removed, gone)
                done += n
                if n < self.ACT_BATCH:
                    return done
        pairs = [split_key(k) for k in keys]
        done = 0
        for i in range(0, len(pairs), self.ACT_BATCH):
            chunk = pairs[i : i + self.ACT_BATCH]
            n, removed = await self.store.set_act(name, op, chunk, now_str, dead_score, 0, wanted)
            await removal.notify(self.manager, removed, gone)
            done += n
        return done

    async def clear_set(self, name: str) -> int:
        """Empty a sorted set; returns how many entries went.  One UNLINK when
        no feature needs to hear of its jobs (no ``removed`` middleware); else
        steps of ``ACT_BATCH`` entries, each atomic, handed to that hook (a
        unique lock is released), never more than the set held at the start:
        an entry added meanwhile may stay."""
        total = (await self.store.set_sizes())[name]
        wanted = removal.probe(self.manager)
        if not wanted:
            await self.store.set_clear(name)
            return total
        done = 0
        while done < total:
            n, removed = await self.store.set_drain(name, min(self.ACT_BATCH, total - done), wanted)
            await removal.notify(self.manager, removed, removal.DISCARD)
            if n == 0:
                break
            done += n
        return done

    # -- QUEUE and MUTATE (work protocol, CLI) --------------------------------------
    MUTATE_OPS = ("clear", "discard", "kill", "requeue")
    MUTATE_TARGETS = ("retries", "scheduled", "dead")

    async def queue_command(self, sub: str, names: list[str]) -> Any:
        """``QUEUE PAUSE|RESUME|REMOVE|LATENCY``; ``*`` means every known queue
        (not for LATENCY).  Names of queues that do not exist are ignored."""
        sub = sub.upper()
        if sub == "LATENCY":
            if "*" in names:
                raise ValueError("QUEUE LATENCY does not support wildcards")
            return await self.queue_latency(names)
        ops = {"PAUSE": "pause", "RESUME": "resume", "REMOVE": "remove"}
        if sub not in ops:
            raise ValueError(f"no such QUEUE subcommand: {sub}")
        if "*" in names:
            names = await self.store.queue_names()
        if names and sub == "REMOVE":
            await self.remove_queues(names)
        elif names:
            await self.store.queue_control(ops[sub], names)
        return None

    async def mutate(self, cmd: str, target: str, filt: dict | None) -> int:
        """MUTATE as the real server does it: ``clear`` the set, or
        ``discard``/``kill``/``requeue`` the entries matching ``filt`` (jids,
        else a Redis glob ``regexp`` plus optional ``jobtype``, else
        ``jobtype``).  No ``filter`` at all on discard clears the set.  Works
        in bounded ZSCAN steps, each one atomic, so a set of any size never
        blocks Redis or the reactor for long; returns entries acted on."""
        if target not in self.MUTATE_TARGETS:
            raise ValueError("invalid target for mutation command")
        if cmd not in self.MUTATE_OPS:
            raise ValueError("unknown mutate operation")
        if cmd == "clear" or (cmd == "discard" and filt is None):
            return await self.clear_set(target)
        filt = filt or {}
        # As in Go, any jids at all (even "") select by jid only: an empty jid
        # matches nothing, never the whole set.
        jids = [j for j in (filt.get("jids") or []) if isinstance(j, str)]
        jobtype = filt.get("jobtype") or ""
        match = "*"
        needle = ""
        if jids:
            jids = [x for j in jids for x in ('"jid":' + json.dumps(j, ensure_ascii=False), j)]
        else:
            if filt.get("regexp"):
                match = str(filt["regexp"])
            if jobtype:
                needle = '"jobtype":' + json.dumps(str(jobtype), ensure_ascii=False)
        now = self.server.reactor.seconds()
        now_str, dead_score = format_time(now), now + DEAD_TTL
        wanted = removal.probe(self.manager) if cmd != "requeue" else ""
        gone = removal.KILL if cmd == "kill" else removal.DISCARD
        cursor, done, steps = "0", 0, 0
        while True:
            cursor, n, removed = await self.store.mutate_step(
                target, cursor, match, cmd, now_str, dead_score, needle, jids, wanted
            )
            await removal.notify(self.manager, removed, gone)
            done += n
            steps += 1
            if steps % 100 == 0:
                log.info(
                    "MUTATE {cmd} {target}: {done} entries so far",
                    cmd=cmd,
                    target=target,
                    done=done,
                )
            if cursor in (b"0", "0", 0):
                break
        if steps >= 100:
            log.info(
                "MUTATE {cmd} {target}: done, {done} entries", cmd=cmd, target=target, done=done
            )
        return done

    def _check_set(self, name: str) -> None:
        if name not in self.SETS:
            raise ValueError(f"unknown set: {name}")

    async def busy_page(self, start: int, count: int) -> tuple[int, list[dict]]:
        """(jobs in progress, one page of their reservations), by expiry."""
        total, rows = await self.store.busy_page(start, count)
        return total, [_reservation(r) for r in rows]

    async def worker_records(self) -> list[dict]:
        """Live worker processes with their HELLO details decoded."""
        out = []
        for rec in await self.store.workers():
            try:
                info = json.loads(rec.get("info") or "{}")
            except ValueError:
                info = {}
            if not isinstance(info, dict):
                info = {}  # odd stored values are shown as missing, never fatal
            labels = info.get("labels") or []
            conns = _float(rec.get("conns")) or 0
            out.append(
                {
                    "wid": rec["wid"],
                    "hostname": info.get("hostname", ""),
                    "pid": info.get("pid", 0),
                    "labels": labels if isinstance(labels, list) else [labels],
                    "v": info.get("v", 0),
                    "state": rec.get("state") or "running",
                    "started_at": _float(rec.get("started_at")),
                    "beat": _float(rec.get("beat")),
                    "rss_kb": rec.get("rss_kb"),
                    "conns": int(conns) if math.isfinite(conns) else 0,
                }
            )
        return out

    async def redis_debug(self) -> tuple[str, float]:
        """(Redis INFO text, round-trip seconds measured around it)."""
        started = time.perf_counter()
        text = await self.store.redis_info()
        rtt = time.perf_counter() - started
        return (text.decode() if isinstance(text, bytes) else str(text)), rtt


def entry_key(score: str, raw: bytes | str) -> str:
    """The web UI's name for a sorted-set entry: ``<score>|<jid>``."""
    try:
        jid = json.loads(raw).get("jid", "")
    except (ValueError, AttributeError):
        jid = ""
    return f"{score}|{jid}"


def split_key(key: str) -> tuple[str, str]:
    """``<score>|<jid>`` -> (score, jid); ValueError if it is not one."""
    score, sep, jid = key.partition("|")
    if not sep or not jid or not math.isfinite(float(score)):
        raise ValueError(f"invalid key: {key!r}")
    return score, jid


def _reservation(raw: bytes) -> dict:
    """A stored reservation as a dict whose ``job`` is a dict: something
    unreadable is shown as such, never fatal to the page."""
    try:
        res = json.loads(raw)
    except ValueError:
        res = None
    if isinstance(res, dict) and isinstance(res.get("job"), dict):
        return res
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    job = {"jid": "?", "jobtype": "(unreadable reservation)", "args": [text[:2000]]}
    return {**(res if isinstance(res, dict) else {}), "job": job}


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _current_rss_mb() -> int:
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // (1024 * 1024)
    except (OSError, ValueError, IndexError):
        return 0
