"""Class 2 of issue 11: bash builtins that run other commands, and the audit of every builtin.

Source: the bash manual (5.2), SHELL BUILTIN COMMANDS; the list of builtins comes from
the installed bash itself (``compgen -b``), so a builtin added to bash and missing from
the table fails here. Each member that runs a command is first run by the real bash.
"""

import subprocess

import pytest

from drygate.classifiers.data.commands import BUILTINS, COMMANDS
from drygate.classifiers.shell import classify_command_verdict

from .bash_probe import BASH, runs_code

pytestmark = pytest.mark.skipif(BASH is None, reason="bash is not installed")

#: Builtins read from the syntax tree rather than the table (they are in the table too,
#: as unknown, for the quoted or indirect forms the tree does not show).
SYNTAX = {"declare", "typeset", "local", "export", "readonly", "unset"}

MEMBERS = [
    "jobs -x touch pwn", "command touch pwn", "command -p touch pwn", "builtin eval 'touch pwn'",
    "exec touch pwn", "eval 'touch pwn'", "trap 'touch pwn' EXIT", "trap -- 'touch pwn' EXIT",
    "trap 'touch pwn' ERR; false", "trap 'touch pwn' DEBUG; :", "coproc touch pwn; wait",
    "compgen -C 'touch pwn' x", "compgen -W '$(touch pwn)' x", "echo 'touch pwn' > s; source s",
    "echo 'touch pwn' > s; . s", "printf 'x\\ny\\n' | mapfile -t -C 'touch pwn;:' -c 1 arr",
    "hash -p /usr/bin/touch ls; ls pwn", "sleep 0 & jobs -x touch pwn",
]


def test_every_bash_builtin_is_in_the_table():
    names = subprocess.run([BASH, "-c", "compgen -b"], capture_output=True, text=True, check=True).stdout.split()
    assert len(names) > 40
    missing = [n for n in names if n not in COMMANDS]
    assert not missing, f"builtins with no table entry (each needs its reason): {missing}"


def test_every_builtin_entry_gives_its_reason():
    for name, spec in BUILTINS.items():
        assert isinstance(spec, dict) and (spec.get("handler") or spec.get("why")), name


@pytest.mark.parametrize("snippet", MEMBERS)
def test_member_runs_a_command_in_bash(snippet):
    assert runs_code(snippet), f"bash did not run a command for {snippet!r}"


@pytest.mark.parametrize("snippet", MEMBERS)
def test_member_is_not_a_read(snippet):
    v = classify_command_verdict(snippet)
    assert v.effect != "read", v.steps


@pytest.mark.parametrize("command,expected", [
    ("jobs -x rm -rf build", "write"), ("jobs -x ls", "read"), ("jobs -l", "read"),
    ("command -v git", "read"), ("command ls", "read"), ("command rm x", "write"),
    ("builtin echo hi", "read"), ("exec 3>&1", "read"), ("exec rm x", "write"),
    ("trap 'rm -f /tmp/lock' EXIT", "write"), ("trap 'echo done' EXIT", "read"), ("trap - EXIT", "read"),
    ("trap -p", "read"), ("trap \"$CMD\" EXIT", "unknown"),
    ("enable", "read"), ("enable -a", "read"), ("enable -n echo", "unknown"), ("enable -f ./x.so x", "unknown"),
    ("ulimit -a", "read"), ("ulimit -n", "read"), ("ulimit -c unlimited", "unknown"),
    ("set -euo pipefail", "read"), ("set -x", "read"), ("set -o", "read"), ("set -- a b", "read"),
    ("set -a", "unknown"), ("set -k", "unknown"), ("set -o allexport", "unknown"), ("set -o history", "unknown"),
    ("shopt -s nullglob", "read"), ("shopt", "read"), ("shopt -s extdebug", "unknown"),
    ("hash", "read"), ("hash -r", "read"), ("hash -p /tmp/x ls", "unknown"),
    ("fc -l", "unknown"), ("bind -x '\"\\C-x\": touch pwn'", "unknown"), ("complete -C 'touch x' git", "unknown"),
    ("cd /tmp && ls", "read"), ("pushd /tmp", "read"), ("type ls", "read"), ("umask", "read"),
    ("umask 000", "write"), ("disown -a", "read"), ("kill -9 1234", "write"),
])
def test_builtin_table(command, expected):
    assert classify_command_verdict(command).effect == expected, classify_command_verdict(command).steps
