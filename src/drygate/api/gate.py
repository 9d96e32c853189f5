"""The Python API's gate: open it, start or join a run, decide Python tool calls.

An enforcement point like the Claude Code hook and the MCP relay, in-process: a Python
tool call (a name the policy matches plus its arguments) is classified, decided and
journaled by the same engine and state store, in the run the caller is in.

- :func:`open_gate` opens a gate from a project (its ``drygate.toml`` and state store, as
  the hook finds them) or from explicit settings (a policy text or dict and a store, e.g.
  :class:`drygate.state.memory.MemoryStore` in tests).
- :meth:`Gate.run` starts or joins a run: a context manager, sync and async, kept in a
  :mod:`contextvars` variable (so asyncio tasks and ``contextvars.copy_context`` threads
  see it). Its mode is the strictest of the policy's, ``DRYGATE_MODE``, the enclosing
  run's (a run inside a dry run is dry), the run's stored mode and the one asked for:
  never looser, as ``drygate run`` does.
- :meth:`Gate.decide` decides one call. Classification for a Python tool: the policy's
  rules first (first match wins, as everywhere), then the effect declared where the tool
  was gated, else ``unknown`` (a write). Claude Code's built-in tool knowledge is not
  used: a Python function called ``Write`` is not Claude Code's Write.
- Any failure of the gate (store down or slow, bad policy, a crash) blocks the call
  (fail closed) and emits a guard-failure alert on the alert channel; the caller gets a
  :class:`drygate.api.results.NotExecuted` with action ``error``.

Python tools are journaled with host ``python``; ``drygate plan`` turns their dry calls
into steps of kind ``python`` that ``drygate apply`` runs by calling the function the
project declares appliable (drygate.api.executor).
"""

import contextvars
import os
import time
import uuid

import itertools

from drygate.api.results import GUARD_ERROR, NotExecuted
from drygate.engine import classify as engine_classify
from drygate.engine import explain, journal_entry, request_for
from drygate.errors import DrygateError, GuardFailure
from drygate.policy.match import find_rule
from drygate.types import ALLOW, DRY, UNKNOWN, WRITE_EFFECTS, Classification, Decision, ToolCall, stricter_mode

#: The host name Python tool calls are journaled with.
HOST = "python"
#: Call ids this process gives calls that come without one: a random prefix and a counter
#: (unique across processes and hosts, cheaper than a uuid4 per call).
_CALL_IDS = itertools.count(1)
_CALL_PREFIX = f"py-{uuid.uuid4().hex[:12]}-"

_RUN = contextvars.ContextVar("drygate_run", default=None)
#: The admission (drygate.api.tools._Admission) of a call an enforcement point (a framework adapter)
#: has decided and now runs: that tool's gated function is not decided twice; None otherwise.
_ADMITTED = contextvars.ContextVar("drygate_admitted", default=None)
#: The idempotency key of the plan step ``drygate apply`` is executing (None otherwise).
_IDEMPOTENCY_KEY = contextvars.ContextVar("drygate_idempotency_key", default=None)


class NoRunError(DrygateError, RuntimeError):
    """A gated tool was called outside any run and has no gate of its own to start one.

    Raised instead of running the tool: which run (and so which mode) it belongs to is
    unknown, and guessing could run a write for real during a dry run."""


def current_run():
    """The :class:`Run` the caller is in (from ``with gate.run(...)``), or None."""
    return _RUN.get()


def idempotency_key():
    """The idempotency key of the plan step being applied (str), or None outside ``drygate
    apply``. A tool that talks to an API with idempotency keys passes it on, so a step
    retried after an interrupted apply does not run twice."""
    return _IDEMPOTENCY_KEY.get()


def open_gate(project=None, *, policy=None, store=None, mode=None, alert_log=None, env=None):
    """Open a gate (:class:`Gate`).

    ``project``: the project folder (``drygate.toml``, the state store it names, the alert
    log), default: found from the current directory as the hook finds it. ``policy``: a
    policy instead of the project's file: TOML text (str) or a parsed document (dict, the
    same tables as drygate.toml). ``store``: a state store instead of the policy's (for
    tests :class:`drygate.state.memory.MemoryStore`). ``mode``: ``live``, ``sticky`` or
    ``dry``, applied to every run of this gate (never looser than the policy).
    ``alert_log``: where guard-failure alerts go (default: the project's; a gate with an
    explicit policy and store and no project writes alerts only to stderr and to
    :func:`drygate.testing.capture`). ``env``: the environment to read ``DRYGATE_*`` from
    (default ``os.environ``).

    Raises :class:`drygate.errors.ConfigError` (a GuardFailure) for a missing or invalid
    policy and :class:`drygate.errors.StoreUnavailable` for a store that cannot be opened.
    """
    from drygate import config
    from drygate.gate import Gate as CoreGate

    env = dict(os.environ if env is None else env)
    if mode is not None and mode not in ("live", "sticky", "dry"):
        from drygate.errors import ConfigError

        raise ConfigError(f"mode must be one of live, sticky, dry, not {mode!r}")
    settings = config.resolve(env, project_dir=os.fspath(project) if project is not None else None)
    if mode is not None:
        settings.mode = stricter_mode(settings.mode, mode) if settings.mode else mode
    if alert_log is not None:
        settings.alert_log = os.path.abspath(os.fspath(alert_log))
    if policy is None and store is None:
        return Gate(CoreGate.open(settings, HOST), log_alerts=True)
    compiled = _compile(policy, settings)
    if store is None:
        from drygate.state import open_store

        store = open_store(settings.state_path_for(compiled), busy_timeout_s=max(0.05, compiled["deadline_ms"] / 2000),
                           synchronous=compiled.get("state_synchronous", "FULL"), policy=compiled)
    log_alerts = project is not None or alert_log is not None or policy is None
    return Gate(CoreGate(settings, compiled, store, HOST), log_alerts=log_alerts)


def _compile(policy, settings):
    from drygate.errors import ConfigError, PolicyError
    from drygate.policy.load import compile_policy, compile_policy_text

    try:
        if policy is None:
            from drygate.policy.cache import load_policy

            return load_policy(settings.policy_path, None)
        if isinstance(policy, (str, bytes)):
            return compile_policy_text(policy, source="<policy given to open_gate>")
        if isinstance(policy, dict):
            import hashlib
            import json

            digest = hashlib.sha256(json.dumps(policy, sort_keys=True, default=str).encode()).hexdigest()
            return compile_policy(policy, source="<policy given to open_gate>", digest=digest)
    except ConfigError:
        raise
    except PolicyError as e:
        raise ConfigError(str(e)) from e
    raise ConfigError(f"policy must be TOML text or a dict, not {type(policy).__name__}")


class Run:
    """One run of the Python API: ``with gate.run(): ...`` or ``async with gate.run(): ...``.

    ``run_id``; ``mode``: the run's effective mode (str) once entered. Entering records
    the run in the state store with that mode (``ensure_run``), so it holds for every
    process that joins the run; a store failure there raises the GuardFailure (after an
    alert) and no tool runs. Re-entrant across nesting: an inner ``gate.run()`` without an
    id joins the enclosing run.
    """

    __slots__ = ("gate", "run_id", "mode", "asked", "_tokens")

    def __init__(self, gate, run_id=None, mode=None):
        if mode is not None and mode not in ("live", "sticky", "dry"):
            from drygate.errors import ConfigError

            raise ConfigError(f"mode must be one of live, sticky, dry, not {mode!r}")
        self.gate = gate
        self.run_id = run_id
        self.asked = mode
        self.mode = None
        self._tokens = []

    def _begin(self):
        """Resolve the run's id and mode and record it in the store (not made current)."""
        enclosing = _RUN.get()
        gate = self.gate
        effective = gate.policy["mode"]
        for m in (gate.settings.mode, self.asked):
            if m:
                effective = stricter_mode(effective, m)
        if enclosing is not None and enclosing.mode:
            effective = stricter_mode(effective, enclosing.mode)
            if self.run_id is None and enclosing.gate is gate:
                self.run_id = enclosing.run_id
        if self.run_id is None:
            self.run_id = gate.settings.run_id or f"py-{uuid.uuid4()}"
        try:
            if enclosing is not None and not (enclosing.gate.store is gate.store and enclosing.run_id == self.run_id):
                # Inside a run that went dry (of this gate or of another one, on this store or another):
                # a run started here is dry too, whatever its id.
                parent = enclosing.gate.store.get_run(enclosing.run_id)
                if parent is not None and parent.is_dry:
                    effective = DRY
            elif gate.settings.run_id and gate.settings.run_id != self.run_id:
                parent = gate.store.get_run(gate.settings.run_id)  # inside `drygate run`: never looser than it
                if parent is not None:
                    effective = stricter_mode(effective, DRY if parent.is_dry else parent.mode)
            state = gate.store.ensure_run(self.run_id, effective, time.time())
        except Exception as e:
            gate.guard_failure(e, ToolCall("drygate/run", {}, self.run_id, host=HOST))
            if isinstance(e, GuardFailure):
                raise
            raise GuardFailure(f"cannot start run {self.run_id}: {type(e).__name__}: {e}") from e
        self.mode = state.mode
        return self

    def _start(self):
        self._begin()
        self._tokens.append(_RUN.set(self))
        with self.gate._lock:
            self.gate._open += 1
        return self

    def _end(self):
        _RUN.reset(self._tokens.pop())
        with self.gate._lock:
            self.gate._open -= 1

    def __enter__(self):
        return self._start()

    def __exit__(self, *exc):
        self._end()

    async def __aenter__(self):
        return self._start()

    async def __aexit__(self, *exc):
        self._end()

    @property
    def state(self):
        """The run's :class:`drygate.types.RunState` as the store has it now (None before any call)."""
        return self.gate.store.get_run(self.run_id)

    def __repr__(self):
        return f"Run({self.run_id!r}, mode={self.mode!r})"


class Gate:
    """A gate for Python tool calls (open it with :func:`open_gate`; close it, or use ``with``).

    ``settings``, ``policy`` (compiled), ``store``: as the core gate has them.
    """

    __slots__ = ("core", "_default_run", "_observers", "_log_alerts", "clock", "_runs", "_lock", "_open")

    def __init__(self, core, log_alerts=True, clock=time.time):
        import threading

        self._lock = threading.RLock()  # first use of the default run and of framework runs, across threads
        self._open = 0  # runs of this gate entered with `with gate.run()` and not left yet (any thread)
        self.core = core
        self._default_run = None
        self._runs = {}
        self._observers = []
        self._log_alerts = log_alerts
        self.clock = clock

    settings = property(lambda self: self.core.settings)
    policy = property(lambda self: self.core.policy)
    store = property(lambda self: self.core.store)

    # -- runs -------------------------------------------------------------------------

    def run(self, run_id=None, mode=None):
        """A :class:`Run` to enter (``with`` or ``async with``): ``run_id`` (default: join the
        enclosing run of this gate, else ``DRYGATE_RUN_ID``, else a new ``py-<uuid>``) and the
        ``mode`` asked for (the effective mode is never looser than the policy, the
        environment, the enclosing run or the stored run)."""
        return Run(self, run_id, mode)

    def run_for_call(self):
        """The run a call of this gate belongs to: the current run if it is this gate's,
        else the gate's own default run (started on first use, as :meth:`run` would).

        Raises :class:`NoRunError` for a call made outside any run while a run of this gate is
        open elsewhere: the call lost its run's context (a thread started without
        ``contextvars.copy_context()``), and putting it in another run could run a write of a
        dry run for real."""
        run = _RUN.get()
        if run is not None and run.gate is self:
            return run
        if run is not None:
            return self._inside(run)
        if self._open:
            raise NoRunError("a gated tool was called outside its run while a run of this gate is open: the call "
                             "lost the run's context (a thread started without contextvars.copy_context()?), so "
                             "which run it belongs to is unknown. It was NOT executed; call it inside the run (e.g. "
                             "executor.submit(contextvars.copy_context().run, fn, ...))")
        with self._lock:
            if self._default_run is None:
                self._default_run = Run(self)._begin()  # not made current: the gate's fallback, used explicitly
        return self._default_run

    def _inside(self, outer):
        """The run of a call of this gate made inside ``outer``, a run of another gate: the same
        run id, never looser than ``outer`` as it stands now (dry once it went dry), made again
        on every call since ``outer`` may go dry between calls."""
        return Run(self, outer.run_id, outer.mode)._begin()

    def joined(self, run_id=None, mode=None):
        """The run a framework's tool call belongs to (for adapters): the current run when the
        caller is inside one of this gate's runs; else the run ``run_id`` the framework names
        (a thread id, a session id), started on first use as :meth:`run` would and kept;
        else :meth:`run_for_call`. Raises GuardFailure when a new run cannot be recorded."""
        run = _RUN.get()
        if run is not None and run.gate is self:
            return run
        if run is not None:  # inside another gate's run: that run, never looser (see _inside)
            return self._inside(run)
        if run_id is None:
            return self.run_for_call()
        key = (str(run_id), mode)
        cached = self._runs.get(key)
        if cached is None:
            with self._lock:
                cached = self._runs.get(key)
                if cached is None:
                    cached = Run(self, str(run_id), mode)._begin()
                    if len(self._runs) >= 4096:
                        self._runs.pop(next(iter(self._runs)))
                    self._runs[key] = cached
        return cached

    # -- tools ------------------------------------------------------------------------

    def tool(self, fn=None, *, name=None, effect=None, exclude=()):
        """Gate a function with this gate (see :func:`drygate.api.tools.tool`)."""
        from drygate.api.tools import tool

        return tool(fn, name=name, effect=effect, exclude=exclude, gate=self)

    def wrap(self, tools, *, effects=None):
        """Gate every callable of a registry with this gate (see :func:`drygate.api.tools.wrap`)."""
        from drygate.api.tools import wrap

        return wrap(tools, effects=effects, gate=self)

    # -- deciding ---------------------------------------------------------------------

    def decide(self, name, tool_input, *, effect=None, run=None, call_id=None, agent_id=None, host=None):
        """Decide one Python tool call; returns a :class:`drygate.types.Decision` (journaled).

        ``name``: the tool's name as the policy matches it; ``tool_input``: its arguments
        (a JSON-ready dict); ``effect``: the effect declared for the tool (used when no
        policy rule matches; None: unknown); ``run``: a :class:`Run` (default: the current
        one, see :meth:`run_for_call`); ``call_id``: the host's id of the call; ``host``: the
        enforcement point to journal (default ``python``: plan steps run through ``[python]
        appliable``; an adapter gating MCP tools under their ``mcp__server__tool`` name passes
        its own, so their steps run on the MCP server as the relay's do).

        Never raises for a failing gate: the call is blocked and a guard-failure alert is
        emitted; the decision's action is then ``error``."""
        call = ToolCall(name, tool_input, None, call_id or f"{_CALL_PREFIX}{next(_CALL_IDS)}", agent_id, None,
                        host or HOST)
        try:
            run = run or self.run_for_call()
            call.run_id = run.run_id
            cls = self.classify(call, effect)
            outcome = self.store.transact(run.run_id, request_for(cls, run.mode),
                                          journal_entry(call, cls, self.policy.get("hash", "")), self.clock)
            state = outcome.run
            if outcome.action == ALLOW:  # explain()'s text for allow, without summarising the input
                reason = f"drygate allowed this {cls.effect} call ({cls.reason})."
            else:
                reason = explain(name, tool_input, cls.effect, cls.reason, outcome.action, run.run_id,
                                 outcome.made_run_dry, state.dry_call, outcome.call, cls.tamper, state.dry_cause,
                                 state.mode)
            if outcome.action == "ask":
                reason += (" Until a human approves it (a framework's approvals, where the adapter has them), the "
                           "call is NOT executed.")
            if outcome.action == "dry" and outcome.call is not None and "drygate:ref:" not in reason:
                reason += (f" If a later call needs a value this call would have returned, pass the reference token "
                           f"drygate:ref:{outcome.call} (its whole result) or drygate:ref:{outcome.call}:FIELD (one "
                           f"field, e.g. drygate:ref:{outcome.call}:id) instead of a made-up value; `drygate apply` "
                           f"substitutes the real value.")
            decision = Decision(outcome.action, reason, cls.effect, cls.rule_id, outcome.seq, outcome.made_run_dry,
                                outcome.dry_because_of, cls.tamper, run.run_id, outcome.call)
        except Exception as e:  # fail closed: whatever went wrong, the call does not run
            why = self.guard_failure(e, call)
            decision = Decision(GUARD_ERROR, f"drygate BLOCKED this call: the gate could not decide it ({why}). The "
                                f"call was NOT executed; nothing was changed.", effect or UNKNOWN, "guard-failure",
                                run_id=call.run_id)
        if decision.tamper:
            from drygate.alerts import TAMPER

            self.alert(TAMPER, "self-protection", decision.reason, call)
        for observer in self._observers:
            observer.decided(call, decision)
        return decision

    def classify(self, call, effect=None):
        """The :class:`drygate.types.Classification` of a Python tool call: the policy's
        rules, then the declared ``effect``, else unknown; self-protection on writes."""
        if find_rule(self.policy, call.tool_name, call.tool_input) is not None:
            return engine_classify(call, self.policy, self.core.engine.protected)
        if effect is not None:
            cls = Classification(effect, f"declared effect {effect} of the Python tool {call.tool_name}", "declared")
        else:
            cls = Classification(UNKNOWN, f"no policy rule and no declared effect for the Python tool "
                                          f"{call.tool_name!r}", "default")
        if cls.effect in WRITE_EFFECTS and self.core.engine.protected is not None:
            from drygate.classifiers import protect

            protected = self.core.engine.protected
            if isinstance(protected, tuple):
                protected = self.core.engine.protected = protect.for_project(*protected)
            tamper = protect.check(call, protected, True)
            if tamper:
                return Classification(cls.effect, tamper, "self-protection", action="deny", tamper=True)
        return cls

    def decide_approved(self, name, tool_input, *, effect=None, run=None, call_id=None, host=None):
        """Decide a call a human approved through a framework's native approvals.

        The approval holds only for the exact arguments drygate asked about: the journal must
        hold an ``ask`` decision of this ``call_id`` in the run whose input has the same
        fingerprint as ``tool_input``. The call is then decided again (journaled): when the
        policy still asks (the run is live), the answer is ``allow``; a run that went dry
        since, or a changed policy, decides as it would (dry, deny). Other arguments, or no
        such ask, are denied. Returns a Decision."""
        from drygate.plan.fingerprint import fingerprint

        run = run or self.run_for_call()
        decision = self.decide(name, tool_input, effect=effect, run=run, call_id=call_id, host=host)
        if decision.action != "ask":
            return decision
        try:
            asked = [e for e in self.store.journal(run.run_id) if e.get("kind") == "call" and
                     e.get("call_id") == call_id and e.get("action") == "ask" and e.get("seq") != decision.seq]
        except Exception as e:
            why = self.guard_failure(e)
            return Decision(GUARD_ERROR, f"drygate BLOCKED this call: the gate could not check its approval ({why}). "
                            f"The call was NOT executed.", decision.effect, "guard-failure", run_id=run.run_id)
        if not asked:
            return Decision("deny", f"drygate DENIED this call: it was marked approved, but drygate never asked about "
                            f"call {call_id!r} in run {run.run_id}. The call was NOT executed.", decision.effect,
                            "approval", decision.seq, run_id=run.run_id, call=decision.call)
        if fingerprint(asked[0]["tool_input"]) != fingerprint(tool_input):
            return Decision("deny", "drygate DENIED this call: the approval was given for other arguments than the "
                            "ones it would run with (an approval holds for the exact arguments shown). The call was "
                            "NOT executed.", decision.effect, "approval", decision.seq, run_id=run.run_id,
                            call=decision.call)
        try:  # the journal shows who let it run: the approval, next to the two asks
            self.store.record_result(run.run_id, call_id, "drygate/approval",
                                     {"approved": True, "asked_call": asked[0]["call"], "call": decision.call},
                                     self.clock())
        except Exception as e:
            why = self.guard_failure(e)
            return Decision(GUARD_ERROR, f"drygate BLOCKED this call: the gate could not journal its approval ({why}). "
                            f"The call was NOT executed.", decision.effect, "guard-failure", run_id=run.run_id)
        return Decision("allow", f"approved by a human for exactly these arguments (asked at call {asked[0]['call']})",
                        decision.effect, decision.rule_id, decision.seq, run_id=run.run_id, call=decision.call)

    def record_read(self, decision, name, call_id, value):
        """Journal the fingerprint of an allowed read's result, so ``drygate apply`` can re-run it
        and refuse a plan whose basis changed. Only for tools ``[python] appliable`` declares
        (apply can re-run nothing else); never raises (a failure here is alerted, and the read
        has happened already)."""
        if decision.action != ALLOW or decision.effect != "read" or name not in (
                self.policy.get("python_appliable") or ()):
            return
        try:
            from drygate.api.tools import to_json
            from drygate.plan.fingerprint import fingerprint

            self.store.record_result(decision.run_id, call_id, name,
                                     {"read_fingerprint": fingerprint(to_json(value, exact=False))}, self.clock())
        except Exception as e:
            self.guard_failure(e)

    def new_call_id(self):
        """A call id for a call that comes without one (unique across processes)."""
        return f"{_CALL_PREFIX}{next(_CALL_IDS)}"

    def not_executed(self, decision, name, tool_input):
        """The :class:`NotExecuted` value standing for a call ``decision`` did not allow."""
        return NotExecuted(decision.action, name, tool_input, decision.run_id, decision.call, decision.effect,
                           decision.reason, decision)

    # -- alerts -----------------------------------------------------------------------

    def guard_failure(self, error, call=None):
        """Report a failure of the gate as a guard-failure alert; returns the reason (str)."""
        from drygate.alerts import GUARD_FAILURE

        cause = error.cause if isinstance(error, GuardFailure) else "crash"
        reason = f"{type(error).__name__}: {error}"
        self.alert(GUARD_FAILURE, cause, reason, call)
        return reason

    def alert(self, kind, cause, reason, call=None):
        """Emit an alert on the guard-failure channel (observers first; never raises)."""
        for observer in self._observers:
            try:
                observer.alerted(kind, cause, reason, call)
            except Exception:
                pass
        if self._log_alerts:
            self.core.alert(kind, cause, reason, call)
        else:
            import sys

            sys.stderr.write(f"drygate ALERT ({kind}/{cause}): {reason}\n")

    def observe(self, observer):
        """Add an observer (``decided(call, decision)``, ``alerted(kind, cause, reason, call)``);
        returns a function that removes it. drygate.testing.capture uses this."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    # -- plan and apply ---------------------------------------------------------------

    def plan(self, run_id):
        """The plan artifact (dict) of ``run_id`` (as ``drygate plan RUN --out`` writes it).
        Raises PlanError for an unknown run or one with nothing to apply."""
        from drygate.plan.apply import record_planned
        from drygate.plan.artifact import make_plan

        plan = make_plan(self.store, run_id, self.policy, self.settings.project_dir)
        record_planned(self.store, plan)
        return plan

    async def aapply(self, plan, *, force=False, resume=False, ui=None, who=None, accept_unchecked=False):
        """Apply ``plan`` (a dict from :meth:`plan` or drygate.plan.artifact.load_plan) as
        ``drygate apply`` does; returns ``{"status", "done", "total", "stopped_at", "why"}``.
        ``accept_unchecked``: as ``drygate apply --accept-unchecked``, apply steps that come after
        reads apply cannot re-check (journaled with the plan hash); by default such a plan is
        refused. Raises drygate.plan.apply.ApplyRefused before any step when the plan is refused."""
        from drygate.gate import protected_state_file
        from drygate.plan.apply import Applier
        from drygate.plan.executors import McpServers

        settings = self.settings
        protected = (settings.project_dir, settings.policy_path,
                     protected_state_file(settings, settings.state_path_for(self.policy)),
                     settings.alert_log_for(self.policy))
        async with McpServers(settings.project_dir) as servers:
            applier = Applier(plan, self.store, settings.project_dir, self.policy, servers, ui or _QuietUI(),
                              force=force, resume=resume, who=who, protected=protected,
                              accept_unchecked=accept_unchecked)
            return await applier.run()

    def apply(self, plan, **options):
        """:meth:`aapply` from synchronous code (runs its own event loop)."""
        import anyio

        return anyio.run(lambda: self.aapply(plan, **options))

    def close(self):
        """Close the state store."""
        self.core.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _QuietUI:
    def step_started(self, step):
        pass

    def step_done(self, step, result, note=None):
        pass

    def note(self, text):
        pass

    def confirm_shell(self, step):
        return False
