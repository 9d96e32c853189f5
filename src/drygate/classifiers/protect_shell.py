"""Self-protection for shell commands: which protected paths a Bash command could change.

This is the shell half of :mod:`drygate.classifiers.protect`. It reads the command's
syntax tree (tree-sitter's Bash grammar, drygate.classifiers.bash_parser) on its own,
independently of the effect classifier (drygate.classifiers.shell): a command the
classifier misreads as a read is still checked here. :func:`find_tamper` returns the
reason a command could change a protected path, or None.

What is modelled, and where each rule comes from (GNU Bash manual, 5.2, "Shell
Expansions"; the tools' own manuals for the tables below):

- **Words** are expanded as bash does before a command runs: quote removal (``'...'``,
  ``"..."``, ``\\x``, ANSI-C ``$'...'`` decoded), tilde expansion (``~``, ``~/x``),
  brace expansion (``{a,b}``, nested, sequences ``{x..y[..incr]}`` of integers with
  zero padding or of letters; ``${`` is not a brace; a quoted ``{`` or ``,`` is not
  either), parameters assigned earlier in the same command (each value it may hold),
  and filename patterns (``*``, ``?``, ``[...]``, the extglob operators ``?( *( +( @(
  !(``) in every path part, with the manual's rule that a leading ``.`` must be matched
  explicitly unless the command sets ``dotglob``/``GLOBIGNORE``. Text that is only
  known at run time (``$VAR`` never assigned here, ``$(...)``, ``$((...))``) matches
  anything, including ``/``.
- **A word touches a protected path** when the path it names, resolved against every
  folder the command may be in at that point, can be the protected path or a path
  under it; for commands that remove, move or recursively change what they name, also
  a folder above it. A pattern only counts when it can really match: ``dist/*`` cannot
  be ``drygate.toml``; ``*`` in the project folder can. A word made only of run-time
  text (``"$DIR"``) is not matched (the limit: text built at run time); a word whose
  static part can match (``$D/settings.json``, ``.cl$X/settings.json``) is. Static
  paths are also resolved through symlinks, and hard links of the key files are found
  by inode; patterns are also expanded on the file system (a glob that matches a
  symlink to a protected file).
- **The working folder** is followed through a command list: ``cd``/``pushd``/``popd``
  (``cd -``, ``cd`` alone, ``~``), ``&&`` (the right side runs only after the left
  side succeeded), ``;`` and ``||`` (either folder), subshells, pipelines and
  substitutions (their ``cd`` does not leak out). A ``cd`` to run-time text makes the
  folder unknown: then a relative path matches wherever it could (``settings.json``
  could be ``.claude/settings.json``).
- **Code inside code** is checked too: ``$(...)``, backticks and process substitution
  anywhere (also inside here-documents), any quoted text that holds ``$(``, `````` or
  ``<(``/``>(`` (arithmetic contexts and name operands evaluate it even in single
  quotes: ``let 'a[$(...)]'``), ``sh -c``/``bash -c`` and the other shells, ``eval``,
  ``su -c``, ``flock -c``, ``script -c``, ``watch``, here-documents and here-strings
  fed to a shell. Inline code of other interpreters (``python -c``, ``node -e``, awk
  and sed programs, a here-document fed to ``python``) is opaque: it is tamper when it
  names a protected marker (``.claude``, the policy's file name, ``.drygate``, ...).
- **Commands that change a whole tree without naming the protected files** (the
  :data:`WHOLE_TREE` table says why for each) are tamper when the tree they change
  holds a protected path.
"""

import os

#: Commands whose operands are only read (their manuals list no option that writes a
#: named file or runs a command, except the ones in READ_ONLY_UNLESS).
READ_ONLY = frozenset((
    "cat", "head", "tail", "wc", "ls", "dir", "vdir", "stat", "readlink", "realpath", "basename", "dirname", "pwd",
    "echo", "printf", "true", "false", "test", "[", "grep", "egrep", "fgrep", "rg", "ag", "ack", "diff", "cmp",
    "comm", "md5sum", "sha1sum", "sha224sum", "sha256sum", "sha384sum", "sha512sum", "b2sum", "cksum", "sum",
    "du", "df", "nl", "od", "hexdump", "strings", "tac", "rev", "cut", "paste", "fold", "fmt", "column", "expand",
    "unexpand", "tr", "jq", "which", "type", "whoami", "id", "uname", "ps", "pgrep", "date", "sleep", "wait",
    "tree", "file", "less", "more", "bat", "xxd", "base64", "sed", "awk", "gawk", "mawk", "nawk", "sort", "uniq",
    "find", "env", "printenv", "command", "hash", "history", "jobs", "getent", "lsof", "netstat", "ss", "free",
    "uptime", "locale", "tput", "seq", "yes", "expr", "let", ":",
))
#: Options that make a READ_ONLY command write (or run something): then its operands
#: count as written. Sources: each tool's manual (sed -i in place; sort -o and uniq's
#: second operand write; tree -o, xxd's second operand and file -C write; rg --pre,
#: less/more commands and find's actions run or write).
READ_ONLY_UNLESS = {
    "sed": ("-i", "--in-place"), "sort": ("-o", "--output"), "tree": ("-o",), "rg": ("--pre",),
    "file": ("-C", "--compile"), "printf": ("-v",), "jobs": ("-x",),
}
#: Builtins that evaluate their operands as arithmetic, assign through a name operand
#: (an array subscript in it is evaluated: bash manual, "Arrays", "ARITHMETIC
#: EVALUATION"), or keep text to run later: quoted text given to them that holds ``$(``,
#: a backtick or a process substitution is checked as code. Operands of every other
#: command are only data to bash itself.
EVALUATING = frozenset((
    "let", "declare", "typeset", "local", "readonly", "export", "read", "printf", "wait", "unset", "mapfile",
    "readarray", "getopts", "eval", "trap", "source", ".", "alias", "complete", "compgen", "bind", "fc",
    "coproc", "select", "shift", "return", "exit", "ulimit", "umask", "kill", "test", "[", "enable", "hash",
    "command", "builtin", "exec", "caller", "history", "disown", "suspend", "times", "type", "printenv",
))
#: Read-only commands whose operand count decides: ``uniq IN OUT``, ``xxd IN OUT`` write OUT.
_SECOND_OPERAND_WRITES = frozenset(("uniq", "xxd"))
#: Commands that run the rest of their words as a command (options with a value listed).
WRAPPERS = {
    "sudo": frozenset("-u -g -h -p -C -D -r -t -U -T --user --group --host --prompt --chdir --role --type "
                      "--other-user --command-timeout --close-from".split()),
    "doas": frozenset(("-u", "-C")), "nice": frozenset(("-n", "--adjustment")), "nohup": frozenset(),
    "time": frozenset(("-f", "-o", "--format", "--output")), "command": frozenset(), "builtin": frozenset(),
    "exec": frozenset(("-a",)), "stdbuf": frozenset(("-i", "-o", "-e")), "ionice": frozenset(("-c", "-n", "-p")),
    "chrt": frozenset(), "taskset": frozenset(), "setsid": frozenset(), "unbuffer": frozenset(),
    "caffeinate": frozenset(), "chronic": frozenset(), "catchsegv": frozenset(), "strace": frozenset(("-o", "-e")),
    "ltrace": frozenset(("-o", "-e")), "torsocks": frozenset(), "proxychains": frozenset(), "firejail": frozenset(),
    "xargs": frozenset("-I -i -d -E -e -L -l -n -P -s -a --arg-file --delimiter --max-args --max-procs "
                       "--max-lines --replace --eof".split()),
    "timeout": frozenset(("-s", "-k", "--signal", "--kill-after")), "env": frozenset(("-u", "--unset", "-S")),
    "busybox": frozenset(), "toybox": frozenset(), "parallel": frozenset(), "npx": frozenset(), "uv": frozenset(), "poetry": frozenset(), "pipenv": frozenset(),
}
#: Shells: ``-c`` takes code, a here-document or here-string is code.
SHELLS = frozenset(("sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "yash", "posh", "fish", "rbash"))
#: Commands that run a word (or all their words) through a shell: eval, su/runuser -c,
#: flock ... -c, script -c, watch (bash manual "eval"; util-linux manuals).
_CODE_OPTION = {"su": "-c", "runuser": "-c", "flock": "-c", "script": "-c", "mapfile": "-C", "readarray": "-C",
                "compgen": "-C"}
#: Interpreters and the options that take inline code (their manuals); their code is opaque.
INTERPRETERS = {
    "python": ("-c",), "python2": ("-c",), "python3": ("-c",), "pypy": ("-c",), "pypy3": ("-c",),
    "node": ("-e", "--eval", "-p", "--print"), "nodejs": ("-e", "--eval", "-p", "--print"),
    "bun": ("-e", "--eval", "-p", "--print"), "deno": ("eval",), "perl": ("-e", "-E"), "ruby": ("-e",),
    "php": ("-r",), "lua": ("-e",), "luajit": ("-e",), "Rscript": ("-e",), "R": ("-e",), "osascript": ("-e",),
    "pwsh": ("-c", "-Command"), "powershell": ("-c", "-Command"), "tclsh": (), "julia": ("-e",),
    "gawk": (), "awk": (), "mawk": (), "nawk": (), "sed": ("-e", "--expression"), "sqlite3": (), "psql": ("-c",),
}
#: Commands whose first operand is a program in a language of their own (opaque code).
_PROGRAM_FIRST = frozenset(("awk", "gawk", "mawk", "nawk", "sed"))
DELETE = frozenset(("rm", "rmdir", "unlink", "shred", "srm", "trash", "trash-put", "wipe"))
MOVE = frozenset(("mv",))
COPY = frozenset(("cp", "install", "ln", "link", "scp", "rsync"))
RECURSIVE = frozenset(("chmod", "chown", "chgrp", "chattr", "setfacl", "chcon", "setfattr"))
#: drygate's own subcommands that change nothing (every other one, and an unknown one, is tamper).
DRYGATE_READS = frozenset(("runs", "plan", "alerts", "replay", "explain", "doctor", "status", "metrics",
                           "--help", "-h", "--version", "help"))

#: The host's own CLI (Claude Code): options that start an agent the gate does not see,
#: and why (shared/reference/claude-code.md, measured on 2.1.332).
HOST_CLI_NAMES = frozenset(("claude", "claude-code", "@anthropic-ai/claude-code"))
HOST_CLI_OFF = {
    "--bare": "starts an agent without hooks (silently ungated)",
    "--safe-mode": "starts an agent without hooks (silently ungated)",
    "--settings": "adds a settings layer, which can set disableAllHooks or replace the hooks",
    "--setting-sources": "can leave the project's settings, and so its hooks, out",
    "--plugin-dir": "loads a plugin whose hooks can answer tool calls before drygate's",
    "--mcp-config": "adds MCP servers the relay does not front",
    "--strict-mcp-config": "replaces the MCP servers the relay fronts",
}
#: Its subcommands that write its settings, MCP servers or plugins; the second word of
#: each that only reads.
HOST_CLI_WRITES = {"config": ("get", "list", "ls"), "mcp": ("list", "get", "serve"),
                   "plugin": ("list", "validate"), "plugins": ("list", "validate"), "install": (), "update": (),
                   "migrate-installer": (), "setup-token": ()}
#: Variables that relocate or extend the host's settings (reference: CLAUDE_CODE_PLUGIN_DIRS
#: loads plugins; CLAUDE_CONFIG_DIR moves the user's settings).
HOST_ENV = ("CLAUDE_CONFIG_DIR", "CLAUDE_CODE_PLUGIN_DIRS")

#: Commands that change a whole tree without naming the protected files, and why
#: (each from the tool's manual). The tree is the command's folder or the folder it is
#: given; the command is tamper when that tree holds a protected path.
WHOLE_TREE = {
    "git clean": "removes untracked files (-x: ignored files too, -d: folders) under the current folder "
                 "(git-clean(1)); the gate's settings, policy and state are untracked or ignored",
    "git stash": "stash push reverts every modified tracked file to HEAD, -u/--all also removes untracked "
                 "(and ignored) files; pop/apply write the stashed versions back (git-stash(1))",
    "git reset": "--hard/--merge/--keep overwrite tracked files in the whole working tree (git-reset(1))",
    "git checkout": "checking out a commit or branch rewrites every tracked file that differs; a pathspec "
                    "restores those paths (git-checkout(1))",
    "git switch": "switching branches rewrites every tracked file that differs (git-switch(1))",
    "git restore": "restores the named paths (\".\" is the whole folder) from the index or a commit "
                   "(git-restore(1))",
    "git apply": "a patch may create, change or delete any file it names (git-apply(1))",
    "git am": "applies mailed patches, which may change any file they name (git-am(1))",
    "git merge": "brings the other commit's version of every tracked file (git-merge(1))",
    "git pull": "fetches and merges or rebases: rewrites tracked files (git-pull(1))",
    "git rebase": "replays commits: rewrites tracked files (git-rebase(1))",
    "git cherry-pick": "applies another commit's changes to tracked files (git-cherry-pick(1))",
    "git revert": "applies the reverse of a commit's changes to tracked files (git-revert(1))",
    "git read-tree": "-u updates the working tree from the index it reads (git-read-tree(1))",
    "git checkout-index": "writes files from the index into the working tree (git-checkout-index(1))",
    "patch": "a patch may create, change or delete any file it names (patch(1))",
    "tar": "extraction (-x, --extract, --get) writes every member into the folder (-C) (tar(1))",
    "bsdtar": "extraction (-x) writes every member into the folder (-C) (bsdtar(1))",
    "unzip": "writes every member into the folder (-d) (unzip(1))",
    "7z": "x and e write every member into the folder (-o) (7z(1))",
    "cpio": "copy-in (-i, --extract) writes every member into the folder (-D) (cpio(1))",
    "ar": "x writes every member into the current folder (ar(1))",
    "rsync": "--delete removes whatever the source lacks in the destination tree, and a source ending in / "
             "copies its contents over the destination (rsync(1))",
    "find": "-delete removes, and -exec/-execdir/-ok/-okdir run a command on, everything the expression "
            "matches under each starting point (find(1))",
    "cp": "a source ending in /. (or -T) copies its contents over the destination folder (cp(1))",
}

MAX_WORDS = 4096
MAX_DEPTH = 12
_RT = ("r", "")
_OUT_REDIRECTS = frozenset((">", ">>", ">|", "&>", "&>>", "<>", ">&"))


class _TooMany(Exception):
    pass


# ---------------------------------------------------------------- words


def _scan_balanced(text, i, open_c, close_c):
    """Index just past the ``close_c`` that closes the ``open_c`` before ``i`` (quotes respected)."""
    depth = 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            j = text.find("'", i + 1)
            i = n if j < 0 else j + 1
            continue
        if c == '"':
            i = _scan_dquote(text, i + 1)
            continue
        if c == open_c:
            depth += 1
        elif c == close_c:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def _scan_dquote(text, i):
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        if c == "$" and text.startswith("$(", i):
            i = _scan_balanced(text, i + 2, "(", ")")
            continue
        if c == "`":
            j = text.find("`", i + 1)
            i = n if j < 0 else j + 1
            continue
        i += 1
    return n


_ANSI = {"a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
         "\\": "\\", "'": "'", '"': '"', "?": "?"}


def _ansi_c(body):
    """Decode the text of ``$'...'`` (bash manual, "ANSI-C Quoting")."""
    out, i, n = [], 0, len(body)
    while i < n:
        c = body[i]
        if c != "\\" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        e = body[i + 1]
        i += 2
        if e in _ANSI:
            out.append(_ANSI[e])
        elif e in "01234567":
            j = i - 1
            while j < n and j < i + 2 and body[j] in "01234567":
                j += 1
            out.append(chr(int(body[i - 1:j], 8) & 0xFF))
            i = j
        elif e in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[e]
            j = i
            while j < n and j < i + width and body[j] in "0123456789abcdefABCDEF":
                j += 1
            if j == i:
                out.append("\\" + e)
            else:
                out.append(chr(min(int(body[i:j], 16), 0x10FFFF)))
                i = j
        elif e == "c" and i < n:
            out.append(chr(ord(body[i]) & 0x1F))
            i += 1
        else:
            out.append("\\" + e)
    return "".join(out)


class _Env:
    """What the walk knows: parameters assigned so far (name -> list of item lists), home, options."""

    __slots__ = ("vars", "home", "dotglob", "nocase", "depth", "protected", "cwd0", "git_moved")

    def __init__(self, protected, cwd0, text):
        self.vars = {}
        # git's view may change before a later git command in the same text (refs moved,
        # .git written, GIT_* variables): then git cannot be asked beforehand what it changes.
        self.git_moved = ".git/" in text or "GIT_" in text
        self.home = os.path.expanduser("~")
        self.dotglob = "dotglob" in text or "GLOBIGNORE" in text
        self.nocase = "nocaseglob" in text
        self.depth = 0
        self.protected = protected
        self.cwd0 = cwd0


def _lit(text, kind="q"):
    return [(kind, c) for c in text]


def _param(name, env, cwds):
    """Items alternatives for ``$name``: each value assigned here, plus run-time text."""
    alts = [[_RT]]
    if name in env.vars:
        alts = env.vars[name] + alts
    elif name == "HOME":
        alts = [_lit(env.home)] + alts
    elif name == "PWD":
        alts = [_lit(c) for c in cwds if c] + alts
    elif name == "CLAUDE_PROJECT_DIR" and os.environ.get("CLAUDE_PROJECT_DIR"):
        alts = [_lit(os.environ["CLAUDE_PROJECT_DIR"])] + alts
    return ("alt", alts)


_PARAM_OPS = (":-", ":=", ":+", ":?", "##", "%%", "//", "/#", "/%", "^^", ",,", "~~", "-", "=", "+", "?", "#", "%",
              "/", "^", ",", "~", ":", "@")


def _static_values(name, env, cwds):
    """The static texts a parameter may hold here (its assignments), or []."""
    kind, alts = _param(name, env, cwds)
    return ["".join(c for _, c in a) for a in alts if a and all(k in "uq" for k, _ in a)]


def _param_op(inner, env, cwds):
    """``${...}`` with an operator (bash manual, "Shell Parameter Expansion"): the values it
    may give, computed from the values the parameter was assigned here, plus run-time text.
    Defaults and alternatives (``:-``, ``:+``, ...) give their word; removal (``#``, ``%``),
    replacement (``/``), case changes, substrings and ``@U``/``@L`` are applied to each value;
    ``${!name}`` gives the values of the names ``name`` holds; ``${a[i]}`` any element."""
    alts = [[_RT]]
    if inner.startswith("#") and len(inner) > 1:
        return _RT  # a length
    indirect = inner.startswith("!")
    body = inner[1:] if indirect else inner
    k = 0
    while k < len(body) and (body[k].isalnum() or body[k] == "_"):
        k += 1
    name = body[:k]
    if not name or name[0].isdigit():
        return _RT
    if k < len(body) and body[k] == "[":
        close = body.find("]", k)
        k = len(body) if close < 0 else close + 1
    rest = body[k:]
    values = _static_values(name, env, cwds)
    if indirect:
        values = [v for n in values if n.replace("_", "a").isalnum() for v in _static_values(n, env, cwds)]
    op = next((o for o in _PARAM_OPS if rest.startswith(o)), None)
    word = rest[len(op):] if op else ""
    results = []
    if op is None:
        results = values
    elif op in (":-", "-", ":=", "=", ":+", "+"):
        words = _words(word, env, cwds) if word else [_Word([])]
        results = ([] if op in (":+", "+") else values) + ["".join(c for _, c in a) for w in words for a in w.alts
                                                          if all(x in "uq" for x, _ in a)]
        alts += [a for w in words for a in w.alts]
    elif op in (":?", "?"):
        results = values
    elif op in ("#", "##", "%", "%%"):
        pattern = _glob_tokens(_tokens(word, env, cwds), env) if word else ([], True)
        for v in values:
            cuts = range(len(v) + 1)
            if op == "#":
                found = next((v[j:] for j in cuts if _glob_match(pattern, v[:j])), v)
            elif op == "##":
                found = next((v[j:] for j in reversed(cuts) if _glob_match(pattern, v[:j])), v)
            elif op == "%":
                found = next((v[:j] for j in reversed(cuts) if _glob_match(pattern, v[j:])), v)
            else:
                found = next((v[:j] for j in cuts if _glob_match(pattern, v[j:])), v)
            results.append(found)
    elif op in ("/", "//", "/#", "/%"):
        pat, _, repl = word.partition("/")
        for v in values:
            if not pat or any(c in pat for c in "*?[$`\\'\""):
                results.append(v)
            elif op == "//":
                results.append(v.replace(pat, repl))
            elif op == "/#":
                results.append(repl + v[len(pat):] if v.startswith(pat) else v)
            elif op == "/%":
                results.append(v[:-len(pat)] + repl if v.endswith(pat) else v)
            else:
                results.append(v.replace(pat, repl, 1))
    elif op in ("^^", "^", ",,", ",", "~~", "~", "@"):
        for v in values:
            results += [v, v.upper(), v.lower(), v[:1].upper() + v[1:], v[:1].lower() + v[1:], v.swapcase()]
    elif op == ":":
        parts = word.split(":")
        for v in values:
            try:
                off = int(parts[0].strip() or 0)
                length = int(parts[1]) if len(parts) > 1 and parts[1].strip() else None
            except ValueError:
                results.append(v)
                continue
            piece = v[off:] if length is None else (v[off:off + length] if length >= 0 else v[off:length])
            results.append(piece)
    alts = [_lit(r) for r in results] + alts
    return ("alt", alts)


def _tokens(raw, env, cwds, assignment=False):
    """The items of one raw word: ('u', c) unquoted, ('q', c) quoted, _RT, ('alt', [items...])."""
    items = []
    i, n = 0, len(raw)
    if raw.startswith("~"):
        j = i + 1
        while j < n and raw[j] not in "/:":
            j += 1
        user = raw[1:j]
        if user == "":
            items.extend(_lit(env.home))
        elif user in ("+", "-"):
            items.append(("alt", [_lit(c) for c in cwds if c] + [[_RT]]))
        else:
            items.append(_RT)
        i = j
    while i < n:
        c = raw[i]
        if c == "\\":
            if i + 1 < n and raw[i + 1] != "\n":
                items.append(("q", raw[i + 1]))
            i += 2
        elif c == "'":
            j = raw.find("'", i + 1)
            j = n if j < 0 else j
            items.extend(_lit(raw[i + 1:j]))
            i = j + 1
        elif c == "$" and raw.startswith("$'", i):
            j = i + 2
            while j < n and raw[j] != "'":
                j += 2 if raw[j] == "\\" else 1
            items.extend(_lit(_ansi_c(raw[i + 2:j])))
            i = j + 1
        elif c == '"' or (c == "$" and raw.startswith('$"', i)):
            start = i + (2 if c == "$" else 1)
            end = _scan_dquote(raw, start)
            items.extend(_dquote_items(raw[start:end - 1] if end <= n and raw[end - 1:end] == '"' else raw[start:end],
                                       env, cwds))
            i = end
        elif c == "$":
            i = _dollar(raw, i, items, env, cwds)
        elif c == "`":
            j = raw.find("`", i + 1)
            i = n if j < 0 else j + 1
            items.append(_RT)
        elif c in "<>" and raw.startswith("(", i + 1):
            i = _scan_balanced(raw, i + 2, "(", ")")
            items.append(_RT)
        elif assignment and c == "~" and items and items[-1] in (("u", "="), ("u", ":")):
            items.extend(_lit(env.home))
            i += 1
        else:
            items.append(("u", c))
            i += 1
    return items


def _dquote_items(body, env, cwds):
    items = []
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c == "\\" and i + 1 < n and body[i + 1] in '$`"\\\n':
            if body[i + 1] != "\n":
                items.append(("q", body[i + 1]))
            i += 2
        elif c == "$":
            sub = []
            i = _dollar(body, i, sub, env, cwds)
            items.extend(("q", x[1]) if x[0] == "u" else x for x in sub)
        elif c == "`":
            j = body.find("`", i + 1)
            i = n if j < 0 else j + 1
            items.append(_RT)
        else:
            items.append(("q", c))
            i += 1
    return items


def _dollar(raw, i, items, env, cwds):
    n = len(raw)
    if raw.startswith("$((", i):
        items.append(_RT)
        return _scan_balanced(raw, i + 3, "(", ")") + 1 if i + 3 < n else n
    if raw.startswith("$(", i):
        items.append(_RT)
        return _scan_balanced(raw, i + 2, "(", ")")
    if raw.startswith("${", i):
        end = _scan_balanced(raw, i + 2, "{", "}")
        inner = raw[i + 2:end - 1]
        if inner.replace("_", "a").isalnum() and not inner[:1].isdigit():
            items.append(_param(inner, env, cwds))
        else:
            items.append(_param_op(inner, env, cwds))
        return end
    j = i + 1
    if j < n and (raw[j].isalpha() or raw[j] == "_"):
        while j < n and (raw[j].isalnum() or raw[j] == "_"):
            j += 1
        items.append(_param(raw[i + 1:j], env, cwds))
        return j
    if j < n and raw[j] in "0123456789@*#?$!-":
        items.append(_RT)
        return j + 1
    items.append(("u", "$"))
    return j


def _brace_expand(items, limit=MAX_WORDS):
    """Bash brace expansion (and parameter alternatives) over items; list of item lists."""
    out = []
    _brace_into(items, out, limit, 0)
    return out


def _brace_into(items, out, limit, start):
    for idx in range(start, len(items)):
        it = items[idx]
        if it != ("u", "{"):
            continue
        depth, commas, end = 0, [], None
        for j in range(idx + 1, len(items)):
            x = items[j]
            if x == ("u", "{"):
                depth += 1
            elif x == ("u", "}"):
                if depth == 0:
                    end = j
                    break
                depth -= 1
            elif x == ("u", ",") and depth == 0:
                commas.append(j)
        if end is None:
            continue
        if commas:
            bounds = [idx] + commas + [end]
            alts = [items[bounds[k] + 1:bounds[k + 1]] for k in range(len(bounds) - 1)]
        else:
            alts = _sequence(items[idx + 1:end])
            if alts is None:
                continue
        for alt in alts:
            _brace_into(items[:idx] + alt + items[end + 1:], out, limit, idx)
            if len(out) > limit:
                raise _TooMany()
        return
    out.append(items)
    if len(out) > limit:
        raise _TooMany()


def _sequence(inner):
    """``x..y[..incr]`` of integers or single letters (bash manual, "Brace Expansion"), else None."""
    if any(k != "u" for k, _ in inner):
        return None
    import re

    text = "".join(c for _, c in inner)
    m = re.fullmatch(r"(-?\d+|[A-Za-z])\.\.(-?\d+|[A-Za-z])(?:\.\.(-?\d+))?", text)
    if not m:
        return None
    a, b, inc = m.group(1), m.group(2), abs(int(m.group(3) or 1)) or 1
    if a.lstrip("-").isdigit() != b.lstrip("-").isdigit():
        return None
    if a.lstrip("-").isdigit():
        x, y = int(a), int(b)
        if abs(y - x) // inc > MAX_WORDS:
            raise _TooMany()
        width = max(len(a), len(b)) if (a.lstrip("-").startswith("0") and len(a.lstrip("-")) > 1) or (
            b.lstrip("-").startswith("0") and len(b.lstrip("-")) > 1) else 0
        step = inc if y >= x else -inc
        values = [str(v).zfill(width) if v >= 0 else "-" + str(-v).zfill(width - 1)
                  for v in range(x, y + (1 if step > 0 else -1), step)]
    else:
        x, y = ord(a), ord(b)
        step = inc if y >= x else -inc
        values = [chr(v) for v in range(x, y + (1 if step > 0 else -1), step)]
    return [_lit(v) for v in values]


class _Word:
    """One word after brace expansion: its items, its static text (None if a pattern or if
    it has several values), flags. ``alts``: every value the word may have (a parameter
    assigned here may hold each value it was given, or run-time text); ``items`` is the first."""

    __slots__ = ("items", "text", "glob", "rt", "alts")

    def __init__(self, items, alts=None):
        self.items = items
        self.alts = alts or [items]
        self.rt = any(k == "r" for k, _ in items)
        self.glob = any(k == "u" and c in "*?[" for k, c in items) or _has_extglob(items)
        single = len(self.alts) == 1
        self.text = None if (self.rt or self.glob or not single) else "".join(c for _, c in items)

    def each(self):
        """The word once per value it may have (list of _Word)."""
        return [self] if len(self.alts) == 1 else [_Word(a) for a in self.alts]


def _alternatives(items, limit=64):
    """Expand parameter alternatives (('alt', [items...]) items) into item lists."""
    out = [[]]
    for it in items:
        if it[0] == "alt":
            out = [o + list(a) for o in out for a in it[1]][:limit]
        else:
            for o in out:
                o.append(it)
    return out


def _has_extglob(items):
    return any(items[i][0] == "u" and items[i][1] in "?*+@!" and items[i + 1] == ("u", "(")
               for i in range(len(items) - 1))


def _words(raw, env, cwds, assignment=False):
    try:
        words = []
        for b in _brace_expand(_tokens(raw, env, cwds, assignment)):
            alts = _alternatives(b)
            words.append(_Word(alts[0], alts))
        return words
    except _TooMany:
        return [_Word([_RT])]  # more words than are checked: run-time text, and the command is noted below


# ---------------------------------------------------------------- patterns


def _split(items):
    comps, cur = [], []
    for it in items:
        if it[1] == "/" and it[0] in "uq":
            comps.append(cur)
            cur = []
        else:
            cur.append(it)
    comps.append(cur)
    return comps


def _is(comp, text):
    return len(comp) == len(text) and all(k in "uq" and c == t for (k, c), t in zip(comp, text))


def _components(items, cwd):
    """Normalised components of a word's path, and whether the start is unknown (anywhere)."""
    comps = _split(items)
    if comps and comps[0] == [] and len(comps) > 1:
        base, anywhere = [], False
        comps = comps[1:]
    elif comps and comps[0] and comps[0][0][0] == "r":
        base, anywhere = [], True
    elif cwd is None:
        base, anywhere = [[_RT]], True
    else:
        base, anywhere = [_lit(p) for p in cwd.split("/") if p], False
    if not base and not anywhere:
        parts = [c for c in comps if c != [] and not _is(c, ".")]
        if len(parts) >= 3 and _is(parts[0], "proc") and (_is(parts[2], "cwd") or _is(parts[2], "root")):
            # /proc/self/cwd is the shell's own folder, /proc/PID/root its root (proc(5)).
            own = _is(parts[1], "self") or _is(parts[1], "thread-self")
            if _is(parts[2], "root"):
                comps = parts[3:] if own else [[_RT]] + parts[3:]
            elif own and cwd is not None:
                comps = parts[3:]
                base = [_lit(p) for p in cwd.split("/") if p]
            else:
                comps = [[_RT]] + parts[3:]
    out = list(base)
    for comp in comps:
        if comp == [] or _is(comp, "."):
            continue
        if _is(comp, ".."):
            if out and not any(k == "r" for k, _ in out[-1]):
                out.pop()
            elif out:
                out.append([_RT])
            continue
        out.append(comp)
    return out, anywhere


def _comp_regex(comp, env, first=True):
    import re

    out = []
    i, n = 0, len(comp)
    while i < n:
        k, c = comp[i]
        guard = "(?!\\.)" if i == 0 and first and not env.dotglob else ""
        if k == "r":
            out.append(".*")
        elif k == "u" and c in "?*+@!" and i + 1 < n and comp[i + 1] == ("u", "("):
            close, depth, bars = None, 0, []
            for j in range(i + 2, n):
                if comp[j] == ("u", "("):
                    depth += 1
                elif comp[j] == ("u", ")"):
                    if depth == 0:
                        close = j
                        break
                    depth -= 1
                elif comp[j] == ("u", "|") and depth == 0:
                    bars.append(j)
            if close is None:
                out.append(re.escape(c))
                i += 1
                continue
            if c == "!":
                out.append(guard + "[^/]*")
            else:
                bounds = [i + 1] + bars + [close]
                alts = [_comp_regex(comp[bounds[x] + 1:bounds[x + 1]], env, False) for x in range(len(bounds) - 1)]
                out.append(guard + "(?:" + "|".join(alts) + ")" + {"?": "?", "*": "*", "+": "+", "@": ""}[c])
            i = close + 1
            continue
        elif k == "u" and c == "*":
            out.append(guard + "[^/]*")
        elif k == "u" and c == "?":
            out.append(guard + "[^/]")
        elif k == "u" and c == "[":
            cls = _bracket(comp, i + 1)
            if cls is None:
                out.append("\\[")
            else:
                text, i = cls
                out.append(guard + text)
                continue
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _bracket(comp, i):
    """A bracket expression from ``comp[i]`` (just after ``[``): (regex class, next index) or None.

    Character classes (``[:alpha:]``), equivalence classes and collating symbols match
    any one character but ``/`` here (a superset: enough to say what a pattern may match)."""
    j, n = i, len(comp)
    neg = False
    if j < n and comp[j][1] in "!^":
        neg = True
        j += 1
    body = []
    first = True
    wide = False
    while j < n:
        c = comp[j][1]
        if c == "[" and j + 1 < n and comp[j + 1][1] in ":=.":
            kind = comp[j + 1][1]
            k = j + 2
            while k + 1 < n and not (comp[k][1] == kind and comp[k + 1][1] == "]"):
                k += 1
            if k + 1 < n:
                wide = True
                j = k + 2
                first = False
                continue
        if c == "]" and not first:
            if wide:
                return "[^/]", j + 1
            return "[" + ("^/" if neg else "") + "".join(body) + "]", j + 1
        body.append("\\" + c if c in "\\^[]-" and not (c == "-" and body and not first) else c)
        first = False
        j += 1
    return None


class _Target:
    """A word resolved for one folder: the regexes of its path's first k components."""

    __slots__ = ("prefixes", "static", "word", "simple")

    def __init__(self, word, cwd, env):
        comps, anywhere = _components(word.items, cwd)
        self.word = word
        self.static = None
        self.prefixes = []
        self.simple = None
        if not word.rt and not word.glob and not anywhere:
            # A plain path: compared as text (no ``re`` on the hook's common path).
            self.static = "/" + "/".join("".join(c for _, c in comp) for comp in comps)
            return
        if not word.rt and not anywhere and not _has_extglob(word.items) and not env.nocase:
            # Globs only: matched part by part by hand (importing ``re`` or ``glob`` costs
            # several ms per hook process; bench/hook_startup.py).
            self.simple = [_glob_tokens(comp, env) for comp in comps]
            return
        import re

        flags = re.IGNORECASE if env.nocase else 0
        text = ""
        for comp in comps:
            if comp == [_RT]:
                text += "(?:/.*)?"
                self.prefixes.append(None)
                continue
            text += "/" + _comp_regex(comp, env)
            only_rt = all(k == "r" for k, _ in comp)
            self.prefixes.append(None if only_rt else re.compile(text, flags))
        if not comps:
            self.prefixes.append(re.compile("/", flags))


def _ancestors(path):
    out = []
    while True:
        parent = os.path.dirname(path)
        if parent == path:
            return out
        out.append(parent)
        path = parent


def _hit(word, cwds, env, tree=False):
    """The protected path ``word`` may name or lie under (``tree``: or lie above), else None."""
    if len(word.alts) > 1:
        for w in word.each():
            hit = _hit(w, cwds, env, tree)
            if hit:
                return hit
        return None
    if not word.items:
        return None
    protected = env.protected
    every = protected.resolved()
    for cwd in cwds:
        t = _Target(word, cwd, env)
        if t.static is not None:
            hit = _static_hit(t.static, protected, every, tree)
            if hit:
                return hit
            continue
        if t.simple is not None:
            hit = _simple_hit(t.simple, every, tree)
            if hit:
                return hit
            if cwd is not None:
                hit = _fs_expand_hit(t.simple, protected, every, tree)
                if hit:
                    return hit
            continue
        regexes = [r for r in t.prefixes if r is not None]
        if not regexes:
            continue
        last = t.prefixes[-1]
        for p in every:
            for r in regexes:
                if r.fullmatch(p) and (r is last or not _is_file(p)):
                    return p
            if tree and last is not None:
                for a in _ancestors(p):
                    if last.fullmatch(a):
                        return p
    return None


def _static_hit(path, protected, every, tree):
    from drygate.classifiers.protect import path_above as _above, path_under as _under

    path = os.path.normpath(path)
    hit = _under(path, every)
    if hit:
        return hit
    real = os.path.realpath(path)
    hit = _under(real, every)
    if hit:
        return hit
    if tree:
        hit = _above(path, every) or _above(real, every)
        if hit:
            return hit
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return protected.inodes().get((st.st_dev, st.st_ino))


def _glob_tokens(comp, env):
    """One path part as tokens for :func:`_glob_match`: ('c', ch), ('*',), ('?',), ('[', neg, test)."""
    toks = []
    i, n = 0, len(comp)
    while i < n:
        k, c = comp[i]
        if k == "u" and c == "*":
            toks.append(("*",))
        elif k == "u" and c == "?":
            toks.append(("?",))
        elif k == "u" and c == "[":
            parsed = _bracket_set(comp, i + 1)
            if parsed is None:
                toks.append(("c", "["))
            else:
                neg, chars, ranges, wide, i = parsed
                toks.append(("[", neg, chars, ranges, wide))
                continue
        else:
            toks.append(("c", c))
        i += 1
    return (toks, env.dotglob)


def _bracket_set(comp, i):
    j, n = i, len(comp)
    neg = False
    if j < n and comp[j][1] in "!^":
        neg = True
        j += 1
    chars, ranges, wide, first = set(), [], False, True
    while j < n:
        c = comp[j][1]
        if c == "[" and j + 1 < n and comp[j + 1][1] in ":=.":
            kind = comp[j + 1][1]
            k = j + 2
            while k + 1 < n and not (comp[k][1] == kind and comp[k + 1][1] == "]"):
                k += 1
            if k + 1 < n:
                wide = True
                j = k + 2
                first = False
                continue
        if c == "]" and not first:
            return neg, chars, ranges, wide, j + 1
        if j + 2 < n and comp[j + 1][1] == "-" and comp[j + 2][1] != "]":
            ranges.append((c, comp[j + 2][1]))
            j += 3
        else:
            chars.add(c)
            j += 1
        first = False
    return None


def _glob_match(pattern, name):
    """Does one path part ``name`` match ``pattern`` (from :func:`_glob_tokens`)? Bash's rules:
    a leading ``.`` must be matched by a literal ``.`` unless dotglob is set."""
    toks, dotglob = pattern
    if name.startswith(".") and not dotglob and toks and toks[0][0] != "c":
        return False
    if name in (".", ".."):
        return all(t[0] == "c" for t in toks) and "".join(t[1] for t in toks) == name
    memo = {}

    def m(ti, ni):
        key = (ti, ni)
        if key in memo:
            return memo[key]
        if ti == len(toks):
            r = ni == len(name)
        else:
            t = toks[ti]
            if t[0] == "*":
                r = m(ti + 1, ni) or (ni < len(name) and m(ti, ni + 1))
            elif ni >= len(name):
                r = False
            elif t[0] == "?":
                r = m(ti + 1, ni + 1)
            elif t[0] == "c":
                r = t[1] == name[ni] and m(ti + 1, ni + 1)
            else:
                _, neg, chars, ranges, wide = t
                ch = name[ni]
                inside = wide or ch in chars or any(a <= ch <= b for a, b in ranges)
                r = (inside != neg) and m(ti + 1, ni + 1)
        memo[key] = r
        return r

    return m(0, 0)


def _parts_match(patterns, parts):
    return len(patterns) == len(parts) and all(_glob_match(p, x) for p, x in zip(patterns, parts))


def _simple_hit(patterns, every, tree):
    """Glob parts (no run-time text) against the protected paths: names one, lies under one,
    or (``tree``) lies above one."""
    for p in every:
        parts = [x for x in p.split("/") if x]
        if len(patterns) <= len(parts) and _parts_match(patterns, parts[:len(patterns)]):
            if len(patterns) == len(parts) or tree:
                return p
        if len(patterns) > len(parts) and not _is_file(p) and _parts_match(patterns[:len(parts)], parts):
            return p  # a path below p: only when p is (or may become) a folder
    return None


_FILES = {}


def _is_file(path):
    """True when ``path`` exists and is not a folder: nothing can lie below it."""
    known = _FILES.get(path)
    if known is None:
        known = _FILES[path] = os.path.exists(path) and not os.path.isdir(path)
    return known


def _fs_expand_hit(patterns, protected, every, tree, limit=256):
    """Expand glob parts on the file system and check each match as a plain path: a glob
    that matches a symlink or hard link to a protected file."""
    for path in _fs_expand(patterns, limit):
        hit = _static_hit(path, protected, every, tree)
        if hit:
            return hit
    return None


def _fs_expand(patterns, limit=256):
    """The existing paths that glob parts match (at most ``limit``; no ``glob`` import)."""
    paths = ["/"]
    for pat in patterns:
        literal = all(t[0] == "c" for t in pat[0])
        nxt = []
        for base in paths[:64]:  # at most 64 folders listed per path part
            if literal:
                nxt.append(os.path.join(base, "".join(t[1] for t in pat[0])))
                continue
            try:
                with os.scandir(base) as it:
                    for entry in it:
                        if _glob_match(pat, entry.name):
                            nxt.append(os.path.join(base, entry.name))
                            if len(nxt) > limit:
                                break
            except (OSError, ValueError):
                continue
        paths = nxt[:limit]
        if not paths:
            return []
    return [p for p in paths if os.path.lexists(p)]


# ---------------------------------------------------------------- the walk


class _State:
    """Folders the shell may be in (frozenset of str, None = unknown) and the pushd stack."""

    __slots__ = ("cwds", "stack")

    def __init__(self, cwds, stack=()):
        self.cwds = frozenset(cwds) if len(cwds) <= 8 else frozenset(list(cwds)[:7]) | {None}
        self.stack = stack

    def union(self, other):
        return _State(self.cwds | other.cwds, self.stack if self.stack == other.stack else ())


class Tamper(Exception):
    """Raised inside the walk with the reason a command could change a protected path."""


def find_tamper(command, protected, cwd):
    """The reason (str) shell ``command`` could change a path in ``protected``, or None.

    ``protected``: :class:`drygate.classifiers.protect.ProtectedPaths`; ``cwd``: the
    folder the command starts in (absolute str). Never raises for odd input.
    """
    if not isinstance(command, str) or not command.strip():
        return None
    env = _Env(protected, cwd, command)
    try:
        _script(command, _State({os.path.normpath(cwd)}), env)
    except Tamper as t:
        return str(t)
    except RecursionError:
        return "the command nests too deeply to check it against the gate's files"
    return None


def _script(text, state, env):
    from drygate.classifiers import bash_parser

    env.depth += 1
    try:
        if env.depth > MAX_DEPTH:
            raise Tamper("the command nests code too deeply to check it against the gate's files")
        try:
            root = bash_parser.parse(text)
        except Exception:
            root = None
        if root is None or root.has_error:
            _opaque(text, env, "shell text the parser cannot read")
            _fallback(text, state, env)
        if root is not None:
            return _seq(root.named_children, state, env)
        return state, state
    finally:
        env.depth -= 1


def _segments(text):
    """Split shell text at ``;``, ``&``, ``|`` and newlines outside quotes and parentheses."""
    out, cur, i, n, depth = [], [], 0, len(text), 0
    while i < n:
        c = text[i]
        if c == "\\":
            cur.append(text[i:i + 2])
            i += 2
            continue
        if c == "'":
            j = text.find("'", i + 1)
            j = n if j < 0 else j + 1
            cur.append(text[i:j])
            i = j
            continue
        if c == '"':
            j = _scan_dquote(text, i + 1)
            cur.append(text[i:j])
            i = j
            continue
        if c == "(":
            depth += 1
        elif c == ")" and depth:
            depth -= 1
        elif depth == 0 and c in ";&|\n":
            out.append("".join(cur))
            cur = []
            i += 1
            continue
        cur.append(c)
        i += 1
    out.append("".join(cur))
    return [x for x in out if x.strip()]


def _fallback(text, state, env):
    """For text the grammar cannot read (extglob groups, for one): each segment as one
    simple command, its ``>`` targets as written files. The folder is not followed
    (every folder seen so far counts, and an unknown one after a cd)."""
    import re

    for segment in _segments(text):
        words = _split_raw(segment.strip())
        argv_raw, targets = [], []
        k = 0
        while k < len(words):
            w = words[k]
            m = re.match(r"^[0-9]*(?:&>>|&>|>>|>\||>|<>)(.*)$", w)
            if m:
                target = m.group(1) or (words[k + 1] if k + 1 < len(words) else "")
                k += 1 if m.group(1) else 2
                targets.append(target)
                continue
            if re.match(r"^[0-9]*<", w):
                k += 1 if len(w.lstrip("0123456789")) > 1 else 2
                continue
            argv_raw.append(w)
            k += 1
        if argv_raw and argv_raw[0] in ("cd", "pushd", "popd"):
            state = _State(state.cwds | {None}, state.stack)
            continue
        for target in targets:
            for word in _words(target, env, state.cwds):
                hit = _hit(word, state.cwds, env)
                if hit:
                    raise Tamper(f"the redirection to {target!r} writes {hit}, which protects the gate")
        argv = []
        for raw in argv_raw:
            argv.extend(_words(raw, env, state.cwds))
        while argv and argv[0].text is not None and "=" in argv[0].text and not argv[0].text.startswith("-"):
            argv.pop(0)
        _run(argv, state, env)


#: Text in other languages' code that reaches drygate's own code (its CLI changes the policy,
#: the installation and the state, and records its writes as its own).
_DRYGATE_CODE = ("import drygate", "from drygate", "drygate.cli", "-m drygate", "drygate/cli")


def _opaque(text, env, what):
    """Code drygate cannot read statically: tamper if it names a protected marker."""
    for marker in _DRYGATE_CODE:
        if marker in text:
            raise Tamper(f"{what} reaches drygate's own code ({marker!r}), which protects the gate")
    for marker in env.protected.markers:
        if marker in text:
            raise Tamper(f"{what} mentions {marker!r}, which protects the gate")


def _seq(nodes, state, env):
    ok = state
    anyst = state
    for node in nodes:
        if node.type in ("comment", "heredoc_body", "heredoc_end"):
            continue
        ok, anyst = _node(node, anyst, env)
    return ok, anyst


def _node(node, state, env):
    """Walk one node; returns (state if it succeeded, state whatever happened)."""
    kind = node.type
    if kind == "list":
        return _list(node, state, env)
    if kind == "command":
        return _command(node, state, env, [])
    if kind == "redirected_statement":
        return _redirected(node, state, env)
    if kind in ("subshell", "pipeline", "command_substitution", "process_substitution"):
        for child in node.named_children:
            _node(child, state, env)
        return state, state
    if kind in ("program", "compound_statement", "do_group", "if_statement", "elif_clause", "else_clause",
                "while_statement", "case_statement", "case_item", "negated_command", "test_command",
                "c_style_for_statement"):
        ok, anyst = _seq(node.named_children, state, env)
        if kind in ("program", "compound_statement", "negated_command"):
            return ok, anyst
        return anyst.union(state), anyst.union(state)
    if kind == "for_statement":
        return _for(node, state, env)
    if kind == "function_definition":
        for child in node.named_children:
            _node(child, _State(state.cwds | {None}), env)
        return state, state
    if kind == "variable_assignment":
        _assignment(node, state, env)
        return state, state
    if kind == "variable_assignments":
        for child in node.named_children:
            _node(child, state, env)
        return state, state
    if kind == "declaration_command":
        _declaration(node, state, env)
        return state, state
    if kind == "unset_command":
        for child in node.named_children:
            if child.type in ("variable_name", "word") and child.text.decode("utf-8", "replace").startswith("DRYGATE_"):
                raise Tamper(f"unset {child.text.decode()} changes drygate's environment, which protects the gate")
            _nested(child, state, env, True)  # unset 'a[...]' evaluates the subscript
        return state, state
    _nested(node, state, env)
    return state, state


def _list(node, state, env):
    children = node.children
    ok, anyst = _node(children[0], state, env)
    i = 1
    while i + 1 < len(children):
        op = children[i].type
        right = children[i + 1]
        if op == "&&":
            r_ok, r_any = _node(right, ok, env)
            ok, anyst = r_ok, anyst.union(r_any)
        elif op == "||":
            r_ok, r_any = _node(right, anyst, env)
            ok, anyst = ok.union(r_ok), anyst.union(r_any)
        else:
            ok, anyst = _node(right, anyst, env)
        i += 2
    return ok, anyst


def _redirected(node, state, env):
    body = None
    redirects = []
    for child in node.named_children:
        if child.type in ("file_redirect", "heredoc_redirect", "herestring_redirect"):
            redirects.append(child)
        elif body is None:
            body = child
        else:
            _nested(child, state, env)
    if body is not None and body.type == "command":
        ok, anyst = _command(body, state, env, redirects)
        return ok, anyst
    ok, anyst = _node(body, state, env) if body is not None else (state, state)
    _redirects(redirects, anyst.union(state), env, None)
    return ok, anyst


def _redirects(redirects, state, env, argv0):
    for r in redirects:
        if r.type == "file_redirect":
            op = None
            target = None
            for child in r.children:
                if child.type in _OUT_REDIRECTS or child.type in ("<", "<&", ">&-", "<&-"):
                    op = child.type
                elif child.is_named and child.type != "file_descriptor":
                    target = child
            if target is None:
                continue
            _nested(target, state, env)
            if op in _OUT_REDIRECTS:
                raw = target.text.decode("utf-8", "replace")
                if op == ">&" and (raw.isdigit() or raw == "-"):
                    continue
                for word in _words(raw, env, state.cwds):
                    hit = _hit(word, state.cwds, env)
                    if hit:
                        raise Tamper(f"the redirection to {raw!r} writes {hit}, which protects the gate")
        elif r.type == "heredoc_redirect":
            body = next((c for c in r.named_children if c.type == "heredoc_body"), None)
            if body is not None:
                _nested(body, state, env)
                _fed_code(argv0, body.text.decode("utf-8", "replace"), state, env)
        elif r.type == "herestring_redirect":
            for child in r.named_children:
                _nested(child, state, env)
                raw = child.text.decode("utf-8", "replace")
                words = _words(raw, env, state.cwds)
                text = words[0].text if len(words) == 1 and words[0].text is not None else raw
                _fed_code(argv0, text, state, env)


def _fed_code(argv0, text, state, env):
    """Text fed on standard input to ``argv0`` (a here-document or here-string)."""
    name = _name(argv0)
    if name in SHELLS:
        _script(text, state, env)
    elif name in INTERPRETERS or name is None:
        _opaque(text, env, f"the code fed to {name or 'a command only known at run time'}")


def _name(word):
    if word is None or word.text is None:
        return None
    base = os.path.basename(word.text)
    if base.startswith("python") and base[6:].replace(".", "").isdigit():
        return "python3"
    return base


def _nested(node, state, env, evaluate=True):
    """Code inside a node: substitutions (walked in a copy of ``state``), and quoted text
    that holds ``$(``, a backtick or ``<(``/``>(`` where bash evaluates it (``evaluate``,
    and always inside ``${...}``, subscripts and arithmetic: arithmetic contexts and name
    operands evaluate it even in single quotes)."""
    stack = [(node, evaluate)]
    while stack:
        n, ev = stack.pop()
        kind = n.type
        if kind in ("command_substitution", "process_substitution"):
            for child in n.named_children:
                _node(child, state, env)
            continue
        if kind in _EVALUATED_NODES:
            ev = True
        if kind == "expansion" and not any(c.type in ("command_substitution", "process_substitution")
                                           for c in n.children):
            # The word of ${x#word}, ${x/p/r}, ${x:-word}... is expanded too; the grammar
            # leaves a backquote or $( there as plain text (a "regex" node).
            for code in _substitutions_in_text(n.text.decode("utf-8", "replace")[2:-1]):
                _script(code, state, env)
        if ev and kind in ("raw_string", "string", "ansi_c_string", "word"):
            text = n.text.decode("utf-8", "replace")
            if kind == "raw_string":
                text = text[1:-1]
            elif kind == "ansi_c_string":
                text = _ansi_c(text[2:-1])
            if "$(" in text or "`" in text or "<(" in text or ">(" in text:
                if kind in ("raw_string", "ansi_c_string") or not any(
                        c.type in ("command_substitution", "process_substitution") for c in n.children):
                    _script(text, state, env)
        stack.extend((c, ev) for c in n.children)


def _substitutions_in_text(text):
    """The code of each ``$(...)``, backquoted and ``<(...)``/``>(...)`` part of ``text``."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "`":
            j = i + 1
            while j < n and text[j] != "`":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i + 1:j])
            i = j + 1
            continue
        if (c == "$" or c in "<>") and text.startswith("(", i + 1) and not text.startswith("((", i + 1):
            end = _scan_balanced(text, i + 2, "(", ")")
            out.append(text[i + 2:end - 1])
            i = end
            continue
        i += 1
    return out


#: Nodes whose text bash evaluates as arithmetic or a name (bash manual, "Shell Arithmetic",
#: "Arrays", "Shell Parameter Expansion" offsets and lengths).
_EVALUATED_NODES = frozenset(("expansion", "subscript", "arithmetic_expansion", "variable_assignment",
                              "test_command", "binary_expression", "unary_expression", "c_style_for_statement",
                              "compound_statement_arithmetic", "parenthesized_expression"))


def _assignment(node, state, env, declared=False):
    name_node = node.child_by_field_name("name") or (node.named_children[0] if node.named_children else None)
    name = name_node.text.decode("utf-8", "replace") if name_node is not None else ""
    if name.startswith("DRYGATE_") or name in HOST_ENV:
        raise Tamper(f"assigning {name} changes drygate's or the host's environment, which protects the gate")
    _nested(node, state, env)
    value = node.child_by_field_name("value")
    if name_node is not None and name_node.type == "variable_name":
        if value is None:
            env.vars[name] = [[]]
        elif value.type == "array":  # a=(x y): every element is a value of a, ${a[i]}, ${a[@]}
            for element in value.named_children:
                text = element.text.decode("utf-8", "replace")
                texts = [text]
                # bash manual, Arrays: a compound assignment's element may be [subscript]=value
                # (also +=), in indexed and associative (declare -A) arrays alike
                import re

                keyed = re.match(r"\[[^\]]*\]\+?=", text)
                if keyed:
                    texts.append(text[keyed.end():])
                for t in texts:
                    words = _words(t, env, state.cwds)
                    env.vars[name] = env.vars.get(name, []) + [a for w in words for a in w.alts]
        else:
            raw = value.text.decode("utf-8", "replace")
            words = _words(raw, env, state.cwds, assignment=True)
            env.vars[name] = env.vars.get(name, []) + [a for w in words for a in w.alts]


def _declaration(node, state, env):
    for child in node.named_children:
        if child.type == "variable_assignment":
            _assignment(child, state, env, True)
        else:
            text = child.text.decode("utf-8", "replace")
            if text.startswith("DRYGATE_"):
                raise Tamper(f"declaring {text} changes drygate's environment, which protects the gate")
            _nested(child, state, env)


def _for(node, state, env):
    var = node.child_by_field_name("variable")
    values = []
    body = None
    for child in node.named_children:
        if child is var:
            continue
        if child.type == "do_group":
            body = child
        else:
            _nested(child, state, env)
            for w in _words(child.text.decode("utf-8", "replace"), env, state.cwds):
                values.extend(w.alts)
    if var is not None:
        name = var.text.decode("utf-8", "replace")
        if name.startswith("DRYGATE_"):
            raise Tamper(f"assigning {name} changes drygate's environment, which protects the gate")
        env.vars[name] = env.vars.get(name, []) + (values or [[_RT]])
    if body is not None:
        _, anyst = _seq(body.named_children, state, env)
        return anyst.union(state), anyst.union(state)
    return state, state


def _split_raw(text):
    """Split a command's raw text into words (quotes, substitutions and extglob groups kept whole)."""
    words, cur, i, n, depth = [], [], 0, len(text), 0
    while i < n:
        c = text[i]
        if c in " \t\n" and depth == 0:
            if cur:
                words.append("".join(cur))
                cur = []
            i += 1
            continue
        if c == "\\":
            cur.append(text[i:i + 2])
            i += 2
            continue
        if c == "'":
            j = text.find("'", i + 1)
            j = n if j < 0 else j + 1
            cur.append(text[i:j])
            i = j
            continue
        if c == '"':
            j = _scan_dquote(text, i + 1)
            cur.append(text[i:j])
            i = j
            continue
        if c == "(":
            depth += 1
        elif c == ")" and depth:
            depth -= 1
        cur.append(c)
        i += 1
    if cur:
        words.append("".join(cur))
    return words


def _command(node, state, env, redirects):
    """One simple command: its words, its redirections, its role."""
    raw_words = []
    herestrings = []
    broken = _has_error(node)
    names = [c.text.decode("utf-8", "replace") for c in node.named_children if c.type in ("command_name", "word")]
    evaluate = not names or not names[0] or any(n in EVALUATING or n.startswith("$") for n in names) or \
        any(c in names[0] for c in "$`'\"\\")
    for child in node.named_children:
        kind = child.type
        if kind == "variable_assignment":
            _assignment(child, state, env)
            continue
        if kind == "herestring_redirect":
            herestrings.append(child)
            continue
        if kind == "file_redirect" or kind == "heredoc_redirect":
            redirects = list(redirects) + [child]
            continue
        _nested(child, state, env, evaluate)
        if kind == "command_name":
            raw_words.append(child.text.decode("utf-8", "replace"))
        elif not broken:
            raw_words.append(child.text.decode("utf-8", "replace"))
    if broken:
        text = node.text.decode("utf-8", "replace")
        raw_words = [w for w in _split_raw(text)]
        while raw_words and "=" in raw_words[0] and not raw_words[0].startswith(("=", "-")) and \
                raw_words[0].split("=", 1)[0].replace("_", "a").isalnum():
            raw_words.pop(0)
    argv = []
    for raw in raw_words:
        argv.extend(_words(raw, env, state.cwds))
        if len(argv) > MAX_WORDS:
            raise Tamper(f"the command has more than {MAX_WORDS} words, too many to check against the gate's files")
    ok, anyst = _run(argv, state, env, _stdin(redirects + herestrings, env, state))
    _redirects(redirects + herestrings, anyst.union(state), env, _inner_name_word(argv))
    return ok, anyst


def _stdin(redirects, env, state):
    """What a command reads on standard input from its own redirections (the last one wins)."""
    found = None
    for r in redirects:
        if r.type == "file_redirect" and any(c.type == "<" for c in r.children):
            target = next((c for c in r.named_children if c.type != "file_descriptor"), None)
            if target is not None:
                words = _words(target.text.decode("utf-8", "replace"), env, state.cwds)
                found = ("file", words[0]) if len(words) == 1 else None
        elif r.type == "heredoc_redirect":
            body = next((c for c in r.named_children if c.type == "heredoc_body"), None)
            found = ("text", body.text.decode("utf-8", "replace") if body is not None else "")
        elif r.type == "herestring_redirect":
            child = r.named_children[-1] if r.named_children else None
            if child is not None:
                words = _words(child.text.decode("utf-8", "replace"), env, state.cwds)
                found = ("text", words[0].text) if len(words) == 1 and words[0].text is not None else None
    return found


def _has_error(node):
    stack = [node]
    while stack:
        n = stack.pop()
        if n.type == "ERROR" or n.is_missing:
            return True
        stack.extend(n.children)
    return False


def _inner_name_word(argv):
    """The command a wrapper runs (``sudo -u x bash`` -> ``bash``), for here-documents."""
    i = 0
    while i < len(argv):
        name = _name(argv[i])
        if name in WRAPPERS:
            i = _skip_wrapper(argv, i)
            continue
        return argv[i]
    return None


def _skip_wrapper(argv, i):
    name = _name(argv[i])
    takes = WRAPPERS[name]
    i += 1
    while i < len(argv):
        t = argv[i].text
        if t is None:
            return i
        if name == "env" and "=" in t and not t.startswith("-"):
            if t.startswith("DRYGATE_") or t.split("=", 1)[0] in HOST_ENV:
                raise Tamper(f"env {t} changes drygate's environment, which protects the gate")
            i += 1
            continue
        if t == "--":
            return i + 1
        if t.startswith("-") and len(t) > 1:
            i += 2 if t in takes else 1
            continue
        if name == "timeout" or (name in ("nice", "chrt", "taskset") and t.lstrip("-").replace(".", "").isdigit()):
            i += 1
            if name == "timeout":
                return i
            continue
        return i
    return i


_ALIASES = {"7za": "7z", "7zr": "7z", "7zz": "7z", "gtar": "tar", "gpatch": "patch", "mawk": "awk"}


def _read_only(name, args):
    """True when ``name`` only reads its operands (READ_ONLY, no option of READ_ONLY_UNLESS).

    An awk program that redirects output, pipes, runs ``system`` or is edited in place
    (gawk ``-i inplace``) may write the files it reads (gawk manual, "Redirecting Output")."""
    if name not in READ_ONLY:
        return False
    if name in _PROGRAM_FIRST and name != "sed":
        if any((w.text or "").startswith(("-i", "--include", "-f", "--file")) for w in args):
            return False
        program = next((w for w in args if not (w.text or "-").startswith("-")), None)
        if program is None or program.text is None or any(x in program.text for x in (">", "|", "system")):
            return False
    unsafe = READ_ONLY_UNLESS.get(name, ())
    for w in args:
        t = w.text
        if t is None or not t.startswith("-"):
            continue
        if any(t == u or t.startswith(u + "=") or (len(u) == 2 and not t.startswith("--") and u[1] in t[1:])
               for u in unsafe):
            return False
    if name in _SECOND_OPERAND_WRITES:
        return len([w for w in args if not (w.text or "").startswith("-")]) < 2
    return True


def _run(argv, state, env, stdin=None):
    """Decide one expanded command line; raises Tamper.

    ``stdin``: what the command reads on standard input: ("file", _Word), ("text", str),
    or None (a pipe, the terminal: unknown)."""
    _package_manager(argv)
    i = 0
    while i < len(argv) and _name(argv[i]) in WRAPPERS:
        name = _name(argv[i])
        if name == "env":
            for w in argv[i + 1:]:
                if w.text in ("-C", "--chdir"):
                    state = _State({None} | state.cwds)
        if name == "xargs":
            stdin = None
        if name == "env":
            for k, w in enumerate(argv[i + 1:], i + 1):
                t = w.text or ""
                if t in ("-S", "--split-string") and k + 1 < len(argv) and argv[k + 1].text is not None:
                    _script(argv[k + 1].text, state, env)
                elif t.startswith(("--split-string=", "-S")) and len(t) > 2 and not t.startswith("--s"):
                    _script(t[2:], state, env)
                elif t.startswith("--split-string="):
                    _script(t.split("=", 1)[1], state, env)
        i = _skip_wrapper(argv, i)
    argv = argv[i:]
    if not argv:
        return state, state
    name = _name(argv[0])
    name = _ALIASES.get(name, name)
    args = argv[1:]
    cwds = state.cwds
    if argv[0].text is None:
        if len(argv[0].alts) > 1 and env.depth < MAX_DEPTH:
            # A command name from a parameter assigned here: each value it may hold.
            for alt in argv[0].each():
                if alt.text is not None:
                    _run([alt] + args, state, env, stdin)
        _default(args, cwds, env, "a command only known at run time")
        return state, state
    if name in ("cd", "pushd", "popd", "chdir"):
        return _cd(name, args, state, env)
    python = name in ("python", "python2", "python3", "pypy", "pypy3")
    if name == "drygate" or (python and len(args) >= 2 and args[0].text == "-m"
                             and (args[1].text or "").split(".")[0] == "drygate"):
        rest = args[2:] if python else args
        sub = next((w.text for w in rest if w.text is None or not w.text.startswith("-") or w.text in DRYGATE_READS),
                   "--help" if not rest else None)
        if sub not in DRYGATE_READS:
            raise Tamper(f"`drygate {sub or '...'}` changes drygate's installation, policy or state, which protects "
                         f"the gate")
        return state, state
    if name in EVALUATING and any((w.text or "").startswith("DRYGATE_") for w in args):
        raise Tamper(f"{name} would set a DRYGATE_ variable, which changes drygate's environment and protects "
                     f"the gate")
    if name in HOST_CLI_NAMES:
        _host_cli(args)
    read_only = _read_only(name, args)
    if not read_only and "disableAllHooks" in " ".join(w.text or "" for w in args):
        raise Tamper("the command mentions 'disableAllHooks', which protects the gate")
    if name in SHELLS:
        _shell(args, state, env, name)
        return state, state
    if name == "eval" or name == "watch":
        code = " ".join(w.text for w in args if w.text is not None and not (name == "watch" and w.text.startswith("-")))
        if code:
            ok, anyst = _script(code, state, env)
            if name == "eval":  # eval runs in this shell: its cd stays
                return ok, anyst.union(state)
        return state, state
    if name == "ssh":
        _ssh(args, env)
        return state, state
    if name == "trap":
        ops = [w for w in args if not (w.text or "").startswith("-")]
        if ops and ops[0].text:
            _script(ops[0].text, state, env)
        return state, state
    if name == "alias":
        for w in args:
            if w.text and "=" in w.text:
                _script(w.text.split("=", 1)[1], state, env)
        return state, state
    if name in ("source", ".") and args:
        t = args[0].text
        for c in state.cwds:
            if t is None:
                break
            text = _read_regular(t if t.startswith("/") or c is None else os.path.join(c, t))
            if text is not None:
                ok, anyst = _script(text, state, env)  # sourced: its cd stays
                state = anyst.union(state)
        return state, state
    if name in _CODE_OPTION:
        for k, w in enumerate(args):
            if w.text == _CODE_OPTION[name] and k + 1 < len(args) and args[k + 1].text is not None:
                _script(args[k + 1].text, state, env)
    if name == "git":
        _git(args, state, env, stdin)
        return state, state
    if name in WHOLE_TREE and name not in ("cp", "rsync", "find"):
        _archive_or_patch(name, args, state, env, stdin)
    if name in INTERPRETERS:
        _interpreter(name, args, env)
    if name == "find":
        _find(args, state, env)
        return state, state
    if read_only:
        return state, state
    if name in DELETE:
        for w in _operands(args):
            _check(w, cwds, env, True, name)
        return state, state
    if name in MOVE:
        ops = _operands(args, ("-t", "--target-directory", "-S", "--suffix"))
        target = _option_value(args, ("-t", "--target-directory"))
        for w in ops:
            _check(w, cwds, env, True, name)
        dest = target or (ops[-1] if len(ops) >= 2 else None)
        if dest is not None:
            _check(dest, cwds, env, False, name)
            for src in ops if target else ops[:-1]:
                _check_joined(dest, src, cwds, env, name)
        return state, state
    if name in COPY:
        _copy(name, args, cwds, env)
        return state, state
    if name in RECURSIVE:
        recursive = any(w.text == "--recursive" or ((w.text or "").startswith("-") and not (w.text or "").startswith(
            "--") and "R" in (w.text or "")) for w in args)
        for w in args:
            _check(w, cwds, env, recursive, name)
        return state, state
    _default(args, cwds, env, name)
    return state, state


#: Package managers' subcommands that install, replace or remove a package (pipx, uv tool,
#: uv pip, pip): naming drygate (or forcing, or acting on every package) they replace the
#: gate's own code, so a later hook could answer anything.
_PACKAGE_SUBCOMMANDS = {
    "pipx": frozenset(("install", "uninstall", "reinstall", "runpip", "upgrade", "inject", "uninject",
                       "reinstall-all", "upgrade-all", "uninstall-all", "install-all")),
    "uv tool": frozenset(("install", "uninstall", "upgrade")),
    "uv pip": frozenset(("install", "uninstall", "sync")),
    "pip": frozenset(("install", "uninstall")),
}


def _own_roots():
    """drygate's package folder and the hook's environment (its virtual environment: pipx,
    uv tool, a venv; its import roots and interpreter, drygate.integrity.environment_paths):
    paths (str) a package manager must not install into. The hook runs with ``-I -S``, so
    ``sys.prefix`` does not name the virtual environment; the import roots do."""
    from drygate.integrity import environment_paths

    roots = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    try:
        roots += [os.path.normpath(p) for p in environment_paths()]
    except Exception:  # noqa: BLE001 - the package folder alone still holds
        pass
    return roots


def _into_own_environment(program, rest):
    """True when a package manager works on drygate's own environment: its program is that
    environment's pip or python (``<venv>/bin/pip install x``, ``<venv>/bin/python -m pip``),
    or an option points there (``--python``/``-p``, ``--target``/``-t``, ``--prefix``,
    ``--root``, ``--path``)."""
    candidates = [program] if os.sep in program else []
    for j, x in enumerate(rest):
        key, eq, val = x.partition("=")
        if key in ("--python", "-p", "--target", "-t", "--prefix", "--root", "--path", "--python-executable"):
            candidates.append(val if eq else (rest[j + 1] if j + 1 < len(rest) else ""))
    for c in candidates:
        if not c:
            continue
        real = os.path.normpath(os.path.abspath(os.path.expanduser(c)))  # a venv's bin/python is a symlink
        if any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in _own_roots()):
            return True
    return False


def _package_manager(argv):
    """Raise Tamper when ``argv`` has a package manager replace drygate's own code."""
    texts = [w.text or "" for w in argv]
    for k, t in enumerate(texts):
        base = os.path.basename(t)
        key = None
        if base == "pipx":
            key, rest = "pipx", texts[k + 1:]
        elif base == "uv" and k + 1 < len(texts) and texts[k + 1] in ("tool", "pip"):
            key, rest = f"uv {texts[k + 1]}", texts[k + 2:]
        elif base.startswith("pip") and base[3:].replace(".", "").isdigit() or base == "pip":
            key, rest = "pip", texts[k + 1:]
        elif base.startswith(("python", "pypy")) and texts[k + 1:k + 3] == ["-m", "pip"]:
            key, rest = "pip", texts[k + 3:]
        if key is None:
            continue
        sub = next((x for x in rest if not x.startswith("-")), None)
        if sub not in _PACKAGE_SUBCOMMANDS[key]:
            return
        named = any("drygate" in x for x in rest) or _into_own_environment(texts[k], rest)
        forced = any(x in ("--force", "-f", "--force-reinstall", "--reinstall") for x in rest)
        if named or sub.endswith("-all") or (forced and key != "pip"):
            raise Tamper(f"{key} {sub} would replace or remove drygate's own code, which protects the gate")
        return


def _host_cli(args):
    """``claude ...``: an option or subcommand that switches the gate off (HOST_CLI_OFF,
    HOST_CLI_WRITES) is tamper; a plain nested run is gated by the same settings."""
    for w in args:
        t = w.text
        if t is None:
            continue
        key = t.split("=", 1)[0]
        if key in HOST_CLI_OFF:
            raise Tamper(f"claude {key} {HOST_CLI_OFF[key]}, which switches the gate off")
    positional = [w.text for w in args if not (w.text or "-").startswith("-")]
    if positional and positional[0] in HOST_CLI_WRITES:
        reads = HOST_CLI_WRITES[positional[0]]
        second = positional[1] if len(positional) > 1 else None
        if not reads or second not in reads:
            raise Tamper(f"claude {positional[0]} {second or ''} changes the host's settings, MCP servers or plugins, "
                         f"which protect the gate".replace("  ", " "))


_SSH_TAKES = frozenset("-b -c -D -E -e -F -I -i -J -L -l -m -O -o -p -Q -R -S -W -w -B -P".split())


def _ssh(args, env):
    """ssh HOST COMMAND...: the command runs in a shell there, which may be this machine
    (ssh(1)); it is read as shell code in an unknown folder."""
    i = 0
    while i < len(args):
        t = args[i].text
        if t is None:
            return
        if t.startswith("-"):
            i += 2 if t in _SSH_TAKES else 1
            continue
        break
    rest = args[i + 1:]
    if rest and all(w.text is not None for w in rest):
        _script(" ".join(w.text for w in rest), _State({None}), env)


def _default(args, cwds, env, name):
    for w in args:
        _check(w, cwds, env, False, name)


def _variants(word):
    """The word, the value after ``=`` (``--out=F``, ``of=F``), an attached short option's value (``-oF``)."""
    items = word.items
    out = [word]
    for k, it in enumerate(items):
        if it == ("u", "=") or it == ("q", "="):
            out.append(_Word(items[k + 1:]))
            break
    if len(items) > 2 and items[0][1] == "-" and items[1][1] != "-":
        out.append(_Word(items[2:]))
    return out


def _check(word, cwds, env, tree, name):
    for v in (v for w in word.each() for v in _variants(w)):
        hit = _hit(v, cwds, env, tree)
        if hit:
            shown = word.text if word.text is not None else "".join(c if k != "r" else "$…" for k, c in word.items)
            raise Tamper(f"{name} {shown!r} would change {hit}, which protects the gate")


def _check_joined(dest, src, cwds, env, name):
    """``dest/basename(src)``: what a copy or move into a folder creates. A source pattern
    is expanded on the file system (bash passes what it matches)."""
    if len(dest.alts) > 1 or len(src.alts) > 1:
        for d in dest.each():
            for x in src.each():
                _check_joined(d, x, cwds, env, name)
        return
    if src.glob and not src.rt and not _has_extglob(src.items):
        for cwd in cwds:
            if cwd is None:
                continue
            comps, _ = _components(src.items, cwd)
            for match in _fs_expand([_glob_tokens(comp, env) for comp in comps]):
                _check_joined(dest, _Word(_lit(match)), cwds, env, name)
        return
    comps = _split(src.items)
    while comps and comps[-1] == []:
        comps.pop()
    if not comps:
        return
    joined = _Word(list(dest.items) + [("q", "/")] + comps[-1])
    hit = _hit(joined, cwds, env)
    if hit:
        raise Tamper(f"{name} into {dest.text or 'a folder'!r} would create {hit}, which protects the gate")


def _operands(args, takes_value=()):
    out, i, done = [], 0, False
    while i < len(args):
        t = args[i].text
        if not done and t == "--":
            done = True
        elif not done and t is not None and t in takes_value:
            i += 1
        elif not done and t is not None and t.startswith("-") and len(t) > 1:
            pass
        else:
            out.append(args[i])
        i += 1
    return out


def _option_value(args, names):
    for k, w in enumerate(args):
        t = w.text or ""
        if t in names and k + 1 < len(args):
            return args[k + 1]
        for n in names:
            if n.startswith("--") and t.startswith(n + "="):
                return _Word(_lit(t[len(n) + 1:]))
    return None


def _copy(name, args, cwds, env):
    takes = {"cp": ("-t", "--target-directory", "-S", "--suffix"), "install": ("-t", "-m", "-o", "-g", "-S",
             "--target-directory", "--mode", "--owner", "--group"), "ln": ("-t", "-S", "--target-directory"),
             "scp": ("-P", "-i", "-o", "-F", "-c", "-l", "-J", "-S"),
             "rsync": ("-e", "--rsh", "--exclude", "--include", "-f", "--filter", "--files-from", "--rsync-path",
                       "--exclude-from", "--include-from", "-T", "--temp-dir", "--partial-dir", "--backup-dir",
                       "--chmod", "--chown", "--log-file", "--password-file", "--port")}.get(name, ())
    ops = _operands(args, takes)
    target = _option_value(args, ("-t", "--target-directory"))
    flags = " ".join(w.text or "" for w in args if (w.text or "").startswith("-"))
    symbolic = name in ("ln", "link") or "--symbolic-link" in flags or "--link" in flags or any(
        f.startswith("-") and not f.startswith("--") and ("s" in f or "l" in f) for f in flags.split()) and name == "cp"
    if symbolic:
        # A link to a protected path (or a folder above one) is a second name for it, which
        # later words in the same command could write through before it exists to be resolved.
        for w in (ops if target else ops[:-1]) if len(ops) >= 2 or target else ops:
            hit = _hit(w, cwds, env, tree=True)
            if hit:
                raise Tamper(f"{name} would make a link to {hit}, which protects the gate")
    if target is None and len(ops) < 2:
        for w in ops:
            if name == "ln":
                _check_joined(_Word(_lit(".")), w, cwds, env, name)
        return
    dest = target or ops[-1]
    sources = ops if target else ops[:-1]
    delete = name == "rsync" and "--delete" in flags
    contents = any(_contents_copy(name, s, flags) for s in sources)
    whole = delete or contents
    _check(dest, cwds, env, whole, f"{name} ({WHOLE_TREE.get(name, '')})" if whole else name)
    for s in sources:
        _check_joined(dest, s, cwds, env, name)
        if delete:
            comps = _split(s.items)
            if comps and comps[-1] != []:
                joined = _Word(list(dest.items) + [("q", "/")] + comps[-1])
                _check(joined, cwds, env, True, f"rsync --delete ({WHOLE_TREE['rsync']})")
    if name == "rsync" and "--remove-source-files" in flags:
        for s in sources:
            _check(s, cwds, env, True, "rsync --remove-source-files")


def _contents_copy(name, src, flags):
    text = "".join(c for _, c in src.items)
    if name == "rsync":
        return text.endswith("/") or text.endswith("/.") or text == "."
    if name == "cp":
        return text.endswith("/.") or text == "." or "--no-target-directory" in flags or any(
            f.startswith("-") and not f.startswith("--") and "T" in f for f in flags.split())
    return False


def _shell(args, state, env, name):
    i = 0
    while i < len(args):
        t = args[i].text
        if t is None:
            return
        if t == "-c" or (t.startswith("-") and not t.startswith("--") and "c" in t[1:]):
            code = next((w for w in args[i + 1:] if not (w.text or "").startswith("-") or w.text is None), None)
            if code is not None and code.text is not None:
                _script(code.text, state, env)
            return
        if t.startswith("-") or t.startswith("+"):
            i += 1
            continue
        return  # a script file: its text is read at run time


def _interpreter(name, args, env):
    flags = INTERPRETERS.get(name, ())
    if name in _PROGRAM_FIRST:
        for w in args:
            t = w.text
            if t is None or not t.startswith("-"):
                if t is not None:
                    _opaque(t, env, f"the {name} program")
                break
    for k, w in enumerate(args):
        t = w.text
        if t is None:
            continue
        if t in flags and k + 1 < len(args) and args[k + 1].text is not None:
            _opaque(args[k + 1].text, env, f"the code given to {name} {t}")
        for f in flags:
            if f.startswith("-") and len(f) == 2 and t.startswith(f) and len(t) > 2 and not t.startswith("--"):
                _opaque(t[2:], env, f"the code given to {name} {f}")


def _cd(name, args, state, env):
    ops = [w for w in args if not (w.text or "x").startswith("-") or w.text == "-"]
    if name == "popd":
        if state.stack:
            new = _State(state.stack[-1], state.stack[:-1])
        else:
            new = _State({None})
        return new, new.union(state)
    if name == "pushd" and not ops:
        if state.stack:
            new = _State(state.stack[-1], state.stack[:-1] + (state.cwds,))
        else:
            new = _State({None})
        return new, new.union(state)
    if ops and (ops[0].text or "").startswith("+"):
        new = _State({None}, state.stack)
        return new, new.union(state)
    target = ops[0] if ops else _Word(_lit(env.home))
    new_cwds = set()
    for t in target.each():
        new_cwds |= _cd_targets(t, state, env)
    stack = state.stack + (state.cwds,) if name == "pushd" else state.stack
    new = _State(new_cwds or {None}, stack)
    return new, new.union(state)


def _cd_targets(target, state, env):
    """The folders ``cd TARGET`` may lead to from each folder in ``state`` (None: unknown)."""
    new_cwds = set()
    if target.text == "-":
        new_cwds.add(None)
    elif target.text is None:
        for c in state.cwds:
            if target.rt or c is None or _has_extglob(target.items):
                new_cwds.add(None)
                continue
            comps, _ = _components(target.items, c)
            matches = _fs_expand([_glob_tokens(comp, env) for comp in comps], 4)
            new_cwds.update(os.path.normpath(m) for m in matches) if matches else new_cwds.add(None)
    else:
        for c in state.cwds:
            if target.text.startswith("/"):
                new_cwds.add(os.path.normpath(target.text))
            elif c is None:
                new_cwds.add(None)
            else:
                new_cwds.add(os.path.normpath(os.path.join(c, target.text)))
    return new_cwds


# ---------------------------------------------------------------- whole-tree commands


def _tree_holds(tree_dirs, env):
    """A protected path at, under or above one of ``tree_dirs`` (folders, None = unknown)."""
    from drygate.classifiers.protect import path_above as _above, path_under as _under

    every = env.protected.resolved()
    for d in tree_dirs:
        if d is None:
            return every[0] if every else "the gate's files"
        d = os.path.normpath(d)
        hit = _above(d, every) or _under(d, every) or _above(os.path.realpath(d), every) or \
            _under(os.path.realpath(d), every)
        if hit:
            return hit
    return None


def _repo_top(cwd):
    """The folder holding ``.git`` at or above ``cwd``; None if unknown; '/' if none is found."""
    if cwd is None:
        return None
    d = cwd
    while True:
        if os.path.exists(os.path.join(d, ".git")):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            return "/"
        d = parent


_GIT_READS = frozenset((
    "status", "log", "diff", "show", "blame", "ls-files", "grep", "rev-parse", "describe", "shortlog", "branch", "tag",
    "fetch", "remote", "config", "reflog", "cat-file", "ls-tree", "ls-remote", "check-ignore", "help", "version",
    "add", "commit", "push", "notes", "rev-list", "for-each-ref", "show-ref", "whatchanged", "count-objects",
    "fsck", "gc", "var", "symbolic-ref", "name-rev", "merge-base", "range-diff",
))
#: Options of git's reading subcommands that name a file they write.
_GIT_OUTPUT = frozenset(("-o", "--output", "--output-directory", "-f", "--file"))


def _git(args, state, env, stdin=None):
    """git: the whole-tree subcommands (WHOLE_TREE), ``-C``, and the paths others name."""
    cwds = set(state.cwds)
    i = 0
    while i < len(args):
        t = args[i].text
        if t is None:
            raise Tamper("a git subcommand only known at run time may change the whole working tree")
        if t == "-C" and i + 1 < len(args):
            cwds = set().union(*(_cd_targets(d, _State(cwds), env) for d in args[i + 1].each()))
            i += 2
            continue
        if t in ("-c", "--git-dir", "--work-tree", "--namespace", "--exec-path", "--config-env") and i + 1 < len(args):
            if t in ("--work-tree", "--git-dir"):
                cwds = {None}
            i += 2
            continue
        if t.startswith(("--work-tree=", "--git-dir=")):
            cwds = {None}
        if t.startswith("-"):
            i += 1
            continue
        break
    if i >= len(args):
        return
    sub = args[i].text
    rest = args[i + 1:]
    texts = [w.text for w in rest]
    if "--" in texts:
        cut = texts.index("--")
        pathspecs, before = rest[cut + 1:], rest[:cut]
    else:
        pathspecs, before = None, rest
    flags = [w.text for w in before if (w.text or "").startswith("-")]
    positional = [w for w in before if not (w.text or "").startswith("-")]
    why = WHOLE_TREE.get(f"git {sub}")
    label = f"git {sub} ({why})" if why else f"git {sub}"
    repo = {_repo_top(c) for c in cwds}
    if sub == "clean":
        if any(f == "--dry-run" or (not f.startswith("--") and "n" in f[1:]) for f in flags):
            return
        targets = pathspecs if pathspecs is not None else positional
        try:
            _tree(targets, cwds, env, label)
        except Tamper:
            if not _clean_spares(before, targets, cwds, env):
                raise
    elif sub == "stash":
        action = positional[0].text if positional else "push"
        if action in ("list", "show", "create", "drop", "clear", "store"):
            return
        untracked = any(f in ("-u", "--include-untracked", "-a", "--all") for f in flags)
        if action in ("pop", "apply", "branch"):
            ref = positional[1].text if len(positional) > 1 else "stash@{0}"
            _repo_tree(repo, env, label, [[f"{ref}^1", ref]] if ref else None)
        elif pathspecs:
            _tree(pathspecs, cwds, env, label, None if untracked else [["HEAD"]])
        else:
            _repo_tree(repo, env, label, None if untracked else [["HEAD"]])
    elif sub == "reset":
        # --hard sets the working tree to the commit (HEAD by default); a commit's version
        # also replaces an untracked file in the way (git-reset(1)).
        if any(f in ("--hard", "--merge", "--keep") for f in flags):
            rev = positional[0].text if positional else "HEAD"
            _repo_tree(repo, env, label, [[rev]] if rev else None)
    elif sub == "checkout":
        force = any(f in ("-f", "--force", "--overwrite-ignore") for f in flags)
        if pathspecs is not None:
            # From the index (no commit named), else the commit's version of each path.
            rev = positional[-1].text if positional else ""
            _tree(pathspecs or [_Word(_lit("."))], cwds, env, label, [[rev] if rev else []] if rev is not None else None)
        elif any(f in ("-b", "-B", "--orphan") for f in flags) and len(positional) <= 1:
            return  # a new branch at HEAD: no file changes
        elif len(positional) == 1 and _is_path_not_ref(positional[0], cwds, repo):
            _tree(positional, cwds, env, label, [[]])
        elif positional or force:
            rev = positional[-1].text if positional else "HEAD"
            _repo_tree(repo, env, label, _switch_diffs(rev, force))
    elif sub == "switch":
        if any(f in ("-c", "-C", "--create", "--force-create") for f in flags) and len(positional) <= 1:
            return
        force = any(f in ("-f", "--force", "--discard-changes") for f in flags)
        if positional or flags:
            rev = positional[-1].text if positional else "HEAD"
            _repo_tree(repo, env, label, _switch_diffs(rev, force))
    elif sub == "restore":
        if any(f in ("-S", "--staged") for f in flags) and not any(f in ("-W", "--worktree") for f in flags):
            return  # the index only
        texts_all = [w.text for w in before]
        source = ""
        targets = list(pathspecs if pathspecs is not None else positional)
        for k, t in enumerate(texts_all):
            if t in ("-s", "--source") and k + 1 < len(before):
                source = before[k + 1].text
                targets = [w for w in targets if w is not before[k + 1]]
            elif t and t.startswith("--source="):
                source = t.split("=", 1)[1]
            elif t and t.startswith("-s") and len(t) > 2:
                source = t[2:]
        _tree(targets or [_Word(_lit("."))], cwds, env, label, [[source] if source else []] if source is not None else None)
    elif sub in ("apply", "am"):
        if sub == "apply" and "--apply" not in flags and any(
                f in ("--check", "--stat", "--numstat", "--summary", "--cached") for f in flags):
            return
        if sub == "am" and any(f in ("--abort", "--quit", "--show-current-patch") for f in flags):
            return
        _patch(positional, stdin, cwds, env, label, 1, repo)
    elif sub in ("merge", "pull", "rebase", "cherry-pick", "revert", "read-tree", "checkout-index"):
        if sub == "read-tree" and "-u" not in flags:
            return
        if sub in ("merge", "rebase", "cherry-pick", "revert") and any(
                f in ("--abort", "--quit", "--skip") for f in flags):
            return
        revs = [w.text for w in positional]
        if sub in ("read-tree", "checkout-index") or None in revs:
            diffs = None
        elif sub in ("cherry-pick", "revert"):
            diffs = [[f"{r}^", r] for r in revs] or None
        elif sub == "pull":
            # What a pull brings is only known after its fetch: the upstream (or the named
            # branch) as it is now stands in for it.
            if len(revs) >= 2:
                diffs = [["HEAD", revs[1] if revs[0] == "." else f"{revs[0]}/{revs[1]}"]]
            else:
                diffs = [["HEAD", "@{upstream}"]]
        else:
            diffs = [["HEAD", r] for r in revs] or [["HEAD", "@{upstream}"]]
        _repo_tree(repo, env, label, diffs)
    elif sub in ("rm", "mv"):
        for w in positional + (pathspecs or []):
            _check(w, cwds, env, True, f"git {sub}")
    elif sub in _GIT_READS:
        for k, w in enumerate(rest):
            t = w.text or ""
            if t.startswith(("--output=", "--output-directory=", "--file=")):
                _check(w, cwds, env, False, f"git {sub}")
            elif t in _GIT_OUTPUT and k + 1 < len(rest) and (sub != "grep" or t != "-f"):
                _check(rest[k + 1], cwds, env, False, f"git {sub} {t}")
    else:
        for w in rest:
            _check(w, cwds, env, False, f"git {sub}")
    if sub not in _GIT_PURE_READS:
        env.git_moved = True  # refs, the index or a stash may differ for later git commands


#: git subcommands that change no ref, index or stash: git can still be asked about later ones.
_GIT_PURE_READS = frozenset((
    "status", "log", "diff", "show", "blame", "ls-files", "grep", "rev-parse", "describe", "shortlog", "cat-file",
    "ls-tree", "ls-remote", "check-ignore", "help", "version", "rev-list", "for-each-ref", "show-ref",
    "whatchanged", "count-objects", "var", "name-rev", "merge-base", "range-diff", "format-patch", "archive",
))


def _is_path_not_ref(word, cwds, repo):
    """``git checkout X`` restores path X when X is an existing path and not a branch or tag."""
    t = word.text
    if t is None or word.glob:
        return False
    for top in repo:
        if top in (None, "/"):
            return False
        for ref in ("refs/heads/", "refs/tags/", "refs/remotes/"):
            if os.path.exists(os.path.join(top, ".git", ref + t)):
                return False
        try:
            with open(os.path.join(top, ".git", "packed-refs"), encoding="utf-8", errors="replace") as f:
                if any(line.rstrip().endswith("/" + t) for line in f):
                    return False
        except OSError:
            pass
    return all(c is not None and os.path.exists(os.path.join(c, t)) for c in cwds)


def _clean_spares(words, targets, cwds, env):
    """True when ``git clean --dry-run`` with the same options lists no protected path
    (git-clean(1): -n shows what would be removed). Only -d, -x, -X, -e/--exclude and
    -f are understood; anything else, or git failing, is False (fail closed)."""
    import subprocess

    opts = []
    k = 0
    while k < len(words):
        t = words[k].text
        if t is None:
            return False
        if t in ("-e", "--exclude") and k + 1 < len(words) and words[k + 1].text is not None:
            opts += ["-e", words[k + 1].text]
            k += 2
            continue
        if t.startswith("--exclude="):
            opts.append(t)
        elif t.startswith("-") and not t.startswith("--") and set(t[1:]) <= set("fdxX"):
            opts += ["-" + c for c in t[1:] if c != "f"]
        elif t == "--force" or t == "-q" or t == "--quiet":
            pass
        elif t.startswith("-"):
            return False
        k += 1
    if any(w.text is None or w.glob for w in targets) or None in cwds:
        return False
    every = env.protected.resolved()
    for cwd in cwds:
        try:
            proc = subprocess.run(["git", "-c", "core.fsmonitor=false", "-C", cwd, "clean", "--dry-run", *opts, "--",
                                   *[w.text for w in targets]], capture_output=True, timeout=2.0,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):
            return False
        if proc.returncode != 0:
            return False
        from drygate.classifiers.protect import path_above, path_under

        for line in proc.stdout.decode("utf-8", "replace").splitlines():
            if not line.startswith("Would remove "):
                return False
            path = os.path.normpath(os.path.join(cwd, line[len("Would remove "):]))
            if path_under(path, every) or path_above(path, every) or path_under(os.path.realpath(path), every):
                return False
    return True


def _switch_diffs(rev, force):
    """What switching to ``rev`` compares: tracked files that differ between HEAD and
    ``rev``; forced, also the working tree against ``rev`` (git-checkout(1), git-switch(1))."""
    if rev is None:
        return None
    return [["HEAD", rev], [rev]] if force else [["HEAD", rev]]


def _tree(words, cwds, env, why, diffs=None):
    """Each word names a tree that the command changes (``.`` is the whole folder).

    ``diffs``: None when the command may change any file in the tree; else the git
    comparisons (lists of revisions for ``git diff``) whose differences are all it
    changes: it counts only when one of them shows a protected path changing."""
    if not words:
        words = [_Word(_lit("."))]
    for w in words:
        if None in cwds and not (w.items and w.items[0][1] == "/" and w.items[0][0] in "uq"):
            raise Tamper(f"{why}, in a folder only known at run time, which may hold the gate's files")
        hit = _hit(w, cwds, env, tree=True)
        if hit and diffs is not None and not env.git_moved:
            hit = _git_differs({_repo_top(c) for c in cwds}, env, diffs)
        if hit:
            raise Tamper(f"{why}: it would change {hit}, which protects the gate")


def _repo_tree(repo_dirs, env, why, diffs=None):
    """The repositories' working trees change: tamper when one holds a protected path
    (with ``diffs``, as :func:`_tree`: only when git shows that path changing)."""
    hit = _tree_holds(repo_dirs, env)
    if not hit:
        return
    if diffs is not None and not env.git_moved:
        hit = _git_differs(repo_dirs, env, diffs)
        if not hit:
            return
    raise Tamper(f"{why}: the working tree holds {hit}, which protects the gate")


def _git_differs(repo_dirs, env, diffs):
    """A protected path that one of the ``git diff --quiet REVS -- PATHS`` comparisons
    shows changing in one of ``repo_dirs``; when git cannot answer (no repository, an
    unknown revision, a timeout), the first protected path in the tree: fail closed.
    git runs with core.fsmonitor off and no external diff or textconv, so nothing the
    repository configures runs inside the gate."""
    import subprocess

    every = env.protected.resolved()
    for top in repo_dirs:
        if top in (None, "/"):
            return _tree_holds({top}, env)
        inside = [p for p in every if p.startswith(top.rstrip("/") + "/")]
        if not inside:
            hit = _tree_holds({top}, env)
            if hit:
                return hit
            continue
        rel = [os.path.relpath(p, top) for p in inside]
        for revs in diffs:
            if any(not r or r.startswith("-") for r in revs):
                return inside[0]
            try:
                proc = subprocess.run(["git", "-c", "core.fsmonitor=false", "-C", top, "diff", "--quiet",
                                       "--no-ext-diff", "--no-textconv", *revs, "--", *rel],
                                      capture_output=True, timeout=2.0, stdin=subprocess.DEVNULL)
            except (OSError, subprocess.SubprocessError):
                return inside[0]
            if proc.returncode != 0:
                return inside[0]
    return None


_PATCH_HEADER = None
#: Largest file read to check its text (a patch, a sourced script), in bytes.
MAX_READ = 4 * 1024 * 1024


def _read_regular(path):
    """The text of a regular file of at most MAX_READ bytes, else None (never opens a FIFO or device)."""
    import stat

    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_READ:
            return None
        with open(path, "rb") as fh:
            return fh.read(MAX_READ).decode("utf-8", "replace")
    except (OSError, ValueError):
        return None


def _patch_names(text):
    """The file names a patch's headers name (unified and git diffs, renames, copies)."""
    import re

    global _PATCH_HEADER
    if _PATCH_HEADER is None:
        _PATCH_HEADER = re.compile(r"^(?:\+\+\+|---|\*\*\*|diff --git|rename to|rename from|copy to|copy from|"
                                   r"Index:)\s+(\S+)(?:\s+(\S+))?", re.M)
    names = []
    for m in _PATCH_HEADER.finditer(text):
        for g in m.groups():
            if g and g != "/dev/null":
                names.append(g.strip('"'))
    return names


def _patch(files, stdin, cwds, env, why, strip, repo=None, directory=None):
    """A patch from ``files`` (words) or ``stdin``: the files its headers name are
    checked as writes (with ``-p`` stripping and without); a patch drygate cannot read
    (a pipe, a missing file) may change anything under the folder it is applied in."""
    texts = []
    sources = list(files)
    if not sources and stdin is not None and stdin[0] == "file":
        sources = [stdin[1]]
    if not sources and stdin is not None and stdin[0] == "text":
        texts.append(stdin[1])
    readable = bool(sources) or bool(texts)
    for f in sources:
        if f.text is None:
            readable = False
            continue
        for c in cwds:
            path = f.text if f.text.startswith("/") or c is None else os.path.join(c, f.text)
            text = _read_regular(path)
            if text is None:
                readable = False
            else:
                texts.append(text)
    if not readable:
        base = [_Word(_lit(directory))] if directory else [_Word(_lit("."))]
        _tree(base, cwds, env, why)
        return
    bases = set(cwds) | set(repo or ())
    for text in texts:
        for n in _patch_names(text):
            parts = n.split("/")
            for s in sorted({strip, 0, 1}):
                rel = n if n.startswith("/") else "/".join(parts[s:])
                if not rel:
                    continue
                if directory:
                    rel = os.path.join(directory, rel)
                hit = _hit(_Word(_lit(rel)), bases - {"/"} or {None}, env)
                if hit:
                    raise Tamper(f"{why}: the patch names {n}, which is {hit}, which protects the gate")


def _archive_or_patch(name, args, state, env, stdin=None):
    cwds = state.cwds
    why = WHOLE_TREE[name]
    texts = [w.text for w in args]
    if name == "patch":
        if any(t in ("--dry-run", "--check") for t in texts if t):
            return
        strip, directory, files = 0, None, []
        for k, w in enumerate(args):
            t = w.text or ""
            nxt = args[k + 1].text if k + 1 < len(args) else None
            if t.startswith("-p") and t[2:].isdigit():
                strip = int(t[2:])
            elif t in ("-p", "--strip") and (nxt or "").isdigit():
                strip = int(nxt)
            elif t.startswith("--strip=") and t[8:].isdigit():
                strip = int(t[8:])
            elif t in ("-i", "--input") and k + 1 < len(args):
                files.append(args[k + 1])
            elif t.startswith("--input="):
                files.append(_Word(_lit(t[8:])))
            elif t in ("-d", "--directory"):
                directory = nxt
            elif t.startswith("--directory="):
                directory = t[12:]
        operands = _operands(args, ("-i", "--input", "-d", "--directory", "-p", "--strip", "-o", "--output", "-r",
                                    "-B", "-z", "-V", "-D", "-F", "-Y", "--reject-file", "--prefix", "--suffix"))
        if not files and len(operands) >= 2:
            files = [operands[1]]
        _patch(files, stdin, cwds, env, f"patch ({why})", strip, directory=directory)
        return
    extract = False
    directory = None
    if name in ("tar", "bsdtar"):
        for k, t in enumerate(texts):
            if t is None:
                continue
            if t in ("-x", "--extract", "--get") or (t.startswith("-") and not t.startswith("--") and "x" in t) or (
                    k == 0 and not t.startswith("-") and "x" in t):
                extract = True
            if t in ("-C", "--directory") and k + 1 < len(args):
                directory = args[k + 1]
            elif t.startswith("--directory="):
                directory = _Word(_lit(t[12:]))
    elif name == "unzip":
        extract = not any(t in ("-l", "-t", "-v", "-Z", "-p", "-z") for t in texts if t)
        directory = _option_value(args, ("-d",))
    elif name == "7z":
        extract = bool(texts) and texts[0] in ("x", "e")
        for t in texts:
            if t and t.startswith("-o") and len(t) > 2:
                directory = _Word(_lit(t[2:]))
    elif name == "cpio":
        extract = any(t in ("-i", "--extract") or (t.startswith("-") and not t.startswith("--") and "i" in t)
                      for t in texts if t)
        directory = _option_value(args, ("-D", "--directory"))
    elif name == "ar":
        extract = bool(texts) and texts[0] is not None and "x" in texts[0].lstrip("-")
    if not extract:
        return
    target = directory if directory is not None else _Word(_lit("."))
    members = _archive_members(name, args, cwds)
    if members is not None and target.text is not None and None not in cwds:
        # The archive was read: each member is a file written under the folder.
        for m in members:
            rel = m.lstrip("/")
            _check(_Word(_lit(os.path.join(target.text, rel) if rel not in ("", ".") else target.text)), cwds, env,
                   False, f"{name} (member {m!r})")
        return
    _tree([target], cwds, env, f"{name} ({why})")


#: Largest archive listed before its extraction is decided (bytes); a larger one counts whole.
MAX_ARCHIVE = 64 * 1024 * 1024


def _archive_file(name, args):
    """The archive a tar/bsdtar/unzip command line reads (a _Word), or None."""
    texts = [w.text for w in args]
    if name == "unzip":
        ops = _operands(args, ("-d", "-x", "-P"))
        return ops[0] if ops else None
    for k, t in enumerate(texts):
        if t is None:
            continue
        if t in ("-f", "--file") and k + 1 < len(args):
            return args[k + 1]
        if t.startswith("--file="):
            return _Word(_lit(t[7:]))
        if t.startswith("-") and not t.startswith("--") and "f" in t[1:]:
            rest = t[t.index("f", 1) + 1:]
            return _Word(_lit(rest)) if rest else (args[k + 1] if k + 1 < len(args) else None)
        if k == 0 and not t.startswith("-") and "f" in t:  # bundled: tar xzf FILE
            return args[1] if len(args) > 1 else None
    return None


def _archive_members(name, args, cwds):
    """The member names of the archive being extracted, or None when they cannot be listed
    (not a regular file, too large, unreadable, a link member that could redirect later
    members: then the whole folder counts). tarfile and zipfile read them (stdlib)."""
    if name not in ("tar", "bsdtar", "unzip"):
        return None
    archive = _archive_file(name, args)
    if archive is None or archive.text is None or len(cwds) != 1:
        return None
    cwd = next(iter(cwds))
    path = archive.text if archive.text.startswith("/") else os.path.join(cwd, archive.text)
    import stat

    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_ARCHIVE:
        return None
    try:
        if name == "unzip":
            import zipfile

            with zipfile.ZipFile(path) as z:
                infos = z.infolist()
                if any((i.external_attr >> 16) & 0o170000 == 0o120000 for i in infos):
                    return None
                return [i.filename for i in infos]
        import tarfile

        with tarfile.open(path, "r:*") as t:
            members = t.getmembers()
            if any(m.issym() or m.islnk() for m in members):
                return None
            return [m.name for m in members]
    except Exception:  # a broken or unknown archive: it counts whole
        return None


def _find(args, state, env):
    """find: its starting points are trees that -delete/-exec change; -fprint FILE writes FILE."""
    cwds = state.cwds
    starts = []
    k = 0
    while k < len(args) and args[k].text in ("-H", "-L", "-P", "-O0", "-O1", "-O2", "-O3", "-D"):
        k += 2 if args[k].text == "-D" else 1
    while k < len(args) and not ((args[k].text or "x")[0] in "-(!" and args[k].text is not None):
        starts.append(args[k])
        k += 1
    expr = [w.text for w in args[k:]]
    for j, t in enumerate(expr):
        if t in ("-fprint", "-fprint0", "-fprintf", "-fls") and j + 1 < len(expr):
            _check(args[k + j + 1], cwds, env, False, "find")
    acts = {"-delete", "-exec", "-execdir", "-ok", "-okdir"}
    if not acts & set(t for t in expr if t):
        return
    names = []
    simple = True
    for j, t in enumerate(expr):
        if t in ("-name", "-iname") and j + 1 < len(expr):
            names.append((args[k + j + 1], t == "-iname"))
        elif t in ("-o", "-or", "!", "-not", "-path", "-ipath", "-wholename", "-regex", "-iregex", ",") or t is None:
            simple = False
    if not starts:
        starts = [_Word(_lit("."))]
    why = f"find ({WHOLE_TREE['find']})"
    for s in starts:
        hit = _hit(s, cwds, env, tree=True)
        if not hit:
            continue
        under = _hit(s, cwds, env, tree=False)
        if under or not names or not simple:
            raise Tamper(f"{why}: it would change {hit}, which protects the gate")
        # Conjunctive -name tests: only an entry they can match is changed (the entry or,
        # for a folder, everything below it with -exec rm -r and the like): the protected
        # path's parts below the starting point.
        import re

        for p in env.protected.resolved():
            parts = [x for x in p.split("/") if x]
            start = s.text if s.text is not None else None
            below = parts[-1:]
            for cwd in cwds:
                if start is not None and cwd is not None:
                    base = os.path.normpath(os.path.join(cwd, start))
                    if p.startswith(base.rstrip("/") + "/"):
                        below = [x for x in p[len(base.rstrip("/")) + 1:].split("/") if x]
            for word, nocase in names:
                pattern = [("r", "") if k == "r" else ("u", c) for k, c in word.items]  # find globs it, not bash
                rx = re.compile(_comp_regex(pattern, _NoDot(env)), re.IGNORECASE if nocase else 0)
                if any(rx.fullmatch(part) for part in below):
                    raise Tamper(f"{why}: -name {word.text or '...'!r} can match {p}, which protects the gate")


class _NoDot:
    """find's -name patterns match a leading dot (find(1): "the leading '.' is not special")."""

    __slots__ = ("dotglob", "nocase")

    def __init__(self, env):
        self.dotglob = True
        self.nocase = env.nocase
