"""Classifiers: what a tool call does to the world (its effect), from built-in knowledge.

Tool classifiers have one shape: ``classify(call, policy) -> Classification | None``
(None means "not mine"); text classifiers return a
:class:`~drygate.classifiers.verdict.Verdict`. The engine asks the policy first, then
these, then falls back to ``unknown``, which is treated as a write.

- :mod:`drygate.classifiers.claude_code`: Claude Code's own tools (data table);
- :mod:`drygate.classifiers.shell`: Bash commands, from their syntax tree
  (:mod:`~drygate.classifiers.bash_parser`), with the command table
  (:mod:`~drygate.classifiers.commands`, data in :mod:`~drygate.classifiers.data`);
- :mod:`drygate.classifiers.sql`, :mod:`drygate.classifiers.http`: SQL text and HTTP
  requests, wherever they appear;
- :mod:`drygate.classifiers.verdict`: an effect with its chain of reasons;
- :mod:`drygate.classifiers.protect`: self-protection (tamper detection).
"""
