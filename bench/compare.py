"""Compare the server of two checkouts on this machine, fairly.

The reference machine is a shared VM whose speed drifts by up to ±25 % from
one minute to the next, so two benchmark runs made minutes apart say little.
This runs ``load.py --spawn`` alternately against a server started from each
checkout (A, B, A, B, ...) and prints every run and the medians:

    git worktree add /tmp/before <commit>
    python bench/compare.py /tmp/before . --rounds 4 -- --jobs 30000

Arguments after ``--`` go to ``load.py``.  Each checkout's ``faktory``
package is put first on ``PYTHONPATH``; the load generator is this one.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys

LOAD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "load.py")
RATE = re.compile(r"= (\d+) jobs/s")
CPU = re.compile(r"server CPU ([0-9.]+) s \+ redis ([0-9.]+) s per 1000 jobs")


def run(checkout: str, extra: list[str]) -> tuple[int, float, float]:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(checkout))
    cmd = [sys.executable, LOAD, "--spawn", *extra]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    found = None
    for i, line in enumerate(lines[:-1]):  # a result line, then its CPU line
        rate, cpu = RATE.search(line), CPU.search(lines[i + 1])
        if rate and cpu and not line.startswith("warm-up"):
            found = int(rate.group(1)), float(cpu.group(1)), float(cpu.group(2))
    if found is None:
        raise SystemExit(f"unexpected load.py output:\n{out}")
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("a", help="checkout A (a directory holding faktory/)")
    p.add_argument("b", help="checkout B")
    p.add_argument("--rounds", type=int, default=4)
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:  # what follows goes to load.py
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    args = p.parse_args(argv)
    results: dict[str, list[tuple[int, float, float]]] = {"A": [], "B": []}
    for i in range(args.rounds):
        for side, checkout in (("A", args.a), ("B", args.b)):
            r = run(checkout, extra)
            results[side].append(r)
            sys.stdout.write(
                f"round {i + 1} {side}: {r[0]} jobs/s, server CPU {r[1]:.3f} s"
                f" + Redis {r[2]:.3f} s per 1000 jobs\n"
            )
            sys.stdout.flush()
    for side, checkout in (("A", args.a), ("B", args.b)):
        rows = results[side]
        sys.stdout.write(
            f"{side} ({checkout}): median {statistics.median(r[0] for r in rows):.0f} jobs/s,"
            f" server CPU {statistics.median(r[1] for r in rows):.3f} s"
            f" (Redis {statistics.median(r[2] for r in rows):.3f} s) per 1000 jobs\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
