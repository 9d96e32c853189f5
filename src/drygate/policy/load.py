"""Parse and validate ``drygate.toml`` into a compiled policy.

The compiled policy is a plain dict of str/int/bool/tuple/dict values, so that
:mod:`drygate.policy.cache` can store it with ``marshal`` and the hook process can
load it without importing ``tomllib`` (about 15 ms on the 2-core machine, more than
the whole hook budget; measured in bench/hook_startup.py).

Shape of the compiled policy::

    {"format": 1, "source": str | None, "hash": "sha256 hex of the file bytes",
     "mode": "live" | "sticky" | "dry", "deadline_ms": int,
     "state_path": str, "state_synchronous": "FULL" | "NORMAL", "alert_log": str, "alert_command": str | None,
     "alert_webhook": str | None, "alert_rate_limit": int, "alert_rate_window_s": int,
     "rules": (rule, ...), "literal_index": {tool name: (rule index, ...)},
     "overlays": (overlay, ...), "volatile": (volatile, ...),
     "python_appliable": {tool name: "module:function"}, "python_path": (str, ...),
     "sandbox": {"enabled": bool, "allowed_domains": (str, ...)}}

    volatile = {"match": (kind, str) as in a rule, "input_regex": ..., "input_equals": ...,
                "fields": (dotted path, ...), "patterns": (regex, ...), "reason": str | None}

    overlay = {"server": str, "name": str, "kind": "objects" | "key-value",
               "tools": {role: tool name as the server knows it}, "plain_tools": (str, ...),
               "max_bytes": int, "shadow_env": {name: value} | None}

    rule = {"id": str, "match": ("literal" | "prefix" | "glob" | "regex", str),
            "input_regex": ((field, pattern), ...), "input_equals": ((field, value), ...),
            "effect": str, "dry": bool, "action": None | "deny" | "ask", "reason": str | None}
"""

from drygate.errors import ConfigError, PolicyError
from drygate.types import EFFECTS, MODES

FORMAT = 1
#: The largest deadline a policy may set (ms): well below the 30 s hook timeout drygate installs.
MAX_DEADLINE_MS = 20000
DEFAULTS = {
    "mode": "dry",
    "deadline_ms": 3000,
    "state_path": ".drygate/state.db",
    "alert_log": ".drygate/alerts.jsonl",
}
_RULE_KEYS = {"id", "tool", "tool_glob", "tool_regex", "input_regex", "input_equals", "effect", "dry",
              "action", "reason", "classify", "sql_argument", "sql_dialect", "url_argument", "method_argument"}
#: The keys ``[run]`` and ``[gate]`` take; any other key is refused (a typo such as
#: ``mdoe = "live"`` must not be silently ignored).
_RUN_KEYS = frozenset({"mode"})
_GATE_KEYS = frozenset({"deadline_ms"})
_TOP_KEYS = {"run", "gate", "state", "alerts", "rules", "commands", "http_rules", "mcp", "overlays", "python", "apply", "review", "sandbox",
             "volatile"}
_VOLATILE_KEYS = {"tool", "tool_glob", "tool_regex", "input_regex", "input_equals", "fields", "patterns", "reason"}
_COMMAND_KEYS = {"name", "effect", "subcommands", "flags", "values"}
_HTTP_RULE_KEYS = {"url_regex", "methods", "effect"}
SQL_DIALECTS = ("sqlite", "postgres", "mysql")


def default_policy_text():
    """Return the commented template that ``drygate init`` writes (str)."""
    from importlib.resources import files

    return files("drygate.policy").joinpath("default.toml").read_text(encoding="utf-8")


def load_policy_file(path):
    """Read, parse and compile the policy at ``path``.

    Returns the compiled policy dict (module docstring). Raises :class:`ConfigError`
    (a :class:`GuardFailure`) when the file is missing, unreadable or invalid, with
    the path and the offending rule or field in the message.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read policy {path}: {e.strerror or e}") from e
    try:
        return compile_policy_text(data, source=str(path))
    except PolicyError as e:
        raise ConfigError(str(e)) from e


def compile_policy_text(data, source=None):
    """Parse policy TOML (bytes or str) and compile it.

    Returns the compiled policy dict. Raises :class:`PolicyError` naming ``source``
    and the problem (TOML syntax error with line, unknown key, bad value).
    """
    import hashlib
    import tomllib

    raw = data.encode("utf-8") if isinstance(data, str) else data
    where = source or "<policy>"
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise PolicyError(f"{where}: not UTF-8 text ({e})") from e
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(f"{where}: invalid TOML: {e}") from e
    return compile_policy(doc, source=source, digest=hashlib.sha256(raw).hexdigest())


def _section(doc, name, where):
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: [{name}] must be a table")
    return value


_STATE_KEYS = {"path", "synchronous", "url", "key_prefix", "retention_days", "clock_skew_ms", "replica_acks"}
_STORE_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "redis+cluster")


def _state_options(state, where):
    """The ``[state]`` keys of the Redis store, validated (see policy/default.toml)."""
    unknown = set(state) - _STATE_KEYS
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) in [state]: {', '.join(sorted(unknown))}")
    url = state.get("url")
    if url is not None and (not isinstance(url, str) or url.partition("://")[0] not in _STORE_SCHEMES
                            or "://" not in url):
        raise PolicyError(f"{where}: [state] url must be a Redis URL ({', '.join(s + '://' for s in _STORE_SCHEMES)})")
    prefix = state.get("key_prefix", "drygate")
    if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
        raise PolicyError(f"{where}: [state] key_prefix must be a non-empty string without braces")
    retention = state.get("retention_days", 30)
    if isinstance(retention, bool) or not isinstance(retention, (int, float)) or not 0 < retention <= 3650:
        raise PolicyError(f"{where}: [state] retention_days must be a number of days from 0 to 3650")
    skew = state.get("clock_skew_ms", 0)
    if isinstance(skew, bool) or not isinstance(skew, int) or not 0 <= skew <= 60000:
        raise PolicyError(f"{where}: [state] clock_skew_ms must be an integer from 0 to 60000")
    acks = state.get("replica_acks", 0)
    if isinstance(acks, bool) or not isinstance(acks, int) or not 0 <= acks <= 16:
        raise PolicyError(f"{where}: [state] replica_acks must be an integer from 0 to 16")
    return {"state_url": url, "state_key_prefix": prefix, "state_retention_s": int(retention * 86400),
            "state_clock_skew_ms": skew, "state_replica_acks": acks}


def compile_policy(doc, source=None, digest=""):
    """Validate a parsed policy document (dict) and compile it (see module docstring).

    Raises :class:`PolicyError` for unknown keys or invalid values.
    """
    where = source or "<policy>"
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise PolicyError(f"{where}: unknown top-level key(s): {', '.join(sorted(unknown))}")
    run = _section(doc, "run", where)
    gate = _section(doc, "gate", where)
    state = _section(doc, "state", where)
    alerts = _section(doc, "alerts", where)

    for table, section, known in (("run", run, _RUN_KEYS), ("gate", gate, _GATE_KEYS)):
        unknown_keys = set(section) - known
        if unknown_keys:
            raise PolicyError(f"{where}: unknown key(s) in [{table}]: {', '.join(sorted(unknown_keys))} "
                              f"(known: {', '.join(sorted(known))})")
    mode = run.get("mode", DEFAULTS["mode"])
    if mode not in MODES:
        raise PolicyError(f"{where}: [run] mode must be one of {', '.join(MODES)}, not {mode!r}")
    deadline_ms = gate.get("deadline_ms", DEFAULTS["deadline_ms"])
    if not isinstance(deadline_ms, int) or isinstance(deadline_ms, bool) or not 50 <= deadline_ms <= MAX_DEADLINE_MS:
        raise PolicyError(f"{where}: [gate] deadline_ms must be an integer from 50 to {MAX_DEADLINE_MS} "
                          "(the installed hook timeout is 30 s; the gate must answer well before it)")
    synchronous = state.get("synchronous", "full")
    if synchronous not in ("full", "normal"):
        raise PolicyError(f"{where}: [state] synchronous must be \"full\" or \"normal\"")
    state_options = _state_options(state, where)
    for table, key in (("state", "path"), ("alerts", "log"), ("alerts", "command"), ("alerts", "webhook")):
        value = {"state": state, "alerts": alerts}[table].get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise PolicyError(f"{where}: [{table}] {key} must be a non-empty string")
    alert_options = _alert_options(alerts, where)

    rules = []
    literal_index = {}
    for i, (label, rule) in enumerate(_tables(doc.get("rules", []), "rules", _RULE_KEYS, where)):
        compiled = _compile_rule(rule, i, label)
        rules.append(compiled)
        kind, value = compiled["match"]
        if kind == "literal":
            literal_index.setdefault(value, []).append(i)
    mcp = _section(doc, "mcp", where)
    trusted = mcp.get("trusted_servers", [])
    if not isinstance(trusted, list) or not all(isinstance(t, str) and t for t in trusted):
        raise PolicyError(f"{where}: [mcp] trusted_servers must be a list of server names")
    unknown_mcp = set(mcp) - {"trusted_servers"}
    if unknown_mcp:
        raise PolicyError(f"{where}: unknown key(s) in [mcp]: {', '.join(sorted(unknown_mcp))}")
    apply_options = _apply_options(_section(doc, "apply", where), _section(doc, "review", where), where)
    commands = _compile_commands(doc.get("commands", []), where)
    http_rules = _compile_http_rules(doc.get("http_rules", []), where)
    overlays = compile_overlays(doc.get("overlays", []), where)
    python = compile_python(_section(doc, "python", where), where)
    sandbox = _sandbox_options(_section(doc, "sandbox", where), where)
    volatile = compile_volatile(doc.get("volatile", []), where)
    return {
        "format": FORMAT,
        "source": source,
        "commands": commands,
        "http_rules": http_rules,
        "mcp_trusted": tuple(trusted),
        "hash": digest,
        "mode": mode,
        "deadline_ms": deadline_ms,
        "state_path": state.get("path", DEFAULTS["state_path"]),
        "state_synchronous": synchronous.upper(),
        **state_options,
        "alert_log": alerts.get("log", DEFAULTS["alert_log"]),
        "alert_command": alerts.get("command"),
        "alert_webhook": alerts.get("webhook"),
        **alert_options,
        "rules": tuple(rules),
        "literal_index": {k: tuple(v) for k, v in literal_index.items()},
        "overlays": overlays,
        **python,
        **apply_options,
        "sandbox": sandbox,
        "volatile": volatile,
    }


_PYTHON_KEYS = {"appliable", "path"}


def compile_python(table, where="<policy>"):
    """The ``[python]`` table: which Python tools ``drygate apply`` may call, and from where.

    ``appliable = { tool name = "module.path:function" }`` names, per tool, the importable
    entry point apply calls for that tool's plan steps (a plan file never names one: only
    this table does); ``path = [folder, ...]`` (relative to the project, default ``["."]``)
    is put in front of ``sys.path`` for those imports. Returns ``{"python_appliable":
    {name: entry}, "python_path": (str, ...)}``. Raises PolicyError for unknown keys, a name
    that is not a non-empty string or an entry that is not ``module:attribute``.
    """
    import re

    unknown = set(table) - _PYTHON_KEYS
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) in [python]: {', '.join(sorted(unknown))} "
                          f"(known: {', '.join(sorted(_PYTHON_KEYS))})")
    appliable = table.get("appliable", {})
    if not isinstance(appliable, dict):
        raise PolicyError(f"{where}: [python] appliable must be a table of tool name = \"module:function\"")
    entry = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
    for name, target in appliable.items():
        if not name or not isinstance(target, str) or not entry.match(target):
            raise PolicyError(f"{where}: [python] appliable.{name} must be an entry point \"module.path:function\", "
                              f"not {target!r}")
    path = table.get("path", ["."])
    if not isinstance(path, list) or not all(isinstance(p, str) and p for p in path):
        raise PolicyError(f"{where}: [python] path must be a list of folders (relative to the project)")
    return {"python_appliable": dict(appliable), "python_path": tuple(path)}


def _apply_options(apply, review, where):
    """``[apply]`` (require_approval) and ``[review]`` (secret_keys, secret_patterns), validated:
    see policy/default.toml and drygate.plan.approval, drygate.review.mask."""
    unknown = set(apply) - {"require_approval"}
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) in [apply]: {', '.join(sorted(unknown))}")
    required = apply.get("require_approval", False)
    if not isinstance(required, bool):
        raise PolicyError(f"{where}: [apply] require_approval must be true or false")
    unknown = set(review) - {"secret_keys", "secret_patterns"}
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) in [review]: {', '.join(sorted(unknown))}")
    keys = review.get("secret_keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        raise PolicyError(f"{where}: [review] secret_keys must be a list of input key names")
    patterns = review.get("secret_patterns", [])
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        raise PolicyError(f"{where}: [review] secret_patterns must be a list of regular expressions")
    for p in patterns:
        _check_regex(p, f"{where}: [review] secret_patterns entry {p!r}")
    return {"apply_require_approval": required, "review_secret_keys": tuple(k.lower() for k in keys),
            "review_secret_patterns": tuple(patterns)}


_SANDBOX_KEYS = {"enabled", "allowed_domains"}


def _sandbox_options(table, where):
    """``[sandbox]`` -> ``{"enabled": bool, "allowed_domains": (str, ...)}`` (drygate.sandbox reads it).

    Raises :class:`PolicyError` for an unknown key, a non-Boolean ``enabled`` or a
    ``allowed_domains`` that is not a list of host names (``*.example.com`` allowed).
    """
    unknown = set(table) - _SANDBOX_KEYS
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) in [sandbox]: {', '.join(sorted(unknown))} "
                          f"(known: {', '.join(sorted(_SANDBOX_KEYS))})")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise PolicyError(f"{where}: [sandbox] enabled must be true or false")
    domains = table.get("allowed_domains", [])
    import re

    if not isinstance(domains, list) or not all(
            isinstance(d, str) and re.fullmatch(r"(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*", d) for d in domains):
        raise PolicyError(f"{where}: [sandbox] allowed_domains must be a list of host names "
                          f"(e.g. [\"api.github.com\", \"*.npmjs.org\"])")
    return {"enabled": enabled, "allowed_domains": tuple(domains)}


def compile_volatile(entries, where="<policy>"):
    """``[[volatile]]`` -> a tuple of volatile dicts (module docstring), validated.

    Each entry names tools as a rule does (exactly one of ``tool``, ``tool_glob``,
    ``tool_regex``; optional ``input_regex``/``input_equals``) and what of their reads
    changes on every call, so that apply's re-check of a read ignores it (as Terraform's
    ``ignore_changes``): ``fields``, dotted paths into the result's value (``*`` for any
    key or index; tried at the top of ``structuredContent`` and of a JSON text), and/or
    ``patterns``, regular expressions whose matches in any text (a shell read's output
    included) are ignored. Raises PolicyError naming the entry and the key.
    """
    out = []
    for label, entry in _tables(entries, "volatile", _VOLATILE_KEYS, where):
        rule = _compile_rule(dict(entry, effect="read"), 0, label)
        fields = entry.get("fields", [])
        patterns = entry.get("patterns", [])
        if not isinstance(fields, list) or not all(isinstance(f, str) and f and "" not in f.split(".")
                                                   for f in fields):
            raise PolicyError(f"{label}: fields must be a list of dotted paths like \"meta.request_id\" or "
                              f"\"items.*.fetched_at\"")
        if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
            raise PolicyError(f"{label}: patterns must be a list of regular expressions")
        for i, pattern in enumerate(patterns):
            _check_regex(pattern, f"{label}: patterns[{i}]")
        if not fields and not patterns:
            raise PolicyError(f"{label}: names no fields and no patterns; say what changes on every call")
        out.append({"match": rule["match"], "input_regex": rule["input_regex"], "input_equals": rule["input_equals"],
                    "fields": tuple(fields), "patterns": tuple(patterns), "reason": rule["reason"]})
    return tuple(out)


#: Store overlays (``[[overlays]]``): the tools each kind simulates, by role; required roles first.
OVERLAY_ROLES = {"objects": (("put", "get", "head", "list", "delete"), ()),
                 "key-value": (("get", "set", "delete"), ("incr",))}
_OVERLAY_KEYS = {"server", "kind", "name", "tools", "plain_tools", "max_mb", "shadow_env"}
#: Default limit of what one store overlay keeps (MB): bodies, values and keys.
DEFAULT_OVERLAY_MAX_MB = 256


def compile_overlays(entries, where="<policy>"):
    """``[[overlays]]`` -> a tuple of overlay dicts (module docstring), validated.

    Each table names a server (as the agent sees it: ``mcp__<server>__<tool>``), a
    ``kind`` (``"objects"``: an S3-style object store; ``"key-value"``: a versioned
    key-value store) and the server's tools for each role of that kind. Raises
    :class:`PolicyError` naming the table and the problem: an unknown key or role, a
    required role missing, a tool mapped twice for one server, a bad limit or environment.
    """
    import re

    out, seen_tools, seen_names = [], {}, set()
    for label, entry in _tables(entries, "overlays", _OVERLAY_KEYS, where):
        server = entry.get("server")
        if not isinstance(server, str) or not server or "__" in server:
            raise PolicyError(f"{label}: server must be the MCP server's name as the agent sees it "
                              f"(mcp__<server>__<tool>), without '__'")
        kind = entry.get("kind")
        if kind not in OVERLAY_ROLES:
            raise PolicyError(f"{label}: kind must be one of {', '.join(repr(k) for k in OVERLAY_ROLES)}, not {kind!r}")
        required, optional = OVERLAY_ROLES[kind]
        name = entry.get("name", kind)
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
            raise PolicyError(f"{label}: name must be letters, digits, '.', '_' or '-' (at most 64), not {name!r}")
        if (server, name) in seen_names:
            raise PolicyError(f"{label}: server {server!r} has two overlays named {name!r}; give one a name = \"...\"")
        seen_names.add((server, name))
        tools = entry.get("tools")
        if not isinstance(tools, dict):
            example = ", ".join(f'{r} = "..."' for r in required)
            raise PolicyError(f"{label}: tools must be a table of role = tool name, e.g. {{ {example} }}")
        unknown = set(tools) - set(required) - set(optional)
        if unknown:
            raise PolicyError(f"{label}: unknown role(s) for kind {kind!r}: {', '.join(sorted(unknown))} "
                              f"(roles: {', '.join(required + optional)})")
        missing = [r for r in required if r not in tools]
        if missing:
            raise PolicyError(f"{label}: kind {kind!r} needs a tool for every one of {', '.join(required)}; "
                              f"missing: {', '.join(missing)}")
        plain = entry.get("plain_tools", [])
        if not isinstance(plain, list):
            raise PolicyError(f"{label}: plain_tools must be a list of tool names")
        for role, tool in [*tools.items(), *(("plain_tools", t) for t in plain)]:
            what = f"tools.{role}" if role != "plain_tools" else "plain_tools"
            if not isinstance(tool, str) or not tool:
                raise PolicyError(f"{label}: {what} must be a tool name as the server knows it (a non-empty string)")
            if (server, tool) in seen_tools:
                raise PolicyError(f"{label}: tool {tool!r} of server {server!r} is already handled by "
                                  f"{seen_tools[server, tool]}; a tool belongs to one overlay role")
            seen_tools[server, tool] = f"{label} {what}"
        max_mb = entry.get("max_mb", DEFAULT_OVERLAY_MAX_MB)
        if isinstance(max_mb, bool) or not isinstance(max_mb, (int, float)) or not 0 < max_mb <= 1048576:
            raise PolicyError(f"{label}: max_mb must be a number of megabytes above 0 (at most 1048576), "
                              f"not {max_mb!r}")
        env = entry.get("shadow_env")
        if env is not None and (not isinstance(env, dict) or not all(
                isinstance(k, str) and k and "=" not in k and isinstance(v, str) for k, v in env.items())):
            raise PolicyError(f"{label}: shadow_env must be a table of environment variable = string value")
        out.append({"server": server, "name": name, "kind": kind, "tools": dict(tools), "plain_tools": tuple(plain),
                    "max_bytes": int(max_mb * 1048576), "shadow_env": dict(env) if env is not None else None})
    return tuple(out)


_ALERT_KEYS = {"log", "command", "webhook", "rate_limit", "rate_window_s"}
#: Bounds of the ``[alerts]`` rate-limit settings.
MAX_ALERT_RATE_LIMIT = 100000
MAX_ALERT_RATE_WINDOW_S = 86400


def _alert_options(alerts, where):
    """The ``[alerts]`` rate-limit keys, validated: ``{"alert_rate_limit": int, "alert_rate_window_s": int}``.

    ``rate_limit``: sink deliveries (command, webhook) per kind and cause per window,
    0 for no limit; ``rate_window_s``: the window in seconds. Raises PolicyError for
    unknown keys in ``[alerts]`` and values out of range.
    """
    from drygate.alerts import DEFAULT_RATE_LIMIT, DEFAULT_RATE_WINDOW_S

    unknown = set(alerts) - _ALERT_KEYS
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) in [alerts]: {', '.join(sorted(unknown))} "
                          f"(known: {', '.join(sorted(_ALERT_KEYS))})")
    limit = alerts.get("rate_limit", DEFAULT_RATE_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_ALERT_RATE_LIMIT:
        raise PolicyError(f"{where}: [alerts] rate_limit must be an integer from 0 (no limit) to "
                          f"{MAX_ALERT_RATE_LIMIT}: deliveries to the command and webhook per kind and cause "
                          f"per window, not {limit!r}")
    window = alerts.get("rate_window_s", DEFAULT_RATE_WINDOW_S)
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= MAX_ALERT_RATE_WINDOW_S:
        raise PolicyError(f"{where}: [alerts] rate_window_s must be an integer number of seconds from 1 to "
                          f"{MAX_ALERT_RATE_WINDOW_S}, not {window!r}")
    return {"alert_rate_limit": limit, "alert_rate_window_s": window}


def _compile_rule(rule, i, label):
    """One ``[[rules]]`` table (keys already checked) -> the compiled rule dict."""
    matchers = [k for k in ("tool", "tool_glob", "tool_regex") if k in rule]
    if len(matchers) != 1:
        raise PolicyError(f"{label}: needs exactly one of tool, tool_glob, tool_regex")
    key = matchers[0]
    pattern = rule[key]
    if not isinstance(pattern, str) or not pattern:
        raise PolicyError(f"{label}: {key} must be a non-empty string")
    if key == "tool":
        match = ("literal", pattern)
    elif key == "tool_glob":
        body = pattern[:-1]
        if pattern.endswith("*") and not any(c in body for c in "*?[]"):
            match = ("prefix", body)  # fast path: no regex needed at decision time
        else:
            match = ("glob", pattern)
    else:
        _check_regex(pattern, f"{label}: tool_regex {pattern!r}")
        match = ("regex", pattern)

    effect = rule.get("effect")
    if effect is None and "action" not in rule and "classify" not in rule:
        raise PolicyError(f"{label}: needs an effect (one of {', '.join(EFFECTS)}) or an action")
    if effect is not None and effect not in EFFECTS:
        raise PolicyError(f"{label}: effect must be one of {', '.join(EFFECTS)}, not {effect!r}")
    action = rule.get("action")
    if action not in (None, "deny", "ask"):
        raise PolicyError(f"{label}: action must be \"deny\" or \"ask\", not {action!r}")
    dry = rule.get("dry", False)
    if not isinstance(dry, bool):
        raise PolicyError(f"{label}: dry must be true or false")
    input_regex = rule.get("input_regex", {})
    input_equals = rule.get("input_equals", {})
    for name, table in (("input_regex", input_regex), ("input_equals", input_equals)):
        if not isinstance(table, dict):
            raise PolicyError(f"{label}: {name} must be a table of field = value")
    for field, pat in input_regex.items():
        if not isinstance(pat, str):
            raise PolicyError(f"{label}: input_regex.{field} must be a string")
        _check_regex(pat, f"{label}: input_regex.{field}")
    reason = rule.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise PolicyError(f"{label}: reason must be a string")
    rule_id = rule.get("id", f"rules[{i}]")
    if not isinstance(rule_id, str):
        raise PolicyError(f"{label}: id must be a string")
    classify_with = rule.get("classify")
    if classify_with not in (None, "sql", "http"):
        raise PolicyError(f"{label}: classify must be \"sql\" or \"http\", not {classify_with!r}")
    dialect = rule.get("sql_dialect", "postgres")
    if dialect not in SQL_DIALECTS:
        raise PolicyError(f"{label}: sql_dialect must be one of {', '.join(SQL_DIALECTS)}")
    for key in ("sql_argument", "url_argument", "method_argument"):
        if key in rule and (not isinstance(rule[key], str) or not rule[key]):
            raise PolicyError(f"{label}: {key} must be the name of an input field")
    return {
        "id": rule_id,
        "match": match,
        "input_regex": tuple(input_regex.items()),
        "input_equals": tuple((k, _freeze(v)) for k, v in input_equals.items()),
        "effect": effect or "unknown",
        "dry": dry,
        "action": action,
        "reason": reason,
        "classify": classify_with,
        "sql_argument": rule.get("sql_argument", "sql"),
        "sql_dialect": dialect,
        "url_argument": rule.get("url_argument", "url"),
        "method_argument": rule.get("method_argument", "method"),
    }


def _tables(entries, array, keys, where):
    """Yield ``(label, table)`` for an array of tables (``[[array]]``), checking its keys."""
    if not isinstance(entries, list):
        raise PolicyError(f"{where}: {array} must be an array of tables ([[{array}]])")
    for i, entry in enumerate(entries):
        label = f"{where}: {array}[{i}]"
        if not isinstance(entry, dict):
            raise PolicyError(f"{label}: must be a table")
        unknown = set(entry) - keys
        if unknown:
            raise PolicyError(f"{label}: unknown key(s): {', '.join(sorted(unknown))}")
        yield label, entry


def _compile_commands(entries, where):
    """``[[commands]]`` -> {program name: spec} (the shape of drygate.classifiers.data.commands)."""
    out = {}
    for label, entry in _tables(entries, "commands", _COMMAND_KEYS, where):
        name = entry.get("name")
        if not isinstance(name, str) or not name or name.endswith("/"):
            raise PolicyError(f"{label}: name must be a program name, or a path as the agent types it")
        spec = {}
        if "effect" in entry:
            spec["effect"] = _effect_of(entry["effect"], f"{label}: effect")
        subs = entry.get("subcommands", {})
        flags = entry.get("flags", {})
        if not isinstance(subs, dict) or not isinstance(flags, dict):
            raise PolicyError(f"{label}: subcommands and flags must be tables of name = effect")
        if subs:
            spec["subcommands"] = {k: _effect_of(v, f"{label}: subcommands.{k}") for k, v in subs.items()}
            spec["other"] = spec.pop("effect", "unknown")
        if flags:
            spec["flags"] = {k: _effect_of(v, f"{label}: flags.{k}") for k, v in flags.items()}
        values = entry.get("values", [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise PolicyError(f"{label}: values must be a list of option names")
        if values:
            spec["values"] = tuple(values)
        out[name] = spec
    return out


def _check_regex(pattern, what):
    """Raise :class:`PolicyError` ``"<what> is not a valid regex: ..."`` unless ``pattern`` compiles."""
    import re

    try:
        re.compile(pattern)
    except re.error as e:
        raise PolicyError(f"{what} is not a valid regex: {e}") from e


def _effect_of(value, label):
    if value not in EFFECTS or value == "bookkeeping":
        raise PolicyError(f"{label} must be one of read, write, side_effect_read, external, unknown")
    return value


def _compile_http_rules(entries, where):
    """``[[http_rules]]`` -> tuple of (url_regex, methods tuple or None, effect)."""
    out = []
    for label, entry in _tables(entries, "http_rules", _HTTP_RULE_KEYS, where):
        pattern = entry.get("url_regex")
        if not isinstance(pattern, str) or not pattern:
            raise PolicyError(f"{label}: url_regex must be a regular expression")
        _check_regex(pattern, f"{label}: url_regex")
        methods = entry.get("methods")
        if methods is not None and (not isinstance(methods, list) or not all(isinstance(m, str) for m in methods)):
            raise PolicyError(f"{label}: methods must be a list of HTTP methods")
        out.append((pattern, tuple(m.upper() for m in methods) if methods else None,
                    _effect_of(entry.get("effect"), f"{label}: effect")))
    return tuple(out)


def _freeze(value):
    """Make a TOML value marshal-able and comparable (lists become tuples)."""
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
