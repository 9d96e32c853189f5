"""drygate for Pydantic AI: a capability around every tool call of an agent.

    from drygate.adapters.pydantic_ai import Drygate

    agent = Agent(model, tools=[...], capabilities=[Drygate(gate, effects={"get_user": "read"})])

:class:`Drygate` overrides ``AbstractCapability.wrap_tool_execute`` (pydantic-ai 2.x; checked
against 2.78): each call is decided before the tool runs. Allowed: the tool runs (a tool
gated with drygate.tool as well is not decided twice; any other gated function it calls is
decided: drygate.api.admitted admits only the tool's own function). Dry, denied or blocked: the tool does
not run, and the hook *returns* drygate's text as the tool's result, so the model reads "DRY
RUN - NOT EXECUTED ..." and Pydantic AI counts no retry (returning a value is not an error:
a dry result sent back as ``ModelRetry`` or an error ends the run after ``retries`` dry
writes to one tool, issue 12 item 7). ``ask``: the call is deferred with Pydantic AI's own
approvals (``ApprovalRequired``; give the agent ``output_type=[..., DeferredToolRequests]``);
on the resumed run an approved call runs only with the exact arguments drygate asked about
(:meth:`drygate.api.gate.Gate.decide_approved`).

The run: the current drygate run when the agent runs inside ``with gate.run(...)``, else
``run_id`` given here, else Pydantic AI's ``ctx.conversation_id`` (one conversation: the runs
that share a message history, so a sticky run that went dry stays dry on the next turn), else
``ctx.run_id``. The
tool's effect: a policy rule first, then ``effects`` given here, then the effect declared
with drygate.tool on the tool's function, then the tool definition's metadata
``{"drygate_effect": ...}``, else unknown.
"""

from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.capabilities import AbstractCapability

from drygate.api import admitted, to_json


@dataclass(init=False)
class Drygate(AbstractCapability[Any]):
    """A Pydantic AI capability gating every tool call with a :class:`drygate.api.gate.Gate`.

    ``gate``; ``run_id``: the run every call of this agent belongs to (default: see the
    module docstring); ``mode``: the mode asked for runs this capability starts (never
    looser than the policy); ``effects``: ``{tool name: effect}``.
    """

    gate: Any = None
    run_id: str | None = None
    mode: str | None = None
    effects: dict = field(default_factory=dict)

    def __init__(self, gate, *, run_id=None, mode=None, effects=None):
        self.gate = gate
        self.run_id = run_id
        self.mode = mode
        self.effects = dict(effects or {})

    @classmethod
    def get_serialization_name(cls):
        return None  # built in code with a live gate, not from an agent spec file

    def _effect(self, tool_def, toolset_tool=None):
        if tool_def.name in self.effects:
            return self.effects[tool_def.name]
        metadata = tool_def.metadata or {}
        return metadata.get("drygate_effect")

    async def wrap_tool_execute(self, ctx, *, call, tool_def, args, handler):
        from pydantic_ai.exceptions import ApprovalRequired

        gate = self.gate
        tool_input = to_json(args)
        effect = self._effect(tool_def) or _declared_effect(ctx, tool_def.name)
        try:
            run = gate.joined(self.run_id or getattr(ctx, "conversation_id", None) or getattr(ctx, "run_id", None),
                              self.mode)
        except Exception as e:  # the run cannot be recorded: fail closed
            return f"drygate BLOCKED this call: the gate failed ({type(e).__name__}: {e}). It was NOT executed."
        if ctx.tool_call_approved:
            decision = gate.decide_approved(tool_def.name, tool_input, effect=effect, run=run, call_id=call.tool_call_id)
        else:
            decision = gate.decide(tool_def.name, tool_input, effect=effect, run=run, call_id=call.tool_call_id)
        if decision.executes:
            with admitted(tool_def.name, _tool_function(ctx, tool_def.name), run):  # only that tool's own function
                value = await handler(args)
            gate.record_read(decision, tool_def.name, call.tool_call_id, value)  # the plan's basis
            return value
        if decision.action == "ask":
            raise ApprovalRequired(metadata={"drygate": {"run_id": run.run_id, "call": decision.call,
                                                         "reason": decision.reason, "arguments": tool_input}})
        return decision.reason


def _tool_function(ctx, name):
    """The Python function behind tool ``name`` of the agent's function toolsets, or None
    (an MCP or other toolset: drygate.api.admitted then admits by name)."""
    try:
        for toolset in getattr(ctx, "agent", None).toolsets if getattr(ctx, "agent", None) else ():
            tools = getattr(toolset, "tools", None)
            tool = tools.get(name) if isinstance(tools, dict) else None
            fn = getattr(getattr(tool, "function_schema", None), "function", None)
            if fn is not None:
                return fn
    except Exception:
        return None
    return None


def _declared_effect(ctx, name):
    """The effect declared with drygate.tool on the function behind tool ``name``, if any."""
    from drygate.api import spec_of

    spec = spec_of(_tool_function(ctx, name))
    return spec.effect if spec is not None else None
