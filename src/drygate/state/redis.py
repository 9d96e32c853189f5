"""The fleet state store: run state and the journal in Redis, shared by every host.

One laptop is served by SQLite; many agents on many hosts (CI runners, workers,
containers) need one strongly consistent place, so that a run that went dry on one
host is dry on every host at once. Redis runs scripts one at a time, so each
transition is one Lua script (``redis_script.lua``, a line-for-line port of
:func:`drygate.engine.apply_transition`) that reads the run, decides, and writes the
run and its journal entry: never a read followed by a write from the client.

Keys (all in one hash slot, ``{prefix}``, so the store also works on a Redis Cluster
where every key of a script must live on one shard):

- ``{p}:meta``: the store marker (``store_id``, ``created_at``, ``format``, and
  ``dry_until`` after a recovery). Created only by :meth:`RedisStore.initialize`
  (``drygate state init``). Every script checks it: a Redis that restarted with its
  data lost has no marker, so every call blocks (fail closed) with a clear message
  instead of treating runs that were dry as new live runs.
- ``{p}:seq``: the journal sequence counter (never reused).
- ``{p}:run:<id>``: the run's state (JSON), with a retention TTL refreshed on every
  call (``[state] retention_days``).
- ``{p}:journal:<id>``: the run's journal, a stream whose entry ids are the sequence
  numbers, so it is ordered per run and across runs; same TTL.
- ``{p}:runs``: a sorted set of run ids by last activity.
- ``{p}:tombstones``: the state of every run that is or went dry, without expiry:
  neither the TTL nor ``prune`` can turn a dry run live (case CC-15).
- ``{p}:metrics``: the guard-health counters (base.py), incremented in the same script.
- ``{p}:clock``: the latest journal timestamp. Timestamps are the client's clock but
  never go backwards against the journal order (a host a little behind the others
  gets the last timestamp instead).
- ``{p}:verdicts``: the classifiers' verdict caches (SQL statements, whole shell commands).
- ``{p}:ledger``: the apply ledger of each run (compare-and-set in the script).
- ``{p}:fp:<id>``: the run's fingerprints (drygate.integrity), written by the script
  behind its marker check: a store without its marker gets nothing written.

Fail closed: unreachable, slower than the deadline, out of memory, a read-only
replica (a failover in progress), loading, an unknown reply: every method raises
:class:`StoreUnavailable` or :class:`StoreTimeout` and the enforcement point blocks
the call with a guard-failure alert. Transitions carry the client's deadline; one
that reaches Redis later (a server paused past it) is dropped by the script, so the
journal never records a decision for a call that the client already blocked.
No client retries: a retried script after a timeout could be applied twice.

Durability: Redis acknowledges a script once it is in memory. With ``appendonly yes``
and ``appendfsync always`` it is also on disk, so a crash loses nothing that was
acknowledged. Replication is asynchronous: with replicas (Sentinel), set ``[state]
replica_acks`` so each decision waits for them (``WAIT``) and blocks when they do not
confirm, or a failover can lose the last decisions; ``drygate state init`` and ``drygate doctor`` check the eviction
policy (``noeviction`` is required: an evicted key could drop a run's state).

Clients: the hook process uses :mod:`drygate.state.resp` (measured: ``import redis``
alone costs 90-120 ms per process); everything else uses redis-py, which also brings
TLS (``rediss://``), ACL users, Sentinel (``redis+sentinel://``) and Cluster
(``redis+cluster://``).

Requires Redis 7.0 or newer (script shebang flags).
"""

import os
import time

from drygate import _json
from drygate.errors import StoreTimeout, StoreUnavailable
from drygate.state.base import StateStore
from drygate.state.resp import RedisReplyError, lean_supported, redact
from drygate.types import Outcome, RunState

DEFAULT_PREFIX = "drygate"
DEFAULT_RETENTION_S = 30 * 86400
#: A transition is dropped when Redis runs it later than the client's deadline (its send
#: time plus ``timeout_s``, on the client's clock) plus this allowance. 0 by default: the
#: check only misfires for a host whose clock is behind Redis's by more than the whole
#: timeout (then every call blocks with a clock-skew message); a host ahead by X ms lets
#: transitions up to X ms late through. Raise it only for hosts without NTP.
DEFAULT_CLOCK_SKEW_MS = 0
_ENTRY_FIELDS = ("call_id", "agent_id", "tool_name", "tool_input", "effect", "rule_id", "why", "tamper",
                 "policy_hash", "host", "context")
_FLOAT_FIELDS = ("dry_at", "created_at", "last_seen_at")
_SCRIPT = None


def _script():
    """``(text, sha1)`` of redis_script.lua, read once per process."""
    global _SCRIPT
    if _SCRIPT is None:
        import _sha1

        with open(os.path.join(os.path.dirname(__file__), "redis_script.lua"), "rb") as f:
            text = f.read()
        _SCRIPT = (text, _sha1.sha1(text).hexdigest())
    return _SCRIPT


def _state_from_json(text):
    raw = _json.loads(text)
    for name in _FLOAT_FIELDS:
        if raw.get(name) is not None:
            raw[name] = float(raw[name])
    return RunState(**{name: raw.get(name) for name in RunState.__slots__ if name in raw})


def _as_dict(reply, where="Redis"):
    """A map reply as a dict: redis-py parses HGETALL and CONFIG GET into one, the lean
    client gives the flat ``[key, value, ...]`` list RESP2 sends. Raises StoreUnavailable
    for any other reply (an integer, a status, an odd-length list: not Redis, or not the
    command's answer), so the store's callers only ever see the store's GuardFailure."""
    if isinstance(reply, dict):
        return reply
    if isinstance(reply, list) and len(reply) % 2 == 0:
        return dict(zip(reply[::2], reply[1::2]))
    raise StoreUnavailable(f"Redis at {where} answered with {reply!r:.200} where a map was expected; is it Redis?")


def _info_field(info, name):
    """One field (str) of an INFO reply (redis-py: a dict; the lean client: its text), or None."""
    if isinstance(info, dict):
        value = info.get(name)
        return None if value is None else str(value)
    for line in str(info).splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def _reply_error(e, where):
    """Translate an error reply into the GuardFailure that says what happened."""
    text = str(e)
    code = text.split(" ", 1)[0]
    if code == "DRYGATE_NOINIT" or "DRYGATE_NOINIT" in text:
        return StoreUnavailable(
            f"the Redis store at {where} has no drygate marker: it was never initialized, or Redis lost its "
            f"data (a restart without persistence, a flush). Runs that were dry cannot be told from new "
            f"ones, so every call is blocked. Check Redis, then run `drygate state init` "
            f"(`--recover` makes every run dry for a while)")
    if "DRYGATE_FORMAT" in text:
        return StoreUnavailable(f"the Redis store at {where} was written by another drygate format ({text})")
    if code == "OOM" or "OOM command not allowed" in text:
        return StoreUnavailable(f"Redis at {where} is out of memory (maxmemory reached): {text}")
    if code == "READONLY" or "read only replica" in text:
        return StoreUnavailable(f"Redis at {where} is a read-only replica (a failover in progress, or the "
                                f"URL names a replica): {text}")
    if code in ("NOAUTH", "WRONGPASS", "NOPERM"):
        return StoreUnavailable(f"Redis at {where} refused drygate's credentials: {text}")
    if code in ("LOADING", "BUSY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "MOVED", "ASK"):
        return StoreUnavailable(f"Redis at {where} cannot serve the transition now: {text}")
    return StoreUnavailable(f"Redis at {where} answered with an error: {text}")


class _RedisPyTransport:
    """redis-py behind the same two calls as :class:`drygate.state.resp.RespConnection`."""

    def __init__(self, url, timeout_s):
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._errors = redis.exceptions
        options = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s, "decode_responses": True,
                   "retry": Retry(NoBackoff(), 0), "retry_on_timeout": False}
        scheme = url.partition("://")[0]
        try:
            if scheme == "redis+sentinel":
                self.client = _sentinel_client(url, options)
            elif scheme == "redis+cluster":
                from redis.cluster import RedisCluster

                options.pop("retry_on_timeout")
                self.client = RedisCluster.from_url("redis://" + url.partition("://")[2], **options)
            else:
                self.client = redis.Redis.from_url(url, **options)
        except (ValueError, redis.exceptions.RedisError) as e:
            raise StoreUnavailable(f"cannot use the Redis URL {redact(url)}: {e}") from e
        self.where = redact(url)

    def _translate(self, e):
        # redis-py strips the error code of the replies it knows and raises a class per
        # code instead (redis._parsers.base.BaseParser.EXCEPTION_CLASSES): put the code back.
        errors = self._errors
        for cls, code in ((errors.NoScriptError, "NOSCRIPT"), (errors.OutOfMemoryError, "OOM"),
                          (errors.ReadOnlyError, "READONLY"), (errors.BusyLoadingError, "LOADING"),
                          (errors.AuthenticationError, "NOAUTH"), (errors.NoPermissionError, "NOPERM"),
                          (errors.MasterDownError, "MASTERDOWN"), (errors.ClusterDownError, "CLUSTERDOWN"),
                          (errors.TryAgainError, "TRYAGAIN")):
            if isinstance(e, cls):
                return RedisReplyError(f"{code} {e}")
        if isinstance(e, errors.ResponseError):
            return RedisReplyError(str(e))
        if isinstance(e, errors.TimeoutError):
            return StoreTimeout(f"Redis at {self.where} did not answer in time: {e}")
        return StoreUnavailable(f"cannot reach Redis at {self.where}: {e}")

    def call(self, *args):
        try:
            return self.client.execute_command(*args)
        except self._errors.RedisError as e:
            raise self._translate(e) from e
        except (AttributeError, TypeError, ValueError, IndexError, KeyError) as e:
            raise self._garbled(e) from e

    def pipeline(self, commands):
        try:
            pipe = self.client.pipeline(transaction=False)
            for args in commands:
                pipe.execute_command(*args)
            return pipe.execute(raise_on_error=True)
        except self._errors.RedisError as e:
            raise self._translate(e) from e
        except (AttributeError, TypeError, ValueError, IndexError, KeyError) as e:
            raise self._garbled(e) from e

    def _garbled(self, e):
        # redis-py trips over some answers that are not Redis (a bare reply to its HELLO).
        return StoreUnavailable(f"Redis at {self.where} answered with something unexpected "
                                f"({type(e).__name__}: {e}); is it Redis?")

    def close(self):
        try:
            self.client.close()
        except Exception:
            pass


def _sentinel_client(url, options):
    """``redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]``: the
    service's current master, found through the sentinels (redis-py's Sentinel)."""
    from redis.sentinel import Sentinel

    from drygate.state.resp import parse_url

    rest = url.partition("://")[2]
    auth, at, rest = rest.rpartition("@") if "@" in rest else ("", "", rest)
    hosts, _, path = rest.partition("/")
    service, _, db = path.partition("/")
    if not service:
        raise ValueError("a redis+sentinel:// URL names the service after the hosts: .../mymaster")
    nodes = []
    for hostport in hosts.split(","):
        p = parse_url(f"redis://{hostport}")
        nodes.append((p["host"], p["port"]))
    credentials = parse_url(f"redis://{auth}@x") if at else {"username": None, "password": None}
    sentinel = Sentinel(nodes, socket_timeout=options["socket_timeout"])
    return sentinel.master_for(service, db=int(db or 0), username=credentials["username"],
                               password=credentials["password"], **options)


class RedisStore(StateStore):
    """A :class:`StateStore` in Redis (module docstring).

    ``url``: ``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://`` or
    ``redis+cluster://``; ``timeout_s``: the budget of one exchange, kept below the
    gate's deadline (seconds); ``key_prefix``: the keys' hash tag (no braces);
    ``retention_s``: how long an idle run's state and journal are kept (seconds,
    refreshed on every call; dry runs keep a tombstone for ever); ``clock_skew_ms``:
    extra lateness allowed before a transition is dropped as late, for hosts whose
    clock runs behind Redis's by more than ``timeout_s`` (milliseconds; see
    DEFAULT_CLOCK_SKEW_MS); ``lean``: use the hook's lean client when
    the URL allows it; ``replica_acks``: how many replicas must acknowledge each
    journaled transition (Redis ``WAIT``, sent in the same round trip) before the
    decision counts; fewer blocks the call, so a failover to a replica cannot lose a
    decision the agent was given (replication is otherwise asynchronous). Raises :class:`StoreUnavailable` for a URL it cannot use;
    connecting happens on first use.
    """

    def __init__(self, url, timeout_s=2.0, key_prefix=DEFAULT_PREFIX, retention_s=DEFAULT_RETENTION_S,
                 clock_skew_ms=DEFAULT_CLOCK_SKEW_MS, lean=False, replica_acks=0):
        if not key_prefix or "{" in key_prefix or "}" in key_prefix:
            raise StoreUnavailable(f"the Redis key prefix must be non-empty, without braces: {key_prefix!r}")
        self.url = url
        self.where = redact(url)
        self.timeout_s = timeout_s
        self.retention_s = int(retention_s)
        self.clock_skew_ms = int(clock_skew_ms)
        self.replica_acks = int(replica_acks)
        self._p = "{" + key_prefix + "}"
        if lean and lean_supported(url):
            from drygate.state.resp import RespConnection

            self._t = RespConnection(url, timeout_s)
        else:
            self._t = _RedisPyTransport(url, timeout_s)
        self._store_id = None
        self._seen_dry = {}  # run id -> journal seq it went dry at, as this process saw it

    # -- plumbing ---------------------------------------------------------------------

    def _keys(self, run_id=""):
        p = self._p
        return (p + ":meta", p + ":seq", p + ":run:" + run_id, p + ":journal:" + run_id, p + ":runs",
                p + ":tombstones", p + ":metrics", p + ":clock", p + ":ledger", p + ":fp:" + run_id)

    def _call(self, *args):
        try:
            return self._t.call(*args)
        except RedisReplyError as e:
            raise _reply_error(e, self.where) from e

    def _pipeline(self, commands):
        try:
            return self._t.pipeline(commands)
        except RedisReplyError as e:
            raise _reply_error(e, self.where) from e

    def _run_script(self, run_id, args, journaled=False):
        """Run one operation of the script; ``journaled``: it journals or changes a run,
        so with ``replica_acks`` it is followed by ``WAIT`` in the same round trip."""
        text, sha = _script()
        keys = self._keys(run_id)
        wait = journaled and self.replica_acks > 0
        try:
            try:
                reply = self._exchange(("EVALSHA", sha, len(keys), *keys, *args), wait)
            except RedisReplyError as e:
                if not str(e).startswith("NOSCRIPT"):
                    raise
                reply = self._exchange(("EVAL", text, len(keys), *keys, *args), wait)
        except RedisReplyError as e:
            raise _reply_error(e, self.where) from e
        if not isinstance(reply, list) or not reply:
            raise StoreUnavailable(f"Redis at {self.where} answered the transition with {reply!r}")
        if reply[0] == "late":
            self._raise_late(reply, args)
        return reply

    def _exchange(self, command, wait):
        if not wait:
            return self._t.call(*command)
        wait_ms = max(1, int(self.timeout_s * 1000 / 2))
        reply, acks = self._t.pipeline([command, ("WAIT", self.replica_acks, wait_ms)])
        if isinstance(reply, list) and reply and reply[0] == "late":
            return reply
        if not isinstance(acks, int) or acks < self.replica_acks:
            raise StoreUnavailable(
                f"Redis at {self.where}: {acks} of the {self.replica_acks} replica(s) [state] replica_acks asks for "
                f"acknowledged the transition within {wait_ms} ms. A failover could lose it, so the call is "
                f"blocked (a replica down or lagging, or this primary cut off from them)")
        return reply

    def _deadline_ms(self):
        return str(int((time.time() + self.timeout_s) * 1000))

    def _raise_late(self, reply, args):
        server_ms = int(reply[1])
        local_ms = int(time.time() * 1000)
        deadline_ms = int(args[-2])
        if local_ms <= deadline_ms:
            raise StoreUnavailable(
                f"Redis at {self.where} dropped a transition as late although this host's deadline has not "
                f"passed: this host's clock is about {server_ms - local_ms} ms behind Redis's, more than the "
                f"store timeout ({self.timeout_s * 1000:.0f} ms) plus [state] clock_skew_ms ({self.clock_skew_ms}) "
                f"allow. Fix the clock (NTP); until then every call is blocked")
        raise StoreTimeout(f"the transition reached Redis at {self.where} {server_ms - deadline_ms} ms after "
                           f"the decision's deadline and was dropped (the call was blocked)")

    def _check_identity(self, store_id, run_id=None, state=None):
        """Fail closed when the store changed under this process or lost a run's dryness."""
        if self._store_id is None:
            self._store_id = store_id
        elif store_id != self._store_id:
            raise StoreUnavailable(
                f"the Redis store at {self.where} was re-initialized while this process ran (store "
                f"{self._store_id} -> {store_id}): run state may have been lost, so this process blocks "
                f"every call until it is restarted")
        if state is None:
            return
        # A short local memory that can only make decisions stricter: a run this process
        # saw dry that Redis now reports live means Redis lost state.
        if state.is_dry:
            self._seen_dry.setdefault(run_id, state.dry_since)
        elif run_id in self._seen_dry:
            raise StoreUnavailable(
                f"Redis at {self.where} reports run {run_id} as live, but this process saw it dry (since journal "
                f"seq {self._seen_dry[run_id]}): the store lost state, so the call is blocked")

    # -- the interface ----------------------------------------------------------------

    def initialize(self, dry_until=None):
        """Create the store marker unless it exists; returns ``(created (bool), store_id)``.

        ``dry_until``: epoch seconds until which every run is dry (after a data loss,
        when the store cannot know which runs were dry), or None. Raises
        :class:`StoreUnavailable` when Redis evicts keys (maxmemory-policy other than
        ``noeviction``): an evicted key could drop a run's state.
        """
        policy = self.eviction_policy()
        if policy not in (None, "noeviction"):
            raise StoreUnavailable(
                f"Redis at {self.where} has maxmemory-policy {policy}: it may evict drygate's keys (a run's "
                f"dry state among them). Set `maxmemory-policy noeviction` (a full Redis then refuses "
                f"writes, and drygate blocks calls with an alert)")
        store_id = os.urandom(8).hex()
        reply = self._run_script("", ("init", store_id, repr(time.time()),
                                      "" if dry_until is None else repr(float(dry_until))))
        return reply[0] == "created", reply[1]

    def fingerprints(self, run_id):
        """``{path: fingerprint}`` of run ``run_id`` (drygate.integrity), from ``{p}:fp:<run>``.
        Raises StoreUnavailable for a reply that is not a map of strings."""
        found = _as_dict(self._call("HGETALL", self._p + ":fp:" + run_id), self.where)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in found.items()):
            raise StoreUnavailable(f"Redis at {self.where} answered the fingerprints of run {run_id!r} with "
                                   f"{found!r:.200}; is it Redis?")
        return found

    def put_fingerprints(self, run_id, entries, replace=False, durable=True):
        """Keep ``entries`` for run ``run_id`` (HSET, or HSETNX per path), with the run's retention.

        One script operation behind the marker check, as every transition: a store without
        its marker (never initialized, or Redis lost its data) is not written to, and the
        call raises StoreUnavailable (DRYGATE_NOINIT). ``durable`` is not used (Redis
        acknowledges from memory; the AOF policy decides)."""
        if not entries:
            return
        flat = [x for kv in entries.items() for x in kv]
        retention = "0" if run_id.startswith("\x00") else str(self.retention_s)
        reply = self._run_script(run_id, ("fingerprints", "1" if replace else "0", retention, *flat))
        if len(reply) < 2:
            raise StoreUnavailable(f"Redis at {self.where} answered the fingerprints' write with {reply!r:.200}")
        self._check_identity(reply[1])

    def eviction_policy(self):
        """Redis's ``maxmemory_policy`` (str) from INFO, or None when INFO does not say."""
        return _info_field(self._call("INFO", "memory"), "maxmemory_policy")

    def persistence(self):
        """``{"aof_enabled": "0"|"1", "appendfsync": str | None}`` from INFO and CONFIG GET
        (CONFIG may be disabled, as on managed Redis: then ``appendfsync`` is None)."""
        aof = _info_field(self._call("INFO", "persistence"), "aof_enabled") or ""
        try:
            fsync = _as_dict(self._call("CONFIG", "GET", "appendfsync"), self.where).get("appendfsync")
        except StoreUnavailable:
            fsync = None
        return {"aof_enabled": aof, "appendfsync": fsync}

    def marker(self):
        """The store marker as a dict (``{}`` when the store is not initialized)."""
        return _as_dict(self._call("HGETALL", self._keys()[0]), self.where)

    def transact(self, run_id, request, entry, clock):
        now = clock()
        entry_json = _json.dumps({name: entry.get(name) for name in _ENTRY_FIELDS})
        deadline = self._deadline_ms()
        try:
            reply = self._run_script(run_id, (
                "transact", run_id, request.mode, "1" if request.gated else "0", "1" if request.triggers_dry else "0",
                request.action_if_live, repr(float(now)), entry["tool_name"] or "", entry["effect"], entry_json,
                self.retention_s, deadline, self.clock_skew_ms), journaled=True)
        except StoreTimeout:
            self._void(run_id, entry.get("call_id"), deadline)
            raise
        try:
            _, action, seq, made, because, call, state_text, store_id, ts = reply
            state = _state_from_json(state_text)
            outcome = Outcome(action, int(seq), made == "1", int(because) if because else None, state, int(call),
                              float(ts))
        except (ValueError, TypeError) as e:
            raise StoreUnavailable(f"Redis at {self.where} answered the transition with {reply!r}") from e
        self._check_identity(store_id, run_id, state)
        return outcome

    def _void(self, run_id, call_id, deadline):
        """Best effort, after a transition timed out: undo it if Redis ran it anyway (the
        request arrived, the reply was slow), so the journal never keeps a decision for a
        call the host blocked (a retried dry write would be planned twice). On a fresh
        connection with a short budget; its own failure is ignored (the timeout is
        already being reported as a guard failure). A transition that arrives later than
        this is dropped by the script itself as late."""
        budget = max(0.05, min(0.25, self.timeout_s / 2))
        transport = None
        try:
            if lean_supported(self.url):  # one write: AUTH/SELECT and the script, no handshake to wait for
                from drygate.state.resp import RespConnection

                transport = RespConnection(self.url, budget)
            else:
                transport = _RedisPyTransport(self.url, budget)
            text, _ = _script()
            keys = self._keys(run_id)
            transport.call("EVAL", text, len(keys), *keys, "void", run_id, call_id or "", deadline,
                           repr(float(time.time())), self.retention_s)
        except Exception:
            pass  # most often the slow reply again: the script ran, or the next transition is dropped as late
        finally:
            if transport is not None:
                transport.close()

    def ensure_run(self, run_id, mode, now):
        reply = self._run_script(run_id, ("ensure", run_id, mode, repr(float(now)), self.retention_s,
                                          self._deadline_ms(), self.clock_skew_ms), journaled=True)
        state = _state_from_json(reply[1])
        self._check_identity(reply[2], run_id, state)
        return state

    def record_result(self, run_id, call_id, tool_name, result, now, durable=True):
        entry = _json.dumps({"call_id": call_id, "tool_name": tool_name, "result": result})
        # durable=False: no WAIT for replicas (StateStore.record_result); the next journaled call's WAIT covers it.
        reply = self._run_script(run_id, ("result", run_id, entry, repr(float(now)), self.retention_s,
                                          self._deadline_ms(), self.clock_skew_ms), journaled=durable)
        self._check_identity(reply[2])
        return int(reply[1])

    def ping(self):
        reply = self._run_script("", ("ping",))
        self._check_identity(reply[1])

    def get_run(self, run_id):
        keys = self._keys(run_id)
        text, tomb = self._pipeline([("GET", keys[2]), ("HGET", keys[5], run_id)])
        text = text or tomb
        return _state_from_json(text) if text else None

    def list_runs(self):
        keys = self._keys()
        ids = self._call("ZREVRANGE", keys[4], 0, -1)
        if not ids:
            return []
        replies = self._pipeline([("GET", self._p + ":run:" + r) for r in ids]
                                 + [("HGET", keys[5], r) for r in ids])
        runs = []
        for i, _ in enumerate(ids):
            text = replies[i] or replies[len(ids) + i]
            if text:
                runs.append(_state_from_json(text))
        runs.sort(key=lambda s: -s.last_seen_at)
        return runs

    def journal(self, run_id=None):
        if run_id is not None:
            ids = [run_id]
        else:
            ids = self._call("ZRANGE", self._keys()[4], 0, -1) or []
        if not ids:
            return []
        replies = self._pipeline([("XRANGE", self._p + ":journal:" + r, "-", "+") for r in ids])
        entries = []
        for r, stream in zip(ids, replies):
            for stream_id, fields in stream or ():
                fields = _as_dict(fields, self.where)
                entries.append(self._entry(r, stream_id, fields))
        entries.sort(key=lambda e: e["seq"])
        return entries

    def _entry(self, run_id, stream_id, fields):
        seq = int(stream_id.split("-", 1)[0])
        data = _json.loads(fields["entry"])
        if fields.get("kind") == "result":
            e = dict.fromkeys(("agent_id", "tool_input", "effect", "rule_id", "why", "action", "dry_because_of",
                               "policy_hash", "host", "call", "context"))
            e.update(seq=seq, run_id=run_id, ts=float(fields["ts"]), kind="result", call_id=data.get("call_id"),
                     tool_name=data.get("tool_name"), made_run_dry=False, tamper=False, result=data.get("result"))
            return e
        e = {name: data.get(name) for name in _ENTRY_FIELDS}
        because = fields.get("dry_because_of")
        e.update(seq=seq, run_id=run_id, ts=float(fields["ts"]), kind="call", call=int(fields["call"]),
                 action=fields["action"], made_run_dry=fields.get("made_run_dry") == "1",
                 dry_because_of=int(because) if because else None, tamper=bool(e["tamper"]), result=None)
        return e

    def prune(self, older_than_s, now):
        cutoff = now - older_than_s
        ids = self._call("ZRANGEBYSCORE", self._keys()[4], "-inf", f"({cutoff!r}") or []
        removed = 0
        for run_id in ids:
            removed += int(self._run_script(run_id, ("prune", run_id, repr(float(cutoff))))[1])
        return removed

    def counters(self):
        return {k: int(v) for k, v in _as_dict(self._call("HGETALL", self._keys()[6]), self.where).items()}

    def add_counters(self, increments):
        key = self._keys()[6]
        commands = [("HINCRBY", key, name, int(n)) for name, n in increments.items() if n]
        if commands:
            self._pipeline(commands)

    def ledger_get(self, run_id):
        text = self._call("HGET", self._keys()[8], run_id)
        if not text:
            return 0, None
        data = _json.loads(text)
        return int(data["version"]), data["record"]

    def ledger_put(self, run_id, version, record):
        reply = self._run_script(run_id, ("ledger_put", run_id, str(int(version)), _json.dumps(record)),
                                 journaled=True)
        return reply[0] == "ok"

    def ledgers(self):
        return {run_id: _json.loads(text)["record"]
                for run_id, text in _as_dict(self._call("HGETALL", self._keys()[8]), self.where).items()}

    def verdict_get(self, key):
        try:
            text = self._t.call("HGET", self._p + ":verdicts", key)
        except Exception:
            return None
        if not text:
            return None
        effect, steps = _json.loads(text)
        return effect, tuple(steps)

    def verdict_put(self, key, effect, steps):
        """Remember a verdict in the ``{p}:verdicts`` hash; at :attr:`VERDICT_LIMIT` entries the
        hash is dropped first and starts again (a hash keeps no order to trim the oldest by; the cache
        only saves classification time)."""
        if self._call("HLEN", self._p + ":verdicts") >= self.VERDICT_LIMIT:
            self._call("DEL", self._p + ":verdicts")
        self._call("HSET", self._p + ":verdicts", key, _json.dumps([effect, list(steps)]))

    def close(self):
        self._t.close()
