"""A small, real MCP server ("store") for the orphan-record incident.

Two tools, both with real side effects:

- ``put_object(bucket, key, body)`` writes ``$STORE_DIR/<bucket>/<key>``
  (an object-store put; the directory stands in for S3/R2).
- ``query(sql)`` runs SQL against the SQLite file ``$STORE_DB`` (stands in for
  D1 / the metadata database) and returns the rows of a SELECT or the rowcount
  of anything else. Writes are committed.

Run over stdio (MCP Python SDK 2.x, ``pip install 'mcp>=2.3,<3'``):

    STORE_DIR=/srv/app/objects STORE_DB=/srv/app/meta.db python store_server.py

Neither tool declares annotations on purpose: per the MCP spec the defaults are
the worst case (not read-only, destructive, open-world), which is what an
untrusted server gives a gate to work with.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

from mcp.server.mcpserver import MCPServer

server = MCPServer("store")


def _store_dir() -> Path:
    value = os.environ.get("STORE_DIR")
    if not value:
        raise RuntimeError("STORE_DIR is not set")
    return Path(value)


def _safe_part(part: str, what: str) -> str:
    if not part or part in (".", "..") or "\x00" in part:
        raise ValueError(f"invalid {what}: {part!r}")
    return part


@server.tool()
def put_object(bucket: str, key: str, body: str) -> str:
    """Store an object: write BODY as the object KEY in BUCKET. Returns the etag and size."""
    root = _store_dir().resolve()
    target = (root / _safe_part(bucket, "bucket") / key).resolve()
    if root not in target.parents:
        raise ValueError(f"key escapes the bucket: {key!r}")
    for part in Path(key).parts:
        _safe_part(part, "key segment")
    target.parent.mkdir(parents=True, exist_ok=True)
    data = body.encode("utf-8")
    target.write_bytes(data)
    etag = hashlib.md5(data).hexdigest()
    return json.dumps({"ok": True, "bucket": bucket, "key": key, "size": len(data), "etag": etag})


@server.tool()
def query(sql: str) -> str:
    """Run one SQL statement against the metadata database. Returns rows (SELECT) or the rowcount."""
    db = os.environ.get("STORE_DB")
    if not db:
        raise RuntimeError("STORE_DB is not set")
    conn = sqlite3.connect(db)
    try:
        cur = conn.execute(sql)
        if cur.description is not None:
            cols = [d[0] for d in cur.description]
            rows = [dict(zip(cols, row)) for row in cur.fetchall()]
            return json.dumps({"rows": rows})
        conn.commit()
        return json.dumps({"rowcount": cur.rowcount, "lastrowid": cur.lastrowid})
    finally:
        conn.close()


if __name__ == "__main__":
    server.run("stdio")
