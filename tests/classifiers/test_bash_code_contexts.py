"""Class 1 of issue 11: text bash evaluates as code in arithmetic and name contexts.

The members come from the bash manual (5.2): ARITHMETIC EVALUATION, Arrays, Parameter
Expansion, SHELL BUILTIN COMMANDS (docs/classifiers.md lists them with their sources).
Each member is first run by the real bash in a throwaway folder to prove that it runs
code (``touch pwn``); then the classifier must not call it a read. Ordinary uses of the
same contexts must stay reads.
"""

import pytest

from drygate.classifiers.bash_names import arith_problem, name_problem, Facts
from drygate.classifiers.shell import classify_command_verdict

from .bash_probe import BASH, P, runs_code

pytestmark = pytest.mark.skipif(BASH is None, reason="bash is not installed")

# Every member runs `touch pwn` in bash 5.2 although no command is written as a command.
MEMBERS = [
    # (( )), $(( )), $[ ], for (( )), let: ARITHMETIC EVALUATION
    f"let '{P}=1'", f"let x='{P}'", f"(( {P} ))", f"(( '{P}' ))", f"echo $(( '{P}' ))", f"echo $[ '{P}' ]",
    f"for ((i='{P}';i<0;i++)); do :; done", f"case 1 in $(( '{P}' ))) ;; esac",
    # [[ ]] integer comparisons evaluate both operands (test/[ do not)
    f"[[ '{P}' -eq 0 ]]", f"[[ 1 -ne '{P}' ]]", f"[[ 1 -lt '{P}' ]]", f"[[ 1 -le '{P}' ]]",
    f"[[ 1 -gt '{P}' ]]", f"[[ 1 -ge '{P}' ]]",
    # -v / -R take a name whose subscript is evaluated, in test, [ and [[
    f"test -v '{P}'", f"[ -v '{P}' ]", f"[[ -v '{P}' ]]",
    # array subscripts in words, assignments and compound assignments
    f"echo ${{a['$(touch pwn)']}}", f"echo \"${{a['$(touch pwn)']}}\"", f"a=(1 2 3); echo ${{#a['$(touch pwn)']}}",
    f"a=(1 2 3); echo ${{!a['$(touch pwn)']}}", "declare -a a; a['$(touch pwn)']=1", "a=(['$(touch pwn)']=1)",
    "a=(1); a+=(['$(touch pwn)']=2)", "a=(1); a['$(touch pwn)']+=2",
    # ${x:offset:length}
    f"x=abcdef; echo ${{x:'{P}'}}", f"x=abcdef; echo ${{x:0:'{P}'}}", f"a=(1 2 3); echo ${{a[@]:'{P}'}}",
    # indirection and prompt expansion
    f"x='{P}'; echo ${{!x}}", "x='$(touch pwn)'; echo ${x@P}",
    # builtins that assign through a name
    f"read '{P}' </dev/null", f"printf x | read -r '{P}'", f"printf -v '{P}' x",
    f"sleep 0 & wait -n -p '{P}'", f"a=(1 2 3); unset '{P}'", f"a=(1 2 3); unset -v '{P}'",
    f"builtin printf -v '{P}' x",
    # declarations: -i makes every assignment arithmetic, -n makes a name refer to any element,
    # -a/-A with quoted text is a compound assignment
    f"declare -i n='{P}'", f"typeset -i n='{P}'", f"declare -i n; n='{P}'", f"declare -i n=0; n+='{P}'",
    f"f(){{ local -i n='{P}'; }}; f", f"declare -n r='{P}'; echo $r", f"declare -n r; r='{P}'; echo $r",
    f"declare '{P}=1'", "declare -a a='([$(touch pwn)]=1)'", "declare -A m='([$(touch pwn)]=1)'",
    f"f(){{ a=(1); local '{P}'=1; }}; f",
    # a variable the script filled with text, evaluated later as arithmetic
    f"x='{P}'; echo $((x))", f"x='{P}'; echo $(($x))", f"x='{P}'; echo $(( x + 1 ))", f"x='{P}'; (( x ))",
    f"x='{P}'; [[ $x -eq 0 ]]", f"x='{P}'; echo ${{a[x]}}", f"x='{P}'; a[x]=1", f"y=abc; x='{P}'; echo ${{y:x}}",
    f"x='{P}'; declare -i y=x", f"x='{P}'; let y=x", f"x='{P}'; for ((i=x;i<0;i++)); do :; done",
    f"printf -v y '{P}'; echo $((y))", f"echo '{P}' > f; read v < f; echo $((v))",
    f"echo '{P}' > f; read -r v < f; [[ $v -gt 1 ]]", f"echo '{P}' | {{ read x; echo ${{a[x]}}; }}",
    f"set -- '{P}'; echo $(($1))", r"x=a[\$\(touch\ pwn\)]; : $((x))", f"x='{P}'; y=$x; echo $((y))",
    f"x='{P}'; export -n x; echo $((x))",
    # a variable set in the outer script, evaluated by a nested one
    f"export x='{P}'; bash -c 'echo $((x))'", f"x='{P}'; trap 'echo $((x))' EXIT",
]

# Ordinary uses of the same contexts: they must stay reads.
READS = [
    "echo $((1 + 2))", "echo $(( 0x10 + 2#101 + 16#ff + 010 ))", "x=5; echo $((x * 2))", "let i++",
    "for ((i=0;i<3;i++)); do echo $i; done", "i=0; while [ $i -lt 3 ]; do i=$((i+1)); done",
    "count=0; count=$((count + 1)); echo $count", "for i in 1 2 3; do echo $((i*2)); done",
    "a=(1 2 3); echo ${a[1]} ${#a[@]} ${a[@]:1:2} ${!a[@]}", "echo ${HOME:0:5}", "[[ $# -eq 0 ]] && echo none",
    "[[ -v HOME ]]", "test -v HOME", "declare -i n=5; n=n+1", "read -r line < f; echo \"$line\"",
    "unset x y", "declare -A m=([k]=v); echo ${m[k]}", "printf -v out '%s' hi", "set -euo pipefail; ls",
    "[ \"$x\" -eq 0 ]", "mapfile -t lines < f", "getopts ab opt",
    "for f in *.txt; do echo $((${#f}+1)); done",
]


@pytest.mark.parametrize("snippet", MEMBERS)
def test_member_runs_code_in_bash(snippet):
    """The class list is bash's behaviour: each member really runs `touch pwn`."""
    assert runs_code(snippet), f"bash did not run code for {snippet!r}: not a member of the class"


@pytest.mark.parametrize("snippet", MEMBERS)
def test_member_is_not_a_read(snippet):
    v = classify_command_verdict(snippet)
    assert v.effect != "read", v.steps


@pytest.mark.parametrize("snippet", READS)
def test_ordinary_arithmetic_stays_a_read(snippet):
    v = classify_command_verdict(snippet)
    assert v.effect == "read", v.steps


@pytest.mark.parametrize("text,ok", [
    ("1 + 2", True), ("x++", True), ("a[i] * 2", True), ("0x1f | 2#101", True), ("$# > 0", True), ("${n}", True),
    ("'1'", False), ("a[$(id)]", False), ("a['x']", False), ("`id`", False), ("$1", False), ("\\x", False),
    ("REPLY", False), ("${x:-1}", False), ("$(( 1 ))", False), (None, False),
])
def test_arithmetic_checker(text, ok):
    assert (arith_problem(text, Facts()) is None) is ok


@pytest.mark.parametrize("text,ok", [("x", True), ("a[1]", True), ("a[i+1]", True), (P, False),
                                     ("a['1']", False), ("1x", False), (None, False)])
def test_name_checker(text, ok):
    assert (name_problem(text, Facts()) is None) is ok


@pytest.mark.parametrize("snippet", [
    f"x=$1; echo $((x))", f"x=$@; echo $((x))", f"command test -v '{P}'", f"builtin read '{P}'",
    f"sudo read '{P}'", f"time let '{P}=1'", f"! let '{P}=1'", f"if let '{P}=1'; then :; fi",
    f"read -ra '{P}' < /dev/null", f"wait -np '{P}'", f"printf -v'{P}' x", f"bash <<'EOF'\nlet '{P}=1'\nEOF",
    "x=\"$y\"; y=$(cat f); echo $((x))", "for x in $(seq 3); do echo $((x)); done",
    "while read i; do test -v \"a[$i]\"; done < f",
])
def test_found_in_review_not_a_read(snippet):
    """Members found by trying the classifier as an attacker would (review of this class)."""
    assert classify_command_verdict(snippet).effect != "read", classify_command_verdict(snippet).steps


# Parameter Expansion (bash manual): in every operator form "word is subject to tilde
# expansion, parameter expansion, command substitution, and arithmetic expansion"; unquoted,
# process substitution too. ``u`` is unset (the default/assign/error forms expand their word
# then), ``s`` is set (the pattern, replacement, case and alternate forms expand theirs).
_UNSET_FORMS = ["${u:-W}", "${u-W}", "${u:=W}", "${u=W}", "${u:?W}", "${u?W}"]
_SET_FORMS = ["${s:+W}", "${s+W}", "${s#W}", "${s##W}", "${s%W}", "${s%%W}", "${s/W}", "${s/W/}", "${s//W/}",
              "${s/#W/}", "${s/%W/}", "${s/a/W}", "${s//a/W}", "${s^W}", "${s^^W}", "${s,W}", "${s,,W}",
              "${u:-${u:-W}}", "${u:-${s#W}}", "${a[@]/a/W}", "${s@Q}${s#W}"]
_CODE = ["`touch pwn`", "$(touch pwn)", "<(touch pwn)", ">(touch pwn)", "a`touch pwn`", "#`touch pwn`"]
OPERATOR_WORDS = [
    f"s=abc; a=(a b); echo {form.replace('W', code)} >/dev/null 2>&1; wait $!; :"
    for form in _UNSET_FORMS + _SET_FORMS for code in _CODE
    if not ("?" in form and code[0] in "<>")  # `?` exits the shell: an asynchronous <(...) may not have run
] + [f"s=abc; echo \"{form.replace('W', '`touch pwn`')}\"" for form in _UNSET_FORMS[:2] + _SET_FORMS[:4]] + [
    "[[ a =~ <(touch pwn) ]]; wait $!", "for i in ${u:-`touch pwn`}; do :; done", ": ${u:=`touch pwn`}",
    "case ${u:-`touch pwn`} in *) ;; esac", "cat <<E\n${u:-`touch pwn`}\nE",
]


@pytest.mark.parametrize("snippet", OPERATOR_WORDS)
def test_operator_word_runs_code_in_bash(snippet):
    assert runs_code(snippet), f"bash did not run code for {snippet!r}: not a member of the class"


@pytest.mark.parametrize("snippet", OPERATOR_WORDS)
def test_operator_word_is_not_a_read(snippet):
    v = classify_command_verdict(snippet)
    assert v.effect != "read", v.steps


@pytest.mark.parametrize("snippet", [
    "echo ${x:-default}", "echo ${x#*/} ${x##*/} ${x%.*} ${x%%.*}", "echo ${x/a/b} ${x//a/b} ${x/#a} ${x/%a}",
    "echo ${x:-$HOME} \"${x:-$HOME/.config}\"", "echo ${x^^} ${x,,} ${x^[a-z]}", "echo ${x:+set} ${x:=}",
    "echo ${x:-~}", "echo ${x:-`ls`} ${x#$(pwd)/}", "[[ $x =~ ^[a-z]+$ ]]", "echo ${x:-a b c}",
])
def test_ordinary_operator_words_stay_reads(snippet):
    v = classify_command_verdict(snippet)
    assert v.effect == "read", v.steps
