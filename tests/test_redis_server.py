"""The test helper itself: a real redis-server behaves as the fault tests assume.

Each fault the Redis store must survive (tests/test_redis_faults.py) is first shown here
at the raw Redis level, so a failing fault test points at the store, not at the harness.
"""

import time

import pytest
import redis

from redis_server import RedisServer, version


def test_redis_url_gives_each_test_a_clean_database(redis_server, redis_url):
    db = int(redis_url.rsplit("/", 1)[1])
    c = redis.Redis.from_url(redis_url)
    assert c.dbsize() == 0
    c.set("k", "v")
    assert redis_server.client(db=db).get("k") == b"v"
    assert redis_server.url(db=db) == redis_url and redis_url.startswith("redis://127.0.0.1:")
    assert version(redis_server.binary) >= (6, 2)


def test_kill_then_start_keeps_every_acknowledged_write(redis_factory):
    server = redis_factory()
    c = server.client()
    for i in range(300):
        c.xadd("journal", {"i": i})
        c.incr("seq")
    server.kill()  # SIGKILL: no shutdown work
    server.start()
    c = server.client()
    assert int(c.get("seq")) == 300 and c.xlen("journal") == 300


def test_restart_keeps_data_and_restart_with_data_lost_empties(redis_factory):
    server = redis_factory()
    server.client().set("marker", "1")
    port = server.port
    server.restart()
    assert server.port == port and server.client().get("marker") == b"1"
    server.restart(lose_data=True)
    assert server.port == port and server.client().dbsize() == 0


def test_paused_server_times_out_and_answers_after_resume(redis_factory):
    server = redis_factory()
    c = server.client(timeout=0.3)
    c.ping()
    server.pause()
    try:
        start = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            c.set("late", "1")
        assert time.monotonic() - start < 2
    finally:
        server.resume()
    # The command was in the socket buffer: it ran when the server woke up.
    deadline = time.monotonic() + 5
    while server.client().get("late") is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.client().get("late") == b"1"


def test_stop_refuses_connections(redis_factory):
    server = redis_factory()
    server.stop()
    with pytest.raises(redis.ConnectionError):
        server.client(timeout=0.5).ping()


def test_maxmemory_noeviction_refuses_writes(redis_factory):
    server = redis_factory(maxmemory="2mb", maxmemory_policy="noeviction")
    c = server.client()
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        for i in range(10000):
            c.set(f"fill:{i}", "x" * 1024)
    assert c.get("fill:0") is not None  # reads still work, nothing was evicted
    script = "redis.call('SET', KEYS[1], ARGV[1]); return 1"
    # A script's write is refused too (Redis 7.0 names maxmemory, without the OOM prefix).
    with pytest.raises(redis.ResponseError, match="maxmemory|OOM"):
        c.eval(script, 1, "k", "v")


def test_requirepass(redis_factory):
    server = redis_factory(requirepass="s3cret pass")
    assert redis.Redis.from_url(server.url()).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(server.url(password=False)).set("k", "v")


def test_replica_is_read_only(redis_factory):
    primary = redis_factory("primary")
    primary.client().set("k", "v")
    replica = redis_factory("replica", start=False)
    replica.replica_of(primary).start()
    replica.wait_synced()
    c = replica.client()
    assert c.get("k") == b"v"
    with pytest.raises(redis.ReadOnlyError):
        c.set("k", "w")
    with pytest.raises(redis.ReadOnlyError):
        c.eval("redis.call('SET', KEYS[1], ARGV[1]); return 1", 1, "k", "w")


def test_missing_binary_message(tmp_path, monkeypatch):
    import redis_server

    monkeypatch.setattr(redis_server, "BINARY_CANDIDATES", ("/nonexistent/redis-server",))
    with pytest.raises(RuntimeError, match="apt-get install -y redis-server"):
        RedisServer(tmp_path)


def test_missing_binary_fails_under_ci_and_skips_elsewhere(monkeypatch):
    import redis_server
    from _pytest.outcomes import Failed, Skipped

    monkeypatch.setattr(redis_server, "BINARY_CANDIDATES", ("/nonexistent/redis-server",))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(Failed, match="CI=true"):
        redis_server.require_binary()
    monkeypatch.delenv("CI")
    with pytest.raises(Skipped, match="not installed"):
        redis_server.require_binary()
