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
from drygate.types import READ, SIDE_EFFECT_READ, UNKNOWN, WRITE

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
#: SQLite PRAGMAs that, given no argument, only report (sqlite.org/pragma.html: the
#: query form of each; PRAGMAs that act even without an argument, such as optimize,
#: wal_checkpoint, incremental_vacuum and shrink_memory, are not here).
READ_PRAGMAS = frozenset((
    "analysis_limit", "application_id", "auto_vacuum", "automatic_index", "busy_timeout", "cache_size",
    "cache_spill", "cell_size_check", "checkpoint_fullfsync", "collation_list", "compile_options", "data_version",
    "database_list", "defer_foreign_keys", "encoding", "foreign_key_check", "foreign_key_list", "foreign_keys",
    "freelist_count", "fullfsync", "function_list", "hard_heap_limit", "ignore_check_constraints", "index_info",
    "index_list", "index_xinfo", "integrity_check", "journal_mode", "journal_size_limit", "legacy_alter_table",
    "locking_mode", "max_page_count", "mmap_size", "module_list", "page_count", "page_size", "pragma_list",
    "query_only", "quick_check", "read_uncommitted", "recursive_triggers", "reverse_unordered_selects",
    "schema_version", "secure_delete", "soft_heap_limit", "stats", "synchronous", "table_info", "table_list",
    "table_xinfo", "temp_store", "threads", "trusted_schema", "user_version", "wal_autocheckpoint",
))
#: PRAGMAs whose argument names what to report on (a table, an index, a row limit) rather
#: than a new value: ``PRAGMA table_info(t)``. Every other PRAGMA with an argument, in
#: either form (``PRAGMA x = v`` or ``PRAGMA x(v)``), sets something.
ARGUMENT_QUERY_PRAGMAS = frozenset((
    "table_info", "table_xinfo", "table_list", "index_info", "index_xinfo", "index_list", "foreign_key_list",
    "foreign_key_check", "integrity_check", "quick_check",
))
#: SQL functions that write files, load code or run programs (SQLite's CLI adds writefile,
#: edit, readfile; load_extension and fts3_tokenizer load or register native code;
#: PostgreSQL's adminpack and dblink; MySQL's sys_exec UDFs).
CODE_FUNCTIONS = {
    "writefile": "write", "load_extension": "unknown", "edit": "unknown", "fts3_tokenizer": "unknown",
    "pg_file_write": "write", "pg_file_rename": "write", "pg_file_unlink": "write", "pg_file_sync": "write",
    "dblink": "unknown", "dblink_exec": "write", "lo_export": "write", "lo_import": "write",
    "sys_exec": "unknown", "sys_eval": "unknown", "lo_from_bytea": "write", "lo_put": "write",
}
#: psql meta-commands that only show or change display settings (psql manual, "Meta-Commands").
PSQL_READ_META = frozenset((
    "\\?", "\\h", "\\help", "\\q", "\\quit", "\\l", "\\list", "\\conninfo", "\\c", "\\connect",
    "\\encoding", "\\errverbose", "\\timing", "\\x", "\\a", "\\t", "\\H", "\\html", "\\f",
    "\\C", "\\T", "\\pset", "\\echo", "\\warn", "\\qecho", "\\sf", "\\sv", "\\z", "\\dp",
    "\\copyright", "\\g", "\\gx", "\\gdesc", "\\crosstabview", "\\r", "\\reset", "\\p",
    "\\print", "\\unset", "\\o", "\\out", "\\s", "\\bind",
))
#: psql meta-commands that write or run something: {command: (effect, why)}.
PSQL_ACTING_META = {
    "\\o": ("write", "sends query output to a file or a program"), "\\out": ("write", "sends output to a file"),
    "\\g": ("write", "with an argument sends the result to a file or a program"),
    "\\gx": ("write", "with an argument sends the result to a file or a program"),
    "\\s": ("write", "with an argument writes the history to a file"),
    "\\w": ("write", "writes the query buffer to a file"), "\\write": ("write", "writes the buffer to a file"),
    "\\copy": ("write", "copies between a table and a file"),
    "\\lo_export": ("write", "writes a large object to a file"),
    "\\lo_import": ("write", "creates a large object"), "\\lo_unlink": ("write", "deletes a large object"),
    "\\password": ("write", "changes a password"),
    "\\!": ("unknown", "runs a shell command"), "\\i": ("unknown", "runs a file"),
    "\\include": ("unknown", "runs a file"), "\\ir": ("unknown", "runs a file"),
    "\\include_relative": ("unknown", "runs a file"), "\\e": ("unknown", "runs an editor"),
    "\\edit": ("unknown", "runs an editor"), "\\ef": ("unknown", "runs an editor"),
    "\\ev": ("unknown", "runs an editor"), "\\gexec": ("unknown", "runs each result cell as SQL"),
    "\\gset": ("unknown", "sets variables that later SQL interpolates"),
    "\\set": ("unknown", "sets variables that later SQL interpolates"),
    "\\setenv": ("unknown", "sets an environment variable for programs psql runs"),
    "\\watch": ("unknown", "repeats the query"), "\\cd": ("unknown", "changes the folder of later file names"),
    "\\prompt": ("unknown", "sets a variable from input"),
}
#: sqlite3 dot-commands (from sqlite3 3.40's own ``.help``) that only show, or change the
#: display of this session. Matched on the exact name: sqlite3 also takes prefixes, and
#: a prefix is unknown here.
SQLITE_READ_DOT = frozenset((
    ".tables", ".schema", ".indexes", ".indices", ".databases", ".dbinfo", ".fullschema", ".show", ".help",
    ".headers", ".mode", ".nullvalue", ".separator", ".width", ".timer", ".echo", ".bail", ".changes", ".print",
    ".prompt", ".timeout", ".quit", ".exit", ".eqp", ".explain", ".stats", ".vfsinfo", ".vfslist", ".vfsname",
    ".lint", ".sha3sum", ".scanstats", ".binary", ".limit", ".dump",
))
#: sqlite3 dot-commands that write or run something: {command: (effect, why)}.
SQLITE_ACTING_DOT = {
    ".output": ("write", "sends output to a file or a program"), ".once": ("write", "sends output to a file or a "
                                                                                     "program"),
    ".log": ("write", "writes a log file"), ".trace": ("write", "writes each statement to a file"),
    ".excel": ("unknown", "opens a spreadsheet program"), ".testcase": ("write", "writes testcase-out.txt"),
    ".save": ("write", "writes the database to a file"), ".backup": ("write", "writes the database to a file"),
    ".clone": ("write", "writes a new database"), ".restore": ("write", "replaces the database"),
    ".import": ("write", "imports a file into a table"), ".archive": ("write", "manages an SQL archive"),
    ".ar": ("write", "manages an SQL archive"), ".shell": ("unknown", "runs a shell command"),
    ".system": ("unknown", "runs a shell command"), ".load": ("unknown", "loads native code"),
    ".read": ("unknown", "runs a file or a command's output"), ".open": ("unknown", "opens (or creates) a file"),
    ".cd": ("unknown", "changes the folder of later file names"), ".parameter": ("unknown", "binds parameters"),
}


def _split_meta(text, meta):
    """Split client commands (psql ``\\x``, sqlite3 ``.x`` lines, mysql client commands) from SQL."""
    sql_lines, verdicts = [], []
    for line in text.splitlines():
        stripped = line.strip()
        if meta == "psql" and "\\" in _outside_quotes(stripped):
            head, _, meta_text = stripped.partition("\\") if not stripped.startswith("\\") else ("", "", stripped[1:])
            if head.strip():
                sql_lines.append(head)
            verdicts.extend(_psql_meta("\\" + meta_text))
        elif meta == "sqlite3" and stripped.startswith("."):
            verdicts.append(_sqlite_dot(stripped))
        elif meta == "mysql" and _mysql_client_command(stripped) is not None:
            found = _mysql_client_command(stripped)
            if isinstance(found, str):
                sql_lines.append(found)
            else:
                verdicts.append(found)
        else:
            sql_lines.append(line)
    return "\n".join(sql_lines), verdicts


def _outside_quotes(text):
    """``text`` with the content of '...' and "..." strings blanked."""
    out, quote = [], None
    for c in text:
        if quote:
            out.append(" ")
            if c == quote:
                quote = None
        elif c in ("'", '"'):
            quote = c
            out.append(" ")
        else:
            out.append(c)
    return "".join(out)


def _psql_meta(text):
    """Verdicts of the meta-commands in ``text`` (it starts with a backslash; psql reads
    several on a line: ``\\dt \\! cmd``)."""
    if "`" in text:
        return [unknown("a psql meta-command with backquotes runs a shell command")]
    verdicts = []
    parts = ["\\" + p for p in text[1:].split("\\")] if "\\" in _outside_quotes(text[1:]) else [text]
    for part in parts:
        words = part.split()
        word = words[0] if words else "\\"
        if word == "\\":
            continue
        args = words[1:]
        if word == "\\copy":
            low = part.lower()
            verdicts.append(unknown("psql \\copy ... program runs a shell command") if " program " in low + " "
                            else write(f"psql \\copy ... {'to' if ' to ' in low else 'from'} writes"))
        elif word in PSQL_ACTING_META and (args or word not in PSQL_READ_META):
            effect, why = PSQL_ACTING_META[word]
            verdicts.append(Verdict(effect, f"psql meta-command {word} {why}"))
        elif word in PSQL_READ_META or (word.startswith("\\d") and word[2:].rstrip("S+").isalpha()
                                        and len(word) <= 5) or word in ("\\d", "\\d+", "\\dS"):
            verdicts.append(read(f"psql meta-command {word} only shows"))
        else:
            verdicts.append(unknown(f"psql meta-command {word} is not known to be read-only"))
    return verdicts


def _sqlite_dot(line):
    words = line.split()
    word = words[0]
    if word == ".parameter" and len(words) > 1:
        if words[1] in ("list", "init", "clear", "unset"):
            return read(f"sqlite3 .parameter {words[1]} only manages bindings")
        if words[1] == "set" and len(words) > 3:
            value = line.split(None, 3)[3]
            if ";" in value:
                return unknown("sqlite3 .parameter set: a value with ';' is not classified")
            return classify_sql(f"SELECT {value}", "sqlite").because(
                "sqlite3 .parameter set evaluates its value as an SQL expression")
        return unknown("sqlite3 .parameter: a form this classifier does not read")
    if word == ".dbconfig" and len(words) > 2:
        return unknown("sqlite3 .dbconfig with a value changes the connection's safety settings")
    if word in SQLITE_READ_DOT:
        return read(f"sqlite3 {word} only shows")
    if word in SQLITE_ACTING_DOT:
        effect, why = SQLITE_ACTING_DOT[word]
        return Verdict(effect, f"sqlite3 {word} {why}")
    return unknown(f"sqlite3 {word} is not known to be read-only (a prefix or another command)")


#: mysql client commands (MySQL manual, "mysql Client Commands"): {long name: (short, effect, why)}.
MYSQL_CLIENT_COMMANDS = {
    "system": ("\\!", "unknown", "runs a shell command"), "tee": ("\\T", "write", "copies output to a file"),
    "source": ("\\.", "unknown", "runs a file"), "pager": ("\\P", "unknown", "pipes output to a program"),
    "edit": ("\\e", "unknown", "runs an editor"), "delimiter": ("\\d", "unknown",
                                                                 "changes how statements are split"),
    "connect": ("\\r", "read", "reconnects"), "use": ("\\u", "read", "selects a database"),
    "notee": ("\\t", "read", "stops copying output"), "nopager": ("\\n", "read", "stops the pager"),
    "status": ("\\s", "read", "shows status"), "help": ("\\h", "read", "shows help"),
    "clear": ("\\c", "read", "clears the input"), "go": ("\\g", "read", "sends the statement"),
    "ego": ("\\G", "read", "sends the statement"), "print": ("\\p", "read", "prints the statement"),
    "quit": ("\\q", "read", "quits"), "exit": ("\\q", "read", "quits"), "warnings": ("\\W", "read", "shows warnings"),
    "nowarning": ("\\w", "read", "hides warnings"), "rehash": ("\\#", "read", "rebuilds completion"),
    "charset": ("\\C", "read", "sets the character set"), "prompt": ("\\R", "read", "sets the prompt"),
    "resetconnection": ("\\x", "read", "resets the session"),
    "query_attributes": (None, "unknown", "sets attributes of the next statement"),
    "ssl_session_data_print": (None, "write", "writes SSL session data to a file"),
}
_MYSQL_SHORT = {v[0]: (k, v[1], v[2]) for k, v in MYSQL_CLIENT_COMMANDS.items() if v[0]}


def _mysql_client_command(line):
    """The verdict of a mysql client command on ``line`` (a long name first on the line, or
    a backslash command anywhere outside quotes), or None for a line of SQL."""
    first = line.split(None, 1)[0].lower().rstrip(";") if line.split() else ""
    if first in MYSQL_CLIENT_COMMANDS or first == "?":
        _, effect, why = MYSQL_CLIENT_COMMANDS.get(first, (None, "read", "shows help"))
        return Verdict(effect, f"mysql client command {first} {why}")
    bare = _outside_quotes(line)
    k = bare.find("\\")
    if k < 0:
        return None
    verdicts = []
    while k >= 0:
        short = bare[k:k + 2]
        if short in _MYSQL_SHORT:
            name, effect, why = _MYSQL_SHORT[short]
            verdicts.append(Verdict(effect, f"mysql client command {short} ({name}) {why}"))
        else:
            verdicts.append(unknown(f"mysql client command {short} is not known"))
        k = bare.find("\\", k + 2)
    worst = strongest(verdicts)
    if worst.effect != "read":
        return worst
    # only read commands (\g, \G ending a statement): the SQL before them decides
    return "".join(";" if bare[i] == "\\" or (i > 0 and bare[i - 1] == "\\") else line[i] for i in range(len(line)))


def classify_sql_script(text, dialect, meta=None, cache=None):
    """Classify SQL text that may contain client commands (``meta``: "psql", "sqlite3", "mysql" or None).

    ``cache``: see :func:`classify_sql`.
    """
    if text is None:
        return unknown("the SQL is only known at run time")
    sql, verdicts = _split_meta(text, meta) if meta else (text, [])
    if sql.strip():
        verdicts.append(classify_sql(sql, dialect, cache))
    return strongest(verdicts, read("no statements"))


#: Part of every cache key: change it when the meaning of a kept verdict changes (a change
#: of this module's code changes the key by itself: drygate.classifiers.command_cache.code_stamp).
RULES_VERSION = "drygate-sql-2"
#: Every effect this module's verdicts can have (read(), write(), unknown(),
#: SIDE_EFFECT_READ, and the values of CODE_FUNCTIONS, PSQL_ACTING_META and
#: SQLITE_ACTING_DOT; tests/test_sql_cache.py checks these tables and a corpus of
#: statements against it). A cached row with any other effect is a miss (classify_sql).
EFFECTS = frozenset((READ, SIDE_EFFECT_READ, WRITE, UNKNOWN))


#: Dialects whose plain SELECT (:func:`plain_select`) reads the same way.
_FAST_DIALECTS = frozenset(("postgres", "mysql", "sqlite"))
#: Words of the plain-SELECT grammar (keywords in their positions, never names).
_FAST_KEYWORDS = frozenset((
    "SELECT", "DISTINCT", "ALL", "AS", "FROM", "WHERE", "AND", "OR", "NOT", "IS", "NULL", "TRUE", "FALSE",
    "ORDER", "BY", "ASC", "DESC", "LIMIT", "OFFSET",
))
#: Words never taken as a name by the fast path, whatever their position: the clauses that
#: make a SELECT write, lock or run something (INTO, FOR UPDATE/SHARE, LOCK IN SHARE MODE,
#: PROCEDURE, INTO OUTFILE), and the keywords that start other statements or clauses.
#: A text with any of them goes to sqlglot (the full rules) instead.
_FAST_RESERVED = _FAST_KEYWORDS | frozenset((
    "INTO", "FOR", "LOCK", "SHARE", "UPDATE", "NOWAIT", "SKIP", "LOCKED", "PROCEDURE", "OUTFILE", "DUMPFILE",
    "UNION", "INTERSECT", "EXCEPT", "MINUS", "WITH", "RECURSIVE", "JOIN", "ON", "USING", "NATURAL", "LEFT",
    "RIGHT", "INNER", "OUTER", "CROSS", "FULL", "LATERAL", "ONLY", "TABLESAMPLE", "WINDOW", "OVER", "FETCH",
    "RETURNING", "VALUES", "TABLE", "CALL", "DO", "EXEC", "EXECUTE", "SET", "INSERT", "DELETE", "MERGE",
    "REPLACE", "UPSERT", "CREATE", "DROP", "ALTER", "TRUNCATE", "GRANT", "REVOKE", "COPY", "PRAGMA", "ATTACH",
    "DETACH", "VACUUM", "ANALYZE", "ANALYSE", "EXPLAIN", "SHOW", "DESCRIBE", "DESC", "BEGIN", "COMMIT",
    "ROLLBACK", "HAVING", "GROUP", "CASE", "WHEN", "THEN", "ELSE", "END", "IN", "EXISTS", "BETWEEN", "LIKE",
    "ILIKE", "ESCAPE", "COLLATE", "CAST", "INTERVAL", "ARRAY", "ROW", "DEFAULT", "LOAD", "HANDLER", "NOTIFY",
    "LISTEN", "PREPARE", "DEALLOCATE", "DECLARE", "CURSOR", "CLOSE", "MOVE", "CHECKPOINT", "CLUSTER", "REINDEX",
    "REFRESH", "SECURITY", "LABEL", "COMMENT", "IMPORT", "OPTIMIZE", "KILL", "SHUTDOWN", "FLUSH", "RESET",
    "PURGE", "RENAME", "STRAIGHT_JOIN", "SQL_CALC_FOUND_ROWS", "HIGH_PRIORITY", "SQL_NO_CACHE", "SQL_CACHE",
    "SQL_SMALL_RESULT", "SQL_BIG_RESULT", "SQL_BUFFER_RESULT", "PARTITION", "QUALIFY", "PIVOT", "UNPIVOT",
    "MATCH", "AGAINST", "BINARY", "USE", "FORCE", "IGNORE", "INDEX", "INDEXED", "RAISE", "GLOB", "REGEXP",
    "RLIKE", "OF", "TO", "TOP", "PERCENT", "TIES", "FIRST", "NEXT", "ROWS", "STRAIGHT",
))
_FAST_SYMBOLS = ("<=", ">=", "<>", "!=", "=", "<", ">", ",", ".", "*", ";", ")")
#: Built-in functions the fast path reads in a call (``name(`` with no space before the
#: parenthesis), with the most arguments it takes (None: any number; at least one): sqlglot
#: parses each as one of its own function nodes (never an unknown, possibly user-defined
#: one) in every dialect of _FAST_DIALECTS, and none of them is in CODE_FUNCTIONS or
#: SIDE_EFFECT_FUNCTIONS (tests/test_sql_fast_path.py checks both, and the arities against
#: sqlglot's). Aggregates, and functions that only compute on their arguments (PostgreSQL
#: manual, "Functions and Operators"; MySQL and SQLite manuals, "Built-in functions").
_FAST_FUNCTIONS = {"COUNT": 1, "SUM": 1, "AVG": 1, "MIN": 1, "MAX": 1, "LOWER": 1, "UPPER": 1, "LENGTH": 1,
                   "ABS": 1, "ROUND": 2, "COALESCE": None}
_FAST_MAX_CHARS = 4000


def plain_select(text):
    """``read("SELECT only reads")`` when ``text`` is provably one plain SELECT; else None.

    A fast path that spares a hook process sqlglot's import (100-115 ms) for the
    statements an agent checks data with, such as ``select 1`` or ``SELECT a, b FROM
    s.t WHERE id = 5 ORDER BY a LIMIT 10``. It accepts only this grammar, over ASCII
    names, numbers and the symbols ``= <> != < <= > >= , . * ; )`` (no quotes, comments,
    parameters, backslashes or other characters, and an opening parenthesis only right after
    the name of a function of :data:`_FAST_FUNCTIONS`; so no subquery, CTE, string, psql
    variable, meta-command, or call of any other function)::

        SELECT [DISTINCT|ALL] item {, item} [FROM name [AS n] {, name [AS n]}]
          [WHERE pred {AND|OR pred}] [ORDER BY (call | ref | number) [ASC|DESC] {, ...}]
          [LIMIT number [OFFSET number]] [;]
        item := * | call [AS n] | ref [. *] [AS n] | number [AS n]
        call := fn( * | arg {, arg} );  arg := call | ref | number     (* only in COUNT)
        pred := [NOT] operand (op operand | IS [NOT] NULL)
        operand := call | ref | number | NULL | TRUE | FALSE

    where a name is never a word of :data:`_FAST_RESERVED` (INTO, FOR, LOCK, UNION, ...) nor
    a keyword of any sqlglot dialect (drygate.classifiers.sql_words), and ``fn`` is a word of
    :data:`_FAST_FUNCTIONS` written right before its ``(``, with at most as many arguments
    as that table says.
    sqlglot gives every such text the same verdict (tests/test_sql_fast_path.py checks
    that on generated statements and on random word soups); anything else returns None
    and sqlglot decides with the full rules. Like the sqlglot path, it cannot see what a
    view or a user-defined operator does.
    """
    if len(text) > _FAST_MAX_CHARS:
        return None
    tokens = _fast_tokens(text)
    if not tokens or tokens[0] != "SELECT":
        return None
    if tokens[-1] == ";":
        tokens.pop()
    p = _FastParser(tokens)
    try:
        p.select()
    except ValueError:
        return None
    return read("SELECT only reads") if p.i == len(tokens) else None


def _fast_tokens(text):
    """Tokens of ``text`` (words upper-cased, numbers as "#", symbols as themselves), or None
    when it holds anything outside the plain-SELECT alphabet."""
    tokens = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\n\r":
            i += 1
        elif c.isascii() and (c.isalpha() or c == "_"):
            j = i + 1
            while j < n and text[j].isascii() and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j].upper()
            if j < n and text[j] == "(":
                if word not in _FAST_FUNCTIONS:
                    return None  # a call of anything else: sqlglot decides
                word += "("  # one token: a call, never a name
                j += 1
            tokens.append(word)
            i = j
        elif c.isascii() and c.isdigit():
            j = i + 1
            while j < n and text[j].isascii() and text[j].isdigit():
                j += 1
            if j + 1 < n and text[j] == "." and text[j + 1].isascii() and text[j + 1].isdigit():
                j += 2
                while j < n and text[j].isascii() and text[j].isdigit():
                    j += 1
            if j < n and text[j].isascii() and (text[j].isalnum() or text[j] in "_."):
                return None  # 1e5, 0x1F, 1abc, 1.2.3: not in the alphabet
            tokens.append("#")
            i = j
        else:
            for sym in _FAST_SYMBOLS:
                if text.startswith(sym, i):
                    tokens.append(sym)
                    i += len(sym)
                    break
            else:
                return None
    if ";" in tokens[:-1]:
        return None  # more than one statement
    return tokens


def _sql_words():
    """Every keyword of every sqlglot dialect (drygate.classifiers.sql_words), loaded on first use."""
    from drygate.classifiers.sql_words import KEYWORDS

    return KEYWORDS


class _FastParser:
    """The recursive descent of :func:`plain_select`; raises ValueError off the grammar."""

    __slots__ = ("t", "i")

    def __init__(self, tokens):
        self.t = tokens
        self.i = 0

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, *words):
        if self.peek() in words:
            self.i += 1
            return True
        return False

    def need(self, *words):
        if not self.take(*words):
            raise ValueError(self.peek())

    def name(self):
        w = self.peek()
        if (w is None or w == "#" or w in _FAST_SYMBOLS or w in _FAST_RESERVED or w[-1] == "("
                or w in _sql_words()):
            raise ValueError(w)
        self.i += 1

    def call(self):
        """Reads ``fn( * | arg {, arg} )`` when the next token opens a call (True); else False."""
        w = self.peek()
        if w is None or w[-1] != "(":
            return False
        self.i += 1
        if w == "COUNT(" and self.take("*"):
            self.need(")")
            return True
        most = _FAST_FUNCTIONS[w[:-1]]
        self.arg()
        count = 1
        while self.take(","):
            self.arg()
            count += 1
        if most is not None and count > most:
            raise ValueError(w)
        self.need(")")
        return True

    def arg(self):
        if not self.call() and not self.take("#"):
            self.ref()

    def ref(self, star=False):
        self.name()
        while self.take("."):
            if star and self.take("*"):
                return
            self.name()

    def select(self):
        self.need("SELECT")
        self.take("DISTINCT", "ALL")
        self.item()
        while self.take(","):
            self.item()
        if self.take("FROM"):
            self.ref()
            self.alias()
            while self.take(","):
                self.ref()
                self.alias()
        if self.take("WHERE"):
            self.pred()
            while self.take("AND", "OR"):
                self.pred()
        if self.take("ORDER"):
            self.need("BY")
            self.order()
            while self.take(","):
                self.order()
        if self.take("LIMIT"):
            self.need("#")
            if self.take("OFFSET"):
                self.need("#")

    def item(self):
        if self.take("*"):
            return
        if self.call():
            self.alias()
            return
        if not self.take("#"):
            self.ref(star=True)
            if self.t[self.i - 1] == "*":
                return
        self.alias()

    def alias(self):
        if self.take("AS"):
            self.name()

    def order(self):
        if not self.take("#") and not self.call():
            self.ref()
        self.take("ASC", "DESC")

    def operand(self):
        if not self.take("#", "NULL", "TRUE", "FALSE") and not self.call():
            self.ref()

    def pred(self):
        self.take("NOT")
        self.operand()
        if self.take("IS"):
            self.take("NOT")
            self.need("NULL")
            return
        self.need("=", "<>", "!=", "<", "<=", ">", ">=")
        self.operand()


def classify_sql(text, dialect="postgres", cache=None):
    """Classify SQL ``text`` (str) in ``dialect`` ("sqlite", "postgres", "mysql"); returns a Verdict.

    ``cache``: a state store with ``verdict_get(key)``/``verdict_put(key, effect,
    steps)``. Importing sqlglot costs about 100 ms per hook process, so a statement's
    verdict is kept under a key of (RULES_VERSION, dialect, text) and this classifier's
    code (drygate.classifiers.command_cache.stamped_key: the stat of every classifier
    module and of sqlglot's folder, and the Python version), and a repeated statement
    skips the import. A kept row whose effect is not one of :data:`EFFECTS`, or whose
    steps are not text, is a miss (classified again), never served. Bump RULES_VERSION
    when the meaning of a kept verdict changes.
    """
    if dialect in _FAST_DIALECTS:
        fast = plain_select(text)  # one plain SELECT: no sqlglot, no cache needed
        if fast is not None:
            return fast
    key = None
    if cache is not None:
        from drygate.classifiers import command_cache

        key = command_cache.stamped_key("sql:", RULES_VERSION, dialect, text)
        hit = command_cache.lookup(cache, key, EFFECTS)
        if hit is not None:
            return Verdict(hit[0], *hit[1])
    verdict = _classify_sql(text, dialect)
    if key is not None:
        command_cache.keep(cache, key, verdict.effect, verdict.steps)  # a verdict not kept is only slower next time
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
        return _pragma_text(stmt.sql(dialect="sqlite"))
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
            if name in CODE_FUNCTIONS:
                return Verdict(CODE_FUNCTIONS[name], f"{name}() writes files, loads code or runs a program")
            if name in SIDE_EFFECT_FUNCTIONS:
                return Verdict(SIDE_EFFECT_READ, f"{name}() changes state even inside a SELECT")
            if isinstance(node, exp.Anonymous) and name not in SAFE_ANONYMOUS_NAMES and not name.startswith(
                    SAFE_ANONYMOUS_PREFIXES):
                return unknown(f"{name}() is not a known built-in function: it may be user-defined and change "
                               "data, write files or run other SQL")
    return read("SELECT only reads")


def _pragma_text(text):
    """A PRAGMA statement: a read only in its query form (sqlite.org/pragma.html).

    ``PRAGMA [schema.]name`` reads when ``name`` is in READ_PRAGMAS; an argument, as
    ``= value`` or ``(value)``, sets something, except for the PRAGMAs whose argument names
    what to report on (ARGUMENT_QUERY_PRAGMAS)."""
    body = text.strip().rstrip(";").strip()[len("PRAGMA"):].strip()
    cut = min([k for k in (body.find("("), body.find("=")) if k >= 0] or [len(body)])
    name = body[:cut].strip().split(".")[-1].strip().strip('"`[]').lower()
    argument = body[cut:].strip()
    if argument:
        if name in ARGUMENT_QUERY_PRAGMAS:
            return read(f"PRAGMA {name}(...) reports on what its argument names")
        return write(f"PRAGMA {name} with an argument ({argument[:30]}) sets it")
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
