"""`drygate metrics` (printed once and served over real HTTP), parsed with prometheus_client's
own parser, and the alert-log readers behind it."""

import json
import os
import re
import subprocess
import sys
import urllib.request

from conftest import SRC, write_policy
from prometheus_client.parser import text_string_to_metric_families

from drygate import _json, alerts
from drygate.health import AlertTally, parse_alert_line, recent_alerts

STICKY_R2 = '[[rules]]\ntool_glob = "mcp__r2__*"\neffect = "write"\ndry = true\n'


def samples(text):
    """{(sample name, sorted label items): value} from a text exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(parsed, name, **labels):
    return parsed.get((name, tuple(sorted(labels.items()))))


def _some_traffic(project):
    """A read, two dry writes (one makes the run dry), a tamper and a guard failure."""
    write_policy(project.root, "sticky", STICKY_R2)
    assert project.hook(project.event("Read", {"file_path": "a"})).code == 0
    assert project.hook(project.event("mcp__r2__put", {"k": 1})).code == 2
    assert project.hook(project.event("Write", {"file_path": "b", "content": "x"})).code == 2
    assert project.hook(project.event("Write", {"file_path": ".claude/settings.json", "content": "{}"})).code == 2
    assert project.hook(None, raw=b"not json").code == 2


def test_metrics_printed_once(project):
    _some_traffic(project)
    r = project.cli("metrics")
    m = samples(r.stdout)
    assert value(m, "drygate_decisions_total", effect="read", decision="allow") == 1
    assert value(m, "drygate_decisions_total", effect="write", decision="dry") == 2
    assert value(m, "drygate_decisions_total", effect="write", decision="deny") == 1  # the tamper
    assert value(m, "drygate_runs_went_dry_total") == 1
    assert value(m, "drygate_decision_latency_seconds_count", host="claude-code") == 4
    assert value(m, "drygate_decision_latency_seconds_bucket", host="claude-code", le="+Inf") == 4
    assert 0 < value(m, "drygate_decision_latency_seconds_sum", host="claude-code") < 12
    assert value(m, "drygate_guard_failures_total", cause="input") == 1
    assert value(m, "drygate_guard_failures_total", cause="store_timeout") == 0  # known causes start at 0
    assert value(m, "drygate_deadline_misses_total") == 0
    assert value(m, "drygate_tamper_total") == 1
    assert value(m, "drygate_store_up") == 1 and value(m, "drygate_policy_up") == 1
    assert value(m, "drygate_store_ping_seconds") >= 0


def test_metrics_served_over_http_follow_new_decisions_and_alerts(project):
    _some_traffic(project)
    proc = subprocess.Popen([sys.executable, "-m", "drygate.cli.entry", "metrics", "--serve", "127.0.0.1:0"],
                            env=dict(project.env(), PYTHONPATH=str(SRC)), cwd=project.root,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line).group(1))

        def scrape():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
                assert resp.headers["Content-Type"].startswith("text/plain")
                return samples(resp.read().decode())

        first = scrape()
        assert value(first, "drygate_decision_latency_seconds_count", host="claude-code") == 4
        assert value(first, "drygate_guard_failures_total", cause="input") == 1
        project.hook(project.event("mcp__r2__put", {"k": 2}))
        project.hook(None, raw=b"[]")
        project.hook(project.event("Read", {"file_path": "a"}), DRYGATE_DEADLINE_MS="1")  # misses its deadline
        second = scrape()
        assert value(second, "drygate_decisions_total", effect="write", decision="dry") == 3
        assert value(second, "drygate_decision_latency_seconds_count", host="claude-code") == 5
        assert value(second, "drygate_guard_failures_total", cause="input") == 2
        # The soft deadline raises inside the decision (cause "deadline"); on a machine so
        # loaded that the process is stuck past the grace, the hard one ends it and the hook
        # wrapper reports "hook_exit_1". Either is this one deadline miss.
        soft = value(second, "drygate_guard_failures_total", cause="deadline") or 0
        hard = value(second, "drygate_guard_failures_total", cause="hook_exit_1") or 0
        assert soft + hard == 1
        assert value(second, "drygate_deadline_misses_total") == 1
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_scrape_never_fails_when_the_store_or_the_policy_does(sqlite_project):
    project = sqlite_project
    _some_traffic(project)
    project.state.write_bytes(b"this is not a database" * 100)  # a corrupt state file
    for suffix in ("-wal", "-shm"):
        if os.path.exists(str(project.state) + suffix):
            os.unlink(str(project.state) + suffix)
    m = samples(project.cli("metrics").stdout)
    assert value(m, "drygate_store_up") == 0 and value(m, "drygate_policy_up") == 1
    assert value(m, "drygate_guard_failures_total", cause="input") == 1  # the alert log still counts
    assert value(m, "drygate_decisions_total", effect="read", decision="allow") is None  # no store, no counters
    (project.root / "drygate.toml").write_text("[run\nmode = ")
    m = samples(project.cli("metrics").stdout)
    assert value(m, "drygate_policy_up") == 0 and value(m, "drygate_store_up") == 0


def _alert_line(ts, kind="guard_failure", cause="store_timeout"):
    return (_json.dumps(alerts.make_alert(kind, cause, "reason " * 20, run_id="r", tool_name="Bash", now=ts))
            + "\n").encode()


def test_parse_alert_line_fast_path_and_fallback():
    line = _alert_line(1.5).rstrip(b"\n")
    assert parse_alert_line(line) == (1.5, "guard_failure", "store_timeout")
    wrapper = b'{"ts":1700000000,"kind":"guard_failure","cause":"hook_exit_127","reason":"x","host":"claude-code"}'
    assert parse_alert_line(wrapper) == (1700000000.0, "guard_failure", "hook_exit_127")
    spaced = json.dumps({"kind": "sink_failure", "ts": 3, "cause": None}).encode()
    assert parse_alert_line(spaced) == (3.0, "sink_failure", "None")
    escaped = json.dumps({"ts": 2, "kind": "guard_failure", "cause": 'we"ird'}, separators=(",", ":")).encode()
    assert parse_alert_line(escaped) == (2.0, "guard_failure", 'we"ird')
    assert parse_alert_line(b"garbage") is None and parse_alert_line(b"[1]") is None


def test_alert_tally_reads_only_what_was_appended(tmp_path):
    log = tmp_path / "alerts.jsonl"
    log.write_bytes(b"".join(_alert_line(i) for i in range(3000)) + b'{"ts":9,"kind":"tamper"')  # a partial line
    tally = AlertTally()
    assert tally.update(str(log)) == {("guard_failure", "store_timeout"): 3000}
    offset = tally.offset
    assert offset == log.stat().st_size - len(b'{"ts":9,"kind":"tamper"')  # stops at the last complete line
    with open(log, "ab") as f:
        f.write(b',"cause":"self-protection"}\n' + _alert_line(5, cause="deadline"))
    counts = tally.update(str(log))
    assert counts[("tamper", "self-protection")] == 1 and counts[("guard_failure", "deadline")] == 1
    # A checkpoint lets a fresh reader continue; a stale one (the log was replaced) is ignored.
    checkpoint = str(log) + ".tally"
    tally.save(checkpoint)
    fresh = AlertTally()
    assert fresh.load(checkpoint) and fresh.offset == tally.offset and fresh.update(str(log)) == counts
    log.unlink()
    log.write_bytes(_alert_line(1))
    again = AlertTally()
    assert not again.load(checkpoint) or again.update(str(log)) == {("guard_failure", "store_timeout"): 1}
    assert tally.update(str(log)) == {("guard_failure", "store_timeout"): 1}  # replaced: read from the start


def test_recent_alerts_reads_from_the_end(tmp_path):
    now = 1_000_000.0
    log = tmp_path / "alerts.jsonl"
    # 5000 alerts over ~14 hours (10 s apart), larger than one read block, then 3 tamper.
    lines = [_alert_line(now - 50_000 + i * 10, cause="deadline" if i % 2 else "store_timeout") for i in range(5000)]
    lines += [_alert_line(now - 5 + i, kind="tamper", cause="self-protection") for i in range(3)]
    log.write_bytes(b"".join(lines))
    assert log.stat().st_size > 2 * (1 << 18)
    window, last = recent_alerts(str(log), now - 3600, 4)
    assert len(window) == 360 + 3 and all(ts >= now - 3600 for ts, _, _ in window)
    assert [a["kind"] for a in last] == ["guard_failure", "tamper", "tamper", "tamper"]
    window, last = recent_alerts(str(log), now + 1, 0)
    assert window == [] and last == []
    window, _ = recent_alerts(str(log), 0, 0)
    assert len(window) == 5003
    assert recent_alerts(str(tmp_path / "missing.jsonl"), 0, 5) == ([], [])
