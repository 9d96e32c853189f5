"""A lean Redis client for the Claude Code hook: one socket, hiredis for the protocol.

Why not redis-py here: the hook is a fresh process per tool call, and ``import redis``
(redis-py 5.0 to 8.1 alike) costs 90-120 ms on the 2-core machine, because it imports
``asyncio``, ``ssl`` and its whole command and observability tree; the hook without it
takes about 20 ms in all (bench/hook_startup.py measures both). The protocol itself is
not written here: replies are parsed by ``hiredis`` (the C parser redis-py uses when
installed, about 0.7 ms to import), and the socket is the C module ``_socket``
(``import socket`` costs about 7 ms). Everything else (TLS, Sentinel, Cluster, RESP3,
every query option) goes through redis-py in :mod:`drygate.state.redis`;
:func:`lean_supported` says which URLs this client takes.

URL forms taken here (the same meaning as redis-py's ``Redis.from_url``):
``redis://[[username]:password@]host[:port][/db]`` and
``unix://[[username]:password@]/path/to/socket[?db=N]``.
"""

import _socket

import hiredis

from drygate.errors import StoreTimeout, StoreUnavailable


class RedisReplyError(Exception):
    """Redis answered with an error reply; ``str(e)`` is its text (``NOSCRIPT ...``)."""


def _unquote(text):
    if "%" not in text:
        return text
    out, i = bytearray(), 0
    raw = text.encode("utf-8")
    while i < len(raw):
        if raw[i] == 0x25 and i + 2 < len(raw):
            try:
                out.append(int(raw[i + 1:i + 3], 16))
                i += 3
                continue
            except ValueError:
                pass
        out.append(raw[i])
        i += 1
    return out.decode("utf-8", "replace")


def parse_url(url):
    """Split a ``redis://`` or ``unix://`` URL into a dict.

    Returns ``{"scheme", "host", "port" (int), "path" (unix socket or None),
    "username", "password" (None when absent), "db" (int), "query" (dict str->str)}``.
    Raises ValueError for anything else.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("redis", "unix"):
        raise ValueError(f"not a redis:// or unix:// URL: {redact(url)}")
    rest, _, fragment = rest.partition("#")
    rest, _, query_text = rest.partition("?")
    query = {}
    for pair in query_text.split("&") if query_text else ():
        key, _, value = pair.partition("=")
        query[_unquote(key)] = _unquote(value)
    username = password = None
    if "@" in rest:
        auth, _, rest = rest.rpartition("@")
        user, colon, pw = auth.partition(":")
        username = _unquote(user) or None  # redis://name@host: a user name, no password (as redis-py)
        password = _unquote(pw) if colon else None
    parts = {"scheme": scheme, "host": None, "port": 6379, "path": None, "username": username,
             "password": password, "db": 0, "query": query}
    if scheme == "unix":
        parts["path"] = rest or None
        if not parts["path"]:
            raise ValueError("a unix:// URL needs the socket's path")
    else:
        hostport, _, path = rest.partition("/")
        if hostport.startswith("["):
            host, _, after = hostport[1:].partition("]")
            port = after[1:] if after.startswith(":") else ""
        else:
            host, _, port = hostport.partition(":")
        parts["host"] = host or "localhost"
        if port:
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"invalid port in {redact(url)}")
            parts["port"] = int(port)
        if path:
            if not path.isdigit():
                raise ValueError(f"the database in {redact(url)} must be a number")
            parts["db"] = int(path)
    if "db" in query:
        if not query["db"].isdigit():
            raise ValueError(f"the database in {redact(url)} must be a number")
        parts["db"] = int(query["db"])
    return parts


def lean_supported(url):
    """True when this client takes ``url``: plain ``redis://`` or ``unix://`` with no
    query option other than ``db`` (TLS, Sentinel, Cluster and options go to redis-py)."""
    try:
        parts = parse_url(url)
    except ValueError:
        return False
    return set(parts["query"]) <= {"db"}


def redact(url):
    """``url`` with any password replaced by ``***`` (for messages and alerts)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    auth, _, tail = rest.rpartition("@")
    user, colon, _ = auth.partition(":")
    return f"{scheme}://{user}:***@{tail}" if colon else f"{scheme}://***@{tail}"


def _encode(args):
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode("utf-8")
        else:
            data = str(arg).encode("ascii")
        out.append(b"$%d\r\n" % len(data))
        out.append(data)
        out.append(b"\r\n")
    return b"".join(out)


class RespConnection:
    """One connection to the Redis at ``url`` (see :func:`parse_url`).

    ``timeout_s``: the whole budget for connecting plus each exchange, in seconds.
    Connects on first use; ``AUTH`` and ``SELECT`` travel in the same write as the
    first command. Raises :class:`StoreTimeout` when Redis does not answer in time,
    :class:`StoreUnavailable` when it cannot be reached, closes the connection or
    answers with something that is not RESP, and :class:`RedisReplyError` for an
    error reply. After any failure the connection is dropped (never reused).
    """

    def __init__(self, url, timeout_s):
        self.parts = parse_url(url)
        self.where = redact(url)
        self.timeout_s = timeout_s
        self._sock = None

    def call(self, *args):
        """Send one command; returns its reply (str, int, list, None)."""
        return self.pipeline([args])[0]

    def pipeline(self, commands):
        """Send ``commands`` (list of argument tuples) in one write; returns their replies.

        Raises :class:`RedisReplyError` for the first error reply among them.
        """
        import time

        end = time.monotonic() + self.timeout_s
        prelude = []
        try:
            if self._sock is None:
                prelude = self._connect(end)
            payload = b"".join(_encode(c) for c in prelude + list(commands))
            self._sock.settimeout(max(0.001, end - time.monotonic()))
            self._sock.sendall(payload)
            replies = self._read(len(prelude) + len(commands), end)
        except TimeoutError as e:
            self.close()
            raise StoreTimeout(f"Redis at {self.where} did not answer within {self.timeout_s:.2f} s") from e
        except OSError as e:
            self.close()
            raise StoreUnavailable(f"cannot reach Redis at {self.where}: {e.strerror or e}") from e
        except hiredis.ProtocolError as e:
            self.close()
            raise StoreUnavailable(f"Redis at {self.where} answered with something that is not RESP: {e}") from e
        for i, reply in enumerate(replies):
            if isinstance(reply, hiredis.ReplyError):
                if i < len(prelude):  # AUTH or SELECT refused: the connection is unusable
                    self.close()
                raise RedisReplyError(str(reply))
        return replies[len(prelude):]

    def _connect(self, end):
        import time

        p = self.parts
        if p["path"]:
            candidates = [(_socket.AF_UNIX, p["path"])]
        else:
            host = p["host"]
            # An ASCII name as bytes: a str host goes through the "idna" codec, whose import
            # (re, unicodedata, stringprep) costs the hook several milliseconds.
            host = host.encode("ascii") if host.isascii() else host
            infos = _socket.getaddrinfo(host, p["port"], 0, _socket.SOCK_STREAM)
            candidates = [(info[0], info[4]) for info in infos]
        error = None
        for family, address in candidates:
            sock = _socket.socket(family, _socket.SOCK_STREAM)
            try:
                sock.settimeout(max(0.001, end - time.monotonic()))
                sock.connect(address)
                if family != _socket.AF_UNIX:
                    sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
                self._sock = sock
                self._reader = hiredis.Reader(encoding="utf-8")
                break
            except OSError as e:
                sock.close()
                error = e
        if self._sock is None:
            raise error or OSError(f"no address for {p['host']}")
        prelude = []
        if p["password"] is not None:
            prelude.append(("AUTH", p["username"], p["password"]) if p["username"] else ("AUTH", p["password"]))
        if p["db"]:
            prelude.append(("SELECT", p["db"]))
        return prelude

    def _read(self, count, end):
        import time

        replies = []
        reader = self._reader
        while len(replies) < count:
            reply = reader.gets()
            if reply is not False:
                replies.append(reply)
                continue
            self._sock.settimeout(max(0.001, end - time.monotonic()))
            data = self._sock.recv(65536)
            if not data:
                raise OSError(f"Redis at {self.where} closed the connection")
            reader.feed(data)
        return replies

    def close(self):
        """Close the socket (idempotent)."""
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
