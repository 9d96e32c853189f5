"""A run is the agent, not the connection (issue 12 item 3).

Without DRYGATE_RUN_ID or a named run, every stdio relay one client process starts is in one
run (the client's pid + start time + boot id), so a sticky run that went dry stays dry in the
next relay the same client starts. Tested with a client that starts the relay per call (the
MCP SDK 2.x client) and with LangChain's default ``get_tools()`` (a session per tool call).
"""

import json
import os
import subprocess
import sys

from drygate.relay.identity import process_identity, run_id_from_env

from .conftest import clean_env, run_langchain

STICKY_FS = '[[rules]]\ntool = "mcp__filesystem__write_file"\neffect = "write"\ndry = true\n'

#: A client that starts the relay for each call (a fresh MCP session and process per call).
PER_CALL_CLIENT = r'''
import asyncio, json, sys
from mcp import Client, StdioServerParameters

async def main():
    spec = json.loads(sys.argv[1])
    out = []
    for name, args in spec["calls"]:
        params = StdioServerParameters(command=spec["argv"][0], args=spec["argv"][1:], env=spec["env"])
        async with Client(params, cache=None) as client:
            r = await client.call_tool(name, args)
            out.append({"isError": bool(r.is_error), "meta": (r.meta or {}).get("drygate")})
    print(json.dumps(out))

asyncio.run(main())
'''


def per_call_client(project, server, calls):
    spec = {"argv": project.relay_argv(server), "env": clean_env(project.relay_env(server)), "calls": calls}
    proc = subprocess.run([sys.executable, "-c", PER_CALL_CLIENT, json.dumps(spec)], capture_output=True, text=True,
                          timeout=120, env=clean_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_process_identity_is_pid_start_time_and_boot():
    me = process_identity(os.getpid())
    assert me and me == process_identity(os.getpid()) and me.startswith(f"{os.getpid()}-")
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        other = process_identity(child.pid)
        assert other and other != me and other.split("-")[2] == me.split("-")[2]  # same boot
    finally:
        child.communicate(b"")
    assert process_identity(child.pid) is None  # gone
    assert process_identity(2 ** 22 + 12345) is None


def test_run_rule_order():
    assert run_id_from_env({"DRYGATE_RUN_ID": "a", "CLAUDE_CODE_SESSION_ID": "b"}) == "a"
    assert run_id_from_env({"CLAUDE_CODE_SESSION_ID": "b"}) == "b"
    assert run_id_from_env({}) == f"mcp-client-{process_identity(os.getppid())}"
    assert run_id_from_env({}, parent_pid=os.getpid()) == f"mcp-client-{process_identity(os.getpid())}"
    assert run_id_from_env({}, parent_pid=2 ** 22 + 12345).startswith("mcp-")  # no /proc entry: a run of its own


def test_a_client_that_starts_the_relay_per_call_stays_in_one_run(fs_server, project):
    root = fs_server.paths["root"]
    project.policy("sticky", STICKY_FS)
    first, second, third = per_call_client(project, fs_server, [
        ["write_file", {"path": str(root / "a.txt"), "content": "x"}],
        ["create_directory", {"path": str(root / "d")}],
        ["move_file", {"source": str(root / "hello.txt"), "destination": str(root / "moved.txt")}]])
    assert first["isError"] and first["meta"]["decision"] == "dry"
    assert second["isError"] and second["meta"]["decision"] == "dry", second  # the run went dry: stays dry
    assert third["isError"] and third["meta"]["decision"] == "dry", third
    assert second["meta"]["run_id"] == first["meta"]["run_id"] == third["meta"]["run_id"]
    assert first["meta"]["run_id"].startswith("mcp-client-")
    assert not (root / "a.txt").exists() and not (root / "d").exists() and (root / "hello.txt").exists()
    assert [r["run_id"] for r in project.runs()] == [first["meta"]["run_id"]]


def test_another_client_process_is_another_run(fs_server, project):
    root = fs_server.paths["root"]
    project.policy("sticky", STICKY_FS)
    [dry] = per_call_client(project, fs_server, [["write_file", {"path": str(root / "a.txt"), "content": "x"}]])
    [live] = per_call_client(project, fs_server, [["create_directory", {"path": str(root / "d")}]])
    assert dry["isError"] and not live["isError"] and (root / "d").is_dir()
    assert len(project.runs()) == 2


def test_langchain_get_tools_calls_share_the_run(langchain_python, fs_server, project):
    """LangChain's default get_tools() starts one stdio relay per tool call, parallel calls included."""
    root = fs_server.paths["root"]
    project.policy("sticky", STICKY_FS + '\n[mcp]\ntrusted_servers = ["filesystem"]\n')
    argv = project.relay_argv(fs_server)
    servers = {"filesystem": {"transport": "stdio", "command": argv[0], "args": argv[1:],
                              "env": clean_env(project.relay_env(fs_server))}}
    out = run_langchain(langchain_python, servers, [
        [["read_text_file", {"path": str(root / "hello.txt")}], ["list_directory", {"path": str(root)}]],
        [["write_file", {"path": str(root / "a.txt"), "content": "x"}]],
        [["create_directory", {"path": str(root / "d1")}], ["create_directory", {"path": str(root / "d2")}],
         ["read_text_file", {"path": str(root / "hello.txt")}]],
    ])
    reads, [write], later = out["steps"]
    assert all(r["ok"] for r in reads) and "hello, world" in reads[0]["text"], reads
    assert not write["ok"] and "NOT EXECUTED" in write["text"].upper(), write
    assert [r["ok"] for r in later] == [False, False, True], later  # dry stays dry; a read still reads
    assert all("NOT EXECUTED" in r["text"].upper() for r in later[:2])
    assert not (root / "a.txt").exists() and not (root / "d1").exists() and not (root / "d2").exists()
    [run] = project.runs()
    assert run["run_id"].startswith("mcp-client-") and run["dry_since"]
    assert sorted(s["tool_name"] for s in project.plan(run["run_id"])["steps"]) == [
        "mcp__filesystem__create_directory", "mcp__filesystem__create_directory", "mcp__filesystem__write_file"]


def test_the_journaled_catalog_is_readable_for_the_hook(fs_server, project):
    """drygate.state.catalog reads the catalog the relay journals (what the hook needs for a relayed tool)."""
    from drygate.state.catalog import annotations_for, read_catalog
    from drygate.state.sqlite import SQLiteStore

    project.policy("dry", extra='[mcp]\ntrusted_servers = ["filesystem"]\n')
    [result] = per_call_client(project, fs_server, [["list_allowed_directories", {}]])
    assert not result["isError"]
    [run] = project.runs()
    store = SQLiteStore(str(project.state))
    try:
        catalogs = read_catalog(store, run["run_id"])
    finally:
        store.close()
    assert set(catalogs) == {"filesystem"} and "write_file" in catalogs["filesystem"]["tools"]
    assert annotations_for(catalogs, "mcp__filesystem__read_text_file")["readOnlyHint"] is True
    assert annotations_for(catalogs, "mcp__plugin_x_filesystem__write_file").get("readOnlyHint") is False
    assert annotations_for(catalogs, "mcp__other__read_text_file") is None
    assert annotations_for(catalogs, "Bash") is None


def test_the_client_is_found_past_launchers():
    """A launcher hands the relay its own stdin/stdout pipes; the client made them."""
    code = "from drygate.relay.identity import client_pid; print(client_pid())"
    launchers = {"direct": [], "shell wrapper": ["sh", "-c", '"$@"; exit $?', "sh"],
                 "logging wrapper": ["sh", "-c", '"$@" | tee -a /dev/null', "sh"],
                 "npx-style": [sys.executable, "-c", "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"]}
    for name, prefix in launchers.items():
        proc = subprocess.run([*prefix, sys.executable, "-c", code], stdin=subprocess.PIPE, capture_output=True,
                              text=True, timeout=60, env=clean_env())
        assert proc.stdout.strip() == str(os.getpid()), (name, proc.stdout, proc.stderr)
