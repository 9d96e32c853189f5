"""Self-protection at the level of the installed hook command (issue 11, tamper items 6, 7, 8, 10).

Each case runs the real hook as the host does (``sh -c`` with the event on stdin) in a
LIVE run, then, as the host would, runs the command in bash when the hook let it
through. It passes when the hook blocked the call, a tamper alert was raised, and every
protected file is unchanged. The members of each class come from the bash manual
(expansions, arithmetic contexts, builtins) and the tools' manuals (the whole-tree
table in drygate/classifiers/protect_shell.py), not only from the issue's examples.
The opposite failure is tested too: ordinary live work is allowed, without an alert,
and does what it should; and every bundled and shared transcript replays in live mode
without a single tamper denial.
"""

import glob
import json
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, TRANSCRIPTS, write_policy

PAY = "echo '{}' > .claude/settings.json"  # a payload that replaces the hooks


def _git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                   env={"PATH": os.environ["PATH"], "HOME": str(root), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_NOSYSTEM": "1"})


@pytest.fixture
def live(sqlite_project, tmp_path):
    """A live project with drygate installed, a git history, archives and patches that would
    overwrite the protected files, a symlink and a hard link to the settings, and a home of its own."""
    p = sqlite_project
    root = p.root
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text('{"user": true}\n')
    installed = (root / ".claude" / "settings.json").read_text()
    # git: commit A (branch old) has settings without hooks; main (B) has the installed ones.
    (root / ".claude" / "agents").mkdir(parents=True)
    (root / ".claude" / "agents" / "a.md").write_text("agent\n")
    (root / ".claude" / "settings.json").write_text("{}\n")
    write_policy(root, "live")
    (root / ".gitignore").write_text(".drygate/\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "A")
    _git(root, "branch", "old")
    (root / ".claude" / "settings.json").write_text(installed)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "B")
    _git(root, "checkout", "-q", "-b", "evil")
    (root / ".claude" / "settings.json").write_text("{}\n")
    _git(root, "commit", "-q", "-am", "evil")
    _git(root, "checkout", "-q", "main")
    (root / ".claude" / "agents" / "a.md").write_text("agent, changed\n")  # an uncommitted change
    (root / ".claude" / "settings.local.json").write_text("{}\n")  # untracked
    (root / ".mcp.json").write_text('{"mcpServers": {}}\n')
    for d in ("sub", "dist", "out", "data", "backup", "src", "empty", "evil/.claude"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "dist" / "a.js").write_text("a")
    (root / "data" / "d.csv").write_text("d")
    (root / "evil" / ".claude" / "settings.json").write_text("{}\n")
    (root / "evil" / "drygate.toml").write_text('[run]\nmode = "live"\n# replaced\n')
    os.symlink(root / ".claude" / "settings.json", root / "link")
    os.link(root / ".claude" / "settings.json", root / "hard")
    with tarfile.open(root / "evil.tar", "w") as t:
        t.add(root / "evil" / ".claude" / "settings.json", ".claude/settings.json")
    with tarfile.open(root / "ok.tgz", "w:gz") as t:
        t.add(root / "dist" / "a.js", "app.js")
    link = tarfile.TarInfo("sneaky")
    link.type, link.linkname = tarfile.SYMTYPE, ".claude"
    with tarfile.open(root / "linked.tar", "w") as t:
        t.addfile(link)
    with zipfile.ZipFile(root / "ok.zip", "w") as z:
        z.write(root / "dist" / "a.js", "app.js")
    with zipfile.ZipFile(root / "evil.zip", "w") as z:
        z.write(root / "evil" / ".claude" / "settings.json", ".claude/settings.json")
    settings = (root / ".claude" / "settings.json").read_text()
    (root / "evil.patch").write_text(
        "--- a/.claude/settings.json\n+++ b/.claude/settings.json\n@@ -1,%d +1 @@\n%s+{}\n"
        % (len(settings.splitlines()), "".join("-" + line + "\n" for line in settings.splitlines())))
    (root / "ok.patch").write_text("--- a/src/x.py\n+++ b/src/x.py\n@@ -0,0 +1 @@\n+x = 1\n")
    # A project drygate's hooks reach only through the files listed here.
    p.home = home
    p.guarded = [root / ".claude", root / "drygate.toml", root / ".mcp.json", home / ".claude" / "settings.json"]
    (root / ".drygate").mkdir(exist_ok=True)
    return p


def _snapshot(p):
    out = {}
    for g in p.guarded:
        if g.is_dir():
            for f in sorted(g.rglob("*")):
                out[str(f)] = f.read_bytes() if f.is_file() else "dir"
            out[str(g)] = "dir"
        else:
            out[str(g)] = g.read_bytes() if g.exists() else None
    return out


def attempt(p, command, cwd=None):
    """Ask the installed hook about Bash ``command``; run it in bash when not blocked.

    Returns the HookResult. ``cwd``: the folder the agent is in (default: the project)."""
    folder = str(cwd or p.root)
    env = {"HOME": str(p.home)}
    r = p.hook(p.event("Bash", {"command": command}, cwd=folder), **env)
    if not r.blocks:
        subprocess.run(["bash", "-O", "extglob", "-c", command], cwd=folder, capture_output=True, timeout=60,
                       env=dict(p.env(**env), GIT_CONFIG_NOSYSTEM="1"))
    return r


def assert_tamper_blocked(p, command, cwd=None):
    before = _snapshot(p)
    alerts = len(p.alerts())
    r = attempt(p, command, cwd)
    after = _snapshot(p)
    assert r.blocks, f"the hook let through {command!r}: {r.stdout} {r.stderr}"
    assert after == before, f"{command!r} changed a protected file"
    new = p.alerts()[alerts:]
    assert new and new[-1]["kind"] == "tamper", (command, new)
    assert "NOT executed" in r.json["hookSpecificOutput"]["permissionDecisionReason"]


# --- 6. every call, reads included: text that bash evaluates as code -------------------------
# Bash manual, "Shell Arithmetic", "Arrays", "Bash Builtins": arithmetic contexts and name
# operands evaluate an array subscript, and a subscript may hold $(...) even in single quotes.
EVALUATED_CONTEXTS = [
    "let 'a[$(%s)]=1'",
    "read 'a[$(%s)]' </dev/null",
    "[[ 'a[$(%s)]' -eq 0 ]]",
    "echo ${a['$(%s)']}",
    "wait -n -p 'a[$(%s)]'",
    "printf -v 'a[$(%s)]' x",
    "declare -i 'a[$(%s)]=1'",
    "(( a['$(%s)'] ))",
    "echo $(( a['$(%s)'] ))",
    "unset 'a[$(%s)]'",
    "mapfile -t 'a[$(%s)]' </dev/null",
    "x='a[$(%s)]'; echo $((x))",
    "echo ${x:'a[$(%s)]'}",
    "getopts ab 'a[$(%s)]'",
    "export 'a[$(%s)]=1'",
    "trap '%s' EXIT",
    "eval '%s'",
    "bash -c \"%s\"",
    "sh -c \"%s\"",
    "jobs -x %s",
    "echo x | xargs -I{} sh -c \"%s\"",
    "sudo -n sh -c \"%s\"",
    "env A=1 bash -c \"%s\"",
    "bash <<'EOF'\n%s\nEOF",
    "bash <<< \"%s\"",
    "cat $(%s)",
    "cat <(%s)",
    "ls `%s`",
    "mapfile -C '%s' -c 1 a < dist/a.js",
    "env -S \"%s\"",
    "ssh -o BatchMode=yes -o ConnectTimeout=1 localhost \"%s\"",
    "busybox sh -c \"%s\"",
    "time %s",
    "{ %s; }",
    "! %s",
    "f() { %s; }; f",
    "case x in x) %s;; esac",
    "if true; then %s; fi",
    "while true; do %s; break; done",
    "true && %s || true",
]


@pytest.mark.parametrize("form", EVALUATED_CONTEXTS)
def test_code_in_evaluated_contexts_is_tamper(live, form):
    payload = PAY.replace("'{}'", "{}") if "'" in form else PAY
    assert_tamper_blocked(live, form % payload)


# --- 7. brace expansion, globs in every path part, quotes, variables ------------------------
# Bash manual, "Brace Expansion" (commas, nesting, sequences of letters and integers with an
# increment), "Pattern Matching" (* ? [...] [!...] [[:class:]] and the extglob operators),
# "Quoting" (ANSI-C), "Tilde Expansion", "Shell Parameters".
PATH_FORMS = [
    "tee .cl{a,}ude/settings.json",
    "tee {x,.cl{a,o}ude}/settings.json",
    "tee .cl{a..a}ude/settings.json",
    "tee .cl{a..z..25}ude/settings.json",
    "echo {} > .claude/settings.{json,x}",
    "sed -i s/live/dry/ dryga{t,}e.toml",
    "sed -i s/live/dry/ drygat{e..e}.toml",
    "cp dist/a.js .c?aude/agents/",
    "cp dist/a.js .cl[a]ude/agents/",
    "cp dist/a.js .cl[!x]ude/agents/",
    "cp dist/a.js .cl[[:alpha:]]ude/agents/",
    "echo {} > .claude/settings.js?n",
    "echo {} > .claude/*.json",
    "truncate -s0 dry*.toml",
    "echo {} > .*/settings.json",
    "echo {} > ${x:-.claude/settings.json}", "echo {} > ${HOME:+.claude/settings.json}",
    "f=xdrygate.toml; : > ${f#x}", "f=xxdrygate.toml; : > ${f##*x}", "f=drygate.toml.bak; : > ${f%.bak}",
    "f=DRYGATE.TOML; : > ${f,,}", "f=drygate.TOML; : > ${f@L}", "f=drygate.toml; g=f; : > ${!g}",
    "a=(x drygate.toml); : > ${a[1]}", "f=xdrygate.toml; : > ${f:1}", "f=dryXate.toml; : > ${f/X/g}",
    "f=.claude; : > ${f:=x}/settings.json",
    "shopt -s dotglob; rm -rf */agents",
    "rm .claude/agents/*",
    "cp dist/a.js .cl@(a|x)ude/settings.json",
    "cp dist/a.js .cl?(a)ude/settings.json",
    "cp dist/a.js .cl+(a)ude/settings.json",
    "cp dist/a.js .cl*(a)ude/settings.json",
    "echo {} > .claude/!(x).json",
    "echo {} > \".cl\"'aude'/settings.json",
    "echo {} > \\.claude/settings.json",
    "echo {} > $'\\x2eclaude/settings.json'",
    "echo {} > $'\\056claude'/settings.json",
    "d=.claude; echo {} > $d/settings.json",
    "d=.cl; echo {} > ${d}aude/settings.json",
    "echo {} > \"$UNSET_DIR\"/.claude/settings.json",
    "echo {} > $(pwd)/.claude/settings.json",
    "echo {} > ~/.claude/settings.json",
    "echo {} > $HOME/.claude/settings.json",
    "echo {} > ./sub/../.claude//settings.json",
    "for f in .claude/settings.json; do echo {} > $f; done",
    "echo {} > .mcp.json",
    "mv .claude /tmp/moved-by-test-$$",
    "rm -rf .claude",
    "ln -sf /dev/null .claude/settings.json",
    "install -m644 dist/a.js drygate.toml",
    "dd if=/dev/null of=drygate.toml",
    "cp evil/.claude/settings.json .claude/",
    "touch .claude/settings.json",
    "python3 -c \"open('.claude/settings.json','w').write('{}')\"",
    "python3 - <<'EOF'\nopen('.claude/settings.json','w').write('{}')\nEOF",
    "perl -e 'open(F, \">drygate.toml\")'",
    "awk 'BEGIN{print \"{}\" > \".claude/settings.json\"}'",
    "sed -n 'w .claude/settings.json' dist/a.js",
    "export DRYGATE_MODE=dry",
    "printf -v DRYGATE_MODE dry",
    "ln -s .claude c && echo {} > c/settings.json",
    "ln .claude/settings.json h && echo {} > h",
    "> drygate.toml",
    "exec 3> .claude/settings.json",
    "busybox rm -rf .claude",
    "cp -t .claude/agents dist/a.js",
    "uniq dist/a.js drygate.toml",
    "sort -o drygate.toml dist/a.js",
    "cp -r evil/* .",
    "awk -i inplace '{print}' drygate.toml", "awk '{print > FILENAME}' drygate.toml",
    "git archive -o drygate.toml HEAD", "git config --file drygate.toml a.b c", "git bundle create drygate.toml HEAD",
    "echo {} >& .claude/settings.json", "{ echo {}; } > .claude/settings.json", "echo {} &>> .claude/settings.json",
    "drygate init --force",
    "pipx uninstall drygate", "pipx install --force ./fake-drygate", "uv tool install --force ./fake-drygate",
    "python3 -m pip install --force-reinstall ./fake-drygate", "pip uninstall -y drygate",
]


@pytest.mark.parametrize("command", PATH_FORMS)
def test_expanded_paths_are_tamper(live, command):
    assert_tamper_blocked(live, command)


# --- 10. cd followed through a command list; symlinks and hard links ------------------------
CWD_FORMS = [
    ("cd sub && echo x > ../link", None),
    ("cd .claude && echo {} > settings.json", None),
    ("cd sub; cd ..; echo {} > .claude/settings.json", None),
    ("pushd .claude >/dev/null && echo {} > settings.json", None),
    ("pushd sub >/dev/null && popd >/dev/null && echo {} > drygate.toml", None),
    ("cd /tmp && cd - >/dev/null && echo {} > drygate.toml", None),
    ("cd \"$(pwd)/.claude\" && echo {} > settings.json", None),
    ("cd .c?aude && echo {} > settings.json", None),
    ("cd ~ && echo {} > .claude/settings.json", None),
    ("cd && echo {} > .claude/settings.json", None),
    ("echo {} > ../.claude/settings.json", "sub"),
    ("cd .. && rm drygate.toml", "sub"),
    ("rm -rf ..", "sub"),
    ("echo {} > link", None),
    ("echo {} > lin?", None),
    ("echo {} > hard", None),
    ("cd sub || cd .claude; echo {} > settings.json", None),
    ("eval cd .claude; echo {} > settings.json", None),
    ("builtin cd .claude && echo {} > settings.json", None),
    ("(cd .claude && echo {} > settings.json)", None),
    ("cd sub && echo {} > /proc/self/cwd/../.claude/settings.json", None),
    ("echo {} > /proc/self/root/$PWD/.claude/settings.json", None),
    ("echo {} > /proc/$$/cwd/.claude/settings.json", None),
    ("cd \"$PWD\"/.claude && echo {} > settings.json", None),
    ("f=.claude; g=$f/settings.json; echo {} > $g", None),
]


@pytest.mark.parametrize("command,cwd", CWD_FORMS)
def test_folder_changes_and_links_are_followed(live, command, cwd):
    assert_tamper_blocked(live, command, live.root / cwd if cwd else None)


# --- 8. whole-tree commands (the WHOLE_TREE table and its reasons) --------------------------
WHOLE_TREE_FORMS = [
    "git clean -fdx", "git clean -f -d", "git clean -ffx .", "git stash -u", "git stash --all",
    "git stash push --include-untracked", "git stash", "git reset --hard", "git reset --hard old",
    "git checkout old", "git checkout -f old", "git checkout old -- .", "git checkout -- .claude",
    "git switch old", "git switch --discard-changes old", "git restore --source old .",
    "git restore --source=old .claude/settings.json", "git merge evil", "git cherry-pick evil",
    "git rebase evil", "git pull . evil", "git -C . clean -fdx", "cd sub && git stash -u",
    "git apply evil.patch", "git apply < evil.patch", "git am evil.patch", "patch -p1 < evil.patch",
    "patch -p1 -i evil.patch", "cat evil.patch | patch -p1", "git diff old | git apply -R",
    "tar xf evil.tar", "tar -xf evil.tar", "tar xf linked.tar", "cat ok.tgz | tar xz", "tar -xzf ok.tgz -C .claude", "tar --extract --file evil.tar", "tar -x -f evil.tar -C .",
    "unzip -o evil.zip", "bsdtar -xf evil.tar", "7z x evil.zip", "cpio -idv < evil.tar",
    "rsync -a --delete empty/ ./", "rsync -a evil/ .", "cp -r evil/. .", "cp -rT evil .",
    "find . -delete", "find . -name settings.json -delete", "find . -name '*.json' -exec rm {} +",
    "find .claude -type f -delete", "find . -path '*settings*' -delete",
    "rm -rf *", "rm -rf ./*", "rm -rf .[!.]*", "rm -rf .??*", "rm -rf {.,}*", "rm -rf .",
    "shopt -s dotglob && rm -rf dist/../*", "chmod -R 000 .",
    "git --work-tree=. clean -fdx", "cd \"$(pwd)\" && git clean -fdx", "busybox tar -xf evil.tar",
    "compgen -C 'rm drygate.toml' x",
    "find . -maxdepth 1 -name '*.toml' -delete", "tar -C . -xf evil.tar", "find -delete",
]


@pytest.mark.parametrize("command", WHOLE_TREE_FORMS)
def test_whole_tree_commands_are_tamper(live, command):
    assert_tamper_blocked(live, command)


# --- the host's own CLI switching the gate off (shared/reference/claude-code.md) -------------
HOST_FORMS = [
    "claude --bare -p hi", "claude --safe-mode -p hi", "claude -p hi --settings '{\"disableAllHooks\": true}'",
    "claude --setting-sources user -p hi", "claude --setting-sources=user -p hi", "claude --plugin-dir /tmp/p -p hi",
    "claude --mcp-config x.json -p hi", "claude --strict-mcp-config -p hi", "claude mcp add evil -- node x",
    "claude mcp add-json evil '{}'", "claude mcp remove relay", "claude plugin install x@y",
    "claude plugin marketplace add ./m", "claude config set -g theme dark", "CLAUDE_CONFIG_DIR=/tmp/c claude -p hi",
    "env CLAUDE_CODE_PLUGIN_DIRS=/tmp/p claude -p hi", "npx @anthropic-ai/claude-code --bare -p hi",
]


@pytest.mark.parametrize("command", HOST_FORMS)
def test_the_hosts_cli_cannot_switch_the_gate_off(live, command):
    assert_tamper_blocked(live, command)


# --- the opposite failure: ordinary live work is not tamper ---------------------------------
ORDINARY = [
    ("rm -rf dist/*", lambda r: not list((r / "dist").iterdir())),
    ("mv dist/* out/", lambda r: (r / "out" / "a.js").exists()),
    ("cp -r data/* backup/", lambda r: (r / "backup" / "d.csv").exists()),
    ("docker build -t app .", None),
    ("cd {root} && npm test", None),
    ("cat > src/x.ts <<'EOF'\n/**\n * A comment.\n */\n// and another\nexport const x = 1; // {root}/.claude\nEOF",
     lambda r: "/**" in (r / "src" / "x.ts").read_text()),
    ("cat .claude/settings.json", None),
    ("grep -rn hooks .claude", None),
    ("jq .hooks .claude/settings.json", None),
    ("ls -la .claude ~/.claude", None),
    ("cat drygate.toml | head -3", None),
    ("sed -n 1,3p drygate.toml", None),
    ("git status && git log --oneline && git diff", None),
    ("git checkout -b feature", None),
    ("git add src && git commit -qm 'mention .claude/settings.json and drygate.toml'", None),
    ("find . -name '*.pyc' -delete", None),
    ("find .claude -name '*.md'", None),
    ("tar czf backup/src.tgz src", lambda r: (r / "backup" / "src.tgz").exists()),
    ("mkdir -p vendor && unzip -o evil.zip -d vendor", lambda r: (r / "vendor" / ".claude").exists()),
    ("cd dist && tar xf ../evil.tar", lambda r: (r / "dist" / ".claude").exists()),
    ("patch -p1 < ok.patch", lambda r: (r / "src" / "x.py").exists()),
    ("git apply --check evil.patch", None),
    ("echo '$(rm -rf .claude)' >> notes.md", lambda r: (r / "notes.md").exists()),
    ("cp drygate.toml backup/", lambda r: (r / "backup" / "drygate.toml").exists()),
    ("rm -rf \"$TMPDIR\"/drygate-test-nothing", None),
    ("cd sub && rm -rf *", None),
    ("pip list >/dev/null 2>&1; pipx list >/dev/null 2>&1; true", None),
    ("f=out.txt; echo x > ${f%.txt}.log && echo ${HOME:-/tmp} && x=${1:-build}; rm -rf $x",
     lambda r: (r / "out.log").exists()),
    ("tar -xzf ok.tgz", lambda r: (r / "app.js").exists()),
    ("mkdir -p web/node_modules api/node_modules && rm -rf */node_modules && rm -f */*.pyc",
     lambda r: not (r / "web" / "node_modules").exists()),
    ("tar --extract --file=ok.tgz", lambda r: (r / "app.js").exists()),
    ("unzip -o ok.zip", lambda r: (r / "app.js").exists()),
    ("claude --version; claude mcp list; claude config get theme; true", None),
    ("awk '{print $1}' drygate.toml && git config user.name >/dev/null; true", None),
    ("git -C \"$PWD\" status && cd \"$HOME\" && ls", None),
    ("cp dist/a.js \"$PWD\"/backup", lambda r: (r / "backup" / "a.js").exists()),
    ("cp dist/* backup/", lambda r: (r / "backup" / "a.js").exists()),
    ("ls -la | xargs echo", None),
    ("git stash list && git stash show -p 2>/dev/null; true", None),
    ("time ls", None),
    ("ln -s ../src dist/src", lambda r: (r / "dist" / "src").is_symlink()),
    ("cp -r data/. backup/", lambda r: (r / "backup" / "d.csv").exists()),
    ("tar xf evil.tar -C dist", lambda r: (r / "dist" / ".claude" / "settings.json").exists()),
    ("OUT=build; mkdir -p $OUT && echo x > $OUT/a.txt", lambda r: (r / "build" / "a.txt").exists()),
]


@pytest.mark.parametrize("command,check", ORDINARY, ids=[c for c, _ in ORDINARY])
def test_ordinary_work_is_not_tamper(live, command, check):
    command = command.replace("{root}", str(live.root))
    before = _snapshot(live)
    r = attempt(live, command)
    assert not r.blocks, r.stderr
    assert not [a for a in live.alerts() if a["kind"] == "tamper"]
    assert _snapshot(live) == before
    if check:
        assert check(live.root), command


@pytest.fixture
def live_untracked(sqlite_project, tmp_path):
    """A live project whose git repository ignores everything drygate protects, with a
    branch that changes only the code: switching, merging, stashing, resetting is ordinary work."""
    p = sqlite_project
    root = p.root
    p.home = tmp_path / "home"
    (p.home / ".claude").mkdir(parents=True)
    write_policy(root, "live")
    (root / ".mcp.json").write_text('{"mcpServers": {}}\n')
    (root / ".gitignore").write_text(".claude/\ndrygate.toml\n.mcp.json\n.drygate/\n")
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("x = 1\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "A")
    _git(root, "checkout", "-q", "-b", "feature")
    (root / "src" / "app.py").write_text("x = 2\n")
    _git(root, "commit", "-q", "-am", "feature")
    _git(root, "checkout", "-q", "main")
    (root / "src" / "app.py").write_text("x = 3\n")  # a local change to stash or reset
    p.guarded = [root / ".claude", root / "drygate.toml", root / ".mcp.json"]
    return p


GIT_ORDINARY = [
    "git clean -fd", "git clean -f src", "git stash", "git stash ;; git stash pop", "git reset --hard", "git reset --hard feature", "git checkout -- .",
    "git restore .", "git checkout -f feature", "git stash ;; git checkout feature", "git stash ;; git switch feature",
    "git stash ;; git merge feature", "git stash ;; git rebase feature", "git stash ;; git pull . feature",
    "git stash ;; git cherry-pick feature", "git checkout src/app.py", "git restore --source feature src",
    "git status && git log --oneline && git reset --hard",
]


@pytest.mark.parametrize("command", GIT_ORDINARY)
def test_git_work_that_leaves_the_protected_files_alone_is_not_tamper(live_untracked, command):
    """Tracked-file commands count only when git shows a protected path changing
    (``git diff --quiet``): here the repository ignores them all."""
    p = live_untracked
    before = _snapshot(p)
    for call in command.split(" ;; "):  # separate tool calls
        r = attempt(p, call)
        assert not r.blocks, r.stderr
    assert not [a for a in p.alerts() if a["kind"] == "tamper"]
    assert _snapshot(p) == before


MOVED_FIRST = [
    "git reset --soft evil && git reset --hard", "git branch -f main evil && git reset --hard",
    "git update-ref refs/heads/main evil && git reset --hard", "git symbolic-ref HEAD refs/heads/evil && git reset --hard",
    "git tag t && git tag -f t evil && git checkout -q t -- .", "cp .git/refs/heads/evil .git/refs/heads/main && git reset --hard",
    "GIT_DIR=.git git reset --hard evil", "git stash && git reset --hard evil",
]


@pytest.mark.parametrize("command", MOVED_FIRST)
def test_git_refs_moved_earlier_in_the_command(live, command):
    """git is asked what a command changes before the command runs; when an earlier part of
    the same command moves refs, writes .git or sets GIT_* variables, that answer would be
    stale, so the later whole-tree command counts. Here the working tree equals HEAD, so a
    plain `git reset --hard` is allowed (the case is not denied for another reason)."""
    _git(live.root, "commit", "-qam", "the agent file change")
    r = attempt(live, "git reset --hard")
    assert not r.blocks, r.stderr
    assert_tamper_blocked(live, command)


def test_other_tools_that_run_shell_commands_are_read_too(live):
    """Monitor runs its command (a read by its effect table): self-protection reads it the
    same way; SlashCommand's "command" is prompt text, not shell."""
    before = _snapshot(live)
    r = live.hook(live.event("Monitor", {"command": "echo {} > .claude/settings.json"}), HOME=str(live.home))
    assert r.blocks and live.alerts()[-1]["kind"] == "tamper"
    assert _snapshot(live) == before
    r = live.hook(live.event("SlashCommand", {"command": "/review .claude/settings.json"}), HOME=str(live.home))
    assert not r.blocks, r.stderr


def _transcripts():
    return sorted(glob.glob(str(REPO / "examples" / "transcripts" / "*.jsonl")) +
                  glob.glob(str(TRANSCRIPTS / "*.jsonl")))


def test_transcripts_replay_live_without_tamper_denials():
    """`drygate replay --mode live` over every bundled and shared transcript: no tamper denial."""
    from drygate.replay import replay_transcript

    files = _transcripts()
    assert len(files) >= 7
    bash_calls = 0
    for f in files:
        result = replay_transcript(f, mode="live")
        bash_calls += sum(c["tool_name"] == "Bash" for c in result["calls"])
        tamper = [c for c in result["calls"] if c["why"] and c["reason"].startswith("drygate DENIED this call:")]
        assert not tamper, (f, [(c["line"], c["summary"], c["why"]) for c in tamper])
    assert bash_calls > 100


def test_explain_shows_the_hooks_tamper_denial(live):
    """`drygate explain -- CMD` says what the hook says, word for word."""
    command = "let 'a[$(echo {} > .cl{a,}ude/settings.json)]=1'"
    r = live.hook(live.event("Bash", {"command": command}), HOME=str(live.home))
    hook_reason = r.json["hookSpecificOutput"]["permissionDecisionReason"]
    out = live.cli("explain", "--json", "--", command, HOME=str(live.home))
    answer = json.loads(out.stdout)
    assert answer["tamper"] is True and answer["action"] == "deny"
    assert answer["reason"] == hook_reason
    text = live.cli("explain", "--", command, HOME=str(live.home)).stdout
    assert "denied in every mode" in text
    plain = json.loads(live.cli("explain", "--json", "--", "rm -rf dist/*", HOME=str(live.home)).stdout)
    assert plain["tamper"] is False


def test_protected_paths_hold_after_every_case(live):
    """The fixture's protected files are what the hooks need: a sanity check of the harness."""
    assert (live.root / ".claude" / "settings.json").read_text().count("drygate") >= 1
    assert Path(os.readlink(live.root / "link")).name == "settings.json"


def test_shell_self_protection_keeps_the_hook_lean(live):
    """Ordinary commands, globs included, are checked without ``glob``, ``fnmatch`` or ``subprocess``
    (the parser's bindings already bring ``re``; that cost is the shell classifier's)."""
    import sys

    from conftest import SRC
    from drygate.enforcement.install import import_roots

    roots = [str(SRC)] + import_roots()
    code = ("import sys;sys.path[:0]=%r;from drygate.enforcement.claude_code import main;"
            "c=main(['claude-code','--project',%r]);sys.stderr.write('\\nMODULES='+','.join(sorted(sys.modules)))"
            % (roots, str(live.root)))
    live.hook(live.event("Read", {"file_path": "a"}))  # the first call after a policy change parses it
    for command in ("rm -rf dist/*", "cp -r data/* backup/", f"cd {live.root} && npm test", "echo x > out.txt",
                    "cat > src/x.ts <<'EOF'\n/** x */\nEOF"):
        ev = live.event("Bash", {"command": command})
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], input=json.dumps(ev).encode(),
                              capture_output=True, env=live.env(), cwd=live.root)
        modules = set(proc.stderr.decode().split("MODULES=")[1].split(","))
        assert proc.stdout.decode().strip() == "{}", proc.stdout
        assert not modules & {"glob", "fnmatch", "subprocess", "shlex", "json"}, (command, modules & {
            "glob", "fnmatch", "subprocess", "shlex", "json"})


@pytest.mark.parametrize("command,plain", [
    ("ls -la | head -5", True), ("grep -rn hooks .claude", True), ("cd .claude && ls", True),
    ("cat x > y", False), ("ls; rm x", False), ("ls $(rm x)", False), ("echo \"x\"", False), ("ls\nrm x", False),
    ("X=1 ls", False), ("sort -o x y", False), ("ls -la ~/.claude", False), ("ls &rm x", False),
    ("cat <(rm x)", False), ("ls `rm x`", False), ("ls # comment; rm x", False), ("find . -delete", False),
    ("echo {a,b}", False), ("ls\\\nrm x", False), ("cat\u2003x drygate.toml", False), ("cat\xa0x y", False),
    ("cat\x1cx y", False), ("ls#x y", False), ("ls -la # comment", True), ("ls\t-la", True), ("ls é", False),
])
def test_the_plain_read_shortcut_is_only_taken_for_plain_reads(command, plain):
    """The shortcut that skips the shell reading: only readers, plain words, separators."""
    from drygate.classifiers.protect import plainly_reads

    assert plainly_reads(command) is plain


def test_the_plain_read_shortcut_splits_words_only_where_bash_does():
    """Bash separates words only on its metacharacters (bash manual, DEFINITIONS: space, tab,
    newline, | & ; ( ) < >); Python's str.split() also on other whitespace. Whatever character
    joins ``cat`` and ``x``, the shortcut takes ``cat<c>x y`` only when bash runs ``cat`` with
    the argument ``x``: where <c> is a blank (newline and the other metacharacters make ``x`` a
    command)."""
    import sys

    from drygate.classifiers.protect import plainly_reads

    splits = [c for c in map(chr, range(sys.maxunicode + 1)) if len(("a" + c + "b").split()) > 1]
    assert "\u2003" in splits and "\x1c" in splits and "\xa0" in splits  # Python's, not bash's
    candidates = set(splits) | set(map(chr, range(128)))
    taken = {c for c in candidates if plainly_reads(f"cat{c}x y")}
    assert taken == {" ", "\t"}, sorted(map(repr, taken))
    assert not plainly_reads("cat#x y")  # a "#" inside a word is not a comment
