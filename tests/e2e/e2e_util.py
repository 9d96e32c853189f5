"""Small helpers shared by conftest.py and the e2e tests (importable by module name)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = REPO / ".cache"


def make_venv(path: Path, *pip_args: str) -> Path:
    """Create a venv at PATH and pip install PIP_ARGS into it; return its python."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, capture_output=True)
    py = path / "bin" / "python"
    if pip_args:
        proc = subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *pip_args],
            capture_output=True, text=True, timeout=900,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"pip install {pip_args} failed:\n{proc.stdout}\n{proc.stderr}")
    return py
