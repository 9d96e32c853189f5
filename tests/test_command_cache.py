"""The verdict cache for whole Bash commands (drygate.classifiers.command_cache).

A repeated command gets the verdict the classifier gave it, never another one: the key
holds the text, the policy file's hash and the classifier's code, and self-protection
reads every call, hit or miss (it depends on the file system).
"""

import os
import subprocess
import sys

from conftest import SRC, write_policy

from drygate.classifiers import command_cache
from drygate.classifiers.claude_code import classify
from drygate.state.memory import MemoryStore
from drygate.types import ToolCall


def _bash(command):
    return ToolCall("Bash", {"command": command}, "r1")


def _policy(store, digest="a" * 64, commands=None):
    return {"hash": digest, "commands": commands or {}, "http_rules": (), "_verdict_store": store}


def test_a_hit_gives_the_classifiers_own_verdict():
    store = MemoryStore()
    policy = _policy(store)
    for command in ("ls -la | head -5", "psql -c 'DELETE FROM t'", "rm -rf build", "frobnicate --now", "(("):
        first = classify(_bash(command), policy)
        key = command_cache.key_for(command, policy)
        assert store.verdict_get(key) is not None, command
        second = classify(_bash(command), policy)
        assert (second.effect, second.reason, second.rule_id) == (first.effect, first.reason, first.rule_id)


def test_the_key_holds_text_policy_and_code(monkeypatch):
    policy = _policy(None)
    key = command_cache.key_for("ls", policy)
    assert key.startswith("sh:")
    assert command_cache.key_for("ls ", policy) != key
    assert command_cache.key_for("ls", _policy(None, digest="b" * 64)) != key
    assert command_cache.key_for("ls", {"commands": {}}) is None  # no file hash: no cache
    stamp = command_cache.code_stamp()
    for part in ("shell.py|", "commands.py|", "bash_names.py|", "sql.py|", "types.py|", "tree_sitter_bash|",
                 "sqlglot|"):
        assert part in stamp, part
    monkeypatch.setattr(command_cache, "_STAMP", stamp.replace("shell.py|", "shell.py|1"))
    assert command_cache.key_for("ls", policy) != key


def test_the_stamp_follows_a_changed_classifier_file(tmp_path):
    """A classifier module rewritten (an upgrade) gives another stamp in a new process."""
    code = ("import sys;sys.path.insert(0,sys.argv[1]);from drygate.classifiers import command_cache as c;"
            "print(c.code_stamp())")
    copy = tmp_path / "src"
    subprocess.run(["cp", "-r", str(SRC), str(copy)], check=True)
    before = subprocess.run([sys.executable, "-c", code, str(copy)], capture_output=True, text=True, check=True)
    target = copy / "drygate" / "classifiers" / "commands.py"
    target.write_text(target.read_text() + "\n# changed\n")
    after = subprocess.run([sys.executable, "-c", code, str(copy)], capture_output=True, text=True, check=True)
    assert before.stdout != after.stdout


def test_a_policy_change_is_not_answered_from_the_cache(project):
    write_policy(project.root, "dry")
    ev = project.event("Bash", {"command": "frobnicate --all"})
    assert project.hook(ev).blocks  # unknown: dry
    assert project.hook(project.event("Bash", {"command": "frobnicate --all"})).blocks
    write_policy(project.root, "dry", extra='[[commands]]\nname = "frobnicate"\neffect = "read"\n')
    r = project.hook(project.event("Bash", {"command": "frobnicate --all"}, session="s-new-policy"))
    assert r.code == 0 and not r.blocks, r.stderr


def test_self_protection_reads_every_call_of_a_cached_command(project):
    """The same text, cached as a write after the first call, is tamper once the word
    it deletes became a symlink to the gate's state: the file system decides, not the cache."""
    write_policy(project.root, "live")
    (project.root / "x").mkdir()
    command = "rm -rf x"
    r = project.hook(project.event("Bash", {"command": command}))
    assert r.code == 0 and not r.blocks, r.stderr
    store = project.open_store()
    try:
        from drygate.policy.cache import load_policy

        policy = load_policy(str(project.root / "drygate.toml"))
        assert store.verdict_get(command_cache.key_for(command, policy)) is not None  # kept after the answer
    finally:
        store.close()
    os.rmdir(project.root / "x")
    os.symlink(project.root / ".drygate", project.root / "x")
    r = project.hook(project.event("Bash", {"command": command}))
    assert r.blocks and "protects the gate" in r.stderr, r.stderr
    assert any(a.get("kind") == "tamper" for a in project.alerts())


def test_repeated_commands_journal_the_same_reason(project):
    write_policy(project.root, "live")
    for _ in range(2):
        assert project.hook(project.event("Bash", {"command": "git status && ls -la | head -3"})).code == 0
    rows = [e for e in project.journal() if e.get("tool_name") == "Bash" and e.get("kind") == "call"]
    assert len(rows) == 2 and rows[0]["why"] == rows[1]["why"] and rows[0]["effect"] == rows[1]["effect"] == "read"


def test_a_damaged_row_is_a_miss():
    store = MemoryStore()
    policy = _policy(store)
    key = command_cache.key_for("rm -rf build", policy)
    for bad in (("fine", ("x",)), ("bookkeeping", ("x",)), ("read", (1,)), ("read", None), None):
        store._verdicts[key] = bad
        assert command_cache.lookup(store, key) is None, bad
    store._verdicts[key] = ("bogus", ("looks like a read",))
    assert classify(_bash("rm -rf build"), policy).effect == "write"


def test_the_default_effects_of_a_lookup_are_those_of_a_shell_verdict():
    """lookup's default set (drygate.types' effects but bookkeeping) is the effects a
    Verdict can have (verdict.STRENGTH): a row with any other is a miss."""
    from drygate.classifiers.verdict import STRENGTH
    from drygate.types import EFFECTS

    store = MemoryStore()
    for effect in EFFECTS:
        store.verdict_put("k", effect, ("x",))
        assert (command_cache.lookup(store, "k") is not None) is (effect in STRENGTH), effect
