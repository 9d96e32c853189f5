"""drygate's Python API: gate Python tool calls in-process, with the same runs, dry runs,
journal, plan and apply as the Claude Code hook and the MCP relay.

The public names are re-exported by ``drygate`` itself, lazily (``drygate.open_gate`` imports
this package on first use; ``import drygate`` stays free)::

    import drygate

    gate = drygate.open_gate()                   # the project's drygate.toml and store
    @drygate.tool(effect="write")
    def put_object(bucket: str, key: str, body: str) -> dict: ...

    with gate.run(mode="dry"):
        result = put_object("b", "k", "hello")   # not executed: a NotExecuted, falsy

Modules: :mod:`drygate.api.gate` (open a gate, runs, decisions), :mod:`drygate.api.tools`
(the decorator and registry wrapping), :mod:`drygate.api.results` (the honest
:class:`NotExecuted`), :mod:`drygate.api.executor` (apply's Python steps),
:mod:`drygate.testing` (capture for tests), :mod:`drygate.adapters` (frameworks).
"""

from drygate.api.gate import Gate, NoRunError, Run, current_run, idempotency_key, open_gate
from drygate.api.results import NotExecuted, NotExecutedError
from drygate.api.tools import admitted, spec_of, to_json, tool, wrap

__all__ = ["Gate", "NoRunError", "NotExecuted", "NotExecutedError", "Run", "admitted", "current_run",
           "idempotency_key", "open_gate", "spec_of", "to_json", "tool", "wrap"]
