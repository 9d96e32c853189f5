"""Enforcement points: thin translators between a host and the gate.

Each one turns the host's input into a :class:`drygate.types.ToolCall`, asks the
gate, turns the decision into the host's output, and fails closed on anything
unexpected.

- :mod:`drygate.enforcement.claude_code`: the Claude Code hook (``drygate hook claude-code``);
- :mod:`drygate.enforcement.install`: writes the hook into ``.claude/settings.json``;
- :mod:`drygate.enforcement.transcript`: reads Claude Code session transcripts (replay).
"""
