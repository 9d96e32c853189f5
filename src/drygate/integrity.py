"""Detection that does not depend on reading the command: fingerprints of what the gate protects.

Self-protection (drygate.classifiers.protect) reads each call and denies the ones that
would change the gate. A command it misreads still runs. This module notices the change
afterwards, at the next decision of the same run:

- **What is watched.** Every Claude Code settings layer (user ``~/.claude/settings.json``,
  the project's ``.claude/settings.json`` and ``.claude/settings.local.json``, managed
  settings), the policy, drygate's own code (every file and folder of the package), the
  code the hook process loaded (each module's file: standard library, tree-sitter,
  sqlglot...), the folders on its ``sys.path`` (a module planted there changes the
  folder), the interpreter and the virtual environment's ``pyvenv.cfg``, and the state
  store's marker.
- **When.** A run takes the fingerprints as it first sees them (its first decision; a
  module first loaded later in the run is added when it is loaded) and keeps them in
  its state in the store (:meth:`StateStore.fingerprints`). Each later decision of the
  run stats every file (size, mtime, inode, ctime) and hashes only a file whose stat
  changed: an unchanged stat costs one ``os.stat``. A change drygate did not make
  blocks the rest of the run (every later call is denied: the block is written into
  the run's fingerprints, so it holds across processes) and raises a tamper alert that
  names the file and what changed.
- **Not fought.** Content is compared, not times: a file saved unchanged, a folder that
  only got a ``__pycache__``, a settings layer whose only change is a permission rule the
  host wrote when a person answered "always allow" (``permissions.allow/ask/deny``, which
  cannot weaken a PreToolUse hook) are not changes. A person who edits the policy between
  runs is not fought: a new run takes the files as they are then. drygate's own writes
  (``drygate init``, ``drygate install``) are recorded as drygate's (:func:`bless`), so a
  run in progress accepts them. ``drygate doctor`` shows what changed since the last run
  (:func:`changed_since_last_run`).

The store's identity (:func:`verify_store`): a SQLite store carries a marker
(``drygate init`` / ``drygate state init`` write it), and this machine keeps a record of
each store it initialized (its marker, inode, and how many runs went dry in it) under
``$XDG_STATE_HOME/drygate/stores/`` (default ``~/.local/state``), outside the project, so
``rm -rf .drygate`` or ``git clean -fdx`` cannot take the record with the store. A store
that is gone, replaced (another marker or inode) or older than the record (fewer runs
went dry in it) fails closed until ``drygate state init --recover HOURS``.

Limits (stated, not hidden): code changed to lie runs before it can be checked (a module
imported before the check, or one that ends the process at import); the static line
(the environment is in the protected set) and, in dry runs, the OS sandbox stand before
it. Bytecode caches (``__pycache__``) are not fingerprinted (Python rewrites them). A
store replaced together with a forged record loses the run's fingerprints with it.

Imports on this path: built-in modules only (the hook's start-up budget).
"""

import os
import sys

#: Managed settings paths (Linux, macOS): highest-precedence settings layers.
MANAGED_SETTINGS = ("/etc/claude-code/managed-settings.json",
                    "/Library/Application Support/ClaudeCode/managed-settings.json")
#: The fingerprint key that marks a blocked run (its value is the reason).
BLOCKED = "!blocked"
#: Pseudo run ids: the files as the latest run first saw them, and drygate's own writes.
LAST = "\x00last"
BLESSED = "\x00drygate"
#: Files larger than this are compared by stat only (the interpreter binary): hashing
#: them at a run's first call would cost more than the hook's whole budget.
MAX_HASH_BYTES = 4 * 1024 * 1024
#: Keys of a settings layer's ``permissions`` that the host writes when a person answers
#: "always allow"; a PreToolUse deny wins over them, so they cannot weaken the gate.
PERMISSION_KEYS = ("allow", "ask", "deny")

#: drygate's subpackages the hook process never imports (the relay, plan/apply, the CLI...):
#: each decision stats their folders, not every file in them (a stat per path is the check's cost).
NOT_HOOK_PACKAGES = ("relay", "overlay", "plan", "cli", "review", "adapters", "api")

_CODE = None  # this process's environment watch list (sys.path, interpreter, loaded modules), built once
_PACKAGE = None  # drygate's package files and folders, walked once per process
_KNOWN = {}  # run id -> the paths its fingerprints hold, as the last check in this process saw them


def settings_layers(project_dir, home=None):
    """The settings files Claude Code reads for a project, lowest precedence first (list of paths)."""
    home = home or os.path.expanduser("~")
    return [os.path.join(home, ".claude", "settings.json"),
            os.path.join(project_dir, ".claude", "settings.json"),
            os.path.join(project_dir, ".claude", "settings.local.json"),
            *MANAGED_SETTINGS]


# --- fingerprints of one path --------------------------------------------------------
# A fingerprint is text: "<kind>|<stat>|<digest>". Kinds: s (a settings layer: JSON
# compared without the host's permission rules), f (a file), d (a folder: its entries
# except __pycache__), m (a store marker: the stat part is the store id). A path that
# does not exist has stat "-" and no digest.


def _stat_text(path, kind):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "-"
    except NotADirectoryError:
        return "-"
    except OSError as e:
        return f"error {e.errno}"
    if kind == "d":
        return f"{st.st_mtime_ns}:{st.st_ino}:{st.st_ctime_ns}" if _isdir(st) else f"file {st.st_size}"
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{st.st_ctime_ns}"


def _isdir(st):
    return (st.st_mode & 0o170000) == 0o040000


def _sha(data):
    try:
        from _sha256 import sha256
    except ImportError:  # pragma: no cover - Python 3.12 names it _sha2
        from _sha2 import sha256
    return sha256(data).hexdigest()[:32]


def _canonical(value):
    if isinstance(value, dict):
        return "{" + ",".join(repr(k) + ":" + _canonical(value[k]) for k in sorted(value)) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    return repr(value)


def _digest(path, kind, stat):
    """The content digest of ``path`` (str; "" when only its stat is compared)."""
    if stat == "-" and kind == "s":
        return _settings_digest({})  # the host reads a missing layer as an empty one
    if stat == "-" or stat.startswith("error"):
        return ""
    try:
        if kind == "d":
            if stat.startswith("file"):
                return ""
            names = sorted(n for n in os.listdir(path) if n != "__pycache__")
            return _sha("\n".join(names).encode("utf-8", "surrogateescape"))
        if int(stat.split(":", 1)[0]) > MAX_HASH_BYTES:
            return ""
        with open(path, "rb") as f:
            data = f.read(MAX_HASH_BYTES + 1)
    except OSError as e:
        return f"unreadable {e.errno}"
    if kind == "s":
        try:
            from drygate import _json

            return _settings_digest(_json.loads(data.decode("utf-8")))
        except (ValueError, UnicodeDecodeError):
            pass  # not JSON: compared byte for byte
    return _sha(data)


def _settings_digest(settings):
    """A settings layer's digest without the permission rules the host writes itself."""
    if isinstance(settings, dict) and isinstance(settings.get("permissions"), dict):
        rest = {k: v for k, v in settings["permissions"].items() if k not in PERMISSION_KEYS}
        settings = dict(settings, permissions=rest)
        if not rest:
            del settings["permissions"]
    return "json:" + _sha(_canonical(settings).encode("utf-8", "surrogateescape"))


def fingerprint(path, kind):
    """The fingerprint (str) of ``path`` now; ``kind`` is ``s``, ``f`` or ``d`` (module comment)."""
    stat = _stat_text(path, kind)
    return f"{kind}|{stat}|{_digest(path, kind, stat)}"


def _parts(value):
    kind, stat, digest = (value.split("|", 2) + ["", ""])[:3]
    return kind, stat, digest


def describe_change(path, old, new):
    """What changed between two fingerprints of ``path``, in words (str)."""
    kind, old_stat, _ = _parts(old)
    _, new_stat, _ = _parts(new)
    if kind == "m":
        return f"the state store's marker changed (store {old_stat or 'none'} -> {new_stat or 'none'})"
    if old_stat == "-":
        return "it appeared" if kind != "d" else "the folder appeared"
    if new_stat == "-":
        return "it was deleted"
    if kind == "d":
        if new_stat.startswith("file"):
            return "the folder was replaced by a file"
        return "entries were added to or removed from the folder"
    try:
        old_size, _, old_ino, _ = old_stat.split(":")
        new_size, _, new_ino, _ = new_stat.split(":")
    except ValueError:
        return f"it changed ({old_stat} -> {new_stat})"
    what = f"its content changed ({old_size} -> {new_size} bytes)"
    if old_ino != new_ino:
        what += ", and it was replaced by another file (a new inode)"
    return what


# --- what a process watches ------------------------------------------------------------


def package_root():
    """The folder of drygate's own package (str)."""
    return os.path.dirname(os.path.abspath(__file__))


def package_paths():
    """{path: kind} of drygate's own package: every folder, and every file outside
    :data:`NOT_HOOK_PACKAGES` (one ``os.walk``, cached per process)."""
    global _PACKAGE
    if _PACKAGE is not None:
        return _PACKAGE
    here = package_root()
    paths = {}
    for folder, dirs, files in os.walk(here):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        paths[folder] = "d"
        # os.walk yields here, then here + sep + relative path: its first part, without
        # os.path.relpath (two abspath calls per folder, about 1 ms per hook process).
        if folder[len(here) + 1:].split(os.sep, 1)[0] in NOT_HOOK_PACKAGES:
            continue  # their folders are watched; a module of theirs the hook loads is added as loaded
        for name in files:
            paths[os.path.join(folder, name)] = "f"
    _PACKAGE = paths
    return paths


def _code_paths(package=True):
    """{path: kind} of the environment this process runs from (its ``sys.path`` folders, the
    interpreter, ``pyvenv.cfg``, the modules it loaded; cached), with drygate's own package
    (:func:`package_paths`) first unless ``package`` is False."""
    global _CODE
    if _CODE is None:
        paths = {}
        for entry in sys.path:
            if entry:  # a folder, a zip, or nothing yet (python311.zip: creating it would shadow the stdlib)
                paths.setdefault(os.path.abspath(entry), "d" if os.path.isdir(entry) else "f")
        paths[os.path.realpath(sys.executable)] = "f"
        cfg = os.path.join(sys.prefix, "pyvenv.cfg")
        if os.path.exists(cfg):
            paths[cfg] = "f"
        paths.update(loaded_modules())
        _CODE = paths
    return {**package_paths(), **_CODE} if package else _CODE


_WRITABLE = {}  # folder -> whether this user can write to it (cached per process)


def _writable(folder):
    known = _WRITABLE.get(folder)
    if known is None:
        known = _WRITABLE[folder] = os.access(folder, os.W_OK)
    return known


def loaded_modules(since=0):
    """{path: "f"} of the source (or extension) file of every module this process loaded
    (``since``: skip the first that many entries of ``sys.modules``, which keeps load order).

    A module in a folder this user cannot write to (a standard library installed by root)
    is left out: the agent runs as the same user, so it cannot change it either.
    """
    found = {}
    for module in list(sys.modules.values())[since:]:
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path:
            path = path if os.path.isabs(path) else os.path.abspath(path)
            if _writable(os.path.dirname(path)):
                found[path] = "f"
    return found


def environment_paths():
    """Folders drygate runs from, for the protected set (list of str): its package root
    (site-packages, or ``src/`` of an editable install), the site-packages folders and the
    standard library on ``sys.path`` that this user can write to, the virtual environment,
    and this machine's store records. Never the working folder (``""`` on ``sys.path``)."""
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = [package_root, os.path.dirname(record_dir())]
    prefixes = tuple(p for p in {sys.prefix, getattr(sys, "base_prefix", sys.prefix)} if p)
    for entry in sys.path:
        if not entry or not os.path.isabs(entry):
            continue
        name = os.path.basename(entry.rstrip(os.sep))
        under_prefix = any(entry == p or entry.startswith(p.rstrip(os.sep) + os.sep) for p in prefixes)
        if name in ("site-packages", "dist-packages"):
            paths.append(entry)
        elif under_prefix and os.access(os.path.dirname(entry) or "/", os.W_OK):
            paths.append(entry)
            if name.startswith("python3"):  # <prefix>/lib/python3.X: its lib folder holds libpython too
                paths.append(os.path.dirname(entry))
    venv = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
    if os.path.exists(os.path.join(venv, "pyvenv.cfg")):
        paths.append(venv)
    # The interpreter the hook command starts, and the file it really is (pyenv, uv and conda
    # install it where its user can write): replaced by `exit 0`, every hook would answer nothing.
    for exe in (os.path.abspath(sys.executable), os.path.realpath(sys.executable)):
        if os.access(os.path.dirname(exe), os.W_OK):
            paths.append(exe)
    seen = []
    for p in paths:
        p = os.path.normpath(p)
        if p not in seen and p != os.sep:
            seen.append(p)
    return seen


def watched(project_dir, policy_path, home=None, code=True, package=True):
    """{path: kind} of everything a decision in ``project_dir`` checks (settings, policy, and with
    ``code`` drygate's code and this process's environment; a long-lived process such as the
    relay, whose loaded modules are not the hook's, watches the files only). ``package=False``
    leaves drygate's own package out, for :func:`check` to add only when needed (its
    ``package`` argument)."""
    paths = dict(_code_paths(package)) if code else {}
    for layer in settings_layers(project_dir, home):
        paths[layer] = "s"
    if policy_path:
        paths[policy_path] = "f"
    return paths


def marker_key(location):
    """The fingerprint key of the store at ``location``'s marker."""
    return "marker:" + location


def marker_value(store):
    """The fingerprint of ``store``'s marker (its store id), or None for a store without one."""
    marker = store.marker() if hasattr(store, "marker") else None
    if not marker:
        return None
    return f"m|{marker.get('store_id', '')}|"


# --- the check -------------------------------------------------------------------------


def check(store, run_id, paths, markers=None, package=None):
    """Check run ``run_id``'s fingerprints; returns the reason (str) the run is blocked, or None.

    ``store``: the run's StateStore; ``paths``: {path: kind} watched now (:func:`watched`);
    ``markers``: {key: fingerprint} of the store's marker (:func:`marker_value`). Every
    path the run saw before is checked (stat first, hash only when the stat changed);
    paths it has not seen are added as they are now. A change drygate did not make
    (:func:`bless`) is written into the run as its block (first reason wins) and
    returned. Raises StoreUnavailable / StoreTimeout like every store call.

    ``package``: None, or a function returning more paths to watch (:func:`package_paths`,
    drygate's own package: an ``os.walk`` of some 25 folders, 0.3-0.4 ms of a hook process),
    called only when the run has not seen the package's folder yet or when any path it saw
    changed its stat. Otherwise its result would add nothing: the run saw every folder of
    the package, and a file added to (or removed from, or renamed in) a folder changes that
    folder's stat (mtime and ctime), so the walk would list exactly the paths the run holds.
    """
    stored = store.fingerprints(run_id)
    blocked = stored.get(BLOCKED)
    if blocked:
        return blocked
    markers = markers or {}
    updates = {}
    blessed = None
    changed = False
    for path, old in stored.items():
        kind, old_stat, old_digest = _parts(old)
        if kind == "m":
            new = markers.get(path)
            if new is None or new == old:
                continue
        else:
            stat = _stat_text(path, kind)
            if stat == old_stat:
                continue
        changed = True
        if kind != "m":
            digest = _digest(path, kind, stat)
            new = f"{kind}|{stat}|{digest}"
            if digest and digest == old_digest:
                updates[path] = new  # touched, same content (or an empty settings layer): not a change
                continue
        if blessed is None:
            blessed = store.fingerprints(BLESSED)
        if _same(blessed.get(path), new):
            updates[path] = new  # drygate itself wrote it (drygate init / install)
            continue
        reason = (f"{path} changed during run {run_id}: {describe_change(path, old, new)}, and drygate did not "
                  f"make that change. Every later call of this run is blocked (fail closed); a tamper alert was "
                  f"raised. Check the change (`drygate doctor` shows it), then start a new run, which takes the "
                  f"files as they are then")
        store.put_fingerprints(run_id, {BLOCKED: reason})
        return reason
    if package is not None and (changed or package_root() not in stored):
        paths = {**package(), **paths}
    new_entries, changed_last = {}, {}
    last = None
    for path, kind in paths.items():
        if path in stored:
            continue
        stat = _stat_text(path, kind)
        if last is None:
            last = store.fingerprints(LAST)
        previous = last.get(path)
        if previous is not None and _parts(previous)[:2] == (kind, stat):
            new_entries[path] = previous  # the same file the last run saw: no need to hash it again
        else:
            new_entries[path] = changed_last[path] = f"{kind}|{stat}|{_digest(path, kind, stat)}"
    for key, value in markers.items():
        if key not in stored:
            new_entries[key] = value
    # Not fsynced (a power loss only makes the run take them again); a block always is.
    _KNOWN[run_id] = (set(stored) | set(new_entries), last)
    if new_entries:
        store.put_fingerprints(run_id, new_entries, durable=False)
    if changed_last:
        store.put_fingerprints(LAST, changed_last, replace=True, durable=False)
    if updates:
        store.put_fingerprints(run_id, updates, replace=True, durable=False)
    return None


def _same(a, b):
    if not a or not b:
        return False
    ka, sa, da = _parts(a)
    kb, sb, db = _parts(b)
    return ka == kb and (sa == sb or (da != "" and da == db))


def register_loaded(store, run_id, seen, since=0):
    """Add the modules loaded since ``seen`` ({path: kind}) was made to run ``run_id``'s
    fingerprints, as loaded. ``since``: ``len(sys.modules)`` when ``seen`` was made."""
    if len(sys.modules) <= since:
        return
    known, last = _KNOWN.get(run_id, ((), None))
    fresh = {p: k for p, k in loaded_modules(since).items() if p not in seen and p not in known}
    if not fresh:
        return
    if last is None:
        last = store.fingerprints(LAST)
    entries, changed_last = {}, {}
    for path, kind in fresh.items():
        stat = _stat_text(path, kind)
        previous = last.get(path)
        if previous is not None and _parts(previous)[:2] == (kind, stat):
            entries[path] = previous  # as the last run saw it: not hashed again
        else:
            entries[path] = changed_last[path] = f"{kind}|{stat}|{_digest(path, kind, stat)}"
    store.put_fingerprints(run_id, entries, durable=False)
    if changed_last:
        store.put_fingerprints(LAST, changed_last, replace=True, durable=False)


def bless(store, paths):
    """Record the current fingerprints of ``paths`` (iterable of (path, kind)) as drygate's own writes.

    Called by the commands that write protected files (``drygate init``, ``drygate
    install``), so a run in progress accepts exactly that content.
    """
    entries = {path: fingerprint(path, kind) for path, kind in paths}
    if entries:
        store.put_fingerprints(BLESSED, entries, replace=True)


def changed_since_last_run(store, project_dir, policy_path, home=None):
    """What changed since the latest run first saw it: list of (path, description)."""
    last = store.fingerprints(LAST)
    changes = []
    for path, old in sorted(last.items()):
        kind, old_stat, old_digest = _parts(old)
        if kind == "m":
            continue
        stat = _stat_text(path, kind)
        if stat == old_stat:
            continue
        new = f"{kind}|{stat}|{_digest(path, kind, stat)}"
        if old_digest and _parts(new)[2] == old_digest:
            continue
        changes.append((path, describe_change(path, old, new)))
    return changes


# --- the store's identity: marker and this machine's record -----------------------------


def record_dir():
    """Where this machine keeps its records of initialized stores (str)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "drygate", "stores")


def record_path(location):
    """The record file of the SQLite store at ``location`` (str)."""
    full = os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(location))), os.path.basename(location))
    return os.path.join(record_dir(), _sha(full.encode("utf-8", "surrogateescape")) + ".json")


def read_record(location):
    """This machine's record of the store at ``location`` (dict), or None."""
    try:
        with open(record_path(location), "rb") as f:
            data = f.read(65536)
    except FileNotFoundError:
        return None
    except OSError as e:
        from drygate.errors import StoreUnavailable

        raise StoreUnavailable(f"cannot read the record of state store {location} ({record_path(location)}): "
                               f"{e.strerror or e}") from e
    from drygate import _json

    try:
        record = _json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        record = None
    if not isinstance(record, dict):
        from drygate.errors import StoreUnavailable

        raise StoreUnavailable(f"the record of state store {location} ({record_path(location)}) is damaged; "
                               f"run `drygate state init --recover HOURS`")
    return record


def write_record(location, store, went_dry=None):
    """Write (atomically) this machine's record of the store at ``location``; returns it (dict)."""
    from drygate import _json
    from drygate.counters import RUNS_WENT_DRY

    st = os.stat(location)
    marker = store.marker()
    if went_dry is None:
        went_dry = store.counters().get(RUNS_WENT_DRY, 0)
    record = {"store": os.path.abspath(location), "store_id": marker.get("store_id"), "dev": st.st_dev,
              "ino": st.st_ino, "went_dry": int(went_dry)}
    path = record_path(location)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(_json.dumps(record))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return record


def note_went_dry(location, store):
    """A run went dry in the SQLite store at ``location``: raise the record's count (never lower it)."""
    from drygate.counters import RUNS_WENT_DRY

    record = read_record(location)
    if record is None:
        return
    count = store.counters().get(RUNS_WENT_DRY, 0)
    if count > record.get("went_dry", 0):
        write_record(location, store, count)


def identity_problem(location, store, record=None, exists=True):
    """Why the SQLite store at ``location`` may not decide (str), or None when it matches its record.

    ``store``: the open store (None when the file is missing); ``record``: this
    machine's record (:func:`read_record`) or None.
    """
    recover = "Run `drygate state init --recover HOURS` (every run is dry for HOURS: the store can no longer tell " \
              "which runs were dry)"
    if not exists or store is None:
        if record:
            return (f"the state store {location} is gone (this machine initialized store {record.get('store_id')} "
                    f"there). A run that was dry cannot be told from a new one, so every call is blocked. {recover}")
        return (f"there is no state store at {location}: the hook never creates one. Run `drygate init` (or "
                f"`drygate state init`) in the project")
    marker = store.marker()
    if not marker.get("store_id"):
        if record:
            return (f"the state store {location} has no drygate marker, but this machine initialized store "
                    f"{record.get('store_id')} there: it was replaced or emptied. {recover}")
        return (f"the state store {location} has no drygate marker (it was made by an older drygate, or not by "
                f"`drygate init`). Run `drygate state init` to initialize it")
    if not record:
        return (f"this machine has no record of state store {location} (store {marker.get('store_id')}; the "
                f"record under {record_dir()} is gone, or the store was copied here). Run `drygate state init` "
                f"to adopt it, or `--recover HOURS` if it may be an old copy")
    if record.get("store_id") != marker.get("store_id"):
        return (f"the state store {location} was replaced: its marker is store {marker.get('store_id')}, this "
                f"machine initialized store {record.get('store_id')} there. {recover}")
    try:
        st = os.stat(location)
    except OSError as e:
        return f"the state store {location} cannot be read ({e.strerror or e})"
    if (st.st_dev, st.st_ino) != (record.get("dev"), record.get("ino")):
        return (f"the state store {location} was replaced by another file with the same marker (inode "
                f"{record.get('ino')} -> {st.st_ino}: a copy, perhaps an older one). {recover}")
    from drygate.counters import RUNS_WENT_DRY

    went_dry = store.counters().get(RUNS_WENT_DRY, 0)
    if went_dry < record.get("went_dry", 0):
        return (f"the state store {location} is older than this machine's record: {went_dry} runs went dry in it, "
                f"the record saw {record.get('went_dry')} (an old copy was put back). {recover}")
    return None


def initialize_store(location, dry_until=None, recover=False):
    """Initialize the SQLite store at ``location`` (``drygate init`` / ``drygate state init``).

    Returns ``(status, store_id)``, status one of ``created`` (a new store), ``adopted``
    (a store with a marker this machine had no record of, or one made by an older drygate:
    its data is kept), ``exists`` (nothing to do) or ``recovered``. ``recover``: give the
    store a new marker and record whatever they said, keeping its data when it is a
    readable store (a damaged file is moved aside to ``<name>.damaged-<time>``), with
    every run dry until ``dry_until`` (epoch seconds, or None). Raises StoreUnavailable
    (naming the fix) when the store is gone, replaced or older than the record and
    ``recover`` is not given.
    """
    from drygate.errors import StoreUnavailable
    from drygate.state.sqlite import SQLiteStore

    record = read_record(location)
    exists = os.path.exists(location)
    if recover:
        try:
            store = SQLiteStore(location)
        except StoreUnavailable:
            if not exists:
                raise
            import time

            aside = f"{location}.damaged-{int(time.time())}"
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(location + suffix):
                    os.replace(location + suffix, aside + suffix)
            store = SQLiteStore(location)
        try:
            _, store_id = store.initialize(dry_until=dry_until, renew=True)
            write_record(location, store)
            # drygate made this change: runs in progress go on (dry, for the window)
            store.put_fingerprints(BLESSED, {marker_key(location): f"m|{store_id}|"}, replace=True)
        finally:
            store.close()
        return "recovered", store_id
    if not exists and record:
        raise StoreUnavailable(identity_problem(location, None, record, exists=False))
    store = SQLiteStore(location)
    try:
        problem = identity_problem(location, store, record)
        if problem is None:
            return "exists", store.marker().get("store_id")
        if record is not None:
            raise StoreUnavailable(problem)
        had_marker = bool(store.marker().get("store_id"))
        created, store_id = store.initialize(dry_until=dry_until)
        write_record(location, store)
        return ("created" if created and not had_marker and not _has_runs(store) else "adopted"), store_id
    finally:
        store.close()


def _has_runs(store):
    try:
        return bool(store.list_runs())
    except Exception:
        return False
