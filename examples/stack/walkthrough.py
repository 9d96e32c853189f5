"""The incident, dry run -> plan -> review -> apply, against the stack server. Runnable.

An agent uploads a file, records it in the database (the database generates the id)
and points a key-value entry at the new row. Here a scripted MCP client stands in for
the agent (any MCP client, Claude Code included, makes the same calls through the relay):

1. a dry run through the relay (`drygate mcp`): nothing reaches S3, SQLite or the
   key-value store; the insert's unknown id comes back as the token drygate:ref:3:id,
   which the agent passes on instead of inventing an id;
2. `drygate plan RUN --out plan.json`: the saved plan, shown like a Terraform plan;
3. `drygate apply plan.json --yes`: the three writes, in order, the token replaced by
   the real id;
4. `drygate apply plan.json` again: refused, a plan applies once.

Needs: drygate installed (`pip install -e .` at the repository root, with `moto[server]`
and `boto3`, as the test extra has them). Starts its own local S3 (moto) and works in a
temporary folder. Usage: python examples/stack/walkthrough.py
"""

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def drygate(project, *args):
    """Run the drygate CLI in ``project``, echoing the command and its output."""
    print(f"\n$ drygate {' '.join(args)}", flush=True)
    exe = shutil.which("drygate") or os.path.join(os.path.dirname(sys.executable), "drygate")
    proc = subprocess.run([exe, *args, "--project", project], text=True, capture_output=True,
                          env=dict(os.environ, COLUMNS="160"))
    print(proc.stdout + proc.stderr, end="", flush=True)
    return proc.returncode


def state(db, s3, bucket):
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, key, size FROM files").fetchall()
        kv = conn.execute("SELECT key, value FROM _stack_kv").fetchall() if conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = '_stack_kv'").fetchone() else []
    objects = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents") or []]
    return {"objects": objects, "rows": rows, "kv": kv}


async def dry_run(project, db, s3_url, bucket):
    from mcp import Client, StdioServerParameters

    env = dict(os.environ, **AWS, STACK_DB=db, STACK_S3_URL=s3_url, DRYGATE_MODE="dry", DRYGATE_RUN_ID="upload-1",
               CLAUDE_PROJECT_DIR=project)
    relay = StdioServerParameters(command=sys.executable, args=[
        "-m", "drygate.cli.entry", "mcp", "--name", "stack", "--project", project, "--",
        sys.executable, os.path.join(HERE, "stack_server.py")], env=env)
    calls = [("kv_get", {"key": "latest_upload"}),
             ("put_object", {"bucket": bucket, "key": "uploads/a.png", "body": "png bytes", "if_none_match": "*"}),
             ("insert_row", {"table": "files", "values": {"key": "uploads/a.png", "size": 9}}),
             ("kv_set", {"key": "latest_upload", "value": "drygate:ref:3:id", "if_version": 0})]
    async with Client(relay, cache=None) as client:
        await client.list_tools()
        for tool, args in calls:
            result = await client.call_tool(tool, args)
            text = " ".join(c.text for c in result.content if getattr(c, "text", None))
            meta = ((result.meta or {}).get("drygate") or {}) if hasattr(result, "meta") else {}
            print(f"agent -> {tool}({json.dumps(args)})\n  <- {' '.join(text.split())[:160]}...")
            if meta.get("reference"):
                print(f"     unknown result, stand-in token: {meta['reference']}[:FIELD]")


def main():
    import boto3
    from moto.server import ThreadedMotoServer

    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    os.environ.update(AWS)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    s3_url = f"http://{host}:{port}"
    project = tempfile.mkdtemp(prefix="drygate-walkthrough-")
    db = os.path.join(project, "stack.db")
    bucket = "uploads"
    s3 = boto3.client("s3", endpoint_url=s3_url)
    s3.create_bucket(Bucket=bucket)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE files (id INTEGER PRIMARY KEY AUTOINCREMENT, version INTEGER NOT NULL, "
                     "key TEXT UNIQUE, size INTEGER)")
    shutil.copy(os.path.join(HERE, "drygate.toml"), os.path.join(project, "drygate.toml"))
    with open(os.path.join(project, ".mcp.json"), "w") as f:  # how apply starts the real server
        json.dump({"mcpServers": {"stack": {"command": sys.executable, "args": [os.path.join(HERE, "stack_server.py")],
                                            "env": dict(AWS, STACK_DB=db, STACK_S3_URL=s3_url)}}}, f)
    print(f"project: {project}\n\n1. The dry run, through the relay:")
    asyncio.run(dry_run(project, db, s3_url, bucket))
    print(f"\nthe stores after the dry run: {state(db, s3, bucket)} (nothing was written)")
    print("\n2. The saved plan, for review:")
    drygate(project, "plan", "upload-1", "--out", os.path.join(project, "plan.json"))
    print("\n3. Apply it:")
    code = drygate(project, "apply", os.path.join(project, "plan.json"), "--yes")
    print(f"\nthe stores after apply: {state(db, s3, bucket)}")
    print("\n4. Apply it again:")
    again = drygate(project, "apply", os.path.join(project, "plan.json"), "--yes")
    server.stop()
    return 0 if code == 0 and again == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
