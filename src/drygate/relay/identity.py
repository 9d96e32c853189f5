"""Which run a relay's calls belong to: a run is the agent, not the connection.

:func:`run_id_from_env` picks the run a stdio relay starts in, first match wins:

1. ``DRYGATE_RUN_ID`` (the operator names the run; a client cannot leave it);
2. ``CLAUDE_CODE_SESSION_ID`` (Claude Code 2.1 passes it to its MCP servers, so the
   hook and the relay share one run);
3. the client process, identified by its pid, its start time (``/proc/<pid>/stat``
   field 22, clock ticks since boot) and the boot id
   (``/proc/sys/kernel/random/boot_id``), so a reused pid or a reboot is a new
   run. Every relay one client process starts, at once or one after another, is in
   one run: LangChain's default ``get_tools()`` starts a relay per tool call, and a
   sticky run that went dry in one of them stays dry in the next. The client is the
   nearest ancestor that is not a launcher (:func:`client_pid`): a shell wrapper
   that does not ``exec``, ``npx``, ``uvx`` or a venv script that waits for its
   child hands the relay its own stdin and stdout (a logging wrapper,
   ``sh -c 'drygate mcp ... | tee log'``, at least one of them), so an ancestor whose
   fd 0 or fd 1 is one of the relay's own pipes is passed over, and the first one
   that shares neither (the process that made the pipes to talk to the relay) is the
   client.
4. where ``/proc`` cannot tell (not Linux), a run per connection (``mcp-<uuid>``).

A client may still name a run in ``_meta["drygate/run_id"]`` (:class:`RunIdentity`).
The HTTP relay gives each session its own run instead (drygate.relay.http).
"""

import os
import uuid

#: The ``_meta`` key a client names its run with.
RUN_META_KEY = "drygate/run_id"


def process_identity(pid):
    """``"<pid>-<start ticks>-<boot id prefix>"`` of a live process, or None when /proc cannot tell.

    The start time is field 22 of ``/proc/<pid>/stat`` (proc(5)); the command name
    (field 2) is in parentheses and may itself hold spaces or parentheses, so the
    fields are counted after its last ``)``.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        fields = stat[stat.rindex(b")") + 2:].split()
        start = int(fields[19])  # field 22 overall: fields 3.. follow the command name
    except (OSError, ValueError, IndexError):
        return None
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip().replace("-", "")[:12]
    except OSError:
        boot = "noboot"
    return f"{pid}-{start}-{boot}"


#: Launchers passed over at most between the relay and its client.
MAX_LAUNCHERS = 8


def _fd_link(pid, fd):
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return None


def _parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return int(stat[stat.rindex(b")") + 2:].split()[1])  # field 4
    except (OSError, ValueError, IndexError):
        return None


def client_pid(pid=None):
    """The pid of the relay's client: the parent, or past it every launcher (see the module docstring).

    ``pid``: the relay's own pid (default this process). Only pipes and sockets are
    followed (a terminal is shared by a whole login session, not passed on by a
    launcher); an ancestor whose fds cannot be read (another user's) ends the walk.
    """
    pid = os.getpid() if pid is None else pid
    parent = _parent_of(pid)
    mine = {fd: link for fd in (0, 1) if (link := _fd_link(pid, fd)) and link.startswith(("pipe:", "socket:"))}
    if parent is None or not mine:
        return parent
    current = parent
    for _ in range(MAX_LAUNCHERS):
        if not any(_fd_link(current, fd) == link for fd, link in mine.items()):
            return current  # shares neither pipe: it made them, the client
        up = _parent_of(current)
        if up is None or up <= 1:
            return current
        current = up
    return current


def run_id_from_env(env, parent_pid=None):
    """The run a stdio relay joins (see the module docstring). ``env``: a mapping;
    ``parent_pid``: the client's pid (default :func:`client_pid`)."""
    named = env.get("DRYGATE_RUN_ID") or env.get("CLAUDE_CODE_SESSION_ID")
    if named:
        return named
    if parent_pid is None:
        parent_pid = client_pid()
    ident = process_identity(parent_pid) if parent_pid else None
    return f"mcp-client-{ident}" if ident else f"mcp-{uuid.uuid4()}"


class RunIdentity:
    """Which run a connection's calls belong to.

    The relay's own run unless the client names another in ``_meta["drygate/run_id"]``.
    A client may join a run only before the connection's first call is decided, only
    when the operator did not fix the run (DRYGATE_RUN_ID), and never away from a run
    that is already dry (a reconnect of a session that went dry): naming a run can join
    stickiness, never leave it.

    ``is_dry(run_id)``: whether a run is dry now (may raise GuardFailure).
    """

    META_KEY = RUN_META_KEY

    def __init__(self, run_id, fixed=None, is_dry=None):
        self.run_id = run_id
        self.fixed = bool(os.environ.get("DRYGATE_RUN_ID")) if fixed is None else fixed
        self.is_dry = is_dry or (lambda run_id: False)
        self.decided = False

    def run_for(self, meta):
        """The run for a call whose request ``_meta`` is ``meta`` (dict). May raise GuardFailure."""
        named = meta.get(self.META_KEY) if isinstance(meta, dict) else None
        if (isinstance(named, str) and named and named != self.run_id and not self.fixed and not self.decided
                and not self.is_dry(self.run_id)):
            self.run_id = named
        self.decided = True
        return self.run_id
