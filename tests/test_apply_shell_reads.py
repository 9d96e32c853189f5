"""Apply never writes over a read it did not re-check (issue 16).

A dry run reads a value with a real shell command (``redis-cli`` against a real
redis-server), and plans a write that depends on it. Another writer then changes the
value: apply re-runs the read from the journal's working folder and environment, sees
the difference, refuses and names it. Nothing changed: it applies. A read apply cannot
repeat (a host tool, a shell read whose output was not journaled) refuses the steps after
it by default, naming the read; ``--accept-unchecked`` goes on and journals the
acceptance with the plan hash. Real hook processes (PreToolUse and PostToolUse, as the
host sends them), the real CLI, both state stores.
"""

import json
import subprocess
import uuid

import pytest
from conftest import SESSION, write_policy


def read_as_the_host(project, command, cwd=None, env=None):
    """A read the gate allows, run as Claude Code runs it, then its PostToolUse."""
    cwd = cwd or project.root
    env = env or {}
    event = project.event("Bash", {"command": command}, cwd=str(cwd))
    pre = project.hook(event, **env)
    assert pre.code == 0 and pre.decision != "deny", (pre.stdout, pre.stderr)
    proc = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True,
                          env=project.env(**env), timeout=30)
    post = dict(event, hook_event_name="PostToolUse",
                         tool_response={"stdout": proc.stdout.rstrip("\n"), "stderr": proc.stderr,
                                        "interrupted": False, "isImage": False})
    assert project.hook(post, command=project.post_command, **env).code == 0
    return proc.stdout


def dry(project, tool, tool_input, **fields):
    r = project.hook(project.event(tool, tool_input, **fields))
    assert r.code == 2 and "NOT EXECUTED" in r.stderr, (tool, r.stdout, r.stderr)


def apply(project, plan_path, *args):
    return project.cli("apply", str(plan_path), "--yes", "--allow-shell", *args, check=False, COLUMNS="200")


@pytest.fixture
def data(redis_server):
    """A key of its own in the real redis-server the tests share: ``(url, key, client)``."""
    client = redis_server.client(db=0, decode_responses=True)
    key = f"counter-{uuid.uuid4().hex[:8]}"
    client.set(key, "7")
    yield redis_server.url(db=0), key, client
    client.delete(key)
    client.close()


def dry_increment(project, url, key, tmp_path):
    seen = read_as_the_host(project, f"redis-cli -u {url} get {key}")
    assert seen.strip() == "7"
    dry(project, "Bash", {"command": f"redis-cli -u {url} set {key} 8"})
    plan_path = tmp_path / "plan.json"
    project.cli("plan", SESSION, "--out", str(plan_path))
    plan = json.loads(plan_path.read_text())
    read = plan["basis"]["reads"][0]
    assert read["repeatable"] and read["fingerprint_of"] == "shell-output", read
    return plan_path


def test_a_concurrent_writer_makes_apply_refuse_and_name_the_change(project, data, tmp_path):
    write_policy(project.root, "dry")
    url, key, client = data
    plan_path = dry_increment(project, url, key, tmp_path)
    client.set(key, "9")  # another writer moves the counter on
    r = apply(project, plan_path)
    assert r.returncode == 1 and "REFUSED" in r.stderr, r.stdout + r.stderr
    assert f"get {key}" in r.stderr and 'stdout: "7" -> "9"' in r.stderr, r.stderr
    assert client.get(key) == "9", "apply wrote over the other writer's update"


def test_nothing_changed_applies(project, data, tmp_path):
    write_policy(project.root, "dry")
    url, key, client = data
    plan_path = dry_increment(project, url, key, tmp_path)
    r = apply(project, plan_path)
    assert r.returncode == 0 and "applied 1 of 1" in r.stdout, r.stdout + r.stderr
    assert "re-checking read" in r.stdout and client.get(key) == "8"


def test_the_read_is_repeated_in_its_folder_with_its_environment(project, tmp_path):
    write_policy(project.root, "dry")
    sub = project.root / "config"
    sub.mkdir()
    (sub / "limits.txt").write_text("limit=5\n")
    (project.root / "limits.txt").write_text("limit=999\n")  # what a read from the project folder would see
    seen = read_as_the_host(project, 'grep limit limits.txt; echo "region=$APP_REGION"', cwd=sub,
                            env={"APP_REGION": "eu-west"})
    assert seen == "limit=5\nregion=eu-west\n"
    dry(project, "Bash", {"command": "touch applied.flag"}, cwd=str(sub))
    plan_path = tmp_path / "plan.json"
    project.cli("plan", SESSION, "--out", str(plan_path))
    r = apply(project, plan_path)  # apply's own environment has no APP_REGION
    assert r.returncode == 0 and "applied 1 of 1" in r.stdout, r.stdout + r.stderr
    assert (sub / "applied.flag").exists()


def test_a_read_apply_cannot_repeat_refuses_until_accepted(project, tmp_path):
    write_policy(project.root, "dry")
    (project.root / "a.py").write_text("TODO = 1\n")
    pre = project.hook(project.event("Grep", {"pattern": "TODO", "path": "."}))
    assert pre.code == 0
    dry(project, "Write", {"file_path": "b.txt", "content": "from the grep\n"})
    plan_path = tmp_path / "plan.json"
    project.cli("plan", SESSION, "--out", str(plan_path))
    r = apply(project, plan_path)
    assert r.returncode == 1 and "cannot re-check" in r.stderr and "Grep" in r.stderr, r.stderr
    assert "--accept-unchecked" in r.stderr and not (project.root / "b.txt").exists()
    r = apply(project, plan_path, "--accept-unchecked")
    assert r.returncode == 0 and "applied 1 of 1" in r.stdout, r.stdout + r.stderr
    plan = json.loads(plan_path.read_text())
    accepted = [e["result"] for e in project.journal() if e["tool_name"] == "drygate/apply"
                and e["result"]["event"] == "accepted_unchecked"]
    assert len(accepted) == 1 and accepted[0]["plan_hash"] == plan["content_hash"], accepted
    assert "Grep" in accepted[0]["reads"][0]


def test_a_shell_read_without_its_output_is_not_rechecked(project, data, tmp_path):
    write_policy(project.root, "dry")
    url, key, client = data
    pre = project.hook(project.event("Bash", {"command": f"redis-cli -u {url} get {key}"}))
    assert pre.code == 0  # the host ran it, but no PostToolUse reached drygate
    dry(project, "Bash", {"command": f"redis-cli -u {url} set {key} 8"})
    plan_path = tmp_path / "plan.json"
    project.cli("plan", SESSION, "--out", str(plan_path))
    r = apply(project, plan_path)
    assert r.returncode == 1 and "output was not journaled" in r.stderr, r.stderr
    assert client.get(key) == "7"


def test_a_read_that_is_no_longer_a_read_is_not_run_again(project, tmp_path):
    write_policy(project.root, "dry")
    seen = read_as_the_host(project, "cat notes.txt 2>/dev/null; echo done")
    assert "done" in seen
    dry(project, "Write", {"file_path": "out.txt", "content": "x\n"})
    plan_path = tmp_path / "plan.json"
    project.cli("plan", SESSION, "--out", str(plan_path))
    write_policy(project.root, "dry", rules='[[rules]]\ntool = "Bash"\neffect = "write"\n')
    r = apply(project, plan_path, "--force")  # the policy changed: forced, but the read is still not re-run
    assert "not a read under the current policy" in r.stderr + r.stdout, r.stdout + r.stderr


def test_claude_codes_read_is_rechecked_in_its_folder(project, tmp_path):
    write_policy(project.root, "dry")
    sub = project.root / "config"
    sub.mkdir()
    (sub / "limits.txt").write_text("limit=5\n")
    (project.root / "limits.txt").write_text("limit=999\n")
    event = project.event("Read", {"file_path": "limits.txt"}, cwd=str(sub))
    assert project.hook(event).code == 0
    post = dict(event, hook_event_name="PostToolUse",
                tool_response={"type": "text", "file": {"filePath": str(sub / "limits.txt"), "content": "limit=5\n"}})
    assert project.hook(post, command=project.post_command).code == 0
    dry(project, "Write", {"file_path": "out.txt", "content": "raised to 6\n"}, cwd=str(sub))
    plan_path = tmp_path / "plan.json"
    project.cli("plan", SESSION, "--out", str(plan_path))
    (project.root / "limits.txt").write_text("limit=1000\n")  # not the file the run read
    (sub / "limits.txt").write_text("limit=6\n")
    r = apply(project, plan_path)
    assert r.returncode == 1 and "REFUSED" in r.stderr and '"limit=5" -> "limit=6"' in r.stderr, r.stderr
    (sub / "limits.txt").write_text("limit=5\n")
    r = apply(project, plan_path)
    assert r.returncode == 0 and (sub / "out.txt").read_text() == "raised to 6\n", r.stdout + r.stderr
