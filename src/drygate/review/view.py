"""What the review page shows, built from a plan and its run's journal (masked, paged).

:class:`ReviewData` holds one verified plan (drygate.plan.artifact) and, when the plan's
state store is at hand, its run's journal and alerts. Everything it hands out is masked
(drygate.review.mask) and comes in pages (:func:`page_of`), so a plan of 100,000 steps
costs one pass to index at start and then one page per request, never a render of all.

Page records (dicts, for the templates):

- step: ``{"step", "call", "tool_name", "executor", "effect", "why", "summary", "input"
  (masked, indented JSON), "sql": [formatted statements], "uses": [{"step", "token"}],
  "used_by": [int], "problem", "skip", "file", "idempotency_key"}``
- call (timeline): ``{"kind": "call" | "alert" | "approval" | "apply", "ts", "call",
  "tool_name", "summary", "effect", "decision", "why", "tamper", "made_run_dry", "agent_id",
  "host"}``
- file change: the entry of drygate.plan.diffs with ``rows``: side-by-side diff rows
  ``{"kind": "same" | "change" | "add" | "del" | "hunk", "left_no", "left", "right_no", "right"}``
- basis item: ``{"what", "name", "status": "fresh" | "changed" | "not re-checked" |
  "re-checked at apply" | "absent", "detail"}``
"""

import json
import os
import re
import time

from drygate.review.mask import Masker

PAGE_SIZE = 100
FILES_PAGE_SIZE = 20
#: Input keys whose string values are SQL (formatted with sqlglot on the page).
SQL_KEYS = ("sql", "query", "statement", "statements", "command")
_SQL_START = ("select", "insert", "update", "delete", "create", "drop", "alter", "with", "replace", "merge",
              "truncate", "grant", "revoke", "upsert")

_QUOTED_SQL = re.compile(r"""(['"])((?i:select|insert|update|delete|create|drop|alter|with|truncate)\b.*?)\1""",
                         re.S)


def page_of(items, page, size):
    """``(slice, page, pages)`` of a list: ``page`` is 1-based and clamped to 1..pages."""
    pages = max(1, (len(items) + size - 1) // size)
    page = min(max(1, int(page)), pages)
    return items[(page - 1) * size: page * size], page, pages


def format_sql(text, masker):
    """Statements of ``text`` pretty-printed by sqlglot (list of str), or None when ``text``
    is not SQL that sqlglot parses. Masked after formatting."""
    import sqlglot
    from sqlglot.errors import SqlglotError

    stripped = text.lstrip().lower()
    if not stripped.startswith(_SQL_START) or len(text) > 200_000:
        return None
    try:
        statements = [s for s in sqlglot.parse(text, error_level=sqlglot.ErrorLevel.RAISE) if s is not None]
        if not statements:
            return None
        return [masker.text(s.sql(pretty=True)) for s in statements]
    except (SqlglotError, RecursionError, ValueError):
        return None


def _sql_in(value, masker):
    found = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str) and k.lower() in SQL_KEYS:
                sql = format_sql(v, masker)
                if sql:
                    found.extend(sql)
            elif isinstance(v, (dict, list)):
                found.extend(_sql_in(v, masker))
    elif isinstance(value, list):
        for v in value:
            found.extend(_sql_in(v, masker))
    return found


def side_by_side(diff):
    """Rows of a side-by-side view of a unified diff (list of dicts, see module docstring)."""
    rows, left_no, right_no = [], 0, 0
    dels, adds = [], []

    def flush():
        for i in range(max(len(dels), len(adds))):
            left = dels[i] if i < len(dels) else None
            right = adds[i] if i < len(adds) else None
            kind = "change" if left and right else ("del" if left else "add")
            rows.append({"kind": kind, "left_no": left[0] if left else None, "left": left[1] if left else "",
                         "right_no": right[0] if right else None, "right": right[1] if right else ""})
        dels.clear()
        adds.clear()

    for line in (diff or "").splitlines():
        if line.startswith(("--- ", "+++ ")):
            continue
        if line.startswith("@@"):
            flush()
            try:
                spec = line.split("@@")[1].split()
                left_no = int(spec[0][1:].split(",")[0]) - 1
                right_no = int(spec[1][1:].split(",")[0]) - 1
            except (IndexError, ValueError):
                pass
            rows.append({"kind": "hunk", "left_no": None, "left": line, "right_no": None, "right": ""})
        elif line.startswith("-"):
            left_no += 1
            dels.append((left_no, line[1:]))
        elif line.startswith("+"):
            right_no += 1
            adds.append((right_no, line[1:]))
        elif line.startswith("\\"):
            continue
        else:
            flush()
            left_no += 1
            right_no += 1
            rows.append({"kind": "same", "left_no": left_no, "left": line[1:], "right_no": right_no,
                         "right": line[1:]})
    flush()
    return rows


class ReviewData:
    """One plan under review. ``plan``: a verified plan dict; ``plan_path``: its file (the
    approve action verifies it again from there); ``store``: its state store or None;
    ``policy``: the compiled current policy; ``project_dir``; ``alert_log``: path or None.

    Index work done once here: the reverse step references, the run's journal and alerts
    (kept as light records), the masker. Pages are built per request.
    """

    def __init__(self, plan, plan_path, store, policy, project_dir, alert_log=None):
        self.plan = plan
        self.plan_path = plan_path
        self.store = store
        self.policy = policy or {}
        self.project_dir = project_dir
        self.masker = Masker(self.policy)
        self.used_by = {}
        for s in plan["steps"]:
            for d in s.get("depends_on") or []:
                self.used_by.setdefault(d, []).append(s["step"])
        self.timeline = self._timeline(alert_log)
        self._file_cache = {}
        #: The last check of the whole basis (:meth:`check_basis_now`): ``{"at", "changed",
        #: "unchecked"}`` (lists of str, as apply words them), or None.
        self.checked = None

    # -- summary ---------------------------------------------------------------------

    def summary(self):
        """The plan's header (dict): run, mode, who made it and when, counts, hash, cause."""
        plan, run = self.plan, self.plan.get("run") or {}
        m = self.masker
        cause = run.get("dry_cause")
        kinds = {}
        for s in plan["steps"]:
            kinds[s["executor"]["kind"]] = kinds.get(s["executor"]["kind"], 0) + 1
        return {"run_id": plan["run_id"], "mode": run.get("mode"), "created_by": plan.get("created_by"),
                "created_at": _when(plan.get("created_at")), "content_hash": plan["content_hash"],
                "steps": len(plan["steps"]), "kinds": kinds, "counts": run.get("counts") or {},
                "cause": dict(m.value(cause), summary=self._masked_summary(cause)) if cause else None,
                "problems": sum(1 for s in plan["steps"] if s.get("problem")),
                "subset_of": plan.get("subset_of"),
                "executed_writes": [m.value(w) for w in (plan.get("executed_writes") or [])[:50]],
                "executed_total": len(plan.get("executed_writes") or []),
                "denied_total": len(plan.get("denied") or []), "asked_total": len(plan.get("asked") or []),
                "plan_path": self.plan_path}

    def _masked_summary(self, brief):
        """The summary of a call the plan names (dry cause...), made from its masked input
        when the call is a step; else the stored summary with shapes masked."""
        from drygate.engine import summarize_input

        for s in self.plan["steps"]:
            if s["call"] == brief.get("call"):
                return self.masker.text(summarize_input(s["tool_name"], self.masker.value(s.get("input")), 200))
        return self.masker.text(brief.get("summary") or "")

    # -- steps -----------------------------------------------------------------------

    def step_view(self, s):
        """One step for the page (dict, see module docstring)."""
        m = self.masker
        masked_input = m.value(s.get("input"))
        sql = _sql_in(s.get("input"), m)
        if s["executor"]["kind"] == "shell" and isinstance(s.get("input"), dict) \
                and isinstance(s["input"].get("command"), str):
            # SQL quoted in a shell command (psql -c '...', sqlite3 db "..."): shown formatted too.
            for match in _QUOTED_SQL.finditer(s["input"]["command"]):
                sql += format_sql(match.group(2), m) or []
        uses = [{"step": r.get("step"), "token": r.get("token"), "call": r.get("call")}
                for r in s.get("references") or []]
        from drygate.engine import summarize_input

        # The summary is made again from the masked input: the plan's own was made from the
        # real one, and a secret under a telling key has no telling shape in it.
        summary = m.text(summarize_input(s["tool_name"], masked_input, 200))
        return {"step": s["step"], "call": s["call"], "tool_name": s["tool_name"], "executor": s["executor"],
                "effect": s["effect"], "why": m.text(s.get("why") or ""), "summary": summary,
                "input": json.dumps(masked_input, indent=2, ensure_ascii=False, default=str),
                "sql": sql, "uses": uses, "used_by": self.used_by.get(s["step"], []),
                "problem": m.text(s.get("problem")), "skip": m.text(s.get("skip")),
                "file": s.get("file"), "idempotency_key": s.get("idempotency_key")}

    def steps_page(self, page, size=PAGE_SIZE):
        """``(steps, page, pages)`` of step views."""
        items, page, pages = page_of(self.plan["steps"], page, size)
        return [self.step_view(s) for s in items], page, pages

    # -- timeline --------------------------------------------------------------------

    def _timeline(self, alert_log):
        items = []
        if self.store is not None:
            try:
                entries = self.store.journal(self.plan["run_id"])
            except Exception:  # a store that cannot be read: the plan alone is still shown
                entries = []
            for e in entries:
                if e.get("kind") == "call":
                    items.append(("call", e.get("ts") or 0, e))
                elif e.get("tool_name") in ("drygate/approval", "drygate/apply"):
                    items.append(("approval" if e["tool_name"] == "drygate/approval" else "apply",
                                  e.get("ts") or 0, e))
        if alert_log:
            from drygate.alerts import read_alerts

            try:
                for a in read_alerts(alert_log):
                    if a.get("run_id") == self.plan["run_id"]:
                        items.append(("alert", a.get("ts") if isinstance(a.get("ts"), (int, float)) else 0, a))
            except Exception:  # an unreadable alert log: the journal is still shown
                pass
        items.sort(key=lambda t: t[1])
        return items

    def timeline_page(self, page, size=PAGE_SIZE):
        """``(records, page, pages)`` of the run's calls, alerts and decisions, oldest first."""
        items, page, pages = page_of(self.timeline, page, size)
        return [self._timeline_view(kind, ts, e) for kind, ts, e in items], page, pages

    def timeline_counts(self):
        """How many calls of each decision, and alerts, the timeline holds (dict)."""
        counts = {}
        for kind, _, e in self.timeline:
            key = e.get("action") if kind == "call" else kind
            counts[key] = counts.get(key, 0) + 1
        return counts

    def _timeline_view(self, kind, ts, e):
        m = self.masker
        if kind == "call":
            from drygate.engine import summarize_input

            return {"kind": "call", "ts": _when(ts), "call": e.get("call"), "tool_name": e.get("tool_name"),
                    "summary": m.text(summarize_input(e.get("tool_name") or "", m.value(e.get("tool_input")), 200,
                                                      with_tool=False)),
                    "effect": e.get("effect"), "decision": e.get("action"), "why": m.text(e.get("why") or ""),
                    "tamper": bool(e.get("tamper")), "made_run_dry": bool(e.get("made_run_dry")),
                    "agent_id": e.get("agent_id"), "host": e.get("host")}
        if kind == "alert":
            return {"kind": "alert", "ts": _when(ts), "call": None, "tool_name": e.get("tool_name"),
                    "summary": m.text(e.get("summary") or ""), "effect": e.get("category"),
                    "decision": e.get("kind"), "why": m.text(e.get("reason") or e.get("cause") or ""),
                    "tamper": e.get("kind") == "tamper", "made_run_dry": False, "agent_id": None, "host": None}
        result = e.get("result") if isinstance(e.get("result"), dict) else {}
        what = result.get("decision") or result.get("event") or ""
        detail = " ".join(str(x) for x in (result.get("who"), result.get("plan_hash") or "",
                                          result.get("step") and f"step {result.get('step')}" or "",
                                          result.get("why") or "") if x)
        return {"kind": kind, "ts": _when(ts), "call": None, "tool_name": e.get("tool_name"),
                "summary": m.text(detail), "effect": None, "decision": what, "why": "", "tamper": False,
                "made_run_dry": False, "agent_id": None, "host": None}

    # -- files -----------------------------------------------------------------------

    def files_page(self, page, size=FILES_PAGE_SIZE):
        """``(changes, page, pages)``: file changes with side-by-side rows, masked."""
        items, page, pages = page_of(self.plan.get("file_changes") or [], page, size)
        out = []
        for entry in items:
            diff = self.masker.text(entry.get("diff"))
            out.append(dict(entry, diff=diff, rows=side_by_side(diff) if diff else [],
                            note=self.masker.text(entry.get("note")),
                            problems=[dict(p, problem=self.masker.text(p.get("problem")))
                                      for p in entry.get("problems") or []]))
        return out, page, pages

    # -- basis -----------------------------------------------------------------------

    def basis(self):
        """The plan's basis as items with a status (list of dicts, see module docstring), and
        whether anything checked here changed (bool). Checked here, without any server: the
        policy's hash and the files the file steps touch. Reads through MCP servers are
        re-run by apply (drygate.plan.apply.Applier.check_basis) before its first step."""
        basis = self.plan.get("basis") or {}
        items = []
        current = self.policy.get("hash") or ""
        planned = basis.get("policy_hash") or ""
        items.append({"what": "policy", "name": "drygate.toml",
                      "status": "fresh" if planned == current else "changed",
                      "detail": f"hash {planned[:12]}" + ("" if planned == current else f" -> now {current[:12]}")})
        for path, expected in sorted((basis.get("files") or {}).items()):
            now = self._file_fingerprint(path)
            if now == expected:
                status, detail = "fresh", ("absent, as the plan saw it" if expected is None else
                                           "the same content as the plan saw")
            else:
                status = "changed"
                detail = ("the file now exists; the plan saw none" if expected is None else
                          "the file was removed since the plan" if now is None else
                          f"the content changed since the plan (apply will refuse it as stale)")
            items.append({"what": "file", "name": self.masker.text(path), "status": status, "detail": detail})
        checked = self.checked
        for i, read in enumerate(basis.get("reads") or []):
            from drygate.engine import summarize_input

            status = "re-checked at apply" if read.get("repeatable") else "not re-checked"
            detail = read.get("why") or ""
            if checked is not None:
                # Apply's own words (Applier.check_basis) name each read "read N (call C, TOOL)".
                label = f"read {i + 1} (call {read.get('call')}, {read.get('tool_name')})"
                found = [line for line in checked["changed"] if line.startswith(label)]
                if found:
                    status, detail = "changed", "; ".join(found)
                elif read.get("repeatable"):
                    status, detail = "fresh", f"re-run at {checked['at']}: the same result"
            items.append({"what": "read", "name": f"call {read.get('call')}: " + self.masker.text(
                summarize_input(read.get("tool_name") or "", self.masker.value(read.get("input")), 140)),
                          "status": status, "detail": self.masker.text(detail)})
        for server, info in sorted((basis.get("servers") or {}).items()):
            status, detail = "re-checked at apply", f"{len(info.get('tools') or {})} tool schema(s) as the run saw them"
            if checked is not None:
                found = [line for line in checked["changed"] if line.startswith((f"server {server} ", f"{server}/"))]
                status, detail = ("changed", "; ".join(found)) if found else (
                    "fresh", f"{detail}: the same at {checked['at']}")
            items.append({"what": "server", "name": server, "status": status, "detail": self.masker.text(detail)})
        return items

    async def check_basis_now(self):
        """Re-run the plan's whole basis check as apply would before its first step
        (drygate.plan.apply.Applier.check_basis: the repeatable reads through the project's
        MCP servers (.mcp.json), the tools' schemas, the files, the policy), and remember
        the outcome for :meth:`basis`. Reads only; executes no step. Returns ``self.checked``.
        Raises DrygateError (PlanError) when a server cannot be configured."""
        from drygate.plan.apply import Applier
        from drygate.plan.executors import McpServers, mcp_config

        class Quiet:
            def note(self, text):
                pass

        config = mcp_config(self.project_dir, None)
        async with McpServers(self.project_dir, config) as servers:
            changed, unchecked = await Applier(self.plan, self.store, self.project_dir, self.policy, servers,
                                               Quiet()).check_basis()
        self.checked = {"at": _when(time.time()), "changed": changed, "unchecked": unchecked}
        return self.checked

    def stale(self):
        """What makes the plan stale now (list of str; empty when nothing checked changed)."""
        return [f"{i['what']} {i['name']}: {i['detail']}" for i in self.basis() if i["status"] == "changed"]

    def _file_fingerprint(self, path):
        from drygate.errors import PlanError
        from drygate.plan.artifact import read_text
        from drygate.plan.fingerprint import text_fingerprint

        try:
            st = os.stat(path)
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            key = None
        cached = self._file_cache.get(path)
        if cached and cached[0] == key and key is not None:
            return cached[1]
        try:
            fp = text_fingerprint(read_text(path))
        except PlanError:
            fp = "unreadable"
        self._file_cache[path] = (key, fp)
        return fp

    # -- simulation and approvals ------------------------------------------------------

    def simulation(self):
        """What shadows and overlays simulated (drygate.plan.build's ``simulation``), masked."""
        return self.masker.value((self.plan.get("run") or {}).get("simulation") or {})

    def approval(self):
        """The latest decision on this plan's hash (drygate.plan.approval), or None."""
        if self.store is None:
            return None
        from drygate.plan.approval import approval_of

        record = approval_of(self.store, self.plan["content_hash"])
        return dict(record, at=_when(record.get("at"))) if record else None

    def ledger(self):
        """The run's apply ledger record (drygate.plan.apply), or None."""
        if self.store is None:
            return None
        from drygate.plan.apply import run_ledger

        return run_ledger(self.store, self.plan["run_id"])


def _when(ts):
    if not isinstance(ts, (int, float)) or not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
