"""Plugins: discovery with ``twisted.plugin``, enabling by config or
``--plugin``, and every hook exercised through the wire by the example plugin
in docs/examples, pip-installed into a temporary directory (never into the
test environment) and put on the server subprocess's PYTHONPATH."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
from pyfaktory import Client as PyClient
from pyfaktory import Job, Producer

from faktory import plugins
from faktory.plugin import plugin_settings
from faktory.pro import builtin_plugins
from helpers import ROOT, ReplyError, ServerProcess, short_tmpdir

EXAMPLE = os.path.join(ROOT, "docs", "examples", "faktory-audit-plugin")

HELLO = '''
from zope.interface import implementer
from twisted.logger import Logger
from faktory.plugin import IFaktoryPlugin

log = Logger()


@implementer(IFaktoryPlugin)
class Hello:
    """Says hello from twisted/plugins."""

    name = "hello"

    def setup(self, server):
        server.factory.add_command("HI", lambda proto, arg: "hello " + arg)
        log.info("hello plugin up")

    def shutdown(self, server):
        log.info("hello plugin down")


hello = Hello()
'''

BOOM = """
from zope.interface import implementer
from faktory.plugin import IFaktoryPlugin


@implementer(IFaktoryPlugin)
class Boom:
    name = "boom"
    description = "Fails to start, on purpose."

    def setup(self, server):
        raise RuntimeError("licence key missing")

    def shutdown(self, server):
        pass


boom = Boom()
"""


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> str:
    """PYTHONPATH holding the pip-installed example plugin, plus drop-ins for
    a twisted/plugins plugin, one that fails in setup and one that cannot
    even be imported."""
    src = tmp_path_factory.mktemp("src") / "faktory-audit-plugin"
    # Build from a copy: pip builds in the source tree, which must stay clean.
    shutil.copytree(
        EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    target = str(tmp_path_factory.mktemp("site"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        + ["--no-deps", "--target", target, str(src)],
        check=True,
    )
    assert os.path.exists(os.path.join(target, "faktory_plugins", "audit.py"))
    assert not os.path.exists(os.path.join(target, "faktory_plugins", "__init__.py"))
    extra = str(tmp_path_factory.mktemp("extra"))
    _write(os.path.join(extra, "twisted", "plugins", "fk_hello.py"), HELLO)
    _write(os.path.join(extra, "faktory_plugins", "boom.py"), BOOM)
    _write(os.path.join(extra, "faktory_plugins", "broken.py"), "import no_such_module_here\n")
    return os.pathsep.join([target, extra])


def _env(plugin_path: str) -> dict[str, str]:
    old = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": plugin_path + (os.pathsep + old if old else "")}


def _config_dir(toml: str) -> str:
    d = short_tmpdir("fkc")
    _write(os.path.join(d, "conf.d", "plugins.toml"), toml)
    return d


AUDIT_TOML = """
[plugins]
enabled = ["audit"]
disabled = ["unique"]

[plugins.audit]
blocked = ["EvilJob"]
"""


@pytest.fixture(scope="module")
def audited(plugin_path):
    srv = ServerProcess(args=["--config-dir", _config_dir(AUDIT_TOML)], env=_env(plugin_path))
    srv.start()
    yield srv
    srv.discard()


def _audit(client, count: int = 100) -> list[dict]:
    return json.loads(client.call(f"AUDIT {count}"))["entries"]


def _twistd(plugin_path: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "twisted", "faktory", "--config-dir", _config_dir(""), *args],
        env=dict(os.environ, **_env(plugin_path)),
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/tmp",
    )


# -- the example plugin, through the wire ------------------------------------------


def test_push_middleware_refuses_blocked_jobtype_with_coded_error(audited):
    c = audited.client()
    jid, reply = c.push(jobtype="EvilJob", queue="blockq")
    assert isinstance(reply, ReplyError)
    assert reply == "BLOCKED jobtype EvilJob is blocked by the audit plugin"
    assert c.info()["faktory"]["queues"].get("blockq", 0) == 0
    assert [e["event"] for e in _audit(c) if e["jid"] == jid] == ["blocked"]
    # A real client sees the same refusal, and the connection keeps working.
    with PyClient(faktory_url=audited.url, role="producer") as pc:
        with pytest.raises(Exception, match="BLOCKED jobtype EvilJob"):
            Producer(client=pc).push(Job(jobtype="EvilJob", args=[], queue="blockq"))
        assert Producer(client=pc).push(Job(jobtype="GoodJob", args=[1], queue="pyq"))
    assert c.info()["faktory"]["queues"]["pyq"] == 1
    c.close()


def test_middleware_alters_pushed_jobs_and_records_ack_and_fail(audited):
    c = audited.client(wid=uuid.uuid4().hex)
    ok_jid, _ = c.push(jobtype="Mail", queue="audq", custom={"tenant": 7})
    bad_jid, _ = c.push(jobtype="Mail", queue="audq")
    first = c.fetch("audq")
    assert first["jid"] == ok_jid
    assert first["custom"] == {"tenant": 7, "audited_by": "faktory-audit-plugin"}
    assert c.call("ACK " + json.dumps({"jid": ok_jid})) == "OK"
    second = c.fetch("audq")
    assert second["custom"] == {"audited_by": "faktory-audit-plugin"}
    fail = {"jid": bad_jid, "errtype": "SMTPError", "message": "relay refused"}
    assert c.call("FAIL " + json.dumps(fail)) == "OK"
    entries = _audit(c)
    assert [e["event"] for e in entries if e["jid"] == ok_jid] == ["ack", "push"]
    failed = [e for e in entries if e["jid"] == bad_jid]
    assert [e["event"] for e in failed] == ["fail", "push"]
    assert failed[0]["errtype"] == "SMTPError" and failed[0]["queue"] == "audq"
    c.close()


def test_plugin_command_validates_its_argument(audited):
    c = audited.client()
    assert c.call("AUDIT 0") == "ERR AUDIT takes a count from 1 to 1000, not '0'"
    c.push(jobtype="Counted", queue="cntq")
    reply = json.loads(c.call("AUDIT 1"))
    assert len(reply["entries"]) == 1 and reply["total"] >= 1
    assert reply["entries"][0]["jobtype"] == "Counted"
    c.close()


def test_plugin_web_page_is_served_and_linked(audited):
    c = audited.client()
    jid, _ = c.push(jobtype="<Shown&Escaped>", queue="webq")
    c.close()
    base = f"http://127.0.0.1:{audited.web_port}"
    with urllib.request.urlopen(base + "/audit", timeout=10) as r:
        page = r.read().decode()
    assert 'id="audit-trail"' in page and jid in page
    assert "&lt;Shown&amp;Escaped&gt;" in page and "<Shown&" not in page
    with urllib.request.urlopen(base + "/", timeout=10) as r:
        assert 'href="/audit"' in r.read().decode()


def test_periodic_task_and_shutdown_hook(plugin_path):
    toml = "[plugins.audit]\nmax_age = 2\nsweep_every = 1\n"
    srv = ServerProcess(
        args=["--config-dir", _config_dir(toml), "--plugin", "audit", "--plugin", "hello"],
        env=_env(plugin_path),
        web=False,
    ).start()
    try:
        c = srv.client()
        jid, _ = c.push(jobtype="Short", queue="retq")
        assert jid in [e["jid"] for e in _audit(c)]
        assert c.call("HI there") == "hello there"  # the twisted/plugins plugin
        deadline = time.monotonic() + 30
        while _audit(c) and time.monotonic() < deadline:
            time.sleep(0.25)
        assert _audit(c) == [], "the retention task never dropped the old record"
        c.close()
    finally:
        srv.stop()
    log = srv.log()
    assert "Audit: dropped 1 records older than 2 s" in log
    # Setup in the order enabled; shutdown in reverse.
    assert log.index("Plugin audit set up") < log.index("Plugin hello set up")
    assert log.index("hello plugin down") < log.index("Audit plugin shut down")
    shutil.rmtree(srv.data_dir, ignore_errors=True)


def test_disabled_builtin_plugin_is_not_set_up(audited):
    c = audited.client()
    job = {"jobtype": "Once", "args": [1], "queue": "uniq", "custom": {"unique_for": 600}}
    assert c.push(**job)[1] == "OK"
    assert c.push(**job)[1] == "OK"  # with unique jobs on: NOTUNIQUE
    assert c.info()["faktory"]["queues"]["uniq"] == 2
    c.close()


# -- discovery and failures ----------------------------------------------------------


def test_list_plugins_shows_installed_and_broken_dropins(plugin_path):
    result = _twistd(plugin_path, "--plugin", "audit", "--list-plugins")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:2] == ["audit", "enabled"] for line in lines), result.stdout
    assert any(line.split()[:2] == ["hello", "available"] for line in lines), result.stdout
    assert any(line.split()[:2] == ["boom", "available"] for line in lines), result.stdout
    assert any(line.split()[:2] == ["unique", "built-in"] for line in lines), result.stdout
    broken = [line for line in lines if line.split()[:2] == ["?", "broken"]]
    assert len(broken) == 1 and "broken.py" in broken[0]
    assert "No module named 'no_such_module_here'" in broken[0]


def test_unknown_plugin_is_a_startup_usage_error(plugin_path):
    result = _twistd(plugin_path, "--plugin", "audti")
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "unknown plugin 'audti'" in out
    assert "installed: audit, boom, hello" in out
    assert "broken.py" in out and "no_such_module_here" in out


def test_plugin_failing_in_setup_stops_startup_naming_it(plugin_path):
    srv = ServerProcess(
        args=["--config-dir", _config_dir(""), "--plugin", "hello", "--plugin", "boom"],
        env=_env(plugin_path),
        web=False,
    ).start(wait=False)
    try:
        srv.proc.wait(timeout=60)
    finally:
        srv.stop()
    log = srv.log()
    assert "plugin 'boom' failed in setup: RuntimeError: licence key missing" in log
    assert "Faktory server ready" not in log
    # The plugin set up before the failing one is shut down again.
    assert "hello plugin up" in log and "hello plugin down" in log
    shutil.rmtree(srv.data_dir, ignore_errors=True)


# -- config rules (in process) -----------------------------------------------------------


@pytest.mark.parametrize(
    "table, message",
    [
        ({"plugins": []}, "[plugins] must be a table"),
        ({"plugins": {"enabled": "audit"}}, "[plugins] enabled must be a list"),
        ({"plugins": {"disabled": [1]}}, "[plugins] disabled must be a list"),
        ({"plugins": {"enable": ["audit"]}}, "[plugins] enable: unknown key"),
        ({"plugins": {"disabled": ["nope"]}}, "'nope' is not a built-in plugin"),
    ],
)
def test_bad_plugins_table_is_refused_clearly(table, message):
    with pytest.raises(plugins.PluginError) as e:
        plugins.enabled(table, builtin_plugins())
    assert message in str(e.value)


def test_builtins_run_unless_disabled_and_enabling_is_idempotent():
    names = [p.name for p in builtin_plugins()]
    assert [p.name for p in plugins.enabled({}, builtin_plugins())] == names
    config: dict = {}
    plugins.enable(config, ["audit", "audit"])
    plugins.enable(config, ["audit"])
    assert config == {"plugins": {"enabled": ["audit"]}}
    # Naming a built-in in ``enabled`` neither fails nor sets it up twice.
    assert [
        p.name for p in plugins.enabled({"plugins": {"enabled": names}}, builtin_plugins())
    ] == names
    if names:
        off = {"plugins": {"disabled": [names[0]]}}
        assert [p.name for p in plugins.enabled(off, builtin_plugins())] == names[1:]


def test_plugin_settings_reads_its_own_table():
    class Server:
        class settings:
            config = {"plugins": {"enabled": ["audit"], "audit": {"blocked": ["X"]}}}

    assert plugin_settings(Server, "audit") == {"blocked": ["X"]}
    assert plugin_settings(Server, "other") == {}
