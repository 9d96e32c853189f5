"""The second line of a dry run, with the real Claude Code CLI: its Bash sandbox.

A policy rule that WRONGLY calls writing commands reads (``[[commands]]`` declaring
``touch`` and ``python3`` reads) lets the classifier allow them. In a run that is dry
from its start, drygate turns Claude Code's OS sandbox on (drygate.sandbox), so the
writes still do not happen; in a live run the same rule lets them happen (so these tests
can fail). Real CLI (2.1.332 and 2.0.77), real bubblewrap and socat, the real hook.

Measured (module docstring of drygate.sandbox has the keys per version): 2.1.332 refuses
to start without bubblewrap (failIfUnavailable); 2.0.77 has no such key and would run
Bash unsandboxed, so ``drygate run`` refuses for it. Bubblewrap is hidden for real by
bind-mounting /dev/null over it in a mount namespace of its own (needs root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from .conftest import _TIMINGS
from .fake_messages_api import TRIGGER, FakeMessagesAPI

pytestmark = pytest.mark.e2e

MISREAD_POLICY = """\
[run]
mode = "{mode}"

# WRONG on purpose: both write files. The classifier believes the rules; the sandbox does not.
[[commands]]
name = "touch"
effect = "read"

[[commands]]
name = "python3"
effect = "read"
"""

TOUCH = {"name": "Bash", "input": {"command": "touch misread-touch.txt && echo touched",
                                   "description": "touch a file"}}
PYTHON = {"name": "Bash", "input": {"command": "python3 -c \"open('misread-python.txt', 'w').write('x')\" "
                                               "&& echo wrote", "description": "write with python"}}
OUTSIDE = {"name": "Bash", "input": {"command": "touch {outside} && echo outside",
                                     "description": "write outside the project"}}
READ = {"name": "Bash", "input": {"command": "head -n 2 drygate.toml", "description": "read the policy"}}
WRITE_TOOL = {"name": "Write", "input": {"file_path": "{project}/notes.md", "content": "from the dry run\n"}}

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None or shutil.which("socat") is None,
                                 reason="bubblewrap and socat are installed by .ci/run")


def _steps(project, outside):
    outside_step = json.loads(json.dumps(OUTSIDE).replace("{outside}", str(outside)))
    write = json.loads(json.dumps(WRITE_TOOL).replace("{project}", str(project.dir)))
    return [TOUCH, PYTHON, outside_step, READ, write]


def run_claude(project, steps, prefix=(), extra_args=(), env=None, timeout=180):
    """Run the real CLI in ``project`` (optionally under ``prefix``, e.g. ``drygate run``)."""
    api = FakeMessagesAPI(steps).start()
    try:
        full_env = project.base_env({
            "ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": "dummy", "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1", "DISABLE_ERROR_REPORTING": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", **(env or {})})
        # drygate run finds `claude` on PATH, as a user types it
        full_env["PATH"] = f"{project.cli.path.parent}{os.pathsep}{full_env.get('PATH', '')}"
        cmd = [*prefix, "claude", "-p", f"Do the task. {TRIGGER}", "--output-format", "json",
               "--allowedTools", "Bash,Write", *extra_args]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=project.dir, env=full_env, capture_output=True, text=True, timeout=timeout)
        _TIMINGS.append((project.cli.version, "sandbox e2e", time.monotonic() - t0))
    finally:
        api.stop()
    return proc, api


def describe(proc, api):
    return (f"exit={proc.returncode}\nstdout={proc.stdout[-2000:]}\nstderr={proc.stderr[-2000:]}\n"
            f"tool_results={json.dumps(api.tool_results, indent=1)[:4000]}")


def assert_sandboxed(project, results, outside, info):
    """The misread writes of _steps did not happen (2.1), or only inside the project (2.0: measured,
    its sandbox keeps the working folder writable; drygate.sandbox says why)."""
    assert not outside.exists(), info
    assert "Read-only file system" in results[2]["content"], info
    if project.cli.version.startswith("2.0."):
        assert (project.dir / "misread-touch.txt").exists(), info  # the documented limit of 2.0
        return
    assert not (project.dir / "misread-touch.txt").exists(), info
    assert not (project.dir / "misread-python.txt").exists(), info
    assert "Read-only file system" in results[0]["content"] and "touched" not in results[0]["content"], info
    assert "Read-only file system" in results[1]["content"] and "wrote" not in results[1]["content"], info


def setup(project, mode):
    """drygate init, the misreading policy in ``mode``, then `install claude-code` (which writes or
    removes the sandbox in .claude/settings.json to match the policy's mode)."""
    project.init_drygate(MISREAD_POLICY.format(mode=mode))
    project.drygate("install", "claude-code")
    return json.loads(project.settings.read_text())


def run_id_of(proc):
    for line in proc.stderr.splitlines():
        if line.startswith("drygate: run ") and ":" in line[len("drygate: run "):]:
            return line[len("drygate: run "):].split(":")[0]
    raise AssertionError(f"no run id in {proc.stderr!r}")


@needs_bwrap
def test_dry_run_sandbox_stops_writes_the_policy_misread(project, tmp_path):
    """`drygate run --mode dry -- claude`: the misread commands are allowed by the gate, and fail
    in the sandbox ("Read-only file system"); the Write tool is still the hook's (a dry step)."""
    setup(project, "sticky")
    outside = tmp_path / "outside.txt"
    proc, api = run_claude(project, _steps(project, outside), prefix=[str(project.tools.drygate), "run", "--mode", "dry",
                                                                       "--"])
    info = describe(proc, api)
    assert proc.returncode == 0 and "OS sandbox" in proc.stderr, info
    results = api.tool_results
    assert len(results) == 5, info
    assert_sandboxed(project, results, outside, info)
    assert "[run]" in results[3]["content"], info  # reads work in the sandbox
    assert "not executed" in results[4]["content"].lower(), info  # the Write is the hook's dry answer
    assert not (project.dir / "notes.md").exists(), info
    # the gate really let the misread commands through (the sandbox alone stopped them)
    run_id = run_id_of(proc)
    plan = project.drygate_json("plan", run_id)
    assert [s["tool_name"] for s in plan["steps"]] == ["Write"], plan  # the Write is planned, the "reads" are not


@needs_bwrap
def test_live_run_same_rule_lets_the_writes_happen(project, tmp_path):
    """Control: the same misreading rule in a live run; the writes happen (the test above can fail)."""
    setup(project, "live")
    outside = tmp_path / "outside.txt"
    proc, api = run_claude(project, _steps(project, outside), prefix=[str(project.tools.drygate), "run", "--mode", "live",
                                                                       "--"])
    info = describe(proc, api)
    assert (project.dir / "misread-touch.txt").exists(), info
    assert (project.dir / "misread-python.txt").read_text() == "x", info
    assert outside.exists(), info
    assert (project.dir / "notes.md").read_text() == "from the dry run\n", info
    assert "OS sandbox" not in proc.stderr, info


@needs_bwrap
def test_sticky_run_starts_live_without_sandbox(project, tmp_path):
    """A sticky run starts live: no sandbox (the misread write happens, as the README says)."""
    setup(project, "sticky")
    proc, api = run_claude(project, [TOUCH], prefix=[str(project.tools.drygate), "run", "--mode", "sticky", "--"])
    assert (project.dir / "misread-touch.txt").exists(), describe(proc, api)
    assert "OS sandbox" not in proc.stderr


@needs_bwrap
def test_dry_policy_settings_from_init_sandbox_plain_claude(project, tmp_path):
    """`drygate init` with a dry policy writes the sandbox into .claude/settings.json: plain `claude`
    (no `drygate run`) is sandboxed, the hooks in the same file still run (the Write is planned)."""
    settings = setup(project, "dry")
    assert settings["sandbox"]["enabled"] is True and settings["sandbox"]["allowUnsandboxedCommands"] is False
    outside = tmp_path / "outside.txt"
    proc, api = run_claude(project, _steps(project, outside))
    info = describe(proc, api)
    assert len(api.tool_results) == 5, info
    assert_sandboxed(project, api.tool_results, outside, info)
    assert not (project.dir / "notes.md").exists(), info
    # the Write reached the hook (journaled and planned), not only the host's permission rules
    session = json.loads(proc.stdout)["session_id"]
    plan = project.drygate_json("plan", session)
    assert [s["tool_name"] for s in plan["steps"]] == ["Write"], (plan, info)


@needs_bwrap
def test_dry_run_without_bubblewrap_refuses_to_start(project, tmp_path):
    """bubblewrap hidden (/dev/null bound over it): `drygate run --mode dry -- claude` refuses, for
    both versions (2.0.77 itself would run Bash unsandboxed); nothing is written."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("hiding bubblewrap needs root and unshare (a mount namespace)")
    bwrap = shutil.which("bwrap")
    setup(project, "dry")
    hide = ["unshare", "-m", "sh", "-c", f'mount --bind /dev/null {bwrap} && exec "$0" "$@"']
    proc, api = run_claude(project, [TOUCH], prefix=[*hide, str(project.tools.drygate), "run", "--mode", "dry", "--"])
    assert proc.returncode == 1 and "sandbox cannot run here" in proc.stderr, describe(proc, api)
    assert "bwrap" in proc.stderr or "bubblewrap" in proc.stderr
    assert api.tool_results == [] and not (project.dir / "misread-touch.txt").exists()


@needs_bwrap
def test_cli_without_drygate_run_and_no_bubblewrap(project, tmp_path):
    """What each version does by itself with the settings `drygate init` writes when bubblewrap is
    missing: 2.1.332 refuses to start (failIfUnavailable); 2.0.77 has no such key and runs Bash
    unsandboxed, silently (so doctor warns and `drygate run` refuses: test above)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("hiding bubblewrap needs root and unshare (a mount namespace)")
    bwrap = shutil.which("bwrap")
    setup(project, "dry")
    hide = ["unshare", "-m", "sh", "-c", f'mount --bind /dev/null {bwrap} && exec "$0" "$@"']
    proc, api = run_claude(project, [PYTHON], prefix=hide)
    info = describe(proc, api)
    if project.cli.version.startswith("2.1."):
        assert proc.returncode == 1 and "sandbox required but unavailable" in proc.stderr, info
        assert not (project.dir / "misread-python.txt").exists(), info
    else:
        # measured: 2.0.77 runs Bash without the sandbox
        assert (project.dir / "misread-python.txt").exists(), info


@needs_bwrap
def test_drygate_run_wins_over_a_project_layer_that_switches_the_sandbox_off(project, tmp_path):
    """Measured precedence: `--settings` (what `drygate run` passes) beats .claude/settings.json and
    .claude/settings.local.json, so a project layer with sandbox.enabled = false does not switch
    off a dry run's sandbox (the write outside the project is refused, in both versions)."""
    setup(project, "sticky")  # no sandbox in the project settings
    settings = json.loads(project.settings.read_text())
    settings["sandbox"] = {"enabled": False}
    project.settings.write_text(json.dumps(settings))
    (project.dir / ".claude" / "settings.local.json").write_text(json.dumps({"sandbox": {"enabled": False}}))
    outside = tmp_path / "outside.txt"
    step = json.loads(json.dumps(OUTSIDE).replace("{outside}", str(outside)))
    proc, api = run_claude(project, [step], prefix=[str(project.tools.drygate), "run", "--mode", "dry", "--"])
    info = describe(proc, api)
    assert not outside.exists(), info
    assert "Read-only file system" in api.tool_results[0]["content"], info


NETWORK_POLICY = """\
[run]
mode = "{mode}"

# WRONG on purpose: curl here POSTs. The classifier believes the rule; the sandbox has no network.
[[commands]]
name = "curl"
effect = "read"
"""


@needs_bwrap
@pytest.mark.parametrize("mode", ["dry", "live"])
def test_misread_network_write_never_arrives_in_a_dry_run(project, mode):
    """The network default (none): a POST the policy misreads as a read, to a server on 127.0.0.1,
    never arrives from a dry run's Bash, and arrives from a live run's (the control)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        setup(project, "sticky")
        project.write_policy(NETWORK_POLICY.format(mode=mode))
        post = {"name": "Bash", "input": {"command": f"curl -sS -m 5 -d payload http://127.0.0.1:{server.server_port}/",
                                          "description": "post"}}
        proc, api = run_claude(project, [post], prefix=[str(project.tools.drygate), "run", "--mode", mode, "--"])
    finally:
        server.shutdown()
        server.server_close()
    info = describe(proc, api)
    assert len(api.tool_results) == 1, info
    assert received == ([] if mode == "dry" else [b"payload"]), info
    if mode == "dry":  # the gate allowed it (a "read"): curl ran and could not connect
        assert "curl:" in api.tool_results[0]["content"], info
        assert "not executed" not in api.tool_results[0]["content"].lower(), info


@needs_bwrap
def test_a_folder_given_with_add_dir_stays_read_only(project, tmp_path):
    """Measured: 2.1.332 makes an --add-dir folder writable in its sandbox; drygate run adds it to
    denyWrite, so a misread write there does not happen either (2.0.77 never made it writable)."""
    setup(project, "sticky")
    extra = tmp_path / "extra"
    extra.mkdir()
    step = {"name": "Bash", "input": {"command": f"touch {extra}/misread-touch.txt", "description": "touch"}}
    proc, api = run_claude(project, [step], prefix=[str(project.tools.drygate), "run", "--mode", "dry", "--"],
                           extra_args=["--add-dir", str(extra)])
    info = describe(proc, api)
    assert len(api.tool_results) == 1 and not (extra / "misread-touch.txt").exists(), info
    assert "Read-only file system" in api.tool_results[0]["content"], info
