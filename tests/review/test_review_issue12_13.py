"""Review probes for issue 12 (MCP relay with real servers and clients) and issue 13 (the
Python API and adapters).

Each test proves an effect (a file written, a call run, a session crossed), not only a
classification. ``xfail(strict=True)``: a bug still open (the reason says what breaks);
plain tests: behaviour a probe confirmed holds (regressions). Real parts: the Python API
in-process with a real SQLite or in-memory store, the real CLI as a subprocess, the
official npm filesystem server behind ``drygate mcp`` (tests/relay/conftest.py installs it).
"""

import asyncio
import concurrent.futures
import json
import subprocess
import sys
import textwrap

import pytest
from relay.conftest import DRYGATE, Project, clean_env, fs_server, npm_servers  # noqa: F401 (fixtures)

import drygate
from drygate.state.memory import MemoryStore

STICKY = '[run]\nmode = "sticky"\n\n[[rules]]\ntool = "deploy"\neffect = "write"\ndry = true\n'


def writer(folder):
    """A plain function that writes ``folder/<name>`` (the effect the tests look for)."""
    def write(name):
        (folder / name).write_text("written", encoding="utf-8")
        return {"ok": True}
    return write


# -- C. The Python API: can a dry run's write run anyway? --------------------------------------


def test_a_run_of_another_gate_inside_a_dry_sticky_run_stays_dry(tmp_path):
    store = MemoryStore()
    agent_gate = drygate.open_gate(policy=STICKY, store=store)
    library_gate = drygate.open_gate(policy=STICKY, store=store)  # a second open_gate() on the same project
    deploy = drygate.tool(lambda: "deployed", name="deploy")
    write = drygate.tool(writer(tmp_path), name="write", effect="write")
    with agent_gate.run() as outer:
        assert not deploy()  # dry scope: the sticky run goes dry
        assert outer.state.is_dry
        assert not write("same_gate.txt")  # same gate: dry, as it must be
        with library_gate.run():
            result = write("other_gate.txt")
    assert not (tmp_path / "same_gate.txt").exists()
    assert not (tmp_path / "other_gate.txt").exists(), "the write of a dry run ran for real"
    assert not result


def test_a_tool_bound_to_one_gate_called_inside_a_dry_run_of_another_does_not_run(tmp_path):
    store = MemoryStore()
    gate_a = drygate.open_gate(policy='[run]\nmode = "live"\n', store=store)
    gate_b = drygate.open_gate(policy='[run]\nmode = "live"\n', store=store)
    write = gate_a.tool(writer(tmp_path), name="write", effect="write")
    assert write("warmup.txt") == {"ok": True}  # outside any run: the gate's default (live) run
    with gate_b.run(mode="dry") as run:
        assert run.mode == "dry"
        result = write("in_dry_run.txt")
    assert not (tmp_path / "in_dry_run.txt").exists(), "a write inside a dry run ran for real"
    assert not result


def test_threads_and_tasks_of_a_dry_run_never_run_a_write(tmp_path):
    """Holds: a thread without the run's context fails closed (NoRunError), asyncio tasks and
    to_thread carry the run, a bound tool in an executor thread fails closed too."""
    gate = drygate.open_gate(policy='[run]\nmode = "dry"\n', store=MemoryStore())
    free = drygate.tool(writer(tmp_path), name="write", effect="write")
    bound = gate.tool(writer(tmp_path), name="write", effect="write")

    async def in_tasks():
        results = await asyncio.gather(asyncio.to_thread(free, "to_thread.txt"),
                                       asyncio.create_task(asyncio.to_thread(bound, "task.txt")))
        loop = asyncio.get_running_loop()
        with pytest.raises(drygate.NoRunError):
            await loop.run_in_executor(None, bound, "run_in_executor.txt")
        return results

    with gate.run():
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for fn in (free, bound):
                with pytest.raises(drygate.NoRunError):
                    pool.submit(fn, "thread.txt").result()
        results = asyncio.run(in_tasks())
    assert [type(r).__name__ for r in results] == ["NotExecuted", "NotExecuted"]
    assert list(tmp_path.iterdir()) == []


def test_a_not_executed_result_never_passes_for_success(tmp_path):
    """Holds: ==, bool, len, iteration, item and attribute access, json.dumps, isinstance."""
    gate = drygate.open_gate(policy='[run]\nmode = "dry"\n', store=MemoryStore())
    put = drygate.tool(writer(tmp_path), name="put", effect="write")
    with gate.run():
        r = put("x.txt")
    assert not r and r != {"ok": True} and r != r.as_dict() and not isinstance(r, (dict, list, str))
    for probe in (len, list, lambda v: v["ok"], lambda v: v.ok, lambda v: v.get("ok"), json.dumps):
        with pytest.raises((TypeError, AttributeError)):
            probe(r)
    assert "NOT EXECUTED" in f"{r}".upper() and getattr(r, "etag", None) is None
    assert not (tmp_path / "x.txt").exists()


def test_an_async_callable_tool_gives_an_awaitable_dry_result(tmp_path):
    gate = drygate.open_gate(policy='[run]\nmode = "dry"\n', store=MemoryStore())
    target = tmp_path / "put.txt"

    class Put:
        __name__ = "put"

        async def __call__(self, key):
            target.write_text(key)
            return {"ok": True}

    [put] = gate.wrap([Put()], effects={"put": "write"})

    async def agent():
        with gate.run():
            return await put("k")

    result = asyncio.run(agent())
    assert not result and "NOT EXECUTED" in str(result).upper()
    assert not target.exists()


def test_import_drygate_stays_cheap():
    """Holds: ``import drygate`` loads no submodule; the API loads on first attribute use."""
    code = ("import sys, drygate\n"
            "print(sorted(m for m in sys.modules if m.startswith('drygate')))\n"
            "drygate.tool\n"
            "print('drygate.api.tools' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=clean_env()).stdout.splitlines()
    assert out == ["['drygate']", "True"]


# -- C. Apply of Python steps: what runs is what the run journaled ------------------------------

TOOLS_PY = '''
import json, os
OUT = os.environ["REVIEW_OUT"]

def tag(key, *labels):
    """Positional labels after a named parameter."""
    with open(os.path.join(OUT, "tag.json"), "w") as f:
        json.dump([key, list(labels)], f)

def prices(table, factor):
    """A dict keyed by product number, and a float."""
    with open(os.path.join(OUT, "prices.json"), "w") as f:
        json.dump({"keys": [repr(k) for k in table], "factor": repr(factor)}, f)

def shape(value, **options):
    """Any value: what it was, by repr (a tuple is not a list, 1 is not '1')."""
    with open(os.path.join(OUT, "shape.json"), "w") as f:
        json.dump({"value": repr(value), "options": repr(options)}, f)

def call(*args, **kwargs):
    """A generic forwarder (what wrappers of HTTP clients look like)."""
    with open(os.path.join(OUT, "call.json"), "w") as f:
        json.dump({"args": list(args), "kwargs": kwargs}, f)
'''


def python_project(tmp_path, monkeypatch):
    root, out = tmp_path / "proj", tmp_path / "out"
    root.mkdir()
    out.mkdir()
    (root / "review_tools.py").write_text(TOOLS_PY)
    (root / "drygate.toml").write_text('[run]\nmode = "dry"\n\n[python]\npath = ["."]\n'
                                       'appliable = { tag = "review_tools:tag", call = "review_tools:call", '
                                       'prices = "review_tools:prices", shape = "review_tools:shape" }\n')
    monkeypatch.setenv("REVIEW_OUT", str(out))
    for name in ("DRYGATE_RUN_ID", "DRYGATE_MODE", "DRYGATE_STATE", "DRYGATE_STATE_URL", "DRYGATE_POLICY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.syspath_prepend(str(root))
    sys.modules.pop("review_tools", None)
    return root, out


def plan_and_apply(root, run_id):
    env = clean_env({"REVIEW_OUT": str(root.parent / "out")})

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "drygate.cli.entry", *args], cwd=root, env=env,
                              capture_output=True, text=True, timeout=120)
    r = cli("plan", run_id, "--out", "plan.json")
    assert r.returncode == 0, r.stderr
    return cli("apply", "plan.json", "--yes")


def test_apply_replays_a_call_with_star_args(tmp_path, monkeypatch):
    root, out = python_project(tmp_path, monkeypatch)
    import review_tools

    gate = drygate.open_gate(root)
    tag = gate.tool(review_tools.tag, name="tag", effect="write")
    with gate.run("tags"):
        assert not tag("report", "q3", "final")
    gate.close()
    assert not (out / "tag.json").exists()
    r = plan_and_apply(root, "tags")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads((out / "tag.json").read_text()) == ["report", ["q3", "final"]]


def test_apply_runs_the_call_the_run_made_not_a_look_alike(tmp_path, monkeypatch):
    root, out = python_project(tmp_path, monkeypatch)
    import review_tools

    gate = drygate.open_gate(root)
    call = gate.tool(review_tools.call, name="call", effect="write")
    with gate.run("fwd"):
        assert not call(args=5)
    gate.close()
    r = plan_and_apply(root, "fwd")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads((out / "call.json").read_text()) == {"args": [], "kwargs": {"args": 5}}


# -- A. The relay's run identity ---------------------------------------------------------------

STICKY_FS = '[[rules]]\ntool = "mcp__filesystem__write_file"\neffect = "write"\ndry = true\n'

#: A client that starts the relay (through ``argv``) for each call: a fresh session and process per call.
PER_CALL_CLIENT = r'''
import asyncio, json, sys
from mcp import Client, StdioServerParameters

async def main():
    spec = json.loads(sys.argv[1])
    out = []
    for name, args in spec["calls"]:
        params = StdioServerParameters(command=spec["argv"][0], args=spec["argv"][1:], env=spec["env"])
        async with Client(params, cache=None) as client:
            r = await client.call_tool(name, args)
            out.append({"isError": bool(r.is_error), "meta": (r.meta or {}).get("drygate")})
    print(json.dumps(out))

asyncio.run(main())
'''

#: How users start servers: through a shell wrapper that does not exec, or a launcher that
#: spawns its command as a child (npx, uvx, pipx run, a venv wrapper script do).
LAUNCHERS = {
    "shell-wrapper": ["sh", "-c", '"$@"; exit $?', "sh"],
    "npx-style-launcher": [sys.executable, "-c", "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"],
}
#: A wrapper that logs what the relay sends (its stdout goes through tee; here to /dev/null).
TEE_WRAPPER = ["sh", "-c", '"$@" | tee -a /dev/null', "sh"]


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS) + ["tee-logging-wrapper"])
def test_relays_a_client_starts_through_a_launcher_share_one_run(launcher, fs_server, tmp_path):  # noqa: F811
    root = fs_server.paths["root"]
    project = Project(tmp_path / "project")
    project.policy("sticky", STICKY_FS)
    spec = {"argv": LAUNCHERS.get(launcher, TEE_WRAPPER) + project.relay_argv(fs_server), "env": clean_env(project.relay_env(fs_server)),
            "calls": [["write_file", {"path": str(root / "a.txt"), "content": "x"}],
                      ["create_directory", {"path": str(root / "made-by-a-dry-run")}]]}
    proc = subprocess.run([sys.executable, "-c", PER_CALL_CLIENT, json.dumps(spec)], capture_output=True, text=True,
                          timeout=120, env=clean_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, second = json.loads(proc.stdout.strip().splitlines()[-1])
    assert first["isError"] and first["meta"]["decision"] == "dry"
    assert not (root / "a.txt").exists()
    assert not (root / "made-by-a-dry-run").exists(), "a write after the run went dry ran for real"
    assert second["isError"]


# -- A. The HTTP relay's sessions ---------------------------------------------------------------

from relay.conftest import git_python, git_server, git_snapshot  # noqa: E402,F401 (fixtures)
from relay.test_http_sessions import HttpRelay  # noqa: E402

STATELESS_META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientInfo": {"name": "review", "version": "1"},
                  "io.modelcontextprotocol/clientCapabilities": {}}
STICKY_GIT = ('[[rules]]\ntool = "mcp__git__git_add"\neffect = "write"\ndry = true\n\n'
              '[mcp]\ntrusted_servers = ["git"]\n')


@pytest.fixture
def http_relay():
    started = []

    def start(*args, **kwargs):
        started.append(HttpRelay(*args, **kwargs))
        return started[-1]

    yield start
    for relay in started:
        relay.close()


def test_a_stateless_request_cannot_name_its_way_out_of_a_dry_run(http_relay, git_server, tmp_path):  # noqa: F811
    repo = git_server.paths["repo"]
    project = Project(tmp_path / "project")
    project.policy("sticky", STICKY_GIT)
    relay = http_relay(project, git_server)
    status, dry, _ = relay.call(None, 1, "git_add", {"repo_path": str(repo), "files": ["new.txt"]},
                                meta=STATELESS_META)
    assert status == 200 and dry["result"]["isError"], dry  # dry scope: the stateless run went dry
    before = git_snapshot(repo)
    status, escaped, _ = relay.call(None, 1, "git_create_branch",
                                    {"repo_path": str(repo), "branch_name": "escaped"},
                                    meta=dict(STATELESS_META, **{"drygate/run_id": "a-fresh-run"}))
    assert status == 200
    assert git_snapshot(repo) == before, "a write after the run went dry ran for real"
    assert escaped["result"]["isError"]


# -- B. Apply of a fresh plan made against an official server ----------------------------------

def fs_dry_run_and_plan(project, server, tmp_path):
    """A dry run through the relay (two reads, one write) against the official filesystem
    server, its plan saved; returns (plan path, apply(*args))."""
    import anyio
    from mcp import Client

    root = server.paths["root"]
    project.policy("dry", extra='[mcp]\ntrusted_servers = ["filesystem"]\n')
    (project.root / ".mcp.json").write_text(json.dumps({"mcpServers": {server.name: {
        "command": server.argv[0], "args": server.argv[1:], "env": server.env}}}))
    calls = [("read_text_file", {"path": str(root / "hello.txt")}), ("list_directory", {"path": str(root)}),
             ("write_file", {"path": str(root / "new.txt"), "content": "N"})]

    async def run():
        async with Client(project.relay(server, mode="dry", run_id="r1"), cache=None) as client:
            await client.list_tools()
            return [(await client.call_tool(t, a)).is_error for t, a in calls]

    assert anyio.run(run) == [False, False, True]
    plan_path = tmp_path / "plan.json"
    project.cli("plan", "r1", "--out", str(plan_path))

    def apply(*args):
        return subprocess.run([*DRYGATE, "apply", str(plan_path), "--project", str(project.root), "--yes", *args],
                              capture_output=True, text=True, timeout=120,
                              env=clean_env({"DRYGATE_STATE": str(project.state), "COLUMNS": "200"}))
    return apply


def test_a_fresh_plan_against_the_official_filesystem_server_applies_without_force(fs_server, tmp_path):  # noqa: F811
    project = Project(tmp_path / "project")
    apply = fs_dry_run_and_plan(project, fs_server, tmp_path)
    assert not (fs_server.paths["root"] / "new.txt").exists()
    r = apply()
    assert r.returncode == 0, r.stdout[-500:] + r.stderr[-1500:]
    assert (fs_server.paths["root"] / "new.txt").read_text() == "N"


def test_a_stale_refusal_names_what_changed(fs_server, tmp_path):  # noqa: F811
    project = Project(tmp_path / "project")
    apply = fs_dry_run_and_plan(project, fs_server, tmp_path)
    (fs_server.paths["root"] / "hello.txt").write_text("changed by someone else\n")  # a real concurrent change
    r = apply()
    assert r.returncode != 0 and not (fs_server.paths["root"] / "new.txt").exists()  # refused, nothing ran
    assert "changed by someone else" in r.stderr or "content" in r.stderr.split("returns something else now", 1)[-1]


def test_mcp_is_listed_in_drygate_help():
    """Issue 12 item 5 asks for one CLI that lists `drygate mcp`."""
    out = subprocess.run([*DRYGATE, "--help"], capture_output=True, text=True, timeout=60, env=clean_env()).stdout
    assert "\n  mcp " in out, out


# -- A. Every client message is decided ----------------------------------------------------------

from relay.conftest import flaky_log, flaky_server, raw_peers  # noqa: E402,F401 (fixtures)


def test_no_client_message_reaches_the_server_undecided(raw_peers, flaky_server, tmp_path):  # noqa: F811
    """Holds: in a dry run, a tools/call with an odd id (null, a string, 2.0), sent as a
    notification or in a batch, and every decided method (resources/read, prompts/get,
    completion/complete, resources/subscribe, an unknown one) of a server that is not
    trusted never reaches the server;
    the server's own log proves it, and the file its ``touch`` tool would create is absent."""
    project = Project(tmp_path / "project")
    project.policy("dry", extra="[mcp]\ntrusted_servers = []\n")  # not trusted: the spec's reads are unknown too
    peer = raw_peers(project.relay_argv(flaky_server), project.relay_env(flaky_server))
    peer.initialize(protocol="2025-03-26")  # the era that still has JSON-RPC batches
    target = tmp_path / "touched"
    call = {"name": "touch", "arguments": {"path": str(target)}}
    answers = {}
    for rid in (None, "a-string", 2.0, -7):
        peer.send({"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": call})
        answers[json.dumps(rid)] = peer.recv()
    peer.send({"jsonrpc": "2.0", "method": "tools/call", "params": call})  # a notification: no answer possible
    peer.send([{"jsonrpc": "2.0", "id": 50, "method": "tools/call", "params": call},
               {"jsonrpc": "2.0", "id": 51, "method": "ping"}])
    batch = [peer.recv()]
    decided = ["resources/read", "prompts/get", "completion/complete", "resources/subscribe", "x-vendor/do"]
    for i, method in enumerate(decided):
        answers[method] = peer.request(method, {"uri": "file:///etc/passwd", "name": "p"})
    assert peer.request("ping")["result"] == {}  # the relay still answers: everything above was handled
    for key, answer in answers.items():
        assert "error" in answer or answer["result"].get("isError"), (key, answer)
    assert answers['"a-string"']["id"] == "a-string" and answers["2.0"]["id"] == 2
    assert batch[0]["id"] == 50 and "error" in batch[0]
    reached = [e["event"] for e in flaky_log(flaky_server) if e["event"] not in ("start", "initialize",
                                                                                  "notifications/initialized")]
    assert "tools/call" not in reached and not set(decided) & set(reached), reached
    assert not target.exists()


def test_apply_passes_the_values_the_run_passed(tmp_path, monkeypatch):
    root, out = python_project(tmp_path, monkeypatch)
    import review_tools

    gate = drygate.open_gate(root)
    prices = gate.tool(review_tools.prices, name="prices", effect="write")
    with gate.run("prices"):
        assert not prices({1: 9.99, 2: 5.0}, float("nan"))
    gate.close()
    review_tools.prices({1: 9.99, 2: 5.0}, float("nan"))  # what the call does live
    live = json.loads((out / "prices.json").read_text())
    (out / "prices.json").unlink()
    r = plan_and_apply(root, "prices")
    applied = json.loads((out / "prices.json").read_text()) if (out / "prices.json").exists() else None
    assert applied == live or (r.returncode != 0 and applied is None), (live, applied, r.stderr[-500:])


def test_apply_passes_tuples_as_tuples_and_refuses_what_json_cannot_hold(tmp_path, monkeypatch):
    """The class of finding 3 end to end: a tuple (JSON has only arrays) comes back as a tuple;
    an int-keyed dict, an infinity, an IntEnum make apply refuse (nothing runs)."""
    import enum

    root, out = python_project(tmp_path, monkeypatch)
    import review_tools

    gate = drygate.open_gate(root)
    shape = gate.tool(review_tools.shape, name="shape", effect="write")
    value, options = ((1, (2, "x")), [3, (4,)]), {"size": (800, 600)}
    with gate.run("tuples"):
        assert not shape(value, **options)
    for i, lossy in enumerate(({7: "a"}, float("-inf"), enum.IntEnum("Level", "LOW").LOW)):
        with gate.run(f"lossy{i}"):
            assert not shape([lossy])
    gate.close()
    review_tools.shape(value, **options)
    live = json.loads((out / "shape.json").read_text())
    (out / "shape.json").unlink()
    r = plan_and_apply(root, "tuples")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads((out / "shape.json").read_text()) == live
    (out / "shape.json").unlink()
    for i in range(3):
        r = plan_and_apply(root, f"lossy{i}")
        assert r.returncode != 0 and not (out / "shape.json").exists(), r.stdout + r.stderr


# -- C. Adapters ----------------------------------------------------------------------------------


def test_a_gated_write_inside_a_plain_langchain_tool_is_decided(tmp_path):
    pytest.importorskip("langchain.agents")
    from langchain.agents import create_agent
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, ToolMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.tools import StructuredTool

    from drygate.adapters.langchain import DrygateMiddleware

    class OneCallModel(BaseChatModel):
        """LangChain's fake-model pattern: one tool call, then done."""

        @property
        def _llm_type(self):
            return "review-scripted"

        def bind_tools(self, tools, **kwargs):
            return self

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            if any(isinstance(m, ToolMessage) for m in messages):
                message = AIMessage(content="done")
            else:
                message = AIMessage(content="", tool_calls=[{"name": "research", "args": {"topic": "q3"}, "id": "c1"}])
            return ChatResult(generations=[ChatGeneration(message=message)])

    note = tmp_path / "note.txt"

    @drygate.tool(effect="write")
    def save_note(text: str) -> str:
        note.write_text(text)
        return "saved"

    def research(topic: str) -> str:
        """Research a topic (and keep a note of it)."""
        save_note(f"notes on {topic}")
        return "found"

    gate = drygate.open_gate(policy='[run]\nmode = "dry"\n', store=MemoryStore())
    agent = create_agent(OneCallModel(), [StructuredTool.from_function(research)],
                         middleware=[DrygateMiddleware(gate, effects={"research": "read"})])
    out = agent.invoke({"messages": [{"role": "user", "content": "go"}]}, {"configurable": {"thread_id": "t1"}})
    assert out["messages"][-1].content == "done"
    assert not note.exists(), "a gated write ran for real in a dry run"


def test_a_gated_write_inside_a_plain_pydantic_ai_tool_is_decided(tmp_path):
    pytest.importorskip("pydantic_ai")
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import FunctionModel

    from drygate.adapters.pydantic_ai import Drygate

    note = tmp_path / "note.txt"

    @drygate.tool(effect="write")
    def save_note(text: str) -> str:
        note.write_text(text)
        return "saved"

    def research(topic: str) -> str:
        """Research a topic (and keep a note of it)."""
        save_note(f"notes on {topic}")
        return "found"

    def model(messages, info):  # Pydantic AI's FunctionModel: one tool call, then done
        if any(isinstance(p, ToolReturnPart) for m in messages for p in m.parts):
            return ModelResponse(parts=[TextPart("done")])
        return ModelResponse(parts=[ToolCallPart("research", {"topic": "q3"}, tool_call_id="c1")])

    gate = drygate.open_gate(policy='[run]\nmode = "dry"\n', store=MemoryStore())
    agent = Agent(FunctionModel(model), tools=[research],
                  capabilities=[Drygate(gate, run_id="r", effects={"research": "read"})])
    assert agent.run_sync("go").output == "done"
    assert not note.exists(), "a gated write ran for real in a dry run"


def test_a_gated_write_inside_a_plain_fastmcp_tool_is_decided(tmp_path):
    """Same class in the fastmcp adapter; and the tool's own gated function (a read) is still
    decided once, by the middleware, not twice."""
    pytest.importorskip("fastmcp")
    from fastmcp import Client, FastMCP

    from drygate.adapters.fastmcp import DrygateMiddleware
    from drygate.testing import capture

    note = tmp_path / "note.txt"

    @drygate.tool(effect="write")
    def save_note(text: str) -> str:
        note.write_text(text)
        return "saved"

    def research(topic: str) -> str:
        """Research a topic (and keep a note of it)."""
        save_note(f"notes on {topic}")
        return "found"

    @drygate.tool(effect="read")
    def lookup(topic: str) -> str:
        """A gated tool function: the middleware's decision admits it."""
        return f"about {topic}"

    @drygate.tool(effect="read")
    async def alookup(topic: str) -> str:
        """An async gated tool function (fastmcp builds its schema with pydantic's TypeAdapter)."""
        save_note(topic)
        return f"about {topic}"

    gate = drygate.open_gate(policy='[run]\nmode = "dry"\n', store=MemoryStore())
    server = FastMCP("review")
    server.tool(research)
    server.tool(lookup)
    server.tool(alookup)
    server.add_middleware(DrygateMiddleware(gate, run_id="r", effects={"research": "read", "lookup": "read",
                                                                       "alookup": "read"}))

    async def main():
        async with Client(server) as client:
            return [await client.call_tool(t, {"topic": "q3"}, raise_on_error=False)
                    for t in ("research", "lookup", "alookup")]

    with capture(gate) as seen:
        research_result, lookup_result, alookup_result = asyncio.run(main())
    assert not note.exists(), "a gated write ran for real in a dry run"
    assert lookup_result.content[0].text == "about q3" and alookup_result.content[0].text == "about q3"
    assert seen.tools() == ["research", "save_note", "lookup", "alookup", "save_note"]
    assert seen.actions() == ["allow", "dry", "allow", "allow", "dry"]


def test_apply_arguments_round_trip_even_with_marker_named_keywords():
    """Holds (after the fix of the *args/**kwargs findings): a model can send any keyword to a
    ``**kwargs`` tool, including drygate's own marker key; what apply passes is what the run
    passed, proven by calling the function both ways and comparing what it received."""
    from drygate.api.executor import call_arguments

    def f(*args, **kwargs):
        return list(args), kwargs

    def g(a, b=2, *rest, **kw):
        return a, b, list(rest), kw

    gate = drygate.open_gate(policy='[run]\nmode = "dry"\n', store=MemoryStore())
    cases = [(f, (), {"args": 5}), (f, (), {"drygate:kwargs": {"args": 7}}), (f, (1,), {"kwargs": 3}),
             (g, (1,), {"drygate:kwargs": {"b": 9}}), (g, (1, 2, 3, 4), {"rest": "r", "kw": {}})]
    with gate.run():
        for fn, args, kwargs in cases:
            result = drygate.tool(fn, effect="write")(*args, **kwargs)
            assert not result
            a, k = call_arguments(fn, json.loads(json.dumps(result.input)))  # through the journal's JSON
            assert fn(*a, **k) == fn(*args, **kwargs), (fn.__name__, args, kwargs, result.input)


def test_an_async_tool_called_in_a_dry_run_and_awaited_after_it_does_not_run(tmp_path):
    gate = drygate.open_gate(policy='[run]\nmode = "live"\n', store=MemoryStore())

    @gate.tool(effect="write")
    async def put(name):
        (tmp_path / name).write_text("x")
        return {"ok": True}

    async def agent():
        async with gate.run(mode="dry"):
            pending = [put(f"f{i}.txt") for i in range(2)]  # called inside the dry run
        return await asyncio.gather(*pending)  # awaited after it

    results = asyncio.run(agent())
    assert list(tmp_path.iterdir()) == [], "calls made in a dry run wrote for real"
    assert not any(results)


def test_an_async_tool_belongs_to_the_run_it_is_called_in(tmp_path):
    """The class of the finding: the run is the caller's when the tool is CALLED. Siblings: a
    free tool (no gate of its own) called in a dry run and awaited after it; a gated method; a
    read that calls a gated write, awaited after the run; a coroutine made outside any run and
    awaited inside a dry run (no run at call time: the awaiting run's); the gated function
    still passes for a coroutine function (signature, iscoroutinefunction, method binding)."""
    import inspect

    gate = drygate.open_gate(policy='[run]\nmode = "live"\n', store=MemoryStore())

    @drygate.tool(effect="write")
    async def free_put(name: str) -> dict:
        (tmp_path / name).write_text("x")
        return {"ok": True}

    @gate.tool(effect="write")
    async def bound_put(name: str) -> dict:
        (tmp_path / name).write_text("x")
        return {"ok": True}

    @gate.tool(effect="read")
    async def survey(name: str) -> str:
        return await bound_put(name)  # a gated write inside: decided in the survey's run

    class Store:
        @drygate.tool(effect="write")
        async def put(self, name: str) -> dict:
            (tmp_path / name).write_text("x")
            return {"ok": True}

    assert inspect.iscoroutinefunction(free_put) and inspect.iscoroutinefunction(Store().put)
    assert str(inspect.signature(free_put)) == "(name: str) -> dict"
    assert str(inspect.signature(Store().put)) == "(name: str) -> dict"

    async def agent():
        async with gate.run(mode="dry"):
            pending = [free_put("free.txt"), Store().put("method.txt"), survey("nested.txt")]
        early = bound_put("early.txt")  # made outside any run (the gate's live default) ...
        async with gate.run(mode="dry"):
            late = await early  # ... awaited inside a dry run: no run at call time, so this one's
        return await asyncio.gather(*pending), late

    results, late = asyncio.run(agent())
    assert list(tmp_path.iterdir()) == [], "calls made in a dry run wrote for real"
    assert not any(results) and not late
    with gate.run(mode="live"):
        assert asyncio.run(survey("live.txt")) == {"ok": True}  # and a live run still runs
    assert (tmp_path / "live.txt").exists()


def test_admission_in_async_adapters_covers_the_tool_and_not_its_helpers(tmp_path):
    """Siblings of the adapter findings on the async paths (LangChain ``awrap_tool_call``,
    Pydantic AI with async tools): a gated async tool is decided once (admitted), the gated
    async write helper it awaits is decided in the same run (dry: not run), and a plain async
    tool's gated helper too."""
    pytest.importorskip("langchain.agents")
    pytest.importorskip("pydantic_ai")
    from langchain.agents import create_agent
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, ToolMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.tools import StructuredTool
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import FunctionModel

    from drygate.adapters.langchain import DrygateMiddleware
    from drygate.adapters.pydantic_ai import Drygate
    from drygate.testing import capture

    note = tmp_path / "note.txt"

    @drygate.tool(effect="write")
    async def save_note(text: str) -> str:
        note.write_text(text)
        return "saved"

    @drygate.tool(effect="read")
    async def gated_research(topic: str) -> str:
        """Research a topic (gated itself)."""
        await save_note(topic)
        return "found"

    async def plain_research(topic: str) -> str:
        """Research a topic (plain)."""
        await save_note(topic)
        return "found"

    class TwoCallModel(BaseChatModel):
        @property
        def _llm_type(self):
            return "review-scripted"

        def bind_tools(self, tools, **kwargs):
            return self

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            if any(isinstance(m, ToolMessage) for m in messages):
                return ChatResult(generations=[ChatGeneration(message=AIMessage(content="done"))])
            calls = [{"name": n, "args": {"topic": "q3"}, "id": n} for n in ("gated_research", "plain_research")]
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content="", tool_calls=calls))])

    gate = drygate.open_gate(policy='[run]\nmode = "dry"\n', store=MemoryStore())
    tools = [StructuredTool.from_function(coroutine=gated_research, name="gated_research",
                                          description="gated"),
             StructuredTool.from_function(coroutine=plain_research, name="plain_research", description="plain")]
    middleware = [DrygateMiddleware(gate, effects={"plain_research": "read"})]
    agent = create_agent(TwoCallModel(), tools, middleware=middleware)
    with capture(gate) as seen:
        out = asyncio.run(agent.ainvoke({"messages": [{"role": "user", "content": "go"}]},
                                        {"configurable": {"thread_id": "t1"}}))
    assert out["messages"][-1].content == "done" and not note.exists()
    assert sorted(seen.tools()) == ["gated_research", "plain_research", "save_note", "save_note"]
    assert sorted(seen.actions()) == ["allow", "allow", "dry", "dry"]

    def model(messages, info):
        if any(isinstance(p, ToolReturnPart) for m in messages for p in m.parts):
            return ModelResponse(parts=[TextPart("done")])
        return ModelResponse(parts=[ToolCallPart(n, {"topic": "q3"}, tool_call_id=n)
                                    for n in ("gated_research", "plain_research")])

    gate = drygate.open_gate(policy='[run]\nmode = "dry"\n', store=MemoryStore())
    agent = Agent(FunctionModel(model), tools=[gated_research, plain_research],
                  capabilities=[Drygate(gate, run_id="r", effects={"plain_research": "read"})])
    with capture(gate) as seen:
        assert asyncio.run(agent.run("go")).output == "done"
    assert not note.exists()
    assert sorted(seen.tools()) == ["gated_research", "plain_research", "save_note", "save_note"]
    assert sorted(seen.actions()) == ["allow", "allow", "dry", "dry"]
