"""The job model's time stamps: ``format_time`` writes Go's RFC3339Nano and
``parse_time`` reads any RFC3339 stamp (with a fast path for our own)."""

import calendar
import random

import pytest

from faktory.job import format_time, parse_time


def test_format_time_matches_go_rfc3339nano():
    ts = calendar.timegm((2026, 11, 24, 22, 33, 54, 0, 0, 0))
    assert format_time(ts) == "2026-11-24T22:33:54Z"
    assert format_time(ts + 0.5) == "2026-11-24T22:33:54.5Z"
    assert format_time(ts + 0.125) == "2026-11-24T22:33:54.125Z"  # exact in binary


def test_parse_time_reads_back_what_format_time_wrote():
    rng = random.Random(3)
    for _ in range(20000):
        ts = rng.uniform(1e9, 2.5e9)
        if rng.random() < 0.2:
            ts = float(int(ts))  # whole seconds: no fraction at all
        assert parse_time(format_time(ts)) == pytest.approx(ts, abs=1e-6)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2026-11-24T22:33:54Z", 1795559634.0),
        ("2026-11-24T22:33:54.25Z", 1795559634.25),
        ("2026-11-24T22:33:54.250000000Z", 1795559634.25),
        ("2026-11-24T22:33:54.1234567890Z", 1795559634.123456789),  # Go cuts at 9 digits
        ("2026-11-24T22:33:54,5Z", 1795559634.5),  # Go takes a comma too
        ("2028-02-29T00:00:00Z", 1835395200.0),  # a leap day
        ("0000-01-01T00:00:00Z", -62167219200.0),
        ("2026-11-24T22:33:54+24:00", 1795473234.0),  # Go allows offsets up to 24:60
        ("2026-11-24T23:33:54+01:00", 1795559634.0),
        ("2026-11-24T21:33:54.5-01:00", 1795559634.5),
    ],
)
def test_parse_time_values(value, expected):
    # Twice: the second parse of a second goes through the cache.
    assert parse_time(value) == pytest.approx(expected)
    assert parse_time(value) == pytest.approx(expected)


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-24T22:33:54.Z",
        "2026-11-24T22:33:54z",  # Go wants capitals
        "2026-11-24t22:33:54Z",
        "2030-02-30T00:00:00Z",  # no such day
        "2029-02-29T00:00:00Z",  # not a leap year
        "2030-01-01T23:59:60Z",  # Go refuses leap seconds
        "2030-01-01T24:00:00Z",
        "2030-13-01T00:00:00Z",
        "2030-01-01T00:00:00+25:00",
        "2030-01-01T00:00:00+01:61",
        "2030-01-01T00:00:00+0100",
        "2030-01-01T00:00:00Z ",
        "\uff12030-01-01T00:00:00Z",  # a fullwidth digit
        "2026-11-24T22:33:54.-1Z",
        "2026-11-24T22:33:54.\u00b2Z",
        "2026-11-24T22:33:54",
        "2026-11-24 22:33:54Z",
        "",
    ],
)
def test_malformed_stamps_are_refused_even_right_after_a_good_one(value):
    parse_time("2026-11-24T22:33:54Z")  # primes the fast path for this second
    with pytest.raises(ValueError):
        parse_time(value)
