"""The MCP relay (`drygate mcp`) with real MCP servers and the official MCP Python SDK 2.x client.

Every test asserts real effects: the files of the filesystem server's root, the memory
server's graph file, the git server's repository, the store server's objects and
database, and the journal (`drygate plan` / `drygate runs`).
"""

import json
import os
import signal
import time

import anyio
import pytest
from mcp import Client, MCPError

from .conftest import flaky_log, git_snapshot, sqlite_exclusive_lock, tree_snapshot, wait_for

RUN = "relay-test-run"
CALL_TIMEOUT = 60  # no test may hang: every client session runs under this deadline


def run(fn, *args, timeout=CALL_TIMEOUT):
    async def main():
        with anyio.fail_after(timeout):
            return await fn(*args)
    return anyio.run(main)


def dump(model):
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


async def list_tools(params):
    async with Client(params, cache=None) as client:
        return [dump(t) for t in (await client.list_tools()).tools]


async def calls(params, steps, list_first=False):
    """Connect, run ``steps`` [(tool, args)] in order, return the dumped results (or MCPError)."""
    out = []
    async with Client(params, cache=None) as client:
        if list_first:
            await client.list_tools()
        for tool, args in steps:
            try:
                out.append(dump(await client.call_tool(tool, args)))
            except MCPError as e:
                out.append(e)
    return out


def assert_not_executed(result, run_id=RUN, decision="dry"):
    assert isinstance(result, dict), result
    assert result["isError"] is True, result
    text = " ".join(c.get("text", "") for c in result["content"])
    assert "NOT EXECUTED" in text.upper(), text
    meta = result["_meta"]["drygate"]
    assert meta["executed"] is False and meta["decision"] == decision, meta
    if run_id is not None:
        assert meta["run_id"] == run_id, meta
    assert meta.get("reason"), meta
    assert "structuredContent" not in result, "a skipped call must not present an invented value"


def plan_tools(project, run_id=RUN):
    return [s["tool_name"] for s in project.plan(run_id)["steps"]]


def read_rules(server, *tools):
    return "".join(f'[[rules]]\ntool = "mcp__{server}__{t}"\neffect = "read"\n\n' for t in tools)


# --------------------------------------------------------------------------------------
# transparency


READS = {
    "filesystem": lambda s: ("read_text_file", {"path": str(s.paths["root"] / "hello.txt")}),
    "memory": lambda s: ("read_graph", {}),
    "git": lambda s: ("git_log", {"repo_path": str(s.paths["repo"])}),
    "store": lambda s: ("query", {"sql": "SELECT key, etag FROM files"}),
}


@pytest.fixture(params=["filesystem", "memory", "git", "store"])
def any_server(request):
    return request.getfixturevalue(f"{request.param}_server" if request.param != "filesystem" else "fs_server")


def test_tools_list_and_read_results_equal_direct(any_server, project):
    server = any_server
    tool, args = READS[server.name](server)
    project.policy("dry", read_rules(server.name, tool))
    direct_tools = run(list_tools, server.direct())
    relayed_tools = run(list_tools, project.relay(server, "dry", RUN))
    assert [t["name"] for t in relayed_tools] == [t["name"] for t in direct_tools]
    assert relayed_tools == direct_tools  # names, descriptions, schemas, annotations

    [direct] = run(calls, server.direct(), [(tool, args)])
    [relayed] = run(calls, project.relay(server, "dry", RUN), [(tool, args)])
    assert direct["isError"] is False, direct
    # byte for byte on the content
    assert json.dumps(relayed["content"], sort_keys=True) == json.dumps(direct["content"], sort_keys=True)
    assert relayed.get("structuredContent") == direct.get("structuredContent")
    assert relayed["isError"] is False
    # the downstream identity stamp is removed, nothing else in _meta changes
    direct_meta = dict(direct.get("_meta") or {})
    direct_meta.pop("io.modelcontextprotocol/serverInfo", None)
    assert "io.modelcontextprotocol/serverInfo" not in (relayed.get("_meta") or {})
    assert {k: v for k, v in (relayed.get("_meta") or {}).items() if k != "drygate"} == direct_meta


def test_git_server_stamps_server_info_and_relay_removes_it(git_server, project):
    """The premise of the stripping rule holds for this server (2026-07-28 era)."""
    tool, args = READS["git"](git_server)
    project.policy("live")
    [direct] = run(calls, git_server.direct(), [(tool, args)])
    assert "io.modelcontextprotocol/serverInfo" in direct["_meta"]
    [relayed] = run(calls, project.relay(git_server, "live", RUN), [(tool, args)])
    assert "io.modelcontextprotocol/serverInfo" not in (relayed.get("_meta") or {})
    assert relayed["content"] == direct["content"]


def test_raw_messages_pass_unchanged(fs_server, project, raw_peers):
    """At the wire level: initialize, tools/list and a read answer the same through the relay."""
    project.policy("dry", read_rules("filesystem", "read_text_file"))
    direct = raw_peers(fs_server.argv, fs_server.env)
    relay = raw_peers(project.relay_argv(fs_server), project.relay_env(fs_server, "dry", RUN))
    replies = []
    for peer in (direct, relay):
        init = peer.initialize()
        listed = peer.request("tools/list", {})
        read = peer.request("tools/call", {"name": "read_text_file",
                                           "arguments": {"path": str(fs_server.paths["root"] / "hello.txt")}})
        ping = peer.request("ping")
        unknown = peer.request("resources/list", {})
        replies.append((init, listed, read, ping, unknown))
    for d, r in zip(*replies):
        assert r == d


# --------------------------------------------------------------------------------------
# dry mode: real servers, real effects


def test_dry_filesystem_writes_leave_the_folder_unchanged(fs_server, project):
    root = fs_server.paths["root"]
    project.policy("dry")
    before = tree_snapshot(root)
    steps = [("write_file", {"path": str(root / "new.txt"), "content": "x"}),
             ("create_directory", {"path": str(root / "newdir")}),
             ("edit_file", {"path": str(root / "hello.txt"), "edits": [{"oldText": "hello", "newText": "bye"}]}),
             ("move_file", {"source": str(root / "hello.txt"), "destination": str(root / "moved.txt")})]
    results = run(calls, project.relay(fs_server, "dry", RUN), steps)
    for result in results:
        assert_not_executed(result)
    assert tree_snapshot(root) == before
    assert plan_tools(project) == [f"mcp__filesystem__{t}" for t, _ in steps]
    plan = project.plan(RUN)
    assert plan["steps"][0]["input"] == steps[0][1]
    assert [r["run_id"] for r in project.runs()] == [RUN]


def test_dry_memory_write_leaves_the_graph_unchanged(memory_server, project):
    graph = memory_server.paths["graph"]
    project.policy("dry")
    before = graph.read_bytes()
    steps = [("create_entities", {"entities": [{"name": "leak", "entityType": "t", "observations": ["x"]}]}),
             ("add_observations", {"observations": [{"entityName": "drygate", "contents": ["y"]}]}),
             ("delete_entities", {"entityNames": ["drygate"]})]
    for result in run(calls, project.relay(memory_server, "dry", RUN), steps):
        assert_not_executed(result)
    assert graph.read_bytes() == before
    assert plan_tools(project) == [f"mcp__memory__{t}" for t, _ in steps]


def test_dry_git_writes_leave_the_repository_unchanged(git_server, project):
    repo = git_server.paths["repo"]
    project.policy("dry")
    before = git_snapshot(repo)
    steps = [("git_add", {"repo_path": str(repo), "files": ["new.txt"]}),
             ("git_commit", {"repo_path": str(repo), "message": "leak"}),
             ("git_create_branch", {"repo_path": str(repo), "branch_name": "leak"})]
    for result in run(calls, project.relay(git_server, "dry", RUN), steps):
        assert_not_executed(result)
    assert git_snapshot(repo) == before
    assert plan_tools(project) == [f"mcp__git__{t}" for t, _ in steps]


def test_dry_store_put_leaves_objects_unchanged(store_server, project):
    objects, db = store_server.paths["objects"], store_server.paths["db"]
    project.policy("dry")
    db_before = db.read_bytes()
    steps = [("put_object", {"bucket": "b", "key": "k.txt", "body": "data"}),
             ("query", {"sql": "INSERT INTO files VALUES ('k.txt', 'e')"})]
    results = run(calls, project.relay(store_server, "dry", RUN), steps, True)
    for result in results:
        assert_not_executed(result)
    # put_object has an outputSchema (the client listed it): the skipped result lists its outputs as unknown
    assert "result" in results[0]["_meta"]["drygate"].get("unknown_outputs", []), results[0]["_meta"]
    assert list(objects.iterdir()) == []
    assert db.read_bytes() == db_before
    assert plan_tools(project) == ["mcp__store__put_object", "mcp__store__query"]


def test_live_mode_executes_for_real(fs_server, store_server, project):
    """The control for the dry tests: the same calls in live mode do change the world."""
    root = fs_server.paths["root"]
    project.policy("live")
    [result] = run(calls, project.relay(fs_server, "live", RUN),
                   [("write_file", {"path": str(root / "new.txt"), "content": "x"})])
    assert result["isError"] is False and (root / "new.txt").read_text() == "x"
    [result] = run(calls, project.relay(store_server, "live", RUN),
                   [("put_object", {"bucket": "b", "key": "k.txt", "body": "data"})])
    assert result["isError"] is False, result
    assert (store_server.paths["objects"] / "b" / "k.txt").read_text() == "data"
    assert project.plan(RUN)["steps"] == []
    assert [w["tool_name"] for w in project.plan(RUN)["executed_writes"]] == [
        "mcp__filesystem__write_file", "mcp__store__put_object"]


# --------------------------------------------------------------------------------------
# sticky


STICKY_FS = '''
[[rules]]
tool = "mcp__filesystem__write_file"
effect = "write"
dry = true
reason = "file writes are rehearsed first"

[[rules]]
tool_glob = "mcp__filesystem__create_*"
effect = "write"

[[rules]]
tool = "mcp__filesystem__read_text_file"
effect = "read"

[[rules]]
tool_glob = "mcp__memory__*"
effect = "write"
'''


def test_sticky_one_dry_write_makes_later_writes_dry_reads_pass(fs_server, memory_server, project):
    root = fs_server.paths["root"]
    graph = memory_server.paths["graph"]
    project.policy("sticky", STICKY_FS)
    graph_before = graph.read_bytes()
    results = run(calls, project.relay(fs_server, None, RUN), [
        ("create_directory", {"path": str(root / "live1")}),                  # live: runs
        ("write_file", {"path": str(root / "new.txt"), "content": "x"}),     # dry rule: run goes dry
        ("create_directory", {"path": str(root / "live2")}),                  # dry now
        ("read_text_file", {"path": str(root / "hello.txt")}),                # reads still pass
    ])
    assert results[0]["isError"] is False and (root / "live1").is_dir()
    assert_not_executed(results[1])
    assert_not_executed(results[2])
    assert not (root / "new.txt").exists() and not (root / "live2").exists()
    assert results[3]["isError"] is False and results[3]["content"][0]["text"] == "hello, world\nsecond line\n"
    # stickiness crosses relays (another server, another process) in the same run
    [mem] = run(calls, project.relay(memory_server, None, RUN),
                [("create_entities", {"entities": [{"name": "leak", "entityType": "t", "observations": []}]})])
    assert_not_executed(mem)
    assert graph.read_bytes() == graph_before
    plan = project.plan(RUN)
    assert [s["tool_name"] for s in plan["steps"]] == [
        "mcp__filesystem__write_file", "mcp__filesystem__create_directory", "mcp__memory__create_entities"]
    assert plan["steps"][0]["made_run_dry"] is True
    assert [w["tool_name"] for w in plan["executed_writes"]] == ["mcp__filesystem__create_directory"]
    [state] = [r for r in project.runs() if r["run_id"] == RUN]
    assert state["dry_since"]


def test_without_run_id_the_relays_of_one_client_process_are_one_run(fs_server, project):
    """A run is the agent, not the connection (tests/relay/test_run_identity.py has the rest)."""
    root = fs_server.paths["root"]
    project.policy("sticky", STICKY_FS)
    run(calls, project.relay(fs_server), [("write_file", {"path": str(root / "a.txt"), "content": "x"})])
    [second] = run(calls, project.relay(fs_server), [("create_directory", {"path": str(root / "d")})])
    assert_not_executed(second, run_id=None)  # the same client: the sticky run that went dry stays dry
    assert not (root / "d").exists() and not (root / "a.txt").exists()
    assert len(project.runs()) == 1


# --------------------------------------------------------------------------------------
# trusted annotations


FS_READ_ONLY = ["read_text_file", "list_directory", "directory_tree", "get_file_info", "search_files",
                "list_allowed_directories"]


def fs_read_calls(root):
    return [("read_text_file", {"path": str(root / "hello.txt")}),
            ("list_directory", {"path": str(root)}),
            ("directory_tree", {"path": str(root)}),
            ("get_file_info", {"path": str(root / "hello.txt")}),
            ("search_files", {"path": str(root), "pattern": "*.md"}),
            ("list_allowed_directories", {})]


def test_trusted_server_read_only_annotations_pass_in_dry_mode(fs_server, project):
    root = fs_server.paths["root"]
    project.policy("sticky", extra='[mcp]\ntrusted_servers = ["filesystem"]\n')
    steps = fs_read_calls(root) + [("write_file", {"path": str(root / "new.txt"), "content": "x"})]
    direct = run(calls, fs_server.direct(), fs_read_calls(root))
    relayed = run(calls, project.relay(fs_server, "dry", RUN), steps, True)  # a client lists tools first
    for d, r in zip(direct, relayed):
        assert r["isError"] is False, r
        assert r["content"] == d["content"]
    assert_not_executed(relayed[-1])  # trusted, but write_file is not read-only
    assert not (root / "new.txt").exists()
    assert plan_tools(project) == ["mcp__filesystem__write_file"]


def test_trusted_annotations_apply_without_a_client_tools_list(fs_server, project):
    """A client may call a tool without listing first (a cached listing, a reconnect): the relay
    must still know the trusted server's annotations (by listing the downstream itself)."""
    root = fs_server.paths["root"]
    project.policy("sticky", extra='[mcp]\ntrusted_servers = ["filesystem"]\n')
    [result] = run(calls, project.relay(fs_server, "dry", RUN), fs_read_calls(root)[:1])
    assert result["isError"] is False, result
    assert result["content"][0]["text"] == "hello, world\nsecond line\n"


def test_untrusted_server_unclassified_read_is_dry(fs_server, memory_server, store_server, project):
    root = fs_server.paths["root"]
    # filesystem is not trusted here; memory is not either (only an unrelated server is)
    project.policy("sticky", extra='[mcp]\ntrusted_servers = ["other"]\n')
    for result in run(calls, project.relay(fs_server, "dry", RUN), fs_read_calls(root)[:2]):
        assert_not_executed(result)
    [mem] = run(calls, project.relay(memory_server, "dry", RUN), [("read_graph", {})])
    assert_not_executed(mem)
    [store] = run(calls, project.relay(store_server, "dry", RUN), [("query", {"sql": "SELECT 1"})])
    assert_not_executed(store)
    assert plan_tools(project) == ["mcp__filesystem__read_text_file", "mcp__filesystem__list_directory",
                                   "mcp__memory__read_graph", "mcp__store__query"]


def test_trust_is_per_server_name_not_per_annotation(fs_server, project):
    """Trusting "filesystem" does not trust the same server run under another name."""
    root = fs_server.paths["root"]
    project.policy("sticky", extra='[mcp]\ntrusted_servers = ["filesystem"]\n')
    fs_server.name = "fs2"
    [result] = run(calls, project.relay(fs_server, "dry", RUN), fs_read_calls(root)[:1])
    assert_not_executed(result)
    assert plan_tools(project) == ["mcp__fs2__read_text_file"]


# --------------------------------------------------------------------------------------
# faults


FLAKY_LIVE = '[[rules]]\ntool_glob = "mcp__flaky__*"\neffect = "read"\n'


def restarted(server):
    """True once a second server process has been started and initialized."""
    log = flaky_log(server)
    pids = list(dict.fromkeys(e["pid"] for e in log))
    return len(pids) >= 2 and any(e["pid"] == pids[-1] and e["event"] == "initialize" for e in log)


async def _crash_then_echo(params, server, wait_for_restart):
    async with Client(params, cache=None) as client:
        first = await client.call_tool("echo", {"text": "one"})
        t0 = time.monotonic()
        with pytest.raises(MCPError):
            await client.call_tool("crash", {})
        crash_s = time.monotonic() - t0
        if wait_for_restart:
            while not restarted(server):
                await anyio.sleep(0.05)
        second = await client.call_tool("echo", {"text": "two"})
        return dump(first), crash_s, dump(second)


@pytest.mark.parametrize("wait_for_restart", [True, False], ids=["after-restart", "immediately"])
def test_downstream_dies_mid_call_error_then_restart(flaky_server, project, wait_for_restart):
    """The pending call gets an error (no hang); the next call works once the server is back
    ("immediately": the client's very next call, sent while the relay restarts the server,
    is held until the server is back instead of failing)."""
    project.policy("live", FLAKY_LIVE)
    first, crash_s, second = run(_crash_then_echo, project.relay(flaky_server, "live", RUN), flaky_server,
                                 wait_for_restart, timeout=30)
    assert first["content"][0]["text"] == "one"
    assert second["content"][0]["text"] == "two", second
    assert crash_s < 10
    log = flaky_log(flaky_server)
    pids = list(dict.fromkeys(e["pid"] for e in log))
    assert len(pids) == 2, log  # restarted once
    after = [e["event"] for e in log if e["pid"] == pids[1]]
    # the restarted server is initialized before it is called (handshake replayed)
    assert after[:2] == ["start", "initialize"], after
    assert after.index("tools/call") > after.index("initialize")
    # Every read is journaled: echo with its result (journaled with its answer), the crash
    # (its server never answered) as a call without one.
    from drygate.state.sqlite import SQLiteStore

    store = SQLiteStore(project.state)
    try:
        journal = [e for e in store.journal(RUN) if not (e["tool_name"] or "").startswith("drygate/")]
    finally:
        store.close()
    calls = [(e["tool_name"], e["action"]) for e in journal if e["kind"] == "call"]
    assert calls == [("mcp__flaky__echo", "allow"), ("mcp__flaky__crash", "allow"), ("mcp__flaky__echo", "allow")]
    answered = {e["call_id"] for e in journal if e["kind"] == "result"}
    crash = next(e for e in journal if e["tool_name"] == "mcp__flaky__crash")
    assert crash["call_id"] not in answered and len(answered) == 2


async def _hang_killed_then_echo(params, server):
    async with Client(params, cache=None) as client:
        await client.call_tool("echo", {"text": "one"})

        async def kill_when_called():
            while True:
                log = flaky_log(server)
                hung = [e for e in log if e.get("tool") == "hang"]
                if hung:
                    os.kill(hung[0]["pid"], signal.SIGKILL)
                    return
                await anyio.sleep(0.05)

        async with anyio.create_task_group() as tg:
            tg.start_soon(kill_when_called)
            with pytest.raises(MCPError):
                await client.call_tool("hang", {})
        while not restarted(server):
            await anyio.sleep(0.05)
        return dump(await client.call_tool("echo", {"text": "after"}))


def test_downstream_killed_from_outside_pending_call_gets_error(flaky_server, project):
    project.policy("live", FLAKY_LIVE)
    after = run(_hang_killed_then_echo, project.relay(flaky_server, "live", RUN), flaky_server, timeout=30)
    assert after["content"][0]["text"] == "after"


def meta_of(result):
    return result["_meta"]["drygate"]


def test_state_store_locked_blocks_writes_withholds_reads_and_alerts(fs_server, project):
    root = fs_server.paths["root"]
    project.policy("live", read_rules("filesystem", "list_allowed_directories"), deadline_ms=500)

    async def scenario(params):
        async with Client(params, cache=None) as client:
            ok = dump(await client.call_tool("list_allowed_directories", {}))  # creates the state store
            with sqlite_exclusive_lock(project.state):
                t0 = time.monotonic()
                blocked = dump(await client.call_tool("write_file", {"path": str(root / "new.txt"),
                                                                     "content": "x"}))
                blocked_s = time.monotonic() - t0
                blocked_read = dump(await client.call_tool("list_allowed_directories", {}))
            after = dump(await client.call_tool("write_file", {"path": str(root / "after.txt"), "content": "y"}))
            return ok, blocked, blocked_s, blocked_read, after

    ok, blocked, blocked_s, blocked_read, after = run(scenario, project.relay(fs_server, "live", RUN))
    assert ok["isError"] is False
    assert project.state.exists()
    for result in (blocked, blocked_read):
        assert result["isError"] is True, result
        assert meta_of(result).get("guard_failure") is True, result
    assert meta_of(blocked)["executed"] is False
    # The read is journaled with its answer (Engine.decide_read): it ran, but the store could not
    # take it, so its result is withheld from the agent (fail closed), never passed on unjournaled.
    assert meta_of(blocked_read)["executed"] is True and meta_of(blocked_read)["withheld"] is True
    assert str(root) not in json.dumps(blocked_read["content"])
    assert not (root / "new.txt").exists()
    assert blocked_s < 5, blocked_s
    alerts = [a for a in project.alert_lines() if a.get("kind") == "guard_failure"]
    assert len(alerts) >= 2, project.alert_lines()
    # once the store is back, the gate works again (live: the write runs)
    assert after["isError"] is False and (root / "after.txt").read_text() == "y"


def test_malformed_json_from_client_parse_error_and_keeps_serving(fs_server, project, raw_peers):
    project.policy("dry", read_rules("filesystem", "read_text_file"))
    relay = raw_peers(project.relay_argv(fs_server), project.relay_env(fs_server, "dry", RUN))
    relay.initialize()
    relay.send_raw(b'{"jsonrpc": "2.0", "id": 99, "method": "tools/list", \n')
    reply = relay.recv()
    assert reply.get("error", {}).get("code") == -32700, reply
    assert reply.get("id") is None, reply
    relay.send_raw(b"[1, 2\n")
    assert relay.recv().get("error", {}).get("code") == -32700
    listed = relay.request("tools/list", {})
    assert len(listed["result"]["tools"]) == 14
    read = relay.request("tools/call", {"name": "read_text_file",
                                        "arguments": {"path": str(fs_server.paths["root"] / "hello.txt")}})
    assert read["result"]["content"][0]["text"] == "hello, world\nsecond line\n"
    assert relay.proc.poll() is None


def test_non_json_line_from_downstream_does_not_end_the_session(flaky_server, project):
    project.policy("live", FLAKY_LIVE)
    results = run(calls, project.relay(flaky_server, "live", RUN),
                  [("garbage", {}), ("echo", {"text": "still here"})])
    assert results[-1]["content"][0]["text"] == "still here", results


def test_huge_result_passes(fs_server, project):
    root = fs_server.paths["root"]
    big = ("0123456789abcdef" * 64 + "\n") * (10 * 1024 * 1024 // 1025)
    (root / "big.txt").write_text(big, encoding="utf-8")
    assert len(big) >= 10 * 1000 * 1000
    project.policy("dry", read_rules("filesystem", "read_text_file"))
    [result] = run(calls, project.relay(fs_server, "dry", RUN),
                   [("read_text_file", {"path": str(root / "big.txt")})])
    assert result["isError"] is False
    assert result["content"][0]["text"] == big


def test_huge_request_and_result_raw(flaky_server, project, raw_peers):
    project.policy("live", FLAKY_LIVE)
    relay = raw_peers(project.relay_argv(flaky_server), project.relay_env(flaky_server, "live", RUN))
    relay.initialize()
    text = "y" * (10 * 1024 * 1024)
    echoed = relay.request("tools/call", {"name": "echo", "arguments": {"text": text}}, timeout=60)
    assert echoed["result"]["content"][0]["text"] == text
    big = relay.request("tools/call", {"name": "big", "arguments": {"size": 10 * 1024 * 1024}}, timeout=60)
    assert len(big["result"]["content"][0]["text"]) == 10 * 1024 * 1024


def test_tool_never_listed_is_decided(fs_server, flaky_server, project, tmp_path):
    project.policy("dry")
    [result] = run(calls, project.relay(fs_server, "dry", RUN), [("delete_everything", {"path": "/"})])
    assert_not_executed(result)
    assert plan_tools(project) == ["mcp__filesystem__delete_everything"]
    # a real write through a tool the client never listed: not forwarded
    target = tmp_path / "touched"

    async def unlisted(params):
        async with Client(params, cache=None) as client:  # connects, never calls tools/list
            return dump(await client.call_tool("touch", {"path": str(target)}))

    assert_not_executed(run(unlisted, project.relay(flaky_server, "dry", RUN)))
    assert not target.exists()
    assert "touch" not in [e.get("tool") for e in flaky_log(flaky_server)]


def test_dry_call_is_never_seen_by_the_downstream(flaky_server, project, tmp_path):
    target = tmp_path / "touched"
    project.policy("dry")
    results = run(calls, project.relay(flaky_server, "dry", RUN),
                  [("touch", {"path": str(target)}), ("echo", {"text": "x"})])
    for result in results:
        assert_not_executed(result)
    assert not target.exists()
    assert [e for e in flaky_log(flaky_server) if e["event"] == "tools/call"] == []


def test_many_parallel_calls_through_one_relay(fs_server, project):
    """Concurrent calls on one connection: each gets its own answer, dry writes never leak."""
    root = fs_server.paths["root"]
    project.policy("sticky", STICKY_FS)

    async def scenario(params):
        results = {}
        async with Client(params, cache=None) as client:
            await client.call_tool("write_file", {"path": str(root / "first.txt"), "content": "x"})  # goes dry

            async def one(i):
                if i % 2:
                    results[i] = dump(await client.call_tool("read_text_file", {"path": str(root / "hello.txt")}))
                else:
                    results[i] = dump(await client.call_tool("create_directory", {"path": str(root / f"par{i}")}))
            async with anyio.create_task_group() as tg:
                for i in range(40):
                    tg.start_soon(one, i)
        return results

    results = run(scenario, project.relay(fs_server, "dry", RUN))
    for i, result in results.items():
        if i % 2:
            assert result["content"][0]["text"] == "hello, world\nsecond line\n"
        else:
            assert_not_executed(result)
    assert not any(root.glob("par*")) and not (root / "first.txt").exists()
    assert len(project.plan(RUN)["steps"]) == 21


def test_relay_exits_when_client_closes(fs_server, project, raw_peers):
    project.policy("dry")
    relay = raw_peers(project.relay_argv(fs_server), project.relay_env(fs_server, "dry", RUN))
    relay.initialize()
    relay.proc.stdin.close()
    assert wait_for(lambda: relay.proc.poll() is not None, timeout=10), "relay still running after stdin EOF"


# --------------------------------------------------------------------------------------
# one run shared with the Claude Code hook


def test_relay_and_hook_of_one_session_share_one_run(fs_server, project):
    """The hook makes the session's run dry; the relay started by the same session (which
    only knows CLAUDE_CODE_SESSION_ID) sees the run dry and skips its writes."""
    import subprocess

    from .conftest import DRYGATE, clean_env

    root = fs_server.paths["root"]
    session = "9d0c1e2f-3a4b-4c5d-8e6f-708192a3b4c5"
    project.policy("sticky", STICKY_FS + '\n[[rules]]\ntool = "Write"\neffect = "write"\ndry = true\n')
    from drygate.integrity import initialize_store

    initialize_store(str(project.state))  # as `drygate init` does: the hook never creates a store
    event = {"session_id": session, "transcript_path": f"/tmp/{session}.jsonl", "cwd": str(project.root),
             "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": "Write",
             "tool_input": {"file_path": str(root / "by-hook.txt"), "content": "x"}, "tool_use_id": "toolu_1"}
    hook = subprocess.run([*DRYGATE, "hook", "claude-code", "--project", str(project.root)],
                          input=json.dumps(event).encode(), capture_output=True, timeout=60,
                          env=clean_env({"CLAUDE_PROJECT_DIR": str(project.root),
                                         "DRYGATE_STATE": str(project.state)}))
    assert hook.returncode in (0, 2), hook.stderr
    params = project.relay(fs_server)
    params.env["CLAUDE_CODE_SESSION_ID"] = session
    [result] = run(calls, params, [("create_directory", {"path": str(root / "by-relay")})])
    assert_not_executed(result, run_id=session)
    assert not (root / "by-relay").exists()
    assert plan_tools(project, session) == ["Write", "mcp__filesystem__create_directory"]
