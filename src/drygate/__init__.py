"""drygate: a run-wide dry-run gate for AI-agent tool calls.

This module deliberately imports nothing: the Claude Code hook starts a fresh
interpreter for every tool call, and every import on that path is paid per call
(see bench/hook_startup.py). The Python API's names (``drygate.open_gate``,
``drygate.tool``...) are resolved on first use (PEP 562 ``__getattr__``).
"""

__version__ = "0.1.0"

#: Public names of the Python API and the module each lives in (loaded on first access).
_LAZY = {
    "open_gate": "drygate.api.gate", "Gate": "drygate.api.gate", "Run": "drygate.api.gate",
    "current_run": "drygate.api.gate", "idempotency_key": "drygate.api.gate", "NoRunError": "drygate.api.gate",
    "tool": "drygate.api.tools", "wrap": "drygate.api.tools",
    "NotExecuted": "drygate.api.results", "NotExecutedError": "drygate.api.results",
    "MemoryStore": "drygate.state.memory",
    "DrygateError": "drygate.errors", "GuardFailure": "drygate.errors", "PolicyError": "drygate.errors",
    "ConfigError": "drygate.errors", "PlanError": "drygate.errors",
}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'drygate' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
