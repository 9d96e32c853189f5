"""The review page's server over plain HTTP (no browser): who may use it, secrets, paging.

`drygate review` is started as a user starts it; requests are made with httpx the way a
hostile page or a second local user could make them."""

import json
import re

import httpx
import pytest

from review_page.conftest import SECRET_VALUES


@pytest.fixture
def server(review_project, serve):
    return serve(review_project, review_project.plan_file)


def login(server):
    client = httpx.Client(base_url=server.base, follow_redirects=False, timeout=30)
    r = client.get(server.url.replace(server.base, ""))
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    return client


def csrf_of(html):
    return re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)


def test_the_link_works_once_and_everything_else_needs_its_session(server):
    anonymous = httpx.Client(base_url=server.base, timeout=30)
    for path in ("/", "/steps", "/timeline", "/files", "/static/review.css"):
        r = anonymous.get(path)
        assert r.status_code == 403 and "one-time token" in r.text, path
    for token in ("not-the-token", "%C3%A9t%C3%A9", "%00", ""):
        wrong = anonymous.get(f"/?token={token}")
        assert wrong.status_code == 403, token
    raw_cookie = f"drygate_review_{server.port}=\u00e9t\u00e9".encode()  # not ASCII
    assert anonymous.get("/", headers={"Cookie": raw_cookie}).status_code == 403
    client = login(server)
    page = client.get("/")
    assert page.status_code == 200 and server.plan_path in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    again = httpx.get(server.url, timeout=30)  # the same link, a second time (another browser)
    assert again.status_code == 403 and "already used" in again.text
    assert anonymous.post("/decide", data={"decision": "approve"}).status_code == 403


def test_other_origins_and_hosts_are_refused(server, review_project):
    client = login(server)
    evil = client.get("/", headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403 and "another origin" in evil.text
    assert client.get("/", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    rebound = client.get("/", headers={"Host": f"evil.example:{server.port}"})  # DNS rebinding
    assert rebound.status_code == 403 and "unknown host" in rebound.text
    html = client.get("/").text
    form = {"csrf": csrf_of(html), "plan_hash": review_project.saved_hash, "decision": "approve"}
    r = client.post("/decide", data=form, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    r = client.post("/decide", data=form)  # no Origin at all: not from the page
    assert r.status_code == 403 and "no Origin" in r.text
    r = client.post("/decide", data=dict(form, csrf="0" * 64), headers={"Origin": server.base})
    assert r.status_code == 403 and "CSRF" in r.text
    assert "NOT DECIDED" in client.get("/").text
    r = client.post("/decide", data=form, headers={"Origin": server.base})
    assert r.status_code == 200 and "Approved" in r.text
    assert "APPROVED" in client.get("/").text


def test_no_secret_reaches_any_page(server, review_project):
    client = login(server)
    pages = [client.get(p).text for p in ("/", "/steps", "/timeline", "/files")]
    for secret in SECRET_VALUES:
        assert not any(secret in html for html in pages), secret
    assert "••••••" in pages[1] and "customer_pin" in pages[1]
    # ...while the plan file keeps the real values (apply needs them)
    assert SECRET_VALUES[0] in review_project.plan_file.read_text()


def test_bad_requests_get_clear_answers(server, review_project):
    client = login(server)
    assert client.get("/steps?page=zzz").status_code == 200
    assert client.get("/steps?page=-5").status_code == 200
    assert client.get("/nowhere").status_code == 404
    html = client.get("/").text
    r = client.post("/decide", data={"csrf": csrf_of(html), "plan_hash": "sha256:0", "decision": "approve"},
                    headers={"Origin": server.base})
    assert r.status_code == 409 and "another plan" in r.text
    r = client.post("/decide", data={"csrf": csrf_of(html), "plan_hash": review_project.saved_hash,
                                     "decision": "launch"}, headers={"Origin": server.base})
    assert r.status_code == 409 and "approve or reject" in r.text


def test_review_of_a_run_makes_and_saves_its_plan(review_project, serve):
    server = serve(review_project, None)  # no argument: the latest run
    saved = json.loads(open(server.plan_path).read())
    assert server.plan_path.startswith(str(review_project.root / ".drygate" / "plans"))
    client = login(server)
    assert saved["content_hash"] in client.get("/").text


def test_review_of_a_missing_or_edited_plan_is_a_clear_error(review_project, tmp_path):
    plan = json.loads(review_project.plan_file.read_text())
    plan["steps"][0]["input"]["new_string"] = "evil.internal"
    (tmp_path / "edited.json").write_text(json.dumps(plan))
    for target in (str(tmp_path / "edited.json"), str(tmp_path / "missing.json"), "no-such-run"):
        r = review_project.cli("review", target, check=False)
        assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr.strip(), target


def test_pages_are_paged(tmp_path):
    """A plan of 2,500 steps is served 100 steps per page (the view, without a server)."""
    from drygate.review.view import ReviewData

    steps = [{"step": i, "call": i, "seq": i, "tool_name": "mcp__s__put", "executor": {"kind": "mcp", "server": "s",
              "tool": "put"}, "input": {"key": f"k{i}", "token": f"t{i}"}, "summary": "", "effect": "write",
              "why": "dry", "references": [], "depends_on": [i - 1] if i > 1 else [], "idempotency_key": "x"}
             for i in range(1, 2501)]
    plan = {"run_id": "r", "content_hash": "sha256:" + "0" * 64, "steps": steps, "run": {}, "basis": {}}
    data = ReviewData(plan, None, None, {}, str(tmp_path))
    items, page, pages = data.steps_page(7)
    assert (len(items), page, pages) == (100, 7, 25) and items[0]["step"] == 601
    assert items[0]["uses"] == [] and items[0]["used_by"] == [602]
    assert all("t6" not in i["input"] for i in items)  # "token" values masked by key
    assert data.steps_page(999)[1] == 25 and len(data.steps_page(25)[0]) == 100
