"""drygate for the OpenAI Agents SDK: a tool input guardrail on every function tool.

    from agents import Agent, Runner, function_tool
    from drygate.adapters.openai_agents import Drygate

    dg = Drygate(gate, effects={"search": "read"})
    agent = Agent(name="ops", model=model, tools=dg.gate_tools([function_tool(put_object), ...]))

:meth:`Drygate.gate_tools` adds drygate's tool input guardrail (``ToolInputGuardrail``,
openai-agents 0.24) to each ``FunctionTool`` and, for tools the policy asks about, a
``needs_approval`` callable. The guardrail decides the call before the tool runs: allowed, it
returns ``allow()``; dry, denied or blocked, ``reject_content(<drygate's text>)``: the tool does
not run and the model gets "DRY RUN - NOT EXECUTED ..." as the tool's output, with nothing
raised or retried. ``ask`` uses the SDK's approvals: the run stops with
``result.interruptions``; after ``state.approve(item)`` and ``Runner.run(agent, state)`` the
call runs only if its arguments are those drygate asked about (the ask is journaled with the
call id and its arguments; :meth:`drygate.api.gate.Gate.decide_approved`).

The run: the current ``with gate.run(...)`` (the guardrail runs in the run's context), else
``run_id`` given here, else the gate's own run. MCP servers of the SDK take
:meth:`Drygate.mcp_guardrail` (``MCPServerStdio(..., tool_input_guardrails=[dg.mcp_guardrail(
"store")])``), which names their calls ``mcp__store__<tool>`` as the hook and the relay do, so
their plan steps are applied on that server; :meth:`Drygate.mcp_meta` as the server's
``tool_meta_resolver`` names the run in each call's ``_meta`` for a server behind the relay
(``drygate mcp``), the other line of defence. A tool function gated with drygate.tool as
well would be decided twice: give the SDK the plain function.
"""

import json

from agents import ToolGuardrailFunctionOutput, ToolInputGuardrail

from drygate.api import to_json

#: The host MCP tool calls decided here are journaled with (their steps run on the MCP server).
MCP_HOST = "openai-agents"


class Drygate:
    """Gate OpenAI Agents SDK function tools with a :class:`drygate.api.gate.Gate`.

    ``gate``; ``run_id``: the run of every call (default: the current drygate run, else the
    gate's own); ``mode``: the mode asked for runs it starts; ``effects``: ``{tool name: effect}``.
    ``guardrail`` is the ToolInputGuardrail to attach to tools yourself.
    """

    def __init__(self, gate, *, run_id=None, mode=None, effects=None):
        self.gate = gate
        self.run_id = run_id
        self.mode = mode
        self.effects = dict(effects or {})
        self.guardrail = ToolInputGuardrail(guardrail_function=self._check, name="drygate")

    def gate_tools(self, tools):
        """Attach drygate to each FunctionTool of ``tools`` (a list; other tools are returned
        unchanged); returns the list. Tools the policy asks about get ``needs_approval``."""
        for tool in tools:
            if not hasattr(tool, "on_invoke_tool"):
                continue
            guards = list(tool.tool_input_guardrails or [])
            if self.guardrail not in guards:
                tool.tool_input_guardrails = [self.guardrail] + guards
            if tool.needs_approval is False:
                tool.needs_approval = self._needs_approval(tool.name)
        return tools

    def _run(self):
        return self.gate.joined(self.run_id, self.mode)

    def _needs_approval(self, name):
        async def needs_approval(ctx, params, call_id):
            """True when the policy asks a human about this call (the ask is journaled then)."""
            from drygate.types import ToolCall

            tool_input = to_json(params)
            cls = self.gate.classify(ToolCall(name, tool_input, None, call_id), self.effects.get(name))
            if cls.action != "ask":
                return False
            decision = self.gate.decide(name, tool_input, effect=self.effects.get(name), run=self._run(),
                                        call_id=call_id)
            return decision.action == "ask"

        return needs_approval

    def mcp_guardrail(self, server_name):
        """The guardrail for the tools of one SDK MCP server (``MCPServerStdio(...,
        tool_input_guardrails=[dg.mcp_guardrail("store")])``): its calls are decided and
        journaled as ``mcp__<server_name>__<tool>``, the name the hook and the relay give MCP
        tools, so policy rules match them alike and their plan steps are applied on the
        server ``server_name`` of the project's ``.mcp.json``."""
        prefix = f"mcp__{server_name}__"
        return ToolInputGuardrail(guardrail_function=lambda data: self._check(data, prefix), name=f"drygate-{server_name}")

    def mcp_meta(self, context=None):
        """A ``tool_meta_resolver`` for SDK MCP servers: ``{"drygate/run_id": <the run>}`` in each
        call's ``_meta``, so a server behind drygate's relay puts the call in the same run."""
        return {"drygate/run_id": self._run().run_id}

    async def _check(self, data, prefix=""):
        context = data.context
        name = prefix + context.tool_name
        try:
            tool_input = to_json(json.loads(context.tool_arguments or "{}"))
        except ValueError:
            tool_input = {"arguments": context.tool_arguments}
        effect = self.effects.get(name)
        try:
            run = self._run()
        except Exception as e:  # the run cannot be recorded (the gate alerted): fail closed
            return ToolGuardrailFunctionOutput.reject_content(
                f"drygate BLOCKED this call: the gate failed ({type(e).__name__}: {e}). It was NOT executed.")
        approved = _approved(context, name)
        if approved:
            decision = self.gate.decide_approved(name, tool_input, effect=effect, run=run, call_id=context.tool_call_id,
                                                 host=MCP_HOST if prefix else None)
        else:
            decision = self.gate.decide(name, tool_input, effect=effect, run=run, call_id=context.tool_call_id,
                                        host=MCP_HOST if prefix else None)
        if decision.executes:
            return ToolGuardrailFunctionOutput.allow({"drygate": "allow"})
        return ToolGuardrailFunctionOutput.reject_content(
            decision.reason, self.gate.not_executed(decision, name, tool_input).as_dict())


def _approved(context, name):
    """True when a human approved this call through the SDK's approvals."""
    try:
        return context.is_tool_approved(name, context.tool_call_id) is True
    except Exception:
        return False
