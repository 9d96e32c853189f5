"""Serve the relay over MCP's streamable HTTP transport (``drygate mcp --http HOST:PORT``).

MCP spec 2025-06-18, "Transports / Streamable HTTP": one endpoint (``/mcp``).

- ``POST``: one JSON-RPC message. A request is answered with its response as
  ``application/json``; a notification or a response from the client gets ``202``.
  The ``initialize`` response carries ``Mcp-Session-Id``; a later request naming
  another session gets ``404``.
- ``GET`` (``Accept: text/event-stream``): a server-sent-events stream of what the
  server sends on its own (notifications, its requests such as sampling or
  elicitation). Messages sent while no stream is open are kept (up to
  ``BACKLOG``) for the next one.
- ``DELETE``: ends the session.
- The ``Origin`` header must name a loopback host, as the spec asks servers bound to
  the local machine to check (DNS rebinding); the default bind address is 127.0.0.1.
- ``GET /metrics`` (next to the endpoint): Prometheus metrics of the gate's health
  (:mod:`drygate.metrics`; prometheus_client is imported at the first scrape).

Built on Starlette and uvicorn (the MCP Python SDK's own HTTP stack). Everything
else, deciding ``tools/call`` included, is the stdio relay's (:mod:`drygate.relay.core`).
"""

import asyncio
import collections
import json
import sys
import uuid

from drygate.relay.core import _id_key

BACKLOG = 1000
ENDPOINT = "/mcp"
METRICS_ENDPOINT = "/metrics"
#: How long a POSTed request waits for its response (s); tools can be slow.
RESPONSE_TIMEOUT_S = 600.0
#: Largest POST body accepted (bytes).
MAX_BODY = 64 * 1024 * 1024
_LOOPBACK = ("localhost", "127.0.0.1", "[::1]")


def _origin_ok(origin):
    if not origin:
        return True
    from urllib.parse import urlsplit

    try:
        host = urlsplit(origin).hostname or ""
    except ValueError:
        return False
    return host in ("localhost", "127.0.0.1", "::1")


class HttpFront:
    """Routes the relay's output: responses to the POST that waits for them, the rest to GET streams."""

    def __init__(self, relay):
        self.relay = relay
        self.waiters = {}
        self.streams = set()
        self.backlog = collections.deque(maxlen=BACKLOG)
        self.session_id = None
        self.metrics_registry = None  # made at the first scrape

    async def deliver(self, data):
        try:
            message = json.loads(data)
        except ValueError:
            message = None
        if isinstance(message, dict) and "method" not in message and "id" in message:
            future = self.waiters.pop(_id_key(message["id"]), None)
            if future is not None and not future.done():
                future.set_result(data)
                return
        if self.streams:
            for queue in list(self.streams):
                queue.put_nowait(data)
        else:
            self.backlog.append(data)

    def app(self):
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse, Response, StreamingResponse
        from starlette.routing import Route

        async def post(request):
            from drygate.relay.results import decode

            if not _origin_ok(request.headers.get("origin")):
                return Response("origin not allowed", status_code=403)
            session = request.headers.get("mcp-session-id")
            if session and self.session_id and session != self.session_id:
                return Response("unknown session", status_code=404)
            if int(request.headers.get("content-length") or 0) > MAX_BODY:
                return Response("body too large", status_code=413)
            body = await request.body()
            if len(body) > MAX_BODY:
                return Response("body too large", status_code=413)
            try:
                message = decode(body)
            except (ValueError, UnicodeDecodeError, RecursionError):
                return JSONResponse({"jsonrpc": "2.0", "id": None,
                                     "error": {"code": -32700, "message": "Parse error"}}, status_code=400)
            if isinstance(message, list):
                return JSONResponse({"jsonrpc": "2.0", "id": None, "error": {
                    "code": -32600, "message": "drygate: JSON-RPC batches are not accepted over HTTP"}},
                    status_code=400)
            headers = {}
            if isinstance(message, dict) and "method" in message and not isinstance(message["method"], str):
                return JSONResponse({"jsonrpc": "2.0", "id": message.get("id"), "error": {
                    "code": -32600, "message": "Invalid Request: method must be a string"}}, status_code=400)
            if not isinstance(message, dict) or "method" not in message or "id" not in message:
                await self.relay.handle_client_line(body + b"\n")
                return Response(status_code=202)
            key = _id_key(message["id"])
            if key in self.waiters:
                return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "error": {
                    "code": -32600, "message": "Invalid Request: a request with this id is still in flight"}},
                    status_code=409)
            if message["method"] == "initialize":
                self.session_id = self.session_id or str(uuid.uuid4())
                headers["Mcp-Session-Id"] = self.session_id
            future = asyncio.get_running_loop().create_future()
            self.waiters[key] = future
            await self.relay.handle_client_line(body + b"\n")
            try:
                data = await asyncio.wait_for(future, RESPONSE_TIMEOUT_S)
            except asyncio.TimeoutError:
                self.waiters.pop(key, None)
                return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "error": {
                    "code": -32603, "message": "drygate: no response from the MCP server in time"}}, status_code=504)
            return Response(data, media_type="application/json", headers=headers)

        async def get(request):
            if not _origin_ok(request.headers.get("origin")):
                return Response("origin not allowed", status_code=403)
            if "text/event-stream" not in request.headers.get("accept", ""):
                return Response("use Accept: text/event-stream", status_code=406)
            queue = asyncio.Queue()
            while self.backlog:
                queue.put_nowait(self.backlog.popleft())
            self.streams.add(queue)

            async def events():
                try:
                    while True:
                        data = await queue.get()
                        yield b"event: message\ndata: " + data.rstrip(b"\n") + b"\n\n"
                finally:
                    self.streams.discard(queue)

            return StreamingResponse(events(), media_type="text/event-stream")

        async def metrics(request):
            if not _origin_ok(request.headers.get("origin")):
                return Response("origin not allowed", status_code=403)
            from drygate.metrics import CONTENT_TYPE, exposition, make_registry

            gate = getattr(self.relay, "gate", None)
            if gate is not None and hasattr(gate, "flush"):
                gate.flush()  # this relay's latest decisions into the store before reading it back
            if self.metrics_registry is None:
                self.metrics_registry = make_registry(self.relay.settings)
            # The scrape pings the store and reads the alert log: off the loop, which serves calls.
            body = await asyncio.to_thread(exposition, self.metrics_registry)
            return Response(body, media_type=CONTENT_TYPE)

        async def delete(request):
            if not _origin_ok(request.headers.get("origin")):
                return Response("origin not allowed", status_code=403)
            self.session_id = None
            return Response(status_code=200)

        return Starlette(routes=[Route(ENDPOINT, post, methods=["POST"]), Route(ENDPOINT, get, methods=["GET"]),
                                 Route(ENDPOINT, delete, methods=["DELETE"]),
                                 Route(METRICS_ENDPOINT, metrics, methods=["GET"])])


def parse_address(text):
    """``HOST:PORT`` or ``PORT`` -> (host, port); the host defaults to loopback. Raises ValueError."""
    host, _, port = text.rpartition(":")
    host = (host or "127.0.0.1").strip("[]")
    return host, int(port)


async def serve_http(relay, host, port):
    """Run the relay behind an HTTP endpoint until interrupted."""
    import uvicorn

    front = HttpFront(relay)
    relay.sink = front.deliver
    await relay.start()
    config = uvicorn.Config(front.app(), host=host, port=port, log_level="warning", lifespan="off",
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    sys.stderr.write(f"drygate mcp: serving {relay.server!r} on http://{host}:{port}{ENDPOINT}\n")
    sys.stderr.flush()
    try:
        await server.serve()
    finally:
        await relay.close()
