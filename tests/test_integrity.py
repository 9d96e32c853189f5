"""The line that does not read the command (drygate.integrity), through the installed hook command.

Each attack is simulated as a command the classifier missed would make it: the test writes
the file itself, behind the gate's back, between two hook calls of one run. Then:

- the rest of that run is blocked (every later call, reads included, exits 2 with a deny)
  and a tamper alert names the file and what changed;
- a new run after a legitimate edit works, and `drygate doctor` shows the change;
- the SQLite store: the hook never creates one; a store that is gone, replaced or put back
  from an older copy fails closed (deny + guard-failure alert) and a sticky run that had
  gone dry never becomes live; `drygate state init --recover HOURS` restores service;
- item 9: the hook's own folders come after the standard library on sys.path, a Write of a
  shadowing module into them is denied, and one planted by other means blocks the run
  instead of answering ``{}``.
"""

import json
import os
import shutil
import sqlite3

import pytest

from conftest import R2_DRY_D1_LIVE, SESSION, SRC, Project, write_policy

NEW_RUN = "5e1f0c11-aaaa-4bbb-8ccc-0123456789ab"


def _read(project, session=SESSION, **env):
    return project.hook(project.event("Read", {"file_path": str(project.root / "README.md")}, session=session), **env)


def _tamper_alerts(project):
    return [a for a in project.alerts() if a["kind"] == "tamper" and a["cause"] == "integrity"]


def assert_run_blocked(project, r, path, what):
    assert r.code == 2, (r.code, r.stdout, r.stderr)
    body = json.loads(r.stdout)
    assert body["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert str(path) in r.stderr and what in r.stderr, r.stderr
    alert = _tamper_alerts(project)[-1]
    assert str(path) in alert["reason"] and what in alert["reason"]
    assert alert["category"] == "agent"


# --- settings layers and the policy --------------------------------------------------------


def _change_settings(project):
    path = project.root / ".claude" / "settings.json"
    settings = json.loads(path.read_text())
    settings["hooks"] = {}  # the gate switched off, as `let 'a[$(echo {} > ...)]=1'` did
    path.write_text(json.dumps(settings))
    return path, "content changed"


def _create_local_settings(project):
    path = project.root / ".claude" / "settings.local.json"
    path.write_text('{"disableAllHooks": true}')
    return path, "it appeared"


def _change_policy(project):
    path = project.root / "drygate.toml"
    path.write_text(path.read_text() + '\n[[rules]]\ntool_regex = ".*"\neffect = "read"\n')
    return path, "content changed"


def _delete_policy(project):
    path = project.root / "drygate.toml"
    path.unlink()
    return path, "deleted"


@pytest.mark.parametrize("change", [_change_settings, _create_local_settings, _change_policy, _delete_policy])
def test_a_change_behind_the_gate_blocks_the_rest_of_the_run(project, change):
    write_policy(project.root, "live")
    assert _read(project).code == 0
    assert project.hook(project.event("Bash", {"command": "ls"})).code == 0
    path, what = change(project)
    r = _read(project)
    if change is _delete_policy:  # no policy: a guard failure first (the policy cannot load)
        assert r.code == 2
        write_policy(project.root, "live", rules='[[rules]]\ntool_regex = ".*"\neffect = "read"\n')  # another one
        path, what = project.root / "drygate.toml", "content changed"
        r = _read(project)
    assert_run_blocked(project, r, path, what)
    # every later call of that run: also blocked, also a plain read, also after the file is put back
    r = project.hook(project.event("Bash", {"command": "ls"}))
    assert_run_blocked(project, r, path, what)
    entry = project.journal()[-1]
    assert entry["action"] == "deny" and entry["tamper"] and entry["rule_id"] == "integrity"


def test_a_new_run_takes_a_legitimately_edited_policy_and_doctor_shows_the_change(sqlite_project):
    project = sqlite_project
    write_policy(project.root, "live")
    assert _read(project).code == 0
    write_policy(project.root, "live", rules='[[rules]]\ntool = "mcp__x__y"\neffect = "write"\n')  # between runs
    checks = {c["check"]: c for c in json.loads(project.cli("doctor", "--json").stdout)}
    changed = checks["changed since the last run"]
    assert changed["status"] == "warn" and "drygate.toml" in changed["detail"], changed
    r = _read(project, session=NEW_RUN)
    assert r.code == 0 and r.stdout.strip() == "{}"
    assert project.hook(project.event("Bash", {"command": "ls"}, session=NEW_RUN)).code == 0
    assert not _tamper_alerts(project)
    checks = {c["check"]: c for c in json.loads(project.cli("doctor", "--json").stdout)}
    assert checks["changed since the last run"]["status"] == "ok"


def test_what_is_not_a_change_does_not_block(sqlite_project):
    """Not fought: a file saved unchanged (new mtime), a permission rule the host writes when a
    person answers "always allow", and drygate's own write (`drygate install claude-code`)."""
    project = sqlite_project
    write_policy(project.root, "live")
    assert _read(project).code == 0
    policy = project.root / "drygate.toml"
    policy.write_text(policy.read_text())  # saved unchanged
    local = project.root / ".claude" / "settings.local.json"
    local.write_text(json.dumps({"permissions": {"allow": ["Bash(ls:*)"]}}))  # the host's first "always allow"
    assert _read(project).code == 0
    local.write_text(json.dumps({"permissions": {"allow": ["Bash(ls:*)", "Read"], "ask": ["Bash(rm:*)"]}}))
    assert _read(project).code == 0
    project.cli("install", "claude-code")  # drygate's own write of settings.json, mid-run
    assert _read(project).code == 0
    assert not _tamper_alerts(project)
    # ... while anything else in the same layer is a change
    local.write_text(json.dumps({"permissions": {"allow": ["Read"]}, "env": {"DRYGATE_MODE": "live"}}))
    assert_run_blocked(project, _read(project), local, "content changed")


# --- drygate's own code and environment (item 9) -----------------------------------------


@pytest.fixture
def installed_copy(sqlite_project, tmp_path):
    """The project's hook running drygate from a copy of its code (a folder the test may change)."""
    from drygate.enforcement.install import hook_command, import_roots

    root = tmp_path / "install"
    shutil.copytree(SRC / "drygate", root / "drygate", ignore=shutil.ignore_patterns("__pycache__"))
    roots = import_roots()
    command = hook_command(roots=[str(root), *roots[1:]])
    sqlite_project.command = command
    write_policy(sqlite_project.root, "live")
    return sqlite_project, root


def test_a_changed_module_blocks_the_run(installed_copy):
    project, root = installed_copy
    assert _read(project).code == 0
    assert project.hook(project.event("Bash", {"command": "psql -c 'SELECT 1'"})).code == 0  # loads the parsers
    module = root / "drygate" / "classifiers" / "http.py"
    module.write_text(module.read_text() + "\n# changed\n")
    assert_run_blocked(project, _read(project), module, "content changed")


@pytest.mark.parametrize("folder", [(), ("classifiers",), ("relay",)])
def test_a_module_added_to_the_package_blocks_the_run(installed_copy, folder):
    # A hook process walks drygate's package only when a path the run saw changed (fp.check's
    # ``package``): the folder's own stat must catch a file added between two calls.
    project, root = installed_copy
    assert _read(project).code == 0
    assert _read(project).code == 0  # nothing changed: this call did not walk the package
    target = root.joinpath("drygate", *folder)
    (target / "planted.py").write_text("ANSWER = '{}'\n")
    assert_run_blocked(project, _read(project), target, "entries were added")


def test_the_package_is_walked_only_when_the_run_needs_it(tmp_path, monkeypatch):
    from drygate import integrity as fp
    from drygate.state.memory import MemoryStore

    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "a.py").write_text("A = 1\n")
    (package / "sub" / "b.py").write_text("B = 1\n")
    layer = tmp_path / "settings.json"
    layer.write_text("{}")
    monkeypatch.setattr(fp, "package_root", lambda: str(package))
    monkeypatch.setattr(fp, "_PACKAGE", None)
    walks = []

    def walk():
        walks.append(1)
        monkeypatch.setattr(fp, "_PACKAGE", None)
        return fp.package_paths()

    store, paths = MemoryStore(), {str(layer): "s"}
    assert fp.check(store, "r", paths, package=walk) is None and len(walks) == 1  # first call: taken
    assert str(package / "sub" / "b.py") in store.fingerprints("r")
    assert fp.check(store, "r", paths, package=walk) is None and len(walks) == 1  # unchanged: not walked
    layer.write_text("{}")  # touched, same content: not a change, but walked again
    os.utime(layer, ns=(1, 1))
    assert fp.check(store, "r", paths, package=walk) is None and len(walks) == 2
    (package / "sub" / "c.py").write_text("C = 1\n")
    reason = fp.check(store, "r", paths, package=walk)
    assert reason and str(package / "sub") in reason and "entries were added" in reason
    assert fp.check(store, "other", paths) is None  # another run without the package: nothing walked
    assert str(package) not in store.fingerprints("other") and len(walks) == 2  # the block came first


@pytest.mark.parametrize("name", ["keyword.py", "enum.py", "os.py", "sqlglot.py"])
def test_a_planted_shadowing_module_blocks_instead_of_answering_allow(installed_copy, name):
    project, root = installed_copy
    assert _read(project).code == 0
    # What a misread command could plant: a module that answers "allow" for every call.
    (root / name).write_text('import os\nos.write(1, b"{}\\n")\nos._exit(0)\n')
    r = project.hook(project.event("Write", {"file_path": str(project.root / "x.txt"), "content": "x"}))
    assert_run_blocked(project, r, root, "entries were added")
    assert not (project.root / "x.txt").exists()


def test_a_write_of_a_shadowing_module_into_the_hooks_folders_is_denied(sqlite_project):
    from drygate.enforcement.install import import_roots

    project = sqlite_project
    write_policy(project.root, "live")
    for folder in import_roots():
        for tool, field in (("Write", "file_path"), ("Edit", "file_path")):
            target = os.path.join(folder, "keyword.py")
            r = project.hook(project.event(tool, {field: target, "content": "x", "old_string": "a",
                                                  "new_string": "b"}))
            assert r.code == 2 and "protects the gate" in r.stderr, (folder, r.stderr)
            assert not os.path.exists(target)


def test_the_hooks_folders_come_after_the_standard_library(sqlite_project):
    import subprocess

    command = sqlite_project.command
    code = command.split(" -c ", 1)[1].split(" claude-code", 1)[0]
    probe = code.strip("'").replace("'\"'\"'", "'").split(";from drygate")[0] + ";print(repr(sys.path))"
    python = command.split(" ", 1)[0].removeprefix("out=$(")  # the wrapper holds the hook's stdout
    out = subprocess.run([python, "-I", "-S", "-c", probe], capture_output=True, text=True, check=True).stdout
    path = eval(out)  # noqa: S307 - our own repr of a list of str
    stdlib = os.path.dirname(os.__file__)
    assert path.index(stdlib) < min(path.index(r) for r in path if r.endswith("site-packages") or r == str(SRC))


# --- the SQLite store's marker and record (item 12) ---------------------------------------


def _go_dry(project):
    write_policy(project.root, "sticky", rules=R2_DRY_D1_LIVE)
    assert project.hook(project.event("Read", {"file_path": "x"})).code == 0
    r = project.hook(project.event("mcp__r2__put_object", {"bucket": "b", "key": "k"}))
    assert r.code == 2 and "DRY RUN" in r.stderr
    r = project.hook(project.event("mcp__d1__query", {"sql": "DELETE FROM t"}))
    assert r.code == 2 and "DRY RUN" in r.stderr  # sticky: the live-scope write is dry too


def _guard_blocked(project, r, words):
    assert r.code == 2, (r.code, r.stdout, r.stderr)
    assert json.loads(r.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert words in r.stderr, r.stderr
    alert = project.alerts()[-1]
    assert alert["kind"] == "guard_failure" and alert["cause"] == "store_unavailable"


def _delete_store(project):
    for f in project.state.parent.glob("state.db*"):
        f.unlink()
    return "is gone"


def _replace_store(project):
    other = Project(project.root.parent / "other")
    write_policy(other.root, "live")
    assert other.hook(other.event("Read", {"file_path": "x"})).code == 0
    src = sqlite3.connect(other.state)
    copy = project.state.parent / "replacement.db"
    dst = sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    _delete_store(project)
    os.replace(copy, project.state)
    return "was replaced"


def _empty_store(project):
    _delete_store(project)
    sqlite3.connect(project.state).execute("CREATE TABLE x (y)").connection.close()
    return "no drygate marker"


@pytest.mark.parametrize("attack", [_delete_store, _replace_store, _empty_store])
def test_a_store_gone_or_replaced_fails_closed_and_a_dry_run_never_turns_live(sqlite_project, attack):
    project = sqlite_project
    _go_dry(project)
    words = attack(project)
    for event in (project.event("mcp__d1__query", {"sql": "DELETE FROM t"}), project.event("Read", {"file_path": "x"}),
                  project.event("mcp__d1__query", {"sql": "DELETE FROM t"}, session=NEW_RUN)):
        _guard_blocked(project, project.hook(event), words)
    if attack is _delete_store:
        assert not project.state.exists()  # the hook never creates a store
    r = project.cli("state", "init", check=False)  # a plain init refuses: it cannot know which runs were dry
    assert r.returncode == 1 and "--recover" in r.stderr
    _guard_blocked(project, project.hook(project.event("Read", {"file_path": "x"})), words)
    project.cli("state", "init", "--recover", "1")
    assert project.hook(project.event("Read", {"file_path": "x"})).code == 0
    for session in (SESSION, NEW_RUN):  # every run is dry for the recovery window
        r = project.hook(project.event("mcp__d1__query", {"sql": "DELETE FROM t"}, session=session))
        assert r.code == 2 and "DRY RUN" in r.stderr, r.stderr


def test_an_older_copy_put_back_fails_closed(sqlite_project):
    project = sqlite_project
    write_policy(project.root, "sticky", rules=R2_DRY_D1_LIVE)
    assert project.hook(project.event("Read", {"file_path": "x"})).code == 0
    backup = project.root / "backup.db"
    src, dst = sqlite3.connect(project.state), sqlite3.connect(backup)
    src.backup(dst)
    src.close()
    dst.close()
    _go_dry(project)
    # put the old copy back in place (same file, same inode, same marker): the run was live then
    for suffix in ("-wal", "-shm"):
        if os.path.exists(str(project.state) + suffix):
            os.unlink(str(project.state) + suffix)
    with open(project.state, "r+b") as f:
        data = backup.read_bytes()
        f.write(data)
        f.truncate(len(data))
    _guard_blocked(project, project.hook(project.event("mcp__d1__query", {"sql": "DELETE FROM t"})), "is older")
    project.cli("state", "init", "--recover", "0.5")
    r = project.hook(project.event("mcp__d1__query", {"sql": "DELETE FROM t"}))
    assert r.code == 2 and "DRY RUN" in r.stderr


def test_the_hook_never_creates_a_store(tmp_path):
    project = Project.__new__(Project)  # hooks installed, no `drygate init`
    from drygate.enforcement.install import install_claude_code

    project.root, project.store_url = tmp_path / "fresh", None
    project.root.mkdir()
    install_claude_code(project.root)
    project.command = json.loads((project.root / ".claude" / "settings.json").read_text())[
        "hooks"]["PreToolUse"][0]["hooks"][0]["command"]
    write_policy(project.root, "live")
    _guard_blocked(project, _read(project), "drygate init")
    assert not project.state.exists()
    project.cli("init")
    assert _read(project).code == 0


def test_state_info_shows_marker_and_record(sqlite_project):
    info = json.loads(sqlite_project.cli("state", "info", "--json").stdout)
    assert info["initialized"] and info["record"]["store_id"] == info["marker"]["store_id"]
    assert info["identity"] == "matches this machine's record"


def test_a_forged_policy_cache_does_not_replace_the_policy(sqlite_project):
    """The policy cache's key is the policy file's stat fields, which anyone can copy: a cache
    compiled from another policy, with the right key, must not be used."""
    import marshal

    from drygate.policy.load import compile_policy_text

    project = sqlite_project
    write_policy(project.root, "dry")
    assert project.hook(project.event("Write", {"file_path": "x", "content": "x"})).code == 2
    cache = project.root / ".drygate" / "policy.cache"
    key, real = marshal.loads(cache.read_bytes())
    forged = compile_policy_text('[run]\nmode = "live"\n[[rules]]\ntool_regex = ".*"\neffect = "read"\n')
    cache.write_bytes(marshal.dumps((key, {k: v for k, v in forged.items() if not k.startswith("_")})))
    r = project.hook(project.event("Write", {"file_path": "x", "content": "x"}, session=NEW_RUN))
    assert r.code == 2 and "DRY RUN" in r.stderr, r.stderr
    assert not (project.root / "x").exists()
