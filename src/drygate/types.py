"""Value types shared by the engine, the stores and the enforcement points.

Plain slotted classes and string constants, on purpose: ``dataclasses``, ``enum``
and ``typing`` each cost several milliseconds to import, and the Claude Code hook
pays every import on every tool call (bench/hook_startup.py measures it).

Vocabulary (DESIGN.md): a *run* is one agent execution; a *tool call* is a tool
name plus input; its *effect* says what it does to the world; a *decision* says
what the gate does with it; the *mode* of a run is live, dry or sticky.
"""

# Effects of a tool call.
READ = "read"
WRITE = "write"
SIDE_EFFECT_READ = "side_effect_read"  # a read that changes state: queue pop, nextval()
EXTERNAL = "external"  # irreversible or open-world: e-mail, payment
UNKNOWN = "unknown"  # treated as a write
BOOKKEEPING = "bookkeeping"  # the agent's own session state (TodoWrite): changes nothing outside

EFFECTS = (READ, WRITE, SIDE_EFFECT_READ, EXTERNAL, UNKNOWN, BOOKKEEPING)
#: Effects that are gated as writes: dry in a dry run, never allowed after the run went dry.
WRITE_EFFECTS = frozenset((WRITE, SIDE_EFFECT_READ, EXTERNAL, UNKNOWN))

# Modes of a run, in order of strictness: a run's mode only ever gets stricter.
LIVE = "live"
STICKY = "sticky"
DRY = "dry"
MODES = (LIVE, STICKY, DRY)
MODE_STRICTNESS = {LIVE: 0, STICKY: 1, DRY: 2}

# Decisions.
ALLOW = "allow"  # execute
SKIP_DRY = "dry"  # skip, answer with an honest "not executed"
DENY = "deny"  # block
ASK = "ask"  # needs a human
ACTIONS = (ALLOW, SKIP_DRY, DENY, ASK)


def stricter_mode(a, b):
    """Return the stricter of two modes (``live`` < ``sticky`` < ``dry``)."""
    return a if MODE_STRICTNESS[a] >= MODE_STRICTNESS[b] else b


class ToolCall:
    """One tool call as an enforcement point hands it to the engine.

    ``tool_name``: the host's name (``Bash``, ``mcp__srv__tool``); ``tool_input``: a
    dict (the tool's arguments); ``run_id``: the run it belongs to; ``call_id``: the
    host's id for the call (may be None); ``agent_id``: the sub-agent that made it
    (None for the main agent); ``cwd``: the agent's working directory (for relative
    paths); ``host``: which enforcement point saw it (``claude-code``, ``replay``);
    ``annotations``: the MCP tool annotations the server declared, or None (used only
    for servers the policy trusts); ``env``: the environment a shell command runs with, as
    journaled (drygate.context.journal_env), or None.
    """

    __slots__ = ("tool_name", "tool_input", "run_id", "call_id", "agent_id", "cwd", "host", "annotations", "env")

    def __init__(self, tool_name, tool_input, run_id, call_id=None, agent_id=None, cwd=None, host=None,
                 annotations=None, env=None):
        self.tool_name = tool_name
        self.tool_input = tool_input
        self.run_id = run_id
        self.call_id = call_id
        self.agent_id = agent_id
        self.cwd = cwd
        self.host = host
        self.annotations = annotations
        self.env = env

    def __repr__(self):
        return f"ToolCall({self.tool_name!r}, run={self.run_id!r}, call={self.call_id!r})"


def context_of(call):
    """The context (dict, the shape drygate.context describes) of a :class:`ToolCall`, or None
    when it has none. Here, not in drygate.context, so the journal entry of a call that is not
    a Bash command imports nothing more (0.1 ms of a hook process)."""
    if call.cwd is None and call.env is None:
        return None
    return {"cwd": call.cwd, "env": call.env}


class Classification:
    """What the classifiers say about a call, before the run state is consulted.

    ``effect``: one of EFFECTS; ``reason``: why (human-readable); ``rule_id``: the
    policy rule that decided it, or the built-in classifier's name; ``dry_scope``:
    in a sticky run this write makes the run dry; ``action``: a fixed action the
    policy asks for (``deny`` or ``ask``) or None; ``tamper``: the call would change
    the gate itself (settings, policy, state, environment) and is denied in every mode.
    """

    __slots__ = ("effect", "reason", "rule_id", "dry_scope", "action", "tamper")

    def __init__(self, effect, reason, rule_id, dry_scope=False, action=None, tamper=False):
        self.effect = effect
        self.reason = reason
        self.rule_id = rule_id
        self.dry_scope = dry_scope
        self.action = action
        self.tamper = tamper

    def __repr__(self):
        return f"Classification({self.effect!r}, rule={self.rule_id!r}, dry_scope={self.dry_scope})"


class TransitionRequest:
    """What the engine asks a state store to do atomically for one call.

    ``mode``: the mode the caller asks for (the run's stored mode can only get
    stricter); ``gated``: the call is a write and is subject to the run's dry state;
    ``triggers_dry``: in a sticky run this write makes the run dry; ``action_if_live``:
    the action when the call is not skipped (``allow``, ``ask`` or ``deny``).
    The store applies :func:`drygate.engine.apply_transition` to it in one atomic step.
    """

    __slots__ = ("mode", "gated", "triggers_dry", "action_if_live")

    def __init__(self, mode, gated, triggers_dry, action_if_live):
        self.mode = mode
        self.gated = gated
        self.triggers_dry = triggers_dry
        self.action_if_live = action_if_live


class RunState:
    """A run's durable state.

    ``mode``: the run's mode (only ever gets stricter); ``dry_since``: journal
    sequence number of the call that made the run dry, or None while it is live;
    ``dry_at``: when (seconds since the epoch) or None; ``dry_cause``: the tool name
    of the call that made the run dry, or None; ``dry_call``: that call's number
    within the run (1-based), or None; ``created_at``, ``last_seen_at``: seconds since
    the epoch; counters of calls (``calls`` also numbers them within the run).
    """

    __slots__ = ("run_id", "mode", "dry_since", "dry_at", "dry_cause", "dry_call", "created_at",
                 "last_seen_at", "calls", "writes", "dry_writes", "allowed_writes", "denied", "asked")

    def __init__(self, run_id, mode, dry_since=None, dry_at=None, dry_cause=None, dry_call=None, created_at=0.0,
                 last_seen_at=0.0, calls=0, writes=0, dry_writes=0, allowed_writes=0, denied=0, asked=0):
        self.run_id = run_id
        self.mode = mode
        self.dry_since = dry_since
        self.dry_at = dry_at
        self.dry_cause = dry_cause
        self.dry_call = dry_call
        self.created_at = created_at
        self.last_seen_at = last_seen_at
        self.calls = calls
        self.writes = writes
        self.dry_writes = dry_writes
        self.allowed_writes = allowed_writes
        self.denied = denied
        self.asked = asked

    @property
    def is_dry(self):
        """True once the run is dry: in dry mode, or since a dry write in a sticky run."""
        return self.dry_since is not None or self.mode == DRY

    def as_dict(self):
        """The state as a JSON-ready dict."""
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self):
        return f"RunState({self.run_id!r}, mode={self.mode!r}, dry_since={self.dry_since!r})"


class Outcome:
    """What a state store's atomic transition decided for one call.

    ``action``: one of ACTIONS; ``seq``: the call's journal sequence number (the
    decision order, strictly increasing per store); ``call``: the call's number
    within its run (1-based); ``ts``: when it was decided (epoch s, read inside the
    atomic step, so it never goes backwards against ``seq``); ``made_run_dry``: this call made
    the run dry; ``dry_because_of``: sequence number of the call that made the run
    dry (None if not dry); ``run``: the run state after the transition.
    """

    __slots__ = ("action", "seq", "call", "ts", "made_run_dry", "dry_because_of", "run")

    def __init__(self, action, seq, made_run_dry, dry_because_of, run, call=None, ts=None):
        self.action = action
        self.seq = seq
        self.call = call
        self.ts = ts
        self.made_run_dry = made_run_dry
        self.dry_because_of = dry_because_of
        self.run = run


class Decision:
    """The gate's answer for one tool call.

    ``action``: ``allow``, ``dry``, ``deny`` or ``ask``; ``reason``: text for the
    agent and the journal (for ``dry`` it says plainly that nothing was executed);
    ``effect``; ``rule_id``; ``seq``: journal sequence number; ``call``: number of
    the call within its run; ``made_run_dry``; ``dry_because_of``: journal sequence
    number of the call that made the run dry; ``tamper``: denied because it would
    change the gate itself.
    """

    __slots__ = ("action", "reason", "effect", "rule_id", "seq", "made_run_dry", "dry_because_of",
                 "tamper", "run_id", "call")

    def __init__(self, action, reason, effect, rule_id, seq=None, made_run_dry=False, dry_because_of=None,
                 tamper=False, run_id=None, call=None):
        self.action = action
        self.reason = reason
        self.effect = effect
        self.rule_id = rule_id
        self.seq = seq
        self.made_run_dry = made_run_dry
        self.dry_because_of = dry_because_of
        self.tamper = tamper
        self.run_id = run_id
        self.call = call

    @property
    def executes(self):
        """True only for ``allow``: every other action leaves the real tool unexecuted."""
        return self.action == ALLOW

    def as_dict(self):
        """The decision as a JSON-ready dict."""
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self):
        return f"Decision({self.action!r}, effect={self.effect!r}, seq={self.seq!r})"
