"""A plan's file steps as unified diffs: each real file against what the run's dry
writes would make of it.

:func:`file_changes` replays a plan's Write, Edit and MultiEdit steps in order on the
real files (drygate.file_tools' rules, the same apply uses) and gives one entry per
file, in the order the run first touched them. A step that would fail changes
nothing, as on the host, and is listed with its problem. When the run's file shadow
(drygate.file_shadow) is in this project, each entry also says whether the real file
changed since the run first wrote it and whether the run's own dry calls arrived at
the same content, so a reviewer sees when the plan differs from what the agent was told.

Entry (dict)::

    {"path": str, "steps": [int], "before": "absent" | "exists", "after": "absent" | "exists",
     "diff": str | None (unified diff text; None when not shown), "note": str | None,
     "problems": [{"step": int, "problem": str}],
     "shadow": {"real_changed_since_run": bool | None, "same_as_run": bool | None} | None}
"""

import difflib

from drygate.file_tools import FILE_TOOLS, file_path_of, simulate_file_tool


def unified(before, after, path):
    """The unified diff (str) of ``before`` against ``after`` (texts, None for absent) for
    ``path``, with ``/dev/null`` for an absent side and git's marker for a last line
    without a newline."""
    out = []
    for line in difflib.unified_diff((before or "").splitlines(keepends=True),
                                     (after or "").splitlines(keepends=True),
                                     f"a{path}" if before is not None else "/dev/null",
                                     f"b{path}" if after is not None else "/dev/null"):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def file_changes(steps, project_dir, originals=None, run_id=None):
    """One entry per file the file steps touch (list of dicts, see the module docstring).

    ``steps``: plan steps (dicts with ``step``, ``tool_name``, ``input``, optional ``cwd``) in
    order; ``project_dir``: where relative paths resolve for a step without ``cwd``; ``originals``: ``{path: text or None}``
    already read (make_plan passes the content it fingerprinted), others are read now;
    ``run_id``: compare with that run's file shadow when the project has it.
    """
    from drygate.file_shadow import NotSimulated, read_real

    originals = dict(originals or {})
    entries, current = {}, {}
    for step in steps:
        if step.get("tool_name") not in FILE_TOOLS:
            continue
        path = file_path_of(step.get("input"), step.get("cwd") or project_dir)
        if path is None:
            continue
        entry = entries.get(path)
        if entry is None:
            entry = entries[path] = {"path": path, "steps": [], "before": None, "after": None, "diff": None,
                                     "note": None, "problems": [], "shadow": None}
            try:
                if path not in originals:
                    originals[path] = read_real(path)
                current[path] = originals[path]
            except NotSimulated as e:
                entry["note"] = f"not shown: {e}"
            entry["before"] = "absent" if originals.get(path) is None and entry["note"] is None else "exists"
        entry["steps"].append(step.get("step"))
        if entry["note"]:
            continue
        after, problem = simulate_file_tool(step["tool_name"], step.get("input"), current[path])
        if problem:
            entry["problems"].append({"step": step.get("step"), "problem": problem})
        else:
            current[path] = after
    shadow = _shadow(project_dir, run_id)
    for path, entry in entries.items():
        if entry["note"]:
            continue
        entry["after"] = "absent" if current[path] is None else "exists"
        entry["diff"] = unified(originals[path], current[path], path)
        if shadow is not None:
            entry["shadow"], note = _compare(shadow, path, originals[path], current[path])
            entry["note"] = note
    return list(entries.values())


def _shadow(project_dir, run_id):
    if not run_id:
        return None
    from drygate.file_shadow import RunShadow, shadows_root

    shadow = RunShadow(shadows_root(project_dir), run_id)
    return shadow if shadow.exists() else None


def _compare(shadow, path, real, final):
    """``(shadow record, note)`` for one file: the run's shadow against the plan's replay."""
    from drygate.errors import ShadowError

    try:
        known, base = shadow.base(path)
        shadowed, version = shadow.version(path)
        unknown = shadow.unknown(path)
    except ShadowError as e:
        return None, f"the run's file shadow cannot be read ({e})"
    record = {"real_changed_since_run": (base != real) if known else None,
              "same_as_run": (version == final) if shadowed else None}
    notes = []
    if record["real_changed_since_run"]:
        notes.append("the real file changed since the dry run first wrote it: the run built on an older "
                     "version, this diff is against the file as it is now")
    if record["same_as_run"] is False:
        notes.append("the run's own dry calls left the file with other content than this plan gives")
    if unknown:
        notes.append(f"a dry write of the run could not be simulated during the run ({unknown})")
    return record, "; ".join(notes) or None
