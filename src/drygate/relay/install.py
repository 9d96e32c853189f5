"""Put a project's MCP servers behind the relay: rewrite ``.mcp.json`` in place.

Each stdio server ``{"command": C, "args": A, "env": E}`` becomes
``{"command": <drygate's python>, "args": ["-m", "drygate.cli.entry", "mcp", "--name", NAME,
"--project", PROJECT, "--", C, *A], "env": E}``: the server keeps its name, so the tool
names the agent sees (``mcp__NAME__tool``) are unchanged. Rewriting is idempotent (an
entry already behind the relay is unwrapped first) and the first rewrite keeps the
original file as ``.mcp.json.drygate-backup``. A server reached over streamable HTTP
(``"type": "http"``, ``"url"``) becomes a stdio relay with ``--url``; its ``headers``
move into the relay's environment as ``DRYGATE_MCP_HEADERS`` (a JSON object; the
host expands ``${VAR}`` in ``env`` as it did in ``headers``), never into arguments,
which other users can read. Servers on the deprecated SSE transport are left as
they are and reported.

Shadow servers (drygate.relay.shadow): ``shadows={NAME: [PATH, ...]}`` adds ``--shadow PATH``
(relative paths are taken from the project folder) to the named stdio servers, and
``shadow_max_mb`` sets ``--shadow-max-mb`` on every server that has shadows. A rewrite keeps
the ``--shadow``, ``--shadow-max-mb`` and ``--shadow-allow-network`` options an earlier
rewrite wrote (the last one is only ever written by hand), so running
``drygate install claude-code --mcp`` again does not drop them; apply and ``drygate doctor``
unwrap the entry as before (everything after ``--`` is the server's own command).
"""

import json
import os
import shutil
import sys

RELAY_ARGS = ("-m", "drygate.cli.entry", "mcp")


def _original(entry):
    """The server's own command and args, unwrapping an earlier rewrite."""
    args = list(entry.get("args") or [])
    if tuple(args[:3]) == RELAY_ARGS and "--url" in args and "--" not in args:
        return None, args  # an HTTP server already behind the relay: kept as it is
    if tuple(args[:3]) == RELAY_ARGS and "--" in args:
        rest = args[args.index("--") + 1:]
        return rest[0], rest[1:]
    return entry.get("command"), args


def _kept_options(entry):
    """``{"--shadow": [paths], "--shadow-max-mb": value | None}`` an earlier rewrite of ``entry`` wrote."""
    args = list(entry.get("args") or [])
    kept = {"--shadow": [], "--shadow-max-mb": None, "--shadow-allow-network": False}
    if tuple(args[:3]) != RELAY_ARGS:
        return kept
    own = args[3:args.index("--")] if "--" in args else args[3:]
    kept["--shadow-allow-network"] = "--shadow-allow-network" in own
    for i, arg in enumerate(own[:-1]):
        if arg == "--shadow":
            kept["--shadow"].append(own[i + 1])
        elif arg == "--shadow-max-mb":
            kept["--shadow-max-mb"] = own[i + 1]
    return kept


def wrap_servers(config, project_dir, python=None, shadows=None, shadow_max_mb=None):
    """Return ``(new config dict, wrapped names, skipped {name: why})``. Pure.

    ``shadows``: ``{server name: [state paths]}`` to give those servers ``--shadow`` options
    (see the module docstring); ``shadow_max_mb``: number or None. Raises ValueError if
    ``config`` is not an ``{"mcpServers": {...}}`` object, or if ``shadows`` names a server
    the configuration does not have or one reached over HTTP.
    """
    if not isinstance(config, dict) or not isinstance(config.get("mcpServers", {}), dict):
        raise ValueError("not an MCP configuration: expected {\"mcpServers\": {...}}")
    python = python or sys.executable
    shadows = shadows or {}
    unknown = sorted(set(shadows) - set(config.get("mcpServers", {})))
    if unknown:
        raise ValueError(f"--shadow names servers that .mcp.json does not have: {', '.join(unknown)}")
    servers = {}
    wrapped, skipped = [], {}
    for name, entry in config.get("mcpServers", {}).items():
        if not isinstance(entry, dict):
            skipped[name] = "not an object"
            servers[name] = entry
            continue
        if entry.get("type") == "sse":
            skipped[name] = "an SSE server (the deprecated transport): not relayed"
            servers[name] = entry
            continue
        if entry.get("type") == "http" or "url" in entry:
            if name in shadows:
                raise ValueError(f"{name} is reached over HTTP: its state is not local, so it cannot be shadowed")
            url = entry.get("url")
            if not isinstance(url, str) or not url:
                skipped[name] = "no url"
                servers[name] = entry
                continue
            new = {k: v for k, v in entry.items() if k not in ("type", "url", "headers")}
            new["command"] = python
            headers = entry.get("headers") or {}
            if not isinstance(headers, dict):
                skipped[name] = "headers is not an object"
                servers[name] = entry
                continue
            new["args"] = [*RELAY_ARGS, "--name", name, "--project", os.path.abspath(project_dir), "--url", url]
            if headers:  # in the environment, not in arguments, which other users can read with ps
                new["env"] = dict(entry.get("env") or {}, DRYGATE_MCP_HEADERS=json.dumps(headers))
            servers[name] = new
            wrapped.append(name)
            continue
        command, args = _original(entry)
        if command is None and "--url" in args:
            servers[name] = entry
            wrapped.append(name)
            continue
        if not isinstance(command, str) or not command:
            skipped[name] = "no command"
            servers[name] = entry
            continue
        kept = _kept_options(entry)
        options = []
        paths = kept["--shadow"] + [os.path.abspath(os.path.join(project_dir, p)) for p in shadows.get(name, [])]
        for path in dict.fromkeys(paths):
            options += ["--shadow", path]
        limit = shadow_max_mb if shadow_max_mb is not None and paths else kept["--shadow-max-mb"]
        if limit is not None and paths:
            options += ["--shadow-max-mb", f"{float(limit):g}"]
        if kept["--shadow-allow-network"] and paths:
            options.append("--shadow-allow-network")
        new = dict(entry)
        new["command"] = python
        new["args"] = [*RELAY_ARGS, "--name", name, "--project", os.path.abspath(project_dir), *options, "--",
                       command, *args]
        servers[name] = new
        wrapped.append(name)
    return dict(config, mcpServers=servers), wrapped, skipped


def install_mcp(project_dir, python=None, shadows=None, shadow_max_mb=None):
    """Rewrite ``<project>/.mcp.json``; returns ``(path, wrapped, skipped)``.

    ``shadows``, ``shadow_max_mb``: as :func:`wrap_servers`. Raises ValueError if the file
    is missing or is not valid JSON, or for a ``shadows`` entry :func:`wrap_servers` refuses
    (the file is left untouched).
    """
    path = os.path.join(os.path.abspath(project_dir), ".mcp.json")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except FileNotFoundError as e:
        raise ValueError(f"no {path}: nothing to put behind the relay") from e
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); fix it first") from e
    new, wrapped, skipped = wrap_servers(config, project_dir, python, shadows, shadow_max_mb)
    backup = path + ".drygate-backup"
    if not os.path.exists(backup):
        shutil.copyfile(path, backup)
    tmp = path + ".drygate-tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(new, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return path, wrapped, skipped
