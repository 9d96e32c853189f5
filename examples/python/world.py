"""A throwaway world for the examples: an object folder and a SQLite metadata database in a
temporary folder (STORE_DIR, STORE_DB), and the scripted agent's moves."""

import json
import os
import re
import sqlite3
import tempfile


def make_world():
    """Create the world and point STORE_DIR/STORE_DB at it; returns its folder."""
    import atexit
    import shutil

    root = tempfile.mkdtemp(prefix="drygate-example-")
    atexit.register(shutil.rmtree, root, True)
    os.environ["STORE_DIR"] = os.path.join(root, "objects")
    os.environ["STORE_DB"] = os.path.join(root, "meta.db")
    os.makedirs(os.environ["STORE_DIR"])
    with sqlite3.connect(os.environ["STORE_DB"]) as db:
        db.execute("CREATE TABLE files (key TEXT PRIMARY KEY, etag TEXT, size INTEGER)")
    return root


def world_state():
    """What the world holds: object paths and metadata rows."""
    objects = sorted(os.path.relpath(os.path.join(d, f), os.environ["STORE_DIR"])
                     for d, _, files in os.walk(os.environ["STORE_DIR"]) for f in files)
    with sqlite3.connect(os.environ["STORE_DB"]) as db:
        rows = db.execute("SELECT key, etag FROM files ORDER BY key").fetchall()
    return {"objects": objects, "rows": rows}


def policy_text():
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "drygate.toml"), encoding="utf-8") as f:
        return f.read()


def next_move(results):
    """The scripted agent: read the table, put an object, record its etag, put another, record it.
    Where a put was not executed it passes drygate's reference token for the etag, as told."""
    def etag(result):
        text = result if isinstance(result, str) else json.dumps(result)
        if "NOT EXECUTED" in text:
            return re.search(r"drygate:ref:\d+", text).group(0) + ":etag"
        return json.loads(text)["etag"]

    moves = [lambda: ("query", {"sql": "SELECT key FROM files"}),
             lambda: ("put_object", {"bucket": "reports", "key": "q3.txt", "body": "revenue up"}),
             lambda: ("query", {"sql": f"INSERT INTO files VALUES ('q3.txt', '{etag(results[1])}', 10)"}),
             lambda: ("put_object", {"bucket": "reports", "key": "q4.txt", "body": "revenue flat"}),
             lambda: ("query", {"sql": f"INSERT INTO files VALUES ('q4.txt', '{etag(results[3])}', 12)"})]
    return moves[len(results)]() if len(results) < len(moves) else None
