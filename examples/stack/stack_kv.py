"""The key-value store: Redis (``STACK_REDIS_URL``), or the SQLite file when it is not set.

Every entry has a **version**: a number from one counter for the whole store, so a version
is never reused, not even after a delete and a new set of the same key (no ABA). A missing
key has version 0. The preconditions compare versions atomically with the write:

- ``kv_set(key, value, if_version=N)``: only if the key is at version N (0: only if absent);
- ``kv_delete(key, if_version=N)``: only if the key is at version N;
- ``kv_incr(key, by)`` needs no precondition: it is one atomic step on the current value.

Redis: each write is one Lua script (check, write, bump the version, all or nothing; a
script checks before its first write, so an error cannot leave half a write). With an
idempotency key, the same script also stores a marker ``{prefix}idem:{key}`` holding the
request hash and the result, so a retry after a crash returns that result instead of
writing again (see stack_idempotency.py). Markers expire after ``marker_ttl_s``.

SQLite: the table ``_stack_kv`` in ``STACK_DB``; each write is one transaction, which also
holds the idempotency record.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

from stack_base import INTERNAL_PREFIX, OutcomeUnknown, Refused, connect_read_only
from stack_idempotency import AlreadyApplied, Keyed

MAX_KEY_LENGTH = 1024
#: What kv_incr accepts as a number (the same as Redis: no sign "+", no leading zeros, no spaces).
_INTEGER = re.compile(r"-?[1-9][0-9]*|0")


def check_key(key: str) -> None:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise Refused(f"a key is a non-empty string of at most {MAX_KEY_LENGTH} characters, not {key!r}; "
                      "nothing was changed")


def _check_version(if_version: int | None) -> None:
    if if_version is not None and (isinstance(if_version, bool) or if_version < 0):
        raise Refused(f"if_version must be a version >= 0 (0: the key is absent), not {if_version!r}; "
                      "nothing was changed")


def _mismatch(what: str, key: str, current: int, expected: int) -> Refused:
    state = "absent" if current == 0 else f"at version {current}"
    want = "absent (if_version 0)" if expected == 0 else f"at version {expected}"
    return Refused(f"{what}: version mismatch: key {key!r} is {state}, not {want}; nothing was changed")


def _not_integer(key: str, value: str) -> Refused:
    return Refused(f"kv_incr: the value of {key!r} is not an integer ({value!r}); nothing was changed")


# -- Redis --------------------------------------------------------------------------------

# Shared by every script. KEYS[1]: the entry (a hash with fields value, version);
# KEYS[2]: the store's version counter; KEYS[3] (only with an idempotency key): the marker.
# ARGV[1]: the request hash ('' without a key); ARGV[2]: the marker's TTL in seconds.
# A script returns JSON: {"status": "ok", "result": {...}} (strings only, so that numbers
# stay exact), {"status": "refused", ...}, or {"status": "replay", "marker": {hash, result}}.
_PROLOGUE = """
if #KEYS >= 3 then
  local marker = redis.call('GET', KEYS[3])
  if marker then return cjson.encode({status = 'replay', marker = cjson.decode(marker)}) end
end
local function done(result)
  if #KEYS >= 3 then
    redis.call('SET', KEYS[3], cjson.encode({hash = ARGV[1], result = result}), 'EX', tonumber(ARGV[2]))
  end
  return cjson.encode({status = 'ok', result = result})
end
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
"""

# ARGV[3]: the value; ARGV[4]: if_version ('' for none).
_SET = _PROLOGUE + """
if ARGV[4] ~= '' and tonumber(ARGV[4]) ~= current then
  return cjson.encode({status = 'refused', current = tostring(current)})
end
local version = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'value', ARGV[3], 'version', version)
return done({version = tostring(version)})
"""

# ARGV[3]: if_version ('' for none).
_DELETE = _PROLOGUE + """
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= current then
  return cjson.encode({status = 'refused', current = tostring(current)})
end
local deleted = redis.call('DEL', KEYS[1])
return done({deleted = tostring(deleted), previous_version = tostring(current)})
"""

# ARGV[3]: by (an integer).
_INCR = _PROLOGUE + """
local value = redis.call('HGET', KEYS[1], 'value')
if value and not (string.match(value, '^-?[1-9]%d*$') or value == '0') then
  return cjson.encode({status = 'not_integer', value = value})
end
local new = redis.call('HINCRBY', KEYS[1], 'value', ARGV[3])
local version = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'version', version)
return done({value = tostring(new), version = tostring(version)})
"""


def _result(tool: str, key: str, raw: dict[str, Any]) -> dict[str, Any]:
    if tool == "kv_set":
        return {"key": key, "version": int(raw["version"])}
    if tool == "kv_delete":
        return {"key": key, "deleted": raw["deleted"] == "1", "previous_version": int(raw["previous_version"])}
    return {"key": key, "value": int(raw["value"]), "version": int(raw["version"])}


class RedisKV:
    def __init__(self, url: str, prefix: str = "stack:", marker_ttl_s: int = 7 * 24 * 3600):
        import redis  # only when Redis is configured
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # No retries: a script whose reply was lost must not run again behind the caller's
        # back (kv_incr would count twice). The caller retries, with its idempotency key.
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5,
                                           retry=Retry(NoBackoff(), 0), decode_responses=True)
        self.prefix = prefix
        self.marker_ttl_s = marker_ttl_s
        self._scripts = {name: self.client.register_script(text)
                         for name, text in (("set", _SET), ("delete", _DELETE), ("incr", _INCR))}

    def _entry(self, key: str) -> str:
        return f"{self.prefix}kv:{key}"

    def get(self, key: str) -> dict[str, Any]:
        check_key(key)
        import redis

        try:
            value, version = self.client.hmget(self._entry(key), ["value", "version"])
        except redis.RedisError as exc:
            raise Refused(f"kv_get: Redis error: {exc}") from exc
        return {"key": key, "value": value, "version": int(version or 0)}

    def _script(self, what: str, name: str, key: str, keyed: Keyed | None, args: list[Any]) -> dict[str, Any]:
        import redis

        keys = [self._entry(key), f"{self.prefix}kv-version"]
        if keyed is not None:
            keys.append(f"{self.prefix}idem:{keyed.key}")
        request_hash = keyed.request_hash if keyed is not None else ""
        try:
            reply = json.loads(self._scripts[name](keys=keys, args=[request_hash, self.marker_ttl_s, *args]))
        except redis.ConnectionError as exc:
            # redis-py raises ConnectionError when it cannot connect and when an answer is lost.
            raise OutcomeUnknown(f"{what}: Redis connection error ({exc}); the write may or may not have "
                                 "been applied") from exc
        except redis.TimeoutError as exc:
            raise OutcomeUnknown(f"{what}: Redis did not answer in time ({exc}); the write may or may not "
                                 "have been applied") from exc
        except redis.RedisError as exc:  # the server refused the script (before any write)
            raise Refused(f"{what}: Redis error: {exc}; nothing was changed") from exc
        if reply["status"] == "replay":
            raise AlreadyApplied(reply["marker"]["hash"], _result(what, key, reply["marker"]["result"]))
        return reply

    def set(self, key: str, value: str, if_version: int | None, keyed: Keyed | None = None) -> dict[str, Any]:
        check_key(key)
        _check_version(if_version)
        reply = self._script("kv_set", "set", key, keyed, [value, "" if if_version is None else if_version])
        if reply["status"] == "refused":
            raise _mismatch("kv_set", key, int(reply["current"]), if_version)
        return _result("kv_set", key, reply["result"])

    def delete(self, key: str, if_version: int | None, keyed: Keyed | None = None) -> dict[str, Any]:
        check_key(key)
        _check_version(if_version)
        reply = self._script("kv_delete", "delete", key, keyed, ["" if if_version is None else if_version])
        if reply["status"] == "refused":
            raise _mismatch("kv_delete", key, int(reply["current"]), if_version)
        return _result("kv_delete", key, reply["result"])

    def incr(self, key: str, by: int, keyed: Keyed | None = None) -> dict[str, Any]:
        check_key(key)
        reply = self._script("kv_incr", "incr", key, keyed, [int(by)])
        if reply["status"] == "not_integer":
            raise _not_integer(key, reply["value"])
        return _result("kv_incr", key, reply["result"])


# -- SQLite -------------------------------------------------------------------------------

TABLE = f"{INTERNAL_PREFIX}kv"
_SCHEMA = (f"CREATE TABLE IF NOT EXISTS {TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL, version INTEGER NOT NULL)",
           f"CREATE TABLE IF NOT EXISTS {INTERNAL_PREFIX}counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
           f"INSERT OR IGNORE INTO {INTERNAL_PREFIX}counters VALUES ('kv_version', 0)")


class SqliteKV:
    """The fallback: every method that writes takes the connection of the caller's
    transaction (which also holds the idempotency record)."""

    def __init__(self, db: str | Path):
        self.db = db

    def create(self, conn: sqlite3.Connection) -> None:
        for statement in _SCHEMA:
            conn.execute(statement)

    def get(self, key: str) -> dict[str, Any]:
        check_key(key)
        conn = connect_read_only(self.db)
        try:
            row = conn.execute(f"SELECT value, version FROM {TABLE} WHERE key = ?", (key,)).fetchone()
        finally:
            conn.close()
        return {"key": key, "value": row[0] if row else None, "version": row[1] if row else 0}

    @staticmethod
    def _current(conn: sqlite3.Connection, key: str) -> tuple[str | None, int]:
        row = conn.execute(f"SELECT value, version FROM {TABLE} WHERE key = ?", (key,)).fetchone()
        return (row[0], row[1]) if row else (None, 0)

    @staticmethod
    def _next_version(conn: sqlite3.Connection) -> int:
        return conn.execute(f"UPDATE {INTERNAL_PREFIX}counters SET value = value + 1 WHERE name = 'kv_version' "
                            "RETURNING value").fetchone()[0]

    def set(self, conn: sqlite3.Connection, key: str, value: str, if_version: int | None) -> dict[str, Any]:
        check_key(key)
        _check_version(if_version)
        _, current = self._current(conn, key)
        if if_version is not None and if_version != current:
            raise _mismatch("kv_set", key, current, if_version)
        version = self._next_version(conn)
        conn.execute(f"INSERT INTO {TABLE} VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                     "version = excluded.version", (key, value, version))
        return {"key": key, "version": version}

    def delete(self, conn: sqlite3.Connection, key: str, if_version: int | None) -> dict[str, Any]:
        check_key(key)
        _check_version(if_version)
        _, current = self._current(conn, key)
        if if_version is not None and if_version != current:
            raise _mismatch("kv_delete", key, current, if_version)
        deleted = conn.execute(f"DELETE FROM {TABLE} WHERE key = ?", (key,)).rowcount
        return {"key": key, "deleted": deleted == 1, "previous_version": current}

    def incr(self, conn: sqlite3.Connection, key: str, by: int) -> dict[str, Any]:
        check_key(key)
        value, _ = self._current(conn, key)
        if value is not None and not _INTEGER.fullmatch(value):
            raise _not_integer(key, value)
        new = (int(value) if value is not None else 0) + int(by)
        if not -(2 ** 63) <= new < 2 ** 63:
            raise Refused(f"kv_incr: {key!r} would overflow a 64-bit integer; nothing was changed")
        version = self._next_version(conn)
        conn.execute(f"INSERT INTO {TABLE} VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                     "version = excluded.version", (key, str(new), version))
        return {"key": key, "value": new, "version": version}
