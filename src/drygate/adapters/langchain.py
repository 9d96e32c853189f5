"""drygate for LangChain / LangGraph agents: an agent middleware around every tool call.

    from langchain.agents import create_agent
    from drygate.adapters.langchain import DrygateMiddleware

    agent = create_agent(model, tools, middleware=[DrygateMiddleware(gate, effects={"search": "read"})],
                         checkpointer=InMemorySaver())          # a checkpointer only for `ask`
    agent.invoke({"messages": [...]}, {"configurable": {"thread_id": "t-1"}})

:class:`DrygateMiddleware` implements ``AgentMiddleware.wrap_tool_call`` and
``awrap_tool_call`` (langchain 1.x; checked against 1.5.2 with langgraph 1.2.24): each call
is decided before the tool runs. Allowed: the handler runs the tool (a tool function gated
with drygate.tool as well is not decided twice; any other gated function the tool calls is
decided: drygate.api.admitted admits only the tool's own ``func``/``coroutine``). Dry, denied or blocked: the tool does not
run and the agent gets a ``ToolMessage`` whose text is drygate's "DRY RUN - NOT EXECUTED
..." (``artifact={"drygate": {...,"executed": False}}`` for code), not an exception: nothing
retries it and the graph goes on. ``ask``: LangGraph's native approval, an ``interrupt``
carrying the exact arguments and their fingerprint; resume with
``Command(resume={"approve": True, "fingerprint": <the one shown>})`` (or ``True``). The
call runs only when the arguments are still those drygate asked about
(:meth:`drygate.api.gate.Gate.decide_approved`), and any other answer is a denial.

The run: the current drygate run when the agent is invoked inside ``with gate.run(...)``,
else ``run_id`` given here, else the LangGraph ``thread_id`` of the invocation (so every
turn of a conversation is one run), else the gate's own run. The effect: a policy rule,
then ``effects`` given here, then the effect declared with drygate.tool on the tool's
function, else unknown.
"""

from typing import Any

from langchain.agents.middleware import AgentMiddleware

from drygate.api import admitted, spec_of, to_json


class DrygateMiddleware(AgentMiddleware):
    """LangChain agent middleware gating every tool call with a drygate gate.

    ``gate``: a :class:`drygate.api.gate.Gate`; ``run_id``: the run of every call (default:
    see the module docstring); ``mode``: the mode asked for runs it starts; ``effects``:
    ``{tool name: effect}``.
    """

    def __init__(self, gate, *, run_id=None, mode=None, effects=None):
        super().__init__()
        self.gate = gate
        self.run_id = run_id
        self.mode = mode
        self.effects = dict(effects or {})

    # -- the two entry points -------------------------------------------------------------

    def wrap_tool_call(self, request, handler):
        verdict, run = self._decide(request)
        if verdict is not None:
            return verdict
        with admitted(*_admission(request), run=run):  # helpers the tool calls are decided in this run
            return handler(request)

    async def awrap_tool_call(self, request, handler):
        verdict, run = self._decide(request)
        if verdict is not None:
            return verdict
        with admitted(*_admission(request), run=run):  # helpers the tool calls are decided in this run
            return await handler(request)

    # -- deciding -------------------------------------------------------------------------

    def _decide(self, request):
        """(None, the run) when the tool may run, else (the ToolMessage standing for it, None)."""
        call = request.tool_call
        name = call["name"]
        tool_input = to_json(call.get("args") or {})
        effect = self.effects.get(name) or _declared_effect(request.tool)
        gate = self.gate
        try:
            run = gate.joined(self.run_id or _thread_id(request), self.mode)
        except Exception as e:  # the run cannot be recorded (the gate alerted): fail closed
            return _message(call, f"drygate BLOCKED this call: the gate failed ({type(e).__name__}: {e}). It was NOT "
                                  f"executed.", None), None
        decision = gate.decide(name, tool_input, effect=effect, run=run, call_id=call.get("id"))
        if decision.action == "ask":
            decision = self._ask(gate, run, name, tool_input, effect, call, decision)
        if decision.executes:
            return None, run
        return _message(call, decision.reason, gate.not_executed(decision, name, tool_input).as_dict()), None

    def _ask(self, gate, run, name, tool_input, effect, call, decision):
        from langgraph.types import interrupt

        from drygate.plan.fingerprint import fingerprint

        shown = fingerprint(tool_input)
        answer = interrupt({"drygate": {"tool": name, "arguments": tool_input, "fingerprint": shown,
                                        "run_id": run.run_id, "call": decision.call, "reason": decision.reason}})
        approved = answer is True or (isinstance(answer, dict) and answer.get("approve") is True)
        if not approved:
            from drygate.types import Decision

            return Decision("deny", "drygate DENIED this call: a human did not approve it. The call was NOT executed.",
                            decision.effect, "approval", run_id=run.run_id, call=decision.call)
        if isinstance(answer, dict) and answer.get("fingerprint") not in (None, shown):
            from drygate.types import Decision

            return Decision("deny", "drygate DENIED this call: the approval was given for other arguments than the "
                            "ones it would run with (an approval holds for the exact arguments shown). The call was "
                            "NOT executed.", decision.effect, "approval", run_id=run.run_id, call=decision.call)
        return gate.decide_approved(name, tool_input, effect=effect, run=run, call_id=call.get("id"))


def _message(call, text, data):
    from langchain_core.messages import ToolMessage

    return ToolMessage(content=text, tool_call_id=call.get("id") or "", name=call.get("name"),
                       artifact={"drygate": data} if data is not None else None)


def _admission(request):
    """(name, functions) of the decided tool for drygate.api.admitted: the functions a
    StructuredTool runs (``func``/``coroutine``); None (admit by name) for another BaseTool."""
    tool = request.tool
    fns = [getattr(tool, attr, None) for attr in ("func", "coroutine")]
    fns = [f for f in fns if callable(f)]
    return request.tool_call["name"], (fns or None)


def _declared_effect(tool):
    """The effect declared with drygate.tool on a LangChain tool's function, if any."""
    for attr in ("func", "coroutine"):
        spec = spec_of(getattr(tool, attr, None))
        if spec is not None:
            return spec.effect
    return None


def _thread_id(request) -> Any:
    """The LangGraph ``thread_id`` of the invocation this call belongs to, or None."""
    runtime = getattr(request, "runtime", None)
    config = getattr(runtime, "config", None)
    if not config:
        try:
            from langgraph.config import get_config

            config = get_config()
        except Exception:
            return None
    return ((config or {}).get("configurable") or {}).get("thread_id")
