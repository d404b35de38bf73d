"""The work protocol's JSON decoded as the Go server decodes it (``faktory.wire``):
numbers in their Go type's range, lone surrogates as U+FFFD, nesting up to
10 000 levels, keys matched case-insensitively, byte limits, typed filters, and
jobs handed back without the fields Go omits.  Unit checks of the decoder, then
the same through the wire of a real server."""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from faktory import job as jobs
from faktory import wire
from helpers import ReplyError

sys.setrecursionlimit(max(sys.getrecursionlimit(), 30000))  # the test reads deep jobs too


def decode_job(doc: str) -> dict:
    return wire.decode(doc, wire.JOB)


def refused(doc: str, typ: wire.Type = wire.JOB) -> str:
    with pytest.raises(wire.WireError) as e:
        wire.decode(doc, typ)
    return str(e.value)


def short_id(line: str) -> str:
    """A test id that stays short (a 200 KB id would not fit in the environment
    pytest passes to the server it spawns)."""
    return f"{line[:40]}...({len(line)})" if len(line) > 60 else line


def nested(depth: int, inner: str = "") -> str:
    return "[" * depth + inner + "]" * depth


# -- numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "doc, field, gotype",
    [
        ('{"args":[1e400]}', "Job.args.0", "float64"),
        ('{"args":[{"a":[-1e999]}]}', "Job.args.0.a.0", "float64"),
        ('{"args":[' + "9" * 400 + "]}", "Job.args.0", "float64"),
        ('{"custom":{"n":1e309}}', "Job.custom.n", "float64"),
        ('{"retry":9223372036854775808}', "Job.retry", "int"),
        ('{"retry":-9223372036854775809}', "Job.retry", "int"),
        ('{"retry":1e999}', "Job.retry", "int"),
        ('{"retry":1.0}', "Job.retry", "int"),
        ('{"retry":1e2}', "Job.retry", "int"),
        ('{"retry":"5"}', "Job.retry", "int"),
        ('{"reserve_for":1e999}', "Job.reserve_for", "int"),
        ('{"backtrace":99999999999999999999}', "Job.backtrace", "int"),
        ('{"failure":{"retry_count":1e999}}', "Job.failure.retry_count", "int"),
        ('{"failure":{"remaining":1.5}}', "Job.failure.remaining", "int"),
    ],
)
def test_a_number_that_does_not_fit_its_go_type_is_refused_naming_the_field(doc, field, gotype):
    assert refused(doc).endswith(f"into Go struct field {field} of type {gotype}")


def test_numbers_that_fit_are_kept():
    job = decode_job(
        '{"retry":-9223372036854775808,"reserve_for":9223372036854775807,'
        '"args":[1e308,-0,1e-400,12345678901234567890,' + "9" * 300 + "]}"
    )
    assert job["retry"] == -(2**63) and job["reserve_for"] == 2**63 - 1
    assert job["args"][:4] == [1e308, 0, 0.0, 12345678901234567890]
    assert job["args"][4] == int("9" * 300)


def test_a_number_where_go_ignores_the_field_is_no_error():
    assert decode_job('{"unknown":1e999,"args":[]}') == {"args": []}
    # priority is ours (Go ignores it): any number is clamped, never an error
    job = jobs.check(decode_job('{"jid":"prio-0001","jobtype":"T","args":[],"priority":1e999}'))
    assert job["priority"] == 9
    job = jobs.check(decode_job('{"jid":"prio-0002","jobtype":"T","args":[],"priority":-1e999}'))
    assert job["priority"] == 1


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize(
    "template, typ",
    [
        ('{"args":[%s]}', wire.JOB),
        ('{"custom":{"x":%s}}', wire.JOB),
        ('{"priority":%s}', wire.JOB),
        ('{"rss_kb":%s}', wire.BEAT),
        ('{"anything":%s}', wire.HELLO),
        ('{"jid":"x","n":%s}', wire.STRINGS),
    ],
)
def test_nan_and_infinity_are_not_json(constant, template, typ):
    assert "invalid character" in refused(template % constant, typ)


# -- strings ---------------------------------------------------------------------------


def test_lone_surrogates_become_replacement_characters():
    job = decode_job(
        r'{"jid":"\udc00\ud83d\ude00","args":["\ud800x","\ud800\ud800\udc00","\uDBFF\uDFFF"],'
        r'"custom":{"\ud800":"\udfff"}}'
    )
    assert job["jid"] == "\ufffd\U0001f600"
    assert job["args"] == ["\ufffdx", "\ufffd\U00010000", "\U0010ffff"]
    assert job["custom"] == {"\ufffd": "\ufffd"}
    json.dumps(job).encode()  # storable and sendable as UTF-8


def test_invalid_utf8_becomes_one_replacement_character_per_byte():
    assert wire.text(b"a\xe2\x82x\xed\xa0\x80\xff") == "a\ufffd\ufffdx" + "\ufffd" * 4


# -- nesting ---------------------------------------------------------------------------


def test_nesting_up_to_gos_limit_is_accepted_and_deeper_is_refused():
    job = decode_job('{"args":' + nested(9999) + "}")  # 10 000 levels with the job itself
    depth, value = 0, job["args"]
    while value:
        depth, value = depth + 1, value[0]
    assert depth == 9998
    assert "exceeded max depth" in refused('{"args":' + nested(10000) + "}")
    assert "exceeded max depth" in refused('{"custom":' + '{"a":' * 10000 + "1" + "}" * 10001)
    # objects in objects to the very limit, through the careful path (a surrogate)
    doc = r'{"jid":"\ud800","custom":{"d":' + '{"a":' * 9998 + "1" + "}" * 9999 + "}"
    assert decode_job(doc)["jid"] == "\ufffd"
    # brackets inside strings do not count
    decode_job('{"args":["' + "[" * 20000 + '"]}')


@pytest.mark.parametrize(
    "typ", [wire.JOB, wire.JOBS, wire.FAIL, wire.BEAT, wire.HELLO, wire.OPERATION, wire.STRINGS]
)
def test_hostile_nesting_is_refused_for_every_command(typ):
    for doc in (nested(100000), '{"a":' * 100000, nested(100000, "1")):
        assert "exceeded max depth" in refused(doc, typ)


# -- field names -----------------------------------------------------------------------


def test_struct_keys_match_case_insensitively_as_go_does():
    job = decode_job('{"JID":"abcdefgh","JobType":"x","Args":[],"Queue":"qc","RETRY":3}')
    assert job == {"jid": "abcdefgh", "jobtype": "x", "args": [], "queue": "qc", "retry": 3}
    # Go folds the long s and the Kelvin sign, and no other non-ASCII letter
    assert decode_job('{"arg\u017f":[1],"bac\u212atrace":3,"j\u0131d":"no"}') == {
        "args": [1],
        "backtrace": 3,
    }
    # the last key that maps to a field wins, exact or not
    assert decode_job('{"jid":"first","JID":"second"}') == {"jid": "second"}
    assert decode_job('{"JID":"first","jid":"second"}') == {"jid": "second"}
    assert decode_job('{"Failure":{"Retry_Count":2,"MESSAGE":"m"}}') == {
        "failure": {"retry_count": 2, "message": "m"}
    }
    op = wire.decode('{"Cmd":"clear","Target":"dead","FILTER":{"JIDS":["a"]}}', wire.OPERATION)
    assert op == {"cmd": "clear", "target": "dead", "filter": {"jids": ["a"]}}
    # a map (ACK's map[string]string) keeps its keys exactly
    assert wire.decode('{"JID":"x"}', wire.STRINGS) == {"JID": "x"}


def test_a_repeated_array_key_reuses_the_earlier_elements_for_nulls():
    # Go decodes the second array into the slice the first one filled
    fail = wire.decode('{"backtrace":["a","b","c"],"backtrace":[null,"y"]}', wire.FAIL)
    assert fail == {"backtrace": ["a", "y"]}
    assert wire.decode('{"backtrace":[null]}', wire.FAIL) == {"backtrace": [""]}


def test_null_leaves_scalars_and_clears_the_rest():
    assert decode_job('{"jid":"abc","jid":null,"args":[1],"args":null}') == {"jid": "abc"}
    assert wire.decode('{"labels":["a",null]}', wire.HELLO) == {"labels": ["a", ""]}
    assert wire.decode("[null]", wire.JOBS) == [{}]
    assert wire.decode("null", wire.JOBS) is None


# -- the fast path and the careful path agree ----------------------------------------------

keys = st.sampled_from(
    ["jid", "JID", "Jid", "args", "Args", "retry", "queue", "custom", "failure", "x", "argſ"]
)
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(pairs=st.lists(st.tuples(keys, values), max_size=6))
def test_fast_and_careful_decoding_agree(pairs):
    doc = "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs) + "}"
    try:
        fast = ("ok", wire.decode(doc, wire.JOB))
    except wire.WireError as e:
        fast = ("error", str(e))
    try:
        careful = ("ok", wire._top(wire.JOB, wire._parse(doc), True))
    except wire.WireError as e:
        careful = ("error", str(e))
    assert fast == careful


plain_keys = st.sampled_from(
    ["jid", "jobtype", "args", "queue", "retry", "created_at", "reserve_for", "JID", "custom", "at"]
)
plain_values = (
    st.sampled_from(["abcdef123456789", "SomeJob", "", "q1", "2026-12-03T06:00:00Z", "é ☃", "a\\b"])
    | st.sampled_from([0, 1, 25, 86400, 86401, -1, 2**63, 2**64])
    | st.integers(-5, 2**64)
    | st.none()
    | st.lists(values, max_size=3)
)


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    pairs=st.lists(st.tuples(plain_keys, plain_values), max_size=7),
    base=st.booleans(),
    spaced=st.booleans(),
)
@example(pairs=[("reserve_for", 0)], base=True, spaced=False)
@example(pairs=[("reserve_for", 86401)], base=True, spaced=False)
@example(pairs=[("queue", "")], base=True, spaced=True)
@example(pairs=[("created_at", "")], base=True, spaced=False)
@example(pairs=[("queue", "a b")], base=True, spaced=False)
@example(pairs=[("retry", None)], base=True, spaced=False)
def test_a_job_stored_as_written_equals_the_job_re_encoded(pairs, base, spaced):
    """PUSH keeps a plain job's own text (``jobs.parse_plain``): what is stored
    must decode to exactly what re-encoding the checked job stores, and a job
    refused one way is refused the same way the other."""
    if base:
        pairs = [("jid", "abcdef123456789"), ("jobtype", "SomeJob"), ("args", [1]), *pairs]
    sep = ", " if spaced else ","
    doc = (
        "{"
        + sep.join(
            f"{json.dumps(k, ensure_ascii=False)}:{json.dumps(v, ensure_ascii=False)}"
            for k, v in pairs
        )
        + "}"
    )
    try:
        slow = ("ok", jobs.serialize({**jobs.check(jobs.parse(doc), 1e9), "enqueued_at": "E"}))
    except jobs.JobError as e:
        slow = ("error", str(e))
    try:
        plain = jobs.parse_plain(doc, 1e9)
    except jobs.JobError as e:
        assert slow == ("error", str(e))
        return
    if plain is None:
        return
    fields, tail = plain
    assert slow[0] == "ok"
    stored = (
        jobs.serialize({**fields, "enqueued_at": "E"})
        if tail is None
        else '{"enqueued_at":"E",' + tail
    )
    assert json.loads(stored) == json.loads(slow[1])
    # compact, as the search filters expect (no space outside strings)
    assert json.dumps(json.loads(stored), separators=(",", ":"), ensure_ascii=False) == stored
    assert stored.startswith('{"enqueued_at":"E",')


def test_plain_jobs_are_stored_as_written():
    """What the Go, Ruby and Node clients send keeps its text."""
    doc = (
        '{"retry":25,"jid":"abcdef123000000001","queue":"default","jobtype":"SomeJob",'
        '"created_at":"2026-12-03T04:20:00.123456789Z","args":[1,"string",3,{"a":[1]}]}'
    )
    fields, tail = jobs.parse_plain(doc, 1e9)
    assert tail == doc[1:]
    fields, tail = jobs.parse_plain('{"jid":"abcdef123000000001","jobtype":"J","args":[]}', 1e9)
    assert tail == '"retry":25,"queue":"default","created_at":"2001-09-09T01:46:40Z",' + (
        '"jid":"abcdef123000000001","jobtype":"J","args":[]}'
    )
    for odd in (
        '{"jid":"abcdef123000000001","JobType":"J","args":[]}',  # folded key
        '{"jid":"abcdef123000000001","jobtype":"J","args":["\\u00e9"]}',  # an escape
        '{"jid":"abcdef123000000001","jobtype":"J","args":[{"a":1,"a":2}]}',  # repeated key
        '{"jid":"abcdef123000000001","jobtype":"J","jid":"abcdef123000000002","args":[]}',
        '{"jid":"abcdef123000000001","jobtype":"J","args":[' + "[" * 600 + "]" * 600 + "]}",
        '{"jid":"abcdef123000000001","jobtype":"J","args":[],"priority":3}',
        ' {"jid":"abcdef123000000001","jobtype":"J","args":[]}',
    ):
        assert jobs.parse_plain(odd, 1e9) is None, odd


def test_common_jobs_take_the_fast_path(monkeypatch):
    """PUSH is the hot path: what clients usually send never needs the careful decoder."""

    def careful(doc):
        raise AssertionError(f"careful decoder used for {doc[:80]}")

    monkeypatch.setattr(wire, "_parse", careful)
    for doc in (
        '{"retry":25,"jid":"abcdef123000000001","queue":"default","jobtype":"SomeJob",'
        '"created_at":"2026-12-03T04:20:00.123456789Z","args":[1,"string",3]}',
        '{"jid":"abcdef123000000002","jobtype":"SendEmail","args":[42,"x@example.com",{"a":1}],'
        '"queue":"mail","priority":7,"custom":{"unique_for":60},"reserve_for":600,"at":null}',
        '{"jid":"abcdef123000000003","jobtype":"T","args":["' + "x" * 500 + '",123456789]}',
    ):
        assert wire.decode(doc, wire.JOB)["jid"].startswith("abcdef")


# -- jobs as handed back -------------------------------------------------------------------


def test_zero_valued_optional_fields_are_dropped_and_failure_keeps_known_fields():
    job = jobs.check(
        decode_job(
            '{"jid":"zero-0001","jobtype":"T","args":[],"reserve_for":0,"backtrace":0,'
            '"custom":{},"at":"","failure":{"retry_count":1,"extra":"x","message":""}}'
        )
    )
    assert "reserve_for" not in job and "backtrace" not in job
    assert "custom" not in job and "at" not in job
    assert job["failure"] == {"failed_at": "", "retry_count": 1, "remaining": 0}


def test_jid_length_counts_bytes():
    jobs.check(decode_job('{"jid":"\u00e9\u00e9\u00e9\u00e9","jobtype":"T","args":[]}'))
    with pytest.raises(jobs.JobError, match="reasonable jid"):
        jobs.check(decode_job('{"jid":"abcdefg","jobtype":"T","args":[]}'))


def test_byte_limits_cut_utf8_as_go_does():
    assert wire.cut("\u00e9" * 600, 1000) == "\u00e9" * 500
    assert wire.cut("a" + "\u00e9" * 600, 1000) == "a" + "\u00e9" * 499 + "\ufffd"
    assert wire.cut("\u20ac" * 400, 1000) == "\u20ac" * 333 + "\ufffd"
    assert wire.cut("short", 1000) == "short"
    assert wire.trim("\u00a0 \x1c x \u3000\n") == "\x1c x"  # Go keeps \x1c


# -- through the wire --------------------------------------------------------------------


def fetch_raw(c, queue: str) -> str:
    reply = c.call("FETCH " + queue)
    assert isinstance(reply, str), reply
    assert "Infinity" not in reply and "NaN" not in reply
    return reply


def test_deep_jobs_round_trip_and_deeper_ones_are_refused(c):
    body = '{"jid":"deep-00001","jobtype":"T","queue":"wire-deep","reserve_for":90,"args":%s}'
    assert c.call("PUSH " + body % nested(9999)) == "OK"
    raw = fetch_raw(c, "wire-deep")
    assert nested(9999) in raw
    # the reservation honours reserve_for although Redis cannot decode the job
    assert c.call('FAIL {"jid":"deep-00001","errtype":"E","message":"m"}') == "OK"
    assert c.call('MUTATE {"cmd":"requeue","target":"retries"}') == "OK"
    again = json.loads(fetch_raw(c, "wire-deep"))
    assert again["failure"]["errtype"] == "E" and again["reserve_for"] == 90
    reply = c.call("PUSH " + body % nested(10000))
    assert reply == ReplyError("ERR invalid JSON: exceeded max depth (10000 levels of nesting)")


@pytest.mark.parametrize(
    "line",
    [
        "PUSH " + nested(100000),
        "PUSHB " + nested(100000),
        "FAIL " + '{"jid":' * 100000,
        "BEAT " + nested(100000, "1"),
        "MUTATE " + '{"filter":' * 100000,
        "ACK " + nested(100000),
        "BATCH NEW " + nested(100000),
        "BATCH NEW " + '{"a":' * 20000,
        "TRACK SET " + nested(100000),
        "LIST " + nested(100000),
        'TRACK SET {"jid":"nan-00002","percent":NaN}',
        'BATCH NEW {"success":{"jobtype":"T","args":[Infinity]}}',
        'PUSH {"jid":"nan-00001","jobtype":"T","args":[NaN]}',
        'PUSH {"jid":"inf-00001","jobtype":"T","args":[],"custom":{"x":-Infinity}}',
    ],
    ids=short_id,
)
def test_hostile_json_gets_a_clear_error_and_the_connection_lives(c, line):
    reply = c.call(line)
    assert isinstance(reply, ReplyError) and "internal error" not in reply
    assert "exceeded max depth" in reply or "invalid character" in reply
    assert c.call("INFO").startswith("{")


def test_deep_hello_is_refused_clearly(srv):
    from helpers import Client

    # Deeper than Go's limit would need more than the 8 KiB allowed before
    # HELLO: both are refused with a clear error, the connection closed.
    for hello, reply in (
        ('{"labels":' + nested(100000), "ERR line too long (max 8192 bytes before HELLO)"),
        ('{"labels":' + nested(4000), "ERR invalid HELLO: Expecting"),
        ('{"v":2,"pid":1e999}', "ERR invalid HELLO: json: cannot unmarshal number 1e999 "
         "into Go struct field ClientData.pid of type int"),
    ):  # fmt: skip
        c = Client(srv.port, hello=False)
        got = c.call("HELLO " + hello)
        assert isinstance(got, ReplyError) and got.startswith(reply), got
        c.close()


@pytest.mark.parametrize(
    "extra, field",
    [
        ('"retry":1e999', "Job.retry"),
        ('"reserve_for":1e999', "Job.reserve_for"),
        ('"failure":{"retry_count":1e999}', "Job.failure.retry_count"),
        ('"args":[1e400]', "Job.args.0"),
        ('"retry":9223372036854775808', "Job.retry"),
    ],
)
def test_numbers_too_big_for_their_field_are_refused_naming_it(c, extra, field):
    reply = c.call('PUSH {"jid":"big-00001","jobtype":"T","args":[],' + extra + "}")
    assert isinstance(reply, ReplyError) and reply.startswith("ERR invalid JSON: ")
    assert f"Go struct field {field} of type" in reply


def test_huge_priority_and_rss_kb(c):
    assert (
        c.call(
            'PUSH {"jid":"big-prio-1","jobtype":"T","queue":"wire-prio","args":[],"priority":1e999}'
        )
        == "OK"
    )
    assert json.loads(fetch_raw(c, "wire-prio"))["priority"] == 9
    reply = c.call('BEAT {"wid":"w1","rss_kb":1e999}')
    assert "ClientBeat.rss_kb of type int64" in reply


def test_surrogates_through_push_and_pushb(c):
    assert (
        c.call(r'PUSH {"jid":"sur-00001","jobtype":"T","queue":"wire-sur","args":["\ud800x"]}')
        == "OK"
    )
    assert json.loads(fetch_raw(c, "wire-sur"))["args"] == ["\ufffdx"]
    batch = (
        r'[{"jid":"sur-00002","jobtype":"T","queue":"wire-sur","args":["\udfff"]},'
        r'{"jid":"sur-00003","jobtype":"T","queue":"wire-sur","args":[]}]'
    )
    assert c.call("PUSHB " + batch) == "{}"
    assert json.loads(fetch_raw(c, "wire-sur"))["args"] == ["\ufffd"]
    assert json.loads(fetch_raw(c, "wire-sur"))["jid"] == "sur-00003"


def test_pushb_refuses_a_batch_go_cannot_decode_and_takes_null(c):
    bad = '[{"jid":"pb-000001","jobtype":"T","args":[]},{"jid":"pb-000002","args":[],"retry":"x"}]'
    reply = c.call("PUSHB " + bad)
    assert reply.startswith("ERR invalid JSON: ") and "Job.1.retry" in reply
    assert c.call("PUSHB null") == "{}"
    errors = json.loads(c.call('PUSHB [null,{"jid":"pb-000003","jobtype":"T","args":[]}]'))
    assert errors == {"": "jobs must have a reasonable jid parameter"}


def test_case_insensitive_keys_through_the_wire(c):
    assert c.call('PUSH {"JID":"case-0001","JobType":"T","Args":[],"Queue":"wire-qc"}') == "OK"
    job = json.loads(fetch_raw(c, "wire-qc"))
    assert job["jid"] == "case-0001" and job["jobtype"] == "T" and job["queue"] == "wire-qc"
    c.push(jid="case-dead", queue="wire-qc", retry=-1)
    fetch_raw(c, "wire-qc")
    assert c.call('FAIL {"JID":"case-dead"}') == "OK"
    assert c.info()["faktory"]["sets"]["dead"] >= 1
    assert c.call('MUTATE {"Cmd":"clear","Target":"dead"}') == "OK"
    assert c.info()["faktory"]["sets"]["dead"] == 0


@pytest.mark.parametrize(
    "at, ok",
    [
        ("2030-02-30T00:00:00Z", False),
        ("2030-01-01T23:59:60Z", False),
        ("2030-01-01t00:00:00Z", False),
        ("2030-01-01T00:00:00z", False),
        ("2030-01-01T00:00:00.1234567890Z", True),
        ("2030-01-01T00:00:00,5+24:00", True),
    ],
)
def test_at_is_parsed_as_go_parses_it(c, at, ok):
    reply = c.push(at=at, queue="wire-at")[1]
    if ok:
        assert reply == "OK"
    else:
        assert reply.startswith("ERR invalid timestamp for 'at': ") and "parsing time" in reply


def test_failure_message_is_cut_at_1000_bytes(c):
    c.push(jid="cut-00001", queue="wire-cut", retry=3)
    fetch_raw(c, "wire-cut")
    message = "a" + "\u00e9" * 600
    fail = {"jid": "cut-00001", "errtype": "\u20ac" * 40, "message": message}
    assert c.call("FAIL " + json.dumps(fail)) == "OK"
    assert (
        c.call('MUTATE {"cmd":"requeue","target":"retries","filter":{"jids":["cut-00001"]}}')
        == "OK"
    )
    failure = json.loads(fetch_raw(c, "wire-cut"))["failure"]
    assert failure["message"] == "a" + "\u00e9" * 499 + "\ufffd"
    assert failure["errtype"] == "\u20ac" * 33 + "\ufffd"


def test_a_dead_job_keeps_the_next_at_of_its_last_retry(c):
    c.push(jid="twice-0001", queue="wire-twice", retry=1)
    fetch_raw(c, "wire-twice")
    assert c.call('FAIL {"jid":"twice-0001","message":"one"}') == "OK"
    requeue = 'MUTATE {"cmd":"requeue","target":"%s","filter":{"jids":["twice-0001"]}}'
    assert c.call(requeue % "retries") == "OK"
    next_at = json.loads(fetch_raw(c, "wire-twice"))["failure"]["next_at"]
    assert c.call('FAIL {"jid":"twice-0001","message":"two"}') == "OK"  # retry 1: dead now
    assert c.call(requeue % "dead") == "OK"
    failure = json.loads(fetch_raw(c, "wire-twice"))["failure"]
    assert failure["message"] == "two" and failure["retry_count"] == 1
    assert failure["next_at"] == next_at  # as the real server: kept, not dropped


def test_an_empty_jid_filter_matches_nothing(c):
    c.push(jid="keep-0001", queue="wire-keep", retry=3)
    fetch_raw(c, "wire-keep")
    assert c.call('FAIL {"jid":"keep-0001"}') == "OK"
    before = c.info()["faktory"]["sets"]["retries"]
    assert c.call('MUTATE {"cmd":"discard","target":"retries","filter":{"jids":[""]}}') == "OK"
    assert c.info()["faktory"]["sets"]["retries"] == before >= 1  # not the whole set


@pytest.mark.parametrize(
    "filt, field",
    [
        ('{"jids":"abc"}', "Operation.filter.jids"),
        ('{"regexp":5}', "Operation.filter.regexp"),
        ('{"jobtype":["x"]}', "Operation.filter.jobtype"),
        ('{"jids":[1]}', "Operation.filter.jids.0"),
    ],
)
def test_mutate_filters_of_the_wrong_type_are_refused(c, filt, field):
    reply = c.call('MUTATE {"cmd":"discard","target":"retries","filter":' + filt + "}")
    assert isinstance(reply, ReplyError) and f"Go struct field {field} of type" in reply


def test_fetched_jobs_carry_no_zero_fields_and_only_known_failure_fields(c):
    job = {
        "jid": "zero-0002",
        "jobtype": "T",
        "args": [],
        "queue": "wire-zero",
        "reserve_for": 0,
        "backtrace": 0,
        "failure": {"retry_count": 2, "remaining": 1, "secret": "x", "Message": "m"},
    }
    assert c.call("PUSH " + json.dumps(job)) == "OK"
    got = json.loads(fetch_raw(c, "wire-zero"))
    assert "reserve_for" not in got and "backtrace" not in got
    assert got["failure"] == {"failed_at": "", "message": "m", "retry_count": 2, "remaining": 1}
