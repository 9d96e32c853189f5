// Measurement only (tests/e2e/test_mod_probe.py): a Claude Code mod (2.1.287+) that asks
// drygate's hook for the decision through $.process.run and, for a dry Bash call, answers
// with a Bash-shaped result instead of running the tool. Not a drygate enforcement point.
export function register(on, options) {
  on('tool.call', async ($, e, next) => {
    const event = JSON.stringify({session_id: 'mod-probe', hook_event_name: 'PreToolUse', tool_name: e.tool,
                                  tool_input: e, tool_use_id: e.tool_use_id, cwd: '.'})
    const ran = await $.process.run(['sh', '-c', 'printf %s "$1" | drygate-hook claude-code --project .', 'sh', event], {})
    if (ran.exitCode === 0) return next(e)
    let reason = ran.stderr
    try { reason = JSON.parse(ran.stdout).hookSpecificOutput.permissionDecisionReason } catch (err) {}
    if (reason.includes('NOT EXECUTED') && e.tool === 'Bash') {
      return { result: { stdout: reason, stderr: '', interrupted: false } }
    }
    return { deny: reason }
  }).catch(($, e, next) => ({ deny: 'drygate mod probe failed: call blocked' }))
}
