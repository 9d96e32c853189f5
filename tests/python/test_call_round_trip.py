"""Apply calls a Python step with the arguments the run's call had: the journaled input
(drygate.api.tools.ToolSpec.tool_input) turned back into a call (drygate.api.executor.
call_arguments) binds every parameter to the same value, for every kind of parameter
Python has (positional-only, positional-or-keyword, *args, keyword-only, **kwargs), and
a keyword that looks like another argument never becomes that argument."""

import asyncio
import inspect

import pytest

import drygate
from drygate.api.executor import call_arguments
from drygate.api.tools import ToolSpec
from drygate.state.memory import MemoryStore


def f_plain(a, b=2, *, c=3):
    pass


def f_posonly(a, b, /, c=0):
    pass


def f_star(key, *labels):
    pass


def f_star_kw(head, *rest, flag=False, **options):
    pass


def f_forward(*args, **kwargs):
    pass


def f_mixed(a, /, b, *args, c, d=4, **kw):
    pass


CALLS = [
    (f_plain, (1,), {}), (f_plain, (1, 5), {"c": 6}), (f_plain, (), {"a": 1, "b": 9}),
    (f_posonly, (1, 2), {}), (f_posonly, (1, 2, 3), {}),
    (f_star, ("k",), {}), (f_star, ("k", "x", "y"), {}),
    (f_star_kw, ("h", 1, 2), {"flag": True, "z": 1}), (f_star_kw, ("h",), {"rest": 5, "options": 6}),
    (f_forward, (), {"args": 5}), (f_forward, (1, 2), {"kwargs": {"a": 1}, "x": 2}), (f_forward, (), {}),
    (f_forward, (), {"drygate:kwargs": 1}),
    (f_mixed, (1, 2, 3, 4), {"c": 5, "e": 6}), (f_mixed, (1,), {"b": 2, "c": 3, "args": 7}),
]


@pytest.mark.parametrize("fn,args,kwargs", CALLS, ids=[f"{f.__name__}-{i}" for i, (f, _, _) in enumerate(CALLS)])
def test_apply_binds_what_the_run_called(fn, args, kwargs):
    sig = inspect.signature(fn)
    original = sig.bind(*args, **kwargs)
    original.apply_defaults()
    journaled = ToolSpec(fn.__name__, "write", fn).tool_input(args, kwargs)
    again_args, again_kwargs = call_arguments(fn, journaled)
    replayed = sig.bind(*again_args, **again_kwargs)
    replayed.apply_defaults()
    assert replayed.arguments == original.arguments


def test_an_awaitable_dry_result_for_every_async_tool_shape(tmp_path):
    """A dry run answers `await tool(...)` with NotExecuted for an async function, an async
    callable object and a sync function that returns a coroutine; none of them runs."""
    gate = drygate.open_gate(policy='[run]\nmode = "dry"\n', store=MemoryStore())
    touched = []

    async def async_fn(key):
        touched.append(key)

    class AsyncCallable:
        __name__ = "async_callable"

        async def __call__(self, key):
            touched.append(key)

    def returns_coroutine(key):
        return async_fn(key)

    tools = gate.wrap({"a": async_fn, "b": AsyncCallable(), "c": returns_coroutine},
                      effects={"a": "write", "b": "write", "c": "write"})

    async def agent():
        with gate.run():
            return [await tools[name]("k") for name in ("a", "b", "c")]

    results = asyncio.run(agent())
    assert [type(r).__name__ for r in results] == ["NotExecuted"] * 3
    assert all(not r and "NOT EXECUTED" in str(r).upper() for r in results)
    assert touched == []


# -- Values: what JSON can represent is passed back as it was; what it cannot, apply refuses ------

import enum  # noqa: E402
import json  # noqa: E402
from collections import OrderedDict, namedtuple  # noqa: E402

from drygate.errors import PlanError  # noqa: E402


class _Level(enum.IntEnum):
    LOW = 1


class _Name(str):
    pass


_Point = namedtuple("_Point", "x y")

#: Values JSON gives back as they were (RFC 8259: strings, finite numbers, true/false/null,
#: arrays, objects with string keys), and tuples (journaled as drygate:tuple, rebuilt at apply).
EXACT = [None, True, 0, -1, 10 ** 40, -(2 ** 70), 1.5, -0.0, 1e308, "", "é\u2028\x00", "\ud800",
         [], {}, [1, [2, [3]]], {"a": {"b": [None]}}, (), (1,), (1, (2, "x"), [3]), [(1, 2)], {"k": (1, 2)}]
#: Values JSON would give back as another value: apply refuses the step.
LOSSY = [{1: "a"}, {"a": {2.5: "b"}}, {None: 1}, {True: 1}, {(1, 2): 3}, {"drygate:tuple": [1]},
         {"drygate:unserialisable": "x"}, float("nan"), float("inf"), -float("inf"), [float("nan")],
         _Level.LOW, _Name("x"), _Point(1, 2), b"x", {1}, frozenset(), object()]


def _through_the_journal(value, **kw):
    """The run's call of ``f(value)`` journaled, then turned back into apply's call."""
    def f(value, **kw):
        pass

    tool_input = json.loads(json.dumps(ToolSpec("f", "write", f).tool_input((value,), kw), allow_nan=False))
    return call_arguments(f, tool_input)


@pytest.mark.parametrize("value", EXACT, ids=repr)
def test_a_value_json_represents_comes_back_as_it_was(value):
    for args, kwargs in (_through_the_journal(value), _through_the_journal(0, extra=value)):
        got = args[0] if "extra" not in kwargs else kwargs["extra"]
        assert got == value and type(got) is type(value) and repr(got) == repr(value)


@pytest.mark.parametrize("value", LOSSY, ids=repr)
def test_a_value_json_cannot_represent_makes_apply_refuse(value):
    with pytest.raises(PlanError, match="no JSON form"):
        _through_the_journal(value)
    with pytest.raises(PlanError, match="no JSON form"):
        _through_the_journal(0, extra=[value])


def test_an_ordered_dict_comes_back_as_its_items_in_order():
    """Documented (drygate.api.tools.to_json): a dict subclass is journaled as its items."""
    (got,), _ = _through_the_journal(OrderedDict([("b", 1), ("a", 2)]))
    assert list(got.items()) == [("b", 1), ("a", 2)]


def test_an_async_gated_tool_still_builds_each_frameworks_tool():
    """An async gated tool is a callable object (it reads the run when called): each framework's
    own tool builder still sees a coroutine function with the function's parameters, and runs it
    through the gate."""
    gate = drygate.open_gate(policy='[run]\nmode = "live"\n', store=MemoryStore())

    async def lookup(topic: str, n: int = 2) -> str:
        """Look up a topic.

        Args:
            topic: the topic
            n: how many
        """
        return f"about {topic} {n}"

    gated = gate.tool(lookup, effect="read")
    assert inspect.iscoroutinefunction(gated) and inspect.signature(gated) == inspect.signature(lookup)
    from langchain_core.tools import tool as langchain_tool

    built = langchain_tool(gated)
    assert set(built.args) == {"topic", "n"} and asyncio.run(built.ainvoke({"topic": "q"})) == "about q 2"
    from agents import function_tool

    assert set(function_tool(gated).params_json_schema["properties"]) == {"topic", "n"}
    from pydantic_ai import Tool

    assert Tool(gated).function_schema.json_schema["required"] == ["topic"]
    from fastmcp import Client, FastMCP

    server = FastMCP("t")
    server.tool(gated)

    async def call():
        async with Client(server) as client:
            return (await client.call_tool("lookup", {"topic": "q", "n": 3})).content[0].text

    from drygate.testing import capture

    with capture(gate) as seen:
        assert asyncio.run(call()) == "about q 3"
    assert seen.tools() == ["lookup"]
