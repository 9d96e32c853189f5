"""The embedded state store: one SQLite file shared by every process on a machine.

Atomicity: each decision is one ``BEGIN IMMEDIATE`` transaction that reads the
run, applies :func:`drygate.engine.apply_transition`, takes the next journal
sequence number and writes both, so no two processes can both see "not dry yet"
(no check-then-set race; case CC-09). ``BEGIN IMMEDIATE`` takes the write lock up
front, so there is no lock upgrade to deadlock on (as python-diskcache does).

Durability: WAL with ``synchronous=FULL`` by default: a commit survives a power
failure, so a dry run cannot come back live after a crash. Only decisions that can
change a run's dry state (gated calls: writes) pay for that fsync; the journal entry
of a read, and a tool's own result (``record_result(..., durable=False)``: PostToolUse,
the relay), are committed with ``synchronous=NORMAL`` (they cannot make a run dry or
live, and the next gated commit syncs the log with them), about 0.15 ms less each. The fsync per commit
dominates an in-process decision (about 150 us of a 210 us decision on the 2-core
machine, bench/engine_decision.py). ``synchronous="NORMAL"`` (``[state]
synchronous``) drops it to tens of microseconds and survives a crash of any
process, but a power loss may roll back the last commits.

Pages per decision: a write decision commits three pages to the WAL (the journal's
last leaf, its ``journal_run`` index leaf, the run's row), each a 4 KB frame the fsync
waits for; schema 5 wrote six (the run's row and its primary-key index, the sequence
counter and the decision counter too). Schema 6 makes ``runs`` a WITHOUT ROWID table,
takes the next sequence number from the journal itself and counts decisions lazily
(below): bench/engine_decision.py.

Sequence: a journal entry's ``seq`` is one past the journal's last (the right edge of
its rowid b-tree, read inside the ``BEGIN IMMEDIATE`` transaction) and past
``counter.seq``, where prune leaves the last number it removed, so no number is ever
given twice.

Counters: the guard-health counters (:mod:`drygate.counters`) are rows of a
``counters`` table. ``runs_went_dry`` is added by the transaction that makes a run dry;
the ``decisions|<effect>|<action>`` counts are the table's plus the decisions journaled
after ``counter.counted``, which :meth:`SQLiteStore.counters` adds in the same read
(one statement, one snapshot), so the counters always equal the journal's counts. A
decision counts them in (adds them to the table and moves ``counted``) once
:data:`COUNT_IN_EVERY` sequence numbers have passed, in its own transaction, and prune
does before it deletes. Schema 4 added that table; older files are upgraded in place
when first opened (a schema-3 file's counters start from what its journal holds; a
schema-5 file's runs table is rebuilt WITHOUT ROWID). A file upgraded to schema 6 is
refused by the previous version ("written by a newer drygate"): fail closed.

Deadline: the busy timeout is set below the gate's own deadline; a database locked
past it raises :class:`StoreTimeout`, anything else :class:`StoreUnavailable`. The
wait is drygate's own (``_retry``: tries 0.1 ms apart, doubling up to 2 ms), not
SQLite's busy handler, whose sleeps grow to 100 ms.

The C module ``_sqlite3`` is used directly: ``import sqlite3`` also imports
``datetime`` and registers adapters drygate does not use, about 1 ms more per hook
process (bench/hook_startup.py). In a process that has not imported ``functools``
(the hook), ``_sqlite3`` is imported without it (:func:`_import_sqlite3`).
"""

import _thread
import os
import sys
from _operator import attrgetter  # built in: no functools (_import_sqlite3)


def _import_sqlite3():
    """The ``_sqlite3`` C module, imported without ``functools`` when nothing has imported it yet.

    CPython's ``_sqlite3`` imports ``functools`` at module init only to keep
    ``functools.lru_cache`` for each connection's statement cache (Modules/_sqlite/module.c,
    ``load_functools_lru_cache``, 3.11 to 3.13; a connection then calls
    ``lru_cache(maxsize)(connection)`` and looks each SQL text up through it). ``functools``
    brings ``collections``, ``operator``, ``reprlib``, ``keyword`` and ``types``: 2.3 ms of
    the hook process's 3.2 ms ``import _sqlite3`` on the 2-core machine (``python -I -S -c
    'import _sqlite3'`` 8.7 ms against 5.5 ms for ``pass``, hyperfine, quiet). Here a stand-in
    ``functools`` whose ``lru_cache(maxsize)`` returns its argument is in ``sys.modules``
    only during ``import _sqlite3`` (+0.7 ms in all): a connection's "cache" is then the
    connection itself, so each ``execute`` prepares its statement again (a few microseconds;
    a hook process runs about 15 statements, nearly all different, once). Checked on CPython
    3.11, 3.12 and 3.13 (3.12 reads the attribute with ``_PyImport_GetModuleAttrString``,
    which also goes through ``sys.modules``); tests/test_hook_failures.py checks that the
    hook never imports ``functools`` and that its store works.

    A process that already imported ``functools`` (every long-lived one: the CLI, the relay,
    the tests) or ``_sqlite3`` gets the normal import and keeps its statement cache. If the
    module's init wants more of ``functools`` than ``lru_cache`` (another Python), the stand-in
    is dropped and ``_sqlite3`` is imported again the normal way; an error from that import is
    the caller's (the store then cannot open: fail closed).
    """
    if "_sqlite3" in sys.modules or "functools" in sys.modules:
        import _sqlite3

        return _sqlite3
    stand_in = type(sys)("functools")
    stand_in.lru_cache = _no_cache
    sys.modules["functools"] = stand_in
    try:
        import _sqlite3
    except Exception:
        sys.modules.pop("_sqlite3", None)
        if sys.modules.get("functools") is stand_in:
            del sys.modules["functools"]
        import _sqlite3
    finally:
        if sys.modules.get("functools") is stand_in:
            del sys.modules["functools"]
    return _sqlite3


def _no_cache(maxsize=128, typed=False):
    """``lru_cache(maxsize)`` of the stand-in ``functools``: a decorator that caches nothing."""
    return _identity


def _identity(function):
    return function


_sqlite3 = _import_sqlite3()

from drygate import _json
from drygate.counters import DECISIONS, RUNS_WENT_DRY, SEP
from drygate.engine import apply_transition
from drygate.state.base import StateStore
from drygate.types import RunState, stricter_mode

#: WAL pages after which a hook process's commit checkpoints the WAL into the database
#: (SQLite's default is 1,000). A hook process is the only connection to the store while it
#: runs (each ends with os._exit), so SQLite rebuilds the WAL index when it opens: it reads
#: and checksums every frame of the WAL, 5,400 instructions and a pread each (callgrind and
#: strace; a WAL of 440 frames: 51.3 M -> 49.4 M instructions for a whole Read hook, 440 ->
#: 64 preads). With the default the WAL holds up to 1,000 frames (4 MB), 500 on average; at
#: 100 it holds at most about 100, and a PASSIVE checkpoint of 100 pages (two fsyncs, after
#: the commit it follows, which is already durable) comes every 20-30 hook calls. A
#: checkpoint never makes a commit less durable (the WAL is synced before it is copied).
HOOK_WAL_AUTOCHECKPOINT = 100

SCHEMA_VERSION = 6
#: Older schemas this version upgrades in place (schema 4 added the counters table, schema 5
#: the journal's ``context`` column: a call's working folder and shell environment; schema 6
#: made runs WITHOUT ROWID and added ``counter.counted``: module docstring).
_UPGRADABLE = (3, 4, 5)
#: The runs table (schema 6: WITHOUT ROWID, so a decision's update of its run writes one page:
#: as a rowid table with a TEXT primary key, ``INSERT OR REPLACE`` wrote its row and its index).
_RUNS_TABLE = (
    " (run_id TEXT PRIMARY KEY, mode TEXT NOT NULL, dry_since INTEGER, dry_at REAL, dry_cause TEXT,"
    " dry_call INTEGER,"
    " created_at REAL NOT NULL, last_seen_at REAL NOT NULL, calls INTEGER NOT NULL DEFAULT 0,"
    " writes INTEGER NOT NULL DEFAULT 0, dry_writes INTEGER NOT NULL DEFAULT 0,"
    " allowed_writes INTEGER NOT NULL DEFAULT 0, denied INTEGER NOT NULL DEFAULT 0,"
    " asked INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS runs" + _RUNS_TABLE,
    "CREATE TABLE IF NOT EXISTS journal ("
    " seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL, ts REAL NOT NULL, kind TEXT NOT NULL, call INTEGER,"
    " call_id TEXT, agent_id TEXT, tool_name TEXT, tool_input TEXT, effect TEXT, rule_id TEXT,"
    " why TEXT, action TEXT, made_run_dry INTEGER NOT NULL DEFAULT 0, dry_because_of INTEGER,"
    " tamper INTEGER NOT NULL DEFAULT 0, policy_hash TEXT, host TEXT, result TEXT, context TEXT)",
    "CREATE INDEX IF NOT EXISTS journal_run ON journal(run_id, seq)",
    # A single counter row: sequence numbers are never reused, even after prune (seq: the last one
    # prune removed); ``counted``: the journal's decisions up to this seq are counted in counters.
    "CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL,"
    " counted INTEGER NOT NULL DEFAULT 0)",
    "INSERT OR IGNORE INTO counter(id, seq) VALUES (1, 0)",
    # Guard-health counters (drygate.counters names them).
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)
#: Schema 3 -> 4: counters start from the journal the file already holds.
_BACKFILL = (
    f"INSERT OR IGNORE INTO counters (name, value) SELECT '{DECISIONS}{SEP}' || effect || '{SEP}' || action,"
    " count(*) FROM journal WHERE kind = 'call' AND effect IS NOT NULL AND action IS NOT NULL GROUP BY effect, action",
    f"INSERT OR IGNORE INTO counters (name, value) SELECT '{RUNS_WENT_DRY}', count(*) FROM journal"
    " WHERE made_run_dry = 1 HAVING count(*) > 0",
)
#: The decisions journaled after ``counter.counted``, by counter name (not yet in counters).
_UNCOUNTED = (f"SELECT '{DECISIONS}{SEP}' || effect || '{SEP}' || action, count(*) FROM journal"
              " WHERE seq > (SELECT counted FROM counter WHERE id = 1) AND kind = 'call' AND effect IS NOT NULL"
              " AND action IS NOT NULL GROUP BY effect, action")
#: Count them in: add them to counters and move ``counted`` to the journal's end (one transaction).
_COUNT_IN = ("INSERT INTO counters (name, value) " + _UNCOUNTED
             + " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
             "UPDATE counter SET counted = ifnull((SELECT max(seq) FROM journal), counted) WHERE id = 1")
#: A decision counts the uncounted ones in when there are this many sequence numbers since the
#: last time: ``counters()`` adds at most that many journal rows to what the table holds.
COUNT_IN_EVERY = 64
_ADD_COUNTER = ("INSERT INTO counters (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value")
_RUN_COLUMNS = ("run_id", "mode", "dry_since", "dry_at", "dry_cause", "dry_call", "created_at", "last_seen_at",
                "calls", "writes", "dry_writes", "allowed_writes", "denied", "asked")
_JOURNAL_COLUMNS = ("seq", "run_id", "ts", "kind", "call", "call_id", "agent_id", "tool_name", "tool_input", "effect",
                    "rule_id", "why", "action", "made_run_dry", "dry_because_of", "tamper", "policy_hash", "host",
                    "result", "context")
_UPSERT_RUN = ("INSERT OR REPLACE INTO runs (" + ",".join(_RUN_COLUMNS) + ") VALUES ("
               + ",".join("?" * len(_RUN_COLUMNS)) + ")")
_INSERT_JOURNAL = ("INSERT INTO journal (" + ",".join(_JOURNAL_COLUMNS) + ") VALUES ("
                   + ",".join("?" * len(_JOURNAL_COLUMNS)) + ")")
_INSERT_RESULT = ("INSERT INTO journal (seq, run_id, ts, kind, call_id, tool_name, result) "
                  "VALUES (?, ?, ?, 'result', ?, ?, ?)")
#: A run the store has: its row updated in place (INSERT OR REPLACE deletes and inserts it again,
#: about 3 us more per decision).
_UPDATE_RUN = "UPDATE runs SET " + ",".join(c + " = ?" for c in _RUN_COLUMNS[1:]) + " WHERE run_id = ?"
#: A RunState's values in _RUN_COLUMNS order (one C call; a generator of getattr cost about 3 us).
_run_values = attrgetter(*_RUN_COLUMNS)
#: The same values in _UPDATE_RUN's order (run_id last).
_update_values = attrgetter(*_RUN_COLUMNS[1:], "run_id")
_SELECT_RUN = "SELECT " + ",".join(_RUN_COLUMNS) + " FROM runs WHERE run_id = ?"
#: The next sequence number: one past the journal's last (its rowid: a read of the b-tree's right
#: edge, no write), and past ``counter.seq``, where prune leaves the last one it removes.
_NEXT_SEQ = "SELECT max(ifnull((SELECT max(seq) FROM journal), 0), (SELECT seq FROM counter WHERE id = 1)) + 1"
#: The next sequence number and the run's row (NULLs for a run the store has not seen), in one statement.
_SELECT_SEQ_AND_RUN = ("SELECT (" + _NEXT_SEQ[7:] + "), (SELECT counted FROM counter WHERE id = 1), "
                       + ",".join("runs." + c for c in _RUN_COLUMNS)
                       + " FROM (SELECT ? AS wanted) LEFT JOIN runs ON runs.run_id = wanted")


def _translate(e, path):
    from drygate.errors import StoreTimeout, StoreUnavailable

    text = str(e)
    if isinstance(e, _sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return StoreTimeout(f"state store {path} is locked past the gate's deadline ({text})")
    return StoreUnavailable(f"state store {path} failed: {text}")


def _run_from_row(row):
    return RunState(*row) if row else None


class _Checkpointer:
    """The thread that checkpoints the WAL of the SQLite file at ``path`` for this process
    (SQLiteStore.checkpoint_in_background): a passive checkpoint every ``every_s`` seconds.
    ``users``: the stores using it."""

    def __init__(self, path, every_s):
        import threading

        self.path, self.users = path, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True,
                                        name="drygate-wal-checkpoint")
        self._thread.start()

    def _run(self, every_s):
        db = None
        try:
            while not self._stop.wait(every_s):
                try:
                    if db is None:  # never creates the file (mode=rw)
                        uri = self.path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
                        db = _sqlite3.connect(f"file:{uri}?mode=rw", uri=True, isolation_level=None,
                                              check_same_thread=False, timeout=0)
                    # Nothing to copy: no write, no sync. Never a file of SQLite's opened and closed
                    # here: closing one drops every POSIX lock this process holds on it.
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except (OSError, _sqlite3.Error):
                    pass  # gone or busy: the next round (or the connections' fallback) checkpoints
        finally:
            if db is not None:
                db.close()

    def stop(self):
        """Stop the thread (waits for it at most a second)."""
        self._stop.set()
        self._thread.join(timeout=1.0)


_CHECKPOINTERS = {}  # absolute path -> _Checkpointer
_CHECKPOINTERS_LOCK = _thread.allocate_lock()  # _thread is built in: no import for the hook

class SQLiteStore(StateStore):
    """A :class:`StateStore` in the SQLite file at ``path`` (created with its folder).

    ``busy_timeout_s``: how long to wait for another process's lock before raising
    :class:`StoreTimeout` (keep it below the gate's deadline); ``synchronous``:
    ``"FULL"`` (default) or ``"NORMAL"`` (module docstring); ``wal_autocheckpoint``: WAL
    pages after which a commit of this connection checkpoints (None: SQLite's 1,000;
    :data:`HOOK_WAL_AUTOCHECKPOINT` for a hook process). Raises :class:`StoreUnavailable`
    when the file cannot be opened or is not a database.
    """

    def __init__(self, path, busy_timeout_s=2.0, synchronous="FULL", create=True, wal_autocheckpoint=None):
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError("synchronous must be FULL or NORMAL")
        self.path = str(path)
        self.synchronous = synchronous
        self.busy_timeout_s = busy_timeout_s
        self._checkpointer = None  # the _Checkpointer this store uses (checkpoint_in_background)
        try:
            if create:
                folder = os.path.dirname(os.path.abspath(self.path))
                if not os.path.isdir(folder):
                    os.makedirs(folder, exist_ok=True)
                self._db = _sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None,
                                            check_same_thread=False)
            else:  # never create the file: a store that is gone must stay gone (drygate.integrity)
                uri = os.path.abspath(self.path).replace("%", "%25").replace("?", "%3f").replace("#", "%23")
                self._db = _sqlite3.connect(f"file:{uri}?mode=rw",
                                            timeout=busy_timeout_s, isolation_level=None, check_same_thread=False,
                                            uri=True)
            self._sync_now = None
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._sync_now = synchronous  # the connection's setting now (_write changes it when needed)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                if not create and version == 0:
                    from drygate.errors import StoreUnavailable

                    raise StoreUnavailable(
                        f"the state store {self.path} has no drygate marker: `drygate init` did not make it, or it "
                        f"was replaced or emptied. Run `drygate state init` for a new project, else `drygate "
                        f"state init --recover HOURS` (every run is dry for HOURS)")
                self._create_schema()
            # Waits for a lock are drygate's own from here on (_retry), not SQLite's handler.
            self._db.execute("PRAGMA busy_timeout=0")
            if wal_autocheckpoint is not None:
                self._db.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")
        except _sqlite3.Error as e:
            raise _translate(e, self.path) from e
        except OSError as e:
            from drygate.errors import StoreUnavailable

            raise StoreUnavailable(f"cannot create the state store at {self.path}: {e.strerror or e}") from e

    def _create_schema(self):
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION) + _UPGRADABLE:
                from drygate.errors import StoreUnavailable

                newer = " (written by a newer drygate: upgrade drygate)" if version > SCHEMA_VERSION else ""
                raise StoreUnavailable(f"state store {self.path} has schema {version}, expected {SCHEMA_VERSION}"
                                       f"{newer}")
            for stmt in _SCHEMA:
                self._db.execute(stmt)
            if version == 3:
                for stmt in _BACKFILL:
                    self._db.execute(stmt)
            counted = "counted" in {row[1] for row in self._db.execute("PRAGMA table_info(counter)")}
            if not counted:
                self._db.execute("ALTER TABLE counter ADD COLUMN counted INTEGER NOT NULL DEFAULT 0")
            if version == 3 or not counted:
                # Schemas 4 and 5 counted every decision in its transaction, the backfill every one of 3.
                self._db.execute("UPDATE counter SET counted = max(seq, ifnull((SELECT max(seq) FROM journal), 0))")
            runs = self._db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'runs'").fetchone()
            if "WITHOUT ROWID" not in runs[0].upper():  # schema 5 and older: a rowid table, rebuilt
                self._db.execute("CREATE TABLE runs_upgrade" + _RUNS_TABLE)
                cols = ",".join(_RUN_COLUMNS)
                self._db.execute(f"INSERT INTO runs_upgrade ({cols}) SELECT {cols} FROM runs")
                self._db.execute("DROP TABLE runs")
                self._db.execute("ALTER TABLE runs_upgrade RENAME TO runs")
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(journal)")}
            if "context" not in columns:
                self._db.execute("ALTER TABLE journal ADD COLUMN context TEXT")
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _write(self, fn, durable=True):
        """Run ``fn(db)`` inside BEGIN IMMEDIATE ... COMMIT; translate errors.

        ``durable=False`` commits without the fsync of ``synchronous=FULL`` (see the
        module docstring). The connection's setting is changed only when the next commit
        needs the other one (a relay journaling reads back to back sets it once, not two
        PRAGMAs per commit); a durable commit always runs under FULL, and when setting it
        fails the commit is not attempted (StoreUnavailable, fail closed).
        """
        db = self._db
        wanted = self.synchronous if durable else "NORMAL"
        try:
            if self._sync_now != wanted:
                self._sync_now = None  # unknown until the PRAGMA is known to have run
                db.execute(f"PRAGMA synchronous={wanted}")
                self._sync_now = wanted
            self._begin(db)
        except _sqlite3.Error as e:
            raise _translate(e, self.path) from e
        return self._run(db, fn)

    #: How often the background checkpointer copies the WAL into the database file (s): a
    #: relay serving 1,000 reads a second writes about 2,500 frames in that time.
    CHECKPOINT_EVERY_S = 0.5
    #: The connection's own automatic checkpoint, kept as a safety valve (pages): reached only
    #: when the background checkpointer falls behind or fails.
    CHECKPOINT_FALLBACK_PAGES = 8000

    def checkpoint_in_background(self):
        """WAL checkpoints in a thread of their own instead of inside a commit.

        SQLite checkpoints the WAL inside the commit that takes it past 1,000 pages: copying
        4 MB and syncing the database file made one relay read in about 150 wait 3-6 ms
        (the relay's p99, bench/relay_overhead.py). Here this connection checkpoints only
        past :attr:`CHECKPOINT_FALLBACK_PAGES` (a safety valve), and a daemon thread with a
        connection of its own runs ``PRAGMA wal_checkpoint(PASSIVE)`` every
        :attr:`CHECKPOINT_EVERY_S` (with nothing new to copy it neither writes nor syncs;
        ``_sqlite3`` releases the GIL while SQLite works, and a
        passive checkpoint blocks no reader or writer). One thread per file and process, shared
        by its stores (an HTTP relay has a store per session); it stops when the last of them
        closes. Durability is unchanged: a checkpoint only copies committed pages, syncing the
        log before and the database after. Its failures are ignored (the next round, or the
        fallback, checkpoints). Returns True when this store uses it (False for ``:memory:``).
        """
        if self._checkpointer is not None or self.path in (":memory:", "") or self.path.startswith("file:"):
            return False
        try:
            self._db.execute(f"PRAGMA wal_autocheckpoint={self.CHECKPOINT_FALLBACK_PAGES}")
        except _sqlite3.Error:
            return False
        path = os.path.abspath(self.path)
        with _CHECKPOINTERS_LOCK:
            found = _CHECKPOINTERS.get(path)
            if found is None:
                found = _CHECKPOINTERS[path] = _Checkpointer(path, self.CHECKPOINT_EVERY_S)
            found.users += 1
        self._checkpointer = found
        return True

    def _begin(self, db):
        """``BEGIN IMMEDIATE`` on ``db``, waiting for another process's lock (:meth:`_retry`)."""
        self._retry(db.execute, "BEGIN IMMEDIATE")

    def _retry(self, fn, *args):
        """``fn(*args)``, tried again while the database is locked by another process.

        SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms
        between tries, so with eight processes on one store a waiter often slept long
        after the lock was free (p99 over 100 ms). The connection's busy timeout is 0
        after opening; here the statement is tried again after 0.1 ms, doubling up to
        2 ms, until ``busy_timeout_s`` has passed; then the last ``database is locked``
        error is raised (StoreTimeout, fail closed), as before.
        """
        try:
            return fn(*args)  # uncontended: at once
        except _sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
        import time

        deadline = time.monotonic() + self.busy_timeout_s
        pause = 0.0001
        while True:
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.002)
            try:
                return fn(*args)
            except _sqlite3.OperationalError as e:
                if ("locked" not in str(e) and "busy" not in str(e)) or time.monotonic() >= deadline:
                    raise

    def _run(self, db, fn):
        try:
            result = fn(db)
            db.execute("COMMIT")
            return result
        except BaseException as e:
            try:
                db.execute("ROLLBACK")
            except _sqlite3.Error:
                pass
            if isinstance(e, _sqlite3.Error):
                raise _translate(e, self.path) from e
            raise

    def _next_seq(self, db):
        """The next journal sequence number (int), inside a write transaction (module docstring: Sequence)."""
        return db.execute(_NEXT_SEQ).fetchone()[0]

    def _count_in(self, db):
        """Add the decisions journaled since ``counter.counted`` to counters (inside a write)."""
        for stmt in _COUNT_IN:
            db.execute(stmt)

    @staticmethod
    def _encoded(entry):
        """The JSON columns of a call's entry, encoded before the write lock is taken."""
        return (_json.dumps(entry["tool_input"]),
                None if entry.get("context") is None else _json.dumps(entry["context"]))

    def _transition(self, db, run_id, request, entry, clock, encoded, seqs=1):
        """Inside a write transaction: apply one call to its run and journal it; returns the Outcome.
        ``encoded``: :meth:`_encoded` of ``entry``; ``seqs``: sequence numbers to take (the call
        gets the first; the caller journals the others, with the numbers that follow it: the next
        is taken from the journal's end, module docstring: Sequence)."""
        row = db.execute(_SELECT_SEQ_AND_RUN, (run_id,)).fetchone()
        seq = row[0]
        state = None if row[2] is None else RunState(*row[2:])
        now = clock()
        state, outcome = apply_transition(state, run_id, request, seq, now, entry["tool_name"])
        db.execute(_INSERT_JOURNAL, (
            seq, run_id, now, "call", outcome.call, entry["call_id"], entry["agent_id"], entry["tool_name"],
            encoded[0], entry["effect"], entry["rule_id"], entry["why"],
            outcome.action, int(outcome.made_run_dry), outcome.dry_because_of, int(bool(entry["tamper"])),
            entry["policy_hash"], entry["host"], None, encoded[1]))
        if row[2] is None:
            db.execute(_UPSERT_RUN, _run_values(state))
        else:
            db.execute(_UPDATE_RUN, _update_values(state))
        if seq - row[1] >= COUNT_IN_EVERY:
            self._count_in(db)
        if outcome.made_run_dry:
            db.execute(_ADD_COUNTER, (RUNS_WENT_DRY, 1))
        return outcome

    def transact(self, run_id, request, entry, clock):
        encoded = self._encoded(entry)
        return self._write(lambda db: self._transition(db, run_id, request, entry, clock, encoded),
                           durable=request.gated)

    def transact_with_result(self, run_id, request, entry, clock, result):
        """The call and its result in one ``BEGIN IMMEDIATE`` transaction, committed without the
        FULL fsync (StateStore.transact_with_result): one write lock and one commit per read
        instead of two, which is what relays on one store wait for. Everything JSON is encoded
        before the lock is taken."""
        if request.gated:
            raise ValueError("transact_with_result is for calls that are not gated (reads)")
        encoded, result_text = self._encoded(entry), _json.dumps(result)

        def step(db):
            outcome = self._transition(db, run_id, request, entry, clock, encoded, seqs=2)
            db.execute(_INSERT_RESULT, (outcome.seq + 1, run_id, clock(), entry["call_id"], entry["tool_name"],
                                        result_text))
            return outcome, outcome.seq + 1

        return self._write(step, durable=False)

    def ensure_run(self, run_id, mode, now):
        def step(db):
            state = _run_from_row(db.execute(_SELECT_RUN, (run_id,)).fetchone())
            if state is None:
                state = RunState(run_id, mode, created_at=now, last_seen_at=now)
            else:
                state.mode = stricter_mode(state.mode, mode)
            db.execute(_UPSERT_RUN, _run_values(state))
            return state

        return self._write(step)

    def record_result(self, run_id, call_id, tool_name, result, now, durable=True):
        text = _json.dumps(result)

        def step(db):
            seq = self._next_seq(db)
            db.execute(_INSERT_RESULT, (seq, run_id, now, call_id, tool_name, text))
            return seq

        return self._write(step, durable=durable)

    def ping(self):
        self._write(lambda db: None)

    def _read(self, sql, args=()):
        try:
            return self._retry(lambda: self._db.execute(sql, args).fetchall())
        except _sqlite3.Error as e:
            raise _translate(e, self.path) from e

    def get_run(self, run_id):
        rows = self._read(_SELECT_RUN, (run_id,))
        return _run_from_row(rows[0]) if rows else None

    def list_runs(self):
        rows = self._read("SELECT " + ",".join(_RUN_COLUMNS) + " FROM runs ORDER BY last_seen_at DESC")
        return [_run_from_row(r) for r in rows]

    def journal(self, run_id=None):
        return list(self.iter_journal(run_id))

    def latest_catalog(self, run_id, server):
        # The run's own catalog through the journal_run index; else the newest one of any run,
        # scanning the journal backwards from its newest entry (catalogs are journaled at connect).
        name = f"drygate/catalog/{server}"
        rows = self._read("SELECT result FROM journal WHERE run_id = ? AND kind = 'result' AND tool_name = ? "
                          "ORDER BY seq DESC LIMIT 1", (run_id, name))
        if not rows:
            rows = self._read("SELECT result FROM journal WHERE kind = 'result' AND tool_name = ? "
                              "ORDER BY seq DESC LIMIT 1", (name,))
        if not rows or rows[0][0] is None:
            return None
        catalog = _json.loads(rows[0][0])
        return catalog if isinstance(catalog, dict) and isinstance(catalog.get("tools"), dict) else None

    def iter_journal(self, run_id=None):
        """The journal entries one at a time, read in batches of 1,000 rows from one read
        transaction (a plan of 100,000 steps never holds every row at once)."""
        sql = "SELECT " + ",".join(_JOURNAL_COLUMNS) + " FROM journal"
        try:
            cursor = self._retry(self._db.execute, sql + " WHERE run_id = ? ORDER BY seq" if run_id is not None
                                 else sql + " ORDER BY seq", (run_id,) if run_id is not None else ())
            while True:
                rows = cursor.fetchmany(1000)
                if not rows:
                    return
                for row in rows:
                    e = dict(zip(_JOURNAL_COLUMNS, row))
                    for key in ("tool_input", "result", "context"):
                        if e[key] is not None:
                            e[key] = _json.loads(e[key])
                    e["made_run_dry"] = bool(e["made_run_dry"])
                    e["tamper"] = bool(e["tamper"])
                    yield e
        except _sqlite3.Error as e:
            raise _translate(e, self.path) from e

    def prune(self, older_than_s, now):
        cutoff = now - older_than_s

        def step(db):
            self._count_in(db)  # before the entries they count go
            # Sequence numbers are never reused: the last one stays in counter (_NEXT_SEQ).
            db.execute("UPDATE counter SET seq = max(seq, ifnull((SELECT max(seq) FROM journal), 0)) WHERE id = 1")
            idle = "SELECT run_id FROM runs WHERE last_seen_at < ?"
            removed = db.execute(f"DELETE FROM journal WHERE run_id IN ({idle})", (cutoff,)).rowcount
            # Runs that went dry (or were started dry) stay as tombstones: expiry never turns them live.
            db.execute("DELETE FROM runs WHERE last_seen_at < ? AND dry_since IS NULL AND mode != 'dry'", (cutoff,))
            try:  # the fingerprints of runs that are gone (no table yet: nothing to drop)
                db.execute("DELETE FROM run_fingerprints WHERE substr(run_id, 1, 1) != char(0) AND run_id NOT IN "
                           "(SELECT run_id FROM runs)")
            except _sqlite3.OperationalError:
                pass
            return removed

        return self._write(step)

    def counters(self):
        """The counters table plus the decisions journaled since it last counted them in
        (module docstring: Counters), read in one statement (one snapshot)."""
        out = {}
        for name, value in self._read("SELECT name, value FROM counters UNION ALL " + _UNCOUNTED):
            out[name] = out.get(name, 0) + value
        return out

    def add_counters(self, increments):
        """Add ``increments`` in one transaction without the FULL fsync (statistics, not decisions)."""
        items = [(str(k), int(v)) for k, v in increments.items()]
        if items:
            self._write(lambda db: db.executemany(_ADD_COUNTER, items), durable=False)

    _LEDGER_TABLE = ("CREATE TABLE IF NOT EXISTS ledger (run_id TEXT PRIMARY KEY, version INTEGER NOT NULL, "
                     "record TEXT NOT NULL)")

    def ledger_get(self, run_id):
        try:
            row = self._retry(lambda: self._db.execute("SELECT version, record FROM ledger WHERE run_id = ?",
                                                       (run_id,)).fetchone())
        except _sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return 0, None  # created on the first put (not part of the run schema)
            raise _translate(e, self.path) from e
        except _sqlite3.Error as e:
            raise _translate(e, self.path) from e
        return (row[0], _json.loads(row[1])) if row else (0, None)

    def ledger_put(self, run_id, version, record):
        def step(db):
            db.execute(self._LEDGER_TABLE)
            row = db.execute("SELECT version FROM ledger WHERE run_id = ?", (run_id,)).fetchone()
            if (row[0] if row else 0) != version:
                return False
            db.execute("INSERT OR REPLACE INTO ledger (run_id, version, record) VALUES (?, ?, ?)",
                       (run_id, version + 1, _json.dumps(record)))
            return True

        return self._write(step)

    def ledgers(self):
        try:
            rows = self._retry(lambda: self._db.execute("SELECT run_id, record FROM ledger").fetchall())
        except _sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return {}
            raise _translate(e, self.path) from e
        return {r: _json.loads(text) for r, text in rows}

    # -- marker and fingerprints (drygate.integrity) --------------------------------------

    _META_TABLE = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
    # One row per run: its fingerprints as one JSON object (one read and one C parse per
    # decision; a row per path cost about 1 ms more per call with sqlglot's files watched).
    _FP_TABLE = "CREATE TABLE IF NOT EXISTS run_fingerprints (run_id TEXT PRIMARY KEY, entries TEXT NOT NULL)"

    def marker(self):
        """The store marker as a dict (``store_id``, ``created_at``, ``format``, ``dry_until``
        after a recovery); ``{}`` when ``drygate state init`` never initialized the store."""
        try:
            return dict(self._retry(lambda: self._db.execute("SELECT key, value FROM meta").fetchall()))
        except _sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return {}
            raise _translate(e, self.path) from e
        except _sqlite3.Error as e:
            raise _translate(e, self.path) from e

    def initialize(self, dry_until=None, renew=False):
        """Create the store marker unless it exists; returns ``(created (bool), store_id)``.

        ``renew``: give the store a new marker even if it has one (``--recover``);
        ``dry_until``: epoch seconds until which every run is dry (a recovery), or None.
        """
        import time

        def step(db):
            db.execute(self._META_TABLE)
            db.execute(self._FP_TABLE)
            row = db.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
            if row and not renew:
                return False, row[0]
            store_id = os.urandom(8).hex()
            db.execute("DELETE FROM meta")
            values = {"store_id": store_id, "created_at": repr(time.time()), "format": "1"}
            if dry_until is not None:
                values["dry_until"] = repr(float(dry_until))
            db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", list(values.items()))
            return True, store_id

        return self._write(step)

    def fingerprints(self, run_id):
        """``{path: fingerprint}`` kept for run ``run_id`` (drygate.integrity); ``{}`` when none."""
        try:
            row = self._retry(lambda: self._db.execute("SELECT entries FROM run_fingerprints WHERE run_id = ?",
                                                       (run_id,)).fetchone())
        except _sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return {}
            raise _translate(e, self.path) from e
        except _sqlite3.Error as e:
            raise _translate(e, self.path) from e
        return _json.loads(row[0]) if row else {}

    def put_fingerprints(self, run_id, entries, replace=False, durable=True):
        """Keep ``entries`` ({path: fingerprint}) for run ``run_id``; an existing path keeps its
        first value unless ``replace``. ``durable=False`` skips the FULL fsync (module docstring).
        Merged in one ``BEGIN IMMEDIATE`` transaction, so parallel calls of a run lose nothing."""
        if not entries:
            return

        def step(db):
            db.execute(self._FP_TABLE)
            row = db.execute("SELECT entries FROM run_fingerprints WHERE run_id = ?", (run_id,)).fetchone()
            kept = _json.loads(row[0]) if row else {}
            for path, value in entries.items():
                if replace or path not in kept:
                    kept[str(path)] = str(value)
            db.execute("INSERT OR REPLACE INTO run_fingerprints (run_id, entries) VALUES (?, ?)",
                       (run_id, _json.dumps(kept)))

        self._write(step, durable=durable)

    def verdict_get(self, key):
        try:
            row = self._db.execute("SELECT effect, steps FROM verdicts WHERE key = ?", (key,)).fetchone()
        except _sqlite3.OperationalError:
            return None  # no table yet (created on the first put), or the store is busy: no cache
        return (row[0], tuple(_json.loads(row[1]))) if row else None

    #: Every this many verdicts kept, the ones older than the newest VERDICT_LIMIT are deleted.
    VERDICT_TRIM_EVERY = 1000

    def verdict_put(self, key, effect, steps):
        """Remember a verdict; the table is created on first use (not part of the run schema) and
        trimmed to about :attr:`VERDICT_LIMIT` rows, the oldest first."""
        def step(db):
            db.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, effect TEXT NOT NULL, "
                       "steps TEXT NOT NULL)")
            row = db.execute("INSERT OR REPLACE INTO verdicts (key, effect, steps) VALUES (?, ?, ?)",
                             (key, effect, _json.dumps(list(steps)))).lastrowid
            if row and row % self.VERDICT_TRIM_EVERY == 0:  # a replaced key gets a new rowid: oldest first
                db.execute("DELETE FROM verdicts WHERE rowid <= ?", (row - self.VERDICT_LIMIT,))

        self._write(step, durable=False)

    def close(self):
        if self._checkpointer is not None:
            found, self._checkpointer = self._checkpointer, None
            with _CHECKPOINTERS_LOCK:
                found.users -= 1
                last = found.users == 0 and _CHECKPOINTERS.pop(found.path, None) is found
            if last:
                found.stop()
        try:
            self._db.close()
        except _sqlite3.Error:
            pass
