"""drygate.sandbox without the Claude Code CLI: the settings it passes, the project settings it
keeps in step with the policy, the policy's [sandbox] table, and the shadow servers' bubblewrap
prefix run for real. The real CLI's behaviour is in tests/e2e/test_sandbox_e2e.py."""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from drygate.errors import PolicyError
from drygate.policy.load import compile_policy_text
from drygate.sandbox import (added_dirs, claude_settings, doctor_checks, server_prefix, settings_sandboxed,
                             sync_project_settings, with_settings, without_sandbox)

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is installed by .ci/run")


def test_settings_deny_writes_and_network_and_unsandboxed_commands(tmp_path):
    s = claude_settings([str(tmp_path), str(tmp_path / ".." / tmp_path.name)], ["api.github.com"])["sandbox"]
    assert s["enabled"] is True and s["failIfUnavailable"] is True and s["allowUnsandboxedCommands"] is False
    assert s["filesystem"]["denyWrite"] == [str(tmp_path)]  # absolute, once
    assert s["network"]["allowedDomains"] == ["api.github.com"]
    assert claude_settings([str(tmp_path)])["sandbox"]["network"]["allowedDomains"] == []


def test_added_dirs_as_claude_reads_them():
    """`--add-dir <directories...>` (variadic up to the next option) and `--add-dir=DIR`."""
    argv = ["claude", "--add-dir", "a", "/b", "-p", "x", "--add-dir=c", "--model", "m", "--add-dir", "d"]
    assert added_dirs(argv) == [os.path.abspath(p) for p in ("a", "/b", "c", "d")]
    assert added_dirs(["claude", "-p", "--add-dir"]) == [] and added_dirs(["claude", "--", "--add-dir", "z"]) == []


def test_with_settings_adds_one_flag_and_merges_a_given_one(tmp_path):
    ours = claude_settings([str(tmp_path)])
    argv = with_settings(["claude", "-p", "x"], ours)
    assert argv[:2] == ["claude", "--settings"] and json.loads(argv[2]) == ours and argv[3:] == ["-p", "x"]
    given = {"model": "m", "sandbox": {"enabled": False, "excludedCommands": ["git"]}}
    for form in (["--settings", json.dumps(given)], [f"--settings={json.dumps(given)}"]):
        argv = with_settings(["claude", *form, "-p", "x"], ours)
        assert argv.count("--settings") == 1 and argv[-2:] == ["-p", "x"]
        merged = json.loads(argv[argv.index("--settings") + 1])
        assert merged["model"] == "m" and merged["sandbox"]["enabled"] is True  # drygate's keys win
        assert merged["sandbox"]["excludedCommands"] == ["git"]  # kept (they run sandboxed anyway)
    path = tmp_path / "s.json"
    path.write_text(json.dumps(given))
    argv = with_settings(["claude", "--settings", str(path)], ours)
    assert json.loads(argv[2])["model"] == "m"
    for bad in ("[1]", "{nope", str(tmp_path / "missing.json")):
        with pytest.raises(ValueError):
            with_settings(["claude", "--settings", bad], ours)


def test_project_settings_follow_the_policy_mode(tmp_path):
    claude = tmp_path / ".claude"
    claude.mkdir()
    own = {"hooks": {"PreToolUse": []}, "sandbox": {"excludedCommands": ["docker"]}, "model": "x"}
    (claude / "settings.json").write_text(json.dumps(own))
    dry = compile_policy_text('[run]\nmode = "dry"\n[sandbox]\nallowed_domains = ["pypi.org"]\n')
    assert sync_project_settings(tmp_path, dry) == "added"
    assert sync_project_settings(tmp_path, dry) is None  # idempotent
    settings = json.loads((claude / "settings.json").read_text())
    assert settings_sandboxed(settings, tmp_path) and settings["model"] == "x" and "hooks" in settings
    assert settings["sandbox"]["excludedCommands"] == ["docker"]
    assert settings["sandbox"]["network"]["allowedDomains"] == ["pypi.org"]
    sticky = compile_policy_text('[run]\nmode = "sticky"\n')
    assert sync_project_settings(tmp_path, sticky) == "removed"
    assert json.loads((claude / "settings.json").read_text()) == own  # back to the user's own
    off = compile_policy_text('[run]\nmode = "dry"\n[sandbox]\nenabled = false\n')
    assert sync_project_settings(tmp_path, off) is None
    (claude / "settings.json").write_text("{broken")
    with pytest.raises(ValueError):
        sync_project_settings(tmp_path, dry)
    assert (claude / "settings.json").read_text() == "{broken"
    assert without_sandbox({"sandbox": {"enabled": True}}, tmp_path) == {}


@pytest.mark.parametrize("table, message", [
    ("enabled = 1", "enabled must be true or false"),
    ('allowed_domains = "x.org"', "list of host names"),
    ('allowed_domains = ["http://x.org"]', "list of host names"),
    ("network = true", "unknown key"),
])
def test_policy_sandbox_table_is_validated(table, message):
    with pytest.raises(PolicyError, match=message):
        compile_policy_text(f"[sandbox]\n{table}\n")


def _fake_claude(tmp_path, version):
    """A `claude` on PATH that prints its argv (the argv plumbing only; the real CLI is in tests/e2e)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "claude"
    script.write_text(f"#!{sys.executable}\nimport json, sys\n"
                      f"print('{version} (Claude Code)' if sys.argv[1:] == ['--version'] else json.dumps(sys.argv[1:]))\n")
    script.chmod(0o755)
    return bin_dir


@needs_bwrap
@pytest.mark.parametrize("mode, policy_extra, sandboxed", [
    ("dry", "", True), ("sticky", "", False), ("live", "", False),
    ("dry", "[sandbox]\nenabled = false\n", False)])
def test_drygate_run_passes_the_sandbox_only_to_runs_dry_from_their_start(project, tmp_path, mode, policy_extra,
                                                                        sandboxed):
    (project.root / "drygate.toml").write_text(f'[run]\nmode = "live"\n{policy_extra}')
    bin_dir = _fake_claude(tmp_path, "2.1.332")
    r = project.cli("run", "--mode", mode, "--", "claude", "-p", "hi",
                    PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    argv = json.loads(r.stdout.strip().splitlines()[-1])
    if sandboxed:
        assert argv[0] == "--settings" and argv[2:] == ["-p", "hi"], argv
        assert json.loads(argv[1])["sandbox"]["filesystem"]["denyWrite"][0] == str(project.root)
    else:
        assert argv == ["-p", "hi"], argv


@needs_bwrap
def test_drygate_run_with_claude_2_0_says_the_project_stays_writable(project, tmp_path):
    (project.root / "drygate.toml").write_text('[run]\nmode = "dry"\n')
    bin_dir = _fake_claude(tmp_path, "2.0.77")
    r = project.cli("run", "--mode", "dry", "--", "claude", PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert "--settings" in r.stdout and "keeps the project writable" in " ".join(r.stderr.split())


@needs_bwrap
def test_server_prefix_leaves_only_its_folders_writable_and_no_network(tmp_path):
    copy, scratch, outside = tmp_path / "copy", tmp_path / "copy" / "scratch", tmp_path / "outside"
    scratch.mkdir(parents=True)
    outside.mkdir()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    code = ("import os, socket, sys, tempfile\n"
            "open('in-copy.txt', 'w').write('x')\n"
            "print(tempfile.gettempdir())\n"
            "for target in sys.argv[1:]:\n"
            "    try:\n"
            "        open(target, 'w').write('x'); print('WROTE', target)\n"
            "    except OSError as e:\n"
            "        print('refused', e.errno)\n"
            f"try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2); print('CONNECTED')\n"
            "except OSError:\n    print('no network')\n")
    try:
        for network in (False, True):
            prefix = server_prefix([str(copy)], network=network, cwd=str(copy), scratch=str(scratch))
            proc = subprocess.run([*prefix, sys.executable, "-c", code, str(outside / "x"), "/etc/drygate-probe"],
                                  capture_output=True, text=True, timeout=60)
            lines = proc.stdout.split("\n")
            assert lines[0] == str(scratch), proc.stdout + proc.stderr  # TMPDIR: the scratch folder
            assert lines[1:3] == ["refused 30", "refused 30"], proc.stdout + proc.stderr  # EROFS
            assert lines[3] == ("CONNECTED" if network else "no network"), proc.stdout
            assert (copy / "in-copy.txt").read_text() == "x"
    finally:
        listener.close()
    assert list(outside.iterdir()) == [] and not os.path.exists("/etc/drygate-probe")


def test_doctor_names_a_local_layer_that_switches_the_sandbox_off(tmp_path):
    """Measured (2.1.332, 2.0.77): .claude/settings.local.json beats .claude/settings.json, so its
    sandbox.enabled = false switches off the sandbox `drygate init` wrote; doctor names the file."""
    dry = compile_policy_text('[run]\nmode = "dry"\n')
    (tmp_path / ".claude").mkdir()
    sync_project_settings(tmp_path, dry)
    names = lambda: {c["check"]: c for c in doctor_checks(str(tmp_path), dry, claude="/nonexistent/claude")}  # noqa: E731
    assert "bash sandbox override" not in names() and "bash sandbox settings" not in names()
    local = tmp_path / ".claude" / "settings.local.json"
    local.write_text(json.dumps({"sandbox": {"enabled": False}}))
    check = names()["bash sandbox override"]
    assert check["status"] == "warn" and str(local) in check["detail"]
    # the policy turned sticky but the project settings still sandbox Bash: live writes would fail
    sticky = compile_policy_text('[run]\nmode = "sticky"\n')
    stale = {c["check"]: c for c in doctor_checks(str(tmp_path), sticky, claude="/nonexistent/claude")}
    assert stale["bash sandbox settings"]["status"] == "warn"
    assert "install claude-code" in stale["bash sandbox settings"]["fix"]
