"""Replay a recorded Claude Code session through the gate (``drygate replay``).

Every tool call of the transcript is decided by the same engine the hook uses, in
a throwaway in-memory run: nothing is executed and no state is written. The result
shows, per call, the effect, the decision and why, then the plan and a summary, so
a team can try a policy on real past sessions before enforcing it.
"""

import os

from drygate.types import ALLOW, ASK, BOOKKEEPING, DENY, READ, SKIP_DRY, WRITE_EFFECTS, ToolCall


def load_replay_policy(policy_file=None, mode=None):
    """The compiled policy for a replay: ``policy_file``, else ./drygate.toml, else the template.

    ``mode`` replaces the policy's mode (a replay may try a looser mode too).
    Raises ConfigError if the policy is invalid.
    """
    from drygate.policy.load import compile_policy_text, default_policy_text, load_policy_file

    if policy_file:
        policy = load_policy_file(policy_file)
    elif os.path.exists("drygate.toml"):
        policy = load_policy_file("drygate.toml")
    else:
        policy = compile_policy_text(default_policy_text(), source="<built-in template>")
    if mode:
        policy = dict(policy, mode=mode)
    return policy


def replay_transcript(path, policy_file=None, mode=None):
    """Replay the transcript at ``path``; returns a dict::

        {"session": path, "mode": str, "policy": source, "run_id": str, "warnings": [str],
         "calls": [{"call", "seq", "line", "tool_name", "summary", "effect", "decision",
                    "why", "agent_id", "reason", "timestamp"}],
         "plan": plan dict (drygate.plan.build), "summary": {"calls", "reads",
         "bookkeeping", "writes", "dry", "denied", "asked", "live_writes"}}

    Decisions are timestamped with the recorded calls' own times, so the plan says
    when the session would have gone dry. Raises InputError (unreadable
    transcript) or ConfigError (bad policy).
    """
    from drygate.config import Settings
    from drygate.engine import summarize_input
    from drygate.enforcement.transcript import read_transcript
    from drygate.gate import Gate
    from drygate.plan.build import plan_from_journal
    from drygate.state.memory import MemoryStore

    policy = load_replay_policy(policy_file, mode)
    recorded = read_transcript(path)
    session = next((c.session_id for c in recorded if c.session_id), None) or os.path.basename(path)
    run_id = f"replay-{session}"
    project = next((c.cwd for c in recorded if c.cwd), None) or os.getcwd()
    settings = Settings(project, os.path.join(project, "drygate.toml"), "memory:", os.devnull, None, run_id)
    store = MemoryStore()
    gate = Gate(settings, policy, store, "replay", emit_alerts=False)
    recorded_time = [None]
    gate.engine.clock = lambda: recorded_time[0] if recorded_time[0] is not None else 0.0
    warnings = []
    if policy["mode"] == "sticky" and not any(r["dry"] for r in policy["rules"]):
        warnings.append("sticky mode, but no rule has dry = true: nothing can make this run dry, so every write "
                        "is treated as live. Add dry-scope rules (see drygate.toml) or use --mode dry.")
    calls = []
    counts = {"calls": 0, "reads": 0, "bookkeeping": 0, "writes": 0, "dry": 0, "denied": 0, "asked": 0,
              "live_writes": 0}
    for rc in recorded:
        recorded_time[0] = _epoch(rc.timestamp, recorded_time[0])
        call = ToolCall(rc.tool_name, rc.tool_input, run_id, rc.call_id, rc.agent_id, rc.cwd or project, "replay")
        d = gate.decide(call)
        entry = store.journal(run_id)[-1]
        counts["calls"] += 1
        if d.effect == READ:
            counts["reads"] += 1
        elif d.effect == BOOKKEEPING:
            counts["bookkeeping"] += 1
        if d.effect in WRITE_EFFECTS:
            counts["writes"] += 1
            if d.action == ALLOW:
                counts["live_writes"] += 1
        counts["dry"] += d.action == SKIP_DRY
        counts["denied"] += d.action == DENY
        counts["asked"] += d.action == ASK
        calls.append({"call": d.call, "seq": d.seq, "line": rc.line, "timestamp": rc.timestamp, "tool_name": rc.tool_name,
                      "summary": summarize_input(rc.tool_name, rc.tool_input, 100, with_tool=False),
                      "effect": d.effect,
                      "decision": d.action, "why": entry["why"], "agent_id": rc.agent_id, "reason": d.reason})
    run = store.get_run(run_id)
    the_plan = plan_from_journal(run, store.journal(run_id)) if run else {
        "run_id": run_id, "mode": policy["mode"], "dry_since": None, "dry_at": None, "dry_cause": None,
        "steps": [], "executed_writes": [], "denied": [], "asked": [],
        "counts": {"calls": 0, "writes": 0, "dry": 0, "allowed_writes": 0, "denied": 0, "asked": 0},
        "policy_hashes": []}
    return {"session": str(path), "mode": policy["mode"], "policy": policy.get("source"), "run_id": run_id,
            "warnings": warnings, "calls": calls, "plan": the_plan, "summary": counts}


def _epoch(timestamp, previous):
    """Seconds since the epoch of a transcript timestamp (ISO 8601), else ``previous``."""
    if isinstance(timestamp, str):
        import datetime

        try:
            return datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return previous
