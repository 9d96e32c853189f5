"""Classify SQL text with sqlglot (dialects: sqlite for SQLite/D1, postgres, mysql).

Rules (issue 3, and shared/reference/dry-run-lessons.md rule 8):

- SELECT, SHOW, DESCRIBE and EXPLAIN without ANALYZE are reads, and so are the
  read-only PRAGMAs and client meta-commands (``\\dt``, ``.tables``);
- everything else is a write, including the side-effectful reads, which are
  ``side_effect_read``: ``EXPLAIN ANALYZE`` of a write, ``nextval``/``setval`` and
  similar functions, ``SELECT ... FOR UPDATE/SHARE``, ``SELECT ... INTO``;
  ``COPY ... TO`` and CTEs that contain DML are writes;
- a multi-statement text is the strongest of its statements;
- text sqlglot cannot parse is unknown.

sqlglot is imported only when SQL must be classified (about 110 ms on the 2-core
machine; bench/classify.py).
"""

from drygate.classifiers.verdict import Verdict, read, strongest, unknown, write
from drygate.types import SIDE_EFFECT_READ

#: Functions whose call changes state even inside a SELECT.
SIDE_EFFECT_FUNCTIONS = frozenset((
    "nextval", "setval", "pg_advisory_lock", "pg_advisory_xact_lock", "pg_try_advisory_lock",
    "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile", "set_config",
    "lo_import", "lo_export", "lo_unlink", "dblink_exec", "pg_switch_wal", "pg_create_restore_point",
    "pg_stat_reset", "pg_notify", "txid_current", "pg_current_xact_id", "get_lock", "release_lock",
    "sleep", "benchmark", "load_file", "last_insert_id", "sys_exec", "sys_eval", "dbms_pipe",
))
#: Functions sqlglot does not know (it parses them as Anonymous) that are known to only
#: compute or report; any other unknown function may be user-defined and change data,
#: so a SELECT calling it is unknown.
SAFE_ANONYMOUS_PREFIXES = (
    "pg_get_", "pg_stat_get_", "pg_size_", "pg_last_", "has_", "json_", "jsonb_", "array_", "string_", "regexp_",
    "quote_", "make_", "justify_", "to_reg", "date_", "sqlite_",
)
SAFE_ANONYMOUS_NAMES = frozenset((
    "pg_size_pretty", "pg_database_size", "pg_relation_size", "pg_table_size", "pg_total_relation_size",
    "pg_indexes_size", "pg_typeof", "pg_is_in_recovery", "pg_postmaster_start_time", "pg_backend_pid",
    "pg_column_size", "pg_encoding_to_char", "pg_has_role", "pg_table_is_visible", "pg_function_is_visible",
    "pg_tablespace_size", "pg_current_wal_lsn", "pg_wal_lsn_diff", "obj_description", "col_description",
    "shobj_description", "format_type", "current_setting", "current_database", "current_schema", "current_user",
    "session_user", "inet_server_addr", "inet_server_port", "version", "md5", "sha256", "sha512", "encode",
    "decode", "to_char", "to_number", "to_date", "to_timestamp", "date_trunc", "date_part", "age",
    "generate_series", "unnest", "row_number", "rank", "dense_rank", "lag", "lead", "first_value", "last_value",
    "ntile", "percent_rank", "cume_dist", "nullif", "greatest", "least", "btrim", "ltrim", "rtrim", "lpad",
    "rpad", "initcap", "strpos", "char_length", "octet_length", "bit_length", "ascii", "chr", "format",
    "typeof", "printf", "instr", "ifnull", "iif", "unicode", "hex", "unhex", "quote", "changes", "total_changes",
    "last_insert_rowid", "likelihood", "likely", "unlikely", "datetime", "julianday", "strftime", "unixepoch",
    "time", "date", "database", "schema", "connection_id", "found_rows", "row_count", "uuid", "inet_aton",
    "inet_ntoa", "str_to_date", "from_unixtime", "unix_timestamp", "group_concat", "concat_ws", "field",
    "find_in_set", "split_part", "translate",
))
#: SQLite PRAGMAs that only report (a PRAGMA with ``= value`` always sets).
READ_PRAGMAS = frozenset((
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo", "foreign_key_list",
    "database_list", "compile_options", "collation_list", "function_list", "module_list", "pragma_list",
    "integrity_check", "quick_check", "foreign_key_check", "page_count", "page_size", "freelist_count",
    "schema_version", "user_version", "application_id", "encoding", "journal_mode", "synchronous",
    "data_version", "max_page_count", "cache_size", "busy_timeout", "auto_vacuum", "foreign_keys",
))
_PSQL_READ_META = ("\\d", "\\l", "\\dt", "\\di", "\\dv", "\\ds", "\\df", "\\dn", "\\du", "\\dx", "\\conninfo",
                   "\\timing", "\\x", "\\?", "\\h", "\\encoding", "\\pset", "\\a", "\\t", "\\q", "\\echo", "\\dp",
                   "\\db", "\\dT", "\\dD", "\\dE", "\\dm", "\\dy", "\\sf", "\\sv", "\\z", "\\c", "\\connect")
_SQLITE_READ_DOT = (".tables", ".schema", ".indexes", ".indices", ".headers", ".mode", ".dump", ".databases",
                    ".show", ".help", ".width", ".timer", ".quit", ".exit", ".fullschema", ".dbinfo", ".stats",
                    ".eqp", ".explain", ".nullvalue", ".separator", ".echo", ".bail", ".changes", ".print",
                    ".lint", ".prompt", ".timeout", ".parameter", ".expert")


def _split_meta(text, meta):
    """Split client meta-commands (psql ``\\x``, sqlite3 ``.x`` lines) from SQL."""
    sql_lines, verdicts = [], []
    for line in text.splitlines():
        stripped = line.strip()
        if meta == "psql" and stripped.startswith("\\") and "`" in stripped:
            verdicts.append(unknown("a psql meta-command with backquotes runs a shell command"))
        elif meta == "psql" and stripped.startswith("\\"):
            word = stripped.split()[0]
            if word in _PSQL_READ_META or (word.startswith("\\d") and len(word) <= 4):
                verdicts.append(read(f"psql meta-command {word} only shows"))
            elif word in ("\\copy",):
                low = stripped.lower()
                verdicts.append(write(f"psql \\copy ... {'to' if ' to ' in low else 'from'} writes"))
            else:
                verdicts.append(unknown(f"psql meta-command {word} may run files or shell commands"))
        elif meta == "sqlite3" and stripped.startswith("."):
            word = stripped.split()[0]
            if word in _SQLITE_READ_DOT:
                verdicts.append(read(f"sqlite3 {word} only shows"))
            else:
                verdicts.append(unknown(f"sqlite3 {word} may write files, attach databases or run commands"))
        else:
            sql_lines.append(line)
    return "\n".join(sql_lines), verdicts


def classify_sql_script(text, dialect, meta=None, cache=None):
    """Classify SQL text that may contain client meta-commands (``meta``: "psql", "sqlite3" or None).

    ``cache``: see :func:`classify_sql`.
    """
    if text is None:
        return unknown("the SQL is only known at run time")
    sql, verdicts = _split_meta(text, meta) if meta else (text, [])
    if sql.strip():
        verdicts.append(classify_sql(sql, dialect, cache))
    return strongest(verdicts, read("no statements"))


#: Part of every cache key: change it when the rules below change what a statement is.
RULES_VERSION = "drygate-sql-1"


def classify_sql(text, dialect="postgres", cache=None):
    """Classify SQL ``text`` (str) in ``dialect`` ("sqlite", "postgres", "mysql"); returns a Verdict.

    ``cache``: a state store with ``verdict_get(key)``/``verdict_put(key, effect,
    steps)``. Importing sqlglot costs about 100 ms per hook process, so a statement's
    verdict is kept under the SHA-256 of (RULES_VERSION, dialect, text), and a
    repeated statement skips the import. Bump RULES_VERSION when the rules change.
    """
    key = None
    if cache is not None:
        import hashlib

        key = "sql:" + hashlib.sha256(f"{RULES_VERSION}\0{dialect}\0{text}".encode()).hexdigest()
        try:
            hit = cache.verdict_get(key)
        except Exception:
            hit = None
        if hit is not None:
            return Verdict(hit[0], *hit[1])
    verdict = _classify_sql(text, dialect)
    if key is not None:
        try:
            cache.verdict_put(key, verdict.effect, verdict.steps)
        except Exception:
            pass  # a verdict not remembered is only slower next time
    return verdict


def _classify_sql(text, dialect):
    try:
        import sqlglot
        from sqlglot import exp
        from sqlglot.errors import SqlglotError
    except ImportError:  # pragma: no cover - sqlglot is a dependency
        return unknown("the SQL parser (sqlglot) is not installed")
    import logging

    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its fallbacks are decided here, not printed
    single = text.strip().rstrip(";").strip()
    if single.upper().startswith("PRAGMA") and ";" not in single:
        return _pragma_text(single)
    try:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
    except (SqlglotError, ValueError, RecursionError) as e:
        return unknown(f"the SQL does not parse ({str(e).splitlines()[0][:120]})")
    if not statements:
        return read("no statements")
    verdicts = [_statement(s, exp, dialect) for s in statements]
    v = strongest(verdicts)
    if len(statements) > 1:
        return v.because(f"{len(statements)} statements: the strongest decides")
    return v


def _first_words(stmt):
    return stmt.sql().split(None, 2)


def _statement(stmt, exp, dialect):
    kind = type(stmt).__name__.upper()
    if isinstance(stmt, exp.Command):
        return _command(stmt, dialect)
    if isinstance(stmt, exp.Describe) and "ANALYZE" in stmt.sql(dialect=dialect).upper().split("DESCRIBE", 1)[-1][:12]:
        inner = stmt.this
        inner_v = _statement(inner, exp, dialect) if isinstance(inner, exp.Expression) else unknown("no statement")
        if inner_v.effect == "read":
            return read("EXPLAIN ANALYZE runs its statement, which only reads").because(inner_v.reason)
        return Verdict(SIDE_EFFECT_READ, f"EXPLAIN ANALYZE executes the statement it explains ({inner_v.reason})")
    if isinstance(stmt, (exp.Show, exp.Describe)) if hasattr(exp, "Show") else isinstance(stmt, exp.Describe):
        return read(f"{kind} only shows")
    if isinstance(stmt, exp.Pragma):
        return write("PRAGMA in a multi-statement text is taken as a setting change")
    if isinstance(stmt, (exp.Transaction, exp.Commit, exp.Rollback)):
        text = stmt.sql(dialect=dialect).upper()
        if text in ("BEGIN", "COMMIT", "ROLLBACK", "START TRANSACTION", "BEGIN TRANSACTION", "END") or (
                text.startswith(("BEGIN ", "START TRANSACTION", "COMMIT", "ROLLBACK")) and "PREPARED" not in text
                and "REPLICA" not in text and "SLAVE" not in text and " TO " not in text):
            return read(f"{kind} manages a transaction")
        return unknown(f"{text[:40]} is not a plain transaction statement")
    if not isinstance(stmt, (exp.Query, exp.DML, exp.DDL)) and not isinstance(stmt, (exp.Copy, exp.Command)):
        if isinstance(stmt, (exp.Alias, exp.Column, exp.Identifier, exp.Literal)):
            return unknown(f"the SQL does not parse as a statement ({stmt.sql()[:60]!r})")
    if isinstance(stmt, exp.Copy):
        return write("COPY moves data in or out of a table or file")
    # Data changing statements anywhere in the tree (also inside CTEs).
    dml = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.TruncateTable)
    for node in stmt.walk():
        if isinstance(node, dml):
            where = "" if node is stmt else " (inside the statement)"
            return write(f"{type(node).__name__.upper()}{where} changes data or schema")
    if isinstance(stmt, (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery)) or (
            hasattr(exp, "Values") and isinstance(stmt, exp.Values)):
        return _select(stmt, exp)
    return write(f"{kind} is not a read")


def _select(stmt, exp):
    if stmt.args.get("into") is not None:
        return write("SELECT ... INTO creates a table or writes a file")
    for node in stmt.walk():
        if isinstance(node, exp.Lock) or (node is not stmt and isinstance(node, exp.Into)):
            return Verdict(SIDE_EFFECT_READ, "SELECT ... FOR UPDATE/SHARE locks rows") if isinstance(
                node, exp.Lock) else write("SELECT ... INTO writes")
        if isinstance(node, (exp.Anonymous, exp.Func)):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            if name in SIDE_EFFECT_FUNCTIONS:
                return Verdict(SIDE_EFFECT_READ, f"{name}() changes state even inside a SELECT")
            if isinstance(node, exp.Anonymous) and name not in SAFE_ANONYMOUS_NAMES and not name.startswith(
                    SAFE_ANONYMOUS_PREFIXES):
                return unknown(f"{name}() is not a known built-in function: it may be user-defined and change "
                               "data, write files or run other SQL")
    return read("SELECT only reads")


def _pragma_text(text):
    body = text[len("PRAGMA"):].strip()
    name = body.split("(")[0].split("=")[0].strip().split(".")[-1].lower()
    if "=" in body:
        return write(f"PRAGMA {name} = ... changes a setting")
    if name in READ_PRAGMAS:
        return read(f"PRAGMA {name} only reports")
    return unknown(f"PRAGMA {name} is not known to be read-only")


def _command(stmt, dialect):
    """Statements sqlglot keeps as raw commands (EXPLAIN, SHOW, SET, VACUUM, ...)."""
    from sqlglot import exp

    head = str(stmt.this or "").upper()
    expr = stmt.expression
    if isinstance(expr, exp.Literal):
        rest = expr.name
    elif isinstance(expr, exp.Expression):
        rest = expr.sql(dialect=dialect)
    else:
        rest = str(expr or "")
    if head == "EXPLAIN":
        stripped = rest.strip()
        if stripped.startswith("("):
            options, inner = _split_paren(stripped)
            words = options.upper().replace(",", " ").replace('"', " ").replace("'", " ").split()
            analyze = False
            for j, w in enumerate(words):
                if w in ("ANALYZE", "ANALYSE"):  # (ANALYZE), (ANALYZE true); not (ANALYZE false)
                    analyze = words[j + 1:j + 2] not in (["FALSE"], ["OFF"], ["0"])
        else:
            words = stripped.split(None, 1)
            analyze = bool(words) and words[0].upper().strip('"') in ("ANALYZE", "ANALYSE")
            inner = _strip_options(words[1] if len(words) > 1 else "") if analyze else stripped
        if analyze:
            inner_v = classify_sql(inner, dialect)
            if inner_v.effect == "read":
                return read("EXPLAIN ANALYZE runs its statement, which only reads").because(inner_v.reason)
            return Verdict(SIDE_EFFECT_READ, f"EXPLAIN ANALYZE executes the statement it explains "
                                             f"({inner_v.reason})")
        return read("EXPLAIN without ANALYZE only plans")
    if head in ("SHOW", "DESCRIBE", "DESC", "LIST"):
        return read(f"{head} only shows")
    if head in ("BEGIN", "START", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"):
        return read(f"{head} manages a transaction")
    return write(f"{head} is not a read")


def _split_paren(text):
    """``("(A, B) rest")`` -> ``("A, B", "rest")``."""
    depth = 0
    for i, c in enumerate(text):
        depth += c == "("
        depth -= c == ")"
        if depth == 0:
            return text[1:i], text[i + 1:].strip()
    return text, ""


def _strip_options(text):
    text = text.strip()
    for word in ("VERBOSE", "BUFFERS", "COSTS", "TIMING", "SUMMARY", "WAL"):
        if text.upper().startswith(word + " "):
            text = text[len(word):].strip()
    return text
