"""Cheap, consistent copies of a server's local state (a file, a SQLite database, a folder).

Each regular file is copied the cheapest way the file systems allow, in this order:

1. a reflink (``ioctl(FICLONE)``): the copy shares the file's blocks until either side
   writes, so it costs no data and almost no time (btrfs, XFS with reflink, bcachefs,
   OCFS2, ZFS 2.2+; not ext4, and never across two file systems);
2. ``os.copy_file_range``: the kernel copies without moving the data through this process
   (a server-side or reflinked copy on NFS 4.2 and some file systems);
3. ``os.sendfile``, then plain reads and writes.

Whether reflinks work is probed once per pair of devices and remembered.

A SQLite database (recognised by its header, ``SQLite format 3\\0``) is copied so that a
live database gives a consistent copy: in rollback-journal mode the copy is made while
holding a read transaction (SQLite's SHARED lock, so no writer can commit mid-copy) with
the file copy above, reflinks included; in WAL mode through the online backup API
(``sqlite3.Connection.backup``) from a read-only connection. Its ``-wal``, ``-shm`` and
``-journal`` files are not copied: the copy is complete without them.

A folder is copied with its sub-folders, files (mode bits and times kept, so file
metadata reads the same), hard links (kept as links) and symbolic links. A link that
points outside the folder could let a write through it reach the real system, so it
makes the copy fail (:class:`OverlayUnavailable`, ``not_isolated``); an absolute link
into the folder is re-pointed into the copy. Sockets, pipes and devices are skipped and
reported.

Sizes are logical (the sum of the files' lengths, in bytes): what the state holds, which
the configured limit is about. A reflinked copy takes almost no extra disk at first; it
grows as the run writes.
"""

import os
import stat
import time

from drygate.overlay.base import OverlayUnavailable

FICLONE = 0x40049409  # _IOW(0x94, 9, int), linux/fs.h
SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
#: Files in a folder copied in parallel threads (the copies are system calls that release the GIL).
THREADS = 4
_PARALLEL_FROM = 64

_reflink_ok = {}  # (source device, target device) -> bool


class CopyReport:
    """What :func:`copy_state` did for one state path.

    ``source``, ``target``: absolute paths; ``kind``: ``"file"``, ``"sqlite"``,
    ``"folder"`` or ``"absent"`` (nothing there yet: the server may create it);
    ``bytes``: logical bytes copied; ``files``: regular files copied; ``methods``:
    ``{method: files}`` with methods ``reflink``, ``copy_file_range``, ``sendfile``,
    ``copy``, ``hardlink``, ``sqlite_locked_copy``, ``sqlite_backup``; ``skipped``: paths not
    copied (sockets, pipes, devices, SQLite side files) as ``[(path, why)]``;
    ``seconds``: wall time.
    """

    __slots__ = ("source", "target", "kind", "bytes", "files", "methods", "skipped", "seconds")

    def __init__(self, source, target, kind):
        self.source = source
        self.target = target
        self.kind = kind
        self.bytes = 0
        self.files = 0
        self.methods = {}
        self.skipped = []
        self.seconds = 0.0

    def count(self, method, size):
        self.methods[method] = self.methods.get(method, 0) + 1
        self.files += 1
        self.bytes += size

    @property
    def reflinked(self):
        """True when every copied file's data is shared with the source (reflinks only)."""
        return bool(self.methods) and set(self.methods) <= {"reflink", "hardlink"}

    def as_dict(self):
        """The report as a JSON-ready dict (``skipped`` as ``[[path, why], ...]``, at most 20)."""
        d = {name: getattr(self, name) for name in self.__slots__}
        d["skipped"] = [list(s) for s in self.skipped[:20]]
        d["seconds"] = round(self.seconds, 6)
        return d


def is_sqlite(path):
    """True when ``path`` is a regular file that starts with SQLite's header."""
    try:
        with open(path, "rb") as f:
            return f.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def state_size(path, limit=None):
    """``(bytes, files)``: the logical size of the state at ``path`` (a file or a folder).

    Symbolic links are not followed (a link counts as nothing). With ``limit`` (bytes) the
    walk stops as soon as the sum passes it, so a huge state costs little to refuse: the
    returned bytes are then some value above ``limit``. A missing path is ``(0, 0)``.
    Raises OSError for an unreadable folder.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0, 0
    if not stat.S_ISDIR(st.st_mode):
        return (st.st_size, 1) if stat.S_ISREG(st.st_mode) else (0, 0)
    total, files, stack = 0, 0, [path]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
                    files += 1
                    if limit is not None and total > limit:
                        return total, files
    return total, files


def copy_state(source, target, limit=None):
    """Copy the state at ``source`` to ``target`` (which must not exist); returns a :class:`CopyReport`.

    ``limit``: bytes, or None. Raises :class:`OverlayUnavailable`: ``too_large`` when the
    state holds more than ``limit`` bytes (nothing is copied), ``not_isolated`` when a
    symbolic link leads out of a folder, ``copy_failed`` for any other failure (the partial
    copy is left for the caller to remove).
    """
    start = time.perf_counter()
    try:
        st = os.stat(source)
    except FileNotFoundError:
        report = CopyReport(source, target, "absent")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        return report
    except OSError as e:
        raise OverlayUnavailable(f"cannot read the state {source}: {e.strerror or e}", "copy_failed") from e
    try:
        size, _ = state_size(source, limit)
    except OSError as e:
        raise OverlayUnavailable(f"cannot read the state {source}: {e.strerror or e}", "copy_failed") from e
    if limit is not None and size > limit:
        raise OverlayUnavailable(f"the state {source} holds more than {_mb(limit)} (the shadow limit), "
                                 f"{'at least ' if stat.S_ISDIR(st.st_mode) else ''}{_mb(size)}",
                                 "too_large", size, limit)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        if stat.S_ISDIR(st.st_mode):
            report = CopyReport(source, target, "folder")
            _copy_folder(source, target, report)
        elif stat.S_ISREG(st.st_mode):
            if is_sqlite(source):
                report = CopyReport(source, target, "sqlite")
                report.count(copy_sqlite(source, target), os.stat(target).st_size)
            else:
                report = CopyReport(source, target, "file")
                report.count(copy_file(source, target, st), st.st_size)
        else:
            raise OverlayUnavailable(f"the state {source} is neither a file nor a folder", "copy_failed")
    except OverlayUnavailable:
        raise
    except (OSError, _sqlite_error()) as e:
        raise OverlayUnavailable(f"copying the state {source} failed: {e}", "copy_failed") from e
    report.seconds = time.perf_counter() - start
    return report


def copy_file(source, target, st=None):
    """Copy one regular file (data, mode bits, times); returns the method used (str).

    ``target`` must not exist. Raises OSError.
    """
    st = st or os.stat(source)
    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, stat.S_IMODE(st.st_mode) | 0o200)
        try:
            method = _copy_data(src, dst, st)
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
            if not stat.S_IMODE(st.st_mode) & 0o200:
                os.fchmod(dst, stat.S_IMODE(st.st_mode))
        finally:
            os.close(dst)
    finally:
        os.close(src)
    return method


def _copy_data(src, dst, st):
    import fcntl

    key = (st.st_dev, os.fstat(dst).st_dev)
    if _reflink_ok.get(key, True):
        try:
            fcntl.ioctl(dst, FICLONE, src)
            _reflink_ok[key] = True
            return "reflink"
        except OSError:
            _reflink_ok[key] = False
    remaining = st.st_size
    if remaining == 0:
        return "copy"
    try:
        while remaining > 0:
            n = os.copy_file_range(src, dst, min(remaining, 1 << 30))
            if n == 0:
                break
            remaining -= n
        return "copy_file_range"
    except OSError:
        if remaining != st.st_size:
            raise
    try:
        offset = 0
        while offset < st.st_size:
            n = os.sendfile(dst, src, offset, min(st.st_size - offset, 1 << 30))
            if n == 0:
                break
            offset += n
        return "sendfile"
    except OSError:
        os.lseek(src, 0, os.SEEK_SET)
        os.lseek(dst, 0, os.SEEK_SET)
        os.ftruncate(dst, 0)
    while True:
        chunk = os.read(src, 1 << 20)
        if not chunk:
            return "copy"
        while chunk:
            n = os.write(dst, chunk)
            chunk = chunk[n:]


def reflinks_available(folder):
    """True when a file in ``folder`` can be reflinked to another file in it (a probe; cached per device)."""
    import tempfile

    os.makedirs(folder, exist_ok=True)
    dev = os.stat(folder).st_dev
    if (dev, dev) in _reflink_ok:
        return _reflink_ok[(dev, dev)]
    with tempfile.TemporaryDirectory(dir=folder, prefix=".reflink-probe-") as tmp:
        a, b = os.path.join(tmp, "a"), os.path.join(tmp, "b")
        with open(a, "wb") as f:
            f.write(b"drygate reflink probe\n")
        return copy_file(a, b) == "reflink"


def _sqlite_error():
    import sqlite3

    return sqlite3.Error


def copy_sqlite(source, target):
    """Copy a SQLite database consistently while others may use it; returns the method.

    Rollback-journal mode: a read transaction (SHARED lock) is held while the file is
    copied with :func:`copy_file` (``sqlite_locked_copy``; a reflink where possible).
    WAL mode: the online backup API from a read-only connection (``sqlite_backup``).
    Raises sqlite3.Error (e.g. a hot journal that only a writer could roll back) or OSError.
    """
    import sqlite3
    from urllib.parse import quote

    uri = f"file:{quote(os.path.abspath(source))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=10.0, check_same_thread=False)
    try:
        mode = (conn.execute("PRAGMA journal_mode").fetchone() or ["delete"])[0].lower()
        if mode != "wal":
            conn.execute("BEGIN")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # takes the SHARED lock
            try:
                method = copy_file(source, target)
            finally:
                conn.execute("ROLLBACK")
            return "reflink" if method == "reflink" else "sqlite_locked_copy"
        dest = sqlite3.connect(target, isolation_level=None)
        try:
            conn.backup(dest)
        finally:
            dest.close()
        st = os.stat(source)
        os.chmod(target, stat.S_IMODE(st.st_mode))
        return "sqlite_backup"
    finally:
        conn.close()


def _copy_folder(source, target, report):
    """Copy the folder ``source`` to ``target`` (see the module docstring)."""
    root_real = os.path.realpath(source)
    files, dirs, links = [], [], {}
    stack = [(source, target)]
    os.mkdir(target, stat.S_IMODE(os.stat(source).st_mode) | 0o700)
    while stack:
        src_dir, dst_dir = stack.pop()
        dirs.append((src_dir, dst_dir))
        with os.scandir(src_dir) as it:
            entries = list(it)
        names = {e.name for e in entries}
        for entry in entries:
            src, dst = entry.path, os.path.join(dst_dir, entry.name)
            st = entry.stat(follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISLNK(mode):
                os.symlink(_link_target(src, source, root_real, target), dst)
            elif stat.S_ISDIR(mode):
                os.mkdir(dst, stat.S_IMODE(mode) | 0o700)
                stack.append((src, dst))
            elif stat.S_ISREG(mode):
                sidecar = next((s for s in SQLITE_SIDECARS if entry.name.endswith(s)), None)
                if sidecar and entry.name[: -len(sidecar)] in names and is_sqlite(src[: -len(sidecar)]):
                    report.skipped.append((src, "a SQLite side file (the database copy is complete without it)"))
                    continue
                if st.st_nlink > 1:
                    first = links.get((st.st_dev, st.st_ino))
                    if first is not None:
                        files.append((None, dst, st, first))
                        continue
                    links[(st.st_dev, st.st_ino)] = dst
                files.append((src, dst, st, None))
            else:
                report.skipped.append((src, "not a file, folder or link (a socket, pipe or device)"))
    plain = [f for f in files if f[3] is None]
    if len(plain) >= _PARALLEL_FROM:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(THREADS) as pool:
            methods = list(pool.map(lambda f: _copy_one(f[0], f[1], f[2]), plain))
    else:
        methods = [_copy_one(src, dst, st) for src, dst, st, _ in plain]
    for (_src, dst, st, _), method in zip(plain, methods):
        report.count(method, os.stat(dst).st_size if method.startswith("sqlite") else st.st_size)
    for _, dst, _st, first in files:
        if first is not None:
            os.link(first, dst)
            report.count("hardlink", 0)
    for src_dir, dst_dir in reversed(dirs):  # children first: their times are final
        st = os.stat(src_dir)
        os.chmod(dst_dir, stat.S_IMODE(st.st_mode))
        os.utime(dst_dir, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_one(src, dst, st):
    if st.st_size >= 512 and is_sqlite(src):
        return copy_sqlite(src, dst)
    return copy_file(src, dst, st)


def _link_target(link, root, root_real, target_root):
    """The target a copied symbolic link gets; raises OverlayUnavailable for one leading outside."""
    where = os.readlink(link)
    resolved = os.path.normpath(os.path.join(os.path.dirname(link), where))
    real = os.path.realpath(link)
    inside = _within(resolved, root) or _within(resolved, root_real)
    if not inside or not (_within(real, root_real) or not os.path.lexists(real)):
        raise OverlayUnavailable(f"the symbolic link {link} leads outside the state ({where}): a write through it "
                                 f"would reach the real system", "not_isolated")
    if os.path.isabs(where):
        base = root if _within(resolved, root) else root_real
        return os.path.join(target_root, os.path.relpath(resolved, base))
    return where


def _within(path, root):
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _mb(n):
    return f"{n / 1048576:.1f} MB" if n >= 1048576 else f"{n} bytes"
