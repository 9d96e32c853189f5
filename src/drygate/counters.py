"""Names of the guard-health counters kept in the state store, in one place.

Every store keeps a flat map ``{name (str): value (int)}`` (StateStore.counters and
add_counters); hook processes and relays of a fleet add to the same store, so
``drygate metrics`` on any host sees the whole fleet. This module is the only place
that spells the names; it imports nothing, so the hook can use it (prometheus_client
is imported only by :mod:`drygate.metrics`, which reads these names back).

Names:

- ``decisions|<effect>|<action>``: one per decided call, added by ``transact`` in
  its atomic step (effect: drygate.types.EFFECTS; action: allow, dry, deny, ask);
- ``runs_went_dry``: added by ``transact`` when a call made its run dry;
- ``latency|<host>|<le>``: decisions of enforcement point ``<host>`` (``claude-code``,
  ``mcp-relay``) whose latency fell in the bucket with upper bound ``<le>`` seconds
  (one of :data:`LATENCY_BUCKETS_S` written with :func:`format_le`, or ``+Inf``).
  Buckets are stored *non-cumulative* (each observation adds 1 to exactly one
  bucket); :mod:`drygate.metrics` sums them into Prometheus' cumulative form;
- ``latency_count|<host>``: decisions observed; ``latency_sum_us|<host>``: their
  latencies added up, in integer microseconds (counters are integers).
"""

#: Prefix of the per-decision counters; the full name is ``decisions|<effect>|<action>``.
DECISIONS = "decisions"
#: Calls that made their run dry.
RUNS_WENT_DRY = "runs_went_dry"
LATENCY = "latency"
LATENCY_COUNT = "latency_count"
LATENCY_SUM_US = "latency_sum_us"
SEP = "|"
#: Upper bounds (seconds) of the decision-latency buckets: from a relay's in-process
#: decision (about 0.2 ms) to the largest deadline a policy may set (20 s).
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)
INF = "+Inf"


def decision_counter(effect, action):
    """The counter name of one decision: ``decisions|<effect>|<action>`` (str)."""
    return DECISIONS + SEP + str(effect) + SEP + str(action)


def format_le(bound):
    """A bucket bound as it appears in a counter name and in Prometheus' ``le`` label ("0.0005", "1.0")."""
    return repr(float(bound))


def latency_increments(host, seconds):
    """The increments recording one decision of ``host`` that took ``seconds`` (float).

    Returns ``{name: int}`` for :meth:`StateStore.add_counters`: one bucket, the
    count and the sum in microseconds.
    """
    le = INF
    for bound in LATENCY_BUCKETS_S:
        if seconds <= bound:
            le = format_le(bound)
            break
    return {LATENCY + SEP + host + SEP + le: 1, LATENCY_COUNT + SEP + host: 1,
            LATENCY_SUM_US + SEP + host: max(0, int(seconds * 1e6))}


def merge(into, increments):
    """Add ``increments`` (dict name -> int) into ``into`` (dict, changed); returns ``into``."""
    for name, n in increments.items():
        into[name] = into.get(name, 0) + n
    return into
