"""Find the policy rule that applies to a tool call: first match wins.

A rule's tool pattern is tried against the tool's name and, for plugin-provided
MCP tools (``mcp__plugin_<plugin>_<server>__<tool>``, the name Claude Code gives
them), against the plain ``mcp__<server>__<tool>`` forms too, so a rule written
for a server also catches that server when a plugin ships it (case CC-07).
``re`` and ``fnmatch`` are imported only when a glob or regex rule must be tried:
literal and prefix rules need neither (hook start-up budget).
"""

_PLUGIN_PREFIX = "mcp__plugin_"
_compiled = {}


def name_candidates(tool_name):
    """Return the names a rule may match for ``tool_name`` (tuple of str, the name first).

    ``mcp__plugin_storage_r2__put_object`` yields itself, ``mcp__storage_r2__put_object``
    and ``mcp__r2__put_object``: the server part may itself contain underscores, so
    every suffix after an underscore is a candidate.
    """
    if not tool_name.startswith(_PLUGIN_PREFIX):
        return (tool_name,)
    rest = tool_name[len(_PLUGIN_PREFIX):]
    prefix, sep, tool = rest.partition("__")
    if not sep or not prefix or not tool:
        return (tool_name,)
    names = [tool_name]
    parts = prefix.split("_")
    for i in range(1, len(parts)):
        server = "_".join(parts[i:])
        if server:
            names.append(f"mcp__{server}__{tool}")
    return tuple(names)


def _regex(kind, pattern):
    key = (kind, pattern)
    rx = _compiled.get(key)
    if rx is None:
        import re

        if kind == "glob":
            import fnmatch

            rx = re.compile(fnmatch.translate(pattern))
        else:
            rx = re.compile(pattern)
        _compiled[key] = rx
    return rx


def _name_matches(match, names):
    kind, value = match
    if kind == "literal":
        return value in names
    if kind == "prefix":
        for n in names:
            if n.startswith(value):
                return True
        return False
    rx = _regex(kind, value)
    for n in names:
        if rx.fullmatch(n):
            return True
    return False


def _freeze(value):
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


def _field(tool_input, dotted):
    value = tool_input
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None, False
        value = value[part]
    return value, True


def _input_matches(rule, tool_input):
    for field, pattern in rule["input_regex"]:
        value, found = _field(tool_input, field)
        if not found or not isinstance(value, str) or _regex("regex", pattern).search(value) is None:
            return False
    for field, expected in rule["input_equals"]:
        value, found = _field(tool_input, field)
        if not found or _freeze(value) != expected:
            return False
    return True


def _rules_for_name(policy, tool_name):
    """Indices of the rules whose tool pattern matches ``tool_name``, in order.

    Memoised per policy (the name part of a match does not depend on the input), so
    a long-running process pays the pattern scan once per tool name.
    """
    memo = policy.get("_name_memo")
    if memo is None:
        memo = policy["_name_memo"] = {}
    hit = memo.get(tool_name)
    if hit is None:
        names = name_candidates(tool_name)
        literal_hits = set()
        for n in names:
            literal_hits.update(policy["literal_index"].get(n, ()))
        hit = tuple(
            i for i, rule in enumerate(policy["rules"])
            if (i in literal_hits if rule["match"][0] == "literal" else _name_matches(rule["match"], names))
        )
        if len(memo) < 4096:
            memo[tool_name] = hit
    return hit


def find_rule(policy, tool_name, tool_input):
    """Return the first rule of ``policy`` (compiled dict) that matches, or None.

    ``tool_input`` is the call's input dict (non-dict input matches no predicate).
    """
    if not policy["rules"]:
        return None
    if not isinstance(tool_input, dict):
        tool_input = {}
    rules = policy["rules"]
    for i in _rules_for_name(policy, tool_name):
        rule = rules[i]
        if (rule["input_regex"] or rule["input_equals"]) and not _input_matches(rule, tool_input):
            continue
        return rule
    return None


def volatile_for(policy, tool_name, tool_input):
    """What the policy's ``[[volatile]]`` entries call volatile in the results of this
    call: ``(fields, patterns)``, two tuples of str gathered from every matching entry
    (all of them, not the first). ``((), ())`` when none matches."""
    fields, patterns = [], []
    if not isinstance(tool_input, dict):
        tool_input = {}
    names = name_candidates(tool_name)
    for entry in policy.get("volatile") or ():
        if not _name_matches(entry["match"], names):
            continue
        if (entry["input_regex"] or entry["input_equals"]) and not _input_matches(entry, tool_input):
            continue
        fields.extend(f for f in entry["fields"] if f not in fields)
        patterns.extend(p for p in entry["patterns"] if p not in patterns)
    return tuple(fields), tuple(patterns)
