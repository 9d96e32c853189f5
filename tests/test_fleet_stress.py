"""Fleet stress: many processes (standing in for hosts) share runs through one store.

Eight engine processes, each with its own store connection, plus one process that drives
real hook processes, make thousands of decisions on 40+ runs at once: reads and writes,
sticky runs that go dry, dry-mode and live runs, and rounds in which every process makes
the first write of a fresh run at the same moment. Afterwards the journal alone must prove:

- no gated call (write, side-effect read, external, unknown) was allowed after its run went
  dry, and none at all in a dry-mode run;
- a run that went dry has exactly one ``made_run_dry`` entry, whose seq is the run's
  ``dry_since``, and it is the run's first dry-scope write; a run that did not has none;
- seq is unique and strictly increasing, and ``ts`` never goes backwards against it; each
  run's call numbers are 1..n in seq order;
- every decision a process was told is in the journal with the same seq, run, call number
  and action (no acknowledged entry lost), and nothing is journaled that no one was told;
- once a process saw a run dry (a decision or a read of the run), it was never again told
  to execute a gated call of that run.

The same test runs on SQLite (a file) and on Redis (a real server; DRYGATE_STATE_URL for
the hook processes). DRYGATE_STRESS_SCALE (default 1) multiplies the number of calls.
"""

import json
import multiprocessing
import os
import random
import subprocess
import time
import traceback

import pytest

from conftest import Project, need_redis_store

PROCESSES = 8
RUNS = 40
SCALE = float(os.environ.get("DRYGATE_STRESS_SCALE", "1"))
CALLS_PER_PROCESS = int(1000 * SCALE)
HOOK_BATCHES = int(14 * SCALE)
HOOK_BATCH_SIZE = 8

POLICY = '''
[run]
mode = "live"

[gate]
deadline_ms = 15000

[[rules]]
id = "r2-writes"
tool_glob = "mcp__r2__*"
effect = "write"
dry = true

[[rules]]
id = "d1-read"
tool = "mcp__d1__select"
effect = "read"

[[rules]]
id = "d1-drop"
tool = "mcp__d1__drop_table"
effect = "write"
action = "deny"

[[rules]]
id = "d1-writes"
tool_glob = "mcp__d1__*"
effect = "write"

[[rules]]
id = "queue-pop"
tool = "mcp__q__pop"
effect = "side_effect_read"
'''

GATED = {"write", "side_effect_read", "external", "unknown"}
DRY_SCOPE = "mcp__r2__put_object"


def run_ids():
    return [f"run-{i:02d}" for i in range(RUNS)]


def run_mode(run_id):
    """Every eighth run is a dry run, the next a live run, the rest sticky."""
    i = int(run_id.rsplit("-", 1)[1])
    return "dry" if i % 8 == 0 else "live" if i % 8 == 1 else "sticky"


def dry_scope_rate(run_id):
    """How often a call of the run is a dry-scope write (some sticky runs never go dry)."""
    i = int(run_id.rsplit("-", 1)[1])
    return (0.0, 0.004, 0.012, 0.04)[i % 4]


def pick_tool(rng, run_id):
    if rng.random() < dry_scope_rate(run_id):
        return DRY_SCOPE
    u = rng.random()
    if u < 0.45:
        return "mcp__d1__select"       # read
    if u < 0.72:
        return "mcp__d1__insert"       # write outside the dry scope
    if u < 0.82:
        return "mcp__q__pop"           # side-effect read
    if u < 0.92:
        return "mcp__misc__frobnicate"  # no rule: unknown, gated
    if u < 0.95:
        return "mcp__d1__drop_table"   # denied by the policy
    return DRY_SCOPE if run_mode(run_id) != "sticky" else "mcp__d1__update"


# -- the stores ----------------------------------------------------------------------------

def open_store(kind, where, lean=False):
    """A store of its own; ``lean``: Redis through the hook's lean client instead of redis-py."""
    if kind == "sqlite":
        from drygate.state.sqlite import SQLiteStore

        return SQLiteStore(where, busy_timeout_s=60)
    from drygate.state import open_store as open_any
    from drygate.state.redis import RedisStore

    store = open_any(where, busy_timeout_s=10.0, lean=lean)
    assert isinstance(store, RedisStore), f"open_store({where!r}) gave {store!r}"
    return store


def prepare_store(kind, where):
    """Initialize the store once, before the fleet, as `drygate init` does (SQLite: the file,
    its marker and this machine's record of it, without which a hook refuses the store;
    Redis: the marker key)."""
    if kind == "sqlite":
        from drygate.integrity import initialize_store

        initialize_store(where)
        return
    store = open_store(kind, where)
    try:
        store.initialize()
    finally:
        store.close()


def hook_env(kind, where):
    return {"DRYGATE_STATE": where} if kind == "sqlite" else {"DRYGATE_STATE_URL": where}


# -- the processes -------------------------------------------------------------------------

def _engine_process(kind, where, wid, barrier, out_path):
    """One 'host': a race round per run, then random calls over all runs."""
    try:
        from drygate.engine import Engine
        from drygate.policy.load import compile_policy_text
        from drygate.types import ToolCall

        rng = random.Random(1000 + wid)
        store = open_store(kind, where, lean=wid % 2 == 1)  # Redis: half redis-py, half the lean client
        policy = compile_policy_text(POLICY)
        engines = {m: Engine(policy, store, mode=m) for m in ("live", "sticky", "dry")}
        events = []  # in the order this process saw them

        def decide(run_id, tool):
            d = engines[run_mode(run_id)].decide(ToolCall(tool, {"w": wid, "n": len(events)}, run_id,
                                                          call_id=f"e{wid}-{len(events)}", host=f"host-{wid}"))
            events.append(["decision", run_id, tool, d.seq, d.call, d.action, d.effect, bool(d.made_run_dry)])

        # Parallel first writes: every process writes to the same fresh run at once.
        for run_id in run_ids():
            tool = DRY_SCOPE if int(run_id[-2:]) % 3 == 0 else "mcp__d1__insert"
            barrier.wait(120)
            decide(run_id, tool)
        for i in range(CALLS_PER_PROCESS):
            run_id = rng.choice(run_ids())
            if i % 25 == 0:  # a parallel reader of the run state
                state = store.get_run(run_id)
                events.append(["read", run_id, state is not None and state.is_dry])
            decide(run_id, pick_tool(rng, run_id))
        store.close()
        with open(out_path, "w") as f:
            json.dump(events, f)
    except BaseException:
        with open(out_path + ".error", "w") as f:
            f.write(traceback.format_exc())
        raise


def _hook_outcome(proc_code, stdout, stderr):
    if proc_code == 0 and stdout.strip() == "{}":
        return "allow"
    if proc_code == 2:
        body = json.loads(stdout)
        reason = body["hookSpecificOutput"]["permissionDecisionReason"]
        assert body["hookSpecificOutput"]["permissionDecision"] == "deny", stdout
        if "guard failure" in reason:
            return "guard_failure"
        if reason.startswith("DRY RUN - NOT EXECUTED"):
            return "dry"
        if "DENIED" in reason:
            return "deny"
    raise AssertionError(f"unexpected hook answer: exit {proc_code}\n{stdout}\n{stderr}")


def _hook_process(kind, where, project_root, command, out_path):
    """Real hook processes, 8 at a time: on the shared runs, and races on runs of their own."""
    try:
        rng = random.Random(7)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("DRYGATE_")}
        base_env.update(CLAUDE_PROJECT_DIR=project_root, **hook_env(kind, where))
        events = []
        for b in range(HOOK_BATCHES):
            batch = []
            for j in range(HOOK_BATCH_SIZE):
                if b % 2 == 0:  # a race of first writes on a run only hooks use
                    run_id = f"hook-race-{b // 2:02d}"
                    mode = "sticky" if b % 4 == 0 else "live"
                    tool = DRY_SCOPE if b % 4 == 0 else "mcp__d1__insert"
                else:
                    run_id = rng.choice(run_ids())
                    mode = run_mode(run_id)
                    tool = pick_tool(rng, run_id)
                call_id = f"toolu_hook_{b}_{j}"
                event = {"session_id": run_id, "transcript_path": f"/tmp/{run_id}.jsonl", "cwd": project_root,
                         "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": tool,
                         "tool_input": {"hook": b, "j": j}, "tool_use_id": call_id}
                env = dict(base_env)
                if mode != "live":
                    env["DRYGATE_MODE"] = mode
                p = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, cwd=project_root)
                batch.append((p, json.dumps(event).encode(), run_id, tool, call_id))
            for p, data, run_id, tool, call_id in batch:
                out, err = p.communicate(data, timeout=120)
                outcome = _hook_outcome(p.returncode, out.decode(), err.decode())
                events.append([run_id, tool, call_id, outcome, err.decode()[:400]])
        with open(out_path, "w") as f:
            json.dump(events, f)
    except BaseException:
        with open(out_path + ".error", "w") as f:
            f.write(traceback.format_exc())
        raise


# -- the proof -----------------------------------------------------------------------------

def check_journal(store, engine_events, hook_events):
    """Every invariant of the module docstring, from the journal (and the run states)."""
    journal = store.journal()
    calls = [e for e in journal if e["kind"] == "call"]
    seqs = [e["seq"] for e in journal]
    assert seqs == sorted(set(seqs)), "seq is not unique and strictly increasing"
    by_seq = {e["seq"]: e for e in calls}
    by_call_id = {e["call_id"]: e for e in calls}
    assert len(by_call_id) == len(calls), "a call id was journaled twice"

    runs = {}
    for e in calls:
        runs.setdefault(e["run_id"], []).append(e)
    went_dry = 0
    for run_id, entries in runs.items():
        per_run = store.journal(run_id)
        assert [e["seq"] for e in per_run] == [e["seq"] for e in entries], f"{run_id}: per-run journal differs"
        assert [e["call"] for e in entries] == list(range(1, len(entries) + 1)), f"{run_id}: call numbers"
        state = store.get_run(run_id)
        assert state is not None and state.calls == len(entries), (run_id, state)
        made = [e for e in entries if e["made_run_dry"]]
        if state.dry_since is None:
            assert made == [], f"{run_id}: made_run_dry without dry_since"
            assert state.mode != "dry"
            assert not any(e["action"] == "dry" for e in entries), f"{run_id}: a dry decision in a live run"
        else:
            went_dry += 1
            assert len(made) == 1, f"{run_id}: {len(made)} made_run_dry entries"
            assert made[0]["seq"] == state.dry_since and made[0]["call"] == state.dry_call
            if state.mode == "sticky":
                first_trigger = next(e for e in entries if e["tool_name"] == DRY_SCOPE)
                assert first_trigger["seq"] == state.dry_since, f"{run_id}: not made dry by its first dry write"
        leaked = [e for e in entries if e["action"] == "allow" and e["effect"] in GATED and (
            state.mode == "dry" or (state.dry_since is not None and e["seq"] > state.dry_since))]
        assert leaked == [], f"{run_id}: {len(leaked)} writes allowed after the run went dry: {leaked[:3]}"
        for e in entries:
            if e["action"] == "dry":
                assert e["dry_because_of"] == state.dry_since, (run_id, e)
        gated_allowed = sum(1 for e in entries if e["action"] == "allow" and e["effect"] in GATED)
        assert state.allowed_writes == gated_allowed, (run_id, state.allowed_writes, gated_allowed)
        assert state.dry_writes == sum(1 for e in entries if e["action"] == "dry")

    told = 0
    for wid, events in engine_events.items():
        seen_dry = set()
        for ev in events:
            if ev[0] == "read":
                if ev[2]:
                    seen_dry.add(ev[1])
                continue
            _, run_id, tool, seq, call, action, effect, made = ev
            told += 1
            e = by_seq.get(seq)
            assert e is not None, f"process {wid}: acknowledged seq {seq} ({run_id} {tool}) is not in the journal"
            assert (e["run_id"], e["tool_name"], e["call"], e["action"], e["made_run_dry"]) == (
                run_id, tool, call, action, made), (wid, ev, e)
            if run_id in seen_dry:
                assert not (effect in GATED and action == "allow"), \
                    f"process {wid} saw {run_id} dry, then was told to execute {tool} (seq {seq})"
            if action == "dry":
                seen_dry.add(run_id)
    guard_failures = []
    for run_id, tool, call_id, outcome, stderr in hook_events:
        if outcome == "guard_failure":
            guard_failures.append((run_id, tool, stderr))
            continue
        told += 1
        e = by_call_id.get(call_id)
        assert e is not None, f"hook call {call_id} ({run_id} {tool}: {outcome}) is not in the journal"
        assert (e["run_id"], e["tool_name"], e["action"]) == (run_id, tool, outcome), (call_id, e)
    # Nothing journaled that no one was told, except calls whose hook failed closed after its commit.
    assert len(calls) - told <= len(guard_failures), (len(calls), told, guard_failures[:3])
    # Checked last, so a failure here means every invariant above held: the clock is read
    # inside the atomic step (StateStore.transact), so time follows the journal order.
    backwards = [(a["seq"], a["ts"], b["seq"], b["ts"]) for a, b in zip(journal, journal[1:], strict=False) if b["ts"] < a["ts"]]
    assert not backwards, f"{len(backwards)} journal entries are timed before the entry they follow: {backwards[:3]}"
    return {"entries": len(calls), "runs": len(runs), "went_dry": went_dry, "hook_guard_failures": guard_failures}


# -- the test ------------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", "redis"])
def fleet_store(request, tmp_path):
    """``(kind, where)``: a SQLite file, or a clean database on the session's redis-server."""
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "fleet" / "state.db")
    need_redis_store()
    return "redis", request.getfixturevalue("redis_url")


def test_fleet_never_writes_after_dry(fleet_store, tmp_path):
    kind, where = fleet_store
    prepare_store(kind, where)
    project = Project(tmp_path / "app")
    (project.root / "drygate.toml").write_text(POLICY, encoding="utf-8")
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(PROCESSES)
    outs = {wid: str(tmp_path / f"engine-{wid}.json") for wid in range(PROCESSES)}
    hook_out = str(tmp_path / "hooks.json")
    procs = [ctx.Process(target=_engine_process, args=(kind, where, wid, barrier, outs[wid]))
             for wid in range(PROCESSES)]
    procs.append(ctx.Process(target=_hook_process, args=(kind, where, str(project.root), project.command, hook_out)))
    start = time.monotonic()
    for p in procs:
        p.start()
    for p in procs:
        p.join(600)
    elapsed = time.monotonic() - start
    errors = [open(path + ".error").read() for path in [*outs.values(), hook_out] if os.path.exists(path + ".error")]
    assert not errors, "\n".join(errors)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    engine_events = {wid: json.load(open(path)) for wid, path in outs.items()}
    hook_events = json.load(open(hook_out))

    store = open_store(kind, where)
    try:
        summary = check_journal(store, engine_events, hook_events)
    finally:
        store.close()
    decisions = sum(1 for evs in engine_events.values() for ev in evs if ev[0] == "decision")
    print(f"\n{kind}: {decisions} engine decisions + {len(hook_events)} hook calls in {elapsed:.1f} s; "
          f"{summary['entries']} journal entries on {summary['runs']} runs, {summary['went_dry']} went dry; "
          f"hook guard failures: {len(summary['hook_guard_failures'])}")
    for _, _, stderr in summary["hook_guard_failures"][:3]:
        print("  " + stderr.splitlines()[0][:200] if stderr else "  (no stderr)")
    assert summary["runs"] >= RUNS
    assert summary["went_dry"] >= RUNS // 3
    # A guard failure blocks (safe, and checked above: such a call may be journaled but no one
    # executed it). Under this load on 2 cores a hook can miss its deadline; anything else, or
    # many of them, is a failure.
    failures = summary["hook_guard_failures"]
    assert all("DeadlineExceeded" in f[2] or "StoreTimeout" in f[2] for f in failures), failures[:3]
    assert len(failures) <= len(hook_events) // 20, failures[:3]
    # The races: each hook-only sticky race run went dry exactly once (checked above), all its calls dry.
    hook_runs = {ev[0] for ev in hook_events if ev[0].startswith("hook-race-")}
    assert hook_runs, "no hook race ran"


class _Doctored:
    """A store whose journal was changed after the fact: the checker must notice."""

    def __init__(self, store, change):
        self.store, self.change = store, change

    def journal(self, run_id=None):
        return [self.change(dict(e)) for e in self.store.journal(run_id)]

    def get_run(self, run_id):
        return self.store.get_run(run_id)


def _small_fleet():
    from drygate.engine import Engine
    from drygate.policy.load import compile_policy_text
    from drygate.state.memory import MemoryStore
    from drygate.types import ToolCall

    store = MemoryStore()
    engine = Engine(compile_policy_text(POLICY), store, mode="sticky")
    events = []
    for tool in ("mcp__d1__insert", "mcp__d1__select", DRY_SCOPE, "mcp__d1__insert", "mcp__q__pop"):
        d = engine.decide(ToolCall(tool, {}, "run-02", call_id=f"c{len(events)}"))
        events.append(["decision", "run-02", tool, d.seq, d.call, d.action, d.effect, bool(d.made_run_dry)])
    return store, {0: events}


@pytest.mark.parametrize("change,message", [
    (lambda e: dict(e, action="allow") if e["call"] == 4 else e, "allowed after the run went dry"),
    (lambda e: dict(e, made_run_dry=True) if e["call"] == 5 else e, "made_run_dry entries"),
    (lambda e: dict(e, call=7) if e["call"] == 2 else e, "call numbers"),
    (lambda e: dict(e, seq=1) if e["call"] == 3 else e, "strictly increasing"),
])
def test_the_checker_is_not_vacuous(change, message):
    store, events = _small_fleet()
    check_journal(store, events, [])
    with pytest.raises(AssertionError, match=message):
        check_journal(_Doctored(store, change), events, [])


def test_the_checker_notices_a_lost_acknowledged_entry():
    store, events = _small_fleet()
    events[0].append(["decision", "run-02", "mcp__d1__insert", 99, 6, "dry", "write", False])
    with pytest.raises(AssertionError, match="not in the journal"):
        check_journal(store, events, [])
