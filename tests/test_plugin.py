"""The Claude Code plugin's files and what protects them (the plugin end to end with the
real CLI is tests/e2e/test_plugin_e2e.py)."""

import json
import os

from conftest import REPO, Project, write_policy


def test_the_plugin_hooks_file_is_the_generated_one():
    from drygate.enforcement.install import MARKER
    from drygate.enforcement.plugin import plugin_hooks

    on_disk = json.loads((REPO / "plugins" / "drygate" / "hooks" / "hooks.json").read_text())
    assert on_disk == plugin_hooks(on_failure=True)
    for event in ("PreToolUse", "PostToolUse"):
        [group] = on_disk["hooks"][event]
        assert group["matcher"] == "*" and group["hooks"][0]["onFailure"] == "block"
        assert MARKER in group["hooks"][0]["command"] and "exit 2" in group["hooks"][0]["command"]
    market = json.loads((REPO / ".claude-plugin" / "marketplace.json").read_text())
    [entry] = market["plugins"]
    manifest = json.loads((REPO / "plugins" / "drygate" / ".claude-plugin" / "plugin.json").read_text())
    assert entry["name"] == manifest["name"] == "drygate" and entry["source"] == "./plugins/drygate"


def test_the_plugin_command_fails_closed_without_drygate(tmp_path):
    """The plugin's command with no drygate-hook on PATH: exit 2 and a guard alert."""
    import subprocess

    from drygate.enforcement.plugin import plugin_hooks

    command = plugin_hooks()["hooks"]["PreToolUse"][0]["hooks"][0]["command"]
    proc = subprocess.run(["/bin/sh", "-c", command], input="{}", capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "CLAUDE_PROJECT_DIR": str(tmp_path)}, timeout=30)
    assert proc.returncode == 2 and "BLOCKED (fail closed)" in proc.stderr
    alert = json.loads((tmp_path / ".drygate" / "alerts.jsonl").read_text().splitlines()[-1])
    assert alert["cause"] == "hook_exit_127"


def test_an_agent_cannot_change_installed_plugins(tmp_path):
    """~/.claude/plugins holds the installed plugin's hooks: a write there is a tamper denial."""
    home = tmp_path / "home"
    hooks = home / ".claude" / "plugins" / "cache" / "drygate" / "drygate" / "0.1.0" / "hooks" / "hooks.json"
    project = Project(tmp_path / "app")
    write_policy(project.root, "live")
    for tool, tool_input in (("Write", {"file_path": str(hooks), "content": "{}"}),
                             ("Bash", {"command": f"rm -rf {home}/.claude/plugins/cache/drygate"})):
        r = project.hook(project.event(tool, tool_input), HOME=str(home))
        assert r.blocks and "protects the gate" in (r.stdout + r.stderr), (tool, r.stdout, r.stderr)


def test_init_without_hooks_writes_the_policy_only(tmp_path):
    project = Project(tmp_path / "app")
    os.remove(project.root / ".claude" / "settings.json")
    project.cli("init", "--no-hooks")  # the default policy is dry: the OS sandbox of Bash is still written
    settings = json.loads((project.root / ".claude" / "settings.json").read_text())
    assert (project.root / "drygate.toml").exists() and "hooks" not in settings
    assert settings["sandbox"]["enabled"] is True
    project.cli("init", "--no-hooks", "--mode", "sticky", "--force")
    assert not (project.root / ".claude" / "settings.json").exists() or \
        "hooks" not in json.loads((project.root / ".claude" / "settings.json").read_text())


def _plugin_home(tmp_path):
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text(json.dumps({"enabledPlugins": {"drygate@drygate": True}}))
    return home


def test_doctor_checks_the_plugin(tmp_path):
    import sys
    from pathlib import Path

    home = _plugin_home(tmp_path)
    project = Project(tmp_path / "app")
    os.remove(project.root / ".claude" / "settings.json")
    project.cli("init", "--no-hooks", "--mode", "sticky")
    with_hook = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    r = project.cli("doctor", "--json", HOME=str(home), PATH=with_hook, check=False)
    checks = {c["check"]: c for c in json.loads(r.stdout)}
    assert r.returncode == 0, [c for c in checks.values() if c["status"] == "fail"]
    assert checks["plugin"]["status"] == "ok" and checks["hook blocks a dry write"]["status"] == "ok"
    assert checks["blocks when drygate is gone"]["status"] == "ok"
    r = project.cli("doctor", "--json", HOME=str(home), PATH="/usr/bin:/bin", check=False)
    checks = {c["check"]: c for c in json.loads(r.stdout)}
    assert r.returncode == 1 and checks["plugin"]["status"] == "fail" and "not on PATH" in checks["plugin"]["detail"]


def test_doctor_refuses_the_plugin_and_the_project_hook_together(tmp_path):
    home = _plugin_home(tmp_path)
    project = Project(tmp_path / "app")  # installs the project hook, as drygate init does
    write_policy(project.root, "sticky")
    r = project.cli("doctor", "--json", HOME=str(home), check=False)
    checks = {c["check"]: c for c in json.loads(r.stdout)}
    assert r.returncode == 1 and checks["plugin and hook"]["status"] == "fail"
    assert "decided twice" in checks["plugin and hook"]["detail"]
