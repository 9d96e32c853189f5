"""A client of the MCP Python SDK 1.x (the handshake era, still the most deployed)
through the relay over stdio: same tools, reads pass, dry writes are answered
"not executed" and leave the files alone."""

import json
import subprocess
import sys

import pytest

from .conftest import CACHE, _cache_lock, _run_install, clean_env

SDK1_VERSION = "1.30.0"

CLIENT = r'''
import asyncio, json, sys
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

async def main():
    spec = json.loads(sys.argv[1])
    params = StdioServerParameters(command=spec["argv"][0], args=spec["argv"][1:], env=spec["env"])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            out = {"tools": sorted(t.name for t in tools.tools), "calls": []}
            for name, args in spec["calls"]:
                r = await session.call_tool(name, args)
                out["calls"].append({"isError": bool(r.isError), "text": r.content[0].text if r.content else "",
                                     "meta": (r.meta or {}) if hasattr(r, "meta") else {}})
            print(json.dumps(out))

asyncio.run(main())
'''


@pytest.fixture(scope="session")
def sdk1_python():
    venv = CACHE / "sdk1-venv"
    python = venv / "bin" / "python"
    check = [str(python), "-c", f"import importlib.metadata as m, sys; sys.exit(m.version('mcp') != {SDK1_VERSION!r})"]
    with _cache_lock():
        if not python.exists() or subprocess.run(check, capture_output=True).returncode != 0:
            if not python.exists():
                _run_install([sys.executable, "-m", "venv", str(venv)], "the SDK 1.x venv")
            _run_install([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                          f"mcp=={SDK1_VERSION}"], "mcp 1.x")
    return str(python)


def test_sdk1_client_through_the_relay(sdk1_python, project, fs_server):
    project.policy("dry", rules='[[rules]]\ntool = "mcp__filesystem__read_text_file"\neffect = "read"\n')
    root = fs_server.paths["root"]
    before = sorted(p.name for p in root.rglob("*"))
    spec = {"argv": project.relay_argv(fs_server),
            "env": clean_env(project.relay_env(fs_server, run_id="sdk1-run")),
            "calls": [["read_text_file", {"path": str(root / "hello.txt")}],
                      ["write_file", {"path": str(root / "new.txt"), "content": "x"}]]}
    proc = subprocess.run([sdk1_python, "-c", CLIENT, json.dumps(spec)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "write_file" in out["tools"] and "read_text_file" in out["tools"]
    read, write = out["calls"]
    assert not read["isError"] and "hello, world" in read["text"], read
    assert write["isError"] and "NOT EXECUTED" in write["text"]
    assert sorted(p.name for p in root.rglob("*")) == before
    assert [s["tool_name"] for s in project.plan("sdk1-run")["steps"]] == ["mcp__filesystem__write_file"]


HTTP_CLIENT = r'''
import asyncio, json, sys
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

async def main():
    async with streamablehttp_client(sys.argv[1]) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            r = await session.call_tool("write_file", {"path": sys.argv[2], "content": "x"})
            print(json.dumps({"tools": sorted(t.name for t in tools.tools), "isError": bool(r.isError),
                              "text": r.content[0].text}))

asyncio.run(main())
'''


def test_sdk1_client_over_streamable_http(sdk1_python, project, fs_server):
    import socket
    import time
    import urllib.error
    import urllib.request

    project.policy("dry")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [*project.relay_argv(fs_server)]
    argv[argv.index("--"):argv.index("--")] = ["--http", f"127.0.0.1:{port}"]
    relay = subprocess.Popen(argv, env=clean_env(project.relay_env(fs_server, run_id="sdk1-http")),
                             stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=1)
                break
            except urllib.error.HTTPError:  # answered (400: no session named): up
                break
            except OSError:
                time.sleep(0.05)
        target = fs_server.paths["root"] / "new.txt"
        proc = subprocess.run([sdk1_python, "-c", HTTP_CLIENT, url, str(target)], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert "write_file" in out["tools"] and out["isError"] and "NOT EXECUTED" in out["text"]
        assert not target.exists()
    finally:
        relay.terminate()
        relay.wait(10)
