"""Class 3 of issue 11: the command languages of SQL tools, and SQL that writes.

Sources: sqlite3's own ``.help`` (the installed shell, 3.40), sqlite.org/pragma.html
(which PRAGMAs have a query form, which take an argument that names what to report),
sqlite.org/cli.html (writefile, edit, .parameter), the psql manual ("Meta-Commands"),
the MySQL manual ("mysql Client Commands") and ``redis-cli --help``. Members that act
are run for real (sqlite3 in a throwaway folder, SQLite through Python's sqlite3).
"""

import hashlib
import shutil
import sqlite3
import subprocess

import pytest

from drygate.classifiers import sql
from drygate.classifiers.shell import classify_command_verdict
from drygate.classifiers.sql import classify_sql, classify_sql_script
from drygate.engine import classify
from drygate.policy.load import compile_policy_text
from drygate.types import ToolCall

SQLITE3 = shutil.which("sqlite3")
needs_sqlite3 = pytest.mark.skipif(SQLITE3 is None, reason="the sqlite3 shell is not installed (.ci/run installs it)")


def sqlite3_help():
    out = subprocess.run([SQLITE3, ":memory:", ".help"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(".")]


@needs_sqlite3
def test_sqlite3_read_dot_commands_are_sqlite3s_own():
    listed = set(sqlite3_help())
    assert len(listed) > 50
    assert sql.SQLITE_READ_DOT <= listed | {".indices", ".exit"}, sql.SQLITE_READ_DOT - listed


@needs_sqlite3
def test_every_other_dot_command_is_not_a_read():
    for word in sqlite3_help():
        if word not in sql.SQLITE_READ_DOT:
            v = classify_sql_script(f"{word} x y", "sqlite", "sqlite3")
            assert v.effect != "read", (word, v.steps)


# Each member writes `pwn` (or runs touch) when the real sqlite3 reads it.
SQLITE3_MEMBERS = [
    ".shell touch pwn", ".system touch pwn", ".output pwn\nselect 1;", ".once pwn\nselect 1;",
    ".log pwn\nselect 1;", ".save pwn", ".backup pwn", ".clone pwn", ".trace pwn\nselect 1;",
    ".parameter set @x writefile('pwn','x')\nselect @x;", ".read '|touch pwn'", "select writefile('pwn','x');",
    ".open pwn", "select 1; select writefile('pwn', 'x');",
]


@needs_sqlite3
@pytest.mark.parametrize("script", SQLITE3_MEMBERS)
def test_sqlite3_member_acts_for_real(tmp_path, script):
    subprocess.run([SQLITE3, "db.sqlite"], input=script, cwd=tmp_path, capture_output=True, text=True, timeout=20)
    assert (tmp_path / "pwn").exists(), script


@pytest.mark.parametrize("script", SQLITE3_MEMBERS)
def test_sqlite3_member_is_not_a_read(script):
    assert classify_sql_script(script, "sqlite", "sqlite3").effect != "read"
    quoted = script.replace("'", "'\\''")
    assert classify_command_verdict(f"sqlite3 db.sqlite <<'EOF'\n{script}\nEOF").effect != "read"
    if "\n" not in script:
        assert classify_command_verdict(f"sqlite3 db.sqlite '{quoted}'").effect != "read"
        assert classify_command_verdict(f"sqlite3 -cmd '{quoted}' db.sqlite .tables").effect != "read"


@pytest.mark.parametrize("function,effect", [(f, e) for f, e in sql.CODE_FUNCTIONS.items()])
def test_functions_that_write_or_load_code(function, effect):
    for dialect in ("sqlite", "postgres", "mysql"):
        v = classify_sql(f"SELECT {function}('a', 'b')", dialect)
        assert v.effect == effect, (dialect, v.steps)


def _file_hash(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(sql.READ_PRAGMAS))
def test_query_form_of_each_read_pragma_changes_nothing(tmp_path, name):
    db = tmp_path / "t.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)")
    conn.execute("CREATE INDEX tb ON t(b)")
    conn.commit()
    conn.close()
    before = _file_hash(db)
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA {name}").fetchall()
    conn.close()
    assert _file_hash(db) == before
    assert classify_sql(f"PRAGMA {name}", "sqlite").effect == "read"
    assert classify_sql(f"PRAGMA main.{name};", "sqlite").effect == "read"


@pytest.mark.parametrize("name", sorted(sql.READ_PRAGMAS - sql.ARGUMENT_QUERY_PRAGMAS))
def test_pragma_with_an_argument_sets_in_both_forms(name):
    for text in (f"PRAGMA {name}(1)", f"PRAGMA {name} = 1", f"PRAGMA main.{name}(1)", f"pragma {name}=1;",
                 f"SELECT 1; PRAGMA {name}(1)"):
        assert classify_sql(text, "sqlite").effect != "read", text


@pytest.mark.parametrize("statement,check", [
    ("PRAGMA user_version(7)", "PRAGMA user_version"), ("PRAGMA application_id(7)", "PRAGMA application_id"),
    ("PRAGMA journal_mode(WAL)", "PRAGMA journal_mode"),
])
def test_call_form_really_sets(tmp_path, statement, check):
    db = tmp_path / "t.db"
    conn = sqlite3.connect(db)
    before = conn.execute(check).fetchone()[0]
    conn.execute(statement).fetchall()
    assert conn.execute(check).fetchone()[0] != before
    conn.close()
    assert classify_sql(statement, "sqlite").effect == "write"


@pytest.mark.parametrize("name", sorted(sql.ARGUMENT_QUERY_PRAGMAS))
def test_pragmas_whose_argument_names_a_table(name):
    assert classify_sql(f"PRAGMA {name}(t)", "sqlite").effect == "read"


def test_mcp_tool_with_classify_sql_sees_pragma_setters():
    policy = compile_policy_text('[[rules]]\ntool = "mcp__db__query"\nclassify = "sql"\nsql_argument = "sql"\n'
                                 'sql_dialect = "sqlite"\n')
    for statement, effect in (("PRAGMA user_version(7)", "write"), ("PRAGMA journal_mode(WAL)", "write"),
                              ("PRAGMA user_version", "read"), ("SELECT writefile('f', 'x')", "write"),
                              ("SELECT load_extension('x.so')", "unknown")):
        assert classify(ToolCall("mcp__db__query", {"sql": statement}, "r"), policy).effect == effect, statement


# psql manual, Meta-Commands: those that write, run something or make the SQL unknowable.
PSQL_ACTING = [
    "\\! touch pwn", "\\o out.txt", "\\out out.txt", "\\g out.txt", "\\g |sh", "\\gx out.txt", "\\w q.sql",
    "\\s history.txt", "\\copy t to 'f.csv'", "\\copy t from 'f.csv'", "\\copy t from program 'id'",
    "\\lo_export 1 f", "\\lo_import f", "\\lo_unlink 1", "\\password", "\\i f.sql", "\\ir f.sql",
    "\\include f.sql", "\\e", "\\ef f", "\\ev v", "\\gexec", "\\gset", "\\set x 1", "\\setenv PAGER x",
    "\\cd /tmp", "\\prompt x", "\\watch 1", "\\dt \\! touch pwn", "SELECT 1 \\g out.txt",
    "SELECT 1; \\o out.txt", "\\echo `touch pwn`", "\\if true", "\\sf+ f \\! x",
]
PSQL_READS = ["\\dt", "\\d users", "\\d+ users", "\\l", "\\dn", "\\du", "\\df", "\\conninfo", "\\timing on", "\\x",
              "\\x auto", "\\pset format csv", "\\echo hi", "\\o", "\\g", "\\sf f", "\\q", "\\?", "\\h SELECT",
              "SELECT 1 \\gx", "SELECT 'a\\b'"]


@pytest.mark.parametrize("text", PSQL_ACTING)
def test_psql_meta_commands_that_act(text):
    assert classify_sql_script(text, "postgres", "psql").effect != "read"
    assert classify_command_verdict(f"psql db <<'EOF'\n{text}\nEOF").effect != "read"


@pytest.mark.parametrize("text", PSQL_READS)
def test_psql_meta_commands_that_read(text):
    assert classify_sql_script(text, "postgres", "psql").effect == "read", text


def test_psql_variables_interpolated_into_sql():
    assert classify_command_verdict("psql -v 'x=1; DROP TABLE t' db <<'EOF'\nSELECT :x;\nEOF").effect != "read"
    assert classify_command_verdict("psql db <<'EOF'\nSELECT 1::int;\nEOF").effect == "read"


# MySQL manual, mysql Client Commands.
MYSQL_ACTING = ["system touch pwn", "\\! touch pwn", "tee out.txt", "\\T out.txt", "source f.sql", "\\. f.sql",
                "pager cat > out", "\\P cat > out", "edit", "\\e", "delimiter //", "SELECT 1; \\! touch pwn",
                "ssl_session_data_print f"]
MYSQL_READS = ["SELECT 1", "SELECT 1\\G", "SELECT 1 \\g", "use db", "status", "help", "notee", "nopager"]


@pytest.mark.parametrize("text", MYSQL_ACTING)
def test_mysql_client_commands_that_act(text):
    assert classify_sql_script(text, "mysql", "mysql").effect != "read"
    quoted = text.replace("'", "'\\''")
    assert classify_command_verdict(f"mysql db -e '{quoted}'").effect != "read"


@pytest.mark.parametrize("text", MYSQL_READS)
def test_mysql_client_commands_that_read(text):
    assert classify_sql_script(text, "mysql", "mysql").effect == "read", text


@pytest.mark.parametrize("command,expected", [
    ("mysql --tee=out.txt db -e 'SELECT 1'", "unknown"), ("mysql --pager=cat db", "unknown"),
    ("mysql --init-command='DELETE FROM t' -e 'SELECT 1'", "unknown"), ("mysql --defaults-file=x -e 'SELECT 1'",
                                                                        "unknown"),
    ("mysql -uroot -psecret -h db -e 'SELECT 1' app", "read"), ("mysql --batch --raw -e 'SELECT 1'", "read"),
    ("sqlite3 -A -cf a.sqlar f", "unknown"), ("sqlite3 -init x.sql db", "unknown"), ("sqlite3 -append db 'SELECT 1'",
                                                                                    "unknown"),
    ("sqlite3 -json -readonly db 'SELECT 1'", "read"), ("sqlite3 --csv --header db .tables", "read"),
    ("redis-cli --rdb dump.rdb", "write"), ("redis-cli --functions-rdb f.rdb", "write"), ("redis-cli --pipe", "unknown"),
    ("redis-cli --eval x.lua", "unknown"), ("redis-cli --replica", "unknown"), ("redis-cli --lru-test 100", "unknown"),
    ("redis-cli --cluster fix 127.0.0.1:7000", "unknown"), ("redis-cli -x SET k", "unknown"),
    ("redis-cli --scan --pattern 'a*'", "read"), ("redis-cli -h h -p 6380 -n 2 --raw GET k", "read"),
    ("redis-cli --bigkeys", "read"), ("redis-cli --no-such-option GET k", "unknown"),
])
def test_client_options(command, expected):
    assert classify_command_verdict(command).effect == expected, classify_command_verdict(command).steps
