"""Classifiers: what a tool call does to the world (its effect), from built-in knowledge.

Every classifier has one shape: ``classify(call, context) -> Classification | None``
(None means "not mine"). The engine asks the policy first, then these in order,
then falls back to ``unknown``, which is treated as a write.

- :mod:`drygate.classifiers.claude_code`: Claude Code's own tools (data table);
- :mod:`drygate.classifiers.shell`: Bash commands (conservative allow-list);
- :mod:`drygate.classifiers.protect`: self-protection (tamper detection).
"""
