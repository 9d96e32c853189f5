"""Benchmark: decisions through the Redis state store, against a bare PING, and fleet throughput.

Starts its own ``redis-server`` (Debian's package) on a free loopback port in a temp folder,
configured as the tests configure it (``appendonly yes``; ``--fsync`` picks ``appendfsync``,
``always`` by default: every acknowledged transition is on disk). Measures, in one run so
machine noise hits all alike:

- latency (in-process, one connection, rows measured in alternating chunks): a bare ``PING``
  round trip (the baseline), a trivial ``EVALSHA`` (the floor of any script call), an
  ``EVALSHA`` that increments one key (the floor of any durable write: with ``appendfsync
  always`` it waits for an fsync), and an engine decision with the Redis transition
  (200-rule policy, read calls and write calls separately; both journal an entry, so both
  write); each with redis-py (long-running processes) and with the hook's lean RESP client;
- throughput: 8 processes (standing in for hosts), each with its own store connection,
  deciding a mix of reads and writes on 40 shared runs; decisions per second for SQLite
  (one file, synchronous=FULL) and Redis side by side.

Goal (issue 5): decision p50 at most 2x the PING p50 measured in the same run. Nothing here
asserts a timing: it prints the numbers and the ratios.

Usage: python bench/redis_decision.py [--calls N] [--fsync always|everysec] [--quick]
"""

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "src"))
sys.path.insert(0, os.path.join(ROOT, "tests"))  # tests/redis_server.py starts the server
sys.path.insert(0, HERE)

from engine_decision import percentile, policy_with_rules  # noqa: E402
from redis_server import RedisServer, find_binary, missing_message, version  # noqa: E402

from drygate.engine import Engine  # noqa: E402
from drygate.types import ToolCall  # noqa: E402

PROCESSES = 8
RUNS = 40
READ_TOOLS = ("mcp__d1__query", "Read")
WRITE_TOOLS = ("mcp__srv40__put", "mcp__srv41__delete", "mcp__unknown__tool")


def make_call(i, kind):
    """The i-th call of a kind ("read", "write" or "mixed"), spread over RUNS runs."""
    run_id = f"run-{i % RUNS}"
    if kind == "mixed":
        kind = "read" if i % 2 else "write"
    if kind == "read":
        name = READ_TOOLS[i % len(READ_TOOLS)]
        return ToolCall(name, {"sql": "SELECT 1"} if name == "mcp__d1__query" else {"file_path": "/srv/x"}, run_id)
    return ToolCall(WRITE_TOOLS[i % len(WRITE_TOOLS)], {"key": str(i)}, run_id)


def measure_interleaved(fns, n, chunk=50):
    """Samples (us) of each function in ``fns`` (list), taken in alternating chunks so that
    machine noise (other processes, frequency changes, fsync stalls) hits every row alike."""
    counters = [0] * len(fns)
    for fn in fns:  # warm up: connection, script cache, policy tables
        for _ in range(min(100, n)):
            fn(counters[0])
            counters[0] += 1
    samples = [[] for _ in fns]
    while len(samples[0]) < n:
        for k, fn in enumerate(fns):
            for _ in range(min(chunk, n - len(samples[k]))):
                i = counters[k] = counters[k] + 1
                t = time.perf_counter_ns()
                fn(i)
                samples[k].append((time.perf_counter_ns() - t) / 1000.0)
    return samples


def redis_store(url, lean):
    from drygate.state.redis import RedisStore

    return RedisStore(url, timeout_s=5.0, lean=lean)


def _floors(url, lean):
    """``(connection, ping, script call, scripted write)`` for one client."""
    if lean:
        from drygate.state.resp import RespConnection

        conn = RespConnection(url, 5.0)
        sha = conn.call("SCRIPT", "LOAD", "return 1")
        wsha = conn.call("SCRIPT", "LOAD", "return redis.call('INCR', KEYS[1])")
        return (conn, lambda i: conn.call("PING"), lambda i: conn.call("EVALSHA", sha, 0),
                lambda i: conn.call("EVALSHA", wsha, 1, "bench:floor"))
    import redis

    conn = redis.Redis.from_url(url)
    sha = conn.script_load("return 1")
    wsha = conn.script_load("return redis.call('INCR', KEYS[1])")
    return conn, lambda i: conn.ping(), lambda i: conn.evalsha(sha, 0), lambda i: conn.evalsha(wsha, 1, "bench:floor")


def _decisions(engine):
    return lambda i: engine.decide(make_call(i, "read")), lambda i: engine.decide(make_call(i, "write"))


def latency_rows(url, calls):
    """``[(label, samples)]`` for both clients: PING, EVALSHA floors, decisions."""
    policy = policy_with_rules()
    rows = []
    for client, lean in (("redis-py", False), ("lean", True)):
        conn, ping, floor, wfloor = _floors(url, lean)
        store = redis_store(url, lean)
        reads, writes = _decisions(Engine(policy, store))
        labels = [f"PING ({client}, baseline)", f"EVALSHA return 1 ({client})",
                  f"EVALSHA INCR, a write ({client})", f"decide, reads ({client})", f"decide, writes ({client})"]
        rows += list(zip(labels, measure_interleaved([ping, floor, wfloor, reads, writes], calls), strict=True))
        store.close()
        conn.close()
    return rows


def server_script_time(server, url, calls):
    """Microseconds Redis spends inside the transition script per decision (INFO commandstats)."""
    store = redis_store(url, False)
    engine = Engine(policy_with_rules(), store)
    engine.decide(make_call(0, "read"))
    client = server.client()
    client.config_resetstat()
    for i in range(calls):
        engine.decide(make_call(i, "mixed"))
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    store.close()
    client.close()
    return float(stats.get("usec_per_call", 0.0))


def _throughput_worker(kind, where, wid, calls, barrier, results):
    policy = policy_with_rules()
    if kind == "sqlite":
        from drygate.state.sqlite import SQLiteStore

        store = SQLiteStore(where, busy_timeout_s=60)
    else:
        store = redis_store(where, kind == "redis-lean")
    engine = Engine(policy, store)
    engine.decide(make_call(wid, "read"))  # connect and load the script before the clock starts
    barrier.wait(120)
    start = time.perf_counter()
    for i in range(calls):
        engine.decide(make_call(wid * calls + i, "mixed"))
    results.put((start, time.perf_counter()))
    store.close()


def throughput(kind, where, calls):
    """Decisions per second of PROCESSES processes, from the first start to the last finish."""
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_throughput_worker, args=(kind, where, w, calls, barrier, results))
             for w in range(PROCESSES)]
    for p in procs:
        p.start()
    spans = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(60)
        if p.exitcode != 0:
            raise RuntimeError(f"a {kind} worker failed with exit code {p.exitcode}")
    elapsed = max(e for _, e in spans) - min(s for s, _ in spans)
    return PROCESSES * calls / elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=5000, help="latency samples per row")
    ap.add_argument("--per-process", type=int, default=2000, help="decisions per process for throughput")
    ap.add_argument("--fsync", choices=("always", "everysec"), default="always", help="Redis appendfsync")
    ap.add_argument("--quick", action="store_true", help="a short run (smoke test of the benchmark)")
    args = ap.parse_args()
    if args.quick:
        args.calls, args.per_process = 300, 150
    if find_binary() is None:
        sys.exit(missing_message())
    folder = tempfile.mkdtemp(prefix="drygate-bench-redis-")
    server = RedisServer(os.path.join(folder, "redis"), config={"appendfsync": args.fsync})
    try:
        server.start()
        from drygate.state.redis import RedisStore

        RedisStore(server.url(db=1)).initialize()
        RedisStore(server.url(db=2)).initialize()
        rows = latency_rows(server.url(db=1), args.calls)
        script_us = server_script_time(server, server.url(db=1), min(args.calls, 2000))
        print(f"redis-server {'.'.join(map(str, version(server.binary)))}, appendonly yes, "
              f"appendfsync {args.fsync}; {args.calls} calls per row; loopback TCP")
        print(f"{'':34s} {'p50 us':>9s} {'p99 us':>9s} {'p50 / PING':>11s}")
        p50 = {}
        for label, xs in rows:
            p50[label] = statistics.median(xs)
            client = "lean" if "(lean" in label else "redis-py"
            base = p50.get(f"PING ({client}, baseline)", p50[label])
            print(f"{label:34s} {p50[label]:9.1f} {percentile(xs, 0.99):9.1f} {p50[label] / base:10.2f}x")
        for client in ("redis-py", "lean"):
            ping = p50[f"PING ({client}, baseline)"]
            floor = p50[f"EVALSHA INCR, a write ({client})"]
            r, w = p50[f"decide, reads ({client})"], p50[f"decide, writes ({client})"]
            print(f"goal (decision p50 <= 2x PING p50), {client}: reads {r / ping:.2f}x, writes {w / ping:.2f}x "
                  f"-> {'met' if max(r, w) <= 2 * ping else 'NOT met'}; against the bare scripted write "
                  f"(the floor of any durable transition): reads {r / floor:.2f}x, writes {w / floor:.2f}x")

        print(f"where a decision's time goes (redis-py): the script runs {script_us:.1f} us inside Redis "
              f"(INFO commandstats); the rest is the round trip, the fsync and the client (classify, encode, "
              f"decode)")

        print(f"\nthroughput, {PROCESSES} processes x {args.per_process} decisions (half reads, half writes, "
              f"{RUNS} shared runs):")
        sqlite_path = os.path.join(folder, "sqlite", "state.db")
        os.makedirs(os.path.dirname(sqlite_path))
        from drygate.state.sqlite import SQLiteStore

        SQLiteStore(sqlite_path).close()
        results = [("sqlite (synchronous=FULL)", throughput("sqlite", sqlite_path, args.per_process)),
                   ("redis (redis-py)", throughput("redis-py", server.url(db=2), args.per_process)),
                   ("redis (lean client)", throughput("redis-lean", server.url(db=2), args.per_process))]
        for label, rate in results:
            print(f"  {label:28s} {rate:9.0f} decisions/s  ({rate / results[0][1]:.2f}x sqlite)")
    finally:
        server.kill()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
