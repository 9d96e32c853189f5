"""The Claude Code enforcement point: ``drygate hook claude-code``.

Reads one hook event (JSON) on stdin and answers with exactly one JSON object on
stdout. Contract and measured host behaviour: shared/reference/claude-code.md.

- PreToolUse, allow: ``{}`` and exit 0. drygate never answers "allow": an allow
  is a permission grant that overrides the user's own rules; the gate only ever
  takes permission away.
- PreToolUse, dry or deny: a deny inside ``hookSpecificOutput`` **and** exit 2
  with the reason on stderr, so every host version in the reference's table
  blocks (2.1.x reads the JSON or exit 2; 2.0.x honours both). Never
  ``updatedInput`` (several host versions ignore it).
- PreToolUse, ask: ``permissionDecision: "ask"``, exit 0, only from hosts that send
  ``prompt_id`` (2.1.x, which blocks an unanswered ask in ``-p`` mode); from older
  hosts, where "ask" in ``-p`` mode lets the tool run, it is a deny instead.
- PostToolUse: journals the real result of a live call; ``{}``.
- Read-your-writes for the host's own file tools (drygate.file_shadow): a dry Write,
  Edit or MultiEdit is simulated on the run's shadow of the file and the dry answer
  says what the simulation showed (still NOT EXECUTED); a Read of a file this run's
  dry writes changed gets the run's version as PostToolUse ``additionalContext``, and
  a Read of a file that exists only in the run's shadow is answered with a block
  carrying that version. A shadow that cannot be used is a guard failure.
- Any failure (exception, malformed stdin, state store locked or slow, policy
  unreadable, own deadline passed): deny JSON, exit 2, reason on stderr, and a
  guard-failure alert. Two deadlines back this up: a soft one (SIGALRM raises
  inside the decision) and a hard one (``faulthandler`` exits the process from a
  C thread, even when the main thread is stuck in C; the installed wrapper turns
  that exit into exit 2).
- After a PreToolUse decision's answer is written and flushed, its latency (from
  this module's entry to the flushed answer) is added to the state store's counters
  (drygate.counters, one ``add_counters`` call) for ``drygate metrics``. Best effort:
  a watchdog thread ends the process with the answer's own exit status if that
  write takes longer than ``RECORD_BUDGET_S``, and a failure is ignored, so the
  record can never change the answer, its exit status, or delay it past the budget.

Imports on this path are only the standard library's built-in modules and
drygate's own small modules (no json, re, argparse, dataclasses): the host starts
this process for every tool call (bench/hook_startup.py). A Bash command loads the
shell parser, and SQL in it the SQL parser, only then
(tests/test_hook_failures.py::test_hook_imports_stay_lean checks the rest).
"""

import os
import sys

HOOK_NAME = "claude-code"
MAX_INPUT_BYTES = 16 * 1024 * 1024
MAX_RESULT_CHARS = 64 * 1024
#: Seconds past the soft deadline before the hard deadline kills the process.
HARD_DEADLINE_GRACE_S = 1.0
#: Longest the latency record may hold the process after the answer (s); then it exits
#: with the answer's status, the record lost.
RECORD_BUDGET_S = 0.25


class _Answer:
    __slots__ = ("stdout", "stderr", "code", "store", "verdicts")

    def __init__(self, stdout, stderr="", code=0):
        self.stdout = stdout
        self.stderr = stderr
        self.code = code
        self.store = None  # the store a decision was made in: main() records its latency there
        self.verdicts = ()  # (key, effect, steps) to keep in that store's verdict cache after the answer


def _deny(reason, event_name="PreToolUse"):
    from drygate import _json

    if event_name != "PreToolUse":
        # Other events cannot deny a tool; a legacy block still stops what can be stopped.
        body = {"decision": "block", "reason": reason}
    else:
        body = {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                       "permissionDecisionReason": reason}}
    return _Answer(_json.dumps(body), reason, 2)


def fail_closed(error, settings=None, policy=None, call=None, event_name="PreToolUse"):
    """The answer for a guard failure: deny + exit 2 + alert. Never raises."""
    try:
        from drygate.gate import report_guard_failure

        if policy is None:
            policy = _policy_for_alerts(settings)
        why = report_guard_failure(settings, policy, error, call, HOOK_NAME)
    except BaseException as e:  # pragma: no cover - the alert path itself failed
        why = f"{type(error).__name__}: {error} (alert failed: {e})"
    return _deny(f"drygate guard failure: {why}. The gate could not decide, so the call was BLOCKED "
                 f"(fail closed) and NOT executed. A guard-failure alert was raised.", event_name)


def _policy_for_alerts(settings):
    """The policy's alert settings when the failure came before it was loaded; None if unreadable."""
    if settings is None or not settings.policy_path:
        return None
    try:
        import stat

        from drygate.policy.cache import load_policy

        if not stat.S_ISREG(os.stat(settings.policy_path).st_mode):
            return None  # a FIFO or device could block: never on the failure path

        return load_policy(settings.policy_path, os.path.join(settings.project_dir, ".drygate"))
    except BaseException:
        return None


def _parse_args(argv):
    project = None
    rest = list(argv)
    if rest and rest[0] == HOOK_NAME:
        rest.pop(0)
    while rest:
        arg = rest.pop(0)
        if arg == "--project" and rest:
            project = rest.pop(0)
        elif arg.startswith("--project="):
            project = arg.split("=", 1)[1]
        else:
            from drygate.errors import InputError

            raise InputError(f"unknown argument {arg!r} (usage: drygate hook claude-code [--project DIR])")
    return project


def to_call(event, settings):
    """Translate a hook event (dict) into a ToolCall. Raises InputError."""
    from drygate.types import ToolCall

    def bad(message):
        from drygate.errors import InputError

        return InputError(message)

    if not isinstance(event, dict):
        raise bad("hook input is not a JSON object")
    tool_name = event.get("tool_name")
    if not isinstance(tool_name, str) or not tool_name:
        raise bad("hook input has no tool_name")
    tool_input = event.get("tool_input", {})
    if tool_input is None:
        tool_input = {}
    run_id = settings.run_id or event.get("session_id")
    if not isinstance(run_id, str) or not run_id:
        raise bad("hook input has no session_id and DRYGATE_RUN_ID is not set: the run is unknown")
    call_id = event.get("tool_use_id")
    agent_id = event.get("agent_id")
    cwd = event.get("cwd")
    env = None
    if tool_name == "Bash":  # journaled, so that apply runs (and re-checks) it as the agent's shell did
        from drygate.context import journal_env

        env = journal_env(os.environ)
    return ToolCall(tool_name, tool_input, run_id, call_id if isinstance(call_id, str) else None,
                    agent_id if isinstance(agent_id, str) else None,
                    cwd if isinstance(cwd, str) else settings.project_dir, HOOK_NAME, env=env)


def _event_name(event):
    name = event.get("hook_event_name") if isinstance(event, dict) else None
    if name is None and isinstance(event, dict) and "tool_name" in event:
        name = "PostToolUse" if "tool_response" in event else "PreToolUse"
    return name


def handle(event, settings, deadline, lean=True):
    """Decide one parsed hook event; returns an _Answer. Raises GuardFailure.

    ``deadline``: the :class:`_Deadline` of this process; once the policy is loaded
    its ``[gate] deadline_ms`` replaces the default unless the environment set one.
    ``lean``: a hook process (the default): it never creates a state store, and each
    PreToolUse decision checks the fingerprints of what the gate protects
    (drygate.integrity). False for a long-lived process that decides in-process (the
    Agent SDK callbacks): like the relay, it initializes a store on first use and does
    not check fingerprints (its loaded modules are not the hook's).
    """
    from drygate import _json
    from drygate.gate import Gate

    name = _event_name(event)
    if name not in ("PreToolUse", "PostToolUse"):
        from drygate.errors import InputError

        raise InputError(f"drygate handles PreToolUse and PostToolUse, not {name!r}")
    call = to_call(event, settings)
    if settings.state_path in ("memory:", ":memory:"):
        from drygate.errors import ConfigError

        raise ConfigError("DRYGATE_STATE=memory: cannot hold a run's state across hook processes "
                          "(each tool call is a new process); use a file")
    # The gate is not closed here: the process ends right after the answer
    # (exit_main), and closing would run a WAL checkpoint on the hot path.
    gate = Gate.open(settings, HOOK_NAME, deadline, lean=lean, integrity=lean and name == "PreToolUse")
    if name == "PostToolUse":
        result = event.get("tool_response")
        text = result if isinstance(result, str) else _json.dumps(result)
        if len(text) > MAX_RESULT_CHARS:
            result = {"truncated": True, "chars": len(text), "head": text[:MAX_RESULT_CHARS]}
        # A tool's own result cannot make the run dry: it need not wait for the disk (the
        # next gated commit makes it durable), StateStore.record_result.
        gate.store.record_result(call.run_id, call.call_id, call.tool_name, result, _now(), durable=False)
        if call.tool_name == "Read" and _may_have_shadow(settings.project_dir, call.run_id):
            from drygate.file_shadow import read_context  # the host read the real file: add the run's version

            context = read_context(settings.project_dir, call)
            if context:
                return _Answer(_json.dumps({"hookSpecificOutput": {"hookEventName": "PostToolUse",
                                                                   "additionalContext": context}}))
        return _Answer("{}")
    # A Bash command's verdict the cache missed is kept after the answer (record_latency),
    # out of the decision's deadline (drygate.classifiers.command_cache).
    later = gate.policy["_verdicts_later"] = [] if lean else None
    try:
        if call.tool_name.startswith("mcp__") and gate.policy.get("mcp_trusted"):
            call.annotations = _relayed_annotations(gate, call)
        decision = gate.decide(call)
        read_from_shadow = _file_shadow(decision, call, settings)
    except BaseException as e:
        raise _Carry(e, gate.policy, call) from e
    answer = _deny(read_from_shadow) if read_from_shadow else _answer_for(decision, event)
    answer.store = gate.store
    answer.verdicts = later or ()
    return answer


def _relayed_annotations(gate, call):
    """The annotations the relay saw for an MCP tool of a trusted server (dict), or None.

    The host never shows the hook a tool's annotations; the relay journals each server's
    catalog (drygate.state.catalog), so hook and relay decide a relayed tool alike: a
    ``readOnlyHint: true`` tool of a trusted server is a read for both. Only servers the
    policy trusts are looked up ([mcp] trusted_servers; the engine ignores annotations of
    others), so an untrusted server's call costs no query."""
    from drygate.policy.match import name_candidates
    from drygate.state.catalog import annotations_for

    trusted = set(gate.policy.get("mcp_trusted") or ())
    for name in name_candidates(call.tool_name):
        parts = name.split("__")
        if len(parts) >= 3 and parts[0] == "mcp" and parts[1] in trusted:
            catalog = gate.store.latest_catalog(call.run_id, parts[1])
            if catalog is not None:
                return annotations_for({parts[1]: catalog}, name)
    return None


def _file_shadow(decision, call, settings):
    """Read-your-writes for the host's file tools (drygate.file_shadow), after the decision.

    A dry Write/Edit/MultiEdit is simulated on the run's shadow and the result is added
    to ``decision.reason``. An allowed Read of a file that exists only in the run's shadow
    returns the text to block it with (the run's version), else None. Raises ShadowError.
    """
    tool = call.tool_name
    if tool == "Read" and decision.action == "allow" and _may_have_shadow(settings.project_dir, call.run_id):
        from drygate.file_shadow import read_answer

        return read_answer(settings.project_dir, call)
    if decision.action == "dry" and tool in ("Write", "Edit", "MultiEdit"):
        from drygate.file_shadow import dry_file_call

        decision.reason = f"{decision.reason} {dry_file_call(settings.project_dir, call)}"
    return None


def _answer_for(decision, event):
    """The host's answer (_Answer) for a PreToolUse decision."""
    from drygate import _json
    from drygate.types import ASK, SKIP_DRY

    if decision.action == SKIP_DRY or decision.action == "deny":
        return _deny(decision.reason)
    if decision.action == ASK:
        # "ask" lets the tool run on 2.0.x in -p mode (shared/reference/claude-code.md);
        # only 2.1.x, which sends prompt_id, blocks it there, so elsewhere it is a deny.
        if "prompt_id" not in event:
            return _deny(decision.reason + " This host cannot be trusted to ask a human, so the call was "
                         "NOT executed.")
        body = {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "ask",
                                       "permissionDecisionReason": decision.reason}}
        return _Answer(_json.dumps(body))
    return _Answer("{}")


def record_latency(store, seconds, code, budget_s=RECORD_BUDGET_S, verdicts=()):
    """Add one decision latency (``seconds``) to ``store``'s counters, best effort, and
    keep ``verdicts`` (``(key, effect, steps)`` tuples) in its verdict cache.

    Called after the answer was flushed. A watchdog (a bare ``_thread``: no
    ``threading`` on this path) ends the process with exit status ``code``, the
    answer's own, if the store holds the writes for more than ``budget_s`` seconds;
    every error is swallowed. Returns True when the record was written.
    """
    try:
        import _thread

        done = _thread.allocate_lock()
        done.acquire()
        _thread.start_new_thread(_watchdog, (done, budget_s, code))
        try:
            from drygate.counters import latency_increments

            store.add_counters(latency_increments(HOOK_NAME, seconds))
        finally:
            if verdicts:
                from drygate.classifiers.command_cache import keep

                for key, effect, steps in verdicts:
                    keep(store, key, effect, steps)
            done.release()
        return True
    except BaseException:
        return False


def _watchdog(done, budget_s, code):
    """End the process with ``code`` unless ``done`` is released within ``budget_s`` seconds."""
    if not done.acquire(True, budget_s):
        os._exit(code)


def _may_have_shadow(project_dir, run_id):
    """False when run ``run_id`` surely has no file shadow (a stat or two), so a Read does
    not import drygate.file_shadow (0.3-1 ms). Session ids (letters, digits, dashes) are
    their own folder name (drygate.file_shadow.run_key); for other ids only a project
    without any file shadow says False."""
    root = os.path.join(project_dir, ".drygate", "file-shadows")
    if not run_id.replace("-", "").isalnum() or not run_id.isascii() or len(run_id) > 200:
        return os.path.isdir(root)
    return os.path.isdir(os.path.join(root, run_id))


class _Carry(Exception):
    """Carries a failure out of :func:`handle` with the policy and call it happened under."""

    def __init__(self, error, policy, call):
        super().__init__(str(error))
        self.error = error
        self.policy = policy
        self.call = call


def _now():
    import time

    return time.time()


#: The gate's own deadline when neither the environment nor the policy sets one (s).
DEFAULT_DEADLINE_S = 3.0
#: The largest deadline drygate accepts (s): well below the 30 s hook timeout it installs.
MAX_DEADLINE_S = 20.0


class _Deadline:
    """The process's two deadlines: soft (SIGALRM raises DeadlineExceeded in the
    decision) and hard (faulthandler ends the process from a C thread, exit 1, which
    the installed wrapper turns into exit 2). Both are measured from process start."""

    __slots__ = ("start", "seconds", "fixed", "keep_hard")

    def __init__(self, seconds=None):
        self.start = _monotonic()
        self.fixed = seconds is not None
        self.seconds = seconds if seconds is not None else DEFAULT_DEADLINE_S
        # exit_main: the process ends right after its answer, so the hard deadline is left
        # armed (cancelling it waits for faulthandler's thread to be scheduled: up to
        # several ms on a busy machine); it cannot fire first, RECORD_BUDGET_S being
        # shorter than HARD_DEADLINE_GRACE_S.
        self.keep_hard = False

    def remaining(self):
        return max(0.001, self.seconds - (_monotonic() - self.start))

    def arm(self):
        import _signal
        import faulthandler

        seconds = self.seconds

        def on_alarm(signum, frame):
            from drygate.errors import DeadlineExceeded

            raise DeadlineExceeded(f"the decision took longer than the gate's deadline ({seconds:.3g} s)")

        _signal.signal(_signal.SIGALRM, on_alarm)
        _signal.setitimer(_signal.ITIMER_REAL, self.remaining())
        faulthandler.dump_traceback_later(self.remaining() + HARD_DEADLINE_GRACE_S, exit=True)

    def adopt_policy(self, seconds):
        """Use the policy's deadline unless the environment fixed one."""
        if not self.fixed and seconds != self.seconds:
            self.seconds = min(seconds, MAX_DEADLINE_S)
            self.arm()

    def disarm(self):
        import _signal

        _signal.setitimer(_signal.ITIMER_REAL, 0)
        if not self.keep_hard:
            import faulthandler

            faulthandler.cancel_dump_traceback_later()


def _monotonic():
    import time

    return time.monotonic()


def _call_hint(event, settings):
    """A ToolCall-like record of what the event names, for alerts when deciding failed early."""
    if not isinstance(event, dict):
        return None
    from drygate.types import ToolCall

    tool = event.get("tool_name") if isinstance(event.get("tool_name"), str) else None
    run = (settings.run_id if settings else None) or event.get("session_id")
    call_id = event.get("tool_use_id")
    return ToolCall(tool, None, run if isinstance(run, str) else None, call_id if isinstance(call_id, str) else None)


def run(argv, stdin, env, deadline=None):
    """Run the hook: ``argv`` (list of str after ``hook``), ``stdin`` (bytes), ``env``.

    ``deadline``: the process's :class:`_Deadline` (armed here if not given).
    Returns an _Answer (stdout text, stderr text, exit code). Never raises.
    """
    settings = policy = call = event = None
    event_name = "PreToolUse"
    try:
        from drygate import _json

        if deadline is None:
            deadline = _Deadline(_deadline_from_env(env))
            deadline.arm()
        if len(stdin) > MAX_INPUT_BYTES:
            from drygate.errors import InputError

            raise InputError(f"hook input is larger than {MAX_INPUT_BYTES} bytes")
        try:
            event = _json.loads(stdin.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            from drygate.errors import InputError

            raise InputError(f"hook input is not valid JSON: {e}") from e
        event_name = _event_name(event) or "PreToolUse"
        from drygate.config import resolve

        settings = resolve(env, project_dir=_parse_args(argv))
        try:
            return handle(event, settings, deadline)
        finally:
            deadline.disarm()
    except _Carry as c:
        return fail_closed(c.error, settings or _alert_settings(argv, env), c.policy, c.call, event_name)
    except BaseException as e:
        return fail_closed(e, settings or _alert_settings(argv, env), policy, call or _call_hint(event, settings),
                           event_name)


def _alert_settings(argv, env):
    """Settings good enough to find the alert log when resolving them failed."""
    try:
        from drygate.config import Settings

        project = env.get("CLAUDE_PROJECT_DIR") or os.getcwd()
        for i, arg in enumerate(argv):
            if arg == "--project" and i + 1 < len(argv):
                project = argv[i + 1]
        alert_log = env.get("DRYGATE_ALERT_LOG")
        return Settings(os.path.abspath(project), None, None, os.path.abspath(alert_log) if alert_log else None,
                        None, None)
    except BaseException:
        return None


def _deadline_from_env(env):
    """``DRYGATE_DEADLINE_MS`` in seconds, or None. Raises ConfigError when invalid."""
    value = env.get("DRYGATE_DEADLINE_MS")
    if not value:
        return None
    try:
        ms = int(value)
    except ValueError:
        ms = 0
    if not 1 <= ms <= MAX_DEADLINE_S * 1000:
        from drygate.errors import ConfigError

        raise ConfigError(f"DRYGATE_DEADLINE_MS must be an integer from 1 to {int(MAX_DEADLINE_S * 1000)}, "
                          f"not {value!r}")
    return ms / 1000.0


def main(argv=None, _exiting=False):
    """Process entry point: read stdin, write one answer, return its exit code.

    ``_exiting``: the caller (:func:`exit_main`) ends the process right after, so the
    hard deadline is not cancelled (:class:`_Deadline`).
    """
    argv = sys.argv[1:] if argv is None else argv
    env = os.environ
    try:
        deadline = _Deadline(_deadline_from_env(env))
    except BaseException as e:
        deadline = _Deadline()
        early = e
    else:
        early = None
    deadline.keep_hard = _exiting
    deadline.arm()
    try:
        data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    except BaseException as e:
        early = early or e
    answer = fail_closed(early, _alert_settings(argv, env)) if early else run(argv, data, env, deadline)
    out = sys.stdout
    out.write(answer.stdout)
    out.write("\n")
    out.flush()
    if answer.stderr:
        sys.stderr.write(answer.stderr + "\n")
        sys.stderr.flush()
    deadline.disarm()
    if answer.store is not None:  # the host has its answer: now the statistics
        record_latency(answer.store, _monotonic() - deadline.start, answer.code, verdicts=answer.verdicts)
    return answer.code


def exit_main(argv=None):
    """Run :func:`main` and leave the process at once with its exit status.

    ``os._exit`` after the answer is flushed skips interpreter teardown and the
    SQLite checkpoint-on-close (together about 1.5 ms per tool call, measured in
    bench/hook_startup.py); the decision was already committed durably.

    The cyclic garbage collector is off for this short process (it ran several
    collections over the imports' objects, 1.5-1.8 ms per tool call); reference
    counting still frees everything that is not a cycle, and the process ends
    within the deadline anyway.
    """
    import gc

    gc.disable()
    code = main(argv, _exiting=True)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


if __name__ == "__main__":
    exit_main()
