"""A real MCP server reached over streamable HTTP, as the relay's downstream.

Same interface as :class:`drygate.relay.downstream.Downstream` (``start``, ``send``,
``close``, ``replay``, ``ready``). Each message the relay sends is POSTed to the
server's endpoint (MCP spec 2025-06-18, "Streamable HTTP"); what comes back, a JSON
body or a server-sent-events stream, is handed to ``on_line`` message by message.
The session id the server gives at ``initialize`` (``Mcp-Session-Id``) is sent with
every later message, and a GET event stream, if the server offers one, carries what
the server sends on its own. A request the server cannot be reached for is answered
with a JSON-RPC error, never left hanging. Uses httpx.
"""

import asyncio
import json

from drygate.relay import results


class HttpDownstream:
    """One MCP server at ``url`` (str). ``on_line(bytes)`` gets every message it sends."""

    def __init__(self, url, headers=None, on_line=None, on_exit=None, timeout_s=600.0):
        self.url = url
        self.headers = dict(headers or {})
        self.on_line = on_line
        self.on_exit = on_exit
        self.timeout_s = timeout_s
        self.session_id = None
        self.replay = []
        self.ready = asyncio.Event()
        self.gone = False
        self.client = None
        self.tasks = set()
        self._listening = False

    async def start(self, replay=False):
        import httpx

        self.client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s, connect=10.0))
        self.ready.set()

    async def send(self, line, wait_s=None):
        """POST one message; its answer arrives through ``on_line`` (the POST runs in the background)."""
        if self.client is None:
            raise ConnectionError("the HTTP MCP server connection is closed")
        task = asyncio.ensure_future(self._post(line))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _post(self, line):
        import httpx

        try:
            message = json.loads(line)
        except ValueError:
            message = None
        request_id = message.get("id") if isinstance(message, dict) and "method" in message else None
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                   **self.headers}
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        try:
            async with self.client.stream("POST", self.url, content=line.rstrip(b"\n"), headers=headers) as r:
                if r.headers.get("mcp-session-id"):
                    self.session_id = r.headers["mcp-session-id"]
                kind = r.headers.get("content-type", "")
                if r.status_code == 202 or (r.status_code < 300 and not kind):
                    return
                if r.status_code >= 400:
                    body = (await r.aread())[:500].decode("utf-8", "replace")
                    await self._fail(request_id, f"HTTP {r.status_code}: {body}")
                    return
                if "text/event-stream" in kind:
                    await self._events(r.aiter_lines())
                else:
                    await self._deliver(await r.aread())
            if isinstance(message, dict) and message.get("method") == "notifications/initialized":
                self._listen()
        except (httpx.HTTPError, OSError) as e:
            await self._fail(request_id, f"{type(e).__name__}: {e}")

    async def _events(self, lines):
        data = []
        async for text in lines:
            if text.startswith("data:"):
                data.append(text[5:].lstrip())
            elif text == "" and data:
                await self._deliver("\n".join(data).encode("utf-8"))
                data = []
        if data:
            await self._deliver("\n".join(data).encode("utf-8"))

    async def _deliver(self, body):
        body = body.strip()
        if body and self.on_line is not None:
            await self.on_line(body + b"\n")

    async def _fail(self, request_id, why):
        if request_id is not None and self.on_line is not None:
            await self.on_line(results.encode(results.error(
                request_id, results.INTERNAL_ERROR,
                f"drygate: the MCP server at {self.url} could not be reached ({why}); the request was not "
                f"completed")))

    def _listen(self):
        """Open the GET event stream once, for what the server sends on its own (if it offers one)."""
        if self._listening:
            return
        self._listening = True

        async def listen():
            import httpx

            headers = {"Accept": "text/event-stream", **self.headers}
            if self.session_id:
                headers["Mcp-Session-Id"] = self.session_id
            try:
                async with self.client.stream("GET", self.url, headers=headers,
                                              timeout=httpx.Timeout(None, connect=10.0)) as r:
                    if r.status_code == 200 and "text/event-stream" in r.headers.get("content-type", ""):
                        await self._events(r.aiter_lines())
            except (httpx.HTTPError, OSError):
                pass

        task = asyncio.ensure_future(listen())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self):
        for task in list(self.tasks):
            task.cancel()
        if self.client is not None:
            if self.session_id:
                try:
                    await self.client.delete(self.url, headers={"Mcp-Session-Id": self.session_id, **self.headers})
                except Exception:
                    pass
            await self.client.aclose()
            self.client = None
