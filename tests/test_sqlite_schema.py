"""The SQLite store's schema 6: a store made by the previous version (schema 5) opens and is
upgraded in place with its runs, journal, sequence and counters intact; decisions are counted
in lazily (drygate.state.sqlite, "Counters") and sequence numbers are never reused."""

import sqlite3

from drygate.counters import RUNS_WENT_DRY
from drygate.state.sqlite import COUNT_IN_EVERY, SCHEMA_VERSION, SQLiteStore
from drygate.types import LIVE, STICKY, TransitionRequest

ENTRY = {"call_id": None, "agent_id": None, "tool_name": "t", "tool_input": {}, "effect": "write", "rule_id": "x",
         "why": "w", "tamper": False, "policy_hash": "h", "host": "test"}

#: Schema 5 as drygate 2356eb1 (the version before schema 6) created it, statement for statement.
SCHEMA_5 = (
    "CREATE TABLE IF NOT EXISTS runs ("
    " run_id TEXT PRIMARY KEY, mode TEXT NOT NULL, dry_since INTEGER, dry_at REAL, dry_cause TEXT,"
    " dry_call INTEGER,"
    " created_at REAL NOT NULL, last_seen_at REAL NOT NULL, calls INTEGER NOT NULL DEFAULT 0,"
    " writes INTEGER NOT NULL DEFAULT 0, dry_writes INTEGER NOT NULL DEFAULT 0,"
    " allowed_writes INTEGER NOT NULL DEFAULT 0, denied INTEGER NOT NULL DEFAULT 0,"
    " asked INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS journal ("
    " seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL, ts REAL NOT NULL, kind TEXT NOT NULL, call INTEGER,"
    " call_id TEXT, agent_id TEXT, tool_name TEXT, tool_input TEXT, effect TEXT, rule_id TEXT,"
    " why TEXT, action TEXT, made_run_dry INTEGER NOT NULL DEFAULT 0, dry_because_of INTEGER,"
    " tamper INTEGER NOT NULL DEFAULT 0, policy_hash TEXT, host TEXT, result TEXT, context TEXT)",
    "CREATE INDEX IF NOT EXISTS journal_run ON journal(run_id, seq)",
    "CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO counter(id, seq) VALUES (1, 0)",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)


def schema_5_store(path):
    """A schema-5 file as the previous version leaves it: a run that went dry at seq 2, a live run,
    a result, and a pruned run whose entries (seqs 5-7) are gone, so counter.seq is past the journal."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    for stmt in SCHEMA_5:
        db.execute(stmt)
    db.executemany("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", [
        ("dry", "sticky", 2, 2.0, "put", 2, 1.0, 2.0, 2, 2, 1, 1, 0, 0),
        ("live", "sticky", None, None, None, None, 3.0, 3.0, 1, 0, 0, 0, 0, 0)])
    rows = [(1, "dry", 1.0, "call", 1, "write", "allow", 0, None, '{"k": 1}', None),
            (2, "dry", 2.0, "call", 2, "write", "dry", 1, 2, '{"k": 2}', None),
            (3, "live", 3.0, "call", 1, "read", "allow", 0, None, '{}', None),
            (4, "live", 3.5, "result", None, None, None, 0, None, None, '{"ok": true}')]
    db.executemany("INSERT INTO journal (seq, run_id, ts, kind, call, effect, action, made_run_dry, dry_because_of,"
                   " tool_input, result, tool_name, policy_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,'put','h')", rows)
    db.execute("UPDATE counter SET seq = 7")
    db.executemany("INSERT INTO counters VALUES (?, ?)", [
        ("decisions|write|allow", 2), ("decisions|write|dry", 1), ("decisions|read|allow", 1),
        (RUNS_WENT_DRY, 1), ("latency|claude-code|0.001", 4)])
    db.execute("PRAGMA user_version=5")
    db.close()


def test_a_store_made_by_the_previous_version_is_upgraded_in_place(tmp_path):
    path = tmp_path / "state.db"
    schema_5_store(path)
    store = SQLiteStore(path)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
    assert "WITHOUT ROWID" in db.execute("SELECT sql FROM sqlite_master WHERE name = 'runs'").fetchone()[0]
    db.close()
    dry = store.get_run("dry")
    assert (dry.mode, dry.dry_since, dry.dry_cause, dry.dry_call, dry.calls, dry.dry_writes) == \
        ("sticky", 2, "put", 2, 2, 1)
    assert [r.run_id for r in store.list_runs()] == ["live", "dry"]
    assert [(e["seq"], e["kind"], e["action"], e["tool_input"], e["result"]) for e in store.journal()] == [
        (1, "call", "allow", {"k": 1}, None), (2, "call", "dry", {"k": 2}, None), (3, "call", "allow", {}, None),
        (4, "result", None, None, {"ok": True})]
    assert store.counters() == {"decisions|write|allow": 2, "decisions|write|dry": 1, "decisions|read|allow": 1,
                                RUNS_WENT_DRY: 1, "latency|claude-code|0.001": 4}
    # Still dry after the upgrade; the next number follows the pruned ones; it is counted.
    o = store.transact("dry", TransitionRequest(LIVE, True, False, "allow"), ENTRY, lambda: 9.0)
    assert (o.action, o.seq, o.dry_because_of, o.call) == ("dry", 8, 2, 3)
    assert store.record_result("live", "c", "t", {"x": 1}, 9.5) == 9
    assert store.counters()["decisions|write|dry"] == 2
    store.close()
    SQLiteStore(path).close()  # opens again as it is


def test_counts_stay_equal_to_the_journal_across_count_ins_and_prune(tmp_path):
    store = SQLiteStore(tmp_path / "state.db")
    n = 3 * COUNT_IN_EVERY + 5
    for i in range(n):
        run = "old" if i < COUNT_IN_EVERY + 3 else "new"
        store.transact(run, TransitionRequest(STICKY, i % 2 == 0, i == 10, "allow"),
                       dict(ENTRY, effect="write" if i % 2 == 0 else "read"), lambda: 1.0 if run == "old" else 50.0)
        if i % 7 == 0:
            store.record_result(run, None, "t", {}, 1.0, durable=False)
    writes_in_old = (COUNT_IN_EVERY + 3 + 1) // 2
    expected = {"decisions|write|allow": (n + 1) // 2 - writes_in_old + 5, "decisions|write|dry": writes_in_old - 5,
                "decisions|read|allow": n // 2, RUNS_WENT_DRY: 1}
    assert store.counters() == expected
    counted = sqlite3.connect(tmp_path / "state.db").execute("SELECT counted FROM counter").fetchone()[0]
    assert 0 < counted and store.journal()[-1]["seq"] - counted < COUNT_IN_EVERY
    last = store.journal()[-1]["seq"]
    assert store.prune(10.0, 55.0) > 0 and store.journal("new")  # the old run's entries go; their counts stay
    assert store.counters() == expected
    # A number removed by prune is never given again, even when the journal's newest went too.
    assert store.prune(10.0, 1000.0) > 0 and store.journal() == []
    assert store.transact("x", TransitionRequest(LIVE, False, False, "allow"), ENTRY, lambda: 2000.0).seq == last + 1
    store.close()
