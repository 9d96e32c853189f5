"""Self-protection: calls that would change the gate itself are denied in every mode.

The gate is only as strong as its configuration: an agent that can turn hooks off
(``disableAllHooks`` in any settings layer), rewrite the policy, delete the state
store or override drygate's environment gets around every other rule (case CC-14).
A call is *tamper* when

- a file tool (Write, Edit, MultiEdit, NotebookEdit) targets a protected path
  (after joining the agent's cwd and resolving symlinks), or
- a call that is not a plain read (its effect is gated as a write) mentions a
  protected path or a protected marker anywhere in its input (shell commands,
  MCP arguments): the settings files, the policy file, the state folder, the MCP
  configuration, ``DRYGATE_`` variables, ``disableAllHooks``, or drygate's
  commands that change its installation.
"""

import os

from drygate.classifiers.claude_code import FILE_PATH_FIELDS

#: Text that marks an attempt to change the gate, wherever it appears in a write's input.
MARKERS = (
    ".claude/settings.json", ".claude/settings.local.json", "managed-settings.json",
    "disableAllHooks", "DRYGATE_", ".mcp.json",
    "drygate hook", "drygate install", "drygate init", "drygate run ", "drygate prune",
)
_MAX_STRINGS = 256


class ProtectedPaths:
    """The paths and markers a project protects.

    ``paths``: absolute, normalised files or folders (tuple of str); ``markers``:
    substrings (tuple of str). Build it with :func:`for_project`.
    """

    __slots__ = ("paths", "markers", "_resolved")

    def __init__(self, paths, markers):
        self.paths = tuple(paths)
        self.markers = tuple(markers)
        self._resolved = None

    def resolved(self):
        """The paths plus their symlink-resolved forms (computed on first use: it stats)."""
        if self._resolved is None:
            extra = tuple(r for r in (os.path.realpath(p) for p in self.paths) if r not in self.paths)
            self._resolved = self.paths + extra
        return self._resolved


def for_project(project_dir, policy_path=None, state_path=None, alert_log=None, home=None):
    """The protected set of a project: its settings, policy, state folder, alert log.

    All arguments are paths (str) or None. Full paths are always protected; only
    distinctive names become text markers (the policy file's name, a state folder
    named like ``.drygate``), so generic names such as ``state.db`` do not flag
    unrelated commands. Returns :class:`ProtectedPaths`.
    """
    project_dir = os.path.abspath(project_dir)
    home = home or os.path.expanduser("~")
    paths = [
        os.path.join(project_dir, ".claude", "settings.json"),
        os.path.join(project_dir, ".claude", "settings.local.json"),
        os.path.join(project_dir, ".mcp.json"),
        os.path.join(home, ".claude", "settings.json"),
        os.path.join(home, ".claude", "settings.local.json"),
        "/etc/claude-code",
    ]
    markers = list(MARKERS)
    policy_path = policy_path or os.path.join(project_dir, "drygate.toml")
    paths.append(os.path.abspath(policy_path))
    markers.append(os.path.basename(policy_path))
    if alert_log and alert_log != os.devnull:
        paths.append(os.path.abspath(alert_log))
    if state_path:
        state_dir = os.path.dirname(os.path.abspath(state_path))
        paths.append(state_dir)
        if "drygate" in os.path.basename(state_dir):
            markers.append(os.path.basename(state_dir))  # ".drygate": catches "rm -rf .drygate" too
    return ProtectedPaths([os.path.normpath(p) for p in paths], markers)


def _under(path, protected):
    for p in protected:
        if path == p or path.startswith(p + os.sep):
            return p
    return None


def _strings(value, out):
    if len(out) >= _MAX_STRINGS:
        return
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _strings(k, out)
            _strings(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _strings(v, out)


def check(call, protected, gated):
    """Return a reason (str) if ``call`` would change the gate, else None.

    ``protected``: :class:`ProtectedPaths`; ``gated``: the call's effect is a write.
    """
    if protected is None:
        return None
    field = FILE_PATH_FIELDS.get(call.tool_name)
    tool_input = call.tool_input if isinstance(call.tool_input, dict) else {}
    if field:
        target = tool_input.get(field)
        if isinstance(target, str) and target:
            full = os.path.normpath(os.path.join(call.cwd or os.getcwd(), os.path.expanduser(target)))
            every = protected.resolved()
            hit = _under(full, every) or _under(os.path.realpath(full), every)
            if hit:
                return f"{call.tool_name} would change {hit}, which protects the gate"
    if not gated:
        return None
    strings = []
    _strings(tool_input, strings)
    for s in strings:
        for marker in protected.markers:
            if marker in s:
                return f"the call's input mentions {marker!r}, which protects the gate"
        for p in protected.paths:
            if p in s:
                return f"the call's input mentions {p}, which protects the gate"
    return None
