"""End-to-end harness: the *real* Claude Code CLI, offline, against a fake Messages API.

Facts measured while building this harness (node 20.20.2, npm 11, 2-core box, root):

- Install: ``npm install --prefix <repo>/.cache/claude-code-2.1.332 --no-audit --no-fund
  @anthropic-ai/claude-code@2.1.332`` takes ~7 s and 384 MB. npm warns EBADENGINE
  (2.1.332 wants node >= 22) and that the postinstall script is "not yet covered by
  allowScripts"; neither matters: ``node_modules/.bin/claude`` is a symlink to the native
  ELF ``@anthropic-ai/claude-code/bin/claude.exe`` (hard link of
  ``claude-code-linux-x64/claude``) and runs. ``--version`` answers in ~10 ms.
  2.0.77 installs in ~4 s and ships ``cli.js`` (node); ``--version`` takes ~1 s.
- One ``claude -p`` run with one Bash tool call and no hooks: 0.6 s (2.1.332) and 1.4 s
  (2.0.77). The two-MCP-call incident scenario (Python MCP server start included): 1.45 s
  (2.1.332), 2.0 s (2.0.77). Each drygate hook adds its own Python start-up per call.
- 2.1.332 sends only the scripted conversation (2 requests for 1 tool call). 2.0.77
  also sends 4 extra ``/v1/messages?beta=true`` requests per run (warm-up / sub-agent
  "agent-*.jsonl" side chains, haiku model): these must get plain text, never a
  tool_use, which is why only requests carrying ``tools`` *and* the trigger word
  ``DRYGATE_E2E`` are scripted. No ``count_tokens`` or other endpoint was called with
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 (the fake answers them anyway).
- The project's ``.claude/settings.json`` is read without ``--settings`` in both versions
  (verified with a marker hook: it ran once per tool call). Passing ``--settings`` with the
  same file does not run hooks twice. The harness therefore does NOT pass ``--settings``:
  it exercises exactly the file ``drygate init`` / ``drygate install claude-code`` writes.
- MCP tools: the hook input has ``tool_name: "mcp__store__put_object"`` and (2.1.332)
  ``"mcp_server": {"name": "store", "source": "dynamic"}``. A tool that returns ``str``
  through MCPServer (SDK 2.3) reaches the model as the structured content
  ``{"result": "..."}`` text, not the bare string.
- Bash ``echo hi > out.txt`` gives the model ``(Bash completed with no output)`` in 2.1.332
  and an empty string in 2.0.77.
- Every run of the harness loads the ``store`` MCP server (Python, mcp 2.3), which sets the
  floor: ~1.4 s per run with 2.1.332 and ~2.0-2.4 s with 2.0.77, drygate hooks included
  (measured over the whole suite); the locked-state-store test takes ~3.9 s / ~4.5 s because
  drygate waits for its own store deadline before blocking. Whole suite (both versions,
  two throwaway venvs of ~7 s each): ~75 s.
- What the model sees when a hook blocks: a deny JSON reason (drygate's dry result or guard
  failure) arrives as ``PreToolUse:<tool> hook error: <reason>`` (is_error) in 2.1.332 and
  as ``<reason>`` in 2.0.77. A hook that exits 2 with only stderr (e.g. the shell wrapper
  when the interpreter is gone) arrives in BOTH versions as
  ``PreToolUse:<tool> hook error: [<the whole hook command>]: <stderr>``: the model sees the
  hook's absolute paths.
- The timing of 2.0.77's extra requests varies: 4 between the tool_use and the final
  request in one run, 3 before the first scripted request in another. The fake must
  not assume any order.
- Transcript: ``$HOME/.claude/projects/<cwd with / and . replaced by ->/<session_id>.jsonl``;
  2.0.77 also writes ``agent-<id>.jsonl`` files there for its warm-up side chains.
- The CLI exits 0 with ``"subtype": "success"`` whatever the hooks do: assertions must
  look at side effects and at what the model received (``FakeMessagesAPI.tool_results``).

Environment knobs:
- ``DRYGATE_E2E_CLI_VERSIONS`` (default ``2.1.332,2.0.77``): CLI versions to run against.
  2.1.332 must install; 2.0.77 is skipped if it cannot be installed.
- ``DRYGATE_E2E_BIN``: the ``drygate`` executable to install into projects (default: the one
  next to the Python running pytest, else a venv built in ``<repo>/.cache/e2e-venv``).
- ``DRYGATE_E2E_RECORD=1``: the incident tests copy their transcripts into
  ``examples/incident/`` (temp paths replaced by /srv/app placeholders).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .e2e_util import CACHE, REPO, make_venv
from .fake_messages_api import TRIGGER, FakeMessagesAPI
STORE_SERVER = REPO / "examples" / "incident" / "store_server.py"
DEFAULT_VERSIONS = "2.1.332,2.0.77"
REQUIRED_VERSION = "2.1.332"
ALLOWED_TOOLS = "Bash,Write,Edit,mcp__store"

_TIMINGS: list[tuple[str, str, float]] = []


# --------------------------------------------------------------------------- helpers
def _versions() -> list[str]:
    raw = os.environ.get("DRYGATE_E2E_CLI_VERSIONS", DEFAULT_VERSIONS)
    return [v.strip() for v in raw.split(",") if v.strip()]


def _clean_env() -> dict:
    """The parent environment minus anything that could leak into the CLI or the hook."""
    env = {}
    for key, value in os.environ.items():
        if key.startswith(("ANTHROPIC_", "CLAUDE", "DRYGATE_", "MCP_")) or key in (
            "PYTEST_CURRENT_TEST",
            "VIRTUAL_ENV",
            "PYTHONPATH",
        ):
            continue
        env[key] = value
    return env


def _install_cli(version: str) -> Path:
    prefix = CACHE / f"claude-code-{version}"
    binary = prefix / "node_modules" / ".bin" / "claude"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("node/npm not found: the end-to-end tests need the real Claude Code CLI")
    prefix.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    proc = subprocess.run(
        [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
         f"@anthropic-ai/claude-code@{version}"],
        capture_output=True, text=True, timeout=600,
    )
    _TIMINGS.append((f"npm install {version}", "", time.monotonic() - t0))
    if proc.returncode != 0 or not binary.exists():
        msg = f"npm install of Claude Code {version} failed:\n{proc.stdout}\n{proc.stderr}"
        if version == REQUIRED_VERSION:
            pytest.fail(msg)
        pytest.skip(msg)
    return binary


def _has_modules(python: str, *mods: str) -> bool:
    code = "; ".join(f"import {m}" for m in mods)
    return subprocess.run([python, "-c", code], capture_output=True).returncode == 0


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session", params=_versions())
def claude_cli(request) -> "ClaudeCLI":
    """The real Claude Code CLI, installed under <repo>/.cache if missing."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not found: the end-to-end tests need the real Claude Code CLI")
    version = request.param
    binary = _install_cli(version)
    proc = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    if version not in proc.stdout:
        pytest.fail(f"{binary} --version said {proc.stdout!r} {proc.stderr!r}, expected {version}")
    return ClaudeCLI(version, binary)


@pytest.fixture(scope="session")
def drygate_tools() -> "DrygateTools":
    """A drygate executable plus a Python that can import ``mcp`` (for the store server)."""
    explicit = os.environ.get("DRYGATE_E2E_BIN")
    if explicit:
        bin_ = Path(explicit)
        py = bin_.parent / "python"
    else:
        py = Path(sys.executable)
        bin_ = py.parent / "drygate"
    if not (bin_.exists() and _has_modules(str(py), "drygate", "mcp")):
        venv = CACHE / "e2e-venv"
        py = venv / "bin" / "python"
        bin_ = venv / "bin" / "drygate"
        if not (bin_.exists() and _has_modules(str(py), "drygate", "mcp")):
            shutil.rmtree(venv, ignore_errors=True)
            make_venv(venv, "-e", f"{REPO}[test]")
    # Never let the store server depend on drygate's venv layout: any python with mcp works.
    server_py = py if _has_modules(str(py), "mcp") else Path(sys.executable)
    return DrygateTools(bin_, py, server_py)


@pytest.fixture
def project(tmp_path, claude_cli, drygate_tools) -> "Project":
    return Project(tmp_path, claude_cli, drygate_tools)


# --------------------------------------------------------------------------- objects
class ClaudeCLI:
    def __init__(self, version: str, path: Path):
        self.version = version
        self.path = path

    def __repr__(self):
        return f"ClaudeCLI({self.version})"


class DrygateTools:
    def __init__(self, drygate: Path, python: Path, server_python: Path):
        self.drygate = drygate
        self.python = python
        self.server_python = server_python


class RunResult:
    def __init__(self, proc, api: FakeMessagesAPI, elapsed: float, project: "Project"):
        self.proc = proc
        self.api = api
        self.elapsed = elapsed
        self.project = project
        try:
            self.json = json.loads(proc.stdout)
        except ValueError:
            self.json = {}

    @property
    def session_id(self) -> str:
        return self.json.get("session_id", "")

    @property
    def tool_results(self) -> list[dict]:
        return self.api.tool_results

    @property
    def transcript(self) -> Path | None:
        hits = list((self.project.home / ".claude" / "projects").glob(f"*/{self.session_id}.jsonl"))
        return hits[0] if hits else None

    def describe(self) -> str:
        return (
            f"claude exit={self.proc.returncode} elapsed={self.elapsed:.2f}s\n"
            f"stdout={self.proc.stdout[:3000]}\nstderr={self.proc.stderr[-3000:]}\n"
            f"tool_results={json.dumps(self.tool_results, indent=1)[:3000]}\n"
            f"requests={self.api.requests}"
        )


class Project:
    """An isolated project dir + HOME, with the incident's object store and SQL database."""

    def __init__(self, tmp: Path, cli: ClaudeCLI, tools: DrygateTools):
        self.tmp = tmp
        self.cli = cli
        self.tools = tools
        #: ``--allowedTools`` of every run (a test with other MCP servers extends it).
        self.allowed_tools = ALLOWED_TOOLS
        self.home = tmp / "home"
        self.dir = tmp / "proj"
        self.store_dir = self.dir / "objects"
        self.store_db = self.dir / "meta.db"
        self.home.mkdir()
        (self.dir / ".claude").mkdir(parents=True)
        self.store_dir.mkdir()
        import sqlite3

        conn = sqlite3.connect(self.store_db)
        conn.execute("CREATE TABLE files(key TEXT PRIMARY KEY, size INTEGER)")
        conn.execute("INSERT INTO files VALUES ('existing.png', 1)")
        conn.commit()
        conn.close()
        mcp = {
            "mcpServers": {
                "store": {
                    "command": str(tools.server_python),
                    "args": [str(STORE_SERVER)],
                    "env": {"STORE_DIR": str(self.store_dir), "STORE_DB": str(self.store_db)},
                }
            }
        }
        (self.dir / "mcp.json").write_text(json.dumps(mcp, indent=2))
        self.settings = self.dir / ".claude" / "settings.json"
        if not self.settings.exists():
            self.settings.write_text("{}\n")

    # ---- state of the world
    def rows(self) -> list[tuple]:
        import sqlite3

        conn = sqlite3.connect(self.store_db)
        try:
            return conn.execute("SELECT key, size FROM files ORDER BY key").fetchall()
        finally:
            conn.close()

    def objects(self) -> list[str]:
        return sorted(str(p.relative_to(self.store_dir)) for p in self.store_dir.rglob("*") if p.is_file())

    @property
    def alerts_file(self) -> Path:
        return self.dir / ".drygate" / "alerts.jsonl"

    def alerts(self) -> list[dict]:
        if not self.alerts_file.exists():
            return []
        return [json.loads(line) for line in self.alerts_file.read_text().splitlines() if line.strip()]

    # ---- drygate
    def base_env(self, extra: dict | None = None) -> dict:
        env = _clean_env()
        env["HOME"] = str(self.home)
        env.update(extra or {})
        return env

    def drygate(self, *args: str, env: dict | None = None, binary: Path | None = None,
                check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(binary or self.tools.drygate), *args], cwd=self.dir, env=self.base_env(env),
            capture_output=True, text=True, timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"drygate {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def drygate_json(self, *args: str, env: dict | None = None):
        proc = self.drygate(*args, "--json", env=env)
        try:
            return json.loads(proc.stdout)
        except ValueError as exc:
            raise AssertionError(f"drygate {' '.join(args)} --json printed no JSON:\n{proc.stdout}\n"
                                 f"{proc.stderr}") from exc

    def init_drygate(self, policy: str | None = None) -> None:
        """``drygate init`` in the project; with ``policy``, that policy is written first and init
        keeps it (so init's settings match it: a dry policy gets Claude Code's Bash sandbox)."""
        if policy is not None:
            self.write_policy(policy)
        self.drygate("init")
        assert (self.dir / "drygate.toml").exists(), "drygate init wrote no drygate.toml"
        settings = json.loads(self.settings.read_text())
        assert settings.get("hooks", {}).get("PreToolUse"), f"drygate init installed no hook: {settings}"

    def write_policy(self, text: str) -> None:
        (self.dir / "drygate.toml").write_text(text)

    # ---- the agent
    def run_agent(self, steps, env: dict | None = None, prompt: str = "Do the task.",
                  label: str = "", timeout: float = 180) -> RunResult:
        api = FakeMessagesAPI(steps).start()
        try:
            full_env = self.base_env(
                {
                    "ANTHROPIC_BASE_URL": api.base_url,
                    "ANTHROPIC_API_KEY": "dummy",
                    "DISABLE_TELEMETRY": "1",
                    "DISABLE_AUTOUPDATER": "1",
                    "DISABLE_ERROR_REPORTING": "1",
                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                    **(env or {}),
                }
            )
            cmd = [
                str(self.cli.path), "-p", f"{prompt} {TRIGGER}", "--output-format", "json",
                "--mcp-config", str(self.dir / "mcp.json"), "--strict-mcp-config",
                "--allowedTools", self.allowed_tools,
            ]
            t0 = time.monotonic()
            proc = subprocess.run(cmd, cwd=self.dir, env=full_env, capture_output=True, text=True,
                                  timeout=timeout)
            elapsed = time.monotonic() - t0
        finally:
            api.stop()
        _TIMINGS.append((self.cli.version, label or os.environ.get("PYTEST_CURRENT_TEST", "?"), elapsed))
        return RunResult(proc, api, elapsed, self)


def pytest_terminal_summary(terminalreporter):
    if not _TIMINGS:
        return
    terminalreporter.section("claude e2e timings")
    for version, label, elapsed in _TIMINGS:
        terminalreporter.write_line(f"{elapsed:6.2f}s  {version:8s}  {label}")
