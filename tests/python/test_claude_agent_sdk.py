"""drygate.adapters.claude_agent_sdk with the real claude-agent-sdk and the real Claude Code CLI
it bundles, offline against tests/e2e's fake Messages API, with setting_sources=[] (the
settings hook is not read): read, write, write again in a dry run; plan; apply."""

import asyncio
import json
import shutil
import uuid

import pytest

sdk = pytest.importorskip("claude_agent_sdk")

from claude_agent_sdk import ClaudeAgentOptions, query  # noqa: E402
from e2e.fake_messages_api import TRIGGER, FakeMessagesAPI  # noqa: E402

from drygate.adapters.claude_agent_sdk import drygate_hooks  # noqa: E402

STEPS = [
    {"name": "Read", "input": lambda seen: {"file_path": "notes.txt"}},
    {"name": "Write", "input": lambda seen: {"file_path": "notes.txt", "content": "notes v2\n"}},
    {"name": "Write", "input": lambda seen: {"file_path": "report.txt", "content": "report\n"}},
    {"name": "Read", "input": lambda seen: {"file_path": "notes.txt"}},  # read your (dry) writes
]


def world(root):
    root.mkdir()
    (root / "notes.txt").write_text("notes v1\n")
    return root


def state(root):
    return {p.name: p.read_text() for p in sorted(root.glob("*.txt"))}


def run_agent(root, hooks=None, session_id=None):
    api = FakeMessagesAPI([dict(s, input=_absolute(root, s["input"])) for s in STEPS]).start()
    try:
        options = ClaudeAgentOptions(
            cwd=str(root), setting_sources=[], hooks=hooks, session_id=session_id,
            allowed_tools=["Read", "Write"], max_turns=10,
            env={"ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": "dummy", "DISABLE_TELEMETRY": "1",
                 "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                 "DISABLE_ERROR_REPORTING": "1", "HOME": str(root.parent / "home")})

        async def main():
            return [m async for m in query(prompt=f"Update the notes. {TRIGGER}", options=options)]

        messages = asyncio.run(asyncio.wait_for(main(), 120))
        return messages, api.tool_results
    finally:
        api.stop()


def _absolute(root, make):
    def build(seen):
        value = make(seen)
        return dict(value, file_path=str(root / value["file_path"]))
    return build


@pytest.fixture
def conversations(monkeypatch):
    """The ``messages`` of every scripted request the CLI sends (what the model is given)."""
    import e2e.fake_messages_api as fake

    seen = []
    answer = fake.FakeMessagesAPI._answer

    def recording(self, body, path):
        if self._is_main(body):
            seen.append(body.get("messages") or [])
        return answer(self, body, path)

    monkeypatch.setattr(fake.FakeMessagesAPI, "_answer", recording)
    return seen


def test_with_setting_sources_empty_the_callbacks_gate_a_dry_run_and_apply_reproduces_live(tmp_path, conversations):
    (tmp_path / "home").mkdir()
    live = world(tmp_path / "live")
    run_agent(live)
    expected = state(live)
    assert expected == {"notes.txt": "notes v2\n", "report.txt": "report\n"}  # the script really writes

    project = world(tmp_path / "project")
    (project / "drygate.toml").write_text('[run]\nmode = "dry"\n')
    session = str(uuid.uuid4())
    messages, seen = run_agent(project, drygate_hooks(project), session_id=session)
    assert state(project) == {"notes.txt": "notes v1\n"}  # nothing changed
    assert [r["name"] for r in seen] == ["Read", "Write", "Write", "Read"]
    assert "notes v1" in str(seen[0]["content"])
    assert all("NOT EXECUTED" in str(r["content"]) for r in seen[1:3])
    # The host's Read shows the real file; the PostToolUse callback's context shows the run's version.
    assert "notes v1" in str(seen[3]["content"])
    last = json.dumps(conversations[-1])
    assert "As this run's dry writes left" in last and "notes v2" in last
    assert messages[-1].is_error is False  # the run finished: no crash

    import subprocess
    import sys

    def drygate(*args):
        return subprocess.run([sys.executable, "-m", "drygate.cli.entry", *args], cwd=project, capture_output=True,
                              text=True, timeout=120)

    r = drygate("plan", session, "--out", "plan.json")
    assert r.returncode == 0, r.stderr
    r = drygate("apply", "plan.json", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert state(project) == expected


def test_a_gate_that_cannot_decide_blocks_the_call(tmp_path):
    (tmp_path / "home").mkdir()
    project = world(tmp_path / "project")
    (project / "drygate.toml").write_text('[run]\nmode = "live"\nthis is not toml\n')
    messages, seen = run_agent(project, drygate_hooks(project), session_id=str(uuid.uuid4()))
    assert state(project) == {"notes.txt": "notes v1\n"}
    assert all("guard failure" in str(r["content"]) for r in seen)
    assert "guard_failure" in (project / ".drygate" / "alerts.jsonl").read_text()
    shutil.rmtree(project / ".drygate")
