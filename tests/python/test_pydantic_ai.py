"""drygate.adapters.pydantic_ai with the real pydantic-ai package, driven by its FunctionModel
(offline): the incident's tools, a dry run, plan, apply, approvals."""

import pytest

pytest.importorskip("pydantic_ai")

from pydantic_ai import Agent, DeferredToolRequests, DeferredToolResults, ToolApproved  # noqa: E402
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, ToolReturnPart  # noqa: E402
from pydantic_ai.models.function import FunctionModel  # noqa: E402

import drygate  # noqa: E402
from drygate.adapters.pydantic_ai import Drygate  # noqa: E402
from drygate.testing import capture  # noqa: E402

from .agent_script import NOT_EXECUTED, next_call  # noqa: E402


def scripted_model(seen):
    """A FunctionModel playing the scripted agent; ``seen`` collects what it read back."""
    def respond(messages, info):
        returns = [p for m in messages for p in getattr(m, "parts", []) if isinstance(p, ToolReturnPart)]
        seen[:] = [r.content for r in returns]
        call = next_call(seen)
        if call is None:
            return ModelResponse(parts=[TextPart("done")])
        return ModelResponse(parts=[ToolCallPart(call[0], call[1], tool_call_id=f"call-{len(seen)}")])

    return FunctionModel(respond)


def agent(capabilities=(), **kw):
    import incident_tools

    seen = []
    a = Agent(scripted_model(seen), tools=[incident_tools.put_object, incident_tools.query],
              capabilities=list(capabilities), **kw)
    return a, seen


def test_a_dry_run_changes_nothing_and_plan_then_apply_reproduce_the_live_run(incident, monkeypatch):
    live = incident.make("live")
    monkeypatch.setenv("STORE_DIR", str(live.objects))
    monkeypatch.setenv("STORE_DB", str(live.db))
    a, _ = agent()
    assert a.run_sync("go").output == "done"
    expected = live.state()
    monkeypatch.setenv("STORE_DIR", str(incident.objects))
    monkeypatch.setenv("STORE_DB", str(incident.db))

    before = incident.state()
    gate = drygate.open_gate(incident.root)
    a, seen = agent([Drygate(gate, run_id="pai-run")])
    with capture(gate) as cap:
        result = a.run_sync("go")  # default retries: a dry result is not a retry
    assert result.output == "done"
    assert incident.state() == before
    assert cap.actions() == ["allow", "dry", "dry", "dry", "dry"]
    assert seen[0] == {"rows": [["old.txt"]]}
    assert all(NOT_EXECUTED in seen[i] for i in (1, 2, 3, 4))
    retries = [p for m in result.all_messages() for p in m.parts if p.part_kind == "retry-prompt"]
    assert retries == []
    gate.close()
    r = incident.drygate("plan", "pai-run", "--out", "plan.json")
    assert r.returncode == 0, r.stderr
    r = incident.drygate("apply", "plan.json", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert incident.state() == expected


def test_many_dry_writes_to_one_tool_do_not_end_the_run():
    """Issue 12 item 7: with pydantic-ai's defaults (1 retry) the second dry write used to end the run."""
    calls = []

    def write(n: int) -> str:
        calls.append(n)
        return "written"

    def respond(messages, info):
        n = sum(1 for m in messages for p in getattr(m, "parts", []) if isinstance(p, ToolReturnPart))
        if n < 5:
            return ModelResponse(parts=[ToolCallPart("write", {"n": n}, tool_call_id=f"w{n}")])
        return ModelResponse(parts=[TextPart("done")])

    gate = drygate.open_gate(policy={"run": {"mode": "dry"}}, store=drygate.MemoryStore())
    a = Agent(FunctionModel(respond), tools=[write], capabilities=[Drygate(gate)])
    assert a.run_sync("go").output == "done"
    assert calls == []


def test_a_tool_gated_with_the_decorator_is_decided_once_and_keeps_its_declared_effect():
    calls = []

    @drygate.tool(effect="read")
    def lookup(q: str) -> str:
        calls.append(q)
        return "found"

    def respond(messages, info):
        n = sum(1 for m in messages for p in getattr(m, "parts", []) if isinstance(p, ToolReturnPart))
        if n == 0:
            return ModelResponse(parts=[ToolCallPart("lookup", {"q": "x"}, tool_call_id="l0")])
        return ModelResponse(parts=[TextPart("done")])

    gate = drygate.open_gate(policy={"run": {"mode": "dry"}}, store=drygate.MemoryStore())
    a = Agent(FunctionModel(respond), tools=[lookup], capabilities=[Drygate(gate)])
    with capture(gate) as cap, gate.run():
        a.run_sync("go")
    assert calls == ["x"] and cap.actions() == ["allow"]


def test_ask_uses_pydantic_ai_approvals_bound_to_the_exact_arguments(incident):
    policy = {"run": {"mode": "live"}, "rules": [{"tool": "put_object", "effect": "write", "action": "ask"},
                                                 {"tool": "query", "effect": "read"}]}
    gate = drygate.open_gate(policy=policy, store=drygate.MemoryStore())

    def run_once(history=None, results=None):
        a, seen = agent([Drygate(gate, run_id="approvals")], output_type=[str, DeferredToolRequests])
        return a.run_sync("go", message_history=history, deferred_tool_results=results)

    first = run_once()
    assert isinstance(first.output, DeferredToolRequests)
    [asked] = first.output.approvals
    assert asked.tool_name == "put_object" and not incident.state()[0]
    meta = first.output.metadata[asked.tool_call_id]["drygate"]
    assert meta["arguments"]["key"] == "q3.txt"
    # Approved with other arguments than drygate showed: denied, nothing written.
    changed = DeferredToolResults(approvals={asked.tool_call_id: ToolApproved(
        override_args={"bucket": "reports", "key": "evil.txt", "body": "x"})})
    second = run_once(first.all_messages(), changed)
    assert not incident.state()[0]
    returns = [p for m in second.all_messages() for p in m.parts if isinstance(p, ToolReturnPart)]
    assert "approval was given for other arguments" in str(returns[-1].content)
    # Approved as shown: it runs.
    third = run_once(first.all_messages(), DeferredToolResults(approvals={asked.tool_call_id: True}))
    assert "reports/q3.txt" in incident.state()[0]
    assert third.output is not None


def test_a_conversation_is_one_run_so_a_dry_run_stays_dry_on_the_next_turn():
    calls = []

    def put(key: str) -> str:
        calls.append(key)
        return "stored"

    def respond(messages, info):
        last = messages[-1].parts[-1]
        if isinstance(last, ToolReturnPart):
            return ModelResponse(parts=[TextPart("done")])
        return ModelResponse(parts=[ToolCallPart("put", {"key": last.content}, tool_call_id=f"p-{len(messages)}")])

    policy = {"run": {"mode": "sticky"}, "rules": [{"tool": "put", "input_regex": {"key": "^rehearse"},
                                                   "effect": "write", "dry": True}]}
    gate = drygate.open_gate(policy=policy, store=drygate.MemoryStore())
    agent = Agent(FunctionModel(respond), tools=[put], capabilities=[Drygate(gate)])
    first = agent.run_sync("rehearse-1")  # dry scope: the conversation's run goes dry
    second = agent.run_sync("real-write", message_history=first.all_messages())  # next turn, same conversation
    assert calls == []
    third = agent.run_sync("real-write")  # a new conversation: a new run
    assert calls == ["real-write"]
    assert first.output == second.output == third.output == "done"


def test_a_locked_store_blocks_the_tool_and_the_model_is_told(incident):
    """A real fault: another connection holds the SQLite store's write lock past the deadline."""
    import sqlite3

    text = (incident.root / "drygate.toml").read_text().replace("[run]", "[gate]\ndeadline_ms = 100\n\n[run]")
    (incident.root / "drygate.toml").write_text(text)
    gate = drygate.open_gate(incident.root)
    with gate.run("locked", mode="live"):
        a, seen = agent([Drygate(gate)])
        locker = sqlite3.connect(incident.root / ".drygate" / "state.db", isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            with capture(gate) as cap:
                result = a.run_sync("go")
        finally:
            locker.execute("ROLLBACK")
    assert result.output == "done"
    assert set(cap.actions()) == {"error"} and cap.alerts and cap.alerts[0]["cause"] == "store_timeout"
    assert "BLOCKED" in str(seen[0]) and incident.state()[0] == {}
