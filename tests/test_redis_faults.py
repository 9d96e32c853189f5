"""Faults of a real Redis under the Redis state store: each one blocks and alerts, none
loses an acknowledged journal entry, and none turns a dry run live.

Every test starts a redis-server of its own (``redis_factory``: appendonly, appendfsync
always) and drives it through the engine (in-process, redis-py) and through real hook
processes (the lean client, ``DRYGATE_STATE_URL``), with the gate's deadline at 800 ms.
The faults: Redis stopped, paused with SIGSTOP past the deadline, killed and restarted,
restarted with its data lost, out of memory (maxmemory + noeviction), and a read-only
replica (a failover in progress, or a URL naming a replica).
"""

import json
import os
import time

import pytest

from conftest import SESSION, Project, need_redis_store

DEADLINE_MS = 800
#: Engine-side exchange budget (s): what the gate gives a store under an 800 ms deadline.
ENGINE_TIMEOUT_S = 0.4

POLICY = f'''
[run]
mode = "sticky"

[gate]
deadline_ms = {DEADLINE_MS}

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
id = "d1-writes"
tool_glob = "mcp__d1__*"
effect = "write"
'''

GATED = {"write", "side_effect_read", "external", "unknown"}


@pytest.fixture(autouse=True)
def _store_landed():
    need_redis_store()


# -- helpers -------------------------------------------------------------------------------

def open_store(url, timeout_s=ENGINE_TIMEOUT_S, lean=False):
    from drygate.state import open_store as open_any

    return open_any(url, busy_timeout_s=timeout_s, lean=lean)


def initialize(url):
    store = open_store(url, timeout_s=5.0)
    try:
        return store.initialize()
    finally:
        store.close()


def engine_for(url, timeout_s=ENGINE_TIMEOUT_S, lean=False):
    from drygate.engine import Engine
    from drygate.policy.load import compile_policy_text

    return Engine(compile_policy_text(POLICY), open_store(url, timeout_s, lean))


def call(tool, run_id="run-a", call_id=None, **tool_input):
    from drygate.types import ToolCall

    return ToolCall(tool, tool_input, run_id, call_id=call_id or f"c-{time.monotonic_ns()}", host="test")


def journal(url, run_id=None):
    store = open_store(url, timeout_s=5.0)
    try:
        return store.journal(run_id)
    finally:
        store.close()


class RedisProject(Project):
    """A project whose hooks use the Redis store at ``url`` (DRYGATE_STATE_URL)."""

    def __init__(self, root, url):
        super().__init__(root, store_url=url)
        (self.root / "drygate.toml").write_text(POLICY, encoding="utf-8")

    def pre(self, tool, tool_input=None, session=SESSION, **env):
        ev = self.event(tool, tool_input or {}, session=session)
        r = self.hook(ev, **env)
        r.call_id = ev["tool_use_id"]
        return r


def assert_blocked(project, r, causes, *words):
    """The hook blocked (exit 2 + deny JSON) and raised a guard-failure alert whose cause
    is one of ``causes`` and whose reason has every one of ``words`` (case-insensitive)."""
    assert r.code == 2, (r.code, r.stdout, r.stderr)
    body = json.loads(r.stdout)
    assert body["hookSpecificOutput"]["permissionDecision"] == "deny", body
    assert "BLOCKED" in r.stderr
    alert = project.alerts()[-1]
    assert alert["kind"] == "guard_failure", alert
    assert alert["cause"] in causes, alert
    for w in words:
        assert w.lower() in alert["reason"].lower(), (w, alert)
    return alert


def assert_allowed(r):
    assert r.code == 0 and r.stdout.strip() == "{}", (r.code, r.stdout, r.stderr)


def assert_dry(r):
    assert r.code == 2 and "DRY RUN - NOT EXECUTED" in r.stdout, (r.code, r.stdout, r.stderr)


def expect_guard_failure(fn, error_cls, *words):
    from drygate.errors import GuardFailure

    with pytest.raises(GuardFailure) as info:
        fn()
    assert isinstance(info.value, error_cls), repr(info.value)
    for w in words:
        assert w.lower() in str(info.value).lower(), (w, str(info.value))
    return info.value


def seen(entries):
    return [(e["seq"], e["run_id"], e["call"], e["action"]) for e in entries if e["kind"] == "call"]


# -- Redis stopped -------------------------------------------------------------------------

def test_stopped_blocks_alerts_and_keeps_the_journal(redis_factory, tmp_path):
    from drygate.errors import StoreUnavailable

    server = redis_factory()
    url = server.url()
    initialize(url)
    project = RedisProject(tmp_path / "app", url)
    assert_allowed(project.pre("mcp__d1__insert"))
    assert_dry(project.pre("mcp__r2__put_object"))
    engine = engine_for(url)
    d = engine.decide(call("mcp__d1__insert"))
    assert d.action == "allow"
    before = seen(journal(url))
    assert len(before) == 3

    server.stop()
    r = project.pre("mcp__d1__select")  # even a read: no decision can be journaled
    assert_blocked(project, r, {"store_unavailable"}, "cannot reach redis", "refused")
    assert r.elapsed < DEADLINE_MS / 1000 + 2
    expect_guard_failure(lambda: engine.decide(call("mcp__d1__insert")), StoreUnavailable, "cannot reach redis",
                         "refused")

    server.start()
    assert seen(journal(url)) == before
    # Back up: the dry run is still dry, through the hook and through the same engine.
    assert_dry(project.pre("mcp__d1__insert"))
    assert engine.decide(call("mcp__d1__insert", run_id=SESSION)).action == "dry"
    assert engine.decide(call("mcp__d1__insert")).action == "allow"


# -- Redis paused (SIGSTOP) past the deadline ------------------------------------------------

@pytest.mark.parametrize("resume_after_s", [2.5, 0.2], ids=["long-after", "just-after"])
def test_paused_past_the_deadline_blocks_in_time_and_alerts(redis_factory, tmp_path, resume_after_s):
    """SIGSTOP, a hook call, SIGCONT ``resume_after_s`` after the hook answered: long after
    (past the store's clock-skew allowance too) or just after (inside it)."""
    server = redis_factory()
    url = server.url()
    initialize(url)
    project = RedisProject(tmp_path / "app", url)
    assert_allowed(project.pre("mcp__d1__insert"))
    before = seen(journal(url))
    server.pause()
    try:
        r = project.pre("mcp__d1__insert")
    finally:
        time.sleep(resume_after_s)
        server.resume()
    alert = assert_blocked(project, r, {"store_timeout", "deadline"})
    assert "did not answer" in alert["reason"] or "deadline" in alert["reason"], alert
    assert r.elapsed < DEADLINE_MS / 1000 + 1.5, r.elapsed  # answered near its deadline, not Redis's
    time.sleep(0.3)
    after = journal(url)
    assert seen(after)[: len(before)] == before
    # The transition reached Redis only after SIGCONT, long after the hook had blocked the call:
    # it must not be journaled as a decision (let alone an allowed write) that no one executed.
    late = [e for e in after if e["call_id"] == r.call_id]
    assert late == [], f"a blocked call shows up in the journal: {late}"


@pytest.mark.parametrize("lean", [False, True], ids=["redis-py", "lean"])
def test_paused_engine_times_out_and_the_late_script_leaves_no_allow(redis_factory, lean):
    from drygate.errors import StoreTimeout

    server = redis_factory()
    url = server.url()
    initialize(url)
    engine = engine_for(url, lean=lean)
    assert engine.decide(call("mcp__d1__insert")).action == "allow"
    server.pause()
    try:
        start = time.monotonic()
        c = call("mcp__d1__insert", call_id="late-one")
        expect_guard_failure(lambda: engine.decide(c), StoreTimeout, "did not answer")
        assert time.monotonic() - start < ENGINE_TIMEOUT_S + 1.0
        time.sleep(2.5)
    finally:
        server.resume()
    # The same engine goes on with the right answers: the late reply is not read as the next one.
    for i in range(5):
        d = engine.decide(call("mcp__d1__insert", call_id=f"after-{i}"))
        assert d.action == "allow"
        entry = next(e for e in journal(url, "run-a") if e["seq"] == d.seq)
        assert entry["call_id"] == f"after-{i}", entry
    assert [e for e in journal(url) if e["call_id"] == "late-one"] == []


def test_a_script_late_by_less_than_the_skew_allowance_is_not_an_allowed_write(redis_factory):
    """Paused a little longer than the client waits (but less than timeout + clock skew):
    the client has blocked the call, so the journal must not record it as an allowed write."""
    from drygate.errors import StoreTimeout

    server = redis_factory()
    url = server.url()
    initialize(url)
    engine = engine_for(url)
    assert engine.decide(call("mcp__d1__insert")).action == "allow"
    server.pause()
    try:
        c = call("mcp__d1__insert", call_id="slightly-late")
        expect_guard_failure(lambda: engine.decide(c), StoreTimeout)
        time.sleep(0.4)  # SIGCONT about 0.4 s after the client gave up: inside the 1 s skew allowance
    finally:
        server.resume()
    time.sleep(0.3)
    shown = [e for e in journal(url) if e["call_id"] == "slightly-late"]
    assert not [e for e in shown if e["action"] == "allow"], \
        f"the journal shows an allowed write that the client blocked (it never ran): {shown}"


# -- Redis killed: nothing acknowledged is lost ----------------------------------------------

def _writer(url, out_path, stop_path):
    """Decide calls until the store fails; write each acknowledged (seq, call id, action) at once."""
    from drygate.errors import GuardFailure

    engine = engine_for(url, timeout_s=1.0)
    with open(out_path, "w") as out:
        i = 0
        while not os.path.exists(stop_path):
            tool = "mcp__r2__put_object" if i == 150 else ("mcp__d1__select", "mcp__d1__insert")[i % 2]
            run_id = f"run-{i % 3}"
            try:
                d = engine.decide(call(tool, run_id=run_id, call_id=f"w-{i}"))
            except GuardFailure:
                break
            out.write(json.dumps([d.seq, f"w-{i}", run_id, d.action]) + "\n")
            out.flush()
            i += 1


def test_sigkill_and_restart_keep_every_acknowledged_entry(redis_factory, tmp_path):
    import multiprocessing

    server = redis_factory()
    url = server.url()
    initialize(url)
    out, stop = str(tmp_path / "acked.jsonl"), str(tmp_path / "stop")
    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_writer, args=(url, f"{out}.{k}", stop)) for k in range(3)]
    for w in writers:
        w.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.1)
        lines = sum(len(open(f"{out}.{k}").read().splitlines()) for k in range(3) if os.path.exists(f"{out}.{k}"))
        if lines >= 600:
            break
    server.kill()  # mid-stream: the writers are between acknowledgements
    for w in writers:
        w.join(30)
    open(stop, "w").close()
    acked = [json.loads(line) for k in range(3) for line in open(f"{out}.{k}").read().splitlines()]
    assert len(acked) >= 600
    server.start()
    entries = {e["seq"]: e for e in journal(url)}
    lost = [a for a in acked if a[0] not in entries]
    assert lost == [], f"{len(lost)} acknowledged entries lost after SIGKILL + restart: {lost[:5]}"
    for seq, call_id, run_id, action in acked:
        e = entries[seq]
        assert (e["call_id"], e["run_id"], e["action"]) == (call_id, run_id, action)
    # The run made dry before the kill is still dry after it.
    dry_runs = {a[2] for a in acked if a[3] == "dry"}
    engine = engine_for(url)
    for run_id in dry_runs:
        assert engine.decide(call("mcp__d1__insert", run_id=run_id)).action == "dry"


# -- Redis restarted with its data lost ------------------------------------------------------

def test_data_lost_blocks_everything_until_reinitialized(redis_factory, tmp_path):
    from drygate.errors import StoreUnavailable

    server = redis_factory()
    url = server.url()
    initialize(url)
    project = RedisProject(tmp_path / "app", url)
    assert_dry(project.pre("mcp__r2__put_object"))          # SESSION went dry
    engine = engine_for(url)
    assert engine.decide(call("mcp__r2__put_object", run_id="engine-dry")).action == "dry"

    server.restart(lose_data=True)

    # No marker: every call blocks, reads included, with a message that says why.
    for tool in ("mcp__d1__insert", "mcp__d1__select"):
        assert_blocked(project, project.pre(tool), {"store_unavailable"}, "marker")
    assert_blocked(project, project.pre("mcp__d1__insert", session="a-new-run"), {"store_unavailable"}, "marker")
    for run_id in ("engine-dry", SESSION, "a-new-run"):
        expect_guard_failure(lambda r=run_id: engine.decide(call("mcp__d1__insert", run_id=r)), StoreUnavailable,
                             "marker")
    assert server.client().keys("*") == [], "a blocked call wrote to the empty Redis"

    # Someone re-initializes. A process that lived through the loss still blocks: it knows
    # the store changed under it (and saw engine-dry dry).
    proc = project.cli("state", "init", "--recover", "1", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expect_guard_failure(lambda: engine.decide(call("mcp__d1__insert", run_id="engine-dry")), StoreUnavailable)
    # A new process after a recovering init: the runs that were dry are not live.
    fresh = engine_for(url)
    assert fresh.decide(call("mcp__d1__insert", run_id="engine-dry")).action == "dry"
    assert_dry(project.pre("mcp__d1__insert"))


def test_data_lost_store_is_not_silently_reinitialized_by_a_hook(redis_factory, tmp_path):
    server = redis_factory()
    url = server.url()
    project = RedisProject(tmp_path / "app", url)
    # Never initialized: blocks, and the hook does not create the marker itself.
    assert_blocked(project, project.pre("mcp__d1__select"), {"store_unavailable"}, "drygate state init")
    assert server.client().keys("*") == []


# -- maxmemory reached (noeviction) ----------------------------------------------------------

def _fill(server):
    """Reach maxmemory for good: 2 MB of ballast, then maxmemory set well below what is used
    (with noeviction Redis then refuses every write until memory is freed or raised)."""
    import redis

    c = server.client()
    for i in range(512):
        c.set(f"ballast:{i}", "x" * 4096)
    used = int(c.info("memory")["used_memory"])
    c.config_set("maxmemory", str(max(used - 1024 * 1024, 512 * 1024)))
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        c.set("one-more", "x")


def test_out_of_memory_blocks_alerts_and_keeps_the_journal(redis_factory, tmp_path):
    from drygate.errors import StoreUnavailable

    server = redis_factory(maxmemory="64mb", maxmemory_policy="noeviction")
    url = server.url()
    initialize(url)
    project = RedisProject(tmp_path / "app", url)
    assert_allowed(project.pre("mcp__d1__insert"))
    engine = engine_for(url)
    assert engine.decide(call("mcp__r2__put_object")).action == "dry"
    before = seen(journal(url))
    _fill(server)

    assert_blocked(project, project.pre("mcp__d1__insert"), {"store_unavailable"}, "memory")
    assert_blocked(project, project.pre("mcp__d1__select"), {"store_unavailable"}, "memory")
    expect_guard_failure(lambda: engine.decide(call("mcp__d1__insert")), StoreUnavailable, "memory")
    expect_guard_failure(lambda: engine.decide(call("mcp__d1__insert", run_id="new")), StoreUnavailable, "memory")
    assert seen(journal(url)) == before  # reads of the journal still work, nothing evicted

    server.client().config_set("maxmemory", "0")
    assert engine.decide(call("mcp__d1__insert")).action == "dry"
    assert_allowed(project.pre("mcp__d1__insert"))


def test_an_evicting_redis_is_refused_at_init(redis_factory):
    from drygate.errors import StoreUnavailable

    server = redis_factory(maxmemory="64mb", maxmemory_policy="allkeys-lru")
    expect_guard_failure(lambda: initialize(server.url()), StoreUnavailable, "noeviction")


# -- a read-only replica (a failover in progress) ----------------------------------------------

def test_read_only_replica_blocks_and_alerts(redis_factory, tmp_path):
    from drygate.errors import StoreUnavailable

    primary = redis_factory("primary")
    initialize(primary.url())
    project = RedisProject(tmp_path / "app", primary.url())
    assert_dry(project.pre("mcp__r2__put_object"))
    replica = redis_factory("replica", start=False)
    replica.replica_of(primary).start()
    replica.wait_synced()

    assert_blocked(project, project.pre("mcp__d1__insert", DRYGATE_STATE_URL=replica.url()),
                   {"store_unavailable"}, "replica")
    assert_blocked(project, project.pre("mcp__d1__select", DRYGATE_STATE_URL=replica.url()),
                   {"store_unavailable"}, "replica")
    engine = engine_for(replica.url())
    expect_guard_failure(lambda: engine.decide(call("mcp__d1__insert")), StoreUnavailable, "replica")
    # The primary kept every entry; the dry run is still dry there.
    assert [e["action"] for e in journal(primary.url(), SESSION)] == ["dry"]
    assert_dry(project.pre("mcp__d1__insert"))


# -- credentials ------------------------------------------------------------------------------

def test_hook_blocks_on_a_wrong_password(redis_factory, tmp_path):
    server = redis_factory(requirepass="s3cret")
    initialize(server.url())
    project = RedisProject(tmp_path / "app", server.url(password=False))
    r = project.pre("mcp__d1__select")
    alert = assert_blocked(project, r, {"store_unavailable"})
    assert "s3cret" not in json.dumps(alert)
    project_ok = RedisProject(tmp_path / "ok", server.url())
    assert_allowed(project_ok.pre("mcp__d1__select"))
    assert "s3cret" not in r.stderr + r.stdout


# -- a failover: the old primary acknowledged a transition the new primary never got ------------

def _failover(redis_factory, primary_config, replica_acks=0):
    """A primary with a synced replica, then a partition: the replica is promoted
    (REPLICAOF NO ONE, as Sentinel would) while the old primary still takes clients.
    Returns the primary, the replica and an engine on the primary (``replica_acks``)."""
    from drygate.engine import Engine
    from drygate.policy.load import compile_policy_text
    from drygate.state.redis import RedisStore

    primary = redis_factory("primary", **primary_config)
    replica = redis_factory("replica", start=False)
    replica.replica_of(primary).start()
    replica.wait_synced()
    # With min-replicas-to-write, the primary takes writes only once the replica's last ack
    # is recent (acks come once a second): wait for that before the setup's first write.
    deadline = time.monotonic() + 10
    while primary_config.get("min_replicas_to_write") and time.monotonic() < deadline and \
            int(primary.client().info("replication").get("min_slaves_good_slaves", 0)) < 1:
        time.sleep(0.1)
    initialize(primary.url())
    engine = Engine(compile_policy_text(POLICY), RedisStore(primary.url(), timeout_s=2.0, replica_acks=replica_acks))
    assert engine.decide(call("mcp__d1__insert", run_id="fo")).action == "allow"
    primary.client().wait(1, 2000)  # the replica has everything so far
    replica.client().execute_command("REPLICAOF", "NO", "ONE")
    return primary, replica, engine


def test_failover_with_min_replicas_blocks_on_the_old_primary(redis_factory, tmp_path):
    """With ``min-replicas-to-write 1``, an old primary cut off from its replica refuses the
    transition: the call blocks and alerts, so nothing acknowledged is lost in the failover."""
    from drygate.errors import StoreUnavailable

    primary, replica, engine = _failover(redis_factory, {"min_replicas_to_write": 1, "min_replicas_max_lag": 1})
    time.sleep(3)  # past min-replicas-max-lag: the old primary knows it has no replica
    expect_guard_failure(lambda: engine.decide(call("mcp__r2__put_object", run_id="fo")), StoreUnavailable,
                         "replicas")
    project = RedisProject(tmp_path / "app", primary.url())
    assert_blocked(project, project.pre("mcp__r2__put_object", session="fo"), {"store_unavailable"}, "replicas")
    primary.kill()
    fresh = engine_for(replica.url())
    assert [e["action"] for e in journal(replica.url(), "fo")] == ["allow"]
    assert fresh.decide(call("mcp__d1__insert", run_id="fo")).action == "allow"  # it never went dry


@pytest.mark.parametrize("replica_acks", [
    1,
    pytest.param(0, marks=pytest.mark.xfail(strict=True, reason=(
        "documented (README, fleets): without [state] replica_acks Redis replication is asynchronous "
        "and a failover can lose an acknowledged decision"))),
], ids=["replica_acks=1", "replica_acks=0"])
def test_failover_does_not_lose_an_acknowledged_dry_transition(redis_factory, tmp_path, replica_acks):
    """The old primary takes the transition that makes run ``fo`` dry just after the replica
    was promoted. With ``replica_acks = 1`` the replica's missing acknowledgement blocks the
    call (the agent is never told the run is dry, nothing is executed), so the new primary's
    view, where ``fo`` is live, contradicts nothing anyone was told."""
    from drygate.errors import StoreUnavailable

    primary, replica, engine = _failover(redis_factory, {}, replica_acks)
    try:
        told = engine.decide(call("mcp__r2__put_object", run_id="fo")).action
    except StoreUnavailable as e:
        assert "replica" in str(e) and replica_acks
        told = "blocked"
    if replica_acks:  # through a hook too: the policy's [state] replica_acks
        project = RedisProject(tmp_path / "app", primary.url())
        (project.root / "drygate.toml").write_text(POLICY + "\n[state]\nreplica_acks = 1\n", encoding="utf-8")
        assert_blocked(project, project.pre("mcp__r2__put_object", session="fo"), {"store_unavailable"}, "replica")
    primary.kill()
    after = engine_for(replica.url()).decide(call("mcp__d1__insert", run_id="fo")).action
    assert not (told == "dry" and after == "allow"), \
        "after a failover a run that went dry (acknowledged by the old primary) is live: the write was allowed"
    assert told == "blocked"


def test_replica_acks_with_a_healthy_replica_decides(redis_factory):
    from drygate.engine import Engine
    from drygate.policy.load import compile_policy_text
    from drygate.state.redis import RedisStore

    primary = redis_factory("primary")
    replica = redis_factory("replica", start=False)
    replica.replica_of(primary).start()
    replica.wait_synced()
    initialize(primary.url())
    engine = Engine(compile_policy_text(POLICY), RedisStore(primary.url(), timeout_s=2.0, replica_acks=1))
    assert engine.decide(call("mcp__r2__put_object", run_id="ok")).action == "dry"
    primary.kill()  # everything acknowledged is on the replica
    replica.client().execute_command("REPLICAOF", "NO", "ONE")
    assert engine_for(replica.url()).decide(call("mcp__d1__insert", run_id="ok")).action == "dry"


# -- Redis answering with something unexpected -------------------------------------------------

def _garbage_server(reply):
    """A TCP server on loopback that answers every connection with ``reply`` bytes."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            try:
                conn.settimeout(1)
                try:
                    conn.recv(65536)
                except OSError:
                    pass
                conn.sendall(reply)
            finally:
                conn.close()
        srv.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1], stop


@pytest.mark.parametrize("reply", [b"HTTP/1.1 400 Bad Request\r\n\r\n", b"+OK\r\n", b":12\r\n", b"\x00\xff garbage"],
                         ids=["http", "ok", "integer", "binary"])
def test_an_unexpected_answer_blocks(tmp_path, reply):
    from drygate.errors import GuardFailure

    port, stop = _garbage_server(reply)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        project = RedisProject(tmp_path / "app", url)
        assert_blocked(project, project.pre("mcp__d1__select"), {"store_unavailable", "store_timeout"})
        with pytest.raises(GuardFailure):
            engine_for(url).decide(call("mcp__d1__insert"))
    finally:
        stop.set()


# -- the store chosen by the policy's [state] url ------------------------------------------------

def test_policy_state_url_selects_redis(redis_factory, tmp_path):
    server = redis_factory()
    initialize(server.url())
    project = Project(tmp_path / "app", init_sqlite=False)  # the policy names Redis: no SQLite store is made
    (project.root / "drygate.toml").write_text(POLICY + f'\n[state]\nurl = "{server.url()}"\n', encoding="utf-8")
    r = project.hook(project.event("mcp__r2__put_object", {}))
    assert_dry(r)
    assert [e["action"] for e in journal(server.url(), SESSION)] == ["dry"]
    assert not project.state.exists(), "the hook wrote a SQLite file although the policy names Redis"
    server.stop()
    assert_blocked(project, project.hook(project.event("mcp__d1__select", {})), {"store_unavailable"})
