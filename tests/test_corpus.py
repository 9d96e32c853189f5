"""The labelled corpus of real commands (tests/corpus): the classifier's invariant.

No command labelled write, side_effect_read, external or unknown may be classified
as a read: that would leak a write in a dry run. Read recall (reads that stay reads)
is measured by bench/classify.py and only bounded from below here.
"""

import json
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "tests" / "corpus"))

from corpus import LABELS, load  # noqa: E402

from drygate.classifiers.shell import classify_command_verdict  # noqa: E402

ROWS = load()


def test_corpus_is_well_formed():
    assert len(ROWS) >= 500
    assert {r["label"] for r in ROWS} <= set(LABELS)
    commands = [r["command"] for r in ROWS]
    assert len(set(commands)) == len(commands), "duplicate commands"
    assert all(r["reason"] and r["source"] for r in ROWS)


@pytest.mark.parametrize("row", [r for r in ROWS if r["label"] != "read"],
                         ids=lambda r: f"line{r['line']}")
def test_no_write_is_classified_read(row):
    verdict = classify_command_verdict(row["command"])
    assert verdict.effect != "read", (row["command"], row["label"], verdict.steps)


def test_read_recall_floor():
    reads = [r for r in ROWS if r["label"] == "read"]
    kept = sum(classify_command_verdict(r["command"]).effect == "read" for r in reads)
    assert kept / len(reads) >= 0.85, f"read recall {kept}/{len(reads)}"


def test_explain_answers_every_row():
    """`drygate explain` works for every row: one process, the whole corpus, JSON out."""
    import subprocess

    from conftest import SRC

    commands = [r["command"] for r in ROWS]
    proc = subprocess.run([sys.executable, "-m", "drygate.cli.entry", "explain", "--json", "--batch"],
                          input="\n".join(json.dumps(c) for c in commands), capture_output=True, text=True,
                          env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    answers = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(answers) == len(commands)
    assert all(a["effect"] in LABELS and a["steps"] for a in answers)
