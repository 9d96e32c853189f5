"""The MCP relay: the gate at the protocol level, for every MCP client.

``drygate mcp --name SERVER -- <server command...>`` is the MCP server the agent
connects to (stdio, newline-delimited JSON-RPC, MCP spec "Transports"). It starts
the real server behind it and forwards every message unchanged in both
directions, except ``tools/call``, which the same engine, policy and state store as
the Claude Code hook decide:

- allowed calls are forwarded; their results come back unchanged, except that the
  downstream identity stamp ``_meta["io.modelcontextprotocol/serverInfo"]`` is
  removed;
- dry and denied calls are answered by the relay and never reach the server (see
  :mod:`drygate.relay.results` for the honest "not executed" result);
- a gate failure answers the call with an error result and a guard-failure alert,
  and never forwards.

Modules: :mod:`~drygate.relay.core` (the relay), :mod:`~drygate.relay.downstream`
(the supervised server process), :mod:`~drygate.relay.http_downstream` (a server
reached over streamable HTTP), :mod:`~drygate.relay.http` (serving streamable HTTP),
:mod:`~drygate.relay.aggregate` (several servers behind one relay),
:mod:`~drygate.relay.results` (answers the relay writes itself),
:mod:`~drygate.relay.install` (``.mcp.json`` rewriting).
"""
