"""The incident as a Pydantic AI agent under drygate: a dry run, its plan, then apply.

Run: python examples/python/pydantic_ai/agent.py   (needs `pip install 'drygate[pydantic-ai]'`)
The model is Pydantic AI's FunctionModel playing a script, so it runs offline.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE)]

from pydantic_ai import Agent  # noqa: E402
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, ToolReturnPart  # noqa: E402
from pydantic_ai.models.function import FunctionModel  # noqa: E402

import drygate  # noqa: E402
import incident_tools  # noqa: E402
from drygate.adapters.pydantic_ai import Drygate  # noqa: E402
from world import make_world, next_move, policy_text, world_state  # noqa: E402


def model(messages, info):
    results = [p.content for m in messages for p in m.parts if isinstance(p, ToolReturnPart)]
    if results:
        print(f"  the model sees: {str(results[-1])[:70]}")
    move = next_move(results)
    if move is None:
        return ModelResponse(parts=[TextPart("done")])
    return ModelResponse(parts=[ToolCallPart(move[0], move[1], tool_call_id=f"call-{len(results)}")])


make_world()
gate = drygate.open_gate(policy=policy_text(), store=drygate.MemoryStore())  # open_gate() in a project
agent = Agent(FunctionModel(model), tools=[incident_tools.put_object, incident_tools.query],
              capabilities=[Drygate(gate, run_id="pydantic-ai-demo")])

print("dry run (the policy is sticky; object-store puts are in dry scope):")
print("  agent output:", agent.run_sync("Upload the Q3 report and record it.").output)
print("  the world after the dry run:", world_state())
plan = gate.plan("pydantic-ai-demo")
for step in plan["steps"]:
    print(f"  plan step {step['step']}: {step['summary']}")
print("apply:", gate.apply(plan)["status"])
print("  the world after apply:", world_state())
