"""Load generator for any Faktory server, shaped like the real server's own
load test (``test/load`` in its repository): N connections, 5 queues, half
the connections pushing and half fetching + ACKing, 1% of fetched jobs FAILed;
like it, each side shares one job count (a connection that is ahead takes more
of the work) and pushes what the Go client sends for ``NewJob("SomeJob", 1,
"string", 3)``.

    python bench/load.py --url tcp://127.0.0.1:7419 --jobs 30000 --connections 10
    python bench/load.py --mode push --jobs 100000 --connections 4
    python bench/load.py --mode push --batch 100   # PUSHB of 100 jobs per line
    python bench/load.py --scenario backlog --backlog 1000000
    python bench/load.py --scenario scheduled --jobs 100000
    python bench/load.py --scenario fleet          # 1 000 connections, most waiting in FETCH
    python bench/load.py --scenario pushb --jobs 100000   # PUSHB of 100 and of 1 000
    python bench/load.py --duration 600            # RSS flatness run
    python bench/load.py --spawn --repeat 5        # median of 5 mixed runs

The client is built not to be the bottleneck: several processes (each one
drives several connections through epoll), raw sockets, commands pre-built
before the clock starts, optional pipelining (``--pipeline``).  It prints
jobs/s, the p50/p99 latency of PUSH and of FETCH calls that returned a job,
and the CPU seconds the server (every process listening on the port plus its
children, i.e. the spawned Redis) spent per 1000 jobs, read from /proc.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import random
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from collections import deque

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from datetime import UTC

import procstat  # noqa: E402
from wire import OK, Conn, ReplyError, jid_of, parse_url  # noqa: E402

QUEUES = [f"queue{i}" for i in range(5)]
PUSH, FETCH, ACK, FAIL = range(4)


def push_line(tag: bytes, i: int, queue: str, at: str = "", created: bytes = b"") -> bytes:
    """What the Go client's ``NewJob("SomeJob", 1, "string", 3)`` puts on the wire
    (same keys, same order; the jid is ours, so runs and processes never collide)."""
    return b"PUSH " + job_json(tag, i, queue, at, created)


def job_json(tag: bytes, i: int, queue: str, at: str = "", created: bytes = b"") -> bytes:
    extra = b',"at":"%s"' % at.encode() if at else b""
    created = created or _now_rfc3339()
    return (
        b'{"retry":25,"jid":"%s%09d","queue":"%s","jobtype":"SomeJob",'
        b'"created_at":"%s","args":[1,"string",3]%s}' % (tag, i, queue.encode(), created, extra)
    )


def _now_rfc3339() -> bytes:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)).encode() + b".%06dZ" % (
        int(t % 1 * 1e6)
    )


class Slot:
    """One connection's script: a role and its in-flight commands."""

    __slots__ = ("conn", "role", "sent", "out", "fetch_line", "tag", "next_kind")

    def __init__(self, conn: Conn, role: str, queues: list[str], tag: bytes) -> None:
        self.conn = conn
        self.role = role
        self.sent = 0
        self.out: deque = deque()
        self.fetch_line = b"FETCH " + " ".join(queues).encode() + b"\r\n"
        self.tag = tag
        self.next_kind = PUSH  # the "cycle" role alternates PUSH and FETCH


class Quota:
    """What one client process still has to do, shared by its connections like
    the Go load test's counters: a connection that is ahead takes more of the
    work, so the phase ends when the work is done, not when the slowest
    connection has done a fixed share.  -1 = until the deadline."""

    __slots__ = ("push", "pushed", "pop", "popping")

    def __init__(self, push: int, pop: int) -> None:
        self.push, self.pushed = push, 0  # PUSH lines to send / sent
        self.pop, self.popping = pop, 0  # jobs to fetch / FETCHes sent that did not come back empty


def worker(spec: dict, barrier, pipe) -> None:
    """One client process: open its connections, wait for the start signal,
    drive them until every quota (or the deadline) is met, report."""
    rng = random.Random(spec["seed"])
    pipeline = spec["pipeline"]
    fail_pct = spec["fail_pct"]
    collect = spec.get("collect_jids", False)
    slots: list[Slot] = []
    quota = Quota(spec["push_quota"], spec["pop_quota"])
    for n, role in enumerate(spec["roles"]):
        queues = list(QUEUES if not spec.get("queues") else spec["queues"])
        rng.shuffle(queues)
        tag = b"%s-%d-" % (spec["tag"].encode(), n)
        slots.append(Slot(Conn(spec["url"]), role, queues, tag))
    push_lines: list[bytes] = []
    batch_sizes: list[int] = []  # jobs per PUSHB line (--batch)
    if quota.push > 0:
        at = spec.get("at", "")
        tag = spec["tag"].encode() + b"-"
        created = _now_rfc3339()
        batch = spec.get("batch", 1)
        if batch > 1:
            # PUSHB lines; the quota counts lines, and each reply counts its jobs.
            for start in range(0, quota.push, batch):
                jobs = [
                    job_json(tag, i, spec.get("queue") or rng.choice(QUEUES), at, created)
                    for i in range(start, min(start + batch, quota.push))
                ]
                push_lines.append(b"PUSHB [" + b",".join(jobs) + b"]\r\n")
                batch_sizes.append(len(jobs))
            quota.push = len(push_lines)
        else:
            push_lines = [
                push_line(tag, i, spec.get("queue") or rng.choice(QUEUES), at, created) + b"\r\n"
                for i in range(quota.push)
            ]
    push_lat, fetch_lat = array("d"), array("d")
    last = [0.0]  # when the last job of this process was done (pushed, acked or failed)
    counts = {"pushed": 0, "fetched": 0, "empty": 0, "acked": 0, "failed": 0, "errors": 0}
    errors: list[str] = []
    jids: list[bytes] = []
    barrier.wait()
    deadline = time.monotonic() + spec["duration"] if spec["duration"] else None
    cpu0 = os.times()
    sel = selectors.DefaultSelector()
    clock = time.perf_counter
    rand = rng.random

    def more(slot: Slot) -> list[bytes]:
        """Commands to send now to keep ``pipeline`` in flight."""
        lines = []
        out = slot.out
        stop = deadline is not None and time.monotonic() >= deadline
        if slot.role == "push":
            while len(out) < pipeline and not stop:
                if quota.push >= 0:
                    if quota.pushed >= quota.push:
                        break
                    lines.append(push_lines[quota.pushed])
                    # a PUSHB is in flight as (-its job count, sent at)
                    kind = -batch_sizes[quota.pushed] if batch_sizes else PUSH
                else:
                    lines.append(push_line(slot.tag, slot.sent, rng.choice(QUEUES)) + b"\r\n")
                    kind = PUSH
                quota.pushed += 1
                slot.sent += 1
                out.append((kind, clock()))
        elif slot.role == "pop":
            while len(out) < pipeline and not stop:
                if quota.pop >= 0 and quota.popping >= quota.pop:
                    break
                lines.append(slot.fetch_line)
                quota.popping += 1
                out.append((FETCH, clock()))
        elif not out and not stop:  # cycle: PUSH, FETCH(+ACK), PUSH, ...
            if slot.next_kind == PUSH:
                lines.append(push_line(slot.tag, slot.sent, rng.choice(QUEUES)) + b"\r\n")
                slot.sent += 1
                out.append((PUSH, clock()))
                slot.next_kind = FETCH
            else:
                lines.append(slot.fetch_line)
                out.append((FETCH, clock()))
                slot.next_kind = PUSH
        return lines

    def handle(slot: Slot, kind: int, t0: float, value, now: float) -> bytes | None:
        if isinstance(value, ReplyError):
            counts["errors"] += 1
            if len(errors) < 5:
                errors.append(str(value))
        if kind == PUSH:
            if value is OK:
                counts["pushed"] += 1
                push_lat.append(now - t0)
                last[0] = now
        elif kind < 0:  # PUSHB: "{}" when no job was refused
            if value == b"{}":
                counts["pushed"] -= kind
                push_lat.append(now - t0)
                last[0] = now
            elif not isinstance(value, ReplyError):
                counts["errors"] += 1
                if len(errors) < 5:
                    errors.append(repr(value)[:200])
        elif kind == FETCH:
            if isinstance(value, bytes):
                fetch_lat.append(now - t0)
                counts["fetched"] += 1
                jid = jid_of(value)
                if collect:
                    jids.append(jid)
                if rand() * 100 < fail_pct:
                    slot.out.append((FAIL, now))
                    return b'FAIL {"jid":"%s","errtype":"Bench","message":"1%% fail"}\r\n' % jid
                slot.out.append((ACK, now))
                return b'ACK {"jid":"%s"}\r\n' % jid
            else:
                if slot.role == "pop":
                    quota.popping -= 1  # nothing fetched: that FETCH is to be made again
                if value is None:
                    counts["empty"] += 1
        elif value is OK:
            counts["acked" if kind == ACK else "failed"] += 1
            last[0] = now
        return None

    live = 0
    for slot in slots:
        lines = more(slot)
        if lines:
            slot.conn.sock.sendall(b"".join(lines))
            sel.register(slot.conn.sock, selectors.EVENT_READ, slot)
            live += 1
    while live:
        for key, _ in sel.select(timeout=5.0):
            slot = key.data
            conn = slot.conn
            conn._fill()
            now = clock()
            lines = []
            while slot.out:
                value = conn.try_reply()
                if value is ...:
                    break
                kind, t0 = slot.out.popleft()
                follow = handle(slot, kind, t0, value, now)
                if follow is not None:
                    lines.append(follow)
            lines += more(slot)
            if lines:
                conn.sock.sendall(b"".join(lines))
            elif not slot.out:
                sel.unregister(conn.sock)
                live -= 1
    cpu1 = os.times()
    for slot in slots:
        slot.conn.close()
    pipe.send(
        {
            "counts": counts,
            "errors": errors,
            "push_lat": push_lat.tobytes(),
            "fetch_lat": fetch_lat.tobytes(),
            "client_cpu": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
            "jids": jids,
            "last": last[0],
        }
    )
    pipe.close()


def _total(quotas) -> int:
    """Sum of quotas; -1 (no quota: until the deadline) wins."""
    quotas = list(quotas)
    return -1 if any(q < 0 for q in quotas) else sum(quotas)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(len(values) * p))]


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class Bench:
    def __init__(self, args) -> None:
        self.args = args
        host, port, _ = parse_url(args.url)
        pids = args.server_pid or procstat.listening_pids(port)
        self.pids = pids
        self.tree = procstat.process_tree(pids)
        if not pids:
            print(f"warning: no local process listens on port {port}: no server CPU figures")

    def admin(self, line: bytes):
        c = Conn(self.args.url)
        try:
            return c.call(line)
        finally:
            c.close()

    def info(self) -> dict:
        return json.loads(self.admin(b"INFO"))

    def run(
        self,
        roles: list[tuple[str, int]],
        pipeline: int = 1,
        duration: float = 0,
        sample=None,
        until_last: bool = False,
        **extra,
    ) -> dict:
        """Run one phase: ``roles`` is one (role, quota) per connection, spread
        over the client processes.  Returns the merged measurements."""
        nproc = max(1, min(self.args.processes, len(roles)))
        # Each process gets its share of the connections and of the work; its
        # connections share that work (see Quota).
        barrier = mp.Barrier(nproc + 1)
        tag = extra.pop("tag", uuid.uuid4().hex[:6])
        fail_pct = extra.pop("fail_pct", self.args.fail_pct)
        procs, pipes = [], []
        for p in range(nproc):
            mine = roles[p::nproc]
            spec = dict(
                url=self.args.url,
                roles=[role for role, _ in mine],
                push_quota=_total(q for role, q in mine if role == "push"),
                pop_quota=_total(q for role, q in mine if role == "pop"),
                pipeline=pipeline,
                fail_pct=fail_pct,
                duration=duration,
                seed=random.random(),
                tag=f"{tag}{p}",
                **extra,
            )
            recv, send = mp.Pipe(duplex=False)
            proc = mp.Process(target=worker, args=(spec, barrier, send), daemon=True)
            proc.start()
            procs.append(proc)
            pipes.append(recv)
        barrier.wait()
        cost = procstat.ServerCost(self.pids)
        started = time.perf_counter()  # the workers' clock (CLOCK_MONOTONIC)
        if sample is not None:
            sample(cost, time.monotonic(), procs)
        results = [p.recv() for p in pipes]
        elapsed = time.perf_counter() - started
        if until_last:
            # Idle workers' FETCHes wait out their 2 s after the last job:
            # the phase's rate counts up to the last job done.
            elapsed = max(r["last"] for r in results) - started or elapsed
        used = cost.used()
        for proc in procs:
            proc.join()
        counts: dict[str, int] = {}
        push_lat, fetch_lat = array("d"), array("d")
        errors, jids, client_cpu = [], [], 0.0
        for r in results:
            for k, v in r["counts"].items():
                counts[k] = counts.get(k, 0) + v
            push_lat.frombytes(r["push_lat"])
            fetch_lat.frombytes(r["fetch_lat"])
            errors += r["errors"]
            jids += r["jids"]
            client_cpu += r["client_cpu"]
        return dict(
            counts=counts,
            elapsed=elapsed,
            push_lat=sorted(push_lat),
            fetch_lat=sorted(fetch_lat),
            server_cpu=used,
            client_cpu=client_cpu,
            errors=errors,
            jids=jids,
            rss=cost.rss(),
            processes=nproc,
        )

    def report(self, title: str, r: dict, jobs: int) -> dict:
        c = r["counts"]
        cpu = r["server_cpu"]
        per_k = {k: v * 1000 / jobs if jobs else 0 for k, v in cpu.items()}
        summary = {
            "phase": title,
            "jobs": jobs,
            "seconds": round(r["elapsed"], 3),
            "jobs_per_s": round(jobs / r["elapsed"]) if r["elapsed"] else 0,
            "push_p50_ms": round(percentile(r["push_lat"], 0.5) * 1000, 3),
            "push_p99_ms": round(percentile(r["push_lat"], 0.99) * 1000, 3),
            "fetch_p50_ms": round(percentile(r["fetch_lat"], 0.5) * 1000, 3),
            "fetch_p99_ms": round(percentile(r["fetch_lat"], 0.99) * 1000, 3),
            "server_cpu_s_per_1000": round(per_k["server"], 4),
            "redis_cpu_s_per_1000": round(per_k["redis"], 4),
            "server_cpu_pct": round(100 * cpu["server"] / r["elapsed"]),
            "redis_cpu_pct": round(100 * cpu["redis"] / r["elapsed"]),
            "client_cpu_pct": round(100 * r["client_cpu"] / r["elapsed"]),
            "counts": c,
            "loadavg": procstat.loadavg(),
        }
        print(
            f"{title}: {jobs} jobs in {r['elapsed']:.2f} s = {summary['jobs_per_s']} jobs/s"
            f" | PUSH p50 {summary['push_p50_ms']} ms p99 {summary['push_p99_ms']} ms"
            f" | FETCH(work) p50 {summary['fetch_p50_ms']} ms p99 {summary['fetch_p99_ms']} ms"
        )
        print(
            f"    server CPU {per_k['server']:.3f} s + redis {per_k['redis']:.3f} s per 1000 jobs"
            f" (server {summary['server_cpu_pct']}%, redis {summary['redis_cpu_pct']}%,"
            f" client {summary['client_cpu_pct']}% of a core) | {c}"
            f" | load {summary['loadavg']}",
            flush=True,
        )
        if r["errors"]:
            print(f"    errors: {r['errors']}")
        if summary["client_cpu_pct"] > 90 * r["processes"]:
            print(
                "    warning: the client used nearly all of its CPU; results may be client-bound"
                " (raise --processes)"
            )
        return summary

    # -- the phases ------------------------------------------------------------
    def halves(self, jobs: int) -> list[tuple[str, int]]:
        n = self.args.connections
        pushers, poppers = (n + 1) // 2, n // 2
        return [("push", q) for q in split(jobs, pushers)] + [
            ("pop", q) for q in split(jobs, max(1, poppers))
        ]

    def push(self, jobs: int, title="push", pipeline=None, **extra) -> dict:
        roles = [("push", q) for q in split(jobs, self.args.connections)]
        r = self.run(roles, pipeline or self.args.pipeline, **extra)
        return self.report(title, r, r["counts"]["pushed"])

    def pop(self, jobs: int, title="pop", pipeline=None, **extra) -> tuple[dict, dict]:
        roles = [("pop", q) for q in split(jobs, self.args.connections)]
        r = self.run(roles, pipeline or self.args.pipeline, **extra)
        return self.report(title, r, r["counts"]["fetched"]), r

    def mixed(self, jobs: int, title="mixed") -> dict:
        r = self.run(self.halves(jobs), self.args.pipeline)
        return self.report(title, r, jobs)

    def fill(self, jobs: int, title: str) -> dict:
        """Queue ``jobs`` jobs quickly (pipelined)."""
        return self.push(jobs, title, pipeline=max(self.args.pipeline, 50))

    def redis_memory(self) -> dict:
        if self.args.redis_url:
            return procstat.redis_memory(url=self.args.redis_url)
        sock = procstat.redis_socket(self.tree)
        return procstat.redis_memory(socket_path=sock) if sock else {}


def scenario_backlog(b: Bench, args) -> list[dict]:
    """Per-operation cost at a small and at a huge queue depth."""
    out = []
    b.admin(b"FLUSH")
    out.append(b.fill(1000, "fill to 1 000 queued"))
    out.append(b.mixed(args.jobs, "mixed at 1 000 queued"))
    mem_small = b.redis_memory()
    out.append(b.fill(args.backlog - 1000, f"push up to {args.backlog} queued"))
    out.append(b.mixed(args.jobs, f"mixed at {args.backlog} queued"))
    out.append(b.pop(args.jobs, f"pop from {args.backlog} queued")[0])
    mem = b.redis_memory()
    info = b.info()["faktory"]
    print(f"redis memory at 1 000 queued: {mem_small}")
    print(f"redis memory at {info['total_enqueued']} queued: {mem}")
    if mem and mem_small:
        per_job = (mem["used_memory"] - mem_small["used_memory"]) / max(1, args.backlog - 1000)
        print(f"    = {per_job:.0f} bytes of Redis memory per queued job")
    out.append({"phase": "redis memory", "small": mem_small, "backlog": mem})
    if not args.keep:
        b.admin(b"FLUSH")
    return out


def scenario_fleet(b: Bench, args) -> list[dict]:
    """``--connections`` connections (1 000 by default here), ``--pushers`` of
    them pushing and every other one a worker fetching and ACKing on the same
    queues: with far more workers than work, most of them wait in FETCH
    (parked for up to 2 s) at any moment, as a big idle fleet does."""
    b.admin(b"FLUSH")
    n = args.connections if args.connections != 10 else 1000
    pushers = min(args.pushers, n - 1)
    roles = [("push", q) for q in split(args.jobs, pushers)]
    roles += [("pop", q) for q in split(args.jobs, n - pushers)]
    r = b.run(roles, args.pipeline, until_last=True)
    return [b.report(f"fleet: {n} connections, {pushers} pushing", r, args.jobs)]


def scenario_pushb(b: Bench, args) -> list[dict]:
    """PUSHB of 100 and of 1 000 jobs per line (``--jobs`` jobs each)."""
    out = []
    for size in (100, 1000):
        for _ in range(max(1, args.repeat)):
            b.admin(b"FLUSH")
            out.append(b.push(args.jobs, f"push (PUSHB of {size})", batch=size))
        if args.repeat > 1:
            out.append(median_of(out, f"push (PUSHB of {size})"))
    b.admin(b"FLUSH")
    return out


def scenario_scheduled(b: Bench, args) -> list[dict]:
    """``--jobs`` jobs scheduled for one instant: all must be enqueued within
    seconds of it, and every one fetched exactly once."""
    b.admin(b"FLUSH")
    due = time.time() + args.lead
    from datetime import datetime

    at = datetime.fromtimestamp(due, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out = [
        b.push(args.jobs, f"schedule {args.jobs} jobs for +{args.lead:.0f} s", pipeline=50, at=at)
    ]
    left = due - time.time()
    if left < 0:
        print(f"warning: pushing took longer than --lead ({args.lead} s); raise it")
    info = b.info()["faktory"]
    print(f"scheduled set holds {info['sets']['scheduled']} jobs; due in {left:.1f} s")
    while time.time() < due:
        time.sleep(0.05)
    done_at = None
    while time.time() < due + 120:
        info = b.info()["faktory"]
        if info["sets"]["scheduled"] == 0 and info["total_enqueued"] >= args.jobs:
            done_at = time.time()
            break
        time.sleep(0.1)
    if done_at is None:
        print("FAILED: jobs still scheduled 120 s after they were due")
    else:
        print(f"all {info['total_enqueued']} jobs enqueued {done_at - due:.2f} s after due")
    # No FAIL while draining: a failed job would come back from the retries
    # and be counted twice.
    summary, r = b.pop(args.jobs, "drain", pipeline=20, collect_jids=True, fail_pct=0)
    jids = r["jids"]
    unique = len(set(jids))
    lost = args.jobs - unique
    print(
        f"fetched {len(jids)} jobs, {unique} distinct; lost {lost}; duplicates {len(jids) - unique}"
    )
    out += [
        summary,
        {
            "phase": "scheduled check",
            "enqueued_after_due_s": None if done_at is None else round(done_at - due, 2),
            "fetched": len(jids),
            "distinct": unique,
            "lost": lost,
        },
    ]
    return out


def scenario_duration(b: Bench, args) -> list[dict]:
    """Every connection pushes, fetches and ACKs in turn for ``--duration``
    seconds (a steady queue), sampling server RSS to show it stays flat."""
    b.admin(b"FLUSH")
    samples = []

    def sample(cost, started, procs):
        last = time.monotonic()
        base = b.info()["server"]["command_count"]
        while any(p.is_alive() for p in procs):
            time.sleep(min(args.sample, max(0.1, started + args.duration - time.monotonic())))
            if time.monotonic() - last < args.sample and time.monotonic() < started + args.duration:
                continue
            now = time.monotonic()
            try:
                info = b.info()
            except OSError:
                break
            cmds = info["server"]["command_count"]
            rss = cost.rss()
            mem = b.redis_memory()
            row = {
                "t": round(now - started),
                "server_rss_kb": rss["server"],
                "redis_used_memory": mem.get("used_memory"),
                "commands_per_s": round((cmds - base) / (now - last)),
                "queued": info["faktory"]["total_enqueued"],
                "retries": info["faktory"]["sets"]["retries"],
            }
            base, last = cmds, now
            samples.append(row)
            print(
                f"  t={row['t']:>5}s server RSS {row['server_rss_kb']} kB,"
                f" redis {row['redis_used_memory']} B, {row['commands_per_s']} cmd/s,"
                f" queued {row['queued']}, retries {row['retries']}",
                flush=True,
            )
            if now >= started + args.duration:
                break

    roles = [("cycle", -1)] * args.connections
    r = b.run(roles, 1, duration=args.duration, sample=sample)
    out = [b.report(f"{args.duration:.0f} s steady run", r, r["counts"]["fetched"])]
    if len(samples) >= 3:
        # Skip the warm-up sample: caches and buffers fill in the first seconds.
        first, peak = samples[1]["server_rss_kb"], max(s["server_rss_kb"] for s in samples[1:])
        last = samples[-1]["server_rss_kb"]
        print(f"server RSS after warm-up {first} kB, peak {peak} kB, end {last} kB")
        out.append({"phase": "rss", "samples": samples, "growth_kb": last - first})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", default=os.environ.get("FAKTORY_URL", "tcp://127.0.0.1:7419"))
    p.add_argument("--jobs", type=int, default=30000)
    p.add_argument("--connections", type=int, default=10)
    p.add_argument("--queues", type=int, default=5, help="number of queues (queue0..)")
    p.add_argument("--mode", choices=("mixed", "push", "pop"), default="mixed")
    p.add_argument(
        "--scenario",
        choices=("load", "backlog", "scheduled", "fleet", "pushb"),
        default="load",
        help="load: --mode; backlog: cost at 1 000 vs --backlog queued;"
        " scheduled: --jobs jobs coming due at once; fleet: 1 000 connections"
        " (--connections), --pushers of them pushing, the rest workers mostly"
        " waiting in FETCH; pushb: PUSHB of 100 and of 1 000 jobs",
    )
    p.add_argument("--pushers", type=int, default=10, help="fleet: pushing connections")
    p.add_argument("--backlog", type=int, default=1_000_000)
    p.add_argument("--lead", type=float, default=30.0, help="scheduled: seconds until due")
    p.add_argument("--duration", type=float, default=0, help="steady run of this many seconds")
    p.add_argument("--sample", type=float, default=30.0, help="seconds between RSS samples")
    p.add_argument("--pipeline", type=int, default=1, help="commands in flight per connection")
    p.add_argument(
        "--batch",
        type=int,
        default=1,
        help="push: PUSHB this many jobs per line (PUSH p50/p99 are then per PUSHB)",
    )
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        help="client processes, each driving its share of the connections through epoll"
        " (default 1: the standard test keeps it near half a core, and on a 2-core machine"
        " more processes only compete with the server for CPU; add some when the report"
        " warns that the client is saturated)",
    )
    p.add_argument(
        "--repeat", type=int, default=1, help="run the load test N times; print the median"
    )
    p.add_argument(
        "--warmup", type=int, default=5000, help="mixed jobs run first and not counted (0: none)"
    )
    p.add_argument("--fail-pct", type=float, default=1.0)
    p.add_argument("--server-pid", type=int, action="append", help="default: auto-detect")
    p.add_argument("--redis-url", help="for INFO memory (default: the spawned Redis' socket)")
    p.add_argument("--no-flush", action="store_true", help="keep existing data")
    p.add_argument("--keep", action="store_true", help="backlog: leave the jobs queued")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument(
        "--spawn",
        action="store_true",
        help="start a server from this checkout (free port, temporary data dir) and bench it",
    )
    p.add_argument("--spawn-args", default="", help='extra server options, e.g. "--workers 2"')
    args = p.parse_args(argv)
    if args.spawn:
        with spawned_server(args.spawn_args.split()) as url:
            args.url = url
            return run_bench(args)
    return run_bench(args)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(proc: subprocess.Popen, port: int, failure: str, timeout: float = 30) -> None:
    """Return once ``port`` accepts connections; exit with ``failure`` if
    ``proc`` ends first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(failure) from None
            time.sleep(0.1)


@contextlib.contextmanager
def spawned_server(extra: list[str]):
    """``python -m twisted faktory`` on a free port with a throw-away data dir."""
    data_dir = tempfile.mkdtemp(prefix="fkbench", dir="/tmp")
    port = free_port()
    log = open(os.path.join(data_dir, "server.log"), "wb")
    cmd = [sys.executable, "-m", "twisted", "--log-format", "text", "faktory"]
    cmd += ["--bind", f"tcp:{port}:interface=127.0.0.1", "--web", "none"]
    cmd += ["--data-dir", data_dir, *extra]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=data_dir)
    try:
        wait_listening(proc, port, f"server did not start; see {log.name}")
        time.sleep(1.0 if "--workers" in extra else 0)  # let the children listen too
        print(f"spawned server pid {proc.pid} on port {port} ({data_dir})", flush=True)
        yield f"tcp://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def median_of(results: list[dict], mode: str) -> dict:
    """The median run (by jobs/s) of a repeated load test, with the spread."""
    runs = sorted(
        (r for r in results if mode in (r["phase"], r["phase"].split(" (")[0])),
        key=lambda r: r["jobs_per_s"],
    )
    mid = runs[len(runs) // 2]
    rates = [r["jobs_per_s"] for r in runs]
    cpu = sorted(r["server_cpu_s_per_1000"] for r in runs)
    gauge = sorted(r["redis_cpu_s_per_1000"] for r in runs)
    print(
        f"{mode}, median of {len(runs)} runs: {mid['jobs_per_s']} jobs/s"
        f" (all: {', '.join(map(str, rates))})"
        f" | FETCH p99 {mid['fetch_p99_ms']} ms, PUSH p99 {mid['push_p99_ms']} ms"
        f" | server CPU per 1000 jobs median {cpu[len(cpu) // 2]:.3f} s"
        f" (Redis {gauge[len(gauge) // 2]:.3f} s)",
        flush=True,
    )
    return {"phase": f"{mode} median", "runs": len(runs), "rates": rates, "median": mid}


def run_bench(args) -> int:
    global QUEUES
    QUEUES = [f"queue{i}" for i in range(args.queues)]

    b = Bench(args)
    print(
        f"server pids {b.tree} ({', '.join(procstat.comm(x) for x in b.tree)});"
        f" load average {procstat.loadavg()}; {os.cpu_count()} cores"
    )
    if args.duration:
        results = scenario_duration(b, args)
    elif args.scenario == "backlog":
        results = scenario_backlog(b, args)
    elif args.scenario == "scheduled":
        results = scenario_scheduled(b, args)
    elif args.scenario == "fleet":
        results = scenario_fleet(b, args)
    elif args.scenario == "pushb":
        results = scenario_pushb(b, args)
    else:
        results = []
        if args.warmup:
            # A new server (and its Redis) is slower for its first few thousand
            # jobs: caches, allocators and Python's specializing interpreter warm up.
            b.admin(b"FLUSH")
            b.mixed(args.warmup, "warm-up (not counted)")
        for _ in range(max(1, args.repeat)):
            if not args.no_flush:
                b.admin(b"FLUSH")
            if args.mode == "push" and args.batch > 1:
                results += [b.push(args.jobs, f"push (PUSHB of {args.batch})", batch=args.batch)]
            elif args.mode == "push":
                results += [b.push(args.jobs)]
            elif args.mode == "pop":
                results += [b.fill(args.jobs, "fill"), b.pop(args.jobs)[0]]
            else:
                results += [b.mixed(args.jobs)]
        if args.repeat > 1:
            results.append(median_of(results, args.mode))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
