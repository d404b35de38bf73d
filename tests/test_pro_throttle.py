"""Queue throttles through the wire, with two servers sharing one Redis:
limits hold cluster-wide, a throttled queue is skipped (not waited on),
slots come back at ACK/FAIL or after the timeout."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
import urllib.error
import urllib.request

import pytest

from helpers import ServerProcess, config_dir, redis_socket, refused_start

CONFIG = """
[throttles]
conc = { concurrency = 2, timeout = 60 }
perw = { worker = 1, timeout = 60 }
short = { concurrency = 1, timeout = 1 }
rated = { rate = 3, period = 3600 }
wake = { concurrency = 1, timeout = 60 }
hammer = { concurrency = 3, timeout = 60 }
shown = { concurrency = 2, timeout = 60 }
"""


@pytest.fixture(scope="module")
def pair():
    conf = config_dir(CONFIG)
    a = ServerProcess(args=["--config-dir", conf]).start()
    b = ServerProcess(args=["--config-dir", conf, "--redis-url", redis_socket(a)], web=False)
    b.start()
    yield a, b
    b.stop()
    a.stop()
    for d in (a.data_dir, b.data_dir, conf):
        shutil.rmtree(d, ignore_errors=True)


def fill(c, queue: str, n: int) -> list[str]:
    return [c.push(queue=queue, args=[i])[0] for i in range(n)]


def ack(c, jid: str) -> None:
    assert c.call("ACK " + json.dumps({"jid": jid})) == "OK"


def test_concurrency_is_cluster_wide_and_a_full_queue_is_skipped(pair):
    a, b = pair
    wa, wb, wc = a.client(wid="conc-a"), b.client(wid="conc-b"), a.client(wid="conc-c")
    fill(wa, "conc", 5)
    fill(wa, "conc-other", 3)
    first = wa.fetch("conc", "conc-other")
    second = wb.fetch("conc", "conc-other")
    assert first["queue"] == second["queue"] == "conc"
    # Both slots taken: the next FETCH skips "conc" instead of waiting.
    started = time.monotonic()
    assert wc.fetch("conc", "conc-other")["queue"] == "conc-other"
    assert wb.fetch("conc", "conc-other")["queue"] == "conc-other"
    assert time.monotonic() - started < 1.5
    ack(wa, first["jid"])
    third = wc.fetch("conc", "conc-other")
    assert third["queue"] == "conc"
    # FAIL gives the slot back too.
    assert wb.call("FAIL " + json.dumps({"jid": second["jid"], "message": "x"})) == "OK"
    assert wa.fetch("conc", "conc-other")["queue"] == "conc"
    assert wb.fetch("conc", "conc-other")["queue"] == "conc-other"


def test_per_worker_limit(pair):
    a, b = pair
    w1, w1b, w2 = a.client(wid="pw-1"), b.client(wid="pw-1"), b.client(wid="pw-2")
    fill(w1, "perw", 4)
    fill(w1, "perw-other", 2)
    j1 = w1.fetch("perw", "perw-other")
    assert j1["queue"] == "perw"
    # The same worker process, even on another connection and server, is full...
    assert w1b.fetch("perw", "perw-other")["queue"] == "perw-other"
    # ...while another worker may take one.
    assert w2.fetch("perw", "perw-other")["queue"] == "perw"
    ack(w1, j1["jid"])
    assert w1b.fetch("perw", "perw-other")["queue"] == "perw"


def test_locks_lapse_after_timeout(pair):
    a, b = pair
    w1, w2 = a.client(wid="to-1"), b.client(wid="to-2")
    fill(w1, "short", 2)
    fill(w1, "short-other", 1)
    assert w1.fetch("short", "short-other")["queue"] == "short"  # never ACKed
    assert w2.fetch("short", "short-other")["queue"] == "short-other"
    time.sleep(1.3)
    assert w2.fetch("short", "short-other")["queue"] == "short"


def test_rate_limit(pair):
    a, b = pair
    w1, w2 = a.client(wid="rate-1"), b.client(wid="rate-2")
    fill(w1, "rated", 5)
    fill(w1, "rated-other", 1)
    got = [(w1 if i % 2 else w2).fetch("rated", "rated-other")["queue"] for i in range(4)]
    assert got == ["rated", "rated", "rated", "rated-other"]
    for c in (w1, w2):
        c.close()


def test_waiting_fetch_wakes_when_a_slot_frees(pair):
    a, b = pair
    holder, waiter = a.client(wid="wake-1"), b.client(wid="wake-2")
    fill(holder, "wake", 2)
    held = holder.fetch("wake")
    waiter.send("FETCH wake")
    time.sleep(0.5)
    started = time.monotonic()
    ack(holder, held["jid"])
    job = json.loads(waiter.read_reply())
    assert job["queue"] == "wake"
    assert time.monotonic() - started < 1.0


def test_many_workers_on_two_servers_never_exceed_the_limit(pair):
    a, b = pair
    c = a.client()
    fill(c, "hammer", 20)
    got: list[str] = []
    lock = threading.Lock()
    go = threading.Barrier(10)

    def worker(i):
        w = (a if i % 2 else b).client(wid=f"hammer-{i}")
        go.wait()
        job = w.fetch("hammer", "hammer-empty")
        if job is not None:
            with lock:
                got.append(job["jid"])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(got) == 3
    assert c.info()["faktory"]["queues"]["hammer"] == 17


def test_throttles_page_shows_usage(pair):
    a, b = pair
    fill(a.client(), "shown", 2)
    workers = [srv.client(wid=f"shown-{i}") for i, srv in enumerate(pair)]  # kept connected
    assert [w.fetch("shown")["queue"] for w in workers] == ["shown", "shown"]
    url = f"http://127.0.0.1:{a.web_port}/throttles"
    with urllib.request.urlopen(url, timeout=10) as resp:  # a missing page fails here
        page = resp.read().decode()
    assert "Throttles" in page
    assert "2 / 2" in page  # shown: both slots held (one job from each server)
    assert "rated" in page and "per 3,600 s" in page


def test_bad_throttle_config_stops_startup():
    # the server stops instead of running unthrottled
    log = refused_start("[throttles]\nq = { concurrency = -1 }\n")
    assert "[throttles] q: concurrency must be a whole number from 0 to" in log


def test_sighup_applies_new_limits():
    conf = config_dir("[throttles]\nrl = { concurrency = 1 }\n")
    s = ServerProcess(args=["--config-dir", conf], web=False).start()
    try:
        w1, w2 = s.client(wid="rl-1"), s.client(wid="rl-2")
        fill(w1, "rl", 3)
        fill(w1, "rl-other", 2)
        assert w1.fetch("rl", "rl-other")["queue"] == "rl"
        assert w2.fetch("rl", "rl-other")["queue"] == "rl-other"
        with open(os.path.join(conf, "conf.d", "faktory.toml"), "w") as f:
            f.write("[throttles]\nrl = { concurrency = 2 }\n")
        s.proc.send_signal(signal.SIGHUP)
        s.wait_for_log("Throttle on queue rl: 2 at once")  # SIGHUP reloaded the throttles
        assert w2.fetch("rl", "rl-other")["queue"] == "rl"
        assert w2.fetch("rl", "rl-other")["queue"] == "rl-other"
    finally:
        s.discard()
        shutil.rmtree(conf, ignore_errors=True)
