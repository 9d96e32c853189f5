"""One suite, every store: the run-state machine against a dict model, under
interleavings (Hypothesis), and across real processes on one SQLite file."""

import itertools
import multiprocessing
import os

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from drygate.engine import Engine
from drygate.policy.load import compile_policy_text
from drygate.state.memory import MemoryStore
from drygate.state.sqlite import SQLiteStore
from drygate.types import DRY, LIVE, MODE_STRICTNESS, STICKY, ToolCall, TransitionRequest

def at(t):
    """A clock stopped at ``t`` seconds."""
    return lambda: t


ENTRY = {"call_id": None, "agent_id": None, "tool_name": "t", "tool_input": {}, "effect": "write", "rule_id": "x",
         "why": "w", "tamper": False, "policy_hash": "h", "host": "test"}


def test_transact_journals_in_decision_order(store):
    seqs = []
    for i in range(5):
        o = store.transact("r", TransitionRequest(STICKY, True, i == 2, "allow"), dict(ENTRY, tool_name=f"t{i}"),
                           at(float(i)))
        seqs.append((o.seq, o.action))
    journal = store.journal("r")
    assert [(e["seq"], e["action"]) for e in journal] == seqs
    assert [e["tool_name"] for e in journal] == [f"t{i}" for i in range(5)]
    assert [e["call"] for e in journal] == [1, 2, 3, 4, 5]
    assert [a for _, a in seqs] == ["allow", "allow", "dry", "dry", "dry"]
    run = store.get_run("r")
    assert run.dry_since == seqs[2][0] and run.dry_cause == "t2" and run.dry_call == 3
    assert run.calls == 5 and run.dry_writes == 3


def test_results_and_runs(store):
    store.transact("a", TransitionRequest(LIVE, True, False, "allow"), ENTRY, at(1.0))
    store.record_result("a", "c1", "t", {"ok": True}, 2.0)
    store.transact("b", TransitionRequest(DRY, True, False, "allow"), ENTRY, at(3.0))
    assert [r.run_id for r in store.list_runs()] == ["b", "a"]
    assert store.journal("a")[-1]["result"] == {"ok": True}
    assert store.get_run("zzz") is None


def test_transact_with_result_journals_the_call_then_its_result(store):
    """A read journaled with its answer (the relay's Engine.decide_read): the call entry as
    transact makes it, then the result entry of the same call id, in order, counted like a
    decision; the run's dry state is applied as for any call (a dry run stays dry)."""
    read = dict(ENTRY, effect="read", call_id="c7", tool_name="mcp__fs__read")
    store.transact("r", TransitionRequest(STICKY, True, True, "allow"), ENTRY, at(1.0))  # the run goes dry
    outcome, result_seq = store.transact_with_result("r", TransitionRequest(STICKY, False, False, "allow"), read,
                                                     at(2.0), {"fingerprint": "f", "chars": 3})
    assert outcome.action == "allow" and outcome.call == 2 and result_seq > outcome.seq
    call, result = store.journal("r")[-2:]
    assert (call["kind"], call["seq"], call["call_id"], call["effect"], call["action"]) == \
        ("call", outcome.seq, "c7", "read", "allow")
    assert (result["kind"], result["seq"], result["call_id"], result["tool_name"], result["result"]) == \
        ("result", result_seq, "c7", "mcp__fs__read", {"fingerprint": "f", "chars": 3})
    run = store.get_run("r")
    assert run.calls == 2 and run.is_dry and run.dry_call == 1
    assert store.counters().get("decisions|read|allow") == 1
    with pytest.raises(ValueError):  # a write's decision is never journaled after it ran
        store.transact_with_result("r", TransitionRequest(STICKY, True, False, "allow"), ENTRY, at(3.0), None)
    assert len(store.journal("r")) == 3


def test_ensure_run_only_gets_stricter(store):
    store.ensure_run("r", DRY, 1.0)
    assert store.ensure_run("r", LIVE, 2.0).mode == DRY
    o = store.transact("r", TransitionRequest(LIVE, True, False, "allow"), ENTRY, at(3.0))
    assert o.action == "dry"


def test_prune_keeps_dry_runs_as_tombstones(store):
    store.transact("dry-run", TransitionRequest(STICKY, True, True, "allow"), ENTRY, at(1.0))
    store.transact("live-run", TransitionRequest(STICKY, True, False, "allow"), ENTRY, at(1.0))
    removed = store.prune(10.0, 100.0)
    assert removed == 2 and store.journal() == []
    assert store.get_run("live-run") is None
    o = store.transact("dry-run", TransitionRequest(STICKY, True, False, "allow"), ENTRY, at(200.0))
    assert o.action == "dry"


class RunModel(RuleBasedStateMachine):
    """Interleaved calls on several runs against a dict model of the rule, on every
    store: memory, SQLite, and a real Redis (each example under a key prefix of its own)."""

    redis_url = None  # set by the module's fixture below
    _prefixes = itertools.count()

    def __init__(self):
        super().__init__()
        self.stores = [MemoryStore(), SQLiteStore(":memory:")]
        if self.redis_url:
            from conftest import initialized_redis_store

            self.stores.append(initialized_redis_store(self.redis_url, key_prefix=f"model{next(self._prefixes)}"))
        self.model = {}
        assert len(self.stores) == 3, 'redis missing'

    def teardown(self):
        for s in self.stores:
            s.close()

    @rule(run=st.sampled_from(["a", "b", "c"]), mode=st.sampled_from([LIVE, STICKY, DRY]), gated=st.booleans(),
          trigger=st.booleans(), live_action=st.sampled_from(["allow", "allow", "deny", "ask"]))
    def call(self, run, mode, gated, trigger, live_action):
        req = TransitionRequest(mode, gated, trigger, live_action)
        m = self.model.setdefault(run, {"mode": mode, "dry": False})
        if MODE_STRICTNESS[mode] > MODE_STRICTNESS[m["mode"]]:
            m["mode"] = mode
        if not gated:
            expect = live_action
        elif live_action == "deny":
            expect = "deny"
        elif m["dry"] or m["mode"] == DRY or (m["mode"] == STICKY and trigger):
            expect, m["dry"] = "dry", True
        else:
            expect = live_action
        for s in self.stores:
            assert s.transact(run, req, ENTRY, at(0.0)).action == expect

    @precondition(lambda self: self.model)
    @rule()
    def prune_everything(self):
        for s in self.stores:
            s.prune(-1.0, 0.0)
        self.model = {r: m for r, m in self.model.items() if m["dry"] or m["mode"] == DRY}

    @invariant()
    def stores_agree_with_model(self):
        for run, m in self.model.items():
            for s in self.stores:
                state = s.get_run(run)
                assert state is not None and state.mode == m["mode"]
                assert (state.dry_since is not None) == m["dry"]


@pytest.fixture(autouse=True, scope="module")
def _model_on_redis(redis_server):
    RunModel.redis_url = redis_server.url(db=0)
    yield
    RunModel.redis_url = None


TestRunModel = RunModel.TestCase
TestRunModel.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


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
'''


def _open(location, timeout=30):
    if "://" in location:
        from drygate.state.redis import RedisStore

        return RedisStore(location, timeout_s=timeout)
    return SQLiteStore(location, busy_timeout_s=timeout)


def _worker(args):
    location, run_id, names, barrier_path = args
    engine = Engine(compile_policy_text(POLICY), _open(location))
    while not os.path.exists(barrier_path):
        pass
    seen = []
    for name in names:
        d = engine.decide(ToolCall(name, {}, run_id))
        seen.append((d.seq, name, d.action))
    return seen


@pytest.fixture(params=["sqlite", "redis"])
def race_store(request, redis_server):
    """``make(folder)`` -> a fresh store location for one example (SQLite file or Redis prefix-free db)."""
    examples = itertools.count()

    def make(folder):
        if request.param == "sqlite":
            path = str(folder / "state.db")
            SQLiteStore(path).close()
            return path
        url = redis_server.url(db=14)
        client = redis_server.client(db=14)
        client.flushdb()
        client.close()
        from conftest import initialized_redis_store

        initialized_redis_store(url).close()
        next(examples)
        return url

    return make


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=st.lists(st.sampled_from(["mcp__r2__put", "mcp__d1__insert", "mcp__d1__select", "Write"]),
                      min_size=2, max_size=24),
       workers=st.integers(min_value=2, max_value=4))
def test_processes_never_write_after_dry(tmp_path_factory, race_store, calls, workers):
    """Property: for random calls split over several processes on one run, no write is
    allowed after a write of the run went dry, and the journal order is the decision order."""
    folder = tmp_path_factory.mktemp("race")
    location, barrier = race_store(folder), str(folder / "go")
    chunks = [calls[i::workers] for i in range(workers)]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        pending = pool.map_async(_worker, [(location, "run", c, barrier) for c in chunks])
        open(barrier, "w").close()
        seen = [d for part in pending.get(120) for d in part]
    journal = _open(location).journal("run")
    assert sorted((s, a) for s, _, a in seen) == [(e["seq"], e["action"]) for e in journal]
    went_dry = False
    for e in journal:
        if e["action"] == "dry":
            went_dry = True
        assert not (went_dry and e["action"] == "allow" and e["effect"] != "read"), journal


def test_ledger_is_compare_and_set(store):
    """Two appliers that read the same ledger version: only the first put wins."""
    assert store.ledger_get("r") == (0, None)
    assert store.ledger_put("r", 0, {"status": "applying", "plan": "a"})
    assert not store.ledger_put("r", 0, {"status": "applying", "plan": "b"})
    version, record = store.ledger_get("r")
    assert version == 1 and record == {"status": "applying", "plan": "a"}
    assert store.ledger_put("r", 1, {"status": "applied", "plan": "a", "steps": {"1": {"status": "done"}}})
    assert store.ledgers() == {"r": {"status": "applied", "plan": "a", "steps": {"1": {"status": "done"}}}}


def test_fingerprints_keep_the_first_value_unless_replaced(store):
    """drygate.integrity's per-run fingerprints, on every store: first seen wins, runs apart."""
    assert store.fingerprints("run-a") == {}
    store.put_fingerprints("run-a", {"/p/settings.json": "s|1|x", "/p/drygate.toml": "f|2|y"})
    store.put_fingerprints("run-a", {"/p/settings.json": "s|9|z", "/p/new": "f|-|"}, durable=False)
    assert store.fingerprints("run-a") == {"/p/settings.json": "s|1|x", "/p/drygate.toml": "f|2|y", "/p/new": "f|-|"}
    store.put_fingerprints("run-a", {"/p/settings.json": "s|9|z"}, replace=True)
    assert store.fingerprints("run-a")["/p/settings.json"] == "s|9|z"
    assert store.fingerprints("run-b") == {}
    store.put_fingerprints("\x00last", {"/p/x": "f|1|a"}, replace=True)  # the pseudo runs of drygate.integrity
    assert store.fingerprints("\x00last") == {"/p/x": "f|1|a"}


def test_every_store_has_a_marker(store):
    created, store_id = store.initialize()
    assert store.marker()["store_id"] == store_id
    assert store.initialize() == (False, store_id)  # idempotent


def test_a_sqlite_store_is_not_created_by_the_hook(tmp_path):
    from drygate.errors import StoreUnavailable

    with pytest.raises(StoreUnavailable):
        SQLiteStore(tmp_path / "state.db", create=False)
    assert not (tmp_path / "state.db").exists()
    SQLiteStore(tmp_path / "empty.db").close()  # a file that has the schema but no marker
    import sqlite3

    sqlite3.connect(tmp_path / "plain.db").execute("CREATE TABLE t (x)").connection.close()  # not a store
    with pytest.raises(StoreUnavailable, match="no drygate marker"):
        SQLiteStore(tmp_path / "plain.db", create=False)
    s = SQLiteStore(tmp_path / "empty.db", create=False)
    assert s.marker() == {}
    s.initialize()
    assert s.marker()["store_id"]
    s.close()


def test_sqlite_checkpoints_in_background(tmp_path):
    """SQLiteStore.checkpoint_in_background: one thread per file and process, shared by its stores,
    copies the WAL into the database file every CHECKPOINT_EVERY_S while the commits no longer
    checkpoint themselves below 8,000 pages; stopped when the last store closes. Memory (and
    Redis, the base class) have nothing to do."""
    import threading
    import time

    from drygate.state import sqlite as module

    assert MemoryStore().checkpoint_in_background() is False
    path = tmp_path / "state.db"
    a, b = SQLiteStore(path), SQLiteStore(path)
    a.CHECKPOINT_EVERY_S = 0.05
    assert a.checkpoint_in_background() and b.checkpoint_in_background() and not a.checkpoint_in_background()
    assert len([t for t in threading.enumerate() if t.name == "drygate-wal-checkpoint"]) == 1
    empty = os.path.getsize(path)
    read = dict(ENTRY, effect="read")
    for i in range(300):  # a few hundred frames: far below the commits' own 8,000
        a.transact_with_result("r", TransitionRequest(LIVE, False, False, "allow"), read, at(float(i)), {"i": i})
    deadline = time.monotonic() + 5
    while os.path.getsize(path) <= empty and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.path.getsize(path) > empty  # the thread copied the log into the database file
    a.close()
    assert str(path.resolve()) in module._CHECKPOINTERS
    b.close()
    assert not module._CHECKPOINTERS
    assert not [t for t in threading.enumerate() if t.name == "drygate-wal-checkpoint"]
    reopened = SQLiteStore(path)
    assert len(reopened.journal("r")) == 600 and reopened.get_run("r").calls == 300
    reopened.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_the_verdict_cache_stays_bounded_and_keeps_the_newest(kind, tmp_path, redis_server, monkeypatch):
    """Every new shell command or SQL statement adds a verdict: a store keeps about
    VERDICT_LIMIT of them (SQLite and memory drop the oldest; Redis starts the hash again), and
    the verdict just put is always there. Limits made small for the test."""
    from conftest import initialized_redis_store
    from drygate.state.base import StateStore

    monkeypatch.setattr(StateStore, "VERDICT_LIMIT", 100)
    monkeypatch.setattr(SQLiteStore, "VERDICT_TRIM_EVERY", 10)
    if kind == "memory":
        store = MemoryStore()
    elif kind == "sqlite":
        store = SQLiteStore(str(tmp_path / "state.db"))
    else:
        client = redis_server.client(db=13)
        client.flushdb()
        client.close()
        store = initialized_redis_store(redis_server.url(db=13))
    try:
        sizes = []
        for i in range(1, 351):
            store.verdict_put(f"k{i}", "read", ("cat",))
            assert store.verdict_get(f"k{i}") == ("read", ("cat",))
            if i % 25 == 0:  # how many of the last 150 are kept
                sizes.append(sum(store.verdict_get(f"k{j}") is not None for j in range(max(1, i - 149), i + 1)))
        assert max(sizes) <= 110 and sizes[-1] >= 1
        if kind != "redis":  # an ordered trim keeps the newest hundred or so
            assert all(store.verdict_get(f"k{j}") for j in range(260, 351))
            assert store.verdict_get("k1") is None
    finally:
        store.close()
