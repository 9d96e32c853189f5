"""Errors a user can act on (issue 12 item 5, relay part), and trust recorded on first use
(issue 12 item 2): ``drygate mcp`` with a command that does not exist prints one line and
answers the client's initialize with the same words; a server's first use writes its
trust into drygate.toml with a comment, once, and says so."""

import json
import subprocess
import tomllib

from drygate.relay.trust import HEADER, record_first_use

from .conftest import DRYGATE, clean_env


def test_missing_server_command_is_one_line_and_an_initialize_error(project, raw_peers):
    project.policy("dry")
    argv = [*DRYGATE, "mcp", "--name", "fs", "--project", str(project.root), "--", "no-such-command-drygate"]
    peer = raw_peers(argv, {"DRYGATE_STATE": str(project.state)})
    answer = peer.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                         "clientInfo": {"name": "t", "version": "0"}})
    message = answer["error"]["message"]
    assert "cannot start the MCP server 'fs'" in message and "no-such-command-drygate" in message
    assert "command not found" in message
    assert peer.request("tools/list")["error"]["message"] == message
    peer.proc.stdin.close()
    assert peer.proc.wait(timeout=20) == 1
    lines = [line for line in peer.stderr_text().splitlines() if line.strip()]
    assert lines == [message], lines  # one line, no traceback
    assert "[mcp]" not in (project.root / "drygate.toml").read_text()  # a server that never ran is not recorded


def test_missing_command_over_http_is_one_line(project):
    project.policy("dry")
    proc = subprocess.run([*DRYGATE, "mcp", "--name", "fs", "--project", str(project.root), "--http", "127.0.0.1:0",
                           "--", "no-such-command-drygate"], capture_output=True, text=True, timeout=60,
                          env=clean_env({"DRYGATE_STATE": str(project.state)}))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "drygate: cannot start the MCP server 'fs' (no-such-command-drygate): command not found"]


def test_first_use_records_trust_once_with_a_comment(tmp_path):
    policy = tmp_path / "drygate.toml"
    policy.write_text('[run]\nmode = "dry"\n', encoding="utf-8")
    said = record_first_use(str(policy), ["filesystem"], today="2026-12-04")
    assert "first use of filesystem" in said and "trusted" in said and str(policy) in said
    text = policy.read_text()
    assert HEADER in text and '# drygate mcp: first use of "filesystem" on 2026-12-04: trusted' in text
    assert tomllib.loads(text)["mcp"]["trusted_servers"] == ["filesystem"]
    assert record_first_use(str(policy), ["filesystem"]) is None  # once
    said = record_first_use(str(policy), ["memory"], trusted=False, today="2026-12-05")
    assert "NOT trusted" in said
    assert tomllib.loads(policy.read_text())["mcp"]["trusted_servers"] == ["filesystem"]
    assert record_first_use(str(policy), ["memory"]) is None  # the recorded "not trusted" stands
    # the user removes filesystem: it is not added back
    policy.write_text(policy.read_text().replace('trusted_servers = ["filesystem"]', "trusted_servers = []"))
    assert record_first_use(str(policy), ["filesystem"]) is None
    assert tomllib.loads(policy.read_text())["mcp"]["trusted_servers"] == []
    assert record_first_use(str(policy), ["git"], today="2026-12-06")
    assert tomllib.loads(policy.read_text())["mcp"]["trusted_servers"] == ["git"]


def test_a_user_managed_mcp_table_is_left_alone(tmp_path):
    policy = tmp_path / "drygate.toml"
    original = '[run]\nmode = "dry"\n\n[mcp]\ntrusted_servers = ["other"]\n'
    policy.write_text(original, encoding="utf-8")
    said = record_first_use(str(policy), ["filesystem"])
    assert "not in [mcp] trusted_servers" in said and "skips their reads" in said
    assert policy.read_text() == original
    assert record_first_use(str(tmp_path / "missing.toml"), ["x"]) is None  # no policy: nothing to record


def test_relays_starting_together_record_each_server_once(tmp_path):
    """Eight processes record at once (a client that starts a relay per call): one valid file."""
    policy = tmp_path / "drygate.toml"
    policy.write_text('[run]\nmode = "dry"\n', encoding="utf-8")
    code = ("import sys; from drygate.relay.trust import record_first_use; "
            "record_first_use(sys.argv[1], [sys.argv[2]])")
    import sys

    procs = [subprocess.Popen([sys.executable, "-c", code, str(policy), f"s{i % 4}"]) for i in range(8)]
    assert [p.wait(60) for p in procs] == [0] * 8
    doc = tomllib.loads(policy.read_text())
    assert sorted(doc["mcp"]["trusted_servers"]) == ["s0", "s1", "s2", "s3"]
    assert policy.read_text().count("first use of") == 4
    assert json.dumps(doc["run"]) == '{"mode": "dry"}'


def test_install_claude_code_mcp_records_trust_and_says_so(project):
    project.policy("dry")
    (project.root / ".mcp.json").write_text(json.dumps({"mcpServers": {"fs": {"command": "node", "args": ["x.js"]}}}))
    out = project.cli("install", "claude-code", "--mcp").stdout
    assert "first use of fs" in " ".join(out.split()), out
    policy = (project.root / "drygate.toml").read_text()
    assert tomllib.loads(policy)["mcp"]["trusted_servers"] == ["fs"] and HEADER in policy
    again = project.cli("install", "claude-code", "--mcp").stdout
    assert "first use" not in again


def test_recorded_trust_is_blessed_so_a_run_in_progress_is_not_blocked(tmp_path):
    """drygate.integrity blocks a run whose policy changes behind the gate's back; the trust the relay
    records is drygate's own write (bless), so a run that fingerprinted the policy before goes on."""
    from drygate import integrity
    from drygate.config import resolve
    from drygate.relay.trust import bless_policy
    from drygate.state.sqlite import SQLiteStore

    project = tmp_path / "p"
    project.mkdir()
    policy = project / "drygate.toml"
    policy.write_text('[run]\nmode = "dry"\n', encoding="utf-8")
    state = project / ".drygate" / "state.db"
    state.parent.mkdir()
    settings = resolve({"DRYGATE_STATE": str(state)}, project_dir=str(project))
    integrity.initialize_store(str(state))
    watched = {str(policy): "f"}

    def check(run_id):
        store = SQLiteStore(str(state))
        try:
            return integrity.check(store, run_id, watched)
        finally:
            store.close()

    assert check("run") is None  # the run saw the policy
    assert record_first_use(str(policy), ["fs"], on_written=lambda: bless_policy(settings))
    assert check("run") is None  # drygate's own change: the run goes on
    assert record_first_use(str(policy), ["git"])  # the same edit, not blessed
    assert "drygate did not make that change" in check("run")
