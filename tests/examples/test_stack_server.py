"""examples/stack/stack_server.py with real parts: a moto S3 server, a SQLite file, a real
redis-server, the server driven over stdio by the MCP SDK's client.

Every check of an effect reads the backend directly (boto3 against moto, sqlite3 on the
file, redis-py), never the server's own answer.
"""

import json
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass

import anyio
from botocore.exceptions import ClientError
from mcp import Client

from .conftest import STACK, STACK_SERVER, make_stack

sys.path.insert(0, str(STACK))
from stack_idempotency import META_KEY, REPLAYED_META_KEY, IdempotencyKeys, request_hash  # noqa: E402

TIMEOUT = 60  # no test may hang

VERSIONED_TABLE = ("CREATE TABLE files (id INTEGER PRIMARY KEY AUTOINCREMENT, version INTEGER NOT NULL, "
                   "key TEXT UNIQUE, size INTEGER)")


@dataclass
class Answer:
    error: bool
    data: dict | None  # structuredContent
    text: str
    replayed: bool | None  # _meta["dev.drygate/idempotent-replayed"], None when absent


class Caller:
    def __init__(self, client):
        self.client = client

    async def __call__(self, tool, args=None, key=None, meta=None):
        if key is not None:
            meta = {**(meta or {}), META_KEY: key}
        result = await self.client.call_tool(tool, args or {}, meta=meta)
        text = " ".join(getattr(c, "text", "") for c in result.content)
        return Answer(result.is_error, result.structured_content, text, (result.meta or {}).get(REPLAYED_META_KEY))

    async def ok(self, tool, args=None, key=None):
        answer = await self(tool, args, key)
        assert not answer.error, f"{tool} failed: {answer.text}"
        return answer.data

    async def refused(self, tool, args=None, key=None, *needles):
        answer = await self(tool, args, key)
        assert answer.error, f"{tool} should have been refused: {answer.data}"
        for needle in ("nothing was changed", *needles):
            assert needle in answer.text, f"{needle!r} not in {answer.text!r}"
        return answer.text


def with_server(stack, scenario):
    """Start the server over stdio, run ``await scenario(call)``, stop it."""
    async def main():
        with anyio.fail_after(TIMEOUT):
            async with Client(stack.params(), cache=None) as client:
                return await scenario(Caller(client))
    return anyio.run(main)


def body_of(stack, key):
    return stack.s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read().decode()


def s3_exists(stack, key):
    try:
        stack.s3.head_object(Bucket=stack.bucket, Key=key)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] in ("404", "NoSuchKey"), exc.response
        return False
    return True


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --------------------------------------------------------------------------------------
# what moto enforces (the premise of the object-store preconditions in the tests below)


def test_moto_enforces_conditional_put_and_delete(stack):
    """The installed moto checks If-Match / If-None-Match: * on PutObject and If-Match on
    DeleteObject (412 PreconditionFailed; 404 NoSuchKey for If-Match on a missing key).
    It does not check If-None-Match with an ETag on PutObject (S3 allows only "*" there;
    the server refuses any other value itself)."""
    s3, bucket = stack.s3, stack.bucket

    def code(fn, **kwargs):
        try:
            fn(Bucket=bucket, **kwargs)
        except ClientError as exc:
            return exc.response["Error"]["Code"]
        return "ok"

    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["ETag"]
    assert code(s3.put_object, Key="k", Body=b"two", IfNoneMatch="*") == "PreconditionFailed"
    assert code(s3.put_object, Key="k", Body=b"two", IfMatch='"0123"') == "PreconditionFailed"
    assert code(s3.put_object, Key="missing", Body=b"two", IfMatch=etag) == "NoSuchKey"
    assert body_of(stack, "k") == "one" and not s3_exists(stack, "missing")
    assert code(s3.delete_object, Key="k", IfMatch='"0123"') == "PreconditionFailed"
    assert code(s3.delete_object, Key="missing", IfMatch=etag) == "NoSuchKey"
    assert body_of(stack, "k") == "one"

    assert code(s3.put_object, Key="new", Body=b"x", IfNoneMatch="*") == "ok"
    assert code(s3.put_object, Key="k", Body=b"two", IfMatch=etag) == "ok"
    assert body_of(stack, "k") == "two"
    etag = s3.head_object(Bucket=bucket, Key="k")["ETag"]
    assert code(s3.delete_object, Key="k", IfMatch=etag.strip('"')) == "ok"  # quotes optional
    assert not s3_exists(stack, "k")

    # Not checked by moto (a fact of this version, pinned in the test extra).
    assert code(s3.put_object, Key="new", Body=b"y", IfNoneMatch='"0123"') == "ok"


# --------------------------------------------------------------------------------------
# tools and annotations


READ_TOOLS = {"get_object", "head_object", "list_objects", "sql_query", "kv_get"}
WRITE_TOOLS = {  # tool: (destructiveHint, idempotentHint)
    "create_bucket": (False, True), "put_object": (True, True), "delete_object": (True, True),
    "sql_execute": (True, False), "insert_row": (False, False), "update_row": (True, True),
    "delete_row": (True, True), "kv_set": (True, True), "kv_delete": (True, True), "kv_incr": (True, False),
}


def test_annotations_are_honest(stack):
    async def scenario(call):
        return (await call.client.list_tools()).tools

    tools = {t.name: t for t in with_server(stack, scenario)}
    assert set(tools) == READ_TOOLS | set(WRITE_TOOLS)
    for name in READ_TOOLS:
        assert tools[name].annotations.read_only_hint is True, name
    for name, (destructive, idempotent) in WRITE_TOOLS.items():
        a = tools[name].annotations
        assert a.read_only_hint is False, name
        assert (a.destructive_hint, a.idempotent_hint) == (destructive, idempotent), name
    assert all(t.annotations.open_world_hint is False for t in tools.values())


def test_policy_classifies_every_tool(stack):
    """examples/stack/drygate.toml, compiled and applied by drygate itself: every read tool is
    a read, every write tool a write in dry scope."""
    from drygate.engine import classify
    from drygate.policy.load import load_policy_file
    from drygate.types import ToolCall

    policy = load_policy_file(STACK / "drygate.toml")
    for name in READ_TOOLS | set(WRITE_TOOLS):
        cls = classify(ToolCall(f"mcp__stack__{name}", {}, "run-1"), policy)
        if name in READ_TOOLS:
            assert cls.effect == "read", (name, cls.effect)
        else:
            assert (cls.effect, cls.dry_scope) == ("write", True), (name, cls.effect, cls.dry_scope)


# --------------------------------------------------------------------------------------
# object store


def test_object_store_happy_path(stack):
    b = stack.bucket

    async def scenario(call):
        made = await call.ok("create_bucket", {"bucket": b + "-new"})
        assert made["bucket"] == b + "-new"
        assert (await call.ok("create_bucket", {"bucket": b + "-new"}))["bucket"] == b + "-new"  # yours already

        put = await call.ok("put_object", {"bucket": b, "key": "docs/a.txt", "body": "hello"})
        assert put["size"] == 5 and put["etag"] == "5d41402abc4b2a76b9719d911017c592"  # md5, no quotes
        got = await call.ok("get_object", {"bucket": b, "key": "docs/a.txt"})
        assert (got["body"], got["etag"], got["encoding"]) == ("hello", put["etag"], "utf-8")
        head = await call.ok("head_object", {"bucket": b, "key": "docs/a.txt"})
        assert (head["exists"], head["etag"], head["size"]) == (True, put["etag"], 5)
        assert (await call.ok("head_object", {"bucket": b, "key": "nope"}))["exists"] is False

        created = await call.ok("put_object", {"bucket": b, "key": "docs/b.bin", "body": "AAEC/w==",
                                               "encoding": "base64", "if_none_match": "*"})
        got_b = await call.ok("get_object", {"bucket": b, "key": "docs/b.bin"})
        assert (got_b["body"], got_b["encoding"], got_b["etag"]) == ("AAEC/w==", "base64", created["etag"])
        await call.ok("put_object", {"bucket": b, "key": "other", "body": "x"})
        listed = await call.ok("list_objects", {"bucket": b, "prefix": "docs/"})
        assert [o["key"] for o in listed["objects"]] == ["docs/a.txt", "docs/b.bin"]
        assert listed["objects"][0]["etag"] == put["etag"] and listed["truncated"] is False

        updated = await call.ok("put_object", {"bucket": b, "key": "docs/a.txt", "body": "hello again",
                                               "if_match": put["etag"]})
        assert updated["etag"] != put["etag"]
        deleted = await call.ok("delete_object", {"bucket": b, "key": "docs/b.bin", "if_match": created["etag"]})
        assert deleted["deleted"] is True
        await call.ok("delete_object", {"bucket": b, "key": "other"})
        await call.ok("delete_object", {"bucket": b, "key": "never-existed"})  # S3: 204 either way
        return updated

    updated = with_server(stack, scenario)
    assert stack.s3.head_bucket(Bucket=b + "-new")["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert body_of(stack, "docs/a.txt") == "hello again"
    assert stack.s3.head_object(Bucket=b, Key="docs/a.txt")["ETag"].strip('"') == updated["etag"]
    assert not s3_exists(stack, "docs/b.bin") and not s3_exists(stack, "other")


def test_object_store_preconditions_refused(stack):
    b, s3 = stack.bucket, stack.s3
    etag = s3.put_object(Bucket=b, Key="k", Body=b"original")["ETag"].strip('"')
    stale = "0" * 32

    async def scenario(call):
        await call.refused("put_object", {"bucket": b, "key": "k", "body": "new", "if_match": stale}, None,
                           "precondition failed", "If-Match")
        await call.refused("put_object", {"bucket": b, "key": "k", "body": "new", "if_none_match": "*"}, None,
                           "precondition failed", "If-None-Match")
        await call.refused("put_object", {"bucket": b, "key": "missing", "body": "new", "if_match": etag}, None,
                           "no such object")
        await call.refused("delete_object", {"bucket": b, "key": "k", "if_match": stale}, None,
                           "precondition failed", "If-Match")
        await call.refused("delete_object", {"bucket": b, "key": "missing", "if_match": etag}, None,
                           "no such object")
        await call.refused("put_object", {"bucket": b, "key": "k", "body": "new", "if_match": etag,
                                          "if_none_match": "*"}, None, "not both")
        await call.refused("put_object", {"bucket": b, "key": "k", "body": "%%%", "encoding": "base64"}, None,
                           "base64")
        await call.refused("put_object", {"bucket": b + "-none", "key": "k", "body": "x"}, None, "no such bucket")
        # The schema allows only "*"; the SDK refuses anything else before the tool runs.
        other = await call("put_object", {"bucket": b, "key": "k", "body": "new", "if_none_match": etag})
        assert other.error

    with_server(stack, scenario)
    assert body_of(stack, "k") == "original"
    assert s3.head_object(Bucket=b, Key="k")["ETag"].strip('"') == etag
    assert not s3_exists(stack, "missing")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=b).get("Contents", [])] == ["k"]


# --------------------------------------------------------------------------------------
# SQL


def test_sql_happy_path(stack):
    async def scenario(call):
        created = await call.ok("sql_execute", {"sql": VERSIONED_TABLE})
        assert created["rowcount"] == 0
        first = await call.ok("insert_row", {"table": "files", "values": {"key": "a.txt", "size": 5}})
        second = await call.ok("insert_row", {"table": "files", "values": {"key": "b.txt", "size": 7}})
        assert (first["version"], second["version"]) == (1, 1)
        assert second["id"] == first["id"] + 1  # generated by the database

        updated = await call.ok("update_row", {"table": "files", "id": first["id"], "values": {"size": 6},
                                               "expected_version": 1})
        assert updated == {"table": "files", "id": first["id"], "version": 2}
        rows = await call.ok("sql_query", {"sql": "SELECT id, version, key, size FROM files WHERE size > ? "
                                                  "ORDER BY id", "params": [5]})
        assert rows["columns"] == ["id", "version", "key", "size"]
        assert rows["rows"] == [{"id": first["id"], "version": 2, "key": "a.txt", "size": 6},
                                {"id": second["id"], "version": 1, "key": "b.txt", "size": 7}]
        named = await call.ok("sql_query", {"sql": "SELECT key FROM files WHERE id = :id",
                                            "params": {"id": second["id"]}})
        assert named["rows"] == [{"key": "b.txt"}]

        deleted = await call.ok("delete_row", {"table": "files", "id": second["id"], "expected_version": 1})
        assert deleted["deleted"] is True
        inserted = await call.ok("sql_execute", {"sql": "INSERT INTO files (version, key, size) VALUES (1, ?, ?)",
                                                 "params": ["c.txt", 1]})
        assert inserted["rowcount"] == 1 and inserted["lastrowid"] == second["id"] + 1
        changed = await call.ok("sql_execute", {"sql": "UPDATE files SET size = size + 1, version = version + 1"})
        assert changed == {"rowcount": 2, "lastrowid": None}
        returning = await call.ok("sql_execute", {"sql": "DELETE FROM files WHERE key = 'c.txt' RETURNING id"})
        assert returning["rows"] == [{"id": inserted["lastrowid"]}]
        return first

    first = with_server(stack, scenario)
    assert stack.sql("SELECT id, version, key, size FROM files") == [(first["id"], 3, "a.txt", 7)]


def test_sql_preconditions_refused(stack):
    stack.sql(VERSIONED_TABLE)
    stack.sql("CREATE TABLE plain (id INTEGER PRIMARY KEY, name TEXT)")
    stack.sql("INSERT INTO files (version, key, size) VALUES (3, 'a.txt', 5)")
    before = stack.sql("SELECT * FROM files")

    async def scenario(call):
        await call.refused("update_row", {"table": "files", "id": 1, "values": {"size": 9}, "expected_version": 2},
                           None, "version mismatch", "at version 3, not expected_version 2")
        await call.refused("delete_row", {"table": "files", "id": 1, "expected_version": 4}, None,
                           "version mismatch")
        await call.refused("update_row", {"table": "files", "id": 99, "values": {"size": 9},
                                          "expected_version": 1}, None, "no row with id 99")
        await call.refused("delete_row", {"table": "files", "id": 99, "expected_version": 1}, None,
                           "no row with id 99")
        await call.refused("insert_row", {"table": "files", "values": {"id": 7, "key": "x"}}, None,
                           "set by the server")
        await call.refused("update_row", {"table": "files", "id": 1, "values": {"version": 9},
                                          "expected_version": 3}, None, "set by the server")
        await call.refused("insert_row", {"table": "files", "values": {"nope": 1}}, None, "no column 'nope'")
        await call.refused("insert_row", {"table": "plain", "values": {"name": "x"}}, None, "not versioned")
        await call.refused("insert_row", {"table": "missing", "values": {"name": "x"}}, None, "no table")
        await call.refused("insert_row", {"table": "_stack_idempotency", "values": {"key": "x"}}, None,
                           "no table")
        # a constraint violation rolls the whole call back
        await call.refused("insert_row", {"table": "files", "values": {"key": "a.txt"}}, None, "UNIQUE")

    with_server(stack, scenario)
    assert stack.sql("SELECT * FROM files") == before
    assert stack.sql("SELECT count(*) FROM plain") == [(0,)]


def test_sql_query_cannot_write(stack):
    stack.sql(VERSIONED_TABLE)
    stack.sql("INSERT INTO files (version, key, size) VALUES (1, 'a.txt', 5)")
    elsewhere = stack.db.parent / "elsewhere.db"

    async def scenario(call):
        text = await call.refused("sql_query", {"sql": "DELETE FROM files"}, None, "readonly")
        assert "attempt to write a readonly database" in text
        await call.refused("sql_query", {"sql": "INSERT INTO files (version, key) VALUES (1, 'b')"}, None,
                           "readonly")
        await call.refused("sql_query", {"sql": "UPDATE files SET size = 0 RETURNING id"}, None, "readonly")
        await call.refused("sql_query", {"sql": "DROP TABLE files"}, None)
        await call.refused("sql_query", {"sql": "CREATE TABLE t (x)"}, None)
        await call.refused("sql_query", {"sql": f"ATTACH DATABASE '{elsewhere}' AS other"}, None, "not authorized")
        await call.refused("sql_query", {"sql": "PRAGMA user_version = 7"}, None, "not authorized")
        await call.refused("sql_query", {"sql": "SELECT 1; DELETE FROM files"}, None, "one statement")
        # the server's own tables are out of reach of client SQL, reads and writes alike
        await call.refused("sql_query", {"sql": "SELECT * FROM _stack_idempotency"}, None, "_stack_")
        await call.refused("sql_execute", {"sql": "DELETE FROM _stack_idempotency"}, None, "_stack_")
        # transaction control would split a write from its idempotency record
        await call.refused("sql_execute", {"sql": "COMMIT"}, None, "not authorized")
        await call.refused("sql_execute", {"sql": "SAVEPOINT s"}, None, "not authorized")
        return (await call.ok("sql_query", {"sql": "SELECT key FROM files"}))["rows"]

    assert with_server(stack, scenario) == [{"key": "a.txt"}]
    assert stack.sql("SELECT id, version, key, size FROM files") == [(1, 1, "a.txt", 5)]
    assert stack.sql("PRAGMA user_version") == [(0,)]
    assert not elsewhere.exists()


# --------------------------------------------------------------------------------------
# key-value (SQLite and Redis)


def test_kv_happy_path(kv_stack):
    async def scenario(call):
        assert await call.ok("kv_get", {"key": "greeting"}) == {"key": "greeting", "value": None, "version": 0}
        created = await call.ok("kv_set", {"key": "greeting", "value": "hello", "if_version": 0})
        got = await call.ok("kv_get", {"key": "greeting"})
        assert got == {"key": "greeting", "value": "hello", "version": created["version"]}
        replaced = await call.ok("kv_set", {"key": "greeting", "value": "hi", "if_version": created["version"]})
        assert replaced["version"] > created["version"]
        unconditional = await call.ok("kv_set", {"key": "greeting", "value": "hey"})
        assert unconditional["version"] > replaced["version"]

        counted = await call.ok("kv_incr", {"key": "visits"})
        assert counted["value"] == 1
        counted = await call.ok("kv_incr", {"key": "visits", "by": 41})
        assert counted["value"] == 42
        assert (await call.ok("kv_incr", {"key": "visits", "by": -2}))["value"] == 40

        deleted = await call.ok("kv_delete", {"key": "greeting", "if_version": unconditional["version"]})
        assert deleted == {"key": "greeting", "deleted": True, "previous_version": unconditional["version"]}
        assert (await call.ok("kv_delete", {"key": "greeting"}))["deleted"] is False
        again = await call.ok("kv_set", {"key": "greeting", "value": "back"})
        assert again["version"] > unconditional["version"]  # versions are never reused
        return again

    again = with_server(kv_stack, scenario)
    assert kv_stack.kv("greeting") == ("back", again["version"])
    assert kv_stack.kv("visits")[0] == "40"


def test_kv_preconditions_refused(kv_stack):
    async def scenario(call):
        v = (await call.ok("kv_set", {"key": "k", "value": "one"}))["version"]
        await call.ok("kv_set", {"key": "word", "value": "abc"})
        await call.refused("kv_set", {"key": "k", "value": "two", "if_version": v + 100}, None,
                           "version mismatch", f"at version {v}")
        await call.refused("kv_set", {"key": "k", "value": "two", "if_version": 0}, None,
                           "version mismatch", "not absent")
        await call.refused("kv_set", {"key": "absent", "value": "two", "if_version": 5}, None,
                           "version mismatch", "is absent")
        await call.refused("kv_delete", {"key": "k", "if_version": v + 100}, None, "version mismatch")
        await call.refused("kv_incr", {"key": "word"}, None, "not an integer")
        await call.refused("kv_set", {"key": "k", "value": "two", "if_version": -1}, None, "if_version")
        return v

    v = with_server(kv_stack, scenario)
    assert kv_stack.kv("k") == ("one", v)
    assert kv_stack.kv("word")[0] == "abc"
    assert kv_stack.kv("absent") == (None, 0)


# --------------------------------------------------------------------------------------
# idempotency keys


def test_idempotent_replay_sql_and_kv(kv_stack):
    """Same key twice: executed once (checked in the backend), the same result returned."""
    kv_stack.sql(VERSIONED_TABLE)
    kv_stack.sql("CREATE TABLE counter (n INTEGER)")
    kv_stack.sql("INSERT INTO counter VALUES (0)")

    async def twice(call, tool, args, key):
        first = await call(tool, args, key)
        second = await call(tool, args, key)
        assert not first.error and not second.error, (first.text, second.text)
        assert second.data == first.data and second.text == first.text
        assert (first.replayed, second.replayed) == (False, True)
        return first.data

    async def scenario(call):
        row = await twice(call, "insert_row", {"table": "files", "values": {"key": "a"}}, "ins-1")
        await twice(call, "update_row", {"table": "files", "id": row["id"], "values": {"size": 1},
                                         "expected_version": 1}, "upd-1")
        await twice(call, "sql_execute", {"sql": "UPDATE counter SET n = n + 1"}, "exec-1")
        other = await twice(call, "insert_row", {"table": "files", "values": {"key": "b"}}, "ins-2")
        await twice(call, "delete_row", {"table": "files", "id": other["id"], "expected_version": 1}, "del-1")
        await twice(call, "kv_set", {"key": "k", "value": "v"}, "set-1")
        incr = await twice(call, "kv_incr", {"key": "n", "by": 5}, "incr-1")
        gone = await twice(call, "kv_delete", {"key": "k"}, "kvdel-1")
        assert gone["deleted"] is True
        # unkeyed calls are not deduplicated
        await call.ok("kv_incr", {"key": "m"})
        await call.ok("kv_incr", {"key": "m"})
        return row, incr

    row, incr = with_server(kv_stack, scenario)
    assert kv_stack.sql("SELECT id, version, key FROM files") == [(row["id"], 2, "a")]
    assert kv_stack.sql("SELECT n FROM counter") == [(1,)]
    assert kv_stack.kv("k") == (None, 0)
    assert kv_stack.kv("n") == ("5", incr["version"])
    assert kv_stack.kv("m")[0] == "2"
    for key, tool in [("ins-1", "insert_row"), ("upd-1", "update_row"), ("exec-1", "sql_execute"),
                      ("set-1", "kv_set"), ("incr-1", "kv_incr"), ("kvdel-1", "kv_delete")]:
        record = kv_stack.idempotency(key)
        assert record["tool"] == tool and record["state"] == "done", (key, record)


def test_idempotent_replay_object_store(stack):
    """In a versioned bucket every executed put or delete leaves a version: one each."""
    b, s3 = stack.bucket, stack.s3
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})

    async def scenario(call):
        answers = []
        for tool, args, key in [
            ("create_bucket", {"bucket": b + "-x"}, "cb-1"),
            ("put_object", {"bucket": b, "key": "a", "body": "one"}, "put-1"),
            ("put_object", {"bucket": b, "key": "c", "body": "new", "if_none_match": "*"}, "put-2"),
            ("delete_object", {"bucket": b, "key": "a"}, "del-1"),
        ]:
            first = await call(tool, args, key)
            second = await call(tool, args, key)
            assert not first.error and not second.error, (first.text, second.text)
            assert (second.data, second.text) == (first.data, first.text)
            assert (first.replayed, second.replayed) == (False, True)
            answers.append(first.data)
        return answers

    _, put, created, deleted = with_server(stack, scenario)
    versions = s3.list_object_versions(Bucket=b)
    puts = [(v["Key"], v["VersionId"]) for v in versions.get("Versions", [])]
    markers = [(m["Key"], m["VersionId"]) for m in versions.get("DeleteMarkers", [])]
    assert sorted(puts) == sorted([("a", put["version_id"]), ("c", created["version_id"])])
    assert markers == [("a", deleted["version_id"])]
    assert body_of(stack, "c") == "new"


def test_key_reuse_with_other_arguments_refused(kv_stack):
    kv_stack.sql(VERSIONED_TABLE)
    b = kv_stack.bucket

    async def scenario(call):
        await call.ok("put_object", {"bucket": b, "key": "a", "body": "one"}, "k-put")
        await call.refused("put_object", {"bucket": b, "key": "a", "body": "two"}, "k-put",
                           "already used for a put_object call with other arguments")
        await call.ok("insert_row", {"table": "files", "values": {"key": "a"}}, "k-ins")
        await call.refused("insert_row", {"table": "files", "values": {"key": "b"}}, "k-ins", "already used")
        await call.ok("kv_incr", {"key": "n"}, "k-incr")
        await call.refused("kv_incr", {"key": "n", "by": 2}, "k-incr", "already used")
        # a key names one request, across tools too
        await call.refused("kv_set", {"key": "n", "value": "9"}, "k-incr",
                           "already used for a kv_incr call", "this call is kv_set")
        await call.refused("delete_object", {"bucket": b, "key": "a"}, "k-put", "already used")
        # a default made explicit is the same request
        same = await call("kv_incr", {"key": "n", "by": 1}, "k-incr")
        assert not same.error and same.replayed is True
        bad = await call("kv_incr", {"key": "n"}, meta={META_KEY: 42})
        assert bad.error and "must be a non-empty string" in bad.text

    with_server(kv_stack, scenario)
    assert body_of(kv_stack, "a") == "one"
    assert kv_stack.sql("SELECT key FROM files") == [("a",)]
    assert kv_stack.kv("n")[0] == "1"


def test_refused_call_stores_nothing(kv_stack):
    """A call refused by its precondition leaves the key free: the same request can run once
    the state allows it."""
    async def scenario(call):
        await call.refused("kv_set", {"key": "k", "value": "v", "if_version": 1}, "k-1", "version mismatch")
        assert kv_stack.idempotency("k-1") is None
        await call.refused("put_object", {"bucket": kv_stack.bucket, "key": "p", "body": "x", "if_match": "0" * 32},
                           "k-2", "no such object")
        assert kv_stack.idempotency("k-2") is None

    with_server(kv_stack, scenario)


def test_replay_survives_a_restart(kv_stack):
    kv_stack.sql(VERSIONED_TABLE)
    steps = [("insert_row", {"table": "files", "values": {"key": "a"}}, "r-ins"),
             ("kv_incr", {"key": "n", "by": 3}, "r-incr"),
             ("put_object", {"bucket": kv_stack.bucket, "key": "a", "body": "x", "if_none_match": "*"}, "r-put")]

    async def run_steps(call):
        return [await call(tool, args, key) for tool, args, key in steps]

    first = with_server(kv_stack, run_steps)
    second = with_server(kv_stack, run_steps)  # a new server process, the same files and stores
    assert [a.error for a in first + second] == [False] * 6, [a.text for a in first + second]
    assert [a.data for a in second] == [a.data for a in first]
    assert [a.replayed for a in second] == [True] * 3
    assert kv_stack.sql("SELECT count(*) FROM files") == [(1,)]
    assert kv_stack.kv("n")[0] == "3"


# --------------------------------------------------------------------------------------
# the window between an external write and its record (a server that died in between)


def _pending(stack, key, tool, arguments, owner):
    IdempotencyKeys(stack.db)  # the server's own table, as the server creates it at start
    stack.sql("INSERT INTO _stack_idempotency VALUES (?, ?, ?, 'pending', NULL, ?, 0, NULL)",
              (key, request_hash(tool, arguments), tool, owner))


def _put_args(bucket, key, body, **extra):
    args = {"bucket": bucket, "key": key, "body": body, "if_match": None, "if_none_match": None,
            "encoding": "utf-8", "content_type": None}
    args.update(extra)
    return args


def test_s3_retry_after_crash_is_safe(stack):
    """A server died after its S3 write and before recording it: the retry with the same key
    is refused by the write's own precondition, and says that the write may have happened.
    When the write never reached S3, the retry executes it."""
    b, s3 = stack.bucket, stack.s3
    # 1. the earlier attempt reached S3 (the object exists), its record stayed pending
    args = _put_args(b, "made", "first", if_none_match="*")
    s3.put_object(Bucket=b, Key="made", Body=b"first", IfNoneMatch="*")
    _pending(stack, "crash-1", "put_object", args, owner=f"{socket.gethostname()}:{dead_pid()}:dead")
    # 2. the earlier attempt never reached S3
    args2 = _put_args(b, "never", "second", if_none_match="*")
    _pending(stack, "crash-2", "put_object", args2, owner=f"{socket.gethostname()}:{dead_pid()}:dead")
    # 3. a pending record held by a live process on this host (this test): in progress
    args3 = _put_args(b, "busy", "third")
    _pending(stack, "busy-1", "put_object", args3, owner=f"{socket.gethostname()}:{os.getpid()}:live")

    async def scenario(call):
        text = await call.refused("put_object", args, "crash-1", "precondition failed",
                                  "did not record its outcome", "may have been applied")
        retried = await call("put_object", args2, "crash-2")
        assert not retried.error and retried.replayed is False, retried.text
        replay = await call("put_object", args2, "crash-2")
        assert replay.replayed is True and replay.data == retried.data
        await call.refused("put_object", args3, "busy-1", "in progress")
        return text

    with_server(stack, scenario)
    assert body_of(stack, "made") == "first"
    assert stack.idempotency("crash-1")["state"] == "pending"  # still unresolved, still safe
    assert body_of(stack, "never") == "second" and stack.idempotency("crash-2")["state"] == "done"
    assert not s3_exists(stack, "busy")


def test_redis_retry_after_crash_is_exactly_once(tmp_path, moto_url, redis_url):
    """The Redis script writes a marker with the write: a server that died before recording
    the key in SQLite leaves a pending record, and the retry returns the marker's result
    without incrementing again."""
    stack = make_stack(tmp_path, moto_url, redis_url)

    async def first(call):
        return await call.ok("kv_incr", {"key": "n", "by": 5}, "crash-incr")

    result = with_server(stack, first)
    # as if the server had died between the script and the done record
    stack.sql("UPDATE _stack_idempotency SET state = 'pending', result = NULL, owner = ? WHERE key = ?",
              (f"{socket.gethostname()}:{dead_pid()}:dead", "crash-incr"))

    async def retry(call):
        return await call("kv_incr", {"key": "n", "by": 5}, "crash-incr")

    again = with_server(stack, retry)
    assert not again.error and again.replayed is True and again.data == result
    assert stack.kv("n") == ("5", result["version"])
    assert stack.idempotency("crash-incr")["state"] == "done"


def test_s3_unreachable_is_refused_and_frees_the_key(tmp_path, moto_url):
    """Nothing listens on the endpoint: the put never left, so it is refused (not "unknown")
    and its key is free for the same request later."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening: refused
        stack = make_stack(tmp_path, moto_url)
        stack.env["STACK_S3_URL"] = closed

        async def scenario(call):
            await call.refused("put_object", {"bucket": stack.bucket, "key": "k", "body": "x"}, "k-1",
                               "could not reach S3")

        with_server(stack, scenario)
    assert stack.idempotency("k-1") is None
    assert not s3_exists(stack, "k")


# --------------------------------------------------------------------------------------
# the handshake era (2025-06-18): the key travels the same way


def test_idempotency_key_on_the_handshake_era(stack):
    env = {**os.environ, **stack.env}
    proc = subprocess.Popen([sys.executable, str(STACK_SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, text=True)
    watchdog = threading.Timer(TIMEOUT, proc.kill)  # a hung server fails the test, never hangs it
    watchdog.start()

    def request(rid, method, params):
        proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}) + "\n")
        proc.stdin.flush()
        while True:
            message = json.loads(proc.stdout.readline())
            if message.get("id") == rid:
                return message

    try:
        init = request(1, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                         "clientInfo": {"name": "t", "version": "0"}})
        assert init["result"]["protocolVersion"] == "2025-06-18"
        proc.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")
        call = {"name": "kv_incr", "arguments": {"key": "n"}, "_meta": {META_KEY: "era-1"}}
        first, second = request(2, "tools/call", call), request(3, "tools/call", call)
    finally:
        watchdog.cancel()
        proc.stdin.close()
        proc.wait(timeout=10)
    assert first["result"]["structuredContent"] == second["result"]["structuredContent"]
    assert (first["result"]["_meta"][REPLAYED_META_KEY], second["result"]["_meta"][REPLAYED_META_KEY]) == (False, True)
    assert stack.kv("n")[0] == "1"
