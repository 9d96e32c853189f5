"""Benchmark: the terminal listings at scale, against their own ``--json`` in the same run.

``drygate runs`` over a store of ``--runs`` runs (default 10,000), printed as the table a
person sees (COLUMNS=120, through a pipe) and as ``--json``; each command is a fresh process,
timed over ``--repeat`` alternating rounds (median). Goal (issue 15): the table at most 1 s
with 10,000 runs.

Usage: python bench/cli_listing.py [--runs N] [--repeat N]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "src"))

from drygate.state.sqlite import SQLiteStore  # noqa: E402


def make_project(root, runs):
    """A project whose store holds ``runs`` runs (a write each, so every column has a value)."""
    subprocess.run([sys.executable, "-m", "drygate.cli.entry", "init"], cwd=root, check=True,
                   capture_output=True, env=dict(os.environ, PYTHONPATH=os.path.join(REPO, "src")))
    store = SQLiteStore(os.path.join(root, ".drygate", "state.db"))
    now = time.time()
    for i in range(runs):
        store.ensure_run(f"{i:08x}-5d4e-4f0e-9a57-3c1d2e9f8a10", "dry" if i % 2 else "sticky", now - i)
    store.close()


def timed(root, *args):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "src"), COLUMNS="120")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "drygate.cli.entry", *args], cwd=root, check=True,
                   stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        make_project(root, args.runs)
        table, as_json = [], []
        for _ in range(args.repeat):
            table.append(timed(root, "runs"))
            as_json.append(timed(root, "runs", "--json"))
        t, j = statistics.median(table), statistics.median(as_json)
        print(f"drygate runs, {args.runs} runs: table {t:.2f} s, --json {j:.2f} s, ratio {t / j:.2f}x "
              f"(goal: table at most 1 s)")


if __name__ == "__main__":
    main()
