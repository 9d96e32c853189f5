"""Install the Claude Code hook into a project's ``.claude/settings.json``.

The installed entry (shared/reference/claude-code.md):

- matcher ``"*"``: every tool, including MCP and plugin tools (a server-prefix
  matcher such as ``mcp__srv`` matches nothing, and ``mcp__srv__.*`` misses the
  plugin-bundled form);
- a ``command`` handler (run with ``sh -c``) that starts drygate's own interpreter
  by absolute path, isolated (``-I``: no ``PYTHONPATH`` or user site can swap the
  code) and without ``site`` (``-S``: faster start, no ``.pth`` code), and that
  turns every status other than 0 and 2 into exit 2 with a message on stderr and an
  alert line. A missing executable or virtual environment (sh exits 127 or 126),
  a crash (exit 1) or a hard-deadline kill therefore still blocks the call;
- a ``timeout`` of 30 s, well above the gate's own deadline (3 s by default), so
  the gate always answers before the host gives up on it.

Merging is idempotent: earlier drygate entries (recognised by the ``drygate-hook``
marker) are replaced, every other hook is kept as it was.
"""

import json
import os
import shlex
import sys

MARKER = "drygate-hook"
HOOK_TIMEOUT_S = 30
EVENTS = ("PreToolUse", "PostToolUse")


def package_root():
    """The folder that holds the ``drygate`` package (site-packages or ``src/``)."""
    import drygate

    return os.path.dirname(os.path.dirname(os.path.abspath(drygate.__file__)))


def import_roots():
    """Folders the hook needs on ``sys.path`` (list of str): drygate's own, then the
    site-packages of its interpreter, where its parsers (tree-sitter, sqlglot) live.
    The hook runs with ``-S``, so ``site`` does not add them."""
    import site

    roots = [package_root()]
    for folder in site.getsitepackages():
        if folder not in roots and os.path.isdir(folder):
            roots.append(folder)
    return roots


def hook_command(python=None, root=None, project_expr='"$CLAUDE_PROJECT_DIR"', roots=None):
    """The shell command the host runs for each tool call (str).

    ``python``: interpreter path (default: the running one); ``root``: folder holding
    the drygate package (default: :func:`import_roots`, which also brings the
    parsers' site-packages); ``roots``: the whole list of import folders instead;
    ``project_expr``: shell expression for the project folder. The folders are put
    after the standard library on ``sys.path``.
    """
    python = python or sys.executable
    roots = list(roots) if roots else [root] if root else import_roots()
    # The roots go AFTER the standard library: a module planted in them (keyword.py) must
    # never shadow one of the standard library's (drygate.integrity watches them too).
    code = (f"import sys;sys.path+={roots!r};"
            "from drygate.enforcement.claude_code import exit_main;exit_main()")
    return fail_closed_command(f"{shlex.quote(python)} -I -S -c {shlex.quote(code)} claude-code --project {project_expr}")


def fail_closed_command(inner):
    """``inner`` (a shell command running drygate's hook) wrapped so that every exit status
    other than 0 and 2 (a crash, a missing interpreter or executable: 127), and an exit 0
    whose stdout is not a JSON object (nothing, or text), becomes exit 2 with a reason on stderr and a guard-failure alert
    line (str). The host blocks on exit 2 in every version (shared/reference/claude-code.md);
    it lets the call run on the others.

    drygate's hook answers every call it lets through with a JSON object on stdout (``{}``
    at least), so exit 0 with no output (or one not starting with ``{``) is not drygate's answer: an interpreter replaced by
    a script that exits 0, or a hook that ends at import. The wrapper holds the hook's stdout
    (``out=$(...)``) and prints it only once the answer is known good; the alert's cause is
    ``hook_exit_<status>`` or ``hook_no_answer``."""
    alert = ('[ -n "$DRYGATE_ALERT_LOG" ] || mkdir -p "${CLAUDE_PROJECT_DIR:-.}/.drygate" 2>/dev/null; printf \'{"ts":%s,"kind":"guard_failure","cause":"%s","reason":"drygate hook %s; '
             'call blocked by the wrapper","host":"claude-code"}\\n\' "$(date +%s)" "$k" "$c" '
             '>> "${DRYGATE_ALERT_LOG:-${CLAUDE_PROJECT_DIR:-.}/.drygate/alerts.jsonl}" 2>/dev/null')
    return (f"out=$({inner}); s=$?; k=hook_exit_$s; c=\"exited $s\"; "
            f"case $s:$out in 0:{{*) ;; 0:*) s=1; k=hook_no_answer; c=\"exited 0 without a JSON answer\";; esac; "
            f"if [ $s -ne 0 ] && [ $s -ne 2 ]; then "
            f"echo \"drygate: the gate failed ($c); the call was BLOCKED (fail closed)\" >&2; "
            f"{alert}; exit 2; fi; printf '%s\\n' \"$out\"; exit $s # {MARKER}")


def _is_ours(handler):
    return isinstance(handler, dict) and MARKER in str(handler.get("command", ""))


def merge_hooks(settings, command, timeout_s=HOOK_TIMEOUT_S):
    """Return ``settings`` (dict) with drygate's hooks replaced or added. Pure.

    Raises ValueError if ``settings["hooks"]`` has a shape the host would not accept.
    """
    settings = dict(settings)
    hooks = settings.get("hooks", {})
    if not isinstance(hooks, dict):
        raise ValueError("settings 'hooks' is not an object")
    hooks = dict(hooks)
    for event in EVENTS:
        groups = hooks.get(event, [])
        if not isinstance(groups, list):
            raise ValueError(f"settings hooks.{event} is not a list")
        kept = []
        for group in groups:
            if not isinstance(group, dict):
                kept.append(group)
                continue
            handlers = [h for h in group.get("hooks", []) if not _is_ours(h)]
            if handlers or not group.get("hooks"):
                kept.append(dict(group, hooks=handlers))
        kept.insert(0, {"matcher": "*", "hooks": [{"type": "command", "command": command, "timeout": timeout_s}]})
        hooks[event] = kept
    settings["hooks"] = hooks
    return settings


def install_claude_code(project_dir, python=None, root=None, settings_name="settings.json"):
    """Write drygate's hooks into ``<project>/.claude/<settings_name>``; returns its path.

    Keeps every other setting and hook. Raises ValueError (with the path) if the
    existing file is not valid JSON, rather than overwrite it.
    """
    path = os.path.join(os.path.abspath(project_dir), ".claude", settings_name)
    settings = read_settings_file(path, "; fix it before installing")
    write_settings_file(path, merge_hooks(settings, hook_command(python, root)))
    return path


def read_settings_file(path, hint=""):
    """The JSON object in a Claude Code settings file (dict; ``{}`` when the file is missing
    or blank). Raises ValueError naming ``path`` (plus ``hint``) when it is not valid JSON or
    not an object, so a caller never overwrites a file it could not read."""
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if not text.strip():
        return {}
    try:
        settings = json.loads(text)
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e}){hint}") from e
    if not isinstance(settings, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return settings


def write_settings_file(path, settings):
    """Write ``settings`` (dict) to a Claude Code settings file atomically (a temporary file
    beside it, then a rename), making its folder when needed."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".drygate-tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(settings, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
