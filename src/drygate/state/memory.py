"""An in-process state store: the same transition as every store, behind a lock.

For tests, ``drygate replay`` (a throwaway run) and the Python API. Not shared
between processes.
"""

import copy
import threading

from drygate.counters import RUNS_WENT_DRY, decision_counter
from drygate.engine import apply_transition
from drygate.state.base import StateStore
from drygate.types import RunState


class MemoryStore(StateStore):
    """A :class:`StateStore` in memory; thread-safe, not durable."""

    def __init__(self):
        self._lock = threading.RLock()  # transact_with_result holds it across two steps
        self._runs = {}
        self._journal = []
        self._seq = 0
        self._verdicts = {}
        self._ledger = {}  # run id -> (version, record)
        self._counters = {}
        self._fingerprints = {}  # run id -> {path: fingerprint} (drygate.integrity)
        self._marker = {"store_id": "memory-" + format(id(self), "x"), "format": "1"}

    def transact(self, run_id, request, entry, clock):
        with self._lock:
            self._seq += 1
            now = clock()
            state, outcome = apply_transition(self._runs.get(run_id), run_id, request, self._seq, now,
                                              entry["tool_name"])
            self._runs[run_id] = state
            self._journal.append(dict(entry, seq=self._seq, run_id=run_id, ts=now, kind="call", call=outcome.call,
                                      action=outcome.action, made_run_dry=outcome.made_run_dry,
                                      dry_because_of=outcome.dry_because_of, result=None))
            name = decision_counter(entry["effect"], outcome.action)
            self._counters[name] = self._counters.get(name, 0) + 1
            if outcome.made_run_dry:
                self._counters[RUNS_WENT_DRY] = self._counters.get(RUNS_WENT_DRY, 0) + 1
            outcome.run = copy.copy(state)
            return outcome

    def ensure_run(self, run_id, mode, now):
        from drygate.types import stricter_mode

        with self._lock:
            state = self._runs.get(run_id)
            if state is None:
                state = self._runs[run_id] = RunState(run_id, mode, created_at=now, last_seen_at=now)
            else:
                state.mode = stricter_mode(state.mode, mode)
            return copy.copy(state)

    def record_result(self, run_id, call_id, tool_name, result, now, durable=True):
        with self._lock:
            self._seq += 1
            self._journal.append({"seq": self._seq, "run_id": run_id, "ts": now, "kind": "result", "call": None,
                                  "call_id": call_id, "tool_name": tool_name, "result": result})
            return self._seq

    def transact_with_result(self, run_id, request, entry, clock, result):
        """The call and its result as one step (under the store's lock)."""
        if request.gated:
            raise ValueError("transact_with_result is for calls that are not gated (reads)")
        with self._lock:
            outcome = self.transact(run_id, request, entry, clock)
            return outcome, self.record_result(run_id, entry["call_id"], entry["tool_name"], result, clock(),
                                               durable=False)

    def ping(self):
        with self._lock:
            return None

    def get_run(self, run_id):
        with self._lock:
            state = self._runs.get(run_id)
            return copy.copy(state) if state else None

    def list_runs(self):
        with self._lock:
            return sorted((copy.copy(s) for s in self._runs.values()), key=lambda s: -s.last_seen_at)

    def journal(self, run_id=None):
        with self._lock:
            return [dict(e) for e in self._journal if run_id is None or e["run_id"] == run_id]

    def prune(self, older_than_s, now):
        with self._lock:
            idle = {r for r, s in self._runs.items() if now - s.last_seen_at > older_than_s}
            before = len(self._journal)
            self._journal = [e for e in self._journal if e["run_id"] not in idle]
            for r in idle:
                if self._runs[r].dry_since is None and self._runs[r].mode != "dry":
                    del self._runs[r]
            return before - len(self._journal)

    def marker(self):
        """An in-process store is always initialized; its marker names this object."""
        return dict(self._marker)

    def initialize(self, dry_until=None, renew=False):
        """Nothing to create: returns ``(False, store_id)``."""
        return False, self._marker["store_id"]

    def fingerprints(self, run_id):
        with self._lock:
            return dict(self._fingerprints.get(run_id, {}))

    def put_fingerprints(self, run_id, entries, replace=False, durable=True):
        with self._lock:
            kept = self._fingerprints.setdefault(run_id, {})
            for path, value in entries.items():
                if replace or path not in kept:
                    kept[str(path)] = str(value)

    def counters(self):
        with self._lock:
            return dict(self._counters)

    def add_counters(self, increments):
        with self._lock:
            for name, n in increments.items():
                self._counters[str(name)] = self._counters.get(str(name), 0) + int(n)

    def ledger_get(self, run_id):
        with self._lock:
            version, record = self._ledger.get(run_id, (0, None))
            return version, copy.deepcopy(record)

    def ledger_put(self, run_id, version, record):
        with self._lock:
            if self._ledger.get(run_id, (0, None))[0] != version:
                return False
            self._ledger[run_id] = (version + 1, copy.deepcopy(record))
            return True

    def ledgers(self):
        with self._lock:
            return {r: copy.deepcopy(rec) for r, (_, rec) in self._ledger.items()}

    def verdict_get(self, key):
        with self._lock:
            return self._verdicts.get(key)

    def verdict_put(self, key, effect, steps):
        with self._lock:
            self._verdicts.pop(key, None)
            self._verdicts[key] = (effect, tuple(steps))
            while len(self._verdicts) > self.VERDICT_LIMIT:  # the oldest first (insertion order)
                del self._verdicts[next(iter(self._verdicts))]

    def close(self):
        pass
