"""Read the tool calls of a recorded Claude Code session (its JSONL transcript).

Claude Code writes one JSON object per line (``type`` user, assistant, system,
summary, ...; format in shared/data/transcripts/README.md). Tool calls are
``{"type": "tool_use", "id", "name", "input"}`` blocks in assistant
``message.content``; records of sub-agents carry ``isSidechain`` or ``agentId``.
"""

import json

from drygate.errors import InputError


class RecordedCall:
    """One tool call from a transcript.

    ``line``: 1-based line number; ``session_id``; ``tool_name``; ``tool_input``
    (dict); ``call_id`` (the tool_use id); ``agent_id`` (sub-agent, or None);
    ``cwd``; ``timestamp`` (str or None).
    """

    __slots__ = ("line", "session_id", "tool_name", "tool_input", "call_id", "agent_id", "cwd", "timestamp")

    def __init__(self, line, session_id, tool_name, tool_input, call_id, agent_id, cwd, timestamp):
        self.line = line
        self.session_id = session_id
        self.tool_name = tool_name
        self.tool_input = tool_input
        self.call_id = call_id
        self.agent_id = agent_id
        self.cwd = cwd
        self.timestamp = timestamp


def read_transcript(path):
    """All tool calls in the transcript at ``path``, in file order (list of RecordedCall).

    Lines that are not JSON objects are skipped only if they are blank; any other
    unreadable line raises :class:`InputError` naming the line, so a replay never
    silently drops calls. Raises InputError if the file cannot be read.
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read transcript {path}: {e}") from e
    calls = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as e:
            raise InputError(f"{path}:{n}: not a JSON line ({e})") from e
        if not isinstance(record, dict) or record.get("type") != "assistant":
            continue
        message = record.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        agent = record.get("agentId") or (record.get("sessionId") + ":sidechain"
                                           if record.get("isSidechain") and record.get("sessionId") else None)
        for block in content:
            if isinstance(block, dict) and block.get("type") == "tool_use" and isinstance(block.get("name"), str):
                tool_input = block.get("input")
                calls.append(RecordedCall(n, record.get("sessionId"), block["name"],
                                          tool_input if isinstance(tool_input, dict) else {},
                                          block.get("id"), agent, record.get("cwd"), record.get("timestamp")))
    return calls
