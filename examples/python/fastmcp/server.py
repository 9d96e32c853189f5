"""The incident's tools as a fastmcp server gated by drygate (stdio by default).

Run it from this folder's parent (examples/python, which holds drygate.toml):
    STORE_DIR=/tmp/objects STORE_DB=/tmp/meta.db python fastmcp/server.py
and connect any MCP client; name the run in each request's _meta["drygate/run_id"].
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE)]

from fastmcp import FastMCP  # noqa: E402

import drygate  # noqa: E402
import incident_tools  # noqa: E402
from drygate.adapters.fastmcp import DrygateMiddleware  # noqa: E402

server = FastMCP("store")
server.tool(incident_tools.put_object)
server.tool(incident_tools.query)
server.add_middleware(DrygateMiddleware(drygate.open_gate(os.path.dirname(HERE))))

if __name__ == "__main__":
    server.run()
