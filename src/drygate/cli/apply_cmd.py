"""``drygate apply PLAN.json`` and the rendering of saved plans (``drygate plan``).

See drygate.plan.apply for what apply checks and in which order.
"""

import os
import sys

import click
from rich.table import Table
from rich.text import Text

from drygate.cli.common import _cells, _fail, _open_store, _settings, err, out, project_option
from drygate.errors import DrygateError


#: Rows of the step table shown by default: a table of many thousand rows takes rich tens
#: of seconds to lay out (bench/plan_apply.py) and nobody reviews it on a terminal.
MAX_ROWS = 500


def print_artifact(plan, ledger=None, max_rows=MAX_ROWS, diffs=True):
    """Render a saved plan (dict from drygate.plan.artifact) like a Terraform plan.

    ``max_rows``: show at most this many steps (the first ones, then every step that
    needs attention: a problem, a shell command, a dependency); None shows all.
    ``diffs``: print the file steps as unified diffs (drygate.cli.diff_view) at the end."""
    from drygate.engine import summarize_input

    run = plan["run"]
    out.print(Text.assemble(("Plan of run ", "bold"), (plan["run_id"], "bold"),
                            f" (mode {run['mode']}), made by {plan.get('created_by')}"))
    table = Table(expand=True)
    for name, kw in (("step", {"justify": "right", "no_wrap": True}), ("call", {"justify": "right", "no_wrap": True}),
                     ("tool", {"overflow": "fold", "ratio": 2}), ("input", {"overflow": "fold", "ratio": 4}),
                     ("effect", {"no_wrap": True}), ("uses", {"no_wrap": True}),
                     ("note", {"overflow": "fold", "ratio": 2})):
        table.add_column(name, **kw)
    steps = plan["steps"]
    if max_rows is not None and len(steps) > max_rows:
        notable = [st for st in steps[max_rows:] if st["problem"] or st["depends_on"]
                   or st["executor"]["kind"] == "shell"]
        steps = steps[:max_rows] + notable[:max_rows]
    for st in steps:
        uses = ", ".join(f"step {d}" for d in st["depends_on"]) or "-"
        note = st["problem"] and f"STOPS HERE: {st['problem']}" or st.get("skip") and f"SKIPPED: {st['skip']}" or (
            "needs --allow-shell" if st["executor"]["kind"] == "shell" else "")
        table.add_row(*_cells(st["step"], st["call"], st["tool_name"],
                              summarize_input(st["tool_name"], st["input"], 160, with_tool=False),
                              st["effect"], uses, note))
    out.print(table)
    if len(steps) < len(plan["steps"]):
        out.print(Text(f"... {len(plan['steps']) - len(steps)} more plain steps not shown "
                       f"(`drygate plan FILE --all`, or --json)", style="yellow"))
    basis = plan["basis"]
    reads = basis.get("reads") or []
    out.print(Text(f"basis: {len(reads)} read(s) before the steps ({sum(1 for r in reads if r['repeatable'])} "
                   f"re-checked at apply), {len(basis.get('files') or {})} file(s), "
                   f"{len(basis.get('servers') or {})} server catalog(s), policy {basis.get('policy_hash', '')[:12]}"))
    if plan.get("executed_writes"):
        out.print(Text("writes that already ran (live) and are NOT in this plan: "
                       + "; ".join(f"call {w['call']} {w['tool_name']}" for w in plan["executed_writes"][:20])))
    if ledger:
        out.print(Text(f"ledger: {ledger.get('status')}" + (f" ({ledger.get('reason')})" if ledger.get("reason") else "")))
    stops = [st for st in plan["steps"] if st.get("problem")]
    if stops:
        out.print(Text(f"apply will stop before step {stops[0]['step']}: {stops[0]['problem']}"
                       + (f" ({len(stops) - 1} later step(s) have problems too)" if len(stops) > 1 else ""),
                       style="yellow"))
    out.print(Text(f"{len(plan['steps'])} step(s) to apply; content hash {plan['content_hash']}"))
    if diffs:
        from drygate.cli.diff_view import print_file_changes

        print_file_changes(out, plan.get("file_changes"))


class ConsoleUI:
    """Progress and questions for :class:`drygate.plan.apply.Applier` on the terminal."""

    def __init__(self, total, yes):
        self.total = total
        self.yes = yes

    def step_started(self, step):
        from drygate.engine import summarize_input

        out.print(Text(f"[{step['step']}/{self.total}] {summarize_input(step['tool_name'], step['input'], 140)} ..."))

    def step_done(self, step, result, note=None):
        out.print(Text(f"[{step['step']}/{self.total}] done" + (f" ({note})" if note else ""), style="green"))

    def note(self, text):
        out.print(Text(text, style="yellow"))

    def confirm_shell(self, step):
        command = step["input"].get("command") if isinstance(step["input"], dict) else None
        out.print(Text.assemble((f"step {step['step']} runs a shell command: ", "bold"), str(command)))
        if self.yes:
            return True
        return click.confirm("Run it?", default=False)


@click.command()
@project_option
@click.argument("plan_file", type=click.Path(dir_okay=False))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--resume", is_flag=True, help="Continue an interrupted apply from its first step not done.")
@click.option("--force", is_flag=True, help="Apply even if the basis changed (recorded in the ledger).")
@click.option("--allow-shell", is_flag=True, help="Run the plan's shell command steps (each is shown first).")
@click.option("--mcp-config", "mcp_config_file", type=click.Path(dir_okay=False), default=None,
              help="The MCP configuration naming the servers (default: the project's .mcp.json).")
@click.option("--takeover", is_flag=True, help="With --resume: continue an apply another host left running (it died).")
@click.option("--retry-in-flight", is_flag=True,
              help="With --resume: run again a shell step that was running when the earlier apply stopped.")
@click.option("--accept-unchecked", is_flag=True,
              help="Apply steps that come after reads apply cannot re-check (named when refused); journaled.")
def apply(project, plan_file, yes, resume, force, allow_shell, mcp_config_file, takeover, retry_in_flight,
          accept_unchecked):
    """Apply a saved plan exactly: its steps, in order, once. Refuses stale or edited plans."""
    import anyio

    from drygate.plan.apply import ApplyRefused, Applier
    from drygate.plan.artifact import _who, load_plan
    from drygate.plan.executors import McpServers, mcp_config

    settings = _settings(project)
    try:
        plan = load_plan(plan_file)
        servers_config = mcp_config(settings.project_dir, mcp_config_file)
        store, policy = _open_store(settings)
        from drygate.plan.apply import run_ledger

        ledger = run_ledger(store, plan["run_id"])
    except DrygateError as e:
        _fail(str(e))
    if ledger and ledger.get("status") == "applied":
        err.print(Text(f"drygate: apply REFUSED, nothing was executed: run {plan['run_id']} was already applied "
                       f"({'this plan' if ledger.get('plan_hash') == plan['content_hash'] else 'another plan of this run'}, "
                       f"by {ledger.get('who')}): a plan applies once"))
        sys.exit(1)
    print_artifact(plan, ledger)
    if not yes and not click.confirm(f"Apply these {len(plan['steps'])} step(s)?", default=False):
        _fail("not applied")
    ui = ConsoleUI(len(plan["steps"]), yes)
    from drygate.gate import protected_state_file

    protected = (settings.project_dir, settings.policy_path,
                 protected_state_file(settings, settings.state_path_for(policy)), settings.alert_log_for(policy))

    async def main():
        async with McpServers(settings.project_dir, servers_config) as servers:
            applier = Applier(plan, store, settings.project_dir, policy, servers, ui, force=force, resume=resume,
                              allow_shell=allow_shell, who=_who(), protected=protected, takeover=takeover,
                              retry_in_flight=retry_in_flight, accept_unchecked=accept_unchecked)
            return await applier.run()

    try:
        outcome = anyio.run(main)
    except ApplyRefused as e:
        err.print(Text("drygate: apply REFUSED, nothing was executed:", style="red"))
        if e.reasons and not e.forceable:
            err.print(Text(f"  {str(e).split(': ', 1)[0]}:"))
        for reason in e.reasons or [str(e)]:
            err.print(Text(f"  - {reason}"))
        if e.forceable:
            err.print(Text("  (--force applies it anyway and records that; or make a new plan)"))
        elif "cannot re-check" in str(e):
            err.print(Text("  (--accept-unchecked applies it anyway and journals that you accepted these reads)"))
        sys.exit(1)
    except DrygateError as e:
        _fail(str(e))
    if outcome["status"] == "applied":
        out.print(Text(f"applied {outcome['done']} of {outcome['total']} step(s)", style="bold green"))
        return
    err.print(Text(f"drygate: apply STOPPED at step {outcome['stopped_at']} ({outcome['why']}); "
                   f"{outcome['done']} of {outcome['total']} step(s) done. Fix the cause, then "
                   f"`drygate apply --resume {plan_file}`", style="red"))
    sys.exit(1)


def save_plan_file(store, run_id, policy, project_dir, path):
    """Make the plan of ``run_id``, write it to ``path``, note it in the ledger; returns it."""
    from drygate.plan.apply import record_planned
    from drygate.plan.artifact import make_plan, save_plan

    plan = make_plan(store, run_id, policy, project_dir)
    save_plan(plan, path)
    status = record_planned(store, plan)
    if status != "planned":
        out.print(Text(f"note: run {run_id} is {status} already; applying this plan will be refused",
                       style="yellow"))
    return plan


def is_plan_file(argument):
    """True when ``drygate plan ARG`` names a saved plan file rather than a run."""
    return argument.endswith(".json") and os.path.isfile(argument)
