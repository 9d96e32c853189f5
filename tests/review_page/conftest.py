"""Fixtures for the review page: a project with a real dry run (through the installed hook
process), `drygate review` started as the user starts it, and Debian's chromium driven
headless by Playwright (no browser download: /usr/bin/chromium, installed by .ci/run).

Screenshots go to .cache/artefacts/review_page/ (CI keeps them as test artefacts).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))

from conftest import SESSION, SRC, Project, write_policy  # noqa: E402

ARTEFACTS = REPO / ".cache" / "artefacts" / "review_page"
CHROMIUM = os.environ.get("DRYGATE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

POLICY_RULES = '''
[[rules]]
id = "store-writes"
tool_glob = "mcp__store__put_*"
effect = "write"
dry = true
reason = "object store writes are rehearsed first"

[[rules]]
id = "store-reads"
tool_glob = "mcp__store__get_*"
effect = "read"

[[rules]]
id = "charges"
tool = "mcp__payments__charge"
effect = "external"
action = "deny"
reason = "payments are never made by an agent"

[review]
secret_keys = ["customer_pin"]
secret_patterns = ["ACCT-[0-9]{6}"]
'''

SECRET_VALUES = ("hunter2-very-secret", "AKIAIOSFODNN7EXAMPLE", "4242", "ACCT-123456", "s3cr3t-pg-pass")


def dry(project, tool, tool_input):
    r = project.hook(project.event(tool, tool_input))
    assert r.code == 2 and "NOT EXECUTED" in r.stderr, (tool, r.stdout, r.stderr)
    return r


def make_run(project, extra_policy=""):
    """A dry run with every kind of thing the page shows: reads, file writes and edits, MCP
    writes with a reference from one step to another, SQL in a shell command and in an MCP
    input, secrets in inputs, a denied call and a tamper attempt (with its alert)."""
    write_policy(project.root, "dry", POLICY_RULES + extra_policy)
    (project.root / "config.ini").write_text("[db]\nhost = old.internal\nport = 5432\n")
    assert project.hook(project.event("Read", {"file_path": str(project.root / "config.ini")})).code == 0
    dry(project, "Edit", {"file_path": "config.ini", "old_string": "old.internal", "new_string": "new.internal"})
    dry(project, "Write", {"file_path": "notes/CHANGELOG.md", "content": "# Changes\n- moved the database\n"})
    dry(project, "mcp__store__put_object", {"key": "reports/q3.csv", "body": "a,b\n1,2\n",
                                            "password": SECRET_VALUES[0]})
    dry(project, "mcp__store__put_meta", {"key": "reports/q3.csv.meta", "etag": "drygate:ref:4:etag",
                                          "customer_pin": SECRET_VALUES[2], "account": SECRET_VALUES[3]})
    dry(project, "Bash", {"command": "PGPASSWORD=" + SECRET_VALUES[4] +
                          " psql -h db -c \"UPDATE accounts SET plan = 'pro' WHERE id IN (SELECT id FROM trials "
                          "WHERE ends < now())\"", "description": "upgrade trials"})
    dry(project, "mcp__store__put_query", {"sql": "insert into audit(who, what) values ('agent', 'moved db')",
                                           "aws_key": SECRET_VALUES[1]})
    denied = project.hook(project.event("mcp__payments__charge", {"amount": 100}))
    assert denied.blocks
    tamper = project.hook(project.event("Write", {"file_path": str(project.root / "drygate.toml"), "content": ""}))
    assert tamper.blocks
    return SESSION


def save_plan(project, path):
    project.cli("plan", SESSION, "--out", str(path))
    return json.loads(Path(path).read_text())


class ReviewServer:
    """`drygate review TARGET` as a child process; ``url`` is the one-time link it printed."""

    def __init__(self, project, target):
        self.proc = subprocess.Popen([sys.executable, "-m", "drygate.cli.entry", "review", *( [target] if target else [])],
                                     cwd=project.root, env=dict(project.env(), PYTHONPATH=str(SRC)),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        deadline = time.monotonic() + 60
        self.url = None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"drygate review exited: {self.proc.wait()} {self.proc.stderr.read()}")
            self.lines.append(line)
            m = re.search(r"open (http://(127\.\d+\.\d+\.\d+):(\d+)/\?token=\S+)", line)
            if m:
                self.url, self.host, self.port = m.group(1), m.group(2), int(m.group(3))
                break
        assert self.url, self.lines
        assert self.host != "127.0.0.1"  # an address of its own: cookies are per host, not per port
        self.base = f"http://{self.host}:{self.port}"
        first = self.lines[0]
        self.plan_path = first.rsplit("file ", 1)[-1].strip()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()


@pytest.fixture
def review_project(tmp_path):
    """A SQLite project holding the run of :func:`make_run` and its saved plan (plan.json)."""
    project = Project(tmp_path / "app")
    make_run(project)
    project.plan_file = tmp_path / "plan.json"
    project.saved_hash = save_plan(project, project.plan_file)["content_hash"]
    return project


@pytest.fixture
def serve():
    servers = []

    def start(project, target):
        server = ReviewServer(project, str(target) if target else None)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, headless, driven by Playwright (one per test module: Playwright's sync
    API keeps an event loop running in the main thread while it is open, so it must be closed
    before tests that call asyncio.run() come, such as tests/test_relay_basic.py)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    yield pg
    context.close()


def screenshot(page, name):
    """Save a full-page screenshot as a test artefact; returns its path."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def keep_for_docs(path, name):
    """Copy an artefact into docs/images/ (the README's screenshots) when DRYGATE_UPDATE_DOCS=1."""
    if os.environ.get("DRYGATE_UPDATE_DOCS") == "1":
        target = REPO / "docs" / "images" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
