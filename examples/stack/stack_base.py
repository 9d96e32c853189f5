"""What every part of the stack server shares: the refusal error and the SQLite file.

Errors a tool raises (all reach the client as an ``isError`` result with the message)::

    ToolError (mcp.server.mcpserver.exceptions)
     +-- Refused          nothing was changed: a precondition failed, the input is invalid,
     |                    an idempotency key was reused with other arguments, ...
     +-- OutcomeUnknown   the write may or may not have happened (a timeout after the
                          request was sent); retrying with the same idempotency key is safe

The SQLite file (``STACK_DB``) holds the SQL tables the tools work on *and* the server's
own tables, whose names start with ``_stack_`` (idempotency records, the key-value
fallback). SQL that comes from a client never touches those: every statement built from
client input runs under :func:`guard`, an SQLite authorizer that also refuses
transaction control (``COMMIT``/``ROLLBACK`` inside a tool call would break the
atomicity of the write and its idempotency record), ``ATTACH`` and ``PRAGMA``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mcp.server.mcpserver.exceptions import ToolError

#: Tables of the server itself; no client SQL may read or change them.
INTERNAL_PREFIX = "_stack_"

#: How long a statement waits for another writer's lock before it fails (seconds).
BUSY_TIMEOUT_S = 5.0


class Refused(ToolError):
    """The call was refused and nothing was changed."""


class OutcomeUnknown(ToolError):
    """The write was sent but its outcome is unknown (it may have been applied)."""


def connect(path: str | Path) -> sqlite3.Connection:
    """A read-write connection in autocommit mode (transactions are explicit)."""
    return sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False)


def connect_read_only(path: str | Path) -> sqlite3.Connection:
    """A connection SQLite itself will not let write (``mode=ro``), whatever the SQL says."""
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False)


@contextmanager
def transaction(path: str | Path) -> Iterator[sqlite3.Connection]:
    """One write transaction: ``BEGIN IMMEDIATE`` (the write lock up front), then COMMIT,
    or ROLLBACK on any exception."""
    conn = connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.close()


def _authorize(action, arg1, arg2, _db, _trigger):
    if action in (sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT, sqlite3.SQLITE_ATTACH,
                  sqlite3.SQLITE_DETACH, sqlite3.SQLITE_PRAGMA):
        return sqlite3.SQLITE_DENY
    for name in (arg1, arg2):
        if name and name.lower().startswith(INTERNAL_PREFIX):
            return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


@contextmanager
def guard(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run client SQL on ``conn``: no server tables, no transaction control, no ATTACH/PRAGMA."""
    conn.set_authorizer(_authorize)
    try:
        yield conn
    finally:
        conn.set_authorizer(None)


def sql_error(exc: sqlite3.Error, what: str) -> ToolError:
    """Translate an SQLite error raised by client SQL into the tool's error."""
    text = str(exc)
    if "not authorized" in text or "prohibited" in text:
        text += (f" (statements may not touch the server's own tables ({INTERNAL_PREFIX}*), "
                 "control transactions, ATTACH or use PRAGMA)")
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return Refused(f"{what}: the database is busy ({text}); nothing was changed, try again")
    return Refused(f"{what}: {text}; nothing was changed")
