"""`drygate plan --format markdown` (a pull-request comment) and `--format json` against
docs/plan.schema.json (issue 14, part 2)."""

import json
import re

import jsonschema
import pytest
from conftest import REPO, SESSION

from review_page.conftest import SECRET_VALUES, make_run, save_plan

SCHEMA = json.loads((REPO / "docs" / "plan.schema.json").read_text())


@pytest.fixture
def planned(project, tmp_path):
    make_run(project)
    project.plan_file = tmp_path / "plan.json"
    project.saved = save_plan(project, project.plan_file)
    return project


def test_json_of_a_run_and_of_a_saved_plan_match_the_schema(planned):
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for doc in (json.loads(planned.cli("plan", SESSION, "--format", "json").stdout),
                json.loads(planned.cli("plan", str(planned.plan_file), "--format", "json").stdout),
                planned.saved):
        errors = sorted(validator.iter_errors(doc), key=str)
        assert not errors, errors[:3]
    broken = dict(planned.saved, steps=[dict(planned.saved["steps"][0], executor={"kind": "teleport"})])
    assert list(validator.iter_errors(broken))


def unescaped(md):
    """The Markdown with its backslash escapes undone (what a reader sees of the text)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", md)


def test_markdown_of_a_saved_plan(planned):
    raw = planned.cli("plan", str(planned.plan_file), "--format", "markdown").stdout
    md = unescaped(raw)
    plan = planned.saved
    assert md.startswith(f"### drygate plan: run `{SESSION}`")
    assert plan["content_hash"] in md and "6 step(s)" in md
    assert "The run went dry at call 2 (Edit: edit config.ini)" in md
    rows = [line for line in raw.splitlines() if re.match(r"\| \d+ \| \d+ \|", line)]
    assert len(rows) == 6 and "| 4 | 5 | mcp__store__put_meta |" in unescaped(rows[3]) and "step 3" in rows[3]
    # every row keeps its 7 cells: nothing in an input breaks out of its cell
    assert all(len(re.findall(r"(?<!\\)\|", r)) == 8 for r in rows)
    assert md.count("<details>") == 2 and md.count("</details>") == 2
    assert "-host = old.internal" in md and "+host = new.internal" in md
    assert "#### Basis" in md and "Not re-checked by apply" in md and "call 1 Read" in md
    for secret in SECRET_VALUES:
        assert secret not in md, secret
    assert "Review: `drygate review plan.json`" in md


def test_markdown_of_a_run_and_right_after_saving(planned, tmp_path):
    md = planned.cli("plan", SESSION, "--format", "markdown").stdout
    assert "6 skipped write(s)" in md and "--out plan.json" in md
    for secret in SECRET_VALUES:
        assert secret not in md, secret
    r = planned.cli("plan", SESSION, "--out", str(tmp_path / "again.json"), "--format", "markdown")
    assert json.loads((tmp_path / "again.json").read_text())["content_hash"] in r.stdout
    bad = planned.cli("plan", SESSION, "--json", "--format", "markdown", check=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr


def test_markdown_shows_the_approval(planned):
    planned.cli("approve", str(planned.plan_file), "--yes", "--as", "bob@ci")
    md = planned.cli("plan", str(planned.plan_file), "--format", "markdown").stdout
    assert "**APPROVED** by bob\\@ci (cli)" in md


def test_markdown_escapes_what_the_run_wrote():
    """Inputs with pipes, HTML, backticks and fences stay inside their cell and block."""
    from drygate.review.markdown import cell, fence, plan_markdown

    assert cell("a|b\nc<script>`x`") == "a\\|b c\\<script\\>\\`x\\`"
    block = fence("```\nnot the end\n````")
    assert block.startswith("`````") and block.endswith("`````")
    plan = {"run_id": "r|1", "mode": "dry", "dry_cause": None, "counts": {"calls": 1, "writes": 1, "dry": 1,
            "allowed_writes": 0, "denied": 0}, "simulation": None, "executed_writes": [],
            "steps": [{"step": 1, "call": 1, "tool_name": "mcp__x__y", "input": {"a": "| </details> ```"},
                       "effect": "write", "executor": {"kind": "mcp"}}],
            "file_changes": [{"path": "/p", "steps": [1], "diff": "--- a\n+++ b\n@@ -1 +1 @@\n-```\n+</details>\n",
                              "note": None, "problems": []}]}
    md = plan_markdown(plan)
    outside = re.sub(r"(?ms)^(`{3,})diff\n.*?^\1$", "", md)  # code blocks are text, not HTML
    assert outside.count("</details>") == 1 and "\\<\\/details\\>" in outside
    assert "````diff" in md and "```" not in outside
