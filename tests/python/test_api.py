"""The Python API: runs, decisions, honest results, fail closed (real SQLite stores and a
MemoryStore; no framework)."""

import asyncio
import json
import sqlite3
import subprocess
import sys

import pytest

import drygate
from drygate.testing import capture

STICKY = {"run": {"mode": "sticky"}, "rules": [{"tool": "put", "effect": "write", "dry": True}]}


def memory_gate(policy=STICKY, **kw):
    return drygate.open_gate(policy=policy, store=drygate.MemoryStore(), **kw)


def tools(calls):
    @drygate.tool(effect="read")
    def get(key: str) -> dict:
        calls.append(("get", key))
        return {"key": key, "value": 1}

    @drygate.tool
    def put(bucket: str, key: str, body: str = "x") -> dict:
        calls.append(("put", key))
        return {"etag": "real-etag"}

    @drygate.tool(effect="write")
    def record(key: str, etag: str) -> int:
        calls.append(("record", key, etag))
        return 1

    return get, put, record


def test_import_drygate_stays_cheap():
    code = ("import sys, drygate; mods = sorted(m for m in sys.modules if m.startswith('drygate'));"
            "print(mods); drygate.open_gate; print('drygate.api.gate' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "['drygate']"
    assert out[1] == "True"


def test_a_dry_write_is_not_executed_and_says_so_honestly():
    calls = []
    get, put, record = tools(calls)
    gate = memory_gate()
    with gate.run() as run:
        assert get("a") == {"key": "a", "value": 1}
        result = put("b", "k", "hello")
    assert calls == [("get", "a")]
    assert isinstance(result, drygate.NotExecuted)
    assert not result and result.action == "dry" and result.executed is False
    assert "NOT EXECUTED" in str(result) and "put(bucket=b, key=k, body=hello)" in result.text
    assert result.reference == "drygate:ref:2" and "drygate:ref:2" in result.text
    # nothing about it passes for success
    with pytest.raises(drygate.NotExecutedError, match="NOT EXECUTED"):
        result.etag
    with pytest.raises(AttributeError):
        result["etag"]
    assert getattr(result, "etag", None) is None and not hasattr(result, "ok")
    assert result != {"etag": "real-etag"} and result != result.as_dict()
    with pytest.raises(drygate.NotExecutedError):
        result.ok = True
    assert result.ref("etag") == "drygate:ref:2:etag"
    assert json.loads(json.dumps(result.as_dict()))["executed"] is False
    assert run.state.is_dry


def test_sticky_every_later_write_is_dry_through_any_tool_and_reads_still_run():
    calls = []
    get, put, record = tools(calls)
    gate = memory_gate()
    with capture(gate) as seen:
        with gate.run():
            record("before", "e")  # live: the run is not dry yet
            put("b", "k")
            late = record("k", put("b", "k2"))  # a result handed on becomes its reference token
            get("z")
    assert calls == [("record", "before", "e"), ("get", "z")]
    assert seen.actions() == ["allow", "dry", "dry", "dry", "allow"]
    assert not late
    journal = gate.store.journal(seen.decisions[0][1].run_id)
    assert journal[3]["tool_input"] == {"key": "k", "etag": "drygate:ref:3"}


def test_policy_rules_win_over_declarations_and_undeclared_tools_are_writes():
    gate = memory_gate({"run": {"mode": "dry"}, "rules": [{"tool": "get", "effect": "write"}]})
    calls = []
    get, put, record = tools(calls)

    @drygate.tool
    def mystery(x: int) -> int:
        calls.append("mystery")
        return x

    with gate.run():
        assert not get("a")  # declared read, but the policy says write
        assert not mystery(1)
    assert calls == []


def test_a_run_is_never_looser_than_the_policy_the_environment_or_the_enclosing_run():
    gate = memory_gate({"run": {"mode": "dry"}})
    with gate.run(mode="live") as run:
        assert run.mode == "dry"
    gate = memory_gate({"run": {"mode": "live"}}, env={"DRYGATE_MODE": "sticky"})
    with gate.run(mode="live") as run:
        assert run.mode == "sticky"
    gate = memory_gate({"run": {"mode": "live"}})
    calls = []
    get, put, record = tools(calls)
    with gate.run(mode="dry") as outer:
        with gate.run(mode="live") as joined:  # no id: joins the enclosing run
            assert joined.run_id == outer.run_id and joined.mode == "dry"
        with gate.run("child", mode="live") as child:  # its own id: still dry
            assert child.mode == "dry"
            assert not record("k", "e")
    gate = memory_gate(STICKY)
    with gate.run(mode="sticky") as outer:
        put("b", "k")  # the sticky run goes dry
        with gate.run("child2", mode="live") as child:
            assert child.mode == "dry"
    assert calls == []


def test_inside_drygate_run_a_new_run_is_never_looser_than_the_enclosing_run():
    store = drygate.MemoryStore()
    store.ensure_run("outer", "dry", 0.0)
    gate = drygate.open_gate(policy={"run": {"mode": "live"}}, store=store, env={"DRYGATE_RUN_ID": "outer"})
    with gate.run() as joined:
        assert joined.run_id == "outer" and joined.mode == "dry"
    with gate.run("mine", mode="live") as run:
        assert run.mode == "dry"


def test_a_gated_tool_outside_any_run_is_not_executed():
    calls = []
    get, put, record = tools(calls)
    with pytest.raises(drygate.NoRunError, match="NOT executed"):
        record("k", "e")
    assert calls == []
    gate = memory_gate({"run": {"mode": "dry"}})
    bound = gate.tool(lambda key: calls.append(key), name="bound", effect="write")
    assert not bound("k")  # a tool bound to a gate uses the gate's own run
    assert calls == []
    assert gate.run_for_call().mode == "dry"


def test_async_tools_and_runs_keep_parallel_tasks_apart():
    calls = []

    @drygate.tool(effect="write")
    async def send(to: str) -> str:
        calls.append(to)
        return "sent"

    gate = memory_gate({"run": {"mode": "live"}})

    async def agent(name, mode):
        async with gate.run(name, mode=mode):
            await asyncio.sleep(0)
            first = await send(name)
            await asyncio.sleep(0)
            return first, await send(name + "-again")

    async def main():
        return await asyncio.gather(agent("dry-one", "dry"), agent("live-one", "live"))

    (d1, d2), (l1, l2) = asyncio.run(main())
    assert (l1, l2) == ("sent", "sent") and not d1 and not d2
    assert calls == ["live-one", "live-one-again"]
    assert gate.store.get_run("dry-one").dry_writes == 2


def test_wrap_gates_a_registry_without_editing_the_functions():
    calls = []

    def lookup(q):
        calls.append("lookup")
        return q

    def delete(id):
        calls.append("delete")

    gate = memory_gate({"run": {"mode": "dry"}})
    registry = drygate.wrap({"lookup": lookup, "delete": delete}, effects={"lookup": "read"})
    listed = drygate.wrap([lookup, delete], effects={"lookup": "read"})
    with gate.run():
        assert registry["lookup"]("q") == "q" and listed[0]("q") == "q"
        assert not registry["delete"](1) and not listed[1](1)
    assert calls == ["lookup", "lookup"]
    assert registry["lookup"].__name__ == "lookup"
    with pytest.raises(TypeError):
        drygate.wrap("lookup")
    with pytest.raises(ValueError):
        drygate.tool(effect="maybe")


def test_a_framework_adapter_admission_is_not_decided_twice():
    from drygate.api import admitted

    calls = []
    get, put, record = tools(calls)
    gate = memory_gate({"run": {"mode": "live"}})
    with capture(gate) as seen, gate.run():
        with admitted("record"):
            record("k", "e")  # the adapter decided this one
        record("k2", "e")
        with admitted("record", record):  # by the function the framework runs
            record("k3", "e")
    assert seen.tools() == ["record"] and len(calls) == 3


def test_an_admission_covers_only_the_decided_tool_once():
    """The class: an adapter decided tool T; inside its admission only T's own gated function
    skips its decision, and only once. A gated helper (another name or another function), a
    second call of T, a plain tool function (admits nothing) are all decided."""
    from drygate.api import admitted

    calls = []
    get, put, record = tools(calls)
    gate = memory_gate({"run": {"mode": "live"}})
    other_record = drygate.tool(lambda key, event: calls.append(("other", key)), name="record", effect="write")

    def plain(key):
        return record(key, "e")

    with capture(gate) as seen, gate.run():
        with admitted("research"):
            record("a", "e")  # another tool's name: decided
        with admitted("record"):
            record("b", "e")  # admitted
            record("c", "e")  # a second call: decided
        with admitted("record", plain):
            plain("d")  # the framework runs a plain function: the gated helper inside is decided
        with admitted("record", record):
            other_record("e", "e")  # same name, another function: decided
    assert seen.tools() == ["record"] * 4 and len(calls) == 5


def test_a_locked_store_fails_closed_with_an_alert(incident):
    """A real fault: another connection holds the SQLite store's write lock past the deadline."""
    text = (incident.root / "drygate.toml").read_text().replace("[run]", "[gate]\ndeadline_ms = 100\n\n[run]")
    (incident.root / "drygate.toml").write_text(text)
    calls = []
    get, put, record = tools(calls)
    gate = drygate.open_gate(incident.root)
    with gate.run("r1", mode="live"):
        locker = sqlite3.connect(incident.root / ".drygate" / "state.db", isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            with capture(gate) as seen:
                out = record("k", "e")
        finally:
            locker.execute("ROLLBACK")
        assert calls == []
        assert not out and out.action == "error" and "NOT executed" in out.text
        assert seen.actions() == ["error"]
        assert [a["cause"] for a in seen.alerts] == ["store_timeout"]
        assert "store_timeout" in (incident.root / ".drygate" / "alerts.jsonl").read_text()
        locker.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(drygate.GuardFailure):  # a run that cannot be recorded does not start
                with gate.run("r2"):
                    pass
        finally:
            locker.execute("ROLLBACK")
        assert record("k", "e") == 1  # the store is back: the live run goes on


def test_bad_input_is_a_clear_error():
    with pytest.raises(drygate.ConfigError, match="mode"):
        drygate.open_gate(policy={"run": {"mode": "loose"}}, store=drygate.MemoryStore())
    with pytest.raises(drygate.ConfigError, match="python"):
        drygate.open_gate(policy={"python": {"appliable": {"x": "not an entry"}}}, store=drygate.MemoryStore())
    with pytest.raises(drygate.ConfigError):
        drygate.open_gate(policy=42, store=drygate.MemoryStore())
    gate = memory_gate()
    with pytest.raises(drygate.ConfigError):
        gate.run(mode="sometimes")


def test_unjournalable_arguments_are_marked_not_invented():
    gate = memory_gate({"run": {"mode": "dry"}})

    @drygate.tool(effect="write")
    def save(conn, row: dict):
        raise AssertionError("not in a dry run")

    with gate.run() as run:
        assert not save(object(), {"a": 1})
    entry = gate.store.journal(run.run_id)[-1]
    assert entry["tool_input"]["row"] == {"a": 1}
    assert "drygate:unserialisable" in entry["tool_input"]["conn"]


def test_threads_calling_a_bound_tool_first_share_one_run():
    import threading

    gate = memory_gate(STICKY)
    put = gate.tool(lambda key: None, name="put", effect="write")
    barrier = threading.Barrier(8)
    out = []

    def worker(i):
        barrier.wait()
        out.append(put(f"k{i}"))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.run_id for r in out}) == 1 and not any(out)
    assert gate.store.get_run(out[0].run_id).dry_writes == 8


def test_a_call_that_lost_its_run_context_in_a_thread_is_not_executed():
    import concurrent.futures
    import contextvars

    calls = []
    gate = memory_gate({"run": {"mode": "live"}})
    write = gate.tool(lambda key: calls.append(key), name="write", effect="write")
    with gate.run("dry-run", mode="dry"), concurrent.futures.ThreadPoolExecutor(1) as pool:
        with pytest.raises(drygate.NoRunError, match="NOT executed"):
            pool.submit(write, "lost").result()  # a plain thread: no contextvars, the run is unknown
        assert not pool.submit(contextvars.copy_context().run, write, "kept").result()  # in the run: dry
    assert calls == []
    assert write("after") is None and calls == ["after"]  # no run open: the gate's own (live) run


def test_ask_and_deny_without_a_framework_are_not_executed_and_say_why():
    calls = []
    gate = memory_gate({"run": {"mode": "live"}, "rules": [{"tool": "pay", "effect": "external", "action": "ask"},
                                                         {"tool": "drop", "effect": "write", "action": "deny"}]})
    pay = gate.tool(lambda amount: calls.append(amount), name="pay")
    drop = gate.tool(lambda table: calls.append(table), name="drop")
    with gate.run():
        asked, denied = pay(5), drop("users")
    assert calls == []
    assert (asked.action, denied.action) == ("ask", "deny") and not asked and not denied
    assert "human" in asked.text and "NOT executed" in asked.text and "DENIED" in denied.text
    with pytest.raises(drygate.NotExecutedError, match="waiting for a human decision"):
        asked.receipt_id
