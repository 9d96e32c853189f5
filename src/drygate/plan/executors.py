"""What apply executes steps with: MCP servers, Claude Code's file tools, the shell.

- :class:`McpServers`: the project's MCP servers as the relay starts them (``.mcp.json``,
  with drygate's relay wrapping undone, because apply must reach the real server, not the
  gate), one client session per server for the whole apply, through the MCP Python SDK's
  ``Client``. Each write carries the step's idempotency key in the request's ``_meta``
  under :data:`IDEMPOTENCY_META` (drygate's documented convention; tools that honour it
  do not execute a retried step twice).
- :func:`apply_file_step`: Write, Edit and MultiEdit performed by drygate itself, only on
  a file whose content is the one the plan recorded (or already the result, after an
  interrupted apply), written atomically (temporary file, then rename).
- :func:`run_shell`: a shell command, run only when the user allowed shell steps.
- :data:`STEP_EXECUTORS`: further kinds, each in its own feature module (``python``:
  drygate.api.executor, the functions the project declares appliable).
"""

import json
import os

from drygate.errors import PlanError
from drygate.plan.artifact import read_text, simulate_file_tool
from drygate.plan.fingerprint import text_fingerprint

#: Executors of further step kinds, registered by the features that plan them: kind ->
#: ``"module:function"`` of an ``async def execute(applier, step, tool_input) -> result dict``
#: (raises StepFailed when the step ran and failed, PlanError when it cannot start).
STEP_EXECUTORS = {"python": "drygate.api.executor:execute_step"}
#: Re-running a basis read of a further kind: kind -> ``"module:function"`` of an ``async def
#: repeat(applier, read) -> fingerprint`` (raises PlanError or StepFailed when it cannot).
READ_REPEATERS = {"python": "drygate.api.executor:repeat_read"}

#: The ``_meta`` key of a ``tools/call`` request that carries the step's idempotency key.
IDEMPOTENCY_META = "dev.drygate/idempotency-key"


class StepFailed(Exception):
    """A step was executed and failed (its real result says so); ``result`` holds it."""

    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result


def mcp_config(project_dir, path=None):
    """The ``mcpServers`` mapping of ``path``, else of the project's ``.mcp.json`` ({} when
    the project has none). Raises PlanError for an unreadable file or a given path that
    does not exist."""
    explicit = path is not None
    path = path or os.path.join(project_dir, ".mcp.json")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except FileNotFoundError:
        if explicit:
            raise PlanError(f"the MCP configuration {path} does not exist") from None
        return {}
    except (OSError, ValueError) as e:
        raise PlanError(f"cannot read the MCP configuration {path}: {e}") from e
    servers = config.get("mcpServers") if isinstance(config, dict) else None
    if not isinstance(servers, dict):
        raise PlanError(f"{path} is not an MCP configuration (no mcpServers object)")
    return servers


def server_target(entry, project_dir):
    """How to reach one configured server: ``StdioServerParameters`` or an HTTP URL (str).

    A server behind drygate's relay is reached directly (the relay would gate apply's
    own calls). Raises PlanError for an entry apply cannot use.
    """
    from mcp import StdioServerParameters

    from drygate.relay.install import RELAY_ARGS, _original

    if not isinstance(entry, dict):
        raise PlanError("the server's configuration is not an object")
    args = list(entry.get("args") or [])
    if tuple(args[:3]) == RELAY_ARGS and "--url" in args and "--" not in args:
        return args[args.index("--url") + 1]
    if entry.get("type") == "http" or "url" in entry:
        return entry["url"]
    command, args = _original(entry)
    if not command:
        raise PlanError("the server's configuration has no command")
    env = dict(os.environ)
    env.update({k: str(v) for k, v in (entry.get("env") or {}).items()})
    return StdioServerParameters(command=command, args=list(args), env=env, cwd=project_dir)


def _dump(result):
    """An SDK result model as the JSON dict a client sees on the wire."""
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


class McpServers:
    """Client sessions to the MCP servers a plan needs (use inside ``async with``).

    ``project_dir``; ``config``: the ``mcpServers`` mapping (default: the project's
    ``.mcp.json``). Sessions open on first use and close with the context.
    """

    def __init__(self, project_dir, config=None):
        self.project_dir = project_dir
        self.config = mcp_config(project_dir) if config is None else config
        self._clients = {}
        self._stack = None
        self._tools = {}

    async def __aenter__(self):
        from contextlib import AsyncExitStack

        self._stack = AsyncExitStack()
        return self

    async def __aexit__(self, *exc):
        await self._stack.aclose()

    async def client(self, server):
        """The open session to ``server`` (opened on first use). Raises PlanError."""
        if server in self._clients:
            return self._clients[server]
        from mcp import Client

        if server not in self.config:
            raise PlanError(f"the MCP server {server!r} is not in the project's MCP configuration (.mcp.json)")
        target = server_target(self.config[server], self.project_dir)
        try:
            client = await self._stack.enter_async_context(Client(target, cache=None, read_timeout_seconds=120))
        except Exception as e:
            raise PlanError(f"cannot start or reach the MCP server {server!r}: {e}") from e
        self._clients[server] = client
        return client

    async def server_info(self, server):
        """The server's ``serverInfo`` as a dict."""
        client = await self.client(server)
        info = client.server_info
        return info.model_dump(mode="json", exclude_none=True) if info is not None else None

    async def tools(self, server):
        """``{tool name: tools/list entry (dict)}`` of ``server`` (all pages)."""
        if server not in self._tools:
            client = await self.client(server)
            listed = await client.list_tools()
            tools = {t.name: t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in listed.tools}
            cursor = getattr(listed, "next_cursor", None)
            for _ in range(50):
                if not cursor:
                    break
                listed = await client.list_tools(cursor=cursor)
                tools.update({t.name: t.model_dump(mode="json", by_alias=True, exclude_none=True)
                              for t in listed.tools})
                cursor = getattr(listed, "next_cursor", None)
            self._tools[server] = tools
        return self._tools[server]

    async def call(self, server, tool, arguments, idempotency_key=None):
        """Call ``tool`` on ``server``; returns the result dict (``content``,
        ``structuredContent``, ``isError``). A protocol error raises StepFailed."""
        client = await self.client(server)
        meta = {IDEMPOTENCY_META: idempotency_key} if idempotency_key else None
        try:
            result = await client.call_tool(tool, arguments if isinstance(arguments, dict) else {}, meta=meta)
        except Exception as e:
            raise StepFailed(f"{server}/{tool} failed: {e}") from e
        return _dump(result)


def apply_file_step(step):
    """Perform a Write/Edit/MultiEdit step; returns ``{"path", "written": bool, "after"}``.

    The file must hold what the plan recorded before the step (``step["file"]["before"]``,
    None for absent), or already the step's result (an apply interrupted after the
    write: nothing is written again). Raises StepFailed when the file is neither
    (someone changed it since the plan) or the edit does not apply.
    """
    file = step.get("file") or {}
    path = file.get("path")
    if not path:
        raise StepFailed("the step names no file")
    current = read_text(path)
    now = text_fingerprint(current)
    if now == file.get("after") and now != file.get("before"):
        return {"path": path, "written": False, "after": now}
    if now != file.get("before"):
        raise StepFailed(f"{path} changed since the plan was made (the plan saw {file.get('before') or 'no file'}, "
                         f"it is now {now or 'gone'}); the step was not applied")
    new, problem = simulate_file_tool(step["tool_name"], step["input"], current)
    if problem:
        raise StepFailed(f"{step['tool_name']} on {path}: {problem}")
    if text_fingerprint(new) != file.get("after"):
        raise StepFailed(f"{step['tool_name']} on {path} would not give the content the plan recorded")
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.drygate-apply.{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(new)
        f.flush()
        os.fsync(f.fileno())
    if os.path.exists(path):
        os.chmod(tmp, os.stat(path).st_mode & 0o7777)
    os.replace(tmp, path)
    return {"path": path, "written": True, "after": text_fingerprint(new)}


def run_shell(command, cwd, env=None, timeout_s=600):
    """Run ``command`` with ``bash -c`` (as Claude Code's Bash tool; ``/bin/sh`` without bash) in ``cwd`` with ``env`` (dict; None: this
    process's); returns ``{"exit_code", "stdout", "stderr"}`` (each cut to 64 KB). Raises
    StepFailed for a non-zero exit (its message ends with the command's stderr), a
    timeout, or a working folder that is gone."""
    import subprocess

    try:
        import shutil

        proc = subprocess.run([shutil.which("bash") or "/bin/sh", "-c", command], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except (FileNotFoundError, NotADirectoryError) as e:
        raise StepFailed(f"cannot run in {cwd}: {e.strerror or e}") from e
    except subprocess.TimeoutExpired as e:
        raise StepFailed(f"the command did not finish within {timeout_s} s") from e
    result = {"exit_code": proc.returncode, "stdout": proc.stdout[-65536:], "stderr": proc.stderr[-65536:]}
    if proc.returncode != 0:
        tail = proc.stderr.strip()[-800:]
        raise StepFailed(f"the command exited with status {proc.returncode}"
                         + (f"; its stderr: {tail}" if tail else " (no stderr)"), result)
    return result


def registered_executor(kind, table=None):
    """The executor registered for a step ``kind`` in :data:`STEP_EXECUTORS` (or in ``table``,
    e.g. :data:`READ_REPEATERS`), or None."""
    target = (STEP_EXECUTORS if table is None else table).get(kind)
    if target is None:
        return None
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)
