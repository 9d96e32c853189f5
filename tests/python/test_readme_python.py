"""The README's Python section: every Python example runs as written and prints what it says."""

import re
import subprocess
import sys

from .conftest import REPO


def python_examples():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python agents", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)


def run(code, cwd):
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_python_section_has_examples():
    assert len(python_examples()) >= 2


def test_the_first_example_runs_and_prints_what_its_comments_say(tmp_path):
    r = run(python_examples()[0], tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "{'id': 7, 'name': 'Ann'}"
    assert lines[1] == "DRY RUN - NOT EXECUTED. drygate skipped this"
    assert lines[2] == ("[('put_object', {'bucket': 'reports', 'key': 'q3.txt', 'body': 'revenue up'}), "
                        "('record_file', {'key': 'q3.txt', 'etag': 'drygate:ref:2:etag'})]")


def test_every_example_runs(tmp_path):
    for code in python_examples()[1:]:
        r = run(code, tmp_path)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "ok"
