"""Benchmark: what a shadow costs (drygate.overlay, drygate.relay.shadow).

Measured in one run, each against a baseline of the same run, so machine noise hits both:

1. **A 1 GB SQLite database** (rollback-journal mode, then WAL mode): the time and the extra
   disk of drygate's copy (``copy_state``: a read transaction held while the file is copied
   with reflink / ``copy_file_range``; in WAL mode the online backup API) against
   ``cp --reflink=auto`` of the same file.
2. **A folder of 10,000 files** (1-8 KB in 100 sub-folders): ``copy_state`` against
   ``cp -a --reflink=auto``.
3. **A read served by a shadow**: ``read_text_file`` of a small file on the real filesystem
   MCP server (npm), driven with raw JSON-RPC lines: direct, through the relay in a dry run
   without a shadow (the read goes to the real server), and through the relay with
   ``--shadow`` (the read goes to the shadow server, paths translated both ways, result
   marked). Calls alternate between the three, in rotating order, each relay with its own
   state store; medians and p90s.

Extra disk is the file system's used blocks after minus before (``statvfs``, after ``sync``),
so a reflinked copy shows what it really costs; other writers on the same file system blur it
(run it on a quiet machine). Whether reflinks work on the folder is probed and reported.

Usage: python bench/shadow.py [--dir DIR] [--db-mb 1024] [--files 10000] [--reads 300] [--quick]
(``--quick``: 64 MB, 1,000 files, 100 reads). ``--dir`` puts the data on another file system,
e.g. an XFS or btrfs mount to see reflinks.
"""

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from drygate.overlay.copy import copy_state, reflinks_available  # noqa: E402
from drygate.overlay.shadow import Shadow, ShadowConfig  # noqa: E402
from relay_overhead import DRYGATE, Peer, ensure_server  # noqa: E402


def fs_type(path):
    """The file system type of ``path`` from /proc/mounts (the longest mount point above it)."""
    best, kind = "", "?"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                mount = parts[1].replace("\\040", " ")
                if (path == mount or path.startswith(mount.rstrip("/") + "/")) and len(mount) > len(best):
                    best, kind = mount, parts[2]
    except OSError:
        pass
    return kind


def used_bytes(path):
    """Used bytes of the file system holding ``path``, once it stops changing (XFS frees the blocks of
    removed files in the background: without waiting, a removal shows up in the next measurement)."""
    last = None
    for _ in range(50):
        os.sync()
        st = os.statvfs(path)
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        if used == last:
            return used
        last = used
        time.sleep(0.1)
    return last


def measure(label, fn, target, where):
    """Run ``fn()`` (which makes ``target``); ``(seconds, extra disk bytes)``; ``target`` removed after."""
    before = used_bytes(where)
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    extra = used_bytes(where) - before
    if os.path.isdir(target):
        shutil.rmtree(target)
    elif os.path.exists(target):
        os.unlink(target)
    return seconds, extra


def mb(n):
    return f"{n / 1048576:8.1f} MB"


def make_db(path, size_mb):
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA page_size=4096")
    conn.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
    rows, chunk = (size_mb * 1048576) // 4000, 2000
    payload = os.urandom(4000)
    for start in range(0, rows, chunk):
        conn.executemany("INSERT INTO blobs (data) VALUES (?)",
                         ((payload[:3900] + i.to_bytes(8, "big"),) for i in range(start, min(rows, start + chunk))))
        conn.commit()
    conn.close()


def make_folder(path, files):
    rnd = random.Random(7)
    for i in range(files):
        sub = path / f"d{i % 100:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:05d}.txt").write_bytes(os.urandom(rnd.randint(1024, 8192)))


def compare(title, source, base, rounds, where):
    """Alternate ``cp --reflink=auto`` and drygate's copy_state; print and return the medians."""
    cp_t, cp_d, dg_t, dg_d, methods = [], [], [], [], {}
    for _ in range(rounds):
        t, d = measure("cp", lambda: subprocess.run(["cp", "-a", "--reflink=auto", source, base + ".cp"],
                                                    check=True), base + ".cp", where)
        cp_t.append(t)
        cp_d.append(d)
        holder = {}
        t, d = measure("drygate", lambda holder=holder: holder.setdefault("r", copy_state(source, base + ".dg")),
                       base + ".dg", where)
        dg_t.append(t)
        dg_d.append(d)
        methods = holder["r"].methods
    ct, dt = statistics.median(cp_t), statistics.median(dg_t)
    cd, dd = statistics.median(cp_d), statistics.median(dg_d)
    print(f"{title}")
    print(f"  cp -a --reflink=auto : {ct * 1000:9.1f} ms   extra disk {mb(cd)}")
    print(f"  drygate copy_state   : {dt * 1000:9.1f} ms   extra disk {mb(dd)}   ({', '.join(f'{n} {m}' for m, n in methods.items())})")
    print(f"  ratio drygate / cp   : {dt / ct:9.2f} x time, {(dd / cd) if cd > 0 else float('nan'):.2f} x disk")
    return {"cp_s": ct, "cp_disk": cd, "drygate_s": dt, "drygate_disk": dd, "methods": methods}


def read_latency(reads, work):
    """Median and p90 of a small read: direct, relay without shadow, relay with a shadow (ms)."""
    entry = ensure_server()
    node = shutil.which("node")
    root = Path(work) / "fsroot"
    root.mkdir()
    for i in range(200):
        (root / f"file{i}.txt").write_text(f"line {i}\n" * 20)
    target = root / "file7.txt"
    project = Path(work) / "project"
    project.mkdir()
    (project / "drygate.toml").write_text('[run]\nmode = "dry"\n\n[mcp]\ntrusted_servers = ["filesystem"]\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRYGATE_", "CLAUDE_"))}
    env.update(CLAUDE_PROJECT_DIR=str(project), DRYGATE_STATE=str(project / ".drygate" / "state.db"))
    server = [node, str(entry), str(root)]
    relay = [*DRYGATE, "mcp", "--name", "filesystem", "--project", str(project)]
    # Each relay has a state store of its own: with one shared store, a relay that journals a result
    # after answering holds the write lock while the next relay decides (an artifact of alternating).
    state = project / ".drygate"
    peers = {
        "direct": Peer(server, env),
        "relay, dry, no shadow": Peer([*relay, "--", *server],
                                      dict(env, DRYGATE_RUN_ID="bench-plain", DRYGATE_STATE=str(state / "plain.db"))),
        "relay, dry, shadow": Peer([*relay, "--shadow", str(root), "--", *server],
                                   dict(env, DRYGATE_RUN_ID="bench-shadow", DRYGATE_STATE=str(state / "shadow.db"))),
    }
    args = {"name": "read_text_file", "arguments": {"path": str(target)}}
    for peer in peers.values():
        peer.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "bench", "version": "0"}})
        peer.notify("notifications/initialized")
        peer.request("tools/list", {})
        for _ in range(20):  # warm up (the shadow is made on the first call of the dry run)
            answer = peer.request("tools/call", args)
    marked = answer["result"]["_meta"]["drygate"]
    assert marked["served_by"] == "shadow", marked
    times = {name: [] for name in peers}
    order = list(peers.items())
    for i in range(reads):
        for name, peer in order[i % 3:] + order[:i % 3]:  # each in every position
            start = time.perf_counter()
            peer.request("tools/call", args)
            times[name].append((time.perf_counter() - start) * 1000)
    for peer in peers.values():
        peer.proc.stdin.close()
        peer.proc.wait(timeout=10)
    out = {}
    base = statistics.median(times["direct"])
    print(f"read_text_file of a small file, {reads} calls each, alternating")
    for name, ts in times.items():
        ts.sort()
        p50, p90 = statistics.median(ts), ts[int(len(ts) * 0.9)]
        out[name] = {"p50_ms": p50, "p90_ms": p90}
        print(f"  {name:24s}: p50 {p50:6.3f} ms  p90 {p90:6.3f} ms  added p50 {p50 - base:+6.3f} ms  ({p50 / base:.2f} x)")
    added = out["relay, dry, shadow"]["p50_ms"] - out["relay, dry, no shadow"]["p50_ms"]
    print(f"  the shadow's own cost over the relay: {added:+.3f} ms per read (p50)")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default=None, help="where the data goes (default: a temp folder in the repo)")
    parser.add_argument("--db-mb", type=int, default=1024)
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the numbers as JSON")
    args = parser.parse_args()
    if args.quick:
        args.db_mb, args.files, args.reads, args.rounds = 64, 1000, 100, 2
    parent = args.dir or str(REPO / ".cache")
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix="bench-shadow-", dir=parent)
    report = {}
    try:
        reflink = reflinks_available(work)
        report["fs"] = {"dir": work, "type": fs_type(os.path.realpath(work)), "reflinks": reflink}
        print(f"data in {work} ({report['fs']['type']}); reflinks: {'available' if reflink else 'NOT available'}")
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")

        db = os.path.join(work, "big.db")
        start = time.perf_counter()
        make_db(db, args.db_mb)
        print(f"made a {mb(os.path.getsize(db)).strip()} SQLite database in {time.perf_counter() - start:.1f} s\n")
        report["sqlite_rollback"] = compare(f"SQLite {args.db_mb} MB, rollback-journal mode", db,
                                            os.path.join(work, "copy-db"), args.rounds, work)
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.close()
        report["sqlite_wal"] = compare(f"SQLite {args.db_mb} MB, WAL mode (backup API)", db,
                                       os.path.join(work, "copy-wal"), args.rounds, work)
        os.unlink(db)

        folder = Path(work) / "tree"
        make_folder(folder, args.files)
        print()
        report["folder"] = compare(f"folder of {args.files} files (1-8 KB, 100 sub-folders)", str(folder),
                                   os.path.join(work, "copy-tree"), args.rounds, work)
        start = time.perf_counter()
        shadow = Shadow.open(os.path.join(work, "shadows"), "bench-run", "fs", ShadowConfig([str(folder)]))
        made = time.perf_counter() - start
        start = time.perf_counter()
        size, removed = shadow.release()
        print(f"  Shadow.open (copy + manifest): {made * 1000:.1f} ms; release (size + remove): "
              f"{(time.perf_counter() - start) * 1000:.1f} ms, {mb(size).strip()}, removed {removed}")
        report["folder"]["shadow_open_s"] = made
        shutil.rmtree(folder)
        print()
        report["reads"] = read_latency(args.reads, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
