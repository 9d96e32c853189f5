"""A tiny MCP server (handshake era, raw JSON-RPC over stdio) for the relay's fault tests.

It refuses everything but ``initialize``/``ping`` until it has been initialized, so a relay
that restarts it must replay the handshake. Every start and every message is logged to
``$FLAKY_LOG`` as JSON lines: ``{"pid", "event"}``.

Tools (no annotations):

- ``echo(text)``: returns the text;
- ``crash``: exits the process (code 3) without answering, i.e. dies mid-call;
- ``hang``: never answers (for a test that kills the process from outside);
- ``garbage(text)``: writes a line that is not JSON, then answers like ``echo``;
- ``big(size)``: returns a text of ``size`` bytes;
- ``touch(path)``: creates the file ``path`` (a real write) and returns "touched".
"""

import json
import os
import sys

LOG = os.environ.get("FLAKY_LOG")
PID = os.getpid()
TOOLS = [
    {"name": "echo", "description": "Echo the text.", "inputSchema": {"type": "object", "properties": {
        "text": {"type": "string"}}}},
    {"name": "crash", "description": "Exit without answering.", "inputSchema": {"type": "object"}},
    {"name": "hang", "description": "Never answer.", "inputSchema": {"type": "object"}},
    {"name": "garbage", "description": "Emit a non-JSON line, then echo.", "inputSchema": {"type": "object"}},
    {"name": "big", "description": "Return SIZE bytes of text.", "inputSchema": {"type": "object", "properties": {
        "size": {"type": "integer"}}}},
    {"name": "touch", "description": "Create a file.", "inputSchema": {"type": "object", "properties": {
        "path": {"type": "string"}}}},
]


def log(event, **extra):
    if LOG:
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps({"pid": PID, "event": event, **extra}) + "\n")


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def text_result(rid, text):
    send({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": text}], "isError": False}})


def main():
    log("start")
    initialized = False
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            send({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}})
            continue
        method, rid, params = msg.get("method"), msg.get("id"), msg.get("params") or {}
        log(method or "response", id=rid, tool=params.get("name") if method == "tools/call" else None)
        if method is None or (rid is None and method.startswith("notifications/")):
            continue
        if method == "initialize":
            initialized = True
            send({"jsonrpc": "2.0", "id": rid, "result": {
                "protocolVersion": params.get("protocolVersion", "2025-06-18"),
                "capabilities": {"tools": {}}, "serverInfo": {"name": "flaky", "version": "1.0.0"}}})
        elif method == "ping":
            send({"jsonrpc": "2.0", "id": rid, "result": {}})
        elif not initialized:
            send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32002, "message": "not initialized"}})
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": rid, "result": {"tools": TOOLS}})
        elif method == "tools/call":
            name, args = params.get("name"), params.get("arguments") or {}
            if name == "echo":
                text_result(rid, str(args.get("text", "")))
            elif name == "crash":
                sys.stdout.flush()
                os._exit(3)
            elif name == "hang":
                continue
            elif name == "garbage":
                sys.stdout.write("this is not json {\n")
                sys.stdout.flush()
                text_result(rid, "after garbage")
            elif name == "big":
                text_result(rid, "x" * int(args.get("size", 0)))
            elif name == "touch":
                open(args["path"], "w").close()
                text_result(rid, "touched")
            else:
                send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32602, "message": f"Unknown tool: {name}"}})
        else:
            send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"Method not found: {method}"}})


if __name__ == "__main__":
    main()
