"""Benchmark: what the Python API adds to a tool call, in-process.

Measured in one run, so machine noise hits all alike (p50 and p99 per call, microseconds):

- ``bare call``: the undecorated function (the floor);
- ``engine alone (memory)``: ``Engine.decide`` on a MemoryStore (classify + the atomic
  transition + journal append), what any enforcement point pays at least;
- ``gated call (memory)``: the same function through ``drygate.tool`` in a run on a
  MemoryStore: argument binding and JSON conversion, the decision, the call;
- ``engine alone (sqlite)`` / ``gated call (sqlite)``: the same on a real SQLite store
  (WAL, synchronous FULL: one durable commit per decision);
- ``gated dry call (memory)``: a dry write (the function is not called; the NotExecuted
  with its text is built).

The ratios printed are gated / engine alone (the API's own overhead) and gated / bare.

Usage: python bench/python_api.py [--calls N]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

import drygate  # noqa: E402
from drygate.engine import Engine  # noqa: E402
from drygate.policy.load import compile_policy_text  # noqa: E402
from drygate.state.memory import MemoryStore  # noqa: E402
from drygate.state.sqlite import SQLiteStore  # noqa: E402
from drygate.types import ToolCall  # noqa: E402

POLICY = ('[run]\nmode = "live"\n' + "".join(f'[[rules]]\ntool = "tool_{i}"\neffect = "write"\n' for i in range(200))
          + '[[rules]]\ntool = "get_user"\neffect = "read"\n')


def get_user(user_id: int, fields: tuple = ("name",)) -> dict:
    return {"id": user_id, "name": "ann"}


def timed(fn, n):
    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t = clock()
        fn()
        samples.append(clock() - t)
    samples.sort()
    return statistics.median(samples) / 1000, samples[int(len(samples) * 0.99) - 1] / 1000


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20000)
    args = ap.parse_args(argv)
    n = args.calls
    policy = compile_policy_text(POLICY)
    results = {}
    results["bare call"] = timed(lambda: get_user(7), n)

    with tempfile.TemporaryDirectory() as tmp:
        for label, make_store, count in (("memory", MemoryStore, n),
                                          ("sqlite", lambda: SQLiteStore(os.path.join(tmp, "s.db")), max(n // 10, 200))):
            store = make_store()
            engine = Engine(policy, store, mode="live")
            call = ToolCall("get_user", {"user_id": 7, "fields": ["name"]}, "bench-run", host="python")
            results[f"engine alone ({label})"] = timed(lambda: engine.decide(call), count)
            store.close()

            gate = drygate.open_gate(policy=POLICY, store=make_store() if label == "memory" else
                                     SQLiteStore(os.path.join(tmp, "g.db")))
            gated = gate.tool(get_user)
            with gate.run("bench-run"):
                assert gated(7) == {"id": 7, "name": "ann"}
                results[f"gated call ({label})"] = timed(lambda: gated(7), count)
            gate.close()

        gate = drygate.open_gate(policy=POLICY.replace('mode = "live"', 'mode = "dry"'), store=MemoryStore())

        @gate.tool(effect="write")
        def put(key: str, body: str) -> dict:
            raise AssertionError("a dry write must not run")

        with gate.run("bench-dry"):
            assert not put("k", "v")
            results["gated dry call (memory)"] = timed(lambda: put("k", "v"), n)
        gate.close()

    print(f"{'':28} {'p50 us':>9} {'p99 us':>9}")
    for name, (p50, p99) in results.items():
        print(f"{name:28} {p50:9.2f} {p99:9.2f}")
    for label in ("memory", "sqlite"):
        g, e = results[f"gated call ({label})"][0], results[f"engine alone ({label})"][0]
        print(f"gated / engine alone ({label}): {g / e:.2f}x p50")
    print(f"gated (memory) / bare call: {results['gated call (memory)'][0] / results['bare call'][0]:.0f}x p50")


if __name__ == "__main__":
    main()
