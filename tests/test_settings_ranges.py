"""Every numeric setting is range-checked before it is used: at startup a bad
value stops the server with one line naming the setting (instead of, say, a
statsd port of 70000 turning every ACK into ``internal error``), and on
SIGHUP the whole new config is refused, naming the setting, while the running
one stays in force."""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest
from test_config import run_server

from helpers import ServerProcess, config_dir, short_tmpdir


@pytest.mark.parametrize(
    "toml,flags,message",
    [
        ('[statsd]\nlocation = "127.0.0.1:70000"\n', (), "[statsd] location"),
        ('[statsd]\nlocation = "127.0.0.1:8125"\ninterval = 1000000\n', (), "[statsd] interval"),
        ('[statsd]\nlocation = "127.0.0.1:8125"\nbufferSize = 99999\n', (), "[statsd] bufferSize"),
        ("[throttles]\nq = { concurrency = 1, timeout = 1000000000000 }\n", (), "timeout"),
        ("[throttles]\nq = { rate = 5, period = 1000000000 }\n", (), "period"),
        ("[throttles]\nq = { concurrency = 1000000000000 }\n", (), "concurrency"),
        ("[faktory]\nmax_line_length = 1000000000000\n", (), "[faktory] max_line_length"),
        ("", ("--max-connections", "1000000000"), "--max-connections"),
    ],
)
def test_out_of_range_settings_stop_startup_naming_the_setting(toml, flags, message):
    d = config_dir(toml)
    try:
        rc, out = run_server("-c", d, "-d", short_tmpdir(), *flags)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    assert rc != 0 and message in out, out
    assert "Traceback" not in out
    lines = [x for x in out.splitlines() if message in x and "must" in x]
    assert len(lines) == 1, out


def test_sighup_refuses_out_of_range_values_and_keeps_the_running_config():
    d = config_dir("[throttles]\nhupq = { concurrency = 1, timeout = 60 }\n")
    path = os.path.join(d, "conf.d", "faktory.toml")
    s = ServerProcess(args=["--config-dir", d], web=False).start()
    try:
        c = s.client()
        first, _ = c.push(queue="hupq", args=[1])
        second, _ = c.push(queue="hupq", args=[2])
        assert c.fetch("hupq")["jid"] == first
        with open(path, "w") as f:
            f.write(
                "[throttles]\nhupq = { concurrency = 5, timeout = 1000000000000 }\n"
                '[statsd]\nlocation = "127.0.0.1:70000"\n'
            )
        s.proc.send_signal(signal.SIGHUP)
        line = s.wait_for_log("config not reloaded")
        assert "timeout" in line and "[throttles] hupq" in line, line
        # The running throttle (1 at once) still holds, and ACK/FETCH work.
        assert c.fetch("hupq") is None
        assert c.call(json.dumps({"jid": first}).join(("ACK ", ""))) == "OK"
        assert c.fetch("hupq")["jid"] == second
        assert c.call(json.dumps({"jid": second}).join(("ACK ", ""))) == "OK"
        assert "internal error" not in s.log()
    finally:
        s.discard()
        shutil.rmtree(d, ignore_errors=True)
