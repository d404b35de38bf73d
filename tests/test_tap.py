"""``twistd faktory`` option parsing, in process (``Options().parseOptions``,
as Twisted's own ``web/test/test_tap.py`` does): nothing is started, so each
case takes milliseconds.  The end-to-end start-up tests live in test_config.py
and test_startup.py."""

from __future__ import annotations

import pytest
from twisted.python import usage

from faktory import tap
from faktory.pro import builtin_plugins


@pytest.fixture
def conf(tmp_path, monkeypatch):
    """An empty config dir; no password or environment from the test's shell."""
    for name in ("FAKTORY_PASSWORD", "FAKTORY_ENV"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "conf.d").mkdir()
    return tmp_path


def parse(conf, *argv: str) -> tap.Options:
    options = tap.Options()
    options.parseOptions(["--config-dir", str(conf), "--data-dir", str(conf / "db"), *argv])
    return options


def test_defaults_listen_on_loopback_only(conf):
    options = parse(conf)
    assert options["bind"] == "tcp:7419:interface=127.0.0.1"
    assert options["web"] == "tcp:7420:interface=127.0.0.1"
    assert options["environment"] == "development"


@pytest.mark.parametrize(
    "given, endpoint",
    [
        (":7500", "tcp:7500"),
        ("0.0.0.0:7500", "tcp:7500:interface=0.0.0.0"),
        ("[::1]:7500", r"tcp:7500:interface=\:\:1"),
        ("tcp:7500:interface=10.1.2.3", "tcp:7500:interface=10.1.2.3"),
        ("unix:/tmp/f.sock", "unix:/tmp/f.sock"),
    ],
)
def test_the_real_servers_host_port_forms_become_endpoints(conf, given, endpoint):
    assert parse(conf, "--bind", given)["bind"] == endpoint


def test_web_none_turns_the_web_ui_off(conf):
    assert parse(conf, "--web", "none")["web"] is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--max-connections", "0"], "--max-connections must be a positive integer"),
        (["--fsync", "sometimes"], "--fsync must be always, everysec or no"),
        (["--environment", "prod"], 'Invalid environment "prod"'),
        (["--redis-maxmemory", "lots"], "--redis-maxmemory must be a size"),
        (["--plugin", "nope"], "unknown plugin 'nope'"),
    ],
)
def test_a_bad_option_is_one_line_naming_it(conf, argv, message):
    options = tap.Options()
    with pytest.raises(usage.UsageError) as e:
        options.parseOptions(["--config-dir", str(conf), *argv])
    assert message in str(e.value)
    # twistd prints our usage text beside the error: one line after a failure
    assert "\n" not in options.getUsage()


def test_toml_feeds_what_the_command_line_left_alone(conf):
    (conf / "conf.d" / "faktory.toml").write_text(
        '[faktory]\nbinding = ":7600"\n[web]\nbinding = ":7601"\n'
    )
    options = parse(conf)
    assert (options["bind"], options["web"]) == ("tcp:7600", "tcp:7601")
    assert parse(conf, "--bind", ":7700")["bind"] == "tcp:7700"  # the flag wins


def test_every_built_in_features_table_is_a_known_section(conf):
    tables = {table for table, *_ in tap.config_keys()}
    assert {"throttles", "cron", "statsd", "redis", "plugins"} <= tables
    for plugin in builtin_plugins():
        assert all(entry in tap.config_keys() for entry in getattr(plugin, "config_keys", ()))


def test_list_plugins_shows_the_built_ins_and_exits(conf, capsys):
    with pytest.raises(SystemExit) as e:
        parse(conf, "--list-plugins")
    assert e.value.code == 0
    out = capsys.readouterr().out
    for plugin in builtin_plugins():
        assert plugin.name in out
