"""Read-your-writes for Claude Code's own file tools: a per-run shadow of the files a
dry run writes.

When the hook decides a Write, Edit or MultiEdit as dry, :func:`dry_file_call`
applies it (with drygate.file_tools' rules) to the run's shadow copy of the file,
never to the file itself, and returns the honest text the agent gets: what the
simulation showed ("the edit would apply", "the edit would FAIL: ..."), always with
the call still NOT EXECUTED. Later dry file calls of the same run build on the run's
own earlier dry writes; other runs never see them.

Layout, under the project's state folder (``<project>/.drygate``, which
self-protection keeps every agent call away from)::

    file-shadows/<run key>/      one folder per run (run key: the run id, escaped)
        lock                     held (lockf) while a call reads and updates the shadow
        files/<absolute path>    the file as this run's dry writes left it
        base/<absolute path>     the real file when the run first wrote it (none: it did not exist)
        unknown/<absolute path>  a dry write of this run that could not be simulated, and why

A file the run has not written is read from the real file. What the host allows
(measured with the real CLI, README "Read-your-writes for Claude Code's file tools"):
a PreToolUse hook can block a call but not replace its result, and the host checks
an Edit against the real file *before* the hook runs. So a Read is served by the
host from the real file; :func:`read_context` gives the PostToolUse hook the run's
version to add as context after it, and :func:`read_answer` answers (as a block) a
Read of a file that only this run's dry writes created.

Failures: a shadow that cannot be read or written (corrupt, unwritable) raises
:class:`drygate.errors.ShadowError`, a guard failure: the hook blocks the call and
alerts, as for every failure. A real file drygate cannot read as text (not UTF-8,
larger than :data:`MAX_FILE_BYTES`, unreadable) is not simulated: the answer says
so, and later dry calls on that file say so too until a Write replaces it.

This module is on the hook's path: built-in modules only (os; no json, re, fcntl).
"""

import os

#: The folder under ``<project>/.drygate``. Not ``shadows``: that one is the relay's
#: (drygate.overlay.shadow), whose pruning treats every folder in it as one of its runs.
SHADOWS = "file-shadows"
#: Largest file (bytes) the shadow keeps; a larger real file or result is not simulated.
MAX_FILE_BYTES = 8 * 1024 * 1024
#: Most characters of a run's version of a file given to the agent after a Read.
MAX_CONTEXT_CHARS = 64 * 1024
#: Lines a Read shows when it names no limit (the host's own default).
READ_LINES = 2000
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
_TREES = ("files", "base", "unknown")


def shadows_root(project_dir):
    """The folder holding every run's file shadow: ``<project>/.drygate/file-shadows``."""
    return os.path.join(project_dir, ".drygate", SHADOWS)


#: Longest run key kept whole; a longer one is cut and ends in ``%%`` and a hash of the id.
MAX_KEY = 200


def run_key(run_id):
    """A run id as one safe folder name: letters, digits, ``-_.`` kept, every other
    byte of its UTF-8 as ``%XX`` (a leading dot too, so no key is ``.`` or ``..``).
    A key longer than :data:`MAX_KEY` is cut and made unique with a hash of the id
    (:func:`run_id_of` cannot read it back)."""
    out = []
    for i, ch in enumerate(run_id):
        if ch in _SAFE and not (i == 0 and ch == "."):
            out.append(ch)
        else:
            out.extend("%%%02X" % b for b in ch.encode("utf-8", "surrogatepass"))
    key = "".join(out) or "%"
    if len(key) <= MAX_KEY:
        return key
    h = 0xCBF29CE484222325  # FNV-1a, 64 bits: no hashlib on the hook's path
    for b in run_id.encode("utf-8", "surrogatepass"):
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{key[:MAX_KEY - 20]}%%{h:016x}"


def run_id_of(key):
    """The run id a folder name stands for (inverse of :func:`run_key`); None if it is not one."""
    data = bytearray()
    i = 0
    try:
        while i < len(key):
            if key[i] == "%":
                if key == "%":
                    return ""
                data.append(int(key[i + 1:i + 3], 16))
                i += 3
            else:
                data.extend(key[i].encode("ascii"))
                i += 1
        run_id = data.decode("utf-8")
    except (ValueError, IndexError, UnicodeError):
        return None
    return run_id if run_key(run_id) == key else None


class NotSimulated(Exception):
    """drygate cannot simulate a file tool on this file (the reason is the message)."""


def _fail(what, error):
    from drygate.errors import ShadowError

    detail = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return ShadowError(f"the run's file shadow {what}: {detail}")


class RunShadow:
    """The shadow of one run under ``root`` (:func:`shadows_root`).

    Paths given to its methods are absolute and normalised
    (:func:`drygate.file_tools.file_path_of`). Raises :class:`ShadowError` when the
    shadow itself cannot be read or written.
    """

    __slots__ = ("run_id", "folder")

    def __init__(self, root, run_id):
        self.run_id = run_id
        self.folder = os.path.join(root, run_key(run_id))

    def mirror(self, tree, path):
        """Where ``path`` lives in one of the shadow's trees (``files``, ``base``, ``unknown``)."""
        return os.path.join(self.folder, tree, path.lstrip(os.sep))

    def exists(self):
        """True when this run has a shadow folder at all (one stat)."""
        return os.path.isdir(self.folder)

    def version(self, path):
        """``(shadowed, text)``: whether this run's dry writes made ``path``, and its text
        as they left it (None when not shadowed)."""
        target = self.mirror("files", path)
        try:
            with open(target, encoding="utf-8", newline="") as f:
                return True, f.read()
        except FileNotFoundError:
            return False, None
        except NotADirectoryError:  # a parent is a file: the run made no such file
            return False, None
        except UnicodeDecodeError as e:
            raise _fail(f"copy of {path} is corrupt (not UTF-8, drygate writes only UTF-8)", e) from e
        except OSError as e:
            raise _fail(f"copy of {path} cannot be read", e) from e

    def base(self, path):
        """The real file's text when this run first wrote ``path``: ``(known, text)``;
        ``text`` None means it did not exist then. ``known`` is False for a file the run
        has not written."""
        shadowed, _ = self.version(path)
        if not shadowed:
            return False, None
        try:
            with open(self.mirror("base", path), encoding="utf-8", newline="") as f:
                return True, f.read()
        except (FileNotFoundError, NotADirectoryError):
            return True, None
        except (OSError, UnicodeDecodeError) as e:
            raise _fail(f"record of the original {path} cannot be read", e) from e

    def unknown(self, path):
        """Why an earlier dry write of this run to ``path`` could not be simulated, or None."""
        try:
            with open(self.mirror("unknown", path), encoding="utf-8", errors="replace") as f:
                return f.read() or "an earlier dry write could not be simulated"
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise _fail(f"record of {path} cannot be read", e) from e

    def size(self):
        """Bytes on disk of this run's shadow (files, originals and records)."""
        total = 0
        for folder, _, names in os.walk(self.folder):
            for name in names:
                try:
                    total += os.lstat(os.path.join(folder, name)).st_size
                except OSError:
                    pass
        return total

    def locked(self):
        """Create the run's folder if needed and hold its lock (a context manager)."""
        return _Lock(self.folder)

    def put(self, tree, path, text):
        """Write ``text`` as ``path``'s entry in ``tree`` (atomically: temp file, rename)."""
        target = self.mirror(tree, path)
        tmp = os.path.join(self.folder, f".tmp.{os.getpid()}")
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(tmp, "w", encoding="utf-8", newline="", errors="surrogatepass") as f:
                f.write(text)
            os.replace(tmp, target)
        except OSError as e:
            raise _fail(f"copy of {path} cannot be written", e) from e

    def drop(self, tree, path):
        """Remove ``path``'s entry from ``tree`` (nothing when it has none)."""
        try:
            os.unlink(self.mirror(tree, path))
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as e:
            raise _fail(f"record of {path} cannot be removed", e) from e

    def conflict(self, path):
        """Why ``path`` cannot be a file in this run's version of the file system, or None:
        the run's dry writes made files under it (it is a folder), or made one of its
        parent folders a file."""
        top = os.path.join(self.folder, "files")
        target = self.mirror("files", path)
        if os.path.isdir(target):
            return ("in this run's version of the file system the path is a folder (the run's dry writes made "
                    "files in it)")
        parent = os.path.dirname(target)
        while len(parent) > len(top):
            if os.path.isdir(parent):
                return None  # a folder's own parents are folders
            if os.path.lexists(parent):
                return (f"in this run's version of the file system {os.sep + os.path.relpath(parent, top)} "
                        f"is a file (a dry write of this run made it), not a folder")
            parent = os.path.dirname(parent)
        return None


class _Lock:
    __slots__ = ("folder", "fd")

    def __init__(self, folder):
        self.folder = folder
        self.fd = None

    def __enter__(self):
        try:
            os.makedirs(self.folder, exist_ok=True)
            self.fd = os.open(os.path.join(self.folder, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.lockf(self.fd, os.F_LOCK, 0)  # a POSIX record lock: no fcntl import on the hook's path
        except OSError as e:
            if self.fd is not None:
                os.close(self.fd)
            raise _fail(f"folder {self.folder} cannot be created or locked", e) from e
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # closing releases the lock


def read_real(path):
    """The real file's text, or None when it does not exist. Raises :class:`NotSimulated`
    for anything that is not a regular UTF-8 text file of at most :data:`MAX_FILE_BYTES`
    (a FIFO is never opened: reading it could block)."""
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise NotSimulated("a parent folder of the path is a file") from None
    except OSError as e:
        raise NotSimulated(f"drygate cannot look at the real file ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise NotSimulated("the path is a folder")
    if not stat.S_ISREG(st.st_mode):
        raise NotSimulated("the path is not a regular file")
    if st.st_size > MAX_FILE_BYTES:
        raise NotSimulated(f"the real file is larger than the shadow's limit ({MAX_FILE_BYTES // (1024 * 1024)} MiB)")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise NotSimulated("the real file is not UTF-8 text") from None
    except OSError as e:
        raise NotSimulated(f"drygate cannot read the real file ({e.strerror or e})") from None


#: Kinds of simulation outcome (the first item :func:`simulate` returns).
APPLIES, FAILS, UNKNOWN = "applies", "fails", "unknown"


def simulate(shadow, tool, tool_input, path):
    """Simulate one dry file call on ``shadow`` (a :class:`RunShadow`, locked by the
    caller) and record its result. Returns ``(kind, outcome, changed)``: :data:`APPLIES`,
    :data:`FAILS` or :data:`UNKNOWN`; the sentence for the agent; whether the run's dry
    writes made its version of the file (so the host's view of it, the real file, may
    differ). Raises :class:`ShadowError`."""
    from drygate.file_tools import describe_outcome, simulate_file_tool

    problem = shadow.conflict(path)
    if problem:
        return FAILS, f"the {'write' if tool == 'Write' else 'edit'} would FAIL: {problem}", True
    shadowed, before = shadow.version(path)
    real = earlier = None
    if not shadowed:
        earlier = shadow.unknown(path)
        try:
            if earlier and tool != "Write":  # a Write does not depend on what the file held
                raise NotSimulated(f"an earlier dry write of this run to this file could not be simulated "
                                   f"({earlier})")
            before = real = read_real(path)
        except NotSimulated as e:
            if tool != "Write":
                return UNKNOWN, f"{e}, so the result is unknown", bool(earlier)
            before = real = _UNREAD
    after, problem = simulate_file_tool(tool, tool_input, None if before is _UNREAD else before)
    if problem:
        where = " (as this run left it)" if shadowed else ""
        return FAILS, describe_outcome(tool, tool_input, before, None, problem) + where, shadowed
    if len(after) > MAX_FILE_BYTES // 4 and len(after.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        limit = f"the shadow's limit ({MAX_FILE_BYTES // (1024 * 1024)} MiB)"
        shadow.drop("files", path)
        shadow.put("unknown", path, f"a result larger than {limit}")
        return UNKNOWN, f"the result would be larger than {limit}; later edits of this file in this run are " \
                        f"not simulated", True
    if not shadowed and real is not None and real is not _UNREAD:
        shadow.put("base", path, real)
    shadow.put("files", path, after)
    if not shadowed and earlier:
        shadow.drop("unknown", path)  # a Write made the file known again
    if before is _UNREAD:
        return APPLIES, f"the file would be written ({_size(after)})", True
    return APPLIES, describe_outcome(tool, tool_input, before, after, None), shadowed or real != after


_UNREAD = object()  # the real file could not be read (a Write simulates without it)


def _size(text):
    n = len(text.encode("utf-8", "surrogatepass"))
    return "1 byte" if n == 1 else f"{n} bytes"


#: What the agent is told after a dry write changed its run's version of a file.
HOST_NOTE = ("Note: Claude Code checks files on disk, where this write did not happen: a Read shows the real file "
             "(drygate adds this run's version after it), and Claude Code itself refuses an Edit of text that only "
             "this run's dry writes made; to change such text in this run, Write the whole file.")


def dry_file_call(project_dir, call):
    """Simulate a dry Write, Edit or MultiEdit (``call``, a ToolCall) on its run's
    shadow; returns the sentences to append to the dry answer (str).

    The real file is only ever read. Raises :class:`ShadowError` when the shadow
    cannot be used (the hook then blocks with a guard-failure alert).
    """
    from drygate.file_tools import file_path_of

    path = file_path_of(call.tool_input, call.cwd or project_dir)
    if path is None:
        return "drygate did not simulate it: the input names no file_path."
    shadow = RunShadow(shadows_root(project_dir), call.run_id)
    with shadow.locked():
        kind, outcome, changed = simulate(shadow, call.tool_name, call.tool_input, path)
    if kind == UNKNOWN:
        return f"drygate could not simulate it on this run's shadow copy of {path}: {outcome}."
    text = f"Simulated on this run's shadow copy of {path} (the real file is untouched): {outcome}."
    if kind == FAILS:
        return text + " The run's copy is unchanged, as the file would be."
    text += " Later Write and Edit calls of this run build on this result."
    return f"{text} {HOST_NOTE}" if changed else text


def _numbered(text, offset, limit):
    """Lines ``offset``.. (1-based, at most ``limit``) of ``text`` numbered as Read shows
    them; returns ``(numbered text, first, last, total lines, cut)``."""
    lines = text.splitlines()
    total = len(lines)
    first = max(1, offset)
    chosen = lines[first - 1:first - 1 + limit]
    out, size, cut = [], 0, False
    for n, line in enumerate(chosen, first):
        row = f"{n:6d}\t{line}"
        if size + len(row) > MAX_CONTEXT_CHARS:
            cut = True
            break
        out.append(row)
        size += len(row) + 1
    last = first + len(out) - 1
    return "\n".join(out), first, last, total, cut or last < min(total, first - 1 + limit)


def _read_window(tool_input):
    offset = tool_input.get("offset") if isinstance(tool_input, dict) else None
    limit = tool_input.get("limit") if isinstance(tool_input, dict) else None
    offset = offset if isinstance(offset, int) and not isinstance(offset, bool) and offset > 0 else 1
    limit = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else READ_LINES
    return offset, limit


def _shadow_of_read(project_dir, call):
    """``(shadow, path)`` when ``call`` (a Read) names a file this run's dry writes made, else None."""
    if not isinstance(call.tool_input, dict) or not call.run_id:
        return None
    shadow = RunShadow(shadows_root(project_dir), call.run_id)
    if not shadow.exists():  # the common case: one stat
        return None
    from drygate.file_tools import file_path_of

    path = file_path_of(call.tool_input, call.cwd or project_dir)
    if path is None:
        return None
    return shadow, path


def read_context(project_dir, call):
    """For the PostToolUse event of a Read (``call``): the context to add after the host's
    result when this run's dry writes changed the file, else None. Raises ShadowError."""
    found = _shadow_of_read(project_dir, call)
    if found is None:
        return None
    shadow, path = found
    shadowed, text = shadow.version(path)
    if not shadowed:
        earlier = shadow.unknown(path)
        if earlier:
            return (f"drygate (dry run {call.run_id}): this Read showed the real file. A dry write of this run to "
                    f"{path} could not be simulated ({earlier}), so how this run left the file is unknown.")
        return None
    offset, limit = _read_window(call.tool_input)
    body, first, last, total, cut = _numbered(text, offset, limit)
    span = f"lines {first}-{last} of {total}" if body else f"{total} lines, none from line {offset}"
    return (f"drygate (dry run {call.run_id}): this Read showed the real file, which does not have this run's "
            f"dry writes (they were NOT EXECUTED). As this run's dry writes left {path}, it reads ({span}"
            f"{', cut short' if cut else ''}):\n{body}")


def read_answer(project_dir, call):
    """For the PreToolUse event of a Read (``call``): the text to block it with when the
    file exists only in this run's shadow (the host would answer that it does not exist),
    else None. Claude Code 2.0 checks that the file exists before the hook runs, so there
    the host's "File does not exist" comes first. Raises ShadowError."""
    found = _shadow_of_read(project_dir, call)
    if found is None:
        return None
    shadow, path = found
    if os.path.lexists(path):
        return None  # the host reads it; the PostToolUse context adds the run's version
    shadowed, text = shadow.version(path)
    if not shadowed:
        return None
    offset, limit = _read_window(call.tool_input)
    body, first, last, total, cut = _numbered(text, offset, limit)
    span = f"lines {first}-{last} of {total}" if body else f"{total} lines, none from line {offset}"
    return (f"drygate answered this Read from dry run {call.run_id}'s shadow: {path} does not exist on disk "
            f"(the write that made it was skipped, NOT EXECUTED). As this run's dry writes left it, it reads "
            f"({span}{', cut short' if cut else ''}):\n{body}")


def run_shadows(project_dir):
    """Every run's shadow in the project: list of :class:`RunShadow`. A folder whose name
    cannot be read back as a run id (a cut key) has ``run_id`` None."""
    root = shadows_root(project_dir)
    try:
        names = sorted(os.listdir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for name in names:
        if not os.path.isdir(os.path.join(root, name)):
            continue
        shadow = RunShadow(root, "")
        shadow.run_id, shadow.folder = run_id_of(name), os.path.join(root, name)
        found.append(shadow)
    return found


def remove(shadow):
    """Delete a run's shadow folder; returns the bytes it held."""
    import shutil

    size = shadow.size()
    shutil.rmtree(shadow.folder, ignore_errors=True)
    return size


def prune_shadows(project_dir, store, older_than_s, now):
    """Remove the shadows of runs idle for more than ``older_than_s`` seconds (the runs
    whose journals ``drygate prune`` drops); returns ``(shadows removed, bytes freed)``.

    A run the store no longer knows (or a folder named by a cut key) is judged by its
    shadow folder's last change, which every dry file write of the run updates. Raises
    the store's GuardFailure subclasses when it cannot be read.
    """
    cutoff = now - older_than_s
    removed = freed = 0
    for shadow in run_shadows(project_dir):
        run = store.get_run(shadow.run_id) if shadow.run_id is not None else None
        if run is not None:
            idle = run.last_seen_at < cutoff
        else:
            try:
                idle = os.stat(shadow.folder).st_mtime < cutoff
            except OSError:
                continue
        if idle:
            freed += remove(shadow)
            removed += 1
    return removed, freed
