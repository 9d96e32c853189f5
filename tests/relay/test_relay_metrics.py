"""The relay's Prometheus metrics, scraped over real HTTP and parsed with prometheus_client's parser:
``GET /metrics`` next to ``/mcp`` in HTTP mode, and ``--metrics HOST:PORT`` for the stdio relay.
The server behind the relay is examples/incident/store_server.py (real, MCP SDK 2.x)."""

import json
import re
import socket
import subprocess
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.relay.conftest import clean_env, wait_for


def scrape(url):
    with urllib.request.urlopen(url, timeout=15) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(parsed, name, **labels):
    return parsed.get((name, tuple(sorted(labels.items()))))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SESSION = {}


def _post(url, message):
    """POST one message in the session the first initialize made (Mcp-Session-Id)."""
    req = urllib.request.Request(url, data=json.dumps(message).encode(), method="POST",
                                 headers={**SESSION, "Content-Type": "application/json",
                                          "Accept": "application/json, text/event-stream"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        if resp.headers.get("Mcp-Session-Id"):
            SESSION["Mcp-Session-Id"] = resp.headers["Mcp-Session-Id"]
        body = resp.read()
        return json.loads(body) if body else None


def _call(url, rid, name, arguments):
    return _post(url, {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                       "params": {"name": name, "arguments": arguments}})


#: The policy manages trust itself: the relay records nothing on first use (drygate.relay.trust),
#: so the store server's tools stay unknown (``effect="unknown"`` below).
UNTRUSTED = "[mcp]\ntrusted_servers = []\n"


def test_http_relay_serves_metrics_next_to_mcp(store_server, project):
    SESSION.clear()
    project.policy("dry", extra=UNTRUSTED)
    port = _free_port()
    argv = project.relay_argv(store_server)
    argv[argv.index("--"):argv.index("--")] = ["--http", f"127.0.0.1:{port}"]
    relay = subprocess.Popen(argv, env=clean_env(project.relay_env(store_server, run_id="metrics-http")),
                             stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        def up():
            try:
                urllib.request.urlopen(urllib.request.Request(base + "/mcp", method="DELETE"), timeout=1)
                return True
            except urllib.error.HTTPError:  # answered (400: no session named): up
                return True
            except OSError:
                return False

        assert wait_for(up, timeout=30)
        _post(base + "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                         "clientInfo": {"name": "t", "version": "0"}}})
        _post(base + "/mcp", {"jsonrpc": "2.0", "method": "notifications/initialized"})
        r = _call(base + "/mcp", 2, "put_object", {"bucket": "b", "key": "k", "body": "x"})
        assert r["result"]["isError"] and "NOT EXECUTED" in r["result"]["content"][0]["text"]
        _call(base + "/mcp", 3, "query", {"sql": "DELETE FROM files"})
        m = scrape(base + "/metrics")
        assert value(m, "drygate_decisions_total", effect="unknown", decision="dry") == 2
        assert value(m, "drygate_runs_went_dry_total") == 1  # its first dry write marks the run dry
        assert value(m, "drygate_decision_latency_seconds_count", host="mcp-relay") == 2
        assert value(m, "drygate_store_up") == 1 and value(m, "drygate_policy_up") == 1
        assert value(m, "drygate_guard_failures_total", cause="config") == 0
        # The policy breaks: the relay blocks the call, raises a guard failure, and the scrape says so.
        (project.root / "drygate.toml").write_text("[run]\nmode = 3\n")
        r = _call(base + "/mcp", 4, "query", {"sql": "SELECT 1"})
        assert r["result"]["isError"] and "guard failure" in r["result"]["content"][0]["text"]
        m = scrape(base + "/metrics")
        assert value(m, "drygate_policy_up") == 0
        assert value(m, "drygate_guard_failures_total", cause="config") == 1
        assert value(m, "drygate_decision_latency_seconds_count", host="mcp-relay") == 2  # failures are not samples
        cross = urllib.request.Request(base + "/metrics", headers={"Origin": "http://evil.example"})
        try:
            urllib.request.urlopen(cross, timeout=5)
            raise AssertionError("a foreign Origin read the metrics")
        except urllib.error.HTTPError as e:
            assert e.code == 403
    finally:
        relay.terminate()
        relay.wait(10)


def test_stdio_relay_metrics_flag(store_server, project, raw_peers):
    project.policy("dry", extra=UNTRUSTED)
    argv = project.relay_argv(store_server)
    argv[argv.index("--"):argv.index("--")] = ["--metrics", "127.0.0.1:0"]
    peer = raw_peers(argv, clean_env(project.relay_env(store_server, run_id="metrics-stdio")))
    peer.initialize()
    for i in range(3):
        r = peer.request("tools/call", {"name": "put_object", "arguments": {"bucket": "b", "key": f"k{i}", "body": "x"}})
        assert r["result"]["isError"]
    found = wait_for(lambda: re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", peer.stderr_text()))
    url = f"http://127.0.0.1:{found.group(1)}/metrics"
    # Latency reaches the store within a second (batched), then every scrape shows it.
    m = wait_for(lambda: (lambda m: m if value(m, "drygate_decision_latency_seconds_count", host="mcp-relay") == 3
                          else None)(scrape(url)), timeout=10)
    assert m, scrape(url)
    assert value(m, "drygate_decisions_total", effect="unknown", decision="dry") == 3
    assert value(m, "drygate_decision_latency_seconds_bucket", host="mcp-relay", le="+Inf") == 3
    assert value(m, "drygate_decision_latency_seconds_sum", host="mcp-relay") < 3 * 3.0
    assert not list(store_server.paths["objects"].rglob("*"))  # dry: nothing reached the server
