"""``drygate review [RUN | PLAN.json]`` (the review page) and ``drygate approve PLAN.json``.

The page is drygate.review.server; approvals are drygate.plan.approval; a reviewer's
subset is drygate.plan.subset. Both commands exit 1 with one line on a DrygateError.
"""

import os
import sys

import click
from rich.text import Text

from drygate.cli.common import _fail, _open_store, _settings, err, out, project_option
from drygate.errors import DrygateError


def _latest_run(store):
    runs = [r for r in store.list_runs() if r.run_id != "drygate-doctor"]
    if not runs:
        _fail("no runs yet")
    return runs[0].run_id


def _plan_for(settings, target):
    """``(plan, plan_path, store, policy)`` for a run id (a plan is made and saved under
    .drygate/plans/) or a saved plan file (verified)."""
    from drygate.cli.apply_cmd import is_plan_file, save_plan_file
    from drygate.plan.artifact import load_plan

    store, policy = _open_store(settings, create=False)
    if target and is_plan_file(target):
        return load_plan(target), os.path.abspath(target), store, policy
    if target and target.endswith(".json"):
        _fail(f"no plan file {target}")
    if store is None:
        _fail("no runs yet (no state store in this project)")
    run_id = _latest_run(store) if target in (None, "latest") else target
    folder = os.path.join(settings.project_dir, ".drygate", "plans")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"plan-{_safe(run_id)}-{os.urandom(4).hex()}.json")
    plan = save_plan_file(store, run_id, policy, settings.project_dir, path)
    return plan, path, store, policy


def _safe(name):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]


@click.command()
@project_option
@click.argument("target", required=False)
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port on the loopback address the page gets (0: a random free port).")
@click.option("--open", "open_browser", is_flag=True, help="Also open the link in the default browser.")
def review(project, target, port, open_browser):
    """Review a run's plan in the browser; approve or reject it there.

    TARGET is a run id ("latest" or nothing for the most recent run; its plan is made and
    saved under .drygate/plans/) or a saved plan file. Serves a local page on a loopback address of its own
    with a one-time token in the printed link; stop it with Ctrl-C."""
    from drygate.review.server import ReviewState, serve
    from drygate.review.view import ReviewData

    settings = _settings(project)
    try:
        plan, path, store, policy = _plan_for(settings, target)
        data = ReviewData(plan, path, store, policy, settings.project_dir, settings.alert_log_for(policy))
    except DrygateError as e:
        _fail(str(e))
    state = ReviewState(data)

    def ready(url):
        click.echo(f"drygate review: plan {plan['content_hash']} of run {plan['run_id']} ({len(plan['steps'])} "
                   f"step(s)), file {path}")
        click.echo(f"open {url}")
        click.echo("(the link works once; Ctrl-C stops the server)")
        sys.stdout.flush()
        if open_browser:
            import webbrowser

            webbrowser.open(url)

    try:
        serve(state, port, ready)
    except OSError as e:
        _fail(f"cannot serve on a loopback address, port {port}: {e.strerror or e}")
    except KeyboardInterrupt:
        pass


@click.command()
@project_option
@click.argument("plan_file", type=click.Path(dir_okay=False))
@click.option("--reject", is_flag=True, help="Record a rejection instead of an approval.")
@click.option("--drop", default=None, metavar="STEPS",
              help="Leave these steps out (e.g. '3,7-9'): approve a new plan, written to --out, with its own hash.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="With --drop: where to write the new plan.")
@click.option("--note", default=None, help="A note kept with the decision.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (CI).")
@click.option("--as", "who", default=None, help="Who decides (default: user@host).")
def approve(project, plan_file, reject, drop, out_file, note, yes, who):
    """Approve (or --reject) exactly the plan in PLAN_FILE: records who, when and its content hash.

    With `[apply] require_approval = true` in the policy, `drygate apply` runs only a plan
    whose hash was approved; an approval never carries over to another plan."""
    from drygate.cli.apply_cmd import print_artifact
    from drygate.plan.approval import record_decision
    from drygate.plan.artifact import _who, load_plan, save_plan
    from drygate.plan.subset import parse_steps, subset_plan
    from drygate.review.view import ReviewData

    settings = _settings(project)
    if drop and reject:
        _fail("--drop makes a new plan to approve; a rejection is of the whole plan")
    if drop and not out_file:
        _fail("--drop needs --out NEW_PLAN.json (the subset is a new plan with its own hash)")
    try:
        plan = load_plan(plan_file)
        store, policy = _open_store(settings, create=False)
        if store is None:
            _fail("no state store in this project: the decision could not be recorded")
        from drygate.plan.apply import run_ledger

        ledger = run_ledger(store, plan["run_id"])
        if ledger and ledger.get("status") in ("applying", "applied", "partial"):
            _fail(f"run {plan['run_id']} is {ledger['status']} already (plan {ledger.get('plan_hash')})")
        who = who or _who()
        if not reject:
            stale = ReviewData(plan, plan_file, None, policy, settings.project_dir).stale()
            if stale:
                _fail("the plan is stale, so it is not approved: " + "; ".join(stale))
        if drop:
            plan = subset_plan(plan, parse_steps(drop, len(plan["steps"])), settings.project_dir, who=who)
            save_plan(plan, out_file)
            out.print(Text(f"wrote the subset plan {out_file} ({len(plan['steps'])} step(s), "
                           f"{plan['content_hash']})"))
    except DrygateError as e:
        _fail(str(e))
    decision = "rejected" if reject else "approved"
    if not yes:
        print_artifact(plan, ledger, diffs=True)
        if not click.confirm(f"{'Reject' if reject else 'Approve'} exactly this plan ({plan['content_hash']})?",
                             default=False):
            _fail("nothing recorded")
    try:
        record = record_decision(store, plan, decision, who, "cli", note)
    except DrygateError as e:
        _fail(str(e))
    out.print(Text(f"{decision}: plan {record['plan_hash']} of run {record['run_id']} by {record['who']}",
                   style="bold green" if not reject else "bold red"))
    if not reject:
        err.print(Text(f"apply it with `drygate apply {out_file or plan_file}`"))
