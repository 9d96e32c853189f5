"""What every ``drygate`` command module shares: the consoles, the project option, the
project's settings and store, and how a command fails (one line, exit status 1).

Command modules (app, state_cmd, apply_cmd, health_cmd) import from here, never from
each other, so any of them can be imported first.
"""

import os
import sys

import click
from rich.console import Console
from rich.text import Text

out = Console(soft_wrap=False, highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # messages stay whole lines (logs, grep)


def _settings(project):
    """The :class:`drygate.config.Settings` of ``project`` (None: found from the cwd)."""
    from drygate.config import resolve

    return resolve(os.environ, project_dir=project)


def _open_store(settings, create=True):
    """The project's store (using the policy's state path when the policy loads) and policy.

    With ``create=False`` a store that does not exist yet is not created: returns
    ``(None, policy)``, so reading commands leave no state behind.
    """
    from drygate.policy.cache import load_policy
    from drygate.state import open_store

    policy = {}
    if os.path.exists(settings.policy_path):
        policy = load_policy(settings.policy_path, None)
    path = settings.state_path_for(policy)
    if not create and path not in ("memory:", ":memory:") and "://" not in path and not os.path.exists(path):
        return None, policy
    return open_store(path, policy=policy), policy


def _fail(message):
    """Print ``drygate: message`` on stderr and exit with status 1."""
    err.print(Text.assemble(("drygate: ", "red"), str(message)))
    sys.exit(1)


def resolve_run_id(store, name):
    """The full run id that ``name`` names in ``store`` (str).

    ``name`` is a whole run id, ``latest`` (the most recently seen run other than
    doctor's probes), or a prefix that exactly one run id starts with, as git takes an
    abbreviated commit id. Exits with a one-line error (status 1) when no run or more than
    one run matches.
    """
    runs = [r.run_id for r in store.list_runs()]
    if name == "latest":
        runs = [r for r in runs if r != "drygate-doctor"]
        if not runs:
            _fail("no runs yet")
        return runs[0]
    if name in runs:
        return name
    matches = [r for r in runs if r.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        _fail(f"no run {name!r} in this project (see `drygate runs`)")
    shown = ", ".join(sorted(matches)[:5]) + (", ..." if len(matches) > 5 else "")
    _fail(f"run prefix {name!r} is ambiguous: {len(matches)} runs start with it ({shown})")


def short_run_ids(run_ids, min_length=8):
    """For each id in ``run_ids``, the shortest prefix of at least ``min_length`` characters
    that no other id shares (dict id -> prefix); an id shorter than that stays whole."""
    ordered = sorted(set(run_ids))
    short = {}
    for i, run_id in enumerate(ordered):
        length = min_length
        for neighbour in (ordered[i - 1] if i else None, ordered[i + 1] if i + 1 < len(ordered) else None):
            if neighbour is None:
                continue
            common = 0
            for a, b in zip(run_id, neighbour):
                if a != b:
                    break
                common += 1
            length = max(length, common + 1)
        short[run_id] = run_id[:length]
    return short


def _when(ts, today=None):
    """A compact local time: HH:MM:SS today, else YYYY-MM-DD HH:MM."""
    if ts is None:
        return "-"
    import datetime

    t = datetime.datetime.fromtimestamp(ts)
    if t.date() == (today or datetime.date.today()):
        return t.strftime("%H:%M:%S")
    return t.strftime("%Y-%m-%d %H:%M")


def _cells(*values):
    """Table cells as plain text: agent input must never be read as rich markup."""
    return [v if isinstance(v, Text) else Text(str(v)) for v in values]


project_option = click.option("--project", type=click.Path(file_okay=False), default=None,
                              help="Project folder (default: nearest folder with drygate.toml or .claude/).")
