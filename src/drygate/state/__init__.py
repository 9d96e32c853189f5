"""State stores: run state and the journal, behind one interface.

- :class:`drygate.state.base.StateStore`: the interface (one atomic transition,
  journal reads, run listing); every method raises if not implemented.
- :class:`drygate.state.memory.MemoryStore`: in-process, for tests, replays and the
  Python API.
- :class:`drygate.state.sqlite.SQLiteStore`: embedded, durable, shared by every
  process on a machine (the default).
"""


def open_store(url_or_path, busy_timeout_s=2.0, synchronous="FULL"):
    """Open a store from a path (SQLite) or ``memory:``.

    ``synchronous``: SQLite durability, ``"FULL"`` or ``"NORMAL"`` (see drygate.state.sqlite).

    Raises :class:`drygate.errors.StoreUnavailable` when it cannot be opened.
    """
    if url_or_path in ("memory:", ":memory:"):
        from drygate.state.memory import MemoryStore

        return MemoryStore()
    from drygate.state.sqlite import SQLiteStore

    return SQLiteStore(url_or_path, busy_timeout_s=busy_timeout_s, synchronous=synchronous)
