"""``faktory-cli``: operate a running server over the work protocol.

    faktory-cli info [--json]
    faktory-cli queue pause|resume|remove NAME... | *
    faktory-cli queue latency NAME...
    faktory-cli retries|scheduled|dead requeue|kill|discard|clear [--jobtype T] [--jid J]... [--match GLOB]

The server is ``--url`` or ``$FAKTORY_URL`` (``tcp://[:password@]host:port``,
``tcp+tls://`` for TLS), default ``tcp://127.0.0.1:7419``.  Subcommands are
registered in ``COMMANDS`` so other modules (backup, restore) can add theirs.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlparse

from .protocol import password_hash


class ServerError(Exception):
    """An ``-ERR`` reply, or a server that cannot be reached."""


class Connection:
    """A blocking work-protocol connection, enough for admin commands."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parsed = urlparse(url if "://" in url else "tcp://" + url)
        host, port = parsed.hostname or "127.0.0.1", parsed.port or 7419
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise ServerError(f"cannot connect to {host}:{port}: {e.strerror or e}") from None
        if "tls" in parsed.scheme:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        self.sock = sock
        self.f = sock.makefile("rwb")
        greeting = self._read()
        hello: dict[str, Any] = {"v": 2, "hostname": socket.gethostname(), "pid": os.getpid()}
        info = json.loads(greeting[3:]) if greeting.startswith("HI ") else {}
        if "s" in info:
            password = unquote(parsed.password or "")
            hello["pwdhash"] = password_hash(password, info["s"], info.get("i", 1))
        self.call("HELLO " + json.dumps(hello))

    def _read(self) -> Any:
        line = self.f.readline()
        if not line:
            raise ServerError("the server closed the connection")
        line = line.decode().rstrip("\r\n")
        kind, rest = line[:1], line[1:]
        if kind == "-":
            raise ServerError(rest)
        if kind == "$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2].decode()
        return rest

    def call(self, line: str) -> Any:
        self.f.write(line.encode() + b"\r\n")
        self.f.flush()
        return self._read()

    def close(self) -> None:
        try:
            self.f.write(b"END\r\n")
            self.f.flush()
        except OSError:
            pass
        self.sock.close()


def _connect(args) -> Connection:
    return Connection(args.url)


def _table(rows: list[tuple[Any, ...]], headers: tuple[str, ...]) -> str:
    cells = [headers] + [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cmd_info(args) -> int:
    conn = _connect(args)
    info = json.loads(conn.call("INFO"))
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
    if fk["queues"]:
        print()
        print(_table(sorted((q, f"{n:,}") for q, n in fk["queues"].items()), ("queue", "size")))
    return 0


def cmd_queue(args) -> int:
    conn = _connect(args)
    reply = conn.call(f"QUEUE {args.action.upper()} " + " ".join(args.names))
    conn.close()
    if args.action == "latency":
        latency = json.loads(reply)
        if args.json:
            print(json.dumps(latency))
        else:
            print(_table([(q, f"{s:.3f}") for q, s in latency.items()], ("queue", "latency (s)")))
    elif args.json:
        print(json.dumps({"ok": True}))
    else:
        print(f"{args.action}: {' '.join(args.names)}")
    return 0


def cmd_mutate(args) -> int:
    op: dict[str, Any] = {"cmd": args.action, "target": args.target}
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
    conn.call("MUTATE " + json.dumps(op, separators=(",", ":")))
    conn.close()
    print(json.dumps({"ok": True}) if args.json else f"{args.action} {args.target}: done")
    return 0


# name -> (help, function(parser) adding arguments, handler(args) -> exit code)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable]] = {}


def command(name: str, help: str, handler: Callable, arguments: Callable | None = None) -> None:
    """Register a subcommand (used by this module and by e.g. faktory.backup)."""
    COMMANDS[name] = (help, arguments or (lambda p: None), handler)


def _queue_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("pause", "resume", "remove", "latency"))
    p.add_argument("names", nargs="+", help="queue names, or * for every queue")


def _mutate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("requeue", "kill", "discard", "clear"))
    p.add_argument("--jobtype", help="only jobs of this type")
    p.add_argument("--jid", action="append", help="only this job (repeatable)")
    p.add_argument("--match", help="only entries matching this Redis glob, e.g. '*timeout*'")


command("info", "server statistics", cmd_info)
command("queue", "pause, resume, remove or measure queues", cmd_queue, _queue_args)
for _target in ("retries", "scheduled", "dead"):
    command(
        _target,
        f"requeue, kill, discard or clear jobs in the {_target} set",
        lambda args, t=_target: cmd_mutate(_with(args, target=t)),
        _mutate_args,
    )


def _with(args, **kw):
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="faktory-cli", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--url",
        default=os.environ.get("FAKTORY_URL", "tcp://127.0.0.1:7419"),
        help="server URL (default $FAKTORY_URL or tcp://127.0.0.1:7419)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    sub = p.add_subparsers(dest="command", required=True)
    for name, (help, arguments, handler) in COMMANDS.items():
        sp = sub.add_parser(name, help=help)
        arguments(sp)
        sp.set_defaults(handler=handler)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except ServerError as e:
        print(f"faktory-cli: {e}", file=sys.stderr)
        return 1


from . import backup  # noqa: E402 - registers backup/restore

backup.register_commands(command)


if __name__ == "__main__":
    sys.exit(main())
