"""Test helpers shipped with drygate (as httpx ships MockTransport and structlog capture_logs).

- :class:`drygate.state.memory.MemoryStore` (also ``drygate.MemoryStore``): an in-memory
  state store, so a test opens a gate with ``drygate.open_gate(policy=..., store=MemoryStore())``.
- :func:`capture`: records every decision and alert a gate makes inside a ``with`` block.

    with capture(gate) as seen:
        with gate.run(mode="dry"):
            put_object("b", "k", "x")
    assert seen.actions() == ["dry"]
    assert not seen.alerts
"""

import contextlib


class Captured:
    """What :func:`capture` saw: ``decisions`` (list of ``(ToolCall, Decision)``) and
    ``alerts`` (list of dicts ``{"kind", "cause", "reason", "tool_name", "run_id"}``)."""

    def __init__(self):
        self.decisions = []
        self.alerts = []

    def decided(self, call, decision):
        self.decisions.append((call, decision))

    def alerted(self, kind, cause, reason, call=None):
        self.alerts.append({"kind": kind, "cause": cause, "reason": reason,
                            "tool_name": getattr(call, "tool_name", None), "run_id": getattr(call, "run_id", None)})

    def actions(self):
        """The decisions' actions in order (``allow``, ``dry``, ``deny``, ``ask``, ``error``)."""
        return [d.action for _, d in self.decisions]

    def tools(self):
        """The decided tools' names in order."""
        return [c.tool_name for c, _ in self.decisions]

    def executed(self):
        """Names of the calls that were allowed to run, in order."""
        return [c.tool_name for c, d in self.decisions if d.executes]

    def not_executed(self):
        """Names of the calls that did not run (dry, denied, asked, blocked), in order."""
        return [c.tool_name for c, d in self.decisions if not d.executes]


@contextlib.contextmanager
def capture(gate):
    """Record ``gate``'s decisions and alerts while the block runs; yields a :class:`Captured`."""
    seen = Captured()
    remove = gate.observe(seen)
    try:
        yield seen
    finally:
        remove()
