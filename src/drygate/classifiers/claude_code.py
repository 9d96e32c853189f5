"""Built-in effects of Claude Code's own tools (a data table, not code).

Sources: the tool list of Claude Code 2.0/2.1 (code.claude.com/docs, "Tools
available to Claude") and the tools seen in the transcripts under
shared/data/transcripts. A tool not listed here is not classified by this module.
"""

from drygate.types import BOOKKEEPING, READ, WRITE, Classification

#: tool name -> (effect, reason)
TOOL_EFFECTS = {
    # Reads of files and the web: they change nothing.
    "Read": (READ, "reads a file"),
    "Glob": (READ, "lists files by pattern"),
    "Grep": (READ, "searches file contents"),
    "LS": (READ, "lists a directory"),
    "NotebookRead": (READ, "reads a notebook"),
    "WebSearch": (READ, "searches the web"),
    "WebFetch": (READ, "fetches a web page (HTTP GET)"),
    "BashOutput": (READ, "reads the output of a background shell"),
    "TaskOutput": (READ, "reads the output of a background task"),
    "Monitor": (READ, "watches the output of a background task"),
    "ListMcpResourcesTool": (READ, "lists MCP resources"),
    "ReadMcpResourceTool": (READ, "reads an MCP resource"),
    # Writes to files.
    "Write": (WRITE, "writes a file"),
    "Edit": (WRITE, "edits a file"),
    "MultiEdit": (WRITE, "edits a file"),
    "NotebookEdit": (WRITE, "edits a notebook"),
    # The agent's own bookkeeping: it changes nothing outside the session, so dry
    # runs do not stall on it. Sub-agent calls (Task/Agent) are gated one by one.
    "TodoWrite": (BOOKKEEPING, "updates the agent's own to-do list"),
    "TodoRead": (BOOKKEEPING, "reads the agent's own to-do list"),
    "ToolSearch": (BOOKKEEPING, "looks up the agent's deferred tools"),
    "TaskCreate": (BOOKKEEPING, "adds to the agent's own task list"),
    "TaskUpdate": (BOOKKEEPING, "updates the agent's own task list"),
    "TaskList": (BOOKKEEPING, "reads the agent's own task list"),
    "TaskGet": (BOOKKEEPING, "reads the agent's own task list"),
    "Task": (BOOKKEEPING, "starts a sub-agent (its own tool calls are gated one by one)"),
    "Agent": (BOOKKEEPING, "starts a sub-agent (its own tool calls are gated one by one)"),
    "ExitPlanMode": (BOOKKEEPING, "leaves plan mode"),
    "EnterPlanMode": (BOOKKEEPING, "enters plan mode"),
    "AskUserQuestion": (BOOKKEEPING, "asks the user a question"),
    "SlashCommand": (BOOKKEEPING, "expands a slash command into the prompt"),
    "Skill": (BOOKKEEPING, "loads a skill's instructions"),
    "KillBash": (BOOKKEEPING, "stops a background shell the agent started"),
    "KillShell": (BOOKKEEPING, "stops a background shell the agent started"),
    "TaskStop": (BOOKKEEPING, "stops a background task the agent started"),
}

#: Input fields that name the file a built-in file tool writes.
FILE_PATH_FIELDS = {"Write": "file_path", "Edit": "file_path", "MultiEdit": "file_path",
                    "NotebookEdit": "notebook_path"}


def classify(call, policy=None):
    """Classify a Claude Code built-in tool call; None if the tool is not built in.

    ``call``: :class:`drygate.types.ToolCall`; ``policy``: the compiled policy
    (its command table and URL rules reach the shell classifier). ``Bash`` is
    delegated to :mod:`drygate.classifiers.shell`.
    """
    if call.tool_name == "Bash":
        command = call.tool_input.get("command") if isinstance(call.tool_input, dict) else None
        return _bash(command, policy)
    entry = TOOL_EFFECTS.get(call.tool_name)
    if entry is None:
        return None
    effect, reason = entry
    return Classification(effect, reason, f"builtin:{call.tool_name}")


def _bash(command, policy):
    """The shell classifier's Classification of ``command``, through the verdict cache
    (drygate.classifiers.command_cache) when the policy carries a store (``_verdict_store``,
    put there by drygate.gate.Gate). A miss's verdict is kept at once, or appended to the
    policy's ``_verdicts_later`` list when there is one (the hook process writes those
    after its answer, drygate.enforcement.claude_code.record_latency)."""
    store = policy.get("_verdict_store") if policy else None
    key = None
    if store is not None and isinstance(command, str) and command.strip():
        from drygate.classifiers import command_cache

        key = command_cache.key_for(command, policy)
        hit = command_cache.lookup(store, key) if key else None
        if hit is not None:
            effect, steps = hit
            return Classification(effect, " -> ".join(steps) or effect, "shell")
    from drygate.classifiers import shell

    verdict = shell.classify_command_verdict(command, policy)
    if key is not None and not any(step.startswith(shell.PARSER_FAILED) for step in verdict.steps):
        later = policy.get("_verdicts_later")
        if isinstance(later, list):
            later.append((key, verdict.effect, verdict.steps))
        else:
            command_cache.keep(store, key, verdict.effect, verdict.steps)
    return Classification(verdict.effect, " -> ".join(verdict.steps) or verdict.effect, "shell")
