"""Adversarial review of issue 15's store and relay changes (branches enginefloor, relayfloor).

Real processes on real SQLite files: sequence numbers, decision counters, sticky dry under
concurrent writers and crashes, and the relay's journaling of a read that is in flight.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

RUN = "review15b-run"

# A child process that makes N decisions on one store (sticky run: the first gated one makes it dry).
WRITER = textwrap.dedent("""
    import sys, time
    from drygate.state.sqlite import SQLiteStore
    from drygate.types import TransitionRequest
    path, run_id, n, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    store = SQLiteStore(path, busy_timeout_s=30.0)
    for i in range(n):
        gated = i % 3 != 0
        req = TransitionRequest("sticky", gated, True, "allow")
        entry = {"call_id": f"{tag}-{i}", "agent_id": None, "tool_name": "mcp__t__w" if gated else "mcp__t__r",
                 "tool_input": {"i": i}, "effect": "write" if gated else "read", "rule_id": None, "why": "x",
                 "tamper": False, "policy_hash": "h", "host": "test", "context": None}
        out = store.transact(run_id if gated else run_id + "-r", req, entry, time.time)
        print(out.seq, out.action, int(out.made_run_dry), flush=True)
    store.close()
""")


def _writer(path, run_id, n, tag):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), run_id, str(n), tag],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _journal_counts(store):
    """decisions|effect|action counted from the journal itself."""
    counts = {}
    for e in store.journal():
        if e.get("kind") == "call":
            name = f"decisions|{e['effect']}|{e['action']}"
            counts[name] = counts.get(name, 0) + 1
    return counts


def _decisions(counters):
    return {k: v for k, v in counters.items() if k.startswith("decisions|")}


def test_concurrent_writers_unique_seqs_exact_counters_one_made_dry(tmp_path):
    """8 processes race one sticky run: every seq given once, exactly one made_run_dry, no
    allowed write after dry_since, counters() equal to the journal's counts (across many folds)."""
    from drygate.state.sqlite import SQLiteStore

    path = tmp_path / "state.db"
    SQLiteStore(path).close()
    procs = [_writer(path, RUN, 60, f"p{k}") for k in range(8)]
    seqs, made_dry, allowed_writes = [], 0, []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        for row in out.splitlines():
            seq, action, dry = row.split()
            seqs.append(int(seq))
            made_dry += int(dry)
    assert len(seqs) == len(set(seqs)) == 480
    assert made_dry == 1
    store = SQLiteStore(path)
    run = store.get_run(RUN)
    for e in store.journal(RUN):
        if e["effect"] == "write" and e["seq"] > run.dry_since:
            assert e["action"] == "dry", e
    assert _decisions(store.counters()) == _journal_counts(store)
    store.close()


def test_seq_never_reused_after_prune_removes_the_newest_rows(tmp_path):
    """Prune deletes the journal's tail (the newest seqs): the next seq must still be past them
    (apply's ledger, approvals and dry_since key on seq)."""
    from drygate.state.sqlite import SQLiteStore

    path = tmp_path / "state.db"
    SQLiteStore(path).close()
    p = _writer(path, RUN, 70, "a")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    last = max(int(r.split()[0]) for r in out.splitlines())
    store = SQLiteStore(path)
    before = _decisions(store.counters())
    # Every run idle: prune all (live runs go; the dry one stays as a tombstone without journal rows).
    store.prune(0, time.time() + 10)
    assert store.journal() == []
    assert _decisions(store.counters()) == before  # counts survive the prune of what they counted
    store.close()
    p = _writer(path, RUN + "2", 5, "b")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    seqs = [int(r.split()[0]) for r in out.splitlines()]
    assert min(seqs) > last, (last, seqs)


def test_kill9_writers_in_a_loop_keeps_counters_and_seqs_exact(tmp_path):
    """kill -9 writers mid-transaction, again and again: counters() still equal the journal,
    seqs unique, sticky dry made once."""
    from drygate.state.sqlite import SQLiteStore

    path = tmp_path / "state.db"
    SQLiteStore(path).close()
    for round_ in range(12):
        procs = [_writer(path, RUN, 400, f"r{round_}p{k}") for k in range(3)]
        time.sleep(0.15 + 0.05 * (round_ % 4))
        for p in procs:
            p.send_signal(signal.SIGKILL)
        for p in procs:
            p.communicate(timeout=30)
    store = SQLiteStore(path)
    journal = store.journal()
    seqs = [e["seq"] for e in journal]
    assert len(seqs) == len(set(seqs))
    assert sum(e["made_run_dry"] for e in journal) == 1
    assert _decisions(store.counters()) == _journal_counts(store)
    store.close()


# --------------------------------------------------------------------------------------
# relay: a read in flight

from tests.relay.conftest import flaky_server, raw_peers  # noqa: E402,F401  (fixtures)


@pytest.fixture
def relay_project(tmp_path):
    from tests.relay.conftest import Project as RelayProject

    return RelayProject(tmp_path / "project")


def _relay_with_hanging_read(project, flaky_server, raw_peers):
    from tests.relay.conftest import flaky_log, wait_for

    project.policy("live", '[[rules]]\ntool_glob = "mcp__flaky__*"\neffect = "read"\n')
    relay = raw_peers(project.relay_argv(flaky_server), project.relay_env(flaky_server, "live", RUN))
    relay.initialize()
    echoed = relay.request("tools/call", {"name": "echo", "arguments": {"text": "hi"}})
    assert echoed["result"]["content"][0]["text"] == "hi"  # the run exists now
    relay.send({"jsonrpc": "2.0", "id": 777, "method": "tools/call", "params": {"name": "hang", "arguments": {}}})
    wait_for(lambda: any(e["event"] == "tools/call" and "hang" in json.dumps(e) for e in flaky_log(flaky_server))
             or any(e["event"] == "hang" for e in flaky_log(flaky_server)), timeout=15)
    return relay


def _hang_calls(project):
    from drygate.state.sqlite import SQLiteStore

    store = SQLiteStore(project.state, create=False)
    try:
        return [e for e in store.journal(RUN) if e["kind"] == "call" and e["tool_name"] == "mcp__flaky__hang"]
    finally:
        store.close()


def _kill_server_children(flaky_server):
    from tests.relay.conftest import flaky_log

    for e in flaky_log(flaky_server):
        try:
            os.kill(e["pid"], signal.SIGKILL)
        except (ProcessLookupError, KeyError):
            pass


def _reads_journaled_late():
    from drygate.state.base import StateStore

    return hasattr(StateStore, "transact_with_result")


@pytest.mark.xfail(_reads_journaled_late(), strict=True,
                   reason="accepted limit (issue 15, docs/relay.md): an allowed read is journaled with its answer, "
                          "in one unsynced transaction; a relay killed (SIGKILL) while the server runs the read "
                          "leaves that call out of the run's history. Its answer never reached the agent, and a "
                          "read's record is not synced anyway (a power loss can take it too)")
def test_relay_killed_while_a_read_runs_keeps_the_call_in_the_journal(flaky_server, relay_project, raw_peers):
    project = relay_project
    relay = _relay_with_hanging_read(project, flaky_server, raw_peers)
    relay.proc.send_signal(signal.SIGKILL)
    relay.proc.wait(timeout=10)
    _kill_server_children(flaky_server)
    assert len(_hang_calls(project)) == 1


def test_relay_closed_while_a_read_runs_journals_the_call(flaky_server, relay_project, raw_peers):
    """A cancelled read that never gets its answer, then the client leaves: the call is in the journal."""
    project = relay_project
    relay = _relay_with_hanging_read(project, flaky_server, raw_peers)
    relay.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 777}})
    time.sleep(0.3)
    relay.close()
    _kill_server_children(flaky_server)
    assert len(_hang_calls(project)) == 1


# --------------------------------------------------------------------------------------
# durability: the dry-making commit is on disk before the answer

DURABLE = textwrap.dedent("""
    import os, sys, time
    from drygate.state.sqlite import SQLiteStore
    from drygate.types import TransitionRequest
    s = SQLiteStore(sys.argv[1])
    def e(i, eff):
        return {"call_id": str(i), "agent_id": None, "tool_name": "t", "tool_input": {}, "effect": eff,
                "rule_id": None, "why": "x", "tamper": False, "policy_hash": "h", "host": "x", "context": None}
    for i in range(70):  # reads (relaxed commits) and a count-in past 64 seqs
        s.transact("run", TransitionRequest("sticky", False, True, "allow"), e(i, "read"), time.time)
    if hasattr(s, "transact_with_result"):  # relayfloor: a read with its result, committed without fsync
        s.transact_with_result("run", TransitionRequest("sticky", False, True, "allow"), e(99, "read"), time.time, {})
    os.write(1, b"BEFORE\\n")
    o = s.transact("run", TransitionRequest("sticky", True, True, "allow"), e(100, "write"), time.time)
    os.write(1, b"ANSWER %d\\n" % o.made_run_dry)
""")


def test_dry_making_commit_is_fdatasynced_before_the_answer(tmp_path):
    import shutil

    if not shutil.which("strace"):
        pytest.skip("strace is not installed")
    trace = tmp_path / "trace"
    proc = subprocess.run(["strace", "-f", "-e", "trace=fsync,fdatasync,write,pwrite64,openat", "-o", str(trace),
                           sys.executable, "-c", DURABLE, str(tmp_path / "s.db")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "ANSWER 1" in proc.stdout
    lines = trace.read_text().splitlines()
    wal_fd = None
    for line in lines:
        if "s.db-wal" in line and "openat" in line and "= " in line:
            wal_fd = line.rsplit("= ", 1)[1].strip().split()[0]
    assert wal_fd is not None
    start = next(i for i, l in enumerate(lines) if 'write(1, "BEFORE' in l)
    end = next(i for i, l in enumerate(lines) if 'write(1, "ANSWER' in l)
    between = lines[start:end]
    last_wal_write = max(i for i, l in enumerate(between) if f"pwrite64({wal_fd}," in l)
    assert any(f"sync({wal_fd})" in l for l in between[last_wal_write:]), "\n".join(between)


def test_server_dying_mid_read_leaves_the_call_journaled_once(flaky_server, relay_project, raw_peers):
    """The server exits while it runs an allowed read: the client gets an error, and the call is in
    the run's history exactly once (relayfloor journals it as unanswered)."""
    project = relay_project
    project.policy("live", '[[rules]]\ntool_glob = "mcp__flaky__*"\neffect = "read"\n')
    relay = raw_peers(project.relay_argv(flaky_server), project.relay_env(flaky_server, "live", RUN))
    relay.initialize()
    relay.request("tools/call", {"name": "echo", "arguments": {"text": "hi"}})
    answer = relay.request("tools/call", {"name": "crash", "arguments": {}}, timeout=30)
    assert "error" in answer or answer.get("result", {}).get("isError"), answer
    relay.close()
    from drygate.state.sqlite import SQLiteStore

    store = SQLiteStore(project.state, create=False)
    try:
        calls = [e for e in store.journal(RUN) if e["kind"] == "call" and e["tool_name"] == "mcp__flaky__crash"]
    finally:
        store.close()
    assert len(calls) == 1, calls



CHECKPOINTED = textwrap.dedent("""
    import sys, time
    from drygate.state.sqlite import SQLiteStore
    from drygate.types import TransitionRequest
    s = SQLiteStore(sys.argv[1], busy_timeout_s=30.0)
    s.CHECKPOINT_FRAMES = 20  # checkpoint often
    s.checkpoint_in_background()
    req = TransitionRequest("sticky", False, True, "allow")
    for i in range(int(sys.argv[3])):
        entry = {"call_id": str(i), "agent_id": None, "tool_name": "mcp__t__r", "tool_input": {"pad": "x" * 2000},
                 "effect": "read", "rule_id": None, "why": "x", "tamper": False, "policy_hash": "h", "host": "t",
                 "context": None}
        if hasattr(s, "transact_with_result"):
            s.transact_with_result(sys.argv[2], req, entry, time.time, {"text": "y" * 3000})
        else:
            s.transact(sys.argv[2], req, entry, time.time)
""")


def _has_background_checkpoints():
    from drygate.state.base import StateStore

    return hasattr(StateStore, "checkpoint_in_background")


@pytest.mark.skipif(not _has_background_checkpoints(), reason="no background checkpoints in this version")
def test_background_checkpoints_with_concurrent_writers_keep_the_store_sound(tmp_path):
    """Two relay-like processes journaling reads with background checkpoints, and a third process
    making decisions, all at once (no crash): the file passes integrity_check, the sticky run went
    dry once, counters equal the journal. A few rounds, each on a fresh file.

    Found in review: the first checkpoint thread read ``<db>-shm`` with open()/close(), and
    closing any descriptor of a file drops every POSIX lock the process holds on it (SQLite's
    WAL locks live on -shm: sqlite.org/howtocorrupt.html 2.2); the store was corrupted 3 times
    in 4. The thread now touches SQLite's files only through SQLite."""
    import sqlite3

    from drygate.state.sqlite import SQLiteStore

    for round_ in range(4):
        path = tmp_path / f"state{round_}.db"
        SQLiteStore(path).close()
        writer = _writer(path, RUN, 400, "w")
        relays = [subprocess.Popen([sys.executable, "-c", CHECKPOINTED, str(path), RUN + "-reads", "400"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        for p in [writer, *relays]:
            out, err = p.communicate(timeout=240)
            assert p.returncode == 0, err[-2000:]
        db = sqlite3.connect(path)
        try:
            check = db.execute("PRAGMA integrity_check").fetchone()[0]
        except sqlite3.DatabaseError as e:
            check = str(e)
        finally:
            db.close()
        assert check == "ok", (round_, check[:300])
        store = SQLiteStore(path)
        journal = store.journal(RUN)
        assert sum(e["made_run_dry"] for e in journal) == 1
        assert _decisions(store.counters()) == _journal_counts(store)
        store.close()
