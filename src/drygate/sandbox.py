"""OS sandboxes: the line of a dry run that does not depend on reading a command.

The classifiers decide what a call does from its text; a rule or a table that gets a
command wrong lets a write through as a "read". Where the operating system can refuse
the write itself, a dry run also runs under a sandbox, so a misread command still cannot
land a file. Two places (see docs/defence-in-depth.md):

1. **Claude Code's Bash sandbox** (bubblewrap + socat on Linux), turned on by settings
   that drygate passes to the host when a run is dry from its start
   (:func:`claude_settings`, used by ``drygate run`` and ``drygate init``). Measured with
   the real CLI, offline (tests/e2e/test_sandbox_e2e.py):

   - 2.1.x (2.1.332): a folder given with ``--add-dir`` is writable in the sandbox too (so
     ``drygate run`` adds those to ``denyWrite``: :func:`added_dirs`);
     honours ``sandbox.enabled``, ``sandbox.failIfUnavailable`` (the CLI
     refuses to start, exit 1, when bubblewrap is missing), ``sandbox.allowUnsandboxedCommands``
     (false: ``dangerouslyDisableSandbox`` and ``sandbox.excludedCommands`` still run
     sandboxed), ``sandbox.filesystem.denyWrite`` (absolute paths; ``"."`` is NOT the
     working folder) and ``sandbox.network.allowedDomains``.
   - 2.0.x (2.0.77): has the sandbox (``enabled``, ``allowUnsandboxedCommands``,
     ``excludedCommands``, ``network.allowedDomains``) but no ``failIfUnavailable`` (it runs
     unsandboxed, silently, without bubblewrap: ``drygate run`` checks bubblewrap itself before
     it starts such a CLI) and no ``sandbox.filesystem`` (ignored). Its sandbox always leaves the
     working folder writable; the only way to close it is a ``permissions.deny`` rule
     ``Edit(//<abs path>)``, and 2.0.77 checks such a rule *before* the PreToolUse hook, so a dry
     run's Write and Edit calls would be refused by the host, never reach drygate and be missing
     from the plan (measured). So drygate does not add it: with 2.0 the sandbox covers writes
     outside the project and the network; inside the project a dry run relies on the classifier.
   - Both: without ``allowedDomains`` Bash has no network (2.1: the host's proxy answers 403;
     2.0: no name resolution), and 127.0.0.1 is unreachable. Writable inside the sandbox
     stay only the host's own scratch folders (``/tmp/claude``, ``/tmp/claude-<uid>``,
     ``~/.claude/debug``, ``~/.npm/_logs`` and, in 2.1, a few more under ``~/.claude``).
     Write, Edit and MCP tools are not sandboxed (the hook and the relay decide them).
     Both accept the settings on the command line (``--settings JSON``) and in
     ``.claude/settings.json``.

2. **The relay's shadow servers** (drygate.relay.shadow) run under bubblewrap
   (:func:`server_prefix`): the whole file system read-only, their copy of the state and
   a scratch folder inside it writable, and (unless allowed) no network. A SQL tool's
   ``VACUUM INTO '/any/file'`` or ``ATTACH`` cannot write outside the copy.

Where bubblewrap cannot run, :func:`bwrap_status` says why; ``drygate doctor`` reports it
(:func:`doctor_checks`) together with what a dry run relies on then.
"""

import json
import os
import re
import shutil
import subprocess

#: Claude Code versions whose settings keys were measured (tests/e2e/test_sandbox_e2e.py).
MEASURED_CLI = ("2.1.332", "2.0.77")
#: The first release measured with ``failIfUnavailable`` and ``sandbox.filesystem``; older ones
#: are treated like 2.0 (the project stays writable by Bash; drygate checks bubblewrap itself).
FULL_SANDBOX_CLI = (2, 1, 332)
#: The oldest CLI measured to have a Bash sandbox at all.
OLDEST_SANDBOX_CLI = (2, 0, 77)

_bwrap_cache = {}


class SandboxUnavailable(Exception):
    """The OS sandbox cannot run here. ``reason``: one sentence (what is missing and how to fix it)."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


# -- bubblewrap ------------------------------------------------------------------------------
def bwrap_status():
    """``(path | None, None | why)``: the bubblewrap executable and whether it can make a sandbox.

    Probed once per process by running ``bwrap --ro-bind / / --dev /dev true`` (needs
    unprivileged user namespaces when not root). ``why`` is a sentence when it cannot.
    """
    if "status" not in _bwrap_cache:
        path = shutil.which("bwrap")
        if path is None:
            why = "bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt-get install bubblewrap socat)"
        else:
            try:
                probe = subprocess.run([path, "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-net", "true"],
                                       capture_output=True, text=True, timeout=10)
                why = None if probe.returncode == 0 else (
                    f"bubblewrap cannot make a sandbox here: {probe.stderr.strip()[:200] or probe.returncode} "
                    "(unprivileged user namespaces may be disabled, or a container forbids them)")
            except (OSError, subprocess.TimeoutExpired) as e:
                why = f"bubblewrap cannot make a sandbox here ({e})"
        _bwrap_cache["status"] = (path, why)
    return _bwrap_cache["status"]


def server_prefix(writable, network=False, cwd=None, scratch=None):
    """The argv prefix that runs a server under bubblewrap with only ``writable`` writable.

    ``writable``: absolute folders (list of str) bound read-write; everything else is the
    host's file system read-only, with a private ``/dev``. ``network``: False (default) gives
    the server a network namespace of its own (no interface but a loopback), True keeps the
    host's. ``cwd``: the folder the server starts in. ``scratch``: a folder (one of, or inside,
    ``writable``) given as ``TMPDIR``, so temporary files land in the copy.
    Raises :class:`SandboxUnavailable` when bubblewrap is missing or cannot run.
    """
    path, why = bwrap_status()
    if why:
        raise SandboxUnavailable(why)
    argv = [path, "--ro-bind", "/", "/", "--dev", "/dev"]
    for folder in writable:
        argv += ["--bind", folder, folder]
    if not network:
        argv.append("--unshare-net")
    if scratch:
        argv += ["--setenv", "TMPDIR", scratch, "--setenv", "SQLITE_TMPDIR", scratch]
    if cwd:
        argv += ["--chdir", cwd]
    argv += ["--die-with-parent", "--"]
    return argv


# -- Claude Code -----------------------------------------------------------------------------
def is_claude(argv0):
    """True when ``argv0`` (a command's first word) starts the Claude Code CLI (``claude``)."""
    return os.path.basename(argv0 or "") in ("claude", "claude.exe")


def claude_version(argv0, timeout_s=30):
    """The version of the Claude Code CLI at ``argv0`` as a tuple of ints, or None.

    Runs ``<argv0> --version`` (it prints e.g. ``2.1.332 (Claude Code)``); None when the
    command is missing, fails or prints no version.
    """
    exe = argv0 if os.sep in argv0 else shutil.which(argv0)
    if not exe:
        return None
    try:
        proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"\b(\d+)\.(\d+)\.(\d+)\b", proc.stdout or "")
    return tuple(int(x) for x in m.groups()) if m else None


def sandbox_options(policy):
    """The policy's ``[sandbox]`` table (compiled) with its defaults: ``{"enabled", "allowed_domains"}``."""
    options = dict((policy or {}).get("sandbox") or {})
    options.setdefault("enabled", True)
    options.setdefault("allowed_domains", ())
    return options


def claude_settings(read_only, allowed_domains=()):
    """Claude Code settings (dict) that run Bash in the OS sandbox with ``read_only`` unwritable.

    ``read_only``: absolute folders (the project, the working folder) the sandbox would
    otherwise leave writable; ``allowed_domains``: hosts Bash may reach (none by default).
    The same settings for every version (a settings file may outlive the CLI it was written
    for): 2.1 honours all of them; 2.0 ignores ``failIfUnavailable`` and ``filesystem``, so its
    project stays writable by Bash (module docstring: why no Edit deny rule is added).
    """
    folders = sorted({os.path.abspath(p) for p in read_only})
    return {"sandbox": {"enabled": True, "failIfUnavailable": True, "allowUnsandboxedCommands": False,
                        "filesystem": {"denyWrite": folders},
                        "network": {"allowedDomains": list(allowed_domains)}}}


def added_dirs(argv):
    """The folders a ``claude`` command line gives with ``--add-dir`` (list of absolute paths).

    ``--add-dir <directories...>`` takes every following word up to the next option, and
    ``--add-dir=DIR`` one. Measured with 2.1.332: such a folder is writable in the sandbox
    unless it is also in ``sandbox.filesystem.denyWrite`` (``permissions.additionalDirectories``
    in the project settings is not).
    """
    found = []
    words = list(argv[1:])
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--":
            break
        if word.startswith("--add-dir="):
            found.append(word.partition("=")[2])
        elif word == "--add-dir":
            while i < len(words) and not words[i].startswith("-"):
                found.append(words[i])
                i += 1
    return [os.path.abspath(p) for p in found if p]


def merge_settings(base, extra):
    """``base`` settings (dict) with ``extra`` merged in: objects merged key by key, lists joined
    (without duplicates), other values replaced by ``extra``'s. Pure."""
    out = dict(base)
    for key, value in extra.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            out[key] = merge_settings(old, value)
        elif isinstance(old, list) and isinstance(value, list):
            out[key] = old + [v for v in value if v not in old]
        else:
            out[key] = value
    return out


def with_settings(argv, settings):
    """``argv`` of a ``claude`` command with ``settings`` (dict) passed as ``--settings JSON``.

    A ``--settings`` the command already has (a file or JSON text) is read and merged
    with ``settings`` (drygate's keys win), so there is one flag. Raises ValueError when
    that value cannot be read as a JSON object.
    """
    argv = list(argv)
    for i, word in enumerate(argv[1:], 1):
        value, at = None, None
        if word == "--settings" and i + 1 < len(argv):
            value, at = argv[i + 1], (i, 2)
        elif word.startswith("--settings="):
            value, at = word.partition("=")[2], (i, 1)
        if at is None:
            continue
        text = value
        if not value.lstrip().startswith("{"):
            try:
                with open(value, encoding="utf-8") as f:
                    text = f.read()
            except OSError as e:
                raise ValueError(f"--settings {value}: {e.strerror or e}") from e
        try:
            given = json.loads(text)
        except ValueError as e:
            raise ValueError(f"--settings {value[:80]}: not JSON ({e})") from e
        if not isinstance(given, dict):
            raise ValueError(f"--settings {value[:80]}: not a JSON object")
        merged = json.dumps(merge_settings(given, settings), separators=(",", ":"))
        argv[at[0]:at[0] + at[1]] = ["--settings", merged]
        return argv
    return [argv[0], "--settings", json.dumps(settings, separators=(",", ":")), *argv[1:]]


def check_claude_sandbox(version):
    """Raise :class:`SandboxUnavailable` when Claude Code ``version`` (tuple or None) cannot run
    its Bash sandbox here: bubblewrap or socat missing, or a CLI without a sandbox.

    2.1.332 and later refuse to start without bubblewrap themselves (``failIfUnavailable``);
    older ones would run Bash unsandboxed, silently, so drygate checks before it starts them.
    """
    if version is not None and version < OLDEST_SANDBOX_CLI:
        raise SandboxUnavailable(f"Claude Code {'.'.join(map(str, version))} has no Bash sandbox drygate "
                                 f"knows (measured: {', '.join(MEASURED_CLI)})")
    _, why = bwrap_status()
    if why:
        raise SandboxUnavailable(why)
    if shutil.which("socat") is None:
        raise SandboxUnavailable("socat is not installed (Claude Code's sandbox needs it for its network proxy; "
                                 "Debian/Ubuntu: apt-get install socat)")


def settings_sandboxed(settings, project_dir):
    """True when Claude Code ``settings`` (dict) hold drygate's dry-run sandbox for ``project_dir``."""
    sandbox = settings.get("sandbox") if isinstance(settings, dict) else None
    if not isinstance(sandbox, dict) or sandbox.get("enabled") is not True:
        return False
    fs = sandbox.get("filesystem")
    deny = fs.get("denyWrite") if isinstance(fs, dict) else None
    return isinstance(deny, list) and os.path.abspath(project_dir) in deny


def without_sandbox(settings, project_dir):
    """``settings`` (dict) without the keys :func:`claude_settings` adds for ``project_dir``. Pure."""
    project = os.path.abspath(project_dir)
    out = dict(settings)
    sandbox = out.pop("sandbox", None)
    if isinstance(sandbox, dict):
        kept = {k: v for k, v in sandbox.items()
                if k not in ("enabled", "failIfUnavailable", "allowUnsandboxedCommands", "filesystem", "network")}
        fs = sandbox.get("filesystem")
        if isinstance(fs, dict):
            fs = dict(fs, denyWrite=[p for p in fs.get("denyWrite") or [] if p != project])
            fs = {k: v for k, v in fs.items() if v}
            if fs:
                kept["filesystem"] = fs
        if kept:
            out["sandbox"] = kept
    return out


def sync_project_settings(project_dir, policy, settings_name="settings.json"):
    """Make ``<project>/.claude/<settings_name>`` carry the dry-run sandbox exactly when the
    policy's runs are all dry from their start (``[run] mode = "dry"``, ``[sandbox] enabled``).

    Returns ``"added"``, ``"removed"`` or None (nothing to change). Keeps every other setting.
    Raises ValueError when the file is not a JSON object (it is then left as it is).
    """
    from drygate.enforcement.install import read_settings_file, write_settings_file

    path = os.path.join(os.path.abspath(project_dir), ".claude", settings_name)
    settings = read_settings_file(path)
    options = sandbox_options(policy)
    want = policy.get("mode") == "dry" and options["enabled"]
    has = settings_sandboxed(settings, project_dir)
    if want:
        new = merge_settings(without_sandbox(settings, project_dir),
                             claude_settings([project_dir], options["allowed_domains"]))
        if new == settings:
            return None
        change = "added"
    elif has:
        new, change = without_sandbox(settings, project_dir), "removed"
    else:
        return None
    write_settings_file(path, new)
    return change


# -- doctor ----------------------------------------------------------------------------------
#: Settings layers that take precedence over the project's .claude/settings.json (measured with
#: 2.1.332 and 2.0.77: .claude/settings.local.json beats it; `--settings` beats both; managed
#: settings beat everything, by Claude Code's documented precedence).
MANAGED_SETTINGS = ("/etc/claude-code/managed-settings.json",
                    "/Library/Application Support/ClaudeCode/managed-settings.json")


def override_layers(project_dir):
    """Settings files that switch the sandbox off above the project's settings (list of paths):
    ``.claude/settings.local.json`` and the managed settings, when they set ``sandbox.enabled``
    to false."""
    found = []
    for path in (os.path.join(project_dir, ".claude", "settings.local.json"), *MANAGED_SETTINGS):
        try:
            with open(path, encoding="utf-8") as f:
                layer = json.load(f)
        except (OSError, ValueError):
            continue
        sandbox = layer.get("sandbox") if isinstance(layer, dict) else None
        if isinstance(sandbox, dict) and sandbox.get("enabled") is False:
            found.append(path)
    return found

RELIES_ON = ("the classifier and self-protection alone: a command the classifier misreads as a read "
             "can write (see docs/defence-in-depth.md)")


def doctor_checks(project_dir, policy, claude="claude"):
    """``drygate doctor``'s sandbox section: list of check dicts
    (``{"check", "status", "detail", "fix"}``, as drygate.doctor).

    Says whether bubblewrap and socat can run here, which Claude Code CLI is on PATH and
    whether it has the sandbox, whether the project settings match the policy's mode, and
    whether the relay's shadow servers can be sandboxed; where a line cannot run, what a
    dry run relies on instead.
    """
    def check(name, status, detail, fix=None):
        return {"check": name, "status": status, "detail": detail, "fix": fix}

    checks = []
    options = sandbox_options(policy)
    path, why = bwrap_status()
    socat = shutil.which("socat")
    version = claude_version(claude) if shutil.which(claude) or os.sep in claude else None
    shown = ".".join(map(str, version)) if version else None
    if not options["enabled"]:
        checks.append(check("bash sandbox", "warn", f"[sandbox] enabled = false: dry runs rely on {RELIES_ON}",
                            "remove `enabled = false` from [sandbox] in drygate.toml"))
    elif why or socat is None:
        missing = why or "socat is not installed"
        checks.append(check("bash sandbox", "warn",
                            f"Claude Code's Bash sandbox cannot run here ({missing}); `drygate run --mode dry -- claude` "
                            f"refuses to start, and a dry run otherwise relies on {RELIES_ON}",
                            "apt-get install bubblewrap socat"))
    elif version is None:
        checks.append(check("bash sandbox", "ok",
                            f"bubblewrap ({path}) and socat ({socat}) work; no `{claude}` on PATH to check its version "
                            "(2.1.332 or later: everything read-only but the host's scratch; 2.0: the project stays "
                            "writable by Bash)"))
    elif version < OLDEST_SANDBOX_CLI:
        checks.append(check("bash sandbox", "warn", f"Claude Code {shown} has no Bash sandbox drygate knows: dry runs "
                                                    f"rely on {RELIES_ON}", "upgrade Claude Code"))
    else:
        network = ", ".join(options["allowed_domains"]) or "none"
        if version >= FULL_SANDBOX_CLI:
            checks.append(check("bash sandbox", "ok", f"runs dry from their start run Bash under bubblewrap ({path}, "
                                                      f"socat {socat}); Claude Code {shown}: everything read-only but "
                                                      f"the host's scratch folders; network: {network}"))
        else:
            checks.append(check("bash sandbox", "warn",
                                f"Claude Code {shown}: its sandbox keeps the project writable by Bash (it has no "
                                f"sandbox.filesystem, and its Edit deny rules would take Write and Edit away from the "
                                f"plan); it covers writes outside the project and the network ({network}); inside the "
                                f"project a dry run relies on {RELIES_ON}", "upgrade Claude Code to 2.1.332 or later"))
    if (policy or {}).get("mode") != "dry":
        checks.append(check("bash sandbox scope", "ok",
                            f"the policy's runs start {policy.get('mode') if policy else '?'}: only runs started "
                            "with `drygate run --mode dry -- claude ...` get the sandbox (a sticky run starts live, "
                            "so it never has it)"))
    settings_path = os.path.join(project_dir, ".claude", "settings.json")
    try:
        with open(settings_path, encoding="utf-8") as f:
            project_settings = json.load(f)
    except (OSError, ValueError):
        project_settings = {}
    if isinstance(project_settings, dict) and policy:
        has = settings_sandboxed(project_settings, project_dir)
        want = policy.get("mode") == "dry" and options["enabled"]
        if has and not want:
            checks.append(check("bash sandbox settings", "warn",
                                f"{settings_path} runs Bash read-only in the project, but the policy's runs are not all "
                                "dry: live writes from Bash will fail", "run `drygate install claude-code`"))
        elif want and not has:
            checks.append(check("bash sandbox settings", "warn",
                                f"the policy is dry but {settings_path} does not turn the Bash sandbox on: only "
                                "`drygate run --mode dry -- claude` gets it", "run `drygate install claude-code`"))
    for layer in override_layers(project_dir):
        checks.append(check("bash sandbox override", "warn",
                            f"{layer} sets sandbox.enabled = false; it takes precedence over "
                            f"{'.claude/settings.json' if 'managed' not in layer else 'drygate run --settings too'}, so "
                            f"Bash runs without the sandbox there", f"remove sandbox.enabled from {layer}"))
    if why:
        checks.append(check("shadow sandbox", "warn",
                            f"MCP shadow servers cannot be sandboxed ({why}): a run that would get a shadow gets "
                            "plain dry results instead (no read-your-writes; never live)",
                            "apt-get install bubblewrap"))
    else:
        checks.append(check("shadow sandbox", "ok", f"MCP shadow servers run under bubblewrap ({path}) with only "
                                                    "their copy writable"))
    return checks
