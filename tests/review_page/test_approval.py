"""Approvals bound to a plan's content hash, `[apply] require_approval`, and a reviewer's
subset (issue 14, part 1): through the real CLI on a real state store (SQLite and Redis)."""

import json

import pytest
from conftest import SESSION, write_policy

from review_page.conftest import dry, make_run, save_plan

REQUIRE = "\n[apply]\nrequire_approval = true\n"


def file_run(project, extra=""):
    write_policy(project.root, "dry", extra)
    dry(project, "Write", {"file_path": "a.txt", "content": "one\n"})
    dry(project, "Edit", {"file_path": "a.txt", "old_string": "one", "new_string": "two"})
    dry(project, "Write", {"file_path": "b.txt", "content": "b\n"})
    dry(project, "Write", {"file_path": "c.txt", "content": "c\n"})


def decisions(project):
    return [e["result"] for e in project.journal() if e.get("tool_name") == "drygate/approval"]


def test_apply_requires_an_approval_of_exactly_this_plan(project, tmp_path):
    file_run(project, REQUIRE)
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    save_plan(project, first)
    other = save_plan(project, second)  # the same run planned again: new idempotency keys, a new hash
    r = project.cli("apply", str(second), "--yes", check=False)
    assert r.returncode == 1 and "requires an approval" in r.stderr and not (project.root / "a.txt").exists()
    project.cli("approve", str(first), "--yes", "--as", "alice@laptop")
    r = project.cli("apply", str(second), "--yes", check=False)  # approval of the first never carries over
    assert r.returncode == 1 and "requires an approval" in r.stderr and other["content_hash"] in r.stderr
    assert not (project.root / "a.txt").exists()
    r = project.cli("apply", str(first), "--yes")
    assert "applied 4 of 4" in r.stdout
    assert (project.root / "a.txt").read_text() == "two\n"
    [record] = decisions(project)
    assert record["decision"] == "approved" and record["who"] == "alice@laptop" and record["via"] == "cli"
    assert record["plan_hash"] == json.loads(first.read_text())["content_hash"] and record["at"] > 0
    store = project.open_store()
    try:
        from drygate.plan.approval import approval_of

        assert approval_of(store, record["plan_hash"])["decision"] == "approved"
        assert approval_of(store, other["content_hash"]) is None
    finally:
        store.close()


def test_a_rejected_plan_is_refused_even_without_the_policy(project, tmp_path):
    file_run(project)
    path = tmp_path / "plan.json"
    save_plan(project, path)
    project.cli("approve", str(path), "--reject", "--yes", "--note", "not now")
    r = project.cli("apply", str(path), "--yes", check=False)
    assert r.returncode == 1 and "was rejected" in r.stderr and not (project.root / "a.txt").exists()
    assert decisions(project)[-1]["decision"] == "rejected" and decisions(project)[-1]["note"] == "not now"


def test_an_edited_plan_file_cannot_be_approved(project, tmp_path):
    file_run(project, REQUIRE)
    path = tmp_path / "plan.json"
    plan = save_plan(project, path)
    plan["steps"][2]["input"]["content"] = "evil\n"
    path.write_text(json.dumps(plan))
    r = project.cli("approve", str(path), "--yes", check=False)
    assert r.returncode == 1 and "changed after it was written" in r.stderr and "Traceback" not in r.stderr
    assert decisions(project) == []


def test_a_stale_plan_is_not_approved(project, tmp_path):
    write_policy(project.root, "dry", REQUIRE)
    (project.root / "a.txt").write_text("one\n")
    dry(project, "Edit", {"file_path": "a.txt", "old_string": "one", "new_string": "two"})
    path = tmp_path / "plan.json"
    save_plan(project, path)
    (project.root / "a.txt").write_text("someone else\n")
    r = project.cli("approve", str(path), "--yes", check=False)
    assert r.returncode == 1 and "stale" in r.stderr and "a.txt" in r.stderr
    assert decisions(project) == []


def test_a_subset_is_a_new_plan_that_applies_only_its_steps(project, tmp_path):
    file_run(project, REQUIRE)
    path, subset = tmp_path / "plan.json", tmp_path / "subset.json"
    plan = save_plan(project, path)
    project.cli("approve", str(path), "--drop", "3", "--out", str(subset), "--yes")
    small = json.loads(subset.read_text())
    assert small["content_hash"] != plan["content_hash"] and len(small["steps"]) == 3
    assert small["subset_of"] == {"plan_hash": plan["content_hash"], "kept": [1, 2, 4], "dropped": [3]}
    assert [s["step"] for s in small["steps"]] == [1, 2, 3]
    assert [f["path"].rsplit("/", 1)[-1] for f in small["file_changes"]] == ["a.txt", "c.txt"]
    # the parent was not approved: only the subset's hash was
    r = project.cli("apply", str(path), "--yes", check=False)
    assert r.returncode == 1 and "requires an approval" in r.stderr
    r = project.cli("apply", str(subset), "--yes")
    assert "applied 3 of 3" in r.stdout
    assert (project.root / "a.txt").read_text() == "two\n" and (project.root / "c.txt").read_text() == "c\n"
    assert not (project.root / "b.txt").exists()


def test_a_subset_must_keep_what_its_kept_steps_depend_on(project, tmp_path):
    make_run(project)
    path = tmp_path / "plan.json"
    plan = save_plan(project, path)
    assert plan["steps"][3]["depends_on"] == [3]
    r = project.cli("approve", str(path), "--drop", "3", "--out", str(tmp_path / "s.json"), "--yes", check=False)
    assert r.returncode == 1 and "step 4 uses drygate:ref:4:etag, which step 3 produces" in r.stderr
    assert not (tmp_path / "s.json").exists()


def test_a_subset_must_keep_the_edit_a_kept_edit_was_simulated_on(project, tmp_path):
    file_run(project)
    path = tmp_path / "plan.json"
    save_plan(project, path)
    r = project.cli("approve", str(path), "--drop", "1", "--out", str(tmp_path / "s.json"), "--yes", check=False)
    assert r.returncode == 1 and "step 2 changes" in r.stderr and "after step 1" in r.stderr
    assert not (tmp_path / "s.json").exists()
    for bad, why in (("0", "not steps of this plan"), ("99", "not steps of this plan"),
                     ("2-1", "not steps of this plan"), ("x", "not a step number"), ("1-4", "every step")):
        r = project.cli("approve", str(path), "--drop", bad, "--out", str(tmp_path / "s.json"), "--yes", check=False)
        assert r.returncode == 1 and why in r.stderr and "Traceback" not in r.stderr, (bad, r.stderr)


def test_a_forged_subset_is_refused_by_apply(project, tmp_path):
    """A file that claims to be a subset may only leave journaled steps out: a step added,
    changed or reordered (hash recomputed) is refused."""
    from drygate.plan.artifact import save_plan as write
    from drygate.plan.fingerprint import fingerprint

    file_run(project)
    path = tmp_path / "plan.json"
    plan = save_plan(project, path)
    forged = dict(plan, subset_of={"plan_hash": plan["content_hash"], "kept": [1, 2, 3, 4], "dropped": []})
    forged["steps"] = [dict(s) for s in plan["steps"]]
    forged["steps"][2] = dict(forged["steps"][2], input={"file_path": "b.txt", "content": "forged\n"})
    forged.pop("content_hash")
    forged["content_hash"] = fingerprint(forged)
    write(forged, tmp_path / "forged.json")
    r = project.cli("apply", str(tmp_path / "forged.json"), "--yes", check=False)
    assert r.returncode == 1 and "not the skipped writes" in r.stderr and not (project.root / "b.txt").exists()
    reordered = dict(plan, subset_of={"plan_hash": plan["content_hash"], "kept": [4, 3], "dropped": [1, 2]})
    reordered["steps"] = [dict(plan["steps"][3], step=1), dict(plan["steps"][2], step=2)]
    reordered.pop("content_hash")
    reordered["content_hash"] = fingerprint(reordered)
    write(reordered, tmp_path / "reordered.json")
    r = project.cli("apply", str(tmp_path / "reordered.json"), "--yes", check=False)
    assert r.returncode == 1 and "not the skipped writes" in r.stderr


@pytest.mark.parametrize("text", ['[apply]\nrequire_approval = "yes"\n', "[apply]\nrequire = true\n",
                                  '[review]\nsecret_patterns = ["("]\n', "[review]\nsecret_keys = [1]\n"])
def test_bad_apply_and_review_settings_are_clear_errors(tmp_path, text):
    from drygate.errors import PolicyError
    from drygate.policy.load import compile_policy_text

    with pytest.raises(PolicyError) as e:
        compile_policy_text(text, source="drygate.toml")
    assert "drygate.toml" in str(e.value) and ("[apply]" in str(e.value) or "[review]" in str(e.value))


def test_approve_without_a_store_or_plan_is_a_clear_error(project, tmp_path):
    r = project.cli("approve", str(tmp_path / "missing.json"), "--yes", check=False)
    assert r.returncode == 1 and "cannot read the plan" in r.stderr and "Traceback" not in r.stderr
    assert SESSION
