"""The Redis trouble banner in headless Chromium: shown on every page while
Redis is out of memory, gone once it has memory again."""

from __future__ import annotations

import os
import time

import test_web_browser as harness
from rawredis import RawRedis

# The harness's fixtures: one server and one browser for the module.
server, browser, ui, client = harness.server, harness.browser, harness.ui, harness.client


def _banner(ui) -> str:
    found = ui.css('[role="alert"]')
    return found[0].text if found and found[0].is_displayed() else ""


def _until_banner(ui, path: str, want: bool, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = _banner(ui.open(path))
        if bool(text) == want or time.monotonic() > deadline:
            return text
        time.sleep(0.3)


def test_banner_while_redis_is_out_of_memory(ui, server, client):
    redis = RawRedis(os.path.join(server.data_dir, "redis.sock"))
    assert _banner(ui.open("/")) == ""
    redis("CONFIG", "SET", "maxmemory", "1")
    try:
        text = _until_banner(ui, "/", True)
        assert text.startswith("Redis is out of memory for new jobs")
        assert "FETCH, ACK and FAIL still work" in text
        assert _banner(ui.open("/queues")) == text  # every page, same words
        assert client.push(queue="alerts")[1].startswith("ERR Redis is out of memory")
    finally:
        redis("CONFIG", "SET", "maxmemory", "0")
    assert _until_banner(ui, "/", False) == ""
    assert client.push(queue="alerts")[1] == "OK"
