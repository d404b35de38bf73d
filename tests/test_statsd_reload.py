"""``[statsd]`` changes take effect on SIGHUP: metrics caught by real UDP
sockets move from the old agent to the new one (new host/port, namespace,
tags), the old socket gets nothing more, the change is an operator-action
line, a bad value refuses the whole reload (the running client keeps
sending) and removing the table turns statsd off."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time

from helpers import ServerProcess, config_dir


def _udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    return sock


def _lines(sock: socket.socket, until, timeout: float = 10.0) -> list[str]:
    """Lines received until ``until(lines)`` holds or the time is up."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(lines):
        try:
            lines.extend(sock.recv(65535).decode().split("\n"))
        except TimeoutError:
            continue
    return lines


def _silent(sock: socket.socket, seconds: float) -> list[str]:
    """Everything that arrives in the next ``seconds`` (expected: nothing)."""
    return _lines(sock, lambda ls: False, timeout=seconds)


def _drain(sock: socket.socket) -> None:
    sock.settimeout(0.05)
    try:
        while True:
            sock.recv(65535)
    except TimeoutError:
        pass
    finally:
        sock.settimeout(0.2)


def _statsd(port: int, namespace: str, extra: str = "") -> str:
    return (
        f'[statsd]\nlocation = "127.0.0.1:{port}"\nnamespace = "{namespace}"\ninterval = 1\n'
        + extra
    )


def _hup(s: ServerProcess, path: str, toml: str, wait_for: str) -> str:
    seen = s.log().count(wait_for)
    with open(path, "w") as f:
        f.write(toml)
    s.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while s.log().count(wait_for) <= seen:
        assert time.monotonic() < deadline, s.log()[-2000:]
        time.sleep(0.05)
    return next(x for x in reversed(s.log().splitlines()) if wait_for in x)


def test_sighup_applies_statsd_settings():
    old, new = _udp(), _udp()
    d = config_dir(_statsd(old.getsockname()[1], "one."))
    path = os.path.join(d, "conf.d", "faktory.toml")
    s = ServerProcess(args=["--config-dir", d], web=False).start()
    try:
        c = s.client()
        got = _lines(old, lambda ls: any(x.startswith("one.processed:") for x in ls))
        assert any(x.startswith("one.processed:") for x in got), got

        line = _hup(
            s,
            path,
            _statsd(new.getsockname()[1], "two.", 'tags = ["env:hup"]\n'),
            "statsd now sends to",
        )
        assert "Operator action by SIGHUP" in line and f":{new.getsockname()[1]}" in line, line
        jid, _ = c.push(queue="hupstat", jobtype="Hup")
        assert c.fetch("hupstat")["jid"] == jid
        assert c.call(json.dumps({"jid": jid}).join(("ACK ", ""))) == "OK"
        got = _lines(
            new,
            lambda ls: (
                any(x.startswith("two.jobs.count:1|c|#env:hup") for x in ls)
                and any(x.startswith("two.processed:") for x in ls)
            ),
        )
        assert any(x.startswith("two.jobs.count:1|c|#env:hup,") for x in got), got
        assert any(x.startswith("two.processed:") and "#env:hup" in x for x in got), got
        _drain(old)
        assert _silent(old, 2.5) == []  # the old client is closed

        # A bad value refuses the whole reload: the running client keeps sending.
        line = _hup(s, path, _statsd(70000, "three."), "config not reloaded")
        assert "[statsd] location" in line, line
        _drain(new)
        got = _lines(new, lambda ls: any(x.startswith("two.processed:") for x in ls))
        assert any(x.startswith("two.processed:") for x in got), got

        # No [statsd] table any more: statsd is off.
        _hup(s, path, "", "statsd turned off")
        _drain(new)
        assert _silent(new, 2.5) == []
        assert "Traceback" not in s.log() and "internal error" not in s.log()
    finally:
        s.discard()
        shutil.rmtree(d, ignore_errors=True)
        old.close()
        new.close()
