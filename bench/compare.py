"""Compare two servers on this machine, fairly: two checkouts of this one, or
this one against the real (Go) Faktory binary.

The reference machine is a shared VM whose speed drifts by up to ±25 % from
one minute to the next, so two benchmark runs made minutes apart say little.
This runs ``load.py`` alternately against a server of each side (A, B, C, A,
B, C, ...) and prints every run, the medians and each side's rate as a
multiple of A's:

    git worktree add /tmp/before <commit>
    python bench/compare.py /tmp/before . --rounds 4 -- --jobs 30000
    python bench/compare.py /root/.cache/real-faktory/bin/faktory /tmp/before . \\
        --modes push,pop,mixed --rounds 5 -- --jobs 30000

A side is a checkout (a directory holding ``faktory/``: ``load.py --spawn``
starts its server with that checkout first on ``PYTHONPATH``) or the real
server's executable (started here with a throw-away data dir, its web UI on a
free port; it runs its own Redis as a child, whose CPU is reported as
"Redis").  With ``--modes`` every round runs each mode on every side.
Arguments after ``--`` go to ``load.py``; the load generator is this one.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from load import free_port, wait_listening  # bench/ is sys.path[0]

LOAD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "load.py")
RATE = re.compile(r"= (\d+) jobs/s")
CPU = re.compile(r"server CPU ([0-9.]+) s \+ redis ([0-9.]+) s per 1000 jobs")
P99 = re.compile(r"FETCH\(work\) p50 [0-9.na]+ ms p99 ([0-9.na]+) ms")

Result = tuple[int, float, float, float]  # jobs/s, server and Redis CPU s per 1000 jobs, FETCH p99


def is_binary(side: str) -> bool:
    return os.path.isfile(side) and os.access(side, os.X_OK)


@contextlib.contextmanager
def real_server(binary: str):
    """The real Faktory on free ports with a throw-away (absolute) data dir."""
    data = tempfile.mkdtemp(prefix="fkgo", dir="/tmp")
    conf = tempfile.mkdtemp(prefix="fkgoconf", dir="/tmp")
    port = free_port()
    cmd = [binary, "-b", f"127.0.0.1:{port}", "-w", f"127.0.0.1:{free_port()}"]
    cmd += ["-d", os.path.abspath(data), "-c", conf, "-l", "warn"]
    env = {k: v for k, v in os.environ.items() if k != "FAKTORY_PASSWORD"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_listening(proc, port, f"{binary} did not start")
        time.sleep(0.5)  # its Redis is up once it listens; let it settle
        yield f"tcp://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(conf, ignore_errors=True)


def _parse(out: str) -> Result:
    lines = out.splitlines()
    found = None
    for i, line in enumerate(lines[:-1]):  # a result line, then its CPU line
        rate, cpu = RATE.search(line), CPU.search(lines[i + 1])
        if rate and cpu and not line.startswith(("warm-up", "fill")):
            p99 = P99.search(line)
            fetch = float(p99.group(1)) if p99 and p99.group(1) != "nan" else float("nan")
            found = int(rate.group(1)), float(cpu.group(1)), float(cpu.group(2)), fetch
    if found is None:
        raise SystemExit(f"unexpected load.py output:\n{out}")
    return found


def run(side: str, extra: list[str]) -> Result:
    if is_binary(side):
        with real_server(side) as url:
            cmd = [sys.executable, LOAD, "--url", url, *extra]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return _parse(out)
    env = dict(os.environ, PYTHONPATH=os.path.abspath(side))
    cmd = [sys.executable, LOAD, "--spawn", *extra]
    return _parse(subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout)


def _loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "sides", nargs="+", help="two or more: checkouts (directories holding faktory/) or binaries"
    )
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--modes", default="", help="e.g. push,pop,mixed: each round runs each mode")
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:  # what follows goes to load.py
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    args = p.parse_args(argv)
    if len(args.sides) < 2:
        p.error("give at least two sides to compare")
    sides = [(chr(ord("A") + i), where) for i, where in enumerate(args.sides)]
    modes = [m for m in args.modes.split(",") if m] or [""]
    results: dict[tuple[str, str], list[Result]] = {}
    sys.stdout.write(f"load average at the start: {_loadavg()}\n")
    for i in range(args.rounds):
        for mode in modes:
            for side, where in sides:
                r = run(where, extra + (["--mode", mode] if mode else []))
                results.setdefault((mode, side), []).append(r)
                sys.stdout.write(
                    f"round {i + 1} {mode or 'run'} {side}: {r[0]} jobs/s, server CPU {r[1]:.3f} s"
                    f" + Redis {r[2]:.3f} s per 1000 jobs, FETCH p99 {r[3]} ms"
                    f" | load {_loadavg()}\n"
                )
                sys.stdout.flush()
    for mode in modes:
        medians = {}
        for side, where in sides:
            rows = results[(mode, side)]
            medians[side] = statistics.median(r[0] for r in rows)
            sys.stdout.write(
                f"{mode or 'run'} {side} ({where}): median {medians[side]:.0f} jobs/s"
                f" (all: {', '.join(str(r[0]) for r in rows)}),"
                f" server CPU {statistics.median(r[1] for r in rows):.3f} s"
                f" (Redis {statistics.median(r[2] for r in rows):.3f} s) per 1000 jobs,"
                f" FETCH p99 median {statistics.median(r[3] for r in rows)} ms\n"
            )
        for side, _ in sides[1:]:
            ratios = [b[0] / a[0] for a, b in zip(results[(mode, "A")], results[(mode, side)])]
            sys.stdout.write(
                f"{mode or 'run'}: {side}/A = {medians[side] / medians['A']:.2f} (medians);"
                f" per round {', '.join(f'{x:.2f}' for x in ratios)}\n"
            )
    sys.stdout.write(f"load average at the end: {_loadavg()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
