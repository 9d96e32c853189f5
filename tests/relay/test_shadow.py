"""Shadow servers (`drygate mcp --shadow PATH`): a dry run's calls go to a second instance of the
real server on the run's own copy of its state, so the run reads its own writes.

Real parts only: the npm filesystem and memory servers, the git server, the SQLite-backed
store server (examples/incident/store_server.py), the MCP Python SDK client and raw JSON-RPC
peers. Every test checks the real state byte for byte, and compares the simulated results
with a live run of the same steps on a plain copy of the state.
"""

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from .conftest import DRYGATE, Server, git_snapshot, tree_snapshot, wait_for

RUN = "shadow-run"
CALL_TIMEOUT = 90
TRUSTED = '[mcp]\ntrusted_servers = ["filesystem", "memory", "git"]\n'
STORE_RULES = ('[[rules]]\ntool = "mcp__store__query"\ninput_regex = { sql = "^\\\\s*(?i:select)\\\\b" }\n'
               'effect = "read"\n\n[[rules]]\ntool = "mcp__store__query"\neffect = "write"\n\n'
               '[[rules]]\ntool = "mcp__store__put_object"\neffect = "write"\n')


def run(fn, *args, timeout=CALL_TIMEOUT):
    async def main():
        with anyio.fail_after(timeout):
            return await fn(*args)
    return anyio.run(main)


def dump(model):
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def shadow_params(project, server, paths, mode="dry", run_id=RUN, max_mb=None, cwd=None):
    """StdioServerParameters of `drygate mcp --shadow ...` in front of ``server``."""
    argv = [*DRYGATE, "mcp", "--name", server.name, "--project", str(project.root)]
    for p in paths:
        argv += ["--shadow", str(p)]
    if max_mb is not None:
        argv += ["--shadow-max-mb", str(max_mb)]
    argv += ["--", *server.argv]
    return StdioServerParameters(command=argv[0], args=argv[1:], env=project.relay_env(server, mode, run_id),
                                 cwd=str(cwd) if cwd else None)


async def calls(params, steps):
    """Connect, list tools, run ``steps`` [(tool, args)] in order; the dumped results."""
    out = []
    async with Client(params, cache=None) as client:
        await client.list_tools()
        for tool, args in steps:
            out.append(dump(await client.call_tool(tool, args)))
    return out


def unmarked(result):
    """A simulated result without drygate's marking: the server's own answer."""
    result = dict(result)
    content = list(result.get("content") or [])
    if content and content[-1].get("type") == "text" and (
            content[-1]["text"].startswith("DRY RUN - SIMULATED") or content[-1]["text"].startswith("drygate DRY RUN")):
        content.pop()
    result["content"] = content
    meta = dict(result.get("_meta") or {})
    meta.pop("drygate", None)
    if meta:
        result["_meta"] = meta
    else:
        result.pop("_meta", None)
    return result


def assert_simulated(result, decision, run_id=RUN):
    meta = result["_meta"]["drygate"]
    assert meta["simulated"] is True and meta["executed"] is False, meta
    assert meta["served_by"] == "shadow" and meta["decision"] == decision and meta["run_id"] == run_id, meta
    assert set(meta["unproven"]) == {"capacity", "permissions", "other_writers", "eventual_consistency"}
    note = result["content"][-1]["text"]
    if decision == "dry":
        assert note.startswith("DRY RUN - SIMULATED, NOT EXECUTED on the real system"), note
        assert meta["reference"] == f"drygate:ref:{meta['call']}"
    else:
        assert note.startswith("drygate DRY RUN: this read was served by a private copy"), note


def relocate(value, src, dst):
    """``value`` (JSON) with the path ``src`` written as ``dst`` (to compare a copy's results with the real's)."""
    return json.loads(json.dumps(value).replace(json.dumps(str(src))[1:-1], json.dumps(str(dst))[1:-1]))


def copy_server(server, tmp_path, key):
    """The same server on a plain copy of its state (a live run on a copy is the reference)."""
    src = server.paths[key]
    dst = tmp_path / f"live-copy-{src.name}"
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True)
    else:
        shutil.copy2(src, dst)
    argv = [str(dst) if a == str(src) else a for a in server.argv]
    env = {k: (str(dst) if v == str(src) else v) for k, v in server.env.items()}
    return Server(server.name, argv, env, {key: dst}), dst


def shadow_dirs(project):
    root = project.root / ".drygate" / "mcp-shadows"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def shadow_events(project, run_id=RUN, server=None):
    journal = json.loads(project.cli("plan", run_id, "--json").stdout)
    return journal.get("simulation")


# --------------------------------------------------------------------------------------
# read-modify-write: the loop that never ends under naive dry-run


async def counter_loop(params, target, max_steps=12):
    """A read-modify-write agent: read the counter's observations, add one, re-read, stop at ``target``.

    Returns the steps as [("read", count) | ("write", isError)]."""
    steps = []
    async with Client(params, cache=None) as client:
        await client.list_tools()
        for _ in range(max_steps):
            result = dump(await client.call_tool("open_nodes", {"names": ["counter"]}))
            count = len(result["structuredContent"]["entities"][0]["observations"])
            steps.append(("read", count))
            if count >= target:
                break
            write = dump(await client.call_tool("add_observations", {"observations": [
                {"entityName": "counter", "contents": [f"tick {count + 1}"]}]}))
            steps.append(("write", write["isError"]))
    return steps


def test_read_modify_write_loop_terminates_like_a_live_run(memory_server, project, tmp_path):
    graph = memory_server.paths["graph"]
    graph.write_text(json.dumps({"type": "entity", "name": "counter", "entityType": "counter",
                                 "observations": ["tick 1"]}) + "\n", encoding="utf-8")
    before = graph.read_bytes()
    project.policy("live", extra=TRUSTED)
    live_server, live_graph = copy_server(memory_server, tmp_path, "graph")
    live = run(counter_loop, project.relay(live_server, "live", "live-run"), 4)
    assert live == [("read", 1), ("write", False), ("read", 2), ("write", False), ("read", 3), ("write", False),
                    ("read", 4)]
    assert live_graph.read_bytes() != before  # the live run really wrote (on its copy)

    # naive dry-run: the re-read never sees the write, the loop runs until its step budget
    naive = run(counter_loop, project.relay(memory_server, "dry", "naive-run"), 4)
    assert naive[-1] != ("read", 4) and len(naive) > len(live)

    dry = run(counter_loop, shadow_params(project, memory_server, [graph]), 4)
    assert dry == [(kind, (value if kind == "read" else False)) for kind, value in live]
    assert graph.read_bytes() == before  # production untouched
    steps = project.plan(RUN)["steps"]
    assert [s["tool_name"] for s in steps] == ["mcp__memory__add_observations"] * 3  # the plan is unchanged
    assert [s["input"]["observations"][0]["contents"] for s in steps] == [["tick 2"], ["tick 3"], ["tick 4"]]
    assert shadow_dirs(project) == []  # removed when the relay exited


# --------------------------------------------------------------------------------------
# create-then-list, write-then-edit, delete-then-get: equal to a live run on a copy


def fs_steps(root):
    return [
        ("write_file", {"path": f"{root}/new.txt", "content": "one\n"}),
        ("list_directory", {"path": str(root)}),
        ("edit_file", {"path": f"{root}/new.txt", "edits": [{"oldText": "one", "newText": "two"}]}),
        ("read_text_file", {"path": f"{root}/new.txt"}),
        ("create_directory", {"path": f"{root}/sub"}),
        ("write_file", {"path": f"{root}/sub/a.txt", "content": "in sub\n"}),
        ("directory_tree", {"path": str(root)}),
        ("move_file", {"source": f"{root}/hello.txt", "destination": f"{root}/docs/moved.txt"}),
        ("read_text_file", {"path": f"{root}/hello.txt"}),
        ("read_text_file", {"path": f"{root}/docs/moved.txt"}),
        ("search_files", {"path": str(root), "pattern": "*.txt"}),
        ("list_allowed_directories", {}),
    ]


def test_filesystem_through_a_shadow_equals_a_live_run_on_a_copy(fs_server, project, tmp_path):
    root = fs_server.paths["root"]
    before = tree_snapshot(root)
    project.policy("live", extra=TRUSTED)
    live_server, live_root = copy_server(fs_server, tmp_path, "root")
    live = run(calls, project.relay(live_server, "live", "live-run"), fs_steps(live_root))
    dry = run(calls, shadow_params(project, fs_server, [root]), fs_steps(root))
    assert not any(r["isError"] for r in live[:8]) and live[8]["isError"]  # hello.txt was moved away
    for step, live_result, dry_result in zip(fs_steps(root), live, dry):
        decision = "dry" if step[0] in ("write_file", "edit_file", "create_directory", "move_file") else "allow"
        assert_simulated(dry_result, decision)
        assert unmarked(dry_result) == relocate(live_result, live_root, root), step
    assert "two" in dry[3]["content"][0]["text"] and "new.txt" in dry[1]["content"][0]["text"]
    assert tree_snapshot(root) == before  # production untouched

    # another run sees none of it
    other = run(calls, shadow_params(project, fs_server, [root], run_id="other-run"),
                [("read_text_file", {"path": f"{root}/new.txt"}), ("list_directory", {"path": str(root)}),
                 ("write_file", {"path": f"{root}/other.txt", "content": "other\n"})])
    assert other[0]["isError"] and "new.txt" not in other[1]["content"][0]["text"]
    assert "hello.txt" in other[1]["content"][0]["text"]
    assert tree_snapshot(root) == before
    assert shadow_dirs(project) == []


def memory_steps():
    return [
        ("create_entities", {"entities": [{"name": "alpha", "entityType": "t", "observations": ["x"]}]}),
        ("search_nodes", {"query": "alpha"}),
        ("add_observations", {"observations": [{"entityName": "alpha", "contents": ["y"]}]}),
        ("open_nodes", {"names": ["alpha"]}),
        ("create_relations", {"relations": [{"from": "alpha", "to": "drygate", "relationType": "uses"}]}),
        ("delete_entities", {"entityNames": ["drygate"]}),
        ("open_nodes", {"names": ["drygate"]}),
        ("read_graph", {}),
    ]


def test_memory_through_a_shadow_equals_a_live_run_on_a_copy(memory_server, project, tmp_path):
    graph = memory_server.paths["graph"]
    before = graph.read_bytes()
    project.policy("live", extra=TRUSTED)
    live_server, _ = copy_server(memory_server, tmp_path, "graph")
    live = run(calls, project.relay(live_server, "live", "live-run"), memory_steps())
    dry = run(calls, shadow_params(project, memory_server, [graph]), memory_steps())
    for step, live_result, dry_result in zip(memory_steps(), live, dry):
        decision = "allow" if step[0] in ("search_nodes", "open_nodes", "read_graph") else "dry"
        assert_simulated(dry_result, decision)
        assert unmarked(dry_result) == live_result, step
    assert dry[3]["structuredContent"]["entities"][0]["observations"] == ["x", "y"]  # write-then-read
    assert dry[6]["structuredContent"]["entities"] == []  # delete-then-get
    assert graph.read_bytes() == before
    other = run(calls, shadow_params(project, memory_server, [graph], run_id="other-run"), [("read_graph", {})])
    assert [e["name"] for e in other[0]["structuredContent"]["entities"]] == ["drygate"]
    assert graph.read_bytes() == before


def test_git_repository_through_a_shadow(git_server, project):
    repo = git_server.paths["repo"]
    before = git_snapshot(repo)
    project.policy("dry", extra=TRUSTED)
    steps = [("git_add", {"repo_path": str(repo), "files": ["new.txt"]}),
             ("git_commit", {"repo_path": str(repo), "message": "made in the shadow"}),
             ("git_log", {"repo_path": str(repo)}),
             ("git_status", {"repo_path": str(repo)})]
    results = run(calls, shadow_params(project, git_server, [repo]), steps)
    for (tool, _), result in zip(steps, results):
        assert_simulated(result, "allow" if tool in ("git_log", "git_status") else "dry")
        assert result["isError"] is False, result
    log = results[2]["content"][0]["text"]
    assert "made in the shadow" in log and "initial" in log
    assert "new.txt" not in results[3]["content"][0]["text"]  # committed in the shadow
    assert str(repo) in results[3]["content"][0]["text"] or "Repository status" in results[3]["content"][0]["text"]
    assert git_snapshot(repo) == before


# --------------------------------------------------------------------------------------
# SQLite: real row counts and constraint errors


def sql_steps():
    return [
        ("query", {"sql": "INSERT INTO files VALUES ('k1', 'e1')"}),
        ("query", {"sql": "SELECT count(*) AS n FROM files"}),
        ("query", {"sql": "INSERT INTO files VALUES ('k1', 'e2')"}),  # a real UNIQUE constraint error
        ("query", {"sql": "UPDATE files SET etag = 'z'"}),
        ("query", {"sql": "DELETE FROM files WHERE key = 'existing'"}),
        ("query", {"sql": "SELECT key, etag FROM files ORDER BY key"}),
        ("put_object", {"bucket": "b", "key": "k1.txt", "body": "data"}),
    ]


def db_rows(db):
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT key, etag FROM files ORDER BY key").fetchall()
    finally:
        conn.close()


def test_sqlite_store_through_a_shadow_row_counts_and_constraint_errors_are_real(store_server, project, tmp_path):
    objects, db = store_server.paths["objects"], store_server.paths["db"]
    db_before, objects_before = db.read_bytes(), tree_snapshot(objects)
    project.policy("live", STORE_RULES)
    live_db, live_objects = tmp_path / "live.db", tmp_path / "live-objects"
    shutil.copy2(db, live_db)
    live_objects.mkdir()
    live_server = Server("store", store_server.argv, {"STORE_DIR": str(live_objects), "STORE_DB": str(live_db)})
    live = run(calls, project.relay(live_server, "live", "live-run"), sql_steps())
    dry = run(calls, shadow_params(project, store_server, [db, objects]), sql_steps())
    for step, live_result, dry_result in zip(sql_steps(), live, dry):
        assert_simulated(dry_result, "allow" if step[1].get("sql", "").startswith("SELECT") else "dry")
        assert unmarked(dry_result) == live_result, step
    texts = [r["content"][0]["text"] for r in dry]
    assert json.loads(texts[0])["rowcount"] == 1 and json.loads(texts[1])["rows"] == [{"n": 2}]
    assert dry[2]["isError"]  # the constraint error (this server does not show its text, live neither)
    assert json.loads(texts[3])["rowcount"] == 2 and json.loads(texts[4])["rowcount"] == 1
    assert json.loads(texts[5])["rows"] == [{"key": "k1", "etag": "z"}]
    assert db.read_bytes() == db_before and tree_snapshot(objects) == objects_before
    assert db_rows(db) == [("existing", "abc")]
    # the plan holds the writes, the basis the read made before the first simulated write... none here
    plan = project.plan(RUN)
    assert [s["input"] for s in plan["steps"]] == [args for tool, args in sql_steps()
                                                    if not args.get("sql", "").startswith("SELECT")]


def test_a_live_sqlite_database_is_copied_consistently(store_server, project):
    """WAL mode, and another process in the middle of a write transaction when the run goes dry:
    the shadow holds exactly the committed rows, and the real writer is never blocked or changed."""
    db = store_server.paths["db"]
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    project.policy("dry", STORE_RULES)
    writer_code = ("import sqlite3, sys\n"
                   "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                   "c.execute('BEGIN IMMEDIATE')\n"
                   "c.execute(\"INSERT INTO files VALUES ('uncommitted', 'w')\")\n"
                   "print('ready', flush=True)\n"
                   "sys.stdin.readline()\n"
                   "c.execute('COMMIT')\n"
                   "print('committed', flush=True)\n")
    writer = subprocess.Popen([sys.executable, "-c", writer_code, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"

        async def session():
            async with Client(shadow_params(project, store_server, [db, store_server.paths["objects"]]),
                              cache=None) as client:
                await client.list_tools()
                first = dump(await client.call_tool("query", {"sql": "SELECT key FROM files ORDER BY key"}))
                writer.stdin.write("\n")
                writer.stdin.flush()
                assert await anyio.to_thread.run_sync(writer.stdout.readline) == "committed\n"
                second = dump(await client.call_tool("query", {"sql": "SELECT key FROM files ORDER BY key"}))
                insert = dump(await client.call_tool("query", {"sql": "INSERT INTO files VALUES ('dry', 'd')"}))
                third = dump(await client.call_tool("query", {"sql": "SELECT key FROM files ORDER BY key"}))
                return first, second, insert, third

        first, second, insert, third = run(session)
    finally:
        writer.stdin.close()
        writer.wait(timeout=10)
    keys = lambda r: [row["key"] for row in json.loads(r["content"][0]["text"])["rows"]]  # noqa: E731
    assert keys(first) == ["existing"] and keys(second) == ["existing"]  # the copy is the committed snapshot
    assert json.loads(insert["content"][0]["text"])["rowcount"] == 1
    assert keys(third) == ["dry", "existing"]
    assert db_rows(db) == [("existing", "abc"), ("uncommitted", "w")]  # the real writer committed; no dry row
    methods = project.plan(RUN)["simulation"]["shadows"][0]["methods"]
    assert methods.get("sqlite_backup") == 1, methods


STACK_SERVER = Path(__file__).resolve().parents[2] / "examples" / "stack" / "stack_server.py"


def stack_steps():
    return [
        ("insert_row", {"table": "items", "values": {"name": "bolt"}}),
        ("sql_query", {"sql": "SELECT count(*) AS n FROM items"}),
        ("insert_row", {"table": "items", "values": {"name": "bolt"}}),  # UNIQUE constraint, with its text
        ("update_row", {"table": "items", "id": 1, "values": {"name": "nut"}, "expected_version": 1}),
        ("update_row", {"table": "items", "id": 1, "values": {"name": "screw"}, "expected_version": 1}),  # stale
        ("sql_execute", {"sql": "DELETE FROM items WHERE name = 'washer'"}),
        ("kv_incr", {"key": "counter", "by": 2}),
        ("kv_incr", {"key": "counter"}),
        ("kv_get", {"key": "counter"}),
        ("sql_query", {"sql": "SELECT id, name, version FROM items ORDER BY id"}),
    ]


def test_stack_sqlite_through_a_shadow_preconditions_and_constraints_are_real(project, tmp_path):
    """examples/stack/stack_server.py with STACK_DB (SQL tables and the key-value fallback in one file)."""
    db = tmp_path / "stack.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, version INTEGER NOT NULL)")
    conn.execute("INSERT INTO items (name, version) VALUES ('washer', 1)")
    conn.commit()
    conn.close()
    server = Server("stack", [sys.executable, str(STACK_SERVER)], {"STACK_DB": str(db)}, {"db": db})
    live_server, _ = copy_server(server, tmp_path, "db")
    project.policy("live", extra='[mcp]\ntrusted_servers = ["stack"]\n')
    live = run(calls, project.relay(live_server, "live", "live-run"), stack_steps())
    run(calls, server.direct(), [])  # the server makes its own tables when it starts: not the run's doing
    before = db.read_bytes()
    dry = run(calls, shadow_params(project, server, [db]), stack_steps())
    for step, live_result, dry_result in zip(stack_steps(), live, dry):
        assert unmarked(dry_result) == live_result, step
    assert dry[1]["structuredContent"]["rows"] == [{"n": 2}]
    assert dry[2]["isError"] and "UNIQUE constraint failed: items.name" in dry[2]["content"][0]["text"]
    assert not dry[3]["isError"] and dry[4]["isError"] and "version mismatch" in dry[4]["content"][0]["text"]
    assert dry[8]["structuredContent"]["value"] == "3"
    assert db.read_bytes() == before
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT name FROM items").fetchall() == [("washer",)]
    conn.close()


# --------------------------------------------------------------------------------------
# isolation between runs


def test_two_dry_runs_in_parallel_see_only_their_own_writes(memory_server, project):
    graph = memory_server.paths["graph"]
    before = graph.read_bytes()
    project.policy("dry", extra=TRUSTED)
    wrote = {"a": anyio.Event(), "b": anyio.Event()}
    seen = {}

    async def agent(name, other):
        async with Client(shadow_params(project, memory_server, [graph], run_id=f"run-{name}"), cache=None) as c:
            await c.list_tools()
            await c.call_tool("create_entities", {"entities": [{"name": f"only-{name}", "entityType": "t",
                                                                "observations": [name]}]})
            await c.call_tool("add_observations", {"observations": [{"entityName": "drygate",
                                                                     "contents": [f"from {name}"]}]})
            wrote[name].set()
            await wrote[other].wait()  # both runs have written before either reads
            graph_now = dump(await c.call_tool("read_graph", {}))["structuredContent"]
            seen[name] = graph_now

    async def both():
        async with anyio.create_task_group() as tg:
            tg.start_soon(agent, "a", "b")
            tg.start_soon(agent, "b", "a")

    run(both)
    for name, other in (("a", "b"), ("b", "a")):
        entities = {e["name"]: e["observations"] for e in seen[name]["entities"]}
        assert set(entities) == {"drygate", f"only-{name}"}, entities
        assert entities["drygate"] == ["a dry-run gate", f"from {name}"]
    assert graph.read_bytes() == before
    assert shadow_dirs(project) == []


def test_one_run_through_two_connections_shares_its_shadow(memory_server, project):
    """Two relays of the same run (two connections) see each other's writes, as two live servers would."""
    graph = memory_server.paths["graph"]
    before = graph.read_bytes()
    project.policy("dry", extra=TRUSTED)

    async def session():
        params = shadow_params(project, memory_server, [graph])
        async with Client(params, cache=None) as a, Client(params, cache=None) as b:
            await a.list_tools()
            await b.list_tools()
            await a.call_tool("create_entities", {"entities": [{"name": "from-a", "entityType": "t",
                                                                "observations": []}]})
            seen = dump(await b.call_tool("read_graph", {}))["structuredContent"]
            dirs_open = shadow_dirs(project)
        return seen, dirs_open

    seen, dirs_open = run(session)
    assert {e["name"] for e in seen["entities"]} == {"drygate", "from-a"}
    assert len(dirs_open) == 1
    assert graph.read_bytes() == before
    assert wait_for(lambda: shadow_dirs(project) == []), shadow_dirs(project)
    shadows = project.plan(RUN)["simulation"]["shadows"]
    assert shadows[0]["joined"] is True  # the second relay joined the first one's copy


# --------------------------------------------------------------------------------------
# limits, fallback, cleanup


def test_state_over_the_limit_falls_back_to_plain_dry_results_and_says_so(memory_server, project):
    graph = memory_server.paths["graph"]
    graph.write_text(json.dumps({"type": "entity", "name": "drygate", "entityType": "project",
                                 "observations": ["x" * 2000]}) + "\n", encoding="utf-8")
    before = graph.read_bytes()
    project.policy("dry", extra=TRUSTED)
    steps = [("add_observations", {"observations": [{"entityName": "drygate", "contents": ["y"]}]}),
             ("open_nodes", {"names": ["drygate"]})]
    write, read = run(calls, shadow_params(project, memory_server, [graph], max_mb=0.001), steps)
    assert write["isError"] is True and "structuredContent" not in write  # the plain, honest dry result
    text = write["content"][0]["text"]
    assert "NOT EXECUTED" in text and "No read-your-writes in this run" in text and "shadow limit" in text, text
    meta = write["_meta"]["drygate"]
    assert meta["executed"] is False and meta["simulated"] is False and meta["read_your_writes"] is False
    assert "shadow limit" in meta["shadow"]["fallback"]
    # the read comes from the real server, and says what it misses
    assert read["structuredContent"]["entities"][0]["observations"] == ["x" * 2000]
    assert "does NOT show run" in read["content"][-1]["text"]
    assert read["_meta"]["drygate"]["read_your_writes"] is False
    assert graph.read_bytes() == before
    simulation = project.plan(RUN)["simulation"]
    assert simulation["read_your_writes"] is False and simulation["unproven"] == {}
    fallback = simulation["shadows"][0]["fallback"]
    assert fallback["code"] == "too_large" and fallback["limit"] == int(0.001 * 1048576) and fallback["bytes"] > 1000
    plan_text = project.cli("plan", RUN).stdout
    assert "no read-your-writes" in plan_text and "shadow limit" in plan_text
    assert shadow_dirs(project) == []


def test_shadows_are_removed_at_exit_and_their_size_is_journaled(memory_server, project):
    graph = memory_server.paths["graph"]
    project.policy("dry", extra=TRUSTED)

    async def session():
        async with Client(shadow_params(project, memory_server, [graph]), cache=None) as client:
            await client.list_tools()
            await client.call_tool("create_entities", {"entities": [{"name": "big", "entityType": "t",
                                                                     "observations": ["z" * 5000]}]})
            during = shadow_dirs(project)
            runs = project.runs()
        return during, runs

    during, runs = run(session)
    assert len(during) == 1
    [listed] = [r for r in runs if r["run_id"] == RUN]
    assert listed["shadow_bytes"] > 5000  # `drygate runs` reports the shadow's size while it exists
    assert shadow_dirs(project) == []
    [shadow] = project.plan(RUN)["simulation"]["shadows"]
    assert shadow["removed"] is True and shadow["final_bytes"] > 5000 and shadow["writes"] == 1
    assert shadow["bytes"] == len(graph.read_bytes()) and shadow["paths"] == [str(graph)]
    text = project.cli("plan", RUN).stdout
    assert "shadow" in text and "not proven" in text.lower()


def test_a_killed_relay_leaves_its_shadow_to_prune(memory_server, project, raw_peers):
    graph = memory_server.paths["graph"]
    project.policy("dry", extra=TRUSTED)
    params = shadow_params(project, memory_server, [graph])
    peer = raw_peers([params.command, *params.args], params.env)
    peer.initialize()
    result = peer.request("tools/call", {"name": "create_entities", "arguments": {"entities": [
        {"name": "left", "entityType": "t", "observations": []}]}})
    assert result["result"]["_meta"]["drygate"]["simulated"] is True
    assert len(shadow_dirs(project)) == 1
    peer.proc.send_signal(signal.SIGKILL)
    peer.proc.wait(timeout=10)
    # the shadow server was in the relay's session: it goes when its input closes
    assert len(shadow_dirs(project)) == 1
    kept = project.cli("prune", "--older-than-days", "1")
    assert len(shadow_dirs(project)) == 1, kept.stdout  # the run is not idle for a day
    pruned = project.cli("prune", "--older-than-days", "0")
    assert shadow_dirs(project) == [], pruned.stdout
    assert "shadow" in pruned.stdout


# --------------------------------------------------------------------------------------
# leak guards


def test_state_the_command_does_not_name_falls_back(memory_server, project, tmp_path):
    """A --shadow path the server's command and environment do not name: the shadow could not be
    pointed at the copy, so the run gets plain dry results (never a live write)."""
    graph = memory_server.paths["graph"]
    before = graph.read_bytes()
    elsewhere = tmp_path / "unrelated.jsonl"
    elsewhere.write_text("", encoding="utf-8")
    project.policy("dry", extra=TRUSTED)
    [write] = run(calls, shadow_params(project, memory_server, [elsewhere]),
                  [("create_entities", {"entities": [{"name": "x", "entityType": "t", "observations": []}]})])
    assert write["isError"] and "do not name" in write["_meta"]["drygate"]["shadow"]["fallback"]
    assert graph.read_bytes() == before
    assert project.plan(RUN)["simulation"]["shadows"][0]["fallback"]["code"] == "not_isolated"


def test_symbolic_link_out_of_the_state_falls_back(fs_server, project, tmp_path):
    root = fs_server.paths["root"]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("real\n", encoding="utf-8")
    os.symlink(outside, root / "link")
    before, outside_before = tree_snapshot(root), tree_snapshot(outside)
    project.policy("dry", extra=TRUSTED)
    [write] = run(calls, shadow_params(project, fs_server, [root]),
                  [("write_file", {"path": f"{root}/link/secret.txt", "content": "leak\n"})])
    assert write["isError"] and "leads outside the state" in write["content"][0]["text"]
    assert tree_snapshot(root) == before and tree_snapshot(outside) == outside_before


def test_client_roots_are_redirected_to_the_copy(fs_server, project, raw_peers):
    """A client that declares roots: the filesystem server asks for them and uses them instead of its
    command line. The shadow's request reaches the client with the relay's id, and the answer (the real
    root) reaches the shadow as the copy's root, so its writes stay on the copy."""
    root = fs_server.paths["root"]
    before = tree_snapshot(root)
    project.policy("dry", extra=TRUSTED)
    params = shadow_params(project, fs_server, [root])
    peer = raw_peers([params.command, *params.args], params.env)
    peer.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {"roots": {"listChanged": True}},
                                "clientInfo": {"name": "roots-client", "version": "0"}})
    peer.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    root_uri = root.as_uri()
    answered = []

    def call(name, arguments, rid):
        peer.send({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                   "params": {"name": name, "arguments": arguments}})
        while True:
            msg = peer.recv(timeout=30)
            if msg.get("method") == "roots/list":
                answered.append(msg["id"])
                peer.send({"jsonrpc": "2.0", "id": msg["id"], "result": {"roots": [
                    {"uri": root_uri, "name": "project"}, {"uri": "file:///", "name": "everything"}]}})
                continue
            if msg.get("id") == rid:
                return msg

    wrote = call("write_file", {"path": f"{root}/via-roots.txt", "content": "x\n"}, 101)
    assert wrote["result"]["_meta"]["drygate"]["simulated"] is True, wrote
    listed = call("list_allowed_directories", {}, 102)
    read = call("read_text_file", {"path": f"{root}/via-roots.txt"}, 103)
    assert read["result"]["content"][0]["text"] == "x\n"
    assert any(str(i).startswith("drygate-shadow-") for i in answered), answered  # the shadow asked too
    assert str(root) in listed["result"]["content"][0]["text"]
    assert ".drygate" not in json.dumps(listed)  # copy paths never reach the client
    assert tree_snapshot(root) == before


def test_a_dry_call_naming_the_real_state_relatively_is_not_simulated(store_server, project):
    db = store_server.paths["db"]
    db_before = db.read_bytes()
    project.policy("dry", STORE_RULES)
    params = shadow_params(project, store_server, [db, store_server.paths["objects"]], cwd=db.parent)
    first, second = run(calls, params, [("query", {"sql": "INSERT INTO files VALUES ('a', 'b')"}),
                                        ("query", {"sql": "ATTACH DATABASE 'meta.db' AS real"})])
    assert first["_meta"]["drygate"]["simulated"] is True
    assert second["isError"] and second["_meta"]["drygate"]["simulated"] is False
    assert "names the real state (meta.db)" in second["content"][0]["text"]
    assert db.read_bytes() == db_before


# --------------------------------------------------------------------------------------
# live and sticky runs


def test_live_run_through_a_shadow_relay_writes_for_real_and_makes_no_shadow(memory_server, project):
    graph = memory_server.paths["graph"]
    project.policy("live", extra=TRUSTED)
    [write, read] = run(calls, shadow_params(project, memory_server, [graph], mode=None),
                        [("create_entities", {"entities": [{"name": "real", "entityType": "t", "observations": []}]}),
                         ("open_nodes", {"names": ["real"]})])
    assert "drygate" not in (write.get("_meta") or {}) and "drygate" not in (read.get("_meta") or {})
    assert b'"real"' in graph.read_bytes()
    assert not (project.root / ".drygate" / "mcp-shadows").exists() or shadow_dirs(project) == []


def test_sticky_run_shadow_starts_from_the_live_writes(memory_server, project):
    """A sticky run writes live, then a dry write makes it dry: the shadow is copied then, so it holds
    the run's live writes, and the run's reads see both."""
    graph = memory_server.paths["graph"]
    rules = ('[[rules]]\ntool = "mcp__memory__delete_entities"\neffect = "write"\ndry = true\n')
    project.policy("sticky", rules, extra=TRUSTED)
    steps = [("create_entities", {"entities": [{"name": "live-one", "entityType": "t", "observations": []}]}),
             ("delete_entities", {"entityNames": ["drygate"]}),
             ("create_entities", {"entities": [{"name": "dry-one", "entityType": "t", "observations": []}]}),
             ("read_graph", {})]
    results = run(calls, shadow_params(project, memory_server, [graph], mode=None), steps)
    assert "drygate" not in (results[0].get("_meta") or {})  # live
    assert_simulated(results[1], "dry")
    assert_simulated(results[2], "dry")
    assert {e["name"] for e in results[3]["structuredContent"]["entities"]} == {"live-one", "dry-one"}
    real = graph.read_text(encoding="utf-8")
    assert "live-one" in real and "dry-one" not in real and '"drygate"' in real


# --------------------------------------------------------------------------------------
# .mcp.json: drygate install carries the shadow options


def test_install_writes_and_keeps_shadow_options(memory_server, project, tmp_path):
    from drygate.relay.install import wrap_servers

    graph = memory_server.paths["graph"]
    config = {"mcpServers": {"memory": {"command": memory_server.argv[0], "args": memory_server.argv[1:],
                                        "env": dict(memory_server.env)},
                             "web": {"type": "http", "url": "http://127.0.0.1:1/mcp"}}}
    (project.root / ".mcp.json").write_text(json.dumps(config))
    project.cli("install", "claude-code", "--mcp", "--shadow", f"memory={graph}", "--shadow-max-mb", "5")
    first = json.loads((project.root / ".mcp.json").read_text())
    args = first["mcpServers"]["memory"]["args"]
    assert args[args.index("--shadow") + 1] == str(graph) and args[args.index("--shadow-max-mb") + 1] == "5"
    assert args[args.index("--") + 1:] == memory_server.argv and "--shadow" not in first["mcpServers"]["web"]["args"]
    project.cli("install", "claude-code", "--mcp")  # a second rewrite keeps them
    assert json.loads((project.root / ".mcp.json").read_text()) == first
    relative, _, _ = wrap_servers(first, str(project.root), shadows={"memory": ["data/extra.db"]})
    args = relative["mcpServers"]["memory"]["args"]
    assert [args[i + 1] for i, a in enumerate(args) if a == "--shadow"] == [str(graph),
                                                                              str(project.root / "data/extra.db")]
    with pytest.raises(ValueError, match="over HTTP"):
        wrap_servers(config, str(project.root), shadows={"web": ["/x"]})
    with pytest.raises(ValueError, match="does not have"):
        wrap_servers(config, str(project.root), shadows={"nope": ["/x"]})
    bad = project.cli("install", "claude-code", "--mcp", "--shadow", "memory", check=False)
    assert bad.returncode == 1 and "NAME=PATH" in bad.stderr

    # the wrapped entry, started as Claude Code would start it, shadows the graph in a dry run
    entry = first["mcpServers"]["memory"]
    project.policy("dry", extra=TRUSTED)
    before = graph.read_bytes()
    params = StdioServerParameters(command=entry["command"], args=entry["args"],
                                   env=dict(project.relay_env(memory_server, "dry", RUN), **entry["env"]))
    write, read = run(calls, params, [
        ("create_entities", {"entities": [{"name": "via-install", "entityType": "t", "observations": []}]}),
        ("open_nodes", {"names": ["via-install"]})])
    assert_simulated(write, "dry")
    assert read["structuredContent"]["entities"][0]["name"] == "via-install"
    assert graph.read_bytes() == before


def test_a_terminated_relay_removes_its_shadow(memory_server, project, raw_peers):
    graph = memory_server.paths["graph"]
    project.policy("dry", extra=TRUSTED)
    params = shadow_params(project, memory_server, [graph])
    peer = raw_peers([params.command, *params.args], params.env)
    peer.initialize()
    result = peer.request("tools/call", {"name": "create_entities", "arguments": {"entities": [
        {"name": "gone", "entityType": "t", "observations": []}]}})
    assert result["result"]["_meta"]["drygate"]["simulated"] is True
    assert len(shadow_dirs(project)) == 1
    peer.proc.send_signal(signal.SIGTERM)
    assert peer.proc.wait(timeout=15) == 143
    assert shadow_dirs(project) == []
    [shadow] = project.plan(RUN)["simulation"]["shadows"]
    assert shadow["removed"] is True and shadow["writes"] == 1


@pytest.mark.parametrize("allow_network", [False, True])
def test_a_shadow_server_has_no_network(project, tmp_path, allow_network):
    """A server whose state is not only local (here an object store reached over TCP) writes to that
    service for real when it runs the call: the shadow runs in a network namespace of its own, so a
    dry put through it never connects. --shadow-allow-network shows what that guard prevents."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    connections = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            connections.append(conn.recv(65536))
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    db = tmp_path / "stack.db"
    sqlite3.connect(db).close()
    env = {"STACK_DB": str(db), "STACK_S3_URL": f"http://127.0.0.1:{listener.getsockname()[1]}",
           "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}
    server = Server("stack", [sys.executable, str(STACK_SERVER)], env, {"db": db})
    project.policy("dry", extra='[mcp]\ntrusted_servers = ["stack"]\n')
    params = shadow_params(project, server, [db])
    if allow_network:
        split = params.args.index("--")
        params = StdioServerParameters(command=params.command, env=params.env, args=[
            *params.args[:split], "--shadow-allow-network", *params.args[split:]])
    try:
        [put, count] = run(calls, params, [("put_object", {"bucket": "b", "key": "k", "body": "x"}),
                                           ("sql_query", {"sql": "SELECT 1 AS one"})])
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
    assert_simulated(put, "dry")
    assert put["isError"] is True  # the object store could not be reached from the shadow
    assert count["structuredContent"]["rows"] == [{"one": 1}]
    if allow_network:
        assert connections and b"PUT /b/k" in connections[0]  # what the namespace prevents
    else:
        assert connections == []
