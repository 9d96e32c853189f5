"""Alert sinks that tell a guard failure from an agent failure, rate limited across processes.

Real parts only: a local HTTP server receives the webhooks, a shell command sink writes
to files, and hundreds of fresh hook processes raise guard failures in parallel.
"""

import http.server
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import write_policy

from drygate import alerts
from drygate.errors import PolicyError
from drygate.policy.load import compile_policy_text


def test_categories_and_summaries():
    guard = alerts.make_alert("guard_failure", "store_timeout", "StoreTimeout: locked", run_id="r1",
                              tool_name="Bash", host="claude-code")
    agent = alerts.make_alert("tamper", "self-protection", "writes .claude/settings.json", run_id="r1",
                              tool_name="Write", host="claude-code")
    assert guard["category"] == "guard" and agent["category"] == "agent"
    assert guard["summary"].startswith("drygate GUARD FAILURE (store_timeout) on claude-code")
    assert "failed on Bash in run r1; it BLOCKS calls" in guard["summary"]
    assert "StoreTimeout: locked" in guard["summary"]
    assert agent["summary"].startswith("drygate AGENT BLOCKED (self-protection)")
    assert len(alerts.make_alert("guard_failure", "crash", "x" * 5000)["summary"]) == 300
    # The hook wrapper's own lines and older logs carry no category: it follows from the kind.
    assert alerts.category_of({"kind": "guard_failure", "cause": "hook_exit_127"}) == "guard"
    assert alerts.category_of({"kind": "sink_failure"}) is None


def test_claim_delivery_budget_window_and_suppressed_count(tmp_path):
    state = str(tmp_path / "alerts.jsonl.ratelimit")
    got = [alerts.claim_delivery(state, "guard_failure|store_timeout", 100.0 + i, 3, 60) for i in range(10)]
    assert got[:3] == [(True, 0, False), (True, 0, False), (True, 0, True)]
    assert got[3:] == [(False, 0, False)] * 7
    # Another key has a budget of its own.
    assert alerts.claim_delivery(state, "tamper|self-protection", 105.0, 3, 60) == (True, 0, False)
    # The first delivery of the next window reports what the last one held back, once.
    assert alerts.claim_delivery(state, "guard_failure|store_timeout", 161.0, 3, 60) == (True, 7, False)
    assert alerts.claim_delivery(state, "guard_failure|store_timeout", 162.0, 3, 60) == (True, 0, False)
    # No limit.
    assert all(alerts.claim_delivery(state, "k", 0.0, 0, 60)[0] for _ in range(20))


def test_rate_limit_settings_are_validated():
    p = compile_policy_text("[alerts]\nrate_limit = 2\nrate_window_s = 60\n")
    assert (p["alert_rate_limit"], p["alert_rate_window_s"]) == (2, 60)
    p = compile_policy_text("")
    assert (p["alert_rate_limit"], p["alert_rate_window_s"]) == (alerts.DEFAULT_RATE_LIMIT,
                                                                  alerts.DEFAULT_RATE_WINDOW_S)
    for text, message in (("rate_limit = -1", "rate_limit must be an integer from 0"),
                          ("rate_limit = 2.5", "rate_limit must be an integer"),
                          ("rate_window_s = 0", "rate_window_s must be an integer number of seconds from 1"),
                          ("rate_window_s = true", "rate_window_s"),
                          ("ratelimit = 3", "unknown key(s) in [alerts]: ratelimit")):
        with pytest.raises(PolicyError, match=re.escape(message)):
            compile_policy_text(f"[alerts]\n{text}\n")


class Webhook:
    """A real local HTTP server that records every POST (headers and JSON body)."""

    def __init__(self):
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    w = Webhook()
    yield w
    w.close()


def _alerts_section(webhook, sink, env_file, limit, window):
    command = (f'cat >> "{sink}"; echo "$DRYGATE_ALERT_CATEGORY $DRYGATE_ALERT_KIND $DRYGATE_ALERT_CAUSE '
               f'$DRYGATE_ALERT_SUPPRESSED" >> "{env_file}"')
    return (f"[alerts]\ncommand = '''{command}'''\nwebhook = \"{webhook.url}\"\n"
            f"rate_limit = {limit}\nrate_window_s = {window}\n")


def _lines(path):
    return path.read_text().splitlines() if path.exists() else []


def _wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_sinks_tell_guard_from_agent_and_an_outage_does_not_flood(project, webhook, tmp_path):
    """200 fresh hook processes fail in parallel (malformed host input: a guard failure),
    plus one tamper: the log gets all of them, each sink gets the limit of guard failures
    and the one agent alert, and after the window the next delivery reports the rest."""
    sink, env_file = tmp_path / "sink.jsonl", tmp_path / "sink.env"
    limit, flood = 4, 200
    write_policy(project.root, "live", extra=_alerts_section(webhook, sink, env_file, limit, 3600))
    project.hook(project.event("Read", {"file_path": "x"}))  # warms the policy cache the failure path reads
    tamper = project.hook(project.event("Write", {"file_path": ".claude/settings.json", "content": "{}"}))
    assert tamper.code == 2
    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(lambda i: project.hook(None, raw=b'{"not": "an event"}').code, range(flood)))
    assert codes == [2] * flood  # every call blocked
    assert _wait_for(lambda: len(webhook.received) >= limit + 1 and len(_lines(env_file)) >= limit + 1)
    time.sleep(1.0)  # nothing more may arrive
    logged = [(a["kind"], a["cause"], a["category"]) for a in project.alerts()]
    assert logged.count(("guard_failure", "input", "guard")) == flood  # the log is complete
    assert logged.count(("tamper", "self-protection", "agent")) == 1
    assert len(webhook.received) == limit + 1 and len(_lines(env_file)) == limit + 1 and len(_lines(sink)) == limit + 1
    by_category = {}
    for headers, body in webhook.received:
        assert headers["X-Drygate-Alert-Category"] == body["category"]
        assert headers["X-Drygate-Alert-Kind"] == body["kind"] and headers["X-Drygate-Alert-Cause"] == body["cause"]
        assert body["text"] == body["summary"]
        by_category.setdefault(body["category"], []).append(body)
    assert len(by_category["guard"]) == limit and len(by_category["agent"]) == 1
    assert all("GUARD FAILURE (input)" in b["summary"] for b in by_category["guard"])
    assert sum("rate limit reached" in b["summary"] for b in by_category["guard"]) == 1
    assert "AGENT BLOCKED (self-protection)" in by_category["agent"][0]["summary"]
    env_lines = sorted(_lines(env_file))
    assert env_lines.count("guard guard_failure input 0") == limit
    assert env_lines.count("agent tamper self-protection 0") == 1
    assert sorted(json.loads(line)["category"] for line in _lines(sink)) == ["agent"] + ["guard"] * limit

    # The window ends (a shorter one in the policy ends it now); the next failure is
    # delivered and says how many were held back.
    write_policy(project.root, "live", extra=_alerts_section(webhook, sink, env_file, limit, 1))
    # A new run (session): a policy edited during a run blocks the rest of that run (drygate.integrity).
    project.hook(project.event("Read", {"file_path": "x"}, session="a-new-run-after-the-policy-edit"))
    time.sleep(1.1)
    assert project.hook(None, raw=b"[]").code == 2
    assert _wait_for(lambda: len(webhook.received) == limit + 2 and len(_lines(env_file)) == limit + 2)
    _, last = webhook.received[-1]
    assert last["category"] == "guard" and last["suppressed"] == flood - limit
    assert f"[{flood - limit} more guard_failure/input alert(s) were not sent (rate limit)]" in last["summary"]
    assert _lines(env_file)[-1] == f"guard guard_failure input {flood - limit}"
    assert len([a for a in project.alerts() if a["kind"] == "guard_failure"]) == flood + 1
