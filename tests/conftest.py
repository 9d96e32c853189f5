"""Shared fixtures: real projects in temporary folders, the real hook process, both stores."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CASES_FILE = SHARED / "cases" / "claude-code-hooks.json"
TRANSCRIPTS = SHARED / "data" / "transcripts"
SRC = REPO / "src"

sys.path.insert(0, str(SRC))

# This machine's records of initialized state stores (drygate.integrity) go to a folder of
# the test session, not the user's ~/.local/state; the hooks the tests start inherit it.
if not os.environ.get("DRYGATE_TEST_KEEP_XDG"):
    import tempfile

    os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="drygate-test-state-")

from drygate.enforcement.install import hook_command, install_claude_code  # noqa: E402,F401 (hook_command: for tests)

SESSION = "0b7c6a52-5d4e-4f0e-9a57-3c1d2e9f8a10"


def load_cases():
    """The cases of shared/cases/claude-code-hooks.json, by id."""
    with open(CASES_FILE, encoding="utf-8") as f:
        return {c["id"]: c for c in json.load(f)}


def write_policy(project, mode="dry", rules="", extra=""):
    """Write a drygate.toml with ``mode``, raw TOML ``rules`` and ``extra`` sections."""
    text = f'[run]\nmode = "{mode}"\n\n[gate]\ndeadline_ms = 3000\n{extra}\n{rules}\n'
    (Path(project) / "drygate.toml").write_text(text, encoding="utf-8")


R2_DRY_D1_LIVE = '''
[[rules]]
id = "r2-writes"
tool_glob = "mcp__r2__*"
effect = "write"
dry = true
reason = "object store writes are rehearsed first"

[[rules]]
id = "d1-writes"
tool_glob = "mcp__d1__*"
effect = "write"
'''


class HookResult:
    """What the host would see from one hook process."""

    def __init__(self, proc, elapsed):
        self.code = proc.returncode
        self.stdout = proc.stdout.decode("utf-8", "replace")
        self.stderr = proc.stderr.decode("utf-8", "replace")
        self.elapsed = elapsed

    @property
    def json(self):
        return json.loads(self.stdout)

    @property
    def decision(self):
        body = self.json
        return body.get("hookSpecificOutput", {}).get("permissionDecision")

    @property
    def blocks(self):
        """True when every host version in reference/claude-code.md blocks the tool."""
        if self.code == 2:
            return True
        try:
            return self.decision == "deny"
        except ValueError:
            return False


class Project:
    """A temporary project with drygate installed exactly as `drygate install` does."""

    def __init__(self, root, store_url=None, init_sqlite=True):
        self.root = Path(root)
        #: A Redis store URL the hooks and the CLI use (DRYGATE_STATE_URL), or None for the
        #: project's SQLite file. Tests that pick their own store (DRYGATE_STATE=...) keep it.
        #: ``init_sqlite``: False for a project whose policy names another store ([state] url):
        #: then no SQLite file exists unless something writes one.
        self.store_url = store_url
        self.root.mkdir(parents=True, exist_ok=True)
        install_claude_code(self.root)
        if store_url is None and init_sqlite:  # as `drygate init` does: the hook never creates a store
            from drygate.integrity import initialize_store

            initialize_store(str(self.state))
        settings = json.loads((self.root / ".claude" / "settings.json").read_text())
        self.command = settings["hooks"]["PreToolUse"][0]["hooks"][0]["command"]
        self.post_command = settings["hooks"]["PostToolUse"][0]["hooks"][0]["command"]

    @property
    def state(self):
        return self.root / ".drygate" / "state.db"

    @property
    def alert_log(self):
        return self.root / ".drygate" / "alerts.jsonl"

    def alerts(self):
        if not self.alert_log.exists():
            return []
        return [json.loads(line) for line in self.alert_log.read_text().splitlines() if line.strip()]

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRYGATE_")}
        env["CLAUDE_PROJECT_DIR"] = str(self.root)
        if self.store_url and "DRYGATE_STATE" not in extra:
            env["DRYGATE_STATE_URL"] = self.store_url
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def open_store(self):
        """The project's store, as the hooks use it (Redis or the SQLite file)."""
        from drygate.state import open_store

        return open_store(self.store_url or str(self.state))

    def event(self, tool_name, tool_input, session=SESSION, **fields):
        ev = {"session_id": session, "transcript_path": f"/tmp/{session}.jsonl", "cwd": str(self.root),
              "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": tool_name,
              "tool_input": tool_input, "tool_use_id": f"toolu_{time.monotonic_ns()}"}
        ev.update(fields)
        return ev

    def hook(self, event, command=None, timeout=60, raw=None, **env):
        """Run the installed hook command as the host does (sh -c, event on stdin)."""
        data = raw if raw is not None else json.dumps(event).encode()
        start = time.monotonic()
        proc = subprocess.run(["/bin/sh", "-c", command or self.command], input=data, capture_output=True,
                              env=self.env(**env), cwd=self.root, timeout=timeout)
        return HookResult(proc, time.monotonic() - start)

    def cli(self, *args, check=True, **env):
        """Run the drygate CLI in this project; returns CompletedProcess (text)."""
        proc = subprocess.run([sys.executable, "-m", "drygate.cli.entry", *args], capture_output=True, text=True,
                              env=dict(self.env(**env), PYTHONPATH=str(SRC)), cwd=self.root, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"drygate {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def plan(self, run_id=SESSION):
        return json.loads(self.cli("plan", run_id, "--json").stdout)

    def journal(self, run_id=SESSION):
        store = self.open_store()
        try:
            return store.journal(run_id)
        finally:
            store.close()


def initialized_sqlite_store(path):
    """Make and initialize the SQLite store at ``path`` as `drygate state init` does (str path)."""
    from drygate.integrity import initialize_store

    initialize_store(str(path))
    return str(path)


def initialized_redis_store(url, **options):
    """A RedisStore on ``url`` with its marker created (as `drygate state init` does)."""
    from drygate.state.redis import RedisStore

    store = RedisStore(url, **options)
    store.initialize()
    return store


@pytest.fixture(params=["sqlite", "redis"])
def project(request, tmp_path):
    """A project whose hooks and CLI use the SQLite file, or (second run) a real Redis store.

    Tests of faults only one store can have (a corrupt SQLite file, a stopped Redis)
    take ``sqlite_project`` or tests/test_redis_faults.py instead."""
    url = None
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        initialized_redis_store(url).close()
    return Project(tmp_path / "app", store_url=url)


@pytest.fixture
def sqlite_project(tmp_path):
    """A project on its SQLite file, for the faults of that file (corrupt, locked, unwritable)."""
    return Project(tmp_path / "app")


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request, tmp_path):
    """Every store implementation, for the suites that must hold on all of them."""
    from drygate.state.memory import MemoryStore
    from drygate.state.sqlite import SQLiteStore

    if request.param == "redis":
        s = initialized_redis_store(request.getfixturevalue("redis_url"))
    else:
        s = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "state.db")
    yield s
    s.close()


# --- A real redis-server (tests/redis_server.py) -------------------------------------------
# Tests that need one FAIL with a clear message when redis-server is missing and CI=true,
# and are skipped otherwise (redis_server.require_binary).

_REDIS_DBS = list(range(1, 16))  # db 0 is left alone: handy for poking at the server by hand


def redis_store_landed():
    """True once the Redis state store exists and ``open_store`` opens ``redis://`` URLs."""
    import importlib.util
    import inspect

    from drygate import state

    return (importlib.util.find_spec("drygate.state.redis") is not None
            and "redis" in inspect.getsource(state.open_store))


def need_redis_store():
    """Skip the calling test until the Redis state store exists (it is being written)."""
    if not redis_store_landed():
        pytest.skip("the Redis state store (src/drygate/state/redis.py) has not landed yet")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One redis-server for the session (appendonly, appendfsync always); tests that stop,
    pause or reconfigure a server use ``redis_factory`` instead."""
    from redis_server import RedisServer, require_binary

    require_binary()
    server = RedisServer(tmp_path_factory.mktemp("redis-session")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    """``redis://127.0.0.1:PORT/DB`` of a database of its own for this test, flushed first."""
    if not redis_server.running:  # a test broke the shared server: bring it back
        redis_server.start()
    db = _REDIS_DBS.pop(0)
    _REDIS_DBS.append(db)
    client = redis_server.client(db=db)
    try:
        client.flushdb()
    finally:
        client.close()
    return redis_server.url(db=db)


@pytest.fixture
def redis_factory(tmp_path):
    """``make(**config)``: start a redis-server of this test's own (killed afterwards)."""
    from redis_server import RedisServer, require_binary

    require_binary()
    servers = []

    def make(name=None, start=True, **config):
        server = RedisServer(tmp_path / (name or f"redis-{len(servers)}"), config=config)
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in servers:
        server.kill()
