"""The command line as a user meets it: init, install, run, runs, plan, alerts, replay, doctor."""

import json
import sys

import pytest

from conftest import R2_DRY_D1_LIVE, REPO, SESSION, TRANSCRIPTS, write_policy


def test_init_writes_policy_and_hooks_idempotently(tmp_path):
    from conftest import Project

    root = tmp_path / "p"
    root.mkdir()
    (root / ".claude").mkdir()
    user_hook = {"matcher": "Bash", "hooks": [{"type": "command", "command": "echo mine"}]}
    (root / ".claude" / "settings.json").write_text(json.dumps(
        {"model": "opus", "hooks": {"PreToolUse": [user_hook], "Stop": [{"hooks": []}]}}))
    p = Project.__new__(Project)
    p.root = root
    p.store_url = None
    p.cli("init")
    p.cli("init")
    p.cli("install", "claude-code")
    settings = json.loads((root / ".claude" / "settings.json").read_text())
    assert settings["model"] == "opus" and settings["hooks"]["Stop"] == [{"hooks": []}]
    pre = settings["hooks"]["PreToolUse"]
    ours = [g for g in pre if any("drygate-hook" in h["command"] for h in g["hooks"])]
    assert len(ours) == 1 and ours[0]["matcher"] == "*"
    assert user_hook in pre
    assert len(settings["hooks"]["PostToolUse"]) == 1
    text = (root / "drygate.toml").read_text()
    assert text.count("#") > 20 and 'mode = "dry"' in text  # a commented policy
    assert "kept existing policy" in p.cli("init").stdout


def test_install_refuses_to_overwrite_broken_settings(project):
    path = project.root / ".claude" / "settings.json"
    path.write_text("{ not json")
    r = project.cli("install", "claude-code", check=False)
    assert r.returncode == 1 and "not valid JSON" in r.stderr
    assert path.read_text() == "{ not json"


def test_runs_and_plan(project):
    write_policy(project.root, "sticky", R2_DRY_D1_LIVE)
    project.hook(project.event("mcp__d1__query", {"sql": "INSERT 1"}))
    project.hook(project.event("mcp__r2__put_object", {"bucket": "b", "key": "k"}))
    project.hook(project.event("mcp__d1__query", {"sql": "INSERT 2"}))
    runs = json.loads(project.cli("runs", "--json").stdout)
    assert runs[0]["run_id"] == SESSION and runs[0]["dry_since"] and runs[0]["allowed_writes"] == 1
    plan = project.plan("latest")
    assert [s["summary"] for s in plan["steps"]] == ["call mcp__r2__put_object(bucket=b, key=k)",
                                                     "call mcp__d1__query(sql=INSERT 2)"]
    table = project.cli("plan", SESSION).stdout
    assert "went dry at call" in table and "mcp__r2__put_object" in table
    assert "dry since" in project.cli("runs").stdout
    missing = project.cli("plan", "nope", check=False)
    assert missing.returncode == 1 and "no run 'nope'" in missing.stderr


def test_alerts_lists_guard_failures(project):
    write_policy(project.root, "live")
    project.hook(None, raw=b"garbage")
    items = json.loads(project.cli("alerts", "--json").stdout)
    assert items[-1]["kind"] == "guard_failure" and items[-1]["cause"] == "input"
    assert "guard_failure" in project.cli("alerts").stdout


def test_run_sets_run_id_and_mode_for_children(project):
    write_policy(project.root, "live")
    script = ("import json,os,subprocess,sys;"
              "ev={'session_id':'ignored','tool_name':'Write','tool_input':{'file_path':'x','content':''},"
              "'hook_event_name':'PreToolUse'};"
              "p=subprocess.run(['/bin/sh','-c',sys.argv[1]],input=json.dumps(ev).encode(),capture_output=True);"
              "print(os.environ['DRYGATE_RUN_ID']);sys.exit(p.returncode)")
    r = project.cli("run", "--mode", "dry", "--run-id", "my-run", "--", sys.executable, "-c", script,
                    project.command, check=False)
    assert r.returncode == 2, r.stderr  # the child's write was dry: exit status is passed through
    assert r.stdout.strip() == "my-run"
    plan = project.plan("my-run")
    assert plan["mode"] == "dry" and len(plan["steps"]) == 1


def test_doctor_healthy_then_each_problem(project):
    write_policy(project.root, "dry")
    project.cli("install", "claude-code")  # as `drygate init` does: a dry policy gets the Bash sandbox
    ok = project.cli("doctor", "--json")
    checks = {c["check"]: c["status"] for c in json.loads(ok.stdout)}
    assert set(checks.values()) == {"ok"}, checks
    assert checks["blocks when drygate is gone"] == "ok"

    local = project.root / ".claude" / "settings.local.json"
    local.write_text(json.dumps({"disableAllHooks": True}))
    bad = project.cli("doctor", "--json", check=False)
    assert bad.returncode == 1
    assert {c["check"] for c in json.loads(bad.stdout) if c["status"] == "fail"} == {"disableAllHooks"}
    local.unlink()

    settings_path = project.root / ".claude" / "settings.json"
    settings = json.loads(settings_path.read_text())
    settings["hooks"]["PreToolUse"][0]["hooks"][0]["timeout"] = 3
    settings["hooks"]["PreToolUse"][0]["matcher"] = "Bash|Write"
    settings_path.write_text(json.dumps(settings))
    failed = {c["check"] for c in json.loads(project.cli("doctor", "--json", check=False).stdout)
              if c["status"] == "fail"}
    assert failed == {"hook timeout", "hook matcher"}

    settings_path.write_text(json.dumps({}))
    failed = {c["check"] for c in json.loads(project.cli("doctor", "--json", check=False).stdout)
              if c["status"] == "fail"}
    assert failed == {"hook installed"}

    (project.root / "drygate.toml").write_text("[run]\nmode = 3\n")
    failed = {c["check"] for c in json.loads(project.cli("doctor", "--json", check=False).stdout)
              if c["status"] == "fail"}
    assert "policy" in failed


def test_doctor_reports_unwritable_state(sqlite_project):
    project = sqlite_project
    write_policy(project.root, "dry", extra='[state]\npath = "/proc/nope/state.db"\n')
    failed = {c["check"] for c in json.loads(project.cli("doctor", "--json", check=False).stdout)
              if c["status"] == "fail"}
    assert "state store" in failed


TRANSCRIPT_FILES = sorted(TRANSCRIPTS.glob("*.jsonl"))


@pytest.mark.parametrize("path", TRANSCRIPT_FILES, ids=[p.name for p in TRANSCRIPT_FILES])
def test_replay_real_transcripts(project, path):
    """Every tool call of each published session is decided; in dry mode no write would go live."""
    calls_in_file = sum(line.count('"type":"tool_use"') for line in path.read_text().splitlines()
                        if '"type":"assistant"' in line)
    r = project.cli("replay", str(path), "--mode", "dry", "--json")
    result = json.loads(r.stdout)
    assert result["summary"]["calls"] == calls_in_file == len(result["calls"])
    assert result["summary"]["live_writes"] == 0
    s = result["summary"]
    assert s["reads"] + s["bookkeeping"] + s["writes"] == s["calls"]
    assert len(result["plan"]["steps"]) == s["dry"]
    for c in result["calls"]:
        if c["tool_name"] in ("Write", "Edit", "MultiEdit"):
            assert c["decision"] in ("dry", "deny")
        if c["tool_name"] in ("Read", "Glob", "Grep"):
            assert c["decision"] == "allow"
    live = json.loads(project.cli("replay", str(path), "--mode", "live", "--json").stdout)
    assert live["summary"]["live_writes"] == live["summary"]["writes"] - live["summary"]["denied"]


def test_replay_sticky_policy_goes_dry_at_first_scoped_write(project):
    path = TRANSCRIPTS / "01-nextjs-todo-subagents.jsonl"
    policy = project.root / "p.toml"
    policy.write_text('[run]\nmode = "sticky"\n[[rules]]\ntool = "Write"\neffect = "write"\ndry = true\n')
    result = json.loads(project.cli("replay", str(path), "--policy", str(policy), "--json").stdout)
    decisions = [c for c in result["calls"] if c["effect"] in ("write", "unknown")]
    first_dry = next(i for i, c in enumerate(decisions) if c["decision"] == "dry")
    assert decisions[first_dry]["tool_name"] == "Write"
    assert all(c["decision"] == "allow" for c in decisions[:first_dry])
    assert all(c["decision"] in ("dry", "deny") for c in decisions[first_dry:])
    assert result["plan"]["dry_cause"]["tool_name"] == "Write"
    human = project.cli("replay", str(path), "--policy", str(policy)).stdout
    assert "would have gone live" in human and "Plan of run" in human


def test_replay_bundled_example_matches_readme(project):
    r = project.cli("replay", str(REPO / "examples" / "transcripts" / "01-nextjs-todo-subagents.jsonl"))
    assert r.stdout.startswith("replay of") and "87 calls" in r.stdout and "would have gone live" in r.stdout


def test_replay_rejects_broken_transcript(project, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type":"assistant"}\n{broken\n')
    r = project.cli("replay", str(bad), check=False)
    assert r.returncode == 1 and "bad.jsonl:2" in r.stderr


def test_doctor_leaves_no_runs_or_alerts(project):
    write_policy(project.root, "dry")
    checks = {c["check"]: c["status"] for c in json.loads(project.cli("doctor", "--json").stdout)}
    assert checks["hook blocks a dry write"] == "ok" and checks["hook answers"] == "ok"
    assert json.loads(project.cli("runs", "--json").stdout) == []
    assert json.loads(project.cli("alerts", "--json").stdout) == []


def test_doctor_warns_about_sticky_without_dry_scope(project):
    write_policy(project.root, "sticky")
    checks = {c["check"]: c["status"] for c in json.loads(project.cli("doctor", "--json").stdout)}
    assert checks["dry scope"] == "warn"


def test_reading_commands_create_no_state(project):
    write_policy(project.root, "dry")
    if not project.store_url:  # a project `drygate init` has not set up yet: no store file
        for f in project.state.parent.iterdir():
            f.unlink()
    assert "no runs yet" in project.cli("runs").stdout
    assert project.cli("plan", "latest", check=False).returncode == 1
    assert not project.state.exists()


def test_home_claude_folder_is_not_a_project(tmp_path):
    from drygate.config import find_project_dir

    (tmp_path / ".claude").mkdir()
    (tmp_path / "work" / "sub").mkdir(parents=True)
    assert find_project_dir(str(tmp_path / "work" / "sub"), home=str(tmp_path)) == str(tmp_path / "work" / "sub")
    (tmp_path / "work" / ".claude").mkdir()
    assert find_project_dir(str(tmp_path / "work" / "sub"), home=str(tmp_path)) == str(tmp_path / "work")


def test_run_is_never_looser(project):
    write_policy(project.root, "sticky")
    show = [sys.executable, "-c", "import os;print(os.environ['DRYGATE_MODE'])"]
    assert project.cli("run", "--mode", "live", "--", *show).stdout.strip() == "sticky"
    r = project.cli("run", "--mode", "live", "--", *show, DRYGATE_MODE="dry")
    assert r.stdout.strip() == "dry" and "asked for live" in r.stderr
    # Inside a run that went dry, a nested run is dry too.
    project.cli("run", "--mode", "dry", "--run-id", "outer", "--", "true")
    r = project.cli("run", "--mode", "live", "--run-id", "inner", "--", *show, DRYGATE_RUN_ID="outer")
    assert r.stdout.strip() == "dry"


def test_plan_shows_what_ran_and_what_was_denied(project):
    write_policy(project.root, "sticky", R2_DRY_D1_LIVE + '\n[[rules]]\ntool = "mcp__pay__charge"\n'
                                                          'effect = "external"\naction = "deny"\n')
    project.hook(project.event("mcp__d1__query", {"sql": "INSERT 1"}))
    project.hook(project.event("mcp__pay__charge", {"amount": 5}))
    project.hook(project.event("mcp__r2__put_object", {"key": "k"}))
    plan = project.plan()
    assert [(w["call"], w["tool_name"]) for w in plan["executed_writes"]] == [(1, "mcp__d1__query")]
    assert [(w["call"], w["tool_name"]) for w in plan["denied"]] == [(2, "mcp__pay__charge")]
    assert plan["dry_cause"]["call"] == 3 and plan["steps"][0]["call"] == 3
    text = project.cli("plan", SESSION).stdout
    assert "writes that ran (live): call 1 mcp__d1__query" in text and "denied: call 2" in text


def test_agent_text_is_never_rich_markup(project):
    write_policy(project.root, "dry")
    project.hook(project.event("Bash", {"command": "echo '[bold red]x[/bold red]' > f"}))
    text = project.cli("plan", SESSION, COLUMNS="300").stdout
    assert "echo '[bold red]x[/bold red]' > f" in text


def test_replay_uses_recorded_times_and_warns(project, tmp_path):
    import datetime

    path = TRANSCRIPTS / "01-nextjs-todo-subagents.jsonl"
    policy = tmp_path / "sticky.toml"
    policy.write_text('[run]\nmode = "sticky"\n')
    r = project.cli("replay", str(path), "--policy", str(policy))
    assert "no rule has dry = true" in r.stderr
    result = json.loads(project.cli("replay", str(path), "--mode", "dry", "--json").stdout)
    first_dry = next(c for c in result["calls"] if c["decision"] == "dry")
    recorded = datetime.datetime.fromisoformat(first_dry["timestamp"].replace("Z", "+00:00")).timestamp()
    assert result["plan"]["steps"][0]["ts"] == recorded


def test_replay_recorded_incident_with_its_policy(project):
    """The incident session our e2e tests recorded with the real CLI, without the gate,
    replayed under the example policy: both writes become the plan, none goes live."""
    example = REPO / "examples" / "incident"
    result = json.loads(project.cli("replay", str(example / "incident-session-ungated.jsonl"), "--policy",
                                    str(example / "drygate.toml"), "--json").stdout)
    assert [s["tool_name"] for s in result["plan"]["steps"]] == ["mcp__store__put_object", "mcp__store__query"]
    assert result["plan"]["steps"][1]["dry_because_of"] == result["plan"]["steps"][0]["call"]
    assert result["summary"]["live_writes"] == 0


def test_a_unique_prefix_names_a_run_everywhere(project):
    """As git takes an abbreviated commit id: `drygate runs` shows the shortest unique prefix
    (at least 8 characters, whole at any width), and plan takes it; an ambiguous prefix is refused."""
    write_policy(project.root, "dry")
    first, second = "5f3a9c21-aaaa-4e0e-9a57-000000000001", "5f3a9c21-bbbb-4e0e-9a57-000000000002"
    for session in (first, second):
        project.hook(project.event("mcp__d1__query", {"sql": f"INSERT '{session}'"}, session=session))
    table = project.cli("runs", COLUMNS="80").stdout
    assert "5f3a9c21-a" in table and "5f3a9c21-b" in table  # long enough to tell them apart, not folded
    assert "5f3a9c21-aaaa-4e0e" not in table
    assert first in project.cli("runs", "--full", COLUMNS="200").stdout
    plan = json.loads(project.cli("plan", "5f3a9c21-b", "--json").stdout)
    assert plan["run_id"] == second
    ambiguous = project.cli("plan", "5f3a9c21", check=False)
    assert ambiguous.returncode == 1 and "ambiguous" in ambiguous.stderr and first in ambiguous.stderr
    assert "Traceback" not in ambiguous.stderr


def test_replay_leads_with_summary_and_plan(project):
    """One transcript's replay fits a screen: the summary first, then the plan; the per-call
    table only with --calls."""
    path = REPO / "examples" / "transcripts" / "01-nextjs-todo-subagents.jsonl"
    short = project.cli("replay", str(path), "--mode", "dry", COLUMNS="120").stdout
    assert short.lstrip().startswith("replay of 01-nextjs-todo-subagents.jsonl")
    assert "--calls" in short and "calls of 01-nextjs" not in short
    full = project.cli("replay", str(path), "--mode", "dry", "--calls", COLUMNS="120").stdout
    assert "calls of 01-nextjs" in full
    assert len(short.splitlines()) < len(full.splitlines()) / 2


def test_listing_columns_stay_one_line_and_plain():
    """The plain column renderer behind `drygate runs`: control characters are shown escaped,
    markup is not interpreted, and a table wider than the terminal cuts its widest column."""
    from drygate.cli.columns import render

    lines = render(["run", "n"], [["a\nb[bold]x[/bold]", 3], ["long-" * 10, 12]], right=(1,), width=20)
    assert len(lines) == 3 and all(len(line) <= 20 for line in lines)
    assert lines[1].startswith("a\\nb[bold]") and lines[2].rstrip().endswith("12")
    assert "…" in lines[2]
    assert render(["x"], [["y"]]) == ["x", "y"]


def test_plan_table_is_one_line_per_step(project):
    """Every step of a plan is one line of the terminal table, however long its input
    (a plan may hold 100,000 steps; --json keeps the inputs whole)."""
    write_policy(project.root, "dry")
    for i in range(3):
        project.hook(project.event("mcp__d1__query", {"sql": f"INSERT INTO t VALUES ({i}, '{'x' * 400}')"}))
    table = project.cli("plan", SESSION, COLUMNS="100").stdout.splitlines()
    rows = [line for line in table if "mcp__d1__query" in line]
    assert len(rows) == 3 and all(len(line) <= 100 for line in rows)
    assert [line.split()[0] for line in rows] == ["1", "2", "3"]
    whole = project.plan()["steps"][2]["input"]["sql"]
    assert whole.endswith("x" * 40 + "')")


def test_plan_table_and_json_stream_the_same_plan(project):
    """The terminal table is printed from one line per step (the steps are not kept) and
    --json is written in pieces: the table still lists every step once in order, the count
    line and the file diffs are right, and --json is exactly the text json.dumps gives."""
    from drygate.plan.build import build_plan

    write_policy(project.root, "dry")
    project.hook(project.event("Write", {"file_path": str(project.root / "a.txt"), "content": "new text\n"}))
    for i in range(1, 4):
        project.hook(project.event("mcp__d1__query", {"sql": f"INSERT {i}"}))
    table = project.cli("plan", SESSION, COLUMNS="120").stdout
    rows = [line for line in table.splitlines() if "mcp__d1__query" in line or " Write " in line]
    assert [line.split()[0] for line in rows] == ["1", "2", "3", "4"]
    assert "4 skipped write(s)" in table and "+new text" in table
    printed = project.cli("plan", SESSION, "--json").stdout
    store = project.open_store()
    try:
        the_plan = build_plan(store, SESSION)
    finally:
        store.close()
    parsed = json.loads(printed)
    assert parsed["steps"] == json.loads(json.dumps(the_plan["steps"]))
    assert printed == json.dumps(parsed, indent=2) + "\n"


def test_plain_columns_stream_blocks_of_lines():
    """echo_table writes a table of more than 1,000 rows in blocks: every row once, in order."""
    import io

    from rich.console import Console

    from drygate.cli.columns import echo_table

    buffer = io.StringIO()
    echo_table(Console(file=buffer, width=40), ["n", "text"], ([i, f"row {i}"] for i in range(2500)),
               right=(0,), caption="end")
    lines = buffer.getvalue().splitlines()
    assert lines[0].split() == ["n", "text"] and lines[-1] == "end"
    assert [int(line.split()[0]) for line in lines[1:-1]] == list(range(2500))


def test_doctor_lists_servers_whose_reads_a_dry_run_skips(project):
    """Issue 12 item 2: a server whose annotations are not trusted and whose read tools no rule
    names has every call skipped in a dry run; doctor names it and the fix."""
    write_policy(project.root, "dry", rules='[[rules]]\ntool_glob = "mcp__db__*"\neffect = "read"\n',
                 extra='[mcp]\ntrusted_servers = ["fs"]\n')
    relayed = {"command": sys.executable, "args": ["-m", "drygate.cli.entry", "mcp", "--name", "x", "--", "srv"]}
    (project.root / ".mcp.json").write_text(json.dumps({"mcpServers": {"fs": relayed, "db": relayed,
                                                                      "memory": relayed}}))
    checks = {c["check"]: c for c in json.loads(project.cli("doctor", "--json", check=False).stdout)}
    assert checks["mcp reads"]["status"] == "warn"
    assert "memory" in checks["mcp reads"]["detail"] and "fs" not in checks["mcp reads"]["detail"].split(" will")[0]
    assert "db" not in checks["mcp reads"]["detail"].split(" will")[0]
    write_policy(project.root, "dry", extra='[mcp]\ntrusted_servers = ["fs", "db", "memory"]\n')
    checks = {c["check"]: c for c in json.loads(project.cli("doctor", "--json", check=False).stdout)}
    assert checks["mcp reads"]["status"] == "ok"


def test_run_makes_a_store_the_hook_accepts(tmp_path):
    """`drygate run` in a project with a policy but no store yet makes the store as `drygate
    state init` does (marked, recorded), so the hooks it starts decide instead of refusing an
    unmarked store."""
    import shlex

    from conftest import SRC, Project

    root = tmp_path / "fresh"
    root.mkdir()
    p = Project.__new__(Project)
    p.root = root
    p.store_url = None
    write_policy(root, "dry")
    hook = f"PYTHONPATH={shlex.quote(str(SRC))} {shlex.quote(sys.executable)} -m drygate.cli.entry hook claude-code"
    script = ("import json,subprocess,sys;"
              "ev={'session_id':'x','tool_name':'Read','tool_input':{'file_path':'f'},'hook_event_name':'PreToolUse',"
              "'cwd':sys.argv[2]};"
              "p=subprocess.run(['/bin/sh','-c',sys.argv[1]],input=json.dumps(ev).encode(),capture_output=True);"
              "sys.stderr.write(p.stderr.decode());sys.exit(p.returncode)")
    assert not (root / ".drygate" / "state.db").exists()
    r = p.cli("run", "--mode", "dry", "--", sys.executable, "-c", script, hook, str(root), check=False)
    assert r.returncode == 0, r.stderr
