"""Cron: the schedule parser and next-run arithmetic (pure functions), then
end to end: two servers sharing one Redis enqueue an entry once per minute
slot, the template's fields and ``expires_in`` carry over, bad config stops
the server, and the Cron page lists the entries."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import time
import urllib.error
import urllib.request

import pytest

from faktory.pro.cron import CronError, CronSchedule, due_slots, parse_entries
from helpers import ServerProcess, config_dir, redis_socket, refused_start

D = datetime.datetime


# -- parser -------------------------------------------------------------------
def test_fields_ranges_steps_lists_and_names():
    s = CronSchedule("*/15 9-17 * JAN,jul-SEP MON-FRI")
    assert s.minutes == {0, 15, 30, 45}
    assert s.hours == set(range(9, 18))
    assert s.months == {1, 7, 8, 9}
    assert s.weekdays == {1, 2, 3, 4, 5}
    assert CronSchedule("5-20/5 0 1 * 7").weekdays == {0}  # 7 is Sunday
    assert CronSchedule("10/20 * * * *").minutes == {10, 30, 50}
    assert CronSchedule("@hourly").minutes == {0}
    assert CronSchedule("@daily").hours == {0}


@pytest.mark.parametrize(
    "bad",
    ["* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "*/0 * * * *", "5-1 * * * *", "x * * * *",
     "* * * FOO *", "* * * * 8"],
)  # fmt: skip
def test_bad_schedules_say_why(bad):
    with pytest.raises(CronError):
        CronSchedule(bad)


def test_matches_and_day_of_month_or_weekday():
    s = CronSchedule("30 8 * * MON")
    assert s.matches(D(2024, 1, 1, 8, 30))  # a Monday
    assert not s.matches(D(2024, 1, 2, 8, 30))
    # Both day fields restricted: either one matching is enough (classic cron).
    both = CronSchedule("0 0 13 * FRI")
    assert both.matches(D(2024, 3, 13, 0, 0))  # a Wednesday the 13th
    assert both.matches(D(2024, 3, 15, 0, 0))  # a Friday
    assert not both.matches(D(2024, 3, 14, 0, 0))


def test_next_after():
    assert CronSchedule("*/5 * * * *").next_after(D(2024, 5, 1, 10, 7, 31)) == D(2024, 5, 1, 10, 10)
    assert CronSchedule("0 0 29 2 *").next_after(D(2024, 3, 1)) == D(2028, 2, 29)
    assert CronSchedule("0 12 * * SUN").next_after(D(2024, 12, 31, 13)) == D(2025, 1, 5, 12)
    assert CronSchedule("* * * * *").next_after(D(2024, 12, 31, 23, 59)) == D(2025, 1, 1, 0, 0)
    assert CronSchedule("0 0 31 2 *").next_after(D(2024, 1, 1)) is None  # never


def test_due_slots_first_tick_same_minute_and_catch_up():
    assert due_slots(None, 600.5) == [600]
    assert due_slots(600, 659.9) == []
    assert due_slots(600, 660.0) == [660]
    assert due_slots(600, 600 + 60 * 3 + 1) == [660, 720, 780]
    assert len(due_slots(0, 60 * 100)) == 10  # a long stall replays 10 minutes at most


def test_entries_from_config():
    config = {
        "cron": [
            {"schedule": "* * * * *", "job": {"type": "A", "queue": "q", "retry": 3}},
            {"schedule": "* * * * *", "job": {"type": "A", "queue": "q", "retry": 3}},
            {"schedule": "@daily", "job": {"type": "B", "args": [1], "custom": {"expires_in": 60}}},
        ]
    }
    a, a2, b = parse_entries(config)
    assert a.job == {"jobtype": "A", "args": [], "queue": "q", "retry": 3}
    assert a.id != a2.id and a2.id.startswith(a.id)  # identical entries both run
    assert b.job["custom"] == {"expires_in": 60}
    assert parse_entries({"cron": list(reversed(config["cron"]))})[0].id == b.id
    for bad, why in [
        ({"cron": [{"job": {"type": "A"}}]}, "schedule"),
        ({"cron": [{"schedule": "* * * * *"}]}, "[cron.job]"),
        ({"cron": [{"schedule": "* * * * *", "job": {}}]}, "type"),
        ({"cron": [{"schedule": "* * * * *", "job": {"type": "A", "queue": "a b"}}]}, "queue"),
        ({"cron": [{"schedule": "* * * * *", "job": {"type": "A", "oops": 1}}]}, "unknown"),
    ]:
        with pytest.raises(CronError, match="entry 1.*" + __import__("re").escape(why)):
            parse_entries(bad)


# -- end to end ---------------------------------------------------------------
def _never_soon() -> str:
    """A schedule that does not fire during this test (half an hour away)."""
    minute = (datetime.datetime.now().minute + 30) % 60
    return f"{minute} * * * *"


CONFIG = """
[[cron]]
  schedule = "* * * * *"
  [cron.job]
    type = "EveryMinute"
    queue = "cronq"
    retry = 3
    reserve_for = 600
    args = [1, "<two>"]
    [cron.job.custom]
      expires_in = 120

[[cron]]
  schedule = "{later}"
  [cron.job]
    type = "HalfHourAway"
    queue = "cronq"
"""


@pytest.fixture(scope="module")
def conf():
    d = config_dir(CONFIG.replace("{later}", _never_soon()))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _size(c, queue: str) -> int:
    return c.info()["faktory"]["queues"].get(queue, 0)


def test_two_servers_enqueue_once_per_minute(conf):
    a = ServerProcess(args=["--config-dir", conf]).start()
    b = None
    try:
        c = a.client()
        deadline = time.monotonic() + 15
        while _size(c, "cronq") == 0:
            assert time.monotonic() < deadline, "cron never fired"
            time.sleep(0.1)
        # A second server on the same Redis evaluates the same minute at start
        # and must find it claimed.
        b = ServerProcess(args=["--config-dir", conf, "--redis-url", redis_socket(a)], web=False)
        b.start()
        time.sleep(2.5)  # both have ticked a few times
        n = _size(c, "cronq")
        jobs = [c.fetch("cronq") for _ in range(n)]
        minutes = [j["created_at"][:16] for j in jobs]
        # One per minute slot (two only if the test straddled a minute boundary).
        assert 1 <= n <= 2 and len(set(minutes)) == n, minutes
        job = jobs[0]
        assert job["jobtype"] == "EveryMinute" and job["args"] == [1, "<two>"]
        assert job["retry"] == 3 and job["reserve_for"] == 600
        assert "expires_in" not in job["custom"]
        assert job["custom"]["expires_at"] > job["created_at"]
        assert all(j["jobtype"] == "EveryMinute" for j in jobs)
        page_url = f"http://127.0.0.1:{a.web_port}/cron"
        with urllib.request.urlopen(page_url, timeout=10) as resp:  # a missing page fails here
            page = resp.read().decode()
        assert "EveryMinute" in page and "HalfHourAway" in page and "* * * * *" in page
        assert "&lt;two&gt;" in page and "<two>" not in page
    finally:
        if b is not None:
            b.discard()
        a.discard()


def test_bad_cron_config_stops_startup():
    log = refused_start('[[cron]]\nschedule = "61 * * * *"\n[cron.job]\ntype = "X"\n')
    assert "[[cron]] entry 1: minute value out of range" in log


def test_sighup_reloads_entries_and_survives_a_broken_config():
    d = config_dir("")
    path = os.path.join(d, "conf.d", "faktory.toml")
    with open(path, "w") as f:
        f.write(
            f'[[cron]]\nschedule = "{_never_soon()}"\n[cron.job]\ntype = "Later"\nqueue = "hup"\n'
        )
    s = ServerProcess(args=["--config-dir", d], web=False).start()
    try:
        c = s.client()
        with open(path, "a") as f:
            f.write('[[cron]]\nschedule = "* * * * *"\n[cron.job]\ntype = "Added"\nqueue = "hup"\n')
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while _size(c, "hup") == 0:
            assert time.monotonic() < deadline, "the entry added by SIGHUP never fired"
            time.sleep(0.1)
        added = c.fetch("hup")
        assert added["jobtype"] == "Added"
        assert added["retry"] == 25 and added["args"] == []  # a PUSH's defaults
        with open(path, "w") as f:
            f.write("[[cron]\nthis is not toml")
        s.proc.send_signal(signal.SIGHUP)
        s.wait_for_log("config not reloaded")
        assert (
            c.call("PUSH " + json.dumps({"jid": "after-hup-01", "jobtype": "X", "args": []}))
            == "OK"
        )
    finally:
        s.discard()
        shutil.rmtree(d, ignore_errors=True)
