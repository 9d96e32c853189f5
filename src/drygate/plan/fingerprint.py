"""Fingerprints of what a run read and of the tools it saw: the plan's basis.

A fingerprint is ``"sha256:<hex>"`` of a canonical JSON text (sorted keys, no
whitespace, UTF-8), so the same value always gives the same fingerprint whatever
process, host or key order produced it.

- :func:`result_fingerprint`: an MCP ``CallToolResult`` (dict) by what a caller can
  see of it: ``content``, ``structuredContent`` and ``isError``. ``_meta`` is left
  out: servers put request-specific data there (timings, server info).
- :func:`tool_fingerprint`: a tool's declaration (input schema, output schema,
  annotations) as ``tools/list`` gave it.
- :func:`text_fingerprint`: a file's or a value's text.
"""

import hashlib
import json


def canonical(value):
    """The canonical JSON text of ``value`` (str). Raises ValueError for non-JSON values."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def fingerprint(value):
    """``"sha256:<hex>"`` of ``value``'s canonical JSON."""
    return "sha256:" + hashlib.sha256(canonical(value).encode("utf-8")).hexdigest()


def text_fingerprint(text):
    """``"sha256:<hex>"`` of a text (str) or bytes, as they are; None for None."""
    if text is None:
        return None
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return "sha256:" + hashlib.sha256(data).hexdigest()


def result_fingerprint(result):
    """The fingerprint of a tool result (dict or anything JSON) by what a caller sees."""
    if isinstance(result, dict):
        result = {k: result.get(k) for k in ("content", "structuredContent", "isError") if k in result}
    return fingerprint(result)


def tool_fingerprint(tool):
    """The fingerprint of one ``tools/list`` entry (dict): schemas and annotations."""
    tool = tool if isinstance(tool, dict) else {}
    return fingerprint({"inputSchema": tool.get("inputSchema"), "outputSchema": tool.get("outputSchema"),
                        "annotations": tool.get("annotations") or {}})
