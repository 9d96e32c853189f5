"""The fake Messages API on its own (no CLI needed): protocol shape and scripting rules."""

from __future__ import annotations

import json
import urllib.request

from .fake_messages_api import FINAL_PREFIX, TRIGGER, FakeMessagesAPI

TOOLS = [{"name": "Bash", "input_schema": {"type": "object"}}]


def _post(api, body, path="/v1/messages?beta=true"):
    req = urllib.request.Request(api.base_url + path, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.headers.get("content-type"), resp.read().decode()


def _events(text):
    out = []
    for chunk in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def _user(text):
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def test_scripted_tool_use_then_final_answer_embeds_results():
    steps = [{"name": "Bash", "input": {"command": "echo hi > out.txt"}}]
    with FakeMessagesAPI(steps) as api:
        ctype, text = _post(api, {"stream": True, "tools": TOOLS, "messages": [_user(f"go {TRIGGER}")]})
        assert ctype.startswith("text/event-stream")
        evs = _events(text)
        assert [e for e, _ in evs] == ["message_start", "content_block_start", "content_block_delta",
                                       "content_block_stop", "message_delta", "message_stop"]
        block = evs[1][1]["content_block"]
        assert block["type"] == "tool_use" and block["name"] == "Bash"
        assert json.loads(evs[2][1]["delta"]["partial_json"]) == steps[0]["input"]
        assert evs[4][1]["delta"]["stop_reason"] == "tool_use"

        convo = [
            _user(f"go {TRIGGER}"),
            {"role": "assistant", "content": [dict(block, input=steps[0]["input"])]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block["id"],
                                          "content": [{"type": "text", "text": "NOT executed"}],
                                          "is_error": True}]},
        ]
        _, text = _post(api, {"stream": True, "tools": TOOLS, "messages": convo})
        evs = _events(text)
        final = "".join(d["delta"]["text"] for e, d in evs if e == "content_block_delta")
        assert final.startswith(FINAL_PREFIX) and "NOT executed" in final
        assert evs[-2][1]["delta"]["stop_reason"] == "end_turn"
        assert api.tool_results == [{"tool_use_id": block["id"], "name": "Bash",
                                     "content": "NOT executed", "is_error": True}]


def test_unscripted_requests_get_plain_text():
    with FakeMessagesAPI([{"name": "Bash", "input": {}}]) as api:
        # no tools (title generation) even with the trigger; tools but no trigger (warm-up)
        for body in ({"stream": True, "messages": [_user(TRIGGER)]},
                     {"stream": True, "tools": TOOLS, "messages": [_user("warm up")]}):
            _, text = _post(api, body)
            assert all(d.get("content_block", {}).get("type") != "tool_use" for _, d in _events(text))
        _, text = _post(api, {"stream": False, "messages": [_user("hi")]})
        assert json.loads(text)["content"][0]["type"] == "text"
        _, text = _post(api, {"messages": []}, path="/v1/messages/count_tokens?beta=true")
        assert "input_tokens" in json.loads(text)
        assert api.scripted_requests == [] and api.tool_results == []


def test_parallel_turn_and_system_messages():
    steps = [[{"name": "A", "input": {}}, {"name": "B", "input": {}}]]
    with FakeMessagesAPI(steps) as api:
        msgs = [{"role": "system", "content": "sys"}, _user(TRIGGER)]
        _, text = _post(api, {"stream": True, "tools": TOOLS, "messages": msgs})
        names = [d["content_block"]["name"] for e, d in _events(text) if e == "content_block_start"]
        assert names == ["A", "B"]


def test_callable_input_sees_the_results_so_far():
    """An input computed from what the model saw (an id, a reference token), when its turn comes."""
    steps = [{"name": "A", "input": {}},
             {"name": "B", "input": lambda results: {"id": results[-1]["content"].split("=")[1]}}]
    with FakeMessagesAPI(steps) as api:
        _, text = _post(api, {"stream": True, "tools": TOOLS, "messages": [_user(TRIGGER)]})
        first = [d["content_block"] for e, d in _events(text) if e == "content_block_start"][0]
        convo = [_user(TRIGGER), {"role": "assistant", "content": [dict(first, input={})]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": first["id"],
                                               "content": "id=42"}]}]
        _, text = _post(api, {"stream": True, "tools": TOOLS, "messages": convo})
        evs = _events(text)
        assert evs[1][1]["content_block"]["name"] == "B"
        assert json.loads(evs[2][1]["delta"]["partial_json"]) == {"id": "42"}
