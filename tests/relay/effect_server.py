"""A small hand-written MCP server (raw JSON-RPC over stdio, no SDK: a common pattern) whose
every handler changes the world: each request or notification it gets writes a file named
after the method into ``EFFECT_DIR`` (``resources_read.touched``) and deletes the one named
after it with ``.victim`` (``resources_read.victim``), if there is one.

So a test can tell which messages reached it: the files in ``EFFECT_DIR`` after a run.
Only ``initialize``, ``notifications/initialized`` and ``ping`` leave no trace (a relay
sends those itself when it restarts a server).

``ASK_ROOTS=1``: after ``notifications/initialized`` it asks the client ``roots/list`` (id
``srv-1``); every response it gets leaves ``response_<id>.touched``.

``SLOW_TOOLS_LIST=S``: answer ``tools/list`` only after S seconds (other requests meanwhile),
for the relay's own listing that times out and is answered late.
"""

import json
import os
import sys
import threading

EFFECT_DIR = os.environ["EFFECT_DIR"]
QUIET = {"initialize", "notifications/initialized", "ping"}
SLOW_TOOLS_LIST = float(os.environ.get("SLOW_TOOLS_LIST") or 0)
_out = threading.Lock()


def send(answer):
    with _out:
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def effect(method):
    if method in QUIET:
        return
    stem = os.path.join(EFFECT_DIR, method.replace("/", "_"))
    with open(stem + ".touched", "a", encoding="utf-8") as f:
        f.write("x\n")
    try:
        os.remove(stem + ".victim")
    except FileNotFoundError:
        pass


def send_late(answer):
    """Send a delayed answer, then leave ``tools_list.late-sent`` (the test waits for it)."""
    send(answer)
    open(os.path.join(EFFECT_DIR, "tools_list.late-sent"), "w").close()


def result_for(method, params):
    if method == "initialize":
        return {"protocolVersion": params.get("protocolVersion", "2025-06-18"),
                "capabilities": {"tools": {}, "resources": {"subscribe": True}, "prompts": {}, "completions": {},
                                 "logging": {}},
                "serverInfo": {"name": "effects", "version": "1"}}
    if method == "tools/list":
        return {"tools": [{"name": "touch", "inputSchema": {"type": "object"},
                           "annotations": {"readOnlyHint": True}}]}
    if method == "tools/call":
        return {"content": [{"type": "text", "text": "touched"}], "isError": False}
    if method == "resources/list":
        return {"resources": [{"uri": "file:///effects/a", "name": "a"}]}
    if method == "resources/templates/list":
        return {"resourceTemplates": []}
    if method == "resources/read":
        return {"contents": [{"uri": params.get("uri", ""), "text": "contents"}]}
    if method == "prompts/list":
        return {"prompts": [{"name": "p"}]}
    if method == "prompts/get":
        return {"messages": [{"role": "user", "content": {"type": "text", "text": "prompt"}}]}
    if method == "completion/complete":
        return {"completion": {"values": ["a"], "hasMore": False}}
    return {}


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        message = json.loads(line)
        if not isinstance(message, dict):
            continue
        if "method" not in message:
            effect(f"response/{message.get('id')}")
            continue
        method = message["method"]
        effect(method)
        if method == "notifications/initialized" and os.environ.get("ASK_ROOTS"):
            send({"jsonrpc": "2.0", "id": "srv-1", "method": "roots/list"})
        if "id" in message:
            answer = {"jsonrpc": "2.0", "id": message["id"], "result": result_for(method, message.get("params") or {})}
            if method == "tools/list" and SLOW_TOOLS_LIST:
                threading.Timer(SLOW_TOOLS_LIST, send_late, (answer,)).start()
            else:
                send(answer)


if __name__ == "__main__":
    main()
