"""The saved plan: a single-use, reviewable artifact that apply executes exactly.

``drygate plan RUN --out plan.json`` writes it; ``drygate apply plan.json`` checks it
and runs it (drygate.plan.apply). Rules from shared/reference/dry-run-lessons.md: a
plan carries a non-empty basis and is consumed when applied (rule 1); a value the dry
run could not know is a reference token, never a guess (rules 2, 3); apply checks the
basis before the first step and each step's own preconditions (rules 4, 5);
idempotency keys are minted here, at plan time (rule 10).

The file is JSON::

    {"format": "drygate.plan/1", "content_hash": "sha256:<hex>",
     "run_id": str, "created_at": float (epoch s), "created_by": "user@host",
     "run": {"mode", "dry_since", "dry_at", "dry_cause", "counts", "simulation"},
     "steps": [step, ...],
     "basis": {"reads": [read, ...], "files": {path: "sha256:..." | None (absent)},
               "servers": {server: {"server_info": dict | None,
                                    "tools": {tool: {"fingerprint", "annotations"}}}},
               "policy_hash": str, "policy_decisions": str (the fingerprint of what the policy
               decides, [[volatile]] left out), "run_policy_hashes": [str, ...],
               "executors": {"drygate": version, "python": version}},
     "executed_writes": [...], "denied": [...], "asked": [...],   # for review, from the run
     "file_changes": [change, ...]}   # for review: drygate.plan.diffs (unified diffs of the files)

    step = {"step": int (1-based), "call": int (call number in the run), "seq": int,
            "tool_name": str, "executor": {"kind": "mcp", "server", "tool"} |
            {"kind": "file", "tool"} | {"kind": "shell"} | {"kind": "python", "function"} |
            {"kind": "unsupported", "why"},
            "input": JSON, "summary": str, "effect": str, "why": str (why it was skipped),
            "rule_id": str, "idempotency_key": str, "reads_before": [int (index into
            basis.reads)], "references": [{"token", "call", "path", "step" | None}],
            "cwd": str (the call's working folder, from the journal),
            "depends_on": [int (step)], "file": {"path", "before", "after"} | None,
            "problem": str | None (apply will stop before this step, and why: an unresolved
                    reference, no executor, or a dry write the run's shadow server or store
                    overlay answered with the server's own error, artifact.simulated_failure),
            "skip": str (optional: apply skips this step, and why: a file edit that would
                    have failed on the host too)}

    read = {"call", "seq", "call_id", "tool_name", "input", "executor", "cwd" | None, "fingerprint" | None,
            "fingerprint_of": "mcp-result" (the server's result, journaled by the relay) |
            "host-text" (the string Claude Code's hook was given) | "text" (a file's lines) |
            "python-result" (a Python tool's return value as JSON: drygate.api.gate.Gate.record_read),
            "shell-output" (a shell read's stdout, artifact.shell_output),
            "host": str, "repeatable": bool, "why": str (how apply re-checks it, or why not)}

``content_hash`` is the fingerprint of the whole file without that key, so an edited
file (a step changed, added, removed or reordered) is refused by :func:`load_plan`.
"""

import os
import re
import time

from drygate.errors import PlanError
from drygate.file_tools import simulate_file_tool  # noqa: F401 (its home is drygate.file_tools, on the hook's path)
from drygate.plan.fingerprint import (fingerprint, host_text_fingerprint, policy_decisions_fingerprint,
                                     result_fingerprint, text_fingerprint)

FORMAT = "drygate.plan/1"
#: A reference to a value a skipped call would have returned: ``drygate:ref:<call>`` (the
#: whole result) or ``drygate:ref:<call>:<field>[.<field>...]`` (a field of its structured
#: result; numbers index lists). Call numbers are the run's own.
REFERENCE = re.compile(r"drygate:ref:(\d+)(?::([A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*))?")
FILE_TOOLS = ("Write", "Edit", "MultiEdit")
#: Claude Code's search tools apply re-runs with ripgrep (drygate.plan.search_reads; their
#: re-reader kinds are the lower-case names, drygate.plan.apply.read_kind).
SEARCH_TOOLS = ("Glob", "Grep")
#: Journal result entries whose tool name starts with this hold what the relay saw of a
#: server (drygate.relay.core.CATALOG_PREFIX).
CATALOG_PREFIX = "drygate/catalog/"


#: Executor kinds that have a re-reader registered (drygate.plan.apply.register): a read of
#: such a kind (drygate.plan.artifact.executor_for) is re-checked at apply, else refused by
#: default.
REREADERS = set()


def executor_for(tool_name, host=None):
    """How apply executes a step of ``tool_name`` (dict, see module docstring); ``host``: the
    enforcement point that journaled the call (a Python API call, host ``python``, is run by
    the function the project declares for it: drygate.api.executor)."""
    if host == "python":
        return {"kind": "python", "function": tool_name}
    if tool_name.startswith("mcp__"):
        parts = tool_name.split("__")
        if len(parts) >= 3 and parts[1] and parts[2]:
            return {"kind": "mcp", "server": parts[1], "tool": "__".join(parts[2:])}
        return {"kind": "unsupported", "why": f"{tool_name!r} does not name an MCP server and tool"}
    if tool_name in FILE_TOOLS:
        return {"kind": "file", "tool": tool_name}
    if tool_name == "Bash":
        return {"kind": "shell"}
    return {"kind": "unsupported", "why": f"drygate has no executor for {tool_name!r}"}


def references_in(value):
    """Every reference token in a JSON value: list of ``(token, call, path or None)``."""
    found = []

    def walk(v):
        if isinstance(v, str):
            for m in REFERENCE.finditer(v):
                found.append((m.group(0), int(m.group(1)), m.group(2)))
        elif isinstance(v, dict):
            for k, item in v.items():
                walk(k)
                walk(item)
        elif isinstance(v, list):
            for item in v:
                walk(item)

    walk(value)
    return found


def read_text(path):
    """A file's text (UTF-8), or None when it does not exist. Raises PlanError otherwise."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise PlanError(f"cannot read {path}: {e}") from e


def _file_path(tool_input, cwd):
    path = tool_input.get("file_path") if isinstance(tool_input, dict) else None
    if not isinstance(path, str) or not path:
        return None
    return os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))


def call_cwd(context, project_dir):
    """The working folder a journaled call ran in (str): its journaled ``cwd`` when that is
    an absolute path, else ``project_dir`` (entries journaled before drygate kept it)."""
    cwd = (context or {}).get("cwd") if isinstance(context, dict) else None
    return os.path.normpath(cwd) if isinstance(cwd, str) and os.path.isabs(cwd) else project_dir


def execution_of(tool_name, tool_input, context, project_dir, host=None):
    """What apply executes for a journaled call (dict): ``{"executor", "cwd", "file_path"}``.

    Everything comes from the journal entry (tool name, input, ``context``, ``host``), never
    from a plan file: the executor from the tool's name (and host), the working folder from the context,
    and a file tool's path resolved against that folder (None for other tools).
    """
    executor = executor_for(tool_name, host)
    cwd = call_cwd(context, project_dir)
    path = _file_path(tool_input, cwd) if executor["kind"] == "file" else None
    return {"executor": executor, "cwd": cwd, "file_path": path}


def simulated_failure(journaled):
    """Why a step would fail (str), when the run's shadow server or store overlay ran the
    dry write on its copy and the server answered with its real error (a constraint, a
    version mismatch, a missing object): live, the same write on the same state fails
    the same way, so the plan marks it and apply stops before it. None otherwise.

    ``journaled``: the result the relay journaled for the dry write
    (``{"simulated": True, "served_by": "shadow" | "overlay", "error", "result"}``,
    drygate.relay.shadow and drygate.relay.overlays)."""
    if not isinstance(journaled, dict) or not journaled.get("simulated"):
        return None
    result = journaled.get("result")
    if isinstance(result, dict) and result.get("truncated"):
        return None
    if journaled.get("error"):
        text = result.get("message") if isinstance(result, dict) else None
    elif isinstance(result, dict) and result.get("isError"):
        texts = [c.get("text") for c in result.get("content") or []
                 if isinstance(c, dict) and c.get("type") == "text" and isinstance(c.get("text"), str)
                 and not c["text"].startswith(("DRY RUN - SIMULATED", "drygate DRY RUN"))]
        text = " ".join(texts)
    else:
        return None
    text = " ".join((text or "no message").split())
    text = text if len(text) <= 300 else text[:297] + "..."
    where = "shadow copy of the server's state" if journaled.get("served_by") == "shadow" else "store overlay"
    return (f"the run's {where} answered this write with the server's own error ({text}); on the same state "
            f"the real write fails the same way, so apply stops before it (make a new plan once the cause is fixed)")


def _executors():
    from drygate.plan import executors

    return executors


def shell_output(result):
    """What a shell read said, as apply compares it (dict ``{"stdout": str}``, trailing
    newlines dropped as hosts do), from a Bash result (Claude Code's ``tool_response``:
    ``{"stdout", "stderr", "interrupted", ...}``, or apply's own run); None when the
    result holds no complete output (not journaled, cut, interrupted)."""
    if not isinstance(result, dict) or not isinstance(result.get("stdout"), str) or result.get("truncated") \
            or result.get("interrupted"):
        return None
    return {"stdout": result["stdout"].rstrip("\n")}


def _read_basis(call_entry, result_of):
    """The basis record of one allowed read (dict)."""
    result = result_of.get(call_entry.get("call_id")) if call_entry.get("call_id") else None
    tool = call_entry["tool_name"]
    executor = executor_for(tool, call_entry.get("host"))
    context = call_entry.get("context") if isinstance(call_entry.get("context"), dict) else {}
    fp, kind = None, "mcp-result"
    if isinstance(result, dict) and "read_fingerprint" in result:
        fp = result.get("read_fingerprint")
    elif isinstance(result, str) and tool.startswith("mcp__"):
        fp, kind = host_text_fingerprint(result), "host-text"  # Claude Code's string of the result
    elif result is not None and tool.startswith("mcp__"):
        fp = result_fingerprint(result) if not (isinstance(result, dict) and result.get("truncated")) else None
    elif result is not None and tool == "Read":
        file = result.get("file") if isinstance(result, dict) else None
        if isinstance(file, dict) and isinstance(file.get("content"), str):
            fp = text_fingerprint(file["content"])
    if executor["kind"] == "mcp":
        repeatable, why = fp is not None, ("re-run through the server, result compared" if fp else
                                           "no result was journaled for it")
        if fp is None and isinstance(result, dict) and isinstance(result.get("why"), str):
            why = result["why"]  # e.g. served by the run's shadow after its own simulated writes
    elif tool == "Read":
        repeatable, why = fp is not None, ("the same lines re-read from the file and compared" if fp else
                                           "no result was journaled for it")
    elif executor["kind"] == "python":
        repeatable, why = fp is not None, ("re-run through the function [python] appliable declares, result "
                                           "compared" if fp else "no result was journaled for it (only reads of "
                                           "tools [python] appliable declares are)")
    elif executor["kind"] == "shell":
        output = shell_output(result)
        kind = "shell-output"
        if output is None:
            repeatable, why = False, "its complete output was not journaled (no result, cut or interrupted)"
        elif not isinstance(context.get("cwd"), str) or context.get("env") is None:
            repeatable, why = False, "journaled without its working folder and environment (an older drygate)"
        else:
            fp = fingerprint(output)
            repeatable, why = True, "re-run from its journaled folder and environment, output compared"
    elif tool in SEARCH_TOOLS and executor["kind"] == "unsupported":
        from drygate.plan.search_reads import why_not

        problem = why_not(tool, call_entry.get("tool_input"), result)
        if problem is None and not (isinstance(context.get("cwd"), str) and os.path.isabs(context["cwd"])):
            problem = "journaled without its working folder (an older drygate)"
        repeatable = problem is None
        why = problem or "re-run with ripgrep from its journaled folder, what it listed compared (order ignored)"
        fp = fingerprint(result) if repeatable else None
    elif executor["kind"] in REREADERS or executor["kind"] in getattr(_executors(), "READ_REPEATERS", {}):
        repeatable, why = result is not None, ("re-checked by its " + executor["kind"] + " re-reader"
                                               if result is not None else "no result was journaled for it")
        fp = fingerprint(result) if result is not None else None
    else:
        repeatable, why = False, f"drygate cannot repeat a {tool} call: not re-checked"
    return {"call": call_entry.get("call"), "seq": call_entry["seq"], "call_id": call_entry.get("call_id"),
            "tool_name": tool,
            "input": call_entry.get("tool_input"), "executor": executor, "fingerprint": fp,
            "cwd": context.get("cwd"),
            "fingerprint_of": kind if executor["kind"] in ("mcp", "shell") else "python-result"
            if executor["kind"] == "python" else "text", "host": call_entry.get("host"),
            "repeatable": repeatable, "why": why}


def make_plan(store, run_id, policy, project_dir, now=None, who=None):
    """The plan artifact (dict) of ``run_id``, with its content hash.

    ``policy``: the compiled current policy (its hash is recorded); ``project_dir``:
    where relative file paths of the run resolve. Reads the files the file steps
    touch, to record what apply must find. Raises PlanError for an unknown run or a
    run with nothing to apply.
    """
    from drygate.plan.build import plan_from_journal

    run = store.get_run(run_id)
    if run is None:
        raise PlanError(f"no run {run_id!r} in this state store (see `drygate runs`)")
    entries = store.journal(run_id)
    summary = plan_from_journal(run, entries)
    if not summary["steps"]:
        raise PlanError(f"run {run_id} has no skipped writes: there is nothing to plan")
    if len(summary["steps"]) < summary["counts"]["dry"]:
        raise PlanError(f"the journal of run {run_id} is incomplete: the run skipped {summary['counts']['dry']} "
                        f"writes but {len(summary['steps'])} are journaled (the journal of an idle run expires "
                        f"after [state] retention_days, and `drygate prune` drops it). A plan from it would be "
                        f"partial, so none is made")
    result_of, servers = {}, {}
    for e in entries:
        if e.get("kind") != "result":
            continue
        if (e.get("tool_name") or "").startswith(CATALOG_PREFIX) and isinstance(e.get("result"), dict):
            servers[e["tool_name"][len(CATALOG_PREFIX):]] = {"server_info": e["result"].get("server_info"),
                                                             "tools": e["result"].get("tools") or {}}
        elif e.get("call_id"):
            result_of[e["call_id"]] = e.get("result")
    reads = [_read_basis(e, result_of) for e in entries
             if e.get("kind") == "call" and e.get("action") == "allow" and e.get("effect") == "read"]
    # A read that passed the hook and then the relay is journaled by both; the relay's record
    # (the server's own result) is the one to re-check.
    relayed = {(r["tool_name"], fingerprint(r["input"])) for r in reads if r["host"] == "mcp-relay"}
    reads = [r for r in reads if not (r["host"] == "claude-code" and r["executor"]["kind"] == "mcp"
                                      and (r["tool_name"], fingerprint(r["input"])) in relayed)]
    read_seqs = [r["seq"] for r in reads]
    step_of_call = {s["call"]: s["step"] for s in summary["steps"]}
    files, simulated, originals = {}, {}, {}
    steps = []
    for s in summary["steps"]:
        execution = execution_of(s["tool_name"], s["input"], {"cwd": s.get("cwd")}, project_dir, s.get("host"))
        executor = execution["executor"]
        refs = []
        for token, call, path in references_in(s["input"]):
            refs.append({"token": token, "call": call, "path": path, "step": step_of_call.get(call)})
        step = {"step": s["step"], "call": s["call"], "seq": s["seq"], "tool_name": s["tool_name"],
                "executor": executor, "input": s["input"], "summary": s["summary"], "effect": s["effect"],
                "why": s["why"], "rule_id": s["rule_id"], "idempotency_key": os.urandom(16).hex(),
                "reads_before": [i for i, seq in enumerate(read_seqs) if seq < s["seq"]],
                "references": refs, "depends_on": sorted({r["step"] for r in refs if r["step"]}),
                "cwd": execution["cwd"], "file": None, "problem": None}
        unresolved = [r["token"] for r in refs if r["step"] is None or r["step"] >= s["step"]]
        if unresolved:
            step["problem"] = (f"uses {', '.join(unresolved)}: no earlier step of this plan produces it, so its "
                               f"value cannot be resolved")
        if executor["kind"] == "unsupported":
            step["problem"] = executor["why"]
        failed = simulated_failure(result_of.get(s.get("call_id")) if s.get("call_id") else None)
        if failed and not step["problem"]:
            step["problem"] = failed
        if executor["kind"] == "python" and s["tool_name"] not in (policy.get("python_appliable") or {}):
            step["problem"] = (f"the Python tool {s['tool_name']!r} is not declared appliable ([python] appliable "
                               f"in drygate.toml)")
        if executor["kind"] == "file":
            path = execution["file_path"]
            if path is None:
                step["problem"] = "no file_path in the input"
            else:
                if path not in simulated:
                    simulated[path] = originals[path] = read_text(path)
                    files[path] = text_fingerprint(simulated[path])
                before = simulated[path]
                after, problem = simulate_file_tool(s["tool_name"], s["input"], before)
                if problem:
                    # The host checks the same rules before its tool runs (shared/reference/
                    # claude-code.md): live, this call would have failed and changed nothing, so
                    # apply skips it rather than stopping the plan there.
                    step["skip"] = f"a live run's {s['tool_name']} would have failed here and changed nothing: {problem}"
                    after = before
                step["file"] = {"path": path, "before": text_fingerprint(before), "after": text_fingerprint(after)}
                simulated[path] = after
        steps.append(step)
    from drygate import __version__ as version
    from drygate.plan.diffs import file_changes

    import platform

    plan = {
        "format": FORMAT,
        "run_id": run_id,
        "created_at": time.time() if now is None else now,
        "created_by": who or _who(),
        "run": {"mode": summary["mode"], "dry_since": summary["dry_since"], "dry_at": summary["dry_at"],
                "dry_cause": summary["dry_cause"], "counts": summary["counts"],
                "simulation": summary["simulation"]},
        "steps": steps,
        "basis": {"reads": reads, "files": files, "servers": servers,
                  "policy_hash": policy.get("hash", ""), "policy_decisions": policy_decisions_fingerprint(policy),
                  "run_policy_hashes": summary["policy_hashes"],
                  "executors": {"drygate": version, "python": platform.python_version()}},
        "executed_writes": summary["executed_writes"], "denied": summary["denied"], "asked": summary["asked"],
        "file_changes": file_changes(steps, project_dir, originals, run_id),
    }
    plan["content_hash"] = fingerprint(plan)
    return plan


def _who():
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except Exception:
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def save_plan(plan, path):
    """Write ``plan`` to ``path`` as indented JSON (atomically: a temp file renamed)."""
    import json

    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(plan, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


_STEP_KEYS = {"step": int, "call": int, "seq": int, "tool_name": str, "executor": dict, "summary": str,
              "effect": str, "idempotency_key": str, "reads_before": list, "references": list, "depends_on": list}


def load_plan(path):
    """Read and verify a plan file; returns the plan (dict).

    Raises :class:`PlanError` with a clear message when the file cannot be read, is
    not JSON, is of another format, was edited after it was written (content hash),
    or is malformed (steps out of order, missing fields).
    """
    import json

    try:
        with open(path, encoding="utf-8") as f:
            plan = json.load(f)
    except OSError as e:
        raise PlanError(f"cannot read the plan {path}: {e.strerror or e}") from e
    except ValueError as e:
        raise PlanError(f"the plan {path} is not valid JSON ({e}); refusing it") from e
    if not isinstance(plan, dict) or plan.get("format") != FORMAT:
        found = plan.get("format") if isinstance(plan, dict) else type(plan).__name__
        raise PlanError(f"{path} is not a drygate plan of format {FORMAT} (found {found!r}); refusing it")
    claimed = plan.get("content_hash")
    actual = fingerprint({k: v for k, v in plan.items() if k != "content_hash"})
    if claimed != actual:
        raise PlanError(f"the plan {path} was changed after it was written (content hash {claimed} does not "
                        f"match its content, {actual}); refusing it. Make a new plan with `drygate plan RUN --out`")
    steps = plan.get("steps")
    if not isinstance(steps, list) or not steps or not isinstance(plan.get("run_id"), str) \
            or not isinstance(plan.get("basis"), dict):
        raise PlanError(f"the plan {path} has no run, steps or basis; refusing it")
    for i, step in enumerate(steps, 1):
        bad = [k for k, t in _STEP_KEYS.items() if not isinstance(step, dict) or not isinstance(step.get(k), t)]
        if bad or step.get("step") != i:
            raise PlanError(f"step {i} of the plan {path} is malformed ({', '.join(bad) or 'out of order'}); "
                            f"refusing it")
    return plan
