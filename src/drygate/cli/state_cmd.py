"""``drygate state``: set up and inspect the state store (``init``, ``info``).

A store is used only once it carries drygate's marker: ``drygate state init`` creates
it (Redis: drygate.state.redis; SQLite: the file, its marker and this machine's record
of it, drygate.integrity), and ``--recover`` re-creates it after the store lost its
data (Redis restarted empty; a SQLite file deleted, replaced or put back from an older
copy), making every run dry for a while because the store can no longer tell which
runs were dry.
"""

import time

import click
from rich.text import Text

from drygate.cli.common import _fail, _open_store, _settings, out, project_option
from drygate.errors import DrygateError


@click.group()
def state():
    """Set up and inspect the state store (SQLite file or Redis)."""


def _describe(store, location):
    """A dict describing ``store`` for ``info`` (never raises for a reachable store)."""
    from drygate.state.resp import redact

    info = {"location": redact(location) if "://" in location else location, "kind": type(store).__name__}
    info["marker"] = store.marker()
    info["initialized"] = bool(info["marker"])
    if "://" in location:
        info["eviction_policy"] = store.eviction_policy()
        info["persistence"] = store.persistence()
    elif location not in ("memory:", ":memory:"):
        from drygate import integrity

        info["record"] = integrity.read_record(location)
        info["identity"] = integrity.identity_problem(location, store, info["record"]) or "matches this machine's record"
    return info


@state.command("init")
@project_option
@click.option("--recover", "recover_hours", type=float, default=None, metavar="HOURS",
              help="The store lost its data (Redis restarted empty; a SQLite file deleted, replaced or put back "
                   "from an older copy): re-create the marker and make every run dry for HOURS.")
def init(project, recover_hours):
    """Initialize the state store: drygate's marker (and for SQLite the file and this machine's record)."""
    settings = _settings(project)
    dry_until = None if recover_hours is None else time.time() + recover_hours * 3600
    try:
        location = _location(settings)
        if location not in ("memory:", ":memory:") and "://" not in location:
            _init_sqlite(location, dry_until, recover_hours is not None)
            return
        store, policy = _open_store(settings)
        created, store_id = store.initialize(dry_until=dry_until)
        info = _describe(store, location)
    except DrygateError as e:
        _fail(str(e))
    if not created:
        out.print(Text(f"state store {info['location']} was already initialized (store {store_id}); "
                       f"nothing changed"))
        return
    out.print(Text(f"initialized state store {info['location']} (store {store_id})"))
    if dry_until is not None:
        out.print(Text(f"every run is dry until {time.strftime('%Y-%m-%d %H:%M', time.localtime(dry_until))}"))
    for warning in persistence_warnings(info):
        out.print(Text("warning: " + warning, style="yellow"))


def _location(settings):
    from drygate.policy.cache import load_policy

    import os

    policy = load_policy(settings.policy_path, None) if os.path.exists(settings.policy_path) else {}
    return settings.state_path_for(policy)


def _init_sqlite(location, dry_until, recover):
    """`drygate state init` for a SQLite store (drygate.integrity.initialize_store)."""
    from drygate.integrity import initialize_store

    status, store_id = initialize_store(location, dry_until=dry_until, recover=recover)
    words = {"created": "initialized new", "adopted": "initialized (kept its data)",
             "recovered": "recovered (new marker, data kept where readable)",
             "exists": "already initialized:"}
    out.print(Text(f"state store {location} {words[status]} (store {store_id})"
                   + ("; nothing changed" if status == "exists" else "")))
    if dry_until is not None:
        out.print(Text(f"every run is dry until {time.strftime('%Y-%m-%d %H:%M', time.localtime(dry_until))}"))


def persistence_warnings(info):
    """Why a Redis store's acknowledged decisions could be lost (list of str; empty: none)."""
    p = info.get("persistence") or {}
    warnings = []
    if p and p.get("aof_enabled") != "1":
        warnings.append("Redis runs without the append-only file (appendonly no): a restart loses recent "
                        "decisions and the store's marker; use `appendonly yes` and `appendfsync always`")
    elif p and p.get("appendfsync") not in (None, "always"):
        warnings.append(f"Redis syncs its append-only file {p.get('appendfsync')}: a crash can lose the last "
                        f"second of acknowledged decisions; use `appendfsync always`")
    return warnings


@state.command("info")
@project_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info_cmd(project, as_json):
    """Where the state store is, whether it is initialized, and how durable it is."""
    import json

    settings = _settings(project)
    try:
        store, policy = _open_store(settings, create=False)
        if store is None:
            _fail("no state store yet in this project")
        info = _describe(store, settings.state_path_for(policy))
    except DrygateError as e:
        _fail(str(e))
    info["warnings"] = persistence_warnings(info)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        out.print(Text(f"{key}: {value}"))
