"""A small MCP server (SDK 2.x) whose every result carries a call counter, kept in a file
so it keeps counting across processes (the relay's server and apply's): the case of a
server that stamps each answer, for the plan's re-check of reads (issue 12 item 1).

``ITEMS_FILE``: a JSON object of name -> value (the state); ``COUNTER_FILE``: the count.
Run: ``ITEMS_FILE=... COUNTER_FILE=... python counter_server.py``.
"""

import json
import os
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("counter")


def _count():
    path = Path(os.environ["COUNTER_FILE"])
    n = int(path.read_text() or 0) + 1 if path.exists() else 1
    path.write_text(str(n))
    return n


def _items():
    path = Path(os.environ["ITEMS_FILE"])
    return json.loads(path.read_text()) if path.exists() else {}


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def get_item(name: str) -> dict:
    """Read an item; the answer carries the server's call counter."""
    return {"name": name, "value": _items().get(name), "calls": _count()}


@server.tool()
def set_item(name: str, value: str) -> dict:
    """Set an item."""
    items = _items()
    items[name] = value
    Path(os.environ["ITEMS_FILE"]).write_text(json.dumps(items))
    return {"name": name, "value": value, "calls": _count()}


if __name__ == "__main__":
    server.run()
