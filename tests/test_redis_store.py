"""The Redis store's own rules, with a real redis-server (tests/redis_server.py)."""

import pytest

from conftest import initialized_redis_store
from drygate.errors import StoreUnavailable
from drygate.types import DRY, LIVE, STICKY, TransitionRequest

ENTRY = {"call_id": None, "agent_id": None, "tool_name": "t", "tool_input": {}, "effect": "write", "rule_id": "x",
         "why": "w", "tamper": False, "policy_hash": "h", "host": "test"}
WRITE_STICKY_TRIGGER = TransitionRequest(STICKY, True, True, "allow")
WRITE_LIVE = TransitionRequest(LIVE, True, False, "allow")


def now():
    return 1000.0


@pytest.mark.parametrize("lean", [False, True], ids=["redis-py", "lean"])
def test_a_run_this_process_saw_dry_never_comes_back_live(redis_url, redis_server, lean):
    """The local memory may only make decisions stricter: keys of a dry run deleted behind
    the store's back (the marker kept) make the next call fail closed, not allowed."""
    store = initialized_redis_store(redis_url, lean=lean)
    assert store.transact("r", WRITE_STICKY_TRIGGER, ENTRY, now).action == "dry"
    client = redis_server.client(db=int(redis_url.rsplit("/", 1)[1]))
    client.delete("{drygate}:run:r")
    client.hdel("{drygate}:tombstones", "r")
    with pytest.raises(StoreUnavailable, match="saw it dry"):
        store.transact("r", WRITE_LIVE, ENTRY, now)
    other = initialized_redis_store(redis_url, lean=lean)  # a fresh process cannot know: documented
    assert other.transact("r2", WRITE_LIVE, ENTRY, now).action == "allow"


def test_a_store_reinitialized_under_a_process_blocks_it(redis_url, redis_server):
    store = initialized_redis_store(redis_url)
    store.transact("r", WRITE_LIVE, ENTRY, now)
    client = redis_server.client(db=int(redis_url.rsplit("/", 1)[1]))
    client.flushdb()
    with pytest.raises(StoreUnavailable, match="no drygate marker"):
        store.transact("r", WRITE_LIVE, ENTRY, now)
    initialized_redis_store(redis_url)  # someone runs `drygate state init`
    with pytest.raises(StoreUnavailable, match="re-initialized while this process ran"):
        store.transact("r", WRITE_LIVE, ENTRY, now)


@pytest.mark.parametrize("lean", [False, True], ids=["redis-py", "lean"])
def test_fingerprints_are_never_written_to_a_store_without_its_marker(redis_url, redis_server, lean):
    """drygate.integrity's writes go through the marker-checked script: a never-initialized
    Redis, and one that lost its data, get nothing written (every kind of write: a run's
    first fingerprints, replaced ones, the blocked mark, the pseudo runs)."""
    from drygate.integrity import BLESSED, BLOCKED, LAST
    from drygate.state.redis import RedisStore

    client = redis_server.client(db=int(redis_url.rsplit("/", 1)[1]))
    writes = [("r", {"/a": "f|1|x"}, False), ("r", {"/a": "f|2|y"}, True), ("r", {BLOCKED: "why"}, False),
              (LAST, {"/a": "f|1|x"}, True), (BLESSED, {"/a": "f|1|x"}, True)]
    for store in (RedisStore(redis_url, lean=lean), initialized_redis_store(redis_url, lean=lean)):
        client.flushdb()  # never initialized; then: initialized, and its data lost
        for run_id, entries, replace in writes:
            with pytest.raises(StoreUnavailable, match="no drygate marker"):
                store.put_fingerprints(run_id, entries, replace=replace)
        assert client.keys("*") == []
    store = initialized_redis_store(redis_url, lean=lean, retention_s=3600)
    store.put_fingerprints("r", {"/a": "f|1|x", "/b": "d|2|y"})
    store.put_fingerprints("r", {"/a": "f|9|z"})  # first seen wins
    assert store.fingerprints("r") == {"/a": "f|1|x", "/b": "d|2|y"}
    store.put_fingerprints("r", {"/a": "f|9|z"}, replace=True)
    assert store.fingerprints("r")["/a"] == "f|9|z"
    assert 3500 < client.ttl("{drygate}:fp:r") <= 3600
    store.put_fingerprints(LAST, {"/a": "f|1|x"}, replace=True)
    assert client.ttl("{drygate}:fp:" + LAST) == -1


@pytest.mark.parametrize("lean", [False, True], ids=["redis-py", "lean"])
def test_an_unexpected_map_reply_is_the_stores_guard_failure(redis_url, redis_server, lean):
    """A reply that is not a map where one is expected (here: the fingerprints key holding a
    string, so HGETALL answers WRONGTYPE; and a non-map reply fed to the parser) raises
    StoreUnavailable at the store boundary, never a TypeError."""
    from drygate.state.redis import _as_dict

    store = initialized_redis_store(redis_url, lean=lean)
    redis_server.client(db=int(redis_url.rsplit("/", 1)[1])).set("{drygate}:fp:r", "x")
    with pytest.raises(StoreUnavailable):
        store.fingerprints("r")
    for reply in (12, "OK", None, b"x", ["odd"], [1, 2, 3]):
        with pytest.raises(StoreUnavailable, match="is it Redis"):
            _as_dict(reply, "here")
    assert _as_dict(["k", "v"]) == {"k": "v"} and _as_dict({"k": "v"}) == {"k": "v"}


def test_retention_is_refreshed_and_tombstones_never_expire(redis_url, redis_server):
    store = initialized_redis_store(redis_url, retention_s=3600)
    client = redis_server.client(db=int(redis_url.rsplit("/", 1)[1]))
    store.transact("live", WRITE_LIVE, ENTRY, now)
    store.transact("dry", TransitionRequest(DRY, True, False, "allow"), ENTRY, now)
    for run in ("live", "dry"):
        assert 3500 < client.ttl("{drygate}:run:" + run) <= 3600
        assert 3500 < client.ttl("{drygate}:journal:" + run) <= 3600
    assert client.ttl("{drygate}:tombstones") == -1 and client.hexists("{drygate}:tombstones", "dry")
    assert not client.hexists("{drygate}:tombstones", "live")
    client.delete("{drygate}:run:dry", "{drygate}:journal:dry")  # as if the TTL ran out
    assert store.get_run("dry").is_dry
    assert store.transact("dry", WRITE_LIVE, ENTRY, now).action == "dry"


def test_key_prefixes_keep_stores_apart(redis_url):
    a = initialized_redis_store(redis_url, key_prefix="team-a")
    b = initialized_redis_store(redis_url, key_prefix="team-b")
    a.transact("r", TransitionRequest(DRY, True, False, "allow"), ENTRY, now)
    assert b.get_run("r") is None and b.transact("r", WRITE_LIVE, ENTRY, now).action == "allow"
    with pytest.raises(StoreUnavailable, match="without braces"):
        initialized_redis_store(redis_url, key_prefix="{x}")


@pytest.mark.parametrize("url", ["redis://localhost", "redis://:s%40cret@10.0.0.1:6380/3",
                                 "redis://alice:pw@[::1]:7000/2", "redis://secret@host/0",
                                 "unix:///tmp/redis.sock?db=4", "unix://user:pw@/var/run/r.sock"])
def test_the_lean_url_parser_reads_urls_as_redis_py_does(url):
    from redis.connection import parse_url as redis_py_parse

    from drygate.state.resp import parse_url

    ours, theirs = parse_url(url), redis_py_parse(url)
    assert ours["password"] == theirs.get("password") and ours["username"] == theirs.get("username")
    assert ours["db"] == int(theirs.get("db", 0))
    if url.startswith("unix"):
        assert ours["path"] == theirs["path"]
    else:
        assert (ours["host"], ours["port"]) == (theirs.get("host", "localhost"), int(theirs.get("port", 6379)))


def test_passwords_never_reach_messages(redis_factory):
    server = redis_factory(requirepass="hunter2")
    from drygate.state.redis import RedisStore

    for lean in (False, True):
        store = RedisStore(server.url(password=False).replace("redis://", "redis://:wrong@"), lean=lean)
        with pytest.raises(StoreUnavailable) as e:
            store.ping()
        assert "wrong" not in str(e.value) and "***" in str(e.value)
