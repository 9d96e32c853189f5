"""Read-your-writes for Claude Code's own file tools, with the real CLI (2.1.332 and 2.0.77).

The scripted model writes a file and then edits it in a dry run. What the host allows
(measured here, README "Read-your-writes for Claude Code's file tools"):

- an Edit is checked by Claude Code against the file on disk *before* the PreToolUse
  hook runs: an Edit of text that only the run's dry write made, or of a file only the
  run made, is refused by Claude Code itself ("String to replace not found", "File does
  not exist") and drygate never sees it;
- an Edit that matches the real file reaches the hook, which simulates it on the run's
  shadow (the run's earlier dry write included) and says whether it would apply;
- a Read is served by Claude Code from the real file; drygate's PostToolUse context with
  the run's version reaches the model after it (2.1.332: a system message; 2.0.77: a
  system reminder in the next user message); a Read of a file only the run made is
  answered by drygate's block, which carries the run's version, on 2.1.332 (2.0.77
  checks that the file exists before the hook and answers "File does not exist").
"""

from __future__ import annotations

import json

import pytest

from . import fake_messages_api
from .test_claude_code_e2e import BASH_POLICY

pytestmark = pytest.mark.e2e


@pytest.fixture
def conversations(monkeypatch):
    """The ``messages`` of every scripted request the CLI sends (what the model is given)."""
    seen = []
    answer = fake_messages_api.FakeMessagesAPI._answer

    def recording(self, body, path):
        if self._is_main(body):
            seen.append(body.get("messages") or [])
        return answer(self, body, path)

    monkeypatch.setattr(fake_messages_api.FakeMessagesAPI, "_answer", recording)
    return seen


def test_write_then_edit_in_a_dry_run(project, conversations):
    project.init_drygate(BASH_POLICY.format(mode="dry"))
    notes, new = project.dir / "notes.txt", project.dir / "new.txt"
    notes.write_text("alpha\n")
    steps = [
        {"name": "Read", "input": {"file_path": str(notes)}},  # 2.0.77 refuses a Write of an unread file
        {"name": "Write", "input": {"file_path": str(notes), "content": "alpha\nbeta\n"}},
        {"name": "Edit", "input": {"file_path": str(notes), "old_string": "alpha", "new_string": "ALPHA"}},
        {"name": "Edit", "input": {"file_path": str(notes), "old_string": "beta", "new_string": "BETA"}},
        {"name": "Read", "input": {"file_path": str(notes)}},
        {"name": "Write", "input": {"file_path": str(new), "content": "hello world\n"}},
        {"name": "Edit", "input": {"file_path": str(new), "old_string": "hello", "new_string": "bye"}},
        {"name": "Read", "input": {"file_path": str(new)}},
    ]
    run = project.run_agent(steps, prompt="Write the notes, then edit them.", label="file shadow: write then edit")
    results = run.tool_results
    assert [r["name"] for r in results] == [s["name"] for s in steps], run.describe()
    read1, write, edit_real, edit_dry_text, read2, write_new, edit_new, read_new = results

    # Nothing was written.
    assert notes.read_text() == "alpha\n" and not new.exists(), run.describe()

    assert "NOT EXECUTED" in write["content"] and "the file would be replaced" in write["content"]
    # The Edit matched the real file, so it reached the hook: simulated on the run's version.
    assert "NOT EXECUTED" in edit_real["content"], run.describe()
    assert "the edit would apply (the text occurs once)" in edit_real["content"], run.describe()
    # Text only the dry write made: Claude Code refuses the Edit before any hook runs.
    assert edit_dry_text["is_error"] and "String to replace not found" in edit_dry_text["content"], run.describe()
    # The host's Read shows the real file; drygate's context after it shows the run's version.
    assert "ALPHA" not in read2["content"] and not read2["is_error"], run.describe()
    last = json.dumps(conversations[-1])
    assert "As this run's dry writes left" in last and "ALPHA" in last, run.describe()
    # A file only the run made: Claude Code refuses the Edit (no file on disk); the Read is
    # answered from the run's shadow.
    assert "the file would be created (12 bytes)" in write_new["content"], run.describe()
    assert edit_new["is_error"] and "File does not exist" in edit_new["content"], run.describe()
    if project.cli.version.startswith("2.0."):  # 2.0 checks that a Read's file exists before the hook, too
        assert read_new["is_error"] and "File does not exist" in read_new["content"], run.describe()
    else:
        assert read_new["is_error"] and "does not exist on disk" in read_new["content"], run.describe()
        assert "hello world" in read_new["content"], run.describe()

    # The plan: the steps that reached the hook, as diffs of the real files.
    plan = project.drygate_json("plan", run.session_id)
    assert [s["tool_name"] for s in plan["steps"]] == ["Write", "Edit", "Write"], plan
    diffs = {c["path"]: c for c in plan["file_changes"]}
    assert diffs[str(notes)]["diff"].endswith("-alpha\n+ALPHA\n+beta\n"), diffs
    assert diffs[str(notes)]["shadow"] == {"real_changed_since_run": False, "same_as_run": True}, diffs
    assert "+hello world\n" in diffs[str(new)]["diff"], diffs
    shown = project.drygate("plan", run.session_id).stdout
    assert "+ALPHA" in shown and "File changes" in shown
    assert project.alerts() == [], project.alerts()
