"""drygate for the Claude Agent SDK: PreToolUse and PostToolUse callbacks, in-process.

    from claude_agent_sdk import ClaudeAgentOptions, query
    from drygate.adapters.claude_agent_sdk import drygate_hooks

    options = ClaudeAgentOptions(hooks=drygate_hooks(project="/srv/app"), setting_sources=[])

The settings hook that ``drygate init`` installs lives in ``.claude/settings.json``, which the
SDK does not read with ``setting_sources=[]`` (its default in several versions): an agent
built with the SDK then runs ungated. :func:`drygate_hooks` gives the SDK the same enforcement
point as callbacks (``HookMatcher(matcher=None, hooks=[...], on_failure="block")``, checked
against claude-agent-sdk 0.2.189 and its bundled CLI 2.1.332), so they apply whatever the
setting sources:

- the callback gets the same JSON the command hook gets and is decided by the same code
  (:func:`drygate.enforcement.claude_code.handle`: Claude Code's tool knowledge, the shell and
  SQL classifiers, self-protection, the run's file shadow for Write/Edit/Read), journaled
  as host ``claude-code`` (the same tools, so ``drygate plan``/``apply`` treat them alike); its answer is the hook's own JSON (``permissionDecision: "deny"`` with
  drygate's "DRY RUN - NOT EXECUTED" reason for a dry call);
- the run is the SDK session (``session_id``; fix it up front with
  ``ClaudeAgentOptions(session_id=...)``) unless ``run_id`` or ``DRYGATE_RUN_ID`` names one;
- any failure of the gate is a deny plus a guard-failure alert, and ``on_failure="block"``
  makes the CLI block the call even if the callback itself crashed or timed out.
"""

import os

def drygate_hooks(project=None, *, mode=None, run_id=None, env=None, timeout_s=30):
    """The ``hooks`` mapping for ``ClaudeAgentOptions`` (PreToolUse and PostToolUse).

    ``project``: the project folder (its drygate.toml and store; default: found from the
    current directory); ``mode``: the mode runs ask for (never looser than the policy);
    ``run_id``: one run for every session (default: each session is its run);
    ``env``: where ``DRYGATE_*`` are read (default ``os.environ``); ``timeout_s``: the
    matcher's timeout (the CLI blocks the call when it passes, as ``on_failure="block"``).
    Raises ConfigError for an invalid mode.
    """
    from claude_agent_sdk import HookMatcher

    from drygate import config
    from drygate.types import stricter_mode

    settings = config.resolve(dict(os.environ if env is None else env),
                              project_dir=os.fspath(project) if project is not None else None)
    if mode is not None:
        if mode not in ("live", "sticky", "dry"):
            from drygate.errors import ConfigError

            raise ConfigError(f"mode must be one of live, sticky, dry, not {mode!r}")
        settings.mode = stricter_mode(settings.mode, mode) if settings.mode else mode
    if run_id is not None:
        settings.run_id = str(run_id)

    async def pre_tool_use(input_data, tool_use_id, context):
        return _answer(dict(input_data), settings, "PreToolUse")

    async def post_tool_use(input_data, tool_use_id, context):
        return _answer(dict(input_data), settings, "PostToolUse")

    return {
        "PreToolUse": [HookMatcher(matcher=None, hooks=[pre_tool_use], timeout=timeout_s, on_failure="block")],
        "PostToolUse": [HookMatcher(matcher=None, hooks=[post_tool_use], timeout=timeout_s, on_failure="block")],
    }


def _answer(event, settings, event_name):
    """Decide one callback's event with the Claude Code enforcement point; returns its JSON (dict)."""
    import json

    from drygate.enforcement import claude_code

    event.setdefault("hook_event_name", event_name)
    try:
        answer = claude_code.handle(event, settings, None, lean=False)  # in-process: like the relay
    except Exception as e:  # fail closed: a deny the CLI honours, and a guard-failure alert
        cause = getattr(e, "error", e)  # handle() carries the original error with its policy and call
        answer = claude_code.fail_closed(cause, settings, getattr(e, "policy", None), getattr(e, "call", None),
                                         event_name)
    store = getattr(answer, "store", None)
    if store is not None:  # the hook leaves its store open for a process that ends; this one goes on
        try:
            store.close()
        except Exception:
            pass
    try:
        body = json.loads(answer.stdout or "{}")
    except ValueError:
        body = {}
    if event_name == "PreToolUse" and getattr(answer, "code", 0) == 2 and not body:
        body = {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                       "permissionDecisionReason": answer.stderr or "drygate blocked this call"}}
    return body
