"""Load the labelled command corpus (commands.jsonl), resolving rows kept by reference.

Rows taken from the published transcripts whose repositories carry no license
(shared/data/transcripts/02-06) are stored without their command text, as a
``tool_use_id`` into ``../shared``, which tests may read but this repository must
not redistribute; :func:`load` fills their ``command`` from there.
"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "commands.jsonl"
LABELS = ("read", "write", "side_effect_read", "external", "unknown")


def load(shared=None):
    """All rows as dicts with ``command``, ``label``, ``reason``, ``source``.

    ``shared``: the shared/ folder (default: the one beside the repository).
    Raises FileNotFoundError if a referenced transcript is missing, KeyError if a
    referenced tool call is not in it.
    """
    shared = Path(shared) if shared else HERE.parents[2] / "shared"
    rows, cache = [], {}
    for n, line in enumerate(CORPUS.read_text(encoding="utf-8").splitlines(), 1):
        row = json.loads(line)
        row["line"] = n
        if row.get("command") is None:
            file = row["source"].split(":")[1]
            if file not in cache:
                cache[file] = _tool_uses(shared / "data" / "transcripts" / file)
            row["command"] = cache[file][row["tool_use_id"]]
        rows.append(row)
    return rows


def _tool_uses(path):
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        content = (record.get("message") or {}).get("content") if isinstance(record.get("message"), dict) else None
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_use" and block.get("name") == "Bash":
                found[block["id"]] = block["input"].get("command")
    return found
