"""The drygate Claude Code plugin (plugins/drygate, marketplace .claude-plugin/marketplace.json)
installed from the repository's local marketplace into the real CLI, offline.

Measured with the pinned CLIs: both 2.1.332 and 2.0.77 add a local marketplace folder and
install from it (`claude plugin marketplace add DIR`, `claude plugin install
drygate@drygate`); the plugin's hooks then run for every tool call, as the project hook
`drygate init` installs. The hooks file carries `onFailure: "block"`: see
test_the_plugin_hooks_file_is_generated for what each CLI does with it.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from .conftest import Project
from .e2e_util import REPO
from .test_claude_code_e2e import INCIDENT_POLICY, INSERT, ORIGINAL_ROWS, PUT, WRITE_OUT, BASH_POLICY

pytestmark = pytest.mark.e2e


def install_plugin(project, path_dirs=None):
    """Add the repository as a marketplace and install the plugin (user scope, the test's HOME)."""
    env = project.base_env({"DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1",
                            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"})
    for args in (("plugin", "marketplace", "add", str(REPO)), ("plugin", "install", "drygate@drygate")):
        proc = subprocess.run([str(project.cli.path), *args], cwd=project.dir, env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0 and "Successfully" in proc.stdout + proc.stderr, (args, proc.stdout, proc.stderr)
    project.drygate("init", "--no-hooks", "--mode", "sticky")
    assert "drygate-hook" not in project.settings.read_text(), "init --no-hooks must not install the project hook"


def with_path(project, extra=None):
    """The agent's environment: drygate-hook on PATH (as `pipx install` puts it)."""
    return {"PATH": f"{project.tools.drygate.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}", **(extra or {})}


def decisions(project, run_id):
    store_entries = project.drygate_json("plan", run_id)
    return [(s["tool_name"], s["input"], s["effect"], s["made_run_dry"]) for s in store_entries["steps"]]


def test_the_incident_through_the_plugin_matches_drygate_init(project, tmp_path):
    install_plugin(project)
    project.write_policy(INCIDENT_POLICY)
    run = project.run_agent([PUT, INSERT], env=with_path(project), prompt="Upload a.png and record it.",
                            label="incident: plugin")
    assert project.objects() == [] and project.rows() == ORIGINAL_ROWS, run.describe()
    assert [r["name"] for r in run.tool_results] == [PUT["name"], INSERT["name"]], run.describe()
    assert all("not executed" in r["content"].lower() for r in run.tool_results), run.describe()
    plan = project.drygate_json("plan", run.session_id)
    assert [s["tool_name"] for s in plan["steps"]] == [PUT["name"], INSERT["name"]], plan
    assert plan["steps"][1]["dry_because_of"] == plan["steps"][0]["seq"]
    assert project.alerts() == []
    # The same scenario with the project hook `drygate init` installs: the same plan.
    (tmp_path / "init").mkdir()
    other = Project(tmp_path / "init", project.cli, project.tools)
    other.init_drygate(INCIDENT_POLICY)
    ref = other.run_agent([PUT, INSERT], prompt="Upload a.png and record it.", label="incident: init")
    assert decisions(project, run.session_id) == decisions(other, ref.session_id)
    assert [r["is_error"] for r in run.tool_results] == [r["is_error"] for r in ref.tool_results]


def test_drygate_missing_from_path_still_blocks(project):
    install_plugin(project)
    project.write_policy(BASH_POLICY.format(mode="live"))
    run = project.run_agent([WRITE_OUT], env={"PATH": "/usr/bin:/bin"}, label="plugin: drygate-hook missing")
    assert not (project.dir / "out.txt").exists(), "LEAK: the plugin let a call through without drygate\n" + \
        run.describe()
    assert run.tool_results and run.tool_results[0]["is_error"], run.describe()
    assert any(a.get("cause") == "hook_exit_127" for a in project.alerts()), project.alerts()


def test_an_invalid_policy_blocks_through_the_plugin(project):
    install_plugin(project)
    project.write_policy('[run\nmode = "live"\n')
    run = project.run_agent([WRITE_OUT], env=with_path(project), label="plugin: invalid policy")
    assert not (project.dir / "out.txt").exists(), run.describe()
    assert any(a.get("kind") == "guard_failure" for a in project.alerts()), project.alerts()


def test_the_plugin_hooks_file_is_generated():
    from drygate.enforcement.plugin import plugin_hooks

    on_disk = json.loads((REPO / "plugins" / "drygate" / "hooks" / "hooks.json").read_text())
    assert on_disk == plugin_hooks(on_failure=True)
    market = json.loads((REPO / ".claude-plugin" / "marketplace.json").read_text())
    assert market["plugins"][0]["source"] == "./plugins/drygate"


def test_on_failure_block_in_a_plugin_hooks_file(project, tmp_path):
    """What `onFailure: "block"` in a plugin's hooks.json does, per pinned CLI: a hook that
    times out (here `sleep 6` with a 2 s timeout, which no wrapper can turn into exit 2)
    blocks the call in 2.1.332; 2.0.77 accepts the key (the plugin's other hooks run, see
    the tests above) and ignores it: the call runs. drygate's own deadline (3 s, at most
    20 s) stays below the plugin's 30 s timeout, so the gate answers before the host's."""
    market = tmp_path / "market"
    plugin = market / "plugins" / "sleeper"
    for folder in (market / ".claude-plugin", plugin / ".claude-plugin", plugin / "hooks"):
        folder.mkdir(parents=True)
    (market / ".claude-plugin" / "marketplace.json").write_text(json.dumps(
        {"name": "m", "owner": {"name": "drygate tests"}, "plugins": [{"name": "sleeper", "source": "./plugins/sleeper"}]}))
    (plugin / ".claude-plugin" / "plugin.json").write_text(json.dumps({"name": "sleeper", "version": "0.0.1"}))
    handler = {"type": "command", "command": "sleep 6", "timeout": 2, "onFailure": "block"}
    (plugin / "hooks" / "hooks.json").write_text(json.dumps({"hooks": {"PreToolUse": [{"matcher": "*",
                                                                                       "hooks": [handler]}]}}))
    env = project.base_env({"DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1",
                            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"})
    for args in (("plugin", "marketplace", "add", str(market)), ("plugin", "install", "sleeper@m")):
        proc = subprocess.run([str(project.cli.path), *args], cwd=project.dir, env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    run = project.run_agent([WRITE_OUT], label="plugin: onFailure block, hook timed out")
    ran = (project.dir / "out.txt").exists()
    if project.cli.version.startswith("2.0."):
        assert ran, run.describe()
    else:
        assert not ran and 'onFailure is "block"' in run.tool_results[0]["content"], run.describe()
