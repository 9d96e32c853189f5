"""Decision latency recorded by the real hook process, and what happens when that record fails.

The hook adds one latency record to the state store after its answer is flushed. That
record is statistics: it must never change the answer or the exit status, nor hold the
process for long. The faults are produced inside a real SQLite file by triggers on the
counters table (no mocks): one makes the latency write fail (it stands for a store that
rejects the counters write after accepting the decision), one makes it take seconds
(it stands for a store that stalls right after the decision).
"""

import sqlite3
import time

from conftest import SESSION, write_policy

from drygate.enforcement.claude_code import RECORD_BUDGET_S

STICKY_R2 = '[[rules]]\ntool_glob = "mcp__r2__*"\neffect = "write"\ndry = true\n'


def counters(project):
    store = project.open_store()
    try:
        return store.counters()
    finally:
        store.close()


def test_each_pre_tool_use_decision_records_its_latency(project):
    write_policy(project.root, "sticky", STICKY_R2)
    calls = [("Read", {"file_path": "a"}), ("mcp__r2__put", {"k": 1}), ("Write", {"file_path": "a", "content": "b"})]
    for tool, tool_input in calls:
        project.hook(project.event(tool, tool_input))
    post = project.event("Read", {"file_path": "a"}, hook_event_name="PostToolUse", tool_response="x")
    assert project.hook(post, command=project.post_command).code == 0  # not a decision: no latency
    c = counters(project)
    assert c["latency_count|claude-code"] == 3
    buckets = {k: v for k, v in c.items() if k.startswith("latency|claude-code|")}
    assert sum(buckets.values()) == 3
    assert 0 < c["latency_sum_us|claude-code"] < 3 * 3_000_000  # each within the 3 s deadline
    assert c["decisions|read|allow"] == 1 and c["decisions|write|dry"] == 2 and c["runs_went_dry"] == 1


def _break_latency_writes(project, body):
    """Install a trigger that runs ``body`` whenever a latency counter is written."""
    db = sqlite3.connect(project.state)
    for event in ("INSERT", "UPDATE"):
        db.execute(f"CREATE TRIGGER fault_{event.lower()} BEFORE {event} ON counters "
                   f"WHEN NEW.name LIKE 'latency%' BEGIN {body}; END")
    db.commit()
    db.close()


def _answers(project):
    """Run an allowed read, a dry write and a denied tamper; return (code, stdout) of each."""
    results = []
    for tool, tool_input in (("Read", {"file_path": "a"}), ("mcp__r2__put", {"k": 1}),
                             ("Write", {"file_path": ".claude/settings.json", "content": "{}"})):
        r = project.hook(project.event(tool, tool_input))
        results.append((r.code, r.json.get("hookSpecificOutput", {}).get("permissionDecision"), r.elapsed))
    return results


def test_failing_latency_record_changes_neither_answer_nor_exit_code(sqlite_project):
    project = sqlite_project
    write_policy(project.root, "sticky", STICKY_R2)
    project.hook(project.event("Read", {"file_path": "a"}))  # creates the store (and the policy cache)
    _break_latency_writes(project, "SELECT RAISE(ABORT, 'counters write refused')")
    answers = _answers(project)
    assert [(code, decision) for code, decision, _ in answers] == [(0, None), (2, "deny"), (2, "deny")]
    c = counters(project)
    assert c["latency_count|claude-code"] == 1  # only the call before the fault
    assert c["decisions|read|allow"] == 2 and c["decisions|write|dry"] == 1 and c["decisions|write|deny"] == 1
    kinds = [(a["kind"], a["cause"]) for a in project.alerts()]
    assert kinds == [("tamper", "self-protection")]  # a lost statistic is not a guard failure
    assert [e["action"] for e in project.journal(SESSION)] == ["allow", "allow", "dry", "deny"]


def test_stalled_latency_record_is_cut_off_with_the_answers_exit_code(sqlite_project):
    project = sqlite_project
    write_policy(project.root, "sticky", STICKY_R2)
    project.hook(project.event("Read", {"file_path": "a"}))
    # Seconds of work inside the write transaction (about 2.7 s on a quiet 2-core machine; 6,000,000 rows
    # took only 0.8 s there, under the 1.15 s the test needs).
    _break_latency_writes(project, "INSERT INTO spin SELECT count(*) FROM (WITH RECURSIVE c(x) AS "
                                   "(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000000) SELECT x FROM c)")
    db = sqlite3.connect(project.state)
    db.execute("CREATE TABLE spin (n INTEGER)")
    db.commit()
    start = time.monotonic()
    db.execute("INSERT INTO counters (name, value) VALUES ('latency|probe', 1)")  # the fault is real: slow
    stalled = time.monotonic() - start
    db.rollback()
    db.close()
    assert stalled > RECORD_BUDGET_S + 0.9
    answers = _answers(project)
    assert [(code, decision) for code, decision, _ in answers] == [(0, None), (2, "deny"), (2, "deny")]
    for _, _, elapsed in answers:
        assert elapsed < RECORD_BUDGET_S + 0.9, answers  # cut at the budget, not after the stalled write
    c = counters(project)
    assert c["latency_count|claude-code"] == 1  # the cut-off writes were rolled back, nothing half-written
    assert [e["action"] for e in project.journal(SESSION)] == ["allow", "allow", "dry", "deny"]
    r = project.hook(project.event("mcp__r2__put", {"k": 2}))  # the store is fine afterwards
    assert r.code == 2 and r.decision == "deny"
