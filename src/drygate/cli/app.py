"""The ``drygate`` commands: init, install, run, runs, plan, alerts, replay, explain, doctor,
prune (here), state (cli/state_cmd.py), apply (cli/apply_cmd.py), status and metrics
(cli/health_cmd.py), review and approve (cli/review_cmd.py); what they share is in cli/common.py.

Built on click (parsing) and rich (tables). Every command that reads state or a
policy exits with status 1 and a one-line message on a DrygateError, never a
traceback.
"""

import json
import os
import sys

import click
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from drygate.errors import DrygateError
from drygate.types import MODES

from drygate.cli.common import (  # noqa: F401 (_when, err: used by the command modules too)
    _cells, _fail, _open_store, _settings, _when, err, out, project_option, resolve_run_id, short_run_ids,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="drygate")
def cli():
    """drygate: a run-wide dry-run gate for AI-agent tool calls."""


@cli.command()
@click.option("--project", type=click.Path(file_okay=False), default=None,
              help="Project folder (default: the current folder).")
@click.option("--mode", type=click.Choice(MODES), default="dry", show_default=True,
              help="Default mode written into the new policy.")
@click.option("--force", is_flag=True, help="Overwrite an existing drygate.toml.")
@click.option("--no-hooks", is_flag=True,
              help="Write the policy only: the Claude Code plugin (plugins/drygate) gates the calls. Installing "
                   "both would decide every call twice.")
def init(project, mode, force, no_hooks):
    """Write a commented drygate.toml and install the Claude Code hooks."""
    from drygate.enforcement.install import install_claude_code
    from drygate.policy.load import default_policy_text

    project = os.path.abspath(project or os.getcwd())
    policy_path = os.path.join(project, "drygate.toml")
    if os.path.exists(policy_path) and not force:
        out.print(Text(f"kept existing policy {policy_path} (use --force to overwrite)"))
    else:
        text = default_policy_text().replace('mode = "dry"', f'mode = "{mode}"', 1)
        with open(policy_path, "w", encoding="utf-8") as f:
            f.write(text)
        out.print(Text(f"wrote policy {policy_path} (mode {mode})"))
    if no_hooks:
        out.print("no hooks installed: install the drygate plugin in Claude Code "
                  "(`claude plugin marketplace add <drygate repository>`, `claude plugin install drygate@drygate`)")
    else:
        try:
            path = install_claude_code(project)
        except ValueError as e:
            _fail(str(e))
        out.print(Text(f"installed Claude Code hooks in {path}"))
    _sync_sandbox(project, policy_path)  # the OS sandbox of dry runs: with the plugin too
    _init_store(project, [(os.path.join(project, ".claude", "settings.json"), "s"), (policy_path, "f")])
    out.print("next: `drygate doctor` checks the installation end to end")


def _sync_sandbox(project, policy_path):
    """Write Claude Code's Bash sandbox into .claude/settings.json when the policy at
    ``policy_path`` makes every run dry from its start, remove drygate's when it no longer does
    (drygate.sandbox.sync_project_settings). A policy that does not load changes nothing."""
    from drygate.errors import DrygateError
    from drygate.policy.load import load_policy_file
    from drygate.sandbox import sync_project_settings

    try:
        policy = load_policy_file(policy_path)
    except DrygateError:
        return
    try:
        change = sync_project_settings(project, policy)
    except (ValueError, OSError) as e:
        _fail(str(e))
    if change == "added":
        out.print(Text("the policy is dry: Claude Code runs Bash in its OS sandbox (project read-only; "
                       "`drygate doctor` checks it can run here)"))
    elif change == "removed":
        out.print(Text("the policy is not dry: removed drygate's Bash sandbox from .claude/settings.json"))


def _init_store(project, written, strict=True):
    """`drygate init`'s store step: make and initialize the SQLite store (the hook never creates
    one), and record the files just written as drygate's own (drygate.integrity.bless).
    ``strict=False`` (`drygate install`): a store that needs `--recover` is a warning."""
    from drygate import integrity
    from drygate.cli.state_cmd import _location

    settings = _settings(project)
    try:
        location = _location(settings)
        if "://" in location or location in ("memory:", ":memory:"):
            out.print(Text(f"state store {location}: run `drygate state init` once for it"))
            return
        status, store_id = integrity.initialize_store(location)
        store, _ = _open_store(settings)
        try:
            integrity.bless(store, written)
        finally:
            store.close()
    except DrygateError as e:
        if strict:
            _fail(str(e))
        err.print(Text(f"warning: {e}", style="yellow"))
        return
    out.print(Text(f"state store {location}: {status} (store {store_id})"))


@cli.group()
def install():
    """Install an enforcement point."""


@install.command("claude-code")
@click.option("--project", type=click.Path(file_okay=False), default=None,
              help="Project folder (default: the current folder).")
@click.option("--local", is_flag=True, help="Write .claude/settings.local.json instead of settings.json.")
@click.option("--mcp", "mcp", is_flag=True, help="Also put the project's MCP servers (.mcp.json) behind the relay.")
@click.option("--shadow", "shadows", multiple=True, metavar="NAME=PATH",
              help="With --mcp: the local state of server NAME (repeatable), so a dry run's calls go to a shadow "
                   "server on the run's own copy of it (`drygate mcp --shadow`).")
@click.option("--shadow-max-mb", type=float, default=None, metavar="MB",
              help="With --mcp: the largest state a shadow copies (default 1024).")
def install_claude_code_cmd(project, local, mcp, shadows, shadow_max_mb):
    """Install the PreToolUse/PostToolUse hooks into .claude/settings.json (idempotent).

    With --mcp, also rewrite .mcp.json so that each stdio server runs behind `drygate mcp`,
    keeping its name (so tool names stay the same); the original is kept as
    .mcp.json.drygate-backup. --shadow NAME=PATH gives a server a shadow of its local state
    (kept when the file is rewritten again).
    """
    named = {}
    for item in shadows:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            _fail(f"--shadow wants NAME=PATH, not {item!r}")
        named.setdefault(name, []).append(path)
    if (named or shadow_max_mb is not None) and not mcp:
        _fail("--shadow and --shadow-max-mb go with --mcp")
    if shadow_max_mb is not None and not shadow_max_mb > 0:
        _fail("--shadow-max-mb must be a positive number")
    from drygate.enforcement.install import install_claude_code

    project = os.path.abspath(project or os.getcwd())
    try:
        path = install_claude_code(project, settings_name="settings.local.json" if local else "settings.json")
    except ValueError as e:
        _fail(str(e))
    out.print(Text(f"installed Claude Code hooks in {path}"))
    if not local:
        _sync_sandbox(project, os.environ.get("DRYGATE_POLICY") or os.path.join(project, "drygate.toml"))
    _init_store(project, [(path, "s")], strict=False)
    if mcp:
        from drygate.relay.install import install_mcp

        try:
            mcp_path, wrapped, skipped = install_mcp(project, shadows=named, shadow_max_mb=shadow_max_mb)
        except ValueError as e:
            _fail(str(e))
        out.print(Text(f"{mcp_path}: {len(wrapped)} server(s) behind the relay: {', '.join(wrapped) or '-'}"))
        from drygate.relay.trust import bless_policy, record_first_use

        settings = _settings(project)
        said = record_first_use(settings.policy_path, wrapped, on_written=lambda: bless_policy(settings))
        if said:  # trust in the servers' annotations: recorded in drygate.toml, with a comment
            out.print(Text(said.replace("drygate mcp: ", "", 1)))
        for name, why in skipped.items():
            out.print(Text(f"  not relayed: {name}: {why}", style="yellow"))


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@project_option
@click.option("--mode", type=click.Choice(MODES), required=True, help="Mode of the new run.")
@click.option("--run-id", default=None, help="Run id (default: a new random id).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(project, mode, run_id, command):
    """Start COMMAND (for example `claude ...`) as one run in MODE.

    Sets DRYGATE_RUN_ID and DRYGATE_MODE for everything it starts, and records the
    run in the state store first, so the mode holds even for calls that lose the
    environment. The run is never looser than the policy, than DRYGATE_MODE, or
    than the run this command itself runs in (DRYGATE_RUN_ID): inside a dry run,
    a new run is dry too.

    A run that is dry from its start and runs `claude` gets Claude Code's Bash sandbox
    (`--settings`, drygate.sandbox): writes denied but for the host's scratch folders,
    network as [sandbox] allowed_domains says; it refuses to start when the sandbox cannot
    run here (unless [sandbox] enabled = false). A sticky run starts live: no sandbox.
    """
    import subprocess
    import time
    import uuid

    from drygate.types import DRY, stricter_mode

    settings = _settings(project)
    run_id = run_id or f"run-{uuid.uuid4()}"
    try:
        _initialize_sqlite_store(settings)
        store, policy = _open_store(settings)
        effective = stricter_mode(mode, policy.get("mode", mode))
        if settings.mode:
            effective = stricter_mode(effective, settings.mode)
        parent = store.get_run(settings.run_id) if settings.run_id else None
        if parent is not None:
            effective = stricter_mode(effective, DRY if parent.is_dry else parent.mode)
        state = store.ensure_run(run_id, effective, time.time())
        store.close()
    except DrygateError as e:
        _fail(str(e))
    shown = "dry" if state.is_dry else state.mode
    note = "" if shown == mode else f" (asked for {mode}; the policy, DRYGATE_MODE or the enclosing run is stricter)"
    env = dict(os.environ, DRYGATE_RUN_ID=run_id, DRYGATE_MODE=state.mode, CLAUDE_PROJECT_DIR=settings.project_dir)
    err.print(Text(f"drygate: run {run_id}: {shown}{note}"))
    argv = _sandboxed(list(command), state.is_dry, policy, settings.project_dir) if command else list(command)
    try:
        code = subprocess.call(argv, env=env)
    except FileNotFoundError:
        _fail(f"command not found: {command[0]}")
    err.print(Text(f"drygate: run {run_id} finished (exit {code}); see `drygate plan {run_id}`"))
    sys.exit(code)


def _sandboxed(argv, dry, policy, project_dir):
    """``argv`` with Claude Code's Bash sandbox turned on when the run is dry from its start
    (drygate.sandbox; a sticky or live run starts live and gets none). Exits with a message,
    starting nothing, when the sandbox is asked for and cannot run here."""
    from drygate.sandbox import (FULL_SANDBOX_CLI, SandboxUnavailable, added_dirs, check_claude_sandbox,
                                 claude_settings, claude_version, is_claude, sandbox_options, with_settings)

    options = sandbox_options(policy)
    if not dry or not options["enabled"]:
        return argv
    if not is_claude(argv[0]):
        err.print(Text(f"drygate: {argv[0]} is not `claude`: no OS sandbox for this run; it relies on the classifier "
                       "and self-protection (docs/defence-in-depth.md)", style="yellow"))
        return argv
    version = claude_version(argv[0])
    try:
        check_claude_sandbox(version)
        argv = with_settings(argv, claude_settings([project_dir, os.getcwd(), *added_dirs(argv)],
                                                   options["allowed_domains"]))
    except SandboxUnavailable as e:
        _fail(f"the run is dry, but Claude Code's Bash sandbox cannot run here: {e.reason}. Install it, or set "
              "`enabled = false` under [sandbox] in the policy to rely on the classifier alone")
    except ValueError as e:
        _fail(str(e))
    domains = ", ".join(options["allowed_domains"]) or "none"
    if version is not None and version < FULL_SANDBOX_CLI:
        err.print(Text(f"drygate: Bash runs in Claude Code's OS sandbox (network: {domains}), but Claude Code "
                       f"{'.'.join(map(str, version))} keeps the project writable by Bash: inside it this run relies on "
                       "the classifier (2.1.332 or later closes it)", style="yellow"))
    else:
        err.print(Text(f"drygate: Bash runs in Claude Code's OS sandbox: read-only but for the host's scratch folders; "
                       f"network: {domains}"))
    return argv


@cli.command()
@project_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--full", "full_ids", is_flag=True, help="Show whole run ids (default: the shortest unique prefix).")
def runs(project, as_json, full_ids):
    """List runs: id, mode, whether and when it went dry, counts, and the size of the MCP server
    shadows a run holds on disk now (drygate.overlay.shadow)."""
    from drygate.overlay.shadow import list_shadows, shadow_root

    try:
        settings = _settings(project)
        store, _ = _open_store(settings, create=False)
        all_runs = store.list_runs() if store else []
        ledgers = store.ledgers() if store else {}
        shadows = list_shadows(shadow_root(settings.project_dir))
    except DrygateError as e:
        _fail(str(e))

    def apply_status(run_id):
        """planned / applying / applied / partial (k/n) / refused, or "-" (drygate.plan.apply)."""
        from drygate.plan.apply import run_ledger_key

        record = ledgers.get(run_ledger_key(run_id))
        if not record:
            return "-"
        if record.get("status") == "partial":
            return f"partial ({record.get('done', 0)}/{record.get('total')})"
        return record.get("status") or "-"

    if as_json:
        click.echo(json.dumps([dict(r.as_dict(), apply=apply_status(r.run_id),
                                    shadow_bytes=shadows.get(r.run_id, {}).get("bytes", 0)) for r in all_runs],
                              indent=2))
        return
    if not all_runs:
        out.print("no runs yet")
        return
    import datetime

    from drygate.cli.columns import echo_table

    short = {} if full_ids else short_run_ids([r.run_id for r in all_runs])
    headers = ["run", "mode", "dry since", "calls", "writes", "skipped", "ran", "denied", "plan"]
    headers += ["shadow"] if shadows else []
    headers += ["seen"]
    today = datetime.date.today()
    rows = []
    for r in all_runs:
        since = "start" if r.mode == "dry" else f"call {r.dry_call}" if r.dry_call else "-"
        shadow = [_size(shadows[r.run_id]["bytes"]) if r.run_id in shadows else "-"] if shadows else []
        rows.append([short.get(r.run_id, r.run_id), r.mode, since, r.calls, r.writes, r.dry_writes,
                     r.allowed_writes, r.denied, apply_status(r.run_id), *shadow, _when(r.last_seen_at, today)])
    # A listing of thousands of runs: plain columns, not rich's Table (drygate.cli.columns says why).
    echo_table(out, headers, rows, right=(3, 4, 5, 6, 7) + ((9,) if shadows else ()), shrink=8,
               caption=None if full_ids else "(a unique prefix names a run; --full shows whole ids)")


@cli.command()
@project_option
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Save the plan as a reviewable, single-use artifact for `drygate apply`.")
@click.option("--all", "show_all", is_flag=True, help="Show every step of a saved plan (default: the first 500).")
@click.option("--diff/--no-diff", "show_diff", default=True, show_default=True,
              help="Show the file steps as unified diffs after the table (--json always carries them).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default=None,
              help="text (the default table), json (the plan, docs/plan.schema.json) or markdown "
                   "(for a pull-request comment: summary, steps, folded diffs, basis, hash; secrets masked).")
def plan(project, run_id, as_json, out_file, show_all, show_diff, fmt):
    """Show the plan of RUN_ID ("latest" for the most recent run): the skipped writes.

    File steps (Write, Edit, MultiEdit) are shown as unified diffs of each real file
    against what the run's dry writes would make of it. RUN_ID may also be a saved plan
    file (PLAN.json), which is verified and shown."""
    from drygate.cli.apply_cmd import is_plan_file, print_artifact, save_plan_file
    from drygate.cli.diff_view import print_file_changes
    from drygate.plan.build import build_plan
    from drygate.plan.diffs import file_changes

    if as_json and fmt not in (None, "json"):
        _fail("--json and --format markdown/text do not go together")
    as_json = as_json or fmt == "json"
    if is_plan_file(run_id) and not out_file:
        from drygate.plan.artifact import load_plan

        try:
            saved = load_plan(run_id)
        except DrygateError as e:
            _fail(str(e))
        if fmt == "markdown":
            _print_markdown(project, saved)
            return
        if as_json:
            click.echo(json.dumps(saved, indent=2))
        else:
            print_artifact(saved, max_rows=None if show_all else 500, diffs=show_diff)
        return
    try:
        settings = _settings(project)
        store, policy = _open_store(settings, create=False)
        if store is None:
            _fail("no runs yet (no state store in this project)")
        run_id = resolve_run_id(store, run_id)
        if out_file:
            saved = save_plan_file(store, run_id, policy, settings.project_dir, out_file)
        elif as_json or fmt == "markdown":
            the_plan = build_plan(store, run_id)
            the_plan["file_changes"] = file_changes(the_plan["steps"], settings.project_dir, run_id=run_id)
        else:
            # The terminal table keeps one line of text per step, not the steps themselves
            # (bench/plan_render.py: 100,000 steps).
            from drygate.file_tools import FILE_TOOLS

            rows, file_steps = [], []
            run = store.get_run(run_id)
            mode = run.mode if run is not None else None

            def take(step):
                rows.append(plan_row(mode, step))
                if step["tool_name"] in FILE_TOOLS:
                    file_steps.append(step)

            the_plan = build_plan(store, run_id, on_step=take)
            the_plan["file_changes"] = file_changes(file_steps, settings.project_dir, run_id=run_id)
    except DrygateError as e:
        _fail(str(e))
    if fmt == "markdown":
        _print_markdown(project, saved if out_file else the_plan, policy)
        if out_file:
            err.print(Text(f"saved to {out_file}; review it, then `drygate apply {out_file}`"))
        return
    if out_file:
        if as_json:
            click.echo(json.dumps(saved, indent=2))
        else:
            print_artifact(saved, max_rows=None if show_all else 500, diffs=show_diff)
            out.print(Text(f"saved to {out_file}; review it, then `drygate apply {out_file}`"))
        return
    if as_json:
        _echo_json(the_plan)
        return
    print_plan(the_plan, rows=rows)
    if show_diff:
        print_file_changes(out, the_plan["file_changes"])


def _echo_json(value):
    """Print ``value`` as indented JSON, in pieces: the same text as ``json.dumps(value,
    indent=2)`` and a newline, without holding all of it (a plan of 100,000 steps is about
    40 MB of JSON). With an indent, ``json`` encodes in Python either way, so this is no
    slower."""
    stream = click.get_text_stream("stdout")
    block = []
    size = 0
    for chunk in json.JSONEncoder(indent=2).iterencode(value):
        block.append(chunk)
        size += len(chunk)
        if size >= 1 << 16:
            stream.write("".join(block))
            block, size = [], 0
    block.append("\n")
    stream.write("".join(block))
    stream.flush()


def _print_markdown(project, the_plan, policy=None):
    """Print ``the_plan`` as Markdown (drygate.review.markdown), with its approval when the
    project's state store has one."""
    from drygate.review.markdown import plan_markdown

    approval = None
    try:
        store, policy_now = _open_store(_settings(project), create=False)
        policy = policy or policy_now
        if store is not None and the_plan.get("content_hash"):
            from drygate.plan.approval import approval_of

            approval = approval_of(store, the_plan["content_hash"])
    except DrygateError as e:
        err.print(Text(f"drygate: {e} (the plan is shown without its approval)"))
    click.echo(plan_markdown(the_plan, policy, approval), nl=False)


def _initialize_sqlite_store(settings):
    """A SQLite store ``drygate run`` needs is made as ``drygate state init`` makes it (with its
    marker and this machine's record: the hook refuses an unmarked store); one that is gone,
    replaced or older than the record raises StoreUnavailable naming the fix
    (drygate.integrity.initialize_store). Redis stores are left to ``drygate state init``."""
    from drygate.cli.state_cmd import _location
    from drygate.integrity import initialize_store

    location = _location(settings)
    if location not in ("memory:", ":memory:") and "://" not in location:
        initialize_store(location)


def plan_row(mode, step):
    """One row of the plan table (tuple of cells) for ``step`` (drygate.plan.build) of a run
    in ``mode``."""
    from drygate.engine import summarize_input

    since = "this call" if step["made_run_dry"] else ("start" if mode == "dry" else f"call {step['dry_because_of']}")
    return (step["step"], step["call"], step["tool_name"],
            summarize_input(step["tool_name"], step["input"], 160, with_tool=False),
            step["effect"], step["why"], since)


def print_plan(the_plan, simulated=False, rows=None):
    """Render a plan (dict from drygate.plan.build) as a table.

    ``simulated``: the plan comes from a replay, where nothing ran at all. ``rows``: the
    table's rows already made by :func:`plan_row` (a plan built with ``on_step``, whose
    ``steps`` is empty); default: made from ``the_plan["steps"]``.
    """
    if rows is None:
        rows = [plan_row(the_plan["mode"], st) for st in the_plan["steps"]]
    cause = the_plan["dry_cause"]
    out.print(Text.assemble(("Plan of run ", "bold"), (the_plan["run_id"], "bold"), f" (mode {the_plan['mode']})"))
    if the_plan["mode"] == "dry":
        out.print("a dry run from its start: every write was skipped")
    elif cause:
        out.print(Text(f"went dry at call {cause['call']} ({cause['tool_name']}: {cause['summary']}), "
                       f"{_when(the_plan['dry_at'])}"))
    else:
        out.print("the run never went dry")
    if rows:
        from drygate.cli.columns import echo_table

        # One line per step, plain columns (a plan may hold 100,000 steps: drygate.cli.columns);
        # --json has every input whole.
        echo_table(out, ["step", "call", "tool", "input", "effect", "why", "dry since"], rows, right=(0, 1),
                   shrink=(5, 3, 2))
    else:
        out.print("no skipped writes")
    ran = "would have run (live)" if simulated else "ran (live)"
    for key, label in (("executed_writes", f"writes that {ran}"), ("denied", "denied"), ("asked", "asked a human")):
        items = the_plan.get(key) or []
        if items:
            out.print(Text(f"{label}: " + "; ".join(f"call {i['call']} {i['tool_name']}" for i in items[:20])
                           + (f" and {len(items) - 20} more" if len(items) > 20 else "")))
    c = the_plan["counts"]
    executed = "would have executed" if simulated else "executed"
    out.print(Text(f"{len(rows)} skipped write(s); {c['calls']} call(s), {c['writes']} write(s), "
                   f"{c['allowed_writes']} write(s) {executed}, {c['denied']} denied, {c.get('asked', 0)} asked"))
    print_simulation(the_plan.get("simulation"))


def _size(n):
    """A byte count for people: ``512 B``, ``3.1 KB``, ``1.2 GB``."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def print_simulation(simulation):
    """The plan's lines about the run's MCP server shadows and store overlays (drygate.plan.build)."""
    for s in (simulation or {}).get("shadows") or []:
        if s["made_at"] is not None:
            how = ", ".join(f"{n} by {m}" for m, n in sorted(s["methods"].items())) or "nothing to copy"
            end = (f"; {_size(s['final_bytes'])} at the end, " + ("removed" if s["removed"] else "still on disk")
                   if s["final_bytes"] is not None else "; still in use")
            out.print(Text(f"simulated on a shadow of {s['server']}: {', '.join(s['paths'])} "
                           f"({_size(s['bytes'] or 0)} copied, {how}, in {s['seconds'] or 0:.3f} s){end}; "
                           f"{s['writes']} simulated write(s), {s['reads']} read(s) served"))
        if s["fallback"]:
            out.print(Text(f"no read-your-writes for {s['server']} from then on: {s['fallback']['reason']} "
                           f"(plain dry results, never a live write)", style="yellow"))
    for o in (simulation or {}).get("overlays") or []:
        if o["made_at"] is not None:
            end = (f"; {_size(o['final_bytes'])} at the end, " + ("removed" if o["removed"] else "still on disk")
                   if o["final_bytes"] is not None else "; still in use")
            out.print(Text(f"simulated on the run's {o['kind']} overlay {o['name']} of {o['server']} over the real "
                           f"store: {o['writes']} simulated write(s), {o['reads']} read(s) answered{end}"))
        if o["fallback"]:
            out.print(Text(f"no read-your-writes for {o['server']}'s {o['kind']} from then on: "
                           f"{o['fallback']['reason']} (plain dry results, never a live write)", style="yellow"))
    unproven = (simulation or {}).get("unproven") or {}
    if unproven:
        out.print(Text("not proven by the simulation: " + "; ".join(unproven.values())))


@cli.command()
@project_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--limit", type=int, default=50, show_default=True, help="Show the last N alerts.")
def alerts(project, as_json, limit):
    """List guard-failure and tamper alerts (newest last)."""
    from drygate.alerts import read_alerts

    settings = _settings(project)
    policy = {}
    try:
        if os.path.exists(settings.policy_path):
            from drygate.policy.cache import load_policy

            policy = load_policy(settings.policy_path, None)
    except DrygateError as e:
        err.print(Text(f"drygate: {e} (showing the default alert log)"))
    items = read_alerts(settings.alert_log_for(policy))[-limit:] if limit > 0 else []
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    if not items:
        out.print(Text(f"no alerts in {settings.alert_log_for(policy)}"))
        return
    table = Table(title=escape(f"drygate alerts ({settings.alert_log_for(policy)})"))
    for col in ("when", "kind", "cause", "run", "tool", "reason"):
        table.add_column(col, overflow="fold")
    for a in items:
        table.add_row(*_cells(_when(a.get("ts") if isinstance(a.get("ts"), (int, float)) else None),
                              a.get("kind"), a.get("cause", ""), a.get("run_id") or "-", a.get("tool_name") or "-",
                              a.get("reason") or a.get("line", "")))
    out.print(table)


@cli.command()
@click.argument("session", type=click.Path(exists=True, dir_okay=False))
@click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Policy to try (default: ./drygate.toml if present, else the built-in template).")
@click.option("--mode", type=click.Choice(MODES), default=None, help="Mode of the throwaway run (default: policy's).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--calls", "show_calls", is_flag=True,
              help="Also show every call with its effect, decision and why (through a pager on a terminal).")
@click.option("--quiet", is_flag=True, hidden=True, help="Kept for scripts: the default output now.")
def replay(session, policy_file, mode, as_json, show_calls, quiet):
    """Feed the tool calls of a recorded Claude Code session through the gate.

    Uses a throwaway in-memory run: nothing is executed and no state is written. Prints
    the summary and the plan; --calls adds the per-call table, --json everything.
    """
    from drygate.replay import replay_transcript

    try:
        result = replay_transcript(session, policy_file, mode)
    except DrygateError as e:
        _fail(str(e))
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for warning in result["warnings"]:
        err.print(Text(f"drygate: warning: {warning}", style="yellow"))
    s = result["summary"]
    out.print(Text.assemble((f"replay of {os.path.basename(session)} (mode {result['mode']}): ", "bold"),
                            f"{s['calls']} calls, {s['reads']} reads, "
                            f"{s['bookkeeping']} bookkeeping, {s['writes']} writes ({s['dry']} dry, "
                            f"{s['denied']} denied, {s['asked']} ask); ",
                            (f"{s['live_writes']} write(s) would have gone live", "bold")), soft_wrap=True)
    denied = [c for c in result["calls"] if c["decision"] == "deny"]
    for c in denied[:10]:
        out.print(Text(f"  denied: call {c['call']} {c['tool_name']}: {c['why']}", style="red"), soft_wrap=True)
    if len(denied) > 10:
        out.print(Text(f"  ... and {len(denied) - 10} more denials (--calls shows all)", style="red"))
    print_plan(result["plan"], simulated=True)
    if not show_calls:
        out.print(Text(f"(the {len(result['calls'])} calls one by one: drygate replay --calls {session})", style="dim"),
                  soft_wrap=True)
        return
    table = Table(title=escape(f"calls of {os.path.basename(session)} (mode {result['mode']})"), expand=True)
    table.add_column("call", no_wrap=True, justify="right")
    table.add_column("tool", overflow="fold", ratio=2)
    table.add_column("input", overflow="fold", ratio=5)
    table.add_column("effect", no_wrap=True)
    table.add_column("decision", no_wrap=True)
    table.add_column("why", overflow="fold", ratio=3)
    style = {"allow": "green", "dry": "yellow", "deny": "red", "ask": "magenta"}
    for c in result["calls"]:
        table.add_row(*_cells(c["call"], c["tool_name"], c["summary"], c["effect"],
                              Text(c["decision"], style=style.get(c["decision"], "")), c["why"]))
    if out.is_terminal:
        with out.pager(styles=True):
            out.print(table)
    else:
        out.print(table)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@project_option
@click.option("--tool", default=None, help="Explain a tool call by name (with --input) instead of a command.")
@click.option("--input", "tool_input", default=None, help="The tool's input as JSON (with --tool).")
@click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Policy to use (default: the project's drygate.toml, else the built-in template).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--batch", is_flag=True, help="Read JSON-encoded commands from stdin, one per line; "
                                           "print one JSON answer per line.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def explain(project, tool, tool_input, policy_file, as_json, batch, command):
    """Explain how a shell COMMAND (after --) or a tool call is classified, step by step.

    Examples: drygate explain -- psql -c 'DELETE FROM t'
              drygate explain --tool mcp__d1__query --input '{"sql": "SELECT 1"}'
    """
    import shlex

    from drygate.explain import explain_call, explain_command, load_policy_for

    try:
        settings = _settings(project)
        policy = load_policy_for(settings, policy_file)
    except DrygateError as e:
        _fail(str(e))
    if batch:
        for line in sys.stdin:
            if line.strip():
                click.echo(json.dumps(explain_command(json.loads(line), policy, settings)))
        return
    if tool:
        try:
            data = json.loads(tool_input) if tool_input else {}
        except ValueError as e:
            _fail(f"--input is not valid JSON: {e}")
        answer = explain_call(tool, data, policy, settings)
    elif command:
        text = command[0] if len(command) == 1 else shlex.join(command)
        answer = explain_command(text, policy, settings)
    else:
        _fail("give a command after --, or --tool NAME --input JSON")
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    out.print(Text.assemble(("effect: ", "bold"), (answer["effect"], "bold"),
                            f"   (treated as {'a read' if answer['effect'] in ('read', 'bookkeeping') else 'a write'})"))
    for i, step in enumerate(answer["steps"], 1):
        out.print(Text(f"  {i}. {step}"))
    if answer.get("tamper"):
        out.print(Text("  denied in every mode: it would change the gate itself", style="red"))
        if answer.get("reason"):
            out.print(Text(f"  the hook answers: {answer['reason']}", style="red"))


@cli.command()
@project_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def doctor(project, as_json):
    """Check the installation end to end and print a fix for each problem."""
    from drygate.doctor import run_checks

    settings = _settings(project)
    checks = run_checks(settings)
    if as_json:
        click.echo(json.dumps(checks, indent=2))
    else:
        for c in checks:
            mark = {"ok": ("  ok", "green"), "warn": ("warn", "yellow"), "fail": ("FAIL", "red")}[c["status"]]
            out.print(Text.assemble(mark, f"  {c['check']}: {c['detail']}"))
            if c.get("fix") and c["status"] != "ok":
                out.print(Text(f"        fix: {c['fix']}"))
    if any(c["status"] == "fail" for c in checks):
        sys.exit(1)


@cli.command()
@project_option
@click.option("--older-than-days", type=float, required=True, help="Drop the journal of runs idle this long.")
def prune(project, older_than_days):
    """Drop the journals of idle runs, and their file shadows. Runs that went dry keep their state."""
    import time

    from drygate.file_shadow import prune_shadows

    try:
        settings = _settings(project)
        store, _ = _open_store(settings)
        now = time.time()
        removed = store.prune(older_than_days * 86400, now)
        shadows, size = prune_shadows(settings.project_dir, store, older_than_days * 86400, now)
    except DrygateError as e:
        _fail(str(e))
    out.print(Text(f"removed {removed} journal entries"))
    from drygate.overlay.shadow import prune_shadows as prune_server_shadows
    from drygate.overlay.shadow import shadow_root

    try:
        server_shadows, server_bytes = prune_server_shadows(shadow_root(_settings(project).project_dir), store,
                                                            older_than_days * 86400, time.time())
    except DrygateError as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"cannot remove the MCP server shadows: {e}")
    if server_shadows:
        out.print(Text(f"removed {server_shadows} MCP server shadow(s) ({server_bytes} bytes)"))
    if shadows:
        out.print(Text(f"removed {shadows} run file shadow(s) ({size} bytes)"))


# Command groups that live in modules of their own (imported last: they use the helpers above).
from drygate.cli.state_cmd import state as _state_group  # noqa: E402

cli.add_command(_state_group)
from drygate.cli.apply_cmd import apply as _apply_command  # noqa: E402

cli.add_command(_apply_command)
from drygate.cli.mcp_cmd import mcp as _mcp_command  # noqa: E402

cli.add_command(_mcp_command)
from drygate.cli.health_cmd import metrics as _metrics_command  # noqa: E402
from drygate.cli.health_cmd import status as _status_command  # noqa: E402

cli.add_command(_status_command)
cli.add_command(_metrics_command)
from drygate.cli.review_cmd import approve as _approve_command  # noqa: E402
from drygate.cli.review_cmd import review as _review_command  # noqa: E402

cli.add_command(_review_command)
cli.add_command(_approve_command)
