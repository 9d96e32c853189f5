"""Store overlays with real parts (issue 7): the real relay (``drygate mcp``) in front of the real
stack server (examples/stack), a real moto S3 server, a real redis-server and SQLite files.

A dry run's object-store and key-value calls are answered by the run's overlays (policy
``[[overlays]]``), so the run reads its own writes; every result is compared with a live run of
the same steps on a fresh bucket (and a fresh key-value prefix or a copy of the SQLite file),
and the real stores are checked directly (boto3, redis-py, sqlite3) to be unchanged.
"""

import hashlib
import json
import re
import shutil
import subprocess
import sys

import anyio
import pytest
from mcp import Client
from relay.conftest import DRYGATE, Project, Server, clean_env

from .conftest import STACK, STACK_SERVER, make_stack

CALL_TIMEOUT = 120
OVERLAYS = '''
[[overlays]]
server = "stack"
kind = "objects"
tools = { put = "put_object", get = "get_object", head = "head_object", list = "list_objects", delete = "delete_object" }
plain_tools = ["create_bucket"]
shadow_env = { STACK_S3_URL = "http://127.0.0.1:9", AWS_ACCESS_KEY_ID = "none", AWS_SECRET_ACCESS_KEY = "none" }

[[overlays]]
server = "stack"
kind = "key-value"
tools = { get = "kv_get", set = "kv_set", delete = "kv_delete", incr = "kv_incr" }
shadow_env = { STACK_REDIS_URL = "" }
'''


def policy_text(overlays=OVERLAYS, mode="live"):
    """The stack's own policy (examples/stack/drygate.toml) with ``overlays``; runs are made dry with DRYGATE_MODE."""
    text = (STACK / "drygate.toml").read_text(encoding="utf-8").replace('mode = "sticky"', f'mode = "{mode}"')
    return text + "\n" + overlays


def setup(tmp_path, stack, overlays=OVERLAYS, name="project"):
    project = Project(tmp_path / name)
    (project.root / "drygate.toml").write_text(policy_text(overlays), encoding="utf-8")
    server = Server("stack", [sys.executable, str(STACK_SERVER)], env=clean_env(stack.env))
    return project, server


def run(fn, *args, timeout=CALL_TIMEOUT):
    async def main():
        with anyio.fail_after(timeout):
            return await fn(*args)
    return anyio.run(main)


def dump(model):
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


async def calls(params, steps, mode="auto"):
    """Connect, list tools, run ``steps`` [(tool, args)] in order; the dumped results.

    ``mode``: the client's protocol era ("auto": 2026-07-28 where the server has it, "legacy": initialize)."""
    out = []
    async with Client(params, cache=None, mode=mode) as client:
        await client.list_tools()
        for tool, args in steps:
            out.append(dump(await client.call_tool(tool, args)))
    return out


def unmarked(result):
    """A result without drygate's marking (its last text item and ``_meta["drygate"]``)."""
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


def comparable(result, stack):
    """A result with the run's own bucket written as BUCKET and times left out (live and dry differ there)."""
    result = json.loads(json.dumps(result).replace(stack.bucket, "BUCKET"))
    for item in [result.get("structuredContent") or {}]:
        item.pop("last_modified", None)
    for item in result.get("content") or []:
        if item.get("type") == "text" and item["text"].startswith("{"):
            value = json.loads(item["text"])
            if isinstance(value, dict) and "last_modified" in value:
                value.pop("last_modified")
                item["text"] = json.dumps(value, indent=2, ensure_ascii=False)
    return result


def project_journal(project, run_id):
    from drygate.state import open_store

    store = open_store(str(project.state))
    try:
        return store.journal(run_id)
    finally:
        store.close()


def assert_overlay(result, decision, run_id):
    meta = result["_meta"]["drygate"]
    assert meta["simulated"] is True and meta["served_by"] == "overlay", meta
    assert meta["decision"] == decision and meta["run_id"] == run_id, meta
    assert {"other_writers", "eventual_consistency", "capacity", "permissions"} <= set(meta["unproven"])
    note = result["content"][-1]["text"]
    if decision == "dry":
        assert meta["executed"] is False and note.startswith("DRY RUN - SIMULATED, NOT EXECUTED on the real system")
    else:
        assert note.startswith("drygate DRY RUN: this read was answered by run"), note


def bucket_state(stack, bucket=None):
    """{key: (etag, body)} of a real bucket, read with boto3 (never through the server)."""
    bucket = bucket or stack.bucket
    out = {}
    for item in stack.s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        body = stack.s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        out[item["Key"]] = (item["ETag"].strip('"'), body)
    return out


def seed(stack, bucket=None):
    bucket = bucket or stack.bucket
    stack.s3.put_object(Bucket=bucket, Key="old.txt", Body=b"old")
    stack.s3.put_object(Bucket=bucket, Key="docs/keep.txt", Body=b"keep")


def fresh_twin(stack, tmp_path, moto_url, name):
    """The same stack on a fresh bucket (and a copy of its SQLite file, and its own key-value prefix)."""
    (tmp_path / name).mkdir(parents=True, exist_ok=True)
    twin = make_stack(tmp_path / name, moto_url, stack.redis_url)
    if stack.db.exists():
        shutil.copy2(stack.db, twin.db)
    if stack.redis_url:
        twin.env["STACK_REDIS_PREFIX"] = twin.prefix = f"{name}:"
    return twin


# --------------------------------------------------------------------------------------
# objects: put-then-get/list, create-then-list, delete-then-get/list, preconditions


def object_steps(bucket):
    return [
        ("put_object", {"bucket": bucket, "key": "a.txt", "body": "hello"}),
        ("list_objects", {"bucket": bucket}),
        ("get_object", {"bucket": bucket, "key": "a.txt"}),
        ("head_object", {"bucket": bucket, "key": "a.txt"}),
        ("put_object", {"bucket": bucket, "key": "a.txt", "body": "again", "if_none_match": "*"}),  # 412, as live
        ("put_object", {"bucket": bucket, "key": "docs/new.txt", "body": "created", "if_none_match": "*"}),
        ("list_objects", {"bucket": bucket, "prefix": "docs/"}),
        ("delete_object", {"bucket": bucket, "key": "old.txt"}),
        ("get_object", {"bucket": bucket, "key": "old.txt"}),  # NoSuchKey
        ("head_object", {"bucket": bucket, "key": "old.txt"}),
        ("list_objects", {"bucket": bucket}),
        ("put_object", {"bucket": bucket, "key": "a.txt", "body": "two", "if_match": "5d41402abc4b2a76b9719d911017c592"}),
        ("put_object", {"bucket": bucket, "key": "a.txt", "body": "three", "if_match": "5d41402abc4b2a76b9719d911017c592"}),
        ("delete_object", {"bucket": bucket, "key": "docs/keep.txt", "if_match": "0" * 32}),  # 412
        ("delete_object", {"bucket": bucket, "key": "missing.txt", "if_match": "0" * 32}),  # NoSuchKey
        ("delete_object", {"bucket": bucket, "key": "missing.txt"}),  # S3 answers a delete of nothing the same way
        ("put_object", {"bucket": "drygate-no-such-bucket", "key": "k", "body": "x"}),  # NoSuchBucket
        ("put_object", {"bucket": bucket, "key": "bin", "body": "AAEC/w==", "encoding": "base64",
                        "content_type": "application/octet-stream"}),
        ("get_object", {"bucket": bucket, "key": "bin"}),
        ("get_object", {"bucket": bucket, "key": "docs/keep.txt"}),  # untouched: the real object
        ("list_objects", {"bucket": bucket}),
    ]


@pytest.mark.parametrize("era", ["auto", "legacy"])
def test_objects_read_their_own_writes_like_a_live_run(tmp_path, stack, moto_url, era):
    seed(stack)
    twin = fresh_twin(stack, tmp_path, moto_url, "live")
    seed(twin)
    seeded = bucket_state(twin)
    project, server = setup(tmp_path, stack)
    live_server = Server("stack", server.argv, env=clean_env(twin.env))
    live = run(calls, project.relay(live_server, run_id="live-run"), object_steps(twin.bucket), era)
    before = bucket_state(stack)
    dry = run(calls, project.relay(server, mode="dry", run_id="dry-run"), object_steps(stack.bucket), era)

    assert bucket_state(stack) == before == seeded  # production unchanged
    assert bucket_state(twin) != seeded  # the live run did write
    for step, live_result, dry_result in zip(object_steps("BUCKET"), live, dry):
        assert comparable(unmarked(dry_result), stack) == comparable(live_result, twin), step
    writes = {i for i, (tool, _) in enumerate(object_steps("b")) if tool in ("put_object", "delete_object")}
    for i, result in enumerate(dry):
        assert_overlay(result, "dry" if i in writes else "allow", "dry-run")
    assert [o["key"] for o in dry[10]["structuredContent"]["objects"]] == ["a.txt", "docs/keep.txt", "docs/new.txt"]
    assert "precondition failed (If-None-Match)" in dry[4]["content"][0]["text"] and dry[4]["isError"]
    assert "NoSuchKey" in dry[8]["content"][0]["text"] and dry[9]["structuredContent"]["exists"] is False
    assert dry[0]["structuredContent"]["etag"] == "5d41402abc4b2a76b9719d911017c592"  # MD5, as S3 computes it
    assert dry[19]["_meta"]["drygate"]["reflects_run_writes"] is False  # the real object, read now
    assert dry[19]["_meta"]["drygate"]["executed"] is True

    plan = project.plan("dry-run")
    assert [s["tool_name"].split("__")[-1] for s in plan["steps"]] == [
        tool for tool, _ in object_steps("b") if tool in ("put_object", "delete_object")]
    [overlay] = plan["simulation"]["overlays"]
    assert overlay["kind"] == "objects" and overlay["removed"] is True and overlay["writes"] == 6
    assert plan["simulation"]["read_your_writes"] is True
    assert "R2" in plan["simulation"]["unproven"]["eventual_consistency"]
    assert not (project.root / ".drygate" / "mcp-shadows").exists() or \
        not list((project.root / ".drygate" / "mcp-shadows").iterdir())  # removed when the relay exited


def test_the_plan_basis_holds_the_real_reads_and_apply_reproduces_the_live_run(tmp_path, stack, moto_url):
    """An agent reads, creates an object only if absent, lists, and records it: the plan applies to the same end."""
    seed(stack)
    project, server = setup(tmp_path, stack)
    (project.root / ".mcp.json").write_text(json.dumps({"mcpServers": {"stack": {
        "command": server.argv[0], "args": server.argv[1:], "env": stack.env}}}), encoding="utf-8")
    steps = [("list_objects", {"bucket": stack.bucket, "prefix": "docs/"}),
             ("put_object", {"bucket": stack.bucket, "key": "docs/report.txt", "body": "r1", "if_none_match": "*"}),
             ("list_objects", {"bucket": stack.bucket, "prefix": "docs/"}),
             ("kv_incr", {"key": "reports"}),
             ("kv_get", {"key": "reports"})]
    dry = run(calls, project.relay(server, mode="dry", run_id="basis-run"), steps)
    assert [o["key"] for o in dry[2]["structuredContent"]["objects"]] == ["docs/keep.txt", "docs/report.txt"]
    assert dry[4]["structuredContent"]["value"] == "1"
    plan_path = tmp_path / "plan.json"
    project.cli("plan", "basis-run", "--out", str(plan_path))
    plan = json.loads(plan_path.read_text())
    reads = plan["basis"]["reads"]
    # the agent's two listings (the real part of each) and the overlay's own checks for the put (is the key
    # there, is the bucket there) and for the increment (the counter) are the basis
    assert [(r["tool_name"].split("__")[-1], r["input"].get("prefix")) for r in reads] == [
        ("list_objects", "docs/"), ("head_object", None), ("list_objects", "docs/report.txt"),
        ("list_objects", "docs/"), ("kv_get", None), ("kv_get", None)]
    assert [r["repeatable"] for r in reads] == [True] * 5 + [False]  # the last read saw only the run's write
    assert reads[0]["fingerprint"] == reads[3]["fingerprint"]  # both listings saw the same real objects
    assert "not a fact about the real system" in reads[5]["why"]
    journal = {e["call_id"]: e for e in project_journal(project, "basis-run") if e.get("kind") == "call"}
    assert {e["agent_id"] for e in journal.values() if e["tool_name"] in ("mcp__stack__head_object",)} == \
        {"drygate-overlay"}
    assert bucket_state(stack).keys() == {"old.txt", "docs/keep.txt"} and stack.kv("reports") == (None, 0)
    shown = " ".join(project.cli("plan", "basis-run").stdout.split())  # rich wraps at 80 columns
    assert "simulated on the run's objects overlay objects of stack over the real store: 1 simulated write(s)" in shown
    assert "simulated on the run's key-value overlay key-value of stack" in shown and "R2" in shown
    done = subprocess.run([*DRYGATE, "apply", str(plan_path), "--project", str(project.root), "--yes"],
                          check=False, capture_output=True, text=True, timeout=120,
                          env=clean_env({"DRYGATE_STATE": str(project.state), "COLUMNS": "200"}))
    assert done.returncode == 0, done.stdout + done.stderr
    assert bucket_state(stack)["docs/report.txt"] == (hashlib.md5(b"r1").hexdigest(), b"r1")
    assert stack.kv("reports")[0] == "1"


# --------------------------------------------------------------------------------------
# key-value: a read-modify-write loop, on SQLite and on a real Redis


async def counter_loop(params, target, max_steps=12):
    """Read the counter, add one, re-read, stop at ``target``: [("read", value) | ("write", isError)]."""
    steps = []
    async with Client(params, cache=None) as client:
        await client.list_tools()
        for _ in range(max_steps):
            read = dump(await client.call_tool("kv_get", {"key": "counter"}))
            value = int(read["structuredContent"]["value"] or 0)
            steps.append(("read", value))
            if value >= target:
                break
            write = dump(await client.call_tool("kv_incr", {"key": "counter"}))
            steps.append(("write", write["isError"]))
    return steps


def kv_steps():
    return [("kv_get", {"key": "name"}),
            ("kv_set", {"key": "name", "value": "ada", "if_version": 0}),
            ("kv_set", {"key": "name", "value": "bob", "if_version": 0}),  # version mismatch, as live
            ("kv_get", {"key": "name"}),
            ("kv_delete", {"key": "name"}),
            ("kv_get", {"key": "name"}),
            ("kv_delete", {"key": "name"}),
            ("kv_set", {"key": "name", "value": "cy", "if_version": 0}),
            ("kv_incr", {"key": "name"}),  # not an integer
            ("kv_incr", {"key": "n", "by": 5}),
            ("kv_get", {"key": "n"})]


def test_kv_loop_takes_the_steps_of_a_live_run(tmp_path, kv_stack, moto_url):
    stack = kv_stack
    project, server = setup(tmp_path, stack)
    run(calls, server.direct(), [("kv_incr", {"key": "counter", "by": 2})])  # production: counter = 2
    twin = fresh_twin(stack, tmp_path, moto_url, "live")  # a copy of the SQLite file, or a fresh Redis prefix
    live_server = Server("stack", server.argv, env=clean_env(twin.env))
    if stack.redis_url:
        run(calls, live_server.direct(), [("kv_incr", {"key": "counter", "by": 2})])
    assert twin.kv("counter")[0] == "2"
    live = run(counter_loop, project.relay(live_server, run_id="live-loop"), 5)
    assert live == [("read", 2), ("write", False), ("read", 3), ("write", False), ("read", 4), ("write", False),
                    ("read", 5)]
    before = stack.kv("counter")

    # without overlays: the re-read never sees the write, the loop runs to its budget
    naive_project, _ = setup(tmp_path, stack, overlays="", name="naive")
    naive = run(counter_loop, naive_project.relay(server, mode="dry", run_id="naive-loop"), 5)
    assert naive[-1] != ("read", 5) and len(naive) > len(live)

    dry = run(counter_loop, project.relay(server, mode="dry", run_id="dry-loop"), 5)
    assert dry == live
    assert stack.kv("counter") == before == ("2", before[1])  # production unchanged
    plan = project.plan("dry-loop")
    assert [s["tool_name"] for s in plan["steps"]] == ["mcp__stack__kv_incr"] * 3  # the plan is unchanged

    live_kv = run(calls, project.relay(live_server, run_id="live-kv"), kv_steps())
    dry_kv = run(calls, project.relay(server, mode="dry", run_id="dry-kv"), kv_steps())
    for step, live_result, dry_result in zip(kv_steps(), live_kv, dry_kv):
        assert _without_versions(unmarked(dry_result)) == _without_versions(live_result), step
    assert stack.kv("name") == (None, 0) and stack.kv("n") == (None, 0)
    versions = [r["structuredContent"]["version"] for (tool, _), r in zip(kv_steps(), dry_kv)
                if tool in ("kv_set", "kv_incr") and not r["isError"]]
    assert len(versions) == 3 and versions == sorted(versions) and len(set(versions)) == len(versions)  # simulated, only growing


def _without_versions(result):
    """Versions come from the store's counter (live) or are simulated (dry): compare them as 0 / not 0."""
    result = json.loads(json.dumps(result))
    value = result.get("structuredContent")
    if isinstance(value, dict):
        for key in ("version", "previous_version"):
            if key in value:
                value[key] = bool(value[key])
        result["content"] = [{"type": "text", "text": "<json>"}]
    else:
        for item in result.get("content") or []:
            item["text"] = re.sub(r"version \d+", "version N", item["text"])
    return result


# --------------------------------------------------------------------------------------
# isolation between runs, composition with the shadow, fallback


def test_two_dry_runs_in_parallel_see_only_their_own_writes(tmp_path, stack):
    seed(stack)
    project, server = setup(tmp_path, stack)
    before = bucket_state(stack)
    wrote = {"a": anyio.Event(), "b": anyio.Event()}
    seen = {}

    async def agent(name, other):
        params = project.relay(server, mode="dry", run_id=f"run-{name}")
        async with Client(params, cache=None) as client:
            await client.list_tools()
            await client.call_tool("put_object", {"bucket": stack.bucket, "key": f"{name}.txt", "body": name})
            await client.call_tool("kv_set", {"key": "owner", "value": name})
            wrote[name].set()
            await wrote[other].wait()
            listing = dump(await client.call_tool("list_objects", {"bucket": stack.bucket}))
            owner = dump(await client.call_tool("kv_get", {"key": "owner"}))
            other_head = dump(await client.call_tool("head_object", {"bucket": stack.bucket, "key": f"{other}.txt"}))
            seen[name] = ([o["key"] for o in listing["structuredContent"]["objects"]],
                          owner["structuredContent"]["value"], other_head["structuredContent"]["exists"])

    async def both():
        async with anyio.create_task_group() as tg:
            tg.start_soon(agent, "a", "b")
            tg.start_soon(agent, "b", "a")

    run(both)
    assert seen["a"] == (["a.txt", "docs/keep.txt", "old.txt"], "a", False)
    assert seen["b"] == (["b.txt", "docs/keep.txt", "old.txt"], "b", False)
    assert bucket_state(stack) == before and stack.kv("owner") == (None, 0)


def test_one_runs_relays_share_its_overlay(tmp_path, stack):
    """Two connections of one run (two relay processes): the second reads what the first simulated."""
    project, server = setup(tmp_path, stack)

    async def main():
        params = project.relay(server, mode="dry", run_id="shared")
        async with Client(params, cache=None) as first, Client(params, cache=None) as second:
            await first.list_tools()
            await second.list_tools()
            await first.call_tool("put_object", {"bucket": stack.bucket, "key": "k", "body": "from first"})
            got = dump(await second.call_tool("get_object", {"bucket": stack.bucket, "key": "k"}))
            clash = dump(await second.call_tool("put_object", {"bucket": stack.bucket, "key": "k", "body": "x",
                                                               "if_none_match": "*"}))
            return got, clash

    got, clash = run(main)
    assert got["structuredContent"]["body"] == "from first" and clash["isError"]
    assert bucket_state(stack) == {}


def test_with_a_shadow_sql_goes_to_the_shadow_and_stores_to_the_overlays(tmp_path, kv_stack):
    """--shadow copies the SQLite file; the object and key-value tools never reach the shadow, and the shadow's
    own S3 and Redis settings point at nothing (shadow_env), so an unmapped tool cannot reach them either."""
    stack = kv_stack
    stack.sql("CREATE TABLE items (id INTEGER PRIMARY KEY, version INTEGER NOT NULL, name TEXT UNIQUE)")
    project, server = setup(tmp_path, stack, overlays=OVERLAYS.replace('plain_tools = ["create_bucket"]\n', ""))
    argv = [*DRYGATE, "mcp", "--name", "stack", "--project", str(project.root), "--shadow", str(stack.db), "--",
            *server.argv]
    from mcp import StdioServerParameters

    params = StdioServerParameters(command=argv[0], args=argv[1:],
                                   env=project.relay_env(server, mode="dry", run_id="shadowed"))
    new_bucket = stack.bucket + "-new"
    steps = [("insert_row", {"table": "items", "values": {"name": "bolt"}}),
             ("sql_query", {"sql": "SELECT name FROM items"}),
             ("put_object", {"bucket": stack.bucket, "key": "k", "body": "v"}),
             ("get_object", {"bucket": stack.bucket, "key": "k"}),
             ("kv_incr", {"key": "c"}),
             ("kv_get", {"key": "c"}),
             ("create_bucket", {"bucket": new_bucket})]  # unmapped: the shadow answers, and cannot reach S3
    run(calls, server.direct(), [])  # the server makes its own tables when it starts: not the run's doing
    before_db = stack.db.read_bytes()
    results = run(calls, params, steps)
    served = [r["_meta"]["drygate"].get("served_by") for r in results]
    assert served == ["shadow", "shadow", "overlay", "overlay", "overlay", "overlay", "shadow"]
    assert results[1]["structuredContent"]["rows"] == [{"name": "bolt"}]
    assert results[3]["structuredContent"]["body"] == "v" and results[5]["structuredContent"]["value"] == "1"
    assert results[6]["isError"]  # the shadow could not create a bucket anywhere
    names = {b["Name"] for b in stack.s3.list_buckets()["Buckets"]}
    assert new_bucket not in names and bucket_state(stack) == {} and stack.kv("c") == (None, 0)
    assert stack.db.read_bytes() == before_db and stack.sql("SELECT * FROM items") == []


def test_plain_tools_are_plain_dry_and_never_reach_a_shadow(tmp_path, stack):
    project, server = setup(tmp_path, stack)
    argv = [*DRYGATE, "mcp", "--name", "stack", "--project", str(project.root), "--shadow", str(stack.db),
            "--shadow-allow-network", "--", *server.argv]
    from mcp import StdioServerParameters

    params = StdioServerParameters(command=argv[0], args=argv[1:],
                                   env=project.relay_env(server, mode="dry", run_id="plain"))
    new_bucket = stack.bucket + "-plain"
    [create, count] = run(calls, params, [("create_bucket", {"bucket": new_bucket}),
                                          ("sql_query", {"sql": "SELECT 1 AS one"})])
    meta = create["_meta"]["drygate"]
    assert create["isError"] and meta["executed"] is False and meta["simulated"] is False
    assert "plain_tools" in create["content"][0]["text"]
    assert count["_meta"]["drygate"]["served_by"] == "shadow"  # the shadow exists: create_bucket did not go there
    assert new_bucket not in {b["Name"] for b in stack.s3.list_buckets()["Buckets"]}


def test_a_networked_shadow_needs_shadow_env(tmp_path, stack):
    overlays = OVERLAYS.replace('shadow_env = { STACK_REDIS_URL = "" }\n', "")
    project, server = setup(tmp_path, stack, overlays=overlays)
    argv = [*DRYGATE, "mcp", "--name", "stack", "--project", str(project.root), "--shadow", str(stack.db),
            "--shadow-allow-network", "--", *server.argv]
    from mcp import StdioServerParameters

    params = StdioServerParameters(command=argv[0], args=argv[1:],
                                   env=project.relay_env(server, mode="dry", run_id="no-env"))
    [insert, put] = run(calls, params, [("sql_execute", {"sql": "CREATE TABLE t (x)"}),
                                        ("put_object", {"bucket": stack.bucket, "key": "k", "body": "v"})])
    assert insert["isError"] and insert["_meta"]["drygate"]["simulated"] is False  # no shadow: plain dry
    assert "without shadow_env" in insert["content"][0]["text"]
    assert put["_meta"]["drygate"]["served_by"] == "overlay"  # the overlays still work


def test_over_the_limit_falls_back_to_plain_dry_never_live(tmp_path, stack):
    overlays = OVERLAYS.replace('kind = "objects"\n', 'kind = "objects"\nmax_mb = 0.001\n')  # about 1 KB
    seed(stack)
    project, server = setup(tmp_path, stack, overlays=overlays)
    steps = [("put_object", {"bucket": stack.bucket, "key": "small", "body": "s"}),
             ("put_object", {"bucket": stack.bucket, "key": "big", "body": "x" * 4096}),
             ("get_object", {"bucket": stack.bucket, "key": "small"}),
             ("put_object", {"bucket": stack.bucket, "key": "small2", "body": "s"}),
             ("list_objects", {"bucket": stack.bucket})]
    before = bucket_state(stack)
    small, big, get, small2, listing = run(calls, project.relay(server, mode="dry", run_id="big"), steps)
    assert small["_meta"]["drygate"]["served_by"] == "overlay"
    assert big["isError"] and big["_meta"]["drygate"]["simulated"] is False
    assert "No read-your-writes in this run" in big["content"][0]["text"]
    assert "past its limit" in big["content"][0]["text"]
    assert small2["_meta"]["drygate"]["simulated"] is False  # the whole run: plain from then on
    assert get["isError"] and "NoSuchKey" in get["content"][0]["text"]  # the real server answers
    assert "does NOT show run big's" in get["content"][-1]["text"]
    assert [o["key"] for o in listing["structuredContent"]["objects"]] == ["docs/keep.txt", "old.txt"]
    assert bucket_state(stack) == before
    [overlay] = project.plan("big")["simulation"]["overlays"]
    assert overlay["fallback"]["code"] == "too_large"


def test_a_live_run_is_not_touched_by_overlays(tmp_path, stack):
    project, server = setup(tmp_path, stack)
    put, get = run(calls, project.relay(server, run_id="live"), [
        ("put_object", {"bucket": stack.bucket, "key": "k", "body": "real"}),
        ("get_object", {"bucket": stack.bucket, "key": "k"})])
    assert "drygate" not in (put.get("_meta") or {}) and "drygate" not in (get.get("_meta") or {})
    assert bucket_state(stack) == {"k": (hashlib.md5(b"real").hexdigest(), b"real")}


def test_the_overlay_reads_only_as_the_gate_allows(tmp_path, stack):
    """A policy that does not classify head_object as a read: the agent's head is a plain dry result, and the
    overlay, which needs it to check a put, stops (plain dry results) rather than read without the gate's leave."""
    seed(stack)
    project, server = setup(tmp_path, stack)
    policy = project.root / "drygate.toml"
    text = policy.read_text(encoding="utf-8")
    head_rule = 'tool = "mcp__stack__head_object"\neffect = "read"'
    assert head_rule in text
    policy.write_text(text.replace(head_rule, 'tool = "mcp__stack__head_object"\neffect = "side_effect_read"'),
                      encoding="utf-8")
    head, put, get = run(calls, project.relay(server, mode="dry", run_id="strict"), [
        ("head_object", {"bucket": stack.bucket, "key": "old.txt"}),
        ("put_object", {"bucket": stack.bucket, "key": "old.txt", "body": "new"}),
        ("get_object", {"bucket": stack.bucket, "key": "old.txt"})])
    assert head["isError"] and "reads the gate allows" in head["content"][0]["text"]
    assert put["isError"] and put["_meta"]["drygate"]["simulated"] is False
    assert "does not let drygate read the real store with head_object" in put["content"][0]["text"]
    assert get["structuredContent"]["body"] == "old"  # the real object, with a note of the write it misses
    assert "does NOT show run strict's 1 skipped write(s)" in get["content"][-1]["text"]
    assert bucket_state(stack)["old.txt"][1] == b"old"


def test_shadow_env_points_a_networked_shadow_at_nothing(tmp_path, stack):
    """With --shadow-allow-network the shadow could reach moto; shadow_env takes S3 out of its environment, so an
    unmapped S3 write sent to the shadow (create_bucket, here not in plain_tools) reaches no S3 at all."""
    project, server = setup(tmp_path, stack, overlays=OVERLAYS.replace('plain_tools = ["create_bucket"]\n', ""))
    argv = [*DRYGATE, "mcp", "--name", "stack", "--project", str(project.root), "--shadow", str(stack.db),
            "--shadow-allow-network", "--", *server.argv]
    from mcp import StdioServerParameters

    params = StdioServerParameters(command=argv[0], args=argv[1:],
                                   env=project.relay_env(server, mode="dry", run_id="networked"))
    new_bucket = stack.bucket + "-networked"
    [create] = run(calls, params, [("create_bucket", {"bucket": new_bucket})])
    assert create["_meta"]["drygate"]["served_by"] == "shadow" and create["isError"]
    assert "could not reach S3" in create["content"][0]["text"] and "127.0.0.1:9" in create["content"][0]["text"]
    assert new_bucket not in {b["Name"] for b in stack.s3.list_buckets()["Buckets"]}
