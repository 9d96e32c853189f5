"""A small MCP server shaped like the incident's stack, whose writes can be applied safely later.

Three stores, backed by real parts:

- an **object store**: boto3 against any S3 endpoint (``STACK_S3_URL``; AWS when unset;
  credentials from the usual ``AWS_*`` variables);
- a **SQL database**: the SQLite file ``STACK_DB`` (required: it also holds the server's
  idempotency records);
- a **key-value store**: Redis at ``STACK_REDIS_URL`` (keys under ``STACK_REDIS_PREFIX``,
  default ``stack:``), or tables in ``STACK_DB`` when it is not set.

Every write takes a precondition (an ETag, a row version, a key version) and honours an
idempotency key in the request's ``params._meta["dev.drygate/idempotency-key"]``. Read
tools are annotated read-only; write tools say honestly whether they are destructive and
idempotent. See README.md.

Run over stdio (MCP Python SDK 2.x: ``pip install 'mcp>=2.3,<3' boto3 redis``)::

    STACK_DB=/srv/app/stack.db STACK_S3_URL=http://127.0.0.1:5000 python stack_server.py
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, TextContent, ToolAnnotations

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the stack_* modules next to this file

import stack_sql  # noqa: E402
from stack_base import transaction  # noqa: E402
from stack_idempotency import REPLAYED_META_KEY, IdempotencyKeys, key_from_meta  # noqa: E402
from stack_kv import RedisKV, SqliteKV  # noqa: E402
from stack_objects import ObjectStore  # noqa: E402

server = MCPServer("stack", version="0.1.0", instructions=(
    "An object store, a SQL database and a key-value store. Writes take preconditions "
    "(if_match / if_none_match ETags, expected_version, if_version) and honour an idempotency "
    "key in the request's _meta['dev.drygate/idempotency-key']."))

# Annotations: hints for clients and gates. Honest, because a gate that trusts this server
# decides with them. Every tool works on this server's own stores (closed world).
READ = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
CREATE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=False)
ENSURE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=False)
OVERWRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True, openWorldHint=False)
MUTATE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=False, openWorldHint=False)

Scalar = str | int | float | bool | None
Params = list[Scalar] | dict[str, Scalar] | None


class Stack:
    """The backends, built once from the environment."""

    def __init__(self, env: dict[str, str]):
        db = env.get("STACK_DB")
        if not db:
            raise SystemExit("stack_server: STACK_DB is not set (the SQLite file for the SQL tables, "
                             "the idempotency records and the key-value fallback)")
        self.db = Path(db)
        try:
            self.keys = IdempotencyKeys(self.db)
        except sqlite3.Error as exc:
            raise SystemExit(f"stack_server: cannot use STACK_DB={db}: {exc}") from exc
        self.objects = ObjectStore(env.get("STACK_S3_URL"))
        redis_url = env.get("STACK_REDIS_URL")
        if redis_url:
            self.kv: RedisKV | SqliteKV = RedisKV(redis_url, prefix=env.get("STACK_REDIS_PREFIX", "stack:"))
        else:
            self.kv = SqliteKV(self.db)
            with transaction(self.db) as conn:
                self.kv.create(conn)


_stack: Stack | None = None


def stack() -> Stack:
    global _stack
    if _stack is None:
        _stack = Stack(dict(os.environ))
    return _stack


def _answer(result: dict[str, Any], key: str | None, replayed: bool) -> CallToolResult:
    """The tool result: the same structured content whether executed or replayed; with a key,
    ``_meta`` says which (Stripe's ``Idempotent-Replayed``)."""
    text = json.dumps(result, indent=2, ensure_ascii=False)
    meta = {REPLAYED_META_KEY: replayed} if key is not None else None
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=result, _meta=meta)


def _sql_write(ctx: Context, tool: str, arguments: dict[str, Any], work) -> CallToolResult:
    """A write on the SQLite file: the write and its idempotency record in one transaction."""
    key = key_from_meta(ctx.request_context.meta)
    result, replayed = stack().keys.in_transaction(key, tool, arguments, work)
    return _answer(result, key, replayed)


def _external_write(ctx: Context, tool: str, arguments: dict[str, Any], work) -> CallToolResult:
    """A write on S3 or Redis: between a pending and a done idempotency record."""
    key = key_from_meta(ctx.request_context.meta)
    result, replayed = stack().keys.around_external(key, tool, arguments, work)
    return _answer(result, key, replayed)


def _kv_write(ctx: Context, tool: str, arguments: dict[str, Any], redis_work, sqlite_work) -> CallToolResult:
    if isinstance(stack().kv, RedisKV):
        return _external_write(ctx, tool, arguments, redis_work)
    return _sql_write(ctx, tool, arguments, sqlite_work)


# -- object store ---------------------------------------------------------------------------


@server.tool(annotations=ENSURE)
def create_bucket(ctx: Context, bucket: str) -> dict[str, Any]:
    """Create the bucket BUCKET. Succeeds when it exists already and is yours."""
    return _external_write(ctx, "create_bucket", {"bucket": bucket},
                           lambda keyed: stack().objects.create_bucket(bucket))


@server.tool(annotations=OVERWRITE)
def put_object(ctx: Context, bucket: str, key: str, body: str, if_match: str | None = None,
               if_none_match: Literal["*"] | None = None, encoding: Literal["utf-8", "base64"] = "utf-8",
               content_type: str | None = None) -> dict[str, Any]:
    """Write BODY as the object KEY in BUCKET; returns its etag and size.

    Preconditions: if_match=ETAG writes only if the object exists with that ETag (it was
    not changed since it was read); if_none_match="*" writes only if there is no such
    object yet. On a mismatch nothing is written."""
    arguments = {"bucket": bucket, "key": key, "body": body, "if_match": if_match, "if_none_match": if_none_match,
                 "encoding": encoding, "content_type": content_type}
    return _external_write(ctx, "put_object", arguments, lambda keyed: stack().objects.put_object(
        bucket, key, body, encoding, content_type, if_match, if_none_match))


@server.tool(annotations=READ)
def get_object(bucket: str, key: str) -> dict[str, Any]:
    """Read the object KEY in BUCKET: its body (UTF-8 text, or base64 when it is not text) and etag."""
    return stack().objects.get_object(bucket, key)


@server.tool(annotations=READ)
def head_object(bucket: str, key: str) -> dict[str, Any]:
    """Whether the object KEY exists in BUCKET, and its etag and size when it does."""
    return stack().objects.head_object(bucket, key)


@server.tool(annotations=READ)
def list_objects(bucket: str, prefix: str = "") -> dict[str, Any]:
    """List the objects of BUCKET whose keys start with PREFIX (keys, etags, sizes; at most 1000)."""
    return stack().objects.list_objects(bucket, prefix)


@server.tool(annotations=OVERWRITE)
def delete_object(ctx: Context, bucket: str, key: str, if_match: str | None = None) -> dict[str, Any]:
    """Delete the object KEY in BUCKET. With if_match=ETAG only if it still has that ETag.

    Without if_match, deleting a missing object succeeds (S3 does not say whether it existed)."""
    return _external_write(ctx, "delete_object", {"bucket": bucket, "key": key, "if_match": if_match},
                           lambda keyed: stack().objects.delete_object(bucket, key, if_match))


# -- SQL -----------------------------------------------------------------------------------


@server.tool(annotations=READ)
def sql_query(sql: str, params: Params = None) -> dict[str, Any]:
    """Run one read-only SQL statement (SQLite) with optional ? or :name PARAMS; returns the rows.

    The connection is opened read-only: a statement that writes fails."""
    return stack_sql.query(stack().db, sql, params)


@server.tool(annotations=MUTATE)
def sql_execute(ctx: Context, sql: str, params: Params = None) -> dict[str, Any]:
    """Run one SQL statement that writes (INSERT, UPDATE, DELETE, CREATE TABLE, ...); returns
    rowcount and lastrowid. Bypasses row versions: prefer insert_row / update_row / delete_row."""
    return _sql_write(ctx, "sql_execute", {"sql": sql, "params": params},
                      lambda conn: stack_sql.execute(conn, sql, params))


@server.tool(annotations=CREATE)
def insert_row(ctx: Context, table: str, values: dict[str, Scalar]) -> dict[str, Any]:
    """Insert a row into TABLE; returns the id the database generated and the row's version (1)."""
    return _sql_write(ctx, "insert_row", {"table": table, "values": values},
                      lambda conn: stack_sql.insert_row(conn, table, values))


@server.tool(annotations=OVERWRITE)
def update_row(ctx: Context, table: str, id: int, values: dict[str, Scalar], expected_version: int) -> dict[str, Any]:
    """Set VALUES on row ID of TABLE if it is still at EXPECTED_VERSION; returns its new version.

    On a version mismatch (the row changed since it was read) nothing is changed."""
    arguments = {"table": table, "id": id, "values": values, "expected_version": expected_version}
    return _sql_write(ctx, "update_row", arguments,
                      lambda conn: stack_sql.update_row(conn, table, id, values, expected_version))


@server.tool(annotations=OVERWRITE)
def delete_row(ctx: Context, table: str, id: int, expected_version: int) -> dict[str, Any]:
    """Delete row ID of TABLE if it is still at EXPECTED_VERSION; otherwise nothing is changed."""
    return _sql_write(ctx, "delete_row", {"table": table, "id": id, "expected_version": expected_version},
                      lambda conn: stack_sql.delete_row(conn, table, id, expected_version))


# -- key-value -----------------------------------------------------------------------------


@server.tool(annotations=READ)
def kv_get(key: str) -> dict[str, Any]:
    """Read KEY: its value (null when absent) and version (0 when absent)."""
    return stack().kv.get(key)


@server.tool(annotations=OVERWRITE)
def kv_set(ctx: Context, key: str, value: str, if_version: int | None = None) -> dict[str, Any]:
    """Set KEY to VALUE; returns the new version. With if_version=N only if KEY is at version N
    (0: only if KEY does not exist yet); on a mismatch nothing is changed."""
    arguments = {"key": key, "value": value, "if_version": if_version}
    return _kv_write(ctx, "kv_set", arguments,
                     lambda keyed: stack().kv.set(key, value, if_version, keyed),
                     lambda conn: stack().kv.set(conn, key, value, if_version))


@server.tool(annotations=OVERWRITE)
def kv_delete(ctx: Context, key: str, if_version: int | None = None) -> dict[str, Any]:
    """Delete KEY. With if_version=N only if KEY is at version N; on a mismatch nothing is changed."""
    arguments = {"key": key, "if_version": if_version}
    return _kv_write(ctx, "kv_delete", arguments,
                     lambda keyed: stack().kv.delete(key, if_version, keyed),
                     lambda conn: stack().kv.delete(conn, key, if_version))


@server.tool(annotations=MUTATE)
def kv_incr(ctx: Context, key: str, by: int = 1) -> dict[str, Any]:
    """Add BY to the integer value of KEY (a missing key counts as 0), atomically; returns the
    new value and version. Not idempotent: send an idempotency key to make a retry safe."""
    return _kv_write(ctx, "kv_incr", {"key": key, "by": by},
                     lambda keyed: stack().kv.incr(key, by, keyed),
                     lambda conn: stack().kv.incr(conn, key, by))


def main() -> None:
    stack()  # fail at start, not at the first call, when the configuration is wrong
    server.run("stdio")


if __name__ == "__main__":
    main()
