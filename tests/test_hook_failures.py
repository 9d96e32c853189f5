"""The hook fails closed on every kind of bad input and broken part, and says why."""

import json
import os
import subprocess
import sys

import pytest

from conftest import SRC, write_policy


def assert_fail_closed(project, r, cause=None):
    assert r.code == 2, (r.code, r.stdout, r.stderr)
    body = json.loads(r.stdout)
    if "hookSpecificOutput" in body:
        assert body["hookSpecificOutput"]["permissionDecision"] == "deny"
    else:  # an event other than PreToolUse: the legacy block form
        assert body["decision"] == "block"
    assert "BLOCKED" in r.stderr
    alert = project.alerts()[-1]
    assert alert["kind"] == "guard_failure"
    if cause:
        assert alert["cause"] == cause, alert


@pytest.mark.parametrize("raw,why", [
    (b"", "empty stdin"),
    (b"not json", "not JSON"),
    (b"[1, 2]", "a JSON array"),
    (b'{"session_id": "s"}', "no tool_name"),
    (b'{"tool_name": "Write", "tool_input": {}}', "no session id"),
    (b'{"session_id": "s", "tool_name": "Write"} trailing', "trailing garbage"),
    (b'\xff\xfe{}', "not UTF-8"),
    (b'{"session_id": "s", "hook_event_name": "UserPromptSubmit", "prompt": "x"}', "an event drygate does not handle"),
])
def test_malformed_input(project, raw, why):
    write_policy(project.root, "live")
    r = project.hook(None, raw=raw)
    assert_fail_closed(project, r, "input")


def test_invalid_policy_blocks_even_reads(project):
    (project.root / "drygate.toml").write_text('[run]\nmode = "sometimes"\n')
    r = project.hook(project.event("Read", {"file_path": "x"}))
    assert_fail_closed(project, r, "config")
    assert "mode must be one of" in r.stderr


def test_policy_syntax_error_names_the_line(project):
    (project.root / "drygate.toml").write_text('[run\nmode = "dry"\n')
    r = project.hook(project.event("Write", {"file_path": "x"}))
    assert_fail_closed(project, r, "config")
    assert "line 1" in r.stderr


def test_missing_policy_blocks(project):
    r = project.hook(project.event("Read", {"file_path": "x"}))
    assert_fail_closed(project, r, "config")
    assert "drygate init" in r.stderr


def test_invalid_env_mode_blocks(project):
    write_policy(project.root, "live")
    r = project.hook(project.event("Read", {"file_path": "x"}), DRYGATE_MODE="off")
    assert_fail_closed(project, r, "config")


def test_env_mode_cannot_loosen_policy(project):
    write_policy(project.root, "dry")
    r = project.hook(project.event("Write", {"file_path": "x", "content": ""}), DRYGATE_MODE="live")
    assert r.code == 2 and "DRY RUN" in r.stderr


def test_corrupt_state_file_blocks(sqlite_project):
    project = sqlite_project
    write_policy(project.root, "live")
    project.state.parent.mkdir(parents=True, exist_ok=True)
    project.state.write_bytes(b"this is not a database" * 100)
    r = project.hook(project.event("Read", {"file_path": "x"}))
    assert_fail_closed(project, r, "store_unavailable")


def test_unwritable_state_folder_blocks_and_alert_still_lands(project, tmp_path):
    write_policy(project.root, "live")
    r = project.hook(project.event("Read", {"file_path": "x"}), DRYGATE_STATE="/proc/drygate/state.db")
    assert r.code == 2
    assert project.alerts()[-1]["cause"] == "store_unavailable"


def test_alert_log_unwritable_falls_back(project, tmp_path):
    from drygate.alerts import fallback_log

    write_policy(project.root, "live")
    before = os.path.getsize(fallback_log()) if os.path.exists(fallback_log()) else 0
    r = project.hook(None, raw=b"garbage", DRYGATE_ALERT_LOG="/proc/nope/alerts.jsonl")
    assert r.code == 2
    assert os.path.getsize(fallback_log()) > before


def test_alert_command_sink_gets_the_alert(project, tmp_path):
    sink = tmp_path / "sink.json"
    write_policy(project.root, "live", extra=f'[alerts]\ncommand = "cat > {sink}"\n')
    project.hook(project.event("Read", {"file_path": "x"}))  # warms the policy cache
    r = project.hook(None, raw=b"{}")
    assert r.code == 2
    import time

    for _ in range(100):
        if sink.exists() and sink.read_text():
            break
        time.sleep(0.05)
    alert = json.loads(sink.read_text())
    assert alert["kind"] == "guard_failure" and alert["cause"] == "input"


def test_webhook_sink_posts_the_alert(project):
    import http.server
    import threading

    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/alerts"
        write_policy(project.root, "live", extra=f'[alerts]\nwebhook = "{url}"\n')
        project.hook(project.event("Read", {"file_path": "x"}))
        project.hook(project.event("Write", {"file_path": ".claude/settings.json", "content": "{}"}))
        import time

        for _ in range(100):
            if received:
                break
            time.sleep(0.05)
        assert received and received[0]["kind"] == "tamper"
    finally:
        server.shutdown()


def test_post_tool_use_journals_live_results(project):
    write_policy(project.root, "live")
    ev = project.event("Bash", {"command": "echo hi > out.txt"})
    assert project.hook(ev).code == 0
    post = dict(ev, hook_event_name="PostToolUse", tool_response={"stdout": "", "stderr": "", "interrupted": False})
    r = project.hook(post, command=project.post_command)
    assert r.code == 0 and r.json == {}
    kinds = [(e["kind"], e["call_id"]) for e in project.journal()]
    assert kinds == [("call", ev["tool_use_id"]), ("result", ev["tool_use_id"])]
    assert project.journal()[-1]["result"]["interrupted"] is False


def test_mcp_tool_response_string_is_journaled(project):
    write_policy(project.root, "live")
    ev = project.event("mcp__srv__do", {}, hook_event_name="PostToolUse", tool_response="plain text " * 10000)
    assert project.hook(ev, command=project.post_command).code == 0
    result = project.journal()[-1]["result"]
    assert result["truncated"] is True and result["chars"] == len("plain text " * 10000)


def test_hook_imports_stay_lean(project):
    """The hook path loads no heavy module (pip's test_no_network_imports, for the hook)."""
    write_policy(project.root, "sticky", '[[rules]]\ntool_glob = "mcp__r2__*"\neffect = "write"\ndry = true\n')
    from drygate.enforcement.install import import_roots

    roots = [str(SRC)] + import_roots()  # as the installed hook command sets them
    code = ("import sys;sys.path[:0]=%r;from drygate.enforcement.claude_code import main;"
            "c=main(['claude-code','--project',%r]);sys.stderr.write('\\nMODULES='+','.join(sorted(sys.modules)))"
            % (roots, str(project.root)))
    heavy = {"json", "re", "asyncio", "click", "rich", "pydantic", "importlib.metadata", "dataclasses", "enum",
             "typing", "argparse", "tomllib", "sqlite3", "subprocess", "threading", "drygate.cli",
             "drygate.relay", "redis", "shlex", "datetime", "logging",
             # _sqlite3 imported without functools (drygate.state.sqlite._import_sqlite3): 2.3 ms
             "functools", "collections", "operator", "reprlib",
             "drygate.context",  # a Bash call's environment only
             "drygate.alerts"}  # an alert only (self-protection takes the alert log's file names from drygate.config)
    if not project.store_url:
        heavy.add("drygate.errors")  # imported only to raise (0.3 ms); the Redis client raises from many places
    project.hook(project.event("Read", {"file_path": "a"}))  # the first call after a policy change parses it
    for tool, tool_input in (("Write", {"file_path": "a", "content": "b"}), ("mcp__r2__put", {"k": 1}),
                             ("Read", {"file_path": "a"}), ("Bash", {"command": "ls -la | head -5"}),
                             ("Bash", {"command": "psql -c 'select a from t'"})):
        ev = project.event(tool, tool_input)
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], input=json.dumps(ev).encode(),
                              capture_output=True, env=project.env(), cwd=project.root)
        modules = set(proc.stderr.decode().split("MODULES=")[1].split(","))
        assert "guard failure" not in proc.stdout.decode(), proc.stdout  # a failure would import more
        allowed = {"drygate.context"} if tool == "Bash" else set()  # its environment is journaled
        assert not (modules & (heavy - allowed)), (tool, modules & heavy)
        assert "_sqlite3" in modules or project.store_url, sorted(modules)
        # The store works without functools' statement cache: each call was decided (the Write
        # live, before the run went dry; the MCP write dry) and journaled.
        answer = json.loads(proc.stdout)
        assert answer.get("hookSpecificOutput", {}).get("permissionDecision") == ("deny" if tool.startswith("mcp__")
                                                                                  else None), answer
    assert [e["tool_name"] for e in project.journal()][-5:] == ["Write", "mcp__r2__put", "Read", "Bash", "Bash"]


def test_hook_processes_keep_the_wal_short(sqlite_project):
    """Each hook process is the store's only connection, so SQLite reads every WAL frame when
    it opens (drygate.state.sqlite.HOOK_WAL_AUTOCHECKPOINT): the hook checkpoints at 100 pages."""
    import sqlite3

    from drygate.state.sqlite import HOOK_WAL_AUTOCHECKPOINT

    project = sqlite_project
    write_policy(project.root, "sticky", '[[rules]]\ntool_glob = "mcp__r2__*"\neffect = "write"\ndry = true\n')
    for i in range(45):
        r = project.hook(project.event("mcp__r2__put" if i % 3 else "Read", {"k": i, "file_path": "a"},
                                       session=f"wal-{i % 4}"))
        assert r.code in (0, 2) and "guard failure" not in r.stderr
    db = sqlite3.connect(project.state)
    try:
        busy, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        total = db.execute("SELECT count(*) FROM journal").fetchone()[0]
    finally:
        db.close()
    assert total >= 45
    assert frames <= HOOK_WAL_AUTOCHECKPOINT + 40, frames  # one commit's pages past the mark at most


def test_memory_store_is_refused_on_the_hook_path(project):
    write_policy(project.root, "sticky", '[[rules]]\ntool_glob = "mcp__r2__*"\neffect = "write"\ndry = true\n')
    r = project.hook(project.event("mcp__d1__query", {"sql": "INSERT 1"}), DRYGATE_STATE="memory:")
    assert_fail_closed(project, r, "config")
    assert "memory:" in r.stderr


def test_deadline_above_the_maximum_is_refused(project):
    write_policy(project.root, "live")
    r = project.hook(project.event("Read", {"file_path": "x"}), DRYGATE_DEADLINE_MS="35000")
    assert_fail_closed(project, r, "config")
    (project.root / "drygate.toml").write_text("[gate]\ndeadline_ms = 35000\n")
    r = project.hook(project.event("Read", {"file_path": "x"}))
    assert_fail_closed(project, r, "config")


def test_policy_deadline_governs_a_locked_store(sqlite_project):
    project = sqlite_project
    (project.root / "drygate.toml").write_text('[run]\nmode = "live"\n[gate]\ndeadline_ms = 600\n')
    project.hook(project.event("Read", {"file_path": "x"}))
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3,sys,time;c=sqlite3.connect(sys.argv[1],isolation_level=None);"
        "c.execute('BEGIN EXCLUSIVE');print('locked',flush=True);time.sleep(60)"), str(project.state)],
        stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"locked"
        r = project.hook(project.event("Write", {"file_path": "x", "content": ""}))
    finally:
        holder.kill()
        holder.wait()
    assert_fail_closed(project, r)
    assert r.elapsed < 0.6 + 1.0  # the policy's 600 ms, not the 3 s default


def test_ask_needs_a_host_that_blocks_unanswered_asks(project):
    write_policy(project.root, "live", '[[rules]]\ntool = "mcp__pay__refund"\neffect = "external"\naction = "ask"\n')
    old_host = project.event("mcp__pay__refund", {"id": 1})  # 2.0.x shape: no prompt_id
    r = project.hook(old_host)
    assert r.code == 2 and r.json["hookSpecificOutput"]["permissionDecision"] == "deny"
    new_host = project.event("mcp__pay__refund", {"id": 1}, prompt_id="3ad4")
    r = project.hook(new_host)
    assert r.code == 0 and r.json["hookSpecificOutput"]["permissionDecision"] == "ask"


def test_mode_names_are_case_insensitive(project):
    write_policy(project.root, "live")
    r = project.hook(project.event("Write", {"file_path": "x", "content": ""}), DRYGATE_MODE="DRY")
    assert r.code == 2 and "DRY RUN" in r.stderr


def test_early_failure_alert_names_the_call(project):
    write_policy(project.root, "live")
    project.hook(project.event("Write", {"file_path": "x", "content": ""}), DRYGATE_MODE="bogus")
    alert = project.alerts()[-1]
    assert alert["tool_name"] == "Write" and alert["run_id"] == project.event("x", {})["session_id"]


def test_journal_time_follows_journal_order(project):
    from concurrent.futures import ThreadPoolExecutor

    write_policy(project.root, "live")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: project.hook(project.event("Read", {"file_path": str(i)})), range(16)))
    ts = [e["ts"] for e in project.journal()]
    assert ts == sorted(ts) and len(ts) == 16
    assert [e["call"] for e in project.journal()] == list(range(1, 17))


def test_a_repeated_sql_command_skips_the_sql_parser(project):
    """SQL verdicts are remembered in the state store: the second hook process for the same
    statement decides without importing sqlglot (about 100 ms of the hook's time), also in
    another command (the whole command's verdict, drygate.classifiers.command_cache, is
    another key). A SELECT with DISTINCT in a call is outside the plain-SELECT fast path."""
    write_policy(project.root, "dry")
    code = ("import sys;sys.path[:0]=%r;from drygate.enforcement.claude_code import main;"
            "c=main(['claude-code','--project',%r]);sys.stderr.write('\\nSQLGLOT=%%s' %% ('sqlglot' in sys.modules))"
            % (_roots(), str(project.root)))
    seen = []
    for command in ("psql -c 'SELECT count(DISTINCT id) FROM sessions'",
                    "psql -X -c 'SELECT count(DISTINCT id) FROM sessions'"):
        ev = project.event("Bash", {"command": command})
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], input=json.dumps(ev).encode(),
                              capture_output=True, env=project.env(), cwd=project.root)
        assert json.loads(proc.stdout) == {}, proc.stderr.decode()[-2000:]  # a read, both times
        seen.append(proc.stderr.decode().rsplit("SQLGLOT=", 1)[1].strip())
    assert seen == ["True", "False"]


def _roots():
    from drygate.enforcement.install import import_roots

    return import_roots()


@pytest.mark.parametrize("body", ["exit 0", "echo", "echo allowed", "printf ' '"])
def test_an_interpreter_that_answers_no_json_is_blocked(project, tmp_path, body):
    """The installed wrapper (install.fail_closed_command) with an interpreter replaced by a
    script that exits 0 without a JSON object on stdout (the fault: a replaced or broken
    interpreter, produced for real as a file): exit 2, BLOCKED on stderr, a guard alert."""
    from conftest import hook_command

    fake = tmp_path / "python3"
    fake.write_text(f"#!/bin/sh\n{body}\n")
    fake.chmod(0o755)
    write_policy(project.root, "live")
    r = project.hook(project.event("Bash", {"command": "rm -rf /"}), command=hook_command(python=str(fake)))
    assert r.code == 2 and "BLOCKED (fail closed)" in r.stderr, (r.code, r.stdout, r.stderr)
    assert r.stdout == ""
    alert = project.alerts()[-1]
    assert alert["kind"] == "guard_failure" and alert["cause"] == "hook_no_answer", alert


def test_the_wrapper_passes_the_hooks_answer_through_unchanged(project):
    write_policy(project.root, "dry")
    read = project.hook(project.event("Read", {"file_path": str(project.root / "x")}))
    assert read.code == 0 and read.json == {} and read.stdout == "{}\n"
    write = project.hook(project.event("Write", {"file_path": str(project.root / "x"), "content": "y"}))
    assert write.code == 2 and write.stdout.startswith("{") and "x" in write.stdout
    assert not [a for a in project.alerts() if a.get("kind") == "guard_failure"]
