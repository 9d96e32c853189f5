"""State stores: run state and the journal, behind one interface.

- :class:`drygate.state.base.StateStore`: the interface (one atomic transition,
  journal reads, run listing); every method raises if not implemented.
- :class:`drygate.state.memory.MemoryStore`: in-process, for tests, replays and the
  Python API.
- :class:`drygate.state.sqlite.SQLiteStore`: embedded, durable, shared by every
  process on a machine (the default).
- :class:`drygate.state.redis.RedisStore`: shared by every host of a fleet.
"""


def open_store(url_or_path, busy_timeout_s=2.0, synchronous="FULL", policy=None, lean=False, create=True):
    """Open a store from a path (SQLite), a Redis URL, or ``memory:``.

    ``busy_timeout_s``: how long one exchange may wait (SQLite lock, Redis answer), in
    seconds; keep it below the gate's deadline. ``synchronous``: SQLite durability,
    ``"FULL"`` or ``"NORMAL"`` (see drygate.state.sqlite). ``policy``: the compiled
    policy, for the Redis options of its ``[state]`` section (key prefix, retention,
    clock skew). ``lean``: the caller is a short-lived hook process (use the lean
    Redis client, see drygate.state.resp; a SQLite store checkpoints its WAL at
    :data:`drygate.state.sqlite.HOOK_WAL_AUTOCHECKPOINT` pages).

    Raises :class:`drygate.errors.StoreUnavailable` when it cannot be opened.
    """
    if url_or_path in ("memory:", ":memory:"):
        from drygate.state.memory import MemoryStore

        return MemoryStore()
    if "://" in url_or_path:
        from drygate.state.redis import DEFAULT_CLOCK_SKEW_MS, DEFAULT_PREFIX, DEFAULT_RETENTION_S, RedisStore

        policy = policy or {}
        return RedisStore(url_or_path, timeout_s=busy_timeout_s,
                          key_prefix=policy.get("state_key_prefix") or DEFAULT_PREFIX,
                          retention_s=policy.get("state_retention_s") or DEFAULT_RETENTION_S,
                          clock_skew_ms=policy.get("state_clock_skew_ms", DEFAULT_CLOCK_SKEW_MS), lean=lean,
                          replica_acks=policy.get("state_replica_acks", 0))
    from drygate.state.sqlite import HOOK_WAL_AUTOCHECKPOINT, SQLiteStore

    return SQLiteStore(url_or_path, busy_timeout_s=busy_timeout_s, synchronous=synchronous, create=create,
                       wal_autocheckpoint=HOOK_WAL_AUTOCHECKPOINT if lean else None)
