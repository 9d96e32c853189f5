"""The scripted agent every framework test drives: read, write, write again (the incident).

A framework's fake model calls :func:`next_call` with the tool results it has seen so far
and makes the call it returns. Where a write was not executed, the model does what drygate
tells it: it passes the reference token instead of inventing the etag.
"""

import json
import re

NOT_EXECUTED = "NOT EXECUTED"


def etag_of(result):
    """The etag a put returned (live), or the reference token standing for it (dry)."""
    if isinstance(result, dict):
        return result["etag"]
    text = str(result)
    if NOT_EXECUTED in text:
        return re.search(r"drygate:ref:(\d+)", text).group(0) + ":etag"
    try:
        return json.loads(text)["etag"]
    except ValueError:  # a framework that hands the model str(dict)
        import ast

        return ast.literal_eval(text)["etag"]


def next_call(results):
    """The next ``(tool name, arguments)`` after ``results`` (list), or None when done."""
    n = len(results)
    if results and any(word in str(results[-1]) for word in ("DENIED", "BLOCKED", "not approved")):
        return None  # the agent stops where drygate (or a human) refused a call
    if n == 0:
        return "query", {"sql": "SELECT key FROM files"}
    if n == 1:
        return "put_object", {"bucket": "reports", "key": "q3.txt", "body": "revenue up"}
    if n == 2:
        return "query", {"sql": f"INSERT INTO files (key, etag, size) VALUES ('q3.txt', '{etag_of(results[1])}', 10)"}
    if n == 3:
        return "put_object", {"bucket": "reports", "key": "q4.txt", "body": "revenue flat"}
    if n == 4:
        return "query", {"sql": f"INSERT INTO files (key, etag, size) VALUES ('q4.txt', '{etag_of(results[3])}', 12)"}
    return None


WRITES = (1, 2, 3, 4)  # indexes of the script's writes
