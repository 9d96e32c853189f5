"""The review page's "Check the basis now": apply's own basis check (the run's reads re-run
through the real MCP server behind .mcp.json, the tools' schemas, files, policy) shown per
read as fresh, changed or not re-checked, and a plan found stale cannot be approved.

The run goes through the real relay (`drygate mcp`) with examples/incident's store server,
as tests/relay/test_apply.py does."""

import json
import re
import sqlite3
import subprocess
import sys

import anyio
import httpx
import pytest

from relay.conftest import Project as RelayProject
from relay.conftest import Server, clean_env
from relay.test_apply import CALLS, RULES, STORE_SERVER, dry_run, write_mcp_json


@pytest.fixture
def relayed(tmp_path):
    objects, db = tmp_path / "objects", tmp_path / "meta.db"
    objects.mkdir()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE objects (key TEXT PRIMARY KEY, size INTEGER)")
    server = Server("store", [sys.executable, str(STORE_SERVER)],
                    env=clean_env({"STORE_DIR": str(objects), "STORE_DB": str(db)}), paths={"objects": objects, "db": db})
    project = RelayProject(tmp_path / "project")
    project.policy("sticky", RULES)
    write_mcp_json(project, server)
    anyio.run(dry_run, project, server, "basis-run", CALLS)
    plan_path = tmp_path / "plan.json"
    project.cli("plan", "basis-run", "--out", str(plan_path))
    return project, server, plan_path


def review_data(project, plan_path):
    from drygate.plan.artifact import load_plan
    from drygate.policy.load import load_policy_file
    from drygate.review.view import ReviewData
    from drygate.state import open_store

    return ReviewData(load_plan(plan_path), str(plan_path), open_store(str(project.state)),
                      load_policy_file(project.root / "drygate.toml"), str(project.root))


def test_each_read_is_fresh_changed_or_not_rechecked(relayed):
    project, server, plan_path = relayed
    data = review_data(project, plan_path)
    [read] = [b for b in data.basis() if b["what"] == "read"]
    assert read["status"] == "re-checked at apply" and "SELECT count(*) FROM objects" in read["name"]
    anyio.run(data.check_basis_now)
    [read] = [b for b in data.basis() if b["what"] == "read"]
    [catalog] = [b for b in data.basis() if b["what"] == "server"]
    assert read["status"] == "fresh" and catalog["status"] == "fresh" and data.stale() == []
    with sqlite3.connect(server.paths["db"]) as conn:  # someone else changes what the run read
        conn.execute("INSERT INTO objects VALUES ('other', 1)")
    anyio.run(data.check_basis_now)
    [read] = [b for b in data.basis() if b["what"] == "read"]
    assert read["status"] == "changed" and "returns something else now" in read["detail"]
    assert data.stale() and not (server.paths["objects"] / "assets").exists()  # reads only: no step ran


def test_the_page_checks_the_basis_and_then_refuses_a_stale_plan(relayed):
    project, server, plan_path = relayed
    proc = subprocess.Popen([sys.executable, "-m", "drygate.cli.entry", "review", str(plan_path), "--project",
                             str(project.root)], env=clean_env({"DRYGATE_STATE": str(project.state)}),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        while url is None:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            m = re.search(r"open (http://\S+)", line)
            url = m and m.group(1)
        base = url.split("/?")[0]
        client = httpx.Client(base_url=base, timeout=60, follow_redirects=True)
        html = client.get(url.replace(base, "")).text
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)
        assert client.post("/check-basis", data={"csrf": "x"}, headers={"Origin": base}).status_code == 403
        with sqlite3.connect(server.paths["db"]) as conn:
            conn.execute("INSERT INTO objects VALUES ('other', 1)")
        page = client.post("/check-basis", data={"csrf": csrf}, headers={"Origin": base})
        assert page.status_code == 200 and 'id="basis-changes"' in page.text
        assert "returns something else now" in page.text and "STALE" in page.text
        plan_hash = json.loads(plan_path.read_text())["content_hash"]
        r = client.post("/decide", data={"csrf": csrf, "plan_hash": plan_hash, "decision": "approve"},
                        headers={"Origin": base})
        assert r.status_code == 409 and "stale" in r.text
    finally:
        proc.terminate()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
