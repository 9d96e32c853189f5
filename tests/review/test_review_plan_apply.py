"""Review probes (plan / apply): each test states what should happen and is expected to fail
until the bug it names is fixed (xfail, strict). Real hook processes, the real CLI, both
stores (the ``project`` fixture of tests/conftest.py).
"""

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import SESSION, SRC, write_policy

from drygate.plan.fingerprint import fingerprint, text_fingerprint


def dry(project, tool, tool_input, **fields):
    r = project.hook(project.event(tool, tool_input, **fields))
    assert r.code == 2 and "NOT EXECUTED" in r.stderr, (tool, r.stdout, r.stderr)
    return r


def save(project, path, run_id=SESSION):
    project.cli("plan", run_id, "--out", str(path))
    return json.loads(path.read_text())


def ledger(project, run_id=SESSION):
    store = project.open_store()
    try:
        from drygate.plan.apply import run_ledger

        return run_ledger(store, run_id) or {}
    finally:
        store.close()


def cli_popen(project, *args, prefix=()):
    return subprocess.Popen([*prefix, sys.executable, "-m", "drygate.cli.entry", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=project.root,
                            env=dict(project.env(), PYTHONPATH=str(SRC), COLUMNS="200"))


#: Start a command with a host name of its own (a second host sharing the store).
OTHER_HOST = ("unshare", "--uts", "sh", "-c", 'hostname other-host && exec "$0" "$@"')


def test_a_forged_plan_with_a_recomputed_hash_is_refused(project, tmp_path):
    write_policy(project.root, "dry")
    dry(project, "Write", {"file_path": "a.txt", "content": "reviewed\n"})
    plan_path = tmp_path / "plan.json"
    plan = save(project, plan_path)
    assert ledger(project)["plan_hash"] == plan["content_hash"]
    step = plan["steps"][0]
    step["input"]["content"] = "forged\n"  # the reviewed diff (file_changes) still says "reviewed"
    step["file"]["after"] = text_fingerprint("forged\n")
    extra = json.loads(json.dumps(step))
    extra.update(step=2, call=99, input={"file_path": "b.txt", "content": "never in the run\n"},
                 file={"path": str(project.root / "b.txt"), "before": None,
                       "after": text_fingerprint("never in the run\n")})
    plan["steps"].append(extra)
    plan["basis"]["files"][str(project.root / "b.txt")] = None
    del plan["content_hash"]
    plan["content_hash"] = fingerprint(plan)
    plan_path.write_text(json.dumps(plan))
    r = project.cli("apply", str(plan_path), "--yes", check=False)
    assert not (project.root / "b.txt").exists(), "a write the run never made was applied"
    assert not (project.root / "a.txt").exists() or (project.root / "a.txt").read_text() != "forged\n"
    assert r.returncode == 1 and "REFUSED" in r.stderr and "not the skipped writes" in r.stderr


def test_a_plan_is_not_applied_in_a_store_that_never_saw_its_run(project, tmp_path):
    write_policy(project.root, "dry")
    dry(project, "Bash", {"command": "echo once >> ledger.txt"})
    plan_path = tmp_path / "plan.json"
    save(project, plan_path)
    other = project.cli("apply", str(plan_path), "--yes", "--allow-shell", check=False,
                        DRYGATE_STATE=str(tmp_path / "another-project-state.db"))
    project.cli("apply", str(plan_path), "--yes", "--allow-shell", check=False)
    assert (project.root / "ledger.txt").read_text() == "once\n", "the plan was applied twice"
    assert other.returncode == 1 and "REFUSED" in other.stderr


def test_a_relative_file_path_is_applied_where_the_dry_run_put_it(project, tmp_path):
    write_policy(project.root, "dry")
    sub = project.root / "sub"
    sub.mkdir()
    r = dry(project, "Write", {"file_path": "notes.txt", "content": "hi\n"}, cwd=str(sub))
    assert str(sub / "notes.txt") in r.stderr  # the hook simulated sub/notes.txt
    plan_path = tmp_path / "plan.json"
    save(project, plan_path)
    project.cli("apply", str(plan_path), "--yes", check=False)
    assert not (project.root / "notes.txt").exists(), "apply wrote a file the dry run never touched"
    assert (sub / "notes.txt").read_text() == "hi\n", "apply did not write the file the dry run simulated"


def test_a_shell_step_runs_in_the_agents_cwd(project, tmp_path):
    write_policy(project.root, "dry")
    sub = project.root / "sub"
    sub.mkdir()
    (sub / "scratch.txt").write_text("tmp\n")
    (project.root / "scratch.txt").write_text("precious\n")
    dry(project, "Bash", {"command": "rm -f scratch.txt"}, cwd=str(sub))
    plan_path = tmp_path / "plan.json"
    save(project, plan_path)
    project.cli("apply", str(plan_path), "--yes", "--allow-shell", check=False)
    assert (project.root / "scratch.txt").exists(), "apply deleted the project's scratch.txt, not sub/scratch.txt"
    assert not (sub / "scratch.txt").exists(), "apply did not run the command in the agent's folder"


def test_apply_does_not_get_around_self_protection(project, tmp_path):
    write_policy(project.root, "dry", extra='\n[alerts]\nlog = "ops/alerts.jsonl"\n')
    (project.root / "ops").mkdir()
    log = project.root / "ops" / "alerts.jsonl"
    log.write_text('{"kind": "guard_failure"}\n')
    control = project.hook(project.event("Bash", {"command": "rm -f ops/alerts.jsonl"}))
    assert control.decision == "deny" and "protects the gate" in control.stdout  # self-protection from the root
    sub = project.root / "sub"
    sub.mkdir()
    dry(project, "Bash", {"command": "rm -f ops/alerts.jsonl"}, cwd=str(sub))
    plan_path = tmp_path / "plan.json"
    save(project, plan_path)
    project.cli("apply", str(plan_path), "--yes", "--allow-shell", check=False)
    assert log.exists(), "apply deleted drygate's alert log, a path self-protection denies in every mode"


def test_resume_after_a_crash_in_the_basis_check_still_checks_the_basis(project, tmp_path):
    write_policy(project.root, "dry")
    dry(project, "Write", {"file_path": "new.txt", "content": "from the plan\n"})
    dry(project, "mcp__slow__put", {"key": "k", "value": "v"})
    mcp = project.root / ".mcp.json"
    mcp.write_text(json.dumps({"mcpServers": {"slow": {"command": "sh", "args": ["-c", "sleep 15"]}}}))
    plan_path = tmp_path / "plan.json"
    save(project, plan_path)
    # The world moves on: the policy changes, so the plan is stale (apply would refuse it).
    write_policy(project.root, "dry", rules='[[rules]]\nid = "no-writes"\ntool = "Write"\naction = "deny"\n')
    proc = cli_popen(project, "apply", str(plan_path), "--yes")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and ledger(project).get("status") != "applying":
        time.sleep(0.05)
    time.sleep(0.5)  # in the basis check: starting the slow server
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert ledger(project)["status"] == "applying" and ledger(project)["done"] == 0
    assert not (project.root / "new.txt").exists()
    mcp.write_text(json.dumps({"mcpServers": {}}))  # so that the resume does not wait for it either
    r = project.cli("apply", str(plan_path), "--yes", "--resume", check=False)
    assert not (project.root / "new.txt").exists(), "a stale plan was applied without --force"
    assert "policy changed" in r.stderr


def test_two_resumes_on_two_hosts_run_each_step_once(project, tmp_path):
    write_policy(project.root, "dry")
    dry(project, "Bash", {"command": "echo one >> out.txt"})
    dry(project, "Bash", {"command": "test -f go.flag && sleep 4 && echo two >> out.txt"})
    dry(project, "Bash", {"command": "echo three >> out.txt"})
    plan_path = tmp_path / "plan.json"
    save(project, plan_path)
    first = project.cli("apply", str(plan_path), "--yes", "--allow-shell", check=False)
    assert first.returncode == 1 and "STOPPED at step 2" in first.stderr, first.stderr
    (project.root / "go.flag").write_text("")
    a = cli_popen(project, "apply", str(plan_path), "--yes", "--allow-shell", "--resume")
    b = cli_popen(project, "apply", str(plan_path), "--yes", "--allow-shell", "--resume", prefix=OTHER_HOST)
    a.communicate(timeout=120)
    b.communicate(timeout=120)
    assert (project.root / "out.txt").read_text() == "one\ntwo\nthree\n"


def test_resume_does_not_silently_rerun_a_shell_step_that_may_have_run(project, tmp_path):
    write_policy(project.root, "dry")
    dry(project, "Bash", {"command": "echo charged >> payments.txt; sleep 3"})
    plan_path = tmp_path / "plan.json"
    save(project, plan_path)
    proc = cli_popen(project, "apply", str(plan_path), "--yes", "--allow-shell")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (project.root / "payments.txt").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    time.sleep(3.5)  # the command itself runs to its end
    assert ledger(project)["in_flight"] == 1  # apply knows the step may have run
    project.cli("apply", str(plan_path), "--yes", "--allow-shell", "--resume", check=False)
    assert (project.root / "payments.txt").read_text() == "charged\n"


def test_a_missing_server_mid_apply_leaves_the_run_partial(project, tmp_path):
    write_policy(project.root, "dry")
    dry(project, "Write", {"file_path": "a.txt", "content": "a\n"})
    dry(project, "mcp__ghost__put", {"key": "k"})
    plan_path = tmp_path / "plan.json"
    save(project, plan_path)
    r = project.cli("apply", str(plan_path), "--yes", "--force", check=False)
    assert r.returncode == 1 and "ghost" in r.stderr
    record = ledger(project)
    assert record["status"] == "partial" and record["reason"], record


@pytest.mark.parametrize("token", ["drygate:ref:3:tags", "drygate:ref:3"])
def test_a_token_used_as_an_object_key_stops_apply_cleanly(token):
    from drygate.plan.apply import Applier, ApplyStopped

    applier = Applier({"content_hash": "h", "steps": []}, None, "/", {}, None, None)
    applier.results = {1: {"structuredContent": {"id": 7, "tags": ["a"]}}}
    path = token.split(":")[3] if token.count(":") == 3 else None
    step = {"input": {"values": {token: 1}}, "references": [{"token": token, "call": 3, "path": path, "step": 1}]}
    try:
        resolved = applier.resolve(step)
    except ApplyStopped:
        return
    json.dumps(resolved)  # or a usable input
