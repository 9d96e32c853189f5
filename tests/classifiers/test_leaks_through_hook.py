"""The leak classes of issue 11 through the installed hook command, in a dry run.

For each class, members go through the hook exactly as Claude Code runs it (``sh -c``
with the event on stdin). Where the hook lets a command through, the test then runs it
with the real bash in the project, as the host would; either way the side effect must
not have happened (the file is absent, the database unchanged).
"""

import sqlite3
import subprocess

import pytest

from conftest import write_policy

from .bash_probe import BASH, P

pytestmark = pytest.mark.skipif(BASH is None, reason="bash is not installed")


def run_as_host(project, command):
    """Ask the hook about a Bash call; run it with bash if the hook lets it through.
    Returns the HookResult."""
    r = project.hook(project.event("Bash", {"command": command}))
    assert r.code in (0, 2), r.stderr
    if not r.blocks:
        subprocess.run([BASH, "-c", command], cwd=project.root, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30)
    return r


SHELL_LEAKS = [
    # class 1: arithmetic and name contexts
    f"let '{P}=1'", f"read '{P}' </dev/null", f"[[ '{P}' -eq 0 ]]", f"echo ${{a['$(touch pwn)']}}",
    f"sleep 0 & wait -n -p '{P}'", f"x=abcdef; echo ${{x:0:'{P}'}}", f"declare -i n='{P}'",
    f"echo '{P}' > /dev/null; x='{P}'; echo $((x))",
    # class 2: builtins that run commands
    "jobs -x touch pwn", "trap 'touch pwn' EXIT", "compgen -W '$(touch pwn)' x",
]


@pytest.mark.parametrize("command", SHELL_LEAKS)
def test_shell_leak_does_not_happen_in_a_dry_run(sqlite_project, command):
    write_policy(sqlite_project.root, "dry")
    r = run_as_host(sqlite_project, command)
    assert not (sqlite_project.root / "pwn").exists(), (command, r.stdout)
    assert r.blocks


def test_an_ordinary_read_still_runs_in_a_dry_run(sqlite_project):
    write_policy(sqlite_project.root, "dry")
    r = run_as_host(sqlite_project, "for ((i=0;i<3;i++)); do echo $((i*2)); done")
    assert not r.blocks, r.stdout


SQLITE_LEAKS = [
    "sqlite3 app.db 'PRAGMA user_version(7)'", "sqlite3 app.db 'PRAGMA journal_mode(WAL)'",
    "sqlite3 app.db '.shell touch pwn'", "sqlite3 app.db \".parameter set @x writefile('pwn','x')\" 'SELECT @x'",
    "sqlite3 app.db <<'EOF'\n.output pwn\nSELECT 1;\nEOF", "sqlite3 app.db \"SELECT writefile('pwn', 'x')\"",
]


@pytest.mark.skipif(__import__("shutil").which("sqlite3") is None, reason="the sqlite3 shell is not installed")
@pytest.mark.parametrize("command", SQLITE_LEAKS)
def test_sqlite_leak_does_not_happen_in_a_dry_run(sqlite_project, command):
    write_policy(sqlite_project.root, "dry")
    db = sqlite_project.root / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (a)")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    r = run_as_host(sqlite_project, command)
    assert r.blocks, r.stdout
    assert db.read_bytes() == before
    assert not (sqlite_project.root / "pwn").exists()


def test_mcp_sql_tool_pragma_setter_is_not_allowed_in_a_dry_run(sqlite_project):
    write_policy(sqlite_project.root, "dry", '[[rules]]\ntool = "mcp__db__query"\nclassify = "sql"\n'
                                            'sql_argument = "sql"\nsql_dialect = "sqlite"\n')
    for statement in ("PRAGMA user_version(7)", "PRAGMA journal_mode(WAL)"):
        r = sqlite_project.hook(sqlite_project.event("mcp__db__query", {"sql": statement}))
        assert r.blocks, (statement, r.stdout)
    r = sqlite_project.hook(sqlite_project.event("mcp__db__query", {"sql": "PRAGMA user_version"}))
    assert not r.blocks, r.stdout


@pytest.mark.skipif(__import__("shutil").which("npm") is None, reason="npm is not installed")
@pytest.mark.parametrize("command,evidence", [
    ("npm pack --dry-run --offline", "pwn"),                                   # lifecycle scripts run
    ("npm pack --dry-run false --ignore-scripts --offline", "drygate-probe-1.0.0.tgz"),  # nopt: false is the value
])
def test_npm_option_leak_does_not_happen_in_a_dry_run(sqlite_project, command, evidence):
    import json

    write_policy(sqlite_project.root, "dry")
    scripts = {"prepack": "node -e \"require('fs').writeFileSync('pwn','')\""}
    (sqlite_project.root / "package.json").write_text(json.dumps({"name": "drygate-probe", "version": "1.0.0",
                                                                  "scripts": scripts}))
    r = run_as_host(sqlite_project, command)
    assert r.blocks, r.stdout
    assert not (sqlite_project.root / evidence).exists()


@pytest.mark.skipif(__import__("shutil").which("pip") is None, reason="pip is not on PATH")
def test_pip_log_option_does_not_write_in_a_dry_run(sqlite_project):
    write_policy(sqlite_project.root, "dry")
    r = run_as_host(sqlite_project, "pip --log pwn list")
    assert r.blocks, r.stdout
    assert not (sqlite_project.root / "pwn").exists()


@pytest.mark.skipif(__import__("shutil").which("redis-cli") is None, reason="redis-cli is not installed")
@pytest.mark.parametrize("template", ["redis-cli -u {url} --rdb pwn", "redis-cli -u {url} --functions-rdb pwn"])
def test_redis_cli_file_option_does_not_write_in_a_dry_run(sqlite_project, redis_url, template):
    """A real redis-server: redis-cli --rdb would save a snapshot into ./pwn."""
    write_policy(sqlite_project.root, "dry")
    r = run_as_host(sqlite_project, template.format(url=redis_url))
    assert r.blocks, r.stdout
    assert not (sqlite_project.root / "pwn").exists()

