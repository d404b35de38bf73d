"""Work-protocol verbs for operators (``faktory-cli``), and the audit log of
every operator action that arrives over the wire.

The real Faktory offers INFO, QUEUE, MUTATE and FLUSH; an operator also needs
to list the retries/scheduled/dead sets page by page, see the worker
processes and quiet or stop them, and know how many jobs a mutation touched.
So, beside the real server's verbs (clients of the real server never send
these, and their replies are unchanged):

* ``LIST {"target": "retries", "start": 0, "count": 25}`` -> ``{"total": n,
  "jobs": [{"at": score, "job": {...}}]}`` (``reverse``: newest first);
* ``WORKERS`` -> ``[{worker record}]``;
* ``WORKER {"wid": "...", "signal": "quiet"|"terminate"}`` (``wid`` ``*`` =
  every worker) -> ``{"signalled": n}``;
* ``MUTATE`` with ``"count": true`` in its JSON answers ``{"done": n}``
  instead of ``OK``.

QUEUE, MUTATE, FLUSH, WORKER are logged with who sent them (peer address,
the HELLO's hostname and pid) and what they did.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer

from . import wire
from .audit import audit
from .errors import CommandError
from .protocol import OK

MAX_PAGE = 1000


def who(proto) -> str:
    """The sender of a command, as an audit line names it."""
    peer = proto.transport.getPeer()
    host = getattr(peer, "host", None)
    where = f"{host}:{peer.port}" if host is not None else str(getattr(peer, "name", "") or "unix")
    hello = proto.hello or {}
    extra = ", ".join(
        f"{k} {hello[k]}" for k in ("hostname", "pid", "wid") if hello.get(k) not in (None, "")
    )
    return f"{where} ({extra})" if extra else where


def _object(verb: str, arg: str) -> dict[str, Any]:
    try:
        value = wire.loads(arg) if arg else None  # depth, NaN, surrogates as in Go
    except ValueError as e:
        raise CommandError(f"{verb} needs a JSON object, e.g. {verb} {{...}}: {e}") from None
    if not isinstance(value, dict):
        raise CommandError(f"{verb} needs a JSON object, e.g. {verb} {{...}}")
    return value


def install(factory) -> None:
    """Register the operator verbs and wrap QUEUE/MUTATE/FLUSH with the audit."""
    queue, flush = factory.commands[b"QUEUE"], factory.commands[b"FLUSH"]

    def cmd_queue(proto, arg: str):
        d = queue(proto, arg)
        sub, _, names = arg.partition(" ")
        if sub.upper() in ("PAUSE", "RESUME", "REMOVE"):
            d.addCallback(_logged, who(proto), f"QUEUE {sub.upper()} {names.strip()}")
        return d

    def cmd_flush(proto, arg: str):
        d = flush(proto, arg)
        return d.addCallback(_logged, who(proto), "FLUSH (every job and counter deleted)")

    def cmd_mutate(proto, arg: str):
        # Decoded as the real server does (wire.OPERATION: typed filter fields,
        # case-insensitive keys, its errors), plus our "count".
        if not arg or " " in arg:
            raise CommandError("invalid format")
        try:
            op = wire.decode(arg, wire.OPERATION)
        except ValueError as e:
            raise CommandError(str(e)) from None
        filt = op.get("filter")
        admin = proto.factory.server.admin
        sender = who(proto)
        d = defer.Deferred.fromCoroutine(
            admin.mutate(op.get("cmd", ""), op.get("target", ""), filt)
        )

        def done(n: int):
            audit(
                sender,
                "MUTATE {cmd} {target} {filter}: {n} job(s)",
                cmd=op.get("cmd"),
                target=op.get("target"),
                filter=json.dumps(filt, separators=(",", ":")) if filt is not None else "-",
                n=n,
            )
            return json.dumps({"done": n}) if op.get("count") is True else OK

        return d.addCallback(done)

    def cmd_list(proto, arg: str):
        req = _object("LIST", arg)
        target = req.get("target")
        start, count = req.get("start", 0), req.get("count", 25)
        if target not in ("retries", "scheduled", "dead"):
            raise CommandError("LIST target must be retries, scheduled or dead")
        if not _int(start) or start < 0 or not _int(count) or not 1 <= count <= MAX_PAGE:
            raise CommandError(f"LIST start must be >= 0 and count from 1 to {MAX_PAGE}")
        admin = proto.factory.server.admin
        d = defer.Deferred.fromCoroutine(
            admin.set_page(target, start, count, bool(req.get("reverse")))
        )

        def reply(page):
            total, rows, _more = page
            jobs = []
            for key, raw in rows:
                try:
                    job = json.loads(raw)
                except ValueError:
                    job = {"raw": raw.decode("utf-8", "replace")}
                jobs.append({"at": float(key.partition("|")[0]), "job": job})
            return json.dumps({"total": total, "jobs": jobs})

        return d.addCallback(reply)

    def cmd_workers(proto, arg: str):
        d = defer.Deferred.fromCoroutine(proto.factory.server.admin.worker_records())
        return d.addCallback(json.dumps)

    def cmd_worker(proto, arg: str):
        req = _object("WORKER", arg)
        wid, signal = req.get("wid"), req.get("signal")
        if signal not in ("quiet", "terminate"):
            raise CommandError("WORKER signal must be quiet or terminate")
        if not isinstance(wid, str) or not wid:
            raise CommandError("WORKER needs a wid (or * for every worker)")
        workers = proto.factory.server.workers
        sender = who(proto)

        async def run() -> int:
            if wid == "*":
                records = await proto.factory.server.store.workers()
                n = 0
                for rec in records:
                    if await workers.signal(rec["wid"], signal):
                        n += 1
                return n
            state = await workers.signal(wid, signal)
            if state is None:
                raise CommandError(f"no worker process {wid}")
            return 1

        def done(n: int):
            audit(sender, "WORKER {signal} {wid}: {n} process(es)", signal=signal, wid=wid, n=n)
            return json.dumps({"signalled": n})

        return defer.Deferred.fromCoroutine(run()).addCallback(done)

    factory.add_command("QUEUE", cmd_queue)
    factory.add_command("FLUSH", cmd_flush)
    factory.add_command("MUTATE", cmd_mutate)
    factory.add_command("LIST", cmd_list)
    factory.add_command("WORKERS", cmd_workers)
    factory.add_command("WORKER", cmd_worker)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _logged(result, sender: str, what: str):
    audit(sender, "{what}", what=what)
    return result
