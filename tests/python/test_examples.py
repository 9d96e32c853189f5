"""examples/python: each framework's agent.py runs offline and ends as a live run would."""

import subprocess
import sys

import pytest

from .conftest import EXAMPLES


@pytest.mark.parametrize("framework,module", [("pydantic_ai", "pydantic_ai"), ("langchain", "langchain.agents"),
                                                ("openai_agents", "agents")])
def test_the_example_agent_runs_dry_then_applies(framework, module):
    pytest.importorskip(module)
    r = subprocess.run([sys.executable, str(EXAMPLES / framework / "agent.py")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.count("the model sees: DRY RUN - NOT EXECUTED") == 4
    assert "the world after the dry run: {'objects': [], 'rows': []}" in out
    assert "apply: applied" in out
    assert ("the world after apply: {'objects': ['reports/q3.txt', 'reports/q4.txt'], 'rows': [('q3.txt', "
            "'9963b5f2e0236339962ba4fb79ca975e'), ('q4.txt', '476baff5ede0c66827f5a487c7b99d02')]}") in out
