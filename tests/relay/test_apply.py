"""Plan, review, apply (issue 6) with a real MCP server behind the real relay.

The run goes through ``drygate mcp`` (the relay) in a dry run; ``drygate plan --out``
saves the plan; ``drygate apply`` executes it against the same server, started from the
project's ``.mcp.json`` as the relay would start it. Everything is checked in the real
object folder and SQLite file the server writes, not in drygate's journal.
"""

import json
import sqlite3
import subprocess
import sys

import anyio
import pytest
from mcp import Client

from .conftest import DRYGATE, Server, clean_env

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]
STORE_SERVER = REPO / "examples" / "incident" / "store_server.py"
RULES = (REPO / "examples" / "incident" / "drygate.toml").read_text().split("[[rules]]", 1)[1]
RULES = "[[rules]]" + RULES


@pytest.fixture
def store(tmp_path):
    objects, db = tmp_path / "objects", tmp_path / "meta.db"
    objects.mkdir()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE objects (key TEXT PRIMARY KEY, size INTEGER)")
    return Server("store", [sys.executable, str(STORE_SERVER)], env=clean_env({"STORE_DIR": str(objects),
                                                                             "STORE_DB": str(db)}),
                  paths={"objects": objects, "db": db})


def write_mcp_json(project, server):
    config = {"mcpServers": {server.name: {"command": server.argv[0], "args": server.argv[1:],
                                           "env": {k: server.env[k] for k in ("STORE_DIR", "STORE_DB")}}}}
    (project.root / ".mcp.json").write_text(json.dumps(config), encoding="utf-8")


async def dry_run(project, server, run_id, calls):
    async with Client(project.relay(server, mode="dry", run_id=run_id), cache=None) as client:
        await client.list_tools()
        out = []
        for tool, args in calls:
            out.append((await client.call_tool(tool, args)).model_dump(mode="json", by_alias=True, exclude_none=True))
        return out


CALLS = [("query", {"sql": "SELECT count(*) FROM objects"}),
         ("put_object", {"bucket": "assets", "key": "logo.png", "body": "PNG"}),
         ("query", {"sql": "INSERT INTO objects (key, size) VALUES ('assets/logo.png', 3)"})]


def rows(server):
    with sqlite3.connect(server.paths["db"]) as conn:
        return conn.execute("SELECT key, size FROM objects ORDER BY key").fetchall()


def apply(project, plan_path, *args):
    return subprocess.run([*DRYGATE, "apply", str(plan_path), "--project", str(project.root), *args],
                          capture_output=True, text=True, timeout=120,
                          env=clean_env({"DRYGATE_STATE": str(project.state), "COLUMNS": "200"}))


def test_dry_run_plan_apply_then_refuse_a_second_apply(project, store, tmp_path):
    project.policy("sticky", RULES)
    write_mcp_json(project, store)
    results = anyio.run(dry_run, project, store, "r1", CALLS)
    assert [r.get("isError", False) for r in results] == [False, True, True]
    assert rows(store) == [] and not (store.paths["objects"] / "assets").exists()  # nothing written
    plan_path = tmp_path / "plan.json"
    project.cli("plan", "r1", "--out", str(plan_path))
    plan = json.loads(plan_path.read_text())
    assert [s["executor"] for s in plan["steps"]] == [{"kind": "mcp", "server": "store", "tool": "put_object"},
                                                      {"kind": "mcp", "server": "store", "tool": "query"}]
    assert plan["basis"]["reads"][0]["repeatable"] and plan["basis"]["reads"][0]["fingerprint"]
    assert plan["basis"]["servers"]["store"]["tools"]["put_object"]["fingerprint"]
    r = apply(project, plan_path, "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (store.paths["objects"] / "assets" / "logo.png").read_text() == "PNG"
    assert rows(store) == [("assets/logo.png", 3)]
    again = apply(project, plan_path, "--yes")
    assert again.returncode == 1 and "already applied" in again.stderr
    assert rows(store) == [("assets/logo.png", 3)]  # nothing ran twice
    runs = {r["run_id"]: r for r in project.runs()}
    assert runs["r1"]["apply"] == "applied"


def test_stale_basis_refuses_and_names_what_changed(project, store, tmp_path):
    project.policy("sticky", RULES)
    write_mcp_json(project, store)
    anyio.run(dry_run, project, store, "r2", CALLS)
    plan_path = tmp_path / "plan.json"
    project.cli("plan", "r2", "--out", str(plan_path))
    with sqlite3.connect(store.paths["db"]) as conn:  # someone else changes what the run read
        conn.execute("INSERT INTO objects VALUES ('other', 1)")
    r = apply(project, plan_path, "--yes")
    assert r.returncode == 1 and "REFUSED" in r.stderr and "SELECT count(*) FROM objects" in r.stderr
    assert not (store.paths["objects"] / "assets").exists() and rows(store) == [("other", 1)]
    forced = apply(project, plan_path, "--yes", "--force")
    assert forced.returncode == 0, forced.stderr
    assert rows(store) == [("assets/logo.png", 3), ("other", 1)]


def test_tampered_plan_is_refused(project, store, tmp_path):
    project.policy("sticky", RULES)
    write_mcp_json(project, store)
    anyio.run(dry_run, project, store, "r3", CALLS)
    plan_path = tmp_path / "plan.json"
    project.cli("plan", "r3", "--out", str(plan_path))
    plan = json.loads(plan_path.read_text())
    plan["steps"][1]["input"]["sql"] = "DROP TABLE objects"
    plan_path.write_text(json.dumps(plan))
    r = apply(project, plan_path, "--yes")
    assert r.returncode == 1 and "changed after it was written" in r.stderr
    plan_path.write_text("{not json")
    r = apply(project, plan_path, "--yes")
    assert r.returncode == 1 and "not valid JSON" in r.stderr
    assert rows(store) == []
