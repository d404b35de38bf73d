"""Fuzz the work protocol of a live server over real sockets (hypothesis, a
bounded number of examples): random bytes, random lines and JSON-ish
commands (with numbers beyond their Go type, NaN/Infinity, lone surrogates
and nesting past 10 000 levels), before and after HELLO.  Nothing may crash
the server, no Python traceback or internal error may reach a client, and
jobs pushed before the fuzzing must all still be there afterwards."""

from __future__ import annotations

import json
import random
import socket
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import Client, ServerProcess

MARKER = b"FUZZMARKER"  # an unknown verb: its error reply ends each example's output
KEEP = "fuzz-keep-" + uuid.uuid4().hex[:8]  # the queue whose jobs must survive
FUZZ = settings(
    deadline=None,
    max_examples=300,
    suppress_health_check=list(HealthCheck),
    database=None,
)

# Verbs that cannot lose the kept jobs: no FLUSH, no FETCH (it would take
# them, and it waits 2 s on an empty queue), no QUEUE REMOVE/PAUSE.
VERBS = ["PUSH", "PUSHB", "ACK", "FAIL", "BEAT", "INFO", "MUTATE", "HELLO", "QUEUE LATENCY"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
job_keys = st.sampled_from(
    ["jid", "jobtype", "args", "queue", "at", "retry", "reserve_for", "custom", "priority", "wid"]
)
jobish = st.dictionaries(job_keys, json_values, max_size=6)
# What no Python value dumps to: numbers beyond float64 and int64, the
# non-finite constants, lone surrogate escapes, and nesting up to and past
# Go's limit of 10 000 levels (a line stays under the 64 KiB limit below).
odd_number = st.sampled_from(
    ["NaN", "Infinity", "-Infinity", "1e999", "-1e400", "9" * 400, "9223372036854775808", "1.0"]
)
odd_string = st.sampled_from([r'"\ud800"', r'"\udfff\ud800x"', r'"\uDBFF"'])
deep = st.builds(
    lambda n, opener, inner: opener * n + inner + {"[": "]", '{"a":': "}"}[opener] * n,
    st.sampled_from([9_000, 9_999, 10_000, 10_001, 20_000, 30_000]),
    st.sampled_from(["[", '{"a":']),
    st.sampled_from(["", "1", "null"]),
) | st.builds(lambda n: "[" * n, st.integers(1_000, 60_000))
odd_value = odd_number | odd_string | deep
odd_job = st.builds(
    lambda job, key, value: json.dumps(job)[:-1] + ("," if job else "") + f'"{key}":{value}}}',
    jobish,
    st.sampled_from(
        [
            "args",
            "custom",
            "retry",
            "reserve_for",
            "priority",
            "backtrace",
            "failure",
            "rss_kb",
            "wid",
            "jid",
            "JID",
            "Args",
            "filter",
            "labels",
            "v",
            "pid",
        ]
    ),
    odd_value
    | odd_value.map(lambda v: "[" + v + "]")
    | odd_value.map(lambda v: '{"retry_count":' + v + "}"),
)
json_text = st.one_of(
    json_values.map(json.dumps),
    jobish.map(json.dumps),
    st.lists(jobish, max_size=3).map(json.dumps),
    st.text(alphabet='{}[]":,0123456789.-etrufalsn \\', max_size=40),
    odd_job,
    odd_job.map(lambda j: "[" + j + "]"),
    odd_value,
)
command = st.builds(
    lambda verb, arg: f"{verb} {arg}".encode("utf-8", "surrogatepass"),
    st.sampled_from(VERBS) | st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=6),
    json_text | st.text(max_size=30),
)
raw_line = st.binary(max_size=200).filter(lambda b: b"FETCH" not in b and b"FLUSH" not in b)
lines = st.lists(command | raw_line, min_size=1, max_size=6)


@pytest.fixture
def live():
    srv = ServerProcess(args=["--max-line-length", "65536"], web=False).start()
    c = srv.client()
    pushed = [c.push(queue=KEEP, args=[i]) for i in range(20)]
    assert all(reply == "OK" for _, reply in pushed), pushed
    kept = [jid for jid, _ in pushed]
    c.close()
    yield srv, kept
    srv.stop()


def exchange(port: int, payload: bytes, hello: bool) -> bytes:
    """Send ``payload`` then the marker; everything received until the
    marker's reply, or until the server closes the connection."""
    s = socket.socket()
    s.settimeout(10)
    if not hello:
        # Failed HELLOs shut an address out for a while: each example comes
        # from its own loopback address, so the fuzzing reaches the parser.
        s.bind(
            (
                f"127.{random.randrange(1, 255)}.{random.randrange(256)}.{random.randrange(1, 255)}",
                0,
            )
        )
    s.connect(("127.0.0.1", port))
    try:
        try:
            if hello:
                s.sendall(b'HELLO {"v":2}\r\n')
            s.sendall(payload + b"\r\n" + MARKER + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused and closed mid-send (e.g. over 8 KiB before HELLO): read why
        data = b""
        deadline = time.monotonic() + 10
        while b"unknown command " + MARKER not in data:
            assert time.monotonic() < deadline, f"no answer to the marker: {data[-300:]!r}"
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        return data
    finally:
        s.close()


def check(data: bytes) -> None:
    assert b"Traceback" not in data and b'File "' not in data, data[-500:]
    assert b"internal error" not in data, data[-500:]


@settings(FUZZ, max_examples=800)
@given(lines=lines)
def fuzz_commands_after_hello(live, lines):
    srv, _ = live
    # Hypothesis also draws the string constants of this file (the filters'
    # "FLUSH" and "FETCH" among them) as verbs: keep those two out here too.
    payload = b"\r\n".join(lines).replace(b"FLUSH", b"F").replace(b"FETCH", b"F")
    check(exchange(srv.port, payload, hello=True))


@FUZZ
@given(data=st.binary(max_size=300) | st.lists(command, max_size=3).map(b"\n".join))
def fuzz_the_handshake(live, data):
    srv, _ = live
    check(exchange(srv.port, data.replace(b"FLUSH", b"F").replace(b"FETCH", b"F"), hello=False))


def check_survived(live) -> None:
    """The server is alive, works, kept every job and logged no failure."""
    srv, kept = live
    assert srv.proc.poll() is None, "the server died"
    c = Client(srv.port)
    jid, reply = c.push(queue=KEEP + "-after")
    assert reply == "OK"
    assert c.fetch(KEEP + "-after")["jid"] == jid
    fetched = [c.fetch(KEEP)["jid"] for _ in kept]
    assert sorted(fetched) == sorted(kept)
    log = srv.log()
    assert "Command failed" not in log, log[log.find("Command failed") :][:2000]
    c.close()


def test_fuzz_commands_after_hello(live):
    fuzz_commands_after_hello(live)
    check_survived(live)


def test_fuzz_the_handshake(live):
    fuzz_the_handshake(live)
    check_survived(live)
