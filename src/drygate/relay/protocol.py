"""What the relay knows about MCP messages: which it forwards, which it decides, and names.

The public interface every relay module shares (core, aggregate, http, overlays,
shadow): none of them reaches into another's private names.

Every message a client sends is one of three kinds (:func:`rule_of`):

- :data:`FORWARD`: a protocol message with no effect on the world, forwarded as is.
  The list is derived from the MCP schema's ``ClientRequest`` and ``ClientNotification``
  unions of every revision the SDK speaks (2024-11-05 .. 2025-11-25 and 2026-07-28;
  ``mcp_types.methods.CLIENT_REQUESTS`` / ``CLIENT_NOTIFICATIONS``, checked by
  tests/relay/test_every_message.py): the handshake (``initialize``,
  ``notifications/initialized``, ``server/discover``), liveness (``ping``), the
  catalog lists (``tools/list``, ``prompts/list``, ``resources/list``,
  ``resources/templates/list``: a cursor is their only input), the session's own
  settings and streams (``logging/setLevel``, ``subscriptions/listen``), and the
  notifications about requests already decided or about the client itself
  (``notifications/cancelled``, ``notifications/progress``,
  ``notifications/roots/list_changed``). Responses (a client's answer to a
  server's sampling, elicitation or roots request) carry no method and are forwarded.
- :data:`DECIDE`: everything else, ``tools/call`` included, and any method the relay
  does not know (a newer revision's, a server's own extension). The engine decides it
  as ``mcp__<server>__<name>`` (:func:`decided_name`): a tool's name for
  ``tools/call``, the method for the rest (``mcp__fs__resources/read``,
  ``mcp__fs__prompts/get``, ``mcp__fs__completion/complete``), so a policy rule can
  name it. The methods in :data:`READ_METHODS` are reads by the spec's meaning and are
  decided with the annotation ``readOnlyHint: true``, which the engine believes only
  for a server the policy trusts (``[mcp] trusted_servers``); for any other server
  they are unknown, so writes: a server's handler for them is its author's code and
  may write (a hand-written server that deletes files in ``prompts/get``).
- :data:`DROP`: a notification (no id) of a method the relay would decide. It cannot
  carry a result, so it can be neither answered "not executed" nor journaled as a
  decision; it is dropped and an alert is raised (kind ``tamper``, cause
  ``relay_bypass``): a ``tools/call`` sent as a notification is a call that tries to
  run without the gate's answer.
"""

import json

#: The host name decisions are journaled under.
HOST = "mcp-relay"
#: The id of the ``initialize`` a relay replays to a new server process (its answer is not forwarded).
REPLAY_ID = "drygate-replay-initialize"
#: Journal entries (kind "result") whose tool name starts with this hold the tools and
#: server a run saw through the relay (drygate.state.catalog).
from drygate.state.catalog import CATALOG_PREFIX  # noqa: E402,F401 (re-exported)

FORWARD = "forward"
DECIDE = "decide"
DROP = "drop"

#: Client requests with no effect on the world (see the module docstring for why each).
FORWARDED_REQUESTS = frozenset({
    "initialize", "ping", "server/discover",
    "tools/list", "prompts/list", "resources/list", "resources/templates/list",
    "logging/setLevel", "subscriptions/listen",
})
#: Client notifications with no effect on the world.
FORWARDED_NOTIFICATIONS = frozenset({
    "notifications/initialized", "notifications/cancelled", "notifications/progress",
    "notifications/roots/list_changed",
})
#: Decided methods that read by the spec's meaning: ``readOnlyHint: true`` for the engine,
#: believed only for a trusted server. ``tasks/*`` (2025-11-25) address a task a decided
#: ``tools/call`` started; ``tasks/cancel`` is not a read.
READ_METHODS = frozenset({
    "resources/read", "prompts/get", "completion/complete", "resources/subscribe", "resources/unsubscribe",
    "tasks/get", "tasks/result", "tasks/list",
})
#: Every client method of the spec revisions the SDK speaks, forwarded or decided (tests check the SDK's list).
SPEC_CLIENT_METHODS = FORWARDED_REQUESTS | FORWARDED_NOTIFICATIONS | READ_METHODS | {"tools/call", "tasks/cancel"}

#: The alert cause of a dropped notification.
BYPASS_CAUSE = "relay_bypass"


def rule_of(message):
    """:data:`FORWARD`, :data:`DECIDE` or :data:`DROP` for one client message (a dict)."""
    method = message.get("method")
    if method is None:
        return FORWARD  # a response to a server's request
    if "id" in message:
        return FORWARD if method in FORWARDED_REQUESTS else DECIDE
    return FORWARD if method in FORWARDED_NOTIFICATIONS else DROP


def decided_name(method, params):
    """``(name, annotations)`` a decided request is classified under, without the server part.

    ``tools/call``: the tool's name (None when it has none) and None (the relay adds
    the tool's own annotations). Another method: the method itself and
    ``{"readOnlyHint": True}`` for :data:`READ_METHODS`, else ``{}``.
    """
    if method == "tools/call":
        tool = params.get("name") if isinstance(params, dict) else None
        return (tool if isinstance(tool, str) and tool else None), None
    return method, ({"readOnlyHint": True} if method in READ_METHODS else {})


def is_method_name(tool):
    """True when a tool name would be decided under the same name as a client method.

    Such a tools/call is refused (it could take a policy rule written for the method):
    any name with a ``/`` that the spec uses for a client method."""
    return tool in SPEC_CLIENT_METHODS


def id_key(request_id):
    """A request id as a dict key, the way servers echo it (2.0 comes back as 2)."""
    if isinstance(request_id, float) and request_id.is_integer():
        request_id = int(request_id)
    return json.dumps(request_id, sort_keys=True)


def qualified(server, tool):
    """The name a server's tool (or decided method) is decided as: ``mcp__<server>__<tool>``."""
    return f"mcp__{server}__{tool}"


#: How many ids of the relay's own requests are remembered after they timed out.
OWN_ID_MEMORY = 1024


class OwnRequests:
    """Requests the relay sends a server itself (a tools/list, an overlay's read).

    ``new(prefix)`` gives an id and a Future for its response; ``take(message)`` is True
    for a response to one of them, which must then not reach the client. An answer that
    arrives after its caller gave up (:meth:`forget`) is still recognised and dropped:
    it must never reach a client as an unsolicited response.
    """

    def __init__(self):
        import collections

        self.futures = {}
        self.expired = collections.OrderedDict()
        self._next = 0

    def new(self, prefix="drygate"):
        """``(request id, Future)``; call on the event loop."""
        import asyncio
        import uuid

        self._next += 1
        request_id = f"{prefix}-{uuid.uuid4().hex[:12]}-{self._next}"
        future = asyncio.get_running_loop().create_future()
        self.futures[id_key(request_id)] = future
        return request_id, future

    def forget(self, request_id):
        """The caller no longer waits for ``request_id``; a late answer is dropped."""
        key = id_key(request_id)
        if self.futures.pop(key, None) is not None:
            self.expired[key] = None
            while len(self.expired) > OWN_ID_MEMORY:
                self.expired.popitem(last=False)

    def take(self, message, key=None):
        """True when ``message`` (a response dict) answers one of the relay's own requests.

        ``key``: ``id_key(message["id"])`` when the caller has it already."""
        key = id_key(message.get("id")) if key is None else key
        future = self.futures.pop(key, None)
        if future is not None:
            if not future.done():
                future.set_result(message)
            return True
        if key in self.expired:
            del self.expired[key]
            return True
        return False
