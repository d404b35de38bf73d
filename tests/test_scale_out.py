"""Scale-out: several server processes on one Redis serve the same queues as
one server would: no job handed out twice, none lost, one shared state."""

import calendar
import json
import os
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid

import pytest

from helpers import ServerProcess, redis_socket

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "bench"))
import procstat  # noqa: E402
import wire  # noqa: E402

JOBS = 50_000
QUEUES = ["so-a", "so-b", "so-c"]


@pytest.fixture(scope="module")
def pair():
    """Server A spawns Redis; server B uses A's Redis through --redis-url."""
    a = ServerProcess(web=True).start()
    b = ServerProcess(web=False, args=["--redis-url", redis_socket(a)]).start()
    yield a, b
    b.stop()
    a.stop()


def produce(server, jids: list[str], batch: int = 1000) -> None:
    """PUSHB every job in batches, all batches in flight at once."""
    c = server.client()
    lines = []
    for i in range(0, len(jids), batch):
        jobs = [
            {"jid": jid, "jobtype": "Move", "args": [n], "queue": QUEUES[n % len(QUEUES)]}
            for n, jid in enumerate(jids[i : i + batch], start=i)
        ]
        lines.append(b"PUSHB " + json.dumps(jobs).encode() + b"\r\n")
    c.f.write(b"".join(lines))
    c.f.flush()
    for _ in lines:
        assert c.read_reply() == "{}"  # no job refused
    c.close()


class Consumer(threading.Thread):
    """FETCH (``depth`` in flight) and ACK until ``shared['left']`` reaches 0."""

    def __init__(self, server, shared: dict, lock: threading.Lock, depth: int = 16) -> None:
        super().__init__(daemon=True)
        self.server, self.shared, self.lock, self.depth = server, shared, lock, depth
        self.got: list[str] = []
        self.error: BaseException | None = None
        self.longest_wait = 0.0  # seconds without a reply while FETCHes were out

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def _run(self) -> None:
        # bench/wire.Conn: a lean pipelining client, so the test's own CPU does
        # not set the pace.  ACKs go on a second connection: a connection answers
        # in order, and FETCHes left in flight once the work is gone each wait 2 s.
        wid = uuid.uuid4().hex[:12]
        f, a = wire.Conn(self.server.url, wid=wid), wire.Conn(self.server.url, wid=wid)
        f.sock.settimeout(0.2)
        fetch = ("FETCH " + " ".join(QUEUES) + "\r\n").encode()
        fetching = acking = 0
        deadline = time.monotonic() + 120
        last = time.monotonic()
        while self.shared["left"] > 0 and time.monotonic() < deadline:
            want = min(self.depth, self.shared["left"]) - fetching
            if want > 0:
                f.sock.sendall(fetch * want)
                fetching += want
            try:
                f._fill()
            except TimeoutError:
                continue
            acks = []
            while fetching:
                reply = f.try_reply()
                if reply is ...:
                    break
                now = time.monotonic()
                self.longest_wait = max(self.longest_wait, now - last)
                last = now
                fetching -= 1
                assert not isinstance(reply, wire.ReplyError), reply
                if reply is not None:
                    jid = wire.jid_of(reply)
                    self.got.append(jid.decode())
                    with self.lock:
                        self.shared["left"] -= 1
                    acks.append(b'ACK {"jid":"%s"}\r\n' % jid)
            if acks:
                a.sock.sendall(b"".join(acks))
                acking += len(acks)
        for _ in range(acking):
            assert a.reply() is wire.OK
        a.close()
        f.sock.close()  # FETCHes still waiting for work (there is none left)


def test_two_servers_move_50000_jobs_exactly_once(pair):
    a, b = pair
    jids = [f"so-{n:06d}-{uuid.uuid4().hex[:8]}" for n in range(JOBS)]
    shared, lock = {"left": JOBS}, threading.Lock()
    # the module's servers are shared: reservations other tests left stay
    reserved = a.client().info()["faktory"]["sets"]["working"]
    consumers = [Consumer(srv, shared, lock) for srv in (a, b, a, b)]
    for t in consumers:
        t.start()
    producers = [
        threading.Thread(target=produce, args=(a, jids[: JOBS // 2])),
        threading.Thread(target=produce, args=(b, jids[JOBS // 2 :])),
    ]
    started = time.monotonic()
    for t in producers:
        t.start()
    for t in producers:
        t.join(150)
    pushed_in = time.monotonic() - started
    for t in consumers:
        t.join(150)
    elapsed = time.monotonic() - started
    for t in consumers:
        assert t.error is None, t.error
    got = [jid for t in consumers for jid in t.got]
    assert len(got) == len(set(got)), "a job was handed out twice"
    assert set(got) == set(jids), f"{len(set(jids) - set(got))} jobs lost"
    # Both servers did real work.
    assert all(sum(len(t.got) for t in consumers if t.server is srv) for srv in (a, b))
    # Every FETCH was answered (a job, or null after 2 s), including those woken
    # by a push only to find that another worker had taken the job.
    longest = max(t.longest_wait for t in consumers)
    assert longest < 5, f"a connection waited {longest:.1f} s for a FETCH reply"
    # One state: both servers report the same totals.
    infos = [srv.client().info()["faktory"] for srv in (a, b)]
    for fk in infos:
        assert fk["total_processed"] >= JOBS
        assert fk["sets"]["working"] == reserved
        assert sum(fk["queues"].get(q, 0) for q in QUEUES) == 0
    assert infos[0]["total_processed"] == infos[1]["total_processed"]
    print(
        f"moved {JOBS} jobs through two servers in {elapsed:.1f} s (all pushed in {pushed_in:.1f} s)"
    )


def test_fail_retry_and_stats_are_shared(pair):
    a, b = pair
    ca, cb = a.client(), b.client()
    before = ca.info()["faktory"]
    jid, _ = ca.push(queue="so-fail", retry=3)
    job = cb.fetch("so-fail")
    assert job["jid"] == jid
    assert ca.call(json.dumps({"jid": jid, "errtype": "E", "message": "m"}).join(["FAIL ", ""]))
    after_a, after_b = ca.info()["faktory"], cb.info()["faktory"]
    assert after_a["sets"]["retries"] == before["sets"]["retries"] + 1
    assert after_a["total_failures"] == before["total_failures"] + 1
    assert after_a["total_failures"] == after_b["total_failures"]
    assert after_a["sets"] == after_b["sets"]


def web_queue_action(server, queue: str, action: str) -> None:
    """What the Pause/Resume button of the web UI posts."""
    data = urllib.parse.urlencode({"action": action}).encode()
    url = f"http://127.0.0.1:{server.web_port}/queues/{queue}"
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as r:
        assert r.status == 200


def test_pause_on_one_server_holds_the_queue_on_the_other(pair):
    a, b = pair
    ca, cb = a.client(), b.client()
    jid, _ = cb.push(queue="so-pause")
    web_queue_action(a, "so-pause", "pause")  # paused through server A's web UI
    assert cb.fetch("so-pause") is None  # server B hands nothing out (after the 2 s wait)
    assert ca.info()["faktory"]["queues"]["so-pause"] == 1
    web_queue_action(a, "so-pause", "resume")
    assert cb.fetch("so-pause")["jid"] == jid
    assert cb.call(json.dumps({"jid": jid}).join(["ACK ", ""])) == "OK"


def test_mutate_on_one_server_is_seen_by_the_other(pair):
    a, b = pair
    cb = b.client()
    jid, _ = cb.push(queue="so-mut", at="2099-01-01T00:00:00Z")  # scheduled through B
    before = cb.info()["faktory"]["sets"]
    # Kill it through server A's web UI (the scheduled-set page's Kill button).
    score = repr(float(calendar.timegm((2099, 1, 1, 0, 0, 0))))
    data = urllib.parse.urlencode({"action": "kill", "key": f"{score}|{jid}"}).encode()
    url = f"http://127.0.0.1:{a.web_port}/scheduled"
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as r:
        assert r.status == 200
    after = cb.info()["faktory"]["sets"]
    assert after["scheduled"] == before["scheduled"] - 1
    assert after["dead"] == before["dead"] + 1
    reply = cb.call(
        "MUTATE " + json.dumps({"cmd": "discard", "target": "dead"}, separators=(",", ":"))
    )
    assert reply == "OK"
    assert a.client().info()["faktory"]["sets"]["dead"] == 0


def established_by_pid(port: int, pids: list[int]) -> dict[int, int]:
    """How many accepted connections on ``port`` each process holds."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for row in f:
                cols = row.split()
                if cols[3] == "01" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{cols[9]}]")
    counts = {}
    for pid in pids:
        fds = os.listdir(f"/proc/{pid}/fd")
        counts[pid] = sum(1 for fd in fds if _readlink(f"/proc/{pid}/fd/{fd}") in inodes)
    return counts


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def test_workers_share_one_port_and_stop_together():
    srv = ServerProcess(web=False, args=["--workers", "2"]).start()
    try:
        deadline = time.monotonic() + 20
        while len(procstat.listening_pids(srv.port)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        pids = procstat.listening_pids(srv.port)
        assert len(pids) == 2 and srv.proc.pid in pids
        tree = procstat.process_tree([srv.proc.pid])
        clients = [srv.client() for _ in range(24)]
        spread = established_by_pid(srv.port, pids)
        assert all(n > 0 for n in spread.values()), spread  # the kernel used both
        pushed = {c.push(queue="so-workers")[0] for c in clients[:12]}
        fetched = set()
        for c in clients[12:]:
            jid = c.fetch("so-workers")["jid"]
            fetched.add(jid)
            assert c.call(f'ACK {{"jid":"{jid}"}}') == "OK"
        assert fetched == pushed
        assert clients[0].info()["faktory"]["sets"]["working"] == 0
        for c in clients:
            c.close()
    finally:
        srv.stop()
    deadline = time.monotonic() + 10
    while [p for p in tree if _alive(p)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in tree if _alive(p)], "a process outlived the server"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False
