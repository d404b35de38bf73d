"""The server process's collector settings (faktory.gctune)."""

from __future__ import annotations

import subprocess
import sys


def test_tune_freezes_start_up_and_raises_the_young_threshold():
    code = (
        "import gc; from faktory import gctune; gctune.tune();"
        " print(gc.get_threshold()[0], gc.get_freeze_count() > 1000)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["50000", "True"]
