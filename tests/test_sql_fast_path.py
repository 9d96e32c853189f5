"""The plain-SELECT fast path (drygate.classifiers.sql.plain_select) never says more than sqlglot.

The fast path spares a hook process sqlglot's import for one plain SELECT. Its guarantee is
differential: for every text it accepts, the full sqlglot rules give the same verdict in
each dialect it serves. Checked on statements generated from its grammar, on random word
soups over SQL's keywords and symbols (where it must either refuse or agree), and on the
forms that make a SELECT write, lock or run code.
"""

import json
import subprocess
import sys

import pytest
from conftest import write_policy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drygate.classifiers.sql import (
    _FAST_DIALECTS, _FAST_FUNCTIONS, _FAST_RESERVED, CODE_FUNCTIONS, SIDE_EFFECT_FUNCTIONS, _classify_sql,
    classify_sql, plain_select,
)

from drygate.classifiers.sql_words import KEYWORDS  # noqa: E402

#: Names an agent's SELECT uses; the keywords among them (user, key, ...) are left to the soups.
NAMES = st.sampled_from([n for n in ("a", "b", "id", "users", "t1", "public", "s", "_x", "created_at", "user",
                                     "name", "current_date", "value", "status", "key", "data", "count", "sum",
                                     "nextval", "text", "email", "orders", "amount")
                         if n.upper() not in KEYWORDS])
NUMBERS = st.sampled_from(["0", "1", "42", "1.5", "007"])


@st.composite
def refs(draw):
    return ".".join(draw(st.lists(NAMES, min_size=1, max_size=3)))


@st.composite
def calls(draw, depth=0):
    """A call of a function of the fast path's table, its arguments refs, numbers or calls."""
    name = draw(st.sampled_from(sorted(_FAST_FUNCTIONS)))
    if name == "COUNT" and draw(st.booleans()):
        return draw(st.sampled_from(["count", "COUNT", "Count"])) + "(*)"
    most = _FAST_FUNCTIONS[name] or 4
    arg = st.one_of(refs(), NUMBERS, calls(depth + 1)) if depth < 2 else st.one_of(refs(), NUMBERS)
    args = draw(st.lists(arg, min_size=1, max_size=most))
    return draw(st.sampled_from([name, name.lower()])) + "(" + draw(st.sampled_from([", ", ","])).join(args) + ")"


@st.composite
def plain_selects(draw):
    items = draw(st.lists(st.one_of(st.just("*"), refs(), NUMBERS, refs().map(lambda r: r + ".*"),
                                    st.tuples(refs(), NAMES).map(lambda p: f"{p[0]} AS {p[1]}"), calls(),
                                    st.tuples(calls(), NAMES).map(lambda p: f"{p[0]} AS {p[1]}")),
                          min_size=1, max_size=4))
    text = "SELECT " + draw(st.sampled_from(["", "DISTINCT ", "ALL "])) + ", ".join(items)
    if draw(st.booleans()):
        text += " FROM " + ", ".join(draw(st.lists(refs(), min_size=1, max_size=3)))
        if draw(st.booleans()):
            preds = draw(st.lists(st.one_of(
                st.tuples(st.one_of(refs(), calls()), st.sampled_from(["=", "<>", "!=", "<", "<=", ">", ">="]),
                          st.one_of(NUMBERS, refs(), calls())).map(" ".join),
                refs().map(lambda r: r + " IS NULL"), refs().map(lambda r: "NOT " + r + " = 1"),
                refs().map(lambda r: r + " IS NOT NULL")), min_size=1, max_size=3))
            text += " WHERE " + draw(st.sampled_from([" AND ", " OR "])).join(preds)
        if draw(st.booleans()):
            text += " ORDER BY " + ", ".join(r + draw(st.sampled_from(["", " ASC", " DESC"]))
                                             for r in draw(st.lists(st.one_of(refs(), calls()), min_size=1,
                                                                    max_size=2)))
        if draw(st.booleans()):
            text += " LIMIT " + draw(st.sampled_from(["1", "10"])) + draw(st.sampled_from(["", " OFFSET 5"]))
    return text + draw(st.sampled_from(["", ";", " ;", "\n"]))


#: Words and symbols for the soups: the grammar's, the reserved ones, names, and others.
SOUP = sorted(_FAST_RESERVED) + ["user", "key", "value", "current_date", "a", "b", "t", "users", "1", "2.5", "*", ",", ".", "=", "<>", "<", ">=", ";",
                                 "(", ")", "'x'", "--", "/*", "*/", "$1", ":v", "@x", "\\gexec", "nextval(1)",
                                 "pg_sleep(1)", "e5", "0x1F", "`a`", '"a"', "#", "||", "::int", "count(", "sum(",
                                 "round(", "coalesce(", "max(a)", "count(*)", "lower(", "evil(", "a(", ")", "DISTINCT"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plain_selects(), st.sampled_from(sorted(_FAST_DIALECTS)))
def test_every_plain_select_reads_under_sqlglot_too(text, dialect):
    fast = plain_select(text)
    assert fast is not None, text  # the generator only makes plain SELECTs
    full = _classify_sql(text, dialect)
    assert (full.effect, full.steps) == (fast.effect, fast.steps), (text, dialect, full)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(SOUP), min_size=1, max_size=12), st.sampled_from(sorted(_FAST_DIALECTS)),
       st.sampled_from([" ", "\n", "\t", ""]))
def test_a_word_soup_is_refused_or_read_by_both(words, dialect, sep):
    text = "SELECT " + sep.join(words)
    fast = plain_select(text)
    if fast is not None:
        full = _classify_sql(text, dialect)
        assert full.effect == "read", (text, dialect, full)


@pytest.mark.parametrize("text", [
    "SELECT nextval('s')", "select pg_sleep(1)", "SELECT * INTO t2 FROM t", "SELECT a INTO @x FROM t",
    "SELECT a FROM t INTO OUTFILE '/tmp/x'", "SELECT * FROM t FOR UPDATE", "SELECT * FROM t FOR SHARE",
    "SELECT * FROM t LOCK IN SHARE MODE", "SELECT 1; DROP TABLE t", "SELECT 1;; ", "SELECT 1 UNION SELECT 2",
    "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "SELECT (SELECT 1)", "SELECT a FROM t -- x",
    "SELECT /* x */ 1", "SELECT 'a'", 'SELECT "a"', "SELECT `a`", "SELECT $1", "SELECT :v", "SELECT @a",
    "SELECT 1 \\gexec", "SELECT 1e5", "SELECT 0x1F", "SELECT a AS into FROM t", "SELECT a FROM for",
    "SELECT a b FROM t", "SELECT a FROM t x", "SELECT ｓ", "SELECT a::int", "SELECT a || b", "SELECT -1",
    "SELECT a FROM t JOIN u ON a = b", "SELECT a FROM t LIMIT 1, 2", "select", "SELECT", "SELECT 1.",
    "SELECT a FROM ONLY t", "SELECT DISTINCT ON (a) a FROM t", "TABLE t", "EXPLAIN ANALYZE SELECT 1",
    "SELECT * FROM t WHERE a IN (1)", "SELECT a FROM t PROCEDURE ANALYSE()", "SELECT a\x0bFROM t",
    "SELECT " + "a, " * 2000 + "a",
    "SELECT count (*) FROM t", "SELECT s.count(a)", "SELECT max()", "SELECT count()", "SELECT count(a))",
    "SELECT count(evil(), x", "SELECT evil(a)", "SELECT sum(a, b)", "SELECT nextval(a)", "SELECT count(DISTINCT a)",
    "SELECT round(a, 1, 2)", "SELECT sum(*)", "SELECT count(* )x", "SELECT count(a) FROM t GROUP BY a",
    "SELECT a FROM count(t)", "SELECT count(a AS b)", "SELECT (a)", "SELECT a FROM t WHERE (a = 1)",
])
def test_what_a_plain_select_is_not(text):
    assert plain_select(text) is None


@pytest.mark.parametrize("name", sorted(_FAST_FUNCTIONS))
def test_each_fast_function_is_a_built_in_that_only_reads(name):
    """sqlglot knows each one as its own function (not Anonymous: a user-defined one would be
    unknown) in every dialect, the side-effect tables do not list it, and every arity the fast
    path takes reads under sqlglot."""
    import sqlglot
    from sqlglot import exp

    assert name.lower() not in CODE_FUNCTIONS and name.lower() not in SIDE_EFFECT_FUNCTIONS
    for dialect in sorted(_FAST_DIALECTS):
        for n in range(1, (_FAST_FUNCTIONS[name] or 5) + 1):
            text = f"SELECT {name.lower()}({', '.join(['a'] * n)}) FROM t"
            assert plain_select(text) is not None, text
            tree = sqlglot.parse_one(text, read=dialect)
            funcs = [f for f in tree.walk() if isinstance(f, exp.Func)]
            assert funcs and not any(isinstance(f, exp.Anonymous) for f in funcs), (text, dialect)
            full = _classify_sql(text, dialect)
            assert (full.effect, full.steps) == ("read", ("SELECT only reads",)), (text, dialect, full)


def test_classify_sql_takes_the_fast_path_only_for_its_dialects():
    assert classify_sql("select 1", "postgres").steps == ("SELECT only reads",)
    assert classify_sql("SELECT a FROM t FOR UPDATE", "postgres").effect == "side_effect_read"  # sqlglot decides


def test_a_plain_select_in_a_hook_skips_the_sql_parser(project):
    """`psql -c "select 1"` the first time: a read, decided without importing sqlglot; a
    statement outside the fast path still imports it (and is still classified)."""
    from test_hook_failures import _roots

    write_policy(project.root, "dry")
    code = ("import sys;sys.path[:0]=%r;from drygate.enforcement.claude_code import main;"
            "c=main(['claude-code','--project',%r]);sys.stderr.write('\\nSQLGLOT=%%s' %% ('sqlglot' in sys.modules))"
            % (_roots(), str(project.root)))
    seen = []
    for command, answer in (('psql -c "select 1"', {}), ("psql -c 'SELECT id, email FROM users WHERE id = 5'", {}),
                            ("psql -c 'SELECT count(*), max(id) FROM users'", {}),
                            ("psql -c 'SELECT * FROM users FOR UPDATE'", None)):
        ev = project.event("Bash", {"command": command})
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], input=json.dumps(ev).encode(),
                              capture_output=True, env=project.env(), cwd=project.root)
        out = json.loads(proc.stdout)
        if answer is not None:
            assert out == answer, proc.stderr.decode()[-2000:]
        else:
            assert out["hookSpecificOutput"]["permissionDecision"] == "deny"  # locks rows: not a read, dry
        seen.append(proc.stderr.decode().rsplit("SQLGLOT=", 1)[1].strip())
    assert seen == ["False", "False", "False", "True"]


def test_the_shipped_keyword_set_holds_every_keyword_of_the_installed_sqlglot():
    from drygate.classifiers.sql_words import KEYWORDS, current

    missing = current(_FAST_RESERVED) - KEYWORDS
    assert not missing, f"regenerate drygate/classifiers/sql_words.py: {sorted(missing)[:20]}"
