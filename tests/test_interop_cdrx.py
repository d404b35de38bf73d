"""The other Python client, PyPI's ``faktory`` (cdrx/faktory_worker_python),
unchanged: its Client pushes and its Worker fetches, runs, ACKs and FAILs.

Its import name is ``faktory``, the same as this server's package, so it is
pip-installed into a temporary directory and only the client subprocess gets
it on PYTHONPATH.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

CLIENT = """
import sys
from faktory import Client, Worker

url, queue = sys.argv[1], sys.argv[2]
with Client(faktory=url) as client:
    assert client.queue("add", args=(1, 2), queue=queue)
    assert client.queue("boom", args=(), queue=queue, retry=3)


def add(x, y):
    print("ADD", x + y, flush=True)


def boom():
    raise ValueError("kaboom")


worker = Worker(faktory=url, queues=[queue], concurrency=1, use_threads=True, disconnect_wait=1)
worker.register("add", add)
worker.register("boom", boom)
print("WORKER", worker.get_worker_id(), flush=True)
worker.run()
"""


@pytest.fixture(scope="module")
def cdrx_path(tmp_path_factory) -> str:
    target = str(tmp_path_factory.mktemp("cdrx"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        + ["--no-deps", "--target", target, "faktory==1.0.0"],
        check=True,
    )
    return target


def test_cdrx_client_pushes_and_its_worker_acks_and_fails(srv, c, cdrx_path, tmp_path):
    script = tmp_path / "cdrx_client.py"
    script.write_text(CLIENT)
    out = tmp_path / "out.txt"
    with open(out, "w") as f:
        proc = subprocess.Popen(
            [sys.executable, str(script), srv.url, "cdrxq"],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONPATH=cdrx_path),
            cwd=str(tmp_path),
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            info = c.info()["faktory"]
            if info["total_processed"] >= 2 and info["total_failures"] >= 1:
                break
            time.sleep(0.1)
        assert info["total_processed"] == 2, out.read_text()
        assert info["total_failures"] == 1
        assert info["queues"].get("cdrxq", 0) == 0
        assert info["sets"]["retries"] == 1  # boom, retry 3: waiting for its next try
        assert "ADD 3" in out.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
