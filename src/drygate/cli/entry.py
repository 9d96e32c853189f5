"""``drygate`` console entry point.

``drygate hook ...`` goes straight to the lean hook module without importing the
CLI framework (click and rich cost tens of milliseconds per process), and
``drygate mcp ...`` to the relay's own click command (drygate.cli.mcp_cmd, without the
rest of the CLI: its connect time counts); every other command loads :mod:`drygate.cli.app`,
which lists ``mcp`` too.
"""

import sys


def main(argv=None):
    """Run the drygate CLI; returns the process exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["hook"]:
        if argv[1:2] != ["claude-code"]:
            sys.stderr.write("usage: drygate hook claude-code [--project DIR]\n")
            return 2
        from drygate.enforcement.claude_code import main as hook_main

        return hook_main(argv[1:])
    if argv[:1] == ["mcp"]:
        from drygate.cli.mcp_cmd import mcp

        return mcp.main(args=argv[1:], prog_name="drygate mcp", standalone_mode=True)
    from drygate.cli.app import cli

    return cli.main(args=argv, prog_name="drygate", standalone_mode=True)


if __name__ == "__main__":
    sys.exit(main())
