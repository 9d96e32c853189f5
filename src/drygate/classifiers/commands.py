"""The interpreter of the command table (drygate.classifiers.data.commands).

:func:`classify_argv` takes one simple command as words (``None`` for a word only
known at run time) and returns a :class:`Verdict`. A spec is interpreted by a few
generic rules (flags, subcommands, positional limits); tools whose arguments carry
a statement or a method are read by small handlers below: SQL clients (the SQL is
classified by drygate.classifiers.sql), HTTP clients (drygate.classifiers.http),
``redis-cli`` (Redis's own command table), programs that run another command
(``sudo``, ``env``, ``timeout``, ``xargs``...) and shells (``bash -c``).
A word only known at run time where it could matter (a subcommand, a flag, a
statement) makes the verdict unknown.
"""

from drygate.classifiers.verdict import Verdict, read, strongest, unknown, write
from drygate.types import READ, UNKNOWN, WRITE

#: Environment variables that select a target or credentials but cannot change what
#: a program does (read, write or run something else). Any other assignment before a
#: command, or on its own line, is unknown: PATH, LD_PRELOAD, GIT_*, PAGER... run code,
#: and so does KUBECONFIG (a kubeconfig's exec credential plugin is a command).
SAFE_VARIABLES = frozenset((
    "LANG", "LANGUAGE", "TZ", "TERM", "COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "CLICOLOR", "CI",
    "PGPASSWORD", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSSLMODE", "PGCONNECT_TIMEOUT", "MYSQL_PWD",
    "MYSQL_HOST", "REDISCLI_AUTH", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PAGER",
    "CLOUDSDK_CORE_PROJECT", "NAMESPACE", "DEBUG", "VERBOSE", "HOME_DIR", "GIT_PAGER_IN_USE",
))
SAFE_VARIABLE_PREFIXES = ("LC_",)
#: Output targets that write nothing (for redirections; a file named "-" is a file).
HARMLESS_TARGETS = frozenset(("/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty"))


class Context:
    """What a command sees besides its words.

    ``stdin``: None (terminal or nothing), a str (a here-document or here-string
    whose text is known), or False (a pipe or text only known at run time);
    ``commands``: the policy's ``[[commands]]`` overrides ({name: spec});
    ``http_rules``: the policy's URL rules (see drygate.classifiers.http);
    ``depth``: nesting of ``bash -c`` (bounded); ``cache``: a state store that keeps
    SQL verdicts (``verdict_get``/``verdict_put``), or None; ``facts``: the script's
    variables (:class:`drygate.classifiers.bash_names.Facts`) or None.
    """

    __slots__ = ("stdin", "commands", "http_rules", "depth", "cache", "facts")

    def __init__(self, stdin=None, commands=None, http_rules=(), depth=0, cache=None, facts=None):
        self.stdin = stdin
        self.commands = commands or {}
        self.http_rules = http_rules
        self.depth = depth
        self.cache = cache
        #: What the script does to its variables (drygate.classifiers.bash_names.Facts),
        #: or None outside a script (then every variable counts as unclean).
        self.facts = facts

    def with_stdin(self, stdin):
        return Context(stdin, self.commands, self.http_rules, self.depth, self.cache, self.facts)

    def with_facts(self, facts):
        return Context(self.stdin, self.commands, self.http_rules, self.depth, self.cache, facts)


def variable_is_safe(name):
    """True if assigning ``name`` cannot change what a program does."""
    return name in SAFE_VARIABLES or name.startswith(SAFE_VARIABLE_PREFIXES)


def _package_runner(label, args, ctx, spec):
    """npx, npm exec, pnpm exec/dlx, yarn exec/dlx, bunx, uvx, pipx run: classify the
    command a package runner resolves and runs, when it does only that.

    The spec (drygate.classifiers.data.commands.PACKAGE_RUNNERS) lists the runner's
    options from its own documentation: ``flags`` and ``values`` that do not change what
    runs; ``installs``, options that install other packages, build them or run their
    scripts first (the command is then not the named tool alone: unknown); ``shell``,
    options that make the rest a shell string (classified as a script); ``script``: True
    when the runner always runs its arguments through a shell (yarn exec). The first
    positional is the package (``name@version`` / ``name==version``); a scoped package
    (``@scope/name``) runs a bin the text does not name: unknown. ``may_install``: the
    runner installs a missing package into its own cache before running it (its install
    scripts run there), which the reason says; no other option is understood."""
    from drygate.classifiers.shell import classify_script

    flags, values = spec.get("flags", ()), spec.get("values", ())
    installs, shell = spec.get("installs", ()), spec.get("shell", ())
    i = 0
    while i < len(args):
        a = args[i]
        if a is None:
            return unknown(f"{label}: an argument known only at run time")
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        name = a.split("=", 1)[0]
        if name in installs or any(a.startswith(o) and len(o) == 2 for o in installs if not o.startswith("--")):
            return unknown(f"{label} {name}: installs other packages or runs their scripts before the command")
        if name in shell:
            if "=" in a:
                text = a.split("=", 1)[1]
            elif spec.get("shell_takes_value"):
                if i + 1 >= len(args) or args[i + 1] is None:
                    return unknown(f"{label} {a}: the script is only known at run time")
                text = args[i + 1]
            else:
                rest = args[i + 1:]
                if any(w is None for w in rest):
                    return unknown(f"{label} {a}: the script is only known at run time")
                text = " ".join(rest)
            return classify_script(text, ctx).because(f"{label} {a} runs a shell command")
        if a in flags:
            i += 1
            continue
        if a in values:
            i += 2
            continue
        if name in values and "=" in a:
            i += 1
            continue
        return unknown(f"{label} {a}: an option this classifier does not read")
    rest = list(args[i:])
    if not rest:
        return unknown(f"{label}: no command")
    if any(w is None for w in rest):
        return unknown(f"{label}: an argument known only at run time")
    if spec.get("script"):
        return classify_script(" ".join(rest), ctx).because(f"{label} runs its arguments in a shell")
    package = rest[0]
    if package.startswith("@") or "/" in package or ":" in package:
        return unknown(f"{label} {package}: the program a scoped, path or URL package runs is not named here")
    program = package.split("@", 1)[0].split("==", 1)[0]
    if not program or program != package and not spec.get("versions"):
        return unknown(f"{label} {package}: not a program name")
    inner = classify_argv([program] + rest[1:], ctx)
    why = f"{label} resolves and runs {program}"
    if spec.get("may_install"):
        why += f" (installing {package} into its own cache first if it is missing; its install scripts run there)"
    return inner.because(why)


def spec_for(name, ctx):
    """The spec of program ``name`` (policy overrides first), or None."""
    from drygate.classifiers.data.commands import COMMANDS

    spec = ctx.commands.get(name)
    return spec if spec is not None else COMMANDS.get(name)


SYSTEM_BIN = ("/bin", "/usr/bin", "/usr/local/bin", "/sbin", "/usr/sbin")


def classify_argv(words, ctx):
    """Classify one simple command given as words (str, or None for a run-time word)."""
    if not words:
        return read("no command")
    program = words[0]
    if program is None:
        return unknown("the command name is only known at run time")
    own = ctx.commands.get(program) if "/" in program else None
    if own is not None:  # the policy names this script by path ([[commands]] name = "./deploy.sh")
        return run_spec(own, program, words[1:], ctx).because(f"policy [[commands]] {program}")
    folder, _, name = program.rpartition("/")
    if folder and folder not in SYSTEM_BIN:
        return unknown(f"{program!r} runs a program by path, which may do anything")
    spec = spec_for(name, ctx)
    if spec is None:
        return unknown(f"{name!r} is not in the command table")
    return run_spec(spec, name, words[1:], ctx)


def _effect_verdict(effect, label, why=None):
    return Verdict(effect, f"{label}: {why or effect}")


def flag_hits(args, flags):
    """``(flag, effect)`` pairs of ``flags`` ({flag: effect}) present in ``args``.

    A flag is present exactly, as an unambiguous prefix of a long option (GNU
    getopt's abbreviation, ``--outp`` for ``--output``), with an attached value
    (``--output=x``, ``-ofile``), or inside a cluster of short flags (``-uo``).
    """
    hits = []
    longs = [f for f in flags if f.startswith("--")]
    shorts = {f[1]: f for f in flags if len(f) == 2 and f[0] == "-" and f[1] != "-"}
    single_dash_long = {f for f in flags if f.startswith("-") and not f.startswith("--") and len(f) > 2}
    for a in args:
        if a is None:
            continue
        if a.split("=", 1)[0] == "--dry-run" and a.endswith("=none"):
            continue  # kubectl/helm --dry-run=none is a real run
        if a in flags:
            hits.append((a, flags[a]))
        elif a.startswith("--") and len(a) > 2:
            name = a.split("=", 1)[0]
            for f in longs:
                if f == name or (len(name) > 2 and f.startswith(name)):
                    hits.append((f, flags[f]))
        elif a.startswith("-") and len(a) > 1 and not a[1:].replace(".", "").isdigit():
            if a.split("=", 1)[0] in single_dash_long:
                hits.append((a, flags[a.split("=", 1)[0]]))
                continue
            for c in a[1:]:
                if c in shorts:
                    hits.append((shorts[c], flags[shorts[c]]))
                    break  # after a flag that takes a value, the rest of the cluster is its value
    return hits


def positionals(args, values=()):
    """The positional arguments (str or None), skipping options and the values of ``values``."""
    out, skip, after_dashes = [], False, False
    for a in args:
        if skip:
            skip = False
            continue
        if after_dashes:
            out.append(a)
        elif a == "--":
            after_dashes = True
        elif a is not None and a.startswith("-") and a != "-":
            if a in values:
                skip = True
        else:
            out.append(a)
    return out


def run_spec(spec, label, args, ctx):
    """Interpret ``spec`` (an effect string or a dict) for ``args``; returns a Verdict."""
    if isinstance(spec, str):
        return _effect_verdict(spec, label)
    handler = spec.get("handler")
    if handler:
        return HANDLERS[handler](label, args, ctx, spec)
    if "options" in spec:
        stray = stray_option(args, spec)
        if stray:
            return unknown(f"{label}: {stray} is not an option this classifier knows for it (an unknown option "
                           "may write a file, run a program, or take a value that changes the command)")
    flags = spec.get("flags", {})
    verdicts = []
    read_flag = False
    if flags:
        if any(a is None for a in args):
            return unknown(f"{label}: an argument known only at run time could be one of its flags")
        hits = flag_hits(args, flags)
        writing = [(f, e) for f, e in hits if e != READ]
        verdicts += [_effect_verdict(effect, label, f"{flag} is {effect}") for flag, effect in writing]
        read_flag = bool(hits) and not writing and _read_flag_holds(args, [f for f, _ in hits])
        if read_flag and not spec.get("subcommands"):
            # A flag that makes the tool read-only (--dry-run, -l) wins over its default,
            # unless the tool needs another flag too (npm pack/publish --dry-run still run
            # the package's lifecycle scripts unless --ignore-scripts).
            needs = spec.get("read_needs", ())
            present = {f for f, _ in flag_hits(args, {n: READ for n in needs})}
            if needs and not (present >= set(needs) and _read_flag_holds(args, list(needs))):
                return unknown(f"{label}: {spec.get('read_needs_why', 'its read-only flag is not enough')}")
            return _effect_verdict(READ, label, f"{hits[0][0]} makes it read-only")
    subcommands = spec.get("subcommands")
    values = tuple(spec.get("values", ())) + tuple(spec.get("option_values", ()))
    if subcommands is not None:
        pos = positionals(args, values)
        before = args[:args.index(pos[0])] if pos and pos[0] in args else list(args)
        stray = _unknown_options(before, values, tuple(spec.get("global_flags", ())) + tuple(spec.get("options", ())))
        if stray:
            return unknown(f"{label}: the option {stray!r} before the subcommand may take a value "
                           "that hides the real subcommand")
        if not pos:
            base = _effect_verdict(spec.get("bare", spec.get("other", UNKNOWN)), label, "no subcommand")
        elif pos[0] is None:
            base = unknown(f"{label}: the subcommand is only known at run time")
        else:
            sub = pos[0]
            i = args.index(sub)
            sub_spec = subcommands.get(sub)
            if sub_spec is None:
                base = _effect_verdict(spec.get("other", UNKNOWN), f"{label} {sub}", "not in the table")
            else:
                base = run_spec(sub_spec, f"{label} {sub}", args[i + 1:], ctx)
    else:
        base = _effect_verdict(spec.get("effect", READ), label, spec.get("why"))
        limit = spec.get("positional_max")
        if limit is not None:
            pos = positionals(args, values)
            if spec.get("harmless_operands"):
                pos = [p for p in pos if p not in HARMLESS_TARGETS]
            list_flags = spec.get("list_flags", ())
            if len(pos) > limit and not any(a in list_flags for a in args):
                base = write(f"{label}: {len(pos)} operand(s) (more than {limit}) make it write")
    if read_flag and spec.get("effect") == WRITE:
        base = _effect_verdict(READ, label, "a read-only flag")
    return strongest([base] + verdicts)


#: Values that turn a read-making flag off again (``--dry-run=false``, ``--dry-run=none``).
_OFF_VALUES = frozenset(("false", "none", "no", "0", "off"))


def _read_flag_holds(args, read_flags):
    """True unless a read-making flag is turned off anywhere: ``--no-dry-run``,
    ``--dry-run=false``/``none``, or ``--dry-run false`` (npm's option parser, nopt, takes
    a following ``true``/``false`` as a Boolean flag's value), also when the flag is
    abbreviated (``--dry``, as nopt and GNU getopt accept)."""

    def names(name, f):
        return name == f or (len(name) > 3 and f.startswith("--") and f.startswith(name))

    for i, a in enumerate(args):
        if a is None:
            return False
        name, eq, value = a.partition("=")
        base = "--" + name[5:] if name.startswith("--no-") else None
        nxt = args[i + 1] if i + 1 < len(args) else None
        for f in read_flags:
            if base and names(base, f):
                return False
            if names(name, f) and (eq and value.lower() in _OFF_VALUES or not eq and nxt is not None
                                   and nxt.lower() in _OFF_VALUES):
                return False
    return True


def stray_option(args, spec):
    """The first option in ``args`` that ``spec`` does not list (``options``: flags,
    ``option_values``: options taking a value), or None. With ``nopt`` (npm's parser):
    ``-name`` is ``--name``, ``--no-name`` is ``--name``, and a flag may be followed by
    ``true``/``false``. A word known only at run time counts as a stray option."""
    options, values, nopt = spec.get("options", ()), spec.get("option_values", ()), spec.get("nopt")
    skip = False
    for i, a in enumerate(args):
        if skip:
            skip = False
            continue
        if a is None:
            return "(a word known only at run time)"
        if a == "--":
            return None
        if not a.startswith("-") or a == "-":
            continue
        name, eq, _ = a.partition("=")
        if nopt and not name.startswith("--") and len(name) > 2:
            name = "-" + name
        if nopt and name.startswith("--no-"):
            name = "--" + name[5:]
        nxt = args[i + 1] if i + 1 < len(args) else None
        if name in values:
            skip = not eq
        elif name in options:
            skip = bool(nopt and not eq and nxt in ("true", "false"))
        else:
            return a
    return None


def _unknown_options(words, values, global_flags):
    """The first option in ``words`` (before a subcommand) that is not known, else None.

    An unknown option may take a value, and that value would then be read as the
    subcommand (``npm --loglevel info install``): only known options may come first.
    """
    skip = False
    for a in words:
        if skip:
            skip = False
            continue
        if a is None or not a.startswith("-") or a == "-":
            continue
        name = a.split("=", 1)[0]
        if a in values:
            skip = True
        elif name in values and "=" in a:
            continue
        elif a in global_flags or name in global_flags:
            continue
        else:
            return a
    return None


# --------------------------------------------------------------------------- handlers

#: Options of the programs that run another command: {program: (options taking a value, flags)}.
#: Any other option makes the call unknown (it might write, or take a value that hides the command).
_WRAPPER_OPTIONS = {
    "sudo": (("-u", "--user", "-g", "--group", "-h", "--host", "-C", "--close-from", "-D", "--chdir", "-p",
              "--prompt", "-r", "--role", "-t", "--type", "-U", "--other-user", "-T", "--command-timeout"),
             ("-n", "--non-interactive", "-E", "--preserve-env", "-H", "--set-home", "-k", "--reset-timestamp",
              "-b", "--background", "-P", "--preserve-groups", "-S", "--stdin", "-A", "--askpass", "-N")),
    "doas": (("-u", "-C"), ("-n",)),
    "env": (("-u", "--unset", "-C", "--chdir"), ("-i", "--ignore-environment", "-0", "--null", "-v", "--debug")),
    "time": (("-f", "--format"), ("-p", "--portability", "-v", "--verbose", "-q", "--quiet")),
    "timeout": (("-s", "--signal", "-k", "--kill-after"), ("--preserve-status", "--foreground", "-v", "--verbose")),
    "nice": (("-n", "--adjustment"), ()),
    "nohup": ((), ()),
    "stdbuf": (("-i", "-o", "-e", "--input", "--output", "--error"), ()),
    "ionice": (("-c", "--class", "-n", "--classdata"), ("-t", "--ignore")),
    "command": ((), ("-p",)),
    "builtin": ((), ()),
    "exec": (("-a",), ("-c", "-l", "-cl", "-lc")),
    "xargs": (("-n", "--max-args", "-L", "--max-lines", "-I", "-P", "--max-procs", "-d", "--delimiter", "-E",
               "-s", "--max-chars", "-a", "--arg-file"),
              ("-0", "--null", "-r", "--no-run-if-empty", "-t", "--verbose", "-x", "--exit", "-p",
               "--interactive", "-o", "--open-tty")),
    "watch": (("-n", "--interval"), ("-t", "--no-title", "-b", "--beep", "-e", "--errexit", "-g", "--chgexit",
                                     "-c", "--color", "-p", "--precise", "-d", "--differences")),
    "caffeinate": (("-t", "-w"), ("-d", "-i", "-m", "-s", "-u")),
    "setsid": ((), ("-f", "--fork", "-w", "--wait", "-c", "--ctty")),
    "unbuffer": ((), ("-p",)),
    "chronic": ((), ("-e", "-v")),
    "flock": (("-w", "--timeout", "-E", "--conflict-exit-code"), ("-s", "--shared", "-x", "-e", "--exclusive",
                                                                   "-n", "--nb", "--nonblock", "-o", "--close")),
}


def _wrapper(label, args, ctx, spec):
    """sudo, env, timeout, nice, xargs...: skip the wrapper's own options, classify the rest.

    Only the options listed in _WRAPPER_OPTIONS are understood; any other (a write
    such as ``time -o``, a shell such as ``sudo -s`` or ``env -S``, an attached value)
    makes the call unknown."""
    with_value, flags = _WRAPPER_OPTIONS.get(label, ((), ()))
    if label == "command":
        leading = []
        for a in args:
            if a is None or not a.startswith("-") or a == "--":
                break
            leading.append(a)
        if any(set(a[1:]) <= {"p", "v", "V"} and ("v" in a or "V" in a) for a in leading):
            return read("command -v/-V only describes the command")
    i = 0
    replace = None
    while i < len(args):
        a = args[i]
        if a is None:
            return unknown(f"{label}: an argument known only at run time")
        if a == "--":
            i += 1
            break
        if a.startswith("-") and a != "-":
            name = a.split("=", 1)[0]
            if a in with_value:
                if label == "xargs" and a == "-I" and i + 1 < len(args):
                    replace = args[i + 1]
                i += 2
                continue
            if name in with_value and "=" in a and name.startswith("--"):
                i += 1
                continue
            if a in flags:
                i += 1
                continue
            if label == "xargs" and (a == "-i" or a.startswith("-i") or a.startswith("--replace")):
                replace = a[2:] or "{}" if a.startswith("-i") else (a.split("=", 1)[1] if "=" in a else "{}")
                i += 1
                continue
            if label == "nice" and a[1:].lstrip("-").isdigit():
                i += 1
                continue
            return unknown(f"{label} {a}: an option this classifier does not read")
        if label == "env" and "=" in a:
            name = a.split("=", 1)[0]
            if not variable_is_safe(name):
                return unknown(f"env sets {name}, which can change what the program does")
            i += 1
            continue
        if label == "timeout":
            i += 1  # the duration comes before the command
        elif label == "flock":
            i += 1  # the lock file or folder comes before the command
        break
    rest = list(args[i:])
    if label == "flock":
        lock = args[i - 1] if i > 0 else None
        if rest and lock is not None and not lock.isdigit():
            inner = classify_argv(rest, ctx).because(f"flock runs {rest[0]}")
            return strongest([write(f"flock creates the lock file {lock!r} if it is missing"), inner])
    if not rest:
        if label == "exec":
            return read("exec with no command only applies its redirections (judged on their own)")
        return read(f"{label} with no command")
    if label == "watch" and len(rest) == 1 and rest[0] is not None and " " in rest[0]:
        from drygate.classifiers.shell import classify_script

        return classify_script(rest[0], ctx).because(f"watch runs: {rest[0]}")
    if label == "watch":
        from drygate.classifiers.shell import classify_script
        import shlex

        return classify_script(" ".join(shlex.quote(w) for w in rest), ctx).because("watch runs its arguments")
    if label == "xargs":
        if replace:
            rest = [None if (w is not None and replace in w) else w for w in rest]
        inner = classify_argv(rest + [None], ctx.with_stdin(None))
        return inner.because("xargs adds arguments from its input")
    inner = classify_argv(rest, ctx)
    return inner.because(f"{label} runs {rest[0]}")


def _shell(label, args, ctx, spec):
    """bash -c 'text' is classified as the script text; a shell reading a here-document too."""
    if ctx.depth > 4:
        return unknown(f"{label}: nested too deeply")
    from drygate.classifiers.shell import classify_script

    inner_ctx = Context(None, ctx.commands, ctx.http_rules, ctx.depth + 1, ctx.cache, ctx.facts)
    for i, a in enumerate(args):
        if a is None:
            return unknown(f"{label}: an argument known only at run time")
        if a == "-c" or (a.startswith("-") and not a.startswith("--") and "c" in a[1:]):
            if i + 1 >= len(args) or args[i + 1] is None:
                return unknown(f"{label} -c: the script is only known at run time")
            return classify_script(args[i + 1], inner_ctx).because(f"{label} -c runs a script")
        if a in ("--version", "--help"):
            return read(f"{label} {a}")
        if not a.startswith("-"):
            return unknown(f"{label} runs the script file {a!r}, whose content is not classified")
    if isinstance(ctx.stdin, str):
        return classify_script(ctx.stdin, inner_ctx).because(f"{label} runs its here-document")
    return unknown(f"{label} reads a script from its input")


def _find(label, args, ctx, spec):
    if any(a is None for a in args):
        return unknown("find: an argument known only at run time could be an action")
    verdicts = [read("find: only tests and printing")]
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-delete",):
            return write("find -delete removes files")
        if a in ("-fprint", "-fprint0", "-fprintf", "-fls"):
            return write(f"find {a} writes a file")
        if a in ("-exec", "-execdir", "-ok", "-okdir"):
            end = next((j for j in range(i + 1, len(args))
                        if args[j] == ";" or (args[j] == "+" and args[j - 1] == "{}")), len(args))
            inner = [None if "{}" in w else w for w in args[i + 1:end]]
            verdicts.append(classify_argv(inner, ctx.with_stdin(None)).because(f"find {a} runs it for each file"))
            i = end
        i += 1
    return strongest(verdicts)


_SED_FLAGS = frozenset("nErsuz")
_SED_LONG = {"--quiet": "flag", "--silent": "flag", "--regexp-extended": "flag", "--separate": "flag",
             "--unbuffered": "flag", "--null-data": "flag", "--posix": "flag", "--debug": "flag", "--sandbox": "flag",
             "--follow-symlinks": "flag", "--expression": "script", "--file": "file", "--in-place": "write",
             "--line-length": "value", "--help": "flag", "--version": "flag"}


def _sed(label, args, ctx, spec):
    """sed reads unless it edits in place (-i), runs a script file (-f), or its script
    writes files or runs commands (``w``, ``W``, ``e``, ``s///w``, ``s///e``)."""
    scripts, i, explicit = [], 0, False
    operands = []
    while i < len(args):
        a = args[i]
        if a is None:
            return unknown("sed: an argument known only at run time")
        if a.startswith("--") and len(a) > 2:
            name, eq, inline = a.partition("=")
            matches = [o for o in _SED_LONG if o.startswith(name)]
            if len(matches) != 1:
                return unknown(f"sed {a}: an option this classifier does not read")
            kind = _SED_LONG[matches[0]]
            if kind == "write":
                return write(f"sed {a} edits files in place")
            if kind == "file":
                return unknown("sed --file runs a script file")
            if kind in ("script", "value"):
                value = inline if eq else (args[i + 1] if i + 1 < len(args) else None)
                if kind == "script":
                    scripts.append(value)
                    explicit = True
                i += 1 if eq else 2
                continue
            i += 1
            continue
        if a.startswith("-") and len(a) > 1:
            for j, c in enumerate(a[1:], 1):
                if c == "i":
                    return write(f"sed {a} edits files in place")
                if c == "f":
                    return unknown("sed -f runs a script file")
                if c in ("e", "l"):
                    value = a[j + 1:] or (args[i + 1] if i + 1 < len(args) else None)
                    if c == "e":
                        scripts.append(value)
                        explicit = True
                    i += 1 if a[j + 1:] else 2
                    break
                if c not in _SED_FLAGS:
                    return unknown(f"sed {a}: an option this classifier does not read")
            else:
                i += 1
            continue
        operands.append(a)
        i += 1
    if not explicit:
        if not operands:
            return unknown("sed without a script")
        scripts.append(operands[0])
    for script in scripts:
        if script is None or not _sed_script_is_read(script):
            return unknown("sed script writes files or runs commands (w, W, e), or is not understood")
    return read("sed without -i only prints")


def _sed_script_is_read(script):
    """True if every command of a sed script only edits the text stream.

    A small reader of sed's command syntax (GNU sed manual, "sed scripts"):
    addresses, then one command letter; ``s`` and ``y`` are read with their
    delimiters and escapes. ``w``/``W``/``e``, ``s`` with the ``w``/``e`` flags, and
    anything not recognised make it not a read."""
    text, i, n = script, 0, len(script)

    def delimited(k, d):
        """Index after the next unescaped ``d`` from k."""
        while k < n:
            if text[k] == "\\":
                k += 2
                continue
            if text[k] == d:
                return k + 1
            k += 1
        return None

    while i < n:
        c = text[i]
        if c in " \t\n;{}!":
            i += 1
            continue
        # addresses: N, $, /re/, \cREc, first~step, addr,addr, addr,+N, addr,~N
        while i < n:
            c = text[i]
            if c.isdigit() or c in "$,~+":
                i += 1
            elif c == "/":
                i = delimited(i + 1, "/")
                if i is None:
                    return False
                while i < n and text[i] in "IM":
                    i += 1
            elif c == "\\" and i + 1 < n:
                i = delimited(i + 2, text[i + 1])
                if i is None:
                    return False
            else:
                break
        while i < n and text[i] in " \t!":
            i += 1
        if i >= n:
            return True
        cmd = text[i]
        if cmd == "s" or cmd == "y":
            if i + 1 >= n:
                return False
            d = text[i + 1]
            k = delimited(i + 2, d)
            k = delimited(k, d) if k is not None else None
            if k is None:
                return False
            if cmd == "s":
                while k < n and (text[k] in "gpiImM" or text[k].isdigit()):
                    k += 1
                if k < n and text[k] in "wWe":
                    return False
            i = k
        elif cmd in "pPdDqQ=lnNgGhHxzF":
            i += 1
            while i < n and text[i].isdigit():
                i += 1
        elif cmd in "btT:" or cmd in "aicrR":
            # a label, text to add (a/i/c) or a file to read (r/R): to the end of the line
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif cmd == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        else:
            return False  # w, W, e, v and anything unknown
    return True


#: awk options (POSIX awk, gawk 5 manual "Command-Line Options", mawk): those that only
#: set a field separator, a variable or a mode. -f/-E/--file/--exec (a program file),
#: -i/--include and -l/--load (libraries and native extensions), -d/-o/-p (dump, pretty
#: print or profile to a file) and -D (debugger) are not among them.
_AWK_VALUES = frozenset(("-F", "--field-separator", "-v", "--assign", "-e", "--source"))
_AWK_FLAGS = frozenset(("-b", "--characters-as-bytes", "-c", "--traditional", "-C", "--copyright", "-g",
                        "--gen-pot", "-h", "--help", "-M", "--bignum", "-n", "--non-decimal-data", "-N",
                        "--use-lc-numeric", "-O", "--optimize", "-P", "--posix", "-r", "--re-interval", "-s",
                        "--no-optimize", "-S", "--sandbox", "-t", "--lint-old", "-V", "--version", "--"))


def _awk(label, args, ctx, spec):
    """awk reads unless it runs a program file, loads code, writes a file (a -d/-o/-p
    option, ``print > file``, ``-i inplace``) or runs commands (``system``, pipes)."""
    if any(a is None for a in args):
        return unknown("awk: an argument known only at run time")
    programs, operands, i = [], [], 0
    while i < len(args):
        a = args[i]
        if operands or not a.startswith("-") or a == "-":
            operands.append(a)
            i += 1
            continue
        name = a.split("=", 1)[0]
        if a in ("-i", "--include") and i + 1 < len(args) and args[i + 1] == "inplace":
            return write("awk -i inplace edits files")
        if name in _AWK_VALUES or (a[:2] in ("-F", "-v", "-e") and len(a) > 2):
            value = a[2:] if a[:2] in ("-F", "-v", "-e") and len(a) > 2 else (
                a.split("=", 1)[1] if "=" in a and a.startswith("--") else (args[i + 1] if i + 1 < len(args) else ""))
            if name in ("-e", "--source") or a[:2] == "-e":
                programs.append(value)
            i += 1 if (len(a) > 2 and not a.startswith("--")) or "=" in a else 2
            continue
        if a in _AWK_FLAGS:
            if a == "--":
                operands.extend(args[i + 1:])
                break
            i += 1
            continue
        return unknown(f"awk {a}: runs a program file, loads code, writes a file, or is an option this classifier "
                       "does not read")
    if not programs:
        if not operands:
            return unknown("awk without a program")
        programs.append(operands[0])
    for program in programs:
        for token in ("system", "|", ">", "getline", "close(", "fflush", "@load", "@include"):
            if token in program:
                return unknown(f"awk program uses {token!r} (runs commands or writes files)")
    return read("awk program only prints")


#: git config's options that only choose, format or filter what is read (git-config(1), git
#: 2.39 and the subcommand form of 2.46+); ``_GIT_CONFIG_VALUES`` take a value.
_GIT_CONFIG_READ_OPTIONS = frozenset((
    "--global", "--system", "--local", "--worktree", "--bool", "--int", "--bool-or-int", "--path",
    "--expiry-date", "--no-type", "-z", "--null", "--name-only", "--show-origin", "--show-scope", "--includes",
    "--no-includes", "--fixed-value", "--all", "--regexp", "--no-value", "--get", "--get-all", "--get-regexp",
    "--get-urlmatch", "--get-color", "--get-colorbool", "-l", "--list",
))
_GIT_CONFIG_VALUES = frozenset(("-f", "--file", "--blob", "--type", "--default", "--value", "--url"))
_GIT_CONFIG_ACTIONS = frozenset(("--get", "--get-all", "--get-regexp", "--get-urlmatch", "--get-color",
                                 "--get-colorbool", "-l", "--list"))


def _git_config(label, args, ctx, spec):
    """git config: a read only in a form that prints, with only options that choose what.

    git-config(1): ``git config [<file-option>] [--type] --get/--get-all/--get-regexp/
    --get-urlmatch/--get-color/--list ...`` and ``git config NAME`` print; ``git config NAME
    VALUE`` sets; ``-e``/``--edit`` (and the 2.46+ subcommand ``edit``) opens an editor on the
    file, which changes it. 2.46+ subcommands: ``list`` and ``get`` print, ``set``, ``unset``,
    ``rename-section``, ``remove-section``, ``edit`` change. Any other option (also an
    abbreviation git's parse-options would accept, ``--ed``, or a cluster with ``e``) is not
    a read; short clusters are read letter by letter."""
    if any(a is None for a in args):
        return unknown("git config: an argument known only at run time")
    if "--" in args:
        return unknown("git config --: the words after -- are values, not options")
    seen, pos, skip = set(), [], False
    for a in args:
        if skip:
            skip = False
            continue
        if not a.startswith("-") or a == "-":
            pos.append(a)
            continue
        name, eq, _ = a.partition("=")
        if name in _GIT_CONFIG_VALUES:
            skip = not eq
            continue
        if name.startswith("--"):
            names = [name]
        else:  # a cluster of short options, -lz; a value option ends it (-fFILE)
            names = []
            for k, letter in enumerate(name[1:]):
                names.append("-" + letter)
                if "-" + letter in _GIT_CONFIG_VALUES:
                    skip = k == len(name) - 2 and not eq
                    break
        for n in names:
            if n in ("-e", "--edit"):
                return write("git config --edit opens an editor on the configuration file")
            if n not in _GIT_CONFIG_READ_OPTIONS and n not in _GIT_CONFIG_VALUES:
                return write(f"git config {a}: not an option that only reads (it may set, unset or edit)")
            seen.add(n)
    if pos and pos[0] in ("list", "get") and not seen & _GIT_CONFIG_ACTIONS:
        return read(f"git config {pos[0]} prints configuration")
    if pos and pos[0] in ("set", "unset", "rename-section", "remove-section", "edit"):
        return write(f"git config {pos[0]} changes the configuration" + (" in an editor" if pos[0] == "edit" else ""))
    if seen & _GIT_CONFIG_ACTIONS:
        return read("git config: a read-only form (--get, --list)")
    if len(pos) <= 1:
        return read("git config NAME prints the value (without a name, the usage)")
    return write("git config: sets or removes a value")


def _remote_exec(label, args, ctx, spec):
    """docker exec CONTAINER CMD..., kubectl exec POD -- CMD..., ssh HOST CMD: the command decides.

    What a command writes inside a container or on another host is still a write."""
    if any(a is None for a in args):
        return unknown(f"{label}: an argument known only at run time")
    if "--" in args:
        inner = args[args.index("--") + 1:]
    else:
        values = {"ssh": ("-p", "-i", "-l", "-o", "-F", "-J", "-L", "-R", "-D", "-b", "-c", "-E", "-m", "-O", "-S",
                          "-W", "-w", "-B", "-e", "-Q")}.get(label, ("-u", "--user", "-w", "--workdir", "-e",
                                                                       "--env", "--env-file", "-c", "--container",
                                                                       "-n", "--namespace"))
        stray = _unknown_options([a for a in args if a is not None and a.startswith("-")], values,
                                 ("-i", "--interactive", "-t", "--tty", "-d", "--detach", "-T", "-N", "-n", "-q",
                                  "-v", "-4", "-6", "-A", "-a", "-C", "-f", "-g", "-K", "-k", "-M", "-s", "-x",
                                  "-X", "-Y", "-y", "--privileged", "-it", "-ti", "--stdin"))
        if stray:
            return unknown(f"{label} {stray}: an option this classifier does not read")
        if label == "ssh" and any(a and ("command" in a.lower() or a.startswith("-F")) for a in args):
            return unknown("ssh: a *Command option or a config file runs local commands")
        if label == "ssh" and any(a and (a.startswith("-E") or a.startswith("-M") or a.startswith("-S"))
                                  for a in args):
            return write("ssh -E appends to a log file; -M/-S create a control socket")
        idx = _positional_indices(args, values)
        if len(idx) < 2:
            return unknown(f"{label} with no command opens an interactive session")
        inner = args[idx[1]:]
    if not inner:
        return unknown(f"{label} with no command opens an interactive session")
    if label == "ssh":
        from drygate.classifiers.shell import classify_script

        return classify_script(" ".join(inner), ctx.with_stdin(None)).because("ssh runs it on the remote host")
    return classify_argv(list(inner), ctx.with_stdin(None)).because(f"{label} runs it inside the container")


def _positional_indices(args, values=()):
    """Indices in ``args`` of the positional arguments (options and their values skipped)."""
    out, skip = [], False
    for i, a in enumerate(args):
        if skip:
            skip = False
            continue
        if a is not None and a.startswith("-") and a != "-":
            if a in values:
                skip = True
            continue
        out.append(i)
    return out


def _only_flags(label, args, ctx, spec):
    """A read only with no arguments or only the listed read-only flags (and their values)."""
    read_flags = spec.get("read_flags", ())
    values = spec.get("values", ())
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a is None:
            return unknown(f"{label}: an argument known only at run time")
        if a in values:
            skip = True
            continue
        if a not in read_flags and a.split("=", 1)[0] not in read_flags:
            return write(f"{label} {a}: anything but its read-only flags changes the system")
    return read(f"{label}: only read-only flags")


def _alias(label, args, ctx, spec):
    if all(a is not None and (a == "-p" or "=" not in a) for a in args):
        return read("alias prints aliases")
    return unknown("alias defines a command, which changes what later words run")


def _service(label, args, ctx, spec):
    pos = positionals(args)
    if len(pos) >= 2 and pos[1] == "status" or args in (["--status-all"], ["--version"]):
        return read("service ... status")
    return write("service: starts, stops or changes a service")


def _terraform(label, args, ctx, spec):
    pos = positionals(args, ("-chdir",))
    if not pos:
        return read(f"{label} with no subcommand prints help")
    sub = pos[0]
    rest = args[args.index(sub) + 1:] if sub in args else []
    if sub is None:
        return unknown(f"{label}: subcommand known only at run time")
    if sub == "plan":
        if any(a is None for a in rest):
            return unknown(f"{label} plan: an argument known only at run time could be -out")
        if any(a.lstrip("-").startswith(("out", "generate-config-out")) for a in rest):
            return write(f"{label} plan -out writes a plan file")
        return read(f"{label} plan only shows changes")
    if sub == "providers" and any(a in ("lock", "mirror") for a in rest):
        return write(f"{label} providers lock/mirror writes files")
    if sub in ("show", "validate", "output", "version", "providers", "graph", "-version", "--version", "help",
               "console", "metadata", "test"):
        return read(f"{label} {sub}") if sub not in ("console", "test") else unknown(f"{label} {sub} runs code")
    if sub == "fmt":
        return read(f"{label} fmt -check") if ("-check" in rest or "-diff" in rest and "-write=false" in rest) \
            else write(f"{label} fmt rewrites files")
    if sub in ("state", "workspace"):
        sub2 = next((a for a in rest if a and not a.startswith("-")), None)
        if sub2 in ("list", "show", "pull"):
            return read(f"{label} {sub} {sub2}")
        return write(f"{label} {sub} {sub2 or ''} changes state".replace("  ", " "))
    return write(f"{label} {sub} changes infrastructure or local state")


#: AWS operations (service API names) that read: Describe*, Get*, List*, Head*, BatchGet*, plus a few verbs.
_AWS_READ_PREFIXES = ("describe-", "get-", "list-", "head-", "batch-get-", "search-", "lookup-", "filter-")
_AWS_READ_OPS = frozenset(("query", "scan", "wait", "help", "select-object-content"))
#: Get* operations that change something or write a file (from the AWS API reference).
_AWS_GET_THAT_WRITE = frozenset((
    "get-object", "get-object-torrent", "get-user-attribute-verification-code", "get-cluster-credentials",
    "get-cluster-credentials-with-iam", "get-login-password", "get-auth-token", "get-federation-token",
    "get-session-token", "get-authorization-token", "get-rds-db-auth-token", "get-temporary-credentials",
    "get-id", "get-open-id-token", "get-open-id-token-for-developer-identity", "get-credentials-for-identity",
    "get-signing-certificate",
))


def _aws_operation_is_read(op):
    if op in _AWS_GET_THAT_WRITE:
        return False
    return op in _AWS_READ_OPS or op.startswith(_AWS_READ_PREFIXES)


#: gcloud/az command words that read, and words that change something: a command is
#: a read only if it has a read verb and no changing verb anywhere among its words.
_CLOUD_READ_VERBS = frozenset(("list", "describe", "show", "get-iam-policy", "get-value", "read", "info",
                               "version", "help", "list-grantable-roles", "list-testable-permissions",
                               "get-ancestors", "get-ancestors-iam-policy", "get", "query", "tail", "logs"))
_CLOUD_WRITE_VERBS = frozenset((
    "create", "delete", "update", "set", "unset", "add", "remove", "deploy", "start", "stop", "reset", "resize",
    "restart", "ssh", "scp", "import", "export", "patch", "apply", "run", "submit", "enable", "disable",
    "attach", "detach", "move", "restore", "rollback", "cancel", "promote", "failover", "login", "logout",
    "activate", "init", "configure", "upgrade", "install", "uninstall", "purge", "rename", "copy", "cp", "mv",
    "rm", "sync", "upload", "download", "send", "publish", "invoke", "call", "exec", "execute", "clone", "tag",
    "untag", "grant", "revoke", "assign", "approve", "reject", "suspend", "resume", "scale", "swap", "acquire",
    "release", "renew", "rotate", "regenerate", "generate", "get-credentials", "print-access-token",
    "print-identity-token", "set-iam-policy", "add-iam-policy-binding", "remove-iam-policy-binding", "wait",
    "tunnel", "connect", "browse", "open", "build", "push", "pull", "run-query",
))


def _cloud_verdict(label, words, args):
    """gcloud/az: read only with a read verb and no changing verb among the command words."""
    if any(w in _CLOUD_WRITE_VERBS or w.startswith(("create-", "delete-", "update-", "set-", "add-", "remove-"))
           for w in words):
        return write(f"{label} {' '.join(words[:4])}: changes resources or settings")
    for w in words:
        if w in _CLOUD_READ_VERBS or w.startswith(("list-", "describe-")):
            return read(f"{label} ... {w}: reads")
    if "--help" in args or (words and words[-1] == "help"):
        return read(f"{label} help")
    return unknown(f"{label} {' '.join(words[:4])}: no read verb among its words")


def _aws(label, args, ctx, spec):
    values = ("--profile", "--region", "--output", "--query", "--endpoint-url", "--color", "--cli-read-timeout",
              "--cli-connect-timeout", "--ca-bundle", "--cli-binary-format")
    pos = positionals(args, values)
    if any(p is None for p in pos[:2]):
        return unknown("aws: the service or operation is only known at run time")
    if pos[-1] == "help" and len(pos) <= 3:
        return read("aws ... help prints documentation")
    if not pos or pos[0] in ("help", "--version", "configure") and len(pos) <= 1:
        return read("aws: help or version")
    service = pos[0]
    op = pos[1] if len(pos) > 1 else None
    if service == "configure":
        return read("aws configure list/get") if op in ("list", "get", "list-profiles") else write(
            "aws configure changes local settings")
    if service == "s3":
        table = {"ls": READ, "presign": READ, "cp": WRITE, "mv": WRITE, "rm": WRITE, "sync": WRITE, "mb": WRITE,
                 "rb": WRITE, "website": WRITE}
        effect = table.get(op, UNKNOWN)
        if effect == WRITE and "--dryrun" in args and _read_flag_holds(args, ["--dryrun"]):
            return read(f"aws s3 {op} --dryrun")
        return Verdict(effect, f"aws s3 {op}: {effect}")
    if op is None:
        return read(f"aws {service} with no operation prints help")
    if "--dry-run" in args and _read_flag_holds(args, ["--dry-run"]):
        return read(f"aws {service} {op} --dry-run")
    if _aws_operation_is_read(op):
        return read(f"aws {service} {op}: describe/get/list/query operations read")
    if service == "logs" and op in ("tail", "start-query", "get-query-results"):
        return read(f"aws logs {op}")
    return write(f"aws {service} {op}: any other operation changes resources")


def _gcloud(label, args, ctx, spec):
    pos = positionals(args, ("--project", "--format", "--filter", "--region", "--zone", "--account",
                             "--configuration", "--limit", "--sort-by", "--verbosity", "--flatten"))
    if any(p is None for p in pos):
        return unknown(f"{label}: a command word is only known at run time")
    if not pos or pos[0] in ("version", "info", "help", "topic"):
        return read(f"{label} {pos[0] if pos else ''}: prints information".replace(" :", ":"))
    if "logging" in pos and "read" in pos:
        return read(f"{label} logging read")
    return _cloud_verdict(label, pos, args)


def _az(label, args, ctx, spec):
    pos = positionals(args, ("--subscription", "-o", "--output", "--query", "-g", "--resource-group", "-n",
                             "--name", "--ids", "-l", "--location"))
    if any(p is None for p in pos):
        return unknown("az: a command word is only known at run time")
    acting = ("login", "logout", "upgrade", "configure", "interactive", "init", "feedback", "rest", "survey",
              "self-test", "extension", "config", "bicep", "cloud")
    if not pos or pos[0] in ("version", "--version", "help", "find") or "--help" in args or (
            len(pos) == 1 and pos[0] not in acting):
        return read("az version, help, or a command group's help")
    if pos[0] == "rest":
        return unknown("az rest sends an HTTP request this classifier does not read")
    if pos[0] == "account" and len(pos) > 1 and pos[1] in ("show", "list", "get-access-token"):
        return read("az account show")
    return _cloud_verdict(label, pos, args)


def _wrangler(label, args, ctx, spec):
    pos = positionals(args, ("--config", "-c", "--env", "-e", "--binding", "--namespace-id", "--preview",
                             "--command", "--file", "--database", "--account-id", "--name"))
    if any(p is None for p in pos[:3]):
        return unknown("wrangler: a command word is only known at run time")
    if not pos:
        return read("wrangler with no command")
    group = pos[0]
    if group == "d1":
        action = pos[1] if len(pos) > 1 else None
        if action == "execute":
            from drygate.classifiers.sql import classify_sql

            if _values_of(args, ("--file",)):
                return unknown("wrangler d1 execute --file: the SQL file is not classified")
            sqls = _values_of(args, ("--command",))
            if sqls:
                if any(s is None for s in sqls):
                    return unknown("wrangler d1 execute: the SQL is only known at run time")
                return strongest([classify_sql(s, "sqlite", ctx.cache) for s in sqls]).because(
                    "wrangler d1 execute --command")
            if _values_of(args, ("--file",)):
                return unknown("wrangler d1 execute --file: the SQL file is not classified")
            return unknown("wrangler d1 execute without --command")
        if action in ("list", "info", "insights"):
            return read(f"wrangler d1 {action}")
        if action == "migrations" and len(pos) > 2 and pos[2] == "list":
            return read("wrangler d1 migrations list")
        if action == "time-travel" and len(pos) > 2 and pos[2] == "info":
            return read("wrangler d1 time-travel info")
        return write(f"wrangler d1 {action}: changes the database or writes an export")
    if group in ("r2", "kv", "kv:key", "kv:namespace", "kv:bulk", "queues", "vectorize", "hyperdrive", "pages",
                 "secret", "deployments", "versions", "triggers", "workflows", "ai"):
        words = pos[1:]
        if group.startswith("kv:"):
            words = [group.split(":", 1)[1]] + words
        for w in words[:2]:
            if w in ("get", "list", "info", "ls", "view", "describe", "tail"):
                if group == "r2" and w == "get" and "--pipe" not in args and "-p" not in args:
                    return write("wrangler r2 object get saves the object to a local file (use --pipe to print)")
                return read(f"wrangler {group} ... {w}")
        return write(f"wrangler {group} {' '.join(w for w in words[:2] if w)}: changes resources")
    if group in ("whoami", "--version", "-v", "version", "help", "docs", "tail", "types"):
        return read(f"wrangler {group}") if group != "types" else write("wrangler types writes a file")
    if group in ("dev",):
        return unknown("wrangler dev runs the worker locally")
    return write(f"wrangler {group}: deploys or changes resources")


def _values_of(args, options):
    """Values of options in ``options`` (``--opt value`` and ``--opt=value``), in order."""
    out = []
    for i, a in enumerate(args):
        if a is None:
            continue
        for o in options:
            if a == o:
                out.append(args[i + 1] if i + 1 < len(args) else None)
            elif a.startswith(o + "=") and o.startswith("--"):
                out.append(a[len(o) + 1:])
            elif len(o) == 2 and not o.startswith("--") and a.startswith(o) and len(a) > 2 and not a.startswith("--"):
                out.append(a[2:])
    return out


def _sql_from_stdin(label, ctx, dialect, meta=None):
    from drygate.classifiers.sql import classify_sql_script

    if isinstance(ctx.stdin, str):
        return classify_sql_script(ctx.stdin, dialect, meta, ctx.cache).because(
            f"{label} reads SQL from a here-document")
    if ctx.stdin is False:
        return unknown(f"{label} reads SQL from a pipe whose text is only known at run time")
    return unknown(f"{label} with no statement is interactive")


_PSQL_VALUES = frozenset(("-h", "--host", "-p", "--port", "-U", "--username", "-d", "--dbname", "-c", "--command",
                          "-f", "--file", "-v", "--set", "--variable", "-P", "--pset", "-F", "--field-separator",
                          "-R", "--record-separator", "-T", "--table-attr", "-o", "--output", "-L", "--log-file"))
_PSQL_FLAGS = frozenset(("-q", "--quiet", "-X", "--no-psqlrc", "-A", "--no-align", "-t", "--tuples-only", "-x",
                         "--expanded", "-e", "--echo-queries", "-a", "--echo-all", "-E", "--echo-hidden", "-n",
                         "--no-readline", "-s", "--single-step", "-S", "--single-line", "-w", "--no-password",
                         "-W", "--password", "-1", "--single-transaction", "--csv", "-H", "--html", "-b",
                         "--echo-errors", "-z", "--field-separator-zero", "-0", "--record-separator-zero", "-l",
                         "--list", "-V", "--version", "-?", "--help"))


def _psql(label, args, ctx, spec):
    from drygate.classifiers.sql import classify_sql_script

    commands, i = [], 0
    while i < len(args):
        a = args[i]
        if a is None:
            return unknown("psql: an argument known only at run time")
        name, eq, inline = a.partition("=")
        if a.startswith("--") and eq:
            a, value, step = name, inline, 1
        elif a.startswith("-") and not a.startswith("--") and len(a) > 2:
            # a cluster: every letter a known flag, or the last one taking the rest (-qAt, -Xc SQL, -qo file)
            letters = a[1:]
            for j, c in enumerate(letters):
                flag = "-" + c
                if flag in _PSQL_VALUES:
                    a, value = flag, letters[j + 1:] or (args[i + 1] if i + 1 < len(args) else None)
                    step = 1 if letters[j + 1:] else 2
                    break
                if flag not in _PSQL_FLAGS:
                    return unknown(f"psql {args[i]}: an option this classifier does not read")
            else:
                i += 1
                continue
        else:
            value = args[i + 1] if i + 1 < len(args) else None
            step = 2 if a in _PSQL_VALUES else 1
        if a in ("-o", "--output", "-L", "--log-file"):
            if value not in HARMLESS_TARGETS:
                return write(f"psql {a} writes {value!r}")
        elif a in ("-c", "--command"):
            commands.append(value)
        elif a in ("-f", "--file"):
            return unknown("psql -f runs a SQL file, which is not classified")
        elif a.startswith("-") and a not in _PSQL_VALUES and a not in _PSQL_FLAGS:
            return unknown(f"psql {a}: an option this classifier does not read")
        i += step
    if any(c is None for c in commands):
        return unknown("psql -c: the statement is only known at run time")
    if commands:
        return strongest([classify_sql_script(c, "postgres", "psql", ctx.cache) for c in commands]).because("psql -c")
    if any(a in ("-l", "--list", "-V", "--version", "--help") for a in args):
        return read("psql lists databases or prints its version")
    if isinstance(ctx.stdin, str) and _psql_interpolates(ctx.stdin) and any(
            a is not None and a.split("=", 1)[0] in ("-v", "--set", "--variable") or (a or "").startswith("-v")
            for a in args):
        return unknown("psql interpolates variables given with -v into the SQL it reads (:name), so the statement "
                       "is only known at run time")
    return _sql_from_stdin("psql", ctx, "postgres", "psql")


def _psql_interpolates(text):
    """True if SQL text read by psql has a variable reference (``:name``, ``:'name'``,
    ``:"name"``) outside quotes; ``::type`` casts do not count."""
    from drygate.classifiers.sql import _outside_quotes

    bare = _outside_quotes(text)
    for k, c in enumerate(bare):
        if c == ":" and (k == 0 or bare[k - 1] != ":") and k + 1 < len(text):
            nxt = text[k + 1]
            if nxt in ("'", '"', "{") or nxt.isalpha() or nxt == "_":
                return True
    return False


#: mysql/mariadb client options (mysql --help, MySQL 8 and MariaDB 10/11) that neither write
#: files, run programs or statements, nor read other settings files. Any other option is
#: unknown (--tee, --pager, --init-command, --defaults-file, --plugin-dir, --system-command...).
_MYSQL_VALUES = frozenset((
    "-u", "--user", "-p", "--password", "-h", "--host", "-P", "--port", "-D", "--database", "-S", "--socket",
    "-e", "--execute", "--protocol", "--default-character-set", "--connect-timeout", "--max-allowed-packet",
    "--net-buffer-length", "--ssl-mode", "--ssl-ca", "--ssl-cert", "--ssl-key", "--ssl-capath", "--ssl-cipher",
    "--tls-version", "--compression-algorithms", "--zstd-compression-level", "--delimiter", "--prompt",
    "--max-join-size", "--select-limit", "--read-timeout", "--write-timeout",
))
_MYSQL_FLAGS = frozenset((
    "-B", "--batch", "-s", "--silent", "-N", "--skip-column-names", "--column-names", "-r", "--raw", "-t",
    "--table", "-E", "--vertical", "-H", "--html", "-X", "--xml", "-v", "--verbose", "-q", "--quick", "-n",
    "--unbuffered", "-A", "--no-auto-rehash", "--auto-rehash", "-C", "--compress", "-f", "--force", "-U",
    "--safe-updates", "--i-am-a-dummy", "-c", "--comments", "--skip-comments", "--no-defaults", "--binary-mode",
    "--line-numbers", "--skip-line-numbers", "--show-warnings", "--sigint-ignore", "-w", "--wait", "--reconnect",
    "--skip-reconnect", "--get-server-public-key", "--ssl", "--skip-ssl", "--no-beep", "-b", "-V", "--version",
    "-?", "--help", "-#", "--table", "--skip-pager", "--no-pager", "--skip-tee", "--no-tee", "-j", "--syslog",
))


def _mysql(label, args, ctx, spec):
    """mysql/mariadb: the statements (-e, stdin) with the client's own commands (system, tee,
    source, pager...), after every option is understood."""
    from drygate.classifiers.sql import classify_sql_script

    if any(a is None for a in args):
        return unknown(f"{label}: an argument known only at run time")
    commands, i = [], 0
    while i < len(args):
        a = args[i]
        name, eq, value = a.partition("=")
        if a.startswith("--") and eq:
            if name not in _MYSQL_VALUES and name not in _MYSQL_FLAGS:
                return unknown(f"{label} {name}: an option this classifier does not read (it may write a file, "
                               "run a program or a statement, or read other settings)")
            if name in ("--execute",):
                commands.append(value)
            i += 1
            continue
        if a in _MYSQL_VALUES:
            if a in ("-e", "--execute"):
                commands.append(args[i + 1] if i + 1 < len(args) else None)
            i += 2
            continue
        if a.startswith("-") and not a.startswith("--") and len(a) > 2 and "-" + a[1] in _MYSQL_VALUES:
            if a[1] == "e":
                commands.append(a[2:])
            i += 1  # an attached value (-uroot, -psecret, -e'SELECT 1')
            continue
        if a.startswith("-") and a != "-" and a not in _MYSQL_FLAGS:
            return unknown(f"{label} {a}: an option this classifier does not read")
        i += 1
    if commands:
        if any(c is None for c in commands):
            return unknown(f"{label} -e: the statement is only known at run time")
        return strongest([classify_sql_script(c, "mysql", "mysql", ctx.cache) for c in commands]).because(
            f"{label} -e")
    if any(a in ("-V", "--version", "--help", "-?") for a in args):
        return read(f"{label} prints its version")
    return _sql_from_stdin(label, ctx, "mysql", "mysql")


#: sqlite3 options (sqlite3 -help, 3.40) that only choose the output format or limits.
_SQLITE_FLAGS = frozenset((
    "ascii", "bail", "batch", "box", "column", "csv", "echo", "header", "noheader", "html", "json", "line", "list",
    "markdown", "quote", "table", "tabs", "readonly", "safe", "stats", "nofollow", "memtrace", "interactive",
))
_SQLITE_VALUES = frozenset(("cmd", "separator", "newline", "nullvalue", "mmap", "vfs", "maxsize"))
_SQLITE_VALUES2 = frozenset(("lookaside", "pagecache"))


def _sqlite3(label, args, ctx, spec):
    """sqlite3 [OPTIONS] FILENAME [SQL...]: the statements and dot-commands (-cmd, arguments,
    stdin), after every option is understood (-A archives, -init runs a file, -append,
    -deserialize and -zip change how the file is opened: unknown)."""
    from drygate.classifiers.sql import classify_sql_script

    if any(a is None for a in args):
        return unknown("sqlite3: an argument known only at run time")
    statements, operands, i = [], [], 0
    while i < len(args):
        a = args[i]
        if a.startswith("-") and len(a) > 1 and not operands:
            name = a.lstrip("-")
            if name in ("version", "help"):
                return read("sqlite3 prints its version or help")
            if name in _SQLITE_FLAGS:
                i += 1
            elif name in _SQLITE_VALUES:
                if name == "cmd":
                    statements.append(args[i + 1] if i + 1 < len(args) else None)
                i += 2
            elif name in _SQLITE_VALUES2:
                i += 3
            else:
                return unknown(f"sqlite3 {a}: an option this classifier does not read (-A, -init, -append, "
                               "-deserialize, -zip... write, run a file or open the file another way)")
            continue
        operands.append(a)
        i += 1
    statements += operands[1:]
    if any(st is None for st in statements):
        return unknown("sqlite3 -cmd: the statement is only known at run time")
    if statements:
        v = strongest([classify_sql_script(st, "sqlite", "sqlite3", ctx.cache) for st in statements])
    elif ctx.stdin is not None:
        v = _sql_from_stdin("sqlite3", ctx, "sqlite", "sqlite3")
    else:
        return unknown("sqlite3 with no statement is interactive")
    # -readonly still lets VACUUM INTO, .output and writefile() write files: no shortcut
    return v.because("sqlite3")


#: redis-cli options (redis-cli --help, 7.x) that only choose the connection or the output.
_REDIS_VALUES = frozenset(("-h", "-p", "-a", "-n", "-u", "--user", "--pass", "-s", "-r", "-i", "-d", "-D",
                           "--cacert", "--cacertdir", "--cert", "--key", "--sni", "--tls-ciphers",
                           "--tls-ciphersuites", "-t", "--pattern", "--quoted-pattern", "--count",
                           "--memkeys-samples", "--keystats-samples", "--cursor", "--top"))
_REDIS_FLAGS = frozenset(("--askpass", "--tls", "--insecure", "--raw", "--no-raw", "--csv", "--json",
                          "--quoted-json", "-c", "-e", "--no-auth-warning", "-2", "-3", "--verbose", "--quoted-input",
                          "--show-pushes", "--version", "-v", "--help", "-x"))
#: Modes that only read (redis-cli --help); --rdb and --functions-rdb write a file (and make
#: the server fork a save), --replica streams a replication (the server saves), --pipe and
#: --eval send commands or a script, --lru-test writes keys, --cluster manages a cluster.
_REDIS_READ_MODES = frozenset(("--scan", "--bigkeys", "--memkeys", "--hotkeys", "--keystats", "--stat",
                               "--latency", "--latency-history", "--latency-dist", "--intrinsic-latency"))


def _redis_cli(label, args, ctx, spec):
    if any(a is None for a in args):
        return unknown("redis-cli: an argument known only at run time")
    words, i, mode = [], 0, None
    while i < len(args):
        a = args[i]
        if words or not a.startswith("-") or a == "-":
            words.append(a)
            i += 1
            continue
        if a in ("--rdb", "--functions-rdb"):
            return write(f"redis-cli {a} writes a file (and makes the server save a snapshot)")
        if a in _REDIS_READ_MODES:
            mode = a
            i += 2 if a == "--intrinsic-latency" else 1
            continue
        if a in _REDIS_VALUES:
            i += 2
            continue
        if a in _REDIS_FLAGS:
            if a == "-x":
                return unknown("redis-cli -x sends its input as the last argument")
            if a in ("--version", "-v", "--help"):
                return read("redis-cli prints its version or help")
            i += 1
            continue
        return unknown(f"redis-cli {a}: a mode or option this classifier does not read (--pipe, --eval, --replica, "
                       "--cluster, --lru-test... send commands, write or run scripts)")
    if mode:
        if words:
            return unknown(f"redis-cli {mode} with a command")
        return read(f"redis-cli {mode} only reads")
    if not words:
        if isinstance(ctx.stdin, str):
            lines = [ln.split() for ln in ctx.stdin.splitlines() if ln.strip()]
            return strongest([redis_command(ln) for ln in lines], read("no commands")).because(
                "redis-cli reads commands from a here-document")
        return unknown("redis-cli with no command is interactive or reads commands from its input")
    return redis_command(words).because("redis-cli")


def redis_command(words):
    """The effect of one Redis command given as words, from Redis's own command table."""
    from drygate.classifiers.data.redis_commands import COMMANDS as REDIS, REDIS_VERSION

    name = words[0].upper()
    if len(words) > 1 and f"{name} {words[1].upper()}" in REDIS:
        key = f"{name} {words[1].upper()}"
    else:
        key = name
    effect = REDIS.get(key)
    if effect is None:
        return unknown(f"Redis {key} is not in Redis {REDIS_VERSION}'s command table")
    if effect == READ and any(w.upper() == "RESET" for w in words[1:]):
        return write(f"Redis {key} ... RESET clears what it would read")
    return Verdict(effect, f"Redis {key} is {effect} (Redis {REDIS_VERSION} command flags)")


def _curl(label, args, ctx, spec):
    from drygate.classifiers.http import classify_curl

    return classify_curl(args, ctx)


def _wget(label, args, ctx, spec):
    from drygate.classifiers.http import classify_wget

    return classify_wget(args, ctx)


def _httpie(label, args, ctx, spec):
    from drygate.classifiers.http import classify_httpie

    return classify_httpie(label, args, ctx)


def _gh_api(label, args, ctx, spec):
    from drygate.classifiers.http import classify_gh_api

    return classify_gh_api(args, ctx)


# --------------------------------------------------------------------------- bash builtins
# Source: the bash manual (5.2), SHELL BUILTIN COMMANDS; each class member was run in a
# throwaway folder to see that it really runs code (tests/classifiers/test_bash_builtins.py).


def _getopt(args, letters, with_value):
    """Split bash-builtin style options: ``(options [(letter, value)], operands)`` or None
    when a letter is not in ``letters``/``with_value`` (then the caller says unknown)."""
    opts, i = [], 0
    while i < len(args):
        a = args[i]
        if a is None:
            return None
        if a == "--":
            return opts, list(args[i + 1:])
        if not a.startswith("-") or a == "-":
            break
        j = 1
        while j < len(a):
            c = a[j]
            if c in with_value:
                value = a[j + 1:] or (args[i + 1] if i + 1 < len(args) else None)
                if not a[j + 1:]:
                    i += 1
                opts.append((c, value))
                break
            if c not in letters:
                return None
            opts.append((c, None))
            j += 1
        i += 1
    return opts, list(args[i:])


def _facts(ctx):
    from drygate.classifiers.bash_names import NO_FACTS

    return ctx.facts or NO_FACTS


def _names_verdict(label, names, ctx, what="a variable name"):
    from drygate.classifiers.bash_names import name_problem

    facts = _facts(ctx)
    for name in names:
        why = name_problem(name, facts)
        if why:
            return unknown(f"{label} takes {what} and evaluates a subscript in it: {why}")
        if name.split("[", 1)[0] in facts.integers:
            return unknown(f"{label} assigns to the integer variable {name}, whose value is evaluated as arithmetic")
    return None


def _b_read(label, args, ctx, spec):
    """read [-ers] [-a aname] [-d delim] [-i text] [-n n] [-N n] [-p prompt] [-t t] [-u fd] [name ...]"""
    parsed = _getopt(args, "ers", "adinNptu")
    if parsed is None:
        return unknown(f"{label}: an option this classifier does not read, or a word known only at run time")
    opts, operands = parsed
    names = operands + [v for c, v in opts if c == "a"]
    return _names_verdict(label, names, ctx) or read(f"{label} sets shell variables from its input")


def _b_mapfile(label, args, ctx, spec):
    """mapfile/readarray [-d delim] [-n count] [-O origin] [-s count] [-t] [-u fd] [-C callback] [-c quantum] [array]"""
    parsed = _getopt(args, "t", "dnOsuCc")
    if parsed is None:
        return unknown(f"{label}: an option this classifier does not read, or a word known only at run time")
    opts, operands = parsed
    if any(c == "C" for c, _ in opts):
        return unknown(f"{label} -C evaluates a callback (shell code) as it reads")
    if len(operands) > 1:
        return unknown(f"{label} takes one array name")
    return _names_verdict(label, operands, ctx) or read(f"{label} fills a shell array from its input")


def _b_printf(label, args, ctx, spec):
    """printf [-v var] format [arguments]: only -v names a variable (its subscript is evaluated)."""
    if args and args[0] is not None and args[0].startswith("-v"):
        name = args[0][2:] or (args[1] if len(args) > 1 else None)
        return _names_verdict("printf -v", [name], ctx) or read("printf -v sets a shell variable")
    if args and args[0] is None:
        return unknown("printf: its first word is only known at run time (it could be -v NAME)")
    return read("printf prints")


def _b_wait(label, args, ctx, spec):
    """wait [-fn] [-p varname] [id ...]"""
    parsed = _getopt(args, "fn", "p")
    if parsed is None:
        return unknown("wait: an option this classifier does not read, or a word known only at run time")
    names = [v for c, v in parsed[0] if c == "p"]
    return _names_verdict("wait -p", names, ctx) or read("wait waits for this command's own jobs")


def _b_getopts(label, args, ctx, spec):
    """getopts optstring name [arg ...]"""
    if len(args) < 2:
        return unknown("getopts without a variable name")
    return _names_verdict(label, [args[1]], ctx) or read("getopts sets a shell variable")


def _b_test(label, args, ctx, spec):
    """test/[ expr: -v and -R take a variable name (its subscript is evaluated); -eq and the
    other integer comparisons of test/[ take only literal numbers (unlike [[ ]])."""
    for i, a in enumerate(args):
        if a in ("-v", "-R"):
            verdict = _names_verdict(f"{label} {a}", [args[i + 1] if i + 1 < len(args) else None], ctx)
            if verdict:
                return verdict
    return read(f"{label} only compares")


def _b_let(label, args, ctx, spec):
    """let arg...: every argument is an arithmetic expression."""
    from drygate.classifiers.bash_names import arith_problem

    if not args:
        return unknown("let with no expression")
    for a in args:
        why = arith_problem(a, _facts(ctx))
        if why:
            return unknown(f"let evaluates {a!r} as arithmetic: {why}")
    return read("let only computes numbers")


def _b_jobs(label, args, ctx, spec):
    """jobs [-lnprs] [jobspec ...] | jobs -x command [args ...]: -x runs the command."""
    if args and args[0] == "-x":
        return classify_argv(list(args[1:]), ctx).because("jobs -x runs the command")
    if _getopt(args, "lnprs", "") is None:
        return unknown("jobs: an option this classifier does not read (jobs -x runs a command)")
    return read("jobs lists this command's own jobs")


def _b_trap(label, args, ctx, spec):
    """trap [-lp] [[action] sigspec ...]: the action runs later in the same shell (on EXIT,
    ERR, DEBUG, RETURN or a signal), so it is classified as shell text."""
    if any(a is None for a in args):
        return unknown("trap: a word known only at run time")
    rest = list(args)
    if rest and rest[0] in ("-l", "-p", "-lp", "-pl"):
        return read("trap -l/-p lists")
    if rest and rest[0] == "--":
        rest = rest[1:]
    if len(rest) <= 1:
        return read("trap with no action prints or resets")
    action = rest[0]
    if action in ("", "-") or action.isdigit():
        return read("trap ignores or resets signals")
    from drygate.classifiers.shell import classify_script

    return classify_script(action, ctx).because("trap runs this action later in the same shell")


def _b_enable(label, args, ctx, spec):
    """enable [-a] [-dnps] [-f filename] [name ...]: only the listing forms read."""
    if all(a in ("-a", "-p", "-s", "-n", "-ap", "-pa") for a in args) and "-n" not in args or not args:
        return read("enable lists builtins")
    return unknown("enable loads builtins from a shared object (-f) or turns builtins off or on, which changes "
                   "what later words run")


def _b_ulimit(label, args, ctx, spec):
    """ulimit [-HS] [-bcdefiklmnpqrstuvxPRT [limit]]: a limit value changes the shell's limits."""
    if any(a is None for a in args):
        return unknown("ulimit: a word known only at run time")
    if all(a.startswith("-") and a[1:].isalpha() for a in args):
        return read("ulimit shows limits")
    return unknown("ulimit with a value changes resource limits (core files, file sizes) for what runs next")


#: ``set -o`` names (and their letters) that only change error handling, tracing or globbing.
_SET_SAFE_NAMES = frozenset(("errexit", "nounset", "xtrace", "verbose", "pipefail", "noglob", "noclobber", "noexec",
                             "errtrace", "functrace", "hashall", "braceexpand", "physical", "monitor", "notify",
                             "ignoreeof", "interactive-comments", "onecmd", "emacs", "vi", "histexpand"))
_SET_SAFE_LETTERS = frozenset("euxvfCnEThBbmHPt")


def _b_set(label, args, ctx, spec):
    """set [-abefhkmnptuvxBCEHPT] [-o option-name] [--] [arg ...]: allexport (-a), keyword (-k),
    privileged (-p), history and posix are not understood as harmless; the arguments after the
    options become positional parameters (text; see drygate.classifiers.bash_names)."""
    i = 0
    while i < len(args):
        a = args[i]
        if a is None:
            return unknown("set: a word known only at run time")
        if a in ("--", "-"):
            break
        if a[:1] not in ("-", "+") or len(a) == 1:
            break
        if a in ("-o", "+o"):
            if i + 1 >= len(args) or args[i + 1] is None or args[i + 1].startswith(("-", "+")):
                i += 1
                continue  # set -o alone lists the options
            if args[i + 1] not in _SET_SAFE_NAMES:
                return unknown(f"set -o {args[i + 1]}: an option this classifier does not take as harmless")
            i += 2
            continue
        letters = a[1:]
        if "o" in letters and letters.endswith("o"):
            letters = letters[:-1]
            if i + 1 < len(args) and args[i + 1] is not None and args[i + 1] not in _SET_SAFE_NAMES:
                return unknown(f"set {a} {args[i + 1]}: an option this classifier does not take as harmless")
            i += 1
        if not set(letters) <= _SET_SAFE_LETTERS:
            return unknown(f"set {a}: allexport (-a), keyword (-k), privileged (-p) or an option this classifier "
                           "does not read")
        i += 1
    return read("set changes the shell's own options or positional parameters")


#: shopt options that only change globbing, matching or messages.
_SHOPT_SAFE = frozenset(("nullglob", "failglob", "globstar", "dotglob", "extglob", "nocaseglob", "nocasematch",
                         "lastpipe", "inherit_errexit", "xpg_echo", "globasciiranges", "assoc_expand_once",
                         "array_expand_once", "checkjobs", "globskipdots", "expand_aliases", "shift_verbose",
                         "gnu_errfmt", "huponexit", "checkhash", "sourcepath", "varredir_close", "patsub_replacement",
                         "noexpand_translation", "complete_fullquote", "direxpand", "dirspell", "cdspell"))


def _b_shopt(label, args, ctx, spec):
    """shopt [-pqsu] [-o] [optname ...]: setting an option not known to be harmless is unknown."""
    if any(a is None for a in args):
        return unknown("shopt: a word known only at run time")
    opts = [a for a in args if a.startswith("-")]
    names = [a for a in args if not a.startswith("-")]
    if not any(o in ("-s", "-u") or ("s" in o or "u" in o) for o in opts):
        return read("shopt lists or queries options")
    bad = [n for n in names if n not in _SHOPT_SAFE]
    if bad or not names or "-o" in opts:
        return unknown(f"shopt sets {', '.join(bad) or 'options'}: not known to be harmless")
    return read("shopt sets globbing or matching options")


def _b_hash(label, args, ctx, spec):
    """hash [-lr] [-p filename] [-dt] [name ...]: -p makes a name run any file."""
    if any(a is None or a.startswith("-p") for a in args):
        return unknown("hash -p makes a command name run another file")
    return read("hash lists or clears the shell's lookup table")


HANDLERS = {
    "wrapper": _wrapper, "package_runner": _package_runner, "shell": _shell, "find": _find, "sed": _sed, "awk": _awk, "git_config": _git_config,
    "service": _service, "remote_exec": _remote_exec, "only_flags": _only_flags, "alias": _alias, "terraform": _terraform, "aws": _aws, "gcloud": _gcloud, "az": _az,
    "wrangler": _wrangler, "psql": _psql, "mysql": _mysql, "sqlite3": _sqlite3, "redis_cli": _redis_cli,
    "curl": _curl, "wget": _wget, "httpie": _httpie, "gh_api": _gh_api,
    "b_read": _b_read, "b_mapfile": _b_mapfile, "b_printf": _b_printf, "b_wait": _b_wait, "b_getopts": _b_getopts,
    "b_test": _b_test, "b_let": _b_let, "b_jobs": _b_jobs, "b_trap": _b_trap, "b_enable": _b_enable,
    "b_ulimit": _b_ulimit, "b_set": _b_set, "b_shopt": _b_shopt, "b_hash": _b_hash,
}

__all__ = ["Context", "classify_argv", "flag_hits", "positionals", "redis_command", "run_spec"]
