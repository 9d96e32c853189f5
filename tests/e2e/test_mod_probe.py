"""Measured (issue 14): can a Claude Code mod answer a dry call with a NON-error "not
executed" result? Yes with 2.1.332, offline: the probe mod (tests/e2e/mod_probe) asks
drygate's real hook for the decision through ``$.process.run`` and answers a dry Bash call
with a Bash-shaped result; the model receives drygate's NOT EXECUTED text with
``is_error: false``, the command never runs, and the run's plan holds the step. 2.0.77
ignores ``modules``.

What was found while measuring (the mod API as 2.1.332 ships it): ``export function
register(on, options)``; ``on('tool.call', async ($, e, next) => ...)`` where ``e`` is the
tool's input plus ``tool`` and ``tool_use_id``; an answer is ``{result: ...}`` (shaped as
the tool's own result) or ``{deny: text}``, or ``next(e)`` to run the tool;
``.catch(($, e, next) => ({deny: ...}))`` turns a failing handler into a block;
``$.process.run([argv...], {cwd})`` resolves ``{exitCode, stdout, stderr}``.

Why drygate does not ship the mod yet: a call the mod lets through (``next``) then runs the
settings and plugin PreToolUse hooks, which the reference says to keep as the backstop
(a mod that fails to load is silently ungated), and they would decide the same call a
second time; the engine would first need to answer a call id it already decided from the
journal. And a Read answered with the run's own version needs the Read result's shape,
not measured here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .test_claude_code_e2e import BASH_POLICY, WRITE_OUT
from .test_plugin_e2e import with_path

pytestmark = pytest.mark.e2e
MARKET = Path(__file__).resolve().parent / "mod_probe"


def test_a_mod_answers_a_dry_bash_call_with_a_non_error_result(project):
    if project.cli.version.startswith("2.0."):
        pytest.skip("2.0.x has no mods (it ignores `modules`)")
    env = project.base_env({"DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1",
                            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"})
    for args in (("plugin", "marketplace", "add", str(MARKET)),
                 ("plugin", "install", "drygate-mod-probe@drygate-probes")):
        proc = subprocess.run([str(project.cli.path), *args], cwd=project.dir, env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    project.write_policy(BASH_POLICY.format(mode="dry"))
    project.drygate("state", "init")  # the hook never creates a state store
    run = project.run_agent([WRITE_OUT], env=with_path(project), label="mod probe: dry Bash")
    assert not (project.dir / "out.txt").exists(), run.describe()
    [result] = run.tool_results
    assert result["is_error"] is False and "NOT EXECUTED" in result["content"], run.describe()
    plan = project.drygate_json("plan", "mod-probe")
    assert [s["tool_name"] for s in plan["steps"]] == ["Bash"], plan
