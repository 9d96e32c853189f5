"""The file section of ``drygate plan`` and of ``drygate apply``'s review: unified diffs
of each real file against what the run's dry writes would make of it
(drygate.plan.diffs)."""

from rich.text import Text

#: Diff lines shown per file on the terminal; ``--json`` carries the whole text.
MAX_LINES = 200
_STYLE = {"+": "green", "-": "red", "@": "cyan", "\\": "dim"}


def print_file_changes(console, changes, max_lines=MAX_LINES):
    """Print ``changes`` (entries of :func:`drygate.plan.diffs.file_changes`) on ``console``."""
    if not changes:
        return
    console.print(Text("File changes (the real file against what the run's dry writes would make of it; "
                       "nothing was written):", style="bold"))
    for change in changes:
        steps = ", ".join(str(s) for s in change["steps"])
        head = {("absent", "exists"): "new file", ("exists", "exists"): "changed",
                ("absent", "absent"): "not created"}.get((change["before"], change["after"]), "")
        console.print(Text.assemble((change["path"], "bold"), f"  (step{'s' if len(change['steps']) > 1 else ''} "
                                    f"{steps}{'; ' + head if head else ''})"))
        for p in change["problems"]:
            console.print(Text(f"  step {p['step']} would FAIL: {p['problem']} (on the host it changes nothing; "
                               f"`drygate apply` stops before it)", style="yellow"))
        if change.get("note"):
            console.print(Text(f"  note: {change['note']}", style="yellow"))
        diff = change.get("diff")
        if diff is None:
            continue
        if not diff:
            console.print(Text("  no change to the file's content"))
            continue
        lines = diff.splitlines()
        for line in lines[:max_lines]:
            console.print(Text(line, style="bold" if line.startswith(("--- ", "+++ ")) else _STYLE.get(line[:1], "")))
        if len(lines) > max_lines:
            console.print(Text(f"  ... {len(lines) - max_lines} more diff line(s); --json carries the whole diff",
                               style="dim"))
