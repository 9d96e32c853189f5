"""drygate: a run-wide dry-run gate for AI-agent tool calls.

This module deliberately imports nothing: the Claude Code hook starts a fresh
interpreter for every tool call, and every import on that path is paid per call
(see bench/hook_startup.py). Import the submodules you need.
"""

__version__ = "0.1.0"
