"""Benchmark: the Claude Code hook process end to end against a bare interpreter.

Spawns, in alternation so machine noise hits both alike, (a) ``python -c pass``
from the same environment (the baseline) and (b) the exact hook command that
``drygate install claude-code`` writes, fed a PreToolUse event on stdin, deciding
against a real SQLite state store in a temporary project. Prints medians and the
ratio for several kinds of call. Goal (DESIGN.md, issue 15): the hook through ``sh -c`` at
most 1.3x ``sh -c 'python -c pass'`` (columns "vs sh" and "CPU vs sh"). Session ids look
like the host's (letters, digits, dashes), as the hook's fast paths expect.

The store starts empty, so its WAL stays short here; in a long session every hook process
reads the whole WAL when it opens the store, which drygate keeps under about 100 frames
(drygate.state.sqlite.HOOK_WAL_AUTOCHECKPOINT; SQLite's default let it grow to 1,000).
For a repeatable breakdown, run the printed hook command under ``valgrind --tool=callgrind
--trace-children=yes`` (instruction counts) and ``python -X importtime``.

``--store redis`` decides against a real redis-server started here (the fleet store,
through the hook's lean client); ``--store redis-py`` forces redis-py in the hook (a
URL option the lean client does not take), to show what ``import redis`` would cost
every tool call.

Bash rows: a command repeated in every call is answered from the whole-command verdict
cache from its second call on (drygate.classifiers.command_cache); the "new each" rows
change the text every call, so they are parsed and classified each time, and the
"SQL join, new command each" row has the SQL verdict cache answer the statement
(its key holds the classifier's code stamp, hashed once per process). Self-protection
reads every one of them.

What drygate.integrity's per-decision check adds is timed in-process by
bench/integrity_check.py (a switch to turn the check off in the hook would be a way
around it).

Usage: python bench/hook_startup.py [--runs N] [--store sqlite|redis|redis-py]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

from drygate.enforcement.install import hook_command  # noqa: E402
from drygate.policy.load import default_policy_text  # noqa: E402

EVENTS = {
    "Write (dry)": {"tool_name": "Write", "tool_input": {"file_path": "out.txt", "content": "x"}},
    # Simulated on the run's file shadow (drygate.file_shadow): notes.txt exists in the project.
    "Edit (dry)": {"tool_name": "Edit", "tool_input": {"file_path": "notes.txt", "old_string": "line",
                                                       "new_string": "line {i}"}},
    "Read (allow)": {"tool_name": "Read", "tool_input": {"file_path": "README.md"}},
    "mcp tool (dry)": {"tool_name": "mcp__r2__put_object", "tool_input": {"bucket": "b", "key": "k"}},
    # The host's PostToolUse after a Read: its result is journaled (no decision).
    "Read result (post)": {"tool_name": "Read", "tool_input": {"file_path": "README.md"},
                           "hook_event_name": "PostToolUse", "tool_response": {"content": "x" * 2000}},
    # The same command every call: from the second call on, its verdict comes from the
    # command verdict cache (drygate.classifiers.command_cache); self-protection still reads it.
    "Bash read (allow)": {"tool_name": "Bash", "tool_input": {"command": "ls -la | head -5"}},
    # A new command every call: parsed and classified each time (tree-sitter, command table).
    "Bash read, new each": {"tool_name": "Bash", "tool_input": {"command": "ls -la | head -{i}"}},
    "Bash SQL read, repeated": {"tool_name": "Bash", "tool_input": {"command": "psql -c 'SELECT count(*) FROM t'"}},
    "psql select 1": {"tool_name": "Bash", "tool_input": {"command": 'psql -c "select 1"'}},
    # {i} makes every call's statement new: the SQL verdict cache cannot help. A plain SELECT
    # is read without sqlglot (drygate.classifiers.sql.plain_select); one with a function call
    # imports sqlglot.
    "Bash SQL read, new each": {"tool_name": "Bash", "tool_input": {"command": "psql -c 'SELECT {i} FROM t'"}},
    "Bash SQL fn, new each": {"tool_name": "Bash", "tool_input": {"command": "psql -c 'SELECT count({i}) FROM t'"}},
    # The same statement (a join: never on the fast path) in a new command each call: the
    # whole-command cache misses, the SQL verdict cache answers it from the second call on.
    "Bash SQL join, new command each": {"tool_name": "Bash", "tool_input": {
        "command": "psql -h db{i} -c 'SELECT a FROM t JOIN u USING (id)'"}},
}


class _Done:
    __slots__ = ("returncode", "stdout", "stderr", "cpu")


def timed(argv, stdin=b"", env=None):
    """Run ``argv`` to its end; (wall seconds, result with returncode/stdout/stderr and
    ``cpu``: user+system seconds of the process and its children, from wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out, err = proc.stdout, proc.stderr
    proc.stdin.write(stdin)
    proc.stdin.close()
    done = _Done()
    done.stdout, done.stderr = out.read(), err.read()
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - start
    proc.returncode = done.returncode = os.waitstatus_to_exitcode(status)
    out.close()
    err.close()
    done.cpu = usage.ru_utime + usage.ru_stime
    return took, done


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--store", choices=("sqlite", "redis", "redis-py"), default="sqlite")
    ap.add_argument("--only", default=None, help="Only the calls whose label contains this text.")
    args = ap.parse_args()
    project = tempfile.mkdtemp(prefix="drygate-bench-")
    with open(os.path.join(project, "drygate.toml"), "w") as f:
        f.write(default_policy_text())
    with open(os.path.join(project, "notes.txt"), "w") as f:
        f.write("first line\n" + "".join(f"other text {n}\n" for n in range(200)))
    command = hook_command()
    # This machine's store records (drygate.integrity) in the bench's folder, not ~/.local/state.
    os.environ["XDG_STATE_HOME"] = os.path.join(project, ".xdg")
    env = dict(os.environ, CLAUDE_PROJECT_DIR=project)
    for k in ("DRYGATE_MODE", "DRYGATE_RUN_ID", "DRYGATE_STATE", "DRYGATE_POLICY", "DRYGATE_STATE_URL"):
        env.pop(k, None)
    server = None
    if args.store == "sqlite":  # as `drygate init` does: the hook never creates a store
        from drygate.integrity import initialize_store

        initialize_store(os.path.join(project, ".drygate", "state.db"))
    if args.store != "sqlite":
        server, url = start_redis(project)
        if args.store == "redis-py":
            url += "?client_name=drygate-bench"  # any option but db sends the hook to redis-py
        from drygate.state.redis import RedisStore

        RedisStore(url).initialize()
        env["DRYGATE_STATE_URL"] = url
        print(f"store: {url}")
    baseline_argv = [sys.executable, "-c", "pass"]
    # The host runs every command hook through `sh -c`; this second baseline shows
    # what the gate itself adds on top of that unavoidable shell.
    sh_baseline_argv = ["/bin/sh", "-c", f"{sys.executable} -c pass"]
    print(f"python: {sys.executable}; runs: {args.runs}; project: {project}")
    # CPU columns: user+system time of the process tree (wait4), less sensitive than wall
    # time to a machine that other work keeps busy.
    print(f"{'call':24s} {'baseline ms':>12s} {'sh+baseline':>12s} {'hook ms':>9s} {'ratio':>6s} {'vs sh':>6s}"
          f" {'sh+base CPU':>12s} {'hook CPU':>9s} {'CPU vs sh':>9s}")
    worst = 0.0
    for label, body in EVENTS.items():
        if args.only and args.only not in label:
            continue
        base, sh_base, hook, sh_cpu, hook_cpu = [], [], [], [], []
        for i in range(args.runs):
            tool_input = {k: (v.replace("{i}", str(i)) if isinstance(v, str) else v)
                          for k, v in body["tool_input"].items()}
            event = dict({"hook_event_name": "PreToolUse"}, **body)
            event.update(tool_input=tool_input, session_id=f"bench-{zlib.crc32(label.encode()):08x}-{i % 5}",
                         cwd=project, tool_use_id=f"t{i}", permission_mode="default")
            payload = json.dumps(event).encode()
            b, _ = timed(baseline_argv)
            sb, sproc = timed(sh_baseline_argv)
            h, proc = timed(["/bin/sh", "-c", command], payload, env)
            if proc.returncode not in (0, 2) or b"guard failure" in proc.stderr:
                print(proc.stdout, proc.stderr)
                raise SystemExit(f"hook failed with {proc.returncode}")
            base.append(b)
            sh_base.append(sb)
            hook.append(h)
            sh_cpu.append(sproc.cpu)
            hook_cpu.append(proc.cpu)
        mb, ms, mh, cs, ch = (statistics.median(x) * 1000 for x in (base, sh_base, hook, sh_cpu, hook_cpu))
        worst = max(worst, mh / mb)
        print(f"{label:24s} {mb:12.2f} {ms:12.2f} {mh:9.2f} {mh / mb:6.2f} {mh / ms:6.2f}"
              f" {cs:12.2f} {ch:9.2f} {ch / cs:9.2f}")
    print(f"worst ratio: {worst:.2f} (goal <= 1.5)")
    if server is not None:
        server.terminate()
        server.wait()


def start_redis(folder):
    """A redis-server on a free loopback port with the durability drygate asks for; (Popen, url)."""
    import shutil
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", folder, "--save", "",
                             "--appendonly", "yes", "--appendfsync", "always"], stdout=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.02)
    return proc, f"redis://127.0.0.1:{port}/0"


if __name__ == "__main__":
    main()
