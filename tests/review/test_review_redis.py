"""Review probes (Redis state store): each test states what should happen (they were strict
xfails until the bug each names was fixed). A real redis-server, both clients."""

import time

import pytest
from conftest import initialized_redis_store

from review.proxy import SlowReplyProxy

POLICY = '''
[run]
mode = "sticky"

[gate]
deadline_ms = 800

[[rules]]
id = "r2-writes"
tool_glob = "mcp__r2__*"
effect = "write"
dry = true

[[rules]]
id = "d1-writes"
tool_glob = "mcp__d1__*"
effect = "write"
'''


def engine_on(url, lean, timeout_s=0.4):
    from drygate.engine import Engine
    from drygate.policy.load import compile_policy_text
    from drygate.state import open_store

    return Engine(compile_policy_text(POLICY), open_store(url, busy_timeout_s=timeout_s, lean=lean))


def call(tool, run_id="run-a", call_id=None, **tool_input):
    from drygate.types import ToolCall

    return ToolCall(tool, tool_input, run_id, call_id=call_id or f"c-{time.monotonic_ns()}", host="test")


def proxied(redis_factory):
    server = redis_factory()
    initialized_redis_store(server.url()).close()
    return server, SlowReplyProxy(server.port)


@pytest.mark.parametrize("lean", [False, True], ids=["redis-py", "lean"])
def test_a_call_blocked_on_a_slow_reply_is_not_journaled_as_allowed(redis_factory, lean):
    from drygate.errors import GuardFailure

    server, proxy = proxied(redis_factory)
    try:
        engine = engine_on(proxy.url(), lean)
        assert engine.decide(call("mcp__d1__insert")).action == "allow"
        proxy.delay_s = 1.5  # the request goes through at once; only the reply is slow
        with pytest.raises(GuardFailure):
            engine.decide(call("mcp__d1__insert", call_id="blocked-one"))
        time.sleep(2)
        store = initialized_redis_store(server.url())
        late = [(e["call_id"], e["action"]) for e in store.journal("run-a") if e["call_id"] == "blocked-one"]
        assert late == [], f"a call the gate blocked is journaled as decided: {late}"
    finally:
        proxy.close()


@pytest.mark.parametrize("lean", [False, True], ids=["redis-py", "lean"])
def test_a_blocked_then_retried_write_is_planned_once(redis_factory, lean, tmp_path):
    from drygate.errors import GuardFailure
    from drygate.plan.artifact import make_plan
    from drygate.policy.load import compile_policy_text

    server, proxy = proxied(redis_factory)
    try:
        engine = engine_on(proxy.url(), lean)
        assert engine.decide(call("mcp__d1__insert", run_id="warm-up")).action == "allow"  # connected
        proxy.delay_s = 1.5
        with pytest.raises(GuardFailure):  # the agent is told: BLOCKED (guard failure), not "dry"
            engine.decide(call("mcp__r2__put", call_id="try-1", key="invoice.pdf"))
        proxy.delay_s = 0
        engine = engine_on(proxy.url(), lean)
        assert engine.decide(call("mcp__r2__put", call_id="try-2", key="invoice.pdf")).action == "dry"  # the retry
        store = initialized_redis_store(server.url())
        plan = make_plan(store, "run-a", compile_policy_text(POLICY), str(tmp_path))
        puts = [s["call"] for s in plan["steps"] if s["tool_name"] == "mcp__r2__put"]
        assert len(puts) == 1, f"the plan applies the put {len(puts)} times (calls {puts})"
    finally:
        proxy.close()


@pytest.mark.parametrize("lean", [False, True], ids=["redis-py", "lean"])
def test_a_run_whose_journal_expired_mid_run_is_not_planned_partially(redis_url, lean, tmp_path):
    from drygate.engine import Engine
    from drygate.errors import PlanError
    from drygate.plan.artifact import make_plan
    from drygate.policy.load import compile_policy_text
    from drygate.state.redis import RedisStore

    store = RedisStore(redis_url, retention_s=1, lean=lean)
    store.initialize()
    policy = compile_policy_text(POLICY)
    engine = Engine(policy, store)
    assert engine.decide(call("mcp__r2__put", run_id="s", key="first")).action == "dry"
    time.sleep(2.5)  # idle past the retention
    assert engine.decide(call("mcp__d1__insert", run_id="s", key="second")).action == "dry"  # still dry: holds
    try:
        plan = make_plan(store, "s", policy, str(tmp_path))
    except PlanError:
        return  # refusing an incomplete journal is fine
    assert plan["run"]["counts"]["dry"] == len(plan["steps"]), (plan["run"]["counts"], plan["steps"])
