"""The policy decision point: classification order, decision table, reasons."""

import pytest

from drygate.engine import Engine, apply_transition, classify
from drygate.policy.load import compile_policy_text
from drygate.state.memory import MemoryStore
from drygate.types import DRY, LIVE, STICKY, ToolCall, TransitionRequest


def policy(mode="dry", rules=""):
    return compile_policy_text(f'[run]\nmode = "{mode}"\n{rules}')


def call(name, tool_input=None, run="r1", **kw):
    return ToolCall(name, tool_input if tool_input is not None else {}, run, **kw)


@pytest.mark.parametrize("name,effect", [
    ("Read", "read"), ("Glob", "read"), ("Grep", "read"), ("WebSearch", "read"), ("WebFetch", "read"),
    ("Write", "write"), ("Edit", "write"), ("MultiEdit", "write"), ("NotebookEdit", "write"),
    ("TodoWrite", "bookkeeping"), ("ToolSearch", "bookkeeping"), ("Task", "bookkeeping"),
    ("mcp__anything__at_all", "unknown"), ("SomeNewTool", "unknown"),
])
def test_builtin_effects(name, effect):
    assert classify(call(name), policy()).effect == effect


def test_policy_rule_beats_builtin_and_first_match_wins():
    p = policy(rules='''
[[rules]]
tool = "Read"
action = "deny"
effect = "read"
[[rules]]
tool_glob = "mcp__db__*"
effect = "read"
[[rules]]
tool_regex = "mcp__db__.*"
effect = "write"
''')
    assert classify(call("Read"), p).action == "deny"
    assert classify(call("mcp__db__select"), p).effect == "read"


def test_input_predicates():
    p = policy(rules='''
[[rules]]
tool = "mcp__d1__query"
input_regex = { sql = "^\\\\s*(?i:select)\\\\b" }
effect = "read"
[[rules]]
tool = "mcp__d1__query"
input_equals = { dry_run = true }
effect = "read"
[[rules]]
tool = "mcp__d1__query"
effect = "write"
''')
    assert classify(call("mcp__d1__query", {"sql": "  select 1"}), p).effect == "read"
    assert classify(call("mcp__d1__query", {"sql": "DELETE FROM t"}), p).effect == "write"
    assert classify(call("mcp__d1__query", {"sql": "DELETE", "dry_run": True}), p).effect == "read"
    assert classify(call("mcp__d1__query", "not a dict"), p).effect == "write"


def test_plugin_names_match_server_rules():
    from drygate.policy.match import name_candidates

    assert "mcp__r2__put_object" in name_candidates("mcp__plugin_storage_r2__put_object")
    assert "mcp__serena__list_dir" in name_candidates("mcp__plugin_serena_serena__list_dir")
    p = policy(rules='[[rules]]\ntool_glob = "mcp__r2__*"\neffect = "write"\ndry = true\n')
    assert classify(call("mcp__plugin_storage_r2__put_object"), p).dry_scope


def run_calls(mode, calls, rules="", store=None):
    engine = Engine(policy(mode, rules), store or MemoryStore())
    return [engine.decide(c) for c in calls]


R2 = '[[rules]]\ntool_glob = "mcp__r2__*"\neffect = "write"\ndry = true\n'


def test_live_allows_writes_and_reads(store):  # every store: memory, SQLite, Redis
    ds = run_calls(LIVE, [call("Write", {"file_path": "a"}), call("Read")], store=store)
    assert [d.action for d in ds] == ["allow", "allow"]


def test_dry_skips_every_write_and_allows_reads(store):  # every store: memory, SQLite, Redis
    ds = run_calls(DRY, [call("Read"), call("Write", {"file_path": "a"}), call("TodoWrite"), call("Bash", {
        "command": "rm -rf /"})], store=store)
    assert [d.action for d in ds] == ["allow", "dry", "allow", "dry"]
    assert ds[1].made_run_dry and ds[3].dry_because_of == ds[1].seq
    assert "is a dry run" in ds[3].reason and "put run" not in ds[1].reason  # dry from the start


def test_sticky_is_live_until_first_dry_scope_write(store):  # every store: memory, SQLite, Redis
    ds = run_calls(STICKY, [call("mcp__d1__query"), call("mcp__r2__put"), call("mcp__d1__query"), call("Read")],
                   R2, store=store)
    assert [d.action for d in ds] == ["allow", "dry", "dry", "allow"]
    assert "since its call 2 (mcp__r2__put)" in ds[2].reason


def test_env_mode_only_makes_runs_stricter(store):  # every store: memory, SQLite, Redis
    engine = Engine(policy(DRY), store, mode=LIVE)
    assert engine.decide(call("Write", {"file_path": "a"})).action == "dry"
    engine = Engine(policy(LIVE), store, mode=DRY)
    assert engine.decide(call("Write", {"file_path": "a"}, run="another")).action == "dry"


def test_deny_rule_beats_dry_and_is_not_in_plan(store):  # every store: memory, SQLite, Redis
    rules = '[[rules]]\ntool = "mcp__pay__charge"\neffect = "external"\naction = "deny"\n'
    ds = run_calls(DRY, [call("mcp__pay__charge"), call("Write", {"file_path": "a"})], rules, store=store)
    assert [d.action for d in ds] == ["deny", "dry"]
    assert ds[1].made_run_dry  # a denied call does not make the run dry


def test_dry_reason_is_honest(store):  # every store: memory, SQLite, Redis
    (d,) = run_calls(DRY, [call("mcp__r2__put_object", {"bucket": "assets", "key": "a.png"}, run="run-7")],
                     store=store)
    for phrase in ("NOT EXECUTED", "mcp__r2__put_object", "key=a.png", "unknown", "every later write",
                   "Do not report this action as done", "drygate plan run-7"):
        assert phrase in d.reason


def test_decide_read_journals_an_allowed_read_of_a_known_run_later(store):  # every store
    """Engine.decide_read: a read of a new run, a write, a denied read, and a read that would make
    its run's mode stricter are journaled at once (pending None); an allowed read of a run that
    exists is not journaled until PendingRead.journal, then as call + result in that order."""
    rules = '[[rules]]\ntool = "mcp__db__secret"\neffect = "read"\naction = "deny"\n'
    engine = Engine(policy(STICKY, rules), store)
    first, pending = engine.decide_read(call("Read", {"file_path": "a"}))
    assert pending is None and first.seq is not None  # a new run: created by the transition now
    write, pending = engine.decide_read(call("Write", {"file_path": "a"}))
    assert pending is None and write.action == "allow"
    denied, pending = engine.decide_read(call("mcp__db__secret"))
    assert pending is None and denied.action == "deny"
    before = len(store.journal("r1"))
    read, pending = engine.decide_read(call("Read", {"file_path": "b"}, call_id="c9"))
    assert pending is not None and (read.action, read.effect, read.seq, read.call) == ("allow", "read", None, None)
    assert len(store.journal("r1")) == before  # nothing written before the answer
    outcome, result_seq = pending.journal(store, {"fingerprint": "x"})
    call_entry, result = store.journal("r1")[-2:]
    assert (call_entry["kind"], call_entry["call_id"], call_entry["action"], call_entry["call"]) == \
        ("call", "c9", "allow", 4)
    assert (result["kind"], result["call_id"], result["result"]) == ("result", "c9", {"fingerprint": "x"})
    assert outcome.seq < result_seq
    stricter = Engine(policy(DRY), store)  # asks for dry: the sticky run must become dry first
    read, pending = stricter.decide_read(call("Read", {"file_path": "c"}))
    assert pending is None and store.get_run("r1").mode == DRY


def test_apply_transition_never_allows_after_dry():
    state = None
    write = TransitionRequest(STICKY, True, False, "allow")
    trigger = TransitionRequest(STICKY, True, True, "allow")
    state, o = apply_transition(state, "r", write, 1, 0.0)
    assert o.action == "allow"
    state, o = apply_transition(state, "r", trigger, 2, 0.0)
    assert o.action == "dry" and o.made_run_dry and state.dry_since == 2
    for seq in range(3, 10):
        state, o = apply_transition(state, "r", TransitionRequest(LIVE, True, False, "allow"), seq, 0.0)
        assert o.action == "dry" and o.dry_because_of == 2 and state.mode == STICKY
