"""``drygate mcp``: parse the command line and put a relay together (the composition root).

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


def _parser():
    import argparse

    parser = argparse.ArgumentParser(prog="drygate mcp", description="Run an MCP server behind the drygate relay.")
    parser.add_argument("--name", default=None, help="the server's name as the agent sees it (mcp__NAME__tool)")
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="several servers behind one relay, from an mcpServers JSON file")
    parser.add_argument("--project", default=None, help="project folder (policy and state)")
    parser.add_argument("--http", default=None, metavar="[HOST:]PORT",
                        help="serve streamable HTTP on this address (default host 127.0.0.1) instead of stdio")
    parser.add_argument("--url", default=None, help="the MCP server's streamable HTTP endpoint (instead of a command)")
    parser.add_argument("--header", action="append", default=[], metavar="NAME: VALUE",
                        help="an HTTP header for the --url server (repeatable); for credentials prefer the "
                             "DRYGATE_MCP_HEADERS environment variable (a JSON object): arguments show in `ps`")
    parser.add_argument("--metrics", default=None, metavar="[HOST:]PORT",
                        help="also serve Prometheus metrics of the gate's health on this address (default host "
                             "127.0.0.1); with --http they are at /metrics on the relay's own address as well")
    parser.add_argument("--shadow", action="append", default=[], metavar="PATH",
                        help="the server's local state (a folder, a SQLite file, a JSONL file, a git repository; "
                             "repeatable): a dry run's calls go to a second instance of the server on the run's own "
                             "copy of it, so the run reads its own writes (drygate.relay.shadow)")
    parser.add_argument("--shadow-max-mb", type=float, default=None, metavar="MB",
                        help="largest state copied for a shadow (default 1024); a larger one gives plain dry results")
    parser.add_argument("--shadow-allow-network", action="store_true",
                        help="let the shadow server use the network (by default it runs in a network namespace of "
                             "its own): only for a server whose every effect is on the --shadow paths")
    parser.add_argument("--no-trust", action="store_true",
                        help="on first use, record that this server's tool annotations are NOT trusted (by default "
                             "they are, and drygate.toml says so in [mcp] trusted_servers)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- followed by the MCP server's command")
    return parser


def main(argv=None):
    """``drygate mcp --name SERVER [--project DIR] [--shadow PATH...] -- COMMAND...``; returns an exit status."""
    parser = _parser()
    args = parser.parse_args(sys.argv[2:] if argv is None else argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if (args.shadow or args.shadow_max_mb is not None or args.shadow_allow_network) and (args.config or args.url):
        parser.error("--shadow needs a server started by the relay (a command after --), not --config or --url")
    if args.shadow_max_mb is not None and not args.shadow_max_mb > 0:
        parser.error("--shadow-max-mb must be a positive number")
    if args.config:
        if command or args.url or args.name:
            parser.error("--config names its servers itself: no --name, --url or command")
    elif bool(command) == bool(args.url):
        parser.error("give either the MCP server's command after --, or --url")
    elif not args.name:
        parser.error("--name is required")
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
            parser.error(str(e))
        names = list(servers)
    else:
        names = [args.name]
        headers = {}
        if os.environ.get("DRYGATE_MCP_HEADERS"):
            try:
                headers = dict(json.loads(os.environ["DRYGATE_MCP_HEADERS"]))
            except (ValueError, TypeError):
                parser.error("DRYGATE_MCP_HEADERS must be a JSON object of header names and values")
        for header in args.header:
            name, sep, value = header.partition(":")
            if not sep or not name.strip():
                parser.error(f"--header wants 'NAME: VALUE', not {header!r}")
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
            parser.error(f"--metrics wants [HOST:]PORT, not {args.metrics!r}")
        try:
            server = serve_in_thread(make_registry(settings), host, port)
        except OSError as e:
            parser.error(f"--metrics: cannot listen on {host}:{port}: {e.strerror or e}")
        sys.stderr.write(f"drygate mcp: metrics on http://{host}:{server.server_port}/metrics\n")
        sys.stderr.flush()
    if args.http:
        from drygate.relay.http import parse_address, serve_http

        try:
            host, port = parse_address(args.http)
        except ValueError:
            parser.error(f"--http wants [HOST:]PORT, not {args.http!r}")
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
