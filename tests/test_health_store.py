"""Guard-health counters in the state store: atomic with the journal, on every store.

The counters are what ``drygate metrics`` and ``drygate status`` read; hook processes and
relays of a fleet add to them through the shared store. The invariant: after any
interleaving, ``decisions|<effect>|<action>`` and ``runs_went_dry`` equal what the
journal holds.
"""

import multiprocessing
import os
import sqlite3
from collections import Counter

import pytest

from drygate.counters import RUNS_WENT_DRY, decision_counter, latency_increments
from drygate.engine import Engine
from drygate.errors import StoreUnavailable
from drygate.policy.load import compile_policy_text
from drygate.state.sqlite import SCHEMA_VERSION, SQLiteStore
from drygate.types import DRY, LIVE, STICKY, ToolCall, TransitionRequest

ENTRY = {"call_id": None, "agent_id": None, "tool_name": "t", "tool_input": {}, "effect": "write", "rule_id": "x",
         "why": "w", "tamper": False, "policy_hash": "h", "host": "test"}


def at(t):
    return lambda: t


def journal_counts(journal):
    """The counters a journal implies: {name: int}."""
    counts = Counter()
    for e in journal:
        if e["kind"] == "call":
            counts[decision_counter(e["effect"], e["action"])] += 1
            if e["made_run_dry"]:
                counts[RUNS_WENT_DRY] += 1
    return dict(counts)


def decision_counters(store):
    return {k: v for k, v in store.counters().items() if k.startswith("decisions|") or k == RUNS_WENT_DRY}


def test_fresh_store_has_no_counters(store):
    assert store.counters() == {}


def test_transact_counts_each_decision_and_the_dry_transition(store):
    calls = [
        ("a", TransitionRequest(STICKY, False, False, "allow"), "read"),
        ("a", TransitionRequest(STICKY, True, False, "allow"), "write"),
        ("a", TransitionRequest(STICKY, True, True, "allow"), "write"),  # makes run a dry
        ("a", TransitionRequest(STICKY, True, False, "allow"), "unknown"),
        ("b", TransitionRequest(DRY, True, False, "allow"), "external"),  # run b is dry from its start
        ("c", TransitionRequest(LIVE, True, False, "deny"), "write"),
        ("c", TransitionRequest(LIVE, False, False, "ask"), "read"),
    ]
    for i, (run, req, effect) in enumerate(calls):
        store.transact(run, req, dict(ENTRY, effect=effect), at(float(i)))
    assert decision_counters(store) == {
        "decisions|read|allow": 1, "decisions|write|allow": 1, "decisions|write|dry": 1,
        "decisions|unknown|dry": 1, "decisions|external|dry": 1, "decisions|write|deny": 1,
        "decisions|read|ask": 1, RUNS_WENT_DRY: 2}
    assert decision_counters(store) == journal_counts(store.journal())


def test_add_counters_adds_and_keeps_other_counters(store):
    store.transact("r", TransitionRequest(LIVE, False, False, "allow"), dict(ENTRY, effect="read"), at(1.0))
    store.add_counters(latency_increments("claude-code", 0.004))
    store.add_counters(latency_increments("claude-code", 0.004))
    store.add_counters(latency_increments("mcp-relay", 30.0))
    store.add_counters({})
    c = store.counters()
    assert c["latency|claude-code|0.005"] == 2 and c["latency_count|claude-code"] == 2
    assert c["latency_sum_us|claude-code"] == 8000
    assert c["latency|mcp-relay|+Inf"] == 1 and c["latency_sum_us|mcp-relay"] == 30_000_000
    assert c["decisions|read|allow"] == 1


def test_latency_increments_pick_exactly_one_bucket():
    assert latency_increments("h", 0.0)["latency|h|0.0005"] == 1
    assert "latency|h|0.001" in latency_increments("h", 0.001)  # a bound belongs to its own bucket
    assert "latency|h|0.0025" in latency_increments("h", 0.0010001)
    assert "latency|h|20.0" in latency_increments("h", 20.0)
    assert "latency|h|+Inf" in latency_increments("h", 20.5)
    assert len(latency_increments("h", 0.3)) == 3


POLICY = '''
[run]
mode = "sticky"
[[rules]]
tool_glob = "mcp__r2__*"
effect = "write"
dry = true
[[rules]]
tool_glob = "mcp__d1__*"
effect = "write"
[[rules]]
tool = "mcp__d1__select"
effect = "read"
[[rules]]
tool = "mcp__pay__charge"
effect = "external"
action = "deny"
'''
TOOLS = ["mcp__r2__put", "mcp__d1__insert", "mcp__d1__select", "mcp__pay__charge", "Write", "Read"]


def _decider(args):
    path, worker, n, barrier = args
    import random

    rnd = random.Random(worker)
    store = SQLiteStore(path, busy_timeout_s=60, synchronous="NORMAL")
    engine = Engine(compile_policy_text(POLICY), store)
    while not os.path.exists(barrier):
        pass
    for i in range(n):
        engine.decide(ToolCall(rnd.choice(TOOLS), {"file_path": "x"}, f"run-{rnd.randrange(6)}"))
        if i % 7 == 0:
            store.add_counters(latency_increments("claude-code", rnd.random() / 50))
    store.close()
    return n


def test_parallel_processes_counters_equal_the_journal(tmp_path):
    """Six processes decide on one SQLite file (and add latency counters in between);
    afterwards every decision counter equals the journal's count, with nothing lost."""
    path, barrier = str(tmp_path / "state.db"), str(tmp_path / "go")
    SQLiteStore(path).close()
    workers, per_worker = 6, 60
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pending = pool.map_async(_decider, [(path, w, per_worker, barrier) for w in range(workers)])
        open(barrier, "w").close()
        assert sum(pending.get(180)) == workers * per_worker
    store = SQLiteStore(path)
    journal = store.journal()
    assert len(journal) == workers * per_worker
    assert decision_counters(store) == journal_counts(journal)
    assert store.counters()[RUNS_WENT_DRY] == sum(1 for e in journal if e["made_run_dry"]) > 0
    assert store.counters()["latency_count|claude-code"] == workers * len(range(0, per_worker, 7))
    store.close()


def test_schema_3_file_is_upgraded_with_counters_from_its_journal(tmp_path):
    """A state file written before the counters existed keeps working; its counters start
    from its journal (a dry run stays dry across the upgrade)."""
    path = tmp_path / "state.db"
    store = SQLiteStore(path)
    store.transact("r", TransitionRequest(STICKY, True, False, "allow"), ENTRY, at(1.0))
    store.transact("r", TransitionRequest(STICKY, True, True, "allow"), ENTRY, at(2.0))
    store.transact("r", TransitionRequest(STICKY, False, False, "allow"), dict(ENTRY, effect="read"), at(3.0))
    store.close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE counters")  # what a schema-3 file looks like
    db.execute("PRAGMA user_version=3")
    db.commit()
    db.close()
    store = SQLiteStore(path)
    assert decision_counters(store) == journal_counts(store.journal()) == {
        "decisions|write|allow": 1, "decisions|write|dry": 1, "decisions|read|allow": 1, RUNS_WENT_DRY: 1}
    assert store.transact("r", TransitionRequest(LIVE, True, False, "allow"), ENTRY, at(4.0)).action == "dry"
    assert store.counters()["decisions|write|dry"] == 2
    store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_newer_schema_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "state.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreUnavailable, match="newer drygate"):
        SQLiteStore(path)
