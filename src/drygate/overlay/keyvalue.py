"""The key-value overlay (kind ``key-value``): a run's simulated sets, deletes and increments over a real store.

:class:`drygate.overlay.base.MapOverlay`'s semantics (a value or a deletion marker per key,
the real store for every other key), on disk and shared by the run's relays. Roles and
their tools' contract (the reference server's, examples/stack, errors worded as it words them):

- ``get(key)`` -> ``{key, value, version}`` (a missing key: ``value`` null, ``version`` 0);
- ``set(key, value, if_version=None)`` -> ``{key, version}``;
- ``delete(key, if_version=None)`` -> ``{key, deleted, previous_version}``;
- ``incr(key, by=1)`` -> ``{key, value, version}`` (optional role; the value must be an
  integer as Redis spells one, a missing key counts as 0).

``if_version=N`` holds when the key is at version N in the run's view (0: absent). The real
store numbers versions from one counter at write time, which a dry run cannot know: a
simulated write gets a version above every version the run has seen (real or simulated),
so versions only grow, a precondition on a version the run read behaves as live, and a
reference token (``drygate:ref:<call>:version``) is how a later call should pass it on.
"""

import re

from drygate.overlay.stores import (
    ENTRY_OVERHEAD,
    Answer,
    OverlayStore,
    OverlayUnavailable,
    Unsupported,
    argument,
    need,
)

MAX_KEY_LENGTH = 1024
_INTEGER = re.compile(r"-?[1-9][0-9]*|0")
_INT64 = (-(2 ** 63), 2 ** 63 - 1)
NOTHING = "; nothing was changed"


def _key_error(key):
    if not key or len(key) > MAX_KEY_LENGTH:
        return f"a key is a non-empty string of at most {MAX_KEY_LENGTH} characters, not {key!r}{NOTHING}"
    return None


def _version_error(if_version):
    if if_version is not None and if_version < 0:
        return f"if_version must be a version >= 0 (0: the key is absent), not {if_version!r}{NOTHING}"
    return None


def _mismatch(what, key, current, expected):
    state = "absent" if current == 0 else f"at version {current}"
    want = "absent (if_version 0)" if expected == 0 else f"at version {expected}"
    return f"{what}: version mismatch: key {key!r} is {state}, not {want}{NOTHING}"


class KeyValueOverlay(OverlayStore):
    """A run's overlay of a versioned key-value store (module docstring)."""

    KIND = "key-value"
    SCHEMA = ("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, deleted INTEGER NOT NULL, value TEXT, "
              "version INTEGER NOT NULL)",)

    def has_entry(self, what):
        """``what``: the key."""
        return self._entry(what) is not None

    def _entry(self, key):
        row = self.conn.execute("SELECT deleted, value, version FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else {"deleted": bool(row[0]), "value": row[1], "version": row[2]}

    def _saw_version(self, version):
        if isinstance(version, int) and not isinstance(version, bool) and version > int(self._meta("max_version", "0")):
            self._set_meta("max_version", version)

    # -- reads ---------------------------------------------------------------------------------
    def op_get(self, arguments, real):
        """The run's value (or its deletion: absent), else the real one."""
        key = argument(arguments, "key", str, required=True)
        entry = self._entry(key)
        if entry is None:
            answer = need(real, "get", arguments)
            version = answer.value.get("version") if answer.ok and answer.value is not None else None
            if isinstance(version, int) and version > int(self._meta("max_version", "0")):
                with self._transaction():  # only when it is news: a write transaction per read costs 0.2 ms
                    self._saw_version(version)
            return Answer.passthrough(answer)
        if entry["deleted"]:
            return Answer(True, {"key": key, "value": None, "version": 0}, reflects=True)
        return Answer(True, {"key": key, "value": entry["value"], "version": entry["version"]}, reflects=True,
                      values=_VALUES_VERSION)

    # -- writes --------------------------------------------------------------------------------
    def _current(self, key, real):
        """``(value or None, version, from_overlay)`` of ``key`` in the run's view (within a write transaction)."""
        entry = self._entry(key)
        if entry is not None:
            return (None, 0, True) if entry["deleted"] else (entry["value"], entry["version"], True)
        answer = need(real, "get", {"key": key})
        if not answer.ok or answer.value is None:
            raise OverlayUnavailable(f"the real server could not read the key {key!r} "
                                     f"({answer.text or 'no structured answer'})", "real_read_failed")
        version = answer.value.get("version") or 0
        value = answer.value.get("value")
        if not isinstance(version, int) or isinstance(version, bool) or not (value is None or isinstance(value, str)):
            raise OverlayUnavailable(f"the real server's answer for the key {key!r} has no integer version and "
                                     f"string value", "real_read_failed")
        self._saw_version(version)
        return value, version, False

    def _store(self, key, value, current_version):
        """Keep ``value`` (None: a deletion marker) under ``key``; returns the simulated version (0 for a deletion)."""
        old = self._entry(key)
        old_size = 0 if old is None else ENTRY_OVERHEAD + len(key.encode("utf-8")) + len((old["value"] or "").encode())
        new_size = ENTRY_OVERHEAD + len(key.encode("utf-8")) + len((value or "").encode("utf-8"))
        self._count_write(new_size - old_size)
        if value is None:
            self.conn.execute("INSERT OR REPLACE INTO kv VALUES (?, 1, NULL, 0)", (key,))
            return 0
        version = max(int(self._meta("max_version", "0")), current_version) + 1
        self._set_meta("max_version", version)
        self.conn.execute("INSERT OR REPLACE INTO kv VALUES (?, 0, ?, ?)", (key, value, version))
        return version

    def op_set(self, arguments, real):
        """Simulate ``set``: the key and version checks, ``if_version`` against the run's view, a new version."""
        key = argument(arguments, "key", str, required=True)
        value = argument(arguments, "value", str, required=True)
        if_version = argument(arguments, "if_version", int)
        failed = _key_error(key) or _version_error(if_version)
        if failed:
            return Answer.error(failed)
        with self._transaction():
            _, version, from_overlay = self._current(key, real)
            if if_version is not None and if_version != version:
                return Answer.error(_mismatch("kv_set", key, version, if_version), reflects=from_overlay)
            new_version = self._store(key, value, version)
        return Answer(True, {"key": key, "version": new_version}, reflects=from_overlay, wrote=True,
                      values=_VALUES_VERSION)

    def op_delete(self, arguments, real):
        """Simulate ``delete``: ``if_version`` against the run's view, then a deletion marker."""
        key = argument(arguments, "key", str, required=True)
        if_version = argument(arguments, "if_version", int)
        failed = _key_error(key) or _version_error(if_version)
        if failed:
            return Answer.error(failed)
        with self._transaction():
            _, version, from_overlay = self._current(key, real)
            if if_version is not None and if_version != version:
                return Answer.error(_mismatch("kv_delete", key, version, if_version), reflects=from_overlay)
            self._store(key, None, version)
        return Answer(True, {"key": key, "deleted": version != 0, "previous_version": version},
                      reflects=from_overlay, wrote=True)

    def op_incr(self, arguments, real):
        """Simulate ``incr``: the run's value (a missing key is 0) plus ``by``, as one step, with a new version."""
        key = argument(arguments, "key", str, required=True)
        by = argument(arguments, "by", int, default=1)
        failed = _key_error(key)
        if failed:
            return Answer.error(failed)
        with self._transaction():
            value, version, from_overlay = self._current(key, real)
            if value is not None and not _INTEGER.fullmatch(value):
                return Answer.error(f"kv_incr: the value of {key!r} is not an integer ({value!r}){NOTHING}",
                                    reflects=from_overlay)
            new = int(value or 0) + by
            if not _INT64[0] <= new <= _INT64[1]:
                raise Unsupported(f"the new value of {key!r} would not fit in a 64-bit integer (the store's own "
                                  f"error is not simulated)")
            new_version = self._store(key, str(new), version)
        return Answer(True, {"key": key, "value": new, "version": new_version}, reflects=from_overlay, wrote=True,
                      values=_VALUES_VERSION)


_VALUES_VERSION = {"version": "simulated: above every version the run saw; the store assigns the real one from its "
                              "own counter when the write is applied"}
