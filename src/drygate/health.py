"""Guard health: is the gate itself able to decide? (separate from how the agents behave)

Reads three sources and never raises for what it finds in them:

- the policy (does it load? a policy that does not blocks every call);
- the state store (does it answer a ping, how fast, its guard-health counters from
  :mod:`drygate.counters`, its runs);
- the alert log (guard failures by cause, tamper alerts), read cheaply however big it
  grows: :class:`AlertTally` remembers how far it read and reads only what was
  appended since; :func:`recent_alerts` reads backwards from the end and stops at the
  first line older than it needs.

:func:`gate_status` turns these into one verdict for ``drygate status``;
:mod:`drygate.metrics` exposes the same sources to Prometheus.

Verdicts:

- ``FAILING``: the gate blocks calls now: the policy does not load, the store does not
  answer, or guard failures happened in the last ``RECENT_S`` seconds;
- ``DEGRADED``: it decides now, but guard failures happened in the last hour, the
  store answers slower than half the gate's deadline, or alerts went to the fallback
  log (the alert channel itself is failing);
- ``OK`` otherwise. Tamper alerts are the agent's doing and never change the verdict.
"""

import os

OK, DEGRADED, FAILING = "OK", "DEGRADED", "FAILING"
#: Guard failures this recent (s) mean calls are being blocked now.
RECENT_S = 300
HOUR_S = 3600
DAY_S = 86400
#: Guard-failure causes (drygate.errors); the installed hook wrapper adds ``hook_exit_<status>``.
GUARD_CAUSES = ("store_unavailable", "store_timeout", "config", "input", "deadline", "crash")
#: Causes that are deadline misses: the soft deadline (DeadlineExceeded) and the hard one
#: (faulthandler ends the hook with status 1, which the wrapper logs as hook_exit_1; a
#: Python that cannot import drygate at all also exits 1 and is counted here too).
DEADLINE_CAUSES = ("deadline", "hook_exit_1")
_BLOCK = 1 << 18


def parse_alert_line(line):
    """``(ts, kind, cause)`` of one alert-log line (bytes, without the newline), or None.

    Lines drygate writes (and the hook wrapper's) start ``{"ts":<n>,"kind":"..","cause":".."``
    and are read without a JSON parse (about 1 us a line); anything else is parsed
    as JSON. ``ts`` is a float or None; a line that is not a JSON object gives None.
    """
    if line.startswith(b'{"ts":'):
        i = line.find(b',"kind":"', 6)
        j = line.find(b'"', i + 9) if i > 0 else -1
        if j > 0 and line.startswith(b',"cause":"', j + 1):
            k = line.find(b'"', j + 11)
            kind, cause = line[i + 9:j], line[j + 11:k]
            if k > 0 and b"\\" not in kind and b"\\" not in cause:
                try:
                    return float(line[6:i]), kind.decode("utf-8", "replace"), cause.decode("utf-8", "replace")
                except ValueError:
                    pass
    import json

    try:
        alert = json.loads(line)
    except ValueError:
        return None
    if not isinstance(alert, dict):
        return None
    ts = alert.get("ts")
    return (float(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else None,
            str(alert.get("kind")), str(alert.get("cause")))


def tally_checkpoint(log_path):
    """Where :class:`AlertTally` keeps its checkpoint for the alert log at ``log_path``."""
    from drygate.alerts import TALLY_SUFFIX

    return log_path + TALLY_SUFFIX


class AlertTally:
    """Totals of an alert log by ``(kind, cause)``, kept current by reading only appended bytes.

    :meth:`update` remembers the file's identity (device, inode) and the offset of
    the last complete line it read; a replaced or truncated log is read again from
    its start (Prometheus sees a counter reset). :meth:`save` and :meth:`load` keep
    that position in a checkpoint next to the log, so a fresh process (``drygate
    metrics``) does not read the whole log again. Not thread-safe.
    """

    def __init__(self):
        self.path = None
        self.identity = None
        self.offset = 0
        self.counts = {}

    def update(self, path):
        """Read what was appended to the log at ``path``; returns ``{(kind, cause): int}``.

        A missing log counts nothing. Raises OSError when it exists but cannot be read.
        """
        try:
            f = open(path, "rb")
        except (FileNotFoundError, NotADirectoryError):
            self.path, self.identity, self.offset, self.counts = path, None, 0, {}
            return self.counts
        with f:
            st = os.fstat(f.fileno())
            identity = (st.st_dev, st.st_ino)
            if path != self.path or identity != self.identity or st.st_size < self.offset:
                self.path, self.identity, self.offset, self.counts = path, identity, 0, {}
            f.seek(self.offset)
            rest = b""
            while True:
                block = f.read(_BLOCK)
                if not block:
                    break
                data = rest + block
                cut = data.rfind(b"\n") + 1
                rest = data[cut:]
                self._count(data[:cut])
                self.offset += cut
        return self.counts

    def load(self, checkpoint):
        """Continue from a checkpoint file written by :meth:`save` (a one-shot reader then
        reads only what was appended since). A missing, damaged or stale checkpoint (the
        log was replaced, truncated, or its offset is not at a line's end) is ignored.
        Returns True when it was used."""
        import json

        try:
            with open(checkpoint, encoding="utf-8") as f:
                data = json.load(f)
            path, dev, ino, offset = data["path"], data["dev"], data["ino"], data["offset"]
            counts = {(str(k), str(c)): int(n) for k, c, n in data["counts"]}
            if not isinstance(offset, int) or offset < 0:
                return False
            with open(path, "rb") as log:
                st = os.fstat(log.fileno())
                if (st.st_dev, st.st_ino) != (dev, ino) or st.st_size < offset:
                    return False
                if offset:
                    log.seek(offset - 1)
                    if log.read(1) != b"\n":
                        return False
        except (OSError, ValueError, KeyError, TypeError):
            return False
        self.path, self.identity, self.offset, self.counts = path, (dev, ino), offset, counts
        return True

    def save(self, checkpoint):
        """Write the current position and counts to ``checkpoint`` (atomically); never raises."""
        import json

        if self.identity is None:
            return
        tmp = f"{checkpoint}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"path": self.path, "dev": self.identity[0], "ino": self.identity[1], "offset": self.offset,
                           "counts": [[k, c, n] for (k, c), n in self.counts.items()]}, f)
            os.replace(tmp, checkpoint)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def _count(self, data):
        counts = self.counts
        for line in data.split(b"\n"):
            if line.strip():
                parsed = parse_alert_line(line)
                key = (parsed[1], parsed[2]) if parsed else ("unreadable", "")
                counts[key] = counts.get(key, 0) + 1


def recent_alerts(path, since_ts, last_n=0):
    """Read the log at ``path`` backwards: what happened since ``since_ts``, and the last alerts.

    Returns ``(window, last)``: ``window`` is a list of ``(ts, kind, cause)`` of the
    lines with a timestamp at or after ``since_ts`` (epoch s); ``last`` the last
    ``last_n`` lines as dicts, oldest first (an unparsable line as
    ``{"kind": "unreadable", "line": ...}``). Reads blocks from the end and stops at
    the first line older than ``since_ts`` once it has ``last_n`` lines, so the cost
    follows the recent lines, not the size of the log. A missing log gives
    ``([], [])``; raises OSError when it cannot be read.
    """
    import json

    try:
        f = open(path, "rb")
    except (FileNotFoundError, NotADirectoryError):
        return [], []
    window, last_lines = [], []
    with f:
        pos = os.fstat(f.fileno()).st_size
        tail = b""
        done = False
        while pos > 0 and not done:
            step = min(_BLOCK, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + tail
            lines = data.split(b"\n")
            tail = lines.pop(0) if pos > 0 else b""  # maybe a partial line: joined with the next block
            for line in reversed(lines):
                if not line.strip():
                    continue
                if len(last_lines) < last_n:
                    last_lines.append(line)
                parsed = parse_alert_line(line)
                ts = parsed[0] if parsed else None
                if ts is not None and ts < since_ts:
                    if len(last_lines) >= last_n:
                        done = True
                        break
                    continue
                if parsed:
                    window.append(parsed)
    last = []
    for line in reversed(last_lines):
        try:
            item = json.loads(line)
        except ValueError:
            item = None
        last.append(item if isinstance(item, dict) else {"kind": "unreadable", "line": line.decode("utf-8", "replace")})
    window.reverse()
    return window, last


def describe_location(location):
    """``(kind, shown)`` of a state location: ``"sqlite"``, ``"memory"`` or a URL's scheme,
    and the location with any password replaced by ``***`` (safe to print)."""
    if location in ("memory:", ":memory:"):
        return "memory", location
    if "://" not in str(location):
        return "sqlite", str(location)
    scheme, _, rest = location.partition("://")
    cut = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = (f"{user}:***" if colon else "***") + "@" + hostport  # a lone name may be a password too
    path, q, query = tail.partition("?")
    if q:
        query = "&".join("password=***" if part.lower().startswith("password=") else part
                         for part in query.split("&"))
    return scheme, f"{scheme}://{netloc}{path}{q}{query}"


def _creatable(path):
    """True when the SQLite file at ``path`` could be created (its nearest existing folder is writable)."""
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            return False
        if os.path.exists(folder):
            return False  # a file where a folder should be
        folder = parent
    return os.access(folder, os.W_OK | os.X_OK)


def load_policy_quietly(settings):
    """``(policy, error)``: the compiled policy or None, and the error message or None."""
    from drygate.errors import DrygateError
    from drygate.policy.cache import load_policy

    try:
        return load_policy(settings.policy_path, None), None
    except DrygateError as e:
        return None, str(e)
    except Exception as e:  # an unexpected failure is reported, never raised from a health check
        return None, f"{type(e).__name__}: {e}"


def store_budget_s(policy):
    """The time a health probe gives the store (s): what the gate itself would give it."""
    from drygate.gate import STORE_MARGIN_S

    deadline_s = (policy or {}).get("deadline_ms", 3000) / 1000.0
    return max(0.05, deadline_s - STORE_MARGIN_S) if deadline_s > 2 * STORE_MARGIN_S else deadline_s / 2


class StoreProbe:
    """Pings the state store of ``settings`` (:class:`drygate.config.Settings`), keeping
    it open between probes (a relay's or ``drygate metrics --serve``'s scrapes) and
    opening it again after a failure. Never creates a SQLite store that does not exist."""

    def __init__(self, settings):
        self.settings = settings
        self.store = None
        self.location = None

    def check(self, policy, runs=False):
        """Probe the store for ``policy`` (dict or None: the default location).

        Returns a dict: ``kind``, ``location`` (password hidden), ``exists`` (False: a
        SQLite file `drygate init` has not made, or that is gone), ``reachable`` (bool; False also
        for a SQLite store the hook refuses: drygate.integrity), ``latency_ms``
        (the ping, float or None), ``error`` (str or None), ``counters`` (dict) and,
        with ``runs=True``, ``runs`` (list of RunState or None). Never raises.
        """
        location = self.settings.state_path_for(policy or {})
        kind, shown = describe_location(location)
        result = {"kind": kind, "location": shown, "exists": True, "reachable": False, "latency_ms": None,
                  "error": None, "counters": {}, "runs": None}
        if kind == "memory":
            result["error"] = "memory: a store that lives inside one process (hook processes refuse it)"
            return result
        if kind == "sqlite" and not os.path.exists(location):
            self.close()
            result["exists"] = False
            try:  # the hook never creates a store (drygate.integrity): every call is blocked until `drygate init`
                from drygate import integrity

                result["error"] = integrity.identity_problem(location, None, integrity.read_record(location),
                                                             exists=False)
            except Exception as e:
                result["error"] = str(e) or type(e).__name__
            return result
        import time

        try:
            if self.store is None or location != self.location:
                self.close()
                from drygate.state import open_store

                self.store = open_store(location, busy_timeout_s=store_budget_s(policy),
                                        synchronous=(policy or {}).get("state_synchronous", "FULL"), policy=policy)
                self.location = location
            start = time.perf_counter()
            self.store.ping()
            result["latency_ms"] = (time.perf_counter() - start) * 1000.0
            result["reachable"] = True
            result["counters"] = self.store.counters()
            if kind == "sqlite":  # gone, replaced or older than this machine's record: the hook refuses it
                from drygate import integrity

                problem = integrity.identity_problem(location, self.store, integrity.read_record(location))
                if problem:
                    result["reachable"] = False
                    result["error"] = problem
            if runs:
                result["runs"] = self.store.list_runs()
        except Exception as e:  # a health probe reports what it finds, it never raises
            result["error"] = str(e) or type(e).__name__
            self.close()
        return result

    def close(self):
        """Close the store (if open)."""
        if self.store is not None:
            try:
                self.store.close()
            except Exception:
                pass
        self.store = None
        self.location = None


def decision_counts(counters):
    """``({effect: {decision: n}}, runs_went_dry)`` from a store's counters."""
    from drygate.counters import DECISIONS, RUNS_WENT_DRY, SEP

    table = {}
    for name, value in counters.items():
        parts = name.split(SEP)
        if len(parts) == 3 and parts[0] == DECISIONS:
            table.setdefault(parts[1], {})[parts[2]] = value
    return table, counters.get(RUNS_WENT_DRY, 0)


def latency_histograms(counters):
    """``{host: {"buckets": [(le, cumulative count)...,("+Inf", n)], "count": n, "sum_s": float}}``.

    ``le`` is the bucket's upper bound as a string (Prometheus' form); counts are
    cumulative, from the non-cumulative buckets the stores keep (drygate.counters).
    """
    from drygate.counters import INF, LATENCY, LATENCY_BUCKETS_S, LATENCY_COUNT, LATENCY_SUM_US, SEP, format_le

    per_host = {}
    for name, value in counters.items():
        parts = name.split(SEP)
        if len(parts) == 3 and parts[0] == LATENCY:
            per_host.setdefault(parts[1], {}).setdefault("raw", {})[parts[2]] = value
        elif len(parts) == 2 and parts[0] in (LATENCY_COUNT, LATENCY_SUM_US):
            per_host.setdefault(parts[1], {})[parts[0]] = value
    out = {}
    for host, data in per_host.items():
        raw = data.get("raw", {})
        running, buckets = 0, []
        for bound in LATENCY_BUCKETS_S:
            running += raw.get(format_le(bound), 0)
            buckets.append((format_le(bound), running))
        total = max(running + raw.get(INF, 0), data.get(LATENCY_COUNT, 0))
        buckets.append((INF, total))
        out[host] = {"buckets": buckets, "count": total, "sum_s": data.get(LATENCY_SUM_US, 0) / 1e6}
    return out


def _quantile_bound(histogram, q):
    """The upper bound (s) of the bucket holding quantile ``q``, or None (no data / beyond the last bound)."""
    if not histogram["count"]:
        return None
    want = q * histogram["count"]
    for le, n in histogram["buckets"]:
        if n >= want:
            return None if le == "+Inf" else float(le)
    return None


def gate_status(settings, now=None, last_n=10):
    """The gate's health for ``drygate status`` (a JSON-able dict). Never raises for
    what it finds; see the module docstring for the verdicts.

    Keys: ``verdict``, ``reasons`` (list of str), ``checked_at``, ``project``,
    ``policy`` (path, loads, error, mode, deadline_ms), ``store`` (see
    :meth:`StoreProbe.check`, without counters and runs), ``alert_log``,
    ``guard_failures`` (``last_5m``: int, ``last_hour`` and ``last_day``: {cause: n}),
    ``deadline_misses_last_day``, ``agent_alerts`` (``last_hour`` and ``last_day``:
    {cause: n}), ``fallback_alerts_last_hour``, ``last_alerts`` (list of dicts),
    ``decisions`` ({effect: {decision: n}}), ``runs_went_dry``, ``latency``
    ({host: {count, mean_ms, p50_ms, p99_ms}}: the quantiles are bucket bounds, None
    beyond the last), ``runs`` ({total, dry, active_last_hour, active_dry}).
    """
    import time

    from drygate.alerts import category_of, fallback_log

    now = time.time() if now is None else now
    policy, policy_error = load_policy_quietly(settings)
    probe = StoreProbe(settings)
    try:
        store = probe.check(policy, runs=True)
    finally:
        probe.close()
    alert_log = settings.alert_log_for(policy)
    status = {"checked_at": now, "project": settings.project_dir, "alert_log": alert_log,
              "policy": {"path": settings.policy_path, "loads": policy is not None, "error": policy_error,
                         "mode": (policy or {}).get("mode"), "deadline_ms": (policy or {}).get("deadline_ms")}}
    deadline_ms = (policy or {}).get("deadline_ms", 3000)
    failing, degraded, notes = [], [], []
    if policy_error:
        failing.append(f"the policy does not load, so every call is blocked: {policy_error}")

    counters, runs = store.pop("counters"), store.pop("runs")
    if not store["exists"]:
        runs = []
    status["store"] = store
    if not store["reachable"]:
        failing.append(f"the state store ({store['kind']}) does not answer, so every call is blocked: "
                       f"{store['error']}")
    elif store["latency_ms"] is not None and store["latency_ms"] > deadline_ms / 2:
        degraded.append(f"the state store answered a ping in {store['latency_ms']:.0f} ms, more than half the "
                        f"gate's deadline ({deadline_ms} ms)")
    elif store["error"]:
        degraded.append(store["error"])

    try:
        window, last = recent_alerts(alert_log, now - DAY_S, last_n)
    except OSError as e:
        window, last = [], []
        degraded.append(f"the alert log {alert_log} cannot be read: {e.strerror or e}")
    guard = {"last_5m": 0, "last_hour": {}, "last_day": {}}
    agent = {"last_hour": {}, "last_day": {}}
    deadline_misses = 0
    for ts, kind, cause in window:
        if ts is None:
            continue
        category = category_of(kind)
        if category == "guard":
            bucket = guard
            guard["last_5m"] += ts >= now - RECENT_S
            deadline_misses += cause in DEADLINE_CAUSES
        elif category == "agent":
            bucket = agent
        else:
            continue
        bucket["last_day"][cause] = bucket["last_day"].get(cause, 0) + 1
        if ts >= now - HOUR_S:
            bucket["last_hour"][cause] = bucket["last_hour"].get(cause, 0) + 1
    status["guard_failures"] = guard
    status["deadline_misses_last_day"] = deadline_misses
    status["agent_alerts"] = agent
    status["last_alerts"] = last

    def causes(table):
        return ", ".join(f"{c} x{n}" for c, n in sorted(table.items(), key=lambda kv: -kv[1]))

    if guard["last_5m"]:
        failing.append(f"{guard['last_5m']} guard failure(s) in the last 5 minutes: calls are being blocked "
                       f"({causes(guard['last_hour'])} in the last hour)")
    elif guard["last_hour"]:
        degraded.append(f"{sum(guard['last_hour'].values())} guard failure(s) in the last hour "
                        f"({causes(guard['last_hour'])}), none in the last 5 minutes")

    log_writable = os.access(alert_log, os.W_OK) if os.path.exists(alert_log) else _creatable(alert_log)
    if not log_writable:
        degraded.append(f"the alert log {alert_log} cannot be written: alerts go to the fallback log "
                        f"{fallback_log()} instead")
    fallback = fallback_log()
    status["fallback_alerts_last_hour"] = 0
    if os.path.abspath(fallback) != os.path.abspath(alert_log):
        try:
            fallback_window, _ = recent_alerts(fallback, now - HOUR_S)
        except OSError:
            fallback_window = []
        status["fallback_alerts_last_hour"] = len(fallback_window)
        if fallback_window:  # shared by every project of this user: a hint, not this gate's verdict
            notes.append(f"{len(fallback_window)} record(s) in the last hour in the fallback alert log {fallback} "
                         f"(shared by this user's projects): an alert log or a sink failed somewhere")

    decisions, went_dry = decision_counts(counters)
    status["decisions"] = decisions
    status["runs_went_dry"] = went_dry
    status["latency"] = {}
    for host, h in latency_histograms(counters).items():
        p50, p99 = _quantile_bound(h, 0.5), _quantile_bound(h, 0.99)
        status["latency"][host] = {"count": h["count"], "mean_ms": h["sum_s"] * 1000 / h["count"] if h["count"] else None,
                                   "p50_ms": p50 * 1000 if p50 is not None else None,
                                   "p99_ms": p99 * 1000 if p99 is not None else None}
    if runs is not None:
        active = [r for r in runs if r.last_seen_at >= now - HOUR_S]
        status["runs"] = {"total": len(runs), "dry": sum(1 for r in runs if r.is_dry),
                          "active_last_hour": len(active), "active_dry": sum(1 for r in active if r.is_dry)}
    else:
        status["runs"] = None

    if failing:
        status["verdict"], status["reasons"] = FAILING, failing + degraded
    elif degraded:
        status["verdict"], status["reasons"] = DEGRADED, degraded
    else:
        ping = f" in {store['latency_ms']:.2f} ms" if store["latency_ms"] is not None else ""
        status["verdict"] = OK
        status["reasons"] = [f"the policy loads, the state store answers{ping}, no guard failure in the last hour"]
    status["reasons"] += notes
    return status
