"""Store overlays: a run's simulated writes to a remote store, on disk, over the real store.

A shadow (:mod:`drygate.overlay.shadow`) copies a server's local state; a store whose state
is remote (an S3 bucket, a Redis key-value store) cannot be copied, so a dry run's writes to
it go to a **store overlay** instead: a per-run SQLite file that holds what the run wrote
(objects or values, and a deletion marker for each key it deleted), read first by every read
of the run; what the run did not touch is read from the real store, through the real
server's own read tools (drygate.relay.overlays makes those reads, as the gate allows).

Layout (next to the run's shadows, so one run's relays share it and it is removed with
them, by the last process of the run that lets go or by ``drygate prune``)::

    <project>/.drygate/mcp-shadows/<run key>/
        run.json, .holders                   as for shadows (drygate.overlay.shadow)
        <server>.<name>.overlay.db           one overlay (SQLite, WAL), e.g. stack.objects.overlay.db

The operations are synchronous and know nothing of MCP. Each takes the call's arguments
and ``real``, a dict of the real store's answers fetched so far; when it needs another
real read it raises :class:`NeedRead` (the tool role and its arguments), the caller makes
that read, adds the :class:`RealAnswer` to ``real`` and calls the operation again. A write
runs in one ``BEGIN IMMEDIATE`` transaction, so two relays of one run never interleave
their checks and writes; entries only ever appear (a deletion is a marker), so a retry
that finds an entry another relay made meanwhile uses it instead of the real answer.

Implementations: :class:`drygate.overlay.objects.ObjectOverlay` (kind ``objects``) and
:class:`drygate.overlay.keyvalue.KeyValueOverlay` (kind ``key-value``); :func:`open_overlay`
opens either; :func:`overlay_summary` reads a run's overlay events from its journal.
"""

import json
import os
import sqlite3
import time

from drygate.overlay.base import OVERLAY, REAL, Overlay, OverlayUnavailable, ReadRecord

FORMAT = "drygate.store-overlay/1"
SUFFIX = ".overlay.db"
#: Journal entries (kind "result") about a run's store overlays: tool name ``drygate/overlay/<server>``.
OVERLAY_PREFIX = "drygate/overlay/"
#: How long a relay waits for another relay of the same run holding the overlay's write lock (s).
BUSY_TIMEOUT_S = 30.0
#: Bytes counted per entry on top of its key and body (the row, the index).
ENTRY_OVERHEAD = 64


def read_key(role, arguments):
    """The key of a real read in ``real``: the role and the canonical JSON of its arguments (str)."""
    return role + " " + json.dumps(arguments, sort_keys=True, ensure_ascii=False)


class NeedRead(Exception):
    """An operation needs the real store's answer to ``role`` (a tool role) with ``arguments`` (dict)."""

    def __init__(self, role, arguments):
        super().__init__(f"needs {role} {arguments!r}")
        self.role = role
        self.arguments = arguments

    @property
    def key(self):
        """Where the answer goes in ``real`` (:func:`read_key`)."""
        return read_key(self.role, self.arguments)


class Unsupported(Exception):
    """The overlay cannot simulate this call (arguments it does not understand); ``reason``: why."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class RealAnswer:
    """What the real server answered to a read: ``ok`` (not an error), ``value`` (its
    ``structuredContent``, a dict, or None), ``text`` (its first text item) and ``result``
    (the ``CallToolResult`` dict as the server sent it, to pass on unchanged)."""

    __slots__ = ("ok", "result", "text", "value")

    def __init__(self, ok, value=None, text="", result=None):
        self.ok = ok
        self.value = value
        self.text = text
        self.result = result

    @classmethod
    def from_result(cls, result):
        """A RealAnswer from a ``CallToolResult`` dict (a JSON-RPC error's message counts as an error)."""
        if not isinstance(result, dict):
            return cls(False, None, str(result), None)
        text = ""
        for item in result.get("content") or []:
            if isinstance(item, dict) and item.get("type") == "text":
                text = item.get("text") or ""
                break
        value = result.get("structuredContent")
        if not isinstance(value, dict) and not result.get("isError") and text:
            try:
                value = json.loads(text)
            except ValueError:
                value = None
        return cls(not result.get("isError"), value if isinstance(value, dict) else None, text, result)

    def __repr__(self):
        return f"RealAnswer(ok={self.ok}, value={self.value!r})"


class Answer:
    """What an overlay operation answers.

    ``ok``: a result (``value``, the structured result as the server would return it)
    or an error (``message``, the server's own message for it, without the SDK's "Error
    executing tool" prefix); ``real_result``: the real server's answer to pass on
    unchanged (a read of what the run did not touch), else None; ``reflects``: the
    answer includes the run's own simulated writes; ``wrote``: a simulated write was
    kept; ``values``: ``{field: how the overlay computed it}`` for the values a live call
    would get from the store.
    """

    __slots__ = ("message", "ok", "real_result", "reflects", "value", "values", "wrote")

    def __init__(self, ok, value=None, message=None, real_result=None, reflects=False, wrote=False, values=None):
        self.ok = ok
        self.value = value
        self.message = message
        self.real_result = real_result
        self.reflects = reflects
        self.wrote = wrote
        self.values = values or {}

    @classmethod
    def passthrough(cls, real):
        """The real server's answer (a :class:`RealAnswer`), unchanged."""
        return cls(real.ok, real.value, None if real.ok else real.text, real.result)

    @classmethod
    def error(cls, message, reflects=False):
        """An error the live call would get: ``message`` as the server words it."""
        return cls(False, None, message, reflects=reflects)

    def __repr__(self):
        return f"Answer(ok={self.ok}, value={self.value!r}, message={self.message!r})"


def need(real, role, arguments):
    """The real answer to ``role`` with ``arguments`` from ``real``; raises :class:`NeedRead` when absent."""
    answer = real.get(read_key(role, arguments))
    if answer is None:
        raise NeedRead(role, arguments)
    return answer


def argument(arguments, name, kinds, required=False, default=None, choices=None):
    """``arguments[name]`` when it is one of ``kinds`` (bool is never an int) and in ``choices``.

    Missing: ``default``, or :class:`Unsupported` when ``required``. A value the server's
    schema would refuse raises :class:`Unsupported` (the overlay does not imitate schema errors)."""
    if name not in arguments or (arguments[name] is None and not required):
        if required:
            raise Unsupported(f"the argument {name!r} is missing")
        return default
    value = arguments[name]
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        raise Unsupported(f"the argument {name!r} has an unexpected type ({type(value).__name__})")
    if choices is not None and value not in choices:
        raise Unsupported(f"the argument {name!r} is not one of {', '.join(repr(c) for c in choices)}")
    return value


class OverlayStore(Overlay):
    """One run's overlay of one store of one server, in a SQLite file (see the module docstring).

    Open it with :meth:`open`. ``run_id``, ``server``, ``name`` (the policy's overlay
    name), ``path`` (the file), ``max_bytes`` (what it may keep), ``created_at`` (epoch
    s), ``made`` (True when this process made the file; False: it joined another relay's).
    Subclasses set ``KIND``, ``SCHEMA`` and implement ``op_<role>(conn, arguments, real)``.
    """

    KIND = None
    SCHEMA = ()

    def __init__(self, run_id, server, name, path, conn, holder, run_dir, max_bytes, created_at, made, clock):
        self.run_id = run_id
        self.server = server
        self.name = name
        self.path = path
        self.conn = conn
        self.run_dir = run_dir
        self.max_bytes = max_bytes
        self.created_at = created_at
        self.made = made
        self.clock = clock
        self._holder = holder
        self._reads = []

    @classmethod
    def open(cls, root, run_id, server, name, max_bytes, clock=time.time):
        """Make (or join) the overlay ``name`` of ``server`` for ``run_id`` under ``root`` (the shadows' folder).

        The process holds the run's folder until :meth:`release`. Raises
        :class:`OverlayUnavailable` (``copy_failed``) when the file cannot be made or read."""
        from drygate.overlay.shadow import (
            _Holder,
            _safe_name,
            _try_remove_run,
            _write_json,
            run_key,
        )

        run_dir = os.path.join(root, run_key(run_id))
        holder = None
        conn = None
        try:
            holder = _Holder(run_dir)
            info = os.path.join(run_dir, "run.json")
            if not os.path.exists(info):
                _write_json(info, {"run_id": run_id, "created_at": clock()})
            path = os.path.join(run_dir, f"{_safe_name(server)}.{name}{SUFFIX}")
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # a simulation: a power loss may lose it, never the real store
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
                for statement in cls.SCHEMA:
                    conn.execute(statement)
                meta = dict(conn.execute("SELECT name, value FROM meta"))
                made = "created_at" not in meta
                if made:
                    now = clock()
                    conn.executemany("INSERT INTO meta VALUES (?, ?)", [
                        ("format", FORMAT), ("kind", cls.KIND), ("run_id", run_id), ("server", server),
                        ("created_at", repr(now)), ("bytes", "0"), ("writes", "0")])
                    created_at = now
                else:
                    if meta.get("format") != FORMAT or meta.get("kind") != cls.KIND or meta.get("run_id") != run_id:
                        raise OverlayUnavailable(f"{path} is not this run's {cls.KIND} overlay", "copy_failed")
                    created_at = float(meta["created_at"])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except (OSError, sqlite3.Error, OverlayUnavailable) as e:
            if conn is not None:
                conn.close()
            if holder is not None:
                holder.release()
                _try_remove_run(run_dir)
            if isinstance(e, OverlayUnavailable):
                raise
            raise OverlayUnavailable(f"cannot make the run's {cls.KIND} overlay of {server}: {e}", "copy_failed") from e
        return cls(run_id, server, name, path, conn, holder, run_dir, max_bytes, created_at, made, clock)

    # -- transactions and bookkeeping ----------------------------------------------------------
    def _transaction(self):
        return _Transaction(self.conn)

    def _meta(self, name, default=None):
        row = self.conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row else default

    def _set_meta(self, name, value):
        self.conn.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                          (name, str(value)))

    def _count_write(self, delta_bytes):
        """Within a write transaction: one more simulated write, ``delta_bytes`` more kept.

        Raises :class:`OverlayUnavailable` (``too_large``) past ``max_bytes`` (the transaction is rolled back)."""
        size = int(self._meta("bytes", "0")) + delta_bytes
        if self.max_bytes is not None and size > self.max_bytes:
            raise OverlayUnavailable(
                f"run {self.run_id}'s {self.KIND} overlay of {self.server} would keep {size / 1048576:.1f} MB, past "
                f"its limit of {self.max_bytes / 1048576:g} MB (max_mb in the policy's [[overlays]])",
                "too_large", size, self.max_bytes)
        self._set_meta("bytes", size)
        self._set_meta("writes", int(self._meta("writes", "0")) + 1)

    @property
    def writes(self):
        """How many simulated writes the run made in this overlay (every relay of the run counted)."""
        return int(self._meta("writes", "0"))

    def fallback(self):
        """The reason the run's overlay stopped (``OverlayUnavailable.as_dict()``), or None while it works."""
        value = self._meta("fallback")
        return json.loads(value) if value else None

    def set_fallback(self, error):
        """Stop the overlay for every relay of the run: from now on plain dry results (``error``: OverlayUnavailable)."""
        with self._transaction():
            if self._meta("fallback") is None:
                self._set_meta("fallback", json.dumps(error.as_dict()))

    def run(self, role, arguments, real):
        """Answer a call of ``role`` (an :class:`Answer`); raises :class:`NeedRead`, :class:`Unsupported`,
        :class:`OverlayUnavailable` (the overlay cannot go on: too large, a real read it needs failed)."""
        op = getattr(self, "op_" + role, None)
        if op is None:
            raise Unsupported(f"the {self.KIND} overlay has no role {role!r}")
        if not isinstance(arguments, dict):
            raise Unsupported("the arguments are not an object")
        return op(arguments, real)

    def describe(self):
        """What this overlay is, for ``_meta`` and the journal (JSON-ready dict)."""
        return {"kind": self.KIND, "server": self.server, "name": self.name, "made_at": self.created_at,
                "path": self.path}

    # -- the Overlay interface ------------------------------------------------------------------
    def note_write(self, what=None):
        """Not used: a store overlay counts its writes itself. Raises TypeError."""
        raise TypeError(f"{type(self).__name__}: writes go through run(role, arguments, real)")

    def served_from(self, what=None):
        """``"overlay"`` when the run wrote ``what`` (a key), else ``"real"``."""
        return OVERLAY if what is not None and self.has_entry(what) else REAL

    def has_entry(self, what):
        """True when the run wrote or deleted ``what`` (a key as the subclass names it)."""
        raise NotImplementedError

    def record_read(self, what, fingerprint=None, source=None):
        """Keep a :class:`ReadRecord` (``source`` ``"real"``: the real store's answer, as of now)."""
        source = source or self.served_from(what)
        record = ReadRecord(what, source, fingerprint, self.clock() if source == REAL else None)
        self._reads.append(record)
        return record

    def reads(self):
        """The reads recorded by this process, in order (list of :class:`ReadRecord`)."""
        return list(self._reads)

    def size_bytes(self):
        """What the overlay keeps (bytes: bodies or values, keys, and a row overhead per entry)."""
        try:
            return int(self._meta("bytes", "0"))
        except sqlite3.Error:
            return 0

    def release(self):
        """Let go of the run's folder; removed when no other process of the run holds it.

        Returns ``(bytes, removed)``. Idempotent."""
        from drygate.overlay.shadow import _try_remove_run

        if self._holder is None:
            return 0, False
        size = self.size_bytes()
        self.conn.close()
        self._holder.release()
        self._holder = None
        return size, _try_remove_run(self.run_dir)

    def close(self):
        """:meth:`release`; returns the size in bytes."""
        return self.release()[0]


class _Transaction:
    """``with store._transaction():`` one ``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on any exception)."""

    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind, value, tb):
        self.conn.execute("COMMIT" if kind is None else "ROLLBACK")
        return False


KINDS = {"objects": "drygate.overlay.objects:ObjectOverlay", "key-value": "drygate.overlay.keyvalue:KeyValueOverlay"}


def overlay_class(kind):
    """The :class:`OverlayStore` subclass of ``kind`` (``"objects"``, ``"key-value"``)."""
    import importlib

    module, _, name = KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def open_overlay(root, run_id, config, clock=time.time):
    """Open the overlay a policy's ``[[overlays]]`` entry (compiled: drygate.policy.load) describes, for ``run_id``."""
    return overlay_class(config["kind"]).open(root, run_id, config["server"], config["name"], config["max_bytes"],
                                              clock)


def overlay_files(run_dir):
    """``{file name: bytes}`` of the store overlays in a run's folder (their WAL files included)."""
    found = {}
    try:
        entries = list(os.scandir(run_dir))
    except OSError:
        return found
    for entry in entries:
        base = entry.name
        for extra in ("-wal", "-shm"):
            if base.endswith(SUFFIX + extra):
                base = base[:-len(extra)]
        if base.endswith(SUFFIX):
            try:
                found[base] = found.get(base, 0) + entry.stat(follow_symlinks=False).st_size
            except OSError:
                pass
    return found


def overlay_summary(entries):
    """What a run's journal says about its store overlays, for the plan (JSON-ready list)::

        [{"server", "name", "kind", "made_at", "joined": bool, "writes", "reads", "final_bytes",
          "removed", "fallback": {"reason", "code", "bytes", "limit"} | None}]

    ``entries``: the run's journal (list of dicts). Events are journaled by drygate.relay.overlays.
    """
    by_name = {}
    for e in entries:
        tool = e.get("tool_name") or ""
        if e.get("kind") != "result" or not tool.startswith(OVERLAY_PREFIX) or not isinstance(e.get("result"), dict):
            continue
        event = e["result"]
        key = (tool[len(OVERLAY_PREFIX):], event.get("name"))
        s = by_name.setdefault(key, {"server": key[0], "name": key[1], "kind": event.get("kind"), "made_at": None,
                                     "joined": False, "writes": 0, "reads": 0, "final_bytes": None, "removed": None,
                                     "fallback": None})
        kind = event.get("event")
        if kind in ("made", "joined"):
            s["made_at"] = s["made_at"] or event.get("created_at")
            s["joined"] = s["joined"] or kind == "joined"
        elif kind == "fallback" and s["fallback"] is None:
            s["fallback"] = {k: event.get(k) for k in ("reason", "code", "bytes", "limit")}
        elif kind == "closed":
            s["final_bytes"] = max(s["final_bytes"] or 0, event.get("bytes") or 0)
            s["removed"] = bool(event.get("removed")) or bool(s["removed"])
            s["writes"] += event.get("writes") or 0
            s["reads"] += event.get("reads") or 0
    return sorted(by_name.values(), key=lambda s: (s["server"], s["name"] or ""))
