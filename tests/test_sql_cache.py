"""The SQL verdict cache (drygate.classifiers.sql.classify_sql with a state store).

A kept verdict is served only when it is one the SQL classifier itself can give
(sql.EFFECTS, steps of text) and was given by the same classifier code (the key holds
drygate.classifiers.command_cache.stamped_key's code stamp); anything else is a miss and
the statement is classified again. On every store (memory, SQLite, Redis).
"""

import pytest

from drygate.classifiers import command_cache, sql
from drygate.classifiers.sql import classify_sql

#: Statements that reach each effect of the classifier (a multi-table SELECT and a
#: DELETE are never on the fast path, so they go through the cache).
REACHES = {
    "SELECT a FROM t JOIN u USING (id)": "read",
    "DELETE FROM accounts WHERE id = 7": "write",
    "SELECT nextval('s')": "side_effect_read",
    "SELECT my_function(1)": "unknown",
    "SELECT writefile('x', 'y')": "write",
    "SELECT load_extension('x')": "unknown",
    "SELECT id FROM t FOR UPDATE": "side_effect_read",
    "EXPLAIN ANALYZE DELETE FROM t": "side_effect_read",
    "this is not sql at all (": "unknown",
}


class Recorder:
    """A store that records the keys classify_sql asks for and puts."""

    def __init__(self, store):
        self.store, self.got, self.put = store, [], []

    def verdict_get(self, key):
        self.got.append(key)
        return self.store.verdict_get(key)

    def verdict_put(self, key, effect, steps):
        self.put.append(key)
        return self.store.verdict_put(key, effect, steps)


def test_the_effects_are_those_the_classifier_gives():
    """sql.EFFECTS is exactly what the SQL classifier's verdicts can have: its tables'
    effects are in it, and every one of it is reached by a statement."""
    tables = set(sql.CODE_FUNCTIONS.values()) | {e for e, _ in sql.PSQL_ACTING_META.values()} | {
        e for e, _ in sql.SQLITE_ACTING_DOT.values()}
    assert tables <= sql.EFFECTS
    reached = {text: classify_sql(text, "postgres").effect for text in REACHES}
    assert reached == REACHES
    assert set(reached.values()) == sql.EFFECTS


@pytest.mark.parametrize("effect", ["bookkeeping", "external", "Write", "", "read ", "allow"])
def test_a_kept_row_with_an_effect_the_classifier_never_gives_is_a_miss(store, effect):
    recorder = Recorder(store)
    text = "DELETE FROM accounts WHERE id = 7"
    assert classify_sql(text, "postgres", recorder).effect == "write"
    key = recorder.put[-1]
    store.verdict_put(key, effect, ("planted: looks like a read",))
    again = classify_sql(text, "postgres", recorder)
    assert again.effect == "write" and "planted" not in " ".join(again.steps)
    assert recorder.put[-1] == key  # classified again and kept again


def test_a_kept_row_with_steps_that_are_not_text_is_a_miss(store):
    recorder = Recorder(store)
    text = "DELETE FROM accounts WHERE id = 7"
    classify_sql(text, "postgres", recorder)
    store.verdict_put(recorder.put[-1], "read", (1, 2))
    assert classify_sql(text, "postgres", recorder).effect == "write"


def test_a_kept_verdict_of_the_classifier_is_served(store):
    """The cache works: a valid kept verdict is the answer (here a planted stricter one)."""
    recorder = Recorder(store)
    text = "SELECT a FROM t JOIN u USING (id)"
    assert classify_sql(text, "postgres", recorder).effect == "read"
    store.verdict_put(recorder.put[-1], "unknown", ("planted",))
    assert classify_sql(text, "postgres", recorder).steps == ("planted",)


def test_the_key_holds_the_classifiers_code_and_dialect(monkeypatch):
    from drygate.state.memory import MemoryStore

    recorder = Recorder(MemoryStore())
    text = "SELECT a FROM t JOIN u USING (id)"
    classify_sql(text, "postgres", recorder)
    key = recorder.put[-1]
    assert key.startswith("sql:")
    classify_sql(text, "mysql", recorder)
    assert recorder.put[-1] != key
    stamp = command_cache.code_stamp()
    assert "sql.py|" in stamp and "sqlglot|" in stamp
    monkeypatch.setattr(command_cache, "_STAMP", stamp.replace("sql.py|", "sql.py|1"))
    classify_sql(text, "postgres", recorder)
    assert recorder.got[-1] != key and recorder.put[-1] != key  # a changed classifier: a miss, kept anew
