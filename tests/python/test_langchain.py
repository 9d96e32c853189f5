"""drygate.adapters.langchain with the real langchain/langgraph packages, driven by a scripted
chat model (offline): the incident's tools, thread ids as runs, plan, apply, interrupts."""

import asyncio

import pytest

pytest.importorskip("langchain.agents")

from langchain.agents import create_agent  # noqa: E402
from langchain_core.language_models.chat_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, ToolMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402
from langchain_core.tools import StructuredTool  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.types import Command  # noqa: E402

import drygate  # noqa: E402
from drygate.adapters.langchain import DrygateMiddleware  # noqa: E402
from drygate.testing import capture  # noqa: E402

from .agent_script import NOT_EXECUTED, next_call  # noqa: E402


class ScriptedChatModel(BaseChatModel):
    """LangChain's fake-model pattern (a BaseChatModel answering from a script): it plays
    agent_script.next_call over the ToolMessages it has seen. (GenericFakeChatModel has no
    bind_tools, which create_agent needs.)"""

    seen: list = []

    @property
    def _llm_type(self):
        return "drygate-scripted"

    def bind_tools(self, tools, **kwargs):
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        results = [m.content for m in messages if isinstance(m, ToolMessage)]
        self.seen[:] = results
        call = next_call(results)
        if call is None:
            message = AIMessage(content="done")
        else:
            message = AIMessage(content="", tool_calls=[{"name": call[0], "args": call[1], "id": f"c{len(results)}"}])
        return ChatResult(generations=[ChatGeneration(message=message)])


def incident_agent(middleware=(), **kw):
    import incident_tools

    tools = [StructuredTool.from_function(incident_tools.put_object), StructuredTool.from_function(incident_tools.query)]
    model = ScriptedChatModel(seen=[])
    return create_agent(model, tools, middleware=list(middleware), **kw), model


def go(agent, thread="thread-1", payload=None):
    return agent.invoke(payload or {"messages": [{"role": "user", "content": "go"}]},
                        {"configurable": {"thread_id": thread}})


def test_a_dry_run_changes_nothing_and_plan_then_apply_reproduce_the_live_run(incident, monkeypatch):
    live = incident.make("live")
    monkeypatch.setenv("STORE_DIR", str(live.objects))
    monkeypatch.setenv("STORE_DB", str(live.db))
    agent, _ = incident_agent()
    assert go(agent)["messages"][-1].content == "done"
    expected = live.state()
    monkeypatch.setenv("STORE_DIR", str(incident.objects))
    monkeypatch.setenv("STORE_DB", str(incident.db))

    before = incident.state()
    gate = drygate.open_gate(incident.root)
    agent, model = incident_agent([DrygateMiddleware(gate)])
    with capture(gate) as cap:
        out = go(agent, thread="lc-thread-7")
    assert out["messages"][-1].content == "done"
    assert incident.state() == before
    assert cap.actions() == ["allow", "dry", "dry", "dry", "dry"]
    assert {c.run_id for c, _ in cap.decisions} == {"lc-thread-7"}  # the thread id is the run
    assert all(NOT_EXECUTED in model.seen[i] for i in (1, 2, 3, 4))
    dry = [m for m in out["messages"] if isinstance(m, ToolMessage)][1]
    assert dry.artifact["drygate"]["executed"] is False and dry.status == "success"
    gate.close()
    r = incident.drygate("plan", "lc-thread-7", "--out", "plan.json")
    assert r.returncode == 0, r.stderr
    refused = incident.drygate("apply", "plan.json", "--yes")  # the agent's read journaled no result
    assert refused.returncode != 0 and "cannot re-check" in refused.stdout + refused.stderr
    assert "query" in refused.stdout + refused.stderr
    r = incident.drygate("apply", "plan.json", "--yes", "--accept-unchecked")
    assert r.returncode == 0, r.stdout + r.stderr
    assert incident.state() == expected


def test_async_agents_and_decorated_tools_are_decided_once():
    calls = []

    @drygate.tool(effect="read")
    async def lookup(q: str) -> str:
        """Look something up."""
        calls.append(q)
        return "found"

    class Model(ScriptedChatModel):
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            n = sum(1 for m in messages if isinstance(m, ToolMessage))
            message = AIMessage(content="", tool_calls=[{"name": "lookup", "args": {"q": "x"}, "id": f"l{n}"}]) \
                if n < 2 else AIMessage(content="done")
            return ChatResult(generations=[ChatGeneration(message=message)])

    gate = drygate.open_gate(policy={"run": {"mode": "dry"}}, store=drygate.MemoryStore())
    agent = create_agent(Model(seen=[]), [StructuredTool.from_function(coroutine=lookup)],
                         middleware=[DrygateMiddleware(gate)])
    with capture(gate) as cap:
        asyncio.run(agent.ainvoke({"messages": [{"role": "user", "content": "go"}]},
                                  {"configurable": {"thread_id": "async-1"}}))
    assert calls == ["x", "x"] and cap.actions() == ["allow", "allow"]


def test_separate_threads_are_separate_runs(incident):
    policy = (incident.root / "drygate.toml").read_text()
    gate = drygate.open_gate(policy=policy, store=drygate.MemoryStore())
    agent, _ = incident_agent([DrygateMiddleware(gate)])
    go(agent, thread="a")
    assert gate.store.get_run("a").is_dry and gate.store.get_run("b") is None
    assert not incident.state()[0]


def test_ask_uses_langgraph_interrupts_bound_to_the_exact_arguments(incident):
    policy = {"run": {"mode": "live"}, "rules": [{"tool": "put_object", "effect": "write", "action": "ask"},
                                                 {"tool": "query", "effect": "read"}]}
    gate = drygate.open_gate(policy=policy, store=drygate.MemoryStore())
    agent, model = incident_agent([DrygateMiddleware(gate)], checkpointer=InMemorySaver())
    first = go(agent, thread="hitl")
    [pending] = first["__interrupt__"]
    shown = pending.value["drygate"]
    assert shown["tool"] == "put_object" and shown["arguments"]["key"] == "q3.txt"
    assert not incident.state()[0]
    # An approval for other arguments than these is a denial.
    out = go(agent, thread="hitl", payload=Command(resume={"approve": True, "fingerprint": "sha256:other"}))
    assert not incident.state()[0]
    assert "approval was given for other arguments" in model.seen[-1]
    assert out["messages"][-1].content == "done"

    agent, model = incident_agent([DrygateMiddleware(gate)], checkpointer=InMemorySaver())
    first = go(agent, thread="hitl-2")
    shown = first["__interrupt__"][0].value["drygate"]
    go(agent, thread="hitl-2", payload=Command(resume={"approve": True, "fingerprint": shown["fingerprint"]}))
    assert "reports/q3.txt" in incident.state()[0]


def test_drygate_wrap_gates_a_langchain_tool_list_without_the_middleware(incident):
    """The registry form: drygate.wrap over the agent's StructuredTools; the model reads the
    NotExecuted's text as the tool's output."""
    import incident_tools

    policy = (incident.root / "drygate.toml").read_text()
    gate = drygate.open_gate(policy=policy, store=drygate.MemoryStore())
    tools = drygate.wrap([StructuredTool.from_function(incident_tools.put_object),
                          StructuredTool.from_function(incident_tools.query)], gate=gate)
    model = ScriptedChatModel(seen=[])
    agent = create_agent(model, tools)
    with capture(gate) as cap:
        assert go(agent)["messages"][-1].content == "done"
    assert cap.actions() == ["allow", "dry", "dry", "dry", "dry"]
    assert all(NOT_EXECUTED in model.seen[i] for i in (1, 2, 3, 4))
    assert not incident.state()[0]
