"""The state-store interface.

A store keeps, per run, a :class:`drygate.types.RunState` and an append-only,
totally ordered journal. Its one write path for decisions is :meth:`transact`,
which must apply :func:`drygate.engine.apply_transition` and append the journal
entry in a single atomic step (SQLite ``BEGIN IMMEDIATE``; Redis a Lua script).
Backend errors are translated into :class:`drygate.errors.StoreTimeout` or
:class:`drygate.errors.StoreUnavailable` at this boundary.

Journal entries are dicts::

    {"seq": int, "run_id": str, "ts": float (epoch s), "kind": "call" | "result",
     "call": int (the call's number within its run; None for results),
     "call_id": str | None, "agent_id": str | None, "tool_name": str,
     "tool_input": any JSON, "effect": str, "rule_id": str, "why": str,
     "action": "allow" | "dry" | "deny" | "ask" | None, "made_run_dry": bool,
     "dry_because_of": int | None, "tamper": bool, "policy_hash": str,
     "host": str | None, "result": any JSON | None}
"""


class StateStore:
    """Interface of a state store. Every method raises NotImplementedError here:
    a half-finished store must fail, never succeed silently."""

    def transact(self, run_id, request, entry, clock):
        """Atomically apply one call to run ``run_id`` and journal it.

        ``request``: :class:`drygate.types.TransitionRequest`; ``entry``: journal
        fields from :func:`drygate.engine.journal_entry`; ``clock``: a callable
        returning epoch seconds, called inside the atomic step so timestamps follow
        the journal order. Returns :class:`drygate.types.Outcome`. Raises
        StoreTimeout / StoreUnavailable.
        """
        raise NotImplementedError

    def transact_with_result(self, run_id, request, entry, clock, result):
        """Journal a call that already ran together with its result: :meth:`transact`
        followed by :meth:`record_result` ``(entry["call_id"], entry["tool_name"], result,
        durable=False)``. Returns ``(outcome, result_seq)``.

        Only for a call whose request is not gated (a read: its action does not depend on
        the run's state, so it can be journaled once its answer is known; the relay does
        so before the client gets that answer). Neither entry need be on disk before this
        returns: neither can make a run dry. The base implementation runs the two steps
        one after the other (each atomic; the Redis store keeps it); a store that can,
        runs both in one atomic step (SQLite: one transaction, one commit instead of two).
        Raises ValueError for a gated request, StoreTimeout / StoreUnavailable like
        :meth:`transact`.
        """
        if request.gated:
            raise ValueError("transact_with_result is for calls that are not gated (reads)")
        outcome = self.transact(run_id, request, entry, clock)
        return outcome, self.record_result(run_id, entry["call_id"], entry["tool_name"], result, clock(),
                                           durable=False)

    def checkpoint_in_background(self):
        """For a long-lived process (the relay): keep the store's upkeep off the decisions' path,
        where the store has any (SQLite: WAL checkpoints in a thread of their own). Returns True
        when it did something; a store with no such upkeep (memory, Redis) returns False."""
        return False

    def ping(self):
        """Take and release the store's write lock without changing anything.

        Raises StoreTimeout / StoreUnavailable when a decision could not be journaled.
        """
        raise NotImplementedError

    def ensure_run(self, run_id, mode, now):
        """Create run ``run_id`` with ``mode`` or make its mode stricter; returns RunState."""
        raise NotImplementedError

    def record_result(self, run_id, call_id, tool_name, result, now, durable=True):
        """Journal the real result of an executed call (PostToolUse); returns its seq.

        ``durable=False``: the entry need not be on disk (or on replicas) before this
        returns, for a tool's own result, which cannot make a run dry or live; the
        next durable commit (any gated decision) makes it durable with it. Records
        that apply, approvals or trust depend on stay ``durable=True``.
        """
        raise NotImplementedError

    def get_run(self, run_id):
        """The :class:`RunState` of ``run_id``, or None if the store never saw it."""
        raise NotImplementedError

    def list_runs(self):
        """All runs, most recently seen first (list of RunState)."""
        raise NotImplementedError

    def journal(self, run_id=None):
        """Journal entries in sequence order, of one run or of all (list of dicts)."""
        raise NotImplementedError

    def latest_catalog(self, run_id, server):
        """The last MCP tool catalog the relay journaled for ``server`` (dict, see
        drygate.state.catalog), in run ``run_id`` if it journaled one there, else in any run
        (a relay that could not learn the host's session id journaled it under its own run);
        None when there is none. Raises StoreUnavailable / StoreTimeout."""
        from drygate.state.catalog import read_catalog

        found = read_catalog(self, run_id).get(server)
        if found is None:
            found = read_catalog(self, None).get(server)
        return found

    def iter_journal(self, run_id=None):
        """The same entries as :meth:`journal`, as an iterator (a store that can read them in
        batches overrides this, so a long run's plan is built without holding it whole)."""
        return iter(self.journal(run_id))

    def prune(self, older_than_s, now):
        """Drop the journal of runs idle for more than ``older_than_s`` seconds.

        A run that went dry keeps its state (a tombstone), so expiry never turns a
        dry run live (case CC-15). Returns the number of journal entries removed.
        """
        raise NotImplementedError

    def close(self):
        """Release connections; the store must not be used afterwards."""
        raise NotImplementedError

    # Guard-health counters (drygate.metrics reads them; hook processes record through
    # them, so a fleet's counts meet in the shared store). Names:
    #   "decisions|<effect>|<action>"  incremented by transact, in its atomic step
    #   "runs_went_dry"                incremented by transact when a call made its run dry
    # and any name drygate.metrics passes to add_counters (latency buckets...).
    def counters(self):
        """All counters as a dict ``{name (str): value (int)}``; ``{}`` for a fresh store."""
        raise NotImplementedError

    def add_counters(self, increments):
        """Add ``increments`` (dict ``{name: int}``) to the counters, best effort.

        Not durable (a crash may lose the last increments: they are statistics, not
        decisions). Raises StoreTimeout / StoreUnavailable like every other method.
        """
        raise NotImplementedError

    # The apply ledger (drygate.plan.apply): one record per run, changed only by
    # compare-and-set, so two applies of one run can never both claim it.
    def ledger_get(self, run_id):
        """``(version, record)`` of run ``run_id``'s ledger: ``(0, None)`` when it has none.

        ``version``: int, incremented by every successful :meth:`ledger_put`;
        ``record``: the dict last stored.
        """
        raise NotImplementedError

    def ledger_put(self, run_id, version, record):
        """Store ``record`` (dict, JSON) as run ``run_id``'s ledger if it is still at
        ``version``; returns True, or False when another writer changed it first.
        Durable like a decision (it decides whether a plan may run again)."""
        raise NotImplementedError

    def ledgers(self):
        """``{run_id: record}`` of every run that has a ledger record."""
        raise NotImplementedError

    # The store marker and the fingerprints of what the gate protects (drygate.integrity).
    def marker(self):
        """The store marker as a dict (``store_id`` and more); ``{}`` when the store was never
        initialized (``drygate state init``), which the hook refuses to decide on."""
        raise NotImplementedError

    def initialize(self, dry_until=None):
        """Create the marker unless it exists; returns ``(created (bool), store_id)``.
        ``dry_until``: epoch seconds until which every run is dry (a recovery), or None."""
        raise NotImplementedError

    def fingerprints(self, run_id):
        """``{path: fingerprint (str)}`` kept for run ``run_id``; ``{}`` when none."""
        raise NotImplementedError

    def put_fingerprints(self, run_id, entries, replace=False, durable=True):
        """Keep ``entries`` (``{path: fingerprint}``) for run ``run_id``: a path the run already
        has keeps its first value unless ``replace``. Durable like a decision unless ``durable``
        is False (first-seen fingerprints: a lost one is only taken again)."""
        raise NotImplementedError

    # Optional: a cache of classifier verdicts (drygate.classifiers.sql, .command_cache). A store that
    # keeps none simply returns None; that only makes classification slower.

    #: The most verdicts a store keeps: every new shell command and SQL statement adds one, and a
    #: classifier upgrade starts new keys, so the cache is trimmed (the oldest go first) instead of
    #: growing with the project's history.
    VERDICT_LIMIT = 50_000

    def verdict_get(self, key):
        """``(effect, steps)`` remembered under ``key`` (str), or None."""
        return None

    def verdict_put(self, key, effect, steps):
        """Remember ``(effect, steps)`` under ``key``."""
        return None
