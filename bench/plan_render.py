"""Benchmark: ``drygate plan RUN`` on a run of ``--steps`` skipped writes (default 100,000).

A dry run of that many writes is made through the engine on a real SQLite store (NORMAL
sync, to build it quickly), then ``drygate plan RUN`` (the terminal table, COLUMNS=120,
through a pipe) and ``drygate plan RUN --json`` run as fresh processes, alternating over
``--repeat`` rounds: median wall time and peak memory (the child's max RSS). Goal (issue 15):
the table at most 5 s and 300 MB at 100,000 steps.

Usage: python bench/plan_render.py [--steps N] [--repeat N] [--keep DIR]
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "src"))

from drygate.engine import Engine  # noqa: E402
from drygate.policy.load import compile_policy_text  # noqa: E402
from drygate.state.sqlite import SQLiteStore  # noqa: E402
from drygate.types import ToolCall  # noqa: E402

ENV = dict(os.environ, PYTHONPATH=os.path.join(REPO, "src"), COLUMNS="120")


def make_project(root, steps):
    subprocess.run([sys.executable, "-m", "drygate.cli.entry", "init"], cwd=root, check=True,
                   capture_output=True, env=ENV)
    policy = compile_policy_text(open(os.path.join(root, "drygate.toml"), encoding="utf-8").read())
    store = SQLiteStore(os.path.join(root, ".drygate", "state.db"), synchronous="NORMAL")
    engine = Engine(policy, store, mode="dry")
    for i in range(steps):
        engine.decide(ToolCall("mcp__store__put_object", {"bucket": "b", "key": f"k{i}", "body": "x" * 64},
                               "big", f"w{i}"))
    store.close()


def run(root, *args):
    """(seconds, peak RSS in MB) of one ``drygate`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "drygate.cli.entry", *args], cwd=root, env=ENV,
                            stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - start
    if status:
        raise SystemExit(f"drygate {' '.join(args)} failed ({status})")
    del before
    return took, usage.ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", default=None, help="Reuse (or keep) the project in this folder.")
    args = parser.parse_args()
    root = args.keep or tempfile.mkdtemp(prefix="drygate-bench-plan-render-")
    try:
        if not os.path.exists(os.path.join(root, ".drygate", "state.db")):
            os.makedirs(root, exist_ok=True)
            start = time.perf_counter()
            make_project(root, args.steps)
            print(f"made a dry run of {args.steps} writes in {time.perf_counter() - start:.1f} s")
        table, as_json = [], []
        for _ in range(args.repeat):
            table.append(run(root, "plan", "big"))
            as_json.append(run(root, "plan", "big", "--json"))
        t, tm = statistics.median(x[0] for x in table), max(x[1] for x in table)
        j, jm = statistics.median(x[0] for x in as_json), max(x[1] for x in as_json)
        print(f"drygate plan, {args.steps} steps: table {t:.2f} s / {tm:.0f} MB; --json {j:.2f} s / {jm:.0f} MB; "
              f"ratio {t / j:.2f}x time, {tm / jm:.2f}x memory (goal: table at most 5 s and 300 MB)")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
