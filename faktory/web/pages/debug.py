"""The Debug page: Redis INFO and the facts an operator asks for."""

from __future__ import annotations

import platform

from twisted.web.template import Tag

from ... import FAKTORY_COMPAT_VERSION, __version__
from ..layout import (
    Ctx,
    badge,
    tags,
)
from .job import _row


# -- debug --------------------------------------------------------------------------
def debug(ctx: Ctx, redis_info: str, rtt: float, facts: list[tuple[str, str]]) -> Tag:
    _ = ctx._
    micro = int(rtt * 1_000_000)
    level = "ok" if micro < 1000 else "info" if micro < 10000 else "danger"
    rows = [_row(_("Redis round trip"), badge(_("{n} µs", n=ctx.number(micro)), level))]
    rows += [_row(label, value) for label, value in facts]
    return tags.div(
        tags.section(tags.table(tags.tbody(*rows), class_="table fields"), class_="card"),
        tags.section(
            tags.h2(_("Redis INFO")),
            tags.pre(redis_info.replace("\r\n", "\n"), class_="info"),
            class_="card",
        ),
    )


def debug_facts(ctx: Ctx, redis_info: str) -> list[tuple[str, str]]:
    import gc
    import os
    import shutil

    import twisted

    server = ctx.server
    fields = dict(
        line.split(":", 1)
        for line in redis_info.splitlines()
        if ":" in line and not line.startswith("#")
    )
    proc = server.redis_process
    location = proc.socket if proc is not None else _hide_password(server.settings.redis_url)
    _, n = ctx._, ctx.number
    uptime = ctx.t.duration(ctx.now - server.started_at)
    runs = [_("gen{i}: {n} runs", i=i, n=n(s["collections"])) for i, s in enumerate(gc.get_stats())]
    facts = [
        (_("Version"), f"Faktory {FAKTORY_COMPAT_VERSION} (faktory-server {__version__})"),
        (
            "Redis",
            _("{version} on {where}", version=fields.get("redis_version", "?"), where=location),
        ),
        (_("Data directory"), server.settings.data_dir),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("Twisted", twisted.__version__),
        (_("Process"), _("pid {pid}, up {uptime}", pid=os.getpid(), uptime=uptime)),
        (
            _("Memory"),
            _("{n} MB resident", n=n(ctx.info["server"]["used_memory_mb"])),
        ),
        (_("Garbage collector"), ", ".join(runs)),
        (_("Redis memory"), fields.get("used_memory_human", "?").strip()),
    ]
    try:
        usage = shutil.disk_usage(server.settings.data_dir)
        free, total = round(usage.free / 2**30, 1), round(usage.total / 2**30, 1)
        facts.append((_("Disk"), _("{free} GB free of {total} GB", free=n(free), total=n(total))))
    except OSError:
        pass
    facts.append((_("Server time"), ctx.t.datetime(ctx.now)))
    return facts


def _hide_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
