"""Hook and relay agree on a relayed MCP tool (issue 12 item 2): the host never shows the
hook a tool's annotations, so the hook reads the catalog the relay journaled
(drygate.state.catalog) and decides a trusted server's ``readOnlyHint: true`` tool as a
read, as the relay does; an untrusted server's annotations count for nothing."""

import time

from conftest import SESSION, write_policy
from drygate.state.catalog import CATALOG_PREFIX, catalog_entry

TOOLS = {"read_file": {"fingerprint": "a", "annotations": {"readOnlyHint": True}},
         "write_file": {"fingerprint": "b", "annotations": {"readOnlyHint": False}}}


def journal_catalog(project, server, run_id):
    """What the relay journals when it sees a server's tools/list (drygate.relay.core)."""
    store = project.open_store()
    try:
        store.record_result(run_id, None, CATALOG_PREFIX + server, catalog_entry(server, None, TOOLS), time.time())
    finally:
        store.close()


def test_hook_decides_a_relayed_read_as_the_relay_does(project):
    write_policy(project.root, "dry", extra='[mcp]\ntrusted_servers = ["fs"]\n')
    project.hook(project.event("Read", {"file_path": str(project.root / "x")}))  # the run exists
    before = project.hook(project.event("mcp__fs__read_file", {"path": "a.txt"}, session="other-session"))
    assert before.code == 2  # no catalog yet: unknown, skipped in a dry run
    journal_catalog(project, "fs", SESSION)
    read = project.hook(project.event("mcp__fs__read_file", {"path": "a.txt"}))
    assert read.code == 0 and read.stdout.strip() == "{}", read.stderr
    write = project.hook(project.event("mcp__fs__write_file", {"path": "a.txt", "content": "x"}))
    assert write.code == 2 and "NOT EXECUTED" in write.stderr.upper()
    plan = project.plan()
    assert [s["tool_name"] for s in plan["steps"]] == ["mcp__fs__write_file"]


def test_a_catalog_journaled_under_the_relays_own_run_counts(project):
    """Claude Code 2.0 does not pass its session id to MCP servers, so the relay journals the
    catalog under its own run: the hook still finds the server's newest catalog."""
    write_policy(project.root, "dry", extra='[mcp]\ntrusted_servers = ["fs"]\n')
    project.hook(project.event("Read", {"file_path": str(project.root / "x")}))
    journal_catalog(project, "fs", "relay-run-of-the-client-process")
    read = project.hook(project.event("mcp__fs__read_file", {"path": "a.txt"}))
    assert read.code == 0 and read.stdout.strip() == "{}", read.stderr


def test_an_untrusted_servers_annotations_count_for_nothing(project):
    write_policy(project.root, "dry", extra='[mcp]\ntrusted_servers = ["other"]\n')
    project.hook(project.event("Read", {"file_path": str(project.root / "x")}))
    journal_catalog(project, "fs", SESSION)
    read = project.hook(project.event("mcp__fs__read_file", {"path": "a.txt"}))
    assert read.code == 2  # unknown: skipped, and a step of the plan
    assert [s["tool_name"] for s in project.plan()["steps"]] == ["mcp__fs__read_file"]
