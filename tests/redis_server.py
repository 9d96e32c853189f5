"""A real ``redis-server`` for the tests: started on a free loopback port in a temp folder.

The server is Debian's package (``/usr/bin/redis-server``, 7.0.x; ``.ci/run`` installs it).
Nothing here talks to any address but 127.0.0.1, and every wait is bounded.

    server = RedisServer(tmp_path / "redis").start()
    server.url(db=3)            # "redis://127.0.0.1:PORT/3" (with the password if any)
    server.client(db=3)         # a redis-py client with short timeouts
    server.pause(); server.resume()          # SIGSTOP / SIGCONT
    server.kill(); server.start()            # SIGKILL, then start again on the same port and data
    server.restart()                         # SIGTERM + start, data kept
    server.restart(lose_data=True)           # SIGKILL, empty the data folder, start
    server.stop()                            # SIGTERM, wait

Defaults that the fault tests rely on: ``appendonly yes`` with ``appendfsync always`` (an
acknowledged write is on disk before the reply, so SIGKILL + restart loses nothing
acknowledged) and no RDB snapshots (the AOF is the only copy, so "data lost" is simply an
empty folder). ``config`` overrides or adds any ``redis.conf`` directive, e.g.
``{"maxmemory": "2mb", "maxmemory-policy": "noeviction"}``, ``{"requirepass": "s3cret"}`` or
``{"replicaof": "127.0.0.1 6380"}`` (see :meth:`RedisServer.replica_of`).
"""

import os
import shutil
import signal
import socket
import subprocess
import time

BINARY_CANDIDATES = ("redis-server", "/usr/bin/redis-server")

DEFAULT_CONFIG = {
    "bind": "127.0.0.1",
    "protected-mode": "no",
    "daemonize": "no",
    "appendonly": "yes",
    "appendfsync": "always",
    "save": '""',
    "databases": "16",
    "loglevel": "notice",
    # The tests' own clients come and go; nothing should linger past a test.
    "timeout": "0",
}


# Directives whose value is one string that may hold spaces (quoted in redis.conf).
_ONE_ARGUMENT = {"requirepass", "masterauth", "masteruser", "logfile", "dir"}


def _quote(value):
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def find_binary():
    """The path of ``redis-server``, or None when it is not installed."""
    for name in BINARY_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def missing_message():
    return ("redis-server is not installed: the Redis tests need Debian's redis-server package "
            "(.ci/run installs it: apt-get install -y redis-server)")


def require_binary():
    """The ``redis-server`` path; without one, FAIL when ``CI=true``, else skip (pytest)."""
    import pytest

    path = find_binary()
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(missing_message() + " -- and CI=true, so this is a failure, not a skip", pytrace=False)
        pytest.skip(missing_message())
    return path


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def version(binary=None):
    """The server's version as a tuple of ints, e.g. (7, 0, 15)."""
    out = subprocess.run([binary or find_binary(), "--version"], capture_output=True, text=True, timeout=10).stdout
    for part in out.split():
        if part.startswith("v="):
            return tuple(int(x) for x in part[2:].split("."))
    raise RuntimeError(f"cannot read the redis-server version from {out!r}")


class RedisServer:
    """One ``redis-server`` process owned by the test that made it.

    ``folder``: where its config, log and data live (``folder/data``); ``port``: None picks a
    free one (kept across restarts); ``config``: dict of ``redis.conf`` directives that
    override :data:`DEFAULT_CONFIG` (a value of None removes a directive).
    """

    def __init__(self, folder, port=None, config=None, binary=None):
        self.folder = os.path.abspath(str(folder))
        self.data_dir = os.path.join(self.folder, "data")
        self.log_path = os.path.join(self.folder, "redis.log")
        self.conf_path = os.path.join(self.folder, "redis.conf")
        self.binary = binary or find_binary()
        if self.binary is None:
            raise RuntimeError(missing_message())
        self.port = port or free_port()
        self.config = dict(DEFAULT_CONFIG)
        self.configure(**(config or {}))
        self.proc = None
        self.paused = False

    # -- configuration -------------------------------------------------------------------

    def configure(self, mapping=None, **directives):
        """Set ``redis.conf`` directives for the next start (names with ``-`` or ``_``)."""
        items = dict(mapping or {})
        items.update({k.replace("_", "-"): v for k, v in directives.items()})
        for key, value in items.items():
            if value is None:
                self.config.pop(key, None)
            else:
                self.config[key] = str(value)
        return self

    @property
    def password(self):
        return self.config.get("requirepass")

    def replica_of(self, primary):
        """Configure this server as a (read-only) replica of ``primary`` (a RedisServer)."""
        self.configure({"replicaof": f"127.0.0.1 {primary.port}", "replica-read-only": "yes"})
        if primary.password:
            self.configure(masterauth=primary.password)
        return self

    def _write_config(self):
        os.makedirs(self.data_dir, exist_ok=True)
        lines = [f"port {self.port}", f"dir {_quote(self.data_dir)}", f"logfile {_quote(self.log_path)}"]
        lines += [f"{k} {_quote(v) if k in _ONE_ARGUMENT else v}" for k, v in self.config.items()]
        with open(self.conf_path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")

    # -- addresses and clients -----------------------------------------------------------

    def url(self, db=0, password=True):
        """``redis://[:password@]127.0.0.1:PORT/DB``; ``password=False`` leaves it out."""
        auth = ""
        if password and self.password:
            from urllib.parse import quote

            auth = ":" + quote(self.password, safe="") + "@"
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def client(self, db=0, timeout=5.0, **kwargs):
        """A redis-py client (RESP2, explicit timeouts, no retries): the tests' raw view."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        kwargs.setdefault("password", self.password)
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=timeout,
                           socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0), **kwargs)

    # -- process control -----------------------------------------------------------------

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def start(self, timeout=20.0):
        """Start the server (same port and data folder as before) and wait until it answers."""
        if self.running:
            raise RuntimeError(f"redis-server on port {self.port} is already running")
        self._write_config()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([self.binary, self.conf_path], stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.folder, start_new_session=True)
        self.paused = False
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=20.0):
        """Wait until the server answers PING and has loaded its data (bounded)."""
        import redis

        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                c = self.client(timeout=1.0)
                try:
                    if c.ping() and c.info("persistence").get("loading", 0) == 0:
                        return self
                finally:
                    c.close()
            except redis.BusyLoadingError as e:
                last = e
            except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
                last = e
            time.sleep(0.02)
        raise TimeoutError(f"redis-server on port {self.port} not ready after {timeout} s ({last}):\n"
                           f"{self.log_tail()}")

    def wait_synced(self, timeout=20.0):
        """For a replica: wait until its link to the primary is up and the first sync is done."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            c = self.client(timeout=1.0)
            try:
                info = c.info("replication")
            finally:
                c.close()
            if info.get("master_link_status") == "up" and not info.get("master_sync_in_progress"):
                return self
            time.sleep(0.05)
        raise TimeoutError(f"replica on port {self.port} did not sync within {timeout} s:\n{self.log_tail()}")

    def _signal(self, sig):
        if self.proc is None or self.proc.poll() is not None:
            return False
        os.kill(self.proc.pid, sig)
        return True

    def pause(self):
        """SIGSTOP: the server keeps its socket but answers nothing until :meth:`resume`."""
        if self._signal(signal.SIGSTOP):
            self.paused = True
        return self

    def resume(self):
        """SIGCONT after :meth:`pause`."""
        if self._signal(signal.SIGCONT):
            self.paused = False
        return self

    def stop(self, timeout=20.0):
        """SIGTERM (a clean shutdown: the AOF is flushed) and wait; SIGKILL if it hangs."""
        if self.proc is None:
            return self
        if self.paused:
            self.resume()
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)
        self.proc = None
        return self

    def kill(self):
        """SIGKILL: no shutdown work at all (what a crash or an OOM kill does)."""
        if self.proc is None:
            return self
        self._signal(signal.SIGKILL)
        self.proc.wait(20)
        self.proc = None
        self.paused = False
        return self

    def restart(self, lose_data=False, timeout=20.0):
        """Restart on the same port: data kept (SIGTERM), or lost (SIGKILL + empty data folder)."""
        if lose_data:
            self.kill()
            self.wipe_data()
        else:
            self.stop()
        return self.start(timeout)

    def wipe_data(self):
        """Empty the data folder (the server must be stopped)."""
        if self.running:
            raise RuntimeError("stop the server before wiping its data")
        shutil.rmtree(self.data_dir, ignore_errors=True)
        os.makedirs(self.data_dir, exist_ok=True)
        return self

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self):
        return self if self.running else self.start()

    def __exit__(self, *exc):
        self.kill()

    def __repr__(self):
        return f"RedisServer(port={self.port}, pid={self.pid}, running={self.running})"
