"""Fingerprints of what a run read and of the tools it saw: the plan's basis.

A fingerprint is ``"sha256:<hex>"`` of a canonical JSON text (sorted keys, no
whitespace, UTF-8), so the same value always gives the same fingerprint whatever
process, host or key order produced it.

- :func:`result_fingerprint`: an MCP ``CallToolResult`` (dict) by what it says, not how
  it was serialised: the fingerprint of its :func:`normal_result`.
- :func:`normal_result`: the normal form of a ``CallToolResult`` (MCP spec, schema
  2025-06-18 ``CallToolResult``): ``isError`` defaults to false when absent; ``content``
  defaults to ``[]``; ``_meta`` (of the result and of each block) is left out, as
  servers put request-specific data there (timings, server info); optional fields
  that are null or empty (``annotations: {}``) are the same as absent; a text block
  whose text is a JSON object or array is compared by its value (key order and
  whitespace do not matter). Key order never matters (canonical JSON).
- :func:`diff` and :func:`mask`: the fields in which two normal forms differ
  (shortened), and a normal form with the fields and text patterns a policy calls
  volatile (``[[volatile]]``, drygate.policy.load) replaced by a marker.
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
    """The fingerprint of a tool result (dict or anything JSON) by what it says: the
    fingerprint of its :func:`normal_result`."""
    return fingerprint(normal_result(result))


#: A read's result up to this size (characters of its JSON) is journaled in its normal form
#: next to its fingerprint, so that apply can name the fields that changed and ignore
#: volatile ones; a larger one only as its fingerprint.
READ_VALUE_CHARS = 16 * 1024


def read_record(result, chars, error):
    """What a relay journals of a read's result (dict): ``{"read_fingerprint", "bytes",
    "error", "value"}``; ``result``: the ``CallToolResult`` (None for a protocol error);
    ``chars``: the size of its JSON text; ``value``: its :func:`normal_result` when
    ``chars`` is at most :data:`READ_VALUE_CHARS`, else None."""
    normal = normal_result(result) if result is not None else None
    return {"read_fingerprint": fingerprint(normal) if result is not None else None, "bytes": chars,
            "error": bool(error), "value": normal if result is not None and chars <= READ_VALUE_CHARS else None}


#: Keys of a content block (and of an embedded resource) that carry no content.
_BLOCK_NOISE = ("_meta",)


def _normal_block(block):
    if not isinstance(block, dict):
        return block
    out = {}
    for key, value in block.items():
        if key in _BLOCK_NOISE or value is None or (key == "annotations" and not value):
            continue
        if key == "resource" and isinstance(value, dict):
            value = _normal_block(value)
        out[key] = value
    text = out.get("text")
    if out.get("type") == "text" and isinstance(text, str) and text[:1] in ("{", "["):
        try:
            value = json.loads(text)
        except ValueError:
            pass
        else:
            del out["text"]
            out["json"] = value  # a JSON text is compared by its value
    return out


def normal_result(result):
    """The normal form of an MCP ``CallToolResult`` (dict; module docstring):
    ``{"isError": bool, "content": [block, ...], "structuredContent"?: any}``. A value that
    is not a dict (an error object, a host's text) is returned as it is."""
    if not isinstance(result, dict):
        return result
    content = result.get("content")
    out = {"isError": bool(result.get("isError") or False),
           "content": [_normal_block(b) for b in content] if isinstance(content, list) else
           ([] if content is None else content)}
    if result.get("structuredContent") is not None:
        out["structuredContent"] = result["structuredContent"]
    return out


VOLATILE = "<volatile>"


def mask(value, fields=(), patterns=()):
    """``value`` (a normal form, or any JSON) with what the policy calls volatile replaced
    by :data:`VOLATILE`: ``fields``, dotted paths (``*`` matches any key or index) tried
    at the top of ``structuredContent``, of every JSON text block (``json``) and of the
    value itself; ``patterns``, compiled regular expressions masked in every string."""
    import copy

    value = copy.deepcopy(value)
    roots = [value]
    if isinstance(value, dict):
        if isinstance(value.get("structuredContent"), (dict, list)):
            roots.append(value["structuredContent"])
        for block in value.get("content") or []:
            if isinstance(block, dict) and isinstance(block.get("json"), (dict, list)):
                roots.append(block["json"])
    for path in fields:
        parts = path.split(".")
        for root in roots:
            _mask_path(root, parts)
    if patterns:
        value = _mask_text(value, patterns)
    return value


def _mask_path(node, parts):
    head, rest = parts[0], parts[1:]
    if isinstance(node, dict):
        keys = list(node) if head == "*" else [head] if head in node else []
    elif isinstance(node, list):
        keys = range(len(node)) if head == "*" else [int(head)] if head.isdigit() and int(head) < len(node) else []
    else:
        return
    for k in keys:
        if rest:
            _mask_path(node[k], rest)
        else:
            node[k] = VOLATILE


def _mask_text(value, patterns):
    if isinstance(value, str):
        for rx in patterns:
            value = rx.sub(VOLATILE, value)
        return value
    if isinstance(value, dict):
        return {k: _mask_text(v, patterns) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_text(v, patterns) for v in value]
    return value


def diff(before, after, limit=8, width=60):
    """The fields in which two JSON values differ: a list of at most ``limit`` str like
    ``content.0.json.count: 7 -> 9`` (values shortened to ``width`` characters), plus a
    last line saying how many more there are. Texts of several lines are compared line
    by line (``stdout line 3: ...``)."""
    out = []
    _diff(before, after, "", out)
    shown = [f"{path or '(the whole value)'}: {what}" for path, what in out[:limit]]
    if len(out) > limit:
        shown.append(f"... and {len(out) - limit} more difference(s)")
    return [_short(line, width * 3) for line in shown] if width else shown


_MISSING = object()


def _diff(a, b, path, out):
    if len(out) > 50:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            _diff(a.get(k, _MISSING), b.get(k, _MISSING), f"{path}.{k}" if path else str(k), out)
    elif isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            _diff(a[i] if i < len(a) else _MISSING, b[i] if i < len(b) else _MISSING,
                  f"{path}.{i}" if path else str(i), out)
    elif isinstance(a, str) and isinstance(b, str) and ("\n" in a or "\n" in b) and a != b:
        la, lb = a.splitlines(), b.splitlines()
        for i in range(max(len(la), len(lb))):
            x = la[i] if i < len(la) else None
            y = lb[i] if i < len(lb) else None
            if x != y:
                out.append((f"{path} line {i + 1}", f"{_show(x)} -> {_show(y)}"))
    elif a is _MISSING:
        out.append((path, f"added {_show(b)}"))
    elif b is _MISSING:
        out.append((path, f"removed (was {_show(a)})"))
    elif a != b or type(a) is not type(b):
        out.append((path, f"{_show(a)} -> {_show(b)}"))


def _show(value, width=60):
    text = "(none)" if value is None else json.dumps(value, ensure_ascii=False) if not isinstance(value, str) \
        else json.dumps(value, ensure_ascii=False)
    return _short(text, width)


def _short(text, width):
    return text if len(text) <= width else text[:width - 3] + "..."


def policy_decisions_fingerprint(policy):
    """The fingerprint of what a compiled policy decides (dict from drygate.policy.load):
    everything but its source, file hash, caches, ``[review]`` (what the review page
    masks) and ``[[volatile]]`` (which only tells apply what to ignore when it re-checks
    reads), so naming a volatile field after a plan was made does not make it stale."""
    return fingerprint({k: v for k, v in policy.items()
                        if k not in ("source", "hash", "volatile") and not k.startswith(("_", "review_"))})


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


def host_view(result):
    """What a host's text of a result says, as a JSON value: for a text (str, as Claude
    Code journals it), its JSON value or the text; for a ``CallToolResult`` (dict), its
    structured content, else its text blocks joined (JSON parsed when they are JSON)."""
    if isinstance(result, str):
        try:
            return json.loads(result)
        except ValueError:
            return result
    if not isinstance(result, dict):
        return result
    if result.get("structuredContent") is not None:
        return result["structuredContent"]
    texts = [c.get("text") for c in result.get("content") or []
             if isinstance(c, dict) and c.get("type") == "text" and isinstance(c.get("text"), str)]
    return host_view("\n".join(texts))


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
