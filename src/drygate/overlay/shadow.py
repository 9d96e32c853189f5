"""Shadows: one server's per-run copy of its local state, on disk.

Layout, under the project's state folder::

    <project>/.drygate/mcp-shadows/
        <run key>/                  one run (its key: a readable prefix of the run id + a hash)
            run.json                {"run_id", "created_at"}
            .holders                lock file: every process using a shadow of the run holds a
                                    shared lock on it; whoever gets it exclusively may remove the run
            <server>.lock           held exclusively while the server's copy is being made
            <server>/
                manifest.json       {"format", "run_id", "server", "created_at", "limit",
                                     "paths": [CopyReport.as_dict()], "bytes", "seconds"}
                state/<i>/<name>    the copy of the i-th state path (its own base name kept)

A shadow is shared by every relay of the same run and server (two connections of one run
see each other's writes, as two live servers on one state would); runs never share one.
It is made once, when the run goes dry, and removed when the last process of the run that
holds it lets go (:meth:`Shadow.release`), or by :func:`prune_shadows` once the run expired.

Isolation (never a leak): the shadow server runs under bubblewrap (:func:`sandbox_prefix`) with
only the server's shadow folder writable, and :meth:`Shadow.command` gives the shadow server's command line,
environment and working folder with every spelling of every state path replaced by its
copy, and refuses (:class:`OverlayUnavailable`, ``not_isolated``) when a state path is not
named there at all (the server would find its real state some other way) or when a real
spelling remains. What this cannot see: a server that derives its state's location from
something else (a config file, a database of its own, a fixed path) and paths built at run
time. Declare every path the server writes with ``--shadow``.
"""

import json
import os
import re
import shutil
import time

from drygate.overlay.base import OVERLAY, REAL, Overlay, OverlayUnavailable, ReadRecord

FORMAT = "drygate.shadow/1"
#: Under the project; Claude Code's file shadows (drygate.file_shadow) live next to it in ``.drygate/shadows``.
SHADOWS = os.path.join(".drygate", "mcp-shadows")
#: Journal entries (kind "result") about a run's shadow of a server have the tool name
#: ``drygate/shadow/<server>`` (drygate.relay.shadow writes them; :func:`simulation_summary` reads them).
SHADOW_PREFIX = "drygate/shadow/"
#: Default limit of a shadow's state, in bytes (``--shadow-max-mb``).
DEFAULT_MAX_BYTES = 1024 * 1048576
HOLDERS = ".holders"


class ShadowConfig:
    """Which state a server keeps locally, and how much of it may be copied.

    ``paths``: absolute paths (tuple of str: files, SQLite databases, JSONL files, folders,
    git repositories); ``max_bytes``: the limit of the state's logical size (int);
    ``network``: the shadow server may use the network (default False: it runs in a network
    namespace of its own, with no interface but a loopback that is down, so a server that
    also writes to a network service cannot do so from its shadow).
    """

    __slots__ = ("paths", "max_bytes", "network")

    def __init__(self, paths, max_bytes=DEFAULT_MAX_BYTES, network=False):
        self.paths = tuple(os.path.abspath(os.path.expanduser(p)) for p in paths)
        self.max_bytes = int(max_bytes)
        self.network = bool(network)

    def __repr__(self):
        return f"ShadowConfig({list(self.paths)!r}, max_bytes={self.max_bytes})"


def shadow_root(project_dir):
    """``<project>/.drygate/mcp-shadows`` (str)."""
    return os.path.join(project_dir, SHADOWS)


def run_key(run_id):
    """The folder name of a run's shadows: a safe prefix of the id plus 12 hex digits of its hash (str)."""
    import hashlib

    safe = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)[:40].lstrip(".") or "run"
    return f"{safe}-{hashlib.sha256(run_id.encode('utf-8')).hexdigest()[:12]}"


def _safe_name(server):
    return re.sub(r"[^A-Za-z0-9._-]", "_", server).lstrip(".") or "server"


class _Holder:
    """A shared lock on a run's ``.holders`` file: the run's shadows are in use while it is held."""

    def __init__(self, run_dir):
        import fcntl

        path = os.path.join(run_dir, HOLDERS)
        for _ in range(50):
            os.makedirs(run_dir, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_SH)
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return
            os.close(fd)  # the run was removed while we waited: start again
        raise OverlayUnavailable(f"the shadow folder {run_dir} keeps being removed", "copy_failed")

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _try_remove_run(run_dir):
    """Remove a run's shadows if no process holds them; returns True when removed."""
    import fcntl

    path = os.path.join(run_dir, HOLDERS)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        if os.path.isdir(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        try:
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                return False
        except FileNotFoundError:
            return False
        os.unlink(path)  # first: a process waiting for a shared lock notices and starts again
        shutil.rmtree(run_dir, ignore_errors=True)
        return True
    finally:
        os.close(fd)


class Shadow(Overlay):
    """One server's copy of its state for one run (an :class:`Overlay` of the whole state).

    Open it with :meth:`open`. ``run_id``, ``server``; ``dir``: the server's shadow folder;
    ``manifest``: dict (module docstring); ``pathmap``: :class:`drygate.overlay.paths.PathMap`
    between the real paths and their copies; ``made``: True when this call made the copy
    (False: another process of the run had made it); ``created_at``: epoch s.
    """

    def __init__(self, run_id, server, run_dir, manifest, holder, made):
        from drygate.overlay.paths import PathMap

        self.run_id = run_id
        self.server = server
        self.run_dir = run_dir
        self.dir = os.path.join(run_dir, _safe_name(server))
        self.manifest = manifest
        self.made = made
        self.created_at = manifest["created_at"]
        self.pathmap = PathMap([(p["source"], p["target"]) for p in manifest["paths"]],
                               marker=os.path.basename(run_dir))
        self._holder = holder
        self.writes = 0
        self._reads = []

    @classmethod
    def open(cls, root, run_id, server, config, clock=time.time):
        """Make (or join) the shadow of ``server``'s state for ``run_id`` under ``root``.

        ``config``: :class:`ShadowConfig`. The process holds the run's shadows until
        :meth:`release`. Raises :class:`OverlayUnavailable` (``too_large``, ``not_isolated``,
        ``copy_failed``); nothing is left on disk for this server then.
        """
        import fcntl

        from drygate.overlay.copy import copy_state

        run_dir = os.path.join(root, run_key(run_id))
        holder = _Holder(run_dir)
        try:
            info = os.path.join(run_dir, "run.json")
            if not os.path.exists(info):
                _write_json(info, {"run_id": run_id, "created_at": clock()})
            name = _safe_name(server)
            lock_fd = os.open(os.path.join(run_dir, name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
                server_dir = os.path.join(run_dir, name)
                manifest = _read_manifest(server_dir)
                if manifest is not None and manifest.get("paths_declared") == list(config.paths):
                    return cls(run_id, server, run_dir, manifest, holder, False)
                if manifest is not None:  # another relay of the run uses it: never pull it away
                    raise OverlayUnavailable(
                        f"another relay of run {run_id} shadows {server} with other paths "
                        f"({', '.join(manifest.get('paths_declared') or [])})", "not_isolated")
                if os.path.lexists(server_dir):
                    shutil.rmtree(server_dir)  # a copy that was never finished (no manifest)
                start = time.perf_counter()
                reports = []
                try:
                    for i, source in enumerate(config.paths):
                        target = os.path.join(server_dir, "state", str(i), os.path.basename(source) or "state")
                        used = sum(r.bytes for r in reports)
                        reports.append(copy_state(source, target, config.max_bytes - used))
                except OverlayUnavailable as e:
                    shutil.rmtree(server_dir, ignore_errors=True)
                    if e.code == "too_large":
                        size = sum(r.bytes for r in reports) + (e.bytes or 0)
                        raise OverlayUnavailable(
                            f"the state of {server} is larger than the shadow limit of "
                            f"{config.max_bytes / 1048576:g} MB (at least {size / 1048576:.1f} MB)",
                            "too_large", size, config.max_bytes) from e
                    raise
                manifest = {"format": FORMAT, "run_id": run_id, "server": server, "created_at": clock(),
                            "limit": config.max_bytes, "paths_declared": list(config.paths),
                            "paths": [r.as_dict() for r in reports], "bytes": sum(r.bytes for r in reports),
                            "seconds": round(time.perf_counter() - start, 6)}
                _write_json(os.path.join(server_dir, "manifest.json"), manifest)
                return cls(run_id, server, run_dir, manifest, holder, True)
            finally:
                os.close(lock_fd)
        except OverlayUnavailable:
            holder.release()
            _try_remove_run(run_dir)
            raise
        except OSError as e:
            holder.release()
            _try_remove_run(run_dir)
            raise OverlayUnavailable(f"cannot make the shadow of {server}: {e.strerror or e}", "copy_failed") from e

    # -- the server on the copy ---------------------------------------------------------------
    def command(self, argv, env, cwd):
        """``(argv, env, cwd)`` of the shadow server: the real server's, on the copy.

        Raises :class:`OverlayUnavailable` (``not_isolated``) when a state path does not
        occur in them (the server would find its real state another way), or when a real
        path still occurs after the substitution.
        """
        from drygate.overlay.paths import substitute

        new_argv, new_env, new_cwd, found = substitute(argv, env, cwd, self.pathmap)
        missing = [real for real, n in found.items() if n == 0]
        if missing:
            raise OverlayUnavailable(
                f"the server's command, environment and working folder do not name {', '.join(missing)}, so a "
                f"second instance could not be pointed at a copy", "not_isolated")
        leaks = self.pathmap.leaks([new_argv, new_env, new_cwd], cwd=new_cwd)
        if leaks:
            raise OverlayUnavailable(f"the shadow server would still name the real state ({', '.join(leaks[:3])})",
                                     "not_isolated")
        return new_argv, new_env, new_cwd

    def paths(self):
        """``[{"real", "copy", "kind", "bytes", "methods"}]`` of the copied state paths."""
        return [{"real": p["source"], "copy": p["target"], "kind": p["kind"], "bytes": p["bytes"],
                 "methods": p["methods"]} for p in self.manifest["paths"]]

    def describe(self):
        """What this shadow is, for ``_meta`` and the journal (JSON-ready dict)."""
        return {"kind": "shadow", "server": self.server, "made_at": self.created_at,
                "paths": [p["source"] for p in self.manifest["paths"]]}

    # -- the Overlay interface ----------------------------------------------------------------
    def note_write(self, what=None):
        self.writes += 1

    def served_from(self, what=None):
        return OVERLAY if self.writes else REAL

    def record_read(self, what, fingerprint=None, source=None):
        source = source or self.served_from(what)
        record = ReadRecord(what, source, fingerprint, self.created_at if source == REAL else None)
        self._reads.append(record)
        return record

    def reads(self):
        return list(self._reads)

    def size_bytes(self):
        """The logical size of the copy now (bytes; the run's writes included)."""
        from drygate.overlay.copy import state_size

        try:
            return state_size(os.path.join(self.dir, "state"))[0]
        except OSError:
            return 0

    def release(self):
        """Let go of the run's shadows; remove them when no other process holds them.

        Returns ``(bytes, removed)``: the copy's size at release and whether the run's
        shadows were removed. Idempotent.
        """
        if self._holder is None:
            return 0, False
        size = self.size_bytes()
        self._holder.release()
        self._holder = None
        return size, _try_remove_run(self.run_dir)

    def close(self):
        return self.release()[0]


def sandbox_prefix(shadow, network=False, cwd=None):
    """The argv prefix that runs ``shadow``'s server under bubblewrap (drygate.sandbox.server_prefix):
    the host's file system read-only, only the shadow's folder (its copy, and ``scratch/`` in it,
    given as ``TMPDIR``) writable, and no network unless ``network``. So a call that writes outside
    the copy (a SQL ``VACUUM INTO '/any/file'``, an ``ATTACH``, a path the server was not told
    about) fails in the shadow instead of landing on the real system.

    Raises :class:`OverlayUnavailable` (``not_isolated``) where bubblewrap is missing or cannot
    run: the run then gets plain dry results (never live).
    """
    from drygate.sandbox import SandboxUnavailable, server_prefix

    scratch = os.path.join(shadow.dir, "scratch")
    os.makedirs(scratch, exist_ok=True)
    try:
        return server_prefix([shadow.dir], network=network, cwd=cwd, scratch=scratch)
    except SandboxUnavailable as e:
        raise OverlayUnavailable(f"the shadow server cannot be sandboxed ({e.reason}), so a write it makes outside "
                                 f"its copy would be real", "not_isolated") from e


_offline_prefix = {}  # cache of offline_prefix(): {"argv": [...]} or {"why": str}


def offline_prefix():
    """The argv prefix that runs a command without network: ``["unshare", "--net", "--"]`` as root,
    ``["unshare", "--map-current-user", "--net", "--"]`` otherwise (a user namespace keeps the
    uid). Probed once per process. Raises :class:`OverlayUnavailable` (``not_isolated``) where
    namespaces cannot be made (no ``unshare``, unprivileged user namespaces disabled).
    """
    if not _offline_prefix:
        import shutil as _shutil
        import subprocess

        unshare = _shutil.which("unshare")
        if unshare is None:
            _offline_prefix["why"] = "the unshare command (util-linux) is not installed"
        else:
            prefix = [unshare, "--net", "--"] if os.geteuid() == 0 else [unshare, "--map-current-user", "--net", "--"]
            try:
                probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=10)
            except (OSError, subprocess.TimeoutExpired) as e:
                _offline_prefix["why"] = f"unshare failed ({e})"
            else:
                if probe.returncode == 0:
                    _offline_prefix["argv"] = prefix
                else:
                    _offline_prefix["why"] = f"unshare failed: {probe.stderr.strip() or probe.returncode}"
    if "argv" not in _offline_prefix:
        raise OverlayUnavailable(f"the shadow server cannot be cut off the network ({_offline_prefix['why']}), so a "
                                 f"write it makes to a network service would be real; pass --shadow-allow-network "
                                 f"only for a server whose every effect is on its local state", "not_isolated")
    return list(_offline_prefix["argv"])


def _read_manifest(server_dir):
    try:
        with open(os.path.join(server_dir, "manifest.json"), encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None


def _write_json(path, value):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1)
    os.replace(tmp, path)


def list_shadows(root):
    """The shadows on disk: ``{run_id: {"bytes": int, "servers": [str], "overlays": [file name], "in_use": bool,
    "dir": str}}`` (``bytes``: the copies and the store overlays' files)."""
    import fcntl

    from drygate.overlay.copy import state_size

    found = {}
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return found
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        try:
            with open(os.path.join(entry.path, "run.json"), encoding="utf-8") as f:
                run_id = json.load(f)["run_id"]
        except (OSError, ValueError, KeyError, TypeError):
            run_id = entry.name
        servers = sorted(e.name for e in os.scandir(entry.path) if e.is_dir(follow_symlinks=False))
        size = 0
        for server in servers:
            try:
                size += state_size(os.path.join(entry.path, server, "state"))[0]
            except OSError:
                pass
        from drygate.overlay.stores import overlay_files

        overlays = overlay_files(entry.path)  # the run's store overlays (drygate.overlay.stores) live here too
        size += sum(overlays.values())
        in_use = False
        try:
            fd = os.open(os.path.join(entry.path, HOLDERS), os.O_RDONLY | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                in_use = True
            finally:
                os.close(fd)
        except FileNotFoundError:
            pass
        found[run_id] = {"bytes": size, "servers": servers, "overlays": sorted(overlays), "in_use": in_use,
                         "dir": entry.path}
    return found


def prune_shadows(root, store, older_than_s, now):
    """Remove the shadows of runs idle for more than ``older_than_s`` seconds that no process holds.

    ``store``: the state store (a run's ``last_seen_at`` says when it was last used; a run
    the store does not know counts from its shadow's creation). Returns ``(runs removed,
    bytes freed)``.
    """
    removed, freed = 0, 0
    for run_id, info in list_shadows(root).items():
        if info["in_use"]:
            continue
        run = store.get_run(run_id) if store is not None else None
        last = run.last_seen_at if run is not None else None
        if last is None:
            try:
                last = os.stat(os.path.join(info["dir"], "run.json")).st_mtime
            except OSError:
                last = 0.0
        if now - last > older_than_s and _try_remove_run(info["dir"]):
            removed += 1
            freed += info["bytes"]
    return removed, freed


def simulation_summary(entries):
    """What a run's journal says about its shadows, for the plan (JSON-ready dict)::

        {"shadows": [{"server", "made_at", "paths": [real path], "bytes" (copied),
                      "methods": {method: files}, "seconds", "joined": bool,
                      "final_bytes", "removed", "writes", "reads",
                      "fallback": {"reason", "code", "bytes", "limit"} | None}],
         "read_your_writes": bool,   # some server's dry calls ran on a shadow
         "unproven": {name: text}}   # what the simulation could not prove ({} without shadows)

    ``entries``: the run's journal (list of dicts, drygate.state.base).
    """
    by_server = {}
    for e in entries:
        name = e.get("tool_name") or ""
        if e.get("kind") != "result" or not name.startswith(SHADOW_PREFIX) or not isinstance(e.get("result"), dict):
            continue
        server = name[len(SHADOW_PREFIX):]
        event = e["result"]
        s = by_server.setdefault(server, {"server": server, "made_at": None, "paths": [], "bytes": None,
                                          "methods": {}, "seconds": None, "joined": False, "final_bytes": None,
                                          "removed": None, "writes": 0, "reads": 0, "fallback": None})
        kind = event.get("event")
        if kind in ("made", "joined"):
            s["made_at"] = s["made_at"] or event.get("created_at")
            s["paths"] = [p.get("source") for p in event.get("paths") or [] if isinstance(p, dict)]
            s["bytes"] = event.get("bytes")
            s["seconds"] = event.get("seconds")
            s["joined"] = s["joined"] or kind == "joined"
            for p in event.get("paths") or []:
                for method, n in ((p.get("methods") or {}) if isinstance(p, dict) else {}).items():
                    s["methods"][method] = s["methods"].get(method, 0) + n
        elif kind == "fallback" and s["fallback"] is None:
            s["fallback"] = {k: event.get(k) for k in ("reason", "code", "bytes", "limit")}
        elif kind == "closed":
            s["final_bytes"] = max(s["final_bytes"] or 0, event.get("bytes") or 0)
            s["removed"] = bool(event.get("removed")) or bool(s["removed"])
            s["writes"] += event.get("writes") or 0
            s["reads"] += event.get("reads") or 0
    shadows = sorted(by_server.values(), key=lambda s: s["server"])
    made = any(s["made_at"] is not None for s in shadows)
    from drygate.overlay.honesty import unproven

    return {"shadows": shadows, "read_your_writes": made, "unproven": unproven() if made else {}}
