"""Fixtures for the MCP relay tests: real MCP servers from the registries, started by the tests.

Servers (versions pinned here; looked up once with ``npm view`` / ``pip index versions``):

- ``@modelcontextprotocol/server-filesystem`` and ``@modelcontextprotocol/server-memory``
  (npm), installed once into ``<repo>/.cache/mcp-servers`` and started with
  ``node node_modules/<pkg>/dist/index.js`` (``npx -y`` resolves the registry on
  every start, about 4 s). Both speak the handshake era (``initialize``).
- ``mcp-server-git`` (PyPI). It requires ``mcp>=2.3,<3`` like the test extra, but it
  goes into a venv of its own under ``.cache/mcp-servers/git-venv`` so that the test
  environment is never changed by a test run. It speaks the 2026-07-28 era
  (``server/discover``).
- ``examples/incident/store_server.py`` (this repo, MCP SDK 2.x): a server with no tool
  annotations at all, started with the test interpreter.

Everything is skipped with a clear message only when node/npm is missing; any other
install failure is an error, not a skip.
"""

import fcntl
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "mcp-servers"
STORE_SERVER = REPO / "examples" / "incident" / "store_server.py"

FS_PKG, FS_VERSION = "@modelcontextprotocol/server-filesystem", "2026.8.31"
MEM_PKG, MEM_VERSION = "@modelcontextprotocol/server-memory", "2026.8.31"
GIT_PKG, GIT_VERSION = "mcp-server-git", "2026.10.19"

#: The relay executable: the console script next to the test interpreter, else ``python -m``.
_SCRIPT = Path(sys.executable).with_name("drygate")
DRYGATE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "drygate.cli.entry"]

#: Environment variables of the host that must not leak into a relay under test.
_SCRUB_PREFIXES = ("DRYGATE_", "CLAUDE_")


@contextmanager
def _cache_lock():
    """One installer at a time (parallel pytest workers, parallel CI jobs)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _npm_installed_version(pkg):
    try:
        meta = json.loads((CACHE / "node_modules" / pkg / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta.get("version")


def _run_install(cmd, what):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"installing {what} failed ({' '.join(cmd)}):\n{proc.stdout}\n{proc.stderr}")


@pytest.fixture(scope="session")
def npm_servers():
    """The npm servers installed in the cache; returns the node executable."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node/npm not found on PATH: the filesystem and memory MCP servers (npm) cannot run; "
                    "install Node.js 18+ (Debian: apt-get install nodejs npm)")
    wanted = {FS_PKG: FS_VERSION, MEM_PKG: MEM_VERSION}
    with _cache_lock():
        missing = [f"{p}@{v}" for p, v in wanted.items() if _npm_installed_version(p) != v]
        if missing:
            _run_install([npm, "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", "--save-exact",
                          *missing], "the npm MCP servers")
        for p, v in wanted.items():
            assert _npm_installed_version(p) == v, f"{p} is not at {v} after npm install"
    return node


@pytest.fixture(scope="session")
def git_python():
    """The interpreter of the venv that holds ``mcp-server-git`` at the pinned version."""
    venv = CACHE / "git-venv"
    python = venv / "bin" / "python"
    check = [str(python), "-c",
             f"import importlib.metadata as m, sys; sys.exit(m.version({GIT_PKG!r}) != {GIT_VERSION!r})"]
    with _cache_lock():
        if not python.exists() or subprocess.run(check, capture_output=True).returncode != 0:
            if not python.exists():
                _run_install([sys.executable, "-m", "venv", str(venv)], "the git server venv")
            _run_install([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                          f"{GIT_PKG}=={GIT_VERSION}"], GIT_PKG)
        assert subprocess.run(check, capture_output=True).returncode == 0, f"{GIT_PKG} is not at {GIT_VERSION}"
    return str(python)


@dataclass
class Server:
    """A real MCP server to start directly or behind the relay.

    ``name``: the server's name as the agent sees it (tools are ``mcp__<name>__<tool>``);
    ``argv``/``env``: how to start it; ``paths``: the real things it changes.
    """

    name: str
    argv: list
    env: dict = field(default_factory=dict)
    paths: dict = field(default_factory=dict)

    def direct(self):
        from mcp import StdioServerParameters

        return StdioServerParameters(command=self.argv[0], args=self.argv[1:], env=dict(self.env))


def clean_env(extra=None):
    """The process environment without any DRYGATE_*/CLAUDE_* of the host, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    env.update(extra or {})
    return env


class Project:
    """A project folder with a drygate.toml and its own state file."""

    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.state = self.root / ".drygate" / "state.db"
        self.alerts = self.root / ".drygate" / "alerts.jsonl"

    def policy(self, mode="dry", rules="", extra="", deadline_ms=3000):
        """Write drygate.toml: ``[run] mode``, ``[gate] deadline_ms``, raw TOML ``extra`` and ``rules``."""
        text = f'[run]\nmode = "{mode}"\n\n[gate]\ndeadline_ms = {deadline_ms}\n\n{extra}\n\n{rules}\n'
        (self.root / "drygate.toml").write_text(text, encoding="utf-8")

    def relay_argv(self, server):
        return [*DRYGATE, "mcp", "--name", server.name, "--project", str(self.root), "--", *server.argv]

    def relay_env(self, server, mode=None, run_id=None, state=None):
        env = dict(server.env)
        env["CLAUDE_PROJECT_DIR"] = str(self.root)
        env["DRYGATE_STATE"] = str(state or self.state)
        if os.environ.get("XDG_STATE_HOME"):  # the MCP client passes only a few variables on by default:
            env.setdefault("XDG_STATE_HOME", os.environ["XDG_STATE_HOME"])  # the store records (drygate.integrity)
        if mode:
            env["DRYGATE_MODE"] = mode
        if run_id:
            env["DRYGATE_RUN_ID"] = run_id
        return env

    def relay(self, server, mode=None, run_id=None, state=None):
        """StdioServerParameters that start ``server`` behind ``drygate mcp``."""
        from mcp import StdioServerParameters

        argv = self.relay_argv(server)
        return StdioServerParameters(command=argv[0], args=argv[1:],
                                     env=self.relay_env(server, mode, run_id, state))

    def cli(self, *args, check=True):
        proc = subprocess.run([*DRYGATE, *args, "--project", str(self.root)], capture_output=True, text=True,
                              timeout=60, env=clean_env({"DRYGATE_STATE": str(self.state)}))
        if check and proc.returncode != 0:
            raise AssertionError(f"drygate {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def plan(self, run_id):
        return json.loads(self.cli("plan", run_id, "--json").stdout)

    def runs(self):
        return json.loads(self.cli("runs", "--json").stdout)

    def alert_lines(self):
        if not self.alerts.exists():
            return []
        return [json.loads(line) for line in self.alerts.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def project(tmp_path):
    return Project(tmp_path / "project")


@pytest.fixture
def fs_server(npm_servers, tmp_path):
    """The filesystem server with a temp root folder holding a few files."""
    root = tmp_path / "fsroot"
    (root / "docs").mkdir(parents=True)
    (root / "hello.txt").write_text("hello, world\nsecond line\n", encoding="utf-8")
    (root / "docs" / "notes.md").write_text("# Notes\n\n- one\n- two\n", encoding="utf-8")
    entry = CACHE / "node_modules" / FS_PKG / "dist" / "index.js"
    return Server("filesystem", [npm_servers, str(entry), str(root)], {}, {"root": root})


@pytest.fixture
def memory_server(npm_servers, tmp_path):
    """The memory (knowledge graph) server with a graph file holding one entity."""
    graph = tmp_path / "memory.jsonl"
    graph.write_text(json.dumps({"type": "entity", "name": "drygate", "entityType": "project",
                                 "observations": ["a dry-run gate"]}) + "\n", encoding="utf-8")
    entry = CACHE / "node_modules" / MEM_PKG / "dist" / "index.js"
    return Server("memory", [npm_servers, str(entry)], {"MEMORY_FILE_PATH": str(graph)}, {"graph": graph})


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=clean_env({"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
                                         "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"})
                          ).stdout


@pytest.fixture
def git_server(git_python, tmp_path):
    """The git server on a fresh repository with one commit and one untracked file."""
    if not shutil.which("git"):
        pytest.skip("git not found on PATH")
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.name", "t")
    _git(repo, "config", "user.email", "t@example.org")
    (repo / "README.md").write_text("repo\n", encoding="utf-8")
    _git(repo, "add", "README.md")
    _git(repo, "commit", "-q", "-m", "initial")
    (repo / "new.txt").write_text("untracked\n", encoding="utf-8")
    return Server("git", [git_python, "-m", "mcp_server_git", "--repository", str(repo)], {}, {"repo": repo})


def git_snapshot(repo):
    """Everything a git write could change: HEAD, branches, index, status."""
    return {"head": _git(repo, "rev-parse", "HEAD"), "refs": _git(repo, "show-ref"),
            "index": _git(repo, "ls-files", "--stage"), "status": _git(repo, "status", "--porcelain"),
            "log": _git(repo, "log", "--format=%H %s")}


@pytest.fixture
def store_server(tmp_path):
    """examples/incident/store_server.py: the server with no annotations."""
    objects, db = tmp_path / "objects", tmp_path / "meta.db"
    objects.mkdir()
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE files (key TEXT PRIMARY KEY, etag TEXT)")
    conn.execute("INSERT INTO files VALUES ('existing', 'abc')")
    conn.commit()
    conn.close()
    return Server("store", [sys.executable, str(STORE_SERVER)], {"STORE_DIR": str(objects), "STORE_DB": str(db)},
                  {"objects": objects, "db": db})


def tree_snapshot(root):
    """Every file and folder under ``root`` with its bytes (None for folders)."""
    root = Path(root)
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


@contextmanager
def sqlite_exclusive_lock(path):
    """Another process holds ``BEGIN EXCLUSIVE`` on the SQLite file at ``path`` until exit."""
    code = ("import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "locked", f"lock holder did not start: {line!r}"
        yield proc
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(predicate, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


class RawPeer:
    """A process spoken to in raw newline-delimited JSON-RPC (no SDK), with a reader thread."""

    def __init__(self, argv, env, cwd=None):
        import queue
        import threading

        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=clean_env(env), cwd=cwd)
        self.lines = queue.Queue()
        self._next_id = 0

        def pump(stream, sink):
            for line in iter(stream.readline, b""):
                sink(line)
            sink(None)

        self.stderr = []
        threading.Thread(target=pump, args=(self.proc.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=pump, args=(self.proc.stderr, self.stderr.append), daemon=True).start()

    def send_raw(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message):
        self.send_raw((json.dumps(message) + "\n").encode("utf-8"))

    def recv_line(self, timeout=15.0):
        """The next line from the peer (bytes); AssertionError on timeout or EOF."""
        import queue

        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout} s; stderr: {self.stderr_text()}") from None
        if line is None:
            raise AssertionError(f"peer closed its stdout; stderr: {self.stderr_text()}")
        return line

    def recv(self, timeout=15.0):
        return json.loads(self.recv_line(timeout))

    def request(self, method, params=None, timeout=15.0, raw=False):
        """Send a request and return its response (skipping notifications and server requests)."""
        self._next_id += 1
        rid = self._next_id
        message = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        deadline = time.monotonic() + timeout
        while True:
            line = self.recv_line(max(0.01, deadline - time.monotonic()))
            msg = json.loads(line)
            if msg.get("id") == rid and "method" not in msg:
                return line if raw else msg

    def initialize(self, protocol="2025-06-18"):
        response = self.request("initialize", {"protocolVersion": protocol, "capabilities": {},
                                               "clientInfo": {"name": "drygate-tests", "version": "0"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return response

    def stderr_text(self):
        return b"".join(x for x in self.stderr if x).decode("utf-8", "replace")[-4000:]

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def raw_peers():
    """Start RawPeers; all are closed at teardown."""
    started = []

    def start(argv, env, cwd=None):
        peer = RawPeer(argv, env, cwd)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.close()


FLAKY_SERVER = Path(__file__).with_name("flaky_server.py")


@pytest.fixture
def flaky_server(tmp_path):
    """tests/relay/flaky_server.py: a tiny handshake-era server that can crash, hang or emit garbage."""
    log = tmp_path / "flaky.log"
    return Server("flaky", [sys.executable, str(FLAKY_SERVER)], {"FLAKY_LOG": str(log)}, {"log": log})


def flaky_log(server):
    """The flaky server's log: [{"pid", "event", ...}] (event: start, or a method name)."""
    path = server.paths["log"]
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


LANGCHAIN_PKG, LANGCHAIN_VERSION = "langchain-mcp-adapters", "0.3.2"


@pytest.fixture(scope="session")
def langchain_python():
    """The interpreter of a venv with LangChain's MCP adapters (they need ``mcp<2``, the test
    environment has 2.x, so they live in ``.cache/mcp-servers/langchain-venv``; .ci/run makes it)."""
    venv = CACHE / "langchain-venv"
    python = venv / "bin" / "python"
    check = [str(python), "-c",
             f"import importlib.metadata as m, sys; sys.exit(m.version({LANGCHAIN_PKG!r}) != {LANGCHAIN_VERSION!r})"]
    with _cache_lock():
        if not python.exists() or subprocess.run(check, capture_output=True).returncode != 0:
            if not python.exists():
                _run_install([sys.executable, "-m", "venv", str(venv)], "the LangChain venv")
            _run_install([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                          f"{LANGCHAIN_PKG}=={LANGCHAIN_VERSION}"], LANGCHAIN_PKG)
        assert subprocess.run(check, capture_output=True).returncode == 0, f"{LANGCHAIN_PKG} is not installed"
    return str(python)


#: A LangChain client: ``get_tools()`` (one MCP session per tool call), then steps of calls,
#: each step's calls in parallel (asyncio.gather, as an agent's parallel tool calls run).
LANGCHAIN_CLIENT = r'''
import asyncio, json, sys
from langchain_mcp_adapters.client import MultiServerMCPClient

async def call(tool, args):
    try:
        return {"ok": True, "text": str(await tool.ainvoke(args))}
    except Exception as e:
        return {"ok": False, "text": f"{type(e).__name__}: {e}"}

async def main():
    spec = json.loads(sys.argv[1])
    client = MultiServerMCPClient(spec["servers"], handle_tool_errors=False)
    tools = {t.name: t for t in await client.get_tools()}
    out = []
    for step in spec["steps"]:
        out.append(await asyncio.gather(*(call(tools[name], args) for name, args in step)))
    print(json.dumps({"tools": sorted(tools), "steps": out}))

asyncio.run(main())
'''


def run_langchain(python, servers, steps, timeout=180):
    """Run :data:`LANGCHAIN_CLIENT`; returns ``{"tools": [...], "steps": [[{"ok", "text"}, ...], ...]}``."""
    proc = subprocess.run([python, "-c", LANGCHAIN_CLIENT, json.dumps({"servers": servers, "steps": steps})],
                          capture_output=True, text=True, timeout=timeout, env=clean_env())
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
