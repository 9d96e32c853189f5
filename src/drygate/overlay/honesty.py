"""What a simulated result says about itself: marked in its text and in ``_meta["drygate"]``.

A result an overlay produced is realistic (a shadow server's own answer, with its real
row counts and constraint errors), and it is still not the real system's. Every such
result carries:

- a text item, appended after the result's own content (a client that takes the first
  item, or the structured content, sees what it would see in a live run; a model reading
  the whole result sees the note), saying that the call was simulated, on what, and what
  the run must not conclude from it;
- ``_meta["drygate"]``::

      {"executed": False,            # nothing ran on the real system
       "simulated": True, "served_by": "shadow" | "overlay",
       "decision": "dry" | "allow", "run_id", "call", "seq", "effect", "rule_id",
       "reflects_run_writes": bool,  # the run's own earlier writes may show in it
       "overlay": {...},             # what simulated it (a shadow: server, paths, made_at)
       "unproven": {name: text}}     # what the simulation could not prove (UNPROVEN)

  plus, for a dry write, ``reference``/``references`` (``drygate:ref:<call>``): the values
  it returned come from a copy, and apply substitutes the real ones for the tokens.

A run whose overlay could not be made gets plain dry results, which say that there is
no read-your-writes and why (:func:`fallback_note`), and so do its reads after a skipped
write (:func:`stale_read_note`).
"""

import time

META_KEY = "drygate"

#: What no simulation on a copy can prove, by name (dry-run lessons, rule 9).
UNPROVEN = {
    "capacity": "capacity: disk space, quotas and size limits of the real system were not exercised",
    "permissions": "permissions: the call ran with drygate's access to a private copy, not through the real "
                   "system's permission checks",
    "other_writers": "other writers: what others wrote to the real state after the copy was made is not in the "
                     "simulation, and conflicts with them were not detected",
    "eventual_consistency": "eventual consistency: the simulation reads its writes back at once; readers of the "
                            "real system may see a real write later or in another order",
}


def unproven():
    """``{name: text}`` of what a simulation on a copy could not prove (a new dict)."""
    return dict(UNPROVEN)


def when(ts):
    """A time (epoch s) as ``YYYY-MM-DD HH:MM:SS`` local time, or ``"an unknown time"``."""
    if ts is None:
        return "an unknown time"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def simulated_meta(base, overlay, served_by, reflects_run_writes):
    """The ``_meta["drygate"]`` of a simulated result (dict).

    ``base``: the decision's fields (``decision``, ``run_id``, ``call``, ``seq``, ``effect``,
    ``rule_id``...); ``overlay``: a JSON-ready description of what simulated it;
    ``served_by``: ``"shadow"`` or ``"overlay"``; ``reflects_run_writes``: bool.
    """
    meta = dict(base)
    meta.update({"executed": False, "simulated": True, "served_by": served_by,
                 "reflects_run_writes": bool(reflects_run_writes), "overlay": overlay, "unproven": unproven()})
    return meta


def write_note(run_id, call, effect, what, plan_hint=True):
    """The text appended to a dry write's simulated result (str).

    ``what``: what simulated it (e.g. ``"a private copy of the memory server's state
    (/srv/memory.jsonl) made at ..."``); ``call``: the call's number in the run (for the
    reference token), or None.
    """
    ref = (f" Where a later call needs a value this one returned, pass drygate:ref:{call} (or "
           f"drygate:ref:{call}:FIELD) rather than the simulated value; `drygate apply` substitutes the real one."
           if call is not None else "")
    plan = f" It is a step of the run's plan (`drygate plan {run_id}`)." if plan_hint else ""
    return (f"DRY RUN - SIMULATED, NOT EXECUTED on the real system. drygate ran this {effect} call on {what}, "
            f"not on the real state, which did not change. The result above is the simulation's: later reads in "
            f"run {run_id} see it, other runs and the real system do not. Values it returned (ids, etags, row "
            f"counts, times) come from the copy and may differ when the plan is applied.{ref} Not proven by "
            f"this simulation: capacity, permissions, what others write to the real state, eventual "
            f"consistency. Do not report this action as done.{plan}")


def read_note(run_id, what, writes):
    """The text appended to a read served by an overlay (str). ``writes``: the run's simulated writes so far."""
    seen = (f"it includes this run's {writes} simulated write(s), which the real system does not have"
            if writes else "the run has made no simulated write yet, so it shows the real state as of the copy")
    return f"drygate DRY RUN: this read was served by {what} for run {run_id}: {seen}."


def fallback_note(reason, whole_run=True):
    """The sentence added to a plain dry result that no overlay simulated (str). ``reason``: why.

    ``whole_run``: the run has no overlay at all (else only this call was not simulated)."""
    if not whole_run:
        return (f" This write was not simulated on the run's copy either ({reason}), so later reads in this run "
                f"will not show it.")
    return (f" No read-your-writes in this run: drygate could not simulate it on a copy ({reason}), so later "
            f"reads in this run come from the real system and will not show this write.")


def stale_read_note(run_id, skipped, reason):
    """The text appended to a real read in a dry run without an overlay, after ``skipped`` skipped writes."""
    return (f"drygate DRY RUN: this read came from the real system; it does NOT show run {run_id}'s {skipped} "
            f"skipped write(s), because the run has no simulation copy ({reason}).")


def mark_result(result, note, meta):
    """A copy of a ``CallToolResult`` (dict) with ``note`` appended as a text item and ``meta``
    under ``_meta["drygate"]`` (the result's own ``_meta`` keys are kept). Anything that is
    not a dict is returned unchanged."""
    if not isinstance(result, dict):
        return result
    marked = dict(result)
    content = marked.get("content")
    content = list(content) if isinstance(content, list) else []
    content.append({"type": "text", "text": note})
    marked["content"] = content
    own = marked.get("_meta") if isinstance(marked.get("_meta"), dict) else {}
    marked["_meta"] = dict(own, **{META_KEY: meta})
    return marked


#: What a store overlay (drygate.overlay.objects, drygate.overlay.keyvalue) cannot prove, by kind.
#: Its reads of the real store are real; its writes are computed the way the store would.
OVERLAY_UNPROVEN = {
    "objects": {
        "capacity": "capacity: object size limits, quotas and storage classes of the real bucket were not exercised",
        "permissions": "permissions: the real bucket was only read (with the server's read access); its write "
                       "permissions, bucket policies and KMS keys were not exercised",
        "other_writers": "other writers: the overlay reads a key of the real bucket when the run first touches it; "
                         "what others write after that is not in the simulation, and a precondition that held here "
                         "may fail when the plan is applied",
        "eventual_consistency": "eventual consistency: the run reads its simulated writes back at once; readers "
                                "elsewhere may see a real write later (S3-compatible listings and caches can lag; R2 "
                                "and CDN readers elsewhere may see it tens of seconds late)",
        "values": "values: the ETag is the MD5 of the body, as S3 computes it for a single PUT without SSE-KMS or "
                  "SSE-C (a multipart or KMS-encrypted upload gets another); version ids and last-modified times "
                  "are not known until the write is applied",
    },
    "key-value": {
        "capacity": "capacity: memory limits, eviction and value size limits of the real store were not exercised",
        "permissions": "permissions: the real store was only read (with the server's read access); its write "
                       "permissions were not exercised",
        "other_writers": "other writers: the overlay reads a key of the real store when the run first touches it; "
                         "what others write after that is not in the simulation, and an if_version that held here "
                         "may fail when the plan is applied",
        "eventual_consistency": "eventual consistency: the run reads its simulated writes back at once; readers "
                                "elsewhere may see a real write later (replicas lag; Cloudflare KV readers in other "
                                "locations may see it about 60 s late)",
        "values": "values: versions come from the store's own counter when the write is applied; the simulated ones "
                  "are only ordered above every version the run saw",
    },
}


def overlay_unproven(kind):
    """``{name: text}`` of what a store overlay of ``kind`` (``"objects"``, ``"key-value"``) could not prove."""
    return dict(OVERLAY_UNPROVEN.get(kind) or UNPROVEN)


def overlay_read_note(run_id, what, reflects, writes, real):
    """The text appended to a read a store overlay answered (str).

    ``what``: the overlay (e.g. ``"run r's overlay of the stack server's objects"``);
    ``reflects``: the answer includes the run's own simulated writes; ``writes``: how many
    the run made in this overlay; ``real``: the real store was read for it."""
    if reflects:
        seen = (f"it includes this run's simulated writes ({writes} so far), which the real store does not have"
                + ("; the rest was read from the real store now" if real else ""))
    elif real:
        seen = "the run has not written what it read, so this is the real store's answer, read now"
    else:
        seen = "nothing of it comes from the real store"
    return f"drygate DRY RUN: this read was answered by {what} for run {run_id}: {seen}."
