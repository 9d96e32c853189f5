"""Fixtures for the Python API and the framework adapters: a real project in a temporary
folder (drygate.toml, a SQLite state store, the incident's tools with a real object folder
and a real SQLite metadata database)."""

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "python"


class Incident:
    """One copy of the incident's world: ``root`` (project), ``objects`` (STORE_DIR), ``db`` (STORE_DB)."""

    def __init__(self, root):
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.db = self.root / "meta.db"
        self.objects.mkdir(parents=True)
        with sqlite3.connect(self.db) as db:
            db.execute("CREATE TABLE files (key TEXT PRIMARY KEY, etag TEXT, size INTEGER)")
            db.execute("INSERT INTO files VALUES ('old.txt', 'e0', 3)")

    def env(self, **extra):
        return dict(os.environ, STORE_DIR=str(self.objects), STORE_DB=str(self.db), **extra)

    def state(self):
        """The world's end state: every object (path -> bytes) and every metadata row."""
        files = {str(p.relative_to(self.objects)): p.read_bytes() for p in sorted(self.objects.rglob("*"))
                 if p.is_file()}
        with sqlite3.connect(self.db) as db:
            rows = db.execute("SELECT key, etag, size FROM files ORDER BY key").fetchall()
        return files, rows

    def drygate(self, *args, input=None):
        """Run the drygate CLI in the project (a subprocess, as a user runs it)."""
        return subprocess.run([sys.executable, "-m", "drygate.cli.entry", *args], cwd=self.root, env=self.env(),
                              capture_output=True, text=True, input=input, timeout=120)


@pytest.fixture
def incident(tmp_path, monkeypatch):
    """A project with examples/python's policy and tools, its world, and STORE_* set."""
    def make(name="project", policy=None):
        world = Incident(tmp_path / name)
        shutil.copy(EXAMPLES / "incident_tools.py", world.root / "incident_tools.py")
        text = policy if policy is not None else (EXAMPLES / "drygate.toml").read_text()
        (world.root / "drygate.toml").write_text(text)
        return world

    world = make()
    world.make = make
    monkeypatch.setenv("STORE_DIR", str(world.objects))
    monkeypatch.setenv("STORE_DB", str(world.db))
    for name in ("DRYGATE_RUN_ID", "DRYGATE_MODE", "DRYGATE_STATE", "DRYGATE_STATE_URL", "DRYGATE_POLICY"):
        monkeypatch.delenv(name, raising=False)
    sys.path.insert(0, str(world.root))
    sys.modules.pop("incident_tools", None)
    yield world
    sys.path.remove(str(world.root))
    sys.modules.pop("incident_tools", None)
