"""The policy: which tool calls are reads or writes, which writes are in dry scope,
and the gate's settings (run mode, deadline, state store, alert sinks).

- :mod:`drygate.policy.load` parses ``drygate.toml`` (slow path: ``tomllib``) into a
  compiled policy, a plain dict of tuples that ``marshal`` can cache;
- :mod:`drygate.policy.cache` keeps that compiled form next to the state so the
  hook process does not pay for ``tomllib`` on every call;
- :mod:`drygate.policy.match` finds the rule for a call (first match wins).
"""
