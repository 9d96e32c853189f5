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
- :func:`host_text_fingerprint` / :func:`host_text_candidates`: a result as a host passed
  it on as text. Claude Code's PostToolUse gives an MCP tool's result as one string (its
  structured content as JSON, or its text), not the result object the server sent; so
  the value is compared, not the bytes: JSON text by its canonical form.
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


def host_text_fingerprint(text):
    """The fingerprint of a result a host passed on as text (str): the canonical JSON of
    its value when the text is JSON, else the text itself."""
    try:
        return fingerprint(json.loads(text))
    except ValueError:
        return text_fingerprint(text)


def host_text_candidates(result):
    """Every fingerprint :func:`host_text_fingerprint` could give for the host's text of
    ``result`` (a ``CallToolResult`` dict from the server): set of str."""
    out = set()
    if not isinstance(result, dict):
        return out
    if result.get("structuredContent") is not None:
        out.add(fingerprint(result["structuredContent"]))
    texts = [c.get("text") for c in result.get("content") or []
             if isinstance(c, dict) and c.get("type") == "text" and isinstance(c.get("text"), str)]
    for text in texts:
        out.add(host_text_fingerprint(text))
    if texts:
        out.add(host_text_fingerprint("".join(texts)))
        out.add(host_text_fingerprint("\n".join(texts)))
    return out
