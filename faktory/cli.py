"""``faktory-cli``: operate a running server over the work protocol.

    faktory-cli info [--json]
    faktory-cli queue pause|resume|remove NAME... | *
    faktory-cli queue latency NAME...
    faktory-cli retries|scheduled|dead list [--page N] [--per-page N] [--newest] [--json]
    faktory-cli retries|scheduled|dead requeue|kill|discard|clear [--jobtype T] [--jid J]... [--match GLOB]
    faktory-cli workers list | quiet|stop WID... | --all

The server is ``--url`` or ``$FAKTORY_URL`` (``tcp://[:password@]host:port``,
``tcp+tls://`` for TLS, with ``--cacert``/``--cert``/``--key``), default
``tcp://127.0.0.1:7419``.  Every error is one line on stderr and exit status
1 (2 for a command-line mistake).  Subcommands are registered in
``COMMANDS`` so other modules (backup, restore) can add theirs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from .cliconn import CLIError, Connection, ServerError

__all__ = ["CLIError", "Connection", "ServerError", "command", "main", "parser"]


def _connect(args) -> Connection:
    return Connection(
        args.url, timeout=args.timeout, cacert=args.cacert, cert=args.cert, key=args.key
    )


def _table(rows: list[tuple[Any, ...]], headers: tuple[str, ...]) -> str:
    cells = [headers] + [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _call_json(conn: Connection, line: str) -> Any:
    reply = conn.call(line)
    try:
        return json.loads(reply)
    except (TypeError, ValueError):
        raise CLIError(f"unexpected reply to {line.split()[0]}: {str(reply)[:80]!r}") from None


def cmd_info(args) -> int:
    conn = _connect(args)
    info = _call_json(conn, "INFO")
    conn.close()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    fk, srv = info["faktory"], info["server"]
    print(
        f"Faktory {srv['faktory_version']}  up {srv['uptime']} s  connections {srv['connections']}"
    )
    print(
        _table(
            [
                ("processed", f"{fk['total_processed']:,}"),
                ("failed", f"{fk['total_failures']:,}"),
                ("enqueued", f"{fk['total_enqueued']:,}"),
                ("busy", f"{fk['sets']['working']:,}"),
                ("scheduled", f"{fk['sets']['scheduled']:,}"),
                ("retries", f"{fk['sets']['retries']:,}"),
                ("dead", f"{fk['sets']['dead']:,}"),
            ],
            ("", "count"),
        )
    )
    paused = set(fk.get("paused") or ())
    names = sorted(set(fk["queues"]) | paused)
    if names:
        print()
        rows = [(q, f"{fk['queues'].get(q, 0):,}", "paused" if q in paused else "") for q in names]
        print(_table(rows, ("queue", "size", "state")))
    return 0


def cmd_queue(args) -> int:
    conn = _connect(args)
    sizes = _call_json(conn, "INFO")["faktory"]["queues"]
    if "*" in args.names:
        if args.action == "latency":
            raise CLIError("queue latency needs queue names (no *)")
        names, missing = sorted(sizes), []
    else:
        names = [n for n in dict.fromkeys(args.names) if n in sizes]
        missing = [n for n in dict.fromkeys(args.names) if n not in sizes]
    result: dict[str, Any] = {"action": args.action, "queues": names, "missing": missing}
    if names:
        reply = conn.call(f"QUEUE {args.action.upper()} " + " ".join(names))
    conn.close()
    if args.action == "latency":
        latency = json.loads(reply) if names else {}
        result["latency"] = latency
        text = _table([(q, f"{s:.3f}") for q, s in latency.items()], ("queue", "latency (s)"))
    else:
        done = {"pause": "paused", "resume": "resumed", "remove": "removed"}[args.action]
        text = f"{done} {len(names)} queue(s)"
        if args.action == "remove":
            jobs = sum(sizes[n] for n in names)
            result["jobs"] = jobs
            text += f" and their {jobs:,} job(s)"
        if names:
            text += ": " + ", ".join(names)
    if args.json:
        print(json.dumps(result["latency"] if args.action == "latency" else result))
    elif names:
        print(text)
    if missing:
        _error("no such queue: " + ", ".join(missing))
        return 1
    if not names:
        _error("no queues to " + args.action)
        return 1
    return 0


VERBS = {"requeue": "requeued", "kill": "killed", "discard": "discarded", "clear": "cleared"}


def cmd_mutate(args) -> int:
    op: dict[str, Any] = {"cmd": args.action, "target": args.target, "count": True}
    filt: dict[str, Any] = {}
    if args.jobtype:
        filt["jobtype"] = args.jobtype
    if args.jid:
        filt["jids"] = args.jid
    if args.match:
        filt["regexp"] = args.match
    if filt or args.action != "discard":
        op["filter"] = filt
    conn = _connect(args)
    reply = conn.call("MUTATE " + json.dumps(op, separators=(",", ":")))
    conn.close()
    try:
        done = json.loads(reply)["done"]
    except (TypeError, ValueError, KeyError):
        done = None  # a server that answers OK without a count (the real Faktory)
    if args.json:
        print(json.dumps({"action": args.action, "target": args.target, "done": done}))
    elif done is None:
        print(f"{args.action} {args.target}: done (the server does not report a count)")
    else:
        print(f"{VERBS[args.action]} {done:,} job(s) in {args.target}")
    return 0


def _when(ts: float | None, now: float) -> str:
    if not ts:
        return "-"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))
    delta = ts - now
    rel = f"in {_ago(delta)}" if delta >= 0 else f"{_ago(-delta)} ago"
    return f"{stamp} ({rel})"


def _ago(seconds: float) -> str:
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _error_text(job: dict[str, Any]) -> str:
    failure = job.get("failure") or {}
    kind, message = failure.get("errtype") or "", failure.get("message") or ""
    text = f"{kind}: {message}" if kind and message else kind or message
    return " ".join(text.split())[:60] or "-"


COLUMNS = {"retries": "next retry", "scheduled": "runs at", "dead": "expires"}


def cmd_list(args) -> int:
    per = args.per_page
    if args.page < 1 or not 1 <= per <= 1000:
        raise CLIError("--page must be >= 1 and --per-page from 1 to 1000")
    conn = _connect(args)
    req = {
        "target": args.target,
        "start": (args.page - 1) * per,
        "count": per,
        "reverse": bool(args.newest),
    }
    page = _call_json(conn, "LIST " + json.dumps(req, separators=(",", ":")))
    conn.close()
    total, entries = page["total"], page["jobs"]
    pages = max(1, (total + per - 1) // per)
    if args.json:
        print(
            json.dumps(
                {"target": args.target, "total": total, "page": args.page, "pages": pages}
                | {"jobs": entries}
            )
        )
        return 0
    now = time.time()
    rows = []
    for entry in entries:
        job = entry["job"]
        rows.append(
            (
                job.get("jid", "?"),
                job.get("jobtype", "?"),
                job.get("queue", "default"),
                _error_text(job),
                _when(entry.get("at"), now),
            )
        )
    if rows:
        print(_table(rows, ("jid", "type", "queue", "error", COLUMNS[args.target])))
    more = f"; next: --page {args.page + 1}" if args.page < pages else ""
    print(f"{args.target}: {total:,} job(s), page {args.page} of {pages}{more}")
    return 0


def cmd_set(args) -> int:
    return cmd_list(args) if args.action == "list" else cmd_mutate(args)


def cmd_workers(args) -> int:
    conn = _connect(args)
    if args.action == "list":
        records = _call_json(conn, "WORKERS")
        conn.close()
        if args.json:
            print(json.dumps(records))
            return 0
        now = time.time()
        rows = [
            (
                r["wid"],
                r.get("hostname", ""),
                r.get("pid", ""),
                r.get("state", ""),
                ",".join(r.get("labels") or []) or "-",
                _when(r.get("beat"), now) if r.get("beat") else "-",
            )
            for r in records
        ]
        if rows:
            print(_table(rows, ("wid", "host", "pid", "state", "labels", "last beat")))
        print(f"{len(records)} worker process(es)")
        return 0
    wids = ["*"] if args.all else args.wids
    if not wids:
        conn.close()
        raise CLIError(f"workers {args.action} needs worker ids (wid) or --all")
    signal = "quiet" if args.action == "quiet" else "terminate"
    done, missing = 0, []
    for wid in wids:
        try:
            done += _call_json(conn, "WORKER " + json.dumps({"wid": wid, "signal": signal}))[
                "signalled"
            ]
        except ServerError as e:
            if "no worker process" not in str(e):
                raise
            missing.append(wid)
    conn.close()
    if args.json:
        print(json.dumps({"signal": signal, "signalled": done, "missing": missing}))
    else:
        print(f"sent {signal} to {done} worker process(es)")
    if missing:
        _error("no such worker process: " + ", ".join(missing))
        return 1
    return 0


# name -> (help, function(parser) adding arguments, handler(args) -> exit code)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable]] = {}


def command(name: str, help: str, handler: Callable, arguments: Callable | None = None) -> None:
    """Register a subcommand (used by this module and by e.g. faktory.backup)."""
    COMMANDS[name] = (help, arguments or (lambda p: None), handler)


def _json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )


def _queue_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("pause", "resume", "remove", "latency"))
    p.add_argument("names", nargs="+", help="queue names, or * for every queue")
    _json_flag(p)


def _set_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("list", "requeue", "kill", "discard", "clear"))
    p.add_argument("--jobtype", help="only jobs of this type")
    p.add_argument("--jid", action="append", help="only this job (repeatable)")
    p.add_argument("--match", help="only entries matching this Redis glob, e.g. '*timeout*'")
    p.add_argument("--page", type=int, default=1, help="list: page number (default 1)")
    p.add_argument("--per-page", type=int, default=25, help="list: jobs per page (default 25)")
    p.add_argument("--newest", action="store_true", help="list: latest first")
    _json_flag(p)


def _workers_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("list", "quiet", "stop"))
    p.add_argument("wids", nargs="*", help="quiet/stop: worker ids (wid)")
    p.add_argument("--all", action="store_true", help="quiet/stop: every worker process")
    _json_flag(p)


command("info", "server statistics and queues (paused ones marked)", cmd_info, _json_flag)
command("queue", "pause, resume, remove or measure queues", cmd_queue, _queue_args)
for _target in ("retries", "scheduled", "dead"):
    command(
        _target,
        f"list, requeue, kill, discard or clear jobs in the {_target} set",
        lambda args, t=_target: cmd_set(_with(args, target=t)),
        _set_args,
    )
command("workers", "list worker processes, or quiet/stop them", cmd_workers, _workers_args)


def _with(args, **kw):
    for k, v in kw.items():
        setattr(args, k, v)
    return args


class _Parser(argparse.ArgumentParser):
    """A command-line mistake is one line too (and exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="faktory-cli", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--url",
        default=os.environ.get("FAKTORY_URL", "tcp://127.0.0.1:7419"),
        help="server URL (default $FAKTORY_URL or tcp://127.0.0.1:7419)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for a reply (default 30)"
    )
    p.add_argument("--cacert", help="TLS: CA (or self-signed server) certificate file (PEM)")
    p.add_argument("--cert", help="TLS: client certificate file (PEM), if the server asks")
    p.add_argument("--key", help="TLS: the client certificate's private key (PEM)")
    sub = p.add_subparsers(dest="command", required=True)
    for name, (help, arguments, handler) in COMMANDS.items():
        sp = sub.add_parser(name, help=help)
        arguments(sp)
        sp.set_defaults(handler=handler)
    return p


def _error(line: str) -> None:
    print(f"faktory-cli: {line}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ServerError, CLIError) as e:
        _error(str(e))
    except (OSError, ValueError, KeyError) as e:
        _error(f"{type(e).__name__}: {e}")
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    return 1


from . import backup, restore  # noqa: E402 - they add their commands to COMMANDS

backup.register_commands(command)
restore.register_commands(command)


if __name__ == "__main__":
    sys.exit(main())
