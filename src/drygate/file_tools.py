"""What Claude Code's own file tools (Write, Edit, MultiEdit) do to a file: pure functions.

One set of rules for every part of drygate that needs them: the hook simulates a dry
call on the run's file shadow (drygate.file_shadow), the plan shows what the run's
dry writes would make of each file (drygate.plan.diffs) and records what apply must
find, and apply performs the steps (drygate.plan.executors).

The rules are the host's, as measured with the real CLI (2.1.332 and 2.0.77, see
README "Read-your-writes for Claude Code's file tools"): Write replaces the whole file
(creating it and its folders); Edit replaces ``old_string`` exactly once unless
``replace_all``, and refuses text that is missing, ambiguous, or equal to
``new_string``; an empty ``old_string`` creates the file with ``new_string``, which
the host allows only when the file is missing or empty; MultiEdit applies its edits
in order, all or nothing. Not modelled: the host's quote normalisation (a curly quote
in the file matched by a straight one in ``old_string``) and its line-ending and
encoding detection (drygate reads and writes UTF-8 text as it is).

This module is on the hook's path: standard library built-ins only (no json, re).
"""

import os

FILE_TOOLS = ("Write", "Edit", "MultiEdit")


def file_path_of(tool_input, cwd):
    """The absolute, normalised path a file tool's input names (str), or None.

    A relative ``file_path`` (older hosts send them) is joined to ``cwd``; ``~`` is
    expanded. Symbolic links are not resolved (the path is the host's own).
    """
    path = tool_input.get("file_path") if isinstance(tool_input, dict) else None
    if not isinstance(path, str) or not path:
        return None
    return os.path.normpath(os.path.join(cwd or os.getcwd(), os.path.expanduser(path)))


def simulate_file_tool(tool, tool_input, content):
    """What a Claude Code file tool would make of a file: ``(new content, problem)``.

    ``content``: the file's text before the step, or None when it does not exist.
    Returns the text after it (None when the step cannot apply) and a problem text or
    None. Edit replaces ``old_string`` exactly once unless ``replace_all``; an empty
    ``old_string`` creates the file (only a missing or empty one); MultiEdit applies
    its edits in order; Write replaces the file.
    """
    if not isinstance(tool_input, dict):
        return None, "the input is not an object"
    if tool == "Write":
        text = tool_input.get("content")
        return (text, None) if isinstance(text, str) else (None, "Write without a text content")
    edits = tool_input.get("edits") if tool == "MultiEdit" else [tool_input]
    if not isinstance(edits, list) or not edits:
        return None, "MultiEdit without edits"
    for edit in edits:
        if not isinstance(edit, dict):
            return None, "an edit is not an object"
        old, new = edit.get("old_string"), edit.get("new_string")
        if not isinstance(old, str) or not isinstance(new, str):
            return None, "an edit needs old_string and new_string"
        if old == new:
            return None, "old_string and new_string are the same (nothing to change)"
        if not old:
            if content:
                return None, "an empty old_string creates a file, but the file already exists and is not empty"
            content = new
            continue
        if content is None:
            return None, "the file to edit does not exist"
        count = content.count(old)
        if count == 0:
            return None, "the text to replace is not in the file"
        if count > 1 and not edit.get("replace_all"):
            return None, f"the text to replace occurs {count} times (and replace_all is not set)"
        content = content.replace(old, new) if edit.get("replace_all") else content.replace(old, new, 1)
    return content, None


def describe_outcome(tool, tool_input, before, after, problem):
    """A short text of what a simulated step did, for the agent: ``"the edit would apply
    (the text occurs once)"``, ``"the edit would FAIL: ..."``, ``"the file would be
    created (12 bytes)"``. Arguments as :func:`simulate_file_tool` took and gave them."""
    what = "the write" if tool == "Write" else "the edits" if tool == "MultiEdit" else "the edit"
    if problem:
        return f"{what} would FAIL: {problem}"
    if tool == "Write":
        size = _size(after)
        if before is None:
            return f"the file would be created ({size})"
        if before == after:
            return f"the file would be rewritten with the same content ({size})"
        return f"the file would be replaced ({size}; it had {_size(before)})"
    edits = tool_input.get("edits") if tool == "MultiEdit" else [tool_input]
    if tool == "MultiEdit":
        return f"all {len(edits)} edits would apply, in order"
    old = tool_input.get("old_string")
    if not old:
        return f"the file would be created with the new text ({_size(after)})" if before is None else (
            f"the empty file would get the new text ({_size(after)})")
    if tool_input.get("replace_all"):
        n = before.count(old)
        return f"the edit would apply (replace_all: the text occurs {n} time{'' if n == 1 else 's'})"
    return "the edit would apply (the text occurs once)"


def _size(text):
    n = len(text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else 0
    return "1 byte" if n == 1 else f"{n} bytes"
