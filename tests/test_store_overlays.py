"""Store overlays without MCP (drygate.overlay.objects, drygate.overlay.keyvalue, drygate.overlay.stores)
and their policy section (``[[overlays]]``, drygate.policy.load).

The real store here is a dict answering the overlay's reads the way examples/stack's read tools
answer; the same semantics against the real server, moto and Redis are in
tests/examples/test_stack_overlays.py.
"""

import hashlib
import os
import threading

import pytest

from drygate.errors import PolicyError
from drygate.overlay.base import OverlayUnavailable
from drygate.overlay.keyvalue import KeyValueOverlay
from drygate.overlay.objects import ObjectOverlay
from drygate.overlay.shadow import list_shadows, run_key
from drygate.overlay.stores import NeedRead, RealAnswer, Unsupported, overlay_summary
from drygate.policy.load import compile_policy_text

OBJECT_TOOLS = '{put = "put_object", get = "get_object", head = "head_object", list = "list_objects", ' \
               'delete = "delete_object"}'


class FakeS3:
    """A bucket as the stack server's read tools show it; counts the reads."""

    def __init__(self, buckets=("b",)):
        self.objects = {b: {} for b in buckets}
        self.reads = []

    def answer(self, role, args):
        self.reads.append((role, dict(args)))
        bucket, key = args.get("bucket"), args.get("key")
        if bucket not in self.objects:
            if role == "head":
                return RealAnswer(True, {"bucket": bucket, "key": key, "exists": False})
            what = {"get": f"get s3://{bucket}/{key}", "list": f"list s3://{bucket}/{args.get('prefix', '')}"}[role]
            return RealAnswer(False, None, f"Error executing tool x: {what}: no such bucket: NoSuchBucket: The "
                                           f"specified bucket does not exist; nothing was changed")
        objects = self.objects[bucket]
        if role == "head":
            if key not in objects:
                return RealAnswer(True, {"bucket": bucket, "key": key, "exists": False})
            return RealAnswer(True, {"bucket": bucket, "key": key, "exists": True, "etag": _md5(objects[key])})
        if role == "get":
            if key not in objects:
                return RealAnswer(False, None, "no such object")
            return RealAnswer(True, {"bucket": bucket, "key": key, "body": objects[key].decode()})
        prefix = args.get("prefix", "")
        listed = [{"key": k, "etag": _md5(v), "size": len(v)} for k, v in sorted(objects.items())
                  if k.startswith(prefix)]
        return RealAnswer(True, {"bucket": bucket, "prefix": prefix, "objects": listed, "truncated": False})


class FakeKV:
    def __init__(self):
        self.values = {}
        self.reads = 0

    def answer(self, role, args):
        assert role == "get"
        self.reads += 1
        value, version = self.values.get(args["key"], (None, 0))
        return RealAnswer(True, {"key": args["key"], "value": value, "version": version})


def _md5(data):
    return hashlib.md5(data).hexdigest()


def call(store, real_store, role, **arguments):
    """Run one operation, answering its real reads from ``real_store`` (as drygate.relay.overlays does)."""
    real = {}
    for _ in range(5):
        try:
            return store.run(role, arguments, real)
        except NeedRead as need:
            real[need.key] = real_store.answer(need.role, need.arguments)
    raise AssertionError("too many reads")


@pytest.fixture
def root(tmp_path):
    return str(tmp_path / "mcp-shadows")


def objects(root, run="run-1", max_bytes=1 << 20):
    return ObjectOverlay.open(root, run, "stack", "objects", max_bytes)


def keyvalue(root, run="run-1", max_bytes=1 << 20):
    return KeyValueOverlay.open(root, run, "stack", "key-value", max_bytes)


# -- objects --------------------------------------------------------------------------------


def test_put_then_get_head_list_and_real_untouched(root):
    s3 = FakeS3()
    s3.objects["b"]["old.txt"] = b"old"
    store = objects(root)
    put = call(store, s3, "put", bucket="b", key="new.txt", body="hello")
    assert put.ok and put.wrote and put.value == {"bucket": "b", "key": "new.txt", "etag": _md5(b"hello"),
                                                  "size": 5, "version_id": None}
    got = call(store, s3, "get", bucket="b", key="new.txt")
    assert got.value["body"] == "hello" and got.value["content_type"] == "binary/octet-stream" and got.reflects
    head = call(store, s3, "head", bucket="b", key="new.txt")
    assert head.value["exists"] and head.value["etag"] == _md5(b"hello")
    listing = call(store, s3, "list", bucket="b", prefix="")
    assert [o["key"] for o in listing.value["objects"]] == ["new.txt", "old.txt"]
    assert s3.objects["b"] == {"old.txt": b"old"}
    # an untouched key is the real answer, unchanged
    real = call(store, s3, "get", bucket="b", key="old.txt")
    assert real.real_result is None and real.value["body"] == "old" and not real.reflects
    assert store.writes == 1


def test_delete_then_get_head_list(root):
    s3 = FakeS3()
    s3.objects["b"].update({"a": b"1", "b": b"2"})
    store = objects(root)
    assert call(store, s3, "delete", bucket="b", key="a").value["deleted"] is True
    got = call(store, s3, "get", bucket="b", key="a")
    assert not got.ok and "NoSuchKey: The specified key does not exist." in got.message
    assert call(store, s3, "head", bucket="b", key="a").value == {"bucket": "b", "key": "a", "exists": False}
    assert [o["key"] for o in call(store, s3, "list", bucket="b").value["objects"]] == ["b"]
    assert "a" in s3.objects["b"]


def test_preconditions_on_the_merged_view(root):
    s3 = FakeS3()
    s3.objects["b"]["real"] = b"r"
    store = objects(root)
    first = call(store, s3, "put", bucket="b", key="k", body="one", if_none_match="*")
    assert first.ok
    again = call(store, s3, "put", bucket="b", key="k", body="two", if_none_match="*")
    assert not again.ok and again.message == ("put s3://b/k: precondition failed (If-None-Match): PreconditionFailed: "
                                              "At least one of the pre-conditions you specified did not hold; "
                                              "nothing was changed")
    assert not call(store, s3, "put", bucket="b", key="real", body="x", if_none_match="*").ok  # the real object
    stale = call(store, s3, "put", bucket="b", key="k", body="two", if_match="0" * 32)
    assert "(If-Match)" in stale.message
    fresh = call(store, s3, "put", bucket="b", key="k", body="two", if_match=f'"{first.value["etag"]}"')
    assert fresh.ok and fresh.value["etag"] == _md5(b"two")
    missing = call(store, s3, "delete", bucket="b", key="nope", if_match="abc")
    assert missing.message == "delete s3://b/nope: no such object: NoSuchKey: The specified key does not exist.; " \
                              "nothing was changed"
    call(store, s3, "delete", bucket="b", key="k")
    assert call(store, s3, "put", bucket="b", key="k", body="3", if_none_match="*").ok  # deleted: absent again
    both = call(store, s3, "put", bucket="b", key="x", body="3", if_none_match="*", if_match="a")
    assert both.message == "put s3://b/x: give if_match or if_none_match, not both; nothing was changed"


def test_missing_bucket_fails_as_live_and_is_checked_once(root):
    s3 = FakeS3()
    store = objects(root)
    nope = call(store, s3, "put", bucket="nobucket", key="k", body="x")
    assert nope.message == ("put s3://nobucket/k: no such bucket: NoSuchBucket: The specified bucket does not exist; "
                            "nothing was changed")
    assert call(store, s3, "put", bucket="b", key="k1", body="x").ok
    assert call(store, s3, "put", bucket="b", key="k2", body="x").ok
    assert [r for r, _ in s3.reads].count("list") == 2  # once per bucket: b is known to exist after k1


def test_base64_bodies_and_bad_arguments(root):
    s3 = FakeS3()
    store = objects(root)
    put = call(store, s3, "put", bucket="b", key="bin", body="AAEC/w==", encoding="base64")
    assert put.value["etag"] == _md5(b"\x00\x01\x02\xff") and put.value["size"] == 4
    got = call(store, s3, "get", bucket="b", key="bin")
    assert got.value["encoding"] == "base64" and got.value["body"] == "AAEC/w=="
    bad = call(store, s3, "put", bucket="b", key="bad", body="!!", encoding="base64")
    assert bad.message.startswith("put s3://b/bad: body is not valid base64 (")
    with pytest.raises(Unsupported):
        call(store, s3, "put", bucket="b", key="k", body="x", if_none_match="etag")  # the schema allows only "*"
    with pytest.raises(Unsupported):
        call(store, s3, "put", bucket="b", key=3, body="x")


def test_a_failing_real_read_stops_the_overlay_instead_of_guessing(root):
    class Broken(FakeS3):
        def answer(self, role, args):
            return RealAnswer(False, None, "Error executing tool head_object: access denied")

    store = objects(root)
    with pytest.raises(OverlayUnavailable) as e:
        call(store, Broken(), "put", bucket="b", key="k", body="x")
    assert e.value.code == "real_read_failed"
    assert store.writes == 0 and not store.has_entry(("b", "k"))


def test_limit(root):
    s3 = FakeS3()
    store = objects(root, max_bytes=1000)
    assert call(store, s3, "put", bucket="b", key="k", body="x" * 500).ok
    with pytest.raises(OverlayUnavailable) as e:
        call(store, s3, "put", bucket="b", key="k2", body="x" * 500)
    assert e.value.code == "too_large" and not store.has_entry(("b", "k2"))
    assert call(store, s3, "put", bucket="b", key="k", body="y" * 600).ok  # replacing counts the difference


def test_runs_are_apart_and_relays_of_one_run_share(root):
    s3 = FakeS3()
    a1, a2, b = objects(root, "run-a"), objects(root, "run-a"), objects(root, "run-b")
    assert a1.made and not a2.made
    call(a1, s3, "put", bucket="b", key="k", body="a")
    assert call(a2, s3, "get", bucket="b", key="k").value["body"] == "a"
    assert call(b, s3, "head", bucket="b", key="k").value["exists"] is False
    shadows = list_shadows(root)
    assert shadows["run-a"]["overlays"] == ["stack.objects.overlay.db"] and shadows["run-a"]["in_use"]
    assert a1.release()[1] is False  # a2 still holds the run
    size, removed = a2.release()
    assert removed and size > 0 and not os.path.exists(os.path.join(root, run_key("run-a")))
    b.release()


def test_concurrent_relays_of_one_run_one_create_wins(root):
    """Two relays of one run put the same key with if_none_match="*" at once: exactly one succeeds."""
    s3 = FakeS3()
    stores = [objects(root) for _ in range(8)]
    answers, barrier = [], threading.Barrier(len(stores))

    def worker(store):
        barrier.wait()
        answers.append(call(store, s3, "put", bucket="b", key="once", body=str(id(store)), if_none_match="*"))

    threads = [threading.Thread(target=worker, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.ok for a in answers) == [False] * 7 + [True]
    for s in stores:
        s.release()


# -- key-value ------------------------------------------------------------------------------


def test_kv_read_modify_write_and_versions(root):
    kv = FakeKV()
    kv.values["counter"] = ("5", 40)
    store = keyvalue(root)
    assert call(store, kv, "get", key="counter").value == {"key": "counter", "value": "5", "version": 40}
    incr = call(store, kv, "incr", key="counter", by=2)
    assert incr.value["value"] == 7 and incr.value["version"] > 40
    assert call(store, kv, "get", key="counter").value["value"] == "7"
    stale = call(store, kv, "set", key="counter", value="x", if_version=40)
    assert stale.message == (f"kv_set: version mismatch: key 'counter' is at version {incr.value['version']}, not at "
                             f"version 40; nothing was changed")
    fresh = call(store, kv, "set", key="counter", value="x", if_version=incr.value["version"])
    assert fresh.ok and fresh.value["version"] > incr.value["version"]
    assert call(store, kv, "incr", key="counter").message == \
        "kv_incr: the value of 'counter' is not an integer ('x'); nothing was changed"
    assert kv.values["counter"] == ("5", 40) and kv.reads == 2  # the get, the incr's check; then the run's view


def test_kv_delete_marker_and_absent_preconditions(root):
    kv = FakeKV()
    kv.values["k"] = ("v", 3)
    store = keyvalue(root)
    deleted = call(store, kv, "delete", key="k", if_version=3)
    assert deleted.value == {"key": "k", "deleted": True, "previous_version": 3}
    assert call(store, kv, "get", key="k").value == {"key": "k", "value": None, "version": 0}
    assert call(store, kv, "delete", key="k").value == {"key": "k", "deleted": False, "previous_version": 0}
    assert call(store, kv, "set", key="k", value="again", if_version=0).value["version"] > 3  # never reused
    assert call(store, kv, "set", key="new", value="n", if_version=0).ok
    assert call(store, kv, "set", key="new", value="n", if_version=0).message == \
        f"kv_set: version mismatch: key 'new' is at version {store._entry('new')['version']}, not absent " \
        f"(if_version 0); nothing was changed"
    assert call(store, kv, "incr", key="fresh").value["value"] == 1
    assert call(store, kv, "set", key="", value="x").message == \
        "a key is a non-empty string of at most 1024 characters, not ''; nothing was changed"
    assert call(store, kv, "set", key="k", value="x", if_version=-1).message == \
        "if_version must be a version >= 0 (0: the key is absent), not -1; nothing was changed"
    with pytest.raises(Unsupported):
        call(store, kv, "set", key="k", value=5)


# -- policy and journal summary -------------------------------------------------------------


def test_policy_overlays_compile_and_validate():
    policy = compile_policy_text(f'''
[[overlays]]
server = "stack"
kind = "objects"
tools = {OBJECT_TOOLS}
plain_tools = ["create_bucket"]
shadow_env = {{ STACK_S3_URL = "http://127.0.0.1:9" }}
max_mb = 16

[[overlays]]
server = "stack"
kind = "key-value"
tools = {{ get = "kv_get", set = "kv_set", delete = "kv_delete", incr = "kv_incr" }}
''')
    first, second = policy["overlays"]
    assert first["tools"]["put"] == "put_object" and first["plain_tools"] == ("create_bucket",)
    assert first["max_bytes"] == 16 * 1048576 and first["shadow_env"] == {"STACK_S3_URL": "http://127.0.0.1:9"}
    assert second["name"] == "key-value" and second["shadow_env"] is None
    assert compile_policy_text("")["overlays"] == ()


@pytest.mark.parametrize("text, message", [
    ('server = "s"\nkind = "blobs"\ntools = {}', "kind must be one of 'objects', 'key-value'"),
    ('server = "s"\nkind = "objects"\ntools = { put = "p" }', "missing: get, head, list, delete"),
    ('server = "s"\nkind = "key-value"\ntools = { get = "g", set = "s", delete = "d", pop = "p" }',
     "unknown role(s) for kind 'key-value': pop"),
    ('server = "s"\nkind = "key-value"\ntools = { get = "g", set = "g", delete = "d" }',
     "tool 'g' of server 's' is already handled by"),
    ('server = "s"\nkind = "key-value"\ntools = { get = "g", set = "s", delete = "d" }\nplain_tools = ["d"]',
     "already handled by"),
    ('kind = "key-value"\ntools = { get = "g", set = "s", delete = "d" }', "server must be the MCP server's name"),
    ('server = "s"\nkind = "key-value"\ntools = { get = "g", set = "s", delete = "d" }\nmax_mb = 0',
     "max_mb must be a number of megabytes above 0"),
    ('server = "s"\nkind = "key-value"\ntools = { get = "g", set = "s", delete = "d" }\nshadow_env = { A = 1 }',
     "shadow_env must be a table of environment variable = string value"),
    ('server = "s"\nkind = "key-value"\ntools = { get = "g", set = "s", delete = "d" }\ncolour = "red"',
     "unknown key(s): colour"),
    ('server = "s"\nkind = "key-value"\ntools = { get = "", set = "s", delete = "d" }', "tools.get must be a tool name"),
])
def test_policy_overlays_errors(text, message):
    with pytest.raises(PolicyError) as e:
        compile_policy_text("[[overlays]]\n" + text, source="drygate.toml")
    assert message in str(e.value) and "drygate.toml: overlays[0]" in str(e.value)


def test_two_overlays_of_one_server_need_names():
    kv = 'kind = "key-value"\ntools = { get = "g%d", set = "s%d", delete = "d%d" }\n'
    with pytest.raises(PolicyError, match="two overlays named 'key-value'"):
        compile_policy_text(f'[[overlays]]\nserver = "s"\n{kv % (1, 1, 1)}\n[[overlays]]\nserver = "s"\n{kv % (2, 2, 2)}')
    policy = compile_policy_text(f'[[overlays]]\nserver = "s"\n{kv % (1, 1, 1)}\n[[overlays]]\nserver = "s"\n'
                                 f'name = "cache"\n{kv % (2, 2, 2)}')
    assert [o["name"] for o in policy["overlays"]] == ["key-value", "cache"]


def test_overlay_summary_from_the_journal():
    entries = [
        {"kind": "result", "tool_name": "drygate/overlay/stack",
         "result": {"event": "made", "name": "objects", "kind": "objects", "created_at": 1.0}},
        {"kind": "result", "tool_name": "drygate/overlay/stack",
         "result": {"event": "joined", "name": "objects", "kind": "objects", "created_at": 1.0}},
        {"kind": "result", "tool_name": "drygate/overlay/stack",
         "result": {"event": "closed", "name": "objects", "kind": "objects", "bytes": 10, "removed": False,
                    "writes": 2, "reads": 1}},
        {"kind": "result", "tool_name": "drygate/overlay/stack",
         "result": {"event": "closed", "name": "objects", "kind": "objects", "bytes": 12, "removed": True,
                    "writes": 1, "reads": 4}},
        {"kind": "result", "tool_name": "drygate/overlay/stack",
         "result": {"event": "fallback", "name": "key-value", "kind": "key-value", "reason": "too big",
                    "code": "too_large", "bytes": 5, "limit": 4}},
    ]
    kv, obj = overlay_summary(entries)
    assert obj == {"server": "stack", "name": "objects", "kind": "objects", "made_at": 1.0, "joined": True,
                   "writes": 3, "reads": 5, "final_bytes": 12, "removed": True, "fallback": None}
    assert kv["made_at"] is None and kv["fallback"]["code"] == "too_large"


def test_the_default_policy_documents_a_working_example():
    """policy/default.toml's commented [[overlays]] example for examples/stack compiles as written."""
    from drygate.policy.load import default_policy_text

    part = default_policy_text().split("Example for examples/stack:")[1].split("# Shell commands")[0]
    example = "\n".join(line[2:] for line in part.splitlines() if line.startswith("# "))
    kinds = [(o["server"], o["kind"], o["shadow_env"] is not None) for o in compile_policy_text(example)["overlays"]]
    assert kinds == [("stack", "objects", True), ("stack", "key-value", True)]
