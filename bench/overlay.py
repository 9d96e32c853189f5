"""Benchmark: what a read answered by a store overlay costs (drygate.relay.overlays), against the same read direct.

The reference stack server (examples/stack: S3 through boto3 on a local moto server, the
key-value store on a local redis-server, or on SQLite when there is none) is started three
times and driven with raw JSON-RPC lines over stdio (no SDK on the client side):

- **direct**: the server itself;
- **relay, live**: behind ``drygate mcp`` in a live run (the relay's own cost: decision,
  journal, forwarding);
- **relay, dry + overlays**: behind ``drygate mcp`` in a dry run whose policy maps the
  server's object and key-value tools to store overlays (``[[overlays]]``), two relays of
  the same run (they share its overlay; each kind of read below has a relay of its own,
  and each relay a state store of its own, so that none waits for the journal write
  another makes after answering); the run first writes one object and one key, so its
  reads are of two kinds:

  * **real** (a key the run did not touch): the overlay looks the key up in its SQLite
    file, sends the real server's own read tool, passes its answer on, marks it, and
    journals the read's fingerprint (the plan's basis);
  * **own write** (a key the run wrote): answered from the overlay's file alone.

Per read kind (``get_object`` of a 1 KB object, ``list_objects`` of a prefix with 20
objects, ``kv_get``), calls alternate between the sides in rotating order, so machine
noise hits all alike; the medians and p90s of each, and the medians added against the
direct call and against the live relay.

Usage: python bench/overlay.py [--calls 300] [--quick]   (``--quick``: 60 calls)
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

from relay_overhead import DRYGATE, Peer

STACK = REPO / "examples" / "stack"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
       "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"}
OVERLAYS = '''
[[overlays]]
server = "stack"
kind = "objects"
tools = { put = "put_object", get = "get_object", head = "head_object", list = "list_objects", delete = "delete_object" }

[[overlays]]
server = "stack"
kind = "key-value"
tools = { get = "kv_get", set = "kv_set", delete = "kv_delete", incr = "kv_incr" }
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(folder):
    port = free_port()
    moto = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if not moto:
        sys.exit("moto_server not found: pip install 'moto[server]>=5.2,<6'")
    proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=folder)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("moto_server did not start")


def start_redis(folder):
    """A redis-server (tests/redis_server.py), or None when it is not installed."""
    from redis_server import RedisServer, find_binary

    if find_binary() is None:
        return None
    return RedisServer(Path(folder) / "redis").start()


def stats(samples):
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.9)]


def call(peer, tool, arguments):
    start = time.perf_counter()
    answer = peer.request("tools/call", {"name": tool, "arguments": arguments})
    elapsed = time.perf_counter() - start
    if answer["result"].get("isError"):
        raise RuntimeError(f"{tool}: {answer['result']['content'][0]['text']}")
    return elapsed, answer["result"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    calls = 60 if args.quick else args.calls
    import boto3

    folder = tempfile.mkdtemp(prefix="drygate-bench-overlay-")
    moto, url = start_moto(folder)
    redis = start_redis(folder)
    peers = []
    try:
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
        s3.create_bucket(Bucket="bench")
        s3.put_object(Bucket="bench", Key="real.txt", Body=os.urandom(512).hex().encode())
        for i in range(20):
            s3.put_object(Bucket="bench", Key=f"docs/{i:02d}.txt", Body=b"x" * 100)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DRYGATE_", "CLAUDE_"))}, **AWS,
               "STACK_DB": os.path.join(folder, "stack.db"), "STACK_S3_URL": url}
        if redis is not None:
            env["STACK_REDIS_URL"] = redis.url(db=1)
        project = Path(folder) / "project"
        project.mkdir()
        policy = (STACK / "drygate.toml").read_text().replace('mode = "sticky"', 'mode = "live"')
        (project / "drygate.toml").write_text(policy + OVERLAYS)
        server = [sys.executable, str(STACK / "stack_server.py")]
        relay = [*DRYGATE, "mcp", "--name", "stack", "--project", str(project), "--", *server]
        # Each relay has a state store of its own, so that no relay waits for another's journal write
        # (made after answering); the two dry relays share the run's overlay all the same (it is
        # under the project, by run id), and each makes the run dry in its store (DRYGATE_MODE).
        def state(name):
            return str(project / ".drygate" / f"state-{name}.db")

        direct = Peer(server, env)
        live = Peer(relay, dict(env, CLAUDE_PROJECT_DIR=str(project), DRYGATE_STATE=state("live"),
                                DRYGATE_RUN_ID="live"))
        dry_env = dict(env, CLAUDE_PROJECT_DIR=str(project), DRYGATE_RUN_ID="dry", DRYGATE_MODE="dry")
        dry, mine = Peer(relay, dict(dry_env, DRYGATE_STATE=state("dry"))), \
            Peer(relay, dict(dry_env, DRYGATE_STATE=state("mine")))
        peers = [direct, live, dry, mine]
        for p in peers:
            p.initialize()
            p.request("tools/list", {})
        direct.request("tools/call", {"name": "kv_set", "arguments": {"key": "real", "value": "42"}})
        _, put = call(dry, "put_object", {"bucket": "bench", "key": "mine.txt", "body": "x" * 1024})
        assert put["_meta"]["drygate"]["served_by"] == "overlay", put
        assert call(mine, "head_object", {"bucket": "bench", "key": "mine.txt"})[1]["structuredContent"]["exists"]
        call(dry, "put_object", {"bucket": "bench", "key": "docs/mine.txt", "body": "x" * 100})
        call(dry, "kv_set", {"key": "mine", "value": "7"})
        get_real = ("get_object", {"bucket": "bench", "key": "real.txt"})
        list_real = ("list_objects", {"bucket": "bench", "prefix": "docs/"})
        kv_real = ("kv_get", {"key": "real"})
        sides = {
            "get_object": [("direct", direct, get_real), ("relay, live", live, get_real),
                           ("overlay, real key", dry, get_real),
                           ("overlay, own write", mine, ("get_object", {"bucket": "bench", "key": "mine.txt"}))],
            "list_objects (20 real + 1 own)": [("direct", direct, list_real), ("relay, live", live, list_real),
                                               ("overlay, merged", dry, list_real)],
            "kv_get": [("direct", direct, kv_real), ("relay, live", live, kv_real), ("overlay, real key", dry, kv_real),
                       ("overlay, own write", mine, ("kv_get", {"key": "mine"}))],
        }
        for _ in range(5):  # warm up every path
            for entries in sides.values():
                for _, peer, (tool, arguments) in entries:
                    call(peer, tool, arguments)
        print(f"stack server: S3 on moto ({url}), key-value on {'redis-server' if redis else 'SQLite'}; "
              f"{calls} calls per side, rotating order; times in ms")
        for title, entries in sides.items():
            samples = {label: [] for label, _, _ in entries}
            for i in range(calls):
                for j in range(len(entries)):
                    label, peer, (tool, arguments) = entries[(i + j) % len(entries)]
                    samples[label].append(call(peer, tool, arguments)[0] * 1000)
            base, live_median = statistics.median(samples["direct"]), statistics.median(samples["relay, live"])
            print(f"\n{title}")
            print(f"  {'side':22} {'median':>8} {'p90':>8} {'+direct':>8} {'+live relay':>11}")
            for label, values in samples.items():
                median, p90 = stats(values)
                print(f"  {label:22} {median:8.3f} {p90:8.3f} {median - base:+8.3f} {median - live_median:+11.3f}")
    finally:
        for p in peers:
            p.close()
        if redis is not None:
            redis.stop()
        moto.terminate()
        moto.wait()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
