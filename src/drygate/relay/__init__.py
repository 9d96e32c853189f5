"""The MCP relay: the gate at the protocol level, for every MCP client.

``drygate mcp --name SERVER -- <server command...>`` is the MCP server the agent
connects to (stdio, newline-delimited JSON-RPC, MCP spec "Transports"). It starts
the real server behind it and forwards the protocol's own messages unchanged in both
directions; every other client message (``tools/call``, ``resources/read``,
``prompts/get``, ``completion/complete``, any method it does not know) is decided by
the same engine, policy and state store as the Claude Code hook
(:mod:`drygate.relay.protocol` has the list and the reasons):

- allowed requests are forwarded; their results come back unchanged, except that the
  downstream identity stamp ``_meta["io.modelcontextprotocol/serverInfo"]`` is
  removed;
- dry and denied requests are answered by the relay and never reach the server (see
  :mod:`drygate.relay.results` for the honest "not executed" result);
- a notification of a decided method is dropped with an alert;
- a gate failure answers the request with an error and a guard-failure alert, and
  never forwards.

Modules: :mod:`~drygate.relay.protocol` (message rules, names, ids: the shared public
interface), :mod:`~drygate.relay.identity` (which run a connection is in),
:mod:`~drygate.relay.core` (the relay and its :class:`~drygate.relay.core.Route`
plug-in interface), :mod:`~drygate.relay.downstream` (the supervised server process),
:mod:`~drygate.relay.http_downstream` (a server reached over streamable HTTP),
:mod:`~drygate.relay.http` (serving streamable HTTP, a relay per session),
:mod:`~drygate.relay.aggregate` (several servers behind one relay),
:mod:`~drygate.relay.overlays` and :mod:`~drygate.relay.shadow` (routes: store
overlays, shadow servers), :mod:`~drygate.relay.results` (answers the relay writes
itself), :mod:`~drygate.relay.trust` (trust recorded on first use),
:mod:`~drygate.relay.install` (``.mcp.json`` rewriting), :mod:`~drygate.relay.main`
(``drygate mcp``: the composition root).
"""
