"""drygate installed like a tool (issue 14, part 3): a wheel built from the repository,
installed with pipx (from PyPI) into its own isolated environment, outside any clone.

- the wheel holds every file of the package (modules and data: the policy template, the
  Redis script, the review page's templates and static files), derived from the source
  tree, not from a list;
- the installed `drygate` works: `init` installs hooks that point at that installation
  (its interpreter and site-packages, never the clone), `doctor` passes, the hook blocks
  a dry write and lets a read through, the Markdown plan renders from the wheel's templates;
- removed with `pipx uninstall`, the installed hook still blocks every call (fail closed)
  and writes a guard-failure alert.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, SESSION


def run(*args, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 900)
    return subprocess.run([str(a) for a in args], **kw)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built from a copy of the package's sources (pip's isolated build)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "drygate"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    r = run(sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps", "-w",
            tmp / "dist", source)
    assert r.returncode == 0, r.stderr[-3000:]
    [built] = list((tmp / "dist").glob("drygate-*.whl"))
    return built


def test_the_wheel_holds_every_file_of_the_package(wheel):
    package = REPO / "src" / "drygate"
    expected = {f"drygate/{p.relative_to(package).as_posix()}" for p in package.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith((".pyc", ".cache"))}
    with zipfile.ZipFile(wheel) as z:
        held = {n for n in z.namelist() if n.startswith("drygate/")}
    missing = sorted(expected - held)
    assert not missing, missing
    assert {"drygate/review/templates/overview.html", "drygate/review/static/review.css",
            "drygate/policy/default.toml", "drygate/state/redis_script.lua"} <= held


@pytest.fixture(scope="module")
def pipx_install(wheel, tmp_path_factory):
    """`pipx install` of the wheel (pipx from PyPI, the test extra), into a pipx home under tmp."""
    tmp = tmp_path_factory.mktemp("pipx")
    env = {"PATH": f"{tmp / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp / "home"),
           "PIPX_HOME": str(tmp / "pipx"), "PIPX_BIN_DIR": str(tmp / "bin"), "LANG": "C.UTF-8"}
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONFIG_FILE", "PIP_NO_INDEX"):
        if key in os.environ:
            env[key] = os.environ[key]
    r = run(sys.executable, "-m", "pipx", "install", wheel, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return tmp, env


def hook(command, event, env, cwd):
    return subprocess.run(["/bin/sh", "-c", command], input=json.dumps(event), capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=60)


def event(project, tool, tool_input):
    return {"session_id": SESSION, "transcript_path": "/tmp/x.jsonl", "cwd": str(project),
            "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": tool,
            "tool_input": tool_input, "tool_use_id": "toolu_1"}


def test_installed_with_pipx_it_works_outside_the_clone_and_fails_closed_when_removed(pipx_install):
    tmp, env = pipx_install
    drygate = tmp / "bin" / "drygate"
    assert run(drygate, "--version", env=env).returncode == 0
    project = tmp / "project"
    project.mkdir()
    r = run(drygate, "init", cwd=project, env=env)
    assert r.returncode == 0, r.stderr
    command = json.loads((project / ".claude" / "settings.json").read_text())["hooks"]["PreToolUse"][0]["hooks"][0][
        "command"]
    assert str(tmp / "pipx" / "venvs" / "drygate") in command and str(REPO) not in command
    hook_env = dict(env, CLAUDE_PROJECT_DIR=str(project))
    r = run(drygate, "doctor", cwd=project, env=hook_env)
    assert r.returncode == 0, r.stdout + r.stderr
    read = hook(command, event(project, "Read", {"file_path": str(project / "drygate.toml")}), hook_env, project)
    assert read.returncode == 0 and json.loads(read.stdout) == {}
    write = hook(command, event(project, "Write", {"file_path": "a.txt", "content": "x"}), hook_env, project)
    assert write.returncode == 2 and "NOT EXECUTED" in write.stderr and not (project / "a.txt").exists()
    md = run(drygate, "plan", SESSION, "--format", "markdown", cwd=project, env=hook_env)
    assert md.returncode == 0 and "1 skipped write(s)" in md.stdout, md.stderr

    r = run(sys.executable, "-m", "pipx", "uninstall", "drygate", env=env)
    assert r.returncode == 0 and not (tmp / "pipx" / "venvs" / "drygate").exists()
    for tool, tool_input in (("Read", {"file_path": str(project / "drygate.toml")}),
                             ("Write", {"file_path": "a.txt", "content": "x"})):
        gone = hook(command, event(project, tool, tool_input), hook_env, project)
        assert gone.returncode == 2 and "BLOCKED (fail closed)" in gone.stderr, (tool, gone.stderr)
    alerts = [json.loads(line) for line in (project / ".drygate" / "alerts.jsonl").read_text().splitlines()]
    assert alerts[-1]["kind"] == "guard_failure" and alerts[-1]["cause"] == "hook_exit_127"
    assert Path(command.split()[0].removeprefix("out=$(")).exists() is False
