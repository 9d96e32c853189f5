"""`drygate status`: one verdict on the gate's own health, and an exit status a health check can use."""

import json
import time

import pytest
from conftest import write_policy

from drygate import _json, alerts
from drygate.health import describe_location

STICKY_R2 = '[[rules]]\ntool_glob = "mcp__r2__*"\neffect = "write"\ndry = true\n'


def status(project, *args, **env):
    # A temp folder of its own: the fallback alert log there is shared by every project of a user.
    tmp = project.root.parent / "tmp"
    tmp.mkdir(exist_ok=True)
    r = project.cli("status", "--json", *args, check=False, **dict({"TMPDIR": str(tmp)}, **env))
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout)


def _write_alerts(project, *alerts_):
    project.alert_log.parent.mkdir(parents=True, exist_ok=True)
    with open(project.alert_log, "ab") as f:
        for a in alerts_:
            f.write((_json.dumps(a) + "\n").encode())


def test_healthy_project(project):
    write_policy(project.root, "sticky", STICKY_R2)
    project.hook(project.event("Read", {"file_path": "a"}))
    project.hook(project.event("mcp__r2__put", {"k": 1}))
    project.hook(project.event("mcp__r2__put", {"k": 2}, session="other-run"))
    project.hook(project.event("Write", {"file_path": ".claude/settings.json", "content": "{}"}))  # agent, not gate
    code, s = status(project)
    assert code == 0 and s["verdict"] == "OK", s["reasons"]
    assert s["policy"]["loads"] and s["policy"]["mode"] == "sticky"
    assert s["store"]["reachable"] and s["store"]["latency_ms"] < 1000
    assert s["store"]["kind"] == ("sqlite" if project.store_url is None else "redis")
    assert s["decisions"] == {"read": {"allow": 1}, "write": {"dry": 2, "deny": 1}}
    assert s["runs_went_dry"] == 2
    assert s["runs"] == {"total": 2, "dry": 2, "active_last_hour": 2, "active_dry": 2}
    assert s["latency"]["claude-code"]["count"] == 4
    assert s["guard_failures"] == {"last_5m": 0, "last_hour": {}, "last_day": {}}
    assert s["agent_alerts"]["last_hour"] == {"self-protection": 1}
    assert [a["category"] for a in s["last_alerts"]] == ["agent"]
    text = project.cli("status").stdout
    assert "drygate: OK" in text and "answers a ping" in text and "self-protection" in text


def test_corrupt_policy_is_failing(project):
    write_policy(project.root, "dry")
    project.hook(project.event("Read", {"file_path": "a"}))
    (project.root / "drygate.toml").write_text("[run]\nmode = \"wet\"\n")
    blocked = project.hook(project.event("Read", {"file_path": "a"}))
    assert blocked.code == 2
    code, s = status(project)
    assert code == 1 and s["verdict"] == "FAILING"
    assert not s["policy"]["loads"] and "mode must be one of" in s["policy"]["error"]
    assert s["reasons"][0].startswith("the policy does not load, so every call is blocked")
    assert any("1 guard failure(s) in the last 5 minutes" in r and "config x1" in r for r in s["reasons"])
    assert s["guard_failures"]["last_hour"] == {"config": 1}
    r = project.cli("status", check=False)
    assert r.returncode == 1 and "FAILING" in r.stdout and "DOES NOT LOAD" in r.stdout


def test_store_that_cannot_be_opened_is_failing(sqlite_project):
    project = sqlite_project
    write_policy(project.root, "dry")
    project.state.parent.mkdir(parents=True, exist_ok=True)
    project.state.write_bytes(b"not a database at all " * 200)
    code, s = status(project)
    assert code == 1 and s["verdict"] == "FAILING"
    assert not s["store"]["reachable"] and "not a database" in s["store"]["error"]
    assert any(r.startswith("the state store (sqlite) does not answer") for r in s["reasons"])
    assert "DOES NOT ANSWER" in project.cli("status", check=False).stdout


def test_guard_failures_decide_the_verdict_by_age(sqlite_project):
    project = sqlite_project
    write_policy(project.root, "dry")
    now = time.time()
    _write_alerts(project, alerts.make_alert("guard_failure", "store_timeout", "locked", now=now - 7200))
    code, s = status(project)
    assert code == 0 and s["verdict"] == "OK" and s["guard_failures"]["last_day"] == {"store_timeout": 1}
    _write_alerts(project, alerts.make_alert("guard_failure", "store_timeout", "locked", now=now - 1800),
                  alerts.make_alert("guard_failure", "deadline", "slow", now=now - 1700))
    code, s = status(project)
    assert code == 0 and s["verdict"] == "DEGRADED"
    assert s["reasons"] == ["2 guard failure(s) in the last hour (store_timeout x1, deadline x1), none in the last "
                            "5 minutes"]
    assert s["deadline_misses_last_day"] == 1
    assert status(project, "--strict")[0] == 1  # a health check may treat DEGRADED as unhealthy
    # Wrapper lines (no category) count as guard failures; tamper never changes the verdict.
    project.alert_log.open("ab").write(
        b'{"ts":%d,"kind":"guard_failure","cause":"hook_exit_1","reason":"drygate hook exited 1","host":"claude-code"}\n'
        % int(now - 10))
    _write_alerts(project, alerts.make_alert("tamper", "self-protection", "x", now=now - 5))
    code, s = status(project, "--alerts", "2")
    assert code == 1 and s["verdict"] == "FAILING" and s["guard_failures"]["last_5m"] == 1
    assert s["deadline_misses_last_day"] == 2  # the hard deadline's exit 1
    assert [(a["kind"], a["cause"]) for a in s["last_alerts"]] == [("guard_failure", "hook_exit_1"),
                                                                   ("tamper", "self-protection")]


def test_status_of_a_fresh_project_creates_nothing(tmp_path):
    """A project whose store `drygate init` never made: every hook call is blocked (the hook
    never creates a store), so status says FAILING and how to fix it, and creates nothing."""
    from conftest import Project

    project = Project.__new__(Project)  # the hooks installed, no `drygate init`
    project.root, project.store_url = tmp_path / "fresh", None
    project.root.mkdir()
    write_policy(project.root, "dry")
    code, s = status(project)
    assert code == 1 and s["verdict"] == "FAILING"
    assert s["store"]["exists"] is False and s["store"]["reachable"] is False
    assert "drygate init" in s["store"]["error"]
    assert not project.state.exists() and not project.state.parent.exists()


def test_unwritable_alert_log_is_degraded(sqlite_project, tmp_path):
    project = sqlite_project
    write_policy(project.root, "dry")
    # A file where the log's folder should be (permissions would not stop root).
    code, s = status(project, DRYGATE_ALERT_LOG=str(project.root / "drygate.toml" / "alerts.jsonl"))
    assert code == 0 and s["verdict"] == "DEGRADED"
    assert "cannot be written" in s["reasons"][0]


@pytest.mark.parametrize("url, shown", [
    ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
    ("rediss://drygate:s3cret@cache:6380/1", "rediss://drygate:***@cache:6380/1"),
    ("redis://cache:6379/0?password=s3cret&db=2", "redis://cache:6379/0?password=***&db=2"),
    ("unix:///run/redis.sock", "unix:///run/redis.sock"),
])
def test_store_location_never_shows_a_password(url, shown):
    kind, text = describe_location(url)
    assert text == shown and "s3cret" not in text and kind == url.split("://")[0]
