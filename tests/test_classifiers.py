"""Built-in classification: the conservative shell allow-list, self-protection, policy loading."""

import os

import pytest

from drygate.classifiers.protect import for_project
from drygate.classifiers.shell import classify_command
from drygate.engine import classify
from drygate.errors import ConfigError, PolicyError
from drygate.policy.load import compile_policy_text, load_policy_file
from drygate.types import ToolCall


@pytest.mark.parametrize("command", [
    "ls -la", "cat README.md", "git status", "git log --oneline -5 | head -3", "grep -r foo src && wc -l x",
    "cd /srv/app && ls", "ls 2>/dev/null", "find . -name '*.py'", "git -C sub diff", "echo hi 2>&1",
    "sort data.txt", "/usr/bin/cat x", "sort -n -k2 data.txt", "cat `ls`", "cat <<EOF\nx\nEOF", "echo ${HOME}",
    "drygate runs", "ls *.py", "grep -r TODO src/*.py", "git branch -a", "git config --get user.name", "pwd; date",
])
def test_reads(command):
    assert classify_command(command).effect == "read", classify_command(command).reason


@pytest.mark.parametrize("command,effect", [
    ("echo hi > out.txt", "write"), ("cat a >> b", "write"), ("ls &> log.txt", "write"),
    ("rm -rf build/", "unknown"), ("git push --force", "unknown"), ("git commit -m x", "unknown"),
    ("find . -delete", "unknown"), ("find . -exec rm {} ;", "unknown"), ("sort -o out in", "unknown"),
    ("echo $(rm -rf /)", "unknown"), 
    ("python -c 'print(1)'", "unknown"), ("ls | xargs rm", "unknown"), ("git branch -D main", "unknown"),
    ("git config user.name x", "unknown"), ("env rm -rf /", "unknown"), ("hostname evil", "unknown"),
    ("ls && curl -X POST http://x", "unknown"), ("'unbalanced", "unknown"), ("", "unknown"),
    ("git -c core.pager=evil log", "unknown"), ("git diff --output=x", "unknown"), 
    ("rg --pre=./evil x", "unknown"), ("tree -o out.txt", "unknown"), ("date -s 2020-01-01", "unknown"),
    ("git grep -O vim x", "unknown"), ("less -o log.txt data", "unknown"), ("file -C -m magic", "unknown"),
    ("ls >| out", "write"), ("ls 1>out", "write"), ("ls>>out", "write"),
    # Found by adversarial review: each was once classified as a read and really wrote.
    ("echo a #'\ntouch PWNED\n#'", "unknown"), ("echo $'\\'' > out.txt #'", "unknown"),
    ("GIT_EXTERNAL_DIFF='touch PWNED' git diff", "unknown"), ("GIT_TRACE=/tmp/t git status", "unknown"),
    ("PATH=/evil; ls", "unknown"), ("./test", "unknown"), ("/tmp/x/cat in.txt", "unknown"),
    ("sort -uo out.txt in.txt", "unknown"), ("sort --outp=out.txt in.txt", "unknown"),
    ("sort {-o,out.txt} in.txt", "unknown"), ("X=-o; sort $X out.txt in.txt", "unknown"),
    ("find . -name in.txt -{delete,print}", "unknown"), ("sort --compress-program=/p -S 1K x", "unknown"),
    ("git grep -iO'touch PWNED' c", "unknown"), ("git reflog expire --expire=now --all", "unknown"),
    ("date --s=2020-01-01", "unknown"), ("date -us 2020-01-01", "unknown"),
    ("DRYGATE_STATE=/prod.sqlite drygate runs", "unknown"), 
    ("ls\r> out", "unknown"), ("cat a\\\n> out", "unknown"),
])
def test_not_reads(command, effect):
    """Never a read; ``effect`` is the least the command must be (write or unknown)."""
    got = classify_command(command).effect
    assert got != "read", classify_command(command).reason
    if effect == "write":
        assert got in ("write", "unknown"), got


def test_bash_call_uses_shell_classifier():
    policy = compile_policy_text('[run]\nmode = "dry"\n')
    assert classify(ToolCall("Bash", {"command": "ls"}, "r"), policy).effect == "read"
    assert classify(ToolCall("Bash", {}, "r"), policy).effect == "unknown"


@pytest.mark.parametrize("tool,tool_input", [
    ("Write", {"file_path": ".claude/settings.json", "content": "{}"}),
    ("Edit", {"file_path": "/p/drygate.toml", "old_string": "a", "new_string": "b"}),
    ("Bash", {"command": "rm -rf .drygate"}),
    ("Bash", {"command": "export DRYGATE_MODE=live"}),
    ("Bash", {"command": "echo '{\"disableAllHooks\": true}' > .claude/settings.local.json"}),
    ("mcp__fs__write_file", {"path": "/p/.claude/settings.json", "content": "{}"}),
    ("Bash", {"command": "drygate install claude-code"}),
    ("NotebookEdit", {"notebook_path": "../p/.mcp.json"}),
    # Found by adversarial review (live mode): each once passed as an ordinary write.
    ("Bash", {"command": "cd .claude && echo {} > settings.json"}),
    ("Bash", {"command": "echo {} > .claude//settings.json"}),
    ("Bash", {"command": "rm -rf .dryga?e"}),
    ("Bash", {"command": "rm -rf .dry\"\"gate"}),
    ("Bash", {"command": "rm drygate.tom?"}),
    ("Bash", {"command": "mv drygate.to\"\"ml x"}),
    ("Bash", {"command": "mv .c\"\"laude .c2"}),
    ("Bash", {"command": "python3 -c \"open('.claude/'+'settings.json','w')\""}),
    ("mcp__x__write", {**{f"pad{i}": "x" for i in range(300)}, "path": "/p/.claude/settings.json"}),
    ("Bash", {"command": "rm -rf .."}),
])
def test_tamper(tool, tool_input):
    policy = compile_policy_text('[run]\nmode = "live"\n')
    protected = for_project("/p", "/p/drygate.toml", "/p/.drygate/state.db", "/p/.drygate/alerts.jsonl")
    # A shell command's relative paths are resolved against its folder (no text markers):
    # the project folder here, except for the one that climbs out of a subfolder.
    cwd = "/p" if tool == "Bash" and ".." not in tool_input["command"] else "/p/sub"
    cls = classify(ToolCall(tool, tool_input, "r", cwd=cwd), policy, protected)
    assert cls.tamper and cls.action == "deny"


@pytest.mark.parametrize("tool,tool_input", [
    ("Read", {"file_path": "/p/.claude/settings.json"}),
    ("Bash", {"command": "cat drygate.toml"}),
    ("Write", {"file_path": "/p/src/state.db.py", "content": "x"}),
])
def test_not_tamper(tool, tool_input):
    policy = compile_policy_text('[run]\nmode = "live"\n')
    protected = for_project("/p", "/p/drygate.toml", "/p/.drygate/state.db", "/p/.drygate/alerts.jsonl")
    assert not classify(ToolCall(tool, tool_input, "r", cwd="/p"), policy, protected).tamper


@pytest.mark.parametrize("text,message", [
    ('[run]\nmode = "maybe"', "mode must be one of"),
    ("[run\n", "invalid TOML"),
    ("[gate]\ndeadline_ms = 5", "deadline_ms"),
    ("[[rules]]\neffect = \"write\"", "exactly one of tool"),
    ("[[rules]]\ntool = \"x\"\ntool_glob = \"y\"\neffect = \"write\"", "exactly one of tool"),
    ("[[rules]]\ntool = \"x\"\neffect = \"writes\"", "effect must be one of"),
    ("[[rules]]\ntool_regex = \"(\"\neffect = \"write\"", "not a valid regex"),
    ("[[rules]]\ntool = \"x\"\neffect = \"write\"\nactoin = \"deny\"", "unknown key(s): actoin"),
    ("[[rules]]\ntool = \"x\"\naction = \"allow\"", "action must be"),
    ("bogus = 1", "unknown top-level key"),
    ('[run]\nmdoe = "live"', "unknown key(s) in [run]: mdoe"),
    ("[gate]\ndeadline = 500", "unknown key(s) in [gate]: deadline"),
])
def test_policy_errors_are_clear(text, message):
    import re

    with pytest.raises(PolicyError, match=re.escape(message)):
        compile_policy_text(text, source="drygate.toml")


def test_policy_file_errors_are_guard_failures(tmp_path):
    with pytest.raises(ConfigError, match="cannot read policy"):
        load_policy_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_policy_file(bad)


def test_template_policy_compiles():
    from drygate.policy.load import default_policy_text

    p = compile_policy_text(default_policy_text())
    assert p["mode"] == "dry" and p["rules"] == () and len(p["hash"]) == 64


def test_policy_cache_follows_edits(tmp_path):
    import os
    import time

    from drygate.policy.cache import load_policy

    path = tmp_path / "drygate.toml"
    path.write_text('[run]\nmode = "live"\n')
    assert load_policy(str(path), str(tmp_path))["mode"] == "live"
    assert load_policy(str(path), str(tmp_path))["mode"] == "live"  # from the cache
    time.sleep(0.01)
    path.write_text('[run]\nmode = "dry"\n')
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1))
    assert load_policy(str(path), str(tmp_path))["mode"] == "dry"
    (tmp_path / "policy.cache").write_bytes(b"garbage")
    assert load_policy(str(path), str(tmp_path))["mode"] == "dry"


def test_tamper_through_symlink_and_hard_link(tmp_path):
    import os

    project = tmp_path / "p"
    (project / ".claude").mkdir(parents=True)
    settings = project / ".claude" / "settings.json"
    settings.write_text("{}")
    os.symlink(project / ".claude", tmp_path / "alias")
    os.link(settings, project / "hard.json")
    policy = compile_policy_text('[run]\nmode = "live"\n')
    protected = for_project(str(project), None, str(project / ".drygate" / "state.db"), None)
    via_symlink = ToolCall("mcp__fs__write", {"path": str(tmp_path / "alias" / "settings.json")}, "r",
                           cwd=str(project))
    via_hard_link = ToolCall("Write", {"file_path": "hard.json", "content": "{}"}, "r", cwd=str(project))
    assert classify(via_symlink, policy, protected).tamper
    assert classify(via_hard_link, policy, protected).tamper


def test_drygate_installation_is_protected():
    import drygate

    policy = compile_policy_text('[run]\nmode = "live"\n')
    protected = for_project("/p", None, "/p/.drygate/state.db", None)
    engine_py = os.path.join(os.path.dirname(drygate.__file__), "engine.py")
    assert classify(ToolCall("Write", {"file_path": engine_py, "content": ""}, "r", cwd="/p"), policy,
                    protected).tamper


def test_custom_state_path_still_protects_policy_cache():
    policy = compile_policy_text('[run]\nmode = "live"\n')
    protected = for_project("/p", None, "/elsewhere/state.db", None)
    call = ToolCall("Write", {"file_path": "/p/.drygate/policy.cache", "content": "x"}, "r", cwd="/p")
    assert classify(call, policy, protected).tamper
