"""drygate for fastmcp servers and proxies: a middleware around every ``tools/call``.

    from fastmcp import FastMCP
    from drygate.adapters.fastmcp import DrygateMiddleware

    mcp = FastMCP("store")
    mcp.add_middleware(DrygateMiddleware(drygate.open_gate(), effects={"query": "read"}))

:class:`DrygateMiddleware` implements ``Middleware.on_call_tool`` (fastmcp 4.x; checked
against 4.2.3), so it gates a server's own tools and, on a proxy
(``fastmcp.server.create_proxy``), the tools of the server behind it. Allowed: ``call_next``
runs the tool (a tool function gated with drygate.tool as well is not decided twice; any
other gated function it calls is decided: drygate.api.admitted admits only the tool's own
function). Dry, denied or blocked: the tool does not run and the client gets the answer
drygate's MCP relay gives (``isError: true``, drygate's "DRY RUN - NOT EXECUTED" text, and
``_meta["drygate"]`` with ``executed: false`` and the reference token), with no
``structuredContent``, so no client validates an invented value against the output schema.

The run: ``run_id`` given here; else, in a session (the handshake era), the run the session's
first call named in ``_meta["drygate/run_id"]`` (as with the relay) or the MCP session id, kept
for the whole session (naming another run later cannot leave a dry run); in the stateless
2026-07-28 era, where every request stands alone, the run each request names, else the gate's
own run (one per server process). A stateless client that names a fresh run per request gets
fresh runs: with a sticky policy, name one run for the whole agent.
Calls are journaled as Python tool calls (host ``python``) under the tool's name, so their plan
steps are applied through the functions the project declares in ``[python] appliable``.
"""

from fastmcp.server.middleware import Middleware
from fastmcp.tools.base import ToolResult

from drygate.api import admitted, to_json

RUN_META = "drygate/run_id"
#: The request ``_meta`` key of the protocol version in the stateless era (2026-07-28), where
#: every request stands alone and a "session id" is new per request.
STATELESS_META = "io.modelcontextprotocol/protocolVersion"
STATELESS_ERA = "2026-07-28"


class DrygateMiddleware(Middleware):
    """A fastmcp middleware gating every tool call with a :class:`drygate.api.gate.Gate`.

    ``gate``; ``run_id``: one run for every call (default: see the module docstring);
    ``mode``: the mode asked for runs it starts; ``effects``: ``{tool name: effect}``.
    """

    def __init__(self, gate, *, run_id=None, mode=None, effects=None):
        self.gate = gate
        self.run_id = run_id
        self.mode = mode
        self.effects = dict(effects or {})
        self._session_runs = {}

    def _run_id(self, context):
        if self.run_id:
            return self.run_id
        ctx = context.fastmcp_context
        try:
            meta = dict(ctx.request_context.meta or {}) if ctx is not None else {}
        except Exception:
            meta = {}
        named = meta.get(RUN_META)
        if meta.get(STATELESS_META, "") >= STATELESS_ERA:
            return str(named) if named else None  # no session: each request names its run, else the gate's
        try:
            session = ctx.session_id if ctx is not None else None
        except Exception:
            session = None
        if session is None:
            return str(named) if named else None
        if session not in self._session_runs:
            if len(self._session_runs) >= 4096:
                self._session_runs.pop(next(iter(self._session_runs)))
            self._session_runs[session] = str(named) if named else session
        return self._session_runs[session]

    async def on_call_tool(self, context, call_next):
        params = context.message
        name = params.name
        tool_input = to_json(params.arguments or {})
        try:
            run = self.gate.joined(self._run_id(context), self.mode)
        except Exception as e:  # the run cannot be recorded (the gate alerted): fail closed
            return _not_executed(f"drygate BLOCKED this call: the gate failed ({type(e).__name__}: {e}). It was NOT "
                                 f"executed.", {"executed": False, "decision": "error"})
        decision = self.gate.decide(name, tool_input, effect=self.effects.get(name), run=run)
        if decision.executes:
            with admitted(name, await _tool_function(context, name), run):  # only that tool's own function
                return await call_next(context)
        meta = self.gate.not_executed(decision, name, tool_input).as_dict()
        return _not_executed(decision.reason, meta)


async def _tool_function(context, name):
    """The Python function of the server's tool ``name`` (a FunctionTool's ``fn``), or None
    (a proxied or other tool: drygate.api.admitted then admits by name)."""
    try:
        tool = await context.fastmcp_context.fastmcp.get_tool(name)
    except Exception:
        return None
    return getattr(tool, "fn", None)


def _not_executed(text, meta):
    return ToolResult(content=text, meta={"drygate": meta}, is_error=True)
