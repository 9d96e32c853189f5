"""``drygate doctor``: check an installation end to end, with a fix for each problem.

Checks (each a dict ``{"check", "status": "ok" | "warn" | "fail", "detail", "fix"}``):

- the policy parses;
- the state store opens and takes a write;
- no settings layer (user, project, local, managed) sets ``disableAllHooks``;
- a drygate PreToolUse hook is installed with a matcher that catches every tool
  (and a PostToolUse hook, for the journal of live results);
- its command still blocks when drygate's executable, virtual environment or
  interpreter is gone (a missing command exits 127/126, which the host does not
  treat as blocking): the wrapper must turn that into exit 2, and doctor proves it
  by running the command with the interpreter path replaced by a missing one;
- the command works: a probe read is answered ``{}`` (exit 0), and a probe write
  in a dry run is answered with a deny inside ``hookSpecificOutput`` and exit 2;
- the hook timeout is above the gate's own deadline (a hook the host times out
  lets the tool run);
- MCP servers in ``.mcp.json`` that are not behind the relay (a warning);
- the OS sandbox (drygate.sandbox): bubblewrap and socat, the Claude Code CLI's version,
  whether ``.claude/settings.json`` carries the Bash sandbox exactly when the policy is dry,
  and whether shadow servers can be sandboxed; where not, what a dry run relies on.

Probes run the installed command against a throwaway state store and alert log
(``DRYGATE_STATE``, ``DRYGATE_ALERT_LOG``), so the doctor never adds runs or
alerts to the project's own.
"""

import json
import os
import shlex
import subprocess
import time

from drygate.enforcement.install import MARKER

HOST_DEFAULT_TIMEOUT_S = 600
ALL_TOOLS_MATCHERS = ("*", "", ".*", None)
from drygate.integrity import MANAGED_SETTINGS, settings_layers  # noqa: F401 (re-exported)


def _check(name, status, detail, fix=None):
    return {"check": name, "status": status, "detail": detail, "fix": fix}


def _load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _drygate_handlers(settings, event):
    found = []
    groups = settings.get("hooks", {}).get(event, []) if isinstance(settings.get("hooks"), dict) else []
    for group in groups if isinstance(groups, list) else []:
        if not isinstance(group, dict):
            continue
        for h in group.get("hooks", []) or []:
            if isinstance(h, dict) and MARKER in str(h.get("command", "")):
                found.append((group.get("matcher"), h))
    return found


def _json_object(data):
    try:
        value = json.loads(data.decode("utf-8", "replace").strip())
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _mcp_checks(project, policy=None):
    """Servers in .mcp.json that are not behind the relay (only the hook guards them), and
    servers whose reads a dry run will skip: annotations are used only for servers the
    policy trusts ([mcp] trusted_servers), so every tool of another server is unknown unless a
    rule names it."""
    path = os.path.join(project, ".mcp.json")
    if not os.path.exists(path):
        return []
    try:
        servers = _load_json(path).get("mcpServers", {})
    except (OSError, ValueError, AttributeError) as e:
        return [_check("mcp servers", "fail", f"{path} cannot be read ({e})", "fix the file")]
    checks = []
    bare = [name for name, entry in servers.items()
            if isinstance(entry, dict) and "drygate.cli.entry" not in " ".join(map(str, entry.get("args") or []))]
    if bare:
        checks.append(_check("mcp servers", "warn",
                             f"not behind the relay (only the hook guards them): {', '.join(bare)}",
                             "run `drygate install claude-code --mcp`"))
    else:
        checks.append(_check("mcp servers", "ok", f"{len(servers)} server(s) behind the relay"))
    if policy is not None:
        trusted = set(policy.get("mcp_trusted") or ())
        ruled = {name for name in servers if any(r.get("effect") == "read" and _rule_names_server(r, name)
                                                for r in policy.get("rules") or ())}
        skipped = [name for name in servers if name not in trusted and name not in ruled]
        if skipped:
            checks.append(_check("mcp reads", "warn",
                                 f"reads of {', '.join(skipped)} will be skipped in dry runs (and become plan steps): "
                                 f"their annotations are not trusted and no rule names their tools",
                                 "trust their annotations in drygate.toml ([mcp] trusted_servers) or add [[rules]] "
                                 "with effect = \"read\" for their read tools"))
        else:
            checks.append(_check("mcp reads", "ok", "every server's read tools can be recognised (trusted "
                                                    "annotations or rules)"))
    return checks


def _rule_names_server(rule, server):
    """Whether a compiled policy rule (drygate.policy.load) names tools of ``server``."""
    kind, value = rule.get("match", (None, None))
    prefix = f"mcp__{server}__"
    if kind == "literal":
        return isinstance(value, str) and value.startswith(prefix)
    text = getattr(value, "pattern", value)
    return isinstance(text, str) and prefix in text


def _run_hook(command, event, project_dir, env_extra=None, timeout_s=30):
    env = dict(os.environ, CLAUDE_PROJECT_DIR=project_dir, **(env_extra or {}))
    started = time.monotonic()
    proc = subprocess.run(["/bin/sh", "-c", command], input=json.dumps(event).encode(), capture_output=True,
                          env=env, cwd=project_dir, timeout=timeout_s)
    return proc, time.monotonic() - started


def _redis_checks(store):
    """Checks of a reachable, initialized Redis store: eviction and durability."""
    from drygate.cli.state_cmd import persistence_warnings

    marker = store.marker()
    checks = [_check("state store", "ok", f"Redis {store.where} answers; store {marker.get('store_id')}")]
    policy = store.eviction_policy()
    if policy not in (None, "noeviction"):
        checks.append(_check("redis eviction", "fail", f"maxmemory-policy is {policy}: Redis may evict a run's "
                             f"dry state", "set `maxmemory-policy noeviction`"))
    for warning in persistence_warnings({"persistence": store.persistence()}):
        checks.append(_check("redis durability", "warn", warning, "set `appendonly yes`, `appendfsync always`"))
    return checks


def _sandbox_checks(project, policy, home=None):
    """The OS sandbox section (drygate.sandbox.doctor_checks): can Claude Code's Bash sandbox and
    the shadow servers' sandbox run here, and if not, what a dry run relies on."""
    if policy is None:
        return []
    from drygate.sandbox import doctor_checks

    return doctor_checks(project, policy)


def _sqlite_checks(store, state_path):
    """The SQLite store's marker against this machine's record (drygate.integrity)."""
    from drygate import integrity

    problem = integrity.identity_problem(state_path, store, integrity.read_record(state_path))
    if problem:
        return [_check("state store", "fail", problem, "see the message; every hook call is blocked until then")]
    return [_check("state store", "ok", f"{state_path} is writable; store {store.marker().get('store_id')} "
                                        f"matches this machine's record")]


def _changes_since_last_run(store, settings):
    """What changed in the watched files since the latest run first saw them (drygate.integrity)."""
    from drygate import integrity

    try:
        changes = integrity.changed_since_last_run(store, settings.project_dir, settings.policy_path)
    except Exception as e:  # a report, never a crash of the doctor
        return [_check("changed since the last run", "warn", f"cannot compare: {e}")]
    if not store.fingerprints(integrity.LAST):
        return [_check("changed since the last run", "ok", "no run has been checked yet")]
    if not changes:
        return [_check("changed since the last run", "ok", "settings, policy and drygate's code are as the last "
                                                          "run saw them")]
    listed = "; ".join(f"{path}: {what}" for path, what in changes[:20])
    more = f" (and {len(changes) - 20} more)" if len(changes) > 20 else ""
    return [_check("changed since the last run", "warn", f"{len(changes)} change(s): {listed}{more}",
                   "if you made them, nothing to do: a new run takes the files as they are; a run in progress "
                   "when they changed was blocked. If you did not, find out who did")]


def run_checks(settings, home=None):
    """Run every check for ``settings`` (drygate.config.Settings); returns a list of check dicts."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="drygate-doctor-") as scratch:
        # DRYGATE_STATE_URL="" so that the probes never reach a fleet's Redis store. The probes'
        # store is initialized as `drygate init` would (the hook never creates one), with its
        # record in the scratch folder too (XDG_STATE_HOME), so nothing of it outlives the doctor.
        probe_env = {"DRYGATE_STATE": os.path.join(scratch, "state.db"), "DRYGATE_STATE_URL": "",
                     "DRYGATE_ALERT_LOG": os.path.join(scratch, "alerts.jsonl"),
                     "DRYGATE_RUN_ID": "drygate-doctor", "XDG_STATE_HOME": os.path.join(scratch, "xdg")}
        _init_probe_store(probe_env)
        return _run_checks(settings, home, probe_env)


def _init_probe_store(probe_env):
    from drygate.integrity import initialize_store

    saved = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = probe_env["XDG_STATE_HOME"]
    try:
        initialize_store(probe_env["DRYGATE_STATE"])
    finally:
        if saved is None:
            os.environ.pop("XDG_STATE_HOME", None)
        else:
            os.environ["XDG_STATE_HOME"] = saved


def _run_checks(settings, home, probe_env):
    from drygate.errors import DrygateError, StoreUnavailable
    from drygate.policy.cache import load_policy

    project = settings.project_dir
    checks = []
    policy = None
    try:
        policy = load_policy(settings.policy_path, None)
        checks.append(_check("policy", "ok", f"{settings.policy_path} parses (mode {policy['mode']}, "
                                             f"{len(policy['rules'])} rules, deadline {policy['deadline_ms']} ms)"))
    except DrygateError as e:
        checks.append(_check("policy", "fail", str(e), "run `drygate init` or fix the file; every call is "
                                                       "blocked while the policy cannot be read"))

    if policy is not None:
        state_path = settings.state_path_for(policy)
        try:
            from drygate.state import open_store

            sqlite = "://" not in state_path and state_path not in ("memory:", ":memory:")
            if sqlite and not os.path.exists(state_path):
                from drygate import integrity

                raise StoreUnavailable(integrity.identity_problem(state_path, None,
                                                                  integrity.read_record(state_path), exists=False))
            store = open_store(state_path, busy_timeout_s=1.0, policy=policy)
            try:
                store.ping()
                checks.extend(_redis_checks(store) if "://" in state_path else _sqlite_checks(store, state_path))
                checks.extend(_changes_since_last_run(store, settings))
            finally:
                store.close()
        except DrygateError as e:
            fix = ("start Redis or fix the URL; a new or emptied store needs `drygate state init`"
                   if "://" in state_path else "what the message says (`drygate init`, `drygate state init "
                                               "[--recover HOURS]`), or make the folder writable")
            checks.append(_check("state store", "fail", str(e), fix))

    checks.extend(_sandbox_checks(project, policy, home))

    merged_hooks = {"PreToolUse": [], "PostToolUse": []}
    plugin_layer = None  # the settings layer that enables the drygate plugin last (plugins/drygate)
    for path in settings_layers(project, home):
        if not os.path.exists(path):
            continue
        try:
            layer = _load_json(path)
        except (OSError, ValueError) as e:
            checks.append(_check("settings", "fail", f"{path} cannot be read as JSON ({e})",
                                 "fix the file: the host may ignore a broken settings layer"))
            continue
        if not isinstance(layer, dict):
            continue
        if layer.get("disableAllHooks"):
            checks.append(_check("disableAllHooks", "fail", f"{path} sets disableAllHooks: every hook is off",
                                 f"remove disableAllHooks from {path}"))
        for event in merged_hooks:
            merged_hooks[event] += [(path, m, h) for m, h in _drygate_handlers(layer, event)]
        enabled = layer.get("enabledPlugins")
        for key, on in (enabled.items() if isinstance(enabled, dict) else ()):
            if isinstance(key, str) and key.split("@")[0] == "drygate":
                plugin_layer = path if on is True else None
    if policy is not None and policy["mode"] == "sticky" and not any(r["dry"] for r in policy["rules"]):
        checks.append(_check("dry scope", "warn", "the policy is sticky but no rule has dry = true: no call can "
                                                  "make a run dry, so sticky runs behave as live",
                             "add dry = true to the rules of the writes to rehearse first"))
    if not any(c["check"] == "disableAllHooks" for c in checks):
        checks.append(_check("disableAllHooks", "ok", "no settings layer turns hooks off"))

    checks.extend(_mcp_checks(project, policy))
    pre = merged_hooks["PreToolUse"]
    if plugin_layer and pre:
        checks.append(_check("plugin and hook", "fail",
                             f"the drygate plugin is enabled ({plugin_layer}) and {pre[0][0]} also has drygate's hook: "
                             f"every call would be decided twice (two plan steps for each dry write)",
                             f"remove drygate's hooks from {pre[0][0]} (`drygate init --no-hooks` adds none), or "
                             f"disable the plugin"))
    elif plugin_layer:
        import shutil

        from drygate.enforcement.plugin import plugin_hooks

        hooks = plugin_hooks()["hooks"]
        found = shutil.which("drygate-hook")
        checks.append(_check("plugin", "ok" if found else "fail",
                             f"the drygate plugin is enabled ({plugin_layer}); its hook runs {found}" if found else
                             f"the drygate plugin is enabled ({plugin_layer}) but drygate-hook is not on PATH: "
                             f"the plugin blocks every call", "install drygate as a tool (pipx install drygate)"))
        for event in merged_hooks:
            merged_hooks[event] = [(f"{plugin_layer} (plugin drygate)", "*", hooks[event][0]["hooks"][0])]
        pre = merged_hooks["PreToolUse"]
    if not pre:
        checks.append(_check("hook installed", "fail", "no drygate PreToolUse hook in any settings layer",
                             "run `drygate install claude-code`"))
        return checks
    path, matcher, handler = pre[0]
    if matcher in ALL_TOOLS_MATCHERS:
        checks.append(_check("hook matcher", "ok", f"{path}: matcher {matcher!r} catches every tool"))
    else:
        checks.append(_check("hook matcher", "fail", f"{path}: matcher {matcher!r} does not catch every tool",
                             "run `drygate install claude-code` (it writes matcher \"*\")"))
    if not merged_hooks["PostToolUse"]:
        checks.append(_check("result journal", "warn", "no drygate PostToolUse hook: live results are not journaled",
                             "run `drygate install claude-code`"))

    command = handler.get("command", "")
    if handler.get("async"):
        checks.append(_check("hook blocking", "fail", "the hook is async: async hooks can never block",
                             "run `drygate install claude-code`"))
    timeout = handler.get("timeout", HOST_DEFAULT_TIMEOUT_S)
    deadline_s = (policy or {}).get("deadline_ms", 3000) / 1000.0
    if not isinstance(timeout, (int, float)) or timeout <= deadline_s + 1.0:
        checks.append(_check("hook timeout", "fail",
                             f"hook timeout {timeout!r} s is at or below the gate's deadline {deadline_s} s "
                             "(+1 s grace): the host would give up first and run the tool",
                             "raise the hook timeout (drygate installs 30 s) or lower [gate] deadline_ms"))
    else:
        checks.append(_check("hook timeout", "ok", f"{timeout} s, above the gate's deadline {deadline_s} s"))

    try:
        words = shlex.split(command)
    except ValueError:
        words = []
    interpreter = words[0] if words else ""
    if interpreter.startswith("out=$("):  # the wrapper holds the hook's stdout (install.fail_closed_command)
        interpreter = interpreter[len("out=$("):]
    if interpreter and not os.path.isabs(interpreter):  # the plugin's drygate-hook, found on PATH
        import shutil

        resolved = shutil.which(interpreter) or ""
    else:
        resolved = interpreter
    if not resolved or not os.access(resolved, os.X_OK):
        checks.append(_check("hook executable", "fail", f"interpreter {interpreter!r} is missing or not executable",
                             "reinstall drygate, then run `drygate install claude-code`"))
    else:
        checks.append(_check("hook executable", "ok", resolved))

    probe = {"session_id": "drygate-doctor", "hook_event_name": "PreToolUse", "tool_name": "Read",
             "tool_input": {"file_path": os.path.join(project, "drygate.toml")}, "cwd": project,
             "permission_mode": "default", "tool_use_id": "drygate-doctor-probe"}
    try:
        proc, took = _run_hook(command, probe, project, probe_env)
        body = _json_object(proc.stdout)
        if proc.returncode == 0 and body == {}:
            checks.append(_check("hook answers", "ok", f"a probe read was answered in {took * 1000:.0f} ms"))
        else:
            checks.append(_check("hook answers", "fail",
                                 f"probe read exited {proc.returncode}: "
                                 f"{proc.stderr.decode('utf-8', 'replace')[-300:]}",
                                 "fix what the message says; reinstall with `drygate install claude-code`"))
        write = dict(probe, tool_name="Write", tool_input={"file_path": os.path.join(project, "drygate-doctor.txt"),
                                                             "content": "probe"})
        proc, took = _run_hook(command, write, project, dict(probe_env, DRYGATE_MODE="dry"))
        body = _json_object(proc.stdout) or {}
        decision = body.get("hookSpecificOutput", {}).get("permissionDecision") if isinstance(body, dict) else None
        if proc.returncode == 2 and decision == "deny":
            checks.append(_check("hook blocks a dry write", "ok",
                                 f"deny inside hookSpecificOutput and exit 2, in {took * 1000:.0f} ms"))
        else:
            checks.append(_check("hook blocks a dry write", "fail",
                                 f"a dry write was answered with exit {proc.returncode} and {decision!r}",
                                 "reinstall with `drygate install claude-code`"))
    except subprocess.TimeoutExpired:
        checks.append(_check("hook answers", "fail", "the probe did not answer within 30 s",
                             "check the state store (locked?) and the policy"))

    if interpreter:
        broken = command.replace(shlex.quote(interpreter), "/nonexistent/drygate-doctor/python", 1)
        if broken == command:
            broken = command.replace(interpreter, "/nonexistent/drygate-doctor/python", 1)
        try:
            proc, _ = _run_hook(broken, dict(probe, tool_name="Write"), project, probe_env)
            if proc.returncode == 2:
                checks.append(_check("blocks when drygate is gone", "ok",
                                     "with the interpreter missing the hook exits 2 (the host blocks)"))
            else:
                checks.append(_check("blocks when drygate is gone", "fail",
                                     f"with the interpreter missing the hook exits {proc.returncode}: "
                                     "the host would run the tool", "run `drygate install claude-code`"))
        except subprocess.TimeoutExpired:
            checks.append(_check("blocks when drygate is gone", "fail", "the probe hung", None))
    return checks
