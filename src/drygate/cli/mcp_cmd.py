"""``drygate mcp``: the relay's command line, one click command of the drygate CLI.

It is listed by ``drygate --help`` and shell completion like every other command
(drygate.cli.app adds it), and drygate.cli.entry also calls it directly for ``drygate mcp
...`` so a relay's start does not load the rest of the CLI (rich, the other commands): this
module imports click and the standard library only. The relay itself is put together by
drygate.relay.main.
"""

import sys
import types

import click

CONTEXT = {"ignore_unknown_options": True, "allow_interspersed_args": False, "help_option_names": ["-h", "--help"]}


@click.command("mcp", context_settings=CONTEXT)
@click.option("--name", default=None, help="The server's name as the agent sees it (mcp__NAME__tool).")
@click.option("--config", default=None, metavar="FILE",
              help="Several servers behind one relay, from an mcpServers JSON file.")
@click.option("--project", default=None, help="Project folder (policy and state).")
@click.option("--http", default=None, metavar="[HOST:]PORT",
              help="Serve streamable HTTP on this address (default host 127.0.0.1) instead of stdio.")
@click.option("--url", default=None, help="The MCP server's streamable HTTP endpoint (instead of a command).")
@click.option("--header", multiple=True, metavar="'NAME: VALUE'",
              help="An HTTP header for the --url server (repeatable); for credentials prefer the DRYGATE_MCP_HEADERS "
                   "environment variable (a JSON object): arguments show in `ps`.")
@click.option("--metrics", default=None, metavar="[HOST:]PORT",
              help="Also serve Prometheus metrics of the gate's health on this address (default host 127.0.0.1); "
                   "with --http they are at /metrics on the relay's own address as well.")
@click.option("--shadow", multiple=True, metavar="PATH",
              help="The server's local state (a folder, a SQLite file, a JSONL file, a git repository; repeatable): a "
                   "dry run's calls go to a second instance of the server on the run's own copy of it, so the run "
                   "reads its own writes.")
@click.option("--shadow-max-mb", type=float, default=None, metavar="MB",
              help="Largest state copied for a shadow (default 1024); a larger one gives plain dry results.")
@click.option("--shadow-allow-network", is_flag=True,
              help="Let the shadow server use the network (by default it runs without one): only for a server whose "
                   "every effect is on the --shadow paths.")
@click.option("--no-trust", is_flag=True,
              help="On first use, record that this server's tool annotations are NOT trusted (by default they are, "
                   "and drygate.toml says so in [mcp] trusted_servers).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def mcp(**options):
    """Run an MCP server behind the drygate relay: drygate mcp --name NAME -- COMMAND...

    Every message the client sends is decided by the gate; in a dry run a write is answered
    "not executed" and becomes a step of the run's plan."""
    from drygate.relay.main import main

    def error(message):
        raise click.UsageError(message)

    options = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}
    if options["command"][:1] == ["--"]:
        options["command"] = options["command"][1:]
    sys.exit(main(types.SimpleNamespace(**options), error))
