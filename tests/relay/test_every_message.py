"""Nothing reaches a server undecided (issue 11 item 5).

Every client message is either on the relay's short list of protocol messages with no
effect on the world (drygate.relay.protocol, derived from the MCP schema's ClientRequest
and ClientNotification unions) or decided by the engine; a notification of a decided
method is dropped with an alert. The server here (effect_server.py) writes a file for
every message it gets and deletes a victim file, so the test sees exactly what reached it.
"""

import json
import sys
from pathlib import Path

import pytest

from drygate.relay import protocol

from .conftest import Server

EFFECT_SERVER = Path(__file__).with_name("effect_server.py")
UNTRUSTED = "[mcp]\ntrusted_servers = []\n"

#: Decided requests, one per class: the spec's reads, a task method, one no revision has.
DECIDED = [
    ("resources/read", {"uri": "file:///effects/a"}),
    ("prompts/get", {"name": "p", "arguments": {"x": "1"}}),
    ("completion/complete", {"ref": {"type": "ref/prompt", "name": "p"}, "argument": {"name": "x", "value": ""}}),
    ("resources/subscribe", {"uri": "file:///effects/a"}),
    ("resources/unsubscribe", {"uri": "file:///effects/a"}),
    ("tasks/get", {"taskId": "t1"}),
    ("tasks/cancel", {"taskId": "t1"}),
    ("vendor/custom-write", {"path": "/x"}),
]
#: Forwarded requests: the protocol's own (they reach the server, which here writes for each).
FORWARDED = [("tools/list", {}), ("resources/list", {}), ("resources/templates/list", {}), ("prompts/list", {}),
             ("logging/setLevel", {"level": "info"})]


@pytest.fixture
def effects(tmp_path):
    d = tmp_path / "effects"
    d.mkdir()
    for method in [m for m, _ in DECIDED + FORWARDED] + ["tools/call", "notifications/vendor/custom"]:
        (d / (method.replace("/", "_") + ".victim")).write_text("keep me", encoding="utf-8")
    return Server("effects", [sys.executable, str(EFFECT_SERVER)], {"EFFECT_DIR": str(d), "ASK_ROOTS": "1"},
                  {"dir": d})


def touched(server):
    return sorted(p.name[:-len(".touched")].replace("_", "/") for p in server.paths["dir"].glob("*.touched"))


def victims(server):
    """The methods whose victim file is still there (sorted)."""
    return sorted(p.name[:-len(".victim")].replace("_", "/") for p in server.paths["dir"].glob("*.victim"))


def start(raw_peers, project, server, mode="dry", run_id="every-message"):
    peer = raw_peers(project.relay_argv(server), project.relay_env(server, mode, run_id))
    peer.initialize()
    return peer


def test_every_spec_client_method_is_forwarded_or_decided():
    """The lists are derived from the SDK's per-revision method maps (2024-11-05 .. 2026-07-28)."""
    from mcp_types import methods

    spec_requests = {method for method, _version in methods.CLIENT_REQUESTS}
    spec_notifications = {method for method, _version in methods.CLIENT_NOTIFICATIONS}
    assert spec_requests | spec_notifications <= protocol.SPEC_CLIENT_METHODS
    assert protocol.FORWARDED_REQUESTS <= spec_requests
    assert protocol.FORWARDED_NOTIFICATIONS <= spec_notifications
    for method in spec_requests:
        rule = protocol.rule_of({"jsonrpc": "2.0", "id": 1, "method": method})
        assert rule == (protocol.FORWARD if method in protocol.FORWARDED_REQUESTS else protocol.DECIDE), method
        assert protocol.rule_of({"jsonrpc": "2.0", "method": method}) in (
            (protocol.FORWARD,) if method in spec_notifications else (protocol.DROP,)), method
    for method in spec_notifications:
        assert protocol.rule_of({"jsonrpc": "2.0", "method": method}) == protocol.FORWARD
    # what a later revision adds is decided (so a write by default), never forwarded undecided
    assert protocol.rule_of({"jsonrpc": "2.0", "id": 1, "method": "files/delete"}) == protocol.DECIDE
    assert protocol.rule_of({"jsonrpc": "2.0", "method": "notifications/files/delete"}) == protocol.DROP
    assert protocol.rule_of({"jsonrpc": "2.0", "id": 1, "result": {}}) == protocol.FORWARD  # a client's answer


def test_dry_run_nothing_decided_reaches_the_server(raw_peers, project, effects):
    project.policy("dry", extra=UNTRUSTED)
    peer = start(raw_peers, project, effects)
    for method, params in FORWARDED:
        assert "result" in peer.request(method, params), method
    # responses: the one the server asked for (roots/list, id srv-1) once; none it did not ask for
    peer.send({"jsonrpc": "2.0", "id": "srv-1", "result": {"roots": []}})
    peer.send({"jsonrpc": "2.0", "id": "srv-1", "result": {"roots": []}})
    peer.send({"jsonrpc": "2.0", "id": "made-up", "result": {}})
    peer.send([{"jsonrpc": "2.0", "id": "made-up-2", "result": {}}])
    for method, params in DECIDED:
        answer = peer.request(method, params)
        assert answer["error"]["code"] == -32001 and "NOT EXECUTED" in answer["error"]["message"], answer
        meta = answer["error"]["data"]["drygate"]
        assert meta["executed"] is False and meta["decision"] == "dry" and meta["run_id"] == "every-message", meta
    call = peer.request("tools/call", {"name": "touch", "arguments": {}})
    assert call["result"]["isError"] is True and call["result"]["_meta"]["drygate"]["decision"] == "dry"
    # a tool named like a method cannot borrow the method's rules
    named = peer.request("tools/call", {"name": "resources/read", "arguments": {}})
    assert named["result"]["isError"] is True and named["result"]["_meta"]["drygate"]["guard_failure"]
    # notifications of decided methods: dropped, alerted; a batch with a decided member: refused
    peer.send({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "touch", "arguments": {}}})
    peer.send({"jsonrpc": "2.0", "method": "resources/read", "params": {"uri": "file:///effects/a"}})
    peer.send({"jsonrpc": "2.0", "method": "notifications/vendor/custom"})
    peer.send([{"jsonrpc": "2.0", "id": 900, "method": "prompts/get", "params": {"name": "p"}},
               {"jsonrpc": "2.0", "id": 901, "method": "ping"}])
    refused = peer.recv()
    assert refused["id"] == 900 and refused["error"]["code"] == -32600, refused
    assert "result" in peer.request("ping")  # the relay is still serving, and ordered after all of the above
    peer.close()
    assert touched(effects) == sorted([m for m, _ in FORWARDED] + ["response/srv-1"])
    assert (effects.paths["dir"] / "response_srv-1.touched").read_text() == "x\n"  # the answer reached it once
    assert victims(effects) == sorted([m for m, _ in DECIDED] + ["notifications/vendor/custom", "tools/call"])
    bypass = [a for a in project.alert_lines() if a.get("cause") == protocol.BYPASS_CAUSE]
    assert sorted(a["tool_name"] for a in bypass) == [
        "mcp__effects__notifications/vendor/custom", "mcp__effects__resources/read", "mcp__effects__touch"]
    assert all(a["kind"] == "tamper" and a["category"] == "agent" for a in bypass)
    steps = [s["tool_name"] for s in project.plan("every-message")["steps"]]
    assert steps == [f"mcp__effects__{m}" for m, _ in DECIDED] + ["mcp__effects__touch"]


def test_live_run_forwards_decided_requests_and_journals_them(raw_peers, project, effects):
    project.policy("live", extra=UNTRUSTED)
    peer = start(raw_peers, project, effects, mode="live", run_id="live-messages")
    assert peer.request("resources/read", {"uri": "file:///effects/a"})["result"]["contents"]
    assert peer.request("prompts/get", {"name": "p"})["result"]["messages"]
    peer.close()
    assert touched(effects) == ["prompts/get", "resources/read"]
    import sqlite3

    with sqlite3.connect(project.state) as db:
        decided = [r[0] for r in db.execute("SELECT tool_name FROM journal WHERE run_id = ? AND kind = 'call' "
                                            "ORDER BY seq", ("live-messages",))]
    assert decided == ["mcp__effects__resources/read", "mcp__effects__prompts/get"]


def test_trust_makes_the_spec_reads_reads_and_rules_still_win(raw_peers, project, effects):
    """resources/read, prompts/get, completion/complete are reads only where the policy trusts the server,
    and a policy rule naming the method decides it like a tool."""
    project.policy("dry", extra='[mcp]\ntrusted_servers = ["effects"]\n',
                   rules='[[rules]]\ntool = "mcp__effects__prompts/get"\neffect = "write"\n')
    peer = start(raw_peers, project, effects, run_id="trusted-messages")
    assert peer.request("resources/read", {"uri": "file:///effects/a"})["result"]["contents"]
    assert peer.request("completion/complete", {"ref": {"type": "ref/prompt", "name": "p"},
                                                "argument": {"name": "x", "value": ""}})["result"]["completion"]
    assert peer.request("prompts/get", {"name": "p"})["error"]["code"] == -32001  # the rule: a write, so dry
    assert peer.request("tasks/cancel", {"taskId": "t"})["error"]["code"] == -32001  # not a read by the spec
    peer.close()
    assert touched(effects) == ["completion/complete", "resources/read"]


def test_aggregating_relay_decides_resources_and_prompts(raw_peers, project, effects, tmp_path):
    project.policy("dry", extra=UNTRUSTED)
    config = tmp_path / "servers.json"
    config.write_text(json.dumps({"mcpServers": {"effects": {"command": effects.argv[0], "args": effects.argv[1:],
                                                             "env": effects.env}}}), encoding="utf-8")
    from .conftest import DRYGATE

    env = project.relay_env(effects, "dry", "aggregate-messages")
    peer = raw_peers([*DRYGATE, "mcp", "--config", str(config), "--project", str(project.root)], env)
    peer.initialize()
    assert peer.request("resources/list")["result"]["resources"]
    assert peer.request("prompts/list")["result"]["prompts"]
    for method, params in DECIDED[:5]:
        answer = peer.request(method, params)
        assert answer["error"]["code"] == -32001, (method, answer)
    peer.send({"jsonrpc": "2.0", "method": "resources/read", "params": {"uri": "file:///effects/a"}})
    assert "result" in peer.request("ping")
    peer.close()
    assert set(victims(effects)) >= {m for m, _ in DECIDED}
    assert set(touched(effects)) <= {"resources/list", "prompts/list", "tools/list", "logging/setLevel"}
