"""Prometheus metrics of the gate's own health (prometheus_client; never on the hook's path).

One custom collector, :class:`GateCollector`, reads at each scrape what
:mod:`drygate.health` reads: the state store's counters (shared by every hook process
and relay of a fleet, so any host shows the fleet's numbers), a ping of the store,
the policy, and the alert log (read incrementally).

Metrics:

- ``drygate_decisions_total{effect,decision}``: decided calls (store counters);
- ``drygate_runs_went_dry_total``: calls that made their run dry (store counters);
- ``drygate_decision_latency_seconds{host}``: histogram of decision latency per
  enforcement point (``claude-code``: from the hook's entry to its flushed answer;
  ``mcp-relay``: the gate's time for one tools/call), from the store's counters;
  decisions that failed are not in it (they are guard failures);
- ``drygate_guard_failures_total{cause}``: guard-failure alerts in the alert log, by
  cause (``store_unavailable``, ``store_timeout``, ``config``, ``input``,
  ``deadline``, ``crash``, and the hook wrapper's ``hook_exit_<status>``);
- ``drygate_deadline_misses_total``: guard failures of the soft deadline
  (``deadline``) or the hard one (``hook_exit_1``);
- ``drygate_tamper_total``: tamper alerts (the agent tried to change the gate);
- ``drygate_store_up``: 1 when the store answers a ping within the gate's budget (or,
  for a SQLite file not created yet, when it can be created), else 0;
- ``drygate_store_ping_seconds``: that ping, while the store is up;
- ``drygate_policy_up``: 1 when the policy loads (a policy that does not blocks every call).

The alert-log counts are per machine (the log is a local file); the store's are the
fleet's. A scrape never raises: a store that fails is ``drygate_store_up 0`` and its
counters are left out of that scrape; an unreadable alert log leaves its families out.
"""

import threading

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from drygate import health

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class GateCollector:
    """A prometheus_client collector of the gate's health for ``settings``
    (:class:`drygate.config.Settings`). Thread-safe (one scrape at a time).

    ``checkpoint``: keep the alert log's read position in a file next to the log
    (:func:`drygate.health.tally_checkpoint`), so a fresh process continues where the
    last one stopped instead of reading the whole log.
    """

    def __init__(self, settings, checkpoint=True):
        self.settings = settings
        self.checkpoint = checkpoint
        self.probe = health.StoreProbe(settings)
        self.tally = health.AlertTally()
        self._loaded = False
        self._lock = threading.Lock()

    def describe(self):
        """No fixed description: registering must not scrape (prometheus_client calls this)."""
        return []

    def collect(self):
        """Yield the metric families (see the module docstring). Never raises."""
        with self._lock:
            try:
                families = self._families()
            except Exception:  # a scrape never raises: report the gate as down rather than nothing
                families = [_gauge("drygate_store_up", "1 when the state store answers a ping, else 0", 0)]
        yield from families

    def close(self):
        """Close the store the probes keep open."""
        with self._lock:
            self.probe.close()

    def _families(self):
        policy, _error = health.load_policy_quietly(self.settings)
        families = [_gauge("drygate_policy_up", "1 when the policy loads; 0 means every call is blocked",
                           0 if policy is None else 1)]
        store = self.probe.check(policy)
        families.append(_gauge("drygate_store_up", "1 when the state store answers a ping, else 0",
                               1 if store["reachable"] else 0))
        if store["latency_ms"] is not None:
            families.append(_gauge("drygate_store_ping_seconds", "time the state store took to answer a ping",
                                   store["latency_ms"] / 1000.0))
        if store["reachable"]:
            families.extend(self._store_families(store["counters"]))
        alerts = self._alert_counts(self.settings.alert_log_for(policy))
        if alerts is not None:
            families.extend(_alert_families(alerts))
        return families

    def _store_families(self, counters):
        decisions, went_dry = health.decision_counts(counters)
        fam = CounterMetricFamily("drygate_decisions", "decided tool calls, by effect and decision",
                                  labels=["effect", "decision"])
        for effect, by_action in sorted(decisions.items()):
            for action, n in sorted(by_action.items()):
                fam.add_metric([effect, action], n)
        dry = CounterMetricFamily("drygate_runs_went_dry", "calls that made their run dry", value=went_dry)
        latency = HistogramMetricFamily("drygate_decision_latency_seconds",
                                        "latency of the gate's decisions, by enforcement point", labels=["host"])
        for host, h in sorted(health.latency_histograms(counters).items()):
            latency.add_metric([host], h["buckets"], h["sum_s"])
        return [fam, dry, latency]

    def _alert_counts(self, log_path):
        checkpoint = health.tally_checkpoint(log_path)
        if self.checkpoint and not self._loaded:
            self._loaded = True
            self.tally.load(checkpoint)
        try:
            before = self.tally.offset
            counts = self.tally.update(log_path)
        except OSError:
            return None
        if self.checkpoint and self.tally.offset != before:
            self.tally.save(checkpoint)
        return counts


def _gauge(name, documentation, value):
    return GaugeMetricFamily(name, documentation, value=value)


def _alert_families(counts):
    from drygate.alerts import category_of

    guard = {cause: 0 for cause in health.GUARD_CAUSES}
    tamper = 0
    for (kind, cause), n in counts.items():
        category = category_of(kind)
        if category == "guard":
            guard[cause] = guard.get(cause, 0) + n
        elif category == "agent":
            tamper += n
    failures = CounterMetricFamily("drygate_guard_failures", "guard failures (the gate blocked a call because "
                                   "it could not decide), from the alert log, by cause", labels=["cause"])
    for cause, n in sorted(guard.items()):
        failures.add_metric([cause], n)
    misses = CounterMetricFamily("drygate_deadline_misses", "guard failures of the gate's own deadline, soft or hard",
                                 value=sum(guard.get(c, 0) for c in health.DEADLINE_CAUSES))
    tampered = CounterMetricFamily("drygate_tamper", "calls denied because the agent tried to change the gate",
                                   value=tamper)
    return [failures, misses, tampered]


def make_registry(settings, checkpoint=True):
    """A new ``CollectorRegistry`` holding one :class:`GateCollector` for ``settings``."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(GateCollector(settings, checkpoint=checkpoint))
    return registry


def exposition(registry):
    """The registry's metrics in the Prometheus text format (bytes)."""
    from prometheus_client import generate_latest

    return generate_latest(registry)


def serve_in_thread(registry, host, port):
    """Serve ``GET /metrics`` (any path, as prometheus_client does) on ``host:port`` from a
    daemon thread; returns the server (its ``server_port`` is the bound port). Raises
    OSError when the address cannot be bound."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
