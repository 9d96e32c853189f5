"""The HTTP relay serves many sessions at once (issue 12 item 4), and the relay's own
requests never reach a client (a late tools/list answer), and parallel first calls wait
for the catalog (issue 12 item 2).

Real parts: the npm filesystem server, mcp-server-git (2026-07-28 era), the MCP SDK 2.x
client, LangChain's MCP adapters (parallel tool calls, a session per call).
"""

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import anyio
import pytest

from .conftest import Server, clean_env, run_langchain, wait_for

EFFECT_SERVER = Path(__file__).with_name("effect_server.py")
STICKY_FS = '[[rules]]\ntool = "mcp__filesystem__write_file"\neffect = "write"\ndry = true\n'


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HttpRelay:
    """``drygate mcp --http`` started by the test; ``post``/``delete`` speak raw HTTP to it."""

    def __init__(self, project, server, mode=None, run_id=None):
        self.port = _free_port()
        argv = project.relay_argv(server)
        argv[argv.index("--"):argv.index("--")] = ["--http", f"127.0.0.1:{self.port}"]
        self.proc = subprocess.Popen(argv, env=clean_env(project.relay_env(server, mode, run_id)),
                                     stderr=subprocess.PIPE)
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        deadline = time.monotonic() + 30
        while True:
            status, _, _ = self.request("DELETE", None, {})
            if status:
                break
            assert time.monotonic() < deadline, "the HTTP relay did not come up"
            time.sleep(0.05)

    def request(self, method, body, headers):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url, data=data, method=method, headers={
            "Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)
        except OSError:
            return None, None, None

    def post(self, body, session=None):
        status, data, headers = self.request("POST", body, {"Mcp-Session-Id": session} if session else {})
        try:
            return status, (json.loads(data) if data else None), headers
        except ValueError:
            return status, data, headers  # a plain-text refusal

    def initialize(self):
        status, answer, headers = self.post({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        assert status == 200 and "result" in answer, answer
        session = headers.get("mcp-session-id") or headers.get("Mcp-Session-Id")
        assert session
        assert self.post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session)[0] == 202
        return session

    def call(self, session, rid, name, arguments, meta=None):
        params = {"name": name, "arguments": arguments}
        if meta:
            params["_meta"] = meta
        return self.post({"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params}, session)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def http_relays():
    started = []

    def start(*args, **kwargs):
        relay = HttpRelay(*args, **kwargs)
        started.append(relay)
        return relay

    yield start
    for relay in started:
        relay.close()


def test_eight_concurrent_sdk_sessions(http_relays, project, fs_server):
    from mcp import Client

    root = fs_server.paths["root"]
    project.policy("sticky", STICKY_FS)  # no [mcp]: the relay trusts "filesystem" on first use and says so
    relay = http_relays(project, fs_server)

    async def session(i):
        async with Client(relay.url, cache=None) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            read = await client.call_tool("read_text_file", {"path": str(root / "hello.txt")})
            write = await client.call_tool("write_file", {"path": str(root / f"w{i}.txt"), "content": str(i)})
            later = await client.call_tool("create_directory", {"path": str(root / f"d{i}")})
            return names, read, write, later

    async def main():
        out = [None] * 8
        with anyio.fail_after(180):
            async with anyio.create_task_group() as tg:
                for i in range(8):
                    async def one(i=i):
                        out[i] = await session(i)
                    tg.start_soon(one)
        return out

    results = anyio.run(main)
    runs = set()
    for names, read, write, later in results:
        assert "write_file" in names
        assert not read.is_error and "hello, world" in read.content[0].text  # trusted on first use: a read
        assert write.is_error and "NOT EXECUTED" in write.content[0].text
        assert later.is_error and "NOT EXECUTED" in later.content[0].text  # the session's run went dry
        runs.add(write.meta["drygate"]["run_id"])
    assert len(runs) == 8 and all(r.startswith("mcp-http-") for r in runs)  # a run per session
    assert sorted(p.name for p in root.iterdir()) == ["docs", "hello.txt"]
    assert '"filesystem"' in (project.root / "drygate.toml").read_text()  # trust recorded, with a comment


def test_sessions_have_their_own_ids_runs_and_secrets(http_relays, project, fs_server):
    root = fs_server.paths["root"]
    project.policy("sticky", STICKY_FS + '\n[mcp]\ntrusted_servers = ["filesystem"]\n')
    relay = http_relays(project, fs_server)
    a, b = relay.initialize(), relay.initialize()
    assert a != b
    # the same JSON-RPC id in flight in both sessions at once: each gets its own answer
    answers = {}

    def read(session, path):
        answers[session] = relay.call(session, 5, "read_text_file", {"path": str(path)})

    threads = [threading.Thread(target=read, args=(a, root / "hello.txt")),
               threading.Thread(target=read, args=(b, root / "docs" / "notes.md"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert answers[a][0] == answers[b][0] == 200
    assert "hello, world" in answers[a][1]["result"]["content"][0]["text"]
    assert "# Notes" in answers[b][1]["result"]["content"][0]["text"]
    # a dry write in session a does not make session b's run dry
    status, dry, _ = relay.call(a, 6, "write_file", {"path": str(root / "a.txt"), "content": "x"})
    assert dry["result"]["isError"] and dry["result"]["_meta"]["drygate"]["decision"] == "dry"
    status, live, _ = relay.call(b, 6, "create_directory", {"path": str(root / "live")})
    assert not live["result"].get("isError") and (root / "live").is_dir()
    status, still, _ = relay.call(a, 7, "create_directory", {"path": str(root / "not-live")})
    assert still["result"]["isError"] and not (root / "not-live").exists()
    # a message without its session id is refused; so is a DELETE naming no session or an unknown one
    assert relay.post({"jsonrpc": "2.0", "id": 8, "method": "tools/list"})[0] == 400
    assert relay.post({"jsonrpc": "2.0", "method": "notifications/initialized"})[0] == 400
    assert relay.request("DELETE", None, {})[0] == 400
    assert relay.request("DELETE", None, {"Mcp-Session-Id": "not-a-session"})[0] == 404
    assert relay.post({"jsonrpc": "2.0", "id": 9, "method": "ping"}, "not-a-session")[0] == 404
    assert relay.post({"jsonrpc": "2.0", "id": 9, "method": "initialize", "params": {}}, a)[0] == 400
    # ending a ends a only
    assert relay.request("DELETE", None, {"Mcp-Session-Id": a})[0] == 200
    assert relay.post({"jsonrpc": "2.0", "id": 10, "method": "ping"}, a)[0] == 404
    status, pong, _ = relay.post({"jsonrpc": "2.0", "id": 10, "method": "ping"}, b)
    assert status == 200 and pong["result"] == {}


def test_stateless_era_keeps_working(http_relays, project, git_server):
    """mcp-server-git speaks 2026-07-28: the SDK client discovers it and sends no session id."""
    from mcp import Client

    from .conftest import git_snapshot

    repo = git_server.paths["repo"]
    before = git_snapshot(repo)
    project.policy("dry", extra='[mcp]\ntrusted_servers = ["git"]\n')
    relay = http_relays(project, git_server)

    async def main():
        with anyio.fail_after(120):
            async with Client(relay.url, cache=None) as client:
                status = await client.call_tool("git_status", {"repo_path": str(repo)})
                add = await client.call_tool("git_add", {"repo_path": str(repo), "files": ["new.txt"]})
                return status, add

    status, add = anyio.run(main)
    assert not status.is_error and "new.txt" in status.content[0].text
    assert add.is_error and "NOT EXECUTED" in add.content[0].text
    assert git_snapshot(repo) == before
    # two stateless clients may use the same id at once: each gets its own answer
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}
    answers = []

    def stateless(args):
        answers.append(relay.call(None, 1, "git_status", {"repo_path": str(repo)}, meta=dict(meta, **args)))

    threads = [threading.Thread(target=stateless, args=({},)),
               threading.Thread(target=stateless, args=({"drygate/run_id": "named-stateless"},))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [a[0] for a in answers] == [200, 200] and all(a[1]["id"] == 1 for a in answers), answers
    assert all(not a[1]["result"].get("isError") and a[1]["result"]["resultType"] == "complete" for a in answers)


def test_langchain_parallel_tool_calls_over_http(http_relays, project, fs_server, langchain_python):
    root = fs_server.paths["root"]
    project.policy("dry", extra='[mcp]\ntrusted_servers = ["filesystem"]\n')
    relay = http_relays(project, fs_server)
    servers = {"filesystem": {"transport": "streamable_http", "url": relay.url}}
    out = run_langchain(langchain_python, servers, [
        [["read_text_file", {"path": str(root / "hello.txt")}], ["list_directory", {"path": str(root)}],
         ["write_file", {"path": str(root / "a.txt"), "content": "a"}],
         ["write_file", {"path": str(root / "b.txt"), "content": "b"}],
         ["create_directory", {"path": str(root / "d")}],
         ["read_text_file", {"path": str(root / "docs" / "notes.md")}]],
    ])
    [step] = out["steps"]
    assert [r["ok"] for r in step] == [True, True, False, False, False, True], step
    assert all("NOT EXECUTED" in r["text"].upper() for r in step[2:5]), step
    assert sorted(p.name for p in root.iterdir()) == ["docs", "hello.txt"]


def test_parallel_first_calls_wait_for_the_catalog(http_relays, project, fs_server):
    """Calls that reach the relay before any tools/list are decided with the annotations (they wait
    for one listing), so a trusted server's reads pass in a dry run."""
    root = fs_server.paths["root"]
    project.policy("dry", extra='[mcp]\ntrusted_servers = ["filesystem"]\n')
    relay = http_relays(project, fs_server)
    session = relay.initialize()
    answers = [None] * 6

    def read(i):
        answers[i] = relay.call(session, 100 + i, "read_text_file", {"path": str(root / "hello.txt")})

    threads = [threading.Thread(target=read, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for status, answer, _ in answers:
        assert status == 200 and not answer["result"].get("isError"), answer
        assert "hello, world" in answer["result"]["content"][0]["text"]


def test_a_late_answer_to_the_relays_own_tools_list_never_reaches_the_client(raw_peers, project, tmp_path):
    effects = tmp_path / "effects"
    effects.mkdir()
    server = Server("effects", [sys.executable, str(EFFECT_SERVER)],
                    {"EFFECT_DIR": str(effects), "SLOW_TOOLS_LIST": "3"})
    project.policy("dry", extra="[mcp]\ntrusted_servers = []\n")
    peer = raw_peers(project.relay_argv(server), project.relay_env(server, "dry", "late-list"))
    peer.initialize()
    # A call before any listing: the relay lists the tools itself, gives up after 2 s, decides (dry).
    peer.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "touch", "arguments": {}}})
    first = peer.recv(timeout=20)
    assert first["id"] == 1 and first["result"]["isError"], first
    # The server sends its answer to the relay's own tools/list now; ping's answer comes after it.
    assert wait_for(lambda: (effects / "tools_list.late-sent").exists(), timeout=20)
    peer.send({"jsonrpc": "2.0", "id": 2, "method": "ping"})
    assert peer.recv(timeout=20) == {"jsonrpc": "2.0", "id": 2, "result": {}}  # nothing unsolicited before it
