"""Plan and apply against the reference stack (issue 6): real S3 (moto), SQLite, Redis.

A dry run goes through the real relay (``drygate mcp``) in front of the stack server; its
plan is saved and applied by ``drygate apply``, which starts the stack server from the
project's ``.mcp.json``. Every check reads the stores themselves, never drygate's journal.
"""

import json
import os
import signal
import subprocess

import anyio
import pytest
from mcp import Client

from relay.conftest import DRYGATE, Project, Server, clean_env

from .conftest import STACK, STACK_SERVER

POLICY = (STACK / "drygate.toml").read_text(encoding="utf-8")
SCHEMA = ("CREATE TABLE IF NOT EXISTS files (id INTEGER PRIMARY KEY AUTOINCREMENT, version INTEGER NOT NULL, "
          "key TEXT UNIQUE, size INTEGER)")


def setup(tmp_path, stack):
    """A project whose policy is the stack's, with the stack server in its .mcp.json."""
    stack.sql(SCHEMA)
    project = Project(tmp_path / "project")
    (project.root / "drygate.toml").write_text(POLICY, encoding="utf-8")
    server = Server("stack", [os.environ.get("PYTHON", __import__("sys").executable), str(STACK_SERVER)],
                    env=clean_env(stack.env))
    (project.root / ".mcp.json").write_text(json.dumps({"mcpServers": {"stack": {
        "command": server.argv[0], "args": server.argv[1:], "env": stack.env}}}), encoding="utf-8")
    return project, server


def dry_run(project, server, run_id, calls):
    """Run ``calls`` through the relay in a dry run; returns the results (dicts)."""
    async def main():
        async with Client(project.relay(server, mode="dry", run_id=run_id), cache=None) as client:
            await client.list_tools()
            return [(await client.call_tool(t, a)).model_dump(mode="json", by_alias=True, exclude_none=True)
                    for t, a in calls]

    return anyio.run(main)


def apply(project, plan_path, *args, **kw):
    return subprocess.run([*DRYGATE, "apply", str(plan_path), "--project", str(project.root), *args],
                          capture_output=True, text=True, timeout=120,
                          env=clean_env({"DRYGATE_STATE": str(project.state), "COLUMNS": "200"}), **kw)


def save_plan(project, run_id, path):
    project.cli("plan", run_id, "--out", str(path))
    return json.loads(path.read_text())


def upload_calls(stack):
    """The incident's shape: read, put an object, insert its row (the id is unknown in a dry
    run), then point the key-value store at the row through the reference token."""
    return [("kv_get", {"key": "latest_upload"}),
            ("put_object", {"bucket": stack.bucket, "key": "uploads/a.png", "body": "png bytes",
                            "if_none_match": "*"}),
            ("insert_row", {"table": "files", "values": {"key": "uploads/a.png", "size": 9}}),
            ("kv_set", {"key": "latest_upload", "value": "drygate:ref:3:id", "if_version": 0})]


def test_reference_token_links_the_real_id(tmp_path, kv_stack):
    stack = kv_stack
    stack.sql(SCHEMA)
    stack.sql("INSERT INTO files (version, key, size) VALUES (1, 'older.png', 1)")  # the real id will be 2
    project, server = setup(tmp_path, stack)
    stack.sql("DELETE FROM files")  # keep AUTOINCREMENT's counter: the next id is 2, not 1
    results = dry_run(project, server, "up", upload_calls(stack))
    insert = results[2]
    assert insert["isError"] and "drygate:ref:3:id" in json.dumps(insert)  # the token was offered
    assert stack.sql("SELECT * FROM files") == [] and stack.kv("latest_upload") == (None, 0)
    plan = save_plan(project, "up", tmp_path / "plan.json")
    assert plan["steps"][2]["depends_on"] == [2] and plan["steps"][2]["references"][0]["path"] == "id"
    r = apply(project, tmp_path / "plan.json", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    (row_id, key), = stack.sql("SELECT id, key FROM files")
    assert key == "uploads/a.png" and row_id == 2
    assert stack.kv("latest_upload")[0] == str(row_id)  # the real id, not the token
    assert stack.s3.get_object(Bucket=stack.bucket, Key="uploads/a.png")["Body"].read() == b"png bytes"


def test_a_reference_nothing_produces_stops_before_that_step(tmp_path, stack):
    project, server = setup(tmp_path, stack)
    calls = [("kv_set", {"key": "a", "value": "1"}), ("kv_set", {"key": "b", "value": "drygate:ref:9:id"})]
    dry_run(project, server, "bad-ref", calls)
    plan = save_plan(project, "bad-ref", tmp_path / "plan.json")
    assert "cannot be resolved" in plan["steps"][1]["problem"]
    r = apply(project, tmp_path / "plan.json", "--yes")
    assert r.returncode == 1 and "STOPPED at step 2" in r.stderr and "drygate:ref:9:id" in r.stderr
    assert stack.kv("a")[0] == "1" and stack.kv("b") == (None, 0)


def test_a_row_changed_between_plan_and_apply_is_named(tmp_path, stack):
    project, server = setup(tmp_path, stack)
    stack.sql("INSERT INTO files (version, key, size) VALUES (1, 'a.png', 1)")
    calls = [("sql_query", {"sql": "SELECT id, version, size FROM files WHERE key = 'a.png'"}),
             ("update_row", {"table": "files", "id": 1, "values": {"size": 2}, "expected_version": 1})]
    dry_run(project, server, "stale", calls)
    save_plan(project, "stale", tmp_path / "plan.json")
    stack.sql("UPDATE files SET size = 5, version = 2 WHERE id = 1")  # another writer
    r = apply(project, tmp_path / "plan.json", "--yes")
    assert r.returncode == 1 and "REFUSED" in r.stderr and "WHERE key = 'a.png'" in r.stderr
    assert stack.sql("SELECT size, version FROM files") == [(5, 2)]
    # --force goes past the basis, and the row's own precondition still refuses the write.
    r = apply(project, tmp_path / "plan.json", "--yes", "--force")
    assert r.returncode == 1 and "STOPPED at step 1" in r.stderr and "version" in r.stderr
    assert stack.sql("SELECT size, version FROM files") == [(5, 2)]


def test_an_object_changed_between_plan_and_apply_is_refused(tmp_path, stack):
    project, server = setup(tmp_path, stack)
    stack.s3.put_object(Bucket=stack.bucket, Key="doc.txt", Body=b"v1")
    calls = [("head_object", {"bucket": stack.bucket, "key": "doc.txt"}),
             ("put_object", {"bucket": stack.bucket, "key": "doc.txt", "body": "v2"})]
    dry_run(project, server, "obj", calls)
    save_plan(project, "obj", tmp_path / "plan.json")
    stack.s3.put_object(Bucket=stack.bucket, Key="doc.txt", Body=b"someone else")
    r = apply(project, tmp_path / "plan.json", "--yes")
    assert r.returncode == 1 and "REFUSED" in r.stderr and "head_object" in r.stderr
    assert stack.s3.get_object(Bucket=stack.bucket, Key="doc.txt")["Body"].read() == b"someone else"


def test_a_second_plan_of_an_applied_run_is_refused(tmp_path, stack):
    project, server = setup(tmp_path, stack)
    dry_run(project, server, "once", [("kv_set", {"key": "k", "value": "v"})])
    save_plan(project, "once", tmp_path / "first.json")
    save_plan(project, "once", tmp_path / "second.json")
    assert apply(project, tmp_path / "first.json", "--yes").returncode == 0
    r = apply(project, tmp_path / "second.json", "--yes")
    assert r.returncode == 1 and "another plan of this run" in r.stderr


MANY = 6


def many_calls(stack):
    """Writes of every kind, none idempotent by nature: only the keys make retries safe."""
    return [("kv_incr", {"key": "counter"}),
            ("insert_row", {"table": "files", "values": {"key": "f1", "size": 1}}),
            ("kv_incr", {"key": "counter"}),
            ("put_object", {"bucket": stack.bucket, "key": "o1", "body": "x"}),
            ("sql_execute", {"sql": "UPDATE files SET size = size + 10"}),
            ("kv_incr", {"key": "counter"})]


def expected_state(stack):
    return {"counter": "3", "files": [("f1", 11)], "objects": ["o1"]}


def store_state(stack):
    listed = stack.s3.list_objects_v2(Bucket=stack.bucket).get("Contents") or []
    return {"counter": stack.kv("counter")[0], "files": stack.sql("SELECT key, size FROM files ORDER BY id"),
            "objects": sorted(o["Key"] for o in listed)}


@pytest.mark.parametrize("kill_after", range(1, MANY + 1))
def test_killed_after_each_step_resume_executes_every_step_once(tmp_path, kv_stack, kill_after):
    """SIGKILL the apply process as soon as it reports step N done (it may already be in
    step N+1); ``--resume`` finishes, and the stores show every step exactly once."""
    stack = kv_stack
    project, server = setup(tmp_path, stack)
    dry_run(project, server, "crash", many_calls(stack))
    plan_path = tmp_path / "plan.json"
    save_plan(project, "crash", plan_path)
    proc = subprocess.Popen([*DRYGATE, "apply", str(plan_path), "--project", str(project.root), "--yes"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=clean_env({"DRYGATE_STATE": str(project.state), "COLUMNS": "200"}))
    for line in proc.stdout:
        if line.startswith(f"[{kill_after}/{MANY}] done"):
            os.killpg(proc.pid, signal.SIGKILL)  # the apply and the stack server it started
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL or kill_after == MANY
    again = apply(project, plan_path, "--yes")
    if {x["run_id"]: x for x in project.runs()}["crash"]["apply"] == "applied":
        # Killed after its last step was recorded (only possible after the last step).
        assert kill_after == MANY and again.returncode == 1 and "already applied" in again.stderr
    else:
        assert again.returncode == 1 and "--resume" in again.stderr
        r = apply(project, plan_path, "--yes", "--resume")
        assert r.returncode == 0, r.stdout + r.stderr
    assert store_state(stack) == expected_state(stack)
    runs = {x["run_id"]: x for x in project.runs()}
    assert runs["crash"]["apply"] == "applied"
