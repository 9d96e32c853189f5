"""Class 4 of issue 11: option parsers modelled as the tools parse them.

A table entry may call a command a read only when every word of it is understood.
Sources: npm's config docs and its parser nopt (``-name`` is ``--name``, ``--no-name``
turns a flag off, a Boolean flag takes a following ``true``/``false``, abbreviations),
npm's lifecycle scripts docs (pack and publish run prepack/prepare/prepublishOnly, also
with --dry-run), yarn 1/4 and pnpm command references, ``pip --help`` (general options
before or after the subcommand), the gawk manual's options. npm's behaviour is checked
with the real npm where it is installed.
"""

import json
import shutil
import subprocess

import pytest

from drygate.classifiers.commands import Context, classify_argv, stray_option
from drygate.classifiers.data.commands import COMMANDS
from drygate.classifiers.shell import classify_command_verdict

NPM = shutil.which("npm")


def effect(command):
    return classify_command_verdict(command).effect


@pytest.mark.parametrize("command", [
    # npm: a Boolean read flag turned off by the next word, by =false, by --no-, abbreviated
    "npm publish --dry-run false", "npm publish --dry-run=false --ignore-scripts", "npm pack --dry-run 0",
    "npm publish --no-dry-run", "npm publish --dry false --ignore-scripts", "npm pack --dry-run --ignore-scripts false",
    "npm publish --dry-run --ignore-scripts --dry-run false",
    # npm pack/publish --dry-run run the package's lifecycle scripts
    "npm publish --dry-run", "npm pack --dry-run", "npm pack --dry",
    # options of read subcommands that write or run something
    "npm ls --logs-dir=.claude", "npm view react --cache /tmp/c", "npm outdated --userconfig x",
    "npm ls --script-shell=./x", "npm --cache /tmp/x view react", "npm docs react", "npm repo react",
    "npm help --viewer=browser install", "npm doctor", "npm audit fix", "npm fund react",
    # subcommand trees: run scripts, change settings
    "yarn workspaces run build", "yarn workspaces foreach run build", "yarn workspace web build",
    "yarn config set registry x", "yarn config delete registry", "yarn cache clean", "yarn global add x",
    "yarn list --mutex file:/tmp/x", "pnpm store prune", "pnpm store add x", "pnpm audit --fix",
    "pnpm config set x y", "pnpm -r exec rm -rf dist", "npm config set x y", "npm config edit",
    # pip's general options
    "pip --log out.txt list", "pip list --log out.txt", "pip --log-file=x freeze", "pip --python ./py list",
    "pip --cache-dir /tmp/c list", "pip3 --log x show requests",
    # awk options that run files, load code or write
    "gawk -E prog.awk f", "awk -f p.awk f", "gawk -d out '{print}'", "gawk -o pp.awk 'BEGIN{}'",
    "gawk -p prof.out '{print}' f", "gawk -l filefuncs 'BEGIN{}'", "gawk -i lib '{print}'", "gawk -D '{print}'",
    # other options that write or run a program
    "man -P 'touch x' ls", "man --html=firefox ls", "info -o out coreutils", "info --dribble keys coreutils",
    "tree -R -H . -o x.html", "git bisect visualize", "git help --web log", "docker-compose config -o x.yml",
    "mysqldump --tab=/tmp db", "nm --plugin ./x.so a.out", "git -c core.pager=x log", "git --exec-path=./x status",
    # a configuration file named on the command line that runs programs (kubeconfig exec plugins)
    "kubectl get pods --kubeconfig ./k.yaml", "KUBECONFIG=./k.yaml kubectl get pods", "helm list --kubeconfig k",
    "journalctl --cursor-file=cursor -n 5", "apt-cache gencaches",
    "npm pack --dry-run --ignore-scripts --logs-dir=.claude", "helm install web ./chart --dry-run --dependency-update",
    "helm template web ./chart --dependency-update",
])
def test_not_a_read(command):
    v = classify_command_verdict(command)
    assert v.effect != "read", v.steps


@pytest.mark.parametrize("command", [
    "npm ls", "npm list -depth=0", "npm ls --json false", "npm ls --all --long", "npm view react versions",
    "npm outdated --json", "npm audit", "npm audit --audit-level high --json", "npm explain lodash",
    "npm config get registry", "npm --prefix web ls", "npm help install",
    "npm publish --dry-run --ignore-scripts", "npm pack --dry-run --ignore-scripts --json",
    "npm publish --dry-run --ignore-scripts --tag beta --access public", "helm install web ./chart --dry-run",
    "yarn list --depth=0", "yarn why lodash", "yarn workspaces info", "yarn config get registry", "yarn info react",
    "pnpm ls --depth 0", "pnpm why lodash", "pnpm store path", "pnpm outdated", "pnpm licenses list",
    "pip list", "pip -q list", "pip --disable-pip-version-check list --outdated", "pip show requests",
    "awk '{print $1}' f", "awk -F: -v x=1 '{print x}' f", "awk -e '{print}' f", "man ls", "git log -C",
    "git -C sub status",
])
def test_still_a_read(command):
    v = classify_command_verdict(command)
    assert v.effect == "read", v.steps


def test_every_strict_entry_rejects_an_unknown_option():
    """Every entry that lists its options (strict) turns an option it does not list into unknown."""
    found = 0
    stack = [(name, spec) for name, spec in COMMANDS.items()]
    while stack:
        label, spec = stack.pop()
        if not isinstance(spec, dict):
            continue
        for sub, child in (spec.get("subcommands") or {}).items():
            stack.append((f"{label} {sub}", child))
        if "options" in spec:
            found += 1
            assert stray_option(["--no-such-option-x"], spec) == "--no-such-option-x"
            words = label.split() + ["--no-such-option-x"]
            assert classify_argv(words, Context()).effect == "unknown", label
    assert found >= 30


needs_npm = pytest.mark.skipif(NPM is None, reason="npm is not installed")


@pytest.fixture
def package(tmp_path):
    scripts = {"prepack": "node -e \"require('fs').writeFileSync('pwn','')\""}
    (tmp_path / "package.json").write_text(json.dumps({"name": "drygate-probe", "version": "1.0.0",
                                                       "scripts": scripts}))
    return tmp_path


@needs_npm
def test_npm_pack_dry_run_really_runs_lifecycle_scripts(package):
    subprocess.run([NPM, "pack", "--dry-run", "--offline"], cwd=package, capture_output=True, timeout=120)
    assert (package / "pwn").exists()
    assert effect("npm pack --dry-run") != "read"


@needs_npm
def test_npm_takes_a_following_false_as_the_flags_value(package):
    subprocess.run([NPM, "pack", "--dry-run", "false", "--ignore-scripts", "--offline"], cwd=package,
                   capture_output=True, timeout=120)
    assert list(package.glob("*.tgz")), "npm pack --dry-run false packed for real"
    assert effect("npm pack --dry-run false --ignore-scripts") != "read"


@needs_npm
def test_npm_pack_dry_run_with_ignore_scripts_writes_nothing(package):
    before = sorted(p.name for p in package.iterdir())
    subprocess.run([NPM, "pack", "--dry-run", "--ignore-scripts", "--offline"], cwd=package, capture_output=True,
                   timeout=120)
    assert sorted(p.name for p in package.iterdir()) == before
    assert effect("npm pack --dry-run --ignore-scripts") == "read"


@pytest.mark.parametrize("command,expected", [
    ("flock /tmp/lock ls", "write"), ("flock -n /tmp/lock rm x", "write"), ("doas -s", "unknown"),
    ("ssh -E ssh.log host ls", "write"), ("ssh -M -S ctl host ls", "write"), ("ssh host ls", "read"),
    ("sudo -s", "unknown"), ("env -S 'rm x'", "unknown"), ("time -o t.txt ls", "unknown"), ("nice ls", "read"),
    ("taskset 0x1 ls", "unknown"), ("timeout 5 ls", "read"), ("sudo -u app ls", "read"),
])
def test_wrappers(command, expected):
    """Programs that run another command: each option understood, or unknown."""
    assert effect(command) == expected, classify_command_verdict(command).steps


def test_no_entry_reads_a_subcommand_it_does_not_know():
    """An unknown subcommand word never falls back to read ("other" is never read)."""
    stack = list(COMMANDS.items())
    while stack:
        label, spec = stack.pop()
        if isinstance(spec, dict):
            assert spec.get("other") != "read", label
            stack.extend((f"{label} {k}", v) for k, v in (spec.get("subcommands") or {}).items())


# kustomize build / kubectl kustomize (kubectl.docs.kubernetes.io, `kustomize build --help`,
# `kubectl kustomize --help`): --enable-helm runs the Helm chart inflator (--helm-command
# names the program), --enable-alpha-plugins runs KRM function and exec plugins, --enable-exec
# lets them exec; the entries list their options, so any other option is unknown too.
_KUSTOMIZE = ["kubectl kustomize", "kustomize build", "kubectl -n default kustomize"]


@pytest.mark.parametrize("command", [
    f"{k} {opts} ." for k in _KUSTOMIZE for opts in (
        "--enable-helm", "--enable-helm=true", "--helm-command=./x", "--helm-command ./x --enable-helm",
        "--enable-alpha-plugins", "--enable-exec --enable-alpha-plugins", "--enable-h", "--helm-debug",
        "--no-such-option", "-o out.yaml", "--output=out", "--enable-helm=false",
    )
] + ["kubectl get -k dir --enable-helm", "kubectl apply -k dir --dry-run=client --enable-alpha-plugins",
     "kubectl diff -k . --helm-command=./x", "kustomize edit add resource x", "kustomize fn run",
     "kustomize cfg set . x y", "kustomize localize . out"])
def test_kustomize_options_that_run_or_write_are_not_reads(command):
    v = classify_command_verdict(command)
    assert v.effect != "read", v.steps


@pytest.mark.parametrize("command", [
    "kubectl kustomize .", "kubectl kustomize overlays/prod --load-restrictor LoadRestrictionsNone",
    "kustomize build .", "kustomize build --reorder=none -e FOO=1 .", "kubectl get -k overlays/dev",
    "kustomize version", "kustomize cfg tree .",
])
def test_kustomize_build_stays_a_read(command):
    v = classify_command_verdict(command)
    assert v.effect == "read", v.steps


# git config (git-config(1), 2.39 and the 2.46+ subcommands): --edit/-e and the subcommand
# `edit` open an editor on the file (not a read); any option that is not one that only chooses,
# formats or filters what is printed (also an abbreviation git would accept) is not a read.
@pytest.mark.parametrize("command", [
    "git config edit", "git config --edit", "git config -e", "git config --global -e", "git config -le",
    "git config --ed", "git config --global edit", "git config set a.b c", "git config unset a.b",
    "git config --unset a.b", "git config --add a.b c", "git config a.b c", "git config rename-section a b",
    "git config --file x --edit", "git config --replace-all a.b c", "git config --comment x a.b c",
])
def test_git_config_edit_and_set_are_not_reads(command):
    v = classify_command_verdict(command)
    assert v.effect != "read", v.steps


@pytest.mark.parametrize("command", [
    "git config --list", "git config -l", "git config -lz", "git config user.name", "git config --get user.name",
    "git config get user.name", "git config list --show-origin", "git config --global --get-regexp alias",
    "git config -f .gitmodules --get-regexp path", "git config --type=bool --get core.bare",
    "git config --show-origin --show-scope --list",
])
def test_git_config_reads_stay_reads(command):
    v = classify_command_verdict(command)
    assert v.effect == "read", v.steps
