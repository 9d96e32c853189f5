"""The review page in a real browser: Debian's chromium, headless, driven by Playwright.

Assertions are on what the page shows; screenshots are kept under
.cache/artefacts/review_page/ (DRYGATE_UPDATE_DOCS=1 also copies two into docs/images/).
Approve and reject end to end (through `drygate apply` with `[apply] require_approval`),
a reviewer's subset, a stale plan and a tampered plan."""

import json

import pytest
from conftest import SESSION, Project, write_policy

from review_page.conftest import SECRET_VALUES, dry, keep_for_docs, save_plan, screenshot

REQUIRE = "\n[apply]\nrequire_approval = true\n"


@pytest.fixture
def file_project(tmp_path):
    """A dry run of file steps only (apply can run them here), approval required."""
    project = Project(tmp_path / "files")
    write_policy(project.root, "dry", REQUIRE)
    (project.root / "a.txt").write_text("one\n")
    dry(project, "Edit", {"file_path": "a.txt", "old_string": "one", "new_string": "two"})
    dry(project, "Write", {"file_path": "b.txt", "content": "b\n"})
    dry(project, "Write", {"file_path": "c.txt", "content": "c\n"})
    project.plan_file = tmp_path / "files-plan.json"  # review_project's is plan.json
    project.saved_hash = save_plan(project, project.plan_file)["content_hash"]
    return project


def open_review(page, server):
    page.goto(server.url)
    page.wait_for_selector("#plan-hash")
    assert page.url == server.base + "/"  # the token left the address bar


def test_the_page_shows_the_run(review_project, serve, page):
    server = serve(review_project, review_project.plan_file)
    open_review(page, server)
    assert page.inner_text("#plan-hash") == review_project.saved_hash
    assert page.inner_text("#run-id") == SESSION
    assert "NOT DECIDED" in page.inner_text("#approval-status")
    summary = page.inner_text("#summary")
    assert "went dry at call 2 (Edit: edit config.ini)" in summary and "2 file, 3 mcp, 1 shell" in summary
    basis = page.inner_text("#basis")
    assert "config.ini" in basis and "fresh" in basis and "not re-checked" in basis
    keep_for_docs(screenshot(page, "overview"), "review-overview.png")

    page.click("#nav-steps")
    page.wait_for_url("**/steps")  # the new page has loaded (a locator's count() does not wait)
    step4 = page.inner_text("#step-4")
    assert "mcp__store__put_meta" in step4 and "uses step 3" in step4 and "drygate:ref:4:etag" in step4
    assert "used by step 4" in page.inner_text("#step-3")
    sql = page.locator("#step-5 pre.sql").inner_text()
    assert sql.startswith("UPDATE accounts SET plan = 'pro'\nWHERE") and "FROM trials" in sql
    assert "INSERT INTO audit" in page.locator("#step-6 pre.sql").inner_text()
    page.click("#step-4 >> text=input")
    assert "customer_pin" in page.inner_text("#step-4") and "••••••" in page.inner_text("#step-4")
    keep_for_docs(screenshot(page, "steps"), "review-steps.png")
    page.click("#step-4 a")  # the reference leads to the step it uses
    assert page.url.endswith("#step-3")

    page.click("#nav-timeline")
    page.wait_for_url("**/timeline")  # the new page has loaded (a locator's count() does not wait)
    rows = page.locator("table.timeline tbody tr")
    assert rows.count() == 10  # 9 calls and the tamper alert
    text = page.inner_text("table.timeline")
    assert "made the run dry" in text and "payments are never made by an agent" in text and "TAMPER" in text
    assert page.locator("tr.kind-alert").count() == 1
    screenshot(page, "timeline")

    page.click("#nav-files")
    page.wait_for_url("**/files")  # the new page has loaded (a locator's count() does not wait)
    diff = page.locator("section.file").first
    changed = diff.locator("tr.change")
    assert changed.count() == 1
    assert "old.internal" in changed.locator("td.left").inner_text()
    assert "new.internal" in changed.locator("td.right").inner_text()
    assert "# Changes" in page.locator("section.file").nth(1).locator("tr.add td.right").first.inner_text()
    keep_for_docs(screenshot(page, "files"), "review-files.png")
    everything = "".join(page.content() for _ in [0])
    for secret in SECRET_VALUES:
        assert secret not in everything


def test_approve_in_the_browser_then_apply(file_project, serve, page):
    r = file_project.cli("apply", str(file_project.plan_file), "--yes", check=False)
    assert r.returncode == 1 and "requires an approval" in r.stderr
    server = serve(file_project, file_project.plan_file)
    open_review(page, server)
    page.fill("#note", "looks right")
    page.click("#approve")
    assert page.inner_text("#outcome h2") == "Approved"
    assert page.inner_text("#decided-hash") == file_project.saved_hash
    page.goto(server.base + "/")
    assert page.inner_text("#approval-status").startswith("APPROVED by")
    screenshot(page, "approved")
    [record] = [e["result"] for e in file_project.journal() if e.get("tool_name") == "drygate/approval"]
    assert record["via"] == "review-page" and record["note"] == "looks right"
    r = file_project.cli("apply", str(file_project.plan_file), "--yes")
    assert "applied 3 of 3" in r.stdout and (file_project.root / "a.txt").read_text() == "two\n"
    page.goto(server.base + "/")  # deciding again on an applied run changes nothing
    page.click("#reject")
    assert "applied already" in page.inner_text("#message")


def test_reject_in_the_browser(file_project, serve, page):
    server = serve(file_project, file_project.plan_file)
    open_review(page, server)
    page.click("#reject")
    assert page.inner_text("#outcome h2") == "Rejected"
    screenshot(page, "rejected")
    r = file_project.cli("apply", str(file_project.plan_file), "--yes", check=False)
    assert r.returncode == 1 and "was rejected" in r.stderr and not (file_project.root / "b.txt").exists()


def test_leave_steps_out_in_the_browser(file_project, review_project, serve, page):
    server = serve(review_project, review_project.plan_file)
    open_review(page, server)
    page.fill("#drop", "3")
    page.click("#approve")
    assert "step 4 uses drygate:ref:4:etag, which step 3 produces" in page.inner_text("#message")
    server = serve(file_project, file_project.plan_file)
    open_review(page, server)
    page.fill("#drop", "2")
    page.click("#approve")
    subset = page.inner_text("#subset-path")
    small = json.loads(open(subset).read())
    assert page.inner_text("#decided-hash") == small["content_hash"] != file_project.saved_hash
    assert small["subset_of"]["dropped"] == [2]
    r = file_project.cli("apply", subset, "--yes")
    assert "applied 2 of 2" in r.stdout and not (file_project.root / "b.txt").exists()
    assert (file_project.root / "c.txt").read_text() == "c\n"


def test_a_stale_plan_cannot_be_approved(file_project, serve, page):
    server = serve(file_project, file_project.plan_file)
    open_review(page, server)
    assert page.locator("#stale-warning").count() == 0
    (file_project.root / "a.txt").write_text("someone else changed it\n")
    page.reload()
    assert "STALE" in page.inner_text("#stale-warning")
    row = page.locator("tr.basis-changed")
    assert row.count() == 1 and "a.txt" in row.inner_text() and "changed" in row.inner_text()
    screenshot(page, "stale")
    page.click("#approve")
    assert "stale" in page.inner_text("#message") and "a.txt" in page.inner_text("#message")
    assert not [e for e in file_project.journal() if e.get("tool_name") == "drygate/approval"]


def test_a_tampered_plan_cannot_be_approved(file_project, serve, page):
    from drygate.plan.artifact import save_plan as write
    from drygate.plan.fingerprint import fingerprint

    server = serve(file_project, file_project.plan_file)
    open_review(page, server)
    plan = json.loads(file_project.plan_file.read_text())
    plan["steps"][1]["input"]["content"] = "evil\n"
    file_project.plan_file.write_text(json.dumps(plan))  # edited after the page was opened
    page.click("#approve")
    assert "changed after it was written" in page.inner_text("#message")
    screenshot(page, "tampered")
    plan.pop("content_hash")
    plan["content_hash"] = fingerprint(plan)  # ...and with its hash recomputed
    write(plan, file_project.plan_file)
    page.goto(server.base + "/")
    page.click("#approve")
    assert "another plan" in page.inner_text("#message")
    assert not [e for e in file_project.journal() if e.get("tool_name") == "drygate/approval"]
