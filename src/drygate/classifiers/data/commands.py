"""What common command-line tools do, as data: the command table.

Read by the interpreter in :mod:`drygate.classifiers.commands`. Each entry maps a
program name to a *spec*, either an effect string or a dict with these keys (all
optional):

- ``effect``: the effect when no subcommand applies (default ``read`` for a spec
  without subcommands);
- ``flags``: ``{flag: effect}``; a flag present anywhere among the arguments
  (exactly, as an unambiguous GNU prefix of a long option, or inside a cluster of
  short flags such as ``-uo``) raises the effect to at least that;
- ``values``: options that take a value (the value is skipped when looking for
  the subcommand);
- ``subcommands``: ``{name: spec}``, looked up at the first positional argument;
- ``other``: the effect of a subcommand not in the table (default ``unknown``);
- ``bare``: the effect with no subcommand at all (default: ``other``);
- ``positional_max``: more positional arguments than this make it a write
  (``uniq IN OUT``, ``tee FILE``);
- ``handler``: the name of a function in drygate.classifiers.commands that reads
  the arguments itself (SQL clients, HTTP clients, wrappers, shells, cloud CLIs).

Sources: each tool's manual (``--help`` and man pages of GNU coreutils, findutils,
sed, git 2.39, kubectl 1.3x, helm 3, terraform 1.x, aws-cli 2, gcloud, az, gh 2,
docker 2x, npm 10, pip 2x, wrangler 3). Anything not listed is ``unknown``.
Users extend and override this table with ``[[commands]]`` in drygate.toml.
"""

R, W, U, S, X = "read", "write", "unknown", "side_effect_read", "external"

#: kustomize build options that run programs (kubectl.docs.kubernetes.io, kustomize build
#: --help; kubectl kustomize --help, 1.3x): --enable-helm runs the Helm chart inflator (the
#: program --helm-command names, else `helm`, which pulls charts into the folder),
#: --enable-alpha-plugins runs KRM function and exec plugins, --enable-exec lets them exec.
_KUSTOMIZE_RUNS = ("--enable-helm", "--helm-command", "--enable-alpha-plugins", "--enable-exec")


def _KUSTOMIZE_BUILD(extra_values):
    """The strict spec of ``kustomize build`` / ``kubectl kustomize``: only the options that
    choose what is built and printed (every other one, and those of _KUSTOMIZE_RUNS, is
    unknown); ``-o``/``--output`` writes files. ``extra_values``: the host CLI's own global
    options that take a value and may follow the subcommand."""
    return {"options": ("--as-current-user", "--enable-managedby-label", "--network", "-h", "--help",
                        "--stack-trace"),
            "option_values": ("-e", "--env", "--helm-api-versions", "--helm-kube-version", "--load-restrictor",
                              "--mount", "--network-name", "--reorder", "-o", "--output") + tuple(extra_values),
            "flags": {"-o": W, "--output": W, **{o: U for o in _KUSTOMIZE_RUNS}},
            "why": "renders manifests from a kustomization and prints them"}


_READS = (
    "ls", "cat", "head", "tail", "wc", "pwd", "echo", "printf", "which", "type", "whereis", "stat", "du",
    "df", "whoami", "id", "uname", "printenv", "diff", "cmp", "grep", "egrep", "fgrep", "basename",
    "dirname", "realpath", "readlink", "true", "false", "nproc", "free", "uptime", "ps",
    "pgrep", "jq", "cut", "tr", "column", "nl", "md5sum", "sha1sum", "sha224sum", "sha256sum",
    "sha384sum", "sha512sum", "b2sum", "cksum", "cd", "sleep", "lsblk", "locale", "groups", "seq", "comm",
    "expr", "tac", "rev", "fold", "paste", "join", "od", "hexdump", "strings", "base64", "base32", "zcat",
    "bzcat", "xzcat", "lsof", "netstat", "dig", "nslookup", "host", "ping", "traceroute", "whois",
    "last", "w", "who", "getent", "arch", "lscpu", "lsusb", "lspci", "vmstat", "iostat", "mpstat",
    "pg_lsclusters", "pg_config", "top", "htop", "tput", "clear", "numfmt", "factor", "yes", "getconf", "nm",
    "objdump", "readelf", "size", "cal", "uuidgen", "pwdx",
    "pstree", "apropos", "whatis",
)

#: Bash builtins (bash manual 5.2, SHELL BUILTIN COMMANDS), each with its reason. Builtins
#: that take a variable name or arithmetic are read by handlers that judge those words
#: (drygate.classifiers.bash_names); builtins that run other commands are classified by
#: what they run, or unknown. Keywords and declarations (declare, local, export,
#: readonly, typeset, unset, [[ ]], (( ))) are read from the syntax tree in shell.py.
BUILTINS = {
    **{name: {"effect": R, "why": why} for name, why in (
        (":", "does nothing (its words are still expanded, and judged)"),
        ("true", "does nothing"), ("false", "does nothing"),
        ("cd", "changes the shell's folder (CDPATH only chooses which)"),
        ("pushd", "changes the shell's folder and folder stack"), ("popd", "changes the shell's folder and stack"),
        ("dirs", "prints the folder stack"), ("caller", "prints the call stack"), ("times", "prints times"),
        ("type", "describes a command"), ("help", "prints help"), ("bg", "resumes this command's own job"),
        ("fg", "resumes this command's own job"), ("disown", "removes this command's own jobs from the table"),
        ("return", "takes a literal number only (bash rejects anything else)"),
        ("exit", "takes a literal number only (bash rejects anything else)"),
        ("shift", "takes a literal number only (bash rejects anything else)"),
        ("break", "takes a literal number only (bash rejects anything else)"),
        ("continue", "takes a literal number only (bash rejects anything else)"),
        ("unalias", "removes alias definitions"),
    )},
    "echo": {"effect": R, "why": "prints its words"},
    "read": {"handler": "b_read"}, "mapfile": {"handler": "b_mapfile"}, "readarray": {"handler": "b_mapfile"},
    "printf": {"handler": "b_printf"}, "wait": {"handler": "b_wait"}, "getopts": {"handler": "b_getopts"},
    "test": {"handler": "b_test"}, "[": {"handler": "b_test"}, "let": {"handler": "b_let"},
    "jobs": {"handler": "b_jobs"}, "trap": {"handler": "b_trap"}, "enable": {"handler": "b_enable"},
    "ulimit": {"handler": "b_ulimit"}, "set": {"handler": "b_set"}, "shopt": {"handler": "b_shopt"},
    "hash": {"handler": "b_hash"},
    "command": {"handler": "wrapper"}, "builtin": {"handler": "wrapper"}, "exec": {"handler": "wrapper"},
    "alias": {"handler": "alias"},
    "kill": {"effect": W, "why": "signals processes"},
    "umask": {"positional_max": 0, "why": "a mode changes the permissions of files created later"},
    **{name: {"effect": U, "why": why} for name, why in (
        ("eval", "runs its arguments as shell text"),
        ("source", "runs a file's commands in this shell"), (".", "runs a file's commands in this shell"),
        ("fc", "re-runs commands from the history list or opens an editor"),
        ("coproc", "runs a command in the background (not followed by this classifier)"),
        ("compgen", "runs commands and functions (-C, -F) and expands its word list (-W) as shell text"),
        ("complete", "registers commands (-C) and functions (-F) to run"),
        ("compopt", "changes completion, which runs registered commands"),
        ("bind", "binds keys to shell commands (-x)"),
        ("logout", "ends a login shell"), ("suspend", "stops the shell"),
        ("declare", "only the parsed declaration form is classified (a quoted or indirect name may be a nameref)"),
        ("typeset", "only the parsed declaration form is classified"),
        ("local", "only the parsed declaration form is classified"),
        ("export", "only the parsed declaration form is classified"),
        ("readonly", "only the parsed declaration form is classified"),
        ("unset", "only the parsed unset form is classified"),
    )},
}

#: npm's read subcommands accept only these options (npm 10/11 docs, "config"); npm's
#: parser (nopt) takes ``-name`` as ``--name`` and a following true/false as a Boolean's
#: value. Any other option (--cache, --logs-dir, --userconfig, --browser, --script-shell...)
#: may write a file or run a program: unknown.
_NPM_READ = {"effect": R, "nopt": True, "options": (
    "--json", "--long", "-l", "--parseable", "-p", "--all", "-a", "--global", "-g", "--link", "--workspaces", "--ws",
    "--include-workspace-root", "--package-lock-only", "--silent", "-s", "--quiet", "-q", "--verbose", "-d", "-dd",
    "-ddd", "--unicode", "--production", "--dev", "--offline", "--prefer-offline", "--prefer-online",
    "--expect-results", "-h", "--help", "--usage", "--dry-run", "--strict-peer-deps", "--legacy-peer-deps",
    "--description", "--installed", "--progress", "--audit", "--fund", "--update-notifier", "--color"),
    "option_values": ("--depth", "--omit", "--include", "--workspace", "-w", "--registry", "--prefix", "-C",
                      "--loglevel", "--color", "--before", "--tag", "--searchlimit", "--searchopts", "--searchexclude",
                      "--fetch-retries", "--fetch-timeout", "--scope", "--expect-result-count", "--audit-level")}
#: gh ... view: --web opens the user's configured browser (gh config browser, $BROWSER),
#: which is taken as a read, as the pager of git or psql is.
_GH_VIEW = R
#: pnpm's read subcommands: the options pnpm's docs list for ls/outdated/why/view/audit.
_PNPM_READ = {"effect": R, "options": (
    "--json", "--long", "--parseable", "-r", "--recursive", "--dev", "-D", "--prod", "-P", "--global", "-g",
    "--only-projects", "--no-optional", "--exclude-peers", "--compatible", "--ignore-registry-errors", "--silent",
    "-s", "--reporter=silent", "-h", "--help", "--fix"),
    "option_values": ("--depth", "--filter", "-F", "--audit-level", "--format", "-C", "--dir", "--reporter",
                      "--loglevel", "--registry")}
#: yarn's read subcommands (yarn 1 and 4 docs).
_YARN_READ = {"effect": R, "options": (
    "--json", "--verbose", "--silent", "-s", "--no-progress", "--offline", "--prefer-offline", "--production",
    "--prod", "--recursive", "-R", "--all", "-A", "--no-default-rc", "-h", "--help", "--groups", "--level"),
    "option_values": ("--depth", "--pattern", "--cwd", "--groups", "--level")}

#: Package runners (handler ``package_runner``, drygate.classifiers.commands._package_runner):
#: the command they resolve and run is classified, when they only resolve and run it. From
#: each tool's documentation (npm exec, pnpm exec/dlx, yarn exec/dlx, bun x, uv tool run,
#: pipx run): ``installs`` are the options that install other packages, build them or run
#: their scripts first (unknown); ``shell`` those that run a shell string; ``may_install``:
#: a missing package is installed into the runner's cache first (npx assumes --yes without
#: a terminal), which the reason states. Options not listed make the call unknown.
PACKAGE_RUNNERS = {
    "npx": {"handler": "package_runner", "may_install": True, "versions": True,
            "installs": ("--package", "-p", "--ignore-existing", "--userconfig", "--node-options", "--registry",
                         "--script-shell"),
            "shell": ("--call", "-c"), "shell_takes_value": True,
            "flags": ("--yes", "-y", "--no", "--no-install", "--workspaces", "--ws", "--include-workspace-root",
                      "--prefer-online", "--prefer-offline", "--offline", "-q", "--quiet", "--silent"),
            "values": ("--workspace", "-w", "--loglevel")},
    "pnpm exec": {"handler": "package_runner",
                  "flags": ("-r", "--recursive", "--parallel", "--no-bail", "--bail", "--report-summary",
                            "--no-reporter-hide-prefix", "--reverse"),
                  "values": ("--resume-from", "--filter", "-F"), "shell": ("-c", "--shell-mode")},
    "pnpm dlx": {"handler": "package_runner", "may_install": True, "versions": True,
                 "installs": ("--package", "--allow-build"), "shell": ("-c", "--shell-mode"),
                 "flags": ("--silent", "-s")},
    "yarn exec": {"handler": "package_runner", "script": True},
    "yarn dlx": {"handler": "package_runner", "may_install": True, "versions": True,
                 "installs": ("--package", "-p"), "flags": ("-q", "--quiet")},
    "bunx": {"handler": "package_runner", "may_install": True, "versions": True, "installs": ("--package", "-p"),
             "flags": ("--bun", "--silent", "--verbose", "--no-install")},
    "uvx": {"handler": "package_runner", "may_install": True, "versions": True,
            "installs": ("--from", "--with", "--with-requirements", "--with-editable", "--index-url",
                         "--extra-index-url", "--index", "--default-index", "--find-links", "-f"),
            "flags": ("--isolated", "--offline", "--no-cache", "-n", "-q", "--quiet", "-v", "--verbose", "--refresh",
                      "--no-progress"),
            "values": ("--python", "-p")},
    "pipx run": {"handler": "package_runner", "may_install": True, "versions": True,
                 "installs": ("--spec", "--pip-args", "--index-url", "--editable", "-e", "--path"),
                 "flags": ("--no-cache", "-q", "--quiet", "-v", "--verbose"), "values": ("--python",)},
}

COMMANDS = {
    **{name: R for name in _READS},
    **BUILTINS,
    # Reads with a flag or form that writes or runs a program.
    "history": {"flags": {"-c": W, "-d": W, "-w": W, "-a": W, "-s": U, "-r": U, "-n": U, "-p": R}},
    "tldr": {"flags": {"-u": W, "--update": W, "--clear-cache": W}},
    "ss": {"flags": {"-K": W, "--kill": W}},
    "nvidia-smi": {"handler": "only_flags", "read_flags": ("-q", "--query", "-L", "--list-gpus", "-i", "--id",
                                                           "--format", "-l", "--loop", "-x", "--xml-format")},
    "mktemp": {"flags": {"-u": R, "--dry-run": R}, "effect": W},
    "ldd": U,
    "sort": {"flags": {"-o": W, "--output": W, "--compress-program": U}},
    "uniq": {"positional_max": 1},
    "tee": {"flags": {"-a": W, "--append": W}, "positional_max": 0, "harmless_operands": True},
    "rg": {"flags": {"--pre": U, "--hostname-bin": U, "--search-zip": R}},
    "tree": {"flags": {"-o": W, "-R": W}},
    # man runs a pager or browser program named by an option; info writes its output or keys
    "man": {"flags": {"-P": U, "--pager": U, "-H": U, "--html": U, "-X": U, "--gxditview": U}},
    "info": {"flags": {"-o": W, "--output": W, "--dribble": W, "--restore": U}},
    "nm": {"flags": {"--plugin": U}},
    "file": {"flags": {"-C": W, "--compile": W}},
    "date": {"flags": {"-s": W, "--set": W}},
    "hostname": {"handler": "only_flags", "read_flags": ("-s", "--short", "-f", "--fqdn", "--long", "-d",
                                                         "--domain", "-i", "--ip-address", "-I", "--all-ip-addresses",
                                                         "-a", "--alias", "-A", "--all-fqdns", "-y", "-V")},
    "crontab": {"handler": "only_flags", "read_flags": ("-l",), "values": ("-u",)},
    "journalctl": {"flags": {"--vacuum-size": W, "--vacuum-time": W, "--vacuum-files": W, "--rotate": W,
                             "--flush": W, "--sync": W, "--relinquish-var": W, "--setup-keys": W,
                             "--update-catalog": W, "--cursor-file": W}},
    "find": {"handler": "find"},
    "sed": {"handler": "sed"},
    "awk": {"handler": "awk"}, "gawk": {"handler": "awk"}, "mawk": {"handler": "awk"},
    "xxd": {"flags": {"-r": U}, "positional_max": 1},
    "gzip": W,
    "gunzip": W,
    "ip": {"subcommands": {obj: {"subcommands": {"show": R, "list": R, "ls": R, "get": R}, "bare": R, "other": W}
                           for obj in ("addr", "address", "a", "link", "l", "route", "r", "neigh", "rule",
                                       "netns", "maddr", "tunnel")}, "values": ("-n", "-netns", "-f", "-family"),
           "other": W},
    "ifconfig": {"positional_max": 1},
    # Writes to files and processes.
    **{name: W for name in (
        "rm", "rmdir", "mv", "cp", "ln", "mkdir", "touch", "chmod", "chown", "chgrp", "truncate", "dd",
        "install", "rsync", "scp", "sftp", "shred", "unlink", "mkfifo", "mknod", "patch", "split", "csplit",
        "kill", "pkill", "killall", "tar", "zip", "unzip", "7z", "bzip2", "xz", "mount", "umount", "useradd",
        "userdel", "usermod", "groupadd", "passwd", "chpasswd", "reboot", "shutdown", "halt", "poweroff",
        "iptables", "ufw", "sysctl", "modprobe", "insmod", "rmmod", "mkfs", "fdisk", "parted", "swapon",
        "swapoff", "chattr", "setfacl", "renice", "at", "batch", "logger", "wall", "write", "mkswap",
        "ssh-keygen", "ssh-copy-id", "certbot", "openssl", "gpg", "htpasswd", "ldconfig", "update-alternatives",
    )},
    "mail": X, "mailx": X, "sendmail": X, "mutt": X,
    # Interpreters and build tools run arbitrary code.
    **{name: {"flags": {"--version": R, "-V": R}, "effect": U} for name in (
        "python", "python2", "python3", "node", "nodejs", "perl", "ruby", "php", "deno", "lua",
        "Rscript", "java", "osascript", "pwsh", "powershell", "make", "cmake", "ninja", "gradle", "mvn",
        "ant", "bazel", "tsx", "ts-node", "pytest", "jest", "vitest", "tox", "nox",
        "expect", "tmux", "screen",
    )},
    "cargo": {"subcommands": {"--version": R, "version": R, "search": R}, "other": U},
    "go": {"subcommands": {"version": R, "env": {"flags": {"-w": W, "-u": W}},
                           "list": {"flags": {"-toolexec": U, "-exec": U, "-export": U, "-json": R}},
                           "doc": R, "vet": {"flags": {"-vettool": U}}},
           "other": U},
    # Package managers.
    "npm": {"subcommands": {
        **{s: _NPM_READ for s in ("ls", "list", "ll", "la", "view", "v", "info", "show", "outdated", "search", "s",
                                  "whoami", "ping", "explain", "why", "root", "bin", "prefix", "query")},
        **{s: R for s in ("-v", "--version", "-h", "--help")},
        "help": {"effect": R, "options": (), "why": "shows a manual page (any option could choose a viewer "
                                                   "program)"},
        "fund": {**_NPM_READ, "positional_max": 0},
        **{s: {"effect": U, "why": "opens the package's page with the browser program (--browser names any "
                                   "program)"} for s in ("docs", "home", "repo", "bugs", "issues")},
        "doctor": {"effect": W, "why": "verifies and garbage-collects the npm cache"},
        "config": {"subcommands": {"get": _NPM_READ, "list": _NPM_READ, "ls": _NPM_READ}, "other": W},
        "audit": {**_NPM_READ, "subcommands": {"fix": W, "signatures": _NPM_READ}, "bare": R, "other": U},
        "version": {"bare": R, "positional_max": 0, "other": W},
        "cache": {"subcommands": {"ls": R}, "other": W},
        **{s: {"flags": {"--dry-run": R, "--ignore-scripts": R}, "effect": W, "read_needs": ("--ignore-scripts",),
               "nopt": True, "options": _NPM_READ["options"] + ("--ignore-scripts", "--provenance",
                                                                 "--foreground-scripts"),
               "option_values": _NPM_READ["option_values"] + ("--access", "--otp", "--pack-destination",
                                                               "--provenance-file"),
               "read_needs_why": "--dry-run still runs the package's lifecycle scripts (prepack, prepare, "
                                 "prepublishOnly) unless --ignore-scripts is also given"}
           for s in ("pack", "publish")},
        **{s: W for s in ("install", "i", "ci", "uninstall", "rm", "remove", "un", "update", "up", "upgrade",
                          "link", "ln", "init", "create", "dedupe", "prune", "rebuild", "unpublish", "deprecate",
                          "dist-tag", "owner", "access", "login", "logout", "adduser", "set", "pkg", "shrinkwrap",
                          "star", "unstar", "team", "token", "hook", "org", "edit")},
        **{s: U for s in ("run", "run-script", "test", "t", "start", "stop", "restart")},
        "exec": PACKAGE_RUNNERS["npx"], "x": PACKAGE_RUNNERS["npx"],
    }, "values": ("--prefix", "-C", "--workspace", "-w", "--registry"), "other": U, "bare": R},
    "pnpm": {"subcommands": {**{s: _PNPM_READ for s in ("ls", "list", "outdated", "why", "view", "info", "root",
                                                          "bin")},
                             **{s: R for s in ("--version", "-v", "help")},
                             "audit": {**_PNPM_READ, "flags": {"--fix": W}},
                             "licenses": {"subcommands": {"list": _PNPM_READ, "ls": _PNPM_READ}, "other": U},
                             "store": {"subcommands": {"path": R, "status": R}, "other": W,
                                       "why": "store prune and add change the shared store"},
                             "config": {"subcommands": {"get": R, "list": R}, "other": W},
                             **{s: W for s in ("install", "i", "add", "remove", "rm", "update", "up", "link",
                                               "unlink", "prune", "import", "publish", "init")},
                             "exec": PACKAGE_RUNNERS["pnpm exec"], "dlx": PACKAGE_RUNNERS["pnpm dlx"]},
             "other": U, "bare": W, "values": ("-C", "--dir", "--filter", "-F")},
    "yarn": {"subcommands": {**{s: _YARN_READ for s in ("list", "info", "why", "outdated", "bin", "audit")},
                             **{s: R for s in ("--version", "-v", "help")},
                             "licenses": {"subcommands": {"list": _YARN_READ, "ls": _YARN_READ,
                                                          "generate-disclaimer": _YARN_READ}, "other": U},
                             "config": {"subcommands": {"get": _YARN_READ, "list": _YARN_READ},
                                        "other": W, "why": "config set/delete change the yarn settings"},
                             "workspaces": {"subcommands": {"info": _YARN_READ, "list": _YARN_READ},
                                            "other": U, "why": "workspaces run/foreach run scripts"},
                             "cache": {"subcommands": {"dir": R, "list": _YARN_READ}, "other": W},
                             "global": {"subcommands": {"list": _YARN_READ, "bin": R, "dir": R}, "other": W},
                             "npm": {"subcommands": {"info": _YARN_READ, "whoami": _YARN_READ, "audit": _YARN_READ},
                                     "other": W},
                             **{s: W for s in ("install", "add", "remove", "upgrade", "up", "link", "unlink",
                                               "publish", "init", "import")},
                             "exec": PACKAGE_RUNNERS["yarn exec"], "dlx": PACKAGE_RUNNERS["yarn dlx"]},
             "other": U, "bare": W, "values": ("--cwd",)},
    "pip": {"subcommands": {**{s: R for s in ("list", "show", "freeze", "check", "search", "index", "help",
                                               "debug", "inspect", "--version", "-V")},
                            "config": {"subcommands": {"list": R, "get": R, "debug": R}, "other": W},
                            "cache": {"subcommands": {"list": R, "info": R, "dir": R}, "other": W},
                            **{s: W for s in ("install", "uninstall", "download", "wheel")}},
            # pip's general options (pip --help), before or after the subcommand: --log and
            # --log-file write a file, --python runs another interpreter, --cache-dir fills a folder.
            "flags": {"--log": W, "--log-file": W, "--python": U, "--cache-dir": U},
            "values": ("--python", "--log", "--log-file", "--cache-dir", "--proxy", "--retries", "--timeout",
                       "--exists-action", "--trusted-host", "--cert", "--client-cert", "--use-feature",
                       "--use-deprecated", "--keyring-provider", "--resume-retries"),
            "global_flags": ("-h", "--help", "--debug", "--isolated", "--require-virtualenv", "-v", "--verbose",
                             "-V", "--version", "-q", "--quiet", "--no-input", "--no-cache-dir",
                             "--disable-pip-version-check", "--no-color", "--no-python-version-warning")},
    "apt": {"subcommands": {**{s: R for s in ("list", "search", "show", "policy", "depends", "rdepends",
                                               "changelog", "-v", "--version", "help")}},
            "other": W, "values": ("-o", "-c", "-t")},
    "apt-get": {"subcommands": {"check": R, "changelog": R, "-v": R, "--version": R}, "other": W,
                "values": ("-o", "-c", "-t"), "flags": {"-s": R, "--simulate": R, "--dry-run": R}},
    # apt-cache gencaches builds the package caches; the rest query them.
    "apt-cache": {"subcommands": {s: R for s in ("show", "search", "policy", "depends", "rdepends", "showpkg",
                                                 "showsrc", "stats", "dump", "dumpavail", "pkgnames", "madison",
                                                 "unmet", "xvcg", "dotty", "--version", "-v", "help")},
                  "other": U, "values": ("-o", "-c")},
    "dpkg": {"handler": "only_flags", "read_flags": ("-l", "--list", "-L", "--listfiles", "-s", "--status", "-S",
                                                     "--search", "-p", "--print-avail", "--print-architecture",
                                                     "--print-foreign-architectures", "--get-selections",
                                                     "--version", "--help", "-V", "--verify")},
    "dpkg-query": R,
    "brew": {"subcommands": {**{s: R for s in ("list", "ls", "info", "search", "outdated", "config", "doctor",
                                                "--version", "deps", "uses", "leaves", "desc", "home", "log",
                                                "--prefix", "--cellar", "--cache", "commands", "help")}},
             "other": W},
    "yum": {"subcommands": {**{s: R for s in ("list", "info", "search", "provides", "check-update", "repolist",
                                              "deplist")},
                            "history": {"subcommands": {"list": R, "info": R, "summary": R}, "bare": R, "other": W}},
            "other": W},
    "dnf": {"subcommands": {**{s: R for s in ("list", "info", "search", "provides", "check-update", "repolist",
                                              "repoquery")},
                            "history": {"subcommands": {"list": R, "info": R}, "bare": R, "other": W}},
            "other": W},
    # Services.
    "systemctl": {"subcommands": {**{s: R for s in ("status", "show", "is-active", "is-enabled", "is-failed",
                                                     "list-units", "list-unit-files", "list-timers",
                                                     "list-sockets", "list-dependencies", "cat", "--version",
                                                     "get-default", "help")}},
                  "other": W, "bare": R, "values": ("-H", "--host", "-M", "--machine", "-t", "--type",
                                                     "--state", "-p", "--property", "-n", "--lines", "-o")},
    "service": {"handler": "service"},
    # Version control and forges.
    "git": {
        "values": ("-C", "--git-dir", "--work-tree", "--namespace", "--super-prefix"),
        "global_flags": ("--no-pager", "-P", "--paginate", "--no-optional-locks", "--bare", "--literal-pathspecs",
                         "--glob-pathspecs", "--noglob-pathspecs", "--icase-pathspecs", "--no-replace-objects",
                         "--version", "--help", "-h"),
        "flags": {"-c": U, "--config-env": U, "--exec-path": U, "--output": W, "-O": U, "--open-files-in-pager": U,
                  "--ext-diff": U, "--upload-pack": U, "--receive-pack": U, "--exec": U, "-u": U,
                  "--lost-found": W, "--write": W},
        "subcommands": {
            **{s: R for s in ("status", "log", "diff", "show", "rev-parse", "ls-files", "ls-remote", "blame",
                              "annotate", "describe", "shortlog", "rev-list", "cat-file", "ls-tree", "grep",
                              "whatchanged", "show-ref", "for-each-ref", "name-rev", "merge-base", "cherry",
                              "count-objects", "help", "version", "--version", "var", "check-ignore",
                              "check-attr", "diff-tree", "diff-files", "diff-index", "range-diff", "show-branch",
                              "verify-commit", "verify-tag", "check-ref-format", "get-tar-commit-id")},
            "branch": {"flags": {"-d": W, "-D": W, "--delete": W, "-m": W, "-M": W, "--move": W, "-c": W, "-C": W,
                                 "--copy": W, "-u": W, "--set-upstream-to": W, "--unset-upstream": W,
                                 "--edit-description": W, "-f": W, "--force": W},
                       "values": ("--sort", "--format", "--contains", "--no-contains", "--merged", "--no-merged",
                                  "--points-at"),
                       "positional_max": 0},
            "tag": {"flags": {"-d": W, "--delete": W, "-a": W, "-s": W, "-f": W, "-m": W, "-F": W},
                    "values": ("--sort", "--format", "--contains", "--no-contains", "--merged", "--no-merged",
                               "--points-at", "-n"),
                    "positional_max": 0, "list_flags": ("-l", "--list", "-v", "--verify")},
            "remote": {"subcommands": {"show": R, "get-url": R, "-v": R, "--verbose": R}, "bare": R, "other": W},
            "config": {"handler": "git_config"},  # its options and 2.46+ subcommands: _git_config
            "fsck": {"flags": {"--lost-found": W}},
            "stash": {"subcommands": {"list": R, "show": R}, "other": W, "bare": W},
            "reflog": {"subcommands": {"show": R, "exists": R}, "other": W, "bare": R},
            "worktree": {"subcommands": {"list": R}, "other": W},
            "submodule": {"subcommands": {"status": R, "summary": R, "foreach": U}, "other": W, "bare": R},
            "notes": {"subcommands": {"list": R, "show": R}, "other": W, "bare": R},
            "lfs": {"subcommands": {"ls-files": R, "status": R, "env": R, "version": R}, "other": W},
            "apply": {"flags": {"--check": R, "--stat": R, "--numstat": R, "--summary": R}, "effect": W,
                      "flags_lower": True},
            "archive": {"flags": {"-o": W, "--output": W, "--remote": R}},
            "bisect": {"subcommands": {"log": R, "visualize": U, "view": U}, "other": W},
            "help": {"flags": {"-w": U, "--web": U}},
            **{s: W for s in ("add", "commit", "push", "pull", "fetch", "merge", "rebase", "reset", "checkout",
                              "switch", "restore", "clean", "init", "clone", "am", "cherry-pick", "revert", "mv",
                              "rm", "gc", "prune", "repack", "update-index", "update-ref", "symbolic-ref",
                              "replace", "filter-branch", "fast-import", "mergetool", "format-patch", "pack-refs",
                              "commit-tree", "write-tree", "read-tree", "hash-object", "sparse-checkout",
                              "maintenance", "rerere")},
            "difftool": U, "instaweb": U, "daemon": U, "send-email": X, "request-pull": R,
        },
        "bare": R,
    },
    "gh": {
        "values": ("-R", "--repo", "--hostname"),
        "subcommands": {
            "api": {"handler": "gh_api"},
            "pr": {"subcommands": {**{s: R for s in ("list", "status", "diff", "checks")}, "view": _GH_VIEW,
                                   "checkout": W, **{s: W for s in ("create", "merge", "close", "reopen", "edit",
                                                                    "ready", "review", "lock", "unlock",
                                                                    "update-branch", "revert")},
                                   "comment": W}},
            "issue": {"subcommands": {**{s: R for s in ("list", "status")}, "view": _GH_VIEW,
                                      **{s: W for s in ("create", "close", "comment", "edit", "delete", "reopen",
                                                        "transfer", "pin", "unpin", "lock", "unlock", "develop")}}},
            "repo": {"subcommands": {"view": _GH_VIEW, "list": R, "clone": W, "fork": W, "create": W, "delete": W,
                                     "edit": W, "rename": W, "archive": W, "unarchive": W, "sync": W,
                                     "set-default": W, "deploy-key": {"subcommands": {"list": R}, "other": W},
                                     "gitignore": R, "license": R}},
            "run": {"subcommands": {"list": R, "view": R, "watch": R, "download": W, "rerun": W, "cancel": W,
                                    "delete": W}},
            "workflow": {"subcommands": {"list": R, "view": R, "run": W, "enable": W, "disable": W}},
            "release": {"subcommands": {"list": R, "view": R, "download": W, "create": W, "delete": W, "edit": W,
                                        "upload": W, "delete-asset": W}},
            "auth": {"subcommands": {"status": R, "token": R}, "other": W},
            "search": R, "status": R, "browse": R, "--version": R, "version": R, "help": R,
            "gist": {"subcommands": {"list": R, "view": R}, "other": W},
            "secret": {"subcommands": {"list": R}, "other": W},
            "variable": {"subcommands": {"list": R, "get": R}, "other": W},
            "label": {"subcommands": {"list": R}, "other": W},
            "cache": {"subcommands": {"list": R}, "other": W},
            "project": {"subcommands": {"list": R, "view": R, "item-list": R, "field-list": R}, "other": W},
            "extension": {"subcommands": {"list": R, "search": R, "browse": R}, "other": W},
            "config": {"subcommands": {"get": R, "list": R}, "other": W},
            "codespace": {"subcommands": {"list": R, "view": R, "logs": R}, "other": W},
        },
    },
    # Containers, clusters, infrastructure.
    "docker": {"subcommands": {
        **{s: R for s in ("ps", "images", "inspect", "logs", "version", "info", "stats", "top", "history", "port",
                          "diff", "events", "search", "--version", "help")},
        **{grp: {"subcommands": {"ls": R, "list": R, "inspect": {"flags": {"--bootstrap": W}}, "ps": R, "logs": R,
                                 "top": R, "config": {"flags": {"-o": W, "--output": W}}, "images": R, "version": R,
                                 "history": R, "port": R, "stats": R, "df": R, "events": R},
                 "other": W, "values": ("-f", "--file", "-p", "--project-name", "--env-file", "--profile",
                                        "--project-directory", "--ansi", "--progress")}
           for grp in ("image", "network", "volume", "compose", "context", "buildx", "system",
                       "node", "service", "secret", "config", "plugin", "stack", "swarm", "manifest")},
        "container": {"subcommands": {"ls": R, "list": R, "inspect": R, "ps": R, "logs": R, "top": R, "port": R,
                                      "stats": R, "diff": R, "exec": {"handler": "remote_exec"}}, "other": W},
        "exec": {"handler": "remote_exec"}, "run": U,
    }, "other": W, "values": ("-H", "--host", "--context", "-c", "--config", "-l", "--log-level")},
    "docker-compose": {"subcommands": {**{s: R for s in ("ps", "logs", "images", "top", "version", "port", "events")},
                                       "config": {"flags": {"-o": W, "--output": W}}}, "other": W,
                       "values": ("-f", "--file", "-p", "--project-name", "--env-file", "--profile")},
    "kubectl": {
        # A kubeconfig named on the command line may come from the project: its users'
        # exec credential plugins and auth providers run programs. The kustomize options that
        # run programs are unknown wherever they appear (kubectl rejects them on subcommands
        # other than kustomize, whose entry allows only the options _KUSTOMIZE_BUILD lists).
        "flags": {"--kubeconfig": U, **{o: U for o in _KUSTOMIZE_RUNS}},
        "values": ("-n", "--namespace", "--context", "--cluster", "--kubeconfig", "-s", "--server", "--user",
                   "--token", "--as", "--as-group", "-l", "--selector", "-o", "--output", "--field-selector",
                   "-c", "--container", "--request-timeout", "--sort-by", "--template"),
        "subcommands": {
            **{s: R for s in ("get", "describe", "logs", "top", "explain", "version", "api-resources",
                              "api-versions", "diff", "events", "wait", "completion", "help", "plugin")},
            "kustomize": _KUSTOMIZE_BUILD(("-n", "--namespace", "--context", "--cluster", "--user", "-s", "--server",
                                           "--as", "--as-group", "--token", "--request-timeout", "-v", "--v")),
            "cluster-info": {"subcommands": {"dump": W}, "bare": R, "other": U},
            "config": {"subcommands": {"view": R, "get-contexts": R, "current-context": R, "get-clusters": R,
                                       "get-users": R}, "other": W},
            "auth": {"subcommands": {"can-i": R, "whoami": R}, "other": W},
            "rollout": {"subcommands": {"status": R, "history": R}, "other": W},
            "certificate": W,
            **{s: {"effect": W, "flags": {"--dry-run": R}}
               for s in ("apply", "create", "delete", "edit", "patch", "replace", "scale", "autoscale", "label",
                         "annotate", "expose", "run", "set", "cordon", "uncordon", "drain", "taint")},
            "cp": W,
            "exec": {"handler": "remote_exec"},
            **{s: U for s in ("attach", "port-forward", "proxy", "debug")},
        },
    },
    "kustomize": {"subcommands": {
        "build": _KUSTOMIZE_BUILD(("--stack-trace",)),
        **{s: R for s in ("version", "help", "completion", "--help", "-h", "--version")},
        "cfg": {"subcommands": {s: R for s in ("cat", "tree", "grep", "count", "help")}, "other": U},
        **{s: W for s in ("create", "edit", "init", "localize")},
    }, "other": U},
    "helm": {"subcommands": {
        **{s: R for s in ("list", "ls", "status", "history", "show", "inspect", "search", "version", "lint", "env",
                          "verify", "help")},
        "template": {"flags": {"--output-dir": W, "--post-renderer": U, "--dependency-update": W}},
        "get": R,
        "repo": {"subcommands": {"list": R, "ls": R}, "other": W},
        "dependency": {"subcommands": {"list": R, "ls": R}, "other": W},
        "plugin": {"subcommands": {"list": R, "ls": R}, "other": W},
        # --dependency-update downloads charts into the chart's folder, also in a dry run
        **{s: {"effect": W, "flags": {"--dry-run": R, "--post-renderer": U, "--dependency-update": W}}
           for s in ("install", "upgrade", "uninstall", "delete", "del", "rollback")},
        **{s: W for s in ("package", "push", "pull", "create", "test")},
    }, "values": ("-n", "--namespace", "--kube-context", "--kubeconfig"), "flags": {"--kubeconfig": U}},
    "terraform": {"handler": "terraform"},
    "tofu": {"handler": "terraform"},
    "aws": {"handler": "aws"},
    "gcloud": {"handler": "gcloud"},
    "az": {"handler": "az"},
    "gsutil": {"subcommands": {s: R for s in ("ls", "cat", "du", "stat", "hash", "version", "help", "ls-buckets")},
               "other": W, "values": ("-o", "-h", "-u")},
    "wrangler": {"handler": "wrangler"},
    # Databases and key-value stores: the statement decides.
    "psql": {"handler": "psql"},
    "mysql": {"handler": "mysql"}, "mariadb": {"handler": "mysql"},
    "sqlite3": {"handler": "sqlite3"},
    "redis-cli": {"handler": "redis_cli"}, "valkey-cli": {"handler": "redis_cli"},
    "mongosh": {"flags": {"--version": R, "--help": R}, "effect": U},
    "mongo": {"flags": {"--version": R, "--help": R}, "effect": U},
    "pg_dump": {"flags": {"-f": W, "--file": W}},
    "mysqldump": {"flags": {"-r": W, "--result-file": W, "-T": W, "--tab": W}},
    "pg_restore": {"flags": {"-l": R, "--list": R}, "effect": W},
    # HTTP clients: the method decides.
    "curl": {"handler": "curl"},
    "wget": {"handler": "wget"},
    "http": {"handler": "httpie"}, "https": {"handler": "httpie"}, "xh": {"handler": "httpie"},
    # Package runners: the command they resolve and run (PACKAGE_RUNNERS).
    "npx": PACKAGE_RUNNERS["npx"], "pnpx": PACKAGE_RUNNERS["pnpm dlx"], "bunx": PACKAGE_RUNNERS["bunx"],
    "bun": {"subcommands": {"x": PACKAGE_RUNNERS["bunx"], "--version": R, "-v": R}, "other": U, "bare": U},
    "uvx": PACKAGE_RUNNERS["uvx"],
    "uv": {"subcommands": {"tool": {"subcommands": {"run": PACKAGE_RUNNERS["uvx"], "list": R, "dir": R},
                                    "other": U},
                           "--version": R, "version": R}, "other": U, "bare": U},
    "pipx": {"subcommands": {"run": PACKAGE_RUNNERS["pipx run"], "list": R, "--version": R, "environment": R},
             "other": W, "bare": U},
    # Programs that run another command.
    **{name: {"handler": "wrapper"} for name in (
        "sudo", "doas", "env", "time", "timeout", "nice", "nohup", "stdbuf", "ionice", "command", "xargs",
        "watch", "caffeinate", "flock", "chronic", "unbuffer", "setsid", "taskset", "chrt")},
    **{name: {"handler": "shell"} for name in ("bash", "sh", "zsh", "dash", "ksh", "fish")},
    "ssh": {"handler": "remote_exec"},
    "drygate": {"subcommands": {"runs": R, "plan": R, "alerts": R, "doctor": R, "replay": R, "explain": R,
                                "--version": R, "--help": R}, "other": W},
}
COMMANDS["pip3"] = COMMANDS["pip"]
