"""A verdict cache for whole shell commands: a repeated Bash command is not parsed again.

Classifying a Bash command in a hook process imports the shell classifier, its command
table and tree-sitter, and parses the command: about 2.4 ms of a hook process
(bench/hook_startup.py). Agents repeat commands (``git status``, ``ls``, the same
``psql -c``), so the verdict of :func:`drygate.classifiers.shell.classify_command_verdict`
is kept in the run's state store (``verdict_get``/``verdict_put``, beside the SQL
verdicts of drygate.classifiers.sql) under a key made of everything that verdict
depends on:

- the command text, exactly;
- the policy file's SHA-256 (``policy["hash"]``: its ``[[commands]]`` and
  ``[[http_rules]]`` are what the classifier reads of it; any change of the file is a
  new key);
- :data:`RULES_VERSION`, the Python version, and the stat (size, mtime, inode, ctime) of every module of
  ``drygate.classifiers`` and ``drygate.types``, and of the folders of the packages the
  classifier runs (tree-sitter, its Bash grammar, sqlglot): an upgraded or edited
  classifier never reads an old verdict.

The SQL verdict cache (drygate.classifiers.sql.classify_sql) keys, reads and keeps its
rows with the same functions (:func:`stamped_key`, :func:`lookup`, :func:`keep`), with its
own prefix, rules version and effects.

Only this pure classification is cached. Self-protection
(drygate.classifiers.protect) depends on the file system (symlinks, globs, the call's
folder) and reads every call on its own, hit or miss. A store that cannot answer
is a miss; a verdict that cannot be kept is only slower next time.

Imports: built-in modules only (the hook's start-up budget).
"""

import os
import sys

#: Part of every key: change it when the meaning of a cached verdict changes.
RULES_VERSION = "drygate-shell-1"
#: Key prefix in the store's verdict table (SQL verdicts use "sql:").
PREFIX = "sh:"
#: Packages whose code the shell classifier runs (their folders are in the key).
PACKAGES = ("tree_sitter", "tree_sitter_bash", "sqlglot")

_STAMP = None  # this process's code stamp, computed once
_STAMP_DIGEST = (None, None)  # (the stamp, the SHA-256 of the Python version and the stamp)


def code_stamp():
    """Text that changes whenever code the shell classification runs changes (str).

    The stat of each ``.py`` file of ``drygate/classifiers`` (and its ``data`` folder)
    and ``drygate/types.py``, and of the folder of each package of :data:`PACKAGES`
    found on ``sys.path`` (installing or removing a package's files changes its folder).
    Computed once per process: about 20 stat calls."""
    global _STAMP
    if _STAMP is None:
        here = os.path.dirname(os.path.abspath(__file__))
        paths = [os.path.join(os.path.dirname(here), "types.py")]
        for folder in (here, os.path.join(here, "data")):
            try:
                names = sorted(n for n in os.listdir(folder) if n.endswith(".py"))
            except OSError:
                names = []
            paths.extend(os.path.join(folder, n) for n in names)
        for package in PACKAGES:
            for entry in sys.path:
                folder = os.path.join(entry or ".", package)
                if os.path.isdir(folder):
                    paths.append(folder)
                    break
        _STAMP = "\n".join(f"{p}|{_stat(p)}" for p in paths)
    return _STAMP


def _stat(path):
    try:
        st = os.stat(path)
    except OSError:
        return "-"
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{st.st_ctime_ns}"


def stamped_key(prefix, *parts):
    """A verdict-cache key (str): ``prefix`` then the SHA-256 of the Python version,
    :func:`code_stamp` and ``parts`` (str each: what else the verdict depends on, such as
    a cache's rules version and the classified text). Shared by both verdict caches (this
    module's and drygate.classifiers.sql's), so a changed classifier, or a changed package
    it runs, never reads a verdict of the old code."""
    global _STAMP_DIGEST
    try:
        from _sha256 import sha256  # built in: `import hashlib` costs about ten times more per hook process
    except ImportError:  # pragma: no cover - Python 3.12 names it _sha2
        from _sha2 import sha256
    stamp = code_stamp()
    if _STAMP_DIGEST[0] is not stamp:  # the stamp (about 2 KB) is hashed once per process: 50 -> 3 us a key
        _STAMP_DIGEST = (stamp, sha256(f"{sys.version}\0{stamp}".encode("utf-8", "surrogatepass")).hexdigest())
    text = "\0".join((_STAMP_DIGEST[1],) + parts)
    return prefix + sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def key_for(command, policy):
    """The store key of ``command``'s verdict under ``policy`` (str), or None when the
    policy carries no file hash (a policy built in memory: nothing to key it on)."""
    digest = policy.get("hash") if policy else None
    if not isinstance(digest, str) or not digest:
        return None
    return stamped_key(PREFIX, RULES_VERSION, digest, command)


def lookup(store, key, effects=None):
    """``(effect, steps)`` kept under ``key`` in ``store``, or None: also when the store
    fails, and when what it holds is not a verdict of the cache's classifier (an effect
    not in ``effects``, steps that are not text), so a damaged row is a miss, never a
    weaker effect.

    ``effects``: the effects the classifier whose verdicts the key holds can give (a set
    of str); by default those of the shell classifier, the effects a
    :class:`drygate.classifiers.verdict.Verdict` can have: every effect but ``bookkeeping``
    (the keys of ``verdict.STRENGTH``; tests/test_command_cache.py checks they are the
    same; taken from drygate.types here, which a hook process has loaded, rather than by
    importing the verdict module on a hit). drygate.classifiers.sql passes its own,
    ``sql.EFFECTS``."""
    if effects is None:
        from drygate.types import BOOKKEEPING, EFFECTS

        effects = frozenset(EFFECTS) - {BOOKKEEPING}
    try:
        hit = store.verdict_get(key)
        effect, steps = hit[0], tuple(hit[1])
    except Exception:
        return None
    if not isinstance(effect, str) or effect not in effects or not all(isinstance(step, str) for step in steps):
        return None
    return effect, steps


def keep(store, key, effect, steps):
    """Keep a verdict under ``key``; True when it was written. Never raises an Exception."""
    try:
        store.verdict_put(key, effect, tuple(steps))
        return True
    except Exception:
        return False
