"""Build the plan of a run from its journal.

A plan is a dict::

    {"run_id": str, "mode": str, "dry_since": int | None, "dry_at": float | None,
     "dry_cause": {"call", "seq", "tool_name", "summary", "why"} | None,
     "steps": [step, ...],
     "executed_writes": [decided, ...], "denied": [decided, ...], "asked": [decided, ...],
     "counts": {"calls", "writes", "dry", "allowed_writes", "denied", "asked"},
     "policy_hashes": [str, ...],
     "simulation": {"shadows": [...], "overlays": [...], "read_your_writes": bool, "unproven": {name: text}}}

    step = {"step": int (1-based), "call": int (the call's number in the run),
            "seq": int (journal order), "ts": float, "tool_name": str,
            "input": any JSON, "summary": str, "effect": str, "rule_id": str,
            "why": str, "agent_id": str | None, "call_id": str | None,
            "made_run_dry": bool, "dry_because_of": int | None (call number),
            "host": str | None (the enforcement point that journaled the call),
            "cwd": str | None (the call's working folder, journaled)}

    decided = {"call", "seq", "ts", "tool_name", "summary", "effect", "why"}

Steps are the journal's ``dry`` decisions in journal order, which is the order in
which the gate decided them. ``executed_writes`` are the writes that were allowed
(they really ran), so a reviewer sees what the plan does *not* contain. ``simulation``
says which MCP servers' dry calls ran on a shadow copy of their state, the copies' sizes,
where the run fell back to plain dry results and why, and what the simulation could not
prove (drygate.overlay.shadow.simulation_summary).
"""

from drygate.engine import summarize_input
from drygate.errors import PlanError
from drygate.types import ALLOW, ASK, DENY, SKIP_DRY, WRITE_EFFECTS


def build_plan(store, run_id, on_step=None):
    """The plan of ``run_id`` in ``store`` (dict, see module docstring).

    ``on_step``: see :func:`plan_from_journal`. Raises :class:`PlanError` if the store has
    never seen the run.
    """
    run = store.get_run(run_id)
    if run is None:
        raise PlanError(f"no run {run_id!r} in this state store (see `drygate runs`)")
    return plan_from_journal(run, store.iter_journal(run_id), on_step=on_step)


def plan_from_journal(run, entries, on_step=None):
    """The plan (dict) of a run from its :class:`RunState` and journal entries (any
    iterable, read once: the result entries are kept for the simulation summary only).

    ``on_step``: a callable given each step dict in order instead of keeping it; the plan's
    ``steps`` is then an empty list. A caller that prints a plan keeps only what it prints
    (bench/plan_render.py: a whole plan of 100,000 steps took 190 MB in memory).
    """
    steps, executed, denied, asked, hashes, cause = [], [], [], [], [], None
    n_steps = 0
    call_of_seq = {}
    results = []
    for e in entries:
        if e.get("kind") != "call":
            if e.get("kind") == "result":
                results.append(e)
            continue
        call_of_seq[e["seq"]] = e.get("call")
        if e.get("policy_hash") and e["policy_hash"] not in hashes:
            hashes.append(e["policy_hash"])
        summary = summarize_input(e["tool_name"], e["tool_input"])
        brief = {"call": e.get("call"), "seq": e["seq"], "ts": e["ts"], "tool_name": e["tool_name"],
                 "summary": summary, "effect": e["effect"], "why": e["why"]}
        if run.dry_since is not None and e["seq"] == run.dry_since:
            cause = {k: brief[k] for k in ("call", "seq", "tool_name", "summary", "why")}
        if e["action"] == DENY:
            denied.append(brief)
        elif e["action"] == ASK:
            asked.append(brief)
        elif e["action"] == ALLOW and e["effect"] in WRITE_EFFECTS:
            executed.append(brief)
        if e["action"] != SKIP_DRY:
            continue
        n_steps += 1
        step = dict(brief, step=n_steps, input=e["tool_input"], rule_id=e["rule_id"],
                    agent_id=e.get("agent_id"), call_id=e.get("call_id"), host=e.get("host"),
                    made_run_dry=bool(e["made_run_dry"]), cwd=(e.get("context") or {}).get("cwd"),
                    dry_because_of=call_of_seq.get(e["dry_because_of"], e["dry_because_of"]))
        if on_step is None:
            steps.append(step)
        else:
            on_step(step)
    return {
        "run_id": run.run_id, "mode": run.mode, "dry_since": run.dry_since, "dry_at": run.dry_at,
        "dry_cause": cause, "steps": steps, "executed_writes": executed, "denied": denied, "asked": asked,
        "counts": {"calls": run.calls, "writes": run.writes, "dry": run.dry_writes,
                   "allowed_writes": run.allowed_writes, "denied": run.denied, "asked": run.asked},
        "policy_hashes": hashes,
        "simulation": _simulation(results),
    }


def _simulation(entries):
    from drygate.overlay.honesty import overlay_unproven
    from drygate.overlay.shadow import simulation_summary
    from drygate.overlay.stores import overlay_summary

    summary = simulation_summary(entries)
    summary["overlays"] = overlay_summary(entries)
    for o in summary["overlays"]:
        if o["made_at"] is not None:
            summary["read_your_writes"] = True
            for name, text in overlay_unproven(o["kind"]).items():
                if text not in summary["unproven"].get(name, ""):
                    summary["unproven"][name] = "; ".join(filter(None, (summary["unproven"].get(name), text)))
    return summary
