"""The guard-failure alert channel, separate from the journal and the agent's errors.

An alert is a dict::

    {"ts": float epoch s, "kind": "guard_failure" | "tamper", "cause": str,
     "category": "guard" | "agent", "summary": str (one line for humans),
     "reason": str, "run_id": str | None, "tool_name": str | None,
     "call_id": str | None, "host": str, "pid": int}

Two categories, so that whoever is paged knows whose failure it is:

- ``guard``: the gate itself failed (``kind`` guard_failure: store down or slow,
  bad policy, deadline, crash, malformed host input) and is BLOCKING calls until
  it is mended. The operator of the gate must act.
- ``agent``: the gate worked and stopped something the agent did (``kind``
  tamper: an attempt to change the gate). The agent, or its prompt, needs a look.

Every alert is appended as one JSON line to the alert log (``O_APPEND``, one
``write``); if that fails it goes to a fallback file in the temp folder and to
stderr, so a broken state folder cannot silence alerts. The log gets every alert.

A configured command gets the alert as JSON on stdin, plus ``DRYGATE_ALERT_CATEGORY``,
``DRYGATE_ALERT_KIND``, ``DRYGATE_ALERT_CAUSE``, ``DRYGATE_ALERT_SUMMARY`` and
``DRYGATE_ALERT_SUPPRESSED`` in its environment; a configured webhook gets it as a
JSON POST (:mod:`drygate.alert_sinks`). Both run detached so a slow sink never
delays the decision. The sinks (never the log) are rate limited per (kind, cause):
at most ``rate_limit`` deliveries per ``rate_window_s`` seconds, counted in a small
file next to the alert log (``<log>.ratelimit``) under an ``fcntl`` lock, so every
hook process and relay of a machine shares one budget. An outage of hundreds of
blocked calls therefore sends a handful of alerts; the first delivery after a
window that suppressed some carries ``"suppressed": N`` and says so in its summary.
"""

import os
import sys

# The names of the files next to the alert log live in drygate.config, which the hook loads
# anyway: self-protection needs them on every write, and this module costs 0.15 ms to import.
from drygate.config import RATE_STATE_SUFFIX, TALLY_SUFFIX, sidecar_paths  # noqa: F401 - re-exported

GUARD_FAILURE = "guard_failure"
TAMPER = "tamper"
#: Category of each kind: "guard" (the gate failed and blocks) or "agent" (the gate stopped the agent).
CATEGORIES = {GUARD_FAILURE: "guard", TAMPER: "agent"}
#: Default sink rate limit: deliveries per (kind, cause) per window; 0 means no limit.
DEFAULT_RATE_LIMIT = 5
#: Default sink rate-limit window (seconds).
DEFAULT_RATE_WINDOW_S = 300
#: Rate-limit entries idle this long (s) are forgotten, once the file is larger than _RATE_PRUNE_BYTES.
_RATE_FORGET_S = 86400
_RATE_PRUNE_BYTES = 8192
_SUMMARY_CHARS = 300


def category_of(alert_or_kind):
    """``"guard"`` or ``"agent"`` for an alert dict or a kind (str); None for other records.

    Alerts written before categories existed, and the hook wrapper's own lines,
    carry no ``category``: it follows from their kind.
    """
    if isinstance(alert_or_kind, dict):
        category = alert_or_kind.get("category")
        if category in ("guard", "agent"):
            return category
        alert_or_kind = alert_or_kind.get("kind")
    return CATEGORIES.get(alert_or_kind)


def summarize(kind, cause, reason, run_id=None, tool_name=None, host=None):
    """A one-line summary of an alert for humans (str, at most 300 characters)."""
    what = f"{tool_name} in run {run_id}" if tool_name and run_id else tool_name or (
        f"a call in run {run_id}" if run_id else "a call")
    where = f" on {host}" if host else ""
    if kind == GUARD_FAILURE:
        text = (f"drygate GUARD FAILURE ({cause}){where}: the gate itself failed on {what}; it BLOCKS calls "
                f"until this is fixed. {reason}")
    elif kind == TAMPER:
        text = f"drygate AGENT BLOCKED ({cause}){where}: the agent tried to change the gate with {what}. {reason}"
    else:
        text = f"drygate {kind} ({cause}){where}: {reason}"
    text = " ".join(text.split())
    return text if len(text) <= _SUMMARY_CHARS else text[:_SUMMARY_CHARS - 3] + "..."


def make_alert(kind, cause, reason, run_id=None, tool_name=None, call_id=None, host=None, now=None):
    """Build an alert dict (see module docstring)."""
    import time

    return {"ts": now if now is not None else time.time(), "kind": kind, "cause": cause,
            "category": category_of(kind), "summary": summarize(kind, cause, reason, run_id, tool_name, host),
            "reason": reason, "run_id": run_id, "tool_name": tool_name, "call_id": call_id, "host": host,
            "pid": os.getpid()}


def fallback_log():
    """Where alerts go when the configured log cannot be written."""
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"drygate-alerts-{os.getuid()}.jsonl")


def rate_state_path(log_path):
    """The rate-limit state file that belongs to the alert log at ``log_path`` (str)."""
    return log_path + RATE_STATE_SUFFIX


def _append(path, line):
    folder = os.path.dirname(path)
    if folder and not os.path.isdir(folder):
        os.makedirs(folder, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def emit(alert, log_path, command=None, webhook=None, rate_limit=DEFAULT_RATE_LIMIT,
         rate_window_s=DEFAULT_RATE_WINDOW_S):
    """Deliver ``alert`` (dict) to the log at ``log_path`` and the optional sinks.

    ``command``: shell command (str) or None; ``webhook``: URL or None;
    ``rate_limit``: sink deliveries per (kind, cause) per ``rate_window_s`` seconds
    (0: no limit). The log always gets the alert; the sinks only when the rate
    limit allows (see :func:`claim_delivery`). Never raises: an alert that cannot
    be written anywhere is printed on stderr. Returns the path the alert was
    written to, or None.
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
    if not command and not webhook:
        return written
    key = " ".join(f"{alert.get('kind')}|{alert.get('cause')}".split())  # one line, no tabs (the state file's format)
    deliver, suppressed, last = True, 0, False
    for state in ((written,) if written else ()) + (fallback_log(),):
        try:
            deliver, suppressed, last = claim_delivery(rate_state_path(state), key, alert.get("ts") or 0.0,
                                                       rate_limit, rate_window_s)
            break
        except OSError as e:  # no shared budget: deliver (never silence an alert for bookkeeping)
            sys.stderr.write(f"drygate: alert rate-limit state {rate_state_path(state)} failed: {e}\n")
    if not deliver:
        return written
    delivered = dict(alert, suppressed=suppressed)
    note = ""
    if suppressed:
        note += f"[{suppressed} more {alert.get('kind')}/{alert.get('cause')} alert(s) were not sent (rate limit)] "
    if last:
        note += (f"[rate limit reached: further {alert.get('kind')}/{alert.get('cause')} alerts in the next "
                 f"{int(rate_window_s)} s go to the alert log only] ")
    if note:
        delivered["summary"] = note + str(alert.get("summary", ""))
    payload = (_json.dumps(delivered) + "\n").encode("utf-8")
    if command:
        env = dict(os.environ, DRYGATE_ALERT_CATEGORY=str(delivered.get("category") or ""),
                   DRYGATE_ALERT_KIND=str(delivered.get("kind") or ""),
                   DRYGATE_ALERT_CAUSE=str(delivered.get("cause") or ""),
                   DRYGATE_ALERT_SUMMARY=str(delivered.get("summary") or ""),
                   DRYGATE_ALERT_SUPPRESSED=str(suppressed))
        _spawn_detached(["/bin/sh", "-c", command], payload, env)
    if webhook:
        _spawn_detached([sys.executable, "-m", "drygate.alert_sinks", "webhook", webhook], payload)
    return written


def claim_delivery(state_path, key, now, limit, window_s):
    """Take one sink delivery for ``key`` ("kind|cause") from the shared budget.

    The budget lives in the file ``state_path`` (text, one line per key:
    ``key<TAB>window start<TAB>delivered<TAB>suppressed<TAB>suppressed earlier``),
    read and rewritten under an exclusive ``fcntl.flock``, so concurrent processes
    never deliver more than ``limit`` per window. A window starts with the first
    alert after the previous one ended. Returns ``(deliver, suppressed_before,
    last_in_window)``: whether to deliver; how many alerts of this key were not
    delivered since the last delivery (reported once, by this delivery); whether
    this delivery used up the window. ``limit`` 0 means no limit. Raises OSError
    when the file cannot be opened or locked.
    """
    import fcntl

    folder = os.path.dirname(state_path)
    if folder and not os.path.isdir(folder):
        os.makedirs(folder, exist_ok=True)
    fd = os.open(state_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        raw = b"".join(chunks).decode("utf-8", "replace")
        others = []  # the other keys' lines, kept as they are (parsed only to forget stale ones)
        entry = None
        for line in raw.splitlines():
            name, _, rest = line.partition("\t")
            if name != key:
                others.append(line)
                continue
            parts = rest.split("\t")
            try:
                entry = [float(parts[0]), int(parts[1]), int(parts[2]), int(parts[3])]
            except (ValueError, IndexError):
                entry = None  # a damaged line only loses that key's count
        if len(raw) > _RATE_PRUNE_BYTES:
            others = [line for line in others if _worth_keeping(line, now)]
        start, delivered, suppressed, earlier = entry or (now, 0, 0, 0)
        if now >= start + window_s or now < start - window_s:  # a new window (or the clock went back)
            start, delivered, suppressed, earlier = now, 0, 0, earlier + suppressed
        if limit <= 0 or delivered < limit:
            delivered += 1
            result = (True, earlier, limit > 0 and delivered >= limit)
            earlier = 0
        else:
            suppressed += 1
            result = (False, 0, False)
        others.append(f"{key}\t{start!r}\t{delivered}\t{suppressed}\t{earlier}")
        text = "\n".join(others) + "\n"
        data = text.encode("utf-8")
        # Overwrite in place, then cut what is left over: truncating to 0 first costs
        # about 140 us on ext4 (blocks freed and allocated again), this about 4 us.
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
        return result
    finally:
        os.close(fd)  # releases the lock


def _worth_keeping(line, now):
    """False for a rate-limit line whose window ended long ago with nothing left to report."""
    parts = line.split("\t")
    try:
        return len(parts) == 5 and (now - float(parts[1]) < _RATE_FORGET_S or int(parts[3]) or int(parts[4]))
    except ValueError:
        return False


def _spawn_detached(argv, payload, env=None):
    try:
        import subprocess

        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, env=env)
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
