"""drygate end to end with the real Claude Code CLI (see conftest.py for the harness).

Every test asserts real side effects (a file on disk, rows in SQLite), not only output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .e2e_util import REPO, make_venv

pytestmark = pytest.mark.e2e

WRITE_OUT = {"name": "Bash", "input": {"command": "echo hi > out.txt", "description": "write out.txt"}}
PUT = {
    "name": "mcp__store__put_object",
    "input": {"bucket": "uploads", "key": "a.png", "body": "fake png bytes"},
}
INSERT = {
    "name": "mcp__store__query",
    "input": {"sql": "INSERT INTO files(key, size) VALUES ('a.png', 2048)"},
}
ORIGINAL_ROWS = [("existing.png", 1)]

INCIDENT_POLICY = """\
[run]
mode = "sticky"

[[rules]]
tool = "mcp__store__put_object"
effect = "write"
dry = true

[[rules]]
tool = "mcp__store__query"
effect = "write"
"""

# Bash writes are live unless the run is dry: so a block can only come from the gate.
BASH_POLICY = """\
[run]
mode = "{mode}"

[[rules]]
tool = "Bash"
effect = "write"
"""


def _not_executed(text: str) -> bool:
    return "not executed" in text.lower()


# --------------------------------------------------------------------------- controls
def test_harness_executes_tools_without_drygate(project):
    """Control: no drygate at all, the scripted Bash write really happens."""
    run = project.run_agent([WRITE_OUT], label="control: no drygate")
    assert run.json.get("subtype") == "success", run.describe()
    assert (project.dir / "out.txt").read_text() == "hi\n", run.describe()
    assert len(run.tool_results) == 1 and not run.tool_results[0]["is_error"], run.describe()


def test_incident_without_drygate_leaves_an_orphan(project):
    """The incident as it happened: both writes are real (no gate)."""
    run = project.run_agent([PUT, INSERT], prompt="Upload a.png and record it.", label="incident: no drygate")
    assert project.objects() == ["uploads/a.png"], run.describe()
    assert project.rows() == sorted(ORIGINAL_ROWS + [("a.png", 2048)]), run.describe()
    _maybe_record(run, "incident-session-ungated.jsonl")


def test_live_mode_executes_the_write(project):
    """Control with drygate installed: mode live, the write runs."""
    project.init_drygate(BASH_POLICY.format(mode="live"))
    run = project.run_agent([WRITE_OUT], label="live control")
    assert (project.dir / "out.txt").read_text() == "hi\n", run.describe()
    assert run.tool_results and not run.tool_results[0]["is_error"], run.describe()
    assert not _not_executed(run.api.results_text()), run.describe()
    assert project.alerts() == [], project.alerts()


def test_sticky_live_write_executes(project):
    """Control for the lock test: same sticky policy, healthy state store, the write runs."""
    project.init_drygate(BASH_POLICY.format(mode="sticky"))
    run = project.run_agent([WRITE_OUT], label="sticky control")
    assert (project.dir / "out.txt").read_text() == "hi\n", run.describe()
    assert project.alerts() == [], project.alerts()


# --------------------------------------------------------------------------- incident
def test_incident_put_then_sql_is_all_dry(project):
    """Lesson 2: the dry put must say it did not happen, and the SQL write after it is dry too."""
    project.init_drygate(INCIDENT_POLICY)
    run = project.run_agent([PUT, INSERT], prompt="Upload a.png and record it.", label="incident: sticky")
    assert run.json.get("subtype") == "success", run.describe()

    # No real write reached either store.
    assert project.objects() == [], run.describe()
    assert project.rows() == ORIGINAL_ROWS, run.describe()

    # The model was told, for both calls, that nothing happened.
    results = run.tool_results
    assert [r["name"] for r in results] == [PUT["name"], INSERT["name"]], run.describe()
    for r in results:
        assert _not_executed(r["content"]), f"model was not told 'not executed': {r}"
    # ...and no invented value passes as real (the etag/rowcount the real call would give).
    assert "etag" not in results[0]["content"].lower() or "unknown" in results[0]["content"].lower()

    # The run id defaults to Claude Code's session id.
    runs = project.drygate_json("runs")
    assert run.session_id in [r["run_id"] for r in runs], runs
    plan = project.drygate_json("plan", run.session_id)
    assert plan["run_id"] == run.session_id
    steps = plan["steps"]
    assert [s["tool_name"] for s in steps] == [PUT["name"], INSERT["name"]], plan
    assert steps[0]["input"] == PUT["input"] and steps[1]["input"] == INSERT["input"], plan
    assert steps[0]["seq"] < steps[1]["seq"], plan
    assert steps[0]["made_run_dry"] is True, plan
    assert steps[1]["dry_because_of"] == steps[0]["seq"], plan
    assert plan["dry_since"] == steps[0]["seq"], plan
    assert project.alerts() == [], project.alerts()
    _maybe_record(run, "incident-session.jsonl")


def test_sticky_blocks_a_shell_write_after_a_dry_put(project):
    """No leak through another tool: after the dry put, a Bash write in the same run is dry too."""
    project.init_drygate(INCIDENT_POLICY)
    run = project.run_agent([PUT, WRITE_OUT], label="sticky: put then Bash")
    assert project.objects() == [], run.describe()
    assert not (project.dir / "out.txt").exists(), "LEAK: shell write after a dry put\n" + run.describe()
    assert all(_not_executed(r["content"]) for r in run.tool_results), run.describe()
    plan = project.drygate_json("plan", run.session_id)
    steps = plan["steps"]
    assert [s["tool_name"] for s in steps] == [PUT["name"], "Bash"], plan
    assert steps[1]["dry_because_of"] == steps[0]["seq"], plan


def test_dry_mode_shell_write_not_executed(project):
    """DRYGATE_MODE=dry with an explicit run id: the Bash write is skipped and planned."""
    project.init_drygate(BASH_POLICY.format(mode="live"))
    run = project.run_agent([WRITE_OUT], env={"DRYGATE_MODE": "dry", "DRYGATE_RUN_ID": "e2e-dry-1"},
                            label="dry mode via env")
    assert not (project.dir / "out.txt").exists(), run.describe()
    assert _not_executed(run.api.results_text()), run.describe()
    plan = project.drygate_json("plan", "e2e-dry-1")
    assert [s["tool_name"] for s in plan["steps"]] == ["Bash"], plan
    assert plan["steps"][0]["input"]["command"] == "echo hi > out.txt", plan


# --------------------------------------------------------------------------- fail closed
def _assert_blocked_with_alert(project, run):
    assert not (project.dir / "out.txt").exists(), "LEAK: the write ran while the gate was failing\n" + run.describe()
    assert run.tool_results, run.describe()
    assert run.tool_results[0]["is_error"] or _not_executed(run.tool_results[0]["content"]) or \
        "drygate" in run.tool_results[0]["content"].lower(), run.describe()
    alerts = project.alerts()
    assert any(a.get("kind") == "guard_failure" for a in alerts), f"no guard_failure alert: {alerts}"
    listed = project.drygate_json("alerts")
    assert any(a.get("kind") == "guard_failure" for a in listed), listed
    return alerts


def test_gate_crash_invalid_policy_blocks_and_alerts(project):
    project.init_drygate()
    project.write_policy('[run\nmode = "live"\n[[rules]\ntool = \n')
    run = project.run_agent([WRITE_OUT], label="crash: invalid TOML")
    _assert_blocked_with_alert(project, run)


def test_gate_crash_state_store_uncreatable_blocks_and_alerts(project):
    project.init_drygate(BASH_POLICY.format(mode="live"))
    blocker = project.dir / "not-a-dir"
    blocker.write_text("a regular file where the state directory should be\n")
    run = project.run_agent([WRITE_OUT], env={"DRYGATE_STATE": str(blocker / "sub" / "state.db")},
                            label="crash: state dir uncreatable")
    _assert_blocked_with_alert(project, run)


LOCK_HOLDER = r"""
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the test closes stdin
conn.execute("ROLLBACK")
"""


def test_state_store_locked_blocks(project):
    """Lesson 3: the state store is unavailable (exclusive lock held by another process)."""
    project.init_drygate(BASH_POLICY.format(mode="sticky"))
    state = project.dir / ".drygate" / "state.db"
    state.parent.mkdir(exist_ok=True)
    project.drygate("runs", "--json", check=False)  # let drygate create its schema if it wants to
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(state)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        run = project.run_agent([WRITE_OUT], label="state store locked")
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    _assert_blocked_with_alert(project, run)


def test_executable_removed_still_blocks(project, tmp_path):
    """The hook's venv is deleted after install: the host must still block, not fall through."""
    project.write_policy(BASH_POLICY.format(mode="sticky"))
    venv = tmp_path / "throwaway-venv"
    make_venv(venv, "-e", str(REPO))
    throwaway = venv / "bin" / "drygate"
    project.drygate("install", "claude-code", binary=throwaway)
    settings_text = project.settings.read_text()
    assert str(venv) in settings_text, f"hook does not use the throwaway venv:\n{settings_text}"
    shutil.rmtree(venv)
    run = project.run_agent([WRITE_OUT], label="hook executable removed")
    assert not (project.dir / "out.txt").exists(), "LEAK: tool ran with the gate missing\n" + run.describe()
    assert run.tool_results and run.tool_results[0]["is_error"], run.describe()
    # Fail closed *and alert separately*: the installed wrapper must record the failure even
    # though drygate itself never ran (and so never created .drygate/).
    assert any(a.get("kind") == "guard_failure" for a in project.alerts()), (
        "no guard_failure alert for a missing hook executable\n" + run.describe())


# --------------------------------------------------------------------------- recording
_PLACEHOLDER_PROJECT = "/srv/app"
_PLACEHOLDER_HOME = "/home/agent"


def _maybe_record(run, name: str) -> None:
    """With DRYGATE_E2E_RECORD=1, copy the transcript into examples/incident/ (2.1.332 only)."""
    if os.environ.get("DRYGATE_E2E_RECORD") != "1" or run.project.cli.version != "2.1.332":
        return
    src = run.transcript
    assert src is not None, "no transcript written under the isolated HOME"
    text = src.read_text()
    proj, home = str(run.project.dir), str(run.project.home)
    mangled = re.sub(r"[^A-Za-z0-9]", "-", proj)
    text = text.replace(proj, _PLACEHOLDER_PROJECT).replace(home, _PLACEHOLDER_HOME)
    text = text.replace(mangled, re.sub(r"[^A-Za-z0-9]", "-", _PLACEHOLDER_PROJECT))
    text = text.replace(str(run.project.tmp), "/srv")
    for prefix in {sys.prefix, str(Path(sys.executable).parent)}:
        text = text.replace(prefix, "/opt/venv")
    for line in text.splitlines():
        json.loads(line)  # still valid JSONL
    out = REPO / "examples" / "incident" / name
    out.write_text(text if text.endswith("\n") else text + "\n")


# --------------------------------------------------------------------------- the MCP relay
def _behind_relay(project):
    """Rewrite the project's mcp.json so the store server runs behind `drygate mcp`."""
    from drygate.relay.install import wrap_servers

    path = project.dir / "mcp.json"
    config, wrapped, _ = wrap_servers(json.loads(path.read_text()), project.dir,
                                      python=str(project.tools.python))
    assert wrapped == ["store"]
    path.write_text(json.dumps(config))


def test_incident_through_the_relay_alone(project):
    """The relay, with no hook: it decides the MCP calls itself, and the model is told."""
    project.init_drygate(INCIDENT_POLICY)
    project.settings.write_text("{}\n")  # no hook: only the relay gates
    _behind_relay(project)
    run = project.run_agent([PUT, INSERT], env={"DRYGATE_RUN_ID": "relay-e2e"}, label="incident: relay only")
    assert project.objects() == [] and project.rows() == ORIGINAL_ROWS, run.describe()
    for r in run.tool_results:
        assert _not_executed(r["content"]), r
    plan = project.drygate_json("plan", "relay-e2e")
    assert [s["tool_name"] for s in plan["steps"]] == [PUT["name"], INSERT["name"]], plan
    journal_hosts = {e["host"] for e in _journal(project, "relay-e2e")}
    assert journal_hosts == {"mcp-relay"}, journal_hosts


def test_incident_relay_and_hook_share_one_run(project):
    """Hook and relay installed together: one run (the session), one stickiness."""
    project.init_drygate(INCIDENT_POLICY)
    _behind_relay(project)
    count = {"name": "mcp__store__query", "input": {"sql": "SELECT count(*) FROM files"}}
    # Claude Code 2.1 gives MCP servers CLAUDE_CODE_SESSION_ID, so the relay joins the
    # session's run by itself; 2.0 does not, and `drygate run` (DRYGATE_RUN_ID) joins them.
    old_host = project.cli.version.startswith("2.0.")
    env = {"DRYGATE_RUN_ID": "shared-run"} if old_host else None
    run = project.run_agent([count, PUT, INSERT], env=env, label="incident: hook + relay")
    run_id = "shared-run" if old_host else run.session_id
    assert project.objects() == [] and project.rows() == ORIGINAL_ROWS, run.describe()
    plan = project.drygate_json("plan", run_id)
    assert [s["tool_name"] for s in plan["steps"]] == [PUT["name"], INSERT["name"]], plan
    # The first call was allowed by the hook and then decided again by the relay: both in one run.
    hosts = [e["host"] for e in _journal(project, run_id)]
    assert hosts[:2] == ["claude-code", "mcp-relay"], hosts
    runs = {r["run_id"] for r in project.drygate_json("runs")}
    assert runs == {run_id}, runs


def _journal(project, run_id):
    from drygate.state.sqlite import SQLiteStore

    store = SQLiteStore(project.dir / ".drygate" / "state.db")
    try:
        return [e for e in store.journal(run_id) if e["kind"] == "call"]
    finally:
        store.close()
