"""Adversarial review of issue 14 (review page, approvals, markdown plan, install).

Each test proves an effect with real parts: the installed hook process, the real CLI, the
real `drygate review` server (over HTTP, as a browser or an attacker on the machine talks
to it), a real Markdown renderer (markdown-it-py, CommonMark + tables as a PR comment is
rendered). A test marked xfail(strict) names a bug that is still open; the others hold.
"""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import SESSION, SRC, Project, write_policy

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def dry(project, tool, tool_input):
    r = project.hook(project.event(tool, tool_input))
    assert r.code == 2 and "NOT EXECUTED" in r.stderr, (tool, r.stdout, r.stderr)
    return r


#: Credentials in shapes the masker should see (each value is unique, to find it in output).
SECRETS = {
    "nested_json": ("mcp__api__post", {"body": json.dumps({"password": "nestedpw1111"})}, "nestedpw1111"),
    "header_pairs": ("mcp__api__post", {"headers": [{"name": "X-Api-Key", "value": "hvkey2222xyz"}]},
                     "hvkey2222xyz"),
    "env_pairs": ("mcp__k8s__apply", {"env": [{"name": "DB_PASSWORD", "value": "envpw3333xyz"}]}, "envpw3333xyz"),
    "mysql_p": ("Bash", {"command": "mysql -uroot -pmysqlpw4444 prod < fix.sql"}, "mysqlpw4444"),
    "curl_u": ("Bash", {"command": "curl -u admin:curlpw5555 -X POST https://api.example/x"}, "curlpw5555"),
    "db_pass": ("Bash", {"command": "export DB_PASS=dbpass6666; ./migrate"}, "dbpass6666"),
}
#: Shapes the masker does cover (regression).
COVERED = {
    "pgpassword": ("Bash", {"command": "PGPASSWORD=pgpw7777abc psql -c 'delete from t'"}, "pgpw7777abc"),
    "key_password": ("mcp__api__post", {"user": "u", "password": "keypw8888abc"}, "keypw8888abc"),
    "bearer": ("mcp__api__post", {"h": "Authorization: Bearer bearer9999abcdef"}, "bearer9999abcdef"),
}
INJECTION = "![pixel](https://evil.example/p.png?leak=1) [approve here](https://evil.example/a)"
XSS = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">"


class Server:
    """`drygate review TARGET` as a child process, as a user starts it."""

    def __init__(self, project, target):
        self.proc = subprocess.Popen([sys.executable, "-m", "drygate.cli.entry", "review", str(target)],
                                     cwd=project.root, env=dict(project.env(), PYTHONPATH=str(SRC)),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.url, self.cookies = None, None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"drygate review exited: {self.proc.wait()} {self.proc.stderr.read()}")
            m = re.search(r"open (http://(127\.\d+\.\d+\.\d+):(\d+)/\?token=(\S+))", line)
            if m:
                self.url, self.host, self.port, self.token = m.group(1), m.group(2), int(m.group(3)), m.group(4)
                break
        assert self.url
        self.base = f"http://{self.host}:{self.port}"

    def session(self):
        """An httpx client holding the session cookie (the one-time link used once)."""
        if self.cookies is None:
            with httpx.Client(base_url=self.base, timeout=30) as first:
                r = first.get(f"/?token={self.token}", follow_redirects=False)
                assert r.status_code == 303, r.text
                self.cookies = dict(first.cookies)
        return httpx.Client(base_url=self.base, timeout=30, cookies=self.cookies)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture(scope="module")
def run_project(tmp_path_factory):
    """One dry run holding secrets in many shapes, a Markdown injection and an HTML
    injection, with its saved plan (plan.json)."""
    root = tmp_path_factory.mktemp("issue14")
    project = Project(root / "app")
    write_policy(project.root, "dry")
    for tool, tool_input, _ in list(SECRETS.values()) + list(COVERED.values()):
        dry(project, tool, tool_input)
    dry(project, "mcp__api__post", {"note": INJECTION})
    dry(project, "Write", {"file_path": "x.html", "content": XSS + "\n</details>\n```\n"})
    project.plan_file = root / "plan.json"
    project.cli("plan", SESSION, "--out", str(project.plan_file))
    return project


@pytest.fixture(scope="module")
def server(run_project):
    s = Server(run_project, run_project.plan_file)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def pages(server):
    """Every page the server serves for the plan, as one text."""
    client = server.session()
    try:
        return "\n".join(client.get(path).text for path in ("/", "/steps", "/timeline", "/files"))
    finally:
        client.close()


@pytest.fixture(scope="module")
def markdown(run_project):
    return run_project.cli("plan", str(run_project.plan_file), "--format", "markdown").stdout


def rendered(md):
    """The HTML a CommonMark renderer with tables makes of a PR comment."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table").render(md)


# -- secrets --------------------------------------------------------------------------

@pytest.mark.parametrize("shape", sorted(COVERED))
def test_credentials_of_covered_shapes_never_reach_page_or_markdown(pages, markdown, shape):
    value = COVERED[shape][2]
    assert value not in pages
    assert value not in markdown


@pytest.mark.parametrize("shape", sorted(SECRETS))
def test_credentials_never_reach_the_review_page(pages, shape):
    assert SECRETS[shape][2] not in pages


@pytest.mark.parametrize("shape", sorted(SECRETS))
def test_credentials_never_reach_the_markdown_plan(markdown, shape):
    assert SECRETS[shape][2] not in markdown


# -- markdown ---------------------------------------------------------------------------

def test_a_tool_input_cannot_add_images_or_links_to_the_pr_comment(markdown):
    html = rendered(markdown)
    assert "<img" not in html
    assert 'href="https://evil.example' not in html


def test_a_diff_cannot_close_its_details_or_fence_in_the_pr_comment(markdown):
    html = rendered(markdown)
    # the file's `</details>` and ``` stay text inside the diff's code block
    assert html.count("</details>") == html.count("<details>") == 1
    assert "&lt;/details&gt;" in html and "<script" not in html and "onerror=\"" not in html


# -- the page's escaping and headers ---------------------------------------------------

def test_html_in_inputs_and_diffs_is_escaped_on_the_page(pages):
    assert "<script>window.__pwned" not in pages and "<img src=x" not in pages
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in pages


def test_every_response_carries_a_strict_csp(server):
    client = server.session()
    try:
        for path in ("/", "/steps", "/nope", "/static/review.css"):
            r = client.get(path)
            csp = r.headers.get("content-security-policy", "")
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, (path, r.headers)
            assert r.headers.get("referrer-policy") in ("same-origin", "no-referrer")
    finally:
        client.close()


# -- who may talk to the server -------------------------------------------------------

def test_the_one_time_token_works_once_and_is_not_in_the_final_url(server):
    server.session().close()  # the link used once (as the browser does)
    again = httpx.get(f"{server.base}/?token={server.token}", timeout=30, follow_redirects=False)
    assert again.status_code == 403
    assert "drygate_review" not in again.headers.get("set-cookie", "")
    # a guessed token of the same shape, and a token with a session cookie of another port
    assert httpx.get(f"{server.base}/?token={'A' * 43}", timeout=30).status_code == 403
    stolen = {f"drygate_review_{server.port + 1}": server.cookies[f"drygate_review_{server.port}"]}
    assert httpx.get(f"{server.base}/", cookies=stolen, timeout=30).status_code == 403


def test_rebound_host_other_origins_and_forged_posts_are_refused(server, run_project):
    client = server.session()
    try:
        ok = client.get("/")
        csrf = re.search(r'name="csrf" value="([^"]+)"', ok.text).group(1)
        plan_hash = re.search(r'name="plan_hash" value="([^"]+)"', ok.text).group(1)
        # DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own Host
        assert client.get("/", headers={"host": "evil.example:%d" % server.port}).status_code == 403
        assert client.get("/", headers={"host": "127.0.0.1"}).status_code == 403
        for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", server.host):
            assert client.get("/", headers={"host": host}).status_code == 403, host
        form = {"csrf": csrf, "plan_hash": plan_hash, "decision": "approve", "drop": "", "note": ""}
        for origin in ("http://evil.example", "null", f"http://127.0.0.1:{server.port + 1}",
                       f"https://127.0.0.1:{server.port}", f"http://127.0.0.1:{server.port}",
                       f"http://localhost:{server.port}", f"https://{server.host}:{server.port}"):
            r = client.post("/decide", data=form, headers={"origin": origin})
            assert r.status_code == 403, origin
        # same-origin but no Origin header (curl), or a wrong CSRF token
        assert client.post("/decide", data=form).status_code == 403
        bad = dict(form, csrf="0" * 64)
        assert client.post("/decide", data=bad, headers={"origin": server.base}).status_code == 403
        # a GET cannot decide
        assert client.get("/decide", params=form).status_code in (403, 405)
        # no cookie at all
        assert httpx.post(f"{server.base}/decide", data=form, headers={"origin": server.base}).status_code == 403
    finally:
        client.close()
    store = run_project.open_store()
    try:
        from drygate.plan.approval import approval_of

        assert approval_of(store, plan_hash) is None
    finally:
        store.close()


@pytest.mark.parametrize("path", ["/static/../server.py", "/static/%2e%2e/server.py", "/static/..%2fserver.py",
                                  "/static/%2e%2e%2f%2e%2e%2fview.py", "//etc/passwd", "/static//etc/passwd"])
def test_no_path_leaves_the_static_folder(server, path):
    client = server.session()
    try:
        r = client.get(path)
        assert r.status_code in (403, 404), (path, r.status_code)
        assert "import" not in r.text and "root:" not in r.text
    finally:
        client.close()


# -- approvals ---------------------------------------------------------------------------

@pytest.fixture
def gated(tmp_path):
    """A project whose policy requires an approval, with a dry run of three edits of one
    file (through three spellings of its path) and its saved plan."""
    project = Project(tmp_path / "app")
    write_policy(project.root, "dry", extra="[apply]\nrequire_approval = true\n")
    (project.root / "notes.txt").write_text("one\ntwo\n")
    assert project.hook(project.event("Read", {"file_path": str(project.root / "notes.txt")})).code == 0
    dry(project, "Edit", {"file_path": "notes.txt", "old_string": "one", "new_string": "ONE"})
    dry(project, "Edit", {"file_path": str(project.root / "sub" / ".." / "notes.txt"), "old_string": "two",
                          "new_string": "TWO"})
    dry(project, "Edit", {"file_path": "./notes.txt", "old_string": "ONE", "new_string": "uno"})
    project.plan_file = tmp_path / "plan.json"
    project.cli("plan", SESSION, "--out", str(project.plan_file))
    return project


def applied(project, path):
    return project.cli("apply", str(path), "--yes", check=False)


def test_an_approval_never_carries_over_to_a_plan_made_again_or_its_parent(gated, tmp_path):
    p = gated
    p.cli("approve", str(p.plan_file), "--yes")
    again = tmp_path / "again.json"
    p.cli("plan", SESSION, "--out", str(again))
    assert json.loads(again.read_text())["content_hash"] != json.loads(p.plan_file.read_text())["content_hash"]
    r = applied(p, again)
    assert r.returncode != 0 and "require" in (r.stdout + r.stderr)
    assert (p.root / "notes.txt").read_text() == "one\ntwo\n"
    # a reordered or edited copy of the approved plan with its hash recomputed
    from drygate.plan.fingerprint import fingerprint

    forged = json.loads(p.plan_file.read_text())
    forged["steps"] = forged["steps"][::-1]
    forged.pop("content_hash")
    forged["content_hash"] = fingerprint(forged)
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    r = applied(p, tmp_path / "forged.json")
    assert r.returncode != 0
    assert (p.root / "notes.txt").read_text() == "one\ntwo\n"


def test_a_subset_keeping_an_edit_simulated_on_a_dropped_edit_is_refused_whatever_the_path_spelling(gated,
                                                                                                     tmp_path):
    for drop in ("1", "2"):
        r = gated.cli("approve", str(gated.plan_file), "--drop", drop, "--out", str(tmp_path / f"s{drop}.json"),
                      "--yes", check=False)
        assert r.returncode == 1 and "cannot leave those steps out" in r.stderr, r.stderr
        assert not (tmp_path / f"s{drop}.json").exists()


def test_a_rejected_plan_is_refused_even_without_require_approval(tmp_path):
    project = Project(tmp_path / "app")
    write_policy(project.root, "dry")
    dry(project, "Write", {"file_path": "a.txt", "content": "x\n"})
    plan = tmp_path / "plan.json"
    project.cli("plan", SESSION, "--out", str(plan))
    project.cli("approve", str(plan), "--reject", "--yes")
    r = applied(project, plan)
    assert r.returncode != 0 and "rejected" in (r.stdout + r.stderr)
    assert not (project.root / "a.txt").exists()


def test_the_agent_cannot_approve_a_plan_itself(tmp_path):
    """Approval without a human: the agent runs drygate's CLI (through a venv's `python`,
    as pipx and venvs name it) in a later live run. Held since f2405b5 (self-protection)."""
    project = Project(tmp_path / "app")
    write_policy(project.root, "dry", extra="[apply]\nrequire_approval = true\n")
    dry(project, "Write", {"file_path": "a.txt", "content": "x\n"})
    plan = tmp_path / "plan.json"
    project.cli("plan", SESSION, "--out", str(plan))
    # later the same project runs live (the policy changed); the agent runs drygate's CLI with
    # the interpreter of a virtual environment, named `python` as venv and pipx name it
    write_policy(project.root, "live", extra="[apply]\nrequire_approval = true\n")
    command = f"{sys.executable} -m drygate.cli.entry approve {plan} --yes"
    assert Path(sys.executable).name == "python"
    r = project.hook(project.event("Bash", {"command": command}, session="agent-live-session"))
    if not r.blocks:  # the host runs it: the effect
        subprocess.run(command, shell=True, cwd=project.root, env=dict(project.env(), PYTHONPATH=str(SRC)),
                       capture_output=True, timeout=60)
    applied_r = applied(project, plan)
    assert r.blocks
    assert applied_r.returncode != 0 and not (project.root / "a.txt").exists()


# -- huge plans --------------------------------------------------------------------------

def _app_for(plan):
    from starlette.testclient import TestClient

    from drygate.review.server import ReviewState, create_app
    from drygate.review.view import ReviewData

    state = ReviewState(ReviewData(plan, None, None, {}, "/nonexistent"), token="t")
    state.port = 8
    client = TestClient(create_app(state), base_url="http://127.0.0.1:8")
    assert client.get("/?token=t", follow_redirects=False).status_code == 303
    return client


def _huge_plan(steps, changed_files):
    counts = {"calls": steps, "writes": steps, "dry": steps, "allowed_writes": 0, "denied": 0, "reads": 0}
    return {"run_id": "huge", "content_hash": "sha256:" + "0" * 64, "run": {"mode": "dry", "counts": counts},
            "steps": [{"step": i, "call": i, "seq": i, "tool_name": "mcp__db__put", "executor": {"kind": "mcp"},
                       "effect": "write", "why": "dry", "input": {"key": f"k{i}"}, "references": [],
                       "depends_on": []} for i in range(1, steps + 1)],
            "basis": {"files": {f"/nonexistent/f{i}.txt": "sha256:x" for i in range(changed_files)}, "reads": []}}


def test_100000_steps_are_paged_not_rendered_at_once():
    client = _app_for(_huge_plan(100_000, 0))
    r = client.get("/steps?page=1000")
    assert r.status_code == 200 and "page 1000 of 1000" in r.text
    assert len(r.text) < 200_000 and "k100000" in r.text and "k99900<" not in r.text
    for page in ("0", "-5", "99999999999999999999999", "x"):
        assert client.get(f"/steps?page={page}").status_code == 200


def test_the_overview_is_bounded_when_every_basis_file_changed():
    client = _app_for(_huge_plan(10, 20_000))
    r = client.get("/")
    assert r.status_code == 200
    assert r.text.count("<tr") < 1000, r.text.count("<tr")
    pages = int(re.search(r"basis page 1 of (\d+)", r.text).group(1))
    assert "20000 changed" in r.text and pages >= 100
    small = _app_for(_huge_plan(10, 1000))
    pages = int(re.search(r"basis page 1 of (\d+)", small.get("/").text).group(1))
    seen = []  # every changed file on exactly one page
    for page in range(1, pages + 1):
        seen += re.findall(r"/nonexistent/(f\d+)\.txt", small.get(f"/?basis={page}").text)
    assert sorted(seen) == sorted(f"f{i}" for i in range(1000))
    for page in ("0", "-1", "999999999999999999999", "x"):
        assert client.get(f"/?basis={page}").status_code == 200


# -- the session cookie and other servers on this machine -----------------------------------

def test_another_local_server_cannot_reuse_the_review_session(tmp_path):
    import http.server
    import threading

    from .browser_util import chromium_page

    project = Project(tmp_path / "app")
    write_policy(project.root, "dry")
    dry(project, "Write", {"file_path": "a.txt", "content": "x\n"})
    plan = tmp_path / "plan.json"
    project.cli("plan", SESSION, "--out", str(plan))
    seen = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            seen.append(self.headers.get("cookie") or "")
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"a page of another local server")

        def log_message(self, *args):
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    server = Server(project, plan)
    try:
        with chromium_page() as page:
            page.goto(server.url)
            assert page.locator("#approve").is_visible()
            page.goto(f"http://127.0.0.1:{other.server_address[1]}/")  # the reviewer opens another tab's app
        stolen = dict(c.split("=", 1) for cookie in seen for c in cookie.split("; ") if "=" in c)
        with httpx.Client(base_url=server.base, cookies=stolen, timeout=30) as thief:
            html = thief.get("/").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', html)
            plan_hash = json.loads(plan.read_text())["content_hash"]
            if csrf:
                thief.post("/decide", data={"csrf": csrf.group(1), "plan_hash": plan_hash, "decision": "approve"},
                           headers={"origin": server.base})
    finally:
        server.stop()
        other.shutdown()
    from drygate.plan.approval import approval_of

    store = project.open_store()
    try:
        assert approval_of(store, plan_hash) is None
    finally:
        store.close()


# -- subsets and what the run read from its own dry writes --------------------------------

def test_a_subset_cannot_drop_a_write_whose_simulated_content_the_run_read(tmp_path):
    project = Project(tmp_path / "app")
    write_policy(project.root, "dry")
    dry(project, "Write", {"file_path": "config.json", "content": '{"v": 2}\n'})
    read = project.hook(project.event("Read", {"file_path": str(project.root / "config.json")}))
    assert '{"v": 2}' in read.stderr and "shadow" in read.stderr  # served from the dry Write
    dry(project, "Write", {"file_path": "derived.txt", "content": "v is 2\n"})  # made from what it read
    plan = tmp_path / "plan.json"
    project.cli("plan", SESSION, "--out", str(plan))
    subset = tmp_path / "subset.json"
    r = project.cli("approve", str(plan), "--drop", "1", "--out", str(subset), "--yes", check=False)
    if r.returncode == 0:  # accepted: the effect
        project.cli("apply", str(subset), "--yes")
    assert not ((project.root / "derived.txt").exists() and not (project.root / "config.json").exists())
    assert r.returncode == 1 and not subset.exists()


def test_an_approved_plan_of_a_run_that_went_on_is_refused_by_apply(tmp_path):
    project = Project(tmp_path / "app")
    write_policy(project.root, "dry", extra="[apply]\nrequire_approval = true\n")
    dry(project, "Write", {"file_path": "a.txt", "content": "a\n"})
    plan = tmp_path / "plan.json"
    project.cli("plan", SESSION, "--out", str(plan))
    dry(project, "Write", {"file_path": "b.txt", "content": "b\n"})  # the run goes on after the plan
    project.cli("approve", str(plan), "--yes")
    r = applied(project, plan)
    assert r.returncode != 0 and "journaled" in r.stderr
    assert not (project.root / "a.txt").exists()


def test_a_run_id_cannot_leave_its_code_span_in_the_pr_comment(tmp_path):
    project = Project(tmp_path / "app")
    write_policy(project.root, "dry")
    run_id = "x` [click](https://evil.example/r) `y"
    r = project.hook(project.event("Write", {"file_path": "a.txt", "content": "a\n"}), DRYGATE_RUN_ID=run_id)
    assert r.code == 2
    md = project.cli("plan", run_id, "--format", "markdown").stdout
    assert 'href="https://evil.example' not in rendered(md)


def test_html_from_tool_inputs_and_diffs_never_runs_in_the_browser(server):
    from .browser_util import chromium_page

    server.session().close()  # the session cookie, as the one-time link gave it
    with chromium_page() as page:
        page.context.add_cookies([{"name": k, "value": v, "url": server.base} for k, v in server.cookies.items()])
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        for path in ("/steps", "/files", "/timeline", "/"):
            page.goto(server.base + path)
            assert page.evaluate("typeof window.__pwned") == "undefined", path
        page.goto(server.base + "/files")
        assert "<script>window.__pwned=1</script>" in page.locator("main").inner_text()
        assert page.locator("main script").count() == 0 and page.locator("main img").count() == 0
    assert dialogs == []


# -- install as a tool: the installation under attack ------------------------------------------

@pytest.fixture(scope="module")
def live_project(tmp_path_factory):
    project = Project(tmp_path_factory.mktemp("live") / "app")
    write_policy(project.root, "live")
    return project


def test_the_agent_cannot_disable_the_plugin_or_replace_the_installed_hook(live_project):
    project = live_project
    bin_dir = Path(sys.executable).parent
    for tool, tool_input in [
            ("Bash", {"command": "claude plugin disable drygate@drygate"}),
            ("Bash", {"command": "claude plugin uninstall drygate@drygate"}),
            ("Bash", {"command": "claude plugin marketplace remove drygate"}),
            ("Write", {"file_path": str(project.root / ".claude" / "settings.local.json"),
                       "content": '{"enabledPlugins": {"drygate@drygate": false}}'}),
            ("Bash", {"command": f"ln -sf /bin/true {bin_dir}/drygate-hook"}),
            ("Bash", {"command": f"rm -rf {Path(sys.prefix)}"})]:
        assert project.hook(project.event(tool, tool_input)).blocks, tool_input


def test_the_agent_cannot_replace_drygate_through_its_package_manager(live_project):
    allowed = [c for c in ("pipx uninstall drygate", "pipx install --force ./fake-drygate", "pipx reinstall drygate",
                           "pipx runpip drygate install ./fake", "uv tool install --force ./fake-drygate",
                           "uv tool uninstall drygate")
               if not live_project.hook(live_project.event("Bash", {"command": c})).blocks]
    assert allowed == []


def test_a_run_id_cannot_overwrite_another_plans_approval(tmp_path):
    project = Project(tmp_path / "app")
    write_policy(project.root, "dry", extra="[apply]\nrequire_approval = true\n")
    dry(project, "Write", {"file_path": "a.txt", "content": "a\n"})
    plan = tmp_path / "plan.json"
    project.cli("plan", SESSION, "--out", str(plan))
    project.cli("approve", str(plan), "--yes")
    squatter = "approval:" + json.loads(plan.read_text())["content_hash"]
    assert project.hook(project.event("Write", {"file_path": "b.txt", "content": "b\n"}),
                        DRYGATE_RUN_ID=squatter).code == 2
    project.cli("plan", squatter, "--out", str(tmp_path / "other.json"), check=False)
    r = applied(project, plan)
    assert r.returncode == 0 and (project.root / "a.txt").read_text() == "a\n", r.stderr


# -- the masker's classes (siblings of the probes above) ------------------------------------

#: (text, secret) per documented credential shape: the tools' manuals name these options.
MASKED_TEXT = [
    ("mysqldump -uroot -pdumppw01 --all-databases", "dumppw01"),            # mysql(1): -p[password]
    ("mariadb --password=mdbpw02 app", "mdbpw02"),                          # --password[=password]
    ("mysql --user=root --password mypw03 app", "mypw03"),
    ("curl --user admin:curlpw04 https://h/x", "curlpw04"),                 # curl(1): -u, --user
    ("curl -uadmin:curlpw05 https://h/x", "curlpw05"),
    ("curl -U proxy:curlpw06 --proxy-user p:curlpw07 https://h", "curlpw07"),  # -U, --proxy-user
    ("curl --oauth2-bearer brpw08xyz https://h", "brpw08xyz"),
    ("wget --http-password=wgpw09 --user=me https://h", "wgpw09"),          # wget(1)
    ("wget --ftp-password wgpw10 ftp://h/f", "wgpw10"),
    ("sshpass -p sshpw11 ssh root@h", "sshpw11"),                           # sshpass(1): -p password
    ("sshpass -psshpw12 scp f h:", "sshpw12"),
    ("SSHPASS=sshpw13 sshpass -e ssh h", "sshpw13"),
    ("redis-cli -h r -a rcpw14 FLUSHALL", "rcpw14"),                        # redis-cli -a
    ("REDISCLI_AUTH=rcpw15 redis-cli del k", "rcpw15"),
    ("mongosh -u admin -p mgpw16 --eval 'db.x.drop()'", "mgpw16"),
    ("sqlcmd -S db -U sa -P sqpw17 -Q 'drop table t'", "sqpw17"),
    ("docker login -u me -p dkpw18 registry.example", "dkpw18"),
    ("export SMTP_PASS=smpw19 API_TOKEN=tkpw20", "smpw19"),
    ("export SMTP_PASS=smpw19 API_TOKEN=tkpw20", "tkpw20"),
    ("ADMIN_PASSWORD='adpw21 x' ./run", "adpw21"),
    ("DB_PW=dbpw22 ./migrate", "dbpw22"),
    ('{"db": {"password": "jspw23"}}', "jspw23"),                          # JSON in free text (a diff)
]


@pytest.mark.parametrize("text,secret", MASKED_TEXT)
def test_the_masker_hides_each_documented_credential_option(text, secret):
    from drygate.review.mask import Masker

    assert secret not in Masker().text(text)


#: Values with credentials in JSON strings and name/value pairs (any depth, any case).
MASKED_VALUES = [
    ({"body": json.dumps({"auth": {"user": "u", "pass": "jvpw31"}})}, "jvpw31"),
    ({"body": json.dumps([{"client_secret": "jvpw32"}])}, "jvpw32"),
    ({"payload": json.dumps({"body": json.dumps({"token": "jvpw33"})})}, "jvpw33"),  # JSON in JSON
    ({"headers": [{"Name": "Authorization", "Value": "Basic jvpw34"}]}, "jvpw34"),
    ({"headers": [{"key": "Cookie", "value": "sid=jvpw35"}]}, "jvpw35"),
    ({"spec": {"containers": [{"env": [{"name": "REDIS_PASS", "value": "jvpw36"}]}]}}, "jvpw36"),
    ({"Parameters": [{"ParameterKey": "x", "Name": "DbSecret", "Value": "jvpw37"}]}, "jvpw37"),
    ({"tags": [{"Key": "SLACK_TOKEN", "Value": "jvpw38"}]}, "jvpw38"),
]


@pytest.mark.parametrize("value,secret", MASKED_VALUES)
def test_the_masker_hides_credentials_in_json_strings_and_name_value_pairs(value, secret):
    from drygate.review.mask import Masker

    assert secret not in json.dumps(Masker().value(value), ensure_ascii=False)


@pytest.mark.parametrize("text", ["mkdir -p a/b", "ssh -p 2222 host", "docker run -p 8080:80 img",
                                  "git log --author=me", "psql --no-password -c 'select 1'", "bypass=true",
                                  "pip install -e ."])
def test_the_masker_leaves_ordinary_options_alone(text):
    from drygate.review.mask import Masker

    assert Masker().text(text) == text


def test_the_masker_keeps_ordinary_pairs_and_json():
    from drygate.review.mask import Masker

    v = {"env": [{"name": "HOME", "value": "/home/u"}], "body": json.dumps({"user": "u"})}
    assert Masker().value(v) == v


@pytest.mark.parametrize("text", [
    "![p](https://evil.example/p.png)", "[a](https://evil.example/a)", "[a][r]\n\n[r]: https://evil.example/r",
    "<https://evil.example/auto>", "<img src=x onerror=alert(1)>", "<a href='https://evil.example'>a</a>",
    "&lt;img src=x&gt;", "\\![p](https://evil.example/p.png)", "`` a ``[l](https://evil.example/c)",
    "*em* __strong__ ~~del~~", "# heading", "1. item", "| a | b |"])
def test_a_table_cell_stays_plain_text_for_any_commonmark_construct(text):
    """Every CommonMark construct an input may spell (images, inline/reference links,
    autolinks, raw HTML, entities, escapes, code spans, emphasis) stays literal text in a cell."""
    from drygate.review.markdown import cell

    html = rendered(f"| a | b |\n|---|---|\n| {cell(text)} | x |\n")
    assert "<img" not in html and "<a " not in html and "<em>" not in html and "<strong>" not in html
    assert "<code>" not in html and "<del>" not in html and html.count("<td>") == 2
    import html as html_mod

    plain = html_mod.unescape(re.sub(r"<[^>]+>", "", html))
    assert " ".join(text.split()) in plain


@pytest.mark.parametrize("text", ["a`b", "`lead", "trail`", "``x``[l](https://evil.example/c)", "```", " sp "])
def test_a_code_span_holds_any_backtick_run(text):
    from drygate.review.markdown import code

    html = rendered(f"run {code(text)} end\n")
    assert html.count("<code>") == 1 and "href" not in html
    import html as html_mod

    inner = html_mod.unescape(re.search(r"<code>(.*)</code>", html).group(1))
    assert inner.strip() == text.strip()


def test_a_run_id_cannot_name_another_runs_ledger(tmp_path):
    """Sibling of the approval case: a run named after another run's ledger key leaves that
    ledger alone (run ledgers are keyed ``run:<run id>``, approvals ``approval:<hash>``)."""
    from drygate.plan.apply import run_ledger, run_ledger_key

    project = Project(tmp_path / "app")
    write_policy(project.root, "dry")
    dry(project, "Write", {"file_path": "a.txt", "content": "a\n"})
    project.cli("plan", SESSION, "--out", str(tmp_path / "plan.json"))
    squatter = run_ledger_key(SESSION)
    assert project.hook(project.event("Write", {"file_path": "b.txt", "content": "b\n"}),
                        DRYGATE_RUN_ID=squatter).code == 2
    project.cli("plan", squatter, "--out", str(tmp_path / "other.json"))
    store = project.open_store()
    try:
        mine = run_ledger(store, SESSION)
        assert mine["plan_hash"] == json.loads((tmp_path / "plan.json").read_text())["content_hash"]
        assert run_ledger(store, squatter)["plan_hash"] == json.loads((tmp_path / "other.json").read_text())[
            "content_hash"]
    finally:
        store.close()
    project.cli("apply", str(tmp_path / "plan.json"), "--yes")
    assert (project.root / "a.txt").read_text() == "a\n" and not (project.root / "b.txt").exists()


def test_the_agent_cannot_install_into_drygates_own_environment(live_project):
    """Sibling of the package-manager probe: packages installed into drygate's environment
    replace its dependencies (a fake click, tree-sitter) without naming drygate."""
    prefix, py = Path(sys.prefix), sys.executable
    commands = [f"{prefix}/bin/pip install ./fake-click", f"{py} -m pip install --force-reinstall ./x",
                f"uv pip install --python {py} ./fake", f"pip install --target {prefix}/lib ./fake",
                f"{prefix}/bin/pip uninstall -y click"]
    if sys.prefix == getattr(sys, "base_prefix", sys.prefix):
        pytest.skip("drygate runs outside a virtual environment here")
    other = Path(live_project.root).parent / "other-venv"
    allowed = [c for c in commands if not live_project.hook(live_project.event("Bash", {"command": c})).blocks]
    assert allowed == []
    # installing into another environment stays allowed
    for c in ("pip install requests", f"{other}/bin/pip install requests", f"{other}/bin/python -m pip install x"):
        assert not live_project.hook(live_project.event("Bash", {"command": c})).blocks, c


@pytest.mark.parametrize("first", ["edit", "write_other_read"])
def test_a_subset_and_reads_of_simulated_content_siblings(tmp_path, first):
    """Sibling: a dropped dry Edit read back through the shadow refuses the subset too; a
    dropped Write nobody read back leaves the subset allowed."""
    project = Project(tmp_path / "app")
    write_policy(project.root, "dry")
    (project.root / "conf.txt").write_text("v=1\n")
    (project.root / "other.txt").write_text("o\n")
    if first == "edit":
        dry(project, "Edit", {"file_path": str(project.root / "conf.txt"), "old_string": "v=1", "new_string": "v=2"})
        project.hook(project.event("Read", {"file_path": str(project.root / "conf.txt")}))
    else:
        dry(project, "Write", {"file_path": "conf.txt", "content": "v=2\n"})
        project.hook(project.event("Read", {"file_path": str(project.root / "other.txt")}))
    dry(project, "Write", {"file_path": "derived.txt", "content": "v is 2\n"})
    plan = tmp_path / "plan.json"
    project.cli("plan", SESSION, "--out", str(plan))
    r = project.cli("approve", str(plan), "--drop", "1", "--out", str(tmp_path / "s.json"), "--yes", check=False)
    if first == "edit":
        assert r.returncode == 1 and "simulated write" in r.stderr and not (tmp_path / "s.json").exists(), r.stderr
    else:
        assert r.returncode == 0 and (tmp_path / "s.json").exists(), r.stderr
