"""Adversarial review of issue 15 (the hook at the floor): branches ``hookfloor`` and ``bashfloor``.

Each test states a property the invariants in DESIGN.md need. A test marked xfail(strict)
fails on the branch named in its reason (the defect is there); on main it passes or is
skipped because the code under review does not exist yet.
"""

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from conftest import SRC, write_policy

REVIEW_BRANCH = "bashfloor"


def _has_command_cache():
    try:
        from drygate.classifiers import command_cache  # noqa: F401
    except ImportError:
        return False
    return True


needs_command_cache = pytest.mark.skipif(not _has_command_cache(), reason="no verdict cache on this branch")


def _shell_rows(project):
    db = sqlite3.connect(str(project.state))
    try:
        return db.execute("SELECT key, effect, steps FROM verdicts WHERE key LIKE 'sh:%'").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def _corrupt_shell_rows(project, effect, steps):
    db = sqlite3.connect(str(project.state))
    try:
        db.execute("UPDATE verdicts SET effect = ?, steps = ? WHERE key LIKE 'sh:%'", (effect, steps))
        db.commit()
    finally:
        db.close()


# --- 1. the verdict cache: a cached verdict can only be as strict or stricter ------------------


@needs_command_cache
@pytest.mark.parametrize("effect", ["Write", "bookkeeping", "", "read "])
def test_a_cached_verdict_with_an_unknown_effect_is_never_served_as_a_read(sqlite_project, effect):
    """Found at bashfloor b1eaa62 (the row was served: rm -rf allowed in a dry run); fixed in f6adbd1."""
    project = sqlite_project
    write_policy(project.root, "dry")
    command = "rm -rf build"
    first = project.hook(project.event("Bash", {"command": command}))
    assert first.blocks, first.stdout  # a write in a dry run: skipped
    if not _shell_rows(project):
        pytest.skip("no shell verdict was cached")
    _corrupt_shell_rows(project, effect, json.dumps(["planted"]))
    again = project.hook(project.event("Bash", {"command": command}))
    assert again.blocks, (again.code, again.stdout, again.stderr)


@needs_command_cache
def test_a_cached_verdict_with_bad_steps_is_a_miss_not_a_guard_failure(sqlite_project):
    project = sqlite_project
    write_policy(project.root, "live")
    command = "ls -la"
    assert project.hook(project.event("Bash", {"command": command})).code == 0
    if not _shell_rows(project):
        pytest.skip("no shell verdict was cached")
    _corrupt_shell_rows(project, "read", "5")
    again = project.hook(project.event("Bash", {"command": command}))
    assert again.code == 0 and not again.blocks, (again.code, again.stdout, again.stderr)


@needs_command_cache
def test_a_cached_read_is_dry_checked_again_after_the_run_went_dry(project):
    """The mode is not in the key and must not be: the engine applies it after the classifier."""
    write_policy(project.root, "sticky", rules='[[rules]]\nid = "w"\ntool_glob = "Write"\neffect = "write"\n'
                 'dry = true\n')
    assert project.hook(project.event("Bash", {"command": "touch notes.txt"})).code == 0  # live write
    assert project.hook(project.event("Write", {"file_path": str(project.root / "a.txt"),
                                                "content": "x"})).blocks  # the run goes dry
    again = project.hook(project.event("Bash", {"command": "touch notes.txt"}))
    assert again.blocks, again.stdout


@needs_command_cache
@pytest.mark.parametrize("variant", ["rm -rf build\r", "rm -rf build\x00", "rm\u00a0-rf build", "rm -rf build "])
def test_a_command_differing_in_bytes_the_classifier_sees_is_not_a_hit_of_a_read(project, variant):
    write_policy(project.root, "dry")
    assert project.hook(project.event("Bash", {"command": "ls build"})).code == 0
    r = project.hook(project.event("Bash", {"command": variant}))
    assert r.blocks, (variant, r.stdout)


@needs_command_cache
@pytest.mark.parametrize("body", [b"\x00" * 10, b"not a database at all" * 1000])
def test_a_corrupt_store_file_still_blocks_a_cached_command(sqlite_project, body):
    project = sqlite_project
    write_policy(project.root, "live")
    assert project.hook(project.event("Bash", {"command": "ls"})).code == 0
    for suffix in ("-wal", "-shm"):
        try:
            os.unlink(str(project.state) + suffix)
        except FileNotFoundError:
            pass
    project.state.write_bytes(body)
    r = project.hook(project.event("Bash", {"command": "ls"}))
    assert r.code == 2 and r.elapsed < 10, (r.code, r.stdout, r.stderr)


# --- 5. fail closed: a store locked by another process -------------------------------------


@pytest.mark.parametrize("command", ["ls", "rm -rf build"])
def test_a_store_locked_by_another_process_blocks_a_repeated_command_with_an_alert(sqlite_project, command):
    project = sqlite_project
    write_policy(project.root, "live", extra="")
    assert project.hook(project.event("Bash", {"command": command})).code == 0  # cached now (bashfloor)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3,sys,time;db=sqlite3.connect(sys.argv[1],isolation_level=None);"
         "db.execute('BEGIN EXCLUSIVE');print('held',flush=True);time.sleep(60)", str(project.state)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = len(project.alerts())
        r = project.hook(project.event("Bash", {"command": command}))
        assert r.code == 2 and r.blocks, (r.code, r.stdout, r.stderr)
        assert r.elapsed < 8, r.elapsed  # the policy's deadline is 3 s
        assert len(project.alerts()) > before
    finally:
        holder.kill()
        holder.wait()


# --- 3. the stand-in modules never outlive the import they are for ----------------------------

_STUBS_PROBE = r"""
import sys
from drygate.classifiers import bash_parser
root = bash_parser.parse("ls -la | grep x")
from drygate.state.sqlite import SQLiteStore
a = SQLiteStore(sys.argv[1]); b = SQLiteStore(sys.argv[1])
for store in (a, b, a):
    store.initialize() if hasattr(store, "initialize") else None
import re, enum, functools, threading
assert re.compile("a+").match("aa") and issubclass(enum.IntEnum, enum.Enum) and functools.partial
assert functools.lru_cache(2)(lambda x: x)(3) == 3
import sqlite3
db = sqlite3.connect(":memory:")
for i in range(200):
    db.execute("SELECT ?", (i,)).fetchone()
for name in ("re", "enum", "functools"):
    for mod_name, mod in list(sys.modules.items()):
        held = getattr(mod, name, None) if mod is not None else None
        if isinstance(held, type(sys)) and held is not sys.modules[name]:
            raise SystemExit(f"{mod_name}.{name} is a stand-in")
try:
    from tree_sitter._binding import Language, Query, QueryCursor
    import tree_sitter_bash._binding as tb
except ImportError:
    pass
else:
    q = Query(Language(tb.language()), '((command_name) @n (#match? @n "^l"))')
    assert QueryCursor(q).captures(root)["n"]
t = threading.Thread(target=lambda: SQLiteStore(sys.argv[1]).close()); t.start(); t.join()
print("ok")
"""


def test_the_stand_in_modules_do_not_outlive_their_import(tmp_path):
    from drygate.integrity import initialize_store

    path = str(tmp_path / "state.db")
    initialize_store(path)
    proc = subprocess.run([sys.executable, "-I", "-c", "import sys;sys.path.insert(0, sys.argv[2]);" + _STUBS_PROBE,
                           path, str(SRC)], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "ok", proc.stderr


def test_tree_sitters_log_type_stays_an_enum_after_drygate_loads_it():
    """Found at bashfloor (LogType built by the enum stand-in, an int class for the process's life);
    fixed in fix15 (bash_parser._LazyIntEnum: the real IntEnum on first access)."""
    code = ("import sys;sys.path.insert(0, sys.argv[1]);from drygate.classifiers import bash_parser;"
            "bash_parser.parse('ls');from tree_sitter._binding import LogType;"
            "print(LogType.PARSE.name, len(list(LogType)))")
    proc = subprocess.run([sys.executable, "-I", "-c", code, str(SRC)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.split()[0] == "PARSE", proc.stderr[-500:]


def test_a_long_lived_process_keeps_sqlites_statement_cache():
    """The relay, the SDK callback and the Python API must keep the normal statement cache."""
    for first in ("import drygate.api", "import drygate.gate", "import drygate.relay"):
        code = ("import sys, gc;sys.path.insert(0, sys.argv[1]);" + first +
                ";import _sqlite3;c=_sqlite3.connect(':memory:');"
                "print(any(type(r).__name__=='_lru_cache_wrapper' for r in gc.get_referents(c)))")
        proc = subprocess.run([sys.executable, "-c", code, str(SRC)], capture_output=True, text=True, timeout=60)
        assert proc.stdout.strip() == "True", (first, proc.stdout, proc.stderr[-500:])


def test_a_cached_sql_verdict_with_an_unknown_effect_is_never_served_as_a_read(sqlite_project):
    """Found on main (pre-existing: classify_sql served any cached effect, psql -c 'DELETE ...' allowed
    in a dry run); fixed in fix15 (a row whose effect is not one of sql.EFFECTS is a miss)."""
    project = sqlite_project
    write_policy(project.root, "dry")
    command = 'psql -c "DELETE FROM accounts WHERE id = 7"'
    assert project.hook(project.event("Bash", {"command": command})).blocks
    db = sqlite3.connect(str(project.state))
    try:
        changed = db.execute("UPDATE verdicts SET effect = 'bookkeeping' WHERE key LIKE 'sql:%'").rowcount
        db.execute("DELETE FROM verdicts WHERE key LIKE 'sh:%'")  # bashfloor: reach the SQL cache
        db.commit()
    finally:
        db.close()
    assert changed
    again = project.hook(project.event("Bash", {"command": command}))
    assert again.blocks, (again.code, again.stdout, again.stderr)


# --- 2. plainly_reads: only a line bash reads the same way may skip the shell reading -----------


@pytest.mark.parametrize("space", ["\u2003", "\x1c", "\u00a0"])
def test_a_word_bash_does_not_split_is_not_a_plain_reader(project, space):
    """Found on main (pre-existing: plainly_reads split words with str.split()); fixed in fix15
    (only ASCII text with no control character but tab and newline, and no # inside a word)."""
    write_policy(project.root, "live")
    r = project.hook(project.event("Bash", {"command": f"cat{space}x drygate.toml"}))
    assert r.blocks, (repr(space), r.code, r.stdout)


# --- 5. fail closed on Redis: a paused server, a cached and an uncached command ----------------


@pytest.mark.parametrize("cached", [True, False], ids=["cached", "first-time"])
def test_a_paused_redis_blocks_a_bash_command_in_time_with_an_alert(redis_factory, tmp_path, cached):
    from test_redis_faults import DEADLINE_MS, RedisProject, assert_blocked, initialize

    server = redis_factory()
    url = server.url()
    initialize(url)
    project = RedisProject(tmp_path / "app", url)
    command = {"command": "ls -la"}
    if cached:
        first = project.pre("Bash", command)
        assert first.code == 0 and not first.blocks, (first.code, first.stdout, first.stderr)
    server.pause()
    try:
        r = project.pre("Bash", command)
    finally:
        server.resume()
    assert_blocked(project, r, {"store_timeout", "deadline", "store_unavailable"})
    assert r.elapsed < DEADLINE_MS / 1000 + 1.5, r.elapsed


# --- 1b. the nested SQL cache under the shell cache: a changed classifier never reads an old verdict --

_SQL_PROBE = r"""
import sys
sys.path.insert(0, sys.argv[1])
from drygate.state.sqlite import SQLiteStore
from drygate.classifiers import shell
store = SQLiteStore(sys.argv[2])
policy = {"hash": "a" * 64, "commands": {}, "http_rules": (), "_verdict_store": store}
print(shell.classify_command_verdict(sys.argv[3], policy).effect)
store.close()
"""


def test_a_changed_sql_classifier_does_not_read_the_old_sql_verdict(tmp_path):
    """Found on main (pre-existing: the SQL key was RULES_VERSION, dialect and text); fixed in fix15
    (command_cache.stamped_key: the classifier's code stamp is in the key)."""
    import shutil

    from drygate.integrity import initialize_store

    copy = tmp_path / "src"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    state = str(tmp_path / "state.db")
    initialize_store(state)
    command = 'psql -c "SELECT id, name FROM accounts JOIN owners USING (id) WHERE id IN (SELECT id FROM x)"'

    def effect():
        proc = subprocess.run([sys.executable, "-c", _SQL_PROBE, str(copy), state, command], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-800:]
        return proc.stdout.strip()

    assert effect() == "read"
    target = copy / "drygate" / "classifiers" / "sql.py"
    text = target.read_text()
    patched = text.replace("def _classify_sql(text, dialect):\n",
                           "def _classify_sql(text, dialect):\n    return unknown('the rules changed')\n", 1)
    assert patched != text
    target.write_text(patched)
    assert effect() == "unknown"  # the changed classifier's own verdict


# --- 4. the lazy walk of drygate's package: a change between two calls of a run is still caught ----

from test_integrity import _read, assert_run_blocked, installed_copy  # noqa: E402,F401 (fixture)


@pytest.mark.parametrize("how", ["same-size-edit-mtime-restored", "nested-new-folder", "rename-over"])
def test_a_change_to_drygates_code_between_calls_blocks_the_next_call(installed_copy, how):
    project, root = installed_copy
    assert _read(project).code == 0
    assert _read(project).code == 0  # hookfloor: this call does not walk the package
    assert _read(project).code == 0
    module = root / "drygate" / "engine.py"
    if how == "same-size-edit-mtime-restored":
        st = module.stat()
        text = module.read_text()
        module.write_text(text.replace("Pure logic.", "Pure LOGIC.", 1))
        assert module.stat().st_size == st.st_size
        os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert_run_blocked(project, _read(project), module, "changed")
    elif how == "nested-new-folder":
        folder = root / "drygate" / "classifiers" / "data" / "extra"
        folder.mkdir()
        (folder / "planted.py").write_text("X = 1\n")
        assert_run_blocked(project, _read(project), root / "drygate" / "classifiers" / "data", "added")
    else:
        tmp = module.with_name("engine.py.tmp")
        tmp.write_text(module.read_text() + "\n# replaced\n")
        os.replace(tmp, module)
        r = _read(project)
        assert r.blocks, (r.code, r.stdout)
