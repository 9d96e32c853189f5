"""The incident as an OpenAI Agents SDK agent under drygate: a dry run, its plan, then apply.

Run: python examples/python/openai_agents/agent.py   (needs `pip install 'drygate[openai-agents]'`)
The model is the SDK's own agents.testing.ScriptedModel, so it runs offline.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE)]

from agents import Agent, Runner, function_tool, set_tracing_disabled  # noqa: E402
from agents.testing.model import ModelStep, ScriptedModel, assistant_message, function_call  # noqa: E402

import drygate  # noqa: E402
import incident_tools  # noqa: E402
from drygate.adapters.openai_agents import Drygate  # noqa: E402
from world import make_world, next_move, policy_text, world_state  # noqa: E402

set_tracing_disabled(True)


def respond(call):
    results = [i["output"] for i in call.input if isinstance(i, dict) and i.get("type") == "function_call_output"]
    if results:
        print(f"  the model sees: {str(results[-1])[:70]}")
    move = next_move([_as_json(r) for r in results])
    return [assistant_message("done")] if move is None else [function_call(*move, call_id=f"call-{len(results)}")]


def _as_json(text):
    """The SDK hands the model str(dict) for a dict result; the script reads JSON."""
    import ast
    import json

    try:
        return json.dumps(ast.literal_eval(text))
    except (ValueError, SyntaxError):
        return text


make_world()
gate = drygate.open_gate(policy=policy_text(), store=drygate.MemoryStore())  # open_gate() in a project
dg = Drygate(gate, run_id="openai-agents-demo")
agent = Agent(name="ops", model=ScriptedModel([ModelStep.respond(respond) for _ in range(6)]),
              tools=dg.gate_tools([function_tool(incident_tools.put_object), function_tool(incident_tools.query)]))

print("dry run (the policy is sticky; object-store puts are in dry scope):")
print("  agent output:", Runner.run_sync(agent, "Upload the Q3 report and record it.").final_output)
print("  the world after the dry run:", world_state())
plan = gate.plan("openai-agents-demo")
for step in plan["steps"]:
    print(f"  plan step {step['step']}: {step['summary']}")
# The agent's query went through the framework, which hands drygate no raw result to re-check
# at apply: accepting that read unchecked is explicit and journaled with the plan's hash.
print("apply:", gate.apply(plan, accept_unchecked=True)["status"])
print("  the world after apply:", world_state())
