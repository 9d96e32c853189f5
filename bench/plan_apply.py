"""Benchmark: saved plans of 10,000 steps, and what apply adds per step.

1. Plan of a big run: a dry run of ``--steps`` writes (default 10,000) and ``--reads``
   reads (default 100) through the engine on a real SQLite store, then: building the
   plan artifact, saving it, loading and verifying it (content hash), rendering it as
   the terminal table, and the basis check (the reads re-run through a real MCP server,
   examples/incident/store_server.py). Time and peak memory (tracemalloc) of each, with
   the baseline of the same data through ``json.dumps``/``json.loads`` in the same run.
2. Apply overhead: ``--apply-steps`` writes (default 200) applied by drygate's Applier
   (ledger compare-and-set before and after each step, journal entries, reference
   resolution) against the same calls made directly with the MCP SDK client, to fresh
   copies of the same server, alternating; prints the added time per step and the ratio.

Usage: python bench/plan_apply.py [--steps N] [--reads N] [--apply-steps N] [--quick]
"""

import argparse
import asyncio
import io
import json
import os
import sqlite3
import sys
import tempfile
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "src"))

from drygate.engine import Engine  # noqa: E402
from drygate.policy.load import compile_policy_text  # noqa: E402
from drygate.state.sqlite import SQLiteStore  # noqa: E402
from drygate.types import ToolCall  # noqa: E402

SERVER = os.path.join(REPO, "examples", "incident", "store_server.py")
POLICY = open(os.path.join(REPO, "examples", "incident", "drygate.toml"), encoding="utf-8").read()


def measure(fn):
    """``(result, seconds, peak MB)``: timed on a first call, peak traced memory on a
    second one (tracemalloc slows allocation several times, so it never runs while timing)."""
    start = time.perf_counter()
    result = fn()
    took = time.perf_counter() - start
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return result, took, peak


def server_env(folder):
    objects, db = os.path.join(folder, "objects"), os.path.join(folder, "meta.db")
    os.makedirs(objects, exist_ok=True)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, size INTEGER)")
    return {"STORE_DIR": objects, "STORE_DB": db}


def mcp_json(project, env):
    with open(os.path.join(project, ".mcp.json"), "w") as f:
        json.dump({"mcpServers": {"store": {"command": sys.executable, "args": [SERVER], "env": env}}}, f)


def big_run(project, steps, reads):
    """A dry run of ``steps`` writes and ``reads`` reads, with the reads' real results."""
    from mcp import Client, StdioServerParameters

    from drygate.plan.fingerprint import result_fingerprint

    store = SQLiteStore(os.path.join(project, "state.db"), synchronous="NORMAL")
    policy = compile_policy_text(POLICY)
    engine = Engine(policy, store, mode="dry")
    params = StdioServerParameters(command=sys.executable, args=[SERVER], env=dict(os.environ, **server_env(project)))

    async def read_results():
        async with Client(params, cache=None) as client:
            out = []
            for i in range(reads):
                r = await client.call_tool("query", {"sql": f"SELECT {i}, count(*) FROM objects"})
                out.append(r.model_dump(mode="json", by_alias=True, exclude_none=True))
            return out

    results = asyncio.run(read_results())
    every = max(1, steps // max(1, reads))
    r = 0
    for i in range(steps):
        if r < reads and i % every == 0:
            call = ToolCall("mcp__store__query", {"sql": f"SELECT {r}, count(*) FROM objects"}, "big", f"read{r}")
            engine.decide(call)
            store.record_result("big", f"read{r}", call.tool_name,
                                {"read_fingerprint": result_fingerprint(results[r]), "bytes": 1}, time.time())
            r += 1
        engine.decide(ToolCall("mcp__store__put_object", {"bucket": "b", "key": f"k{i}", "body": "x" * 64}, "big",
                               f"w{i}"))
    return store, policy


def part_one(args):
    from rich.console import Console

    from drygate.cli import apply_cmd
    from drygate.plan.apply import Applier
    from drygate.plan.artifact import load_plan, make_plan, save_plan
    from drygate.plan.executors import McpServers

    project = tempfile.mkdtemp(prefix="drygate-bench-plan-")
    store, policy = big_run(project, args.steps, args.reads)
    mcp_json(project, server_env(project))
    path = os.path.join(project, "plan.json")
    plan, t_make, m_make = measure(lambda: make_plan(store, "big", policy, project))
    _, t_save, m_save = measure(lambda: save_plan(plan, path))
    _, t_load, m_load = measure(lambda: load_plan(path))
    text = open(path, encoding="utf-8").read()
    _, t_json, m_json = measure(lambda: json.loads(text))
    _, t_dump, m_dump = measure(lambda: json.dumps(plan, indent=2))
    sink = Console(file=io.StringIO(), width=200)
    apply_cmd.out = sink
    _, t_render, m_render = measure(lambda: apply_cmd.print_artifact(plan))
    _, t_render_all, m_render_all = measure(lambda: apply_cmd.print_artifact(plan, max_rows=None))

    class Quiet:
        def note(self, text):
            pass

    async def basis():
        async with McpServers(project) as servers:
            return await Applier(plan, store, project, policy, servers, Quiet()).check_basis()

    (changed, unchecked), t_basis, m_basis = measure(lambda: asyncio.run(basis()))
    assert not changed, changed
    size = os.path.getsize(path) / 1e6
    print(f"plan of {args.steps} steps and {args.reads} reads: {size:.1f} MB of JSON")
    print(f"{'operation':34s} {'seconds':>8s} {'peak MB':>8s} {'vs json':>8s}")
    print(f"{'baseline: json.loads of the file':34s} {t_json:8.3f} {m_json:8.1f}")
    print(f"{'baseline: json.dumps of the plan':34s} {t_dump:8.3f} {m_dump:8.1f}")
    for label, t, m, base in (("make (journal -> artifact)", t_make, m_make, t_dump),
                              ("save", t_save, m_save, t_dump), ("load + verify hash", t_load, m_load, t_json),
                              (f"render the table ({apply_cmd.MAX_ROWS} rows)", t_render, m_render, t_dump),
                              ("render the table (all rows)", t_render_all, m_render_all, t_dump),
                              (f"basis check ({args.reads} reads re-run)", t_basis, m_basis, t_json)):
        print(f"{label:34s} {t:8.3f} {m:8.1f} {t / base:8.1f}x")


def part_two(args):
    from mcp import Client, StdioServerParameters

    from drygate.plan.apply import Applier
    from drygate.plan.artifact import make_plan
    from drygate.plan.executors import McpServers

    n = args.apply_steps
    direct_times, apply_times = [], []
    for rnd in range(args.rounds):
        # drygate apply of a plan of n writes
        project = tempfile.mkdtemp(prefix="drygate-bench-apply-")
        store = SQLiteStore(os.path.join(project, "state.db"))
        policy = compile_policy_text(POLICY)
        engine = Engine(policy, store, mode="dry")
        for i in range(n):
            engine.decide(ToolCall("mcp__store__put_object", {"bucket": "b", "key": f"k{i}", "body": "x"}, "run"))
        env = server_env(project)
        mcp_json(project, env)
        plan = make_plan(store, "run", policy, project)

        class Quiet:
            def step_started(self, step):
                pass

            def step_done(self, step, result, note=None):
                pass

            def note(self, text):
                pass

        async def via_apply(project=project, plan=plan, store=store, policy=policy, Quiet=Quiet):
            async with McpServers(project) as servers:
                await servers.client("store")  # connected before the clock starts, as below
                start = time.perf_counter()
                outcome = await Applier(plan, store, project, policy, servers, Quiet()).run()
                assert outcome["status"] == "applied", outcome
                return time.perf_counter() - start

        apply_times.append(asyncio.run(via_apply()) / n)
        # the same calls made directly, on a fresh copy of the server's state
        other = tempfile.mkdtemp(prefix="drygate-bench-direct-")
        params = StdioServerParameters(command=sys.executable, args=[SERVER],
                                       env=dict(os.environ, **server_env(other)))

        async def direct(params=params):
            async with Client(params, cache=None) as client:
                start = time.perf_counter()
                for i in range(n):
                    await client.call_tool("put_object", {"bucket": "b", "key": f"k{i}", "body": "x"})
                return time.perf_counter() - start

        direct_times.append(asyncio.run(direct()) / n)
        print(f"round {rnd + 1}: direct {direct_times[-1] * 1000:.2f} ms/step, apply {apply_times[-1] * 1000:.2f} ms/step")
    d, a = sorted(direct_times)[len(direct_times) // 2], sorted(apply_times)[len(apply_times) // 2]
    print(f"apply of {n} MCP writes: direct {d * 1000:.2f} ms/step, drygate apply {a * 1000:.2f} ms/step: "
          f"+{(a - d) * 1000:.2f} ms/step, {a / d:.2f}x (SQLite store, FULL sync: 2 ledger commits and 1 journal "
          f"entry per step)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--reads", type=int, default=100)
    ap.add_argument("--apply-steps", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.reads, args.apply_steps, args.rounds = 500, 10, 30, 1
    part_one(args)
    part_two(args)


if __name__ == "__main__":
    main()
