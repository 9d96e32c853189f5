"""The review page's local web server (Starlette + Jinja2, served by uvicorn).

Who may use it, in order (every request passes :class:`Guard` first):

1. **Loopback only, an address of its own.** The server binds a random loopback address
   (``127.a.b.c``, not 127.0.0.1) on a random port: browsers scope cookies to a host, not a
   port, so the session cookie is never sent to another local server (a dev server on
   127.0.0.1 or localhost) that could replay it. A ``Host`` header that is not exactly
   ``<that address>:<port>`` is refused (DNS rebinding: a page on another site whose name
   resolves to a loopback address cannot talk to it).
2. **Other origins refused.** A request carrying an ``Origin`` that is not this server's,
   or ``Sec-Fetch-Site: cross-site``, gets 403, whatever its method.
3. **A one-time token**, as Jupyter does: ``drygate review`` prints
   ``http://127.a.b.c:<port>/?token=<token>``; the first request with it gets a session
   cookie (random, ``HttpOnly``, ``SameSite=Strict``, named after the port) and is
   redirected to the same page without the token. The token then stops working; every
   other request needs the cookie.
4. **Approve and reject are POSTs** with a CSRF token (an HMAC of the session) in the
   form, an ``Origin`` that must be this server's, and the plan hash the page showed:
   the plan is read and verified again from its file (drygate.plan.artifact.load_plan),
   so a plan edited on disk (tampered) or changed since the page was opened is refused,
   and so is a plan whose basis changed (stale) or whose run was already applied.

Responses carry ``Content-Security-Policy`` (own scripts and styles only, no framing,
forms to itself), ``Referrer-Policy: same-origin`` (with no-referrer, chromium sends ``Origin: null`` on a form POST) and ``Cache-Control: no-store``.
Secrets are masked before any template sees them (drygate.review.mask).
"""

import hashlib
import hmac
import os
import secrets

from drygate.errors import DrygateError

HERE = os.path.dirname(os.path.abspath(__file__))
#: Basis items listed on the overview besides every changed one (the counts cover all).
BASIS_ROWS = 200
CSP = ("default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


class ReviewState:
    """What the app serves and remembers: the :class:`drygate.review.view.ReviewData`, the
    one-time token, the session secret, the port (set once bound) and what was decided."""

    def __init__(self, data, token=None):
        self.data = data
        self.token = token or secrets.token_urlsafe(32)
        self.token_used = False
        self.session = secrets.token_urlsafe(32)
        self.port = None
        self.host = "127.0.0.1"  # serve() picks a loopback address of this server's own
        self.decisions = []  # (decision, plan hash, path of a subset plan or None)

    @property
    def cookie(self):
        return f"drygate_review_{self.port}"

    def csrf(self):
        return hmac.new(self.session.encode(), b"csrf", hashlib.sha256).hexdigest()

    def origins(self):
        return {f"http://{self.host}:{self.port}"}

    def hosts(self):
        """The ``Host`` header values this server answers (set of str): its own address only
        (``localhost`` is left out: its cookies go to every local server)."""
        return {f"{self.host}:{self.port}"}


class Guard:
    """ASGI middleware: the checks 1-3 of the module docstring, and the security headers."""

    def __init__(self, app, state):
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.requests import Request
        from starlette.responses import PlainTextResponse, RedirectResponse

        request = Request(scope)
        st = self.state
        host = request.headers.get("host", "")
        if host not in st.hosts():
            return await _headers(PlainTextResponse("refused: unknown host", 403))(scope, receive, send)
        origin = request.headers.get("origin")
        if (origin is not None and origin not in st.origins()) or \
                request.headers.get("sec-fetch-site") == "cross-site":
            return await _headers(PlainTextResponse("refused: another origin", 403))(scope, receive, send)
        token = request.query_params.get("token")
        if token is not None:
            if st.token_used or not _same(token, st.token):
                return await _headers(PlainTextResponse(
                    "refused: this link was already used or is wrong; run `drygate review` again for a new one",
                    403))(scope, receive, send)
            st.token_used = True
            response = RedirectResponse(request.url.path, 303)
            response.set_cookie(st.cookie, st.session, httponly=True, samesite="strict", path="/")
            return await _headers(response)(scope, receive, send)
        if not _same(request.cookies.get(st.cookie, ""), st.session):
            return await _headers(PlainTextResponse(
                "refused: open the link `drygate review` printed (it carries a one-time token)", 403))(
                scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                headers += [(k.encode(), v.encode()) for k, v in _SECURITY_HEADERS.items()]
                message = dict(message, headers=headers)
            await send(message)

        return await self.app(scope, receive, send_with_headers)


def _same(given, expected):
    """Constant-time comparison of a secret the client sent (any text) with ours."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


_SECURITY_HEADERS = {"content-security-policy": CSP, "referrer-policy": "same-origin", "cache-control": "no-store",
                     "x-content-type-options": "nosniff", "x-frame-options": "DENY"}


def _headers(response):
    for k, v in _SECURITY_HEADERS.items():
        response.headers[k] = v
    return response


def templates():
    """The Jinja2 environment of the page (autoescaped HTML; drygate/review/templates)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(HERE, "templates")),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    return env


def create_app(state):
    """The Starlette app serving ``state`` (a :class:`ReviewState`), wrapped in :class:`Guard`."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    env = templates()

    def render(name, status=200, **context):
        data = state.data
        context.setdefault("message", None)
        html = env.get_template(name).render(summary=data.summary(), approval=data.approval(),
                                             ledger=data.ledger(), csrf=state.csrf(), **context)
        return HTMLResponse(html, status)

    def page_number(request, name="page"):
        try:
            return int(request.query_params.get(name, "1"))
        except ValueError:
            return 1

    async def overview(request):
        data = state.data
        basis = data.basis()
        stale = [b for b in basis if b["status"] == "changed"]
        checked = data.checked
        if checked is not None:
            checked = dict(checked, changed=[data.masker.text(x) for x in checked["changed"]],
                           unchecked=[data.masker.text(x) for x in checked["unchecked"]])
        counts = {}
        for b in basis:
            counts[b["status"]] = counts.get(b["status"], 0) + 1
        # never thousands of rows: the changed items first, then the others, BASIS_ROWS a page
        # (?basis=N pages on); the counts name every status
        ordered = stale + [b for b in basis if b["status"] != "changed"]
        pages = max(1, -(-len(ordered) // BASIS_ROWS))
        page = min(max(page_number(request, "basis"), 1), pages)
        shown = ordered[(page - 1) * BASIS_ROWS:page * BASIS_ROWS]
        if checked is not None:
            checked = dict(checked, changed_total=len(checked["changed"]), changed=checked["changed"][:BASIS_ROWS])
        return render("overview.html", active="overview", basis=shown, basis_total=len(basis), basis_counts=counts,
                      basis_page=page, basis_pages=pages, stale=bool(stale),
                      checked=checked, simulation=data.simulation(),
                      timeline_counts=data.timeline_counts(), decisions=state.decisions)

    async def steps(request):
        items, page, pages = state.data.steps_page(page_number(request))
        return render("steps.html", active="steps", steps=items, page=page, pages=pages)

    async def timeline(request):
        items, page, pages = state.data.timeline_page(page_number(request))
        return render("timeline.html", active="timeline", calls=items, page=page, pages=pages)

    async def files(request):
        items, page, pages = state.data.files_page(page_number(request))
        return render("files.html", active="files", files=items, page=page, pages=pages)

    def refused_post(request, form):
        """The answer to a POST that is not from this page (CSRF token, Origin), or None."""
        if not _same(str(form.get("csrf", "")), state.csrf()):
            return render("decided.html", 403, active="overview", ok=False, outcome=None,
                          message="refused: the form's CSRF token is missing or wrong; reload the page")
        if request.headers.get("origin") not in state.origins():
            return render("decided.html", 403, active="overview", ok=False, outcome=None,
                          message="refused: a decision must come from this page (no Origin header)")
        return None

    async def check_basis(request):
        form = await request.form()
        refused = refused_post(request, form)
        if refused is not None:
            return refused
        try:
            await state.data.check_basis_now()
        except DrygateError as e:
            return render("decided.html", 409, active="overview", ok=False, outcome=None,
                          message=f"the basis could not be checked: {state.data.masker.text(str(e))}")
        return await overview(request)

    async def decide(request):
        form = await request.form()
        refused = refused_post(request, form)
        if refused is not None:
            return refused
        try:
            outcome = decide_plan(state, str(form.get("decision", "")), str(form.get("plan_hash", "")),
                                  str(form.get("drop", "") or ""), str(form.get("note", "") or "")[:2000])
        except DrygateError as e:
            return render("decided.html", 409, active="overview", ok=False, outcome=None,
                          message=f"refused: {state.data.masker.text(str(e))}")
        return render("decided.html", active="overview", ok=True, outcome=outcome, message=None)

    routes = [Route("/", overview), Route("/steps", steps), Route("/timeline", timeline), Route("/files", files),
              Route("/decide", decide, methods=["POST"]), Route("/check-basis", check_basis, methods=["POST"]),
              Mount("/static", StaticFiles(directory=os.path.join(HERE, "static")), name="static")]
    app = Starlette(routes=routes)
    return Guard(app, state)


def decide_plan(state, decision, shown_hash, drop_text, note):
    """Approve or reject the plan under review (called by the page). Returns a dict
    ``{"decision", "plan_hash", "path", "subset": bool, "steps", "who", "at"}``.

    Raises :class:`drygate.errors.PlanError` when the plan must not be decided: the file
    was edited (content hash), it is not the plan the page showed, its basis changed
    (approve only), its run was already applied, or a subset leaves out a step a kept step
    depends on.
    """
    from drygate.errors import PlanError
    from drygate.plan.approval import record_decision
    from drygate.plan.artifact import _who, load_plan, save_plan
    from drygate.plan.subset import parse_steps, subset_plan

    data = state.data
    if decision not in ("approve", "reject"):
        raise PlanError("decision must be approve or reject")
    if data.store is None:
        raise PlanError("no state store for this plan's project: a decision could not be recorded")
    plan = load_plan(data.plan_path) if data.plan_path else data.plan
    if plan["content_hash"] != data.plan["content_hash"] or shown_hash != plan["content_hash"]:
        raise PlanError(f"the plan file now holds another plan ({plan['content_hash']}) than the one this page "
                        f"showed ({shown_hash or data.plan['content_hash']}); reload and review it again")
    ledger = data.ledger()
    if ledger and ledger.get("status") in ("applying", "applied", "partial"):
        raise PlanError(f"run {plan['run_id']} is {ledger['status']} already (plan {ledger.get('plan_hash')}); "
                        f"deciding on a plan of it changes nothing")
    who = _who()
    path = data.plan_path
    if decision == "approve":
        stale = data.stale()
        if stale:
            raise PlanError("the plan is stale, so it is not approved: " + "; ".join(stale)
                            + ". Make a new plan (`drygate plan RUN --out`)")
        drop = parse_steps(drop_text, len(plan["steps"]))
        if drop:
            plan = subset_plan(plan, drop, data.project_dir, who=who)
            base = os.path.splitext(data.plan_path or os.path.join(data.project_dir, ".drygate", "plan"))[0]
            path = f"{base}.subset-{plan['content_hash'].split(':')[-1][:12]}.json"
            save_plan(plan, path)
    record = record_decision(data.store, plan, "approved" if decision == "approve" else "rejected", who,
                             "review-page", note or None)
    state.decisions.append((record["decision"], plan["content_hash"], path))
    return {"decision": record["decision"], "plan_hash": plan["content_hash"], "path": path,
            "subset": bool(plan.get("subset_of")), "steps": len(plan["steps"]), "who": who, "at": record["at"],
            "dropped": (plan.get("subset_of") or {}).get("dropped") or []}


def _random_loopback():
    """A random IPv4 loopback address outside 127.0.0.0/16 (str)."""
    return f"127.{secrets.randbelow(254) + 1}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


def serve(state, port=0, on_ready=None):
    """Serve ``state`` on 127.0.0.1 (``port``, 0 for a random free one) until interrupted.

    ``on_ready(url)`` is called with the one-time link once the socket is bound.
    Raises OSError when the port cannot be bound.
    """
    import socket

    import uvicorn

    sock = None
    # a loopback address of its own (127.a.b.c, a != 0; Linux answers all of 127/8): cookies
    # are scoped to a host, not a port, so a session cookie set for 127.0.0.1 would also go
    # to every other local server the reviewer's browser visits, which could replay it.
    # Where only 127.0.0.1 can be bound (macOS without aliases) it falls back to that.
    for host in [_random_loopback() for _ in range(8)] + ["127.0.0.1"]:
        candidate = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        candidate.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            candidate.bind((host, port))
        except OSError:
            candidate.close()
            if host == "127.0.0.1":
                raise
            continue
        sock, state.host = candidate, host
        break
    sock.listen(128)  # connections made as soon as the link is printed wait in the backlog
    state.port = sock.getsockname()[1]
    app = create_app(state)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, server_header=False)
    server = uvicorn.Server(config)
    if on_ready:
        on_ready(f"http://{state.host}:{state.port}/?token={state.token}")
    server.run(sockets=[sock])
