"""Read-your-writes for Claude Code's own file tools in a dry run (drygate.file_shadow).

Every test runs the real installed hook command (``project`` fixture: SQLite and
Redis stores). What the real CLI does before the hook (it checks an Edit against the
file on disk) is covered in tests/e2e/test_file_shadow_e2e.py; here the hook gets the
events a host that let them through would send, so the shadow's own rules are tested.
"""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from conftest import SESSION, SRC, write_policy

from drygate.file_shadow import RunShadow, run_id_of, run_key, run_shadows, shadows_root
from drygate.file_tools import simulate_file_tool

OTHER = "7e1f3a20-1111-4c2b-8d3e-5a6b7c8d9e0f"


def dry(project):
    write_policy(project.root, "dry")
    return project


def reason(result):
    """The text the agent gets for a blocked call (the deny JSON's reason)."""
    return result.json["hookSpecificOutput"]["permissionDecisionReason"]


def call(project, tool, tool_input, session=SESSION):
    return project.hook(project.event(tool, tool_input, session=session))


def post_read(project, path, session=SESSION, **extra):
    """The PostToolUse event of a Read the host served from the real file."""
    ev = project.event("Read", {"file_path": str(path), **extra}, session=session, hook_event_name="PostToolUse",
                       tool_response={"type": "text", "file": {"filePath": str(path), "content": "(real)"}})
    return project.hook(ev, command=project.post_command)


def context(result):
    assert result.code == 0, (result.stdout, result.stderr)
    body = result.json
    return body.get("hookSpecificOutput", {}).get("additionalContext") if body else None


def changes(project, run_id=SESSION):
    return {c["path"]: c for c in project.plan(run_id)["file_changes"]}


# ---------------------------------------------------------------------------- the rules

def test_edit_rules_follow_the_host():
    """The rules measured with the real CLI (README): an empty old_string creates a missing
    or empty file only; old_string equal to new_string is refused."""
    assert simulate_file_tool("Edit", {"old_string": "", "new_string": "x"}, None) == ("x", None)
    assert simulate_file_tool("Edit", {"old_string": "", "new_string": "x"}, "") == ("x", None)
    assert "already exists" in simulate_file_tool("Edit", {"old_string": "", "new_string": "x"}, "y")[1]
    assert "the same" in simulate_file_tool("Edit", {"old_string": "a", "new_string": "a"}, "a")[1]
    assert simulate_file_tool("Edit", {"old_string": "a", "new_string": "b"}, None)[1] == \
        "the file to edit does not exist"
    assert simulate_file_tool("MultiEdit", {"edits": [{"old_string": "a", "new_string": "b"},
                                                      {"old_string": "b", "new_string": "c"}]}, "a") == ("c", None)


@pytest.mark.parametrize("run_id", [SESSION, "run-1", "../../etc", "a/b", ".hidden", "ünï code", "%41", "",
                                    "x" * 300, "x" * 299 + "y"])
def test_run_keys_are_one_safe_folder_name(run_id):
    key = run_key(run_id)
    assert "/" not in key and key not in (".", "..") and not key.startswith(".") and len(key) <= 200
    if len(run_id) < 200:
        assert run_id_of(key) == run_id
    else:  # cut, unique by a hash, and not mistaken for another run's key
        assert run_id_of(key) is None and key != run_key(run_id[:-1] + "z")


# ---------------------------------------------------------------------- read-your-writes

def test_write_then_edit_in_a_dry_run(project):
    dry(project)
    target = project.root / "notes" / "todo.md"
    w = call(project, "Write", {"file_path": str(target), "content": "# todo\n- buy milk\n"})
    assert w.blocks and w.code == 2
    assert "NOT EXECUTED" in reason(w) and "the file would be created (18 bytes)" in reason(w)
    e = call(project, "Edit", {"file_path": str(target), "old_string": "milk", "new_string": "oat milk"})
    assert e.blocks and e.code == 2
    text = reason(e)
    assert "NOT EXECUTED" in text
    assert "simulated on this run's shadow copy" in text.lower()
    assert "the edit would apply (the text occurs once)" in text
    assert not target.exists() and not target.parent.exists()  # the real file system is untouched
    change = changes(project)[str(target)]
    assert change["before"] == "absent" and change["after"] == "exists" and change["steps"] == [1, 2]
    assert "+- buy oat milk\n" in change["diff"] and "--- /dev/null" in change["diff"]
    assert change["shadow"] == {"real_changed_since_run": False, "same_as_run": True}
    # The terminal view and the saved plan carry the same diff.
    shown = project.cli("plan", SESSION).stdout
    assert "File changes" in shown and "+- buy oat milk" in shown
    saved = project.cli("plan", SESSION, "--out", str(project.root.parent / "plan.json"), "--json").stdout
    saved_change = json.loads(saved)["file_changes"][0]
    assert saved_change["diff"] == change["diff"]
    assert "+- buy oat milk" in project.cli("plan", str(project.root.parent / "plan.json")).stdout
    assert "+- buy oat milk" not in project.cli("plan", SESSION, "--no-diff").stdout


def test_an_edit_of_text_only_the_runs_dry_write_made(project):
    dry(project)
    target = project.root / "config.ini"
    target.write_text("[server]\nport = 80\n")
    before = target.stat()
    call(project, "Write", {"file_path": str(target), "content": "[server]\nport = 80\nhost = old\n"})
    e = call(project, "Edit", {"file_path": str(target), "old_string": "host = old", "new_string": "host = new"})
    assert "the edit would apply (the text occurs once)" in reason(e) and "NOT EXECUTED" in reason(e)
    e2 = call(project, "Edit", {"file_path": str(target), "old_string": "port = 80", "new_string": "port = 8080"})
    assert "the edit would apply" in reason(e2)
    assert target.read_text() == "[server]\nport = 80\n"
    assert (target.stat().st_mtime_ns, target.stat().st_ino) == (before.st_mtime_ns, before.st_ino)
    diff = changes(project)[str(target)]["diff"]
    assert "-port = 80\n" in diff and "+port = 8080\n" in diff and "+host = new\n" in diff
    # A Read is served by the host from the real file; the run's version comes after it.
    ctx = context(post_read(project, target))
    assert "host = new" in ctx and "port = 8080" in ctx and "NOT EXECUTED" in ctx


def test_an_edit_that_would_fail(project):
    dry(project)
    target = project.root / "app.py"
    target.write_text("x = 1\ny = 1\n")
    call(project, "Write", {"file_path": str(target), "content": "x = 2\n"})
    e = call(project, "Edit", {"file_path": str(target), "old_string": "y = 1", "new_string": "y = 2"})
    assert e.blocks and e.code == 2
    text = reason(e)
    assert "NOT EXECUTED" in text
    assert "the edit would FAIL: the text to replace is not in the file (as this run left it)" in text
    twice = call(project, "Write", {"file_path": str(target), "content": "a\na\n"})
    assert "the file would be replaced" in reason(twice)
    amb = call(project, "Edit", {"file_path": str(target), "old_string": "a", "new_string": "b"})
    assert "would FAIL: the text to replace occurs 2 times" in reason(amb)
    missing = call(project, "Edit", {"file_path": str(project.root / "nope.txt"), "old_string": "a",
                                     "new_string": "b"})
    assert "would FAIL: the file to edit does not exist" in reason(missing)
    assert target.read_text() == "x = 1\ny = 1\n"
    change = changes(project)[str(target)]
    assert [p["step"] for p in change["problems"]] == [2, 4]
    assert change["diff"].endswith("-x = 1\n-y = 1\n+a\n+a\n")
    assert project.alerts() == []  # a failing simulation is the agent's problem, not the gate's


def test_two_runs_in_parallel_see_only_their_own_writes(project):
    # Two agents' hooks race on one store; on a CI machine busy with other tests a durable
    # commit (fsync) can stall for seconds, so this test gives the gate its longest deadline:
    # it is about the shadows, not about the store's speed (a stall would block, fail closed).
    (project.root / "drygate.toml").write_text('[run]\nmode = "dry"\n\n[gate]\ndeadline_ms = 20000\n')
    # One call first, as in a session, so the two racing agents do not also race to create
    # the state store (two processes creating a fresh SQLite file at once can fail closed
    # with "database is locked": a known first-use race, noted on issue 7).
    assert project.hook(project.event("Read", {"file_path": "warm-up"})).code == 0
    target = project.root / "shared.txt"
    target.write_text("count = 0\n")
    answers = {}

    def agent(session, value):
        """Write count = value, then increment it twice with Edits (read-modify-write)."""
        got = [call(project, "Write", {"file_path": str(target), "content": f"count = {value}\n"}, session=session)]
        for i in (1, 2):
            got.append(call(project, "Edit", {"file_path": str(target), "old_string": f"count = {value + i - 1}",
                                              "new_string": f"count = {value + i}"}, session=session))
        answers[session] = got

    threads = [threading.Thread(target=agent, args=(SESSION, 10)), threading.Thread(target=agent, args=(OTHER, 50))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for session in (SESSION, OTHER):
        for r in answers[session]:
            assert r.code == 2 and "NOT EXECUTED" in reason(r), r.stdout
        assert all("would apply" in reason(r) for r in answers[session][1:]), [reason(r) for r in answers[session]]
    assert "count = 12" in context(post_read(project, target, session=SESSION))
    assert "count = 52" in context(post_read(project, target, session=OTHER))
    assert changes(project, SESSION)[str(target)]["diff"].endswith("-count = 0\n+count = 12\n")
    assert changes(project, OTHER)[str(target)]["diff"].endswith("-count = 0\n+count = 52\n")
    assert target.read_text() == "count = 0\n"


def test_a_read_of_a_file_only_the_run_made_is_answered_from_the_shadow(project):
    dry(project)
    target = project.root / "new.txt"
    call(project, "Write", {"file_path": str(target), "content": "".join(f"line {i}\n" for i in range(1, 6))})
    r = call(project, "Read", {"file_path": str(target), "offset": 2, "limit": 2})
    assert r.blocks  # the host would say the file does not exist: the block carries the run's version
    text = reason(r)
    assert "does not exist on disk" in text and "NOT EXECUTED" in text
    assert "     2\tline 2\n     3\tline 3" in text and "line 4" not in text and "(lines 2-3 of 5)" in text
    # Another run, and a file the run did not write, are read by the host as usual.
    assert not call(project, "Read", {"file_path": str(target)}, session=OTHER).blocks
    assert not call(project, "Read", {"file_path": str(project.root / "other.txt")}).blocks
    assert context(post_read(project, project.root / "other.txt")) is None


def test_a_live_run_keeps_no_shadow(project):
    write_policy(project.root, "live")
    r = call(project, "Write", {"file_path": str(project.root / "a.txt"), "content": "x"})
    assert r.code == 0 and r.json == {}
    assert not os.path.exists(shadows_root(str(project.root)))


def test_a_file_drygate_cannot_read_as_text_is_not_simulated(project):
    dry(project)
    target = project.root / "blob.bin"
    target.write_bytes(b"\xff\xfe\x00binary")
    e = call(project, "Edit", {"file_path": str(target), "old_string": "binary", "new_string": "x"})
    assert e.code == 2 and "NOT EXECUTED" in reason(e)
    assert "could not simulate it" in reason(e) and "not UTF-8 text" in reason(e)
    w = call(project, "Write", {"file_path": str(target), "content": "text now\n"})
    assert "the file would be written (9 bytes)" in reason(w)
    e2 = call(project, "Edit", {"file_path": str(target), "old_string": "now", "new_string": "then"})
    assert "the edit would apply" in reason(e2)
    assert target.read_bytes() == b"\xff\xfe\x00binary"
    change = changes(project)[str(target)]
    assert change["diff"] is None and "not UTF-8" in change["note"]
    assert project.alerts() == []


# ------------------------------------------------------------------------- fail closed

def _assert_blocked_with_alert(project, result):
    assert result.code == 2 and result.decision == "deny", (result.stdout, result.stderr)
    assert "guard failure" in reason(result) and "NOT executed" in reason(result)
    alerts = [a for a in project.alerts() if a.get("kind") == "guard_failure"]
    assert alerts and alerts[-1]["cause"] == "shadow", alerts


def test_a_corrupt_shadow_folder_blocks_and_alerts(project):
    dry(project)
    root = shadows_root(str(project.root))
    os.makedirs(os.path.dirname(root), exist_ok=True)
    with open(root, "w") as f:  # the shadows folder is a file
        f.write("not a folder")
    _assert_blocked_with_alert(project, call(project, "Write", {"file_path": str(project.root / "a"), "content": "x"}))


def test_a_corrupt_shadow_copy_blocks_and_alerts(project):
    dry(project)
    target = project.root / "a.txt"
    call(project, "Write", {"file_path": str(target), "content": "hello\n"})
    copy = RunShadow(shadows_root(str(project.root)), SESSION).mirror("files", str(target))
    with open(copy, "wb") as f:
        f.write(b"\xff\xfe not utf-8")
    _assert_blocked_with_alert(project, call(project, "Edit", {"file_path": str(target), "old_string": "hello",
                                                                "new_string": "bye"}))
    # A Read's context after the host's result fails closed too (a block, with an alert).
    r = post_read(project, target)
    assert r.code == 2 and "guard failure" in r.json["reason"]
    assert not target.exists()


def test_an_unwritable_shadow_folder_blocks_and_alerts(project, tmp_path):
    dry(project)
    root = shadows_root(str(project.root))
    os.makedirs(os.path.dirname(root), exist_ok=True)
    if os.geteuid() != 0:
        os.makedirs(root)
        os.chmod(root, 0o500)
    elif os.path.isdir("/sys/kernel"):
        os.symlink("/sys/kernel", root)  # sysfs: not even root may create a folder there
        try:
            os.mkdir(os.path.join(root, "drygate-probe"))
        except OSError:
            pass
        else:  # pragma: no cover
            pytest.skip("/sys/kernel is writable here")
    else:  # pragma: no cover
        pytest.skip("running as root without a read-only sysfs: cannot make an unwritable folder")
    try:
        _assert_blocked_with_alert(project, call(project, "Write", {"file_path": str(project.root / "a"),
                                                                    "content": "x"}))
    finally:
        if not os.path.islink(root):
            os.chmod(root, 0o700)


# ------------------------------------------------------------------------------ prune

def test_prune_removes_the_shadows_of_expired_runs(project):
    dry(project)
    call(project, "Write", {"file_path": str(project.root / "old.txt"), "content": "x"}, session=OTHER)
    time.sleep(4)
    call(project, "Write", {"file_path": str(project.root / "new.txt"), "content": "y"})
    assert {s.run_id for s in run_shadows(str(project.root))} == {SESSION, OTHER}
    out = project.cli("prune", "--older-than-days", str(2.0 / 86400)).stdout
    assert "removed 1 run file shadow(s)" in out
    assert [s.run_id for s in run_shadows(str(project.root))] == [SESSION]
    assert (RunShadow(shadows_root(str(project.root)), SESSION).version(str(project.root / "new.txt"))
            == (True, "y"))


# ------------------------------------------------------------------------- lean path

def test_the_dry_file_path_stays_lean(project):
    """A dry Write or Edit and a Read's PostToolUse load no heavy module (see
    tests/test_hook_failures.py::test_hook_imports_stay_lean for the other tools)."""
    dry(project)
    target = project.root / "lean.txt"
    target.write_text("one\n")
    from drygate.enforcement.install import import_roots

    roots = [str(SRC)] + import_roots()
    code = ("import sys;sys.path[:0]=%r;from drygate.enforcement.claude_code import main;"
            "c=main(['claude-code','--project',%r]);sys.stderr.write('\\nMODULES='+','.join(sorted(sys.modules)))"
            % (roots, str(project.root)))
    heavy = {"json", "re", "difflib", "hashlib", "shutil", "asyncio", "click", "rich", "dataclasses", "enum",
             "typing", "threading", "subprocess", "drygate.plan.artifact", "drygate.plan.diffs", "drygate.cli"}
    call(project, "Read", {"file_path": str(target)})  # the first call after a policy change parses it
    post = project.event("Read", {"file_path": str(target)}, hook_event_name="PostToolUse",
                         tool_response={"file": {"content": "one\n"}})
    for ev in (project.event("Write", {"file_path": str(target), "content": "one\ntwo\n"}),
               project.event("Edit", {"file_path": str(target), "old_string": "two", "new_string": "2"}),
               project.event("Read", {"file_path": str(target)}), post):
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], input=json.dumps(ev).encode(),
                              capture_output=True, env=project.env(), cwd=project.root)
        assert "guard failure" not in proc.stdout.decode(), proc.stdout
        modules = set(proc.stderr.decode().split("MODULES=")[1].split(","))
        assert not (modules & heavy), (ev["tool_name"], ev["hook_event_name"], modules & heavy)
    assert "     2\t2" in context(post_read(project, target))


@pytest.mark.parametrize("run_id", [SESSION, "run-1", "abc", "A-b-0", "x" * 200, "-", "a.b", "a/b", "ü", "x" * 201])
def test_the_hooks_shortcut_names_the_same_folder(run_id, tmp_path):
    """claude_code._may_have_shadow (one stat, no import) is False only when RunShadow's
    folder is missing, and is sure of that for session-like ids."""
    from drygate.enforcement.claude_code import _may_have_shadow

    assert not _may_have_shadow(str(tmp_path), run_id)  # no file shadow at all in the project
    os.makedirs(RunShadow(shadows_root(str(tmp_path)), "another run").folder)
    sure = run_id.replace("-", "").isalnum() and run_id.isascii() and len(run_id) <= 200
    assert _may_have_shadow(str(tmp_path), run_id) is not sure
    os.makedirs(RunShadow(shadows_root(str(tmp_path)), run_id).folder)
    assert _may_have_shadow(str(tmp_path), run_id)
