"""Self-protection: calls that would change the gate itself are denied in every mode.

The gate is only as strong as its configuration: an agent that can turn hooks off
(``disableAllHooks`` in any settings layer), rewrite the policy, delete the state
store, swap drygate's code or override its environment gets around every other rule
(case CC-14). Every call is checked, whatever its effect (docs/self-protection.md):

- a file tool (Write, Edit, MultiEdit, NotebookEdit) is tamper when its target is a
  protected path (the project's ``.claude/`` folder, ``.mcp.json``, the user's Claude
  settings, the policy, drygate's state and its own code), after joining the call's
  folder and resolving symlinks, or a hard link of a protected file;
- a shell command (:func:`shell_command`) is read by
  :func:`drygate.classifiers.protect_shell.find_tamper`, on its own syntax tree, not
  through the effect classifier: brace expansion, globs in every path part, ``cd``
  followed through the command list, text bash evaluates, whole-tree commands;
- any other call whose effect is gated is tamper when its input mentions a protected
  marker (the ``.claude`` folder, the MCP configuration, the policy file's name, the
  ``.drygate`` folder, ``DRYGATE_`` variables, ``disableAllHooks``, drygate's installing
  commands) or a protected path, or has a path-like string that resolves to one.

Limits (stated, not hidden): text that is built at run time (a path a script computes,
base64, a word that is only a variable) cannot be recognised statically. In a dry run
such commands are dry anyway; in a live run only a check that does not read the command
(fingerprints of the protected files) can notice them. Managed settings that the
project cannot override are the host's own defence.
"""

import os

from drygate.classifiers.claude_code import FILE_PATH_FIELDS

#: Text that marks an attempt to change the gate, wherever it appears in a write's input.
MARKERS = (
    ".claude", ".mcp.json", "disableAllHooks", "DRYGATE_", ".drygate",
    "drygate hook", "drygate install", "drygate init", "drygate run ", "drygate prune",
)
#: Path-like strings resolved per call at most (each costs a few stat calls).
MAX_PATHS = 512


class ProtectedPaths:
    """The paths and markers a project protects.

    ``paths``: absolute, normalised files or folders (tuple of str); ``markers``:
    substrings (tuple of str); ``files``: the key files whose hard links are
    caught too (tuple of str). Build it with :func:`for_project`.
    """

    __slots__ = ("paths", "markers", "files", "_resolved", "_inodes")

    def __init__(self, paths, markers, files=()):
        self.paths = tuple(paths)
        self.markers = tuple(markers)
        self.files = tuple(files)
        self._resolved = None
        self._inodes = None

    def resolved(self):
        """The paths plus their symlink-resolved forms (computed on first use: it stats)."""
        if self._resolved is None:
            extra = tuple(r for r in (os.path.realpath(p) for p in self.paths) if r not in self.paths)
            self._resolved = self.paths + extra
        return self._resolved

    def inodes(self):
        """(device, inode) of every protected path that exists, for hard-link checks."""
        if self._inodes is None:
            found = {}
            for p in self.paths + self.files:
                try:
                    st = os.stat(p)
                except OSError:
                    continue
                found[(st.st_dev, st.st_ino)] = p
            self._inodes = found
        return self._inodes


def _installation_paths():
    """drygate's own code and, for a virtual environment, the environment itself."""
    import sys

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the drygate package
    paths = [here]
    if sys.prefix != getattr(sys, "base_prefix", sys.prefix):
        paths.append(sys.prefix)
    return paths


def _environment_paths():
    """The hook's interpreter, import roots and store records (drygate.integrity owns this list)."""
    from drygate.integrity import environment_paths

    return environment_paths()


def for_project(project_dir, policy_path=None, state_path=None, alert_log=None, home=None):
    """The protected set of a project: its settings, policy, state, alert log, drygate itself.

    All arguments are paths (str) or None. Returns :class:`ProtectedPaths`.
    """
    project_dir = os.path.abspath(project_dir)
    home = home or os.path.expanduser("~")
    paths = [
        # The whole project folder of the host: settings, and agents, skills and
        # commands whose front matter can carry hooks of their own.
        os.path.join(project_dir, ".claude"),
        os.path.join(project_dir, ".mcp.json"),
        os.path.join(project_dir, ".drygate"),  # the policy cache lives here whatever [state] path says
        os.path.join(home, ".claude", "settings.json"),
        os.path.join(home, ".claude", "settings.local.json"),
        os.path.join(home, ".claude.json"),
        os.path.join(home, ".claude", "plugins"),  # installed plugins and marketplaces: drygate's plugin hooks
        "/etc/claude-code",
        *_installation_paths(),
        *_environment_paths(),
    ]
    markers = list(MARKERS)
    policy_path = policy_path or os.path.join(project_dir, "drygate.toml")
    paths.append(os.path.abspath(policy_path))
    markers.append(os.path.basename(policy_path))
    if alert_log and alert_log != os.devnull:
        from drygate.config import sidecar_paths

        paths.append(os.path.abspath(alert_log))
        paths.extend(sidecar_paths(os.path.abspath(alert_log)))  # rate-limit state, metrics tally
    files = [os.path.join(project_dir, ".claude", "settings.json"),
             os.path.join(project_dir, ".claude", "settings.local.json"), os.path.abspath(policy_path)]
    if state_path:
        paths.append(os.path.dirname(os.path.abspath(state_path)))
        files.append(os.path.abspath(state_path))
    return ProtectedPaths([os.path.normpath(p) for p in paths], markers, files)


def path_under(path, protected):
    """The entry of ``protected`` (iterable of normalised absolute paths) that ``path`` is or lies under, else None."""
    for p in protected:
        if path == p or path.startswith(p + os.sep):
            return p
    return None


def path_above(path, protected):
    """The entry of ``protected`` at or below ``path`` (deleting or moving ``path`` changes it), else None."""
    for p in protected:
        if p == path or p.startswith(path.rstrip(os.sep) + os.sep):
            return p
    return None


def _strings(value, out):
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)


def _resolve(text, cwd):
    return os.path.normpath(os.path.join(cwd, os.path.expanduser(text)))


def _check_file_tool(call, tool_input, protected, cwd):
    field = FILE_PATH_FIELDS.get(call.tool_name)
    target = tool_input.get(field) if field else None
    if not isinstance(target, str) or not target:
        return None
    full = _resolve(target, cwd)
    every = protected.resolved()
    hit = path_under(full, every) or path_under(os.path.realpath(full), every)
    if hit:
        return f"{call.tool_name} would change {hit}, which protects the gate"
    try:
        st = os.stat(full)
    except OSError:
        return None
    linked = protected.inodes().get((st.st_dev, st.st_ino))
    if linked:
        return f"{call.tool_name} would change {linked} through a hard link, which protects the gate"
    return None


#: Commands that only read whatever they are given, with no option that writes a file or
#: runs a command (their manuals); a command line made only of these, ``cd``, separators
#: and plain words cannot change anything (:func:`plainly_reads`).
PLAIN_READERS = frozenset((
    "ls", "cat", "head", "tail", "wc", "grep", "egrep", "fgrep", "pwd", "echo", "stat", "du", "df", "which",
    "whoami", "id", "date", "uname", "true", "false", "basename", "dirname", "realpath", "readlink", "diff",
    "cmp", "md5sum", "sha1sum", "sha256sum", "nl", "tac", "cut", "column", "ps", "pgrep", "cd", "pushd", "popd",
))
#: Characters that make :func:`plainly_reads` answer False: quoting, expansion, redirection,
#: grouping and assignment characters, and every ASCII control character but tab and newline
#: (with non-ASCII text, also refused there, these are all the characters on which Python's
#: ``str.split()`` and bash's word splitting could differ).
_PLAIN_FORBIDDEN = frozenset("<>$`(){}\\'\"=!~\x7f") | frozenset(chr(i) for i in range(32) if chr(i) not in "\t\n")


def plainly_reads(command):
    """True when shell ``command`` (str) is only PLAIN_READERS with plain words (no
    quotes, expansions, redirections, substitutions or assignments) joined by ``|``,
    ``&&``, ``||``, ``;``, ``&`` or newlines: such a line cannot change a file, so the
    shell reading (protect_shell, about 1 ms to import) is skipped for it.

    Only text whose words Python splits exactly as bash does is taken: bash separates
    words only on its metacharacters (bash manual, DEFINITIONS: "metacharacter: A
    character that, when unquoted, separates words. One of: | & ; ( ) < > space tab
    newline"), while ``str.split()`` also splits on other whitespace (U+00A0, U+2003,
    ``\\x1c``...) that bash keeps inside a word. So any non-ASCII character, any control
    character but tab and newline, and a ``#`` inside a word (a comment only at the start
    of a word) make it False; the full check (protect_shell) reads such a command."""
    if len(command) > 2000 or not command.isascii() or any(c in _PLAIN_FORBIDDEN for c in command):
        return False
    for line in command.replace("&&", "\n").replace("||", "\n").replace("|", "\n").replace(";", "\n") \
            .replace("&", "\n").split("\n"):
        cut = line.find("#")
        if cut > 0 and line[cut - 1] not in " \t":
            return False  # "#" inside a word (ls#x is one word): not a comment
        words = (line[:cut] if cut >= 0 else line).split()
        if words and words[0] not in PLAIN_READERS:
            return False
    return True


def shell_command(call):
    """The shell command a call runs (str), or None: the ``command`` of ``Bash``,
    ``Monitor``, and of a built-in (not ``mcp__``) tool drygate does not know (a newer
    host's shell tool); a known tool whose ``command`` is not shell (``SlashCommand``) has none."""
    if call.tool_name.startswith("mcp__") or not isinstance(call.tool_input, dict):
        return None
    if call.tool_name not in ("Bash", "Monitor"):
        from drygate.classifiers.claude_code import TOOL_EFFECTS

        if call.tool_name in TOOL_EFFECTS:  # a known tool whose "command" is not shell (SlashCommand)
            return None
    command = call.tool_input.get("command")
    return command if isinstance(command, str) else None


def check(call, protected, gated):
    """Return a reason (str) if ``call`` would change the gate, else None.

    ``protected``: :class:`ProtectedPaths`, or a tuple of :func:`for_project`'s arguments
    (built here only when the call needs them: a shell command that :func:`plainly_reads`
    does not, about 0.6 ms per hook process); ``gated``: the call's effect is a write.
    Every call is checked whatever its effect: a file tool by its target, a shell
    command by :func:`drygate.classifiers.protect_shell.find_tamper` (its own reading of
    the command, not the effect classifier's). Other tools are checked when their
    effect is gated: their effect comes from the policy or a server the policy trusts,
    which self-protection guards; such a read is not looked into.
    """
    if protected is None:
        return None
    command = shell_command(call)  # None for the file tools (they are in TOOL_EFFECTS)
    if command is not None and plainly_reads(command):
        return None
    if isinstance(protected, tuple):
        protected = for_project(*protected)
    tool_input = call.tool_input if isinstance(call.tool_input, dict) else {"input": call.tool_input}
    cwd = call.cwd or os.getcwd()
    why = _check_file_tool(call, tool_input, protected, cwd)
    if why:
        return why
    if command is not None:
        from drygate.classifiers.protect_shell import find_tamper

        return find_tamper(command, protected, os.path.abspath(cwd))
    if not gated:
        return None
    from drygate import _json

    try:
        text = _json.dumps(tool_input)
    except (TypeError, ValueError):
        text = repr(tool_input)
    for marker in protected.markers:
        if marker in text:
            return f"the call's input mentions {marker!r}, which protects the gate"
    for p in protected.paths:
        if p in text:
            return f"the call's input mentions {p}, which protects the gate"
    strings = []
    _strings(tool_input, strings)
    every = protected.resolved()
    checked = 0
    for s in strings:
        if len(s) > 4096 or not s.startswith(("/", "./", "../", "~")):
            continue
        checked += 1
        if checked > MAX_PATHS:
            return f"the call has more than {MAX_PATHS} paths, too many to check against the gate's files"
        full = _resolve(s, cwd)
        hit = path_under(full, every) or path_under(os.path.realpath(full), every)
        if hit:
            return f"the call's path {s!r} resolves to {hit}, which protects the gate"
    return None
