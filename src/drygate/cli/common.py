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
