"""Serve the relay over MCP's streamable HTTP transport (``drygate mcp --http HOST:PORT``).

MCP spec 2025-06-18 and later, "Transports / Streamable HTTP": one endpoint (``/mcp``),
many sessions at once.

- A session is one client: each ``initialize`` POSTed without ``Mcp-Session-Id`` makes
  a new session with an unguessable id (returned in ``Mcp-Session-Id``), its own
  relay, its own server process (or HTTP downstream), so its own JSON-RPC id space,
  and its own run (``mcp-http-<uuid>``, unless ``DRYGATE_RUN_ID`` names one for the
  whole relay or the client names one in ``_meta["drygate/run_id"]``).
- ``POST``: one JSON-RPC message. A request is answered with its response as
  ``application/json``; a notification or a response from the client gets ``202``.
  Every message of a session must carry its ``Mcp-Session-Id``: one without it is
  refused with ``400`` (it could otherwise be taken for another session's), one
  naming no live session gets ``404`` (the client starts a new session).
- The stateless 2026-07-28 era has no session: a POST without ``Mcp-Session-Id``
  whose request carries ``_meta["io.modelcontextprotocol/protocolVersion"]`` (or is
  ``server/discover``) goes to one shared stateless relay, which gives each request
  an id of its own (clients' ids may collide) and puts it in the run the request
  names in ``_meta["drygate/run_id"]``, else the relay's stateless run.
- ``GET`` (``Accept: text/event-stream``, with ``Mcp-Session-Id``): a server-sent-events
  stream of what the session's server sends on its own (notifications, its requests
  such as sampling or elicitation). Messages sent while no stream is open are kept
  (up to ``BACKLOG``) for the next one.
- ``DELETE`` with ``Mcp-Session-Id`` ends that session and only that one (its relay
  and server stop); without the header it is refused (``400``), with an id no live
  session has (``404``). The id is the session's secret: a DELETE cannot name
  another session without knowing its id.
- A response the session's server sends that answers no request of the client (the
  answer to the relay's own ``tools/list``, late) never reaches the client
  (drygate.relay.core drops it).
- The ``Origin`` header must name a loopback host, as the spec asks servers bound to
  the local machine to check (DNS rebinding); the default bind address is 127.0.0.1.
- ``GET /metrics`` (next to the endpoint): Prometheus metrics of the gate's health
  (:mod:`drygate.metrics`; prometheus_client is imported at the first scrape).
- At most ``MAX_SESSIONS`` live sessions; one idle for ``SESSION_IDLE_S`` is ended.

Built on Starlette and uvicorn (the MCP Python SDK's own HTTP stack). Everything
else, deciding every message included, is the relay's (:mod:`drygate.relay.core`).
"""

import asyncio
import collections
import json
import sys
import time
import uuid

from drygate.relay.identity import RUN_META_KEY
from drygate.relay.protocol import id_key
from drygate.relay.results import PROTOCOL_VERSION_META

BACKLOG = 1000
ENDPOINT = "/mcp"
METRICS_ENDPOINT = "/metrics"
#: How long a POSTed request waits for its response (s); tools can be slow.
RESPONSE_TIMEOUT_S = 600.0
#: Largest POST body accepted (bytes).
MAX_BODY = 64 * 1024 * 1024
#: Live sessions at most (each has a server process).
MAX_SESSIONS = 256
#: A session with no request and no open stream for this long is ended (s).
SESSION_IDLE_S = 1800.0
SESSION_HEADER = "mcp-session-id"


def _origin_ok(origin):
    if not origin:
        return True
    from urllib.parse import urlsplit

    try:
        host = urlsplit(origin).hostname or ""
    except ValueError:
        return False
    return host in ("localhost", "127.0.0.1", "::1")


def _is_stateless(message):
    """True for a request of the 2026-07-28 era, which carries its protocol version in every ``_meta``."""
    if message.get("method") == "server/discover":
        return True
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and PROTOCOL_VERSION_META in meta


class StatelessRuns:
    """The run of each stateless request: the one it names in ``_meta``, else ``run_id``.

    A stateless request may name its run every time, but never away from a dry run:
    once the relay's stateless run is dry, a request that names another run stays in
    it (as a connection cannot leave a dry run by naming another, drygate.relay.identity);
    with ``fixed`` (DRYGATE_RUN_ID) every request is in ``run_id``. ``is_dry(run_id)``
    may raise GuardFailure (the call then fails closed)."""

    def __init__(self, run_id, fixed, is_dry):
        self.run_id = run_id
        self.fixed = fixed
        self.is_dry = is_dry

    def run_for(self, meta):
        named = meta.get(RUN_META_KEY) if isinstance(meta, dict) else None
        if isinstance(named, str) and named and named != self.run_id and not self.fixed \
                and not self.is_dry(self.run_id):
            return named
        return self.run_id


class Session:
    """One client session: its relay, its requests waiting for answers, its event streams."""

    def __init__(self, session_id, relay, stateless=False):
        self.id = session_id
        self.relay = relay
        self.stateless = stateless
        self.waiters = {}  # id key -> Future of the response line
        self.originals = {}  # stateless: the relay's id key -> the client's id
        self.streams = set()
        self.backlog = collections.deque(maxlen=BACKLOG)
        self.last_seen = time.monotonic()
        self._next = 0
        relay.sink = self.deliver

    async def deliver(self, data):
        """Route one line the relay sends the client: a response to its POST, the rest to the streams."""
        try:
            message = json.loads(data)
        except ValueError:
            message = None
        if isinstance(message, dict) and "method" not in message and "id" in message:
            key = id_key(message["id"])
            future = self.waiters.pop(key, None)
            if future is not None and not future.done():
                original = self.originals.pop(key, None)
                if self.stateless and original is not None:
                    from drygate.relay.results import encode

                    data = encode(dict(message, id=original[0]))
                future.set_result(data)
                return
        if self.streams:
            for queue in list(self.streams):
                queue.put_nowait(data)
        else:
            self.backlog.append(data)

    async def request(self, message):
        """Send a request through the relay; returns the response line (bytes) or None on timeout."""
        self.last_seen = time.monotonic()
        if self.stateless:  # clients of the shared stateless relay may use the same ids
            self._next += 1
            own_id = f"drygate-http-{self._next}"
            self.originals[id_key(own_id)] = (message["id"],)
            message = dict(message, id=own_id)
        key = id_key(message["id"])
        future = asyncio.get_running_loop().create_future()
        self.waiters[key] = future
        from drygate.relay.results import encode

        await self.relay.handle_client_line(encode(message))
        try:
            return await asyncio.wait_for(future, RESPONSE_TIMEOUT_S)
        except asyncio.TimeoutError:
            self.waiters.pop(key, None)
            self.originals.pop(key, None)
            return None
        finally:
            self.last_seen = time.monotonic()

    async def close(self):
        for future in self.waiters.values():
            if not future.done():
                future.cancel()
        self.waiters.clear()
        for queue in list(self.streams):
            queue.put_nowait(None)
        await self.relay.close()


class HttpFront:
    """The HTTP endpoint: sessions by ``Mcp-Session-Id``, each with a relay made by ``make_relay(run_id, fixed)``.

    ``settings``: drygate.config.Settings (for /metrics); ``name``: what the relay serves
    (for messages); ``run_id``: the run every session is in (DRYGATE_RUN_ID), else None
    for a run per session.
    """

    def __init__(self, make_relay, settings, name, run_id=None):
        self.make_relay = make_relay
        self.settings = settings
        self.name = name
        self.run_id = run_id
        self.sessions = {}
        self.stateless = None
        self._stateless_lock = asyncio.Lock()
        self.metrics_registry = None  # made at the first scrape

    def _run_for_new_session(self):
        return (self.run_id, True) if self.run_id else (f"mcp-http-{uuid.uuid4()}", False)

    async def new_session(self):
        """A new session with its relay started (a server that cannot start answers every request with why)."""
        await self._reap(need_room=True)
        if len(self.sessions) >= MAX_SESSIONS:
            return None
        run_id, fixed = self._run_for_new_session()
        relay = self.make_relay(run_id, fixed)
        session = Session(uuid.uuid4().hex, relay)
        self.sessions[session.id] = session
        await relay.start()
        return session

    async def stateless_session(self):
        """The shared relay of the stateless era (made on first use)."""
        async with self._stateless_lock:
            if self.stateless is None:
                run_id, fixed = self._run_for_new_session()
                relay = self.make_relay(run_id, fixed)
                relay.runs = StatelessRuns(run_id, fixed, relay.run_is_dry)
                session = Session(None, relay, stateless=True)
                await relay.start()
                self.stateless = session
            return self.stateless

    async def end_session(self, session_id):
        session = self.sessions.pop(session_id, None)
        if session is not None:
            await session.close()
        return session is not None

    async def _reap(self, need_room=False):
        now = time.monotonic()
        idle = [s for s in self.sessions.values() if not s.waiters and not s.streams]
        for s in idle:
            if now - s.last_seen > SESSION_IDLE_S:
                await self.end_session(s.id)
        if need_room and len(self.sessions) >= MAX_SESSIONS:
            for s in sorted((s for s in self.sessions.values() if not s.waiters and not s.streams),
                            key=lambda s: s.last_seen)[:1]:
                await self.end_session(s.id)

    async def close(self):
        for session_id in list(self.sessions):
            await self.end_session(session_id)
        if self.stateless is not None:
            await self.stateless.close()

    def app(self):
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse, Response, StreamingResponse
        from starlette.routing import Route

        def rpc_error(request_id, code, text, status):
            return JSONResponse({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": text}},
                                status_code=status)

        async def post(request):
            from drygate.relay.results import decode

            if not _origin_ok(request.headers.get("origin")):
                return Response("origin not allowed", status_code=403)
            if int(request.headers.get("content-length") or 0) > MAX_BODY:
                return Response("body too large", status_code=413)
            body = await request.body()
            if len(body) > MAX_BODY:
                return Response("body too large", status_code=413)
            try:
                message = decode(body)
            except (ValueError, UnicodeDecodeError, RecursionError):
                return rpc_error(None, -32700, "Parse error", 400)
            if isinstance(message, list):
                return rpc_error(None, -32600, "drygate: JSON-RPC batches are not accepted over HTTP", 400)
            if not isinstance(message, dict):
                return rpc_error(None, -32600, "Invalid Request", 400)
            if "method" in message and not isinstance(message["method"], str):
                return rpc_error(message.get("id"), -32600, "Invalid Request: method must be a string", 400)
            is_request = "method" in message and "id" in message
            session_id = request.headers.get(SESSION_HEADER)
            headers = {}
            if session_id:
                session = self.sessions.get(session_id)
                if session is None:
                    return Response("unknown session: initialize a new one", status_code=404)
                if message.get("method") == "initialize":
                    return rpc_error(message.get("id"), -32600, "Invalid Request: initialize starts a new session; "
                                                                "send it without Mcp-Session-Id", 400)
            elif is_request and message["method"] == "initialize":
                session = await self.new_session()
                if session is None:
                    return rpc_error(message["id"], -32603, f"drygate: {MAX_SESSIONS} sessions are open", 503)
                headers["Mcp-Session-Id"] = session.id
            elif _is_stateless(message):
                session = await self.stateless_session()
            else:
                return rpc_error(message.get("id"), -32600, "Bad Request: Mcp-Session-Id header is required "
                                                            "(send initialize first)", 400)
            if not is_request:
                session.last_seen = time.monotonic()
                await session.relay.handle_client_line(body + b"\n")
                return Response(status_code=202)
            if not session.stateless and id_key(message["id"]) in session.waiters:
                return rpc_error(message["id"], -32600, "Invalid Request: a request with this id is still in "
                                                        "flight in this session", 409)
            data = await session.request(message)
            if data is None:
                return rpc_error(message["id"], -32603, "drygate: no response from the MCP server in time", 504)
            return Response(data, media_type="application/json", headers=headers)

        async def get(request):
            if not _origin_ok(request.headers.get("origin")):
                return Response("origin not allowed", status_code=403)
            if "text/event-stream" not in request.headers.get("accept", ""):
                return Response("use Accept: text/event-stream", status_code=406)
            session_id = request.headers.get(SESSION_HEADER)
            if not session_id:
                return Response("Mcp-Session-Id header is required", status_code=400)
            session = self.sessions.get(session_id)
            if session is None:
                return Response("unknown session", status_code=404)
            queue = asyncio.Queue()
            while session.backlog:
                queue.put_nowait(session.backlog.popleft())
            session.streams.add(queue)

            async def events():
                try:
                    while True:
                        data = await queue.get()
                        if data is None:
                            return  # the session ended
                        yield b"event: message\ndata: " + data.rstrip(b"\n") + b"\n\n"
                finally:
                    session.streams.discard(queue)
                    session.last_seen = time.monotonic()

            return StreamingResponse(events(), media_type="text/event-stream")

        async def metrics(request):
            if not _origin_ok(request.headers.get("origin")):
                return Response("origin not allowed", status_code=403)
            from drygate.metrics import CONTENT_TYPE, exposition, make_registry

            for session in [*self.sessions.values(), *([self.stateless] if self.stateless else [])]:
                gate = getattr(session.relay, "gate", None)
                if gate is not None and hasattr(gate, "flush"):
                    gate.flush()  # this relay's latest decisions into the store before reading it back
            if self.metrics_registry is None:
                self.metrics_registry = make_registry(self.settings)
            # The scrape pings the store and reads the alert log: off the loop, which serves calls.
            body = await asyncio.to_thread(exposition, self.metrics_registry)
            return Response(body, media_type=CONTENT_TYPE)

        async def delete(request):
            if not _origin_ok(request.headers.get("origin")):
                return Response("origin not allowed", status_code=403)
            session_id = request.headers.get(SESSION_HEADER)
            if not session_id:
                return Response("Mcp-Session-Id header is required: it names the session to end", status_code=400)
            if not await self.end_session(session_id):
                return Response("unknown session", status_code=404)
            return Response(status_code=200)

        return Starlette(routes=[Route(ENDPOINT, post, methods=["POST"]), Route(ENDPOINT, get, methods=["GET"]),
                                 Route(ENDPOINT, delete, methods=["DELETE"]),
                                 Route(METRICS_ENDPOINT, metrics, methods=["GET"])])


def parse_address(text):
    """``HOST:PORT`` or ``PORT`` -> (host, port); the host defaults to loopback. Raises ValueError."""
    host, _, port = text.rpartition(":")
    host = (host or "127.0.0.1").strip("[]")
    return host, int(port)


async def serve_http(make_relay, settings, name, host, port, run_id=None):
    """Serve relays made by ``make_relay(run_id, fixed)``, one per session, until interrupted."""
    import uvicorn

    front = HttpFront(make_relay, settings, name, run_id)
    config = uvicorn.Config(front.app(), host=host, port=port, log_level="warning", lifespan="off",
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    sys.stderr.write(f"drygate mcp: serving {name!r} on http://{host}:{port}{ENDPOINT}\n")
    sys.stderr.flush()
    try:
        await server.serve()
    finally:
        await front.close()
