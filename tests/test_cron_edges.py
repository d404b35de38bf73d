"""Cron at the edges: a template a feature would refuse at PUSH stops the
start (and a SIGHUP) naming the entry; a run that fails at enqueue time is
logged once and never keeps the other entries of the minute from firing;
daylight-saving days run a fixed-time entry exactly once."""

from __future__ import annotations

import calendar
import os
import shutil
import signal
import time

import pytest
import pytest_twisted
from inproc import start_server
from test_config import run_server
from twisted.internet import task

from faktory.pro.cron import CronPlugin
from helpers import ServerProcess, config_dir, short_tmpdir

FLAKY = """
from zope.interface import implementer
from faktory.plugin import IFaktoryPlugin


@implementer(IFaktoryPlugin)
class Flaky:
    name = "flaky"

    def setup(self, server):
        server.manager.use("push", self.on_push)

    def on_push(self, job):
        if job["jobtype"] == "Flaky":
            raise RuntimeError("flaky middleware bug")

    def shutdown(self, server):
        pass


flaky = Flaky()
"""


def _cron(schedule: str, jobtype: str, queue: str, custom: str = "") -> str:
    text = f'[[cron]]\nschedule = "{schedule}"\n[cron.job]\ntype = "{jobtype}"\nqueue = "{queue}"\n'
    return text + (f"[cron.job.custom]\n{custom}\n" if custom else "")


@pytest.mark.parametrize(
    "custom,word",
    [
        ('expires_in = "soon"', "expires_in"),
        ("unique_for = -5", "unique_for"),
        ('unique_for = 60\nunique_until = "later"', "unique_until"),
    ],
)
def test_a_template_a_feature_would_refuse_stops_the_start(custom, word):
    toml = _cron("* * * * *", "Fine", "c1") + _cron("*/5 * * * *", "Bad", "c2", custom)
    d = config_dir(toml)
    try:
        rc, out = run_server("-c", d, "-d", short_tmpdir())
    finally:
        shutil.rmtree(d, ignore_errors=True)
    assert rc != 0, out
    line = next(x for x in out.splitlines() if word in x)
    assert "[[cron]] entry 2 (Bad)" in line, out
    assert "Traceback" not in out


def test_sighup_refuses_such_a_template_naming_the_entry():
    d = config_dir(_cron("0 0 1 1 *", "Fine", "c3"))
    path = os.path.join(d, "conf.d", "faktory.toml")
    s = ServerProcess(args=["--config-dir", d], web=False).start()
    try:
        with open(path, "a") as f:
            f.write(_cron("* * * * *", "Bad", "c4", 'expires_in = "soon"'))
        s.proc.send_signal(signal.SIGHUP)
        line = s.wait_for_log("config not reloaded")
        assert "[[cron]] entry 2 (Bad)" in line and "expires_in" in line, line
        time.sleep(1.5)
        assert s.client().info()["faktory"]["queues"].get("c4", 0) == 0
    finally:
        s.discard()
        shutil.rmtree(d, ignore_errors=True)


def test_a_failing_run_is_logged_once_and_the_others_still_fire(tmp_path):
    extra = tmp_path / "extra"
    (extra / "faktory_plugins").mkdir(parents=True)
    (extra / "faktory_plugins" / "flaky.py").write_text(FLAKY)
    toml = '[plugins]\nenabled = ["flaky"]\n' + _cron("* * * * *", "Flaky", "cf")
    toml += _cron("* * * * *", "Good", "cg")
    d = config_dir(toml)
    old = os.environ.get("PYTHONPATH")
    env = {"PYTHONPATH": str(extra) + (os.pathsep + old if old else "")}
    s = ServerProcess(args=["--config-dir", d], web=False, env=env).start()
    try:
        c = s.client()
        deadline = time.monotonic() + 15
        while c.info()["faktory"]["queues"].get("cg", 0) == 0:
            assert time.monotonic() < deadline, s.log()
            time.sleep(0.1)
        time.sleep(3)  # several more ticks retry the failed run
        failed = [x for x in s.log().splitlines() if "run not enqueued" in x]
        assert len(failed) == 1, s.log()
        assert "Flaky" in failed[0] and "flaky middleware bug" in failed[0]
        assert c.info()["faktory"]["queues"].get("cf", 0) == 0
        assert "Traceback" not in s.log()
    finally:
        s.discard()
        shutil.rmtree(d, ignore_errors=True)


def _utc(*fields: int) -> int:
    return calendar.timegm((*fields, 0))


@pytest.fixture
def new_york():
    old = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest_twisted.ensureDeferred
async def test_daylight_saving_days_run_a_fixed_time_entry_once(redis, new_york):
    config = {
        "cron": [
            {"schedule": "30 1 * * *", "job": {"type": "Repeated", "queue": "dst-fall"}},
            {"schedule": "30 2 * * *", "job": {"type": "Skipped", "queue": "dst-spring"}},
            {"schedule": "0 3 * * *", "job": {"type": "AtThree", "queue": "dst-three"}},
            {"schedule": "30 * * * *", "job": {"type": "Hourly", "queue": "dst-hourly"}},
        ]
    }
    server = await start_server(redis.url, config=config)
    try:
        plugin = next(p for p in server.plugins if isinstance(p, CronPlugin))
        server.tasks[:] = [t for t in server.tasks if t[0] != "cron"]  # driven by hand
        clock = plugin.clock = task.Clock()
        # 2026-11-01: 02:00 EDT goes back to 01:00 EST (01:30 happens twice);
        # 2026-03-08: 02:00 EST jumps to 03:00 EDT (02:30 never happens).
        days = {
            # 00:00 EDT to 02:59 EST: 01:30 once, 02:30 EST, no 03:00 yet,
            # every real half past (00:30, 01:30 EDT, 01:30 EST, 02:30 EST).
            _utc(2026, 11, 1, 4, 0): {"fall": 1, "spring": 1, "three": 0, "hourly": 4},
            # 00:00 EST to 04:59 EDT: the missing 02:30 runs at 03:00 EDT, once;
            # hour * has no 02:30 to catch up (00:30, 01:30, 03:30, 04:30).
            _utc(2026, 3, 8, 5, 0): {"fall": 1, "spring": 1, "three": 1, "hourly": 4},
        }
        for start, expected in days.items():
            plugin.last_slot = None
            clock.advance(start - clock.seconds())
            for _ in range(4 * 60):
                await plugin.tick()
                clock.advance(60)
            sizes = await server.store.queue_sizes()
            got = {q: sizes.get(f"dst-{q}", 0) for q in expected}
            assert got == expected, (start, got)
            await server.admin.remove_queues([f"dst-{q}" for q in expected])
    finally:
        await server.stopService()
