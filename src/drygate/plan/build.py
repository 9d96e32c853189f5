"""Build the plan of a run from its journal.

A plan is a dict::

    {"run_id": str, "mode": str, "dry_since": int | None, "dry_at": float | None,
     "dry_cause": {"seq", "tool_name", "summary", "why"} | None,
     "steps": [step, ...], "counts": {"calls", "writes", "dry", "allowed_writes", "denied"},
     "policy_hashes": [str, ...]}

    step = {"step": int (1-based), "seq": int, "ts": float, "tool_name": str,
            "input": any JSON, "summary": str, "effect": str, "rule_id": str,
            "why": str, "agent_id": str | None, "call_id": str | None,
            "made_run_dry": bool, "dry_because_of": int | None}

Steps are the journal's ``dry`` decisions in journal order, which is the order in
which the gate decided them.
"""

from drygate.engine import summarize_input
from drygate.errors import PlanError
from drygate.types import SKIP_DRY


def build_plan(store, run_id):
    """The plan of ``run_id`` in ``store`` (dict, see module docstring).

    Raises :class:`PlanError` if the store has never seen the run.
    """
    run = store.get_run(run_id)
    if run is None:
        raise PlanError(f"no run {run_id!r} in this state store (see `drygate runs`)")
    return plan_from_journal(run, store.journal(run_id))


def plan_from_journal(run, entries):
    """The plan (dict) of a run from its :class:`RunState` and journal entries."""
    steps, hashes, cause = [], [], None
    for e in entries:
        if e.get("kind") != "call":
            continue
        if e.get("policy_hash") and e["policy_hash"] not in hashes:
            hashes.append(e["policy_hash"])
        if run.dry_since is not None and e["seq"] == run.dry_since:
            cause = {"seq": e["seq"], "tool_name": e["tool_name"],
                     "summary": summarize_input(e["tool_name"], e["tool_input"]), "why": e["why"]}
        if e["action"] != SKIP_DRY:
            continue
        steps.append({
            "step": len(steps) + 1, "seq": e["seq"], "ts": e["ts"], "tool_name": e["tool_name"],
            "input": e["tool_input"], "summary": summarize_input(e["tool_name"], e["tool_input"]),
            "effect": e["effect"], "rule_id": e["rule_id"], "why": e["why"], "agent_id": e.get("agent_id"),
            "call_id": e.get("call_id"), "made_run_dry": bool(e["made_run_dry"]),
            "dry_because_of": e["dry_because_of"],
        })
    return {
        "run_id": run.run_id, "mode": run.mode, "dry_since": run.dry_since, "dry_at": run.dry_at,
        "dry_cause": cause, "steps": steps,
        "counts": {"calls": run.calls, "writes": run.writes, "dry": run.dry_writes,
                   "allowed_writes": run.allowed_writes, "denied": run.denied},
        "policy_hashes": hashes,
    }
