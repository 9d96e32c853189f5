"""Shadow servers: a dry run's calls go to a second instance of the server, on a copy of its state.

``drygate mcp --name NAME --shadow PATH [--shadow PATH2] [--shadow-max-mb N] -- command``
names the server's local state. When the connection's run goes dry (the first dry
decision of the run here, or the first call of a run that is already dry), the relay
makes the run's copy of each state path (drygate.overlay.shadow: reflinks where the file
system has them, the SQLite backup API for live databases) and starts the same server
with every occurrence of the state paths in its command, environment and working folder
replaced by the copies, replaying the client's handshake to it. The shadow server runs
under bubblewrap (drygate.overlay.shadow.sandbox_prefix): the file system read-only but
for its shadow folder (the copy and a scratch folder given as TMPDIR), so a call that
writes elsewhere (``VACUUM INTO '/any/file'``, ``ATTACH``) fails in the shadow; and
without network (a network namespace of its own), so a server that also writes to a
network service (an object store, an API, a database server) cannot do so from its
shadow; ``--shadow-allow-network`` lifts the network part for a server whose every
effect is on its local state. Without bubblewrap there is no shadow: plain dry results
(never live). From then on every
message of the connection goes to the shadow, tools/call reads included, translated
real -> copy on the way in and copy -> real on the way out; the real server keeps running
but gets no more calls (the relay still asks it for tool lists).

The gate is unchanged: every call is decided and journaled as before (dry for writes), so
the plan and apply are the same as without shadows. What changes is the answer: a dry
write returns the shadow server's real result, marked as simulated in its text and
``_meta["drygate"]`` (drygate.overlay.honesty), and a read shows the run's own writes.

Journal (kind ``result``, tool name ``drygate/shadow/<server>``), one entry per event::

    {"event": "made" | "joined", "paths": [...], "bytes", "seconds", "limit", "dir"}
    {"event": "fallback", "reason", "code", "bytes", "limit"}   # plain dry results from here on
    {"event": "closed", "bytes", "removed", "writes", "reads"}

Reads the shadow served are journaled with ``served_by: "shadow"``; only those served
before the run's first simulated write carry a fingerprint (the plan's basis: the copy
was the real state then); later ones say why they are not a basis.

Fallback (never a live write): when the copy cannot be made (larger than the limit, a
symbolic link out of a folder, a state path the command does not name), when bubblewrap
cannot run here, when the shadow
server cannot start or keeps dying, or when the copy grows past the limit, the run's
dry writes get plain "not executed" results that say there is no read-your-writes and
why, and its reads, which then come from the real server, say which of the run's writes
they miss.
"""

import asyncio
import os
import time

from drygate.overlay.shadow import SHADOW_PREFIX
from drygate.relay import results
from drygate.relay.core import Route
from drygate.relay.protocol import REPLAY_ID, id_key, qualified
from drygate.types import SKIP_DRY

#: Seconds between two size checks of a shadow that the run writes to.
SIZE_CHECK_S = 1.0


class _Call:
    """A tools/call sent to the shadow: ``name`` as the server knows it, ``tool`` qualified."""

    __slots__ = ("name", "tool", "call_id", "run_id", "decision", "dry", "after_writes", "modern", "schema")

    def __init__(self, name, tool, call_id, run_id, decision, dry, after_writes, modern, schema):
        self.name = name
        self.tool = tool
        self.call_id = call_id
        self.run_id = run_id
        self.decision = decision
        self.dry = dry
        self.after_writes = after_writes
        self.modern = modern
        self.schema = schema


class ShadowRoute(Route):
    """The shadow side of one relay (:class:`drygate.relay.core.Relay`).

    ``config``: :class:`drygate.overlay.shadow.ShadowConfig`; ``root``: the folder of the
    project's shadows. ``shadow`` (drygate.overlay.shadow.Shadow) and ``downstream`` (the
    shadow server) exist once the run went dry; ``unavailable``
    (:class:`drygate.overlay.base.OverlayUnavailable`) once the run fell back.
    """

    def __init__(self, relay, config, root):
        self.relay = relay
        self.config = config
        self.root = root
        self.run_id = None
        self.shadow = None
        self.downstream = None
        self.cwd = None
        self.unavailable = None
        self.pending = {}  # request id key -> method, requests sent to the shadow
        self.calls = {}  # request id key -> _Call, tools/call sent to the shadow
        self.server_requests = {}  # relay's id key -> (the shadow's id, method), requests the shadow sent
        self.skipped = 0  # dry writes of the run answered plainly (no shadow)
        self.stale = {}  # request id key -> note, for real reads of a run without its shadow
        self.reads = 0
        self._next_id = 0
        self._size_checked = 0.0
        self._journaled_fallback = False

    @property
    def active(self):
        """True while the run's calls go to a running shadow server."""
        return self.downstream is not None and self.unavailable is None and not self.downstream.gone

    # -- tools/call ---------------------------------------------------------------------------
    async def tools_call(self, message, decision, run_id, tool, modern):
        """Route a decided call (``allow`` or ``dry``); returns True when it was answered or sent here.

        False: the relay forwards it to the real server as usual (a live run, or a read of a
        run without a shadow). Raises like the gate (GuardFailure) when the run's state
        cannot be read.
        """
        dry = decision.action == SKIP_DRY
        if self.shadow is None and self.unavailable is None:
            if not dry and not self.relay.run_is_dry(run_id):
                return False
            await self._start(run_id)
        if self.downstream is not None and self.downstream.gone and self.unavailable is None:
            from drygate.overlay.base import OverlayUnavailable

            self._fall_back(OverlayUnavailable(f"the shadow server of {self.relay.server} exited too often", "gone"))
        if self.active:
            await self._send_call(message, decision, run_id, tool, modern, dry)
            return True
        return await self._without_shadow(message, decision, tool, modern, dry)

    async def _without_shadow(self, message, decision, tool, modern, dry, why=None):
        from drygate.overlay import honesty

        whole_run = why is None
        why = why or (self.unavailable.reason if self.unavailable is not None else "no shadow")
        if dry:
            self.skipped += 1
            schema = (self.relay.tools.get(tool) or {}).get("outputSchema") if isinstance(tool, str) else None
            answer = results.not_executed(message["id"], decision, tool, schema, modern)
            result = answer["result"]
            result["content"][0]["text"] += honesty.fallback_note(why, whole_run)
            result["_meta"][results.META_KEY].update({"simulated": False, "read_your_writes": False,
                                                      "shadow": {"server": self.relay.server, "fallback": why}})
            await self.relay.send_to_client(results.encode(answer))
            return True
        missed = self.skipped + (self.shadow.writes if self.shadow is not None else 0)
        if missed:
            self.stale[id_key(message["id"])] = (honesty.stale_read_note(self.relay.runs.run_id, missed, why), why)
        return False

    def from_real(self, key, message):
        """A real server's answer to a read of a run without its shadow, marked when it misses the run's writes.

        Returns the message to send (the same object when nothing was marked)."""
        entry = self.stale.pop(key, None)
        if entry is None or not isinstance(message.get("result"), dict):
            return message
        from drygate.overlay import honesty

        note, why = entry
        meta = {"executed": True, "simulated": False, "read_your_writes": False, "run_id": self.relay.runs.run_id,
                "shadow": {"server": self.relay.server, "fallback": why}}
        return dict(message, result=honesty.mark_result(message["result"], note, meta))

    async def _send_call(self, message, decision, run_id, tool, modern, dry):
        shadow = self.shadow
        params = shadow.pathmap.to_copy(message.get("params") or {})
        if dry:
            leaks = shadow.pathmap.leaks(params.get("arguments") if isinstance(params, dict) else params, cwd=self.cwd)
            if leaks:
                return await self._without_shadow(
                    message, decision, tool, modern, True,
                    why=f"this call names the real state ({leaks[0]}) in a way the shadow cannot redirect")
        key = id_key(message["id"])
        schema = (self.relay.tools.get(tool) or {}).get("outputSchema")
        self.calls[key] = _Call(tool, qualified(self.relay.server, tool), str(message["id"]), run_id, decision, dry,
                                shadow.writes > 0, modern, schema)
        self.pending[key] = "tools/call"
        if dry:
            shadow.note_write()
        await self._send(dict(message, params=params), key)

    async def _send(self, message, key):
        try:
            await self.downstream.send(results.encode(message))
        except ConnectionError as e:
            self.pending.pop(key, None)
            self.calls.pop(key, None)
            await self.relay.send_to_client(results.encode(results.error(
                message.get("id"), results.INTERNAL_ERROR,
                f"drygate: the shadow of the MCP server {self.relay.server!r} is not running ({e}); the request "
                f"was not delivered")))

    # -- everything else from the client ------------------------------------------------------
    async def decided_request(self, message, decision, run_id):
        """A decided request other than tools/call (``resources/read``, ``prompts/get``, ...).

        In a run that is dry (or goes dry with this decision) it goes to the run's shadow
        server, started if need be; True when sent there. False: the relay answers a dry one
        "not executed" and forwards an allowed one to the real server."""
        dry = decision.action == SKIP_DRY
        if self.shadow is None and self.unavailable is None:
            if not dry and not self.relay.run_is_dry(run_id):
                return False
            await self._start(run_id)
        if not self.active:
            return False
        return await self.client_message(message)

    async def client_message(self, message):
        """A client message that is not a tools/call. Returns True when it was handled here.

        Answers to requests the shadow sent go back to the shadow; while the shadow is
        active, requests go to it and notifications go to both servers (False: the relay
        forwards to the real server as well).
        """
        if "method" not in message and "id" in message:
            entry = self.server_requests.pop(id_key(message["id"]), None)
            if entry is None:
                return False
            if self.downstream is not None and not self.downstream.gone:
                original, method = entry
                answer = self._to_shadow(dict(message, id=original), method)
                try:
                    await self.downstream.send(results.encode(answer))
                except ConnectionError:
                    pass
            return True
        if not self.active:
            return False
        if "id" in message:
            key = id_key(message["id"])
            translated = self._to_shadow(message)
            if translated is None:
                await self.relay.send_to_client(results.encode(results.error(
                    message["id"], results.INVALID_REQUEST,
                    f"drygate: this request names the real state of {self.relay.server!r} in a way its shadow "
                    f"cannot redirect; it was not delivered")))
                return True
            self.pending[key] = message["method"]
            await self._send(translated, key)
            return True
        translated = self._to_shadow(message)
        if translated is not None:
            try:
                await self.downstream.send(results.encode(translated))
            except ConnectionError:
                pass
        return False

    async def batch(self, messages):
        """A JSON-RPC batch without tools/call while the shadow is active; returns True when sent here."""
        if not self.active:
            return False
        translated = [self._to_shadow(m) if isinstance(m, dict) else m for m in messages]
        if any(t is None for t in translated):
            for m in messages:
                if isinstance(m, dict) and "id" in m and "method" in m:
                    await self.relay.send_to_client(results.encode(results.error(
                        m["id"], results.INVALID_REQUEST,
                        "drygate: this batch names the real state in a way the shadow cannot redirect")))
            return True
        for m in messages:
            if isinstance(m, dict) and "id" in m and "method" in m:
                self.pending[id_key(m["id"])] = m["method"]
        try:
            await self.downstream.send(results.encode(translated))
        except ConnectionError:
            pass
        return True

    def _to_shadow(self, message, answers=None):
        """``message`` translated for the shadow, or None when it would still name the real state.

        ``answers``: the method of the shadow's request this message answers (roots are
        kept only where they fall inside a copy)."""
        pathmap = self.shadow.pathmap
        translated = pathmap.to_copy(message)
        if answers == "roots/list" and isinstance(translated.get("result"), dict):
            roots = translated["result"].get("roots")
            if isinstance(roots, list):
                copies = [p["copy"] for p in self.shadow.paths()]
                kept = [r for r in roots if isinstance(r, dict) and isinstance(r.get("uri"), str)
                        and any(_uri_within(r["uri"], c) for c in copies)]
                translated["result"] = dict(translated["result"], roots=kept)
        if pathmap.leaks(translated):
            if answers is not None:
                return {"jsonrpc": "2.0", "id": message.get("id"),
                        "error": {"code": results.INTERNAL_ERROR,
                                  "message": "drygate: the answer named the real state; withheld from the shadow"}}
            return None
        return translated

    # -- from the shadow server ---------------------------------------------------------------
    async def _from_shadow(self, line):
        text = line.strip()
        if not text:
            return
        try:
            message = results.decode(text)
        except (ValueError, UnicodeDecodeError, RecursionError):
            await self.relay.send_to_client(line if line.endswith(b"\n") else line + b"\n")
            return
        if self.shadow is not None and self.shadow.pathmap.mentions_copy(text):
            message = self.shadow.pathmap.to_real(message)
        call = None
        if isinstance(message, dict) and "id" in message:
            if "method" in message:  # a request of the shadow to the client: an id of the relay's own
                self._next_id += 1
                relay_id = f"drygate-shadow-{self._next_id}"
                self.server_requests[id_key(relay_id)] = (message["id"], message["method"])
                message = dict(message, id=relay_id)
            else:
                if message["id"] == REPLAY_ID:
                    return
                key = id_key(message["id"])
                method = self.pending.pop(key, None)
                call = self.calls.pop(key, None)
                message = results.without_server_info(message)
                result = message.get("result")
                if method == "tools/list" and isinstance(result, dict):
                    self.relay.learn_tools(result)
                if call is not None:
                    original = message
                    message = self._mark(message, call)
        await self.relay.send_to_client(results.encode(message))
        if call is not None:
            self._journal_call(original, call)
            if call.dry:
                await self._check_size()

    def _mark(self, message, call):
        from drygate.overlay import honesty

        d = call.decision
        shadow = self.shadow
        base = {"decision": d.action, "run_id": d.run_id, "call": d.call, "seq": d.seq, "effect": d.effect,
                "rule_id": d.rule_id}
        reflects = call.dry or call.after_writes
        meta = honesty.simulated_meta(base, shadow.describe(), "shadow", reflects)
        what = (f"run {call.run_id}'s private copy of the {self.relay.server} server's state "
                f"({', '.join(p['real'] for p in shadow.paths())}, copied at {honesty.when(shadow.created_at)})")
        if call.dry:
            meta["reason"] = d.reason
            if call.schema and isinstance(call.schema.get("properties"), dict):
                meta["simulated_outputs"] = sorted(call.schema["properties"])
            if d.call is not None:
                meta["reference"] = f"drygate:ref:{d.call}"
                meta["references"] = {name: f"drygate:ref:{d.call}:{name}" for name in meta.get("simulated_outputs", ())}
            note = honesty.write_note(call.run_id, d.call, d.effect, what)
        else:
            note = honesty.read_note(call.run_id, f"a private copy of the {self.relay.server} server's state",
                                     shadow.writes if call.after_writes else 0)
        if isinstance(message.get("result"), dict):
            return dict(message, result=honesty.mark_result(message["result"], note, meta))
        if isinstance(message.get("error"), dict):
            error = dict(message["error"])
            data = error.get("data")
            if data is None or isinstance(data, dict):
                error["data"] = dict(data or {}, **{results.META_KEY: meta})
            error["message"] = f"{error.get('message', '')} [drygate: simulated on the run's shadow copy]"
            return dict(message, error=error)
        return message

    def _journal_call(self, message, call):
        """Journal a call the shadow answered: a write's simulated result, a read's basis (or why it is none)."""
        import json

        from drygate.plan.fingerprint import result_fingerprint

        result = message.get("result", message.get("error"))
        text = json.dumps(result)
        if call.dry:
            entry = {"simulated": True, "served_by": "shadow", "error": "error" in message,
                     "result": result if len(text) <= 64 * 1024 else {"truncated": True, "chars": len(text),
                                                                       "head": text[:64 * 1024]}}
        else:
            self.reads += 1
            basis = not call.after_writes and "result" in message
            fp = result_fingerprint(result) if basis else None
            self.shadow.record_read(call.tool, fp)
            entry = {"read_fingerprint": fp, "bytes": len(text), "error": "error" in message, "served_by": "shadow",
                     "reflects_run_writes": call.after_writes}
            if call.after_writes:
                entry["why"] = ("served by the run's shadow after the run's own simulated writes, so it is not a "
                                "fact about the real system: not re-checked by apply")
        try:
            gate = self.relay.gate.gate or self.relay.gate.current()  # the gate that decided the call
            gate.store.record_result(call.run_id, call.call_id, call.tool, entry, time.time())
        except Exception as e:  # the call was answered: report (a write's), never fail the client
            if call.dry:
                self.relay.report_failure(e, call.name, call.run_id, call.call_id)

    async def _shadow_exited(self, code):
        for key in list(self.pending):
            self.pending.pop(key, None)
            self.calls.pop(key, None)
            import json

            await self.relay.send_to_client(results.encode(results.error(
                json.loads(key), results.INTERNAL_ERROR,
                f"drygate: the shadow of the MCP server {self.relay.server!r} exited (status {code}) before "
                f"answering; it is being restarted on the same copy. The simulated call may or may not have run "
                f"on the copy; nothing ran on the real system.")))

    # -- lifetime -----------------------------------------------------------------------------
    async def _start(self, run_id):
        """Make the run's shadow and start the shadow server, or fall back (never raises OverlayUnavailable)."""
        from drygate.overlay.base import OverlayUnavailable
        from drygate.overlay.shadow import Shadow
        from drygate.relay.downstream import Downstream

        self.run_id = run_id
        try:
            shadow = await asyncio.to_thread(Shadow.open, self.root, run_id, self.relay.server, self.config)
        except OverlayUnavailable as e:
            self._fall_back(e)
            return
        real = self.relay.downstream
        try:
            argv, env, cwd = shadow.command(real.command, real.env if real.env is not None else dict(os.environ),
                                            os.getcwd())
            env = dict(env, **self.relay.shadow_env(self.config.network))  # e.g. the store overlays' shadow_env
            from drygate.overlay.shadow import sandbox_prefix

            argv = await asyncio.to_thread(sandbox_prefix, shadow, self.config.network, cwd) + argv
        except OverlayUnavailable as e:
            await asyncio.to_thread(shadow.release)
            self._fall_back(e)
            return
        downstream = Downstream(argv, env, self._from_shadow, self._shadow_exited, cwd=cwd)
        downstream.replay = list(real.replay)
        try:
            await downstream.start(replay=True)
        except (OSError, ConnectionError) as e:
            await asyncio.to_thread(shadow.release)
            self._fall_back(OverlayUnavailable(f"the shadow server could not start: {e}", "start_failed"))
            return
        self.shadow, self.downstream, self.cwd = shadow, downstream, cwd
        m = shadow.manifest
        self._journal({"event": "made" if shadow.made else "joined", "server": self.relay.server,
                       "paths": m["paths"], "bytes": m["bytes"], "seconds": m["seconds"], "limit": m["limit"],
                       "created_at": m["created_at"], "dir": shadow.dir})

    def _fall_back(self, error):
        self.unavailable = error
        if not self._journaled_fallback:
            self._journaled_fallback = True
            self._journal(dict(error.as_dict(), event="fallback", server=self.relay.server))

    async def _check_size(self):
        now = time.monotonic()
        if now - self._size_checked < SIZE_CHECK_S or self.shadow is None or self.unavailable is not None:
            return
        self._size_checked = now
        size = await asyncio.to_thread(self.shadow.size_bytes)
        if size > self.config.max_bytes:
            from drygate.overlay.base import OverlayUnavailable

            self._fall_back(OverlayUnavailable(
                f"the run's shadow of {self.relay.server} grew to {size / 1048576:.1f} MB, past the limit of "
                f"{self.config.max_bytes / 1048576:g} MB", "too_large", size, self.config.max_bytes))
            await self.downstream.close()

    def _journal(self, event):
        run_id = self.run_id or self.relay.runs.run_id
        try:
            self.relay.gate.current().store.record_result(run_id, None, SHADOW_PREFIX + self.relay.server, event,
                                                          time.time())
        except Exception as e:  # the journal is the plan's source: report it, never fail the client
            self.relay.report_failure(e, None, run_id, None)

    async def close(self):
        """Stop the shadow server and let go of the copy (removed when no other process of the run holds it)."""
        if self.downstream is not None:
            await self.downstream.close()
        if self.shadow is not None:
            size, removed = await asyncio.to_thread(self.shadow.release)
            self._journal({"event": "closed", "server": self.relay.server, "bytes": size, "removed": removed,
                           "writes": self.shadow.writes, "reads": self.reads})
            self.shadow = None


def _uri_within(uri, folder):
    from urllib.parse import unquote, urlparse

    if uri.startswith("file://"):
        path = unquote(urlparse(uri).path)
    elif uri.startswith("/"):
        path = uri
    else:
        return False
    path = os.path.normpath(path)
    return path == folder or path.startswith(folder.rstrip("/") + "/")
