"""Benchmark: what drygate.integrity's fingerprint check adds to each hook decision.

In one process set up as the hook is (the hook's modules loaded, a real SQLite store made
by ``initialize_store``, a project with its settings and policy), times, in alternation:

- ``baseline``: one journaled read decision (``Engine.decide``) without the check;
- ``floor``: one ``os.stat`` of every watched path (what no check of them can go below);
- ``check, steady``: :func:`drygate.integrity.check` for a run that has its fingerprints
  (every later call of a run: one query, one ``os.stat`` per watched path, nothing hashed);
- ``check, first call``: the check for a new run (takes its fingerprints; digests reused
  from the last run, so nothing is hashed unless a file changed);
- ``check, first ever``: a new run with no earlier run to reuse from (every file hashed:
  once per install).

Prints medians in microseconds, the number of watched paths, and the ratio of the steady
check to a decision. Goal (issue 11): the check adds less than 1 ms to a call.

Usage: python bench/integrity_check.py [--runs N]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args()
    project = tempfile.mkdtemp(prefix="drygate-bench-integrity-")
    os.environ["XDG_STATE_HOME"] = os.path.join(project, ".xdg")
    from drygate import integrity
    from drygate.config import resolve
    from drygate.enforcement.install import install_claude_code
    from drygate.gate import Gate
    from drygate.policy.load import default_policy_text
    from drygate.types import ToolCall

    with open(os.path.join(project, "drygate.toml"), "w") as f:
        f.write(default_policy_text())
    install_claude_code(project)
    integrity.initialize_store(os.path.join(project, ".drygate", "state.db"))
    settings = resolve({"CLAUDE_PROJECT_DIR": project}, project_dir=project)
    gate = Gate.open(settings, "bench", lean=True)
    import drygate.classifiers.shell  # noqa: F401 - the modules a Bash call loads, watched like the rest
    import drygate.classifiers.sql  # noqa: F401 - and SQL in it (sqlglot): the largest set a run watches
    drygate.classifiers.sql.classify_sql("SELECT 1", "sqlite", None)
    store = gate.store
    watched = integrity.watched(project, settings.policy_path)
    call = ToolCall("Read", {"file_path": os.path.join(project, "README.md")}, "bench-run", None, None, project,
                    "bench")
    integrity.check(store, "bench-run", watched, gate.markers)

    def timed(fn):
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e6

    paths = [p for p in store.fingerprints("bench-run") if p.startswith("/")]

    def stat_all():
        for p in paths:
            try:
                os.stat(p)
            except OSError:
                pass

    decide, steady, first, ever, floor = [], [], [], [], []
    for i in range(args.runs):
        decide.append(timed(lambda: gate.engine.decide(call)))
        floor.append(timed(stat_all))
        steady.append(timed(lambda: integrity.check(store, "bench-run", integrity.watched(
            project, settings.policy_path), gate.markers)))
        first.append(timed(lambda: integrity.check(store, f"new-{i}", integrity.watched(
            project, settings.policy_path), gate.markers)))
        if i % 20 == 0:
            store._db.execute("DELETE FROM run_fingerprints WHERE run_id = ?", (integrity.LAST,))
            ever.append(timed(lambda: integrity.check(store, f"ever-{i}", integrity.watched(
                project, settings.policy_path), gate.markers)))
    md, ms, mf, me, mo = (statistics.median(x) for x in (decide, steady, first, ever, floor))
    print(f"watched paths: {len(paths)}; runs: {args.runs}; python {sys.version.split()[0]}")
    print(f"{'what':28s} {'median us':>10s}")
    print(f"{'decision (baseline)':28s} {md:10.0f}")
    print(f"{'os.stat of every path (floor)':28s} {mo:10.0f}")
    print(f"{'check, steady':28s} {ms:10.0f}")
    print(f"{'check, first call of a run':28s} {mf:10.0f}")
    print(f"{'check, first ever (hashes)':28s} {me:10.0f}")
    print(f"steady check / decision: {ms / md:.2f}; steady check / its stat floor: {ms / mo:.2f}; goal: the check "
          f"adds < 1000 us ({'ok' if ms < 1000 else 'OVER'})")


if __name__ == "__main__":
    main()
