"""drygate.adapters.openai_agents with the real openai-agents package, driven by its own
agents.testing.ScriptedModel (offline): the incident's tools, plan, apply, approvals."""

import pytest

pytest.importorskip("agents")

from agents import Agent, Runner, function_tool, set_tracing_disabled  # noqa: E402
from agents.testing.model import ModelStep, ScriptedModel, assistant_message, function_call  # noqa: E402

import drygate  # noqa: E402
from drygate.adapters.openai_agents import Drygate  # noqa: E402
from drygate.testing import capture  # noqa: E402

from .agent_script import NOT_EXECUTED, next_call  # noqa: E402
from .conftest import REPO  # noqa: E402

set_tracing_disabled(True)


def scripted(seen, steps=8):
    def respond(call):
        outputs = [_text(i.get("output")) for i in call.input
                   if isinstance(i, dict) and i.get("type") == "function_call_output"]
        seen[:] = outputs
        move = next_call(outputs)
        if move is None:
            return [assistant_message("done")]
        return [function_call(move[0], move[1], call_id=f"call-{len(outputs)}")]

    return ScriptedModel([ModelStep.respond(respond) for _ in range(steps)])


def _text(output):
    """A function tool's output (str), or an MCP tool's (a list of input_text items) as one text."""
    if isinstance(output, list):
        return "".join(item.get("text", "") for item in output if isinstance(item, dict))
    return output


def incident_agent(dg=None, seen=None):
    import incident_tools

    tools = [function_tool(incident_tools.put_object), function_tool(incident_tools.query)]
    if dg is not None:
        tools = dg.gate_tools(tools)
    seen = [] if seen is None else seen
    return Agent(name="ops", model=scripted(seen), tools=tools), seen


def test_a_dry_run_changes_nothing_and_plan_then_apply_reproduce_the_live_run(incident, monkeypatch):
    live = incident.make("live")
    monkeypatch.setenv("STORE_DIR", str(live.objects))
    monkeypatch.setenv("STORE_DB", str(live.db))
    agent, _ = incident_agent()
    assert Runner.run_sync(agent, "go").final_output == "done"
    expected = live.state()
    monkeypatch.setenv("STORE_DIR", str(incident.objects))
    monkeypatch.setenv("STORE_DB", str(incident.db))

    before = incident.state()
    gate = drygate.open_gate(incident.root)
    agent, seen = incident_agent(Drygate(gate, run_id="oa-run"))
    with capture(gate) as cap:
        result = Runner.run_sync(agent, "go")
    assert result.final_output == "done"
    assert incident.state() == before
    assert cap.actions() == ["allow", "dry", "dry", "dry", "dry"]
    assert all(NOT_EXECUTED in seen[i] for i in (1, 2, 3, 4))
    gate.close()
    r = incident.drygate("plan", "oa-run", "--out", "plan.json")
    assert r.returncode == 0, r.stderr
    # The agent's read through the guardrail journals no result: accepted explicitly (journaled).
    r = incident.drygate("apply", "plan.json", "--yes", "--accept-unchecked")
    assert r.returncode == 0, r.stdout + r.stderr
    assert incident.state() == expected


def test_ask_uses_the_sdk_approvals_and_runs_only_what_was_asked(incident):
    policy = {"run": {"mode": "live"}, "rules": [{"tool": "put_object", "effect": "write", "action": "ask"},
                                                 {"tool": "query", "effect": "read"}]}
    gate = drygate.open_gate(policy=policy, store=drygate.MemoryStore())
    dg = Drygate(gate, run_id="oa-approvals")
    agent, seen = incident_agent(dg)
    first = Runner.run_sync(agent, "go")
    [pending] = first.interruptions
    assert pending.name == "put_object" and not incident.state()[0]
    state = first.to_state()
    state.approve(pending)
    second = Runner.run_sync(agent, state)
    assert "reports/q3.txt" in incident.state()[0]
    approvals = [e for e in gate.store.journal("oa-approvals") if e.get("tool_name") == "drygate/approval"]
    assert len(approvals) == 1 and approvals[0]["call_id"] == pending.raw_item.call_id
    # The next put is asked about again; rejected, it does not run.
    [again] = second.interruptions
    state = second.to_state()
    state.reject(again)
    Runner.run_sync(agent, state)
    assert "reports/q4.txt" not in incident.state()[0]


STORE_SERVER = REPO / "examples" / "incident" / "store_server.py"
MCP_POLICY = """
[run]
mode = "sticky"

[[rules]]
tool = "mcp__store__put_object"
effect = "write"
dry = true

[[rules]]
tool = "mcp__store__query"
classify = "sql"
sql_argument = "sql"
sql_dialect = "sqlite"
"""


def test_mcp_server_tools_are_gated_as_mcp_tools_and_applied_on_the_server(incident, monkeypatch):
    """The incident's real MCP server (examples/incident) under MCPServerStdio: the guardrail
    names its calls mcp__store__*, so the plan's steps are MCP steps applied on the server."""
    import asyncio
    import json
    import sys

    from agents.mcp import MCPServerStdio

    def server(world):
        env = {"STORE_DIR": str(world.objects), "STORE_DB": str(world.db), "PATH": "/usr/bin:/bin"}
        return {"command": sys.executable, "args": [str(STORE_SERVER)], "env": env}

    async def play(world, dg=None):
        seen = []
        kwargs = {"tool_input_guardrails": [dg.mcp_guardrail("store")], "tool_meta_resolver": dg.mcp_meta} if dg else {}
        async with MCPServerStdio(params=server(world), name="store", cache_tools_list=True, **kwargs) as mcp:
            agent = Agent(name="ops", model=scripted(seen), mcp_servers=[mcp])
            result = await Runner.run(agent, "go")
        return result, seen

    live = incident.make("live")
    asyncio.run(play(live))
    expected = live.state()
    assert expected[0]  # the script really writes through the server

    (incident.root / "drygate.toml").write_text(MCP_POLICY)
    (incident.root / ".mcp.json").write_text(json.dumps({"mcpServers": {"store": server(incident)}}))
    before = incident.state()
    gate = drygate.open_gate(incident.root)
    dg = Drygate(gate, run_id="oa-mcp")
    with capture(gate) as cap:
        result, seen = asyncio.run(play(incident, dg))
    assert result.final_output == "done" and incident.state() == before
    assert cap.tools() == ["mcp__store__query"] + ["mcp__store__put_object", "mcp__store__query"] * 2
    assert cap.actions() == ["allow", "dry", "dry", "dry", "dry"]
    assert all(NOT_EXECUTED in str(seen[i]) for i in (1, 2, 3, 4))
    assert str(seen[1]).count("drygate:ref:2 (its whole result)") == 1
    assert dg.mcp_meta() == {"drygate/run_id": "oa-mcp"}
    gate.close()
    r = incident.drygate("plan", "oa-mcp", "--out", "plan.json")
    assert r.returncode == 0, r.stderr
    plan = json.loads((incident.root / "plan.json").read_text())
    assert {s["executor"]["kind"] for s in plan["steps"]} == {"mcp"}
    # The agent's read through the guardrail journals no result: accepted explicitly (journaled).
    r = incident.drygate("apply", "plan.json", "--yes", "--accept-unchecked")
    assert r.returncode == 0, r.stdout + r.stderr
    assert incident.state() == expected
