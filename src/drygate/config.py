"""Where things are and which mode a run asks for: resolved once, at the edge.

No module reads the environment at import time; enforcement points call
:func:`resolve` with the environment they were given and pass the result down.

Environment (all optional):

- ``DRYGATE_POLICY``: the policy file (default ``<project>/drygate.toml``);
- ``DRYGATE_STATE``: the SQLite state file (default: the policy's ``[state] url`` or
  ``path``, relative to the project; ``memory:`` for an in-process store);
- ``DRYGATE_STATE_URL``: a Redis store (``redis://...``, see drygate.state.redis);
  wins over ``DRYGATE_STATE`` and the policy, so a fleet's hosts can share one store
  (and keep its password out of the policy file);
- ``DRYGATE_MODE``: ``live``, ``sticky`` or ``dry``: makes runs stricter than the
  policy's mode, never looser;
- ``DRYGATE_RUN_ID``: the run id (default: the host's session id);
- ``DRYGATE_ALERT_LOG``: where guard-failure alerts are appended (default: the
  policy's ``[alerts] log``, else ``<project>/.drygate/alerts.jsonl``).
"""

import os

from drygate.types import MODES

DEFAULT_POLICY_NAME = "drygate.toml"
DEFAULT_STATE = os.path.join(".drygate", "state.db")
DEFAULT_ALERT_LOG = os.path.join(".drygate", "alerts.jsonl")
#: Suffix of the alert sinks' rate-limit state file (drygate.alerts), next to the alert log.
RATE_STATE_SUFFIX = ".ratelimit"
#: Suffix of the alert-log tally checkpoint (drygate.health.AlertTally), next to the alert log.
TALLY_SUFFIX = ".tally"


def sidecar_paths(log_path):
    """The files drygate keeps next to the alert log at ``log_path`` (tuple of str): the
    sinks' rate-limit state and the metrics' tally checkpoint. Self-protection guards
    them like the log: forging them would hold alerts back or falsify the counts."""
    return (log_path + RATE_STATE_SUFFIX, log_path + TALLY_SUFFIX)


class Settings:
    """Resolved locations and overrides for one process.

    ``project_dir``: absolute path; ``policy_path``: absolute path; ``state_path``:
    absolute path, a store URL (``redis://...``), ``memory:`` or None (None: take it
    from the policy);
    ``alert_log``: absolute path or None (None: take it from the policy);
    ``mode``: the mode asked for by the environment or None; ``run_id``: override or None.
    """

    __slots__ = ("project_dir", "policy_path", "state_path", "alert_log", "mode", "run_id")

    def __init__(self, project_dir, policy_path, state_path, alert_log, mode, run_id):
        self.project_dir = project_dir
        self.policy_path = policy_path
        self.state_path = state_path
        self.alert_log = alert_log
        self.mode = mode
        self.run_id = run_id

    def state_path_for(self, policy):
        """The state location: the environment's, else the policy's ``[state] url``, else
        its ``path`` under the project (a path, a store URL or ``memory:``)."""
        if self.state_path:
            return self.state_path
        if policy.get("state_url"):
            return policy["state_url"]
        return os.path.join(self.project_dir, policy.get("state_path") or DEFAULT_STATE)

    def alert_log_for(self, policy=None):
        """The alert log: ``DRYGATE_ALERT_LOG``, else the policy's, else the default."""
        if self.alert_log:
            return self.alert_log
        rel = (policy or {}).get("alert_log") or DEFAULT_ALERT_LOG
        return os.path.join(self.project_dir, rel)


def is_store_url(location):
    """True when a state location is a URL (``redis://...``) rather than a file path."""
    return isinstance(location, str) and "://" in location


def find_project_dir(start, home=None):
    """The nearest folder at or above ``start`` holding drygate.toml or .claude/, else ``start``.

    The home folder's ``.claude/`` is Claude Code's user configuration, not a
    project, so it does not make the home folder a project (a ``drygate.toml`` does).
    """
    here = os.path.abspath(start)
    home = os.path.abspath(home or os.path.expanduser("~"))
    cur = here
    while True:
        if os.path.exists(os.path.join(cur, DEFAULT_POLICY_NAME)) or (
                cur != home and os.path.isdir(os.path.join(cur, ".claude"))):
            return cur
        parent = os.path.dirname(cur)
        if parent == cur:
            return here
        cur = parent


def resolve(env, project_dir=None, cwd=None):
    """Resolve :class:`Settings` from an environment mapping.

    ``project_dir``: explicit project root (``--project``), else ``CLAUDE_PROJECT_DIR``,
    else the nearest folder above ``cwd`` with a policy or ``.claude/``.
    Raises :class:`ConfigError` for an invalid ``DRYGATE_MODE``.
    """
    project = project_dir or env.get("CLAUDE_PROJECT_DIR") or find_project_dir(cwd or os.getcwd())
    project = os.path.abspath(project)
    policy = env.get("DRYGATE_POLICY") or os.path.join(project, DEFAULT_POLICY_NAME)
    state = env.get("DRYGATE_STATE_URL") or env.get("DRYGATE_STATE") or None
    if state and state not in ("memory:", ":memory:") and not is_store_url(state):
        state = os.path.abspath(os.path.join(project, state))
    alert_log = env.get("DRYGATE_ALERT_LOG") or None
    mode = (env.get("DRYGATE_MODE") or "").strip().lower() or None
    if mode is not None and mode not in MODES:
        from drygate.errors import ConfigError

        raise ConfigError(f"DRYGATE_MODE must be one of {', '.join(MODES)}, not {mode!r}")
    return Settings(project, os.path.abspath(os.path.join(project, policy)), state,
                    os.path.abspath(os.path.join(project, alert_log)) if alert_log else None,
                    mode, env.get("DRYGATE_RUN_ID") or None)
