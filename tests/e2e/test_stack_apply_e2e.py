"""The incident end to end on examples/stack with the real Claude Code CLI: dry run, plan,
apply, and a second apply refused (issue 6).

A scripted agent session reads (kv_get, sql_query), uploads a file (put_object), records
its metadata (insert_row: the database generates the id; the row's etag comes from the
put) and points ``latest_upload`` at the new row (kv_set). In the dry run the model gets
no etag and no id: it passes the reference tokens the dry results offered
(``drygate:ref:<call>:etag``, ``drygate:ref:<call>:id``), and apply substitutes the real
values. Hook and relay are installed (the relay in front of the stack server), with
examples/stack/drygate.toml (sticky: the put makes the run dry).

The same session then runs LIVE, with no drygate at all, against a copy of the initial
state (a fresh bucket on the same moto server, so the put names that bucket; a copy of the
SQLite file; a fresh Redis key prefix): there the model sees the real etag and id and
passes them. After apply, the
three stores must hold exactly what the live run left (objects and bodies, rows, key-value
entries), and no orphan may exist at any point. Every check reads the backends directly
(boto3 against moto, sqlite3, redis-py), never drygate's journal or the server's answers.

One moto server for the module; the key-value store is a real redis-server (the session's,
database 0, under key prefixes of this module, removed afterwards). The whole scenario
(dry run, plan, apply, live run) runs once per Claude Code version, in a module fixture;
the tests assert on what it recorded. A third test repeats the dry run, plan and apply with
the hook alone (the plain ``drygate init`` setup, no relay) and compares with the same live
run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

from .conftest import ALLOWED_TOOLS, Project
from .e2e_util import REPO

pytestmark = pytest.mark.e2e

STACK_DIR = REPO / "examples" / "stack"
STACK_SERVER = STACK_DIR / "stack_server.py"
STACK_POLICY = (STACK_DIR / "drygate.toml").read_text()

#: Fake AWS credentials, no shared config files, no instance metadata (moto accepts any).
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
           "AWS_EC2_METADATA_DISABLED": "true"}

TABLE = ("CREATE TABLE files (id INTEGER PRIMARY KEY AUTOINCREMENT, version INTEGER NOT NULL, "
         "key TEXT UNIQUE NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL)")
EXISTING_KEY, EXISTING_BODY = "uploads/existing.txt", "an older upload\n"
UPLOAD_KEY, UPLOAD_BODY = "uploads/report.txt", "quarterly report: revenue up 4%\n"
LATEST = "latest_upload"
REF = re.compile(r"drygate:ref:(\d+)")


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


# --------------------------------------------------------------------------- the agent
def _result_of(results: list[dict], tool: str) -> dict:
    hits = [r for r in results if r["name"] == f"mcp__stack__{tool}"]
    assert hits, f"the model saw no result of {tool}: {results}"
    return hits[-1]


def _not_executed(text: str) -> bool:
    return "not executed" in text.lower()


def _value_or_token(results: list[dict], tool: str, field_name: str):
    """What a model passes on from an earlier call: the real value from its result, or,
    when the call was skipped, the reference token its dry result offered for the field."""
    r = _result_of(results, tool)
    if _not_executed(r["content"]):
        m = REF.search(r["content"])
        assert m, f"the dry result of {tool} offers no drygate:ref token: {r['content']}"
        return f"drygate:ref:{m.group(1)}:{field_name}"
    m = re.search(rf'"{field_name}"\s*:\s*("?)([^",\s}}]+)\1', r["content"])
    assert m, f"no {field_name} in the result of {tool}: {r['content']}"
    return m.group(2)


def session(bucket: str) -> list[dict]:
    """The scripted agent: read, upload, record, point ``latest_upload`` at the record.

    Later inputs are computed from what the model saw, as a model would."""

    def insert(results):
        return {"table": "files", "values": {"key": UPLOAD_KEY, "size": len(UPLOAD_BODY),
                                             "etag": _value_or_token(results, "put_object", "etag")}}

    def point(results):
        return {"key": LATEST, "value": _value_or_token(results, "insert_row", "id"),
                "if_version": int(_value_or_token(results, "kv_get", "version"))}

    return [
        {"name": "mcp__stack__kv_get", "input": {"key": LATEST}},
        {"name": "mcp__stack__sql_query",
         "input": {"sql": "SELECT id, version FROM files WHERE key = ?", "params": [UPLOAD_KEY]}},
        {"name": "mcp__stack__put_object",
         "input": {"bucket": bucket, "key": UPLOAD_KEY, "body": UPLOAD_BODY, "if_none_match": "*",
                   "content_type": "text/plain"}},
        {"name": "mcp__stack__insert_row", "input": insert},
        {"name": "mcp__stack__kv_set", "input": point},
    ]


TOOLS = ["kv_get", "sql_query", "put_object", "insert_row", "kv_set"]


# --------------------------------------------------------------------------- the stores
def s3_client(url: str):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=url, region_name=AWS_ENV["AWS_DEFAULT_REGION"],
                        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
                        config=Config(retries={"total_max_attempts": 1}))


@dataclass
class Stores:
    """One copy of the stack's state: a bucket, a SQLite file, a Redis key prefix."""

    s3_url: str
    bucket: str
    db: Path
    redis_url: str
    prefix: str
    s3: object = field(default=None, repr=False)

    def __post_init__(self):
        self.s3 = s3_client(self.s3_url)

    def env(self) -> dict:
        return {**AWS_ENV, "STACK_DB": str(self.db), "STACK_S3_URL": self.s3_url,
                "STACK_REDIS_URL": self.redis_url, "STACK_REDIS_PREFIX": self.prefix}

    def redis(self):
        import redis

        return redis.Redis.from_url(self.redis_url, decode_responses=True, socket_timeout=5)

    # -- read directly from the backends ----------------------------------------------
    def objects(self) -> dict:
        """``{key: (body, content type, etag)}`` of every object in the bucket."""
        out = {}
        listed = self.s3.list_objects_v2(Bucket=self.bucket)
        for item in listed.get("Contents", []):
            got = self.s3.get_object(Bucket=self.bucket, Key=item["Key"])
            out[item["Key"]] = (got["Body"].read().decode(), got.get("ContentType"), got["ETag"].strip('"'))
        return out

    def sql(self, statement, args=()):
        conn = sqlite3.connect(self.db)
        try:
            return conn.execute(statement, args).fetchall()
        finally:
            conn.close()

    def rows(self) -> list[tuple]:
        return self.sql("SELECT id, version, key, size, etag FROM files ORDER BY id")

    def tables(self) -> dict:
        """Every table of the application (not the server's own ``_stack_*``), with its rows."""
        names = [n for (n,) in self.sql("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                 if not n.startswith(("_stack_", "sqlite_"))]
        return {n: self.sql(f'SELECT * FROM "{n}" ORDER BY rowid') for n in names}

    def kv(self) -> dict:
        """``{key: (value, version)}`` of every key-value entry under the prefix."""
        client = self.redis()
        try:
            out = {}
            for name in client.scan_iter(match=f"{self.prefix}kv:*"):
                value, version = client.hmget(name, ["value", "version"])
                out[name[len(self.prefix) + 3:]] = (value, int(version))
            return out
        finally:
            client.close()

    def idempotency_records(self) -> dict:
        """The stack server's idempotency records: ``{key: (tool, state, result)}``."""
        if not self.sql("SELECT name FROM sqlite_master WHERE name = '_stack_idempotency'"):
            return {}
        return {k: (tool, state, json.loads(result) if result else None)
                for k, tool, state, result in self.sql("SELECT key, tool, state, result FROM _stack_idempotency")}

    def redis_markers(self) -> list[str]:
        client = self.redis()
        try:
            return sorted(client.scan_iter(match=f"{self.prefix}idem:*"))
        finally:
            client.close()

    def state(self) -> dict:
        return {"objects": self.objects(), "tables": self.tables(), "kv": self.kv()}

    def orphans(self) -> list[str]:
        """What points at nothing: a row whose object is missing (or another object), a
        ``latest_upload`` naming no row."""
        problems = []
        objects = self.objects()
        for id_, _version, key, _size, etag in self.rows():
            if key not in objects:
                problems.append(f"row {id_} names the object {key}, which does not exist")
            elif objects[key][2] != etag:
                problems.append(f"row {id_} has etag {etag}, the object {key} has {objects[key][2]}")
        value, _ = self.kv().get(LATEST, (None, 0))
        ids = {str(r[0]) for r in self.rows()}
        if value is not None and value not in ids:
            problems.append(f"{LATEST} = {value!r} names no row (rows: {sorted(ids)})")
        return problems

    def drop(self):
        client = self.redis()
        try:
            for name in client.scan_iter(match=f"{self.prefix}*"):
                client.delete(name)
        finally:
            client.close()


async def _seed_kv(stores: Stores, python: str):
    """``latest_upload`` -> the existing row, written through the server itself (so its
    version counter is the server's own)."""
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(command=python, args=[str(STACK_SERVER)], env=stores.env())
    async with Client(params, cache=None, read_timeout_seconds=60) as client:
        result = await client.call_tool("kv_set", {"key": LATEST, "value": "1", "if_version": 0})
        assert not result.is_error, result


def make_stores(folder: Path, s3_url: str, redis_url: str, python: str, copy_of: Stores | None = None) -> Stores:
    """The initial state: one object, its row (id 1), ``latest_upload`` = "1".

    ``copy_of``: start from a copy of that state instead (the SQLite file copied with the
    backup API; a fresh bucket and key prefix seeded the same way)."""
    tag = uuid.uuid4().hex[:12]
    stores = Stores(s3_url, f"stack-e2e-{tag}", folder / "stack.db", redis_url, f"stack-e2e-{tag}:")
    stores.s3.create_bucket(Bucket=stores.bucket)
    stores.s3.put_object(Bucket=stores.bucket, Key=EXISTING_KEY, Body=EXISTING_BODY.encode(),
                         ContentType="text/plain")
    if copy_of is None:
        conn = sqlite3.connect(stores.db)
        with conn:
            conn.execute(TABLE)
            conn.execute("INSERT INTO files (version, key, size, etag) VALUES (1, ?, ?, ?)",
                         (EXISTING_KEY, len(EXISTING_BODY), md5(EXISTING_BODY)))
        conn.close()
    else:
        src, dst = sqlite3.connect(copy_of.db), sqlite3.connect(stores.db)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
    anyio.run(_seed_kv, stores, python)
    return stores


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def moto_url():
    """One real moto S3 server (in a thread of this process) for the module."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def stack_mcp_config(project: Project, stores: Stores) -> Path:
    """The project's mcp.json naming only the stack server (``mcp__stack__*``)."""
    config = {"mcpServers": {"stack": {"command": str(project.tools.server_python), "args": [str(STACK_SERVER)],
                                       "env": stores.env()}}}
    path = project.dir / "mcp.json"
    path.write_text(json.dumps(config, indent=2))
    project.allowed_tools = ALLOWED_TOOLS + ",mcp__stack"
    return path


@dataclass(repr=False)
class Gated:
    """A dry run of the session through drygate, its plan and its apply, with the state of
    the stores after each."""

    project: Project
    stores: Stores
    initial: dict
    run: object  # the dry run (conftest.RunResult)
    run_id: str
    hosts: list  # the journal's deciding hosts, in order
    after_dry: dict
    after_dry_orphans: list
    after_dry_records: dict  # the server's idempotency records
    after_dry_markers: list  # its Redis idempotency markers
    plan_path: Path
    plan: dict
    apply: object  # the CompletedProcess of `drygate apply`
    after_apply: dict
    after_apply_orphans: list

    def apply_failure(self) -> str:
        return f"drygate apply exited {self.apply.returncode}:\n{self.apply.stdout}\n{self.apply.stderr}"


def _journal_hosts(project: Project, run_id: str) -> list[str]:
    from drygate.state.sqlite import SQLiteStore

    store = SQLiteStore(project.dir / ".drygate" / "state.db")
    try:
        return [e["host"] for e in store.journal(run_id) if e["kind"] == "call"]
    finally:
        store.close()


def gated_run(project: Project, stores: Stores, relay: bool) -> Gated:
    """``drygate init`` with the stack's policy, the stack server (behind the relay when
    ``relay``), the scripted session, ``drygate plan RUN --out``, ``drygate apply --yes``."""
    from drygate.relay.install import wrap_servers

    initial = stores.state()
    project.init_drygate(STACK_POLICY)
    config_path = stack_mcp_config(project, stores)
    if relay:
        config, wrapped, _ = wrap_servers(json.loads(config_path.read_text()), project.dir,
                                          python=str(project.tools.python))
        assert wrapped == ["stack"], config
        config_path.write_text(json.dumps(config, indent=2))
    # Claude Code 2.1 hands MCP servers CLAUDE_CODE_SESSION_ID, so the relay joins the
    # session's run; 2.0 does not, and DRYGATE_RUN_ID joins hook and relay.
    old_host = project.cli.version.startswith("2.0.")
    env = {"DRYGATE_RUN_ID": f"stack-e2e-{uuid.uuid4().hex[:8]}"} if old_host else None
    run = project.run_agent(session(stores.bucket), env=env, prompt="Upload the report and record it.",
                            label=f"stack: dry run (hook{' + relay' if relay else ' only'})")
    run_id = env["DRYGATE_RUN_ID"] if old_host else run.session_id
    assert run_id, run.describe()
    after_dry, after_dry_orphans = stores.state(), stores.orphans()
    records, markers = stores.idempotency_records(), stores.redis_markers()
    hosts = _journal_hosts(project, run_id)

    plan_path = project.dir / "plan.json"
    project.drygate("plan", run_id, "--out", str(plan_path))
    plan = json.loads(plan_path.read_text())
    apply = project.drygate("apply", str(plan_path), "--yes", "--mcp-config", str(config_path),
                            env={"COLUMNS": "200"}, check=False)
    return Gated(project, stores, initial, run, run_id, hosts, after_dry, after_dry_orphans, records, markers,
                 plan_path, plan, apply, stores.state(), stores.orphans())


@dataclass(repr=False)
class Scenario:
    gated: Gated  # hook + relay
    live: Stores  # the copy the live run wrote
    initial_live: dict
    live_run: object
    after_live: dict
    after_live_orphans: list


def _make_project(root: Path, name: str, cli, tools) -> Project:
    (root / name).mkdir()
    return Project(root / name, cli, tools)


@pytest.fixture(scope="module")
def scenario(claude_cli, drygate_tools, moto_url, redis_server, tmp_path_factory):
    """Dry run (hook + relay), plan, apply; then the same session live, no drygate, on a copy."""
    redis_url = redis_server.url(db=0)
    python = str(drygate_tools.server_python)
    root = tmp_path_factory.mktemp(f"stack-{claude_cli.version}")
    dry_project = _make_project(root, "dry", claude_cli, drygate_tools)
    live_project = _make_project(root, "live", claude_cli, drygate_tools)
    applied = make_stores(dry_project.dir, moto_url, redis_url, python)
    live = make_stores(live_project.dir, moto_url, redis_url, python, copy_of=applied)
    try:
        initial_live = live.state()
        gated = gated_run(dry_project, applied, relay=True)
        stack_mcp_config(live_project, live)
        live_run = live_project.run_agent(session(live.bucket), prompt="Upload the report and record it.",
                                          label="stack: live run (no drygate)")
        yield Scenario(gated, live, initial_live, live_run, live.state(), live.orphans())
    finally:
        applied.drop()
        live.drop()


def _step(plan: dict, tool: str) -> dict:
    hits = [s for s in plan["steps"] if s["tool_name"] == f"mcp__stack__{tool}"]
    assert len(hits) == 1, plan["steps"]
    return hits[0]


def _check_dry_run(g: Gated) -> None:
    """The model saw real reads and honest dry results; nothing was written anywhere."""
    run = g.run
    assert run.json.get("subtype") == "success", run.describe()
    results = run.tool_results
    assert [r["name"] for r in results] == [f"mcp__stack__{t}" for t in TOOLS], run.describe()
    for r in results[:2]:
        assert not r["is_error"] and not _not_executed(r["content"]), run.describe()
    for r in results[2:]:
        assert _not_executed(r["content"]), f"the model was not told 'not executed': {r}"
    # No orphan after the dry run: no object, row or key written, no idempotency key used.
    assert g.after_dry == g.initial, (g.after_dry, g.initial)
    assert g.after_dry_records == {} and g.after_dry_markers == [], (g.after_dry_records, g.after_dry_markers)
    assert g.after_dry_orphans == [], g.after_dry_orphans


def _check_plan(g: Gated) -> tuple[dict, dict, dict]:
    """The three writes, in order, linked by the tokens the dry results offered."""
    plan, results = g.plan, g.run.tool_results
    assert [st["tool_name"] for st in plan["steps"]] == [f"mcp__stack__{t}" for t in TOOLS[2:]], plan["steps"]
    put, insert, point = (_step(plan, t) for t in TOOLS[2:])
    assert all(st["problem"] is None for st in plan["steps"]), plan["steps"]
    assert all(st["executor"] == {"kind": "mcp", "server": "stack", "tool": st["tool_name"].split("__")[2]}
               for st in plan["steps"]), plan["steps"]
    # The dry result the model saw for insert_row offers drygate:ref:<its call>:id (the
    # call the plan knows as insert_row), and the model passed exactly that token; the
    # same for the put's etag.
    insert_text = _result_of(results, "insert_row")["content"]
    put_text = _result_of(results, "put_object")["content"]
    assert f"drygate:ref:{insert['call']}:id" in insert_text, (insert["call"], insert_text)
    assert f"drygate:ref:{put['call']}" in put_text, (put["call"], put_text)
    assert insert["input"]["values"]["etag"] == f"drygate:ref:{put['call']}:etag", insert
    assert point["input"]["value"] == f"drygate:ref:{insert['call']}:id", point
    assert insert["depends_on"] == [put["step"]] and point["depends_on"] == [insert["step"]], plan["steps"]
    reads = plan["basis"]["reads"]
    assert sorted({r["tool_name"] for r in reads}) == ["mcp__stack__kv_get", "mcp__stack__sql_query"], reads
    return put, insert, point


def _check_applied(g: Gated, live_state: dict) -> None:
    """After apply: exactly the live run's state, the real etag and id linked, no orphan."""
    assert g.apply.returncode == 0, g.apply_failure()
    assert "applied 3 of 3" in g.apply.stdout, g.apply_failure()
    assert g.after_apply == live_state, (g.after_apply, live_state)
    new_row = [r for r in g.after_apply["tables"]["files"] if r[2] == UPLOAD_KEY]
    assert len(new_row) == 1, g.after_apply
    assert g.after_apply["objects"][UPLOAD_KEY] == (UPLOAD_BODY, "text/plain", md5(UPLOAD_BODY)), g.after_apply
    assert new_row[0][4] == md5(UPLOAD_BODY), new_row  # the put's real etag, substituted
    # latest_upload holds the real id of the applied insert: the id the server recorded
    # under the insert step's idempotency key.
    insert = _step(g.plan, "insert_row")
    records = g.stores.idempotency_records()
    assert records[insert["idempotency_key"]][0] == "insert_row", records
    applied_id = records[insert["idempotency_key"]][2]["id"]
    assert applied_id == new_row[0][0], (records, new_row)
    assert g.after_apply["kv"][LATEST][0] == str(applied_id), g.after_apply
    assert "drygate:ref" not in json.dumps(g.after_apply), g.after_apply
    assert g.after_apply_orphans == [], g.after_apply_orphans


# --------------------------------------------------------------------------- the tests
def test_dry_run_plan_apply_equals_a_live_run(scenario):
    """Hook and relay: dry run, plan, apply; the stores end as the live run left its copy."""
    s, g = scenario, scenario.gated
    _check_dry_run(g)
    # The relay stood in front of the server: it decided the reads again, in the same run.
    assert "mcp-relay" in g.hosts and "claude-code" in g.hosts, g.hosts
    _check_plan(g)
    assert "stack" in g.plan["basis"]["servers"], g.plan["basis"]  # the relay recorded the catalog

    # The live run: the model saw the real etag and id and passed them on.
    live = s.live_run
    assert live.json.get("subtype") == "success", live.describe()
    assert [r["name"] for r in live.tool_results] == [f"mcp__stack__{t}" for t in TOOLS], live.describe()
    assert not any(r["is_error"] or _not_executed(r["content"]) for r in live.tool_results), live.describe()
    assert s.initial_live == g.initial, "the live copy did not start from the same state"
    live_id = _value_or_token(live.tool_results, "insert_row", "id")
    assert s.after_live["kv"][LATEST][0] == live_id, (s.after_live, live_id)
    assert s.after_live_orphans == [], s.after_live_orphans

    _check_applied(g, s.after_live)


def test_second_apply_is_refused_and_changes_nothing(scenario):
    g = scenario.gated
    assert g.apply.returncode == 0, "the first apply failed, so there is nothing to re-apply: " + g.apply_failure()
    before = g.stores.state()
    assert before == g.after_apply, "the stores moved after the first apply"
    again = g.project.drygate("apply", str(g.plan_path), "--yes", "--mcp-config", str(g.project.dir / "mcp.json"),
                              env={"COLUMNS": "200"}, check=False)
    assert again.returncode == 1, f"{again.returncode}\n{again.stdout}\n{again.stderr}"
    assert "already applied" in again.stderr, again.stderr
    assert g.stores.state() == before, "a refused apply changed the stores"
    assert g.stores.orphans() == []
    runs = {r["run_id"]: r for r in g.project.drygate_json("runs")}
    assert runs[g.run_id].get("apply") == "applied", runs[g.run_id]


def test_hook_only_dry_run_plan_apply(scenario, claude_cli, drygate_tools, moto_url, redis_server, tmp_path):
    """The plain `drygate init` setup (hook only, no relay): the same plan applies, and
    the stores end as the live run left its copy."""
    project = _make_project(tmp_path, "hook-only", claude_cli, drygate_tools)
    stores = make_stores(project.dir, moto_url, redis_server.url(db=0), str(drygate_tools.server_python))
    try:
        g = gated_run(project, stores, relay=False)
        _check_dry_run(g)
        assert set(g.hosts) == {"claude-code"}, g.hosts
        _check_plan(g)
        _check_applied(g, scenario.after_live)
    finally:
        stores.drop()
