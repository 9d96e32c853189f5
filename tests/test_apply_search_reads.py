"""Claude Code's Glob and Grep reads are re-checked at apply (issue 16).

A dry run searches real files (Glob, or Grep in each output mode), the hook journals the
search and its PostToolUse result (the tool's ``tool_response`` shape, Claude Code
2.0.77's ``cli.js``), and a dry Write follows. Nothing changed: apply re-runs the search
with ripgrep from the call's folder and applies without ``--accept-unchecked``. A file
matching the search added or changed after the dry run: apply refuses and names the read
and what changed. A search apply cannot repeat exactly (a cut result, an option it does
not reproduce) stays not re-checked, never fresh. Real hook processes, the real CLI.
"""

import json

import pytest
from conftest import SESSION, write_policy


def search_as_the_host(project, tool, tool_input, response, cwd=None):
    """A Glob or Grep the gate allows, then its PostToolUse with ``response``."""
    event = project.event(tool, tool_input, cwd=str(cwd or project.root))
    pre = project.hook(event)
    assert pre.code == 0 and pre.decision != "deny", (pre.stdout, pre.stderr)
    post = dict(event, hook_event_name="PostToolUse", tool_response=response)
    assert project.hook(post, command=project.post_command).code == 0


def dry_write_and_plan(project, tmp_path, cwd=None):
    r = project.hook(project.event("Write", {"file_path": "out.txt", "content": "from the search\n"},
                                   cwd=str(cwd or project.root)))
    assert r.code == 2 and "NOT EXECUTED" in r.stderr, (r.stdout, r.stderr)
    plan_path = tmp_path / "plan.json"
    project.cli("plan", SESSION, "--out", str(plan_path))
    return plan_path, json.loads(plan_path.read_text())


def apply(project, plan_path, *args):
    return project.cli("apply", str(plan_path), "--yes", *args, check=False, COLUMNS="200")


@pytest.fixture
def tree(project):
    write_policy(project.root, "dry")
    src = project.root / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "a.py").write_text("import os\n# TODO: speed\n")
    (src / "pkg" / "b.py").write_text("x = 1\n# todo later\n# TODO again\n")
    (src / "notes.md").write_text("TODO in markdown\n")
    (project.root / ".git").mkdir()
    (project.root / ".git" / "TODO.py").write_text("TODO inside git\n")
    return src


def glob_response(paths):
    return {"filenames": [str(p) for p in paths], "durationMs": 3, "numFiles": len(paths), "truncated": False}


def test_glob_nothing_changed_applies(project, tree, tmp_path):
    search_as_the_host(project, "Glob", {"pattern": "**/*.py", "path": "src"},
                       glob_response([tree / "pkg" / "b.py", tree / "a.py"]))
    plan_path, plan = dry_write_and_plan(project, tmp_path)
    read = plan["basis"]["reads"][0]
    assert read["tool_name"] == "Glob" and read["repeatable"], read
    r = apply(project, plan_path)
    assert r.returncode == 0 and "applied 1 of 1" in r.stdout, r.stdout + r.stderr
    assert "re-checking read" in r.stdout and (project.root / "out.txt").exists()


def test_glob_a_new_matching_file_refuses_and_is_named(project, tree, tmp_path):
    search_as_the_host(project, "Glob", {"pattern": "**/*.py"},
                       glob_response([tree / "pkg" / "b.py", tree / "a.py", project.root / ".git" / "TODO.py"]),
                       cwd=project.root)
    plan_path, _ = dry_write_and_plan(project, tmp_path)
    (tree / "pkg" / "c.py").write_text("")
    (tree / "c.txt").write_text("")  # does not match: not named
    r = apply(project, plan_path)
    assert r.returncode == 1 and "REFUSED" in r.stderr and "Glob" in r.stderr, r.stderr
    assert "c.py" in r.stderr and "c.txt" not in r.stderr, r.stderr
    assert not (project.root / "out.txt").exists()
    (tree / "pkg" / "c.py").unlink()
    (tree / "a.py").unlink()  # a matched file gone: named too
    r = apply(project, plan_path)
    assert r.returncode == 1 and "a.py" in r.stderr, r.stderr


def test_glob_absolute_pattern_and_cut_result(project, tree, tmp_path):
    search_as_the_host(project, "Glob", {"pattern": f"{tree}/*.md"}, glob_response([tree / "notes.md"]))
    search_as_the_host(project, "Glob", {"pattern": "**/*"},
                       dict(glob_response([tree / "a.py"]), truncated=True))
    plan_path, plan = dry_write_and_plan(project, tmp_path)
    absolute, cut = plan["basis"]["reads"]
    assert absolute["repeatable"] and not cut["repeatable"] and "cut" in cut["why"], plan["basis"]["reads"]
    r = apply(project, plan_path)
    assert r.returncode == 1 and "cannot re-check" in r.stderr and "**/*" in r.stderr, r.stderr
    r = apply(project, plan_path, "--accept-unchecked")
    assert r.returncode == 0 and "applied 1 of 1" in r.stdout, r.stdout + r.stderr


GREP_CASES = [
    ({"pattern": "TODO", "path": "src"},
     {"mode": "files_with_matches", "filenames": ["src/a.py", "src/pkg/b.py", "src/notes.md"], "numFiles": 3}),
    ({"pattern": "todo", "path": "src", "-i": True, "glob": "*.py", "output_mode": "content"},
     {"mode": "content", "numFiles": 0, "filenames": [],
      "content": "src/pkg/b.py:2:# todo later\nsrc/pkg/b.py:3:# TODO again\nsrc/a.py:2:# TODO: speed", "numLines": 3}),
    ({"pattern": "TODO", "type": "py", "output_mode": "count"},
     {"mode": "count", "numFiles": 2, "filenames": [], "content": "src/a.py:1\nsrc/pkg/b.py:1", "numMatches": 2}),
]


@pytest.mark.parametrize("tool_input,response", GREP_CASES, ids=[c[1]["mode"] for c in GREP_CASES])
def test_grep_nothing_changed_applies_and_a_change_refuses(project, tree, tmp_path, tool_input, response):
    search_as_the_host(project, "Grep", tool_input, response)
    plan_path, plan = dry_write_and_plan(project, tmp_path)
    assert plan["basis"]["reads"][0]["repeatable"], plan["basis"]["reads"]
    r = apply(project, plan_path)
    assert r.returncode == 0 and "applied 1 of 1" in r.stdout, r.stdout + r.stderr
    (project.root / "out.txt").unlink()


@pytest.mark.parametrize("tool_input,response", GREP_CASES, ids=[c[1]["mode"] for c in GREP_CASES])
def test_grep_a_changed_file_refuses_and_is_named(project, tree, tmp_path, tool_input, response):
    search_as_the_host(project, "Grep", tool_input, response)
    plan_path, _ = dry_write_and_plan(project, tmp_path)
    (tree / "a.py").write_text("import os\n# done: speed\n")  # a matching file no longer matches
    r = apply(project, plan_path)
    assert r.returncode == 1 and "REFUSED" in r.stderr and "Grep" in r.stderr and "a.py" in r.stderr, r.stderr
    assert not (project.root / "out.txt").exists()


def test_grep_content_one_more_match_in_a_matching_file_refuses(project, tree, tmp_path):
    tool_input, response = GREP_CASES[1]
    search_as_the_host(project, "Grep", tool_input, response)
    plan_path, _ = dry_write_and_plan(project, tmp_path)
    (tree / "a.py").write_text("import os\n# TODO: speed\n# todo: more\n")
    r = apply(project, plan_path)
    assert r.returncode == 1 and "todo: more" in r.stderr, r.stderr


def test_grep_a_new_matching_file_refuses(project, tree, tmp_path):
    tool_input, response = GREP_CASES[0]
    search_as_the_host(project, "Grep", tool_input, response)
    plan_path, _ = dry_write_and_plan(project, tmp_path)
    (tree / "pkg" / "new.txt").write_text("a TODO appears\n")
    r = apply(project, plan_path)
    assert r.returncode == 1 and "new.txt" in r.stderr, r.stderr


@pytest.mark.parametrize("tool_input,response,why", [
    ({"pattern": "TODO", "path": "src", "head_limit": 2},
     {"mode": "files_with_matches", "filenames": ["src/a.py", "src/pkg/b.py"], "numFiles": 2, "appliedLimit": 2},
     "head_limit"),
    ({"pattern": "TODO", "path": "src", "offset": 1},
     {"mode": "files_with_matches", "filenames": ["src/a.py"], "numFiles": 1, "appliedOffset": 1}, "offset"),
    ({"pattern": "TODO", "path": "src", "-P": True},
     {"mode": "files_with_matches", "filenames": ["src/a.py"], "numFiles": 1}, "-P"),
    ({"pattern": "TODO", "path": "src", "output_mode": "content"}, {"mode": "content", "numFiles": 0}, "incomplete"),
])
def test_grep_a_search_apply_cannot_repeat_exactly_stays_unchecked(project, tree, tmp_path, tool_input, response,
                                                                    why):
    search_as_the_host(project, "Grep", tool_input, response)
    plan_path, plan = dry_write_and_plan(project, tmp_path)
    read = plan["basis"]["reads"][0]
    assert not read["repeatable"] and why in read["why"], read
    r = apply(project, plan_path)
    assert r.returncode == 1 and "cannot re-check" in r.stderr, r.stderr


def test_grep_in_the_calls_folder(project, tree, tmp_path):
    search_as_the_host(project, "Grep", {"pattern": "again"},
                       {"mode": "files_with_matches", "filenames": ["pkg/b.py"], "numFiles": 1}, cwd=tree)
    plan_path, _ = dry_write_and_plan(project, tmp_path, cwd=tree)
    (project.root / "again.txt").write_text("again\n")  # outside the call's folder: not seen
    r = apply(project, plan_path)
    assert r.returncode == 0 and (tree / "out.txt").exists(), r.stdout + r.stderr
