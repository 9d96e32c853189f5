"""The README's two commands, as a new user runs them on a clean clone."""

import re
import subprocess

from conftest import REPO


def readme_commands():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_starts_with_two_commands():
    commands = readme_commands()
    assert len(commands) == 2
    assert "drygate replay examples/" in commands[0]
    assert commands[1] == "bash .ci/run"


def test_ci_runs_the_readme_test_command():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    documented = re.search(r"The test command that `\.ci/run` ends with is `([^`]+)`", text).group(1)
    ci_lines = [ln for ln in (REPO / ".ci" / "run").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert ci_lines[-1] == documented


def test_first_command_on_a_clean_clone(tmp_path):
    """Command 1 in a fresh clone of the committed tree: installs and replays the bundled session."""
    clone = tmp_path / "drygate"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    r = subprocess.run(["bash", "-c", readme_commands()[0]], cwd=clone, capture_output=True, text=True,
                       timeout=600, env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
                                         "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "87 calls" in r.stdout and "would have gone live" in r.stdout
    assert "Plan of run replay-" in r.stdout
