"""Plan and apply of Python tools: the incident's tools (a real object folder and a real
SQLite database), `drygate plan` and `drygate apply` as a user runs them."""

import json

import pytest

import drygate


def script(put_object, query):
    """The scripted agent: read, write, write again (the incident: a put, then its metadata)."""
    seen = query(sql="SELECT key FROM files")
    first = put_object(bucket="reports", key="q3.txt", body="revenue up")
    etag = first["etag"] if first else first.ref("etag")
    query(sql=f"INSERT INTO files (key, etag, size) VALUES ('q3.txt', '{etag}', 10)")
    second = put_object(bucket="reports", key="q4.txt", body="revenue flat")
    query(sql=f"INSERT INTO files (key, etag, size) VALUES ('q4.txt', '{second['etag'] if second else second.ref('etag')}', 12)")
    return seen


def live_end_state(incident):
    """The end state of the script run for real (no gate), in a world of its own."""
    import incident_tools

    live = incident.make("live")
    env = {"STORE_DIR": str(live.objects), "STORE_DB": str(live.db)}
    import os

    old = {k: os.environ[k] for k in env}
    os.environ.update(env)
    try:
        script(incident_tools.put_object, incident_tools.query)
    finally:
        os.environ.update(old)
    return live.state()


def dry_run(incident, run_id="agent-1"):
    import incident_tools

    gate = drygate.open_gate(incident.root)
    tools = gate.wrap({"put_object": incident_tools.put_object, "query": incident_tools.query})
    with gate.run(run_id):
        seen = script(tools["put_object"], tools["query"])
    gate.close()
    return seen


def test_a_dry_run_changes_nothing_and_plan_then_apply_reproduce_the_live_end_state(incident):
    expected = live_end_state(incident)
    before = incident.state()
    assert dry_run(incident) == {"rows": [["old.txt"]]}  # the read ran for real
    assert incident.state() == before  # nothing changed
    r = incident.drygate("plan", "agent-1", "--out", "plan.json")
    assert r.returncode == 0, r.stderr
    plan = json.loads((incident.root / "plan.json").read_text())
    assert [s["executor"] for s in plan["steps"]] == [{"kind": "python", "function": "put_object"},
                                                      {"kind": "python", "function": "query"}] * 2
    assert plan["steps"][1]["references"][0]["token"] == "drygate:ref:2:etag"
    assert not any(s["problem"] for s in plan["steps"])
    import jsonschema

    from .conftest import REPO

    schema = json.loads((REPO / "docs" / "plan.schema.json").read_text())
    assert not list(jsonschema.Draft202012Validator(schema).iter_errors(plan))
    r = incident.drygate("apply", "plan.json", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "applied 4 of 4" in r.stdout
    assert incident.state() == expected
    r = incident.drygate("apply", "plan.json", "--yes")  # a plan applies once
    assert r.returncode != 0 and "already applied" in r.stderr


def test_a_read_that_returns_something_else_now_makes_the_plan_stale(incident):
    import sqlite3

    dry_run(incident)
    assert incident.drygate("plan", "agent-1", "--out", "plan.json").returncode == 0
    plan = json.loads((incident.root / "plan.json").read_text())
    [read] = plan["basis"]["reads"]
    assert read["tool_name"] == "query" and read["repeatable"] and read["executor"]["kind"] == "python"
    with sqlite3.connect(incident.db) as db:  # someone else writes what the run read
        db.execute("INSERT INTO files VALUES ('new.txt', 'e1', 1)")
    r = incident.drygate("apply", "plan.json", "--yes")
    assert r.returncode != 0 and "returns something else now" in r.stderr
    assert incident.state()[0] == {}  # nothing ran
    r = incident.drygate("apply", "plan.json", "--yes", "--force")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(incident.state()[0]) == ["reports/q3.txt", "reports/q4.txt"]


def test_apply_calls_only_what_the_project_declares(incident):
    dry_run(incident)
    r = incident.drygate("plan", "agent-1", "--out", "plan.json")
    assert r.returncode == 0, r.stderr
    plan = json.loads((incident.root / "plan.json").read_text())
    # A plan that names an import path of its own (content hash recomputed) still runs only
    # the declared functions: apply looks the tool name up in drygate.toml, never in the plan.
    from drygate.plan.fingerprint import fingerprint

    for step in plan["steps"]:
        step["executor"] = {"kind": "python", "function": "os:system", "entry": "os:system"}
    del plan["content_hash"]
    plan["content_hash"] = fingerprint(plan)
    (incident.root / "forged.json").write_text(json.dumps(plan))
    policy = (incident.root / "drygate.toml").read_text()
    (incident.root / "drygate.toml").write_text(policy.replace(', query = "incident_tools:query"', ""))
    r = incident.drygate("plan", "agent-1", "--out", "undeclared.json")
    assert r.returncode == 0, r.stderr
    undeclared = json.loads((incident.root / "undeclared.json").read_text())
    assert "not declared appliable" in undeclared["steps"][1]["problem"]
    r = incident.drygate("apply", "forged.json", "--yes", "--force")  # --force: the policy changed
    assert r.returncode != 0
    # Apply takes the executor from the journal, so the forged one is refused before anything runs.
    assert "not the journal's" in r.stdout + r.stderr
    files, rows = incident.state()
    assert list(files) == [] and rows == [("old.txt", "e0", 3)]  # nothing ran


CHARGES = '''
import json, os
import drygate

LEDGER = os.environ["CHARGES"]

def charge(customer: str, cents: int) -> dict:
    """A payment API with idempotency keys: a retried key is answered, not charged again."""
    key = drygate.idempotency_key()
    book = json.load(open(LEDGER)) if os.path.exists(LEDGER) else {"charges": [], "fail_next": False}
    for c in book["charges"]:
        if key and c["key"] == key:
            return c
    if book.get("fail_next"):
        book["fail_next"] = False
        json.dump(book, open(LEDGER, "w"))
        raise ConnectionError("payment API unreachable")
    c = {"id": f"ch_{len(book['charges']) + 1}", "customer": customer, "cents": cents, "key": key}
    book["charges"].append(c)
    json.dump(book, open(LEDGER, "w"))
    return c
'''


def test_an_interrupted_apply_resumes_and_idempotency_keys_reach_the_function(incident, monkeypatch):
    (incident.root / "billing.py").write_text(CHARGES)
    ledger = incident.root / "charges.json"
    monkeypatch.setenv("CHARGES", str(ledger))
    (incident.root / "drygate.toml").write_text(
        '[run]\nmode = "dry"\n[python]\nappliable = { charge = "billing:charge" }\n')
    import billing

    gate = drygate.open_gate(incident.root)
    charge = gate.tool(billing.charge, effect="external")
    with gate.run("billing-run"):
        assert not charge("ann", 500) and not charge("bob", 700)
    assert not ledger.exists()
    assert incident.drygate("plan", "billing-run", "--out", "plan.json").returncode == 0
    ledger.write_text(json.dumps({"charges": [], "fail_next": False}))
    book = json.loads(ledger.read_text())
    book["fail_next"] = True
    ledger.write_text(json.dumps(book))
    env_note = incident.env(CHARGES=str(ledger))
    import subprocess
    import sys

    run = lambda *a: subprocess.run([sys.executable, "-m", "drygate.cli.entry", *a], cwd=incident.root,
                                    env=env_note, capture_output=True, text=True, timeout=120)
    r = run("apply", "plan.json", "--yes")
    assert r.returncode != 0 and "payment API unreachable" in r.stdout + r.stderr
    assert json.loads(ledger.read_text())["charges"] == []
    r = run("apply", "--resume", "plan.json", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    charges = json.loads(ledger.read_text())["charges"]
    assert [(c["customer"], c["cents"]) for c in charges] == [("ann", 500), ("bob", 700)]
    plan = json.loads((incident.root / "plan.json").read_text())
    assert [c["key"] for c in charges] == [s["idempotency_key"] for s in plan["steps"]]


def test_the_python_api_plans_and_applies_in_process_with_a_memory_store(incident):
    import incident_tools

    expected = live_end_state(incident)
    policy = (incident.root / "drygate.toml").read_text()
    gate = drygate.open_gate(policy=policy, store=drygate.MemoryStore())
    tools = gate.wrap({"put_object": incident_tools.put_object, "query": incident_tools.query})
    with gate.run("mem") as run:
        script(tools["put_object"], tools["query"])
    plan = gate.plan(run.run_id)
    outcome = gate.apply(plan)
    assert outcome["status"] == "applied" and outcome["done"] == 4
    assert incident.state() == expected
    with pytest.raises(drygate.PlanError, match="already applied"):
        gate.apply(plan)
