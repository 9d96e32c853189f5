"""The incident as a LangChain agent (create_agent, LangGraph) under drygate: a dry run, its
plan, then apply.

Run: python examples/python/langchain/agent.py   (needs `pip install 'drygate[langchain]'`)
The model is a scripted BaseChatModel (LangChain's fake-model pattern), so it runs offline.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE)]

from langchain.agents import create_agent  # noqa: E402
from langchain_core.language_models.chat_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, ToolMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402
from langchain_core.tools import StructuredTool  # noqa: E402

import drygate  # noqa: E402
import incident_tools  # noqa: E402
from drygate.adapters.langchain import DrygateMiddleware  # noqa: E402
from world import make_world, next_move, policy_text, world_state  # noqa: E402


class ScriptedModel(BaseChatModel):
    @property
    def _llm_type(self):
        return "scripted"

    def bind_tools(self, tools, **kwargs):
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        results = [m.content for m in messages if isinstance(m, ToolMessage)]
        if results:
            print(f"  the model sees: {results[-1][:70]}")
        move = next_move(results)
        message = AIMessage(content="done") if move is None else AIMessage(
            content="", tool_calls=[{"name": move[0], "args": move[1], "id": f"call-{len(results)}"}])
        return ChatResult(generations=[ChatGeneration(message=message)])


make_world()
gate = drygate.open_gate(policy=policy_text(), store=drygate.MemoryStore())  # open_gate() in a project
tools = [StructuredTool.from_function(incident_tools.put_object), StructuredTool.from_function(incident_tools.query)]
agent = create_agent(ScriptedModel(), tools, middleware=[DrygateMiddleware(gate)])

print("dry run (the policy is sticky; object-store puts are in dry scope):")
out = agent.invoke({"messages": [{"role": "user", "content": "Upload the Q3 report and record it."}]},
                   {"configurable": {"thread_id": "langchain-demo"}})   # the thread id is the run
print("  agent output:", out["messages"][-1].content)
print("  the world after the dry run:", world_state())
plan = gate.plan("langchain-demo")
for step in plan["steps"]:
    print(f"  plan step {step['step']}: {step['summary']}")
# The agent's query went through the framework, which hands drygate no raw result to re-check
# at apply: accepting that read unchecked is explicit and journaled with the plan's hash.
print("apply:", gate.apply(plan, accept_unchecked=True)["status"])
print("  the world after apply:", world_state())
