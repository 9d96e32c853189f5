"""The MCP relay over stdio with raw JSON-RPC lines, against the repository's own
incident server (a real MCP SDK server with real side effects): no Node needed.
Wider tests with the registries' servers live in tests/relay."""

import json
import sqlite3
import subprocess
import sys

import pytest

from conftest import REPO, SRC

STORE_SERVER = REPO / "examples" / "incident" / "store_server.py"


class RelayProcess:
    def __init__(self, project, run_id="relay-run", mode=None, extra=None):
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC), "STORE_DIR": str(project / "objects"),
               "STORE_DB": str(project / "meta.db"), **(extra or {})}
        if run_id:
            env["DRYGATE_RUN_ID"] = run_id
        if mode:
            env["DRYGATE_MODE"] = mode
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "drygate.cli.entry", "mcp", "--name", "store", "--project", str(project), "--",
             sys.executable, str(STORE_SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env)
        self.next_id = 0

    def send(self, message):
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        self.proc.stdin.flush()

    def raw(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read(self):
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read().decode()[-2000:]
        return json.loads(line)

    def request(self, method, params=None):
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}})
        return self.read()

    def handshake(self):
        r = self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                        "clientInfo": {"name": "test", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return r

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(10)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "objects").mkdir()
    db = sqlite3.connect(tmp_path / "meta.db")
    db.execute("CREATE TABLE files(key TEXT PRIMARY KEY, size INTEGER)")
    db.commit()
    db.close()
    (tmp_path / "drygate.toml").write_text(
        '[run]\nmode = "sticky"\n[[rules]]\ntool = "mcp__store__put_object"\neffect = "write"\ndry = true\n'
        '[[rules]]\ntool = "mcp__store__query"\nclassify = "sql"\nsql_dialect = "sqlite"\n')
    return tmp_path


def rows(project):
    return sqlite3.connect(project / "meta.db").execute("SELECT * FROM files").fetchall()


def test_incident_through_the_relay(project):
    relay = RelayProcess(project)
    try:
        assert relay.handshake()["result"]["serverInfo"]
        tools = relay.request("tools/list")["result"]["tools"]
        assert {t["name"] for t in tools} == {"put_object", "query"}
        read = relay.request("tools/call", {"name": "query", "arguments": {"sql": "SELECT count(*) FROM files"}})
        assert read["result"].get("isError") in (None, False) and "count" in json.dumps(read["result"])
        put = relay.request("tools/call", {"name": "put_object", "arguments": {"bucket": "b", "key": "a.png",
                                                                                "body": "x"}})
        assert put["result"]["isError"] is True and "NOT EXECUTED" in put["result"]["content"][0]["text"]
        assert put["result"]["_meta"]["drygate"]["executed"] is False
        insert = relay.request("tools/call", {"name": "query", "arguments": {
            "sql": "INSERT INTO files(key, size) VALUES ('a.png', 2048)"}})
        assert insert["result"]["isError"] is True
        still_reads = relay.request("tools/call", {"name": "query", "arguments": {"sql": "SELECT 1"}})
        assert not still_reads["result"].get("isError")
    finally:
        relay.close()
    assert list((project / "objects").iterdir()) == [] and rows(project) == []
    plan = json.loads(subprocess.run([sys.executable, "-m", "drygate.cli.entry", "plan", "relay-run", "--json",
                                      "--project", str(project)], capture_output=True, text=True,
                                     env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}).stdout)
    assert [s["tool_name"] for s in plan["steps"]] == ["mcp__store__put_object", "mcp__store__query"]


def test_live_calls_really_run(project):
    (project / "drygate.toml").write_text('[run]\nmode = "live"\n')
    relay = RelayProcess(project)
    try:
        relay.handshake()
        r = relay.request("tools/call", {"name": "query", "arguments": {"sql": "INSERT INTO files VALUES ('x', 1)"}})
        assert not r["result"].get("isError")
    finally:
        relay.close()
    assert rows(project) == [("x", 1)]


def test_malformed_lines_and_unlisted_tools(project):
    relay = RelayProcess(project, mode="dry")
    try:
        relay.handshake()
        relay.raw(b"{not json\n")
        err = relay.read()
        assert err["error"]["code"] == -32700 and err["id"] is None
        r = relay.request("tools/call", {"name": "never_listed", "arguments": {}})
        assert r["result"]["isError"] is True and "NOT EXECUTED" in r["result"]["content"][0]["text"]
        r = relay.request("tools/call", {"arguments": {}})
        assert r["result"]["isError"] is True and "guard failure" in r["result"]["content"][0]["text"]
        assert relay.request("tools/list")["result"]["tools"]  # still serving
    finally:
        relay.close()


def test_locked_store_blocks_and_alerts(project):
    (project / "drygate.toml").write_text('[run]\nmode = "live"\n[gate]\ndeadline_ms = 600\n')
    relay = RelayProcess(project)
    holder = None
    try:
        relay.handshake()
        relay.request("tools/call", {"name": "query", "arguments": {"sql": "SELECT 1"}})  # creates the store
        holder = subprocess.Popen([sys.executable, "-c", (
            "import sqlite3,sys,time;c=sqlite3.connect(sys.argv[1],isolation_level=None);"
            "c.execute('BEGIN EXCLUSIVE');print('locked',flush=True);time.sleep(60)"),
            str(project / ".drygate" / "state.db")], stdout=subprocess.PIPE)
        assert holder.stdout.readline().strip() == b"locked"
        r = relay.request("tools/call", {"name": "query", "arguments": {"sql": "INSERT INTO files VALUES ('y', 1)"}})
        assert r["result"]["isError"] is True and "BLOCKED" in r["result"]["content"][0]["text"]
    finally:
        if holder:
            holder.kill()
        relay.close()
    assert rows(project) == []
    alerts = [json.loads(line) for line in (project / ".drygate" / "alerts.jsonl").read_text().splitlines()]
    assert alerts[-1]["kind"] == "guard_failure" and alerts[-1]["host"] == "mcp-relay"


def test_policy_corrupted_mid_session_fails_closed_until_mended(project):
    policy = project / "drygate.toml"
    good = '[run]\nmode = "live"\n'
    policy.write_text(good)
    relay = RelayProcess(project)
    try:
        relay.handshake()
        assert not relay.request("tools/call", {"name": "query", "arguments": {"sql": "SELECT 1"}})["result"].get(
            "isError")
        good = policy.read_text()  # as the run saw it (the relay recorded the server's trust in it)
        policy.write_text('[run\nmode = "live"\n')  # not TOML
        for key in ("a", "b"):  # every call, not only the first after the change
            r = relay.request("tools/call", {"name": "query", "arguments": {
                "sql": f"INSERT INTO files VALUES ('{key}', 1)"}})
            assert r["result"]["isError"] is True and "BLOCKED" in r["result"]["content"][0]["text"]
        policy.write_text(good)
        r = relay.request("tools/call", {"name": "query", "arguments": {"sql": "INSERT INTO files VALUES ('c', 1)"}})
        assert not r["result"].get("isError")
    finally:
        relay.close()
    assert rows(project) == [("c", 1)]
    alerts = [json.loads(line) for line in (project / ".drygate" / "alerts.jsonl").read_text().splitlines()]
    assert [a["kind"] for a in alerts] == ["guard_failure", "guard_failure"]


def test_install_mcp_rewrites_and_is_idempotent(tmp_path):
    from drygate.relay.install import install_mcp

    config = {"mcpServers": {"store": {"command": "python3", "args": ["s.py"], "env": {"A": "1"}},
                             "web": {"type": "http", "url": "https://x"}}}
    (tmp_path / ".mcp.json").write_text(json.dumps(config))
    path, wrapped, skipped = install_mcp(tmp_path, python="/py")
    first = json.loads((tmp_path / ".mcp.json").read_text())
    install_mcp(tmp_path, python="/py")
    assert json.loads((tmp_path / ".mcp.json").read_text()) == first
    store = first["mcpServers"]["store"]
    assert store["command"] == "/py" and store["args"][-3:] == ["--", "python3", "s.py"] and store["env"] == {"A": "1"}
    assert "--name" in store["args"] and store["args"][store["args"].index("--name") + 1] == "store"
    assert first["mcpServers"]["web"]["args"][-2:] == ["--url", "https://x"] and not skipped
    assert json.loads((tmp_path / ".mcp.json.drygate-backup").read_text()) == config
    (tmp_path / ".mcp.json").write_text("{broken")
    with pytest.raises(ValueError, match="not valid JSON"):
        install_mcp(tmp_path)


def test_doctor_warns_about_servers_outside_the_relay(tmp_path):
    from drygate.doctor import _mcp_checks
    from drygate.relay.install import install_mcp

    (tmp_path / ".mcp.json").write_text(json.dumps({"mcpServers": {"a": {"command": "x"}}}))
    assert _mcp_checks(str(tmp_path))[0]["status"] == "warn"
    install_mcp(tmp_path)
    assert _mcp_checks(str(tmp_path))[0]["status"] == "ok"


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_relay(project):
    import time
    import urllib.request

    port = _free_port()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC), "STORE_DIR": str(project / "objects"),
           "STORE_DB": str(project / "meta.db"), "DRYGATE_RUN_ID": "http-run"}
    proc = subprocess.Popen([sys.executable, "-m", "drygate.cli.entry", "mcp", "--name", "store", "--project",
                             str(project), "--http", f"127.0.0.1:{port}", "--", sys.executable, str(STORE_SERVER)],
                            env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/mcp"
    for _ in range(200):
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=1)
            break
        except urllib.error.HTTPError:  # answered (400: no session named): up
            break
        except OSError:
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)


def test_streamable_http_with_the_sdk_client(project, http_relay):
    import asyncio

    from mcp import Client

    async def main():
        async with Client(http_relay) as client:
            names = sorted(t.name for t in (await client.list_tools()).tools)
            read = await client.call_tool("query", {"sql": "SELECT count(*) FROM files"})
            put = await client.call_tool("put_object", {"bucket": "b", "key": "k", "body": "x"})
            insert = await client.call_tool("query", {"sql": "INSERT INTO files VALUES ('k', 1)"})
            return names, read, put, insert

    names, read, put, insert = asyncio.run(main())
    assert names == ["put_object", "query"]
    assert not read.is_error
    assert put.is_error and "NOT EXECUTED" in put.content[0].text
    assert insert.is_error
    assert list((project / "objects").iterdir()) == [] and rows(project) == []


def test_streamable_http_checks_origin_and_session(project, http_relay):
    import urllib.error
    import urllib.request

    def post(body, headers):
        req = urllib.request.Request(http_relay, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Accept": "application/json, text/event-stream", **headers})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    status, _, _ = post({"jsonrpc": "2.0", "id": 1, "method": "ping"}, {"Origin": "https://evil.example"})
    assert status == 403
    status, body, headers = post({"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}, {})
    assert status == 200 and json.loads(body)["result"]["serverInfo"] and headers.get("mcp-session-id")
    status, _, _ = post({"jsonrpc": "2.0", "id": 3, "method": "ping"}, {"Mcp-Session-Id": "someone-else"})
    assert status == 404
    status, _, _ = post({"jsonrpc": "2.0", "method": "notifications/initialized"},
                        {"Mcp-Session-Id": headers["mcp-session-id"]})
    assert status == 202


def test_http_downstream_behind_a_stdio_relay(project, http_relay):
    """A relay whose downstream is reached over streamable HTTP (here: another relay,
    serving the store server over HTTP), used by a stdio client."""
    import asyncio

    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "drygate.cli.entry", "mcp", "--name", "store", "--project", str(project),
                                      "--header", "X-Test: yes", "--url", http_relay],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC), "DRYGATE_RUN_ID": "front-run"})

    async def main():
        async with Client(params) as client:
            names = sorted(t.name for t in (await client.list_tools()).tools)
            read = await client.call_tool("query", {"sql": "SELECT count(*) FROM files"})
            put = await client.call_tool("put_object", {"bucket": "b", "key": "k", "body": "x"})
            return names, read, put

    names, read, put = asyncio.run(main())
    assert names == ["put_object", "query"] and not read.is_error
    assert put.is_error and "NOT EXECUTED" in put.content[0].text
    assert list((project / "objects").iterdir()) == []


def test_install_mcp_wraps_http_servers(tmp_path):
    from drygate.relay.install import install_mcp

    config = {"mcpServers": {"api": {"type": "http", "url": "http://127.0.0.1:9/mcp"},
                             "secret": {"type": "http", "url": "https://x/mcp", "headers": {"Authorization": "t"}}}}
    (tmp_path / ".mcp.json").write_text(json.dumps(config))
    _, wrapped, skipped = install_mcp(tmp_path, python="/py")
    first = json.loads((tmp_path / ".mcp.json").read_text())
    assert wrapped == ["api", "secret"] and not skipped
    assert first["mcpServers"]["api"]["args"][-2:] == ["--url", "http://127.0.0.1:9/mcp"]
    secret = first["mcpServers"]["secret"]
    assert secret["args"][-2:] == ["--url", "https://x/mcp"] and "Authorization" not in json.dumps(secret["args"])
    assert json.loads(secret["env"]["DRYGATE_MCP_HEADERS"]) == {"Authorization": "t"}
    assert "url" not in first["mcpServers"]["api"] and "type" not in first["mcpServers"]["api"]
    install_mcp(tmp_path, python="/py")
    assert json.loads((tmp_path / ".mcp.json").read_text()) == first


def test_client_meta_run_id_joins_a_run_only_at_the_start(project):
    """A client that passes its run in request _meta joins that run's stickiness; once a
    call was decided, naming another run cannot take the connection out of its run."""
    from drygate.state.sqlite import SQLiteStore
    from drygate.types import TransitionRequest

    store = SQLiteStore(project / ".drygate" / "state.db")
    entry = {"call_id": None, "agent_id": None, "tool_name": "mcp__other__put", "tool_input": {}, "effect": "write",
             "rule_id": "x", "why": "w", "tamper": False, "policy_hash": "", "host": "test"}
    store.transact("agent-run", TransitionRequest("sticky", True, True, "allow"), entry, lambda: 1.0)  # went dry
    store.close()
    (project / "drygate.toml").write_text('[run]\nmode = "sticky"\n')
    relay = RelayProcess(project, run_id=None)
    try:
        relay.handshake()
        joined = relay.request("tools/call", {"name": "query", "arguments": {"sql": "INSERT INTO files VALUES ('b', 1)"},
                                              "_meta": {"drygate/run_id": "agent-run"}})
        assert joined["result"]["isError"] is True and joined["result"]["_meta"]["drygate"]["run_id"] == "agent-run"
        escape = relay.request("tools/call", {"name": "query", "arguments": {"sql": "INSERT INTO files VALUES ('c', 1)"},
                                              "_meta": {"drygate/run_id": "fresh-live-run"}})
        assert escape["result"]["isError"] is True and escape["result"]["_meta"]["drygate"]["run_id"] == "agent-run"
    finally:
        relay.close()
    assert rows(project) == []


# Found by the adversarial review of the relay: each once let a dry-run write reach the server.
SMUGGLED_CALL = (b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"query",'
                 b'"arguments":{"sql":"INSERT INTO files VALUES (\'smuggled\', 1)"}}}')


@pytest.mark.parametrize("carrier", [
    b'{"jsonrpc":"2.0","method":"notifications/x","params":{"a":\r' + SMUGGLED_CALL + b'\r}}\n',
    b'{"jsonrpc":"2.0","id":31,"method":"ping","params":{"a":\r' + SMUGGLED_CALL + b'\r}}\n',
    b'{"jsonrpc":"2.0","id":"zz","result":{"a":\r' + SMUGGLED_CALL + b'\r}}\n',
    b'{"jsonrpc":"2.0","method":"notifications/initialized","params":{"a":\r' + SMUGGLED_CALL + b'\r}}\n',
])
def test_no_second_message_hidden_behind_a_carriage_return(project, carrier):
    import time

    (project / "drygate.toml").write_text('[run]\nmode = "dry"\n')
    relay = RelayProcess(project)
    try:
        relay.handshake()
        relay.raw(carrier)
        relay.request("tools/list")  # a round trip: anything smuggled would have run by now
        time.sleep(0.3)
    finally:
        relay.close()
    assert rows(project) == []


def test_non_json_numbers_are_refused(project):
    relay = RelayProcess(project, mode="dry")
    try:
        relay.handshake()
        relay.raw(b'{"jsonrpc":"2.0","id":NaN,"method":"ping"}\n')
        assert relay.read()["error"]["code"] == -32700
    finally:
        relay.close()


def test_a_reconnect_cannot_leave_a_dry_session_by_naming_a_run(project):
    env_extra = {"CLAUDE_CODE_SESSION_ID": "sess-S"}
    put = {"name": "put_object", "arguments": {"bucket": "b", "key": "k", "body": "x"}}
    first = RelayProcess(project, run_id=None, extra=env_extra)
    try:
        first.handshake()
        assert first.request("tools/call", put)["result"]["isError"] is True  # sess-S went dry
    finally:
        first.close()
    second = RelayProcess(project, run_id=None, extra=env_extra)
    try:
        second.handshake()
        r = second.request("tools/call", {"name": "query", "arguments": {"sql": "INSERT INTO files VALUES ('e', 1)"},
                                          "_meta": {"drygate/run_id": "fresh-run"}})
        assert r["result"]["isError"] is True and r["result"]["_meta"]["drygate"]["run_id"] == "sess-S"
    finally:
        second.close()
    assert rows(project) == []


def test_http_body_with_a_newline_carries_one_message(project, http_relay):
    import urllib.request

    init = urllib.request.Request(http_relay, method="POST", headers={"Content-Type": "application/json"},
                                  data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                                      "protocolVersion": "2025-06-18", "capabilities": {},
                                      "clientInfo": {"name": "t", "version": "1"}}}).encode())
    with urllib.request.urlopen(init, timeout=30) as r:
        session = {"Mcp-Session-Id": r.headers["Mcp-Session-Id"]}
    body = (b'{"jsonrpc":"2.0","method":"notifications/initialized","params":{"a":\n' + SMUGGLED_CALL + b'\n}}')
    req = urllib.request.Request(http_relay, data=body, method="POST",
                                 headers={"Content-Type": "application/json", **session})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 202
    ping = urllib.request.Request(http_relay, data=b'{"jsonrpc":"2.0","id":7.0,"method":"ping"}', method="POST",
                                  headers={"Content-Type": "application/json", **session})
    with urllib.request.urlopen(ping, timeout=10) as r:
        assert json.loads(r.read())["id"] in (7, 7.0)  # a float id is answered, not left hanging
    assert rows(project) == []
