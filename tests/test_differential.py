"""Differential test: the same generated command sequences against this server
and against the real Faktory 1.10 (built from source by
``/work/shared/tools/build-real-faktory.sh``), reply by reply.

A fixed seed generates a few hundred scenarios aimed at where a Go decoder
and a Python one could part: numbers at and past their Go type's range, lone
surrogates, nesting around 10 000 levels, keys in other cases, RFC 3339 edge
cases, multi-byte text at byte limits, MUTATE filters of the wrong type, zero
fields, PUSHB, ACK, FAIL, BEAT and HELLO payloads.  Replies are compared as a
client sees them: the kind of reply, an error's code, and JSON documents as
values (times that differ by when they were taken are compared by presence).

The deliberate differences are listed once, in docs/protocol.md
("Differences from Faktory"); ``ALLOWED`` mirrors that list, and each entry
names the rule the comparison applies for it.  Any other difference fails.
Without the real binary (``REAL_FAKTORY`` or the build script's default
path) the test is skipped, saying so; the plain expectations are in
``test_wire.py``, which always runs.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import pytest

from helpers import ServerProcess, free_port, short_tmpdir, wait_for_port

REAL = os.environ.get("REAL_FAKTORY") or "/root/.cache/real-faktory/bin/faktory"
SEED = 20261203
SCENARIOS = 300

sys.setrecursionlimit(max(sys.getrecursionlimit(), 30000))  # deep jobs are read back

# The deliberate differences of docs/protocol.md "Differences from Faktory"
# that this test can meet: rule name -> the bold lead of its entry there.
ALLOWED: dict[str, str] = {
    "priority": "Priorities are honoured.",
    "hello-error": "A first line that is not HELLO gets an `-ERR` reply",
    "bare-command": "A bare `PUSH` or `ACK`",
    "backtrace-lines": "The failure backtrace",
    "key-order": "The JSON keys of a job come back in a different order",
    "error-text": "Error texts name the field.",
    "numbers": "Numbers in `args` and `custom` come back as they were sent.",
    "retry-default": "The default `retry` is always 25.",
    "deep-reservation": "A job nested to the very limit can be fetched.",
    "hello-limit": "Failed HELLOs are limited per address.",
    "held-copy": "A second live copy of a reserved jid waits.",
}


def test_allowed_differences_are_the_documented_ones():
    """Every rule the comparison applies is an entry of docs/protocol.md's list."""
    doc = open(os.path.join(os.path.dirname(__file__), "..", "docs", "protocol.md")).read()
    section = doc.split("## Differences from Faktory", 1)[1]
    for name, lead in ALLOWED.items():
        assert f"- **{lead}**" in section, f"{name}: {lead!r} is not in docs/protocol.md"


# -- the two servers ---------------------------------------------------------------------


class RealFaktory:
    def __init__(self) -> None:
        self.port = free_port()
        self.dir = short_tmpdir("fkreal")
        self.proc: subprocess.Popen | None = None

    def start(self) -> RealFaktory:
        conf = tempfile.mkdtemp(prefix="fkrealconf")
        env = {k: v for k, v in os.environ.items() if k != "FAKTORY_PASSWORD"}
        self.proc = subprocess.Popen(
            [REAL, "-b", f"127.0.0.1:{self.port}", "-w", f"127.0.0.1:{free_port()}",
             "-d", os.path.abspath(self.dir), "-c", conf, "-l", "warn", "-e", "development"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        wait_for_port(self.port, 30, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def servers():
    if not os.access(REAL, os.X_OK):
        pytest.skip(
            f"the real Faktory binary is not built ({REAL}): run "
            "/work/shared/tools/build-real-faktory.sh or set REAL_FAKTORY"
        )
    real = RealFaktory().start()
    ours = ServerProcess(web=False).start()
    yield ours.port, real.port
    real.stop()
    ours.discard()


class Wire:
    """A raw connection that reports every reply as a comparable tuple."""

    def __init__(self, port: int, hello: str | None = '{"v":2}', source: str = "") -> None:
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=10, source_address=(source, 0) if source else None
        )
        self.f = self.sock.makefile("rb")
        self.f.readline()  # +HI
        if hello is not None:
            assert self.call("HELLO " + hello) == ("+", "OK")

    def call(self, line: str, check_close: bool = False) -> tuple:
        try:
            self.sock.sendall(line.encode("utf-8", "surrogatepass") + b"\r\n")
            head = self.f.readline()
        except (ConnectionError, TimeoutError, OSError):
            return ("closed",)
        if not head:
            return ("closed",)
        kind, rest = head[:1].decode(), head[1:].rstrip(b"\r\n").decode("utf-8", "replace")
        if kind == "$":
            n = int(rest)
            if n < 0:
                return ("$", None)
            body = self.f.read(n + 2)[:-2]
            return ("$", body.decode())
        if kind == "-" and check_close and self.closed_soon():
            return ("-", rest, "closed")
        return (kind, rest)

    def closed_soon(self) -> bool:
        """After an error, whether the server closes the connection (HELLO)."""
        self.sock.settimeout(0.3)
        try:
            return self.f.peek(1) == b""
        except (TimeoutError, OSError):
            return False
        finally:
            self.sock.settimeout(10)

    def close(self) -> None:
        for thing in (self.f, self.sock):
            try:
                thing.close()
            except OSError:
                pass


# -- comparing replies ---------------------------------------------------------------------

TIME = re.compile(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\Z")
VOLATILE = {"enqueued_at", "created_at", "failed_at", "next_at"}


def norm(value: Any, key: str = "") -> Any:
    """A JSON value as a client compares it: numbers as float64 (rule
    "numbers"), stamps the server took by presence, objects unordered (rule "key-order")."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            return ("huge", value)
    if isinstance(value, str):
        return "<time>" if key in VOLATILE and TIME.match(value) else value
    if isinstance(value, list):
        return [norm(v) for v in value]
    return {k: norm(v, k) for k, v in value.items()}


def compare(step: dict, ours: tuple, real: tuple, reserved: set[str] = frozenset()) -> str | None:
    """None when the replies match (allowing the documented differences), else why not.
    ``reserved``: the jids the real server has handed out and not had settled."""
    if ours == real:
        return None
    if step.get("fetch") and ours == ("$", None) and real[0] == "$" and real[1]:
        if json.loads(real[1]).get("jid") in reserved:
            return None  # rule "held-copy"
    if ours[0] == "-" and real[0] == "-":
        # rule "error-text": same code, clearer text
        if ours[1].split(" ")[0] == real[1].split(" ")[0]:
            if (len(ours) > 2) == (len(real) > 2):
                return None
    if step.get("hello") and real == ("closed",) and ours[0] == "-" and ours[-1] == "closed":
        return None  # rule "hello-error"
    if (
        step.get("fetch")
        and ours[0] == "$"
        and real[:2] == ("-", "ERR cannot marshal reservation payload: exceeded max depth")
    ):
        return None  # rule "deep-reservation"
    if ours[0] == "$" and real[0] == "$" and ours[1] is not None and real[1] is not None:
        a, b = json.loads(ours[1]), json.loads(real[1])
        if isinstance(a, dict) and isinstance(b, dict) and step.get("fetch"):
            a.pop("priority", None)  # rule "priority"
            if step.get("backtrace_lines") is not None:
                fb = b.get("failure") or {}
                if "backtrace" in fb:  # rule "backtrace-lines"
                    fb["backtrace"] = fb["backtrace"][: step["backtrace_lines"]] or None
                    if fb["backtrace"] is None:
                        del fb["backtrace"]
        if step.get("pushb") and isinstance(a, dict) and isinstance(b, dict):
            if a.keys() == b.keys():
                return None  # rule "error-text": each refused job is named
        if norm(a) == norm(b):
            return None
    return f"ours {ours!r:.300} != real {real!r:.300}"


# -- generating scenarios -------------------------------------------------------------------

NUMBERS = [
    "0", "-1", "25", "1", "2147483648", "9223372036854775807", "9223372036854775808",
    "-9223372036854775808", "-9223372036854775809", "1.0", "1e2", "1e999", "-1e999",
    "1.5", '"5"', "true", "null", "[]", "{}", "9" * 30,
]  # fmt: skip
ARG_VALUES = [
    "1e400", "-1e400", "1e308", "12345678901234567890", "1.5", "-0.0", "0.1", "1e-400",
    "9" * 309, "9" * 400, r'"\ud800x"', r'"\udc00\ud83d\ude00"', r'"\uDBFF\uDFFF"',
    r'"\ud800\ud800\udc00"', '"plain"', "null", "true", '{"K":1}', "[[[1]]]",
]  # fmt: skip
TIMES = [
    "2020-02-30T00:00:00Z", "2020-01-01T23:59:60Z", "2020-01-01t00:00:00Z",
    "2020-01-01T00:00:00z", "2020-01-01T00:00:00.1234567890Z", "2020-01-01T00:00:00,5Z",
    "2020-01-01T00:00:00.Z", "2020-01-01T00:00:00+24:00", "2020-01-01T00:00:00+25:00",
    "2020-01-01T00:00:00+00:60", "2020-01-01T00:00:00+0100", "2020-02-29T12:00:00Z",
    "2019-02-29T12:00:00Z", "0000-01-01T00:00:00Z", "2020-01-01T00:00:00Z ", "", "null",
]  # fmt: skip
TEXTS = [
    "plain", "\u00e9" * 600, "a" + "\u00e9" * 600, "\u20ac" * 400, "  padded\t ",
    "\u00a0nbsp\u3000", "\x1cfs", "x" * 1200, "\U0001f600" * 300, "",
]  # fmt: skip
KEY_CASES = {
    "jid": ["jid", "JID", "Jid", "jId"],
    "jobtype": ["jobtype", "JobType", "JOBTYPE"],
    "args": ["args", "Args", "ARGS", "arg\u017f"],
    "queue": ["queue", "Queue", "QUEUE"],
    "retry": ["retry", "Retry"],
    "backtrace": ["backtrace", "BackTrace", "bac\u212atrace"],
}


def jstr(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


class Gen:
    def __init__(self, rng: random.Random, n: int) -> None:
        self.rng, self.n = rng, n
        self.queue = f"diff{n:04d}"
        self.k = 0

    def jid(self) -> str:
        self.k += 1
        return f"diff-{self.n:04d}-{self.k}"

    def job(self, jid: str, **over: str) -> str:
        """A job as JSON text: fields given as JSON text, so anything can go in."""
        fields = {
            "jid": jstr(jid),
            "jobtype": '"DiffJob"',
            "args": "[1]",
            "queue": jstr(self.queue),
        }
        fields.update(over)
        return "{" + ",".join(f"{jstr(k)}:{v}" for k, v in fields.items() if v != "") + "}"

    def pick(self, items: list) -> Any:
        return self.rng.choice(items)


def scenario(gen: Gen) -> list[dict]:
    """One scenario: a list of steps ``{"conn", "line", ...}``; ``after_ok``
    steps run only when the step they follow was answered +OK by both."""
    rng, q = gen.rng, gen.queue
    kind = rng.choice(
        ["number", "number", "arg", "arg", "deep", "keys", "keys", "time", "fail", "fail",
         "zero", "pushb", "ack", "beat", "hello", "mutate", "basics"]
    )  # fmt: skip
    jid = gen.jid()
    steps: list[dict] = []

    def push_fetch(doc: str, finish: str = "ack", **extra) -> None:
        steps.append({"conn": "c", "line": "PUSH " + doc})
        steps.append({"conn": "c", "line": "FETCH " + q, "after_ok": True, "fetch": True, **extra})
        if finish == "ack":
            steps.append({"conn": "c", "line": "ACK " + json.dumps({"jid": jid}), "after_ok": True})

    if kind == "number":
        field = rng.choice(["retry", "reserve_for", "backtrace", "priority", "failure"])
        value = gen.pick(NUMBERS)
        if field == "failure":
            value = "{" + f'"{rng.choice(["retry_count", "remaining"])}":{value}' + "}"
        if field == "reserve_for" and value in ("2147483648", "9223372036854775807"):
            value = "86400"
        push_fetch(gen.job(jid, **{field: value}))
    elif kind == "arg":
        where = rng.choice(["args", "custom", "nested"])
        value = gen.pick(ARG_VALUES)
        if where == "args":
            push_fetch(gen.job(jid, args=f"[{value}]"))
        elif where == "custom":
            push_fetch(gen.job(jid, custom="{" + f'"k":{value}' + "}"))
        else:
            push_fetch(gen.job(jid, args=f'[{{"a":[{value}]}}]'))
    elif kind == "deep":
        n = rng.choice([998, 1001, 5000, 9998, 9999, 10000, 10001, 12000])
        opener = rng.choice(["[", '{"a":'])
        closer = "]" if opener == "[" else "}"
        inner = "1" if opener != "[" else rng.choice(["", "1"])
        value = opener * n + inner + closer * n
        field = rng.choice(["args", "custom"])
        if field == "args":
            doc = gen.job(jid, args=f"[{value}]")
        else:
            doc = gen.job(jid, custom='{"d":' + value + "}")
        push_fetch(doc)
    elif kind == "keys":
        names = {}
        for field, cases in KEY_CASES.items():
            names[field] = gen.pick(cases)
        base = {"jid": jstr(jid), "jobtype": '"DiffJob"', "args": "[2]", "queue": jstr(q),
                "retry": "3", "backtrace": "2"}  # fmt: skip
        pairs = [(names[k], v) for k, v in base.items()]
        if rng.random() < 0.4:  # a second key for one field: the last wins
            field = rng.choice(["queue", "retry", "args"])
            other = {"queue": jstr(q + "x"), "retry": "7", "args": "[9]"}[field]
            pairs.insert(rng.randrange(len(pairs) + 1), (gen.pick(KEY_CASES[field]), other))
        if rng.random() < 0.3:
            pairs.append(("j\u0131d", '"no"'))
        rng.shuffle(pairs)
        doc = "{" + ",".join(f"{jstr(k)}:{v}" for k, v in pairs) + "}"
        steps.append({"conn": "c", "line": "PUSH " + doc})
        steps.append({"conn": "c", "line": f"FETCH {q} {q}x", "after_ok": True, "fetch": True})
        steps.append({"conn": "c", "line": "ACK " + json.dumps({"jid": jid}), "after_ok": True})
    elif kind == "time":
        at = gen.pick(TIMES)
        push_fetch(gen.job(jid, at="null" if at == "null" else jstr(at)))
    elif kind == "fail":
        lines = rng.choice([None, 0, 2, 60])
        retry = rng.choice([2, 1, -1])
        doc = gen.job(jid, retry=str(retry), **({} if lines is None else {"backtrace": str(lines)}))
        steps.append({"conn": "c", "line": "PUSH " + doc})
        # fail it, bring it back from the set it went to, look at it; retry 1 twice
        shown = lines or 50  # rule "backtrace-lines"
        for target in ["retries", "dead"] if retry == 1 else ["retries" if retry > 0 else "dead"]:
            steps.append({"conn": "c", "line": "FETCH " + q, "after_ok": True, "fetch": True,
                          "backtrace_lines": shown})  # fmt: skip
            payload = {"jid": jid, "errtype": gen.pick(TEXTS)[:150], "message": gen.pick(TEXTS)}
            if rng.random() < 0.6:
                payload["backtrace"] = [f"line {i}" for i in range(rng.choice([0, 3, 55]))]
            fail = json.dumps(payload, ensure_ascii=rng.random() < 0.5)
            if rng.random() < 0.3:
                fail = fail.replace('"jid"', '"JID"').replace('"message"', '"Message"')
            if rng.random() < 0.2:
                fail = (
                    fail[:-1] + ',"backtrace":' + gen.pick(['"x"', "[1]", "[null]", "null"]) + "}"
                )
            steps.append({"conn": "c", "line": "FAIL " + fail, "after_ok": True})
            mutate = {"cmd": "requeue", "target": target, "filter": {"jids": [jid]}}
            line = "MUTATE " + json.dumps(mutate, separators=(",", ":"))  # MUTATE splits on " "
            steps.append({"conn": "c", "line": line, "after_ok": True})
        steps.append({"conn": "c", "line": "FETCH " + q, "after_ok": True, "fetch": True,
                      "backtrace_lines": shown})  # fmt: skip
        steps.append({"conn": "c", "line": "ACK " + json.dumps({"jid": jid}), "after_ok": True})
    elif kind == "zero":
        failure = gen.pick(
            ['{"retry_count":1,"extra":"x","message":""}', '{"failed_at":"x","Next_At":"y"}',
             "{}", "null", '{"backtrace":[],"errtype":"E"}']
        )  # fmt: skip
        doc = gen.job(
            jid, reserve_for=gen.pick(["0", "60", ""]), backtrace=gen.pick(["0", "3", ""]),
            custom=gen.pick(["{}", "null", '{"a":null}', ""]), failure=failure,
            at=gen.pick(['""', "null", ""]), created_at=gen.pick(['""', '"custom"', ""]),
        )  # fmt: skip
        push_fetch(doc)
    elif kind == "pushb":
        jobs = []
        for _ in range(rng.randint(1, 4)):
            j = gen.jid()
            shape = rng.choice(
                ["ok", "ok", "short", "notype", "badtype", "null", "surrogate", "big"]
            )
            jobs.append(
                {
                    "ok": gen.job(j),
                    "short": gen.job("short"),
                    "notype": gen.job(j, jobtype='""'),
                    "badtype": gen.job(j, retry='"x"'),
                    "null": "null",
                    "surrogate": gen.job(j, args=r'["\ud800"]'),
                    "big": gen.job(j, args="[1e400]"),
                }[shape]
            )
        steps.append(
            {
                "conn": "c",
                "line": "PUSHB " + gen.pick(["[" + ",".join(jobs) + "]", "null", "[]", "{}"]),
                "pushb": True,
            }
        )  # noqa: E501
        for _ in jobs:
            steps.append(
                {
                    "conn": "c",
                    "line": "FETCH " + q,
                    "after_ok": True,
                    "fetch": True,
                    "if_queued": True,
                }
            )
    elif kind == "ack":
        arg = gen.pick(
            ['{"jid":""}', '{"JID":"x"}', '{"jid":5}', '{"jid":"x","n":1}', '{"jid":null}',
             "[]", "null", '{"jid":"\\ud800"}', '{"jid":"x","jid":"y"}', '{"jid":"x"} x']
        )  # fmt: skip
        steps.append({"conn": "c", "line": "ACK " + arg})
    elif kind == "beat":
        arg = gen.pick(
            ['{"wid":"WID"}', '{"wid":"WID","rss_kb":1e999}', '{"wid":"WID","rss_kb":1.5}',
             '{"WID":"WID","RSS_KB":5}', '{"wid":"WID","rss_kb":9223372036854775808}',
             '{"wid":"WID","current_state":5}', '{"wid":"WID","rss_kb":-1}', "null",
             '{"wid":"WID","rss_kb":"5"}', '{"wid":"nobody"}']
        )  # fmt: skip
        steps.append({"conn": "w", "line": "BEAT " + arg})
    elif kind == "hello":
        arg = gen.pick(
            ['{"v":2}', '{"v":256}', '{"v":-1}', '{"v":2.0}', '{"v":2,"pid":"x"}',
             '{"v":2,"labels":[1]}', '{"v":2,"labels":["a",null]}', '{"V":2,"Hostname":"h"}',
             '{"v":2,"rss_kb":1e999}', '{"v":2,"x":' + "[" * 20000 + "]" * 20000 + "}",
             '{"v":2,"x":NaN}', '{"v":2,"hostname":"\\ud800"}', '{"v":2} trailing']
        )  # fmt: skip
        steps.append({"conn": "h", "line": "HELLO " + arg, "hello": True})
    elif kind == "mutate":
        op = gen.pick(
            ['{"cmd":"discard","target":"retries","filter":{"jids":"abc"}}',
             '{"cmd":"discard","target":"retries","filter":{"regexp":5}}',
             '{"cmd":"discard","target":"retries","filter":{"jobtype":["x"]}}',
             '{"cmd":"discard","target":"retries","filter":{"jids":[1]}}',
             '{"Cmd":"discard","Target":"retries","Filter":{"Jids":["nope-nope"]}}',
             '{"cmd":"discard","target":"nowhere"}', '{"cmd":"frob","target":"dead"}',
             '{"cmd":"kill","target":"retries","filter":"x"}', "null", "[]",
             '{"cmd":"discard","target":"retries","filter":{"jids":["nope-' + "[" * 5 + '"]}}']
        )  # fmt: skip
        steps.append({"conn": "c", "line": "MUTATE " + op})
    else:
        doc = gen.pick(
            [gen.job("abcdefg"), gen.job("\u00e9\u00e9\u00e9\u00e9"), gen.job(jid, jobtype='""'),
             gen.job(jid, args="null"), gen.job(jid, args="{}"), gen.job(jid, queue='"a:b"'),
             gen.job(jid, queue='""'), "[]", "null", "{", gen.job(jid) + " x",
             gen.job(jid, args="[NaN]"), gen.job(jid, reserve_for="86401"),
             gen.job(jid, custom='{"a":1}', Custom="null"), gen.job(jid, reserve_for="-5"),
             gen.job(jid, backtrace="-1"), gen.job(jid).replace('"jid"', '"j\\u0069d"'),
             gen.job(jid) + "\t", " " + gen.job(jid), gen.job(jid, queue='"Q\u00e9"'),
             gen.job(jid, retry="-0", jobtype='"T\u0000"')]
        )  # fmt: skip
        steps.append({"conn": "c", "line": "PUSH " + doc})
        steps.append(
            {"conn": "c", "line": "FETCH " + q + " default", "after_ok": True, "fetch": True}
        )
    return steps


# -- running them ---------------------------------------------------------------------------


class Side:
    """One server's connections for the run."""

    def __init__(self, port: int, wid: str) -> None:
        self.port = port
        self.c = Wire(port)
        self.w = Wire(port, json.dumps({"v": 2, "wid": wid, "hostname": "diff"}))
        self.wid = wid
        self.probes = 0

    def run(self, step: dict) -> tuple:
        line = step["line"].replace("WID", self.wid)
        if step["conn"] == "h":
            # Each HELLO probe from its own loopback address: failed HELLOs
            # shut an address out here (rule "hello-limit"), not in Faktory.
            self.probes += 1
            conn = Wire(
                self.port, hello=None, source=f"127.0.{self.probes // 250}.{self.probes % 250 + 2}"
            )
            try:
                return conn.call(line, check_close=True)
            finally:
                conn.close()
        return getattr(self, step["conn"]).call(line)


def test_same_replies_as_the_real_server(servers):
    ours_port, real_port = servers
    rng = random.Random(SEED)
    ours, real = Side(ours_port, "diffwid1"), Side(real_port, "diffwid1")
    differences: list[str] = []
    reserved: set[str] = set()  # jids fetched from the real server and not settled
    started = time.monotonic()
    ran = 0
    # rule "retry-default": the real server decodes a PUSH into a Job whose
    # retry points at the shared default, so a pushed retry becomes the default
    # of every later job without one; this resets it after each scenario.
    reset = 'PUSH {"jid":"diff-reset","jobtype":"Reset","args":[],"queue":"diffreset","retry":25}'
    for n in range(SCENARIOS):
        for side in (ours, real):
            side.c.call(reset)
        gen = Gen(rng, n)
        last_ok = True
        queued = 0
        for step in scenario(gen):
            if step.get("after_ok") and not last_ok:
                continue
            if step.get("if_queued"):
                if queued <= 0:
                    continue
                queued -= 1
            a, b = ours.run(step), real.run(step)
            ran += 1
            why = compare(step, a, b, reserved)
            if step.get("fetch") and b[0] == "$" and b[1]:
                reserved.add(json.loads(b[1]).get("jid"))
            verb, _, arg = step["line"].partition(" ")
            if verb in ("ACK", "FAIL") and b == ("+", "OK"):
                try:
                    settled = {k.lower(): v for k, v in json.loads(arg).items()}.get("jid")
                except (ValueError, AttributeError):
                    settled = None
                reserved.discard(settled)
            if why:
                differences.append(f"scenario {n} {step['line'][:160]!r}: {why}")
                break
            if step.get("pushb") and a[0] == "$":
                sent = step["line"][6:]
                try:
                    batch = json.loads(sent)
                except ValueError:
                    batch = None
                if isinstance(batch, list):
                    refused = json.loads(a[1])
                    queued = sum(
                        1 for j in batch if isinstance(j, dict) and j.get("jid") not in refused
                    )
            last_ok = a[0] == "+" or (a[0] == "$" and a[1] is not None)
    elapsed = time.monotonic() - started
    assert ran > SCENARIOS, "too few commands compared"
    assert not differences, f"{len(differences)} differences:\n" + "\n".join(differences[:30])
    assert elapsed < 60, f"the differential run took {elapsed:.0f} s"
