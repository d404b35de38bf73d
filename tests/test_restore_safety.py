"""Backup and restore never make things worse, and namespaces cannot collide:
a damaged, truncated or foreign backup leaves the data dir exactly as it was;
restore writes under the chosen namespace only (``--from-namespace`` remaps);
every CLI mistake is one line and a non-zero exit; FLUSH and backups read the
namespace as a literal prefix; overlapping namespaces on one Redis refuse to
start."""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil

import pytest
from rawredis import RawRedis
from test_backup import cli, contents

from helpers import ServerProcess, short_tmpdir


def _lines(path: str) -> list[str]:
    with gzip.open(path, "rt") as f:
        return f.readlines()


def _write(path: str, lines: list[str]) -> str:
    with gzip.open(path, "wt") as f:
        f.writelines(lines)
    return path


def _one_line_error(done, *words: str) -> None:
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr, done.stderr
    # Progress lines may come first; the error is one line, the last.
    errors = [x for x in done.stderr.splitlines() if x.startswith("faktory-cli")]
    assert len(errors) == 1 and done.stderr.strip().endswith(errors[0]), done.stderr
    for w in words:
        assert w in done.stderr, done.stderr


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A stopped server's data dir holding jobs, and a backup of it."""
    srv = ServerProcess(web=False).start()
    c = srv.client()
    for n in range(20):
        c.push(queue="keep", args=[n])
    c.close()
    srv.stop()
    out = str(tmp_path_factory.mktemp("bk") / "b.jsonl.gz")
    assert cli("backup", "--data-dir", srv.data_dir, "-o", out).returncode == 0
    yield srv, out, contents(srv.data_dir)
    srv.discard()


def test_a_bad_file_with_replace_leaves_the_old_data_exactly(stopped, tmp_path):
    srv, good, before = stopped
    lines = _lines(good)
    header, records, trailer = lines[0], lines[1:-1], lines[-1]
    assert len(records) >= 3 and json.loads(trailer) == {"end": len(records)}
    bad_payload = json.loads(records[1])
    bad_payload["v"] = base64.b64encode(b"not a DUMP payload at all").decode()
    cases = {
        "truncated": [header, *records[:-1]],
        "damaged": [header, records[0], "{not json\n", *records[1:], trailer],
        "trailer": [header, *records[:-1], trailer],  # a record lost in the middle
        "DUMP payload": [header, records[0], json.dumps(bad_payload) + "\n", *records[2:], trailer],
    }
    for word, content in cases.items():
        path = _write(str(tmp_path / "bad.jsonl.gz"), content)
        done = cli("restore", path, "--data-dir", srv.data_dir, "--replace")
        _one_line_error(done)
        assert word in done.stderr, (word, done.stderr)
        assert contents(srv.data_dir) == before, word
    # Not gzip at all, and gzip cut in the middle of its stream.
    with open(good, "rb") as f:
        raw = f.read()
    for name, data in (("text", b"hello\n"), ("cut.gz", raw[: len(raw) // 2])):
        path = str(tmp_path / name)
        with open(path, "wb") as f:
            f.write(data)
        _one_line_error(cli("restore", path, "--data-dir", srv.data_dir, "--replace"))
        assert contents(srv.data_dir) == before, name
    # The good file still restores in their place.
    ok = cli("restore", good, "--data-dir", srv.data_dir, "--replace")
    assert ok.returncode == 0, ok.stderr
    assert contents(srv.data_dir) == before


def test_keys_outside_the_namespace_are_refused_or_remapped(stopped, tmp_path):
    srv, good, before = stopped
    lines = _lines(good)
    header, records, trailer = json.loads(lines[0]), lines[1:-1], lines[-1]

    def crafted(key: str) -> str:
        rec = json.loads(records[0])
        rec["k"] = key
        return _write(
            str(tmp_path / "crafted.jsonl.gz"),
            [lines[0], *records[1:], json.dumps(rec) + "\n", trailer],
        )

    for key, word in (("other:queues", "not under"), ("fk:", "empty or odd"), ("", "not under")):
        done = cli("restore", crafted(key), "--data-dir", srv.data_dir, "--replace")
        _one_line_error(done, word)
        assert contents(srv.data_dir) == before

    # A backup taken with another namespace: refused, or moved on request.
    target = short_tmpdir()
    try:
        done = cli("restore", good, "--data-dir", target, "--namespace", "eu:")
        _one_line_error(done, "'fk:'", "--from-namespace")
        moved = cli(
            "restore", good, "--data-dir", target, "--namespace", "eu", "--from-namespace", "fk"
        )
        assert moved.returncode == 0, moved.stderr
        srv2 = ServerProcess(data_dir=target, web=False, args=["--namespace", "eu:"]).start()
        try:
            assert srv2.client().info()["faktory"]["queues"] == {"keep": 20}
            r = RawRedis(os.path.join(target, "redis.sock"))
            keys = r("KEYS", "*")
            r.close()
            assert keys and all(k.startswith(b"eu:") or k == b"faktory:namespaces" for k in keys)
        finally:
            srv2.stop()
    finally:
        shutil.rmtree(target, ignore_errors=True)
    assert header["prefix"] == "fk:"


def test_cli_mistakes_are_one_line_and_non_zero(stopped, tmp_path):
    srv, good, _ = stopped
    missing = str(tmp_path / "nope.jsonl.gz")
    _one_line_error(cli("restore", missing, "--data-dir", srv.data_dir), "nope.jsonl.gz")
    _one_line_error(cli("restore", str(tmp_path), "--data-dir", srv.data_dir), "directory")
    _one_line_error(
        cli("backup", "--data-dir", str(tmp_path / "no-such-dir"), "-o", str(tmp_path / "x.gz")),
        "no data dir",
    )
    _one_line_error(
        cli("backup", "--data-dir", srv.data_dir, "-o", str(tmp_path / "missing" / "b.gz")),
        "no directory",
    )
    _one_line_error(cli("restore", good, "--data-dir", srv.data_dir, "--namespace", ""))
    srv.start()
    try:
        _one_line_error(cli("restore", good, "--data-dir", srv.data_dir, "--replace"), "running")
    finally:
        srv.stop()


def test_flush_and_backup_read_the_namespace_literally(tmp_path):
    """``f[ab]:`` as a glob matches ``fa:``: FLUSH and backup must not."""
    a = ServerProcess(web=False, args=["--namespace", "fa:"]).start()
    sock = "unix://" + os.path.join(a.data_dir, "redis.sock")
    b = ServerProcess(web=False, args=["--redis-url", sock, "--namespace", "f[ab]:"]).start()
    try:
        ca, cb = a.client(), b.client()
        ca.push(queue="mine", args=[1])
        cb.push(queue="theirs", args=[2])
        assert cb.call("FLUSH") == "OK"
        assert ca.info()["faktory"]["queues"] == {"mine": 1}
        assert cb.info()["faktory"]["queues"] == {}
        cb.push(queue="theirs", args=[3])
        ca.close()
        cb.close()
        b.stop()
        a.stop()
        out = str(tmp_path / "glob.jsonl.gz")
        done = cli("backup", "--data-dir", a.data_dir, "-o", out, "--namespace", "f[ab]:")
        assert done.returncode == 0, done.stderr
        keys = [json.loads(line).get("k") for line in _lines(out)[1:-1]]
        assert keys and all(k.startswith("f[ab]:") for k in keys), keys
    finally:
        b.stop()
        a.discard()


def test_overlapping_namespaces_cannot_share_a_redis():
    a = ServerProcess(web=False, args=["--namespace", "fk"]).start()  # normalised to fk:
    sock = "unix://" + os.path.join(a.data_dir, "redis.sock")
    try:
        c = a.client()
        c.push(queue="q", args=[])
        c.close()
        r = RawRedis(os.path.join(a.data_dir, "redis.sock"))
        assert r("EXISTS", "fk:queues") == 1
        r.close()
        for ns in ("fk:eu:", "fk:x"):
            b = ServerProcess(web=False, args=["--redis-url", sock, "--namespace", ns])
            b.start(wait=False)
            try:
                assert b.proc.wait(30) != 0
                assert "overlaps 'fk:'" in b.log(), b.log()
            finally:
                b.discard()
        # A namespace beside it that neither starts nor is started by it is fine.
        ok = ServerProcess(web=False, args=["--redis-url", sock, "--namespace", "fkeu:"]).start()
        ok.discard()
        assert a.client().info()["faktory"]["queues"] == {"q": 1}
    finally:
        a.discard()


def test_an_rdb_snapshot_of_another_namespace_is_refused_or_remapped():
    src = ServerProcess(web=False, args=["--namespace", "eu:"]).start()
    target = short_tmpdir()
    try:
        c = src.client()
        for n in range(7):
            c.push(queue="snap", args=[n])
        c.close()
        src.stop()  # Redis saves its RDB on the way out
        rdb = os.path.join(target + "-snap.rdb")
        shutil.copyfile(os.path.join(src.data_dir, "faktory.rdb"), rdb)
        _one_line_error(cli("restore", rdb, "--data-dir", target), "none under 'fk:'")
        moved = cli("restore", rdb, "--data-dir", target, "--from-namespace", "eu:")
        assert moved.returncode == 0, moved.stderr
        dst = ServerProcess(data_dir=target, web=False).start()
        try:
            assert dst.client().info()["faktory"]["queues"] == {"snap": 7}
        finally:
            dst.stop()
        os.unlink(rdb)
    finally:
        src.discard()
        shutil.rmtree(target, ignore_errors=True)
