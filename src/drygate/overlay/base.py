"""The overlay interface: per-run simulated state that a run's dry writes go to.

An :class:`Overlay` belongs to one run. Its contract:

- **writes**: every dry write of the run goes to the overlay (:meth:`Overlay.note_write`
  tells it one happened, with the key it touched when the overlay knows keys);
- **reads**: a read of the run is served from the overlay where the run wrote, from the
  real system elsewhere; :meth:`Overlay.served_from` says which (``"real"`` or
  ``"overlay"``), and :meth:`Overlay.record_read` keeps a :class:`ReadRecord`. Only reads
  served from the real system may enter the plan's basis: a read that saw the run's own
  writes is not a fact about the real system;
- **size**: :meth:`Overlay.size_bytes` (reported in the journal; limited by the overlay's
  configuration);
- **lifetime**: :meth:`Overlay.close` ends it (and removes what it keeps on disk).

Two implementations: :class:`MapOverlay` here, the key-level reference semantics (deletion
markers included) for key-value and object-store overlays, and
:class:`drygate.overlay.shadow.Shadow`, a whole-state copy for a server whose state is
local (it cannot see keys inside an opaque server, so after the run's first write every
read counts as served from the overlay).

Methods of :class:`Overlay` raise NotImplementedError: a half-finished overlay must fail,
never succeed silently (STYLE.md, on casbin's empty adapter methods).
"""

from drygate.errors import DrygateError

REAL = "real"
OVERLAY = "overlay"


class OverlayUnavailable(DrygateError):
    """A run's overlay cannot be made or kept; the run falls back to plain dry results.

    Not a guard failure: the gate decided, and the dry call stays unexecuted; only the
    read-your-writes simulation is missing, which every later result says.
    ``reason``: one sentence for the agent, the journal and the plan; ``code``:
    ``too_large``, ``not_isolated`` (the overlay could reach the real state),
    ``copy_failed``, ``start_failed`` or ``gone``; ``bytes`` and ``limit``: sizes in
    bytes when known (``too_large``), else None.
    """

    def __init__(self, reason, code="copy_failed", size=None, limit=None):
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.bytes = size
        self.limit = limit

    def as_dict(self):
        """``{"reason", "code", "bytes", "limit"}`` (JSON-ready)."""
        return {"reason": self.reason, "code": self.code, "bytes": self.bytes, "limit": self.limit}


class ReadRecord:
    """One read of a run as an overlay served it.

    ``what``: what was read (a key, or a tool call's label); ``source``: ``"real"`` (it
    saw only the real system, as of ``as_of``) or ``"overlay"`` (it may include the run's
    own writes); ``fingerprint``: ``"sha256:..."`` of what it returned, or None;
    ``as_of``: epoch seconds of the real state it saw (a copy's time for a shadow), or None.
    """

    __slots__ = ("what", "source", "fingerprint", "as_of")

    def __init__(self, what, source, fingerprint=None, as_of=None):
        self.what = what
        self.source = source
        self.fingerprint = fingerprint
        self.as_of = as_of

    @property
    def is_basis(self):
        """True when the read may enter the plan's basis (it saw only the real system)."""
        return self.source == REAL

    def as_dict(self):
        """The record as a JSON-ready dict."""
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self):
        return f"ReadRecord({self.what!r}, {self.source!r})"


class Overlay:
    """Per-run simulated state (interface). ``run_id``: the run it belongs to."""

    run_id = None

    def note_write(self, what=None):
        """The run wrote ``what`` (a key, or None for "somewhere in the state") to the overlay."""
        raise NotImplementedError

    def served_from(self, what=None):
        """Where a read of ``what`` is served from now: ``"real"`` or ``"overlay"``."""
        raise NotImplementedError

    def record_read(self, what, fingerprint=None, source=None):
        """Keep a :class:`ReadRecord` of a read (``source`` defaults to :meth:`served_from`); returns it."""
        raise NotImplementedError

    def reads(self):
        """The run's reads so far, in order (list of :class:`ReadRecord`)."""
        raise NotImplementedError

    def size_bytes(self):
        """What the overlay holds, in bytes (int)."""
        raise NotImplementedError

    def close(self):
        """End the overlay; what it kept on disk is removed. Returns its last size in bytes."""
        raise NotImplementedError


#: A deletion marker: the run deleted this key, so a read must not fall back to the real system.
DELETED = object()
#: What :meth:`MapOverlay.get` returns for a key that exists neither in the overlay nor in the real system.
ABSENT = object()


class MapOverlay(Overlay):
    """A key-level overlay in memory: the reference semantics of read-your-writes.

    ``real_get(key)`` returns the real value or :data:`ABSENT`; ``real_keys(prefix)``
    returns an iterable of the real keys starting with ``prefix``; ``size_of(value)``
    (default ``len(repr(value))``) counts :meth:`size_bytes`; ``max_bytes`` (int or None)
    limits it: a write past it raises :class:`OverlayUnavailable` (``too_large``) and is
    not kept. ``clock`` gives the epoch seconds recorded as ``as_of`` of real reads.
    """

    def __init__(self, run_id, real_get, real_keys=None, max_bytes=None, size_of=None, clock=None):
        import time

        self.run_id = run_id
        self.real_get = real_get
        self.real_keys = real_keys
        self.max_bytes = max_bytes
        self.size_of = size_of or (lambda value: len(repr(value)))
        self.clock = clock or time.time
        self.values = {}  # key -> value or DELETED
        self._reads = []
        self._bytes = 0

    def note_write(self, what=None):
        """Not used: a MapOverlay learns its writes from :meth:`put` and :meth:`delete`. Raises TypeError."""
        raise TypeError("MapOverlay: write with put(key, value) or delete(key)")

    def put(self, key, value):
        """The run writes ``value`` under ``key``. Raises OverlayUnavailable past ``max_bytes``."""
        old = self.values.get(key)
        size = self._bytes - (self.size_of(old) if old is not None and old is not DELETED else 0) + self.size_of(value)
        if self.max_bytes is not None and size > self.max_bytes:
            raise OverlayUnavailable(f"the run's overlay would hold {size} bytes, over its limit of "
                                     f"{self.max_bytes}", "too_large", size, self.max_bytes)
        self.values[key] = value
        self._bytes = size

    def delete(self, key):
        """The run deletes ``key``: later reads of the run see it absent (a deletion marker)."""
        old = self.values.get(key)
        if old is not None and old is not DELETED:
            self._bytes -= self.size_of(old)
        self.values[key] = DELETED

    def served_from(self, what=None):
        return OVERLAY if what in self.values else REAL

    def get(self, key):
        """The value the run sees under ``key`` (or :data:`ABSENT`); the read is recorded."""
        if key in self.values:
            value = self.values[key]
            self._reads.append(ReadRecord(key, OVERLAY))
            return ABSENT if value is DELETED else value
        value = self.real_get(key)
        from drygate.plan.fingerprint import fingerprint

        fp = None if value is ABSENT else _fingerprint_or_none(fingerprint, value)
        self._reads.append(ReadRecord(key, REAL, fp, self.clock()))
        return value

    def keys(self, prefix=""):
        """The keys the run sees under ``prefix``: the real ones, plus its writes, minus its deletions (sorted)."""
        real = set(self.real_keys(prefix)) if self.real_keys is not None else set()
        for key, value in self.values.items():
            if isinstance(key, str) and key.startswith(prefix):
                if value is DELETED:
                    real.discard(key)
                else:
                    real.add(key)
        touched = any(isinstance(k, str) and k.startswith(prefix) for k in self.values)
        self._reads.append(ReadRecord(f"keys:{prefix}", OVERLAY if touched else REAL, None,
                                      None if touched else self.clock()))
        return sorted(real)

    def record_read(self, what, fingerprint=None, source=None):
        record = ReadRecord(what, source or self.served_from(what), fingerprint,
                            self.clock() if (source or self.served_from(what)) == REAL else None)
        self._reads.append(record)
        return record

    def reads(self):
        return list(self._reads)

    def size_bytes(self):
        return self._bytes

    def close(self):
        size, self._bytes = self._bytes, 0
        self.values.clear()
        return size


def _fingerprint_or_none(fingerprint, value):
    try:
        return fingerprint(value)
    except (TypeError, ValueError):
        return None
