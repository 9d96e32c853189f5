"""Apply takes everything it executes from the run's journal (issue 11): the executor,
a file step's path, each call's working folder and a shell command's environment. A plan
file edited with its content hash recomputed cannot redirect a step; a failing shell
step's stderr is shown. Real hook processes and the real CLI, on both stores."""

import json

from conftest import SESSION, write_policy

from drygate.plan.fingerprint import fingerprint


def dry(project, tool, tool_input, env=None, **fields):
    r = project.hook(project.event(tool, tool_input, **fields), **(env or {}))
    assert r.code == 2 and "NOT EXECUTED" in r.stderr, (tool, r.stdout, r.stderr)
    return r


def save(project, path):
    project.cli("plan", SESSION, "--out", str(path))
    return json.loads(path.read_text())


def rehash(plan, path):
    del plan["content_hash"]
    plan["content_hash"] = fingerprint(plan)
    path.write_text(json.dumps(plan))


def test_a_file_step_redirected_in_the_plan_is_refused(project, tmp_path):
    write_policy(project.root, "dry")
    settings = project.root / ".claude" / "settings.json"
    before = settings.read_text()
    dry(project, "Write", {"file_path": "notes.json", "content": '{"ok": true}\n'})
    plan_path = tmp_path / "plan.json"
    plan = save(project, plan_path)
    # The review screen still says "write 13 bytes to notes.json"; the path is the attacker's.
    plan["steps"][0]["file"]["path"] = str(settings)
    plan["basis"]["files"] = {str(settings): plan["basis"]["files"].popitem()[1]}
    rehash(plan, plan_path)
    r = project.cli("apply", str(plan_path), "--yes", check=False)
    assert settings.read_text() == before
    assert not (project.root / "notes.json").exists()
    assert r.returncode == 1 and "REFUSED" in r.stderr and "not the journal's" in r.stderr, r.stderr


def test_a_working_folder_or_executor_edited_in_the_plan_is_refused(project, tmp_path):
    write_policy(project.root, "dry")
    sub = project.root / "sub"
    sub.mkdir()
    dry(project, "Bash", {"command": "echo x > made.txt"}, cwd=str(sub))
    plan_path = tmp_path / "plan.json"
    plan = save(project, plan_path)
    assert plan["steps"][0]["cwd"] == str(sub)
    for field, value in (("cwd", str(project.root)), ("executor", {"kind": "mcp", "server": "s", "tool": "t"})):
        forged = json.loads(json.dumps(plan))
        forged["steps"][0][field] = value
        rehash(forged, plan_path)
        r = project.cli("apply", str(plan_path), "--yes", "--allow-shell", check=False)
        assert r.returncode == 1 and "not the journal's" in r.stderr, (field, r.stderr)
        assert not (project.root / "made.txt").exists() and not (sub / "made.txt").exists()
    rehash(plan, plan_path)
    project.cli("apply", str(plan_path), "--yes", "--allow-shell")
    assert (sub / "made.txt").read_text() == "x\n" and not (project.root / "made.txt").exists()


def test_a_shell_step_runs_with_the_journaled_environment(project, tmp_path):
    write_policy(project.root, "dry")
    dry(project, "Bash", {"command": 'printf "%s %s" "$TARGET_BUCKET" "$DEPLOY_TOKEN" > out.txt'},
        env={"TARGET_BUCKET": "staging-7", "DEPLOY_TOKEN": "s3cr3t-value"})
    entry = next(e for e in project.journal() if e["kind"] == "call")
    env = entry["context"]["env"]
    assert env["TARGET_BUCKET"] == "staging-7"
    assert "DEPLOY_TOKEN" in env and env["DEPLOY_TOKEN"] is None  # a secret is not journaled
    assert "s3cr3t-value" not in json.dumps(project.journal())
    plan_path = tmp_path / "plan.json"
    save(project, plan_path)
    missing = project.cli("apply", str(plan_path), "--yes", "--allow-shell", check=False, TARGET_BUCKET="prod")
    assert missing.returncode == 1 and "DEPLOY_TOKEN" in missing.stderr, missing.stderr
    assert not (project.root / "out.txt").exists()
    project.cli("apply", str(plan_path), "--yes", "--allow-shell", "--resume", TARGET_BUCKET="prod",
                DEPLOY_TOKEN="s3cr3t-value")
    # The journaled value wins over apply's own (the run wrote to staging-7); the secret comes from apply.
    assert (project.root / "out.txt").read_text() == "staging-7 s3cr3t-value"


def test_a_failing_shell_step_shows_its_stderr(project, tmp_path):
    write_policy(project.root, "dry")
    dry(project, "Bash", {"command": "touch started.txt; echo 'bucket not found: invoices' >&2; exit 3"})
    plan_path = tmp_path / "plan.json"
    save(project, plan_path)
    r = project.cli("apply", str(plan_path), "--yes", "--allow-shell", check=False)
    assert r.returncode == 1 and "STOPPED at step 1" in r.stderr
    assert "status 3" in r.stderr and "bucket not found: invoices" in r.stderr, r.stderr


def test_a_schema_4_store_is_upgraded_and_its_old_calls_apply_from_the_project(tmp_path):
    import sqlite3

    from drygate.state.sqlite import SCHEMA_VERSION, SQLiteStore
    from drygate.types import STICKY, TransitionRequest

    path = tmp_path / "state.db"
    entry = {"call_id": "c", "agent_id": None, "tool_name": "Bash", "tool_input": {"command": "touch x"},
             "effect": "write", "rule_id": "r", "why": "w", "tamper": False, "policy_hash": "h", "host": "t"}
    store = SQLiteStore(path)
    store.transact("r", TransitionRequest(STICKY, True, True, "allow"), entry, lambda: 1.0)
    store.close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE journal DROP COLUMN context")  # what a schema-4 file looks like
    db.execute("PRAGMA user_version=4")
    db.commit()
    db.close()
    store = SQLiteStore(path)
    assert [e["context"] for e in store.journal("r")] == [None]
    store.transact("r", TransitionRequest(STICKY, True, True, "allow"), dict(entry, context={"cwd": "/w", "env": None}),
                   lambda: 2.0)
    assert [e["context"] for e in store.journal("r")] == [None, {"cwd": "/w", "env": None}]
    store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION

    from drygate.plan.artifact import execution_of

    assert execution_of("Write", {"file_path": "a.txt"}, None, "/proj")["file_path"] == "/proj/a.txt"
    assert execution_of("Write", {"file_path": "a.txt"}, {"cwd": "/w/sub"}, "/proj")["file_path"] == "/w/sub/a.txt"
    assert execution_of("Write", {"file_path": "a.txt"}, {"cwd": "relative"}, "/proj")["cwd"] == "/proj"


def test_secrets_are_never_journaled_with_a_shell_call():
    from drygate.context import environment_for, journal_env

    env = {"GITHUB_TOKEN": "t1", "AWS_SECRET_ACCESS_KEY": "t2", "PGPASSWORD": "t3", "STRIPE_API_KEY": "t4",
           "DB_PASS": "t5", "MYSQL_PWD": "t6", "SESSION_COOKIE": "t7", "DATABASE_URL": "postgres://u:t8@db/app",
           "REDIS_URL": "redis://:t9@cache:6379/0", "MIXED": "see https://u:t10@host/x",
           "PATH": "/usr/bin", "TARGET_BUCKET": "staging", "KEYBOARD": "us", "DOCS_URL": "https://example.org/a@b",
           "PWD": "/somewhere", "SHLVL": "2"}
    journaled = journal_env(env)
    assert not any(f"t{i}" in str(v) for i in range(1, 11) for v in journaled.values()), journaled
    assert {k for k, v in journaled.items() if v is None} == {
        "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "PGPASSWORD", "STRIPE_API_KEY", "DB_PASS", "MYSQL_PWD",
        "SESSION_COOKIE", "DATABASE_URL", "REDIS_URL", "MIXED"}
    assert journaled["PATH"] == "/usr/bin" and journaled["KEYBOARD"] == "us" and "PWD" not in journaled
    rebuilt, missing = environment_for(journaled, {"GITHUB_TOKEN": "mine", "EXTRA": "apply's own"})
    assert rebuilt["GITHUB_TOKEN"] == "mine" and "EXTRA" not in rebuilt and rebuilt["TARGET_BUCKET"] == "staging"
    assert "PGPASSWORD" in missing and "GITHUB_TOKEN" not in missing
