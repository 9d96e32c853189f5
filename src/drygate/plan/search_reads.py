"""Re-readers for Claude Code's Glob and Grep reads (issue 16: apply never writes over a
read it did not re-check).

Both tools run ripgrep; apply runs ``rg`` again with the arguments the tool builds from
its input (read from Claude Code 2.0.77's ``cli.js``: Glob is ``rg --files --glob PATTERN
--sort=modified --no-ignore --hidden DIR``, first 100 paths, absolute; Grep is ``rg
--hidden --glob '!.git' --glob '!.svn' --glob '!.hg' --glob '!.bzr' --max-columns 500
[-U --multiline-dotall] [-i] [-l | -c | -n [-C N | -B N -A N]] PATTERN [--type T]
[--glob G ...] PATH``, paths shown relative to the working folder) from the call's
journaled working folder, and compares what the mode yields, order ignored (Glob and
Grep's files_with_matches sort by modification time; rg's own order across files depends
on its threads):

- Glob: the set of matched paths;
- Grep ``files_with_matches``: the set of files; ``content``: the lines (with their
  ``path:line:`` prefixes); ``count``: the ``path:count`` lines.

What stays unchecked (the read is listed as not re-checked, never called fresh): no
journaled result, a cut result (Glob's ``truncated``; Grep's ``head_limit`` reached or an
``offset``, which take the first lines in an order apply cannot repeat), an input key or
value this module does not reproduce, no ``rg`` at plan time. Where this ends: Claude
Code also adds ``--glob '!PATH'`` for paths its permission settings deny reading; apply
does not know them, so such a project's results differ and apply refuses (a false stale,
never a false fresh). Claude Code's own rg build may differ from the system's in corner
cases of its glob and regex syntax; a difference refuses, it does not pass. Claude Code
2.1.332 builds the same searches for these inputs (tests/e2e/test_search_reads_e2e.py),
except that its Grep ``count`` adds ``-H`` (a refusal for a single file searched) and it
takes new inputs (``-o``, ``context``: unchecked here).
"""

import os
import shutil
import subprocess

from drygate.errors import PlanError

#: Claude Code's Glob returns at most this many paths (``truncated`` past it).
GLOB_LIMIT = 100
#: Version-control folders Claude Code's Grep leaves out.
VCS_DIRS = (".git", ".svn", ".hg", ".bzr")
GLOB_KEYS = {"pattern", "path"}
GREP_KEYS = {"pattern", "path", "glob", "type", "output_mode", "-A", "-B", "-C", "-n", "-i", "head_limit", "offset",
             "multiline"}
MODES = ("files_with_matches", "content", "count")
TIMEOUT = 120


def rg_path():
    """The ripgrep binary apply runs (str), or None when it is not installed."""
    return shutil.which("rg")


def _int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def why_not(tool, tool_input, result):
    """Why a journaled Glob or Grep read cannot be re-checked (str), or None when it can.
    ``tool``: ``"Glob"`` or ``"Grep"``; ``tool_input``: the call's input; ``result``: the
    ``tool_response`` Claude Code gave PostToolUse (None when none was journaled)."""
    if not isinstance(tool_input, dict) or not isinstance(tool_input.get("pattern"), str) or not tool_input["pattern"]:
        return "its input has no pattern"
    if not isinstance(result, dict):
        return "no result was journaled for it"
    keys = GLOB_KEYS if tool == "Glob" else GREP_KEYS
    extra = sorted(set(tool_input) - keys)
    if extra:
        return f"its option {', '.join(extra)} is not one apply re-runs exactly"
    if tool_input.get("path") is not None and not isinstance(tool_input["path"], str):
        return "its path is not a string"
    if tool == "Glob":
        if result.get("truncated") is not False or not isinstance(result.get("filenames"), list):
            return "its journaled result is cut (Glob lists at most 100 paths) or incomplete"
    else:
        mode = tool_input.get("output_mode", "files_with_matches")
        if mode not in MODES:
            return f"its output_mode {mode!r} is not one apply re-runs"
        for key in ("-A", "-B", "-C", "head_limit", "offset"):
            if tool_input.get(key) is not None and not _int(tool_input[key]):
                return f"its {key} is not a whole number"
        for key in ("-n", "-i", "multiline"):
            if tool_input.get(key) is not None and not isinstance(tool_input[key], bool):
                return f"its {key} is not true or false"
        for key in ("glob", "type"):
            if tool_input.get(key) is not None and not isinstance(tool_input[key], str):
                return f"its {key} is not a string"
        if tool_input.get("offset"):
            return "it skipped results (offset), in an order apply cannot repeat"
        shown = _grep_items(mode, result)
        if shown is None:
            return "its journaled result is incomplete"
        limit = tool_input.get("head_limit")
        if limit is not None and len(shown) >= limit:
            return "its result was cut at head_limit, in an order apply cannot repeat"
    if rg_path() is None:
        return "ripgrep (rg) is not installed, and apply re-runs the search with it"
    return None


def _grep_items(mode, result):
    """What a Grep result lists (list of str), or None when the result does not hold it."""
    if mode == "files_with_matches":
        names = result.get("filenames")
        if result.get("mode", mode) != mode or not isinstance(names, list):
            return None
        return list(names) if all(isinstance(n, str) for n in names) else None
    content = result.get("content")
    if not isinstance(content, str) or result.get("mode", mode) != mode:
        return None
    return content.split("\n") if content else []


def _resolve(path, cwd):
    return os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))


def _run(args, cwd):
    rg = rg_path()
    if rg is None:
        raise PlanError("ripgrep (rg) is not installed, and apply re-runs the search with it")
    try:
        proc = subprocess.run([rg, *args], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise PlanError(f"rg did not finish within {TIMEOUT} s") from e
    if proc.returncode not in (0, 1):
        raise PlanError(f"rg failed ({proc.returncode}): {' '.join(proc.stderr.split())[:300]}")
    return [line for line in proc.stdout.strip().split("\n") if line]


def _glob_base(pattern):
    """Claude Code's split of an absolute Glob pattern: ``(base folder or None, pattern)``."""
    if not os.path.isabs(pattern):
        return None, pattern
    first = min((i for i in (pattern.find(c) for c in "*?[{") if i >= 0), default=-1)
    if first < 0:
        return os.path.dirname(pattern) or "/", os.path.basename(pattern)
    cut = pattern[:first].rfind("/")
    if cut == -1:
        return None, pattern
    return pattern[:cut] or "/", pattern[cut + 1:]


def glob_now(tool_input, cwd):
    """The paths Claude Code's Glob would list now (set of absolute str, all of them)."""
    folder = _resolve(tool_input["path"], cwd) if tool_input.get("path") else cwd
    base, pattern = _glob_base(tool_input["pattern"])
    folder = base or folder
    if not os.path.isdir(folder):
        raise PlanError(f"the folder {folder} is gone")
    found = _run(["--files", "--glob", pattern, "--no-ignore", "--hidden", folder], folder)
    return {os.path.normpath(os.path.join(folder, f)) for f in found}


def _relative(path, cwd):
    rel = os.path.relpath(path, cwd) if os.path.isabs(path) else path
    return path if rel.startswith("..") else rel


def grep_now(tool_input, cwd):
    """What Claude Code's Grep would list now for its mode (list of str, rg's order)."""
    mode = tool_input.get("output_mode", "files_with_matches")
    target = _resolve(tool_input["path"], cwd) if tool_input.get("path") else cwd
    if not os.path.exists(target):
        raise PlanError(f"the path {target} is gone")
    args = ["--hidden"]
    for name in VCS_DIRS:
        args += ["--glob", f"!{name}"]
    args += ["--max-columns", "500"]
    if tool_input.get("multiline"):
        args += ["-U", "--multiline-dotall"]
    if tool_input.get("-i"):
        args.append("-i")
    if mode == "files_with_matches":
        args.append("-l")
    elif mode == "count":
        args.append("-c")
    if tool_input.get("-n", True) and mode == "content":
        args.append("-n")
    if tool_input.get("-C") is not None and mode == "content":
        args += ["-C", str(tool_input["-C"])]
    elif mode == "content":
        for key in ("-B", "-A"):
            if tool_input.get(key) is not None:
                args += [key, str(tool_input[key])]
    pattern = tool_input["pattern"]
    args += ["-e", pattern] if pattern.startswith("-") else [pattern]
    if tool_input.get("type"):
        args += ["--type", tool_input["type"]]
    if tool_input.get("glob"):
        globs = []
        for word in tool_input["glob"].split():
            globs += [word] if "{" in word and "}" in word else [g for g in word.split(",") if g]
        for g in globs:
            args += ["--glob", g]
    lines = _run(args + [target], cwd)
    if mode == "files_with_matches":
        return [os.path.normpath(os.path.join(cwd, line)) for line in lines]
    out = []
    for line in lines:
        cut = line.find(":") if mode == "content" else line.rfind(":")
        out.append(_relative(line[:cut], cwd) + line[cut:] if cut > 0 else line)
    return out


def _counted(items):
    counts = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def _named(before, now, what):
    """``(before, now)`` JSON views naming only the differences: ``{what: {item: count}}``."""
    keys = {k for k in set(before) | set(now) if before.get(k) != now.get(k)}
    return ({what: {k: before[k] for k in sorted(keys) if k in before}},
            {what: {k: now[k] for k in sorted(keys) if k in now}})


def _cwd(applier, read):
    cwd = read.get("cwd")
    if not (isinstance(cwd, str) and os.path.isabs(cwd)):
        raise PlanError("the read's working folder was not journaled")
    return os.path.normpath(cwd)


async def reread_glob(applier, read, journaled):
    """Re-reader of Claude Code's Glob (drygate.plan.apply.REREADERS): the set of paths
    matched now against the set the run's PostToolUse listed."""
    problem = why_not("Glob", read["input"], journaled)
    if problem:
        raise PlanError(problem)
    cwd = _cwd(applier, read)
    applier.ui.note(f"re-checking read (call {read['call']}): Glob {read['input']['pattern']}")
    before = {_resolve(f, cwd) for f in journaled["filenames"]}
    now = glob_now(read["input"], cwd)
    if before == now:
        return True, None, None
    b, n = _named(dict.fromkeys(before, "matched"), dict.fromkeys(now, "matched"), "paths")
    return False, b, n


async def reread_grep(applier, read, journaled):
    """Re-reader of Claude Code's Grep (drygate.plan.apply.REREADERS): what its output mode
    yields now (files, lines or counts) against what the run's PostToolUse listed."""
    problem = why_not("Grep", read["input"], journaled)
    if problem:
        raise PlanError(problem)
    cwd = _cwd(applier, read)
    mode = read["input"].get("output_mode", "files_with_matches")
    applier.ui.note(f"re-checking read (call {read['call']}): Grep {read['input']['pattern']}")
    shown = _grep_items(mode, journaled)
    if mode == "files_with_matches":
        shown = [_resolve(f, cwd) for f in shown]
    now = grep_now(read["input"], cwd)
    before_c, now_c = _counted(shown), _counted(now)
    if before_c == now_c:
        return True, None, None
    b, n = _named(before_c, now_c, {"files_with_matches": "files", "content": "lines", "count": "counts"}[mode])
    return False, b, n
