"""Store overlays in the relay: a dry run's calls of a server's object-store and key-value tools.

The policy names them per server (drygate.policy.load.compile_overlays)::

    [[overlays]]
    server = "stack"
    kind = "objects"
    tools = { put = "put_object", get = "get_object", head = "head_object", list = "list_objects",
              delete = "delete_object" }
    plain_tools = ["create_bucket"]          # optional: never simulated, never sent to a shadow
    shadow_env = { STACK_S3_URL = "http://127.0.0.1:9" }   # the shadow server's S3 points at nothing

While the connection's run is dry (its first dry decision, or a run already dry), every
call of a mapped tool, reads included, is answered here by the run's overlay
(drygate.overlay.objects, drygate.overlay.keyvalue), marked as simulated in its text and
``_meta["drygate"]`` (drygate.overlay.honesty) with what it could not prove. What the run
did not touch is read from the real store through the real server's own read tools: the
agent's own read runs under the gate's decision for it; a read the overlay needs for a
write (the key's state for a precondition, whether the bucket exists, a counter's value) is
decided by the gate as a call of its own (agent ``drygate-overlay``, journaled, so it is
in the plan's basis and apply re-checks it) and refused unless the gate allows it as a read.

The gate is unchanged: every call is decided and journaled as before (a write is dry), so
the plan and apply are the same as without overlays. A live run's calls (a sticky run
before its first dry write) go to the real server as before. Tools of the server that no
overlay maps keep their treatment (plain dry results, or the shadow server with
``--shadow``); the mapped tools and ``plain_tools`` never go to a shadow. A shadow runs
without network, and its environment also gets ``shadow_env`` (required when it may use
the network), so it cannot reach the remote store through a tool no overlay maps.

Journal (kind ``result``, tool name ``drygate/overlay/<server>``), one entry per event::

    {"event": "made" | "joined", "name", "kind", "path", "created_at"}
    {"event": "fallback", "name", "kind", "reason", "code", "bytes", "limit"}   # plain dry results from here on
    {"event": "closed", "name", "kind", "bytes", "removed", "writes", "reads"}

A read the overlay answered is journaled with ``served_by: "overlay"`` and, when the real
store was read for it, the fingerprint of the real server's answer to the same call (the
plan's basis); an answer made only of the run's writes has none, and says why.

Fallback (never a live write, never a shadow): when the overlay cannot be made, grows past
its limit, or a real read it needs fails or is not allowed, the run's writes to it get plain
"not executed" results that say so, for every relay of the run, and its reads go to the real
server with a note of the writes they miss. A call whose arguments the overlay does not
understand gets a plain result for that call only (a read: the real server answers it).
"""

import asyncio
import json
import time

from drygate.overlay.base import OVERLAY, REAL, OverlayUnavailable
from drygate.overlay.stores import (
    OVERLAY_PREFIX,
    NeedRead,
    RealAnswer,
    Unsupported,
    open_overlay,
)
from drygate.relay import results
from drygate.relay.core import TO_REAL, Route
from drygate.relay.protocol import HOST, qualified
from drygate.types import SKIP_DRY

#: Seconds an overlay waits for the real server's answer to one read.
REAL_READ_TIMEOUT_S = 30.0
#: Real reads one call may need at most (a put: the key's state, then whether the bucket exists).
MAX_READS = 4
#: The roles that write: the overlay simulates them only when the gate decided them dry.
WRITE_ROLES = frozenset({"put", "delete", "set", "incr"})
#: The agent id of the reads the overlay makes itself (journal, plan basis).
OVERLAY_AGENT = "drygate-overlay"
KIND_LABELS = {"objects": "object store", "key-value": "key-value store"}


class OverlayRoute(Route):
    """The store-overlay side of one relay (:class:`drygate.relay.core.Relay`).

    ``stores``: the run's open overlays by name; ``failed``: names whose overlay could
    not be opened (:class:`OverlayUnavailable`); ``writes``, ``reads``, ``skipped``:
    this process's simulated writes, answered reads and plain dry writes, by name.
    """

    def __init__(self, relay):
        self.relay = relay
        self.run_id = None
        self.stores = {}
        self.failed = {}
        self.writes = {}
        self.reads = {}
        self.skipped = {}
        self._index = (None, {})
        self._internal = 0

    # -- configuration ------------------------------------------------------------------------
    def configs(self):
        """The policy's overlays of this relay's server (tuple of compiled dicts)."""
        policy = (self.relay.gate.gate or self.relay.gate.current()).policy
        return tuple(c for c in policy.get("overlays") or () if c["server"] == self.relay.server)

    def _lookup(self, tool):
        """``(config, role)`` of a mapped tool, ``(config, None)`` of a plain tool, or None."""
        policy = (self.relay.gate.gate or self.relay.gate.current()).policy  # the gate that just decided
        if self._index[0] != policy.get("hash"):
            index = {}
            for config in policy.get("overlays") or ():
                if config["server"] != self.relay.server:
                    continue
                for role, name in config["tools"].items():
                    index[name] = (config, role)
                for name in config["plain_tools"]:
                    index[name] = (config, None)
            self._index = (policy.get("hash"), index)
        return self._index[1].get(tool)

    def shadow_env(self, network):
        """Environment variables the server's shadow instance gets (dict), so it cannot reach the remote stores.

        A shadow runs without network by default (drygate.relay.shadow), which already keeps it
        off a remote store reached over TCP; ``shadow_env`` of each ``[[overlays]]`` of this
        server also points the shadow's settings at nothing (a store on a unix socket stays
        reachable without network). ``{}`` when the policy has no overlays for this server.
        ``network``: the shadow may use the network (``--shadow-allow-network``); then every
        overlay of the server must set ``shadow_env``, else :class:`OverlayUnavailable`
        (``not_isolated``): the shadow would start with the real store's settings and reach
        it through a tool no overlay maps.
        """
        env, missing = {}, []
        for config in self.configs():
            if config["shadow_env"] is None:
                missing.append(config["name"])
            else:
                env.update(config["shadow_env"])
        if missing and network:
            raise OverlayUnavailable(
                f"the policy has store overlays for {self.relay.server} ({', '.join(missing)}) without shadow_env, and "
                f"the shadow may use the network (--shadow-allow-network), so it would reach the real store with the "
                f"real settings; set shadow_env in each [[overlays]] of {self.relay.server} to point the shadow at "
                f"nothing", "not_isolated")
        return env

    def answers_reads(self, tool):
        """Only a tool the policy's overlays of this server name (mapped or plain) may be answered here."""
        return self._lookup(tool) is not None

    # -- tools/call ---------------------------------------------------------------------------
    async def tools_call(self, message, decision, run_id, tool, modern):
        """Route a decided call (``allow`` or ``dry``) of this relay's server.

        Returns True when it was answered here, :data:`TO_REAL` when the relay must send it
        to the real server and never to a shadow (a read of a plain tool), or False when
        overlays have nothing to do with it (an unmapped tool, or a live run). Raises like
        the gate (GuardFailure) when the run's state or a real read's decision cannot be had.
        """
        found = self._lookup(tool) if isinstance(tool, str) else None
        if found is None:
            return False
        config, role = found
        dry = decision.action == SKIP_DRY
        if not dry and not self.relay.run_is_dry(run_id):
            return False  # a live run: the real server, as without overlays
        self.relay.ensure_catalog_journaled()
        if role is None:
            if not dry:
                return TO_REAL
            await self._plain(message, decision, tool, modern, config,
                              f"{tool} is one of the policy's plain_tools for {self.relay.server}: no overlay "
                              f"simulates it", whole_run=False)
            return True
        if role in WRITE_ROLES and not dry:
            return TO_REAL  # the gate allowed it, so the policy does not gate it: as without overlays
        if role not in WRITE_ROLES and dry:
            await self._plain(message, decision, tool, modern, config,
                              f"the policy decides {tool} dry, and the overlay reads the real store only with "
                              f"reads the gate allows", whole_run=False, write=False)
            return True
        store = await self._store(config, run_id)
        why = None
        if store is None:
            why = self.failed[config["name"]].reason
        else:
            store.max_bytes = config["max_bytes"]
            fallback = store.fallback()
            why = fallback["reason"] if fallback else None
        if why is not None:
            await self._without_overlay(message, decision, run_id, tool, modern, config, dry, why)
            return True
        arguments = (message.get("params") or {}).get("arguments")
        arguments = arguments if isinstance(arguments, dict) else {}
        try:
            answer, own = await self._answer(store, config, role, arguments, message, decision, run_id, dry)
        except Unsupported as e:
            if not dry:
                return TO_REAL  # the real server answers a read it may refuse itself
            await self._plain(message, decision, tool, modern, config, e.reason, whole_run=False)
            return True
        except OverlayUnavailable as e:
            await self._stop(store, config, run_id, e)
            await self._without_overlay(message, decision, run_id, tool, modern, config, dry, e.reason)
            return True
        await self._reply(message, decision, run_id, tool, modern, config, store, answer, own, dry)
        return True

    async def _answer(self, store, config, role, arguments, message, decision, run_id, dry):
        """Run the overlay's operation, making the real reads it asks for. Returns ``(Answer, own)``:
        ``own`` is ``(RealAnswer, fingerprint)`` of the agent's own read when the real server answered it."""
        real, own = {}, None
        for _ in range(MAX_READS + 1):
            try:
                return store.run(role, arguments, real), own
            except NeedRead as need:
                tool = config["tools"][need.role]
                mine = not dry and need.role == role and need.arguments == arguments
                answer, fp = await self._real_read(tool, need.arguments, message, decision if mine else None, run_id)
                real[need.key] = answer
                if mine:
                    own = (answer, fp)  # recorded with the answer (_reply)
                else:
                    store.record_read(_what(store, need.arguments), fp, REAL)
        raise OverlayUnavailable(f"the {config['kind']} overlay asked for more than {MAX_READS} real reads for one "
                                 f"call", "real_read_failed")

    async def _real_read(self, tool, arguments, message, decision, run_id):
        """Read the real store with the real server's ``tool``; returns ``(RealAnswer, fingerprint or None)``.

        ``decision``: the agent's own decision when this is the agent's read; else the read
        is decided here as a call of its own (journaled), and must be allowed as a read.
        Raises :class:`OverlayUnavailable` when it is not, or when the server does not answer."""
        from drygate.plan.fingerprint import result_fingerprint
        from drygate.types import ToolCall

        params = message.get("params") or {}
        meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}
        if decision is None:
            self._internal += 1
            call_id = f"{message['id']}/overlay-read-{self._internal}"
            info = self.relay.tools.get(tool) or {}
            call = ToolCall(qualified(self.relay.server, tool), arguments, run_id, call_id, OVERLAY_AGENT,
                            self.relay.settings.project_dir, HOST, info.get("annotations"))
            own = self.relay.gate.decide(call)
            if own.action != "allow" or own.effect != "read":
                raise OverlayUnavailable(
                    f"the policy does not let drygate read the real store with {tool} (decided {own.action}, effect "
                    f"{own.effect}), so the overlay cannot check what the run's writes depend on", "read_not_allowed")
        else:
            call_id = str(message["id"])
        reply = await self.real_call(tool, arguments, {k: v for k, v in meta.items()
                                                       if k.startswith("io.modelcontextprotocol/")})
        result = reply.get("result")
        if isinstance(result, dict):
            answer, fp = RealAnswer.from_result(result), result_fingerprint(result)
        else:
            error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
            answer, fp = RealAnswer(False, None, str(error.get("message") or "no result"), None), None
        if decision is None:
            text = json.dumps(result if result is not None else reply.get("error"))
            self._record(run_id, call_id, tool, {"read_fingerprint": fp, "bytes": len(text), "error": not answer.ok,
                                                 "served_by": "real", "for": "drygate's store overlay"}, False)
        return answer, fp

    async def real_call(self, tool, arguments, meta=None, timeout=REAL_READ_TIMEOUT_S):
        """Send ``tools/call`` of ``tool`` to the real server and wait for its answer (the JSON-RPC message).

        Raises :class:`OverlayUnavailable` (``real_read_failed``) when the server is not running or does
        not answer within ``timeout`` seconds."""
        request_id, future = self.relay.own.new("drygate-overlay")
        params = {"name": tool, "arguments": arguments}
        if meta:
            params["_meta"] = meta
        try:
            await self.relay.downstream.send(results.encode({"jsonrpc": "2.0", "id": request_id,
                                                             "method": "tools/call", "params": params}))
            reply = await asyncio.wait_for(future, timeout)
        except (TimeoutError, ConnectionError) as e:
            self.relay.own.forget(request_id)  # a late answer is dropped, never forwarded
            raise OverlayUnavailable(f"the real server {self.relay.server!r} did not answer the overlay's {tool} "
                                     f"({type(e).__name__}: {e})", "real_read_failed") from e
        return results.without_server_info(reply)

    # -- answers ------------------------------------------------------------------------------
    async def _reply(self, message, decision, run_id, tool, modern, config, store, answer, own, dry):
        from drygate.overlay import honesty

        if answer.real_result is not None:
            result = answer.real_result
        elif answer.ok:
            result = {"content": [{"type": "text", "text": json.dumps(answer.value, indent=2, ensure_ascii=False)}],
                      "structuredContent": answer.value, "isError": False}
        else:
            result = {"content": [{"type": "text", "text": f"Error executing tool {tool}: {answer.message}"}],
                      "isError": True}
        if modern and answer.real_result is None:
            result["resultType"] = "complete"
        d = decision
        base = {"decision": d.action, "run_id": d.run_id, "call": d.call, "seq": d.seq, "effect": d.effect,
                "rule_id": d.rule_id}
        meta = honesty.simulated_meta(base, store.describe(), "overlay", answer.reflects)
        meta["unproven"] = honesty.overlay_unproven(config["kind"])
        if answer.values:
            meta["values"] = answer.values
        what = self._what(store, config, run_id)
        name = config["name"]
        if dry:
            meta["reason"] = d.reason
            schema = (self.relay.tools.get(tool) or {}).get("outputSchema")
            if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
                meta["simulated_outputs"] = sorted(schema["properties"])
            if d.call is not None:
                meta["reference"] = f"drygate:ref:{d.call}"
                meta["references"] = {f: f"drygate:ref:{d.call}:{f}" for f in meta.get("simulated_outputs", ())}
            note = honesty.write_note(run_id, d.call, d.effect, what)
            if answer.wrote:
                self.writes[name] = self.writes.get(name, 0) + 1
        else:
            meta["executed"] = own is not None  # the real server's read tool ran for this answer
            meta["real_read"] = own is not None
            note = honesty.overlay_read_note(run_id, what, answer.reflects, store.writes, own is not None)
            self.reads[name] = self.reads.get(name, 0) + 1
        marked = honesty.mark_result(result, note, meta)
        await self.relay.send_to_client(results.encode({"jsonrpc": "2.0", "id": message["id"], "result": marked}))
        text = json.dumps(result)
        if dry:
            entry = {"simulated": True, "served_by": "overlay", "error": bool(result.get("isError")),
                     "result": result if len(text) <= 64 * 1024 else {"truncated": True, "chars": len(text),
                                                                       "head": text[:64 * 1024]}}
        else:
            fp = own[1] if own is not None else None
            entry = {"read_fingerprint": fp, "bytes": len(text), "error": bool(result.get("isError")),
                     "served_by": "overlay", "reflects_run_writes": answer.reflects}
            if own is None:
                entry["why"] = ("answered by the run's store overlay from the run's own simulated writes, so it is not "
                                "a fact about the real system: not re-checked by apply")
            store.record_read(_what(store, (message.get("params") or {}).get("arguments") or {}), fp,
                              REAL if own is not None and not answer.reflects else OVERLAY)
        self._record(run_id, str(message["id"]), tool, entry, dry)

    def _what(self, store, config, run_id):
        return (f"run {run_id}'s overlay of the {self.relay.server} server's {KIND_LABELS[config['kind']]} "
                f"({config['name']}, made at {_when(store.created_at)}), over the real store")

    async def _plain(self, message, decision, tool, modern, config, why, whole_run, write=True):
        """A plain dry result (nothing simulated) that says why (``write``: later reads will not show it)."""
        from drygate.overlay import honesty

        name = config["name"]
        if write:
            self.skipped[name] = self.skipped.get(name, 0) + 1
        schema = (self.relay.tools.get(tool) or {}).get("outputSchema")
        answer = results.not_executed(message["id"], decision, tool, schema, modern)
        result = answer["result"]
        if whole_run:
            result["content"][0]["text"] += honesty.fallback_note(why, True)
        elif write:
            result["content"][0]["text"] += (f" This write was not simulated by the run's store overlay ({why}), so "
                                             f"later reads in this run will not show it.")
        else:
            result["content"][0]["text"] += f" The run's store overlay did not answer it either ({why})."
        result["_meta"][results.META_KEY].update({"simulated": False, "read_your_writes": False,
                                                  "overlay": {"server": self.relay.server, "name": name,
                                                              "kind": config["kind"], "not_simulated": why}})
        await self.relay.send_to_client(results.encode(answer))

    async def _without_overlay(self, message, decision, run_id, tool, modern, config, dry, why):
        """The run's overlay is not available: a plain dry result, or the real server's answer to a read
        marked with the run's writes it misses."""
        if dry:
            await self._plain(message, decision, tool, modern, config, why, whole_run=True)
            return
        from drygate.overlay import honesty
        from drygate.plan.fingerprint import result_fingerprint

        params = message.get("params") or {}
        arguments = params.get("arguments") if isinstance(params.get("arguments"), dict) else {}
        meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}
        try:
            reply = await self.real_call(tool, arguments, {k: v for k, v in meta.items()
                                                           if k.startswith("io.modelcontextprotocol/")})
        except OverlayUnavailable as e:
            await self.relay.send_to_client(results.encode(results.error(message["id"], results.INTERNAL_ERROR,
                                                                     f"drygate: {e.reason}")))
            return
        name = config["name"]
        store = self.stores.get(name)
        missed = self.skipped.get(name, 0) + (store.writes if store is not None else 0)
        result = reply.get("result")
        out = dict(reply, id=message["id"])
        if isinstance(result, dict) and missed:
            note = honesty.stale_read_note(run_id, missed, why)
            out["result"] = honesty.mark_result(result, note, {
                "executed": True, "simulated": False, "read_your_writes": False, "run_id": run_id,
                "overlay": {"server": self.relay.server, "name": name, "kind": config["kind"], "fallback": why}})
        await self.relay.send_to_client(results.encode(out))
        text = json.dumps(result if result is not None else reply.get("error"))
        self._record(run_id, str(message["id"]), tool, {
            "read_fingerprint": result_fingerprint(result) if isinstance(result, dict) else None,
            "bytes": len(text), "error": not isinstance(result, dict)}, False)

    # -- bookkeeping --------------------------------------------------------------------------
    async def _store(self, config, run_id):
        """The run's overlay for ``config`` (opened once per connection), or None when it cannot be had."""
        name = config["name"]
        if name in self.stores:
            return self.stores[name]
        if name in self.failed:
            return None
        from drygate.overlay.shadow import shadow_root

        self.run_id = run_id
        try:
            store = await asyncio.to_thread(open_overlay, shadow_root(self.relay.settings.project_dir), run_id, config)
        except OverlayUnavailable as e:
            self.failed[name] = e
            self._event(run_id, dict(e.as_dict(), event="fallback", name=name, kind=config["kind"]))
            return None
        self.stores[name] = store
        self._event(run_id, {"event": "made" if store.made else "joined", "name": name, "kind": config["kind"],
                             "path": store.path, "created_at": store.created_at})
        return store

    async def _stop(self, store, config, run_id, error):
        """The overlay cannot go on: plain dry results from now on, for every relay of the run."""
        await asyncio.to_thread(store.set_fallback, error)
        self._event(run_id, dict(error.as_dict(), event="fallback", name=config["name"], kind=config["kind"]))

    def _record(self, run_id, call_id, tool, entry, write):
        try:
            gate = self.relay.gate.gate or self.relay.gate.current()  # the gate that decided the call
            gate.store.record_result(run_id, call_id, qualified(self.relay.server, tool), entry, time.time())
        except Exception as e:  # the call was answered: report (a write's), never fail the client
            if write:
                self.relay.report_failure(e, tool, run_id, call_id)

    def _event(self, run_id, event):
        try:
            self.relay.gate.current().store.record_result(run_id, None, OVERLAY_PREFIX + self.relay.server, event,
                                                          time.time())
        except Exception as e:  # the journal is the plan's source: report it, never fail the client
            self.relay.report_failure(e, None, run_id, None)

    async def close(self):
        """Let go of the run's overlays (removed when no other process of the run holds them)."""
        stores, self.stores = self.stores, {}
        for name, store in stores.items():
            size, removed = await asyncio.to_thread(store.release)
            self._event(store.run_id, {"event": "closed", "name": name, "kind": store.KIND, "bytes": size,
                                       "removed": removed, "writes": self.writes.get(name, 0),
                                       "reads": self.reads.get(name, 0)})


def _what(store, arguments):
    """The key a read or write names, as the overlay's ReadRecords name it."""
    if store.KIND == "objects":
        return (arguments.get("bucket"), arguments.get("key", "list:" + str(arguments.get("prefix", ""))))
    return arguments.get("key")


def _when(ts):
    from drygate.overlay.honesty import when

    return when(ts)
