"""``drygate mcp``: put a relay together from its parsed options (the composition root; the
options are parsed by drygate.cli.mcp_cmd, a command of the one drygate CLI).

The only module that knows every feature: it makes the core relay
(drygate.relay.core) or the aggregating one (drygate.relay.aggregate), plugs the
features in as routes (store overlays, shadow servers), and serves stdio or HTTP
(drygate.relay.http, one relay per session).
"""

import asyncio
import json
import os
import sys

from drygate.relay.downstream import LINE_LIMIT


def main(args, error):
    """Serve one relay as ``drygate mcp`` was asked to (see drygate.cli.mcp_cmd for the options);
    returns an exit status.

    ``args``: the parsed options (attributes named as the options: ``name``, ``config``,
    ``project``, ``http``, ``url``, ``header``, ``metrics``, ``shadow``, ``shadow_max_mb``,
    ``shadow_allow_network``, ``no_trust``, ``command``: the server's command as a list);
    ``error(message)``: reports a usage error and does not return (click's UsageError).
    """
    command = list(args.command)
    if (args.shadow or args.shadow_max_mb is not None or args.shadow_allow_network) and (args.config or args.url):
        error("--shadow needs a server started by the relay (a command after --), not --config or --url")
    if args.shadow_max_mb is not None and not args.shadow_max_mb > 0:
        error("--shadow-max-mb must be a positive number")
    if args.config:
        if command or args.url or args.name:
            error("--config names its servers itself: no --name, --url or command")
    elif bool(command) == bool(args.url):
        error("give either the MCP server's command after --, or --url")
    elif not args.name:
        error("--name is required")
    from drygate.config import resolve
    from drygate.relay.identity import run_id_from_env

    settings = resolve(os.environ, project_dir=args.project)
    fixed = bool(os.environ.get("DRYGATE_RUN_ID"))
    shadow = None
    if args.config:
        from drygate.relay.aggregate import load_config

        try:
            servers = load_config(args.config)
        except (OSError, ValueError) as e:
            error(str(e))
        names = list(servers)
    else:
        names = [args.name]
        headers = {}
        if os.environ.get("DRYGATE_MCP_HEADERS"):
            try:
                headers = dict(json.loads(os.environ["DRYGATE_MCP_HEADERS"]))
            except (ValueError, TypeError):
                error("DRYGATE_MCP_HEADERS must be a JSON object of header names and values")
        for header in args.header:
            name, sep, value = header.partition(":")
            if not sep or not name.strip():
                error(f"--header wants 'NAME: VALUE', not {header!r}")
            headers[name.strip()] = value.strip()
        shadow = None
        if args.shadow:
            from drygate.overlay.shadow import DEFAULT_MAX_BYTES, ShadowConfig

            max_bytes = DEFAULT_MAX_BYTES if args.shadow_max_mb is None else int(args.shadow_max_mb * 1048576)
            shadow = ShadowConfig(args.shadow, max_bytes, network=args.shadow_allow_network)

    def make_relay(run_id, fixed_run):
        """A relay for one client connection (stdio) or one HTTP session."""
        if args.config:
            from drygate.relay.aggregate import Aggregator

            relay = Aggregator(settings, servers, run_id, fixed_run=fixed_run)
            relay.server = "+".join(servers)
            return relay
        from drygate.relay.core import Relay
        from drygate.relay.overlays import OverlayRoute

        relay = Relay(settings, args.name, command, run_id, url=args.url, headers=headers, fixed_run=fixed_run)
        relay.add_route(OverlayRoute(relay))  # the policy's store overlays of this server
        if shadow is not None and shadow.paths:
            from drygate.overlay.shadow import shadow_root
            from drygate.relay.shadow import ShadowRoute

            relay.add_route(ShadowRoute(relay, shadow, shadow_root(settings.project_dir)))
        return relay

    if not (command and not _command_exists(command[0])):  # a server that cannot start is not "used"
        _record_trust(settings, names, trusted=not args.no_trust)
    if args.metrics:
        from drygate.metrics import make_registry, serve_in_thread
        from drygate.relay.http import parse_address

        try:
            host, port = parse_address(args.metrics)
        except ValueError:
            error(f"--metrics wants [HOST:]PORT, not {args.metrics!r}")
        try:
            server = serve_in_thread(make_registry(settings), host, port)
        except OSError as e:
            error(f"--metrics: cannot listen on {host}:{port}: {e.strerror or e}")
        sys.stderr.write(f"drygate mcp: metrics on http://{host}:{server.server_port}/metrics\n")
        sys.stderr.flush()
    if args.http:
        from drygate.relay.http import parse_address, serve_http

        try:
            host, port = parse_address(args.http)
        except ValueError:
            error(f"--http wants [HOST:]PORT, not {args.http!r}")
        if command and not _command_exists(command[0]):
            sys.stderr.write(f"drygate: cannot start the MCP server {args.name!r} ({' '.join(command)}): "
                             f"command not found\n")
            return 1
        run_id = os.environ.get("DRYGATE_RUN_ID") or None  # else a run per session
        asyncio.run(serve_http(make_relay, settings, " + ".join(names), host, port, run_id))
        return 0
    relay = make_relay(run_id_from_env(os.environ), fixed)
    # stdout carries the protocol and nothing else: anything else printed goes to stderr.
    protocol_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    relay.out = protocol_out

    async def run():
        loop = asyncio.get_running_loop()
        if shadow is not None and not args.config:
            # A host that ends the relay with SIGTERM or SIGHUP still gets the run's shadows removed
            # (serve's cleanup runs); SIGKILL leaves them to `drygate prune`.
            import signal

            task = asyncio.current_task()
            for sig in (signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(sig, task.cancel)
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        await relay.serve(reader)

    try:
        asyncio.run(run())
    except asyncio.CancelledError:
        return 128 + 15  # ended by a signal, after cleaning up
    return 1 if getattr(relay, "start_error", None) else 0


def _command_exists(program):
    import shutil

    return bool(shutil.which(program)) or (os.sep in program and os.access(program, os.X_OK))


def _record_trust(settings, servers, trusted):
    """First use of a server: record in drygate.toml whether its annotations are trusted, and say so."""
    from drygate.relay.trust import bless_policy, record_first_use

    try:
        message = record_first_use(settings.policy_path, servers, trusted, on_written=lambda: bless_policy(settings))
    except OSError as e:
        message = f"drygate mcp: could not record the trust of {', '.join(servers)} in {settings.policy_path}: {e}"
    if message:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
