"""The seed's incident as Python tools (examples/incident): an object-store put, then a SQL
insert of the object's metadata. Both have real side effects:

- ``put_object(bucket, key, body)`` writes ``$STORE_DIR/<bucket>/<key>`` and returns
  ``{"bucket", "key", "size", "etag"}`` (the etag is the MD5 of the body, as S3 computes it
  for a single PUT);
- ``query(sql)`` runs one statement on the SQLite file ``$STORE_DB``: the rows of a SELECT,
  else ``{"rowcount": n}`` (committed).

``drygate.toml`` next to it declares both appliable, so ``drygate apply`` can run the plan of
a dry run with them.
"""

import hashlib
import os
import sqlite3


def put_object(bucket: str, key: str, body: str) -> dict:
    """Store ``body`` as the object ``key`` in ``bucket``; returns its size and etag."""
    folder = os.path.join(os.environ["STORE_DIR"], bucket)
    os.makedirs(folder, exist_ok=True)
    data = body.encode("utf-8")
    with open(os.path.join(folder, key), "wb") as f:
        f.write(data)
    return {"bucket": bucket, "key": key, "size": len(data), "etag": hashlib.md5(data).hexdigest()}


def query(sql: str) -> dict:
    """Run one SQL statement on the metadata database; SELECT returns its rows."""
    with sqlite3.connect(os.environ["STORE_DB"]) as db:
        cur = db.execute(sql)
        if cur.description is not None:
            return {"rows": [list(r) for r in cur.fetchall()]}
        return {"rowcount": cur.rowcount}
