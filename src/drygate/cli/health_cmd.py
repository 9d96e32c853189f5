"""``drygate status`` and ``drygate metrics``: the gate's own health, apart from the agents'.

``status`` prints one screen (or ``--json``) from :func:`drygate.health.gate_status`
and exits 1 when the gate is FAILING (``--strict``: also when DEGRADED), so it can be
a health check. ``metrics`` prints the Prometheus text exposition once, or serves it
(``--serve [HOST:]PORT``) until interrupted.
"""

import json
import sys

import click
from rich.table import Table
from rich.text import Text

from drygate.cli.common import _cells, _settings, _when, err, out, project_option

_STYLE = {"OK": "bold green", "DEGRADED": "bold yellow", "FAILING": "bold red"}


@click.command()
@project_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--alerts", "last_n", type=click.IntRange(0, 1000), default=10, show_default=True,
              help="How many of the last alerts to show.")
@click.option("--strict", is_flag=True, help="Exit 1 when DEGRADED too (default: only when FAILING).")
def status(project, as_json, last_n, strict):
    """Is the gate healthy? The store, the policy, guard failures, the last alerts, decisions, runs.

    OK: the gate decides. DEGRADED: it decides, but failed in the last hour, its store
    is slow, or its alert log cannot be written. FAILING: it blocks calls now (policy
    does not load, store does not answer, or guard failures in the last 5 minutes).
    Exit status 1 when FAILING (with --strict, DEGRADED too), else 0.
    """
    from drygate.health import DEGRADED, FAILING, gate_status

    report = gate_status(_settings(project), last_n=last_n)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        _print_status(report)
    if report["verdict"] == FAILING or (strict and report["verdict"] == DEGRADED):
        sys.exit(1)


def _print_status(s):
    out.print(Text.assemble(("drygate: ", "bold"), (s["verdict"], _STYLE[s["verdict"]]),
                            f"   ({s['project']})"))
    for reason in s["reasons"]:
        out.print(Text(f"  - {reason}"))
    p, st = s["policy"], s["store"]
    policy = (f"loads (mode {p['mode']}, deadline {p['deadline_ms']} ms)" if p["loads"]
              else Text(f"DOES NOT LOAD: {p['error']}", style="red"))
    if st["reachable"] and st["latency_ms"] is not None:
        store = f"answers a ping in {st['latency_ms']:.2f} ms"
    elif st["reachable"]:
        store = "not created yet (the first decision creates it)"
    else:
        store = Text(f"DOES NOT ANSWER: {st['error']}", style="red")
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row(*_cells("policy", Text.assemble(Text(p["path"] + ": "), policy)))
    table.add_row(*_cells("state store", Text.assemble(Text(f"{st['kind']} {st['location']}: "), store)))
    g = s["guard_failures"]
    table.add_row(*_cells("guard failures", f"{g['last_5m']} in the last 5 min; last hour: {_by_cause(g['last_hour'])}; "
                                            f"last day: {_by_cause(g['last_day'])}; deadline misses today: "
                                            f"{s['deadline_misses_last_day']}"))
    a = s["agent_alerts"]
    table.add_row(*_cells("agent alerts", f"last hour: {_by_cause(a['last_hour'])}; last day: {_by_cause(a['last_day'])}"
                                          " (the gate stopped the agent; not a gate failure)"))
    totals = {}
    for by_action in s["decisions"].values():
        for action, n in by_action.items():
            totals[action] = totals.get(action, 0) + n
    decided = ", ".join(f"{n} {a}" for a, n in sorted(totals.items())) or "none yet"
    table.add_row(*_cells("decisions", f"{decided}; {s['runs_went_dry']} run(s) went dry"))
    for host, lat in sorted(s["latency"].items()):
        p50 = f"{lat['p50_ms']:g} ms" if lat["p50_ms"] is not None else "-"
        p99 = f"{lat['p99_ms']:g} ms" if lat["p99_ms"] is not None else "over 20 s"
        table.add_row(*_cells(f"latency {host}", f"{lat['count']} decisions, mean {lat['mean_ms']:.1f} ms, "
                                                 f"p50 <= {p50}, p99 <= {p99}"))
    r = s["runs"]
    if r is not None:
        table.add_row(*_cells("runs", f"{r['total']} ({r['dry']} dry); active in the last hour: "
                                      f"{r['active_last_hour']} ({r['active_dry']} dry)"))
    out.print(table)
    if s["last_alerts"]:
        alerts = Table(title=f"last {len(s['last_alerts'])} alert(s) ({s['alert_log']})", title_justify="left")
        for col in ("when", "category", "kind", "cause", "run", "summary"):
            alerts.add_column(col, overflow="fold")
        from drygate.alerts import category_of

        for item in s["last_alerts"]:
            ts = item.get("ts") if isinstance(item.get("ts"), (int, float)) else None
            alerts.add_row(*_cells(_when(ts), category_of(item) or "-", item.get("kind"), item.get("cause") or "",
                                   item.get("run_id") or "-", item.get("summary") or item.get("reason")
                                   or item.get("line", "")))
        out.print(alerts)
    else:
        out.print(Text(f"no alerts in {s['alert_log']}"))


def _by_cause(table):
    return ", ".join(f"{cause} {n}" for cause, n in sorted(table.items(), key=lambda kv: -kv[1])) or "none"


@click.command()
@project_option
@click.option("--serve", "address", default=None, metavar="[HOST:]PORT",
              help="Serve GET /metrics on this address (default host 127.0.0.1) until interrupted.")
def metrics(project, address):
    """Prometheus metrics of the gate's health: print them once, or serve them.

    Decisions, runs that went dry and decision latency come from the state store
    (the whole fleet's when the store is shared); guard failures, deadline misses and
    tamper from this machine's alert log; drygate_store_up and drygate_policy_up
    from a ping of the store and a load of the policy.
    """
    from drygate.metrics import exposition, make_registry

    registry = make_registry(_settings(project))
    if address is None:
        sys.stdout.buffer.write(exposition(registry))
        sys.stdout.flush()
        return
    import time

    from drygate.metrics import serve_in_thread
    from drygate.relay.http import parse_address

    try:
        host, port = parse_address(address)
    except ValueError:
        raise click.BadParameter(f"wants [HOST:]PORT, not {address!r}", param_hint="--serve") from None
    try:
        server = serve_in_thread(registry, host, port)
    except OSError as e:
        err.print(Text(f"drygate: cannot listen on {host}:{port}: {e.strerror or e}", style="red"))
        sys.exit(1)
    err.print(Text(f"drygate metrics: serving http://{host}:{server.server_port}/metrics (Ctrl-C stops)"))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
