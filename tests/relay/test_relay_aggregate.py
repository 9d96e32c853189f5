"""Several real servers behind one relay (``drygate mcp --config``): one MCP server to the
client, tools merged and routed, each call decided under its own server's name."""

import asyncio
import json

from mcp import Client, StdioServerParameters

from .conftest import DRYGATE, clean_env


def _params(project, config, run_id):
    path = project.root / "servers.json"
    path.write_text(json.dumps({"mcpServers": config}))
    env = clean_env({"CLAUDE_PROJECT_DIR": str(project.root), "DRYGATE_STATE": str(project.state),
                     "DRYGATE_RUN_ID": run_id})
    return StdioServerParameters(command=DRYGATE[0], args=[*DRYGATE[1:], "mcp", "--project", str(project.root),
                                                           "--config", str(path)], env=env)


def _entry(server):
    return {"command": server.argv[0], "args": server.argv[1:], "env": server.env}


def test_two_servers_behind_one_relay(project, fs_server, store_server):
    project.policy("sticky", rules='''
[[rules]]
tool = "mcp__filesystem__read_text_file"
effect = "read"
[[rules]]
tool = "mcp__store__put_object"
effect = "write"
dry = true
[[rules]]
tool = "mcp__store__query"
effect = "write"
''')
    root = fs_server.paths["root"]
    params = _params(project, {"filesystem": _entry(fs_server), "store": _entry(store_server)}, "agg-run")

    async def main():
        async with Client(params, cache=None) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            read = await client.call_tool("read_text_file", {"path": str(root / "hello.txt")})
            query = await client.call_tool("query", {"sql": "SELECT count(*) FROM files"})
            put = await client.call_tool("put_object", {"bucket": "b", "key": "k", "body": "x"})
            write = await client.call_tool("write_file", {"path": str(root / "new.txt"), "content": "x"})
            return tools, read, query, put, write

    tools, read, query, put, write = asyncio.run(main())
    assert {"read_text_file", "write_file", "put_object", "query"} <= tools
    assert not read.is_error and "hello, world" in read.content[0].text
    assert not query.is_error  # live until the dry-scope write
    assert put.is_error and "NOT EXECUTED" in put.content[0].text
    assert write.is_error and "NOT EXECUTED" in write.content[0].text  # sticky across servers
    assert not (root / "new.txt").exists()
    plan = project.plan("agg-run")
    assert [s["tool_name"] for s in plan["steps"]] == ["mcp__store__put_object", "mcp__filesystem__write_file"]


def test_same_tool_names_are_prefixed_and_routed(project, tmp_path):
    import sqlite3
    import sys

    from .conftest import STORE_SERVER

    servers = {}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        db = tmp_path / name / "meta.db"
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE files (key TEXT PRIMARY KEY, size INTEGER)")
        conn.commit()
        conn.close()
        servers[name] = {"command": sys.executable, "args": [str(STORE_SERVER)],
                         "env": {"STORE_DIR": str(tmp_path / name), "STORE_DB": str(db)}}
    project.policy("live")
    params = _params(project, servers, "agg-live")

    async def main():
        async with Client(params, cache=None) as client:
            names = sorted(t.name for t in (await client.list_tools()).tools)
            await client.call_tool("b__query", {"sql": "INSERT INTO files VALUES ('only-b', 1)"})
            return names

    names = asyncio.run(main())
    assert names == ["b__put_object", "b__query", "put_object", "query"]

    def rows(name):
        return sqlite3.connect(tmp_path / name / "meta.db").execute("SELECT key FROM files").fetchall()

    assert rows("a") == [] and rows("b") == [("only-b",)]
    assert [e["tool_name"] for e in _journal(project, "agg-live")] == ["mcp__b__query"]


def _journal(project, run_id):
    from drygate.state.sqlite import SQLiteStore

    store = SQLiteStore(project.state)
    try:
        return [e for e in store.journal(run_id) if e["kind"] == "call"]
    finally:
        store.close()


def test_malformed_messages_get_errors_and_the_relay_keeps_serving(project, store_server, tmp_path):
    import subprocess

    project.policy("dry")
    params = _params(project, {"a": _entry(store_server)}, "agg-bad")
    proc = subprocess.Popen([params.command, *params.args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=params.env)

    def send(message):
        proc.stdin.write((json.dumps(message) + "\n").encode())
        proc.stdin.flush()

    def read():
        return json.loads(proc.stdout.readline())

    try:
        send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        assert read()["result"]["serverInfo"]["name"] == "drygate-relay"
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        send({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": "x"}})
        assert read()["result"]["tools"]  # a malformed _meta is ignored
        bad = [
            {"jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {"uri": ["x"]}},
            {"jsonrpc": "2.0", "id": 4, "method": "prompts/get", "params": {"name": {"x": 1}}},
            {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": ["put_object"]}},
            {"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "put_object", "_meta": ["x"],
                                                                         "arguments": {"key": "k"}}},
        ]
        for message in bad:
            send(message)
            answer = read()
            assert answer["id"] == message["id"] and (answer.get("error") or answer["result"].get("isError")), answer
        send({"jsonrpc": "2.0", "id": "a:notjson", "result": {}})  # a forged answer: dropped
        send({"jsonrpc": "2.0", "id": 9, "method": "ping"})
        assert read() == {"jsonrpc": "2.0", "id": 9, "result": {}}
    finally:
        proc.stdin.close()
        proc.wait(10)
    assert list(store_server.paths["objects"].iterdir()) == []
