"""drygate.overlay: copies of local state, path translation and leak checks, shadows on disk, the
key-level reference overlay, the honest marking. Real files, real SQLite, real locks; the relay's
use of all of it is tested with real MCP servers in tests/relay/test_shadow.py."""

import json
import os
import sqlite3
import stat
import subprocess
import sys
import time

import pytest

from drygate.overlay import honesty
from drygate.overlay.base import ABSENT, OVERLAY, REAL, MapOverlay, OverlayUnavailable
from drygate.overlay.copy import copy_state, state_size
from drygate.overlay.paths import PathMap, substitute
from drygate.overlay.shadow import (
    SHADOW_PREFIX, Shadow, ShadowConfig, list_shadows, prune_shadows, run_key, simulation_summary,
)


def make_db(path, rows=("a",), wal=False):
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    conn.executemany("INSERT INTO t VALUES (?)", [(r,) for r in rows])
    conn.commit()
    return conn


def keys(db):
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return [r[0] for r in conn.execute("SELECT k FROM t ORDER BY k")]
    finally:
        conn.close()


# -- copies ---------------------------------------------------------------------------------


def test_copy_a_file_keeps_data_mode_and_times(tmp_path):
    src = tmp_path / "state.jsonl"
    src.write_bytes(b'{"a": 1}\n' * 1000)
    os.chmod(src, 0o640)
    os.utime(src, ns=(1_000_000_000_000, 2_000_000_000_000))
    report = copy_state(str(src), str(tmp_path / "copy" / "state.jsonl"))
    dst = tmp_path / "copy" / "state.jsonl"
    assert dst.read_bytes() == src.read_bytes()
    assert stat.S_IMODE(dst.stat().st_mode) == 0o640 and dst.stat().st_mtime_ns == 2_000_000_000_000
    assert report.kind == "file" and report.bytes == src.stat().st_size and report.files == 1
    assert set(report.methods) <= {"reflink", "copy_file_range", "sendfile", "copy"}
    dst.write_text("changed")
    assert src.read_bytes() == b'{"a": 1}\n' * 1000  # a copy, not a link


def test_copy_a_folder_links_sqlite_and_special_files(tmp_path):
    src = tmp_path / "state"
    (src / "sub" / "deep").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "deep" / "b.txt").write_text("bb")
    os.link(src / "a.txt", src / "sub" / "a-link.txt")
    os.symlink("deep/b.txt", src / "sub" / "rel-link")
    os.symlink(str(src / "a.txt"), src / "abs-link")
    os.mkfifo(src / "pipe")
    conn = make_db(src / "app.db", ("x", "y"), wal=True)  # open: its -wal and -shm exist
    assert (src / "app.db-wal").exists()
    report = copy_state(str(src), str(tmp_path / "copy"))
    conn.close()
    dst = tmp_path / "copy"
    assert (dst / "sub" / "deep" / "b.txt").read_text() == "bb"
    assert os.path.samefile(dst / "a.txt", dst / "sub" / "a-link.txt")  # a hard link stays one file
    assert os.readlink(dst / "sub" / "rel-link") == "deep/b.txt"
    assert os.readlink(dst / "abs-link") == str(dst / "a.txt")  # re-pointed into the copy
    assert not (dst / "pipe").exists() and not (dst / "app.db-wal").exists()
    assert keys(dst / "app.db") == ["x", "y"]
    assert report.methods.get("sqlite_backup") == 1 and report.methods.get("hardlink") == 1
    assert {why.split(" (")[0] for _, why in report.skipped} == {"a SQLite side file",
                                                                  "not a file, folder or link"}


@pytest.mark.parametrize("target", ["outside", "../outside/x", "/etc"])
def test_a_link_out_of_the_folder_refuses_the_copy(tmp_path, target):
    src = tmp_path / "state"
    src.mkdir()
    (tmp_path / "outside").mkdir()
    os.symlink(str(tmp_path / "outside") if target == "outside" else target, src / "link")
    with pytest.raises(OverlayUnavailable) as e:
        copy_state(str(src), str(tmp_path / "copy"))
    assert e.value.code == "not_isolated" and "leads outside the state" in e.value.reason


def test_size_limit_refuses_before_copying(tmp_path):
    src = tmp_path / "state"
    src.mkdir()
    for i in range(50):
        (src / f"f{i}").write_bytes(b"x" * 100)
    assert state_size(str(src)) == (5000, 50)
    size, _ = state_size(str(src), limit=250)
    assert 250 < size < 5000  # stopped early
    with pytest.raises(OverlayUnavailable) as e:
        copy_state(str(src), str(tmp_path / "copy"), limit=1000)
    assert e.value.code == "too_large" and e.value.limit == 1000 and e.value.bytes > 1000
    assert not (tmp_path / "copy").exists()


def test_a_missing_state_is_absent_and_its_folder_made(tmp_path):
    report = copy_state(str(tmp_path / "nothing.db"), str(tmp_path / "copy" / "0" / "nothing.db"))
    assert report.kind == "absent" and report.bytes == 0
    assert (tmp_path / "copy" / "0").is_dir()


def test_rollback_mode_sqlite_copied_while_a_writer_holds_uncommitted_changes(tmp_path):
    db = tmp_path / "live.db"
    make_db(db, ("committed",)).close()
    code = ("import sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "c.execute(\"INSERT INTO t VALUES ('uncommitted')\")\n"
            "print('ready', flush=True)\n"
            "sys.stdin.readline()\n"
            "c.execute('COMMIT')\n")
    writer = subprocess.Popen([sys.executable, "-c", code, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        report = copy_state(str(db), str(tmp_path / "copy.db"))
    finally:
        writer.communicate("\n", timeout=10)
    assert report.kind == "sqlite" and set(report.methods) <= {"sqlite_locked_copy", "reflink"}
    assert keys(tmp_path / "copy.db") == ["committed"]
    assert keys(db) == ["committed", "uncommitted"]  # the writer was not disturbed


# -- paths ----------------------------------------------------------------------------------


def test_translation_matches_whole_paths_only(tmp_path):
    real, copy = "/srv/app/data", "/p/.drygate/mcp-shadows/r-1/fs/state/0/data"
    m = PathMap([(real, copy)])
    assert m.to_copy("/srv/app/data") == copy
    assert m.to_copy("/srv/app/data/x.txt") == copy + "/x.txt"
    assert m.to_copy("file:///srv/app/data/x") == "file://" + copy + "/x"
    assert m.to_copy("wrote /srv/app/data.") == f"wrote {copy}."
    for other in ("/srv/app/data2", "/srv/app/data.bak", "/x/srv/app/data", "/srv/app/database"):
        assert m.to_copy(other) == other
    assert m.to_real({"k": [copy + "/a", {copy: 1}]}) == {"k": [real + "/a", {real: 1}]}
    assert m.to_real(m.to_copy("cp /srv/app/data/a /srv/app/data/b")) == "cp /srv/app/data/a /srv/app/data/b"


def test_translation_of_percent_encoded_paths(tmp_path):
    real = tmp_path / "my state"
    real.mkdir()
    copy = tmp_path / "copy dir" / "my state"
    m = PathMap([(str(real), str(copy))])
    assert m.to_copy(real.as_uri() + "/a%20b") == copy.as_uri() + "/a%20b"
    assert m.leaks(real.as_uri()) == [str(real).replace(" ", "%20")]
    assert m.leaks(m.to_copy({"uri": real.as_uri()})) == []


def test_leaks_are_checked_stricter_than_the_translation(tmp_path):
    m = PathMap([("/srv/app/meta.db", "/p/copy/meta.db")])
    assert m.leaks("/srv/app/meta.db-wal") == ["/srv/app/meta.db"]  # a side file of the real state
    assert m.leaks("/p/copy/meta.db") == []
    assert m.leaks(["ATTACH 'meta.db'"], cwd="/srv/app") == ["meta.db"]
    assert m.leaks({"sql": "SELECT * FROM meta"}, cwd="/srv/app") == []  # a bare word is not a path
    assert m.leaks("../app/meta.db", cwd="/srv/other") == ["../app/meta.db"]


def test_substitute_argv_env_and_working_folder(tmp_path):
    real = tmp_path / "data"
    real.mkdir()
    m = PathMap([(str(real), str(tmp_path / "copy" / "data"))])
    argv, env, cwd, found = substitute(["server", "--root", str(real), "--db=data/x.db", "plain"],
                                       {"STATE": f"sqlite:///{real}/x.db", "HOME": "/root"}, str(tmp_path), m)
    assert argv == ["server", "--root", str(tmp_path / "copy" / "data"),
                    f"--db={tmp_path / 'copy' / 'data' / 'x.db'}", "plain"]
    assert env == {"STATE": f"sqlite:///{tmp_path / 'copy' / 'data'}/x.db", "HOME": "/root"}
    assert cwd == str(tmp_path) and found[str(real)] == 3
    argv, env, cwd, found = substitute(["server", "."], {}, str(real / "sub"), m)
    assert cwd == str(tmp_path / "copy" / "data" / "sub") and argv == ["server", "."] and found[str(real)] == 1


# -- shadows on disk ------------------------------------------------------------------------


def test_shadow_shared_by_one_run_removed_by_its_last_holder(tmp_path):
    state = tmp_path / "memory.jsonl"
    state.write_text('{"a": 1}\n')
    root, config = str(tmp_path / "shadows"), ShadowConfig([str(state)])
    first = Shadow.open(root, "run one", "memory", config)
    second = Shadow.open(root, "run one", "memory", config)
    other = Shadow.open(root, "run two", "memory", config)
    assert first.made and not second.made and other.made
    assert first.dir == second.dir != other.dir
    copy = first.paths()[0]["copy"]
    assert open(copy).read() == '{"a": 1}\n' and os.path.basename(copy) == "memory.jsonl"
    argv, env, _ = first.command(["node", "index.js"], {"MEMORY_FILE_PATH": str(state)}, str(tmp_path))
    assert env["MEMORY_FILE_PATH"] == copy
    with pytest.raises(OverlayUnavailable) as e:
        first.command(["node", "index.js"], {}, str(tmp_path))  # the server would not find the copy
    assert e.value.code == "not_isolated"
    with open(copy, "a") as f:
        f.write('{"b": 2}\n')
    assert first.release() == (18, False)  # the other holder keeps it
    assert os.path.exists(copy) and list_shadows(root)["run one"]["in_use"]
    assert second.release() == (18, True)
    assert not os.path.exists(second.run_dir)
    assert other.release()[1] and os.listdir(root) == []
    assert state.read_text() == '{"a": 1}\n'


def test_one_run_and_server_with_other_paths_is_refused_not_recopied(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("a")
    b.write_text("b")
    root = str(tmp_path / "shadows")
    first = Shadow.open(root, "r", "memory", ShadowConfig([str(a)]))
    with open(first.paths()[0]["copy"], "a") as f:
        f.write(" written by the run")
    with pytest.raises(OverlayUnavailable, match="with other paths"):
        Shadow.open(root, "r", "memory", ShadowConfig([str(b)]))
    assert open(first.paths()[0]["copy"]).read() == "a written by the run"
    assert first.release()[1]


def test_shadow_over_the_limit_leaves_nothing(tmp_path):
    state = tmp_path / "big"
    state.mkdir()
    (state / "a").write_bytes(b"x" * 3000)
    with pytest.raises(OverlayUnavailable) as e:
        Shadow.open(str(tmp_path / "shadows"), "r", "fs", ShadowConfig([str(state)], max_bytes=1000))
    assert e.value.code == "too_large" and "larger than the shadow limit" in e.value.reason
    assert os.listdir(tmp_path / "shadows") == []


def test_prune_removes_idle_shadows_no_process_holds(tmp_path):
    state = tmp_path / "s.txt"
    state.write_text("s")
    root = str(tmp_path / "shadows")
    held = Shadow.open(root, "held", "x", ShadowConfig([str(state)]))
    crashed = Shadow.open(root, "crashed", "x", ShadowConfig([str(state)]))
    crashed._holder.release()  # as if its process had died: the lock is gone, the folder stays
    assert prune_shadows(root, None, 3600, time.time()) == (0, 0)  # not idle yet
    assert prune_shadows(root, None, 0, time.time() + 1) == (1, 1)
    assert set(list_shadows(root)) == {"held"}
    held.release()


def test_run_keys_are_safe_and_distinct():
    assert run_key("a/b") != run_key("a_b") and "/" not in run_key("../../etc")
    assert not run_key(".hidden").startswith(".")


def test_simulation_summary_from_the_journal():
    made = {"event": "made", "created_at": 10.0, "bytes": 5, "seconds": 0.01, "limit": 100,
            "paths": [{"source": "/s", "methods": {"reflink": 2}}]}
    entries = [{"kind": "result", "tool_name": SHADOW_PREFIX + "fs", "result": made},
               {"kind": "result", "tool_name": SHADOW_PREFIX + "fs",
                "result": {"event": "closed", "bytes": 9, "removed": True, "writes": 2, "reads": 3}},
               {"kind": "result", "tool_name": SHADOW_PREFIX + "db",
                "result": {"event": "fallback", "reason": "too big", "code": "too_large", "bytes": 7, "limit": 1}},
               {"kind": "call", "tool_name": "mcp__fs__write_file"}]
    summary = simulation_summary(entries)
    db, fs = summary["shadows"]
    assert fs["paths"] == ["/s"] and fs["methods"] == {"reflink": 2} and fs["final_bytes"] == 9 and fs["removed"]
    assert db["made_at"] is None and db["fallback"]["code"] == "too_large"
    assert summary["read_your_writes"] is True and set(summary["unproven"]) == set(honesty.UNPROVEN)
    assert simulation_summary([]) == {"shadows": [], "read_your_writes": False, "unproven": {}}


# -- the reference overlay and the marking --------------------------------------------------


def test_map_overlay_reads_its_writes_and_deletions_and_records_reads():
    real = {"a": 1, "b": 2, "c": 3}
    o = MapOverlay("run", lambda k: real.get(k, ABSENT), lambda p: [k for k in real if k.startswith(p)],
                   clock=lambda: 42.0)
    assert o.get("a") == 1 and o.served_from("a") == REAL
    o.put("a", 10)
    o.put("d", 4)
    o.delete("b")
    assert (o.get("a"), o.get("b"), o.get("d"), o.get("e")) == (10, ABSENT, 4, ABSENT)
    assert o.keys() == ["a", "c", "d"]
    assert real == {"a": 1, "b": 2, "c": 3}  # the real system never changes
    reads = o.reads()
    assert [(r.what, r.source) for r in reads] == [("a", REAL), ("a", OVERLAY), ("b", OVERLAY), ("d", OVERLAY),
                                                   ("e", REAL), ("keys:", OVERLAY)]
    assert reads[0].is_basis and reads[0].fingerprint.startswith("sha256:") and reads[0].as_of == 42.0
    assert not reads[1].is_basis


def test_map_overlay_limit():
    o = MapOverlay("run", lambda k: ABSENT, max_bytes=10, size_of=len)
    o.put("k", "12345")
    with pytest.raises(OverlayUnavailable) as e:
        o.put("j", "1234567")
    assert e.value.code == "too_large" and o.get("j") is ABSENT and o.size_bytes() == 5


def test_mark_result_appends_the_note_and_keeps_the_servers_meta():
    result = {"content": [{"type": "text", "text": "42"}], "structuredContent": {"n": 42}, "isError": False,
              "_meta": {"server/key": 1}}
    meta = honesty.simulated_meta({"decision": "dry", "run_id": "r"}, {"kind": "shadow"}, "shadow", True)
    marked = honesty.mark_result(result, "a note", meta)
    assert marked["content"] == [{"type": "text", "text": "42"}, {"type": "text", "text": "a note"}]
    assert marked["structuredContent"] == {"n": 42} and marked["_meta"]["server/key"] == 1
    assert marked["_meta"]["drygate"]["simulated"] is True and marked["_meta"]["drygate"]["executed"] is False
    assert result["content"] == [{"type": "text", "text": "42"}]  # not changed in place
    assert json.dumps(marked)


@pytest.mark.skipif(not os.environ.get("DRYGATE_TEST_REFLINK_DIR"),
                    reason="set DRYGATE_TEST_REFLINK_DIR to a folder on a file system with reflinks (XFS, btrfs)")
def test_reflinks_where_the_file_system_has_them():
    import tempfile

    with tempfile.TemporaryDirectory(dir=os.environ["DRYGATE_TEST_REFLINK_DIR"]) as tmp:
        src = os.path.join(tmp, "state")
        os.makedirs(os.path.join(src, "sub"))
        for i in range(5):
            with open(os.path.join(src, "sub", f"f{i}"), "wb") as f:
                f.write(os.urandom(100_000))
        make_db(os.path.join(src, "app.db"), ("a", "b")).close()
        report = copy_state(src, os.path.join(tmp, "copy"))
        assert report.methods == {"reflink": 6} and report.reflinked
        assert keys(os.path.join(tmp, "copy", "app.db")) == ["a", "b"]
