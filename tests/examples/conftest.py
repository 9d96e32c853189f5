"""Fixtures for examples/stack: one real moto S3 server per session, a fresh SQLite file and
bucket per test, and the key-value store on SQLite or on a real redis-server (``redis_url``
from tests/conftest.py).

The stack server itself runs as a subprocess over stdio, started by the MCP SDK's client.
"""

import logging
import os
import sqlite3
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "examples" / "stack"
STACK_SERVER = STACK / "stack_server.py"

#: AWS settings for the server and the tests' own boto3 client: fake credentials, no
#: shared config files, no instance metadata (moto accepts any credentials).
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
           "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="session")
def moto_url():
    """A real moto S3 server (ThreadedMotoServer: moto's server in a thread of the test
    process, on a free loopback port), one for the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3_client(url):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=url, region_name=AWS_ENV["AWS_DEFAULT_REGION"],
                        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
                        config=Config(retries={"total_max_attempts": 1}))


@dataclass
class Stack:
    """One stack server's configuration and direct access to its three real backends."""

    db: Path
    s3_url: str
    bucket: str
    redis_url: str | None = None
    prefix: str = "stack:"
    env: dict = field(default_factory=dict)

    def params(self):
        from mcp import StdioServerParameters

        return StdioServerParameters(command=sys.executable, args=[str(STACK_SERVER)], env=dict(self.env))

    # -- the backends, read directly (never through the server) --------------------------

    @property
    def s3(self):
        if not hasattr(self, "_s3"):
            self._s3 = s3_client(self.s3_url)
        return self._s3

    def sql(self, statement, args=()):
        conn = sqlite3.connect(self.db)
        try:
            with conn:
                return conn.execute(statement, args).fetchall()
        finally:
            conn.close()

    def redis(self):
        import redis

        return redis.Redis.from_url(self.redis_url, decode_responses=True, socket_timeout=5)

    def kv(self, key):
        """(value, version) of ``key`` in the key-value backend, (None, 0) when absent."""
        if self.redis_url:
            client = self.redis()
            try:
                value, version = client.hmget(f"{self.prefix}kv:{key}", ["value", "version"])
            finally:
                client.close()
            return value, int(version or 0)
        rows = self.sql("SELECT value, version FROM _stack_kv WHERE key = ?", (key,))
        return (rows[0][0], rows[0][1]) if rows else (None, 0)

    def idempotency(self, key):
        rows = self.sql("SELECT tool, state, result, owner FROM _stack_idempotency WHERE key = ?", (key,))
        return dict(zip(("tool", "state", "result", "owner"), rows[0])) if rows else None


def make_stack(tmp_path, moto_url, redis_url=None):
    bucket = f"stack-{uuid.uuid4().hex[:16]}"
    db = tmp_path / "stack.db"
    env = {**AWS_ENV, "STACK_DB": str(db), "STACK_S3_URL": moto_url}
    if redis_url:
        env["STACK_REDIS_URL"] = redis_url
    stack = Stack(db=db, s3_url=moto_url, bucket=bucket, redis_url=redis_url, env=env)
    stack.s3.create_bucket(Bucket=bucket)
    return stack


@pytest.fixture
def stack(tmp_path, moto_url):
    """The stack server with its key-value store on SQLite, and a fresh bucket."""
    return make_stack(tmp_path, moto_url)


@pytest.fixture(params=["sqlite", "redis"])
def kv_stack(request, tmp_path, moto_url):
    """The stack server with its key-value store on SQLite, then on a real Redis."""
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return make_stack(tmp_path, moto_url, redis_url)
