"""The guard-failure alert channel, separate from the journal and the agent's errors.

An alert is a dict::

    {"ts": float epoch s, "kind": "guard_failure" | "tamper", "cause": str,
     "reason": str, "run_id": str | None, "tool_name": str | None,
     "call_id": str | None, "host": str, "pid": int}

Every alert is appended as one JSON line to the alert log (``O_APPEND``, one
``write``); if that fails it goes to a fallback file in the temp folder and to
stderr, so a broken state folder cannot silence alerts. A configured command gets
the alert as JSON on stdin and a configured webhook gets it as a JSON POST; both
run detached so a slow sink never delays the decision.
"""

import os
import sys

GUARD_FAILURE = "guard_failure"
TAMPER = "tamper"


def make_alert(kind, cause, reason, run_id=None, tool_name=None, call_id=None, host=None, now=None):
    """Build an alert dict (see module docstring)."""
    import time

    return {"ts": now if now is not None else time.time(), "kind": kind, "cause": cause, "reason": reason,
            "run_id": run_id, "tool_name": tool_name, "call_id": call_id, "host": host, "pid": os.getpid()}


def fallback_log():
    """Where alerts go when the configured log cannot be written."""
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"drygate-alerts-{os.getuid()}.jsonl")


def _append(path, line):
    folder = os.path.dirname(path)
    if folder and not os.path.isdir(folder):
        os.makedirs(folder, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def emit(alert, log_path, command=None, webhook=None):
    """Deliver ``alert`` (dict) to the log at ``log_path`` and the optional sinks.

    Never raises: an alert that cannot be written anywhere is printed on stderr.
    Returns the path the alert was written to, or None.
    """
    from drygate import _json

    line = (_json.dumps(alert) + "\n").encode("utf-8")
    written = None
    for path in (log_path, fallback_log()):
        if not path:
            continue
        try:
            _append(path, line)
            written = path
            break
        except OSError as e:
            sys.stderr.write(f"drygate: cannot write alert log {path}: {e}\n")
    if written is None:
        sys.stderr.write("drygate ALERT: " + line.decode("utf-8"))
    for sink in ((["/bin/sh", "-c", command], None) if command else None,
                 ([sys.executable, "-m", "drygate.alert_sinks", "webhook", webhook], None) if webhook else None):
        if sink:
            _spawn_detached(sink[0], line)
    return written


def _spawn_detached(argv, payload):
    try:
        import subprocess

        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        proc.stdin.write(payload)
        proc.stdin.close()
    except Exception as e:  # a failing sink must not change the decision
        sys.stderr.write(f"drygate: alert sink {argv[0]} failed: {e}\n")


def read_alerts(log_path):
    """All alerts in the log at ``log_path`` (list of dicts, oldest first).

    Lines that are not valid JSON are returned as ``{"kind": "unreadable", "line": ...}``.
    """
    import json

    try:
        with open(log_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    alerts = []
    for line in lines:
        if not line.strip():
            continue
        try:
            alerts.append(json.loads(line))
        except ValueError:
            alerts.append({"kind": "unreadable", "line": line})
    return alerts
