"""Benchmark: the classifier on the labelled corpus (tests/corpus) - quality and speed.

Quality: per label, precision and recall of the shell classifier against the
corpus labels, the confusion table, and the invariant (no non-read classified as a
read). Speed: per-command classification time in-process after the parsers are
loaded (p50 and p99 over the corpus' commands of under 200 characters), against a
baseline measured in the same run (shlex splitting the same commands, the standard
library's own tokenizer), and the one-time cost of loading the parsers.

Goal (issue 3): p50 under 200 microseconds for a typical command.

Usage: python bench/classify.py [--repeat N]
"""

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "src"))
sys.path.insert(0, os.path.join(ROOT, "tests", "corpus"))

from corpus import LABELS, load  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    started = time.perf_counter()
    from drygate.classifiers.shell import classify_command_verdict

    classify_command_verdict("psql -c 'SELECT 1' && redis-cli GET k && curl https://x")
    load_ms = (time.perf_counter() - started) * 1000

    rows = load()
    confusion = Counter()
    leaks = []
    for r in rows:
        got = classify_command_verdict(r["command"]).effect
        confusion[(r["label"], got)] += 1
        if r["label"] != "read" and got == "read":
            leaks.append(r)
    print(f"corpus: {len(rows)} commands; labels: " + ", ".join(
        f"{lab} {sum(v for (t, _), v in confusion.items() if t == lab)}" for lab in LABELS))
    print(f"\n{'label':18s} {'precision':>9s} {'recall':>7s} {'support':>8s}")
    for lab in LABELS:
        tp = confusion[(lab, lab)]
        predicted = sum(v for (_, g), v in confusion.items() if g == lab)
        actual = sum(v for (t, _), v in confusion.items() if t == lab)
        p = tp / predicted if predicted else float("nan")
        rc = tp / actual if actual else float("nan")
        print(f"{lab:18s} {p:9.3f} {rc:7.3f} {actual:8d}")
    print("\nconfusion (label -> classified):")
    for lab in LABELS:
        row = ", ".join(f"{g} {confusion[(lab, g)]}" for g in LABELS if confusion[(lab, g)])
        print(f"  {lab:16s} {row}")
    print(f"\ninvariant: {len(leaks)} non-read command(s) classified as read (must be 0)")
    for r in leaks:
        print("  LEAK", r["line"], r["command"][:100])

    typical = [r["command"] for r in rows if len(r["command"]) < 200]
    samples, base = [], []
    for _ in range(args.repeat):
        for c in typical:
            t = time.perf_counter_ns()
            classify_command_verdict(c)
            samples.append((time.perf_counter_ns() - t) / 1000)
            t = time.perf_counter_ns()
            try:
                shlex.split(c)
            except ValueError:
                pass
            base.append((time.perf_counter_ns() - t) / 1000)
    p50, p99 = statistics.median(samples), sorted(samples)[int(len(samples) * 0.99)]
    b50 = statistics.median(base)
    print(f"\nspeed over {len(typical)} commands under 200 characters x {args.repeat}:")
    print(f"  classify: p50 {p50:.1f} us, p99 {p99:.1f} us (goal p50 < 200 us)")
    print(f"  baseline shlex.split: p50 {b50:.1f} us; classify / shlex = {p50 / b50:.1f}x")
    print(f"  loading the parsers once (tree-sitter, sqlglot, tables): {load_ms:.1f} ms in this process")

    # The first use in a fresh process: what a hook call for a Bash command pays.
    code = ("import sys,time;sys.path.insert(0,%r);t=time.perf_counter();"
            "from drygate.classifiers.shell import classify_command_verdict as c;c(sys.argv[1]);"
            "print((time.perf_counter()-t)*1000)" % os.path.join(ROOT, "src"))
    for label, cmd in (("ls -la (table only)", "ls -la"),
                       ("psql -c SELECT 1 (plain SELECT: no sqlglot)", "psql -c 'SELECT 1'"),
                       ("redis-cli GET", "redis-cli GET k")):
        ms = [float(subprocess.run([sys.executable, "-c", code, cmd], capture_output=True, text=True).stdout)
              for _ in range(5)]
        print(f"  first classification in a fresh process, {label}: {statistics.median(ms):.1f} ms")


if __name__ == "__main__":
    main()
