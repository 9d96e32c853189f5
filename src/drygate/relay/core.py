"""The relay: forward JSON-RPC lines, decide every client message that may change the world.

Messages are forwarded as the bytes the relay encoded them to; only these are read:

- every client message, to sort it (drygate.relay.protocol.rule_of): protocol
  messages with no effect on the world are forwarded, ``tools/call`` and every other
  request are decided by the engine (allowed ones forwarded, dry and denied ones
  answered by the relay), notifications of such methods are dropped with an alert;
- client ``initialize`` and ``notifications/initialized`` (kept to replay to a
  restarted server), every client request id (so a dying server's pending calls
  get an error instead of a hang);
- server responses to ``tools/list`` (the tools' annotations and output schemas
  feed the decision), and results carrying the server identity stamp (removed).

Features plug in as :class:`Route` objects (drygate.relay.overlays, drygate.relay.shadow),
the way Starlette middleware wraps an app: the core calls each route's hooks in order
and a route answers a message itself or passes it on. The core imports no feature;
the composition is drygate.relay.main's. Routes use only the core's public methods
(:meth:`Relay.send_to_client`, :meth:`Relay.run_is_dry`, :meth:`Relay.report_failure`,
:meth:`Relay.learn_tools`, :meth:`Relay.ensure_catalog_journaled`) and
drygate.relay.protocol.

Decisions are made on the event loop, one at a time (the store is only ever used
from that thread): the SQLite transition takes about 0.2 ms, and a thread hop per
call would cost as much again (bench/relay_overhead.py). Each decision's latency is
added to the state store's counters (drygate.counters), batched: at most one
``add_counters`` per second, from the loop, so relays and hook processes meet in one
fleet-wide histogram (drygate.metrics) without a store write per call. While the store is locked
(a fault) the relay waits at most the gate's deadline before it answers with a
guard failure, and other traffic waits with it. What a live write returned is
journaled after its answer is on its way to the client. An allowed read of a run the
store knows is journaled once, with its answer, before the client gets it
(drygate.engine.Engine.decide_read; docs/relay.md "How a call is journaled"): a read
that cannot be journaled then has its answer withheld. A gate failure answers the
call with an error result and an alert and never forwards it.
"""

import asyncio
import json
import os
import sys

from drygate.relay import results
from drygate.relay.downstream import Downstream
from drygate.relay.identity import RunIdentity
from drygate.relay.protocol import (
    CATALOG_PREFIX, DECIDE, DROP, HOST, REPLAY_ID, OwnRequests, decided_name, id_key, is_method_name, qualified,
    rule_of)

#: Seconds between two latency records a relay adds to the store (at most).
LATENCY_FLUSH_S = 1.0
#: How long a call waits for the server's tool list it needs to be decided (s).
CATALOG_WAIT_S = 2.0
#: A :meth:`Route.tools_call` answer: send the call to the real server, ask no later route.
TO_REAL = "real"
#: JSON-RPC error code of a decided request other than tools/call that was not executed.
NOT_EXECUTED = -32001
#: How many of the server's own requests (sampling, elicitation, roots) await the client's answer at most.
SERVER_REQUEST_MEMORY = 1024


class Route:
    """A feature of the relay (the plug-in interface). Every hook has a default that passes.

    A route is made with the relay it serves (``route = Kind(relay, ...)``) and added
    with :meth:`Relay.add_route`; the core asks the routes in the order they were added.
    """

    async def tools_call(self, message, decision, run_id, tool, modern):
        """A ``tools/call`` the gate decided ``allow`` or ``dry``: True when this route
        answered it (or sent it elsewhere), :data:`TO_REAL` to send it to the real server
        without asking later routes, False to pass. May raise GuardFailure."""
        return False

    def answers_reads(self, tool):
        """Whether this route may answer an allowed call of ``tool`` (str) itself (a store
        overlay, a shadow server). False lets the relay journal an allowed read together
        with the real server's answer (drygate.engine.Engine.decide_read) instead of
        before asking the routes. The default, True, keeps a route's reads journaled first."""
        return True

    async def decided_request(self, message, decision, run_id):
        """Another decided request (``allow`` or ``dry``), e.g. ``resources/read``: True
        when answered here; False passes (the core forwards an allowed one, answers a
        dry one "not executed")."""
        return False

    async def client_message(self, message):
        """A forwarded client message (protocol, or a response): True when handled here."""
        return False

    async def batch(self, messages):
        """A JSON-RPC batch of forwarded messages: True when handled here."""
        return False

    def from_real(self, key, message):
        """The real server's response (dict) to a forwarded tools/call ``key``; returns it or a marked copy."""
        return message

    def shadow_env(self, network):
        """Environment variables a shadow instance of the server gets from this route (dict)."""
        return {}

    async def close(self):
        """Release what the route holds (called once, when the relay closes)."""


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
        return self._timed(call, False)[0]

    def decide_read(self, call):
        """:meth:`decide`, journaling an allowed read later with its result: returns
        ``(decision, pending)`` (drygate.gate.Gate.decide_read). Raises GuardFailure."""
        return self._timed(call, True)

    def _timed(self, call, read_later):
        import time

        from drygate.counters import latency_increments, merge

        start = time.perf_counter()
        gate = self.current()
        decided = gate.decide_read(call) if read_later else (gate.decide(call), None)
        merge(self.latency, latency_increments(HOST, time.perf_counter() - start))
        if self._flush_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()  # no loop (a direct caller): record now
            else:
                self._flush_handle = loop.call_later(LATENCY_FLUSH_S, self.flush)
        return decided

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
        # integrity="files": a run's settings layers and policy are fingerprinted as the run first
        # sees them; an edit during a run blocks that run (drygate.integrity), a new run takes it.
        gate = Gate.open(self.settings, HOST, integrity="files")
        if self.gate is not None and gate.policy["hash"] == self.policy_hash:
            gate.close()  # touched but not changed: keep the open gate
        else:
            if self.gate is not None:
                self.gate.close()
            self.gate, self.policy_hash = gate, gate.policy["hash"]
            gate.store.checkpoint_in_background()  # WAL checkpoints off the calls' path (SQLite)
        self.policy_stat = stat
        return self.gate

    def last(self):
        """The gate that decided last (else :meth:`current`): journal entries about a decided call go there."""
        return self.gate or self.current()


class ClientSide:
    """What a relay and an aggregating relay share: writing to the client (``sink``, else
    ``out``, one message at a time), asking whether a run is dry, reporting a failure."""

    async def send_to_client(self, data):
        """Send one encoded message (bytes ending in a newline) to the client."""
        if self.sink is not None:
            await self.sink(data)
            return
        async with self._out_lock:
            self.out.write(data)
            self.out.flush()

    def run_is_dry(self, run_id):
        """True when ``run_id`` is dry now. Raises GuardFailure when the store cannot tell."""
        run = self.gate.current().store.get_run(run_id)
        return run is not None and run.is_dry

    def report_failure(self, error, tool, run_id, call_id, server=None):
        """Report a gate failure for a call (a guard-failure alert); returns the reason text."""
        from drygate.gate import report_guard_failure
        from drygate.types import ToolCall

        server = server or self.server
        call = ToolCall(qualified(server, tool) if isinstance(tool, str) else None, None, run_id, call_id)
        policy = self.gate.gate.policy if self.gate.gate is not None else None
        return report_guard_failure(self.settings, policy, error, call, HOST)

    def report_bypass(self, message, server=None):
        """A notification of a decided method was dropped: an alert (kind tamper, cause relay_bypass)."""
        from drygate.alerts import TAMPER
        from drygate.gate import report
        from drygate.relay.protocol import BYPASS_CAUSE
        from drygate.types import ToolCall

        method = message.get("method")
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        name, _ = decided_name(method, params)
        call = ToolCall(qualified(server or self.server, name or method), None, self.runs.run_id, None)
        policy = self.gate.gate.policy if self.gate.gate is not None else None
        report(self.settings, policy, TAMPER, BYPASS_CAUSE,
               f"a {method} notification (no id) was dropped: it would reach the server undecided and cannot "
               f"carry the gate's answer; send it as a request", call, HOST)

    def decide(self, server, name, arguments, run_id, call_id, annotations, read_later=False):
        """The engine's decision for ``mcp__<server>__<name>``. Raises GuardFailure / InputError.

        ``read_later``: return ``(decision, pending)`` instead, where an allowed read of a run
        that exists is not journaled yet (drygate.engine.Engine.decide_read): ``pending`` must
        be journaled with the call's answer before the client gets it."""
        from drygate.errors import InputError
        from drygate.types import ToolCall

        if not isinstance(name, str) or not name:
            raise InputError("tools/call without a tool name")
        call = ToolCall(qualified(server, name), arguments, run_id, call_id, None, self.settings.project_dir,
                        HOST, annotations)
        return self.gate.decide_read(call) if read_later else self.gate.decide(call)


def not_executed_error(request_id, decision, method):
    """The answer to a decided request other than tools/call that was not executed (dry or denied).

    A JSON-RPC error (code :data:`NOT_EXECUTED`): these results have no error flag of
    their own, and an error invents nothing. ``error.data["drygate"]`` carries the
    decision like a tools/call's ``_meta["drygate"]``.
    """
    meta = {"executed": False, "decision": decision.action, "run_id": decision.run_id, "call": decision.call,
            "seq": decision.seq, "effect": decision.effect, "rule_id": decision.rule_id, "reason": decision.reason,
            "method": method}
    return {"jsonrpc": "2.0", "id": request_id, "error": {
        "code": NOT_EXECUTED, "message": f"drygate: {method} NOT EXECUTED ({decision.action}): {decision.reason}",
        "data": {results.META_KEY: meta}}}


class Relay(ClientSide):
    """One client connection over stdio, one downstream server.

    ``settings``: drygate.config.Settings; ``server``: the server's name as the agent
    sees it (tools are decided as ``mcp__<server>__<tool>``); ``command``: argv of the
    real server, or ``url``: its streamable HTTP endpoint; ``run_id``: the run this
    connection belongs to; ``fixed_run``: the operator named it (DRYGATE_RUN_ID; None:
    read the environment). Features are added with :meth:`add_route`.
    """

    def __init__(self, settings, server, command, run_id, out=None, url=None, headers=None, fixed_run=None):
        self.settings = settings
        self.server = server
        self.out = out or sys.stdout.buffer
        self.sink = None  # a coroutine taking each outgoing line instead of ``out`` (the HTTP front)
        self.gate = RelayGate(settings)
        self.runs = RunIdentity(run_id, fixed=fixed_run, is_dry=self.run_is_dry)
        self.tools = {}  # tool name -> {"annotations": ..., "outputSchema": ...}
        self.pending = {}  # request id (json) -> method, for requests forwarded to the server
        self.calls = {}  # request id -> (tool, call id, run id, effect) of a forwarded tools/call
        self.command, self.url, self.headers = command, url, headers
        if url:
            from drygate.relay.http_downstream import HttpDownstream

            self.downstream = HttpDownstream(url, headers, on_line=self._from_server, on_exit=self._server_exited)
        else:
            self.downstream = Downstream(command, os.environ.copy(), self._from_server, self._server_exited)
        self._out_lock = asyncio.Lock()
        self.own = OwnRequests()  # requests the relay sent the server itself
        self.routes = []
        import collections

        self.server_requests = collections.OrderedDict()  # id keys of the server's requests to the client
        self.start_error = None  # why the server could not start (answered to every request)
        self._listed_at = None  # when the relay last listed the server's tools itself
        self._listing = None  # the listing in flight (parallel first calls wait for it)
        self.server_info = None  # the server's serverInfo from its initialize answer
        self._catalog_journaled = None

    def add_route(self, route):
        """Plug a :class:`Route` in (after those added before); returns it."""
        self.routes.append(route)
        return route

    def shadow_env(self, network):
        """What a shadow instance of the server gets in its environment from every route (dict)."""
        env = {}
        for route in self.routes:
            env.update(route.shadow_env(network))
        return env

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
            key = id_key(message["id"])
            if self.own.take(message, key):
                return  # the answer to the relay's own request (late ones too): never the client's
            method = self.pending.pop(key, None)
            if method == "tools/list" and isinstance(message.get("result"), dict):
                self.learn_tools(message["result"])
            if method == "initialize" and isinstance(message.get("result"), dict):
                info = message["result"].get("serverInfo")
                self.server_info = info if isinstance(info, dict) else None
            tool = self.calls.pop(key, None) if method == "tools/call" else None
            if message["id"] == REPLAY_ID:
                return  # the answer to a replayed initialize: the client already has one
            if method is None:
                return  # no request of the client's has this id: never an unsolicited response
            if results.SERVER_INFO_META.encode() in text:
                stripped = results.without_server_info(message)
                if stripped is not message:
                    message = stripped
                    line = results.encode(message)
            if tool is not None:
                for route in self.routes:
                    marked = route.from_real(key, message)  # e.g. a real read that misses the run's dry writes
                    if marked is not message:
                        message = marked
                        line = results.encode(marked)
            if tool is not None and tool[4] is not None:
                line = self._journal_read(message, tool, line)  # before the client has its answer
                tool = None
            await self.send_to_client(line if line.endswith(b"\n") else line + b"\n")
            if tool is not None:
                self._journal_result(message, tool)  # after the client has its answer
            return
        if isinstance(message, dict) and "method" in message and "id" in message:
            self._server_asked(id_key(message["id"]))  # sampling, elicitation, roots: the client may answer
        await self.send_to_client(line if line.endswith(b"\n") else line + b"\n")

    def _server_asked(self, key):
        self.server_requests[key] = None
        while len(self.server_requests) > SERVER_REQUEST_MEMORY:
            self.server_requests.popitem(last=False)

    def learn_tools(self, result):
        """Learn the tools of a ``tools/list`` result (dict): annotations, output schemas, fingerprints."""
        from drygate.plan.fingerprint import tool_fingerprint

        for tool in result.get("tools") or []:
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                self.tools[tool["name"]] = {"annotations": tool.get("annotations") or {},
                                            "outputSchema": tool.get("outputSchema"),
                                            "fingerprint": tool_fingerprint(tool)}
        self._journal_catalog()

    def ensure_catalog_journaled(self):
        """Journal the catalog if it never was (tools listed before the gate could record them)."""
        if self._catalog_journaled is None:
            self._journal_catalog()

    def _journal_catalog(self):
        """Journal the tools and server this run saw (the plan's basis), when they change."""
        import time

        from drygate.state.catalog import catalog_entry

        catalog = catalog_entry(self.server, self.server_info, self.tools)
        if catalog == self._catalog_journaled or not self.tools:
            return
        try:
            # The last gate that loaded; a policy broken right now is the decisions' guard
            # failure, reported there, not this record's.
            self.gate.last().store.record_result(self.runs.run_id, None, CATALOG_PREFIX + self.server, catalog,
                                                 time.time())
            self._catalog_journaled = catalog
        except Exception:  # pragma: no cover - the basis is then incomplete: apply lists it as unchecked
            pass

    async def wait_for_catalog(self, meta):
        """Learn the server's tools before a call to a tool the relay does not know is decided.

        Calls that arrive together (parallel first calls, before any ``tools/list``)
        all wait for one listing (at most :data:`CATALOG_WAIT_S` per page) instead of
        being decided without annotations. A listing that finished less than a second
        ago is not repeated: a tool it did not name is decided as unknown (stricter).
        """
        import time

        if self._listing is None:
            if self._listed_at is not None and time.monotonic() - self._listed_at < 1.0:
                return
            self._listing = asyncio.ensure_future(self._list_tools_itself(meta))
        listing = self._listing
        try:
            await asyncio.shield(listing)
        finally:
            if listing.done() and self._listing is listing:
                self._listing = None
                self._listed_at = time.monotonic()

    async def _list_tools_itself(self, meta):
        """Ask the server for its tools directly (every page); failures are ignored."""
        cursor = None
        for _page in range(20):
            request_id, future = self.own.new("drygate-tools-list")
            params = {"_meta": meta} if meta else {}
            if cursor:
                params["cursor"] = cursor
            try:
                await self.downstream.send(results.encode({"jsonrpc": "2.0", "id": request_id,
                                                           "method": "tools/list", "params": params}))
                answer = await asyncio.wait_for(future, CATALOG_WAIT_S)
            except (ConnectionError, asyncio.TimeoutError):
                self.own.forget(request_id)  # a late answer is dropped, never forwarded
                return
            result = answer.get("result")
            if not isinstance(result, dict):
                return
            self.learn_tools(result)
            cursor = result.get("nextCursor")
            if not cursor:
                return

    def _journal_result(self, message, forwarded):
        """Journal what a live call returned (the store is only ever used from the loop).

        ``forwarded``: ``(tool name as the server knows it, call id, run id, effect)``. A
        write's result is journaled (cut to 64 KB); a read's as its fingerprint, size and,
        up to 16 KB, its normal form (drygate.plan.fingerprint.read_record): the plan's
        basis, which apply re-checks naming the fields that changed. The gate that decided the call journals it (a policy broken since is the
        next decision's guard failure); a write's result that cannot be journaled raises
        an alert, a read's does not (the plan then lists it as not re-checked).
        """
        import time

        tool, call_id, run_id, effect = forwarded[:4]
        result = _journaled_form(message, effect)
        try:
            # A tool's own result cannot make the run dry: no fsync before the answer
            # (StateStore.record_result); the next gated commit makes it durable.
            self.gate.last().store.record_result(run_id, call_id, qualified(self.server, tool), result, time.time(),
                                                 durable=False)
        except Exception as e:  # the call already ran: report, never fail the client
            if effect not in ("read", "bookkeeping"):
                self.report_failure(e, tool, run_id, call_id)

    def _journal_read(self, message, forwarded, line):
        """Journal an allowed read decided with :meth:`drygate.engine.Engine.decide_read`: the
        call and what the plan keeps of its answer in one store step, before the client gets
        it (so every later call, through this relay or any other gate, is journaled after it).
        Returns the line to send: the server's answer, or, when the read cannot be journaled,
        an answer that withholds it (fail closed) with a guard-failure alert."""
        tool, call_id, run_id, effect, pending, modern = forwarded
        try:
            pending.journal(self.gate.last().store, _journaled_form(message, effect))
        except Exception as e:
            why = self.report_failure(e, tool, run_id, call_id)
            return results.encode(results.withheld(message["id"], why, modern))
        return line

    def _unanswered(self, forwarded):
        """A forwarded call that gets no answer from its server: a read decided with
        :meth:`drygate.engine.Engine.decide_read` is journaled without a result (as a read
        journaled first and never answered is), best effort: its client gets an error."""
        if forwarded is None or forwarded[4] is None:
            return
        try:
            forwarded[4].journal_unanswered(self.gate.last().store)
        except Exception as e:
            self.report_failure(e, forwarded[0], forwarded[2], forwarded[1])

    async def _server_exited(self, code):
        for key in list(self.pending):
            self.pending.pop(key, None)
            self._unanswered(self.calls.pop(key, None))
            await self.send_to_client(results.encode(results.error(
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
            await self.send_to_client(results.encode(results.error(None, results.PARSE_ERROR,
                                                                   "Parse error: not a JSON message")))
            return
        if isinstance(message, list):
            await self._batch(message, line)
            return
        if not isinstance(message, dict) or ("method" in message and not isinstance(message["method"], str)):
            await self.send_to_client(results.encode(results.error(
                message.get("id") if isinstance(message, dict) else None, results.INVALID_REQUEST,
                "Invalid Request")))
            return
        if isinstance(message.get("id"), float):
            if not message["id"].is_integer():
                await self.send_to_client(results.encode(results.error(
                    None, results.INVALID_REQUEST, "Invalid Request: an id must be a string or an integer")))
                return
            message["id"] = int(message["id"])  # 2.0 is 2 (servers answer it as 2, or not at all)
            line = results.encode(message)
        if self.start_error is not None:
            if "method" in message and "id" in message:
                await self.send_to_client(results.encode(results.error(message["id"], results.INTERNAL_ERROR,
                                                                       self.start_error)))
            return
        rule = rule_of(message)
        if rule == DECIDE:
            await self._decided(message, line)
            return
        if rule == DROP:
            self.report_bypass(message)
            return
        method = message.get("method")
        if method == "initialize" and "id" in message:
            replay = dict(message, id=REPLAY_ID)
            self.downstream.replay = [results.encode(replay)] + self.downstream.replay[1:]
        elif method == "notifications/initialized":
            self.downstream.replay = self.downstream.replay[:1] + [line]
        for route in self.routes:
            if await route.client_message(message):
                return  # e.g. to the run's shadow server (or an answer to a request it sent)
        if method is None:  # a response: only to a request the server made, once
            if self.server_requests.pop(id_key(message.get("id")), False) is False:
                return  # answers nothing the server asked: never forwarded
        elif "id" in message:
            self.pending[id_key(message["id"])] = method
        await self._forward(line, message)

    async def _forward(self, line, message):
        try:
            await self.downstream.send(line if line.endswith(b"\n") else line + b"\n")
        except ConnectionError as e:
            if isinstance(message, dict) and "id" in message and "method" in message:
                self.pending.pop(id_key(message["id"]), None)
                self._unanswered(self.calls.pop(id_key(message["id"]), None))
                await self.send_to_client(results.encode(results.error(
                    message["id"], results.INTERNAL_ERROR, f"drygate: the MCP server {self.server!r} is not "
                                                           f"running ({e}); the request was not delivered")))

    async def _batch(self, messages, line):
        rules = [rule_of(m) if isinstance(m, dict) and isinstance(m.get("method", ""), str) else DECIDE
                 for m in messages]
        if any(isinstance(m, dict) and "method" not in m and id_key(m.get("id")) not in self.server_requests
               for m in messages):
            return  # a response that answers nothing the server asked: the batch is not forwarded
        if any(r != "forward" for r in rules):
            # JSON-RPC batches left MCP in 2025-06-18; a decision per member is not worth having.
            for m, r in zip(messages, rules):
                if r == DROP:
                    self.report_bypass(m)
                elif isinstance(m, dict) and "id" in m and "method" in m:
                    await self.send_to_client(results.encode(results.error(
                        m["id"], results.INVALID_REQUEST,
                        f"drygate: {m.get('method')} in a JSON-RPC batch is not relayed; send it on its own")))
            return
        for route in self.routes:
            if await route.batch(messages):
                return
        for m in messages:
            if isinstance(m, dict) and "id" in m and "method" in m:
                self.pending[id_key(m["id"])] = m["method"]
        await self._forward(line, None)

    async def _decided(self, message, line):
        """A request the engine decides: ``tools/call``, ``resources/read``, ``prompts/get``, any other."""
        method = message["method"]
        if method == "tools/call":
            await self._tools_call(message, line)
            return
        request_id = message["id"]
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}
        name, annotations = decided_name(method, params)
        run_id = self.runs.run_id
        try:
            run_id = self.runs.run_for(meta)
            decision = self.decide(self.server, name, _arguments_of(method, params), run_id, str(request_id),
                                   annotations)
            if decision.action in ("allow", "dry"):
                for route in self.routes:
                    if await route.decided_request(message, decision, run_id):
                        return  # e.g. the run's shadow server answers
        except Exception as e:  # any failure of the gate: block, answer, alert
            why = self.report_failure(e, name, run_id, str(request_id))
            await self.send_to_client(results.encode(results.error(
                request_id, results.INTERNAL_ERROR, f"drygate guard failure: {why}. The request was BLOCKED "
                                                    f"(fail closed) and NOT executed.")))
            return
        if decision.action != "allow":
            await self.send_to_client(results.encode(not_executed_error(request_id, decision, method)))
            return
        self.pending[id_key(request_id)] = method
        await self._forward(line, message)

    async def _tools_call(self, message, line):
        request_id = message["id"]
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        tool = params.get("name")
        arguments = params.get("arguments") if isinstance(params.get("arguments"), dict) else {}
        meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}
        modern = results.PROTOCOL_VERSION_META in meta
        if isinstance(tool, str) and tool not in self.tools:
            await self.wait_for_catalog({k: v for k, v in meta.items() if k.startswith("io.modelcontextprotocol/")})
        run_id = self.runs.run_id
        try:
            if isinstance(tool, str) and is_method_name(tool):
                from drygate.errors import InputError

                raise InputError(f"a tool named {tool!r} would be decided under the name of the MCP method")
            run_id = self.runs.run_for(meta)
            info = self.tools.get(tool) or {} if isinstance(tool, str) else {}
            pending = None
            if isinstance(tool, str) and not any(route.answers_reads(tool) for route in self.routes):
                # An allowed read is journaled with its answer (one store step instead of two).
                decision, pending = self.decide(self.server, tool, arguments, run_id, str(request_id),
                                                info.get("annotations"), read_later=True)
            else:
                decision = self.decide(self.server, tool, arguments, run_id, str(request_id),
                                       info.get("annotations"))
            routed = False
            if decision.action in ("allow", "dry"):
                for route in self.routes:
                    routed = await route.tools_call(message, decision, run_id, tool, modern)
                    if routed:
                        break
            if routed is True:
                self._unanswered((tool, str(request_id), run_id, decision.effect, pending, modern))
                return  # answered by a route (a store overlay, the run's shadow server), marked as simulated
        except Exception as e:  # any failure of the gate: block, answer, alert
            why = self.report_failure(e, tool, run_id, str(request_id))
            await self.send_to_client(results.encode(results.guard_failure(request_id, why, modern)))
            return
        self.ensure_catalog_journaled()  # tools listed before the gate could record them
        if decision.action == "allow":
            key = id_key(request_id)
            self.pending[key] = "tools/call"
            # Journal what the live call returned: a write's result, a read's fingerprint (basis).
            self.calls[key] = (tool, str(request_id), run_id, decision.effect, pending, modern)
            await self._forward(line, message)
            return
        schema = (self.tools.get(tool) or {}).get("outputSchema") if isinstance(tool, str) else None
        await self.send_to_client(results.encode(results.not_executed(request_id, decision, tool, schema, modern)))

    # -- lifetime -----------------------------------------------------------------------------
    async def start(self):
        """Start the server. A server that cannot start (its command is missing) is not an
        exception: every request is answered with :attr:`start_error` (one clear line on
        stderr too), so the client sees why instead of a closed connection."""
        try:
            await self.downstream.start()
        except OSError as e:
            what = " ".join(self.command or [self.url or "?"])
            reason = e.strerror or str(e)
            if isinstance(e, FileNotFoundError):
                reason = "command not found"
            self.start_error = f"drygate: cannot start the MCP server {self.server!r} ({what}): {reason}"
            sys.stderr.write(self.start_error + "\n")
            sys.stderr.flush()

    async def close(self):
        """Stop the server and every route; journal the reads left unanswered; flush the latency counters."""
        for key in list(self.calls):
            self._unanswered(self.calls.pop(key))
        self.gate.flush()
        await self.downstream.close()
        for route in self.routes:
            await route.close()

    async def serve(self, reader):
        """Serve the client on ``reader`` (an asyncio StreamReader) until it closes."""
        await self.start()
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:
                    await self.send_to_client(results.encode(results.error(None, results.PARSE_ERROR,
                                                                           "Parse error: message too large")))
                    continue
                if not line:
                    break
                await self.handle_client_line(line)
        finally:
            await self.close()


def _journaled_form(message, effect):
    """What the journal keeps of a server's answer to a tools/call (``message``, dict): for a
    read (``effect`` read or bookkeeping) its record (drygate.plan.fingerprint.read_record:
    fingerprint, size, normal form up to 16 KB, the plan's basis), else the result or error
    itself, cut to 64 KB."""
    from drygate.plan.fingerprint import read_record

    result = message.get("result", message.get("error"))
    text = json.dumps(result)
    if effect in ("read", "bookkeeping"):
        return read_record(result if "result" in message else None, len(text), "error" in message)
    if len(text) > 64 * 1024:
        return {"truncated": True, "chars": len(text), "head": text[:64 * 1024]}
    return result


def _arguments_of(method, params):
    """The input a decided request other than tools/call is journaled and matched with (its params, no _meta)."""
    return {k: v for k, v in params.items() if k != "_meta"}
