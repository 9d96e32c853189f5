"""The relay: forward JSON-RPC lines, decide ``tools/call``.

Messages are forwarded as the bytes they arrived as; only these are read:

- client ``initialize`` and ``notifications/initialized`` (kept to replay to a
  restarted server), every client request id (so a dying server's pending calls
  get an error instead of a hang), client ``tools/call`` (decided);
- server responses to ``tools/list`` (the tools' annotations and output schemas
  feed the decision), and results carrying the server identity stamp (removed).

Decisions are made on the event loop, one at a time (the store is only ever used
from that thread): the SQLite transition takes about 0.2 ms, and a thread hop per
call would cost as much again (bench/relay_overhead.py). Each decision's latency is
added to the state store's counters (drygate.counters), batched: at most one
``add_counters`` per second, from the loop, so relays and hook processes meet in one
fleet-wide histogram (drygate.metrics) without a store write per call. While the store is locked
(a fault) the relay waits at most the gate's deadline before it answers with a
guard failure, and other traffic waits with it. What a live write returned is
journaled after its answer is on its way to the client. A gate failure answers the
call with an error result and an alert and never forwards it.
"""

import asyncio
import json
import os
import sys
import uuid

from drygate.relay import results
from drygate.relay.downstream import LINE_LIMIT, REPLAY_ID, Downstream  # noqa: F401 (REPLAY_ID: re-exported)

HOST = "mcp-relay"


#: Seconds between two latency records a relay adds to the store (at most).
LATENCY_FLUSH_S = 1.0


class RelayGate:
    """The gate for one relay: policy reloaded when the file changes, one open store."""

    def __init__(self, settings):
        self.settings = settings
        self.gate = None
        self.policy_hash = None
        self.policy_stat = None
        self.latency = {}  # counters not yet added to the store (drygate.counters)
        self._flush_handle = None

    def decide(self, call):
        """Decide ``call`` with :meth:`current` and record the decision's latency.

        Raises GuardFailure like :meth:`drygate.gate.Gate.decide`; a failed decision
        is not a latency sample (it is a guard failure, counted from the alert log).
        """
        import time

        from drygate.counters import latency_increments, merge

        start = time.perf_counter()
        decision = self.current().decide(call)
        merge(self.latency, latency_increments(HOST, time.perf_counter() - start))
        if self._flush_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()  # no loop (a direct caller): record now
            else:
                self._flush_handle = loop.call_later(LATENCY_FLUSH_S, self.flush)
        return decision

    def flush(self):
        """Add the pending latency counters to the store; best effort (lost on failure)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        pending, self.latency = self.latency, {}
        if pending and self.gate is not None:
            try:
                self.gate.store.add_counters(pending)
            except Exception:
                pass  # statistics: the decisions themselves were journaled

    def current(self):
        """A :class:`drygate.gate.Gate` for the current policy. Raises GuardFailure.

        The policy file is only stat()ed per call; it is read again when it changes.
        """
        try:
            st = os.stat(self.settings.policy_path)
            stat = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stat = None  # Gate.open below reports the missing policy
        if self.gate is not None and stat is not None and stat == self.policy_stat:
            return self.gate
        from drygate.gate import Gate

        # Raises on a missing or corrupt policy; the stat is only remembered once the
        # gate opened, so every call fails closed until the file is mended.
        gate = Gate.open(self.settings, HOST)
        if self.gate is not None and gate.policy["hash"] == self.policy_hash:
            gate.close()  # touched but not changed: keep the open gate
        else:
            if self.gate is not None:
                self.gate.close()
            self.gate, self.policy_hash = gate, gate.policy["hash"]
        self.policy_stat = stat
        return self.gate


class ClientSide:
    """What a relay and an aggregating relay share: writing to the client (``sink``, else
    ``out``, one message at a time) and asking whether a run is dry (``gate``)."""

    async def _to_client(self, data):
        if self.sink is not None:
            await self.sink(data)
            return
        async with self._out_lock:
            self.out.write(data)
            self.out.flush()

    def _run_is_dry(self, run_id):
        run = self.gate.current().store.get_run(run_id)
        return run is not None and run.is_dry


class Relay(ClientSide):
    """One client connection over stdio, one downstream server.

    ``settings``: drygate.config.Settings; ``server``: the server's name as the agent
    sees it (tools are decided as ``mcp__<server>__<tool>``); ``command``: argv of the
    real server, or ``url``: its streamable HTTP endpoint; ``run_id``: the run this
    connection belongs to; ``shadow``: a :class:`drygate.overlay.shadow.ShadowConfig` naming
    the server's local state, so a dry run's calls go to a shadow server on a copy of it
    (drygate.relay.shadow), or None.
    """

    def __init__(self, settings, server, command, run_id, out=None, url=None, headers=None, shadow=None):
        self.settings = settings
        self.server = server
        self.out = out or sys.stdout.buffer
        self.sink = None  # a coroutine taking each outgoing line instead of ``out`` (the HTTP front)
        self.gate = RelayGate(settings)
        self.runs = RunIdentity(run_id, is_dry=self._run_is_dry)
        self.tools = {}  # tool name -> {"annotations": ..., "outputSchema": ...}
        self.pending = {}  # request id (json) -> method, for requests forwarded to the server
        self.calls = {}  # request id -> (tool, call id, run id, effect) of a forwarded tools/call
        if url:
            from drygate.relay.http_downstream import HttpDownstream

            self.downstream = HttpDownstream(url, headers, on_line=self._from_server, on_exit=self._server_exited)
        else:
            self.downstream = Downstream(command, os.environ.copy(), self._from_server, self._server_exited)
        self._out_lock = asyncio.Lock()
        self.internal = {}  # id of a request the relay sent itself -> Future of its response
        self._listed_at = None  # when the relay last listed the server's tools itself
        self.server_info = None  # the server's serverInfo from its initialize answer
        self._catalog_journaled = None
        from drygate.relay.overlays import OverlayRoute

        self.overlays = OverlayRoute(self)  # the policy's store overlays of this server (drygate.relay.overlays)
        self.shadows = None
        if shadow is not None and shadow.paths:
            from drygate.overlay.shadow import shadow_root
            from drygate.relay.shadow import ShadowRoute

            self.shadows = ShadowRoute(self, shadow, shadow_root(settings.project_dir))

    # -- server -> client --------------------------------------------------------------------
    async def _from_server(self, line):
        text = line.strip()
        if not text:
            return
        message = None
        if text[:1] == b"{" and (b'"id"' in text):
            try:
                message = json.loads(text)
            except ValueError:
                message = None
        if isinstance(message, dict) and "method" not in message and "id" in message:
            future = self.internal.pop(_id_key(message["id"]), None)
            if future is not None:
                if not future.done():
                    future.set_result(message)
                return
            key = _id_key(message["id"])
            method = self.pending.pop(key, None)
            if method == "tools/list" and isinstance(message.get("result"), dict):
                self._learn_tools(message["result"])
            if method == "initialize" and isinstance(message.get("result"), dict):
                info = message["result"].get("serverInfo")
                self.server_info = info if isinstance(info, dict) else None
            tool = self.calls.pop(key, None) if method == "tools/call" else None
            if message["id"] == REPLAY_ID:
                return  # the answer to a replayed initialize: the client already has one
            if results.SERVER_INFO_META.encode() in text:
                stripped = results.without_server_info(message)
                if stripped is not message:
                    message = stripped
                    line = results.encode(message)
            if tool is not None and self.shadows is not None and self.shadows.stale:
                marked = self.shadows.mark_real(key, message)  # a real read that misses the run's dry writes
                if marked is not message:
                    line = results.encode(marked)
            await self._to_client(line if line.endswith(b"\n") else line + b"\n")
            if tool is not None:
                self._journal_result(message, tool)  # after the client has its answer
            return
        await self._to_client(line if line.endswith(b"\n") else line + b"\n")

    def _learn_tools(self, result):
        from drygate.plan.fingerprint import tool_fingerprint

        for tool in result.get("tools") or []:
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                self.tools[tool["name"]] = {"annotations": tool.get("annotations") or {},
                                            "outputSchema": tool.get("outputSchema"),
                                            "fingerprint": tool_fingerprint(tool)}
        self._journal_catalog()

    def _journal_catalog(self):
        """Journal the tools and server this run saw (the plan's basis), when they change."""
        import time

        catalog = {"server": self.server, "server_info": self.server_info,
                   "tools": {name: {"fingerprint": t.get("fingerprint"), "annotations": t.get("annotations")}
                             for name, t in sorted(self.tools.items())}}
        if catalog == self._catalog_journaled or not self.tools:
            return
        try:
            # The last gate that loaded; a policy broken right now is the decisions' guard
            # failure, reported there, not this record's.
            gate = self.gate.gate or self.gate.current()
            gate.store.record_result(self.runs.run_id, None, CATALOG_PREFIX + self.server, catalog,
                                               time.time())
            self._catalog_journaled = catalog
        except Exception:  # pragma: no cover - the basis is then incomplete: apply lists it as unchecked
            pass

    async def _list_tools_itself(self, meta):
        """Learn the server's tools (annotations, output schemas) by asking it directly.

        For a call to a tool the client never listed through the relay (a cached list,
        a reconnect). At most once per second; pages are followed; failures are ignored
        (the call is then decided without annotations, which is the stricter way).
        """
        import time

        now = time.monotonic()
        if self._listed_at is not None and now - self._listed_at < 1.0:
            return
        self._listed_at = now
        cursor = None
        loop = asyncio.get_running_loop()
        for _page in range(20):
            request_id = f"drygate-tools-list-{uuid.uuid4()}"
            params = {"_meta": meta} if meta else {}
            if cursor:
                params["cursor"] = cursor
            future = loop.create_future()
            self.internal[_id_key(request_id)] = future
            try:
                await self.downstream.send(results.encode({"jsonrpc": "2.0", "id": request_id,
                                                           "method": "tools/list", "params": params}))
                answer = await asyncio.wait_for(future, 2.0)
            except (ConnectionError, asyncio.TimeoutError):
                self.internal.pop(_id_key(request_id), None)
                return
            result = answer.get("result")
            if not isinstance(result, dict):
                return
            self._learn_tools(result)
            cursor = result.get("nextCursor")
            if not cursor:
                return

    def _journal_result(self, message, forwarded):
        """Journal what a live call returned (the store is only ever used from the loop).

        ``forwarded``: ``(tool name as the server knows it, call id, run id, effect)``. A
        write's result is journaled (cut to 64 KB); a read's only as its fingerprint and
        size, the plan's basis (drygate.plan.fingerprint), so large reads cost the journal
        little. The gate that decided the call journals it (a policy broken since is the
        next decision's guard failure); a write's result that cannot be journaled raises
        an alert, a read's does not (the plan then lists it as not re-checked).
        """
        import time

        from drygate.plan.fingerprint import result_fingerprint

        tool, call_id, run_id, effect = forwarded
        result = message.get("result", message.get("error"))
        text = json.dumps(result)
        if effect in ("read", "bookkeeping"):
            result = {"read_fingerprint": result_fingerprint(result) if "result" in message else None,
                      "bytes": len(text), "error": "error" in message}
        elif len(text) > 64 * 1024:
            result = {"truncated": True, "chars": len(text), "head": text[:64 * 1024]}
        try:
            gate = self.gate.gate or self.gate.current()
            gate.store.record_result(run_id, call_id, _qualified(self.server, tool), result, time.time())
        except Exception as e:  # the call already ran: report, never fail the client
            if effect not in ("read", "bookkeeping"):
                self._report_failure(e, tool, run_id, call_id)

    async def _server_exited(self, code):
        for key in list(self.pending):
            self.pending.pop(key, None)
            self.calls.pop(key, None)
            await self._to_client(results.encode(results.error(
                json.loads(key), results.INTERNAL_ERROR,
                f"drygate: the MCP server {self.server!r} exited (status {code}) before answering; "
                f"it is being restarted. A tools/call may or may not have run.")))

    # -- client -> server --------------------------------------------------------------------
    async def handle_client_line(self, line):
        """Decide or forward one message from the client.

        The client's bytes are never forwarded: the parsed message is encoded again
        (:func:`drygate.relay.results.encode`), so what the server reads is exactly
        what the relay decided on. Raw bytes could hold a second message after a
        character the relay's parser takes for whitespace and the server's reader
        for a line break (a lone CR), and that message would bypass the gate.
        """
        text = line.strip()
        if not text:
            return
        try:
            message = results.decode(text)
            line = results.encode(message)
        except (ValueError, UnicodeDecodeError, RecursionError):
            await self._to_client(results.encode(results.error(None, results.PARSE_ERROR,
                                                               "Parse error: not a JSON message")))
            return
        if isinstance(message, list):
            await self._batch(message, line)
            return
        if not isinstance(message, dict) or ("method" in message and not isinstance(message["method"], str)):
            await self._to_client(results.encode(results.error(
                message.get("id") if isinstance(message, dict) else None, results.INVALID_REQUEST,
                "Invalid Request")))
            return
        if isinstance(message.get("id"), float):
            if not message["id"].is_integer():
                await self._to_client(results.encode(results.error(
                    None, results.INVALID_REQUEST, "Invalid Request: an id must be a string or an integer")))
                return
            message["id"] = int(message["id"])  # 2.0 is 2 (servers answer it as 2, or not at all)
            line = results.encode(message)
        method = message.get("method")
        if method == "tools/call" and "id" in message:
            await self._tools_call(message, line)
            return
        if method == "initialize" and "id" in message:
            replay = dict(message, id=REPLAY_ID)
            self.downstream.replay = [results.encode(replay)] + self.downstream.replay[1:]
        elif method == "notifications/initialized":
            self.downstream.replay = self.downstream.replay[:1] + [line]
        if self.shadows is not None and await self.shadows.client_message(message):
            return  # to the run's shadow server (or an answer to a request it sent)
        if method is not None and "id" in message:
            self.pending[_id_key(message["id"])] = method
        await self._forward(line, message)

    async def _forward(self, line, message):
        try:
            await self.downstream.send(line if line.endswith(b"\n") else line + b"\n")
        except ConnectionError as e:
            if isinstance(message, dict) and "id" in message and "method" in message:
                self.pending.pop(_id_key(message["id"]), None)
                self.calls.pop(_id_key(message["id"]), None)
                await self._to_client(results.encode(results.error(
                    message["id"], results.INTERNAL_ERROR, f"drygate: the MCP server {self.server!r} is not "
                                                           f"running ({e}); the request was not delivered")))

    async def _batch(self, messages, line):
        if any(isinstance(m, dict) and m.get("method") == "tools/call" for m in messages):
            for m in messages:
                if isinstance(m, dict) and "id" in m and "method" in m:
                    await self._to_client(results.encode(results.error(
                        m["id"], results.INVALID_REQUEST,
                        "drygate: tools/call in a JSON-RPC batch is not relayed; send calls one by one")))
            return
        if self.shadows is not None and await self.shadows.batch(messages):
            return
        for m in messages:
            if isinstance(m, dict) and "id" in m and "method" in m:
                self.pending[_id_key(m["id"])] = m["method"]
        await self._forward(line, None)

    async def _tools_call(self, message, line):
        request_id = message["id"]
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        tool = params.get("name")
        arguments = params.get("arguments") if isinstance(params.get("arguments"), dict) else {}
        meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}
        modern = results.PROTOCOL_VERSION_META in meta
        if isinstance(tool, str) and tool not in self.tools:
            await self._list_tools_itself({k: v for k, v in meta.items() if k.startswith("io.modelcontextprotocol/")})
        run_id = self.runs.run_id
        try:
            run_id = self.runs.run_for(meta)
            decision = self._decide(tool, arguments, run_id, str(request_id))
            routed = decision.action in ("allow", "dry") and \
                await self.overlays.tools_call(message, decision, run_id, tool, modern)
            if routed is True:
                return  # a store tool in a dry run: the run's overlay answers, marked as simulated
            if not routed and self.shadows is not None and decision.action in ("allow", "dry") and \
                    await self.shadows.tools_call(message, decision, run_id, tool, modern):
                return  # a dry run's call: the shadow server answers, marked as simulated
        except Exception as e:  # any failure of the gate: block, answer, alert
            why = self._report_failure(e, tool, run_id, str(request_id))
            await self._to_client(results.encode(results.guard_failure(request_id, why, modern)))
            return
        if self._catalog_journaled is None:
            self._journal_catalog()  # tools listed before the gate could record them
        if decision.action == "allow":
            key = _id_key(request_id)
            self.pending[key] = "tools/call"
            # Journal what the live call returned: a write's result, a read's fingerprint (basis).
            self.calls[key] = (tool, str(request_id), run_id, decision.effect)
            await self._forward(line, message)
            return
        schema = (self.tools.get(tool) or {}).get("outputSchema") if isinstance(tool, str) else None
        await self._to_client(results.encode(results.not_executed(request_id, decision, tool, schema, modern)))

    def _decide(self, tool, arguments, run_id, call_id):
        from drygate.errors import InputError
        from drygate.types import ToolCall

        if not isinstance(tool, str) or not tool:
            raise InputError("tools/call without a tool name")
        info = self.tools.get(tool) or {}
        call = ToolCall(_qualified(self.server, tool), arguments, run_id, call_id, None,
                        self.settings.project_dir, HOST, info.get("annotations"))
        return self.gate.decide(call)

    def _report_failure(self, error, tool, run_id, call_id):
        from drygate.gate import report_guard_failure
        from drygate.types import ToolCall

        call = ToolCall(_qualified(self.server, tool) if isinstance(tool, str) else None, None, run_id, call_id)
        policy = self.gate.gate.policy if self.gate.gate is not None else None
        return report_guard_failure(self.settings, policy, error, call, HOST)

    # -- lifetime -----------------------------------------------------------------------------
    async def start(self):
        await self.downstream.start()

    async def close(self):
        self.gate.flush()
        await self.downstream.close()
        await self.overlays.close()
        if self.shadows is not None:
            await self.shadows.close()

    async def serve(self, reader):
        """Serve the client on ``reader`` (an asyncio StreamReader) until it closes."""
        await self.downstream.start()
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:
                    await self._to_client(results.encode(results.error(None, results.PARSE_ERROR,
                                                                       "Parse error: message too large")))
                    continue
                if not line:
                    break
                await self.handle_client_line(line)
        finally:
            self.gate.flush()
            await self.downstream.close()
            await self.overlays.close()
            if self.shadows is not None:
                await self.shadows.close()


class RunIdentity:
    """Which run a connection's calls belong to.

    The relay's own run (DRYGATE_RUN_ID, Claude Code's session, or one per
    connection) unless the client names another in ``_meta["drygate/run_id"]``. A
    client may join a run only before the connection's first call is decided, only
    when the operator did not fix the run (DRYGATE_RUN_ID), and never away from a
    run that is already dry (a reconnect of a session that went dry): naming a run
    can join stickiness, never leave it.
    """

    META_KEY = "drygate/run_id"

    def __init__(self, run_id, fixed=None, is_dry=None):
        self.run_id = run_id
        self.fixed = bool(os.environ.get("DRYGATE_RUN_ID")) if fixed is None else fixed
        self.is_dry = is_dry or (lambda run_id: False)
        self.decided = False

    def run_for(self, meta):
        """The run for a call whose request ``_meta`` is ``meta`` (dict). May raise GuardFailure."""
        named = meta.get(self.META_KEY) if isinstance(meta, dict) else None
        if (isinstance(named, str) and named and named != self.run_id and not self.fixed and not self.decided
                and not self.is_dry(self.run_id)):
            self.run_id = named
        self.decided = True
        return self.run_id


#: Journal entries (kind "result") whose tool name starts with this hold the tools and
#: server a run saw through the relay: ``{"server", "server_info", "tools": {name:
#: {"fingerprint", "annotations"}}}``, the plan's basis (drygate.plan.artifact).
CATALOG_PREFIX = "drygate/catalog/"


def _id_key(request_id):
    """A request id as a dict key, the way servers echo it (2.0 comes back as 2)."""
    if isinstance(request_id, float) and request_id.is_integer():
        request_id = int(request_id)
    return json.dumps(request_id, sort_keys=True)


def _qualified(server, tool):
    return f"mcp__{server}__{tool}"


def run_id_from_env(env):
    """The run a relay joins: DRYGATE_RUN_ID, else Claude Code's session, else a new one."""
    return env.get("DRYGATE_RUN_ID") or env.get("CLAUDE_CODE_SESSION_ID") or f"mcp-{uuid.uuid4()}"


def main(argv=None):
    """``drygate mcp --name SERVER [--project DIR] [--shadow PATH...] -- COMMAND...``; returns an exit status."""
    import argparse

    parser = argparse.ArgumentParser(prog="drygate mcp", description="Run an MCP server behind the drygate relay.")
    parser.add_argument("--name", default=None, help="the server's name as the agent sees it (mcp__NAME__tool)")
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="several servers behind one relay, from an mcpServers JSON file")
    parser.add_argument("--project", default=None, help="project folder (policy and state)")
    parser.add_argument("--http", default=None, metavar="[HOST:]PORT",
                        help="serve streamable HTTP on this address (default host 127.0.0.1) instead of stdio")
    parser.add_argument("--url", default=None, help="the MCP server's streamable HTTP endpoint (instead of a command)")
    parser.add_argument("--header", action="append", default=[], metavar="NAME: VALUE",
                        help="an HTTP header for the --url server (repeatable); for credentials prefer the "
                             "DRYGATE_MCP_HEADERS environment variable (a JSON object): arguments show in `ps`")
    parser.add_argument("--metrics", default=None, metavar="[HOST:]PORT",
                        help="also serve Prometheus metrics of the gate's health on this address (default host "
                             "127.0.0.1); with --http they are at /metrics on the relay's own address as well")
    parser.add_argument("--shadow", action="append", default=[], metavar="PATH",
                        help="the server's local state (a folder, a SQLite file, a JSONL file, a git repository; "
                             "repeatable): a dry run's calls go to a second instance of the server on the run's own "
                             "copy of it, so the run reads its own writes (drygate.relay.shadow)")
    parser.add_argument("--shadow-max-mb", type=float, default=None, metavar="MB",
                        help="largest state copied for a shadow (default 1024); a larger one gives plain dry results")
    parser.add_argument("--shadow-allow-network", action="store_true",
                        help="let the shadow server use the network (by default it runs in a network namespace of "
                             "its own): only for a server whose every effect is on the --shadow paths")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- followed by the MCP server's command")
    args = parser.parse_args(sys.argv[2:] if argv is None else argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if (args.shadow or args.shadow_max_mb is not None or args.shadow_allow_network) and (args.config or args.url):
        parser.error("--shadow needs a server started by the relay (a command after --), not --config or --url")
    if args.shadow_max_mb is not None and not args.shadow_max_mb > 0:
        parser.error("--shadow-max-mb must be a positive number")
    if args.config:
        if command or args.url or args.name:
            parser.error("--config names its servers itself: no --name, --url or command")
    elif bool(command) == bool(args.url):
        parser.error("give either the MCP server's command after --, or --url")
    elif not args.name:
        parser.error("--name is required")
    from drygate.config import resolve

    settings = resolve(os.environ, project_dir=args.project)
    if args.config:
        from drygate.relay.aggregate import Aggregator, load_config

        try:
            servers = load_config(args.config)
        except (OSError, ValueError) as e:
            parser.error(str(e))
        relay = Aggregator(settings, servers, run_id_from_env(os.environ))
        relay.server = "+".join(servers)
    else:
        headers = {}
        if os.environ.get("DRYGATE_MCP_HEADERS"):
            try:
                headers = dict(json.loads(os.environ["DRYGATE_MCP_HEADERS"]))
            except (ValueError, TypeError):
                parser.error("DRYGATE_MCP_HEADERS must be a JSON object of header names and values")
        for header in args.header:
            name, sep, value = header.partition(":")
            if not sep or not name.strip():
                parser.error(f"--header wants 'NAME: VALUE', not {header!r}")
            headers[name.strip()] = value.strip()
        shadow = None
        if args.shadow:
            from drygate.overlay.shadow import DEFAULT_MAX_BYTES, ShadowConfig

            max_bytes = DEFAULT_MAX_BYTES if args.shadow_max_mb is None else int(args.shadow_max_mb * 1048576)
            shadow = ShadowConfig(args.shadow, max_bytes, network=args.shadow_allow_network)
        relay = Relay(settings, args.name, command, run_id_from_env(os.environ), url=args.url, headers=headers,
                      shadow=shadow)
    if args.metrics:
        from drygate.metrics import make_registry, serve_in_thread
        from drygate.relay.http import parse_address

        try:
            host, port = parse_address(args.metrics)
        except ValueError:
            parser.error(f"--metrics wants [HOST:]PORT, not {args.metrics!r}")
        try:
            server = serve_in_thread(make_registry(settings), host, port)
        except OSError as e:
            parser.error(f"--metrics: cannot listen on {host}:{port}: {e.strerror or e}")
        sys.stderr.write(f"drygate mcp: metrics on http://{host}:{server.server_port}/metrics\n")
        sys.stderr.flush()
    if args.http:
        from drygate.relay.http import parse_address, serve_http

        try:
            host, port = parse_address(args.http)
        except ValueError:
            parser.error(f"--http wants [HOST:]PORT, not {args.http!r}")
        asyncio.run(serve_http(relay, host, port))
        return 0
    # stdout carries the protocol and nothing else: anything else printed goes to stderr.
    protocol_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    relay.out = protocol_out

    async def run():
        loop = asyncio.get_running_loop()
        if getattr(relay, "shadows", None) is not None:
            # A host that ends the relay with SIGTERM or SIGHUP still gets the run's shadows removed
            # (serve's cleanup runs); SIGKILL leaves them to `drygate prune`.
            import signal

            task = asyncio.current_task()
            for sig in (signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(sig, task.cancel)
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        await relay.serve(reader)

    try:
        asyncio.run(run())
    except asyncio.CancelledError:
        return 128 + 15  # ended by a signal, after cleaning up
    return 0
