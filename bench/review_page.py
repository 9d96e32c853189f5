"""Benchmark: the review page (`drygate review`) on a plan of 10,000 steps.

A dry run of ``--steps`` writes (default 10,000: MCP puts, every 10th a file Write, every
7th using a reference to the step before) and ``--reads`` reads through the engine on a
real SQLite store, saved as a plan; then ``drygate review plan.json`` is started as a
user starts it, and the pages are fetched over HTTP on 127.0.0.1 (httpx, the session
cookie from the one-time link): the overview, the first, a middle and the last page of
steps, of the timeline and of the file changes, and an approval. Each request is timed
``--repeat`` times (median). Baselines in the same run: ``json.loads`` of the plan file,
and ``drygate plan plan.json`` (the terminal table of 500 rows).

Usage: python bench/review_page.py [--steps N] [--reads N] [--repeat N]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SRC = os.path.join(REPO, "src")
sys.path.insert(0, SRC)

from drygate.engine import Engine  # noqa: E402
from drygate.policy.load import compile_policy_text  # noqa: E402
from drygate.state.sqlite import SQLiteStore  # noqa: E402
from drygate.types import ToolCall  # noqa: E402

POLICY = '''[run]
mode = "dry"

[[rules]]
tool_glob = "mcp__store__put_*"
effect = "write"
dry = true

[[rules]]
tool_glob = "mcp__store__get_*"
effect = "read"
'''
RUN = "bench-review"


def big_plan(project, steps, reads):
    """Make the run and save its plan; returns the plan file's path."""
    from drygate.plan.apply import record_planned
    from drygate.plan.artifact import make_plan, save_plan

    with open(os.path.join(project, "drygate.toml"), "w") as f:
        f.write(POLICY)
    os.makedirs(os.path.join(project, ".drygate"), exist_ok=True)
    store = SQLiteStore(os.path.join(project, ".drygate", "state.db"), synchronous="NORMAL")
    policy = compile_policy_text(POLICY)
    engine = Engine(policy, store, mode="dry")
    every = max(1, steps // max(1, reads))
    call = 0
    for i in range(steps):
        if i % every == 0 and i // every < reads:
            call += 1
            engine.decide(ToolCall("mcp__store__get_object", {"key": f"k{i}"}, RUN, f"r{i}"))
        call += 1
        if i % 10 == 0:
            tc = ToolCall("Write", {"file_path": os.path.join(project, "out", f"f{i}.txt"),
                                    "content": f"line {i}\n" * 5}, RUN, f"w{i}", cwd=project)
        elif i % 7 == 0:
            tc = ToolCall("mcp__store__put_meta", {"key": f"k{i}", "etag": f"drygate:ref:{call - 1}:etag",
                                                   "sql": f"update t set v = {i} where k = 'k{i}'"}, RUN, f"w{i}")
        else:
            tc = ToolCall("mcp__store__put_object", {"key": f"k{i}", "body": "x" * 64}, RUN, f"w{i}")
        engine.decide(tc)
    plan = make_plan(store, RUN, policy, project)
    path = os.path.join(project, "plan.json")
    save_plan(plan, path)
    record_planned(store, plan)
    store.close()
    return path, plan


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--reads", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import httpx

    project = tempfile.mkdtemp(prefix="drygate-bench-review-")
    start = time.perf_counter()
    path, plan = big_plan(project, args.steps, args.reads)
    made = time.perf_counter() - start
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRYGATE_")}
    env.update(PYTHONPATH=SRC, CLAUDE_PROJECT_DIR=project)
    text = open(path, encoding="utf-8").read()
    _, t_json = timed(lambda: json.loads(text), args.repeat)
    _, t_term = timed(lambda: subprocess.run([sys.executable, "-m", "drygate.cli.entry", "plan", path],
                                             cwd=project, env=env, capture_output=True, check=True), 1)

    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "drygate.cli.entry", "review", path], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = None
    while url is None:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"drygate review exited: {proc.stderr.read()}")
        m = re.search(r"open (http://\S+)", line)
        url = m and m.group(1)
    t_start = time.perf_counter() - start
    base = url.split("/?")[0]
    try:
        client = httpx.Client(base_url=base, timeout=120)
        start = time.perf_counter()
        first = client.get(url.replace(base, ""), follow_redirects=True)
        t_first = time.perf_counter() - start
        assert first.status_code == 200, first.text[:300]
        files = len(plan["file_changes"])
        pages = [("overview", "/"), ("steps page 1", "/steps"), ("steps page 50", "/steps?page=50"),
                 (f"steps page {(args.steps + 99) // 100} (last)", f"/steps?page={(args.steps + 99) // 100}"),
                 ("timeline page 1", "/timeline"), ("timeline page 60", "/timeline?page=60"),
                 ("files page 1", "/files"), (f"files page {(files + 19) // 20} (last)", f"/files?page={(files + 19) // 20}")]
        rows = []
        for label, p in pages:
            r, t = timed(lambda p=p: client.get(p), args.repeat)
            assert r.status_code == 200, (p, r.status_code)
            rows.append((label, t, len(r.content)))
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get("/").text).group(1)
        start = time.perf_counter()
        r = client.post("/decide", data={"csrf": csrf, "plan_hash": plan["content_hash"], "decision": "approve"},
                        headers={"Origin": base})
        t_approve = time.perf_counter() - start
        assert r.status_code == 200 and "Approved" in r.text, r.text[:500]
    finally:
        proc.terminate()
        proc.wait()
    size = os.path.getsize(path) / 1e6
    print(f"plan of {len(plan['steps'])} steps, {args.reads} reads, {files} files: {size:.1f} MB of JSON "
          f"(made in {made:.1f} s)")
    print(f"{'what':42s} {'seconds':>8s} {'KB':>7s} {'vs json.loads':>14s}")
    print(f"{'baseline: json.loads of the plan file':42s} {t_json:8.3f}")
    print(f"{'baseline: drygate plan FILE (500 rows)':42s} {t_term:8.3f} {'':7s} {t_term / t_json:13.1f}x")
    print(f"{'drygate review: start until the link':42s} {t_start:8.3f} {'':7s} {t_start / t_json:13.1f}x")
    print(f"{'first request (token, redirect, overview)':42s} {t_first:8.3f}")
    for label, t, n in rows:
        print(f"{label:42s} {t:8.3f} {n / 1024:7.0f} {t / t_json:13.2f}x")
    print(f"{'approve (file verified again, recorded)':42s} {t_approve:8.3f} {'':7s} {t_approve / t_json:13.2f}x")


if __name__ == "__main__":
    main()
