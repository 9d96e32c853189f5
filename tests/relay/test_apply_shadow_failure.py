"""The plan marks a step that would fail (issue 12 item 6): a dry write the run's shadow
server answered with the server's own error (a version mismatch, a constraint) is marked
in the plan; the review shows where apply will stop, and apply stops before that step
after applying the ones before it. The real relay with --shadow in front of
examples/stack/stack_server.py on a real SQLite file."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

from .conftest import DRYGATE, Server, clean_env

STACK_SERVER = Path(__file__).resolve().parents[2] / "examples" / "stack" / "stack_server.py"


def test_a_write_the_shadow_answered_with_an_error_stops_apply_before_it(project, tmp_path):
    db = tmp_path / "stack.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, version INTEGER NOT NULL)")
    conn.execute("INSERT INTO items (name, version) VALUES ('washer', 1)")
    conn.commit()
    conn.close()
    server = Server("stack", [sys.executable, str(STACK_SERVER)], clean_env({"STACK_DB": str(db)}), {"db": db})
    project.policy("dry", extra='[mcp]\ntrusted_servers = ["stack"]\n')
    (project.root / ".mcp.json").write_text(json.dumps({"mcpServers": {"stack": {
        "command": server.argv[0], "args": server.argv[1:], "env": {"STACK_DB": str(db)}}}}))
    argv = [*DRYGATE, "mcp", "--name", "stack", "--project", str(project.root), "--shadow", str(db), "--",
            *server.argv]
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=project.relay_env(server, "dry", "s1"))
    steps = [("insert_row", {"table": "items", "values": {"name": "bolt"}}),
             ("update_row", {"table": "items", "id": 1, "values": {"name": "nut"}, "expected_version": 7}),
             ("insert_row", {"table": "items", "values": {"name": "screw"}})]

    async def session():
        async with Client(params, cache=None) as client:
            await client.list_tools()
            return [(await client.call_tool(t, a)).model_dump(mode="json", by_alias=True, exclude_none=True)
                    for t, a in steps]

    results = anyio.run(session)
    assert [r.get("isError", False) for r in results] == [False, True, False]
    plan_path = tmp_path / "plan.json"
    shown = project.cli("plan", "s1", "--out", str(plan_path))
    plan = json.loads(plan_path.read_text())
    assert [s["problem"] is None for s in plan["steps"]] == [True, False, True]
    assert "version mismatch" in plan["steps"][1]["problem"] and "shadow" in plan["steps"][1]["problem"]
    review = project.cli("plan", str(plan_path))
    assert "apply will stop before step 2" in review.stdout.replace("\n", " "), review.stdout + shown.stdout
    r = subprocess.run([*DRYGATE, "apply", str(plan_path), "--project", str(project.root), "--yes"],
                       capture_output=True, text=True, timeout=120,
                       env=clean_env({"DRYGATE_STATE": str(project.state), "COLUMNS": "200"}))
    assert r.returncode == 1 and "STOPPED at step 2" in r.stderr and "version mismatch" in r.stderr, r.stderr
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name, version FROM items ORDER BY id").fetchall()
    assert rows == [("washer", 1), ("bolt", 1)], rows  # step 1 applied; 2 and 3 not
