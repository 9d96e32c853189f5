"""Classify a Bash command: read only when every part is known to be read-only.

This is the conservative classifier of the core issue: the command is split with
the standard library's ``shlex`` (POSIX rules, punctuation characters as operators)
into simple commands at ``;``, ``&&``, ``||``, ``|``, ``&``, parentheses and newlines.
A part is a read only if its command is in :data:`READ_ONLY_COMMANDS` with none of
that command's writing flags; a redirection into a file (other than ``/dev/null``
and the standard streams) is a write; anything the splitter cannot resolve
statically (command or process substitution, here-documents, backquotes) and every
command not in the table is ``unknown``, which the engine treats as a write. The
effect of the whole command is the strongest effect of its parts.

``shlex`` is not bash, so every construct where the two may read a command
differently is refused (unknown) before splitting: comments (``#``), any ``$``
expansion (a variable can carry a flag or a program), ANSI-C and locale quoting
(``$'...'``), brace expansion, carriage returns and line continuations. Variable
assignments (``X=1 cmd``, ``PATH=...``) are unknown too: environment such as
``GIT_EXTERNAL_DIFF`` or ``LD_PRELOAD`` makes any program run another. A command
given by path is looked up only in the system's own bin folders (``./test`` is not
``test``). Flags are matched the way GNU tools read them: clustered short flags
(``-uo``) and abbreviated long options (``--outp``) hit a writing flag too.
"""

from drygate.types import READ, UNKNOWN, WRITE, Classification

_STRENGTH = {READ: 0, WRITE: 1, UNKNOWN: 2}

#: Constructs this classifier does not resolve statically: their presence makes the
#: whole command unknown.
UNRESOLVED = ("`", "$", "<(", ">(", "<<", "#", "{", "}", "\r", "\\\n")

#: Folders whose programs are looked up by name in the table (``/usr/bin/cat`` is ``cat``).
SYSTEM_BIN = ("/bin", "/usr/bin", "/usr/local/bin")

#: command -> spec. A spec may name flags that make the command write ("write_flags",
#: matched exactly or as "--flag=..." prefix), the read-only subcommands
#: ("subcommands": name -> spec or True), or require no arguments ("no_args").
READ_ONLY_COMMANDS = {
    **{name: {} for name in (
        "ls", "cat", "head", "tail", "wc", "pwd", "echo", "printf", "which", "type", "whereis",
        "stat", "du", "df", "whoami", "id", "uname", "printenv", "diff",
        "cmp", "grep", "egrep", "fgrep", "basename", "dirname", "realpath", "readlink",
        "true", "false", "test", "[", "nproc", "free", "uptime", "ps", "pgrep", "jq", "cut", "tr",
        "column", "nl", "md5sum", "sha1sum", "sha256sum", "sha512sum", "cd", "sleep",
        "lsblk", "locale", "groups", "seq", "comm", "expr",
    )},
    "sort": {"write_flags": ("-o", "--output", "--compress-program")},
    # Read-only except for the flags that write a file or run another program.
    "rg": {"write_flags": ("--pre",)},
    "tree": {"write_flags": ("-o",)},
    "file": {"write_flags": ("-C", "--compile")},
    "date": {"write_flags": ("-s", "--set")},
    "find": {"single_dash_long": True,
             "write_flags": ("-delete", "-exec", "-execdir", "-ok", "-okdir", "-fprint", "-fprint0",
                             "-fprintf", "-fls")},
    "hostname": {"no_args": True},
    "env": {"no_args": True},
    "git": {
        "global_flags_with_value": ("-C",),
        "global_flags": ("--no-pager", "--no-optional-locks"),
        "write_flags": ("--output", "-O", "--open-files-in-pager", "--ext-diff"),
        "subcommands": {
            **{name: True for name in (
                "status", "log", "diff", "show", "rev-parse", "ls-files", "blame", "describe",
                "shortlog", "rev-list", "cat-file", "ls-tree", "grep", "whatchanged",
            )},
            "branch": {"only_flags": ("-a", "-r", "-v", "-vv", "--list", "-l", "--show-current", "--all",
                                      "--remotes", "--no-color", "--color")},
            "remote": {"only_flags": ("-v", "--verbose")},
            "tag": {"only_flags": ("-l", "--list")},
            "config": {"requires_one_of": ("--get", "--list", "-l", "--get-all", "--get-regexp")},
        },
    },
}

_SEPARATORS = frozenset((";", "&&", "||", "|", "&", "(", ")", "|&", ";;", "\n"))
_REDIRECTS = frozenset((">", ">>", ">|", "&>", "&>>", ">&", "<", "<>", "<&"))
_HARMLESS_TARGETS = frozenset(("/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty"))


def _unknown(reason):
    return Classification(UNKNOWN, reason, "shell")


def split_commands(command):
    """Split a shell command into simple commands and redirections.

    Returns ``(parts, redirects)``: ``parts`` is a list of word lists (assignments
    kept), ``redirects`` a list of ``(operator, target)``. Raises ValueError on text
    shlex cannot tokenize (unbalanced quotes).
    """
    import shlex

    lexer = shlex.shlex(command.replace("\n", " ; "), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""  # '#' inside words is literal; a leading '#' comment is rare in agent calls
    tokens = list(lexer)
    parts, current, redirects = [], [], []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in _SEPARATORS:
            if current:
                parts.append(current)
            current = []
        elif tok in _REDIRECTS:
            target = tokens[i + 1] if i + 1 < len(tokens) else ""
            redirects.append((tok, target))
            if current and current[-1].isdigit():
                current.pop()  # "2>file": the fd number belongs to the redirection
            i += 1
        elif tok and all(c in "<>&|;()" for c in tok):
            # An operator shlex glued together ("&>>", ";&"): not resolvable here.
            raise ValueError(f"unsupported operator {tok!r}")
        else:
            current.append(tok)
        i += 1
    if current:
        parts.append(current)
    return parts, redirects


def _is_assignment(word):
    name, eq, _ = word.partition("=")
    return bool(eq) and bool(name) and (name[0].isalpha() or name[0] == "_") and name.replace("_", "a").isalnum()


def _flag_hits(args, flags, single_dash_long=False):
    """The first argument that is, abbreviates or clusters one of ``flags``, else None."""
    shorts = {f[1] for f in flags if len(f) == 2 and f[0] == "-" and f[1] != "-"}
    longs = [f for f in flags if f.startswith("--")]
    exact = set(flags)
    for a in args:
        if a in exact:
            return a
        if a.startswith("--"):
            name = a.split("=", 1)[0]
            if len(name) > 2 and any(f.startswith(name) for f in longs):
                return a  # GNU getopt accepts any unambiguous prefix of a long option
        elif a.startswith("-") and len(a) > 1:
            if single_dash_long:
                if a.split("=", 1)[0] in exact:
                    return a
            elif shorts & set(a[1:]):
                return a  # "-uo": clustered short flags
    return None


def _check(spec, args, label):
    """Return None if the words are read-only under ``spec``, else a reason (str)."""
    if spec.get("no_args") and args:
        return f"{label} with arguments can change the system"
    hit = _flag_hits(args, spec.get("write_flags", ()), spec.get("single_dash_long", False))
    if hit:
        return f"{label} {hit} writes"
    subcommands = spec.get("subcommands")
    if subcommands is None:
        return None
    rest = list(args)
    while rest and rest[0].startswith("-"):
        flag = rest.pop(0)
        if flag in spec.get("global_flags_with_value", ()):
            if not rest:
                return f"{label} {flag} needs a value"
            rest.pop(0)
        elif flag not in spec.get("global_flags", ()):
            return f"{label} option {flag} is not known to be read-only"
    if not rest:
        return f"{label} without a subcommand"
    sub, sub_args = rest[0], rest[1:]
    sub_spec = subcommands.get(sub)
    if sub_spec is None:
        return f"{label} {sub} is not known to be read-only"
    if sub_spec is True:
        return None
    only = sub_spec.get("only_flags")
    if only is not None and any(a not in only for a in sub_args):
        return f"{label} {sub} with these arguments can write"
    needs = sub_spec.get("requires_one_of")
    if needs is not None and not any(a in needs for a in sub_args):
        return f"{label} {sub} without a read-only flag can write"
    return None


def classify_command(command):
    """Classify one Bash command string (``tool_input.command``).

    Returns a :class:`Classification` with effect ``read``, ``write`` (redirection
    into a file) or ``unknown`` (anything not known to be read-only), and a reason
    naming the part that decided it.
    """
    if not isinstance(command, str) or not command.strip():
        return _unknown("no command text to classify")
    for marker in UNRESOLVED:
        if marker in command:
            return _unknown(f"uses {marker!r} (an expansion, substitution, comment or here-document), "
                            "which is not resolved statically")
    try:
        parts, redirects = split_commands(command)
    except ValueError as e:
        return _unknown(f"the command does not parse: {e}")
    effect, reason = READ, "every part is a read-only command"
    for op, target in redirects:
        if op in ("<", "<&"):
            continue
        if op in (">&", "<>") and target in ("0", "1", "2", "-"):
            continue
        if target not in _HARMLESS_TARGETS:
            effect, reason = WRITE, f"redirects output into {target!r}"
            break
    for words in parts:
        program = words[0]
        folder, _, name = program.rpartition("/")
        spec = READ_ONLY_COMMANDS.get(name) if (not folder or folder in SYSTEM_BIN) else None
        if _is_assignment(program):
            why = f"the variable assignment {program.split('=', 1)[0]}= can change what programs do"
        elif spec is None:
            why = f"{program!r} is not a known read-only command"
        else:
            why = _check(spec, words[1:], name)
        if why is not None and _STRENGTH[UNKNOWN] > _STRENGTH[effect]:
            effect, reason = UNKNOWN, why
    return Classification(effect, reason, "shell")
