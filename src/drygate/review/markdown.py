"""A plan as Markdown for a pull-request comment (``drygate plan RUN --format markdown``).

As Terraform users get from their PR bots: a summary, the steps as a table (the first
:data:`MAX_STEPS`, then every step that needs attention), file changes as unified diffs
folded in ``<details>``, the basis, and the plan's content hash. Secrets are masked
(drygate.review.mask). Text from the run or the plan file has every ASCII punctuation
character backslash-escaped (:func:`cell`), inline code spans (:func:`code`) and code blocks
(:func:`fence`) use a backtick run longer than any inside them, so a tool input cannot leave
its cell, span or block, nor become a link, an image or HTML.
"""

import re

from drygate.review.mask import Masker

MAX_STEPS = 200
MAX_DIFF_CHARS = 20_000


def cell(text, limit=160):
    """``text`` made safe for one Markdown table cell (str), cut to ``limit`` characters."""
    text = str(text if text is not None else "")
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    text = re.sub(r"\s+", " ", text)
    # every ASCII punctuation character backslash-escaped (CommonMark 2.4: any of them may be;
    # an escaped one is literal text), so no input starts an image, link, autolink, emphasis,
    # code span, entity or HTML; `\\|` also keeps a GFM table cell whole
    return _PUNCTUATION.sub(r"\\\g<0>", text)


_PUNCTUATION = re.compile(r"[!-/:-@\[-`{-~]")


def html_text(text, limit=300):
    """``text`` for raw HTML in the Markdown (the ``<summary>`` of a folded diff, where
    Markdown escapes do not apply): HTML-escaped (quotes too), line breaks as spaces, cut."""
    import html

    text = re.sub(r"\s+", " ", str(text if text is not None else ""))
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return html.escape(text, quote=True)


def code(text, limit=200):
    """``text`` as one inline code span (str) for a line outside a table: opened and closed
    by a backtick run longer than any inside it (CommonMark 6.1; backslashes are literal in a
    code span, so escaping cannot work there), padded with spaces when it starts or ends with
    a backtick, line breaks as spaces, cut to ``limit`` characters."""
    text = re.sub(r"[\r\n]+", " ", str(text if text is not None else ""))
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    marks = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text[:1] in ("`", " ") or text[-1:] in ("`", " ") else ""
    return f"{marks}{pad}{text}{pad}{marks}"


def fence(text, lang=""):
    """``text`` in a fenced code block whose fence is longer than any backtick run in it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    marks = "`" * max(3, longest + 1)
    return f"{marks}{lang}\n{text.rstrip(chr(10))}\n{marks}"


def plan_markdown(plan, policy=None, approval=None, max_steps=MAX_STEPS):
    """The Markdown text (str) of ``plan`` (a plan dict: the saved artifact of
    drygate.plan.artifact, or drygate.plan.build's plan of a run, which has no hash or
    basis yet). ``approval``: the latest decision on its hash (drygate.plan.approval) or None."""
    import jinja2

    from drygate.engine import summarize_input

    m = Masker(policy)
    run = plan.get("run") or {"mode": plan.get("mode"), "dry_cause": plan.get("dry_cause"),
                              "counts": plan.get("counts") or {}, "simulation": plan.get("simulation")}
    steps = plan.get("steps") or []
    shown = steps[:max_steps]
    notable = [s for s in steps[max_steps:] if s.get("problem") or s.get("depends_on")
               or (s.get("executor") or {}).get("kind") == "shell"][:max_steps]
    rows = []
    for s in shown + notable:
        uses = ", ".join(f"step {d}" for d in s.get("depends_on") or [])
        note = (f"STOPS HERE: {s['problem']}" if s.get("problem") else
                f"skipped: {s['skip']}" if s.get("skip") else "")
        rows.append({"step": s["step"], "call": s.get("call"), "tool": cell(s["tool_name"], 80),
                     "input": cell(m.text(summarize_input(s["tool_name"], m.value(s.get("input")), 200,
                                                          with_tool=False)), 200),
                     "effect": cell(s.get("effect")), "uses": cell(uses), "note": cell(m.text(note), 200)})
    files = []
    for f in plan.get("file_changes") or []:
        diff = m.text(f.get("diff") or "")
        cut = len(diff) > MAX_DIFF_CHARS
        files.append({"path": html_text(m.text(f["path"]), 300), "steps": ", ".join(map(str, f.get("steps") or [])),
                      "diff": fence(diff[:MAX_DIFF_CHARS] + ("\n… (cut; the whole diff is in the plan file)" if cut
                                                             else ""), "diff") if diff else None,
                      "note": cell(m.text(f.get("note") or ""), 400),
                      "problems": [cell(m.text(f"step {p.get('step')}: {p.get('problem')}"), 300)
                                   for p in f.get("problems") or []]})
    basis = plan.get("basis")
    reads = (basis or {}).get("reads") or []
    cause = run.get("dry_cause")
    context = {
        "plan": plan, "run": run, "rows": rows, "hidden": len(steps) - len(rows), "files": files,
        "basis": basis, "reads_total": len(reads), "reads_checked": sum(1 for r in reads if r.get("repeatable")),
        "reads_unchecked": [cell(m.text(f"call {r.get('call')} {r.get('tool_name')}: {r.get('why')}"), 200)
                            for r in reads if not r.get("repeatable")][:50],
        "cause": cell(m.text(f"call {cause['call']} ({cause['tool_name']}: {_cause_summary(cause, steps, m)})"), 300)
        if cause else None,
        "executed": [cell(f"call {w['call']} {w['tool_name']}", 120) for w in (plan.get("executed_writes") or [])[:20]],
        "executed_total": len(plan.get("executed_writes") or []),
        "approval": approval, "subset_of": plan.get("subset_of"),
        "simulation": m.value(run.get("simulation") or {}), "cell": cell, "code": code,
    }
    env = jinja2.Environment(loader=jinja2.PackageLoader("drygate.review", "templates"), autoescape=False,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    return env.get_template("plan.md.jinja").render(**context)


def _cause_summary(cause, steps, m):
    """The dry cause's summary from its step's masked input (its stored summary was made
    from the real input)."""
    from drygate.engine import summarize_input

    for s in steps:
        if s.get("call") == cause.get("call"):
            return summarize_input(s["tool_name"], m.value(s.get("input")), 200, with_tool=False)
    return m.text(cause.get("summary") or "")
