"""Claude Code's own Glob and Grep results are re-checked at apply (issue 16), with the real
CLI (2.1.332 and 2.0.77): the tools' real ``tool_response`` reaches PostToolUse, the plan
marks the searches repeatable, apply refuses while a matching file was added after the
dry run (naming the read and the file) and applies once the tree is as the run saw it.
"""

from __future__ import annotations

import json

import pytest

from .test_claude_code_e2e import BASH_POLICY

pytestmark = pytest.mark.e2e


def test_glob_and_grep_are_rechecked(project):
    project.init_drygate(BASH_POLICY.format(mode="dry"))
    project.allowed_tools = project.allowed_tools + ",Glob,Grep"
    src = project.dir / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "a.py").write_text("# TODO: speed\n")
    (src / "pkg" / "b.py").write_text("x = 1\n# todo later\n")
    out = project.dir / "out.txt"
    steps = [
        {"name": "Glob", "input": {"pattern": "**/*.py", "path": str(src)}},
        {"name": "Grep", "input": {"pattern": "todo", "path": str(src), "-i": True, "output_mode": "content"}},
        {"name": "Grep", "input": {"pattern": "TODO", "path": str(src)}},
        {"name": "Write", "input": {"file_path": str(out), "content": "two TODOs\n"}},
    ]
    run = project.run_agent(steps, prompt="Count the TODOs.", label="search reads: Glob, Grep, Write")
    results = run.tool_results
    assert [r["name"] for r in results] == [s["name"] for s in steps], run.describe()
    assert "NOT EXECUTED" in results[-1]["content"] and not out.exists(), run.describe()
    plan_path = project.dir / "plan.json"
    project.drygate("plan", run.session_id, "--out", str(plan_path))
    reads = json.loads(plan_path.read_text())["basis"]["reads"]
    assert [r["tool_name"] for r in reads] == ["Glob", "Grep", "Grep"], reads
    assert all(r["repeatable"] for r in reads), reads

    (src / "pkg" / "c.py").write_text("# TODO new\n")  # matches all three searches
    r = project.drygate("apply", str(plan_path), "--yes", env={"COLUMNS": "200"}, check=False)
    assert r.returncode == 1 and "REFUSED" in r.stderr and "c.py" in r.stderr, r.stdout + r.stderr
    assert "Glob" in r.stderr and "Grep" in r.stderr and not out.exists(), r.stderr
    (src / "pkg" / "c.py").unlink()
    r = project.drygate("apply", str(plan_path), "--yes", env={"COLUMNS": "200"}, check=False)
    assert r.returncode == 0 and "applied 1 of 1" in r.stdout, r.stdout + r.stderr
    assert out.read_text() == "two TODOs\n"
