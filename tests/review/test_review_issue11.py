"""Adversarial review of issue 11's classes (a fresh reviewer, not the fixers).

Every probe goes through the INSTALLED hook command (``sh -c``, event JSON on stdin), as
Claude Code runs it. A leak probe uses a dry run: when the hook lets the command through
(answers ``{}``), the command is run with bash in the project, as the host would, and the
side effect is checked on disk. A tamper probe uses a live run and checks the protected
file (or the policy's effect on the next call). Open findings are strict xfails named by
class, so they turn green (and must be un-marked) when fixed; the passing probes are
regression tests of members of the classes that hold.
"""

import hashlib
import json
import subprocess
import sys

import pytest

from conftest import Project, write_policy

PAYMENTS_DENY = '[[rules]]\ntool = "mcp__payments__charge"\neffect = "external"\naction = "deny"\nreason = "never charge"\n'


def _project(tmp_path, mode, rules=""):
    p = Project(tmp_path / "app")
    write_policy(p.root, mode=mode, rules=rules)
    return p


def _through_hook(p, command):
    """Ask the installed hook about ``command``; run it with bash when the hook answers {}.

    Returns the HookResult; the command has run only when ``not result.blocks``."""
    r = p.hook(p.event("Bash", {"command": command}))
    if not r.blocks:
        assert r.json == {}, r.stdout
        subprocess.run(["bash", "-c", command], cwd=p.root, capture_output=True, timeout=30,
                       stdin=subprocess.DEVNULL, env=p.env(PATH="%s:/usr/bin:/bin" % (sys.prefix + "/bin")))
    return r


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _leaks(tmp_path, command, marker="x"):
    """True when ``command`` in a dry run got through the hook AND created ``marker``."""
    p = _project(tmp_path, "dry")
    r = _through_hook(p, command)
    return (not r.blocks) and (p.root / marker).exists()


def _tampers(tmp_path, command, target=(".claude", "settings.json")):
    """True when ``command`` in a live run got through the hook AND changed ``target``."""
    p = _project(tmp_path, "live")
    p.hook(p.event("Bash", {"command": "ls"}))  # the run's first call takes its fingerprints
    path = p.root.joinpath(*target)
    before = _digest(path)
    r = _through_hook(p, command)
    return (not r.blocks) and _digest(path) != before


# ---------------------------------------------------------------- class 1: text bash runs as code


# Were strict xfails (class 1): backquotes and <(...) in a parameter-expansion operator word.
@pytest.mark.parametrize("command", [
    "echo ${HOME#`touch x`}",
    "echo ${PWD/`touch x`/}",
    "echo ${HOME:+`touch x`}",
    "echo ${x:=`touch x`}",
    'echo "${x:-${y:-`touch x`}}"',
    "echo ${HOME//o/`touch x`}",
    "echo ${x:?`touch x`}",
    "echo ${HOME^^`touch x`}",
    "echo ${PWD,,`touch x`}",
    "echo ${PWD%%*`touch x`}",
    "echo ${u-#`touch x`}",
    "for w in ${u:-a `touch x`}; do :; done",
])
def test_leak_backquotes_in_parameter_expansion_word(tmp_path, command):
    assert not _leaks(tmp_path, command)


@pytest.mark.parametrize("command", ["echo ${x:-<(touch x)}", "echo ${x:->(touch x)}; wait $!",
                                     "echo ${PWD/<(touch x)}; wait $!"])
def test_leak_process_substitution_in_parameter_expansion_word(tmp_path, command):
    assert not _leaks(tmp_path, command)


@pytest.mark.parametrize("command", [
    "let 'a[$(touch x)]=1'",
    "unset 'a[$(touch x)]'",
    "printf -v 'a[$(touch x)]' %s 1",
    "getopts a 'a[$(touch x)]'",
    "[[ 1 -eq 'a[$(touch x)]' ]]",
    "x='$(touch x)'; echo ${x@P}",
    "read -r v <<< 'a[$(touch x)]'; echo $((v))",
    "typeset -i v=1; v+='a[$(touch x)]'",
    "echo ${x:-$(touch x)}",
])
def test_arithmetic_and_name_contexts_hold(tmp_path, command):
    assert not _leaks(tmp_path, command)


# ---------------------------------------------------------------- class 2 and 3: builtins, tool languages


@pytest.mark.parametrize("command", [
    "mapfile -C 'touch x' -c 1 < /etc/hostname",
    "hash -p /usr/bin/touch cat; cat x",
    "compgen -W '$(touch x)' a",
    "sqlite3 db 'select 1' '.output x'",
    "sqlite3 db \"VACUUM INTO 'x'\"",
    "sqlite3 -cmd '.shell touch x' db 'select 1'",
    "sort --compress-program=touch /etc/hostname",
    "git grep -O'touch x' foo",
    "git ls-remote --upload-pack='touch x' .",
    "uniq /etc/hostname x",
    "awk 'BEGIN{\"touch x\" | getline}'",
])
def test_builtins_and_tool_languages_hold(tmp_path, command):
    assert not _leaks(tmp_path, command)


# ---------------------------------------------------------------- class 4: option parsers


@pytest.mark.parametrize("command", [
    "npm publish --dry-run --ignore-scripts false",
    "npm publish --dry-run --ignore-scripts --no-ignore-scripts",
    "pip list --lo x",
    "pip --lo x list",
])
def test_option_parsers_hold(tmp_path, command):
    p = _project(tmp_path, "dry")
    assert p.hook(p.event("Bash", {"command": command})).blocks


# ---------------------------------------------------------------- classes 6-10: tamper


def test_tamper_backquotes_in_parameter_expansion_word(tmp_path):
    assert not _tampers(tmp_path, "echo ${HOME#`echo {} > .claude/settings.json`}")


@pytest.mark.parametrize("command", [
    "python -m drygate.cli.entry init --force --mode live",
    "d=drygate; $d init --force --mode live",
])
def test_tamper_policy_rewritten_through_drygate_cli(tmp_path, command):
    p = _project(tmp_path, "live", rules=PAYMENTS_DENY)
    charge = p.event("mcp__payments__charge", {"amount": 1})
    assert p.hook(charge).blocks
    _through_hook(p, command)
    assert p.hook(p.event("mcp__payments__charge", {"amount": 1})).blocks


@pytest.mark.parametrize("command,target", [
    ("echo {} > ${x:-.claude/settings.json}", (".claude", "settings.json")),
    ("echo {} > ${HOME:+.claude/settings.json}", (".claude", "settings.json")),
    ("f=xdrygate.toml; : > ${f#x}", ("drygate.toml",)),
    ("f=drygate.toml.bak; : > ${f%.bak}", ("drygate.toml",)),
    ("f=DRYGATE.TOML; : > ${f,,}", ("drygate.toml",)),
    ("f=drygate.toml; g=f; : > ${!g}", ("drygate.toml",)),
    ("a=(drygate.toml); : > ${a[0]}", ("drygate.toml",)),
    ("declare -A m=([k]=drygate.toml); : > ${m[k]}", ("drygate.toml",)),
    ("a=([3]=drygate.toml); : > ${a[3]}", ("drygate.toml",)),
    ("f=drygate.tomlx; : > ${f/x/}", ("drygate.toml",)),
    ("f=drygate.tomlx; : > ${f:0:12}", ("drygate.toml",)),
    ("f=DRYGATE.TOML; : > ${f@L}", ("drygate.toml",)),
    ("set -- drygate.toml; : > ${1:-x}", ("drygate.toml",)),
    ("echo {} | tee ${x:=.claude/settings.json}", (".claude", "settings.json")),
])
def test_tamper_through_parameter_expansion_operators(tmp_path, command, target):
    assert not _tampers(tmp_path, command, target)


@pytest.mark.parametrize("command", [
    "cd .claude; cp /dev/null settings.json",
    "(cd .claude && : > settings.json)",
    "truncate -s0 .claude/settings.*",
    "cp /dev/null .cl{a,}ude/settings.json",
    "cp /dev/null .clau*/settings.json",
    "d=.cl; cp /dev/null ${d}aude/settings.json",
    "printf '{}' | dd of=.claude/settings.json",
    "echo x >& .claude/settings.json",
    "mkdir -p sub && cd sub && : > ../.claude/settings.json",
    "drygate install claude-code --local",
])
def test_self_protection_holds(tmp_path, command):
    assert not _tampers(tmp_path, command)


def test_fingerprint_notices_what_self_protection_cannot_read(tmp_path):
    """A path read from a pipe is a documented limit of self-protection; the change must
    then block the rest of the run."""
    p = _project(tmp_path, "live")
    p.hook(p.event("Bash", {"command": "ls"}))
    before = _digest(p.root / ".claude" / "settings.json")
    _through_hook(p, "find .claude -name settings.json | xargs -I{} cp /dev/null {}")
    assert _digest(p.root / ".claude" / "settings.json") != before  # the limit: it happened
    assert p.hook(p.event("Read", {"file_path": str(p.root / "README.md")})).blocks


# ---------------------------------------------------------------- false tamper: ordinary live work


def _git_project(tmp_path):
    p = _project(tmp_path, "live")
    script = """git init -q -b main . && git config user.email a@b && git config user.name a &&
printf '.drygate/\\n' > .gitignore && mkdir -p src && echo 'print(1)' > src/app.py &&
git add -A && git commit -qm init && git checkout -qb feature && echo 'print(2)' > src/app.py &&
git commit -qam f && git checkout -q main && tar -czf ../rel.tgz -C src app.py"""
    subprocess.run(["bash", "-c", script], cwd=p.root, check=True, capture_output=True)
    return p


def test_git_branch_work_with_committed_settings_is_not_tamper(tmp_path):
    p = _git_project(tmp_path)
    for command in ["git checkout feature", "git switch main", "git merge -q feature",
                    "git reset -q --hard HEAD~1", "rm -rf dist/*", "find . -name '*.pyc' -delete",
                    "tar -xzf ../rel.tgz -C src"]:
        r = _through_hook(p, command)
        assert not r.blocks, (command, r.stdout)
    assert not [a for a in p.alerts() if a.get("kind") == "tamper"]


def test_extracting_an_archive_without_protected_members_is_not_tamper(tmp_path):
    p = _git_project(tmp_path)
    r = _through_hook(p, "tar -xzf ../rel.tgz")
    assert not r.blocks, r.stdout
    assert (p.root / "app.py").exists()


# ---------------------------------------------------------------- class 9: the hook's own interpreter


# Was a strict xfail (class 9): the interpreter file was not protected, and overwritten with
# `exit 0` it made every later hook answer nothing. drygate.integrity.environment_paths now puts
# the interpreter (and the lib folder of a user-writable Python) in the protected set, and the
# installed wrapper blocks an exit 0 without a JSON answer (tests/test_hook_failures.py).
def test_tamper_hook_interpreter_replaced(tmp_path):
    import os
    import shutil

    from conftest import hook_command

    real = os.path.realpath(sys.executable)
    py = tmp_path / "py"
    (py / "bin").mkdir(parents=True)
    shutil.copy2(real, py / "bin" / os.path.basename(real))  # a user-owned interpreter, as pyenv/uv install it
    (py / "lib").symlink_to(os.path.join(os.path.dirname(os.path.dirname(real)), "lib"))
    interpreter = py / "bin" / os.path.basename(real)
    p = _project(tmp_path, "live")
    p.command = hook_command(python=str(interpreter))
    settings = json.loads((p.root / ".claude" / "settings.json").read_text())
    settings["hooks"]["PreToolUse"][0]["hooks"][0]["command"] = p.command
    (p.root / ".claude" / "settings.json").write_text(json.dumps(settings))
    write_settings = p.event("Write", {"file_path": str(p.root / ".claude" / "settings.json"), "content": "{}"})
    assert p.hook(p.event("Bash", {"command": "ls"})).json == {}
    assert p.hook(write_settings).blocks
    _through_hook(p, f"printf '#!/bin/sh\\nexit 0\\n' > {interpreter}")
    assert p.hook(write_settings).blocks


# ---------------------------------------------------------------- class 11: apply runs what the journal says


def test_apply_writes_only_the_journaled_path(tmp_path):
    """Class 11 (apply executes the journal): a plan whose file step's path was edited (hash
    recomputed) is refused; the path apply writes comes from the journal entry."""
    from conftest import SESSION

    from drygate.plan.fingerprint import fingerprint, text_fingerprint

    p = _project(tmp_path, "dry")
    assert p.hook(p.event("Write", {"file_path": str(p.root / "notes.json"), "content": "{}\n"})).code == 2
    plan_path = tmp_path / "plan.json"
    p.cli("plan", SESSION, "--out", str(plan_path))
    plan = json.loads(plan_path.read_text())
    settings = p.root / ".claude" / "settings.json"
    original = settings.read_text()
    step = plan["steps"][0]
    step["file"].update(path=str(settings), before=text_fingerprint(original), after=text_fingerprint("{}\n"))
    plan["basis"]["files"][str(settings)] = step["file"]["before"]
    del plan["content_hash"]
    plan["content_hash"] = fingerprint(plan)
    plan_path.write_text(json.dumps(plan))
    r = p.cli("apply", str(plan_path), "--yes", check=False)
    assert settings.read_text() == original, "apply replaced the hooks' settings"
    assert r.returncode == 1 and "not the journal's" in r.stderr, r.stderr


@pytest.mark.parametrize("command", ["rm -rf */node_modules", "rm -f */*.pyc"])
def test_glob_below_star_is_not_tamper(tmp_path, command):
    p = _project(tmp_path, "live")
    for pkg in ("web", "api"):
        (p.root / pkg / "node_modules").mkdir(parents=True)
        (p.root / pkg / "m.pyc").write_text("x")
    r = _through_hook(p, command)
    assert not r.blocks, r.stdout
    assert not [a for a in p.alerts() if a.get("kind") == "tamper"]


def test_glob_forms_that_stay_ordinary_work(tmp_path):
    p = _project(tmp_path, "live")
    (p.root / "packages" / "web" / "node_modules").mkdir(parents=True)
    (p.root / "build").mkdir()
    (p.root / "build" / "a.o").write_text("x")
    for command in ["rm -rf packages/*/node_modules", "rm -rf -- build/*", "ls */", "rm -rf ./*.tmp .*.swp"]:
        r = _through_hook(p, command)
        assert not r.blocks, (command, r.stdout)
    assert not (p.root / "packages" / "web" / "node_modules").exists()
    assert not (p.root / "build" / "a.o").exists()


# ---------------------------------------------------------------- class 4: options that run a program


@pytest.mark.skipif(__import__("shutil").which("kubectl") is None, reason="kubectl is not installed")
# Was a strict xfail (class 4): kubectl kustomize is strict now (drygate.classifiers.data.commands
# _KUSTOMIZE_BUILD); --enable-helm, --helm-command, --enable-alpha-plugins, --enable-exec are unknown.
@pytest.mark.parametrize("command", [
    "kubectl kustomize --enable-helm --helm-command=./fn.sh .",
    "kubectl kustomize . --helm-command ./fn.sh --enable-helm",
    "kubectl kustomize --enable-helm=true --helm-command=./fn.sh .",
    "kubectl -n default kustomize --enable-helm --helm-command=./fn.sh .",
])
def test_leak_kubectl_kustomize_helm_command(tmp_path, command):
    p = _project(tmp_path, "dry")
    (p.root / "kustomization.yaml").write_text("helmCharts:\n- name: c\n  version: 1.0.0\n  repo: https://example.invalid\n")
    (p.root / "fn.sh").write_text("#!/bin/sh\ntouch \"$(dirname \"$0\")/x\"\n")
    (p.root / "fn.sh").chmod(0o755)
    r = _through_hook(p, command)
    assert r.blocks or not (p.root / "x").exists()


@pytest.mark.parametrize("command", [
    "cat <<EOF\n$(touch x)\nEOF",
    "cat <<EOF\n`touch x`\nEOF",
    "grep a <<EOF\n${x:-`touch x`}\nEOF",
    "cat <<-EOF\n\t$(touch x)\n\tEOF",
    "cat <<E\\OF\n$(touch x)\nEOF",
    "cat <<EOF\n$((a[$(touch x)]))\nEOF",
    "echo hi # `touch x`\ntouch x",
])
def test_here_documents_that_expand_hold(tmp_path, command):
    """An unquoted here-document's body is expanded by bash (command substitution, arithmetic)."""
    assert not _leaks(tmp_path, command)


def test_quoted_here_document_is_a_read(tmp_path):
    p = _project(tmp_path, "dry")
    r = _through_hook(p, "cat <<'EOF'\n$(touch x)\nEOF")
    assert not r.blocks and not (p.root / "x").exists()
