"""The answers the relay writes itself (JSON-RPC 2.0 and MCP ``CallToolResult`` shapes).

A skipped call is answered with ``isError: true``. The MCP spec (2025-06-18,
"Tools": output schema) lets a client validate ``structuredContent`` against a tool's
``outputSchema`` on results that are not errors, and the SDK 2.x client does so
and ends the session on a mismatch (shared/reference/mcp.md). An error result is
not validated, so no client crashes; and it carries no ``structuredContent``, so no
value the real call would have produced is presented as real. The alternative, a
schema-valid result with invented placeholder values listed as unknown in
``_meta``, would pass an invented id or etag to every client that ignores
``_meta`` (most do), which is the lie DESIGN.md's incident began with.
"""

import json

META_KEY = "drygate"
SERVER_INFO_META = "io.modelcontextprotocol/serverInfo"


def encode(message):
    """One JSON-RPC message as a line (bytes, newline-terminated).

    ``json.dumps`` escapes every control character inside strings, so the line holds
    exactly one message for any reader, whatever it treats as a line break. Raises
    ValueError for non-finite numbers (NaN and Infinity are not JSON).
    """
    return (json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def without_server_info(message):
    """``message`` (a JSON-RPC response dict) without the ``_meta`` entry naming the server
    (:data:`SERVER_INFO_META`): the relay speaks for itself to its client. Returns
    ``message`` itself when there is none, else a copy (an emptied ``_meta`` is dropped)."""
    result = message.get("result")
    if not (isinstance(result, dict) and isinstance(result.get("_meta"), dict)
            and SERVER_INFO_META in result["_meta"]):
        return message
    own = {k: v for k, v in result["_meta"].items() if k != SERVER_INFO_META}
    result = {k: v for k, v in result.items() if k != "_meta"}
    if own:
        result["_meta"] = own
    return dict(message, result=result)


def decode(text):
    """Parse one JSON-RPC message (str or bytes) strictly. Raises ValueError."""
    return json.loads(text, parse_constant=_reject_constant)


#: ``_meta`` key that marks a request of the 2026-07-28 protocol era (stateless envelope).
PROTOCOL_VERSION_META = "io.modelcontextprotocol/protocolVersion"


def tool_result(request_id, text, meta, modern=False):
    """A ``tools/call`` response the relay answers itself: an error result with ``text``.

    ``modern``: the request came in the 2026-07-28 era, whose results carry
    ``resultType`` (required there; older clients reject unknown keys, so not before).
    """
    result = {"content": [{"type": "text", "text": text}], "isError": True, "_meta": {META_KEY: meta}}
    if modern:
        result["resultType"] = "complete"
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def not_executed(request_id, decision, tool, output_schema=None, modern=False):
    """The honest answer to a dry or denied call (a :class:`drygate.types.Decision`)."""
    meta = {"executed": False, "decision": decision.action, "run_id": decision.run_id, "call": decision.call,
            "seq": decision.seq, "effect": decision.effect, "rule_id": decision.rule_id,
            "reason": decision.reason}
    if output_schema and isinstance(output_schema.get("properties"), dict):
        meta["unknown_outputs"] = sorted(output_schema["properties"])
    if decision.action == "dry" and decision.call is not None:
        # Typed unknowns (dry-run lessons, rule 2): tokens a later call may pass instead of a
        # value, which `drygate apply` replaces with the real one (drygate.plan.artifact.REFERENCE).
        meta["reference"] = f"drygate:ref:{decision.call}"
        meta["references"] = {name: f"drygate:ref:{decision.call}:{name}" for name in meta.get("unknown_outputs", ())}
    return tool_result(request_id, decision.reason, meta, modern)


def guard_failure(request_id, why, modern=False):
    """The answer when the gate cannot decide: blocked, and said so."""
    text = (f"drygate guard failure: {why}. The gate could not decide, so the call was BLOCKED (fail closed) "
            f"and NOT executed. A guard-failure alert was raised.")
    return tool_result(request_id, text, {"executed": False, "decision": "deny", "guard_failure": True,
                                          "reason": why}, modern)



def withheld(request_id, why, modern=False):
    """The answer to an allowed read whose server answered but which could not be journaled
    (drygate.relay.core): the read ran, its result is withheld (fail closed), and said so."""
    text = (f"drygate guard failure: {why}. The read ran on the server, but drygate could not journal it, so "
            f"its result is WITHHELD (fail closed). A guard-failure alert was raised.")
    return tool_result(request_id, text, {"executed": True, "withheld": True, "decision": "allow",
                                          "guard_failure": True, "reason": why}, modern)

def error(request_id, code, message):
    """A JSON-RPC error response."""
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INTERNAL_ERROR = -32603
