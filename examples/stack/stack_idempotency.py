"""Idempotency keys: a repeated request runs once (Stripe's semantics).

The convention: the client puts a string in the request's
``params._meta["dev.drygate/idempotency-key"]`` on ``tools/call``. The server keeps, in its
SQLite file, ``key -> (hash of tool name + arguments, result)``:

- a key seen before with the same tool and arguments: the stored result is returned and
  nothing is executed again;
- a key seen before with anything else: refused (a key names one request);
- a call that was refused (a failed precondition, invalid input) stores nothing, so the key
  is free again.

How the record is tied to the write depends on the backend:

- **SQL and the SQLite key-value store** (:meth:`IdempotencyKeys.in_transaction`): the write
  and the record are one SQLite transaction. Exactly once, no window.
- **S3 and Redis** (:meth:`IdempotencyKeys.around_external`): the record is written as
  ``pending`` before the write and ``done`` after it. A crash in between leaves it
  ``pending``; a retry with the same key then executes again, *with the same
  preconditions*, and so cannot apply twice:

  - Redis: the write's Lua script also writes a marker (hash + result) under the key in
    Redis, atomically with the write. A retry finds the marker and gets the stored result:
    exactly once, for every Redis tool including ``kv_incr``.
  - S3 has no transaction to join. A conditional write (``if_match``, ``if_none_match="*"``)
    that already happened fails its precondition on the retry; the error says so. An
    unconditional put writes the same bytes again, an unconditional delete deletes again
    (last writer wins, as for any unconditional write). Give S3 writes preconditions when
    a retry must not overwrite someone else's change.

A ``pending`` record that another live call holds (this process, or a live process on this
host; on another host: younger than ``lease_s``) is "in progress": the duplicate is refused
and may retry later (Stripe answers 409 there).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from stack_base import INTERNAL_PREFIX, OutcomeUnknown, Refused, transaction

#: The request ``_meta`` key that carries the idempotency key.
META_KEY = "dev.drygate/idempotency-key"
#: The result ``_meta`` keys the server answers with (when the request had a key).
REPLAYED_META_KEY = "dev.drygate/idempotent-replayed"

MAX_KEY_LENGTH = 255
TABLE = f"{INTERNAL_PREFIX}idempotency"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    key           TEXT PRIMARY KEY,
    request_hash  TEXT NOT NULL,   -- sha256 of the canonical JSON of tool name + arguments
    tool          TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'done')),
    result        TEXT,            -- the result as JSON, once done
    owner         TEXT NOT NULL,   -- host:pid:token of the process that ran it
    created_at    REAL NOT NULL,
    completed_at  REAL
)
"""


@dataclass(frozen=True, slots=True)
class Keyed:
    """What a backend with a marker of its own (Redis) needs: the key and the request hash."""

    key: str
    request_hash: str


class AlreadyApplied(Exception):
    """Raised by a backend that found, atomically with the write, that this key's request
    was already applied (the Redis marker); carries that request's hash and result."""

    def __init__(self, request_hash: str, result: dict[str, Any]):
        super().__init__("already applied")
        self.request_hash = request_hash
        self.result = result


def request_hash(tool: str, arguments: dict[str, Any]) -> str:
    """The hash that says whether two requests are "the same": tool name and every argument
    (defaults included), as canonical JSON."""
    canonical = json.dumps({"tool": tool, "arguments": arguments}, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def key_from_meta(meta: Any) -> str | None:
    """The idempotency key of a request's ``_meta`` (a mapping or None); None when absent."""
    if not meta or META_KEY not in meta:
        return None
    key = meta[META_KEY]
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise Refused(f"_meta[{META_KEY!r}] must be a non-empty string of at most {MAX_KEY_LENGTH} "
                      f"characters, not {key!r}; nothing was changed")
    return key


class IdempotencyKeys:
    """The key records in the SQLite file at ``db``."""

    def __init__(self, db: str | Path, lease_s: float = 60.0):
        self.db = db
        self.lease_s = lease_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._inflight: set[str] = set()
        self._lock = threading.Lock()
        with transaction(db) as conn:
            conn.execute(_SCHEMA)

    # -- the two ways to run a keyed write ------------------------------------------------

    def in_transaction(self, key: str | None, tool: str, arguments: dict[str, Any],
                       work: Callable[[Any], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
        """Run ``work(conn)`` (a write on the SQLite file) and record the key in the same
        transaction. Returns ``(result, replayed)``."""
        digest = request_hash(tool, arguments)
        with transaction(self.db) as conn:
            if key is not None:
                row = self._lookup(conn, key)
                if row is not None:
                    self._check_same(key, tool, digest, row)
                    if row["state"] == "done":
                        return json.loads(row["result"]), True
                    raise Refused(f"idempotency key {key!r} is held by an unfinished {row['tool']} call; "
                                  "nothing was changed")
            result = work(conn)
            if key is not None:
                now = time.time()
                conn.execute(f"INSERT INTO {TABLE} VALUES (?, ?, ?, 'done', ?, ?, ?, ?)",
                             (key, digest, tool, _dump(result), self.owner, now, now))
        return result, False

    def around_external(self, key: str | None, tool: str, arguments: dict[str, Any],
                        work: Callable[[Keyed | None], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
        """Run ``work(keyed)`` (a write on S3 or Redis) between a ``pending`` and a ``done``
        record. ``work`` gets the key and request hash when there is a key (for a marker of
        its own, raising :class:`AlreadyApplied` when it finds one), else None. Returns
        ``(result, replayed)``."""
        if key is None:
            return work(None), False
        digest = request_hash(tool, arguments)
        state, stored = self._claim(key, tool, digest)
        if state == "done":
            return stored, True
        recovering = state == "recovering"
        try:
            result = work(Keyed(key, digest))
        except AlreadyApplied as applied:
            if applied.request_hash != digest:
                self._release(key)
                raise Refused(_reused(key, tool, tool)) from None
            self._finish(key, applied.result)
            return applied.result, True
        except Refused as refused:
            if not recovering:
                self._release(key)  # nothing happened: the key is free again
                raise
            self._unclaim(key)
            raise Refused(f"{refused}. Note: an earlier call with idempotency key {key!r} did not record "
                          "its outcome (the server stopped after sending the write?) and may have been "
                          "applied; this retry changed nothing") from refused
        except BaseException as exc:
            self._unclaim(key)  # the record stays pending: a retry goes through the preconditions
            if isinstance(exc, OutcomeUnknown):
                raise
            raise OutcomeUnknown(f"{tool}: the write may or may not have been applied ({exc}); retrying "
                                 f"with the same idempotency key {key!r} is safe") from exc
        self._finish(key, result)
        return result, False

    # -- records --------------------------------------------------------------------------

    @staticmethod
    def _lookup(conn, key):
        cur = conn.execute(f"SELECT request_hash, tool, state, result, owner, created_at FROM {TABLE} WHERE key = ?",
                           (key,))
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip(("request_hash", "tool", "state", "result", "owner", "created_at"), row))

    @staticmethod
    def _check_same(key, tool, digest, row):
        if row["request_hash"] != digest:
            raise Refused(_reused(key, row["tool"], tool))

    def _claim(self, key, tool, digest) -> tuple[str, dict[str, Any] | None]:
        """Write the pending record, or take over one left unfinished: ``("new", None)``,
        ``("recovering", None)``, or ``("done", result)`` for a request already done."""
        with self._lock:
            if key in self._inflight:
                raise Refused(f"a {tool} call with idempotency key {key!r} is in progress; nothing was "
                              "changed, retry later")
            with transaction(self.db) as conn:
                row = self._lookup(conn, key)
                now = time.time()
                if row is None:
                    conn.execute(f"INSERT INTO {TABLE} VALUES (?, ?, ?, 'pending', NULL, ?, ?, NULL)",
                                 (key, digest, tool, self.owner, now))
                    state = "new"
                else:
                    self._check_same(key, tool, digest, row)
                    if row["state"] == "done":
                        return "done", json.loads(row["result"])
                    if self._held_elsewhere(row["owner"], row["created_at"], now):
                        raise Refused(f"a {tool} call with idempotency key {key!r} is in progress in "
                                      f"{row['owner']}; nothing was changed, retry later")
                    conn.execute(f"UPDATE {TABLE} SET owner = ? WHERE key = ?", (self.owner, key))
                    state = "recovering"
            self._inflight.add(key)
            return state, None

    def _held_elsewhere(self, owner: str, created_at: float, now: float) -> bool:
        if owner == self.owner:
            return False  # ours, and not in flight: an earlier call of this process failed midway
        host, pid, _token = owner.rsplit(":", 2)
        if host == socket.gethostname():
            return pid.isdigit() and _alive(int(pid))
        return now - created_at < self.lease_s

    def _finish(self, key, result):
        try:
            with transaction(self.db) as conn:
                conn.execute(f"UPDATE {TABLE} SET state = 'done', result = ?, completed_at = ? WHERE key = ?",
                             (_dump(result), time.time(), key))
        except sqlite3.Error as exc:
            raise ToolError(f"the write was applied, but its idempotency record ({key!r}) could not be "
                            f"saved ({exc}); a retry with this key goes through the write's preconditions "
                            "again") from exc
        finally:
            self._unclaim(key)

    def _release(self, key):
        try:
            with transaction(self.db) as conn:
                conn.execute(f"DELETE FROM {TABLE} WHERE key = ? AND state = 'pending'", (key,))
        finally:
            self._unclaim(key)

    def _unclaim(self, key):
        with self._lock:
            self._inflight.discard(key)


def _reused(key, first_tool, tool):
    this = "" if tool == first_tool else f" (this call is {tool})"
    return (f"idempotency key {key!r} was already used for a {first_tool} call with other arguments{this}; "
            "a key names exactly one request: use a new key; nothing was changed")


def _dump(result: dict[str, Any]) -> str:
    return json.dumps(result, separators=(",", ":"), ensure_ascii=False)  # key order kept: replays match


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
