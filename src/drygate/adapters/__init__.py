"""drygate inside Python agent frameworks: one module per framework, each an optional extra.

Each adapter is a thin enforcement point (DESIGN.md): it turns the framework's tool call
into a call of :meth:`drygate.api.gate.Gate.decide`, runs the tool only when allowed, and
otherwise hands the framework drygate's "not executed" text as the tool's result (never an
error the framework would retry). Where the framework has native approvals, ``ask`` uses
them, bound to the exact arguments drygate asked about.

- :mod:`drygate.adapters.pydantic_ai`: a capability (``wrap_tool_execute``); ``pip install
  drygate[pydantic-ai]``.
- :mod:`drygate.adapters.langchain`: agent middleware (``wrap_tool_call``) for
  ``langchain.agents.create_agent`` / LangGraph; ``pip install drygate[langchain]``.
- :mod:`drygate.adapters.openai_agents`: a tool input guardrail (``reject_content``) and
  ``needs_approval``; ``pip install drygate[openai-agents]``.
- :mod:`drygate.adapters.claude_agent_sdk`: PreToolUse/PostToolUse callbacks deciding as the
  Claude Code hook does (also with ``setting_sources=[]``); ``pip install drygate[claude-agent-sdk]``.
- :mod:`drygate.adapters.fastmcp`: a middleware (``on_call_tool``) for fastmcp servers and
  proxies; ``pip install drygate[fastmcp]``.

Importing this package imports no framework.
"""
