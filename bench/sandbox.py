"""Benchmark: what the OS sandbox of a dry run costs (drygate.sandbox).

Measured in one run, each against a baseline of the same run, so machine noise hits both:

1. **Starting a shadow server's process** under drygate's bubblewrap prefix
   (``server_prefix``: read-only root, the copy writable, no network) against the same
   command bare and under ``unshare --net`` (what shadows used before). The command is
   ``python -c pass``; runs alternate between the three; medians and p90s.
2. **A Bash call in Claude Code** (the real CLI, offline against tests/e2e's fake Messages
   API, no hooks): ``claude -p`` runs of 1 and of N Bash calls (``true``), each with drygate's
   sandbox settings (``--settings``) and without; runs rotate; from the medians, the sandbox's
   cost per Bash call ((added to N calls - added to 1 call) / (N - 1)) and once per run.

Usage: python bench/sandbox.py [--starts 40] [--runs 5] [--calls 6] [--cli 2.1.332] [--skip-cli]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests" / "e2e"))


def _stats(values):
    values = sorted(values)
    return statistics.median(values), values[int(0.9 * (len(values) - 1))]


def bench_starts(n):
    from drygate.sandbox import server_prefix

    with tempfile.TemporaryDirectory(prefix="drygate-bench-") as tmp:
        copy = os.path.join(tmp, "copy")
        os.makedirs(os.path.join(copy, "scratch"))
        variants = {
            "bare": [],
            "unshare --net": ["unshare", "--net", "--"] if os.geteuid() == 0 else
            ["unshare", "--map-current-user", "--net", "--"],
            "bwrap (drygate)": server_prefix([copy], network=False, cwd=copy, scratch=os.path.join(copy, "scratch")),
        }
        times = {k: [] for k in variants}
        for i in range(n):
            order = list(variants)
            order = order[i % 3:] + order[:i % 3]
            for name in order:
                t0 = time.perf_counter()
                subprocess.run([*variants[name], sys.executable, "-c", "pass"], check=True)
                times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["bare"])
    print(f"\n1. starting `python -c pass` ({n} starts each, alternating)")
    for name, values in times.items():
        med, p90 = _stats(values)
        print(f"   {name:18s} median {med * 1000:7.1f} ms  p90 {p90 * 1000:7.1f} ms  "
              f"x{med / base:5.2f} of bare  (+{(med - base) * 1000:.1f} ms)")


def _cli_run(binary, proj, home, calls, settings):
    from fake_messages_api import TRIGGER, FakeMessagesAPI

    api = FakeMessagesAPI([{"name": "Bash", "input": {"command": "true", "description": "noop"}}] * calls).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE", "ANTHROPIC", "DRYGATE_"))}
    env.update(HOME=home, ANTHROPIC_BASE_URL=api.base_url, ANTHROPIC_API_KEY="dummy", DISABLE_TELEMETRY="1",
               DISABLE_AUTOUPDATER="1", DISABLE_ERROR_REPORTING="1", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1")
    argv = [str(binary), "-p", f"go {TRIGGER}", "--output-format", "json", "--allowedTools", "Bash"]
    if settings:
        argv += ["--settings", settings]
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=proj, env=env, capture_output=True, timeout=300)
    took = time.perf_counter() - t0
    api.stop()
    if len(api.tool_results) != calls:
        raise SystemExit(f"{len(api.tool_results)} of {calls} Bash calls ran")
    return took


def bench_cli(version, runs, calls):
    from drygate.sandbox import claude_settings

    binary = REPO / ".cache" / f"claude-code-{version}" / "node_modules" / ".bin" / "claude"
    if not binary.exists():
        print(f"\n2. skipped: {binary} is missing (.ci/run installs it)")
        return
    cases = [(n, sandboxed) for n in (1, calls) for sandboxed in (False, True)]
    times = {c: [] for c in cases}
    with tempfile.TemporaryDirectory(prefix="drygate-bench-") as tmp:
        home, proj = os.path.join(tmp, "home"), os.path.join(tmp, "proj")
        os.makedirs(home)
        os.makedirs(proj)
        settings = json.dumps(claude_settings([proj]))
        for i in range(runs):
            for case in cases[i % 4:] + cases[:i % 4]:
                times[case].append(_cli_run(binary, proj, home, case[0], settings if case[1] else None))
    med = {c: statistics.median(v) for c, v in times.items()}
    added_1 = med[(1, True)] - med[(1, False)]
    added_n = med[(calls, True)] - med[(calls, False)]
    per_call = (added_n - added_1) / (calls - 1)
    print(f"\n2. Claude Code {version}: runs of 1 and {calls} Bash calls, with and without the sandbox "
          f"({runs} runs each, rotating)")
    for (n, sandboxed), m in med.items():
        print(f"   {n:3d} call(s) {'sandboxed' if sandboxed else 'plain    '}  median {m:6.2f} s")
    print(f"   added by the sandbox: {added_1 * 1000:.0f} ms to a 1-call run, {added_n * 1000:.0f} ms to a "
          f"{calls}-call run: about {per_call * 1000:.0f} ms per Bash call plus {(added_1 - per_call) * 1000:.0f} ms "
          f"once per run")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=40)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--calls", type=int, default=8)
    ap.add_argument("--cli", default="2.1.332")
    ap.add_argument("--skip-cli", action="store_true")
    args = ap.parse_args()
    if shutil.which("bwrap") is None:
        raise SystemExit("bubblewrap is not installed (.ci/run installs it)")
    print(f"{os.cpu_count()} CPUs")
    bench_starts(args.starts)
    if not args.skip_cli:
        bench_cli(args.cli, args.runs, args.calls)


if __name__ == "__main__":
    main()
