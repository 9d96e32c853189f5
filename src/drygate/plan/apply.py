"""Apply a saved plan: exactly its steps, in order, once, or refuse.

Order of an apply (shared/reference/dry-run-lessons.md, rules 1-5 and 10):

1. :func:`drygate.plan.artifact.load_plan` has verified the file (format, content hash).
2. Claim the run's ledger (compare-and-set in the state store): a plan applies once;
   an applied run, or another plan of the same run, is refused; an interrupted apply
   continues only with ``resume`` (from the first step not confirmed done).
3. Check the basis before the first step (not on resume): the policy's hash, the tools
   the run saw (schemas and annotations, per server), the reads that are safe to repeat
   (re-run, fingerprints compared) and the files the file steps touch. Any difference
   refuses the plan as stale and says what changed; ``force`` goes on and records it.
   A step after a read apply cannot re-check is refused unless ``accept_unchecked``
   (journaled with the plan hash). Reads are repeated by the re-reader of their kind
   (:data:`REREADERS`: MCP, Claude Code's Read, Glob and Grep, shell reads; other kinds plug in with
   :func:`register`).
4. Each step: stop before it when the plan marked a problem, or when it uses a reference
   to a value no earlier step produced; substitute reference tokens with the real values
   of earlier steps; journal it as started, execute it (MCP with its idempotency key,
   file tools on the file the plan saw, shell only when allowed), journal its real result.

Steps run strictly in order and apply stops at the first that fails, so the ledger
record of a run (a dict in the state store, drygate.state.base) stays the same size
whatever the plan's length::

    {"status": "planned" | "applying" | "applied" | "partial" | "refused",
     "plan_hash": str, "planned_at": float, "who": str, "owner": {"host", "pid"} | None,
     "started_at": float | None, "finished_at": float | None, "total": int,
     "done": int (steps 1..done are done), "in_flight": int | None (a step that was
     started and not confirmed: it may have run), "failed": {"step", "error"} | None,
     "basis_checked": bool (absent until the basis check passed or was forced),
     "forced": [str] | None, "reason": str | None}

Every event is journaled in the run (kind ``result``, tool ``drygate/apply``): who,
when, which plan hash, and each step's real result (``step_done``), which is where a
resumed apply finds the values that later steps' reference tokens stand for. A step is
journaled done before the ledger moves past it, so a crash between the two is
recognised on resume and the step is not run again.
"""

import os
import socket
import time

from drygate.errors import PlanError
from drygate.plan.artifact import REFERENCE, SEARCH_TOOLS, read_text
from drygate.plan.executors import StepFailed, apply_file_step, registered_executor, run_shell
from drygate.plan.fingerprint import text_fingerprint

APPLY_TOOL = "drygate/apply"
MAX_RESULT_CHARS = 64 * 1024


class ApplyRefused(PlanError):
    """Apply refused the plan before executing anything; ``reasons``: list of str;
    ``forceable``: ``--force`` would go past it (a stale basis), else False."""

    def __init__(self, message, reasons=(), forceable=None):
        super().__init__(message)
        self.reasons = list(reasons)
        self.forceable = bool(reasons) if forceable is None else forceable


class ApplyStopped(PlanError):
    """Apply stopped before or at a step; the steps before it are done (resumable)."""


def _cut(value):
    import json

    text = json.dumps(value, default=str)
    if len(text) <= MAX_RESULT_CHARS:
        return value
    return {"truncated": True, "chars": len(text), "head": text[:MAX_RESULT_CHARS]}


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


# -- the ledger --------------------------------------------------------------------------

#: Prefix of a run's apply ledger key. Approvals live under ``approval:<hash>``
#: (drygate.plan.approval): every run ledger key starts with ``run:``, so no run id (they
#: are free text: DRYGATE_RUN_ID, an MCP client's _meta) can name an approval's key.
RUN_LEDGER_PREFIX = "run:"


def run_ledger_key(run_id):
    """The state-store ledger key (str) of run ``run_id``'s apply ledger."""
    return RUN_LEDGER_PREFIX + str(run_id)


def run_ledger(store, run_id):
    """The apply ledger record (dict) of run ``run_id``, or None."""
    return store.ledger_get(run_ledger_key(run_id))[1]


def record_planned(store, plan, now=None):
    """Note in the run's ledger that ``plan`` was made (unless an apply holds the run).
    Returns the ledger's status after the call (str)."""
    for _ in range(10):
        version, record = store.ledger_get(run_ledger_key(plan["run_id"]))
        if record is not None and record.get("status") in ("applying", "applied", "partial"):
            return record["status"]
        new = _fresh_record(plan, "planned", plan.get("created_by"), None, None)
        new["planned_at"] = now or time.time()
        if store.ledger_put(run_ledger_key(plan["run_id"]), version, new):
            return "planned"
    raise PlanError("the run's ledger keeps changing under drygate; try again")


def _fresh_record(plan, status, who, owner, now):
    return {"status": status, "plan_hash": plan["content_hash"], "planned_at": plan.get("created_at"), "who": who,
            "owner": owner, "started_at": now, "finished_at": None, "total": len(plan["steps"]), "done": 0,
            "in_flight": None, "failed": None, "forced": None, "reason": None}


def _owner():
    """This process as a ledger owner: ``{"host", "pid"}``."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _claim(store, plan, resume, who, now, takeover=False, me=None):
    """Claim the run for this apply; returns the ledger record (dict). Raises ApplyRefused.

    An apply left "applying" can be resumed by its own host once its process is gone; from
    another host only with ``takeover`` (drygate cannot see whether that process is alive)."""
    run_id, plan_hash = plan["run_id"], plan["content_hash"]
    me = me or _owner()
    for _ in range(10):
        version, record = store.ledger_get(run_ledger_key(run_id))
        status = record.get("status") if record else None
        same = record is not None and record.get("plan_hash") == plan_hash
        if status == "applied":
            what = "this plan" if same else "another plan of this run"
            raise ApplyRefused(f"run {run_id} was already applied ({what}, {record.get('plan_hash')}, by "
                               f"{record.get('who')}): a plan applies once")
        if status in ("applying", "partial"):
            if not same:
                raise ApplyRefused(f"another plan of run {run_id} ({record.get('plan_hash')}) is being or was "
                                   f"partly applied; a run's writes are applied from one plan only")
            if not resume:
                raise ApplyRefused(f"an apply of this plan was interrupted or stopped ({status}, "
                                   f"{record.get('done', 0)} of {record.get('total')} steps done); continue it "
                                   f"with `drygate apply --resume`")
            owner = record.get("owner") or {}
            if status == "applying" and owner.get("host") == me["host"] and owner.get("pid") != me["pid"] \
                    and _pid_alive(owner.get("pid") or 0):
                raise ApplyRefused(f"an apply of this plan is still running (pid {owner.get('pid')})")
            if status == "applying" and owner and owner.get("host") != me["host"] and not takeover:
                raise ApplyRefused(f"an apply of this plan is running or died on host {owner.get('host')} (pid "
                                   f"{owner.get('pid')}); if it is not running any more, `drygate apply --resume "
                                   f"--takeover`")
            new = dict(record, status="applying", owner=me, who=who)
        else:
            if resume:
                raise ApplyRefused(f"there is no interrupted apply of run {run_id} to resume")
            new = _fresh_record(plan, "applying", who, me, now)
        if store.ledger_put(run_ledger_key(run_id), version, new):
            return new
    raise ApplyRefused("the run's ledger keeps changing under drygate (another apply?); try again")


class Applier:
    """Applies one verified plan (drygate.plan.artifact.load_plan).

    ``store``: the run's state store; ``project_dir``; ``policy``: the compiled current
    policy; ``servers``: an open :class:`drygate.plan.executors.McpServers`; ``ui``: an
    object with ``step_started(step)``, ``step_done(step, result, note)``,
    ``confirm_shell(step) -> bool`` and ``note(text)``; ``force``: go on despite a stale
    basis (recorded); ``resume``: continue an interrupted apply; ``allow_shell``: run
    shell steps; ``who``: who applies (recorded); ``protected``: the arguments of
    drygate.classifiers.protect.for_project, to refuse steps that would change the gate;
    ``takeover``: resume an apply another host left "applying" (it must be dead);
    ``retry_in_flight``: run again a shell step that may have run before a crash;
    ``accept_unchecked``: apply steps that come after reads apply cannot re-check (a host
    tool, a shell read without its output, a kind without a re-reader): refused by
    default, naming the reads; accepted, the acceptance is journaled with the plan hash.
    """

    def __init__(self, plan, store, project_dir, policy, servers, ui, force=False, resume=False, allow_shell=False,
                 who=None, clock=time.time, protected=None, takeover=False, retry_in_flight=False,
                 accept_unchecked=False):
        self.plan = plan
        self.store = store
        self.project_dir = project_dir
        self.policy = policy
        self.servers = servers
        self.ui = ui
        self.force = force
        self.resume = resume
        self.allow_shell = allow_shell
        self.who = who or plan.get("created_by")
        self.clock = clock
        self.record = None
        self.results = {}
        self.protected = protected  # drygate.classifiers.protect.for_project arguments, or None
        self.takeover = takeover
        self.retry_in_flight = retry_in_flight
        self.accept_unchecked = accept_unchecked
        self.me = _owner()
        self.execution = {}  # step -> what runs, from the journal (check_static)
        self.notes = []  # what the basis check let pass and the user should know (volatile changes)
        self.unchecked_reads = []  # (read index, text) of basis reads apply could not re-check
        self._entries = None

    # -- checks before anything runs ----------------------------------------------------

    def check_static(self):
        """Refusals that need no server. Raises ApplyRefused when:

        - the plan's steps are not exactly the run's skipped writes as this store journaled
          them (same order, journal seq, call number, tool and input; a reviewer's subset,
          drygate.plan.subset, may leave steps out): a plan edited with its content hash
          recomputed, or applied against another store, runs nothing the run did not plan;
        - its hash was rejected, or the policy requires an approval and it has none
          (drygate.plan.approval);
        - a step would change the gate itself (self-protection, checked again now, from
          the project folder: apply must not be a way around it);
        - there are shell steps and ``allow_shell`` is not set.
        """
        from drygate.plan.approval import approval_problem
        from drygate.plan.build import plan_from_journal
        from drygate.plan.fingerprint import fingerprint
        from drygate.plan.subset import steps_match_journal

        run = self.store.get_run(self.plan["run_id"])
        if run is None:
            raise ApplyRefused(f"this state store never saw run {self.plan['run_id']}: the plan belongs to another "
                               f"store (or this one lost its state), so it is not applied here")
        entries = self.store.journal(self.plan["run_id"])
        journaled = plan_from_journal(run, entries)["steps"]
        mine = [(s["seq"], s["call"], s["tool_name"], fingerprint(s["input"])) for s in self.plan["steps"]]
        theirs = [(s["seq"], s["call"], s["tool_name"], fingerprint(s["input"])) for s in journaled]
        if not steps_match_journal(self.plan, journaled):
            raise ApplyRefused(f"the plan's steps are not the skipped writes run {self.plan['run_id']} journaled "
                               f"({len(mine)} in the plan, {len(theirs)} in the journal, first difference at step "
                               f"{next((i + 1 for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), min(len(mine), len(theirs)) + 1)}); "
                               f"a plan runs only what its run planned. Make a new plan with `drygate plan RUN --out`")
        unapproved = approval_problem(self.store, self.plan, self.policy)  # drygate.plan.approval
        if unapproved:
            raise ApplyRefused(unapproved)
        self.execution = self._execution_from_journal(entries)
        forged = []
        for step in self.plan["steps"]:
            real = self.execution[step["step"]]
            said = {"executor": step["executor"], "file path": (step.get("file") or {}).get("path"),
                    "working folder": step.get("cwd", real["cwd"])}
            for what, value in said.items():
                journaled = real[{"executor": "executor", "file path": "file_path", "working folder": "cwd"}[what]]
                if value != journaled:
                    forged.append(f"step {step['step']}: the plan's {what} is {_brief(value)}, the journal's "
                                  f"{_brief(journaled)}: not the journal's, so the plan does not show what would run")
        if forged:
            raise ApplyRefused("the plan's executors, paths or working folders are not the journal's: "
                               + "; ".join(forged), forged, forceable=False)
        tampering = self._tampering_steps()
        if tampering:
            raise ApplyRefused("the plan would change drygate itself: " + "; ".join(tampering), tampering,
                               forceable=False)
        shell = [s["step"] for s in self.plan["steps"] if s["executor"]["kind"] == "shell"]
        if shell and not self.allow_shell:
            raise ApplyRefused(f"the plan has shell command steps ({', '.join(map(str, shell))}); apply runs them "
                               f"only with --allow-shell, each shown before it runs")

    def _execution_from_journal(self, entries):
        """``{step: {"executor", "cwd", "file_path", "input", "env"}}``: what apply executes for
        each step, from the run's journal entries (drygate.plan.artifact.execution_of)."""
        from drygate.plan.artifact import execution_of

        by_seq = {e["seq"]: e for e in entries if e.get("kind") == "call"}
        out = {}
        for step in self.plan["steps"]:
            e = by_seq[step["seq"]]
            context = e.get("context") if isinstance(e.get("context"), dict) else {}
            out[step["step"]] = dict(execution_of(e["tool_name"], e["tool_input"], context, self.project_dir,
                                                  e.get("host")),
                                     input=e["tool_input"], env=context.get("env"))
        return out

    def _tampering_steps(self):
        """Steps that self-protection denies when seen from the project folder (list of str)."""
        from drygate.engine import classify
        from drygate.types import ToolCall

        protected = self.protected
        if protected is None:
            return []
        found = []
        for step in self.plan["steps"]:
            real = self.execution[step["step"]]
            if real["executor"]["kind"] not in ("file", "shell"):
                continue
            call = ToolCall(step["tool_name"], real["input"], self.plan["run_id"], cwd=real["cwd"], host="apply")
            cls = classify(call, self.policy, protected)
            if cls.tamper:
                found.append(f"step {step['step']}: {cls.reason}")
        return found

    async def check_basis(self):
        """Compare the plan's basis with the world now; returns ``(differences, unchecked)``,
        two lists of str (what changed; what could not be checked)."""
        basis = self.plan["basis"]
        changed, unchecked = [], []
        from drygate.plan.fingerprint import policy_decisions_fingerprint

        if basis.get("policy_decisions"):
            if basis["policy_decisions"] != policy_decisions_fingerprint(self.policy):
                changed.append(f"the policy changed since the plan (what it decides; hash "
                               f"{basis.get('policy_hash', '')[:12]} -> {(self.policy.get('hash') or '')[:12]})")
        elif basis.get("policy_hash") and basis["policy_hash"] != self.policy.get("hash"):
            changed.append(f"the policy changed since the plan (hash {basis['policy_hash'][:12]} -> "
                           f"{(self.policy.get('hash') or '')[:12]})")
        used = {}
        for step in self.plan["steps"]:
            if step["executor"]["kind"] == "mcp":
                used.setdefault(step["executor"]["server"], set()).add(step["executor"]["tool"])
        for read in basis.get("reads", []):
            if read["executor"]["kind"] == "mcp":
                used.setdefault(read["executor"]["server"], set()).add(read["executor"]["tool"])
        for server, tools in sorted(used.items()):
            seen = (basis.get("servers") or {}).get(server)
            try:
                now_tools = await self.servers.tools(server)
            except PlanError as e:
                changed.append(str(e))
                continue
            if seen is None:
                unchecked.append(f"server {server}: its tools were not recorded (the run did not go through the "
                                 f"relay), so their schemas cannot be compared")
                continue
            from drygate.plan.fingerprint import tool_fingerprint

            for tool in sorted(tools):
                before = (seen.get("tools") or {}).get(tool)
                if tool not in now_tools:
                    changed.append(f"server {server} no longer has the tool {tool}")
                elif before is None:
                    unchecked.append(f"{server}/{tool}: not in the tools the run saw")
                elif before.get("fingerprint") != tool_fingerprint(now_tools[tool]):
                    changed.append(f"{server}/{tool} changed its schema or annotations since the plan")
        journaled = self._journaled_reads()
        for i, read in enumerate(basis.get("reads", [])):
            label = f"read {i + 1} (call {read['call']}, {read['tool_name']})"
            if not read.get("repeatable") or not _has_rereader(read_kind(read)):
                why = read["why"] if not read.get("repeatable") else f"no re-reader for {read_kind(read)} reads"
                unchecked.append(f"{label} {_brief(read['input'], 80)}: {why}")
                self.unchecked_reads.append((i, unchecked[-1]))
                continue
            try:
                verdict = await self._check_read(read, journaled.get(read.get("call_id")))
            except (PlanError, StepFailed, OSError) as e:
                changed.append(f"{label} could not be repeated: {e}")
                continue
            if verdict is None:
                continue
            stale, text = verdict
            (changed if stale else self.notes).append(f"{label} {_brief(read['input'], 80)} {text}")
        for path, fp in sorted((basis.get("files") or {}).items()):
            now = text_fingerprint(read_text(path))
            if now != fp:
                changed.append(f"the file {path} changed since the plan"
                               + (" (it is gone)" if now is None else " (it did not exist)" if fp is None else ""))
        return changed, unchecked

    def _journaled_reads(self):
        """``{call id: the result the run journaled}`` (what a read said during the run)."""
        out = {}
        try:
            entries = self.store.journal(self.plan["run_id"])
        except Exception:
            return out
        for e in entries:
            if e.get("kind") == "result" and e.get("call_id"):
                out.setdefault(e["call_id"], e.get("result"))
        return out

    async def _check_read(self, read, journaled):
        """Repeat one read and compare it with the run's; returns None (the same), or
        ``(stale, text)``: ``stale`` False when only what the policy calls volatile
        changed (``[[volatile]]``), True otherwise; ``text`` names the fields that changed.
        The re-reader comes from :data:`REREADERS` by the read's kind (:func:`read_kind`)."""
        from drygate.plan import fingerprint as fpm
        from drygate.policy.match import volatile_for

        rereader = REREADERS.get(read_kind(read))
        if rereader is None:
            repeat = _read_repeater(read_kind(read))
            if repeat is None:
                raise PlanError(f"no re-reader for {read['tool_name']}")
            now_fp = await repeat(self, read)  # a repeater that gives a fingerprint only
            same, before, now = now_fp == read["fingerprint"], None, None
        else:
            same, before, now = await rereader(self, read, journaled)
        if same:
            return None
        fields, patterns = volatile_for(self.policy, read["tool_name"], read["input"])
        if before is None:
            return True, ("returns something else now; the run's result was not journaled in full, so the fields "
                          "that changed cannot be named")
        if fields or patterns:
            import re

            compiled = [re.compile(p) for p in patterns]
            if fpm.fingerprint(fpm.mask(before, fields, compiled)) == fpm.fingerprint(fpm.mask(now, fields, compiled)):
                return False, ("changed only in what the policy calls volatile ([[volatile]]): "
                               + "; ".join(fpm.diff(before, now, limit=4)))
            changes = fpm.diff(fpm.mask(before, fields, compiled), fpm.mask(now, fields, compiled))
            return True, ("returns something else now, beyond the fields the policy calls volatile: "
                          + "; ".join(changes))
        return True, ("returns something else now: " + "; ".join(fpm.diff(before, now))
                      + " (if such a field changes on every call, name it in [[volatile]] of the policy)")

    def journal_entry(self, seq):
        """The run's journal entry of a call (dict) by its ``seq``, or None."""
        if self._entries is None:
            self._entries = {e["seq"]: e for e in self.store.journal(self.plan["run_id"]) if e.get("kind") == "call"}
        return self._entries.get(seq)

    def _reread_file(self, read):
        """The candidates for what a Read of the run would give now (list of str), or None
        when the file is gone: the lines it read, the same without the last newline, the
        whole file. Relative paths resolve in the read's journaled folder."""
        tool_input = read["input"] if isinstance(read["input"], dict) else {}
        cwd = read.get("cwd") if isinstance(read.get("cwd"), str) and os.path.isabs(read["cwd"]) else self.project_dir
        path = os.path.normpath(os.path.join(cwd, tool_input.get("file_path") or ""))
        text = read_text(path)
        if text is None:
            return None
        lines = text.splitlines(keepends=True)
        offset = max(int(tool_input.get("offset") or 1), 1) - 1
        limit = int(tool_input.get("limit") or len(lines))
        part = "".join(lines[offset:offset + limit])
        return [part, part.rstrip("\n"), text]

    # -- the ledger -----------------------------------------------------------------------

    def _update(self, change):
        """Apply ``change(record)`` to the ledger by compare-and-set; keeps ``self.record``."""
        run_id = self.plan["run_id"]
        for _ in range(20):
            version, record = self.store.ledger_get(run_ledger_key(run_id))
            if record is None or record.get("plan_hash") != self.plan["content_hash"] or (
                    record.get("owner") not in (None, self.me) and record.get("status") == "applying"):
                raise ApplyStopped("the run's ledger was changed by someone else during the apply (another apply "
                                   "took it over?); stopping")
            change(record)
            if self.store.ledger_put(run_ledger_key(run_id), version, record):
                self.record = record
                return record
        raise ApplyStopped("the run's ledger keeps changing during the apply; stopping")

    def _journal(self, event, **fields):
        self.store.record_result(self.plan["run_id"], None, APPLY_TOOL,
                                 dict(fields, event=event, plan_hash=self.plan["content_hash"], who=self.who),
                                 self.clock())

    def refuse(self, reasons):
        """Record a refusal (the plan stays unapplied and may be forced or replaced)."""
        def change(r):
            r.update(status="refused", reason="; ".join(reasons)[:2000], finished_at=self.clock(), owner=None)

        try:
            self._update(change)
            self._journal("refused", reasons=reasons)
        except PlanError:
            pass

    # -- running --------------------------------------------------------------------------

    async def run(self):
        """Apply the plan; returns ``{"status", "done", "total", "stopped_at", "why"}``.

        Raises ApplyRefused before any step runs (applied already, stale basis without
        ``force``, shell steps without ``allow_shell``)."""
        self.check_static()
        self.record = _claim(self.store, self.plan, self.resume, self.who, self.clock(), self.takeover, self.me)
        self._journal("resumed" if self.resume else "claimed")
        if not self.record.get("basis_checked"):  # a fresh apply, or one that died in its check
            changed, unchecked = await self.check_basis()
            for line in unchecked:
                self.ui.note(f"unchecked: {line}")
            for line in self.notes:
                self.ui.note(f"volatile: {line}")
            if changed and not self.force:
                self.refuse(changed)
                raise ApplyRefused("the plan is stale: " + "; ".join(changed), changed)
            blind = self._steps_on_unchecked_reads()
            if blind and not self.accept_unchecked:
                self.refuse(blind)
                raise ApplyRefused("steps depend on reads apply cannot re-check: " + "; ".join(blind), blind,
                                   forceable=False)
            if blind:
                self._journal("accepted_unchecked", reads=blind)
                for line in blind:
                    self.ui.note(f"accepted unchecked: {line}")
            if changed:
                self._update(lambda r: r.update(forced=changed))
                self._journal("forced", differences=changed)
                for line in changed:
                    self.ui.note(f"forced past: {line}")
            self._update(lambda r: r.update(basis_checked=True))
        self.results = self._journaled_results()
        done = self.record.get("done", 0)
        while done < len(self.plan["steps"]) and done + 1 in self.results:
            done += 1  # journaled done, and the ledger did not move past it before a crash
        for step in self.plan["steps"][done:]:
            if step.get("skip"):
                self._journal("step_skipped", step=step["step"], why=step["skip"])
                self._update(lambda r, n=step["step"]: r.update(done=n, in_flight=None))
                done += 1
                self.ui.step_done(step, None, f"skipped: {step['skip']}")
                continue
            try:
                result, note = await self._run_step(step)
            except (ApplyStopped, StepFailed, PlanError) as e:
                why = f"step {step['step']}: {e}"
                error_result = _cut(getattr(e, "result", None))
                failed = {"step": step["step"], "error": why} if isinstance(e, StepFailed) else None
                # The step's outcome is known (it failed, or it never started): not in flight.
                self._update(lambda r, why=why, failed=failed: r.update(
                    status="partial", reason=why, failed=failed, finished_at=self.clock(), owner=None,
                    in_flight=None))
                self._journal("stopped", step=step["step"], why=why, result=error_result)
                return {"status": "partial", "done": done, "total": len(self.plan["steps"]),
                        "stopped_at": step["step"], "why": why}
            done += 1
            self.ui.step_done(step, result, note)
        self._update(lambda r: r.update(status="applied", finished_at=self.clock(), owner=None, in_flight=None,
                                        failed=None, reason=None))
        self._journal("applied", steps=done)
        return {"status": "applied", "done": done, "total": len(self.plan["steps"]), "stopped_at": None,
                "why": None}

    def _steps_on_unchecked_reads(self):
        """One line (str) per basis read apply could not re-check and a step comes after
        (the step may have been written from what it said)."""
        out = []
        for index, text in self.unchecked_reads:
            steps = [st["step"] for st in self.plan["steps"] if index in (st.get("reads_before") or ())]
            if steps:
                shown = ", ".join(map(str, steps[:5])) + (f" and {len(steps) - 5} more" if len(steps) > 5 else "")
                out.append(f"{text} (step{'s' if len(steps) > 1 else ''} {shown} came after it)")
        return out

    def _journaled_results(self):
        """``{step: real result}`` of this plan's steps journaled done (earlier applies too)."""
        results = {}
        for e in self.store.journal(self.plan["run_id"]):
            r = e.get("result") if e.get("tool_name") == APPLY_TOOL else None
            if isinstance(r, dict) and r.get("event") == "step_done" and r.get("plan_hash") == self.plan["content_hash"]:
                results[r["step"]] = r.get("result")
        return results

    async def _run_step(self, step):
        number = step["step"]
        if step.get("problem"):
            raise ApplyStopped(f"cannot be applied: {step['problem']}")
        real = self.execution[number]
        step = dict(step, executor=real["executor"], input=real["input"])  # what runs: the journal's
        kind = real["executor"]["kind"]
        schema = None
        if kind == "mcp" and step.get("references"):
            tool = (await self.servers.tools(step["executor"]["server"])).get(step["executor"]["tool"]) or {}
            schema = tool.get("inputSchema")
        tool_input = self.resolve(step, schema)
        if kind == "shell" and not self.ui.confirm_shell(dict(step, input=tool_input)):
            raise ApplyStopped("the shell command was not confirmed")
        retry = self.record.get("in_flight") == number
        if retry and kind == "shell" and not self.retry_in_flight:
            raise ApplyStopped("this shell command was running when the earlier apply stopped, so it may have "
                               "run (a command has no idempotency key). Check its effects, then `drygate apply "
                               "--resume --retry-in-flight` to run it again")
        self._update(lambda r: r.update(in_flight=number))  # durable before the step runs: it may run
        self.ui.step_started(step)
        note = "retried with its idempotency key" if retry and kind == "mcp" else None
        if kind == "mcp":
            ex = step["executor"]
            result = await self.servers.call(ex["server"], ex["tool"], tool_input, step["idempotency_key"])
            if result.get("isError"):
                raise StepFailed(f"{ex['server']}/{ex['tool']} answered with an error: {_error_text(result)}", result)
        elif kind == "file":
            result = apply_file_step(dict(step, input=tool_input, file=dict(step["file"], path=real["file_path"])))
            if not result["written"]:
                note = "already applied (an earlier, interrupted apply wrote it)"
        elif kind == "shell":
            result = run_shell(tool_input.get("command", "") if isinstance(tool_input, dict) else "",
                               real["cwd"], self._shell_env(real))
        elif registered_executor(kind) is not None:
            result = await registered_executor(kind)(self, step, tool_input)
        else:
            raise ApplyStopped(step["executor"].get("why") or "no executor")
        kept = _cut(result)
        self._journal("step_done", step=number, result=kept, retry=retry)
        self.results[number] = kept
        self._update(lambda r: r.update(done=number, in_flight=None))
        return result, note

    @staticmethod
    def _shell_env(real):
        """The environment a journaled shell step runs with (None: apply's own, for a call
        journaled without one). Raises ApplyStopped when a withheld variable is missing."""
        if real.get("env") is None:
            return None
        from drygate.context import environment_for

        env, missing = environment_for(real["env"], os.environ)
        if missing:
            raise ApplyStopped(f"the command ran with {', '.join(missing)} set (not journaled: it may be a secret), "
                               f"and apply's environment does not have {'it' if len(missing) == 1 else 'them'}")
        return env

    def resolve(self, step, schema=None):
        """The step's input with every reference token replaced by the real value it
        stands for (from the journaled results of earlier steps). A string that is just
        a token becomes the value itself (an id stays a number), unless ``schema`` (the
        tool's input JSON Schema) says that argument is a string. Raises ApplyStopped
        when a value cannot be resolved."""
        values = {}
        for ref in step.get("references") or []:
            source = ref.get("step")
            if not source or source not in self.results:
                raise ApplyStopped(f"depends on {ref['token']}, which no applied step produced")
            values[ref["token"]] = _lookup(self.results[source], ref.get("path"), ref["token"])
        if not values:
            return step["input"]

        def sub(v):
            if isinstance(v, str):
                if v in values:
                    return values[v]
                return REFERENCE.sub(lambda m: _as_text(values[m.group(0)]) if m.group(0) in values else m.group(0), v)
            if isinstance(v, dict):
                return {_as_text(sub(k)): sub(item) for k, item in v.items()}  # JSON keys are strings
            if isinstance(v, list):
                return [sub(item) for item in v]
            return v

        resolved = sub(step["input"])
        properties = (schema or {}).get("properties") if isinstance(schema, dict) else None
        if isinstance(resolved, dict) and isinstance(properties, dict):
            for name, value in resolved.items():
                types = _schema_types(properties.get(name))
                if "string" in types and _json_type(value) not in types and step["input"].get(name) in values:
                    resolved[name] = _as_text(value)
        return resolved


# -- re-readers and executors by kind: the hook point for other enforcement points --------

async def _reread_mcp(applier, read, journaled):
    """MCP read: the same tool and arguments through the same server (its normal form)."""
    from drygate.plan import fingerprint as fpm

    result = await applier.servers.call(read["executor"]["server"], read["executor"]["tool"], read["input"])
    if read.get("fingerprint_of") == "host-text":
        if read["fingerprint"] in fpm.host_text_candidates(result):
            return True, None, None
        return False, fpm.host_view(journaled) if isinstance(journaled, str) else None, fpm.host_view(result)
    now = fpm.normal_result(result)
    before = journaled.get("value") if isinstance(journaled, dict) else None
    return fpm.fingerprint(now) == read["fingerprint"], before, now


async def _reread_file(applier, read, journaled):
    """Claude Code's Read: the same lines of the same file, from the read's folder."""
    text = applier._reread_file(read)
    if text is not None and any(text_fingerprint(c) == read["fingerprint"] for c in text):
        return True, None, None
    file = journaled.get("file") if isinstance(journaled, dict) else None
    before = {"text": file.get("content")} if isinstance(file, dict) else None
    return False, before, {"text": None if text is None else text[0]}


async def _reread_shell(applier, read, journaled):
    """A shell read: classified again now (it must still be a read, and not touch the
    gate), then re-run with bash from its journaled folder and environment; its stdout is
    compared (drygate.plan.artifact.shell_output)."""
    import subprocess

    from drygate.context import environment_for
    from drygate.engine import classify
    from drygate.plan.artifact import call_cwd, shell_output
    from drygate.plan.fingerprint import fingerprint
    from drygate.types import ToolCall

    entry = applier.journal_entry(read["seq"]) or {}
    context = entry.get("context") if isinstance(entry.get("context"), dict) else {}
    cwd = call_cwd(context, applier.project_dir)
    command = read["input"].get("command") if isinstance(read["input"], dict) else None
    if not isinstance(command, str):
        raise PlanError("the read has no command")
    cls = classify(ToolCall("Bash", read["input"], applier.plan["run_id"], cwd=cwd, host="apply"), applier.policy,
                   applier.protected)
    if cls.effect != "read" or cls.tamper:
        raise PlanError(f"the command is not a read under the current policy ({cls.effect}: {cls.reason}), so "
                        f"apply does not run it again")
    env, missing = environment_for(context.get("env"), os.environ)
    if missing:
        raise PlanError(f"it ran with {', '.join(missing)} set (not journaled: it may be a secret), and apply's "
                        f"environment does not have {'it' if len(missing) == 1 else 'them'}")
    applier.ui.note(f"re-checking read (call {read['call']}): {command}")
    try:
        proc = subprocess.run([shell_path(), "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise PlanError("it did not finish within 120 s") from e
    now = shell_output({"stdout": proc.stdout})
    return fingerprint(now) == read["fingerprint"], shell_output(journaled), now


def shell_path():
    """The shell apply runs commands with: bash, as Claude Code's Bash tool (else /bin/sh)."""
    import shutil

    return shutil.which("bash") or "/bin/sh"


#: ``{read kind: async fn(applier, read, journaled result) -> (same, before, now)}``: how
#: apply repeats a read of the basis. ``same``: True when it says what it said in the run;
#: else ``before``/``now`` are JSON values to name the differences (``before`` None when
#: the run's result is not known in full). Another enforcement point (the Python API)
#: adds its kind with :func:`register`; a read of a kind without a re-reader is not
#: re-checked, and a step after it is refused unless the user accepts it. A step of a
#: further kind runs through drygate.plan.executors.STEP_EXECUTORS.
REREADERS = {"mcp": _reread_mcp, "file-read": _reread_file, "shell": _reread_shell}
def register(kind, rereader):
    """Add a re-reader for reads of executor ``kind`` (signature at :data:`REREADERS`): the
    hook point for kinds other enforcement points plan (the Python API's ``python``; its
    steps' executor is drygate.plan.executors.STEP_EXECUTORS). A kind without one has its
    reads listed as not re-checked, and the steps after them refused unless accepted."""
    from drygate.plan import artifact

    REREADERS[kind] = rereader
    artifact.REREADERS.add(kind)


def _register_search_reads():
    from drygate.plan import search_reads

    register("glob", search_reads.reread_glob)
    register("grep", search_reads.reread_grep)


_register_search_reads()


def _read_repeaters():
    from drygate.plan import executors

    return getattr(executors, "READ_REPEATERS", {})


def _read_repeater(kind):
    """The repeater registered for ``kind`` in drygate.plan.executors.READ_REPEATERS
    (``"module:function"`` of ``async def repeat(applier, read) -> fingerprint``), or None."""
    target = _read_repeaters().get(kind)
    if target is None:
        return None
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _has_rereader(kind):
    """True when apply can repeat reads of ``kind`` (a re-reader, or a repeater)."""
    return kind in REREADERS or kind in _read_repeaters()


def read_kind(read):
    """The re-reader kind of a basis read: its executor's kind, ``file-read`` for Read,
    ``glob`` and ``grep`` for Claude Code's Glob and Grep (drygate.plan.search_reads)."""
    if read["tool_name"] == "Read":
        return "file-read"
    if read["tool_name"] in SEARCH_TOOLS and read["executor"]["kind"] == "unsupported":
        return read["tool_name"].lower()
    return read["executor"]["kind"]


def _schema_types(schema):
    """The JSON types a property's schema admits (set of str), through anyOf/oneOf
    (``Optional[str]`` is ``anyOf: [{type: string}, {type: null}]``)."""
    if not isinstance(schema, dict):
        return set()
    kind = schema.get("type")
    types = {kind} if isinstance(kind, str) else set(kind) if isinstance(kind, list) else set()
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key) or []:
            types |= _schema_types(option)
    return types


def _json_type(value):
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}.get(type(value), "string")


def _as_text(value):
    import json

    return value if isinstance(value, str) else json.dumps(value)


def _lookup(result, path, token):
    """The value ``path`` names in a step's real result (see artifact.REFERENCE)."""
    import json

    if not isinstance(result, dict):
        raise ApplyStopped(f"{token}: the step's result is not available")
    value = result.get("structuredContent")
    if value is None:
        texts = [c.get("text") for c in result.get("content") or [] if isinstance(c, dict) and c.get("type") == "text"]
        if path is None and len(texts) == 1:
            return texts[0]
        try:
            value = json.loads(texts[0]) if len(texts) == 1 else None
        except ValueError:
            value = None
    if path is None:
        if value is None:
            raise ApplyStopped(f"{token}: the step's result has no single value to substitute")
        return value
    if isinstance(value, dict) and list(value) == ["result"] and isinstance(value["result"], str) \
            and path.split(".")[0] != "result":
        # The MCP SDK's MCPServer wraps a tool's str return as {"result": "<str>"}: a field of a
        # JSON text the tool returned is looked up in that text.
        try:
            value = json.loads(value["result"])
        except ValueError:
            pass
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise ApplyStopped(f"{token}: the step's real result has no {path!r}")
    return value


def _error_text(result):
    texts = [c.get("text") for c in result.get("content") or [] if isinstance(c, dict) and c.get("type") == "text"]
    return " ".join(t for t in texts if t)[:500] or "no message"


def _brief(value, width=120):
    import json

    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[:width - 3] + "..."
