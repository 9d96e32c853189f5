"""Apply a fresh plan made against official MCP servers without --force (issue 12 item 1).

A dry run through the real relay (``drygate mcp``) reads and writes; ``drygate plan --out``
saves the plan; ``drygate apply`` re-runs the reads through the same server (started from
``.mcp.json``) and compares them by what they say (drygate.plan.fingerprint.normal_result),
so the serialisation differences between the relay's raw JSON and the SDK client's model
(``isError: false`` present or absent, key order, empty annotations) do not make a fresh
plan stale. When the world did change, the refusal names the fields. A server of our own
whose results carry a call counter needs ``[[volatile]]``; then only the counter changing
passes, and a real change still refuses while saying which of its fields are volatile.
Real servers: @modelcontextprotocol/server-filesystem and server-memory (npm), mcp-server-git
(PyPI), tests/relay/counter_server.py (SDK 2.x).
"""

import json
import subprocess
import sys
from pathlib import Path

import anyio
from mcp import Client

from .conftest import DRYGATE, Server, _git, clean_env

COUNTER_SERVER = Path(__file__).with_name("counter_server.py")


def mcp_json(project, *servers):
    config = {"mcpServers": {s.name: {"command": s.argv[0], "args": s.argv[1:], "env": dict(s.env)}
                             for s in servers}}
    (project.root / ".mcp.json").write_text(json.dumps(config), encoding="utf-8")


async def dry_run(project, server, run_id, calls):
    async with Client(project.relay(server, mode="dry", run_id=run_id), cache=None) as client:
        await client.list_tools()
        out = []
        for tool, args in calls:
            out.append((await client.call_tool(tool, args)).model_dump(mode="json", by_alias=True, exclude_none=True))
        return out


def plan_and_apply(project, server, run_id, calls, tmp_path, before_apply=None, *args):
    results = anyio.run(dry_run, project, server, run_id, calls)
    plan_path = tmp_path / f"{run_id}.json"
    project.cli("plan", run_id, "--out", str(plan_path))
    plan = json.loads(plan_path.read_text())
    assert plan["basis"]["reads"] and all(r["repeatable"] for r in plan["basis"]["reads"]), plan["basis"]["reads"]
    assert [s["tool_name"] for s in plan["steps"]] == [f"mcp__{server.name}__{calls[-1][0]}"]
    if before_apply:
        before_apply()
    r = subprocess.run([*DRYGATE, "apply", str(plan_path), "--project", str(project.root), "--yes", *args],
                       capture_output=True, text=True, timeout=120,
                       env=clean_env({"DRYGATE_STATE": str(project.state), "COLUMNS": "200"}))
    return results, r


def trusting(project, name):
    project.policy("dry", extra=f'[mcp]\ntrusted_servers = ["{name}"]\n')


def test_filesystem_server_fresh_plan_applies_and_a_change_is_named(project, fs_server, tmp_path):
    trusting(project, "filesystem")
    mcp_json(project, fs_server)
    root = fs_server.paths["root"]
    calls = [("read_text_file", {"path": str(root / "hello.txt")}),
             ("write_file", {"path": str(root / "out.txt"), "content": "from the plan\n"})]
    results, r = plan_and_apply(project, fs_server, "fs1", calls, tmp_path)
    assert "hello, world" in json.dumps(results[0])
    assert r.returncode == 0 and "applied 1 of 1" in r.stdout, r.stdout + r.stderr
    assert (root / "out.txt").read_text() == "from the plan\n"

    calls[1] = ("write_file", {"path": str(root / "out2.txt"), "content": "second\n"})
    _, r = plan_and_apply(project, fs_server, "fs2", calls, tmp_path,
                          lambda: (root / "hello.txt").write_text("hello, world\nSECOND line\n"))
    assert r.returncode == 1 and "REFUSED" in r.stderr, r.stderr
    assert "line 2" in r.stderr and '"second line" -> "SECOND line"' in r.stderr, r.stderr
    assert not (root / "out2.txt").exists()


def test_memory_server_fresh_plan_applies(project, memory_server, tmp_path):
    trusting(project, "memory")
    project.policy("dry", extra='[mcp]\ntrusted_servers = ["memory"]\n',
                   rules='[[rules]]\ntool = "mcp__memory__read_graph"\neffect = "read"\n')
    mcp_json(project, memory_server)
    calls = [("read_graph", {}),
             ("create_entities", {"entities": [{"name": "plan", "entityType": "doc", "observations": ["x"]}]})]
    _, r = plan_and_apply(project, memory_server, "m1", calls, tmp_path)
    assert r.returncode == 0 and "applied 1 of 1" in r.stdout, r.stdout + r.stderr
    assert '"plan"' in memory_server.paths["graph"].read_text()

    calls[1] = ("create_entities", {"entities": [{"name": "later", "entityType": "doc", "observations": []}]})
    graph = memory_server.paths["graph"]
    _, r = plan_and_apply(project, memory_server, "m2", calls, tmp_path,
                          lambda: graph.write_text(graph.read_text().replace("a dry-run gate", "changed")))
    assert r.returncode == 1 and "REFUSED" in r.stderr and "observations.0" in r.stderr, r.stderr
    assert '"a dry-run gate" -> "changed"' in r.stderr, r.stderr
    assert '"later"' not in graph.read_text()


def test_git_server_fresh_plan_applies(project, git_server, tmp_path):
    trusting(project, "git")
    project.policy("dry", extra='[mcp]\ntrusted_servers = ["git"]\n',
                   rules='[[rules]]\ntool = "mcp__git__git_status"\neffect = "read"\n')
    mcp_json(project, git_server)
    repo = git_server.paths["repo"]
    calls = [("git_status", {"repo_path": str(repo)}), ("git_add", {"repo_path": str(repo), "files": ["new.txt"]})]
    _, r = plan_and_apply(project, git_server, "g1", calls, tmp_path)
    assert r.returncode == 0 and "applied 1 of 1" in r.stdout, r.stdout + r.stderr
    assert "A  new.txt" in _git(repo, "status", "--porcelain")


def counter(tmp_path):
    items, count = tmp_path / "items.json", tmp_path / "count.txt"
    items.write_text(json.dumps({"color": "blue"}))
    return Server("counter", [sys.executable, str(COUNTER_SERVER)],
                  clean_env({"ITEMS_FILE": str(items), "COUNTER_FILE": str(count)}), {"items": items})


def test_a_call_counter_makes_every_plan_stale_until_the_policy_names_it(project, tmp_path):
    server = counter(tmp_path)
    trusting(project, "counter")
    mcp_json(project, server)
    calls = [("get_item", {"name": "color"}), ("set_item", {"name": "size", "value": "L"})]
    _, r = plan_and_apply(project, server, "c1", calls, tmp_path)
    assert r.returncode == 1 and "REFUSED" in r.stderr and "calls" in r.stderr and "[[volatile]]" in r.stderr, r.stderr
    assert "size" not in server.paths["items"].read_text()

    volatile = '[[volatile]]\ntool = "mcp__counter__get_item"\nfields = ["calls"]\n'
    project.policy("dry", extra='[mcp]\ntrusted_servers = ["counter"]\n', rules=volatile)
    _, r = plan_and_apply(project, server, "c2", calls, tmp_path)
    assert r.returncode == 0 and "applied 1 of 1" in r.stdout, r.stdout + r.stderr
    assert "only in what the policy calls volatile" in r.stdout and "calls" in r.stdout, r.stdout
    assert json.loads(server.paths["items"].read_text())["size"] == "L"

    calls[1] = ("set_item", {"name": "size", "value": "XL"})
    items = server.paths["items"]
    _, r = plan_and_apply(project, server, "c3", calls, tmp_path,
                          lambda: items.write_text(json.dumps({"color": "red", "size": "L"})))
    assert r.returncode == 1 and "beyond the fields the policy calls volatile" in r.stderr, r.stderr
    assert '"blue" -> "red"' in r.stderr and ".calls" not in r.stderr.split("volatile:")[-1], r.stderr
    assert json.loads(items.read_text())["size"] == "L"


def test_a_volatile_entry_added_after_the_plan_does_not_make_it_stale(project, tmp_path):
    server = counter(tmp_path)
    trusting(project, "counter")
    mcp_json(project, server)
    calls = [("get_item", {"name": "color"}), ("set_item", {"name": "size", "value": "S"})]
    volatile = '[[volatile]]\ntool = "mcp__counter__get_item"\nfields = ["calls"]\n'
    _, r = plan_and_apply(project, server, "c4", calls, tmp_path,
                          lambda: project.policy("dry", extra='[mcp]\ntrusted_servers = ["counter"]\n',
                                                 rules=volatile))
    assert r.returncode == 0 and "applied 1 of 1" in r.stdout, r.stdout + r.stderr
