"""A reviewer's subset of a plan: some steps left out, a new plan with its own hash.

:func:`subset_plan` makes it; apply accepts it when its steps are, in order, a subset of
the skipped writes its run journaled (:func:`steps_match_journal`), so a subset can only
leave steps out, never add, change or reorder one. A subset is refused when a kept step
depends on a step left out:

- it uses a reference token (``drygate:ref:<call>``) that a dropped step produces, so apply
  could never resolve its value;
- it is a file step (Write, Edit, MultiEdit) on a file a dropped earlier step also changes:
  its edit was simulated on the content the dropped step left, so it would apply to
  another text than the one reviewed;
- it came after a Read of a file that a dropped earlier step wrote: the shadow
  (drygate.file_shadow) answered that read with the dropped step's simulated content, so
  what the agent did next may rest on it. The reads come from the plan's basis (their
  call numbers), not from a journal of which step served a read: the rule is by call order
  (any read of that file after the dropped write), which can refuse more than needed.

The subset's ``subset_of`` names its parent (``plan_hash``) and the parent's step numbers
it ``kept`` and ``dropped``; steps are renumbered 1..n (``depends_on`` and references
follow); the basis is the parent's (reads, files, catalogs: what the run saw does not
change by leaving a step out); ``file_changes`` are made again for the files whose steps
changed, from the files as the parent plan saw them.
"""

import time

from drygate.errors import PlanError
from drygate.plan.fingerprint import fingerprint, text_fingerprint


def parse_steps(text, total):
    """Step numbers from text such as ``"3, 7-9"`` (set of int, each 1..``total``).
    Raises PlanError naming the bad part."""
    found = set()
    for part in (text or "").replace(" ", ",").split(","):
        if not part:
            continue
        first, sep, last = part.partition("-")
        try:
            lo, hi = int(first), int(last) if sep else int(first)
        except ValueError:
            raise PlanError(f"{part!r} is not a step number or a range such as 7-9") from None
        if not 1 <= lo <= hi <= total:
            raise PlanError(f"steps {part} are not steps of this plan (1-{total})")
        found.update(range(lo, hi + 1))
    return found


def subset_plan(plan, drop, project_dir=None, who=None, now=None):
    """A new plan (dict, with its own content hash) of ``plan``'s steps without ``drop``.

    ``plan``: a verified plan (drygate.plan.artifact.load_plan); ``drop``: step numbers of
    ``plan`` to leave out (iterable of int); ``project_dir``: where the files of file steps
    are, to show their diffs again. Raises PlanError when nothing or everything would be
    dropped, when a step number is not in the plan, or when a kept step depends on a
    dropped one (see the module docstring).
    """
    from drygate.file_tools import file_path_of

    steps = plan["steps"]
    drop = set(drop)
    unknown = sorted(d for d in drop if not 1 <= d <= len(steps))
    if unknown:
        raise PlanError(f"step(s) {', '.join(map(str, unknown))} are not in this plan (1-{len(steps)})")
    if not drop:
        raise PlanError("no step left out: the plan itself is what you would approve")
    if len(drop) == len(steps):
        raise PlanError("every step would be left out: there is nothing to apply (reject the plan instead)")
    step_of_call = {s["call"]: s["step"] for s in steps}
    problems, file_touched = [], {}
    for s in steps:
        path = file_path_of(s.get("input"), project_dir or "/") if s["executor"]["kind"] == "file" else None
        if s["step"] in drop:
            if path:
                file_touched.setdefault(path, s["step"])
            continue
        for ref in s.get("references") or []:
            source = ref.get("step") or step_of_call.get(ref.get("call"))
            if source in drop:
                problems.append(f"step {s['step']} uses {ref['token']}, which step {source} produces")
        if path and path in file_touched:
            problems.append(f"step {s['step']} changes {path} after step {file_touched[path]}, whose edit it was "
                            f"simulated on")
    problems += _reads_of_dropped_writes(plan, drop, project_dir)
    if problems:
        raise PlanError("cannot leave those steps out: " + "; ".join(problems)
                        + " (leave the dependent steps out too, or reject the plan)")
    kept = [s for s in steps if s["step"] not in drop]
    renumber = {s["step"]: i for i, s in enumerate(kept, 1)}
    new_steps = []
    for s in kept:
        refs = [dict(r, step=renumber.get(r.get("step"))) for r in s.get("references") or []]
        new_steps.append(dict(s, step=renumber[s["step"]], references=refs,
                              depends_on=sorted({renumber[d] for d in s.get("depends_on") or [] if d in renumber})))
    new = {k: v for k, v in plan.items() if k not in ("content_hash", "steps", "file_changes", "subset_of")}
    new["created_at"] = time.time() if now is None else now
    if who:
        new["created_by"] = who
    new["steps"] = new_steps
    new["subset_of"] = {"plan_hash": plan["content_hash"], "kept": [s["step"] for s in kept],
                        "dropped": sorted(drop)}
    new["file_changes"] = _file_changes(plan, kept, renumber, project_dir)
    new["content_hash"] = fingerprint(new)
    return new


#: The host's file tools that read a file (their ``file_path``): after a dry write of that
#: file in the run, drygate.file_shadow answers them with the run's simulated version.
_FILE_READERS = ("Read", "NotebookRead")


def _reads_of_dropped_writes(plan, drop, project_dir):
    """Problems (list of str): a kept step made after the run read a file whose simulated
    content came from a dropped step. Once a dry Write/Edit of a file ran, every later Read
    of that file in the run is answered from the run's shadow (read-your-writes), so what
    the agent did after that read may rest on content the subset no longer writes. The
    reads are the plan's basis reads (every read of the run, with its call number)."""
    from drygate.file_tools import file_path_of

    base = project_dir or "/"
    dropped_writes = {}  # path -> the first dropped step's (call, step) that wrote it
    for s in plan["steps"]:
        if s["step"] in drop and s["executor"]["kind"] == "file":
            path = file_path_of(s.get("input"), base)
            if path and path not in dropped_writes:
                dropped_writes[path] = (s["call"], s["step"])
    if not dropped_writes:
        return []
    problems = []
    for r in ((plan.get("basis") or {}).get("reads") or []):
        if r.get("tool_name") not in _FILE_READERS or not isinstance(r.get("input"), dict):
            continue
        path = file_path_of(r["input"], r.get("cwd") or base)
        source = dropped_writes.get(path)
        if source is None or not isinstance(r.get("call"), int) or r["call"] < source[0]:
            continue
        later = [s["step"] for s in plan["steps"] if s["step"] not in drop and s["call"] > r["call"]]
        if later:
            problems.append(f"step(s) {', '.join(map(str, later))} came after call {r['call']} read {path}, "
                            f"whose content there was step {source[1]}'s simulated write")
    return problems


def _file_changes(plan, kept, renumber, project_dir):
    """The parent's file changes, made again for files that lost a step."""
    changed = []
    kept_numbers = set(renumber)
    for entry in plan.get("file_changes") or []:
        steps = [n for n in entry.get("steps") or [] if n in kept_numbers]
        if not steps:
            continue
        if len(steps) == len(entry.get("steps") or []):
            changed.append(dict(entry, steps=[renumber[n] for n in steps],
                                problems=[dict(p, step=renumber.get(p.get("step"))) for p in entry.get("problems") or []]))
            continue
        changed.append(_redo(plan, entry, [s for s in kept if s["step"] in steps], renumber, project_dir))
    return changed


def _redo(plan, entry, steps, renumber, project_dir):
    """One file's change from the kept steps, on the file as the parent plan saw it."""
    from drygate.plan.artifact import read_text
    from drygate.plan.diffs import file_changes

    path = entry["path"]
    expected = (plan.get("basis") or {}).get("files", {}).get(path)
    try:
        text = read_text(path)
    except PlanError as e:
        text, expected = None, "unreadable"
        note = str(e)
    else:
        note = None
    if expected is not None and text_fingerprint(text) != expected:
        return {"path": path, "steps": [renumber[s["step"]] for s in steps], "before": entry.get("before"),
                "after": None, "diff": None, "problems": [],
                "note": note or "not shown: the file changed since the plan was made (apply will refuse it as stale)",
                "shadow": None}
    renumbered = [dict(s, step=renumber[s["step"]]) for s in steps]
    redone = file_changes(renumbered, project_dir or "/", {path: text})
    return redone[0] if redone else dict(entry, steps=[renumber[s["step"]] for s in steps])


def steps_match_journal(plan, journaled):
    """True when ``plan``'s steps are exactly ``journaled`` (the run's skipped writes as the
    store journaled them, drygate.plan.build), or, for a subset plan (``subset_of``), a
    subsequence of them: the same seq, call number, tool and input, in the same order."""
    mine = [(s["seq"], s["call"], s["tool_name"], fingerprint(s["input"])) for s in plan["steps"]]
    theirs = [(s["seq"], s["call"], s["tool_name"], fingerprint(s["input"])) for s in journaled]
    if not plan.get("subset_of"):
        return mine == theirs
    it = iter(theirs)
    return bool(mine) and all(any(step == other for other in it) for step in mine)
