"""Benchmark: engine decision latency in-process, on a 200-rule policy.

Measures, in one run so machine noise hits all alike:

- ``classify``: the pure policy decision (rule match + built-in knowledge), no store;
- ``decide (memory)``: classify + the atomic transition on the in-memory store;
- ``decide (sqlite)``: classify + the ``BEGIN IMMEDIATE`` transition and journal append
  on a real SQLite file (WAL, synchronous=FULL, the default; and NORMAL);
- baseline: an empty Python function call, and one SQLite ``BEGIN IMMEDIATE; UPDATE;
  COMMIT`` round on the same file (the floor any durable transition pays).

Goals (DESIGN.md, issue 2): classify p50 <= 10 us; decide with SQLite p50 <= 100 us.
Issue 15: a write decision's p50 at most 1.3x the bare durable commit, measured call by call
in alternation (the last line, "interleaved"). The line before it counts the pages (4 KB WAL
frames) one write decision commits: the fsync waits for each (schema 5: 6; schema 6: 3;
the bare commit: 1).

``--compare FILE``: another version of ``drygate/state/sqlite.py`` (e.g. ``git show
main:src/drygate/state/sqlite.py > /tmp/before.py``), whose store takes its turn in the
interleaved round too, with this tree's engine: before and after in one run, on one disk.

Usage: python bench/engine_decision.py [--calls N] [--compare FILE]
"""

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

from drygate.engine import Engine, classify  # noqa: E402
from drygate.policy.load import compile_policy_text  # noqa: E402
from drygate.state.memory import MemoryStore  # noqa: E402
from drygate.state.sqlite import SQLiteStore  # noqa: E402
from drygate.types import ToolCall  # noqa: E402


def policy_with_rules(n=200):
    rules = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            rules.append(f'[[rules]]\ntool = "mcp__srv{i}__put"\neffect = "write"\ndry = true\n')
        elif kind == 1:
            rules.append(f'[[rules]]\ntool_glob = "mcp__srv{i}__*"\neffect = "write"\n')
        elif kind == 2:
            rules.append(f'[[rules]]\ntool_glob = "mcp__s{i}_*__get*"\neffect = "read"\n')
        else:
            rules.append(f'[[rules]]\ntool_regex = "mcp__r{i}__(list|get)_.*"\neffect = "read"\n')
    rules.append('[[rules]]\ntool = "mcp__d1__query"\ninput_regex = { sql = "^\\\\s*(?i:select)" }\n'
                 'effect = "read"\n')
    return compile_policy_text('[run]\nmode = "sticky"\n' + "".join(rules))


CALLS = [
    ToolCall("mcp__srv40__put", {"key": "a"}, "run"),              # literal rule
    ToolCall("mcp__srv41__delete", {"key": "a"}, "run"),           # glob rule
    ToolCall("mcp__d1__query", {"sql": "SELECT 1"}, "run"),        # input predicate
    ToolCall("Read", {"file_path": "/srv/app/x"}, "run"),          # built-in, no rule
    ToolCall("mcp__unknown__tool", {}, "run"),                     # no rule: unknown
]


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


READS = [c for c in CALLS if c.tool_name in ("Read", "mcp__d1__query")]
WRITES = [c for c in CALLS if c not in READS]


def measure(fn, n, calls=CALLS):
    samples = []
    for i in range(n):
        c = calls[i % len(calls)]
        t = time.perf_counter_ns()
        fn(c)
        samples.append((time.perf_counter_ns() - t) / 1000.0)
    return samples


def wal_frames(path, fn):
    """The WAL frames (pages) that ``fn()`` commits to the SQLite file at ``path`` (int)."""
    probe = sqlite3.connect(path, isolation_level=None)
    try:
        probe.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        fn()
        return probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    finally:
        probe.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--compare", help="another drygate/state/sqlite.py, alternated in the interleaved round")
    args = ap.parse_args()
    policy = policy_with_rules()
    folder = tempfile.mkdtemp(prefix="drygate-bench-")
    sqlite_store = SQLiteStore(os.path.join(folder, "state.db"))
    mem_engine = Engine(policy, MemoryStore())
    sql_engine = Engine(policy, sqlite_store)
    normal_engine = Engine(policy, SQLiteStore(os.path.join(folder, "normal.db"), synchronous="NORMAL"))
    raw = sqlite3.connect(os.path.join(folder, "floor.db"), isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=FULL")
    raw.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)")
    raw.execute("INSERT INTO t VALUES (1, 0)")

    def floor(_c):
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("UPDATE t SET n = n + 1 WHERE id = 1")
        raw.execute("COMMIT")

    rows = [
        ("empty call (baseline)", measure(lambda c: None, args.calls)),
        ("classify (200 rules)", measure(lambda c: classify(c, policy), args.calls)),
        ("decide (memory store)", measure(mem_engine.decide, args.calls)),
        ("sqlite tx floor (baseline)", measure(floor, args.calls)),
        ("decide (sqlite store)", measure(sql_engine.decide, args.calls)),
        ("  of which reads", measure(sql_engine.decide, args.calls, READS)),
        ("  of which writes", measure(sql_engine.decide, args.calls, WRITES)),
        ("decide (sqlite, NORMAL)", measure(normal_engine.decide, args.calls)),
    ]
    print(f"{args.calls} calls each; rules: {len(policy['rules'])}")
    print(f"{'':28s} {'p50 us':>9s} {'p99 us':>9s}")
    for label, xs in rows:
        print(f"{label:28s} {statistics.median(xs):9.2f} {percentile(xs, 0.99):9.2f}")
    p50 = {label: statistics.median(xs) for label, xs in rows}
    print(f"classify p50: {p50['classify (200 rules)']:.2f} us (goal <= 10)")
    print(f"decide with SQLite p50: {p50['decide (sqlite store)']:.2f} us (goal <= 100); "
          f"{p50['decide (sqlite store)'] / p50['sqlite tx floor (baseline)']:.2f}x the bare SQLite transaction; "
          f"with synchronous=NORMAL: {p50['decide (sqlite, NORMAL)']:.2f} us")
    print(f"reads (no fsync: they cannot change a run's dry state): {p50['  of which reads']:.2f} us; "
          f"writes (FULL fsync): {p50['  of which writes']:.2f} us")
    # The goal's ratio, measured call by call in alternation (the disk's fsync time moves with
    # the load other processes put on it, so blocks measured one after the other mislead).
    floor_x, write_x, other_x = [], [], []
    turns = [(floor, floor_x), (sql_engine.decide, write_x)]
    if args.compare:
        import importlib.util

        spec = importlib.util.spec_from_file_location("compared_sqlite", args.compare)
        compared = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(compared)
        other_engine = Engine(policy, compared.SQLiteStore(os.path.join(folder, "compared.db")))
        for i in range(300):
            other_engine.decide(WRITES[i % len(WRITES)])
        turns.append((other_engine.decide, other_x))
    for i in range(args.calls):
        c = WRITES[i % len(WRITES)]
        k = i % len(turns)
        for fn, into in turns[k:] + turns[:k]:
            t = time.perf_counter_ns()
            fn(c)
            into.append((time.perf_counter_ns() - t) / 1000.0)
    pages = wal_frames(sqlite_store.path, lambda: sql_engine.decide(WRITES[0]))
    print(f"pages committed per write decision: {pages} (bare durable commit: "
          f"{wal_frames(os.path.join(folder, 'floor.db'), lambda: floor(None))})")
    fw, ww = statistics.median(floor_x), statistics.median(write_x)
    if other_x:
        ow = statistics.median(other_x)
        print(f"compared ({args.compare}): write decision p50 {ow:.2f} us: {ow / fw:.2f}x the bare durable commit")
    print(f"interleaved: write decision p50 {ww:.2f} us vs bare durable commit p50 {fw:.2f} us: {ww / fw:.2f}x "
          f"(goal <= 1.3x); p99 {percentile(write_x, 0.99):.0f} vs {percentile(floor_x, 0.99):.0f} us; "
          f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
