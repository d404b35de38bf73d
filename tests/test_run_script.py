"""``./scripts/run`` installs the package only when its source changed since
the last install (or it cannot be imported), not at every start.  pip and
twistd are stand-ins on PATH that record their calls, so the test changes
nothing in the real Python."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from helpers import ROOT


def test_scripts_run_does_not_reinstall_when_nothing_changed(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(".git", "node_modules", "__pycache__", "*.egg-info"),
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    (bin_dir / "python3").write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = -m ] && [ "$2" = pip ]; then echo "pip $*" >> {calls}; exit 0; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    (bin_dir / "twistd").write_text(f'#!/bin/sh\necho "twistd $*" >> {calls}\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = dict(
        os.environ,
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        PYTHONPATH=str(src),
    )

    def run() -> list[str]:
        before = calls.read_text().splitlines() if calls.exists() else []
        p = subprocess.run(
            [str(src / "scripts" / "run"), "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert p.returncode == 0, p.stderr
        return calls.read_text().splitlines()[len(before) :]

    first = run()
    assert first[0].startswith("pip -m pip install") and first[1] == "twistd -n faktory --version"
    assert run() == ["twistd -n faktory --version"]  # nothing changed: no install
    with open(src / "faktory" / "__init__.py", "a") as f:
        f.write("\n# changed\n")
    again = run()
    assert again[0].startswith("pip -m pip install"), again
    assert run() == ["twistd -n faktory --version"]
