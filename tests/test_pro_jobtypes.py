"""The Job types page of the metrics plugin: per job type, executions and
duration percentiles over the last hour and day, from the time slots the
metrics flush writes (in process, real Redis; the page through the web UI's
routes)."""

from __future__ import annotations

import json
import re
import time

import pytest
import pytest_twisted
import test_web_routes
from test_web_incident import text_of

from faktory.pro import metrics as metrics_mod
from faktory.pro.jobtypes import Figures, window_keys

web = test_web_routes.web  # a server (built-in plugins on) on a real Redis


def figures_of(html: str) -> list[list[str]]:
    """The detail table: one list of cells per row (hour, day, total)."""
    rows = re.findall(r'<tr data-figure="\d+">(.*?)</tr>', html, re.S)
    return [[text_of(c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r)] for r in rows]


async def run(web, jobtype: str, fail: bool = False) -> None:
    job = await web.push(queue="m", jobtype=jobtype)
    await web.server.manager.fetch(["m"], wid="w-1")
    if fail:
        await web.server.manager.fail(job["jid"], "E", "x", [])
    else:
        await web.server.manager.ack(job["jid"])


@pytest_twisted.ensureDeferred
async def test_job_types_page_counts_executions_per_window(web):
    for _ in range(3):
        await run(web, "Charge")
    await run(web, "Charge", fail=True)
    await run(web, "Refund")
    # Two hours ago: in the day and the totals, not in the last hour.
    plugin = metrics_mod.find(web.server)
    await plugin.store.add(
        {"ok|Charge": 10, "us|Charge": 10 * 2_000_000, "b8|Charge": 10}, time.time() - 7200
    )
    response, html = await web.get("/jobtypes")
    assert response.code == 200 and "<h1>Job types</h1>" in html
    assert 'href="/jobtypes"' in html  # the tab in the nav
    rows = {
        t: text_of(r).split()
        for t, r in re.findall(r'<tr data-jobtype="([^"]+)">(.*?)</tr>', html, re.S)
    }
    assert list(rows) == ["Charge", "Refund"]  # busiest first (last day)
    # hour: processed, failed; day: processed, failed
    charge = rows["Charge"]
    assert (charge[1], charge[2]) == ("4", "1")
    assert 'href="jobtypes?type=Charge"' in html

    _, html = await web.get("/jobtypes?type=Charge")
    table = figures_of(html)
    assert table[0] == ["Processed", "4", "14", "14"]
    assert table[1] == ["Failed", "1", "1", "1"]
    assert table[2] == ["Failure rate", "25 %", "7.1 %", "7.1 %"]
    # The ten 2-second runs (bucket 8: 1 to 2.5 s) put the day's median there.
    median = dict(zip(("hour", "day"), table[4][1:3]))
    assert median["hour"].endswith(" ms")  # the quick runs of the last hour
    assert median["day"].startswith("1.4")  # 1 s + 1.5 s x (7 - 4) / 10
    assert 'href="retries?jobtype=Charge"' in html
    _, html = await web.get("/jobtypes?type=Nothing")
    assert figures_of(html)[0] == ["Processed", "0", "0", "0"]

    # Slots expire with their window; the totals do not.
    now = time.time()
    key = window_keys(web.store.prefix, now, "m", 3600)[-1]
    assert 3600 < await web.cmd("TTL", key) <= 3600 + 900
    hour_key = window_keys(web.store.prefix, now, "h", 86400)[-1]
    assert 86400 < await web.cmd("TTL", hour_key) <= 86400 + 7200
    assert await web.cmd("TTL", web.store.prefix + "metrics:jobs") == -1


def test_percentiles_interpolate_inside_buckets():
    f = Figures()
    assert f.percentile(0.5) is None and f.mean() is None
    # 100 runs: 50 in (0.1, 0.25], 45 in (0.25, 0.5], 5 past the last bound.
    f.add("b5", 50)
    f.add("b6", 45)
    f.add(f"b{len(metrics_mod.BUCKETS)}", 5)
    f.add("ok", 100)
    f.add("us", 100 * 300_000)
    assert f.percentile(0.5) == pytest.approx(0.25)
    assert f.percentile(0.95) == pytest.approx(0.5)
    assert f.percentile(0.99) == float("inf")
    assert f.percentile(0.1) == pytest.approx(0.1 + 0.15 * 10 / 50)
    assert f.mean() == pytest.approx(0.3)
    f.add("b99", 1)  # an unknown bucket is ignored, not a crash
    assert sum(f.buckets) == 100
    assert json.dumps(f.buckets)
