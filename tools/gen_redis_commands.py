#!/usr/bin/env python3
"""Generate ``drygate.classifiers.data.redis_commands`` from Redis's own command table.

Starts a throwaway ``redis-server`` (found with ``shutil.which``, or ``--redis-server``)
on a private Unix socket, with no port, no persistence and a temporary working folder;
asks it ``COMMAND INFO`` (flags, ACL categories, key specs) and ``COMMAND DOCS`` (one-line
summaries), derives each command's effect, writes the module and shuts the server down.
Talks to the server with redis-py (``pip install redis``).

Usage::

    python3 tools/gen_redis_commands.py [--redis-server PATH] [--output FILE] [--quiet]

Derivation rule (the same text goes into the generated module's docstring):
"""

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(
    HERE, os.pardir, "src", "drygate", "classifiers", "data", "redis_commands.py"
)

RULE = """\
Each command (subcommands as "PARENT SUB") gets the first effect that applies:

1. Container commands (CONFIG, CLIENT, XINFO, ...: they have subcommands) are listed
   in CONTAINERS; the effect is the subcommand's. A container that also runs alone
   (arity -1: COMMAND) has its own entry too, by the rules below.
2. `write` flag -> `side_effect_read` when the command reads what it changes:
   a. one of its key specs is RW + ACCESS + (DELETE or UPDATE) -- it returns or uses
      a key's value and changes that same key (LPOP, SPOP, ZPOPMIN, BLPOP, BRPOPLPUSH,
      LMOVE, GETDEL, GETEX, GETSET, INCR*, DECR*, HINCRBY, ZINCRBY, ...) -- except when
      that key spec is VARIABLE_FLAGS (SET, BITFIELD: a write whose GET option reads)
      or the command is in @keyspace (RENAME, MOVE, MIGRATE: key management); or
   b. it has key specs and all of them are RO -- the keys are only read and what
      changes is bookkeeping beside them (XREADGROUP moves consumer-group cursors).
   Otherwise `write`.
3. `readonly` flag -> `read`, unless a key spec says the key is changed (RW, OW or RM):
   then `side_effect_read` (PFCOUNT rewrites the HyperLogLog's cached cardinality).
4. Neither flag (server, connection, scripting, pub/sub commands), decided by the ACL
   categories and the first words of COMMAND DOCS' summary:
   a. summary starts "Execute" or "Invoke" -> `unknown`: the command runs other code
      whose effect is not known here (EVAL, EVALSHA, FCALL, EXEC). The _RO variants
      carry the `readonly` flag and are `read` by rule 3.
   b. @connection or @transaction and neither @admin nor @dangerous -> `read`: it
      changes only the caller's own connection (PING, ECHO, SELECT, HELLO, AUTH,
      CLIENT SETNAME, CLIENT TRACKING, MULTI, WATCH, WAIT, ...).
   c. summary's verb reports (get, list, return, show, check, provide, output,
      generate, dump, listen, stop listening) -> `read` (CONFIG GET, CLIENT LIST,
      SLOWLOG GET, SCRIPT EXISTS, FUNCTION LIST, INFO, SUBSCRIBE, MONITOR, ...).
   d. summary's verb changes server state (set, remove, reset, rewrite, kill, stop,
      resume, unblock, assign, advance, delete, forget, force, reconfigure, bind,
      load, unload, reload, save, modify, clear, ask, post, start, make,
      synchronously, asynchronously) -> `write` (CONFIG SET, CLIENT KILL, SCRIPT FLUSH, SCRIPT LOAD, PUBLISH,
      SHUTDOWN, SAVE, REPLICAOF, MEMORY PURGE, ...).
   e. anything else -> `unknown` (DEBUG, and the internal replication/test commands).

Effects are per command name: options that change a command's effect (SORT ... STORE,
ACL LOG RESET, CLIENT NO-EVICT, SET ... GET) are not seen here; the command gets the
effect of its strongest documented use where the flags say so (SORT has `write`)."""

__doc__ += "\n" + RULE  # noqa: A001

READ = "read"
WRITE = "write"
SIDE_EFFECT_READ = "side_effect_read"
UNKNOWN = "unknown"
EFFECTS = (READ, SIDE_EFFECT_READ, WRITE, UNKNOWN)

RUNS_OTHER_CODE_VERBS = ("execute", "invoke")
READ_PHRASES = ("stop listening",)
READ_VERBS = frozenset(
    "get list return show check provide output generate dump listen".split()
)
WRITE_VERBS = frozenset(
    (
        "set remove reset rewrite kill stop resume unblock assign advance delete forget "
        "force reconfigure bind load reload save modify clear ask post start make "
        "unload synchronously asynchronously"
    ).split()
)


# --- a minimal RESP2 client ----------------------------------------------------------


class RawRedis:
    """A redis-py client that returns replies as Redis sends them (lists, strings).

    redis-py parses COMMAND and COMMAND DOCS into its own shapes; the rule below reads
    the reply's positions as documented for Redis 7 (name, arity, flags, ..., key
    specs, subcommands), so those response callbacks are turned off.
    """

    def __init__(self, path, timeout=10.0):
        import redis

        self.client = redis.Redis(unix_socket_path=path, socket_timeout=timeout, decode_responses=True,
                                  protocol=2)
        for name in ("COMMAND", "COMMAND DOCS", "COMMAND INFO"):
            self.client.set_response_callback(name, lambda reply, **kwargs: reply)

    def call(self, *args):
        return self.client.execute_command(*args)

    def close(self):
        self.client.close()


# --- a throwaway server --------------------------------------------------------------


class ThrowawayRedis:
    """redis-server on a Unix socket in a temporary folder: no port, nothing saved."""

    def __init__(self, binary):
        self.binary = binary
        self.tmp = tempfile.mkdtemp(prefix="gen-redis-commands-")
        self.sock_path = os.path.join(self.tmp, "redis.sock")
        self.proc = None

    def __enter__(self):
        args = [
            self.binary,
            "--port", "0",
            "--unixsocket", self.sock_path,
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--dir", self.tmp,
            "--daemonize", "no",
            "--logfile", os.path.join(self.tmp, "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace")
                raise RuntimeError("redis-server exited early: %s%s" % (err, self._log()))
            if os.path.exists(self.sock_path):
                try:
                    import redis

                    conn = RawRedis(self.sock_path)
                    if conn.call("PING") in (True, "PONG"):
                        return conn
                    conn.close()
                except (OSError, redis.RedisError):
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer within 10 s" + self._log())
            time.sleep(0.02)

    def _log(self):
        try:
            with open(os.path.join(self.tmp, "redis.log")) as f:
                return "\n" + f.read()[-2000:]
        except OSError:
            return ""

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.proc.stderr.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return False


# --- reading the command table -------------------------------------------------------


def _pairs(flat):
    return dict(zip(flat[0::2], flat[1::2]))


def read_command_table(conn):
    """Return ({name: info}, version); name is 'GET' or 'CONFIG GET'."""
    infos = {}

    def add(entry, parent=None):
        # COMMAND INFO reply: name, arity, flags, first, last, step, acl categories,
        # tips, key specs, subcommands (Redis 7).
        name = entry[0].replace("|", " ").upper()
        keyspecs = [_pairs(spec) for spec in entry[8]] if len(entry) > 8 else []
        subs = entry[9] if len(entry) > 9 and entry[9] else []
        infos[name] = {
            "arity": entry[1],
            "flags": frozenset(f.lower() for f in entry[2]),
            "acl": frozenset(c.lower().lstrip("@") for c in entry[6]),
            "keyspecs": [frozenset(f.upper() for f in spec.get("flags", [])) for spec in keyspecs],
            "subcommands": [s[0].replace("|", " ").upper() for s in subs],
            "parent": parent,
            "summary": "",
        }
        for sub in subs:
            add(sub, name)

    for entry in conn.call("COMMAND"):
        add(entry)

    def add_docs(name, body):
        doc = _pairs(body)
        key = name.replace("|", " ").upper()
        if key in infos:
            infos[key]["summary"] = doc.get("summary") or ""
        subs = doc.get("subcommands") or []
        for sub_name, sub_body in _pairs(subs).items():
            add_docs(sub_name, sub_body)

    for name, body in _pairs(conn.call("COMMAND", "DOCS")).items():
        add_docs(name, body)

    version = conn.client.info("server")["redis_version"]
    return infos, version


# --- the rule ------------------------------------------------------------------------


def _summary_words(summary):
    return [w.strip(".,()").lower() for w in summary.split()]


def _verb(word):
    # "Returns" -> "return", "Forces" -> "force", "Outputs" -> "output"
    if word in READ_VERBS or word in WRITE_VERBS:
        return word
    if word.endswith("s") and (word[:-1] in READ_VERBS or word[:-1] in WRITE_VERBS):
        return word[:-1]
    return word


def classify(info):
    """Return (effect, reason) for one command's COMMAND INFO/DOCS entry."""
    flags, acl, specs = info["flags"], info["acl"], info["keyspecs"]
    if "write" in flags:
        if "keyspace" not in acl:
            for spec in specs:
                if (
                    {"RW", "ACCESS"} <= spec
                    and spec & {"DELETE", "UPDATE"}
                    and "VARIABLE_FLAGS" not in spec
                ):
                    return SIDE_EFFECT_READ, "write; key spec %s" % "+".join(sorted(spec))
        if specs and all("RO" in spec for spec in specs):
            return SIDE_EFFECT_READ, "write; every key spec RO"
        return WRITE, "write flag"
    if "readonly" in flags:
        for spec in specs:
            if spec & {"RW", "OW", "RM"}:
                return SIDE_EFFECT_READ, "readonly; key spec %s" % "+".join(sorted(spec))
        return READ, "readonly flag"
    words = _summary_words(info["summary"])
    first = _verb(words[0]) if words else ""
    if first in RUNS_OTHER_CODE_VERBS:
        return UNKNOWN, "runs other code (%r)" % info["summary"]
    if acl & {"connection", "transaction"} and not acl & {"admin", "dangerous"}:
        return READ, "connection-scoped (@%s)" % "/@".join(
            sorted(acl & {"connection", "transaction"})
        )
    if " ".join(words[:2]) in READ_PHRASES:
        return READ, "summary phrase %r" % " ".join(words[:2])
    if first in READ_VERBS:
        return READ, "summary verb %r" % first
    if first in WRITE_VERBS:
        return WRITE, "summary verb %r" % first
    return UNKNOWN, "no flag, summary %r" % info["summary"]


# --- output --------------------------------------------------------------------------


def render(effects, reasons, containers, version, date):
    lines = [
        "# Generated by tools/gen_redis_commands.py from Redis %s's COMMAND output on %s;"
        % (version, date),
        "# do not edit: run `python3 tools/gen_redis_commands.py` again instead.",
        '"""The effect of every Redis %s command, derived from its own command table.' % version,
        "",
        "COMMAND INFO gives flags (readonly, write, admin, ...), ACL categories and key",
        "specs; COMMAND DOCS gives a one-line summary. The rule:",
        "",
        RULE.replace("\\", "\\\\"),
        '"""',
        "",
        "REDIS_VERSION = %r" % version,
        "",
        "#: Commands whose effect is their subcommand's: look up \"PARENT SUB\".",
        "CONTAINERS = frozenset(",
        "    (",
    ]
    lines += ["        %r," % name for name in sorted(containers)]
    lines += ["    )", ")", "", "COMMANDS = {"]
    for name in sorted(effects):
        lines.append("    %r: %r,  # %s" % (name, effects[name], reasons[name]))
    lines += ["}", ""]
    text = "\n".join(lines)
    compile(text, "redis_commands.py", "exec")
    return text


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redis-server", default=None, help="redis-server binary (default: PATH)")
    ap.add_argument("--output", default=DEFAULT_OUTPUT, help="module to write")
    ap.add_argument("--quiet", action="store_true", help="print only the counts")
    args = ap.parse_args(argv)

    started = time.monotonic()
    binary = args.redis_server or shutil.which("redis-server")
    if not binary:
        sys.exit(
            "redis-server not found on PATH (Debian: apt-get install -y redis-server)"
        )
    with ThrowawayRedis(binary) as conn:
        try:
            infos, version = read_command_table(conn)
        finally:
            conn.close()

    effects, reasons, containers = {}, {}, set()
    for name, info in infos.items():
        if info["subcommands"]:
            containers.add(name)
            if info["arity"] != -1:  # needs a subcommand (CONFIG); COMMAND alone runs
                continue
        effects[name], reasons[name] = classify(info)
    missing_docs = sorted(n for n, i in infos.items() if not i["summary"])
    if missing_docs:
        print("warning: no COMMAND DOCS summary for %s" % ", ".join(missing_docs), file=sys.stderr)

    date = datetime.date.today().isoformat()
    text = render(effects, reasons, containers, version, date)
    out = os.path.normpath(args.output)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    init = os.path.join(os.path.dirname(out), "__init__.py")
    if not os.path.exists(init):
        with open(init, "w") as f:
            f.write('"""Data tables generated from the tools they describe."""\n')
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, out)
    elapsed = time.monotonic() - started

    counts = {e: sum(1 for v in effects.values() if v == e) for e in EFFECTS}
    print("Redis %s: %d commands (+%d containers) -> %s" % (version, len(effects), len(containers), out))
    print("  %-18s %5s" % ("effect", "count"))
    for effect in EFFECTS:
        print("  %-18s %5d" % (effect, counts[effect]))
    print("  %-18s %5d" % ("total", len(effects)))
    if not args.quiet:
        for effect in (SIDE_EFFECT_READ, UNKNOWN):
            names = sorted(n for n, e in effects.items() if e == effect)
            print("\n%s (%d):" % (effect, len(names)))
            for name in names:
                print("  %-22s %s" % (name, reasons[name]))
    print("\ngenerated in %.2f s" % elapsed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
