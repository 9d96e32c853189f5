"""The README's walk-through (examples/stack/walkthrough.py) runs as written."""

import subprocess
import sys

from .conftest import STACK


def test_walkthrough_runs_dry_plan_apply_and_refuses_a_second_apply():
    proc = subprocess.run([sys.executable, str(STACK / "walkthrough.py")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "stand-in token: drygate:ref:3[:FIELD]" in out
    assert "the stores after the dry run: {'objects': [], 'rows': [], 'kv': []}" in out
    assert "applied 3 of 3 step(s)" in out
    assert "'kv': [('latest_upload', '1')]" in out and "'rows': [(1, 'uploads/a.png', 9)]" in out
    assert "already applied" in out
