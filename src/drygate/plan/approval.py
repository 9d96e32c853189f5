"""Approvals: a person's decision on one exact plan, bound to its content hash.

``drygate review`` (the page) and ``drygate approve`` record a decision; ``drygate apply``
asks :func:`approval_problem` before anything runs. Rules (issue 14):

- A decision names the plan's ``content_hash`` (drygate.plan.artifact), never a run: an
  approval of one plan never carries over to another plan of the same run, to a plan made
  again (new idempotency keys, so a new hash), or to a subset (its own hash).
- With ``[apply] require_approval = true`` in the policy, apply runs only a plan whose hash
  has an approval as its latest decision. Without it, a plan whose latest decision is a
  rejection is still refused (a reviewer said no).
- Each decision is kept twice: in the state store (a ledger record under
  ``approval:<content_hash>``, changed by compare-and-set, durable like a decision) and in
  the run's journal (kind ``result``, tool ``drygate/approval``), so ``drygate plan`` and the
  review page can show who decided what, when, and through which channel.

Record (dict)::

    {"decision": "approved" | "rejected", "plan_hash": str, "run_id": str,
     "who": str ("user@host"), "at": float (epoch s), "via": "review-page" | "cli" | str,
     "note": str | None, "steps": int, "subset_of": str | None (the parent plan's hash),
     "history": [{"decision", "who", "at", "via"}, ...] (earlier decisions, oldest first)}
"""

import time

from drygate.errors import PlanError

APPROVAL_TOOL = "drygate/approval"
DECISIONS = ("approved", "rejected")
_PREFIX = "approval:"


def approval_key(plan_hash):
    """The ledger key under which the decisions on ``plan_hash`` are kept (str)."""
    return _PREFIX + plan_hash


def is_approval_key(key):
    """True for a ledger key that holds approvals rather than a run's apply ledger."""
    return isinstance(key, str) and key.startswith(_PREFIX)


def approval_of(store, plan_hash):
    """The latest decision (record dict, see module docstring) on ``plan_hash``, or None."""
    _, record = store.ledger_get(approval_key(plan_hash))
    return record


def record_decision(store, plan, decision, who, via, note=None, now=None):
    """Record ``decision`` ("approved" or "rejected") on ``plan`` (a verified plan dict);
    returns the new record.

    Written by compare-and-set in the store, then journaled in the plan's run. Raises
    ``ValueError`` for an unknown decision, :class:`PlanError` when the store keeps
    changing under it, and the store's own errors (StoreTimeout, StoreUnavailable).
    """
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    now = time.time() if now is None else now
    key = approval_key(plan["content_hash"])
    for _ in range(10):
        version, old = store.ledger_get(key)
        history = list((old or {}).get("history") or [])
        if old:
            history.append({k: old.get(k) for k in ("decision", "who", "at", "via")})
        record = {"decision": decision, "plan_hash": plan["content_hash"], "run_id": plan["run_id"],
                  "who": who, "at": now, "via": via, "note": note, "steps": len(plan["steps"]),
                  "subset_of": (plan.get("subset_of") or {}).get("plan_hash"), "history": history[-20:]}
        if store.ledger_put(key, version, record):
            journaled = {k: v for k, v in record.items() if k != "history"}
            store.record_result(plan["run_id"], None, APPROVAL_TOOL, journaled, now)
            return record
    raise PlanError("the plan's approval record keeps changing under drygate; try again")


def approval_problem(store, plan, policy):
    """Why apply must not run ``plan`` for lack of an approval (str), or None.

    ``policy``: the compiled current policy (``apply_require_approval``). A plan whose
    latest decision is a rejection is refused whatever the policy says.
    """
    record = approval_of(store, plan["content_hash"])
    if record is not None and record.get("plan_hash") != plan["content_hash"]:
        return "the approval record in the state store does not name this plan's hash; refusing it"
    if record is not None and record.get("decision") == "rejected":
        return (f"this plan ({plan['content_hash']}) was rejected by {record.get('who')} "
                f"({record.get('via')}); make a new plan")
    if policy.get("apply_require_approval") and (record is None or record.get("decision") != "approved"):
        return (f"the policy requires an approval before apply ([apply] require_approval) and this plan "
                f"({plan['content_hash']}) has none: approve exactly it with `drygate review PLAN` or "
                f"`drygate approve PLAN` (an approval of another plan of the run does not carry over)")
    return None


def decisions_in(entries):
    """The approval decisions journaled in a run (list of record dicts, oldest first)."""
    return [e["result"] for e in entries
            if e.get("kind") == "result" and e.get("tool_name") == APPROVAL_TOOL and isinstance(e.get("result"), dict)]
