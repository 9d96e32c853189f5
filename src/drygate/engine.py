"""The policy decision point: tool call + run state -> decision.

Pure logic. The only side effect of a decision is one atomic call to the state
store (:meth:`drygate.state.base.StateStore.transact`), which applies
:func:`apply_transition` to the run's state and appends the journal entry in the
same step, so two parallel calls can never both see "not dry yet" (case CC-09).

Order of classification (DESIGN.md): self-protection, then the policy's rules
(first match wins), then built-in knowledge (Claude Code's tools, shell commands),
then ``unknown``. Unknown, external and side-effect reads are gated like writes.

Decision table for a gated call (a write), in this order:

1. the rule says ``deny``                 -> deny
2. the run is already dry                 -> dry (because of the call that made it dry)
3. run mode ``dry``                       -> dry, and this call makes the run dry
4. run mode ``sticky`` and rule ``dry``   -> dry, and this call makes the run dry
5. otherwise                              -> the rule's ``ask``, else allow

A call that is not gated (read, bookkeeping) gets the rule's action, else allow.
Tamper (the call would change the gate itself) is denied in every mode.

Because a call that is not gated gets the same action whatever its run's state, an
allowed read of a run that exists can be journaled after it ran, with its result, in
one store step (:meth:`Engine.decide_read`, :class:`PendingRead`; the MCP relay does).
"""

from drygate.types import (
    ALLOW, DENY, DRY, SKIP_DRY, STICKY, UNKNOWN, WRITE_EFFECTS,
    Classification, Decision, Outcome, RunState, TransitionRequest, context_of, stricter_mode,
)


def classify(call, policy, protected=None):
    """Classify ``call`` (ToolCall) under ``policy`` (compiled dict).

    ``protected``: :class:`drygate.classifiers.protect.ProtectedPaths`, or the
    arguments of :func:`drygate.classifiers.protect.for_project` as a tuple (built
    only when a call needs the check: reads of non-file tools never import it), or None.
    Returns a :class:`Classification`; never raises for odd input (a tool input
    that is not a dict is classified by name only, and unknown tools are unknown).
    """
    from drygate.policy.match import find_rule

    rule = find_rule(policy, call.tool_name, call.tool_input)
    if rule is not None and rule.get("classify"):
        effect, why = _classify_by_rule(rule, call, policy)
        cls = Classification(effect, f"policy rule {rule['id']} -> {why}", rule["id"], dry_scope=rule["dry"],
                             action=rule["action"])
    elif rule is not None:
        why = rule["reason"] or f"policy rule {rule['id']}: effect {rule['effect']}" + (
            f", action {rule['action']}" if rule["action"] else "")
        cls = Classification(rule["effect"], why, rule["id"], dry_scope=rule["dry"], action=rule["action"])
    else:
        cls = _builtin(call, policy)
    gated = cls.effect in WRITE_EFFECTS
    # Self-protection sees every shell command and file tool call, reads included: it
    # reads them on its own and does not trust the effect found above.
    if protected is not None and (gated or _is_file_tool(call.tool_name) or _runs_shell(call)):
        from drygate.classifiers import protect

        tamper = protect.check(call, protected, gated)  # builds a tuple's ProtectedPaths only if it needs them
        if tamper:
            return Classification(cls.effect, tamper, "self-protection", action=DENY, tamper=True)
    return cls


def _runs_shell(call):
    """As drygate.classifiers.protect.shell_command, without importing it for every call."""
    name = call.tool_name
    if name in ("Bash", "Monitor"):
        return True
    if name.startswith("mcp__") or not isinstance(call.tool_input, dict) or not isinstance(
            call.tool_input.get("command"), str):
        return False
    from drygate.classifiers.claude_code import TOOL_EFFECTS

    return name not in TOOL_EFFECTS


def _is_file_tool(name):
    if name.startswith("mcp__"):
        return False
    from drygate.classifiers.claude_code import FILE_PATH_FIELDS

    return name in FILE_PATH_FIELDS


def _classify_by_rule(rule, call, policy):
    """A rule with ``classify = "sql"`` or ``"http"``: the input's statement or request decides."""
    tool_input = call.tool_input if isinstance(call.tool_input, dict) else {}
    if rule["classify"] == "sql":
        from drygate.classifiers.sql import classify_sql

        text = tool_input.get(rule["sql_argument"])
        if not isinstance(text, str):
            return UNKNOWN, f"no SQL text in the input field {rule['sql_argument']!r}"
        v = classify_sql(text, rule["sql_dialect"], policy.get("_verdict_store"))
    else:
        from drygate.classifiers.http import classify_url_call
        from drygate.classifiers.shell import context_for

        v = classify_url_call(tool_input.get(rule["url_argument"]), tool_input.get(rule["method_argument"]),
                              context_for(policy), call.tool_name)
    return v.effect, " -> ".join(v.steps)


def _builtin(call, policy=None):
    name = call.tool_name
    if not name.startswith("mcp__"):
        from drygate.classifiers import claude_code

        cls = claude_code.classify(call, policy)
        if cls is not None:
            return cls
    if name.startswith("mcp__") and call.annotations is not None and policy is not None:
        cls = _mcp_annotations(call, policy)
        if cls is not None:
            return cls
    return Classification(UNKNOWN, f"no rule or built-in knowledge classifies {name!r}", "default")


def _mcp_annotations(call, policy):
    """MCP tool annotations, only for a server the policy trusts ([mcp] trusted_servers).

    Annotations are hints and their defaults are the worst case (MCP spec 2025-06-18,
    "Tool annotations": readOnlyHint false, destructiveHint true, openWorldHint true), so
    only ``readOnlyHint: true`` from a trusted server makes a call a read."""
    from drygate.policy.match import name_candidates

    trusted = policy.get("mcp_trusted") or ()
    servers = {n.split("__")[1] for n in name_candidates(call.tool_name) if n.count("__") >= 2}
    if not servers & set(trusted):
        return None
    annotations = call.annotations if isinstance(call.annotations, dict) else {}
    if annotations.get("readOnlyHint") is True:
        return Classification("read", "annotated readOnlyHint by a trusted server", "mcp-annotations")
    return Classification("write", "a trusted server's tool not annotated read-only", "mcp-annotations")


def request_for(cls, mode):
    """The :class:`TransitionRequest` for a classification in a run asking for ``mode``."""
    gated = cls.effect in WRITE_EFFECTS or cls.tamper
    action_if_live = cls.action or ALLOW
    return TransitionRequest(mode, gated, cls.dry_scope, action_if_live)


def apply_transition(state, run_id, request, seq, now, tool_name=None):
    """Apply one call to a run's state: the single rule every store implements atomically.

    ``state``: the run's :class:`RunState` or None for a new run (mutated and
    returned); ``request``: :class:`TransitionRequest`; ``seq``: the journal
    sequence number this call gets; ``now``: seconds since the epoch.
    Returns ``(state, outcome)`` (``outcome.call`` numbers the call within its
    run, ``outcome.ts`` is ``now``). Invariants: the mode only gets stricter; once
    ``dry_since`` is set it never changes; a gated call after it is never allowed.
    ``tool_name`` is remembered as the run's ``dry_cause`` when this call makes it dry.
    """
    if state is None:
        state = RunState(run_id, request.mode, created_at=now, last_seen_at=now)
    else:
        state.mode = stricter_mode(state.mode, request.mode)
    state.calls += 1
    state.last_seen_at = now
    made_dry = False
    if not request.gated:
        action = request.action_if_live
    else:
        state.writes += 1
        if request.action_if_live == DENY:
            action = DENY
        elif state.dry_since is not None:
            action = SKIP_DRY
        elif state.mode == DRY or (state.mode == STICKY and request.triggers_dry):
            action = SKIP_DRY
            made_dry = True
            state.dry_since = seq
            state.dry_at = now
            state.dry_cause = tool_name
            state.dry_call = state.calls
        else:
            action = request.action_if_live
        if action == SKIP_DRY:
            state.dry_writes += 1
        elif action == ALLOW:
            state.allowed_writes += 1
    if action == DENY:
        state.denied += 1
    elif action == "ask":
        state.asked += 1
    dry_because_of = state.dry_since if action == SKIP_DRY else None
    return state, Outcome(action, seq, made_dry, dry_because_of, state, state.calls, now)


def journal_entry(call, cls, policy_hash):
    """The journal fields of a call known before the transition (a dict). ``context``: the
    call's working folder and shell environment (drygate.context), which apply uses."""
    return {
        "call_id": call.call_id,
        "agent_id": call.agent_id,
        "tool_name": call.tool_name,
        "tool_input": call.tool_input,
        "effect": cls.effect,
        "rule_id": cls.rule_id,
        "why": cls.reason,
        "tamper": cls.tamper,
        "policy_hash": policy_hash,
        "host": call.host,
        "context": context_of(call),
    }


class Engine:
    """Decide tool calls for one policy against one state store.

    ``policy``: compiled policy dict (drygate.policy.load); ``store``: a
    :class:`drygate.state.base.StateStore`; ``mode``: the mode runs ask for (None:
    the policy's mode; an explicit mode can only make it stricter);
    ``protected``: :class:`ProtectedPaths`, a tuple of ``for_project`` arguments
    (built lazily), or None; ``clock``: returns seconds.

    :meth:`decide` raises :class:`drygate.errors.GuardFailure` subclasses when the
    store fails; enforcement points turn that into a block plus an alert.
    """

    __slots__ = ("policy", "store", "mode", "protected", "clock")

    def __init__(self, policy, store, mode=None, protected=None, clock=None):
        import time

        self.policy = policy
        self.store = store
        self.mode = stricter_mode(policy["mode"], mode) if mode else policy["mode"]
        self.protected = protected
        self.clock = clock or time.time

    def decide(self, call, blocked=None):
        """Decide one :class:`ToolCall`; returns a :class:`Decision` (journaled).

        ``blocked``: the reason (str) the call's run is blocked (drygate.integrity found a
        change of what the gate protects): the call is then denied as tamper, unclassified.
        """
        if blocked:
            cls = Classification(UNKNOWN, blocked, "integrity", action=DENY, tamper=True)
        else:
            cls = classify(call, self.policy, self.protected)
        return self._transact(call, cls, request_for(cls, self.mode))


    def decide_read(self, call, blocked=None):
        """Decide ``call`` like :meth:`decide`, but journal an allowed read later, with its result.

        Returns ``(decision, pending)``. ``pending`` is None when the call was journaled
        now (as :meth:`decide` does): it is gated (a write), tamper, not allowed, or its
        run is new or would get a stricter mode from it (the transition must create or
        change the run before anything reads its state). Otherwise the call is an allowed
        read of a run that exists (read from the store, not locked): its action does not
        depend on the run's state (decision table above), nothing is written now, and
        ``pending`` (:class:`PendingRead`) must be journaled by the caller with the call's
        result (:meth:`PendingRead.journal`) before the result reaches the agent, or
        without one (:meth:`PendingRead.journal_unanswered`) when it never came. The
        decision's ``seq`` and ``call`` are None until then. Raises GuardFailure.
        """
        if blocked:
            return self.decide(call, blocked), None
        cls = classify(call, self.policy, self.protected)
        request = request_for(cls, self.mode)
        if request.gated or cls.tamper or request.action_if_live != ALLOW:
            return self._transact(call, cls, request), None
        run = self.store.get_run(call.run_id)
        if run is None or stricter_mode(run.mode, request.mode) != run.mode:
            return self._transact(call, cls, request), None
        entry = journal_entry(call, cls, self.policy.get("hash", ""))
        reason = explain(call.tool_name, call.tool_input, cls.effect, cls.reason, ALLOW, call.run_id, False,
                         run.dry_call, run.calls + 1, False, run.dry_cause, run.mode)
        decision = Decision(ALLOW, reason, cls.effect, cls.rule_id, None, False, None, False, call.run_id, None)
        return decision, PendingRead(call.run_id, request, entry, self.clock)

    def _transact(self, call, cls, request):
        entry = journal_entry(call, cls, self.policy.get("hash", ""))
        outcome = self.store.transact(call.run_id, request, entry, self.clock)
        run = outcome.run
        reason = explain(call.tool_name, call.tool_input, cls.effect, cls.reason, outcome.action, call.run_id,
                         outcome.made_run_dry, run.dry_call, outcome.call, cls.tamper, run.dry_cause, run.mode)
        return Decision(outcome.action, reason, cls.effect, cls.rule_id, outcome.seq, outcome.made_run_dry,
                        outcome.dry_because_of, cls.tamper, call.run_id, outcome.call)


class PendingRead:
    """An allowed read decided by :meth:`Engine.decide_read` and not journaled yet.

    ``run_id``; ``request``: its TransitionRequest (not gated); ``entry``: its journal
    fields (:func:`journal_entry`); ``clock``: the engine's clock (the entry's time is
    when it is journaled).
    """

    __slots__ = ("run_id", "request", "entry", "clock")

    def __init__(self, run_id, request, entry, clock):
        self.run_id, self.request, self.entry, self.clock = run_id, request, entry, clock

    def journal(self, store, result):
        """Journal the call and ``result`` (any JSON: what the plan keeps of it) in one store
        step (StateStore.transact_with_result); returns ``(outcome, result_seq)``.
        Raises StoreTimeout / StoreUnavailable."""
        return store.transact_with_result(self.run_id, self.request, self.entry, self.clock, result)

    def journal_unanswered(self, store):
        """Journal the call without a result (its server never answered); returns the Outcome."""
        return store.transact(self.run_id, self.request, self.entry, self.clock)


def summarize_input(tool_name, tool_input, limit=160, with_tool=True):
    """A one-line, human-readable summary of what a call would do (str, at most ``limit``).

    ``with_tool=False`` leaves the tool's name out of generic calls (for tables that
    show it in a column of its own).
    """
    if not isinstance(tool_input, dict):
        text = repr(tool_input)
    elif tool_name == "Bash" and isinstance(tool_input.get("command"), str):
        text = ("run the shell command: " if with_tool else "") + tool_input["command"]
    elif tool_name == "Write" and isinstance(tool_input.get("file_path"), str):
        content = tool_input.get("content")
        n = len(content.encode("utf-8", "replace")) if isinstance(content, str) else None
        size = "" if n is None else f"{n} byte " if n == 1 else f"{n} bytes "
        text = f"write {size}to {tool_input['file_path']}"
    elif tool_name in ("Edit", "MultiEdit", "NotebookEdit"):
        text = f"edit {tool_input.get('file_path') or tool_input.get('notebook_path')}"
    else:
        parts = []
        for k, v in tool_input.items():
            s = v if isinstance(v, str) else repr(v)
            if len(s) > 60:
                s = s[:57] + "..."
            parts.append(f"{k}={s}")
        text = f"call {tool_name}(" + ", ".join(parts) + ")" if with_tool else ", ".join(parts)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def explain(tool_name, tool_input, effect, why, action, run_id, made_run_dry, dry_call, call_number, tamper=False,
            dry_cause=None, mode=None):
    """The reason text for a decision, as the agent (and the journal reader) sees it.

    For ``dry`` it says plainly that the call was NOT executed, what it would have
    done, that the run is in dry-run mode and later writes are skipped too, and that
    the agent must not report the action as done (DESIGN.md, honesty).
    ``dry_call`` and ``call_number`` number calls within the run; ``mode`` is the
    run's mode (a ``dry`` run is dry from its start, no call "made" it dry).
    """
    what = summarize_input(tool_name, tool_input)
    if tamper:
        return (f"drygate DENIED this call: {why}. Changing drygate's settings, policy, state or "
                f"environment is not allowed in any mode. The call was NOT executed.")
    if action == SKIP_DRY:
        if mode == DRY:
            since = f"run {run_id} is a dry run"
        elif made_run_dry:
            since = f"this call (call {call_number} of the run) put run {run_id} into dry-run mode"
        else:
            cause = f" ({dry_cause})" if dry_cause else ""
            since = f"run {run_id} is in dry-run mode since its call {dry_call}{cause}"
        reference = ""
        if tool_name.startswith("mcp__") and call_number is not None:
            reference = (f" If a later call needs a value this call would have returned, pass the reference "
                         f"token drygate:ref:{call_number} (its whole result) or drygate:ref:{call_number}:FIELD "
                         f"(one field of it, e.g. drygate:ref:{call_number}:id) instead of a made-up value; "
                         f"`drygate apply` substitutes the real value.")
        return (f"DRY RUN - NOT EXECUTED. drygate skipped this {effect} call, which would {what}. "
                f"Nothing was changed, and any value it would have returned (ids, etags, row counts) is "
                f"unknown. {since[0].upper() + since[1:]}; every later write in this run will be skipped "
                f"too. Do not report this action as done. You may go on planning; the skipped writes are "
                f"recorded as the run's plan (`drygate plan {run_id}`).{reference}")
    if action == DENY:
        return f"drygate DENIED this call ({why}). The call was NOT executed."
    if action == "ask":
        return f"drygate asks for a human decision: {why}."
    return f"drygate allowed this {effect} call ({why})."

