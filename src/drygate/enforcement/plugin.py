"""The Claude Code plugin (plugins/drygate in the repository, listed by the marketplace in
``.claude-plugin/marketplace.json``): the same gate as ``drygate init``, for every tool.

A plugin cannot name an interpreter path, so its hooks run ``drygate-hook`` (a console
script of the installed package, drygate.enforcement.claude_code:exit_main) from ``PATH``,
inside the same fail-closed wrapper ``drygate init`` installs
(drygate.enforcement.install.fail_closed_command): drygate missing (exit 127), crashing or
exiting with any status but 0 and 2 blocks the call with a guard-failure alert.

``onFailure: "block"`` (Claude Code 2.1.295 and later) makes the host itself block when
the hook cannot start, times out or exits oddly; an older CLI may refuse a hooks file that
carries it, so it is written only in :func:`plugin_hooks` with ``on_failure=True`` (see
tests/e2e/test_plugin_e2e.py for what each pinned CLI does with it).
"""

from drygate.enforcement.install import EVENTS, HOOK_TIMEOUT_S, fail_closed_command

HOOK = 'drygate-hook claude-code --project "${CLAUDE_PROJECT_DIR:-$PWD}"'


def plugin_hooks(on_failure=True):
    """The plugin's ``hooks/hooks.json`` (dict): one command hook for every tool (matcher
    ``*``) on PreToolUse and PostToolUse, as ``drygate init`` installs."""
    handler = {"type": "command", "command": fail_closed_command(HOOK), "timeout": HOOK_TIMEOUT_S}
    if on_failure:
        handler["onFailure"] = "block"
    return {"description": "drygate: every tool call through the dry-run gate; a failing gate blocks",
            "hooks": {event: [{"matcher": "*", "hooks": [dict(handler)]}] for event in EVENTS}}
