"""Package runners (issue 16): npx, npm exec, pnpm exec/dlx, yarn exec/dlx, bunx (bun x), uvx
(uv tool run) and pipx run are classified as the command they resolve and run, when they
only resolve and run it; the options their documentation says install other packages, build
them, run their scripts or change where the code comes from make the call unknown (treated
as a write), and any option the table does not list too (drygate.classifiers.data.commands
.PACKAGE_RUNNERS)."""

import pytest

from drygate.classifiers.shell import classify_command

READ_CMD = 'wrangler d1 execute db --command "SELECT 1"'
WRITE_CMD = 'wrangler d1 execute db --command "DELETE FROM t"'
RUNNERS = ["npx", "npx --yes", "npx -y", "npx --no", "npx -q", "npx --prefer-offline", "npx -w app", "npx --",
           "npm exec --", "npm exec", "npm x --", "pnpm exec", "pnpm exec -r", "pnpm --filter app exec",
           "pnpm dlx", "pnpx", "yarn exec", "yarn dlx", "yarn dlx -q", "bunx", "bunx --bun", "bun x",
           "uvx", "uvx --python 3.12", "uv tool run", "uvx --isolated", "pipx run", "pipx run --no-cache"]


@pytest.mark.parametrize("runner", RUNNERS)
def test_the_wrapped_command_decides(runner):
    assert classify_command(f"{runner} {READ_CMD}").effect == "read"
    # yarn exec joins its arguments into a shell script, so the quoting is gone (unknown SQL).
    assert classify_command(f"{runner} {WRITE_CMD}").effect in (("write", "unknown") if "yarn exec" in runner
                                                                else ("write",))


@pytest.mark.parametrize("runner", ["npx", "pnpm dlx", "yarn dlx", "bunx", "uvx"])
def test_a_pinned_version_is_the_same_program(runner):
    assert classify_command(f"{runner} wrangler@3.90.0 {READ_CMD[9:]}").effect == "read"
    reason = classify_command(f"{runner} wrangler@3 {READ_CMD[9:]}").reason
    assert "installing wrangler@3 into its own cache first" in reason and "install scripts" in reason


@pytest.mark.parametrize("command", [
    # Options that install other packages, build them, run their scripts, or fetch the code elsewhere.
    "npx -p left-pad wrangler kv key get k", "npx --package=left-pad wrangler kv key get k",
    "npx -pleft-pad wrangler kv key get k", "npx --ignore-existing wrangler kv key get k",
    "npx --registry http://127.0.0.1:9/ wrangler kv key get k", "npx --node-options=--require=x wrangler whoami",
    "npx --userconfig ./npmrc wrangler whoami", "npm exec --package=x -- wrangler kv key get k",
    "pnpm dlx --package x wrangler kv key get k", "pnpm dlx --allow-build=esbuild wrangler kv key get k",
    "yarn dlx -p x wrangler kv key get k", "bunx -p x wrangler kv key get k",
    "uvx --from httpie http GET http://x", "uvx --with plugin ruff check", "uvx --index-url http://x ruff",
    "uv tool run --with-editable . ruff", "pipx run --spec black black .", "pipx run --pip-args=-U black .",
    "pipx run --editable . tool", "pipx run --index-url http://x black",
    # Options the table does not list, clusters it cannot split, run-time words, and packages that
    # do not name their program.
    "npx --some-new-flag wrangler kv key get k", "npx -yp x wrangler kv key get k", "npx $TOOL kv key get k",
    "npx wrangler kv key get $KEY_FROM_SHELL_ONLY_AT_RUNTIME", "npx @cloudflare/wrangler kv key get k",
    "npx ./bin/tool", "npx github:user/repo", "uvx git+https://x/y", "bun run build", "bun script.ts",
    "npx", "uvx",
])
def test_install_and_unknown_forms_are_not_reads(command):
    effect = classify_command(command).effect
    assert effect in ("unknown", "write"), (command, effect)


@pytest.mark.parametrize("command, effect", [
    ('npx -c "ls -la"', "read"), ('npx --call="rm -rf dist"', "write"), ("npx -c 'ls' wrangler", "read"),
    ('pnpm exec -c "cat a.txt"', "read"), ("pnpm exec --shell-mode rm x", "write"),
    ('yarn exec "ls && rm -rf x"', "write"), ("yarn exec ls -la", "read"),
    ('pnpm dlx -c "ls"', "read"),
])
def test_shell_string_forms_are_classified_as_scripts(command, effect):
    assert classify_command(command).effect == effect


def test_other_subcommands_keep_their_effect():
    assert classify_command("pipx install black").effect == "write"
    assert classify_command("pipx list").effect == "read"
    assert classify_command("npm run build").effect == "unknown"
