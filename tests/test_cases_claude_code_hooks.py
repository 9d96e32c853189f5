"""Every case of shared/cases/claude-code-hooks.json, one test each, named after its id.

Each test drives the hook command exactly as installed in .claude/settings.json
(sh -c, event on stdin, real SQLite state) and checks what the host relies on:
one JSON object on stdout, the deny inside hookSpecificOutput, exit 2, and the
state/journal/alerts left behind. "Not executed" here means: every host version
in shared/reference/claude-code.md blocks on this answer; the end-to-end suite
(tests/e2e) proves it with the real Claude Code CLI.
"""

import json
import marshal
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import R2_DRY_D1_LIVE, load_cases, write_policy

CASES = load_cases()


def given(case_id):
    return CASES[case_id]["given"]


def stdin_of(case_id, project, key="hook_stdin"):
    ev = dict(given(case_id)[key])
    ev["cwd"] = str(project.root)
    return ev


def rebase(ev, project):
    """Point a case's example paths (/srv/app) at the test's own project."""
    text = json.dumps(ev).replace("/srv/app", str(project.root))
    return json.loads(text)


def assert_blocked_with_one_json(r):
    assert r.code == 2, (r.code, r.stdout, r.stderr)
    text = r.stdout.strip()
    body = json.loads(text)  # the whole stdout is one JSON document
    assert text.startswith("{") and text.endswith("}")
    hso = body["hookSpecificOutput"]
    assert hso["hookEventName"] == "PreToolUse"
    assert hso["permissionDecision"] == "deny"
    assert "permissionDecision" not in body
    assert "updatedInput" not in hso and "allow" not in r.stdout.lower().replace("allowed", "")
    assert r.stderr.strip(), "exit 2 must carry the reason on stderr"
    return hso["permissionDecisionReason"]


def test_CC_01_only_json_on_stdout(project):
    write_policy(project.root, given("CC-01-only-json-on-stdout")["mode"])
    r = project.hook(rebase(stdin_of("CC-01-only-json-on-stdout", project), project))
    reason = assert_blocked_with_one_json(r)
    assert r.stdout.count("{\"hookSpecificOutput\"") == 1
    assert "NOT EXECUTED" in reason
    assert not (project.root / "out.txt").exists()


def test_CC_02_decision_nesting(project):
    write_policy(project.root, "dry")
    (project.root / "build").mkdir()
    r = project.hook(stdin_of("CC-02-decision-nesting", project))
    assert_blocked_with_one_json(r)
    assert set(r.json) == {"hookSpecificOutput"}
    assert (project.root / "build").exists()


def _write_corrupt_policy_cache(project, compiled):
    """A policy cache whose key and hash match drygate.toml but whose content is broken (a
    cache drygate wrote and the disk then damaged: the hash check only keeps out a cache made
    from other bytes)."""
    import hashlib

    from drygate.policy.cache import CACHE_NAME, _key

    path = project.root / "drygate.toml"
    st = os.stat(path)
    compiled = dict(compiled, hash=hashlib.sha256(path.read_bytes()).hexdigest())
    project.state.parent.mkdir(parents=True, exist_ok=True)
    with open(project.state.parent / CACHE_NAME, "wb") as f:
        marshal.dump((_key(str(path), st), compiled), f)


def test_CC_03_guard_crash(project):
    # Fault, produced for real: a corrupted compiled-policy cache makes the engine
    # raise (KeyError) in the middle of deciding.
    write_policy(project.root, "dry")
    _write_corrupt_policy_cache(project, {"mode": "dry", "deadline_ms": 3000, "rules": ({"broken": 1},),
                                          "literal_index": {}, "state_path": ".drygate/state.db"})
    r = project.hook(stdin_of("CC-03-guard-crash", project))
    reason = assert_blocked_with_one_json(r)
    assert "guard failure" in r.stderr and "BLOCKED" in r.stderr
    assert "BLOCKED" in reason
    alerts = project.alerts()
    assert alerts and alerts[-1]["kind"] == "guard_failure"
    assert alerts[-1]["tool_name"] == "mcp__d1__query"


def test_CC_04_state_store_slow(sqlite_project):
    project = sqlite_project
    # Fault, real: another process holds an exclusive SQLite lock for as long as the test runs.
    write_policy(project.root, given("CC-04-state-store-slow")["mode"], R2_DRY_D1_LIVE)
    project.hook(project.event("Read", {"file_path": "README.md"}))  # creates the store
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3,sys,time;c=sqlite3.connect(sys.argv[1],isolation_level=None);"
        "c.execute('BEGIN EXCLUSIVE');"
        "print('locked',flush=True);time.sleep(60)"), str(project.state)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"locked"
        r = project.hook(stdin_of("CC-04-state-store-slow", project), DRYGATE_DEADLINE_MS=1000)
    finally:
        holder.kill()
        holder.wait()
    assert_blocked_with_one_json(r)
    configured_timeout = given("CC-04-state-store-slow")["hook_timeout_configured_s"]
    assert r.elapsed < 1.0 + 1.5 < configured_timeout, r.elapsed  # the gate's own deadline, not the host's
    alert = project.alerts()[-1]
    assert alert["kind"] == "guard_failure" and alert["cause"] in ("store_timeout", "deadline")


def test_CC_04_hard_deadline_when_stuck(project, tmp_path):
    # Fault, real: the policy path is a FIFO nobody writes to, so reading it blocks
    # inside the kernel; the gate must still answer within its deadline.
    write_policy(project.root, "sticky")
    fifo = tmp_path / "policy.fifo"
    os.mkfifo(fifo)
    r = project.hook(project.event("mcp__r2__put_object", {"bucket": "assets", "key": "a.png"}),
                     DRYGATE_POLICY=str(fifo), DRYGATE_DEADLINE_MS=500)
    assert r.code == 2
    assert r.elapsed < 0.5 + 1.0 + 1.0
    assert project.alerts()[-1]["kind"] == "guard_failure"


def test_CC_05_missing_executable(sqlite_project, tmp_path):
    # The hook's interpreter is a bare venv that sees only drygate's source: the Redis
    # client's hiredis is not there, so this case runs on the SQLite store.
    from conftest import SRC, hook_command

    project = sqlite_project
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    command = hook_command(python=str(venv / "bin" / "python"), root=str(SRC))
    write_policy(project.root, "live")
    ev = stdin_of("CC-05-missing-executable", project)
    before = project.hook(project.event("Read", {"file_path": "x"}), command=command)
    assert before.code == 0, before.stderr  # the installation works while the venv exists
    import shutil

    shutil.rmtree(venv)
    r = project.hook(ev, command=command)
    assert r.code == 2 and r.blocks
    assert "BLOCKED" in r.stderr
    assert project.alerts()[-1]["cause"].startswith("hook_exit_")
    # A package folder that disappeared (python runs, import fails: exit 1) blocks too.
    r2 = project.hook(ev, command=hook_command(root=str(tmp_path / "gone")))
    assert r2.code == 2
    # The doctor reports the broken installation.
    settings = json.loads((project.root / ".claude" / "settings.json").read_text())
    for event in ("PreToolUse", "PostToolUse"):
        settings["hooks"][event][0]["hooks"][0]["command"] = command
    (project.root / ".claude" / "settings.json").write_text(json.dumps(settings))
    doctor = project.cli("doctor", "--json", check=False)
    assert doctor.returncode == 1
    failed = {c["check"] for c in json.loads(doctor.stdout) if c["status"] == "fail"}
    assert "hook executable" in failed


def test_CC_06_subagent_same_run(project):
    write_policy(project.root, given("CC-06-subagent-same-run")["mode"], R2_DRY_D1_LIVE)
    first = project.hook(project.event("mcp__r2__put_object", {"bucket": "assets", "key": "a.png"}))
    assert first.code == 2
    r = project.hook(stdin_of("CC-06-subagent-same-run", project))
    reason = assert_blocked_with_one_json(r)
    assert "DRY RUN" in reason and "mcp__r2__put_object" in reason
    entries = [e for e in project.journal() if e["kind"] == "call"]
    assert [e["action"] for e in entries] == ["dry", "dry"]
    assert entries[1]["agent_id"] == "a91f" and entries[1]["dry_because_of"] == entries[0]["seq"]


def test_CC_07_prefixed_mcp_names(project):
    rules = '[[rules]]\nid = "r2-put"\ntool = "mcp__r2__put_object"\neffect = "write"\ndry = true\n'
    write_policy(project.root, "dry", rules)
    r = project.hook(stdin_of("CC-07-prefixed-mcp-names", project))
    assert_blocked_with_one_json(r)
    assert project.journal()[-1]["rule_id"] == "r2-put"  # the server rule caught the plugin name
    settings = json.loads((project.root / ".claude" / "settings.json").read_text())
    assert settings["hooks"]["PreToolUse"][0]["matcher"] == "*"
    # And in sticky mode the literal rule's dry scope applies to the plugin form too.
    write_policy(project.root, "sticky", rules)
    r2 = project.hook(stdin_of("CC-07-prefixed-mcp-names", project), session="other")
    assert r2.code == 2


def test_CC_08_missing_fields(project):
    write_policy(project.root, "dry")
    ev = rebase(dict(given("CC-08-missing-fields")["hook_stdin"]), project)
    r = project.hook(ev)
    reason = assert_blocked_with_one_json(r)
    assert "NOT EXECUTED" in reason
    # Without even hook_event_name the hook still decides (a PreToolUse-shaped event).
    del ev["hook_event_name"]
    assert project.hook(ev).code == 2


def test_CC_09_parallel_first_writes(project):
    write_policy(project.root, given("CC-09-parallel-first-writes")["mode"], R2_DRY_D1_LIVE)
    pair = given("CC-09-parallel-first-writes")["hook_stdin_parallel"]
    runs = [f"race-{i}" for i in range(24)]

    def fire(run_id, ev):
        return project.hook(dict(ev, session_id=run_id, cwd=str(project.root)))

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(fire, run_id, ev) for run_id in runs for ev in pair]
        results = [f.result() for f in futures]
    assert all(r.code in (0, 2) for r in results)
    leaked = 0
    for run_id in runs:
        went_dry = False
        for e in project.journal(run_id):
            if e["kind"] != "call":
                continue
            if e["action"] == "dry":
                went_dry = True
            elif went_dry and e["action"] == "allow" and e["effect"] != "read":
                leaked += 1
        assert went_dry
    assert leaked == 0


def test_CC_10_no_rewrite_for_safety(project):
    write_policy(project.root, "dry")
    r = project.hook(stdin_of("CC-10-no-rewrite-for-safety", project))
    assert_blocked_with_one_json(r)
    assert "updatedInput" not in r.stdout


def test_CC_11_orphan_record(project):
    write_policy(project.root, given("CC-11-orphan-record")["mode"], R2_DRY_D1_LIVE)
    put, insert = given("CC-11-orphan-record")["calls"]
    first = project.hook(dict(put, cwd=str(project.root)))
    reason1 = assert_blocked_with_one_json(first)
    assert "NOT EXECUTED" in reason1 and "Nothing was changed" in reason1
    assert "mcp__r2__put_object" in reason1
    second = project.hook(dict(insert, cwd=str(project.root)))
    reason2 = assert_blocked_with_one_json(second)
    assert "since its call 1 (mcp__r2__put_object)" in reason2
    plan = project.plan()
    assert [s["tool_name"] for s in plan["steps"]] == ["mcp__r2__put_object", "mcp__d1__query"]
    assert plan["steps"][0]["made_run_dry"] and plan["steps"][1]["dry_because_of"] == plan["steps"][0]["call"] == 1
    assert plan["dry_cause"]["tool_name"] == "mcp__r2__put_object"
    assert plan["steps"][1]["input"] == insert["tool_input"]


@pytest.fixture
def dry_after_put(project):
    write_policy(project.root, "sticky", R2_DRY_D1_LIVE)
    assert project.hook(project.event("mcp__r2__put_object", {"bucket": "assets", "key": "a.png"})).code == 2
    return project


@pytest.mark.parametrize("i", range(5))
def test_CC_12_bypass_through_shell(dry_after_put, i):
    project = dry_after_put
    ev = dict(given("CC-12-bypass-through-shell")["hook_stdin_each"][i], cwd=str(project.root))
    r = project.hook(ev)
    reason = assert_blocked_with_one_json(r)
    assert "DRY RUN" in reason


@pytest.mark.parametrize("command", ["ls -la", "cat README.md", "git status"])
def test_CC_12_reads_still_allowed(dry_after_put, command):
    r = dry_after_put.hook(dry_after_put.event("Bash", {"command": command}))
    assert r.code == 0 and r.json == {}


@pytest.mark.parametrize("command", [
    "wrangler d1 execute prod --command \"SELECT count(*) FROM files\"",
    "sqlite3 data/prod.db \"SELECT * FROM files LIMIT 5\""])
def test_CC_12_sql_reads_still_allowed(dry_after_put, command):
    r = dry_after_put.hook(dry_after_put.event("Bash", {"command": command}))
    assert r.code == 0


CC13_POLICY = '''
[[rules]]
tool = "mcp__api__get"
input_regex = { url = "/v1/jobs/next$" }
effect = "side_effect_read"
reason = "pops the next job from the queue"

[[rules]]
tool = "mcp__api__get"
effect = "read"
'''


@pytest.mark.parametrize("i", range(4))
def test_CC_13_side_effectful_reads(project, i):
    write_policy(project.root, given("CC-13-side-effectful-reads")["mode"], CC13_POLICY)
    ev = dict(given("CC-13-side-effectful-reads")["hook_stdin_each"][i], cwd=str(project.root))
    r = project.hook(ev)
    assert_blocked_with_one_json(r)
    effect = project.journal()[-1]["effect"]
    assert effect in ("side_effect_read", "unknown", "write")
    if ev["tool_name"] == "mcp__api__get":
        assert effect == "side_effect_read"


def test_CC_13_policy_read_of_other_url_allowed(project):
    write_policy(project.root, "dry", CC13_POLICY)
    r = project.hook(project.event("mcp__api__get", {"url": "https://api.example.com/v1/jobs/17"}))
    assert r.code == 0


@pytest.mark.parametrize("command", ["redis-cli GET config:flags", "psql -c 'SELECT count(*) FROM sessions'"])
def test_CC_13_reads_still_allowed(project, command):
    write_policy(project.root, "dry")
    assert project.hook(project.event("Bash", {"command": command})).code == 0


@pytest.mark.parametrize("i", range(4))
def test_CC_14_tamper_with_the_gate(project, i):
    write_policy(project.root, given("CC-14-tamper-with-the-gate")["mode"])
    (project.root / ".drygate").mkdir(exist_ok=True)
    ev = rebase(dict(given("CC-14-tamper-with-the-gate")["hook_stdin_each"][i]), project)
    r = project.hook(ev)
    reason = assert_blocked_with_one_json(r)
    assert "DENIED" in reason
    alert = project.alerts()[-1]
    assert alert["kind"] == "tamper" and alert["tool_name"] == ev["tool_name"]
    assert project.journal()[-1]["tamper"] is True


def test_CC_14_symlink_to_settings_is_tamper(project):
    write_policy(project.root, "live")
    (project.root / ".claude" / "settings.local.json").write_text("{}")
    os.symlink(project.root / ".claude" / "settings.local.json", project.root / "innocent.json")
    r = project.hook(project.event("Write", {"file_path": "innocent.json", "content": '{"disableAllHooks": true}'}))
    assert r.code == 2 and project.alerts()[-1]["kind"] == "tamper"


def test_CC_15_expiry_never_goes_live(project):
    write_policy(project.root, given("CC-15-expiry-never-goes-live")["mode"], R2_DRY_D1_LIVE)
    assert project.hook(project.event("mcp__r2__put_object", {"bucket": "assets", "key": "a.png"})).code == 2
    time.sleep(0.05)
    # The run is idle past the retention: prune everything older than ~0 days.
    project.cli("prune", "--older-than-days", "0.0000001")
    assert project.journal() == []  # the journal really was dropped
    r = project.hook(stdin_of("CC-15-expiry-never-goes-live", project))
    reason = assert_blocked_with_one_json(r)
    assert "DRY RUN" in reason
