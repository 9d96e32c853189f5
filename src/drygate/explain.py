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


def explain_command(command, policy=None, settings=None, cwd=None):
    """``{"command", "effect", "steps", "tamper"}`` for a Bash command (str).

    With ``settings`` (:class:`drygate.config.Settings`) self-protection runs too, as
    the hook runs it for a call made in ``cwd`` (default: the current folder): a command
    that would change the gate gets ``tamper: True``, ``action: "deny"`` and ``reason``,
    the text the hook denies it with.
    """
    from drygate.classifiers.shell import classify_command_verdict

    v = classify_command_verdict(command, policy)
    answer = {"command": command, "effect": v.effect, "steps": list(v.steps) or [v.effect], "tamper": False}
    if settings is not None:
        call = explain_call("Bash", {"command": command}, policy, settings, cwd=cwd or os.getcwd())
        if call["tamper"]:
            from drygate.engine import explain

            why = call["steps"][0] if len(call["steps"]) == 1 else " -> ".join(call["steps"])
            answer.update(tamper=True, action="deny",
                          reason=explain("Bash", {"command": command}, v.effect, why, "deny", "explain", False,
                                         None, None, tamper=True))
    return answer


def explain_call(tool_name, tool_input, policy, settings=None, cwd=None):
    """``{"tool_name", "effect", "steps", "rule_id", "dry_scope", "action", "tamper"}`` for a tool call.

    Runs the engine's classification (policy rules, built-in knowledge,
    self-protection) without deciding or journaling anything. ``cwd``: the folder the
    call is made in (default: the project folder with ``settings``, else the current one).
    """
    from drygate.engine import classify
    from drygate.types import ToolCall

    protected = None
    folder = cwd or os.getcwd()
    if settings is not None:
        folder = cwd or settings.project_dir
        from drygate.gate import protected_state_file

        protected = (settings.project_dir, settings.policy_path,
                     protected_state_file(settings, settings.state_path_for(policy)), settings.alert_log_for(policy))
    call = ToolCall(tool_name, tool_input, "explain", cwd=folder, host="explain")
    cls = classify(call, policy, protected)
    return {"tool_name": tool_name, "effect": cls.effect, "steps": cls.reason.split(" -> "), "rule_id": cls.rule_id,
            "dry_scope": cls.dry_scope, "action": cls.action, "tamper": cls.tamper}
