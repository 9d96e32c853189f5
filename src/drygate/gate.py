"""The gate as enforcement points use it: settings + policy + store + engine + alerts.

Every enforcement point (Claude Code hook, replay, Python API, later the MCP relay)
builds one :class:`Gate` and asks :meth:`Gate.decide`. Tamper decisions raise a
tamper alert here; guard failures are raised as :class:`GuardFailure` for the
enforcement point to turn into the host's block, and reported with :meth:`Gate.alert`
or :func:`report_guard_failure`.
"""

import os

#: Margin kept between the SQLite busy timeout and the gate's deadline (seconds).
STORE_MARGIN_S = 0.5


class Gate:
    """A ready policy decision point for one process.

    ``settings``: :class:`drygate.config.Settings`; ``policy``: compiled policy
    dict; ``store``: a StateStore; ``host``: the enforcement point's name;
    ``emit_alerts``: False for simulations (replay) that report tamper in their output.
    """

    __slots__ = ("settings", "policy", "store", "engine", "host", "emit_alerts", "integrity", "location", "markers")

    def __init__(self, settings, policy, store, host, emit_alerts=True):
        from drygate.engine import Engine

        self.settings = settings
        self.policy = policy
        self.store = store
        self.host = host
        self.emit_alerts = emit_alerts
        #: Check the fingerprints of what the gate protects at each decision (drygate.integrity).
        self.integrity = False
        #: The SQLite store's path when its identity is checked (its record is kept up to date), else None.
        self.location = None
        #: {key: fingerprint} of the store's marker, checked with the files.
        self.markers = {}
        policy["_verdict_store"] = store  # SQL verdicts are remembered in the run's state store
        state_path = settings.state_path_for(policy)
        protected = (settings.project_dir, settings.policy_path, protected_state_file(settings, state_path),
                     settings.alert_log_for(policy))
        self.engine = Engine(policy, store, mode=settings.mode, protected=protected)

    @classmethod
    def open(cls, settings, host, deadline=None, lean=False, integrity=False):
        """Load the policy (cached) and open the state store.

        ``deadline``: None, or an object with ``adopt_policy(seconds)`` (told the
        policy's ``[gate] deadline_ms`` as soon as it is known) and ``remaining()``
        (seconds left); the store's busy timeout is kept below what remains.
        ``lean``: a short-lived hook process (a Redis store then uses the lean client, and a
        SQLite store that does not exist or has no marker is never created: only `drygate
        init` makes one). ``integrity``: check the fingerprints of what the gate protects at
        each decision (drygate.integrity): True for everything, ``"files"`` for the settings
        layers, the policy and the store's marker only (a long-lived process). A SQLite store that is gone, replaced or older
        than this machine's record of it is refused (every opener). Raises
        :class:`GuardFailure` (ConfigError, StoreUnavailable, StoreTimeout) when the
        policy or the store cannot be had.
        """
        from drygate.policy.cache import load_policy
        from drygate.state import open_store

        state_hint = settings.state_path or os.path.join(settings.project_dir, ".drygate", "state.db")
        if state_hint in ("memory:", ":memory:"):
            cache_dir = None
        elif "://" in state_hint:  # a Redis store: the policy cache stays in the project
            cache_dir = os.path.join(settings.project_dir, ".drygate")
        else:
            cache_dir = os.path.dirname(state_hint)
        policy = load_policy(settings.policy_path, cache_dir)
        if deadline is None:
            deadline_s = policy["deadline_ms"] / 1000.0
        else:
            deadline.adopt_policy(policy["deadline_ms"] / 1000.0)
            deadline_s = deadline.remaining()
        busy = max(0.05, deadline_s - STORE_MARGIN_S) if deadline_s > 2 * STORE_MARGIN_S else deadline_s / 2
        location = settings.state_path_for(policy)
        sqlite = location not in ("memory:", ":memory:") and "://" not in location
        record = None
        if sqlite:
            from drygate import integrity as fp

            record = fp.read_record(location)
            if (lean or record) and not os.path.exists(location):
                from drygate.errors import StoreUnavailable

                raise StoreUnavailable(fp.identity_problem(location, None, record, exists=False))
        store = open_store(location, busy_timeout_s=busy, synchronous=policy.get("state_synchronous", "FULL"),
                           policy=policy, lean=lean, create=not lean)
        try:
            marker = _checked_marker(store, location, record, lean) if sqlite else {}
            gate = cls(settings, policy, store, host)
        except BaseException:
            store.close()
            raise
        if sqlite:
            gate.location = location
            gate.markers = {fp.marker_key(location): f"m|{marker.get('store_id', '')}|"}
            until = marker.get("dry_until")
            if until and _now() < float(until):  # a recovered store: every run is dry for a while
                gate.engine.mode = "dry"
        gate.integrity = integrity
        return gate

    def decide(self, call):
        """Decide ``call`` (ToolCall); raises GuardFailure; emits tamper alerts.

        With ``integrity``, the run's fingerprints are checked first: a run whose protected
        files changed behind the gate's back gets a deny (tamper) for this and every later call.
        """
        return self._decide(call, False)[0]

    def decide_read(self, call):
        """:meth:`decide`, except that an allowed read of a run that exists is journaled later
        with its result: returns ``(decision, pending)`` (drygate.engine.Engine.decide_read;
        ``pending`` is None when the call was journaled now). The integrity check runs first
        as in :meth:`decide`. Raises GuardFailure."""
        return self._decide(call, True)

    def _decide(self, call, read_later):
        blocked = None
        if self.integrity:
            from drygate import integrity as fp

            import sys

            loaded = len(sys.modules)
            code = self.integrity != "files"
            # drygate's own package is walked only when the check needs it (fp.check's ``package``).
            watched = fp.watched(self.settings.project_dir, self.settings.policy_path, code=code, package=False)
            blocked = fp.check(self.store, call.run_id, watched, self.markers,
                               package=fp.package_paths if code else None)
        if read_later:
            decision, pending = self.engine.decide_read(call, blocked)
        else:
            decision, pending = self.engine.decide(call, blocked), None
        if decision.tamper:
            from drygate.alerts import TAMPER

            self.alert(TAMPER, "integrity" if blocked else "self-protection", decision.reason, call)
        if self.integrity is True and not blocked:
            fp.register_loaded(self.store, call.run_id, watched, loaded)  # modules this decision loaded, as loaded
        if decision.made_run_dry and self.location:
            from drygate import integrity as fp

            fp.note_went_dry(self.location, self.store)
        return decision, pending

    def alert(self, kind, cause, reason, call=None):
        """Emit an alert on the guard-failure channel (never raises)."""
        if self.emit_alerts:
            report(self.settings, self.policy, kind, cause, reason, call, self.host)

    def close(self):
        """Close the state store."""
        self.store.close()


def _checked_marker(store, location, record, lean):
    """The SQLite store's marker (dict) once its identity matches this machine's record.

    A store without marker or record on first use by a long-lived enforcement point (the
    relay, ``lean`` False) is initialized here, as `drygate state init` would; the hook
    never does. Raises StoreUnavailable naming the problem and the fix.
    """
    from drygate import integrity as fp

    problem = fp.identity_problem(location, store, record)
    if problem is None:
        return store.marker()
    if not lean and record is None and not store.marker():
        store.initialize()
        fp.write_record(location, store)
        return store.marker()
    from drygate.errors import StoreUnavailable  # only here: drygate.errors costs 0.3 ms to import

    raise StoreUnavailable(problem)


def _now():
    import time

    return time.time()


def protected_state_file(settings, state_path):
    """The local file self-protection guards for a state location (its folder too).

    A SQLite file is itself; a Redis store keeps the policy cache in the project's
    ``.drygate`` folder, which an agent could otherwise forge; ``memory:`` has none.
    """
    if state_path in ("memory:", ":memory:"):
        return None
    if "://" in state_path:
        from drygate.policy.cache import CACHE_NAME

        return os.path.join(settings.project_dir, ".drygate", CACHE_NAME)
    return state_path


def report(settings, policy, kind, cause, reason, call=None, host=None):
    """Emit an alert for ``settings`` (may be None) and ``policy`` (may be None). Never raises."""
    from drygate import alerts

    try:
        log = settings.alert_log_for(policy) if settings is not None else None
        alert = alerts.make_alert(kind, cause, reason,
                                  run_id=getattr(call, "run_id", None), tool_name=getattr(call, "tool_name", None),
                                  call_id=getattr(call, "call_id", None), host=host)
        policy = policy or {}
        return alerts.emit(alert, log, policy.get("alert_command"), policy.get("alert_webhook"),
                           policy.get("alert_rate_limit", alerts.DEFAULT_RATE_LIMIT),
                           policy.get("alert_rate_window_s", alerts.DEFAULT_RATE_WINDOW_S))
    except Exception as e:  # the alert channel itself must never crash the block
        import sys

        sys.stderr.write(f"drygate ALERT ({kind}/{cause}): {reason} [alert delivery failed: {e}]\n")
        return None


def report_guard_failure(settings, policy, error, call=None, host=None):
    """Report a guard failure (an exception) as an alert; returns the reason text."""
    from drygate.alerts import GUARD_FAILURE
    from drygate.errors import GuardFailure

    cause = error.cause if isinstance(error, GuardFailure) else "crash"
    reason = f"{type(error).__name__}: {error}"
    report(settings, policy, GUARD_FAILURE, cause, reason, call, host)
    return reason
