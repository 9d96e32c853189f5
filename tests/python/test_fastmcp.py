"""drygate.adapters.fastmcp with the real fastmcp package: a server and a proxy gated by the
middleware, driven by fastmcp's own Client playing the scripted agent (in-memory transport)."""

import asyncio
import json

import pytest

pytest.importorskip("fastmcp")

from fastmcp import Client, FastMCP  # noqa: E402
from fastmcp.server import create_proxy  # noqa: E402

import drygate  # noqa: E402
from drygate.adapters.fastmcp import DrygateMiddleware  # noqa: E402
from drygate.testing import capture  # noqa: E402

from .agent_script import NOT_EXECUTED, next_call  # noqa: E402


def store_server():
    import incident_tools

    server = FastMCP("store")
    server.tool(incident_tools.put_object)
    server.tool(incident_tools.query)
    return server


async def play(server, meta=None):
    """The scripted agent as an MCP client: each result (text) goes back into the script."""
    seen = []
    async with Client(server) as client:
        while (move := next_call(seen)) is not None:
            result = await client.call_tool(move[0], move[1], raise_on_error=False, meta=meta)
            text = result.content[0].text
            seen.append(text if result.is_error else json.loads(text))
    return seen


def test_a_dry_run_changes_nothing_and_plan_then_apply_reproduce_the_live_run(incident, monkeypatch):
    live = incident.make("live")
    monkeypatch.setenv("STORE_DIR", str(live.objects))
    monkeypatch.setenv("STORE_DB", str(live.db))
    asyncio.run(play(store_server()))
    expected = live.state()
    monkeypatch.setenv("STORE_DIR", str(incident.objects))
    monkeypatch.setenv("STORE_DB", str(incident.db))

    before = incident.state()
    gate = drygate.open_gate(incident.root)
    server = store_server()
    server.add_middleware(DrygateMiddleware(gate))
    with capture(gate) as cap:
        seen = asyncio.run(play(server, meta={"drygate/run_id": "mcp-run"}))
    assert incident.state() == before
    assert cap.actions() == ["allow", "dry", "dry", "dry", "dry"]
    assert {c.run_id for c, _ in cap.decisions} == {"mcp-run"}
    assert all(NOT_EXECUTED in seen[i] for i in (1, 2, 3, 4))
    gate.close()
    r = incident.drygate("plan", "mcp-run", "--out", "plan.json")
    assert r.returncode == 0, r.stderr
    # The agent's read through the middleware journals no result: accepted explicitly (journaled).
    r = incident.drygate("apply", "plan.json", "--yes", "--accept-unchecked")
    assert r.returncode == 0, r.stdout + r.stderr
    assert incident.state() == expected


def test_a_proxy_gates_the_server_behind_it_and_answers_like_the_relay(incident):
    policy = (incident.root / "drygate.toml").read_text()
    gate = drygate.open_gate(policy=policy, store=drygate.MemoryStore())
    proxy = create_proxy(store_server())
    proxy.add_middleware(DrygateMiddleware(gate, run_id="proxied"))

    async def main():
        async with Client(proxy) as client:
            read = await client.call_tool("query", {"sql": "SELECT key FROM files"})
            put = await client.call_tool("put_object", {"bucket": "b", "key": "k", "body": "x"}, raise_on_error=False)
            return read, put

    read, put = asyncio.run(main())
    assert read.structured_content == {"rows": [["old.txt"]]}
    assert put.is_error and NOT_EXECUTED in put.content[0].text and put.structured_content is None
    assert put.meta["drygate"]["executed"] is False and put.meta["drygate"]["reference"] == "drygate:ref:2"
    assert not incident.state()[0]
