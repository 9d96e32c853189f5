"""``drygate explain``: how a command or a tool call is classified, step by step.

The steps are the same chain the hook's deny reason and the plan show (the
classification's reason, ``a -> b -> c``), so what ``explain`` prints is what the
gate will say.
"""

import os


def load_policy_for(settings, policy_file=None):
    """The policy to explain with: ``policy_file``, else the project's, else the template."""
    from drygate.policy.load import compile_policy_text, default_policy_text, load_policy_file

    if policy_file:
        return load_policy_file(policy_file)
    if settings is not None and os.path.exists(settings.policy_path):
        return load_policy_file(settings.policy_path)
    return compile_policy_text(default_policy_text(), source="<built-in template>")


def explain_command(command, policy=None):
    """``{"command", "effect", "steps"}`` for a Bash command (str)."""
    from drygate.classifiers.shell import classify_command_verdict

    v = classify_command_verdict(command, policy)
    return {"command": command, "effect": v.effect, "steps": list(v.steps) or [v.effect]}


def explain_call(tool_name, tool_input, policy, settings=None):
    """``{"tool_name", "effect", "steps", "rule_id", "dry_scope", "action", "tamper"}`` for a tool call.

    Runs the engine's classification (policy rules, built-in knowledge,
    self-protection) without deciding or journaling anything.
    """
    from drygate.engine import classify
    from drygate.types import ToolCall

    protected = None
    cwd = os.getcwd()
    if settings is not None:
        cwd = settings.project_dir
        from drygate.gate import protected_state_file

        protected = (settings.project_dir, settings.policy_path,
                     protected_state_file(settings, settings.state_path_for(policy)), settings.alert_log_for(policy))
    call = ToolCall(tool_name, tool_input, "explain", cwd=cwd, host="explain")
    cls = classify(call, policy, protected)
    return {"tool_name": tool_name, "effect": cls.effect, "steps": cls.reason.split(" -> "), "rule_id": cls.rule_id,
            "dry_scope": cls.dry_scope, "action": cls.action, "tamper": cls.tamper}
