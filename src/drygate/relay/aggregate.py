"""Several MCP servers behind one relay: ``drygate mcp --config servers.json``.

The config has the common ``{"mcpServers": {NAME: {"command", "args", "env"} |
{"type": "http", "url"}}}`` shape. The client sees one MCP server whose tools,
resources and prompts are those of all the servers:

- ``initialize`` goes to every server; the answer merges their capabilities and names
  the relay as the server. The relay speaks the handshake era to the client (it
  answers ``server/discover`` "method not found", as a handshake-era server does, and
  clients fall back), because servers behind it may speak only that era;
- ``tools/list``, ``resources/list``, ``resources/templates/list``, ``prompts/list``
  are merged (every page of every server is read); names stay as each server gives
  them, except that a name a server earlier in the config already uses gets the
  prefix ``<server>__``;
- ``tools/call`` is routed by tool name and decided as ``mcp__<server>__<tool>`` like
  the single-server relay; ``resources/read``/``subscribe`` by URI, ``prompts/get``
  and ``completion/complete`` by name; cancellations follow their request;
- requests a server sends the client (sampling, elicitation, roots) get ids of the
  form ``"<server>:<id>"`` so the client's answer finds its way back;
- everything else (notifications, progress, logging) passes unchanged.
"""

import asyncio
import json
import os

from drygate.relay import results
from drygate.relay.core import ClientSide, RelayGate, not_executed_error
from drygate.relay.identity import RunIdentity
from drygate.relay.protocol import DROP, REPLAY_ID, OwnRequests, decided_name, id_key, is_method_name, rule_of

_MERGED_LISTS = {"tools/list": "tools", "resources/list": "resources",
                 "resources/templates/list": "resourceTemplates", "prompts/list": "prompts"}


class Lane:
    """One server behind the aggregating relay."""

    def __init__(self, name, downstream):
        self.name = name
        self.downstream = downstream
        self.tools = {}  # real tool name -> {"annotations", "outputSchema"}


def load_config(path):
    """``{name: entry}`` from an mcpServers file. Raises ValueError with the reason."""
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    servers = config.get("mcpServers") if isinstance(config, dict) else None
    if not isinstance(servers, dict) or not servers:
        raise ValueError(f"{path}: expected {{\"mcpServers\": {{...}}}} with at least one server")
    for name, entry in servers.items():
        if not isinstance(entry, dict) or not (entry.get("command") or entry.get("url")):
            raise ValueError(f"{path}: server {name!r} needs a command or a url")
    return servers


class Aggregator(ClientSide):
    """The client connection of an aggregating relay (see module docstring)."""

    def __init__(self, settings, servers, run_id, out=None, fixed_run=None):
        from drygate.relay.downstream import Downstream
        from drygate.relay.http_downstream import HttpDownstream

        self.settings = settings
        self.out = out
        self.sink = None
        self.gate = RelayGate(settings)
        self.runs = RunIdentity(run_id, fixed=fixed_run, is_dry=self.run_is_dry)
        self.server = "+".join(servers)
        self.lanes = {}
        for name, entry in servers.items():
            lane = Lane(name, None)
            on_line = self._on_line_for(lane)
            on_exit = self._on_exit_for(lane)
            if entry.get("url"):
                lane.downstream = HttpDownstream(entry["url"], entry.get("headers"), on_line, on_exit)
            else:
                env = dict(os.environ, **{k: str(v) for k, v in (entry.get("env") or {}).items()})
                lane.downstream = Downstream([entry["command"], *map(str, entry.get("args") or [])], env, on_line,
                                             on_exit)
            self.lanes[name] = lane
        self.own = OwnRequests()  # requests the relay sent a server itself
        self.routed = {}  # client request id key -> lane name
        self.exposed = {"tools": {}, "prompts": {}}  # exposed name -> (lane, real name)
        self.uris = {}  # resource uri -> lane name
        self._out_lock = asyncio.Lock()
        self.start_error = None  # why a server could not start (answered to every request)

    # -- output --------------------------------------------------------------------------------
    async def _reply(self, request_id, result):
        await self.send_to_client(results.encode({"jsonrpc": "2.0", "id": request_id, "result": result}))

    async def _error(self, request_id, code, message):
        await self.send_to_client(results.encode(results.error(request_id, code, message)))

    # -- servers -> client -----------------------------------------------------------------------
    def _on_line_for(self, lane):
        async def on_line(line):
            try:
                message = json.loads(line)
            except ValueError:
                return  # not JSON-RPC: nothing to route
            if not isinstance(message, dict):
                return
            if "method" not in message and "id" in message:
                if self.own.take(message):
                    return  # the answer to the relay's own request (late ones too): never the client's
                if message["id"] == REPLAY_ID:
                    return
                if self.routed.pop(id_key(message["id"]), None) is None:
                    return  # no request of the client's has this id: never an unsolicited response
                stripped = results.without_server_info(message)
                if stripped is not message:
                    line = results.encode(stripped)
                await self.send_to_client(line if line.endswith(b"\n") else line + b"\n")
            elif "method" in message and "id" in message:
                message["id"] = f"{lane.name}:{json.dumps(message['id'])}"
                await self.send_to_client(results.encode(message))
            else:
                await self.send_to_client(line if line.endswith(b"\n") else line + b"\n")
        return on_line

    def _on_exit_for(self, lane):
        async def on_exit(code):
            for key, name in list(self.routed.items()):
                if name == lane.name:
                    self.routed.pop(key, None)
                    await self._error(json.loads(key), results.INTERNAL_ERROR,
                                      f"drygate: the MCP server {lane.name!r} exited (status {code}) before "
                                      f"answering; it is being restarted. A tools/call may or may not have run.")
        return on_exit

    async def _ask(self, lane, method, params, timeout=30.0):
        """Send our own request to one server and wait for its response message."""
        request_id, future = self.own.new("drygate")
        try:
            await lane.downstream.send(results.encode({"jsonrpc": "2.0", "id": request_id, "method": method,
                                                       "params": params}))
            return await asyncio.wait_for(future, timeout)
        except (ConnectionError, asyncio.TimeoutError) as e:
            self.own.forget(request_id)  # a late answer is dropped, never forwarded
            return {"error": {"code": results.INTERNAL_ERROR, "message": f"{lane.name}: {e}"}}

    # -- client -> servers -----------------------------------------------------------------------
    async def handle_client_line(self, line):
        """Route one message from the client; its bytes are never forwarded as they came
        (see :meth:`drygate.relay.core.Relay.handle_client_line`)."""
        try:
            message = results.decode(line)
            line = results.encode(message)
        except (ValueError, UnicodeDecodeError, RecursionError):
            await self._error(None, results.PARSE_ERROR, "Parse error: not a JSON message")
            return
        if not isinstance(message, dict) or ("method" in message and not isinstance(message["method"], str)):
            await self._error(message.get("id") if isinstance(message, dict) else None, results.INVALID_REQUEST,
                              "drygate: one JSON-RPC message per line with a string method, no batches")
            return
        if isinstance(message.get("id"), float):
            if not message["id"].is_integer():
                await self._error(None, results.INVALID_REQUEST, "an id must be a string or an integer")
                return
            message["id"] = int(message["id"])
            line = results.encode(message)
        method = message.get("method")
        if self.start_error is not None:
            if method is not None and "id" in message:
                await self._error(message["id"], results.INTERNAL_ERROR, self.start_error)
            return
        rule = rule_of(message)
        if rule == DROP:
            self.report_bypass(message)
            return
        try:
            if method is None and "id" in message:
                await self._answer_from_client(message)
            elif method is not None and "id" not in message:
                await self._notification(message, line)
            elif method is not None:
                await self._request(message, line)
        except (TypeError, ValueError, AttributeError, KeyError) as e:  # malformed params: answer, keep serving
            if "id" in message and method is not None:
                await self._error(message["id"], -32602, f"drygate: invalid params ({type(e).__name__}: {e})")

    async def _answer_from_client(self, message):
        lane_name, _, original = str(message["id"]).partition(":")
        lane = self.lanes.get(lane_name)
        if lane is None or not original:
            return
        try:
            message["id"] = results.decode(original)
        except ValueError:
            return  # not an id this relay gave out
        await lane.downstream.send(results.encode(message))

    async def _notification(self, message, line):
        if message["method"] == "notifications/cancelled":
            params = message.get("params") or {}
            lane = self.lanes.get(self.routed.get(id_key(params.get("requestId")), ""))
            if lane is not None:
                await lane.downstream.send(line)
            return
        if message["method"] == "notifications/initialized":
            for lane in self.lanes.values():
                lane.downstream.replay = lane.downstream.replay[:1] + [results.encode(message)]
        for lane in self.lanes.values():
            try:
                await lane.downstream.send(line)
            except ConnectionError:
                pass

    async def _request(self, message, line):
        method, request_id = message["method"], message["id"]
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        if method == "server/discover":
            # One era towards the client for all servers: the handshake, which every server
            # speaks; a 2026-07-28 client falls back to initialize on "method not found".
            await self._error(request_id, -32601, "Method not found")
        elif method == "initialize":
            await self._initialize(message, params)
        elif method == "ping":
            await self._reply(request_id, {})
        elif method in _MERGED_LISTS:
            await self._merged_list(method, request_id, params)
        elif method == "tools/call":
            await self._tools_call(message, params)
        elif method in ("resources/read", "resources/subscribe", "resources/unsubscribe"):
            await self._decided_route(self.uris.get(params.get("uri")), message, f"no server lists the resource "
                                                                                  f"{params.get('uri')!r}")
        elif method == "prompts/get":
            await self._route_named("prompts", message, params)
        elif method == "completion/complete":
            ref = params.get("ref") if isinstance(params.get("ref"), dict) else {}
            if ref.get("type") == "ref/prompt":
                lane, real = self.exposed["prompts"].get(ref.get("name"), (None, None))
                if lane is not None and real != ref.get("name"):
                    message = dict(message, params=dict(params, ref=dict(ref, name=real)))
                await self._decided_route(lane, message, f"no server has the prompt {ref.get('name')!r}")
            else:
                await self._decided_route(self.uris.get(ref.get("uri")), message, "no server lists that resource")
        elif method == "logging/setLevel":
            await asyncio.gather(*(self._ask(lane, method, params) for lane in self.lanes.values()))
            await self._reply(request_id, {})
        else:  # not sent to any server, so nothing to decide
            await self._error(request_id, -32601, f"drygate: {method} is not relayed to several servers")

    async def _initialize(self, message, params):
        answers = await asyncio.gather(*(self._ask(lane, "initialize", params) for lane in self.lanes.values()))
        merged, capabilities = {}, {}
        for name, answer in zip(self.lanes, answers):
            result = answer.get("result")
            if not isinstance(result, dict):
                await self._error(message["id"], results.INTERNAL_ERROR,
                                  f"drygate: the MCP server {name!r} did not initialize: {answer.get('error')}")
                return
            for key, value in result.items():
                merged.setdefault(key, value)
            for key, value in (result.get("capabilities") or {}).items():
                capabilities[key] = {**(capabilities.get(key) or {}), **(value or {})} if isinstance(value, dict) \
                    else value
        merged["capabilities"] = capabilities
        merged["serverInfo"] = {"name": "drygate-relay", "version": "1",
                                "title": "drygate relay for " + ", ".join(self.lanes)}
        replay = results.encode(dict(message, id=REPLAY_ID))
        for lane in self.lanes.values():
            lane.downstream.replay = [replay] + lane.downstream.replay[1:]
        await self._reply(message["id"], merged)

    async def _merged_list(self, method, request_id, params):
        await self._reply(request_id, await self._collect_list(method, params))

    async def _collect_list(self, method, params):
        """Every page of ``method`` from every server, merged (see module docstring)."""
        key = _MERGED_LISTS[method]
        raw_meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}
        meta = {k: v for k, v in raw_meta.items() if k.startswith("io.modelcontextprotocol/")}
        merged, extra = [], {}
        if key in self.exposed:
            self.exposed[key] = {}
        for lane in self.lanes.values():
            cursor = None
            for _ in range(100):
                page_params = {"_meta": meta} if meta else {}
                if cursor:
                    page_params["cursor"] = cursor
                answer = await self._ask(lane, method, page_params)
                result = answer.get("result")
                if not isinstance(result, dict):
                    break  # a server without this feature: nothing to add
                for k, v in result.items():
                    if k not in (key, "nextCursor", "_meta"):
                        extra.setdefault(k, v)
                for item in result.get(key) or []:
                    merged.append(self._expose(lane, key, item))
                cursor = result.get("nextCursor")
                if not cursor:
                    break
        return {**extra, key: merged}

    def _expose(self, lane, key, item):
        if not isinstance(item, dict):
            return item
        if key == "resources" and isinstance(item.get("uri"), str):
            self.uris.setdefault(item["uri"], lane.name)
        if key not in self.exposed or not isinstance(item.get("name"), str):
            return item
        real = item["name"]
        if key == "tools":
            lane.tools[real] = {"annotations": item.get("annotations") or {}, "outputSchema": item.get("outputSchema")}
        exposed = real if real not in self.exposed[key] else f"{lane.name}__{real}"
        self.exposed[key][exposed] = (lane.name, real)
        return item if exposed == real else dict(item, name=exposed)

    async def _route(self, lane_name, message, missing):
        lane = self.lanes.get(lane_name or "")
        if lane is None:
            await self._error(message["id"], -32602, f"drygate: {missing}")
            return
        self.routed[id_key(message["id"])] = lane.name
        try:
            await lane.downstream.send(results.encode(message))
        except ConnectionError as e:
            self.routed.pop(id_key(message["id"]), None)
            await self._error(message["id"], results.INTERNAL_ERROR, f"drygate: {lane.name!r} is not running ({e})")

    async def _route_named(self, kind, message, params):
        lane, real = self.exposed[kind].get(params.get("name"), (None, None))
        if lane is not None and real != params.get("name"):
            message = dict(message, params=dict(params, name=real))
        await self._decided_route(lane, message, f"no server has the {kind[:-1]} {params.get('name')!r}")

    async def _decided_route(self, lane_name, message, missing):
        """Decide a request other than tools/call under its server's name, then route it (drygate.relay.protocol)."""
        lane = self.lanes.get(lane_name or "")
        if lane is None:
            await self._error(message["id"], -32602, f"drygate: {missing}")
            return
        request_id, method = message["id"], message["method"]
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}
        name, annotations = decided_name(method, params)
        run_id = self.runs.run_id
        try:
            run_id = self.runs.run_for(meta)
            decision = self.decide(lane.name, name, {k: v for k, v in params.items() if k != "_meta"}, run_id,
                                   str(request_id), annotations)
        except Exception as e:  # any failure of the gate: block, answer, alert
            why = self.report_failure(e, name, run_id, str(request_id), server=lane.name)
            await self._error(request_id, results.INTERNAL_ERROR,
                              f"drygate guard failure: {why}. The request was BLOCKED (fail closed) and NOT executed.")
            return
        if decision.action != "allow":
            await self.send_to_client(results.encode(not_executed_error(request_id, decision, method)))
            return
        await self._route(lane.name, message, missing)

    async def _tools_call(self, message, params):
        request_id = message["id"]
        if not isinstance(params.get("name"), str):
            await self.send_to_client(results.encode(results.guard_failure(request_id, "tools/call without a tool name")))
            return
        if not self.exposed["tools"]:
            meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}
            await self._collect_list("tools/list", {"_meta": meta})
        lane_name, real = self.exposed["tools"].get(params.get("name"), (None, None))
        meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}
        modern = results.PROTOCOL_VERSION_META in meta
        run_id = self.runs.run_id
        lane = self.lanes.get(lane_name or "")
        # A tool no server lists is decided under the first server's name: unknown, so a write.
        server = lane.name if lane else next(iter(self.lanes))
        tool = real or params.get("name")
        arguments = params.get("arguments") if isinstance(params.get("arguments"), dict) else {}
        try:
            if isinstance(tool, str) and is_method_name(tool):
                from drygate.errors import InputError

                raise InputError(f"a tool named {tool!r} would be decided under the name of the MCP method")
            run_id = self.runs.run_for(meta)
            info = (lane.tools.get(tool) if lane and isinstance(tool, str) else None) or {}
            decision = self.decide(server, tool, arguments, run_id, str(request_id), info.get("annotations"))
        except Exception as e:  # any failure of the gate: block, answer, alert
            why = self.report_failure(e, tool, run_id, str(request_id), server=server)
            await self.send_to_client(results.encode(results.guard_failure(request_id, why, modern)))
            return
        if decision.action != "allow" or lane is None:
            schema = (lane.tools.get(real) or {}).get("outputSchema") if lane else None
            await self.send_to_client(results.encode(results.not_executed(request_id, decision, tool, schema, modern)))
            return
        forwarded = message if real == params.get("name") else dict(message, params=dict(params, name=real))
        await self._route(lane.name, forwarded, "no such tool")

    # -- lifetime ---------------------------------------------------------------------------------
    async def serve(self, reader):
        """Serve the client on ``reader`` (asyncio StreamReader) until it closes."""
        await self.start()
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:
                    await self._error(None, results.PARSE_ERROR, "Parse error: message too large")
                    continue
                if not line:
                    break
                if line.strip():
                    await self.handle_client_line(line)
        finally:
            await self.close()

    async def start(self):
        """Start every server; one that cannot start sets :attr:`start_error` (see Relay.start)."""
        import sys

        for lane in self.lanes.values():
            try:
                await lane.downstream.start()
            except OSError as e:
                reason = "command not found" if isinstance(e, FileNotFoundError) else (e.strerror or str(e))
                self.start_error = f"drygate: cannot start the MCP server {lane.name!r}: {reason}"
                sys.stderr.write(self.start_error + "\n")
                sys.stderr.flush()

    async def close(self):
        self.gate.flush()
        for lane in self.lanes.values():
            await lane.downstream.close()
