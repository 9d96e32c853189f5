"""Apply of Claude Code's own file tools (Write, Edit, MultiEdit) performed by drygate.

A dry run through the real hook process, a saved plan, then ``drygate apply``: the file
must end up exactly as the tools would have left it, only if it is still as the plan saw
it, and never twice. Runs on both stores (the ``project`` fixture).
"""

import json

from conftest import SESSION, write_policy


def dry_calls(project, calls):
    for tool, tool_input in calls:
        r = project.hook(project.event(tool, tool_input))
        assert r.code == 2 and "NOT EXECUTED" in r.stderr, (tool, r.stdout, r.stderr)


def test_write_then_edit_applies_in_order(project, tmp_path):
    write_policy(project.root, "dry")
    notes = project.root / "notes.md"
    notes.write_text("# Notes\nold line\n")
    dry_calls(project, [("Write", {"file_path": "new.txt", "content": "hello\nworld\n"}),
                        ("Edit", {"file_path": "new.txt", "old_string": "world", "new_string": "drygate"}),
                        ("Edit", {"file_path": str(notes), "old_string": "old line", "new_string": "new line"}),
                        ("MultiEdit", {"file_path": str(notes), "edits": [
                            {"old_string": "# Notes", "new_string": "# Notes (applied)"}]})])
    assert not (project.root / "new.txt").exists() and notes.read_text() == "# Notes\nold line\n"
    plan_path = tmp_path / "plan.json"
    project.cli("plan", SESSION, "--out", str(plan_path))
    plan = json.loads(plan_path.read_text())
    assert [s["executor"]["kind"] for s in plan["steps"]] == ["file"] * 4
    assert all(s["problem"] is None for s in plan["steps"])
    r = project.cli("apply", str(plan_path), "--yes")
    assert "applied 4 of 4" in r.stdout
    assert (project.root / "new.txt").read_text() == "hello\ndrygate\n"
    assert notes.read_text() == "# Notes (applied)\nnew line\n"
    again = project.cli("apply", str(plan_path), "--yes", check=False)
    assert again.returncode == 1 and "already applied" in again.stderr


def test_a_file_changed_since_the_plan_refuses_the_plan(project, tmp_path):
    write_policy(project.root, "dry")
    notes = project.root / "notes.md"
    notes.write_text("a\nb\n")
    dry_calls(project, [("Edit", {"file_path": "notes.md", "old_string": "b", "new_string": "c"})])
    plan_path = tmp_path / "plan.json"
    project.cli("plan", SESSION, "--out", str(plan_path))
    notes.write_text("a\nb\nsomeone else\n")
    r = project.cli("apply", str(plan_path), "--yes", check=False)
    assert r.returncode == 1 and "REFUSED" in r.stderr and "notes.md changed" in r.stderr
    assert notes.read_text() == "a\nb\nsomeone else\n"
    runs = {x["run_id"]: x for x in json.loads(project.cli("runs", "--json").stdout)}
    assert runs[SESSION]["apply"] == "refused"


def test_an_edit_that_would_fail_is_skipped_as_the_host_would_fail_it(project, tmp_path):
    """Live, Claude Code refuses an Edit whose text is not in the file, and nothing changes;
    apply does the same: it skips that step and goes on."""
    write_policy(project.root, "dry")
    dry_calls(project, [("Write", {"file_path": "a.txt", "content": "one\n"}),
                        ("Edit", {"file_path": "a.txt", "old_string": "two", "new_string": "three"}),
                        ("Write", {"file_path": "b.txt", "content": "b\n"})])
    plan_path = tmp_path / "plan.json"
    project.cli("plan", SESSION, "--out", str(plan_path))
    step = json.loads(plan_path.read_text())["steps"][1]
    assert "not in the file" in step["skip"] and step["problem"] is None
    r = project.cli("apply", str(plan_path), "--yes")
    assert "skipped: a live run's Edit would have failed" in r.stdout and "applied 3 of 3" in r.stdout
    assert (project.root / "a.txt").read_text() == "one\n" and (project.root / "b.txt").read_text() == "b\n"


def test_a_step_apply_cannot_execute_stops_it_there(project, tmp_path):
    """A step with no executor (NotebookEdit) stops apply before it: partial, resumable."""
    write_policy(project.root, "dry")
    dry_calls(project, [("Write", {"file_path": "a.txt", "content": "one\n"}),
                        ("NotebookEdit", {"notebook_path": "n.ipynb", "new_source": "x"}),
                        ("Write", {"file_path": "b.txt", "content": "b\n"})])
    plan_path = tmp_path / "plan.json"
    project.cli("plan", SESSION, "--out", str(plan_path))
    assert "no executor" in json.loads(plan_path.read_text())["steps"][1]["problem"]
    r = project.cli("apply", str(plan_path), "--yes", check=False)
    assert r.returncode == 1 and "STOPPED at step 2" in r.stderr
    assert (project.root / "a.txt").read_text() == "one\n" and not (project.root / "b.txt").exists()
    runs = {x["run_id"]: x for x in json.loads(project.cli("runs", "--json").stdout)}
    assert runs[SESSION]["apply"] == "partial (1/3)"


def test_shell_steps_need_allow_shell(project, tmp_path):
    write_policy(project.root, "dry")
    dry_calls(project, [("Bash", {"command": "echo applied > out.txt"})])
    plan_path = tmp_path / "plan.json"
    project.cli("plan", SESSION, "--out", str(plan_path))
    r = project.cli("apply", str(plan_path), "--yes", check=False)
    assert r.returncode == 1 and "--allow-shell" in r.stderr and not (project.root / "out.txt").exists()
    r = project.cli("apply", str(plan_path), "--yes", "--allow-shell")
    assert "runs a shell command: echo applied > out.txt" in r.stdout
    assert (project.root / "out.txt").read_text() == "applied\n"


def test_a_whole_token_keeps_the_type_the_tool_schema_asks_for():
    """A token that is the whole argument becomes the real value, typed as the schema wants."""
    from drygate.plan.apply import Applier

    applier = Applier({"content_hash": "h", "steps": []}, None, "/", {}, None, None)
    applier.results = {2: {"structuredContent": {"id": 7, "tags": ["a"]}}}
    step = {"input": {"value": "drygate:ref:3:id", "count": "drygate:ref:3:id", "maybe": "drygate:ref:3:id",
                      "note": "row drygate:ref:3:id of drygate:ref:3:tags"},
            "references": [{"token": "drygate:ref:3:id", "call": 3, "path": "id", "step": 2},
                           {"token": "drygate:ref:3:tags", "call": 3, "path": "tags", "step": 2}]}
    schema = {"properties": {"value": {"type": "string"}, "count": {"type": "integer"},
                             "maybe": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}
    assert applier.resolve(step, schema) == {"value": "7", "count": 7, "maybe": "7", "note": 'row 7 of ["a"]'}
