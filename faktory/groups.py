"""Failures grouped by cause: the retries and dead sets counted by error
class or by job type, and acted on one group at a time (retry or delete
every job of a class).

Nothing indexes the sets by error class, so counting reads the set inside
Redis in steps of ``SCAN`` members (at most ``LIMIT`` per count), and a
group action works like MUTATE: bounded ``ZSCAN`` steps, each one atomic, so
a set of any size never blocks Redis or the reactor for long."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from . import luascript, removal
from .job import DEAD_TTL, format_time
from .store import Store

if TYPE_CHECKING:
    from .manager import Manager

log = Logger()

SETS = ("retries", "dead")
BY = ("errtype", "jobtype")
OPS = ("retry", "delete")
UNREADABLE = "(unreadable)"
SAMPLE_CHARS = 200  # characters of a group's sample error message


@dataclass
class Group:
    value: str  # the error class or job type ('' when the job has none)
    count: int
    sample: str  # one error message of the group


@dataclass
class Grouping:
    groups: list[Group]  # largest first
    counted: int  # entries read
    complete: bool  # False: the set holds more than LIMIT entries


class Groups:
    SCAN = 2000  # members one counting step reads inside Redis
    LIMIT = 200_000  # members one count reads at most

    _count = luascript.load(
        "group_count", constants={"UNREADABLE": UNREADABLE, "SAMPLE_CHARS": SAMPLE_CHARS}
    )
    _act = luascript.load("group_act", constants={"UNREADABLE": UNREADABLE})

    def __init__(self, store: Store, clock: IReactorTime) -> None:
        self.store = store
        self.clock = clock
        self.redis = store.redis
        self.prefix = store.prefix

    async def count(self, name: str, by: str) -> Grouping:
        """The entries of ``name`` counted by error class or job type."""
        _check(name, by)
        groups: dict[str, Group] = {}
        index, counted = 0, 0
        while index >= 0 and counted < self.LIMIT:
            flat = await self._count(self.redis, (self.prefix + name, index, self.SCAN, by))
            nxt = int(flat[0])
            for i in range(1, len(flat), 3):
                value = _text(flat[i])
                n = int(flat[i + 1])
                counted += n
                group = groups.setdefault(value, Group(value, 0, _text(flat[i + 2])))
                group.count += n
            index = nxt
        ordered = sorted(groups.values(), key=lambda g: (-g.count, g.value))
        return Grouping(ordered, counted, index < 0)

    async def act(
        self, name: str, by: str, value: str, op: str, manager: Manager | None = None
    ) -> int:
        """``retry`` (back into its queue now) or ``delete`` every entry of
        ``name`` whose error class / job type is ``value``; returns how many.
        Deleted jobs go through the ``manager``'s ``removed`` hook."""
        _check(name, by)
        if op not in OPS:
            raise ValueError(f"invalid action: {op}")
        now = self.clock.seconds()
        args = [self.prefix, self.store.origin, name]
        wanted = removal.probe(manager) if manager is not None else ""
        rest = [by, value, op, format_time(now), repr(now + DEAD_TTL), wanted]
        cursor, done = b"0", 0
        while True:
            reply = await self._act(self.redis, (*args, cursor, *rest))
            (cursor, n), removed = removal.split(reply, 2)
            done += int(n)
            if removed and manager is not None:
                await removal.notify(manager, removed, removal.DISCARD)
            if cursor in (b"0", "0", 0):
                break
        what = "error class" if by == "errtype" else "job type"
        log.info(
            "Operator {op} {n} job(s) of {what} {value!r} in {name}",
            op="retried" if op == "retry" else "deleted",
            n=done,
            what=what,
            value=value,
            name=name,
        )
        return done


def _check(name: str, by: str) -> None:
    if name not in SETS:
        raise ValueError(f"unknown set: {name}")
    if by not in BY:
        raise ValueError(f"cannot group by {by!r}")


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
