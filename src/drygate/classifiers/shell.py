"""Classify a Bash command from its syntax tree (tree-sitter's Bash grammar).

The tree gives every part of the command: pipelines, lists (``;``, ``&&``, ``||``),
subshells and groups, loops and conditionals, command and process substitution,
redirections, here-documents and here-strings, variable assignments. Each simple
command is looked up in the command table (drygate.classifiers.commands), whose
handlers read SQL, HTTP and Redis arguments and unwrap ``sudo``/``env``/``timeout``/
``xargs``/``bash -c``; the effect of the whole command is the strongest effect of
its parts (drygate.classifiers.verdict). Anything the grammar cannot parse, every
function definition, ``eval`` and inline code, and every word only known at run
time where it could matter, is unknown; unknown is treated as a write.

Redirections: writing to a file (``>``, ``>>``, ``>|``, ``&>``, ``<>``) is a write,
except to ``/dev/null`` and the standard streams; a here-document or here-string is
the input of its command (a SQL client classifies it as SQL, a shell as a script).
"""

from drygate.classifiers.commands import HARMLESS_TARGETS, Context, classify_argv, variable_is_safe
from drygate.classifiers.verdict import Verdict, read, strongest, unknown, write
from drygate.types import Classification

_STATEMENT_CONTAINERS = frozenset((
    "program", "list", "pipeline", "subshell", "compound_statement", "do_group", "if_statement", "elif_clause",
    "else_clause", "while_statement", "for_statement", "c_style_for_statement", "case_statement", "case_item",
    "negated_command", "redirected_statement", "test_command",
))
_OUTPUT_OPERATORS = frozenset((">", ">>", ">|", "&>", "&>>", "<>", ">&"))
MAX_LENGTH = 100_000
#: The first step of a verdict the parser could not give (an exception in the C
#: extension, perhaps out of memory): such a verdict is not cached (drygate.classifiers.command_cache).
PARSER_FAILED = "the shell parser failed"


def classify_command(command, policy=None):
    """Classify one Bash command string (``tool_input.command``) as a Classification.

    ``policy``: the compiled policy (its ``commands`` and ``http_rules``, and the
    ``_verdict_store`` a Gate puts there to remember SQL verdicts), or None.
    The Classification's ``reason`` is the chain of steps, outermost first.
    """
    verdict = classify_command_verdict(command, policy)
    return Classification(verdict.effect, " -> ".join(verdict.steps) or verdict.effect, "shell")


def classify_command_verdict(command, policy=None):
    """Like :func:`classify_command`, returning the :class:`Verdict` with its steps."""
    if not isinstance(command, str) or not command.strip():
        return unknown("no command text to classify")
    if len(command) > MAX_LENGTH:
        return unknown(f"the command is longer than {MAX_LENGTH} characters")
    ctx = context_for(policy)
    return classify_script(command, ctx)


def context_for(policy):
    """A :class:`Context` carrying the policy's command table and URL rules."""
    if not policy:
        return Context()
    return Context(None, policy.get("commands") or {}, policy.get("http_rules") or (), 0,
                   policy.get("_verdict_store"))


def classify_script(text, ctx):
    """Classify shell ``text`` (str) in ``ctx``; returns a Verdict."""
    from drygate.classifiers import bash_parser

    try:
        root = bash_parser.parse(text)
    except Exception as e:  # the parser is a C extension: anything it raises is "cannot read"
        return unknown(f"{PARSER_FAILED} ({type(e).__name__})")
    if root.has_error:
        return unknown("bash syntax this classifier cannot read (the grammar reports an error)")
    from drygate.classifiers.bash_names import collect_facts, context_problems

    facts = collect_facts(root, text.encode("utf-8"))
    if ctx.facts is not None:  # a nested script (bash -c, trap, ssh) sees what the outer one set
        facts.tainted |= {n for n in set(ctx.facts.tainted) | set(ctx.facts.deps) if not ctx.facts.clean(n)}
        facts.integers |= ctx.facts.integers
    ctx = ctx.with_facts(facts)
    parts = [unknown(f"bash evaluates text as code in {why}") for why in context_problems(root, facts)]
    parts += _statements(root, ctx)
    if not parts:
        return read("no commands")
    v = strongest(parts)
    if len(parts) > 1:
        return v.because(f"{len(parts)} commands: the strongest effect decides")
    return v


def _statements(node, ctx):
    """Verdicts of every command under ``node``."""
    verdicts = []
    for child in node.named_children:
        kind = child.type
        if kind == "command":
            verdicts.append(_command(child, ctx))
        elif kind == "redirected_statement":
            verdicts.extend(_redirected(child, ctx))
        elif kind == "pipeline":
            # Each stage after the first reads the previous stage's output: its input is a pipe.
            for i, stage in enumerate(child.named_children):
                stage_ctx = ctx if i == 0 else ctx.with_stdin(False)
                verdicts.extend(_statements_of(stage, stage_ctx))
        elif kind == "variable_assignment":
            verdicts.append(_assignment(child, ctx))
            verdicts.extend(_substitutions_in_words(child, ctx))
        elif kind == "variable_assignments":
            verdicts.extend(_statements(child, ctx))
        elif kind == "declaration_command":
            verdicts.append(_declaration(child, ctx))
        elif kind == "function_definition":
            verdicts.append(unknown("defines a shell function, which this classifier does not follow"))
        elif kind in ("command_substitution", "process_substitution"):
            verdicts.extend(_substitution(child, ctx))
        elif kind == "unset_command":
            verdicts.append(_unset(child, ctx))
        elif kind in _STATEMENT_CONTAINERS:
            verdicts.extend(_statements(child, ctx))
            verdicts.extend(_substitutions_in_words(child, ctx))
            if kind == "test_command":
                verdicts.append(read("a test only compares"))
        elif kind in ("comment", "heredoc_body", "heredoc_end", "heredoc_start", "file_redirect",
                      "heredoc_redirect", "herestring_redirect"):
            continue
        elif kind in ("word", "string", "raw_string", "concatenation", "number", "simple_expansion",
                      "expansion", "arithmetic_expansion", "test_operator", "binary_expression",
                      "unary_expression", "parenthesized_expression", "variable_name", "case_item",
                      "postfix_expression", "ternary_expression", "extglob_pattern", "regex"):
            verdicts.extend(_substitutions_in_words(child, ctx))
        else:
            verdicts.append(unknown(f"bash construct {kind!r} is not classified"))
    return verdicts


def _statements_of(node, ctx):
    if node.type == "command":
        return [_command(node, ctx)]
    if node.type == "redirected_statement":
        return _redirected(node, ctx)
    return _statements(_Single(node), ctx)


class _Single:
    """Presents one node as the only child of a container (for :func:`_statements`)."""

    __slots__ = ("named_children",)

    def __init__(self, node):
        self.named_children = [node]


def _substitution(node, ctx):
    inner = _statements(node, ctx.with_stdin(None))
    return [v.because("inside a command substitution") for v in inner]


def _substitutions_in_words(node, ctx):
    """Verdicts of the commands substituted inside ``node``'s words. (Text bash evaluates
    as code without a substitution, in arithmetic and name contexts, is judged over the
    whole tree by drygate.classifiers.bash_names.)"""
    found = []
    own = ("command_substitution", "process_substitution", "expansion", "test_operator")
    stack = [node] if node.type in own else list(node.named_children)
    while stack:
        n = stack.pop()
        if n.type in ("command_substitution", "process_substitution"):
            found.extend(_substitution(n, ctx))
        elif n.type not in _STATEMENT_CONTAINERS and n.type not in ("command", "redirected_statement"):
            if n.type == "expansion":
                found.extend(_operator_words(n, ctx))
            elif n.type == "regex":
                found.extend(_unparsed_word(n, ctx, "the pattern of [[ =~ ]] or of a parameter expansion"))
            stack.extend(n.named_children)
    return found


#: Text in a word that makes bash run code: command substitution (``$(...)``, backquotes),
#: arithmetic expansion (``$((...))``, ``$[...]``, whose subscripts run code) and process
#: substitution (``<(...)``, ``>(...)``).
_CODE_MARKS = ("`", "$(", "$[", "<(", ">(")
#: Children of an ``expansion`` node the grammar has fully parsed (walked as they are).
_PARSED_PARTS = frozenset((
    "variable_name", "special_variable_name", "subscript", "command_substitution", "process_substitution",
    "expansion", "simple_expansion", "arithmetic_expansion", "number",
))


def _operator_words(node, ctx):
    """Verdicts of the code in the operator words of one parameter expansion ``${...}``.

    Bash manual, Parameter Expansion: in ``${p:-word}``, ``${p#word}``, ``${p/pattern/string}``,
    ``${p^pattern}`` and every other operator form, "word is subject to tilde expansion,
    parameter expansion, command substitution, and arithmetic expansion" (and, unquoted,
    process substitution). tree-sitter-bash parses ``$(...)`` there but often leaves
    backquotes, ``<(...)`` and nested forms as plain ``word``/``regex`` text, so every part of
    such a word that is not already a parsed node is read again as shell text."""
    found = []
    for child in node.named_children:
        if child.type not in _PARSED_PARTS:
            found.extend(_unparsed_word(child, ctx, "the word of a parameter expansion"))
    return found


def _unparsed_word(node, ctx, where):
    """Verdicts of ``node``'s text read again as one shell word (see :func:`_operator_words`).

    Text without any of :data:`_CODE_MARKS` runs nothing. Text with one and any quoting
    character is unknown: inside double quotes bash treats single quotes in such a word
    as literal characters, so where its substitutions end cannot be read from the text alone.
    Otherwise the text is parsed as the word ``_TEXT`` of the command ``:`` (the ``_`` keeps a
    leading ``#`` from starting a comment); a parse error or a comment is unknown."""
    from drygate.classifiers import bash_parser
    from drygate.classifiers.bash_parser import node_text

    text = node_text(node)
    if not any(mark in text for mark in _CODE_MARKS):
        return []
    if any(q in text for q in ("'", '"', "\\")):
        return [unknown(f"quoted text with a substitution in {where} ({text[:40]!r}) is not read")]
    script = ": _" + text
    try:
        root = bash_parser.parse(script)
    except Exception as e:  # the parser is a C extension: anything it raises is "cannot read"
        return [unknown(f"the shell parser failed on {where} ({type(e).__name__})")]
    if root.has_error or _has_comment(root):
        return [unknown(f"bash runs code in {where} ({text[:40]!r}) that this classifier cannot read")]
    v = classify_script(script, ctx)
    return [v.because(f"bash expands {where}")] if v.effect != "read" else []


def _has_comment(root):
    stack = [root]
    while stack:
        n = stack.pop()
        if n.type == "comment":
            return True
        stack.extend(n.named_children)
    return False


def _command(node, ctx):
    from drygate.classifiers.bash_parser import static_text

    words, verdicts = [], []
    for child in node.named_children:
        if child.type == "variable_assignment":
            v = _assignment(child, ctx, prefix=True)
            if v.effect != "read":
                verdicts.append(v)
            verdicts.extend(_substitutions_in_words(child, ctx))
        elif child.type == "command_name":
            name_node = child.named_children[0] if child.named_children else child
            words.append(static_text(name_node))
            verdicts.extend(_substitutions_in_words(child, ctx))
        elif child.type == "file_redirect":
            # `>f echo hi`: the grammar keeps a redirection written before the name inside the command
            verdicts.extend(_file_redirect(child, ctx)[0])
        elif child.type in ("heredoc_redirect", "herestring_redirect"):
            verdicts.append(unknown("a here-document inside a command is not classified"))
        else:
            words.append(static_text(child))
            verdicts.extend(_substitutions_in_words(child, ctx) if child.type != "command_substitution"
                            else _substitution(child, ctx))
    if not words:
        return strongest(verdicts, read("only variable assignments"))
    verdicts.insert(0, classify_argv(words, ctx))
    return strongest(verdicts)


def _file_redirect(child, ctx):
    """Verdicts of one ``file_redirect`` and whether it replaces the command's input."""
    from drygate.classifiers.bash_parser import static_text

    op = next((c.type for c in child.children if not c.is_named), "")
    dest = child.child_by_field_name("destination")
    if dest is None:
        named = [c for c in child.named_children if c.type != "file_descriptor"]
        dest = named[-1] if named else None
    target = static_text(dest) if dest is not None else None
    verdicts = _substitutions_in_words(child, ctx)
    if op in _OUTPUT_OPERATORS:
        if op == ">&" and target is not None and (target.isdigit() or target == "-"):
            return verdicts, False
        if target is None:
            verdicts.append(unknown(f"redirects output ({op}) to a file named only at run time"))
        elif target not in HARMLESS_TARGETS:
            verdicts.append(write(f"redirects output ({op}) into the file {target!r}"))
        return verdicts, False
    return verdicts, op in ("<", "<&")


def _redirected(node, ctx):
    from drygate.classifiers.bash_parser import node_text, static_text

    body = node.child_by_field_name("body")
    stdin = ctx.stdin
    verdicts = []
    for child in node.named_children:
        if body is not None and child.id == body.id:
            continue
        if child.type == "file_redirect":
            found, replaces_input = _file_redirect(child, ctx)
            verdicts.extend(found)
            if replaces_input:
                stdin = False
        elif child.type == "heredoc_redirect":
            text = "".join(node_text(c) for c in child.named_children if c.type == "heredoc_body")
            quoted = any(c.type == "heredoc_start" and node_text(c)[:1] in ("'", '"') for c in child.named_children)
            has_expansion = any(c.type == "heredoc_body" and c.named_children for c in child.named_children)
            stdin = text if (quoted or not has_expansion) else False
            if not quoted and ("`" in text or "$(" in text):
                verdicts.append(unknown("an unquoted here-document runs the commands substituted in it"))
            for c in child.named_children:
                if c.type == "heredoc_body":
                    verdicts.extend(_substitutions_in_words(c, ctx))
                elif c.type == "file_redirect":
                    # `cat <<EOF > file`: the grammar puts the line's other redirections here
                    verdicts.extend(_file_redirect(c, ctx)[0])
                elif c.type in ("pipeline", "command", "list", "redirected_statement"):
                    # `cat <<EOF | sqlite3 db`: the rest of the line after the here-document
                    verdicts.extend(_statements(_Single(c), ctx.with_stdin(False)))
                elif c.type not in ("heredoc_start", "heredoc_end"):
                    verdicts.append(unknown(f"a here-document followed by {c.type!r} is not classified"))
        elif child.type == "herestring_redirect":
            word = child.named_children[-1] if child.named_children else None
            value = static_text(word) if word is not None else None
            stdin = value if value is not None else False
            verdicts.extend(_substitutions_in_words(child, ctx))
    if body is not None:
        verdicts[:0] = _statements_of(body, ctx.with_stdin(stdin))
    return verdicts


def _assignment(node, ctx, prefix=False):
    from drygate.classifiers.bash_parser import node_text

    name_node = node.child_by_field_name("name") or (node.named_children[0] if node.named_children else None)
    name = node_text(name_node) if name_node is not None else "?"
    value = node_text(node).split("=", 1)[1] if "=" in node_text(node) else ""
    if "`" in value or any(value[k + 2:k + 3] != "(" for k in _find_all(value, "$(")):
        return unknown(f"sets {name} to text that can run commands when it is expanded or evaluated")
    if variable_is_safe(name):
        return read(f"sets {name}, which only selects a target or credentials")
    if not prefix and name != name.upper():
        return read(f"sets the shell variable {name}")  # lower-case: not one that programs read
    where = "for the command" if prefix else "for the commands after it"
    return unknown(f"sets {name} {where}; a variable can change what programs do (PATH, LD_PRELOAD, GIT_*, ...)")


#: Options of declare/typeset/local/export/readonly (bash manual, SHELL BUILTIN COMMANDS)
#: that only set attributes; -n (a nameref: later uses of the name refer to any variable
#: or array element) and -f (functions) are not among them.
_DECLARE_FLAGS = frozenset("aAgiIlrtuxp")


def _find_all(text, part):
    k = text.find(part)
    while k >= 0:
        yield k
        k = text.find(part, k + 1)


def _declaration(node, ctx):
    """declare/typeset/local/export/readonly: every word must be understood.

    A nameref (-n, not export's -n), a function (-f), a quoted or run-time word (it may
    be ``name[subscript]=...`` or a nameref), and an array value written as quoted text
    (``declare -a a='([$(cmd)]=1)'`` is evaluated as a compound assignment) are unknown.
    Values assigned to ``-i`` variables and subscripts are judged as arithmetic
    (drygate.classifiers.bash_names)."""
    from drygate.classifiers.bash_parser import node_text, static_text

    verdicts = []
    keyword = node_text(node.children[0]) if node.children else "declare"
    for child in node.named_children:
        if child.type == "variable_assignment":
            value = None
            seen = False
            for c in child.children:
                if seen:
                    value = c
                    break
                seen = c.type in ("=", "+=")
            if value is not None and value.type != "array" and (static_text(value) or "(").lstrip().startswith("("):
                verdicts.append(unknown(f"{keyword} {node_text(child)[:40]!r}: a value bash may evaluate as an "
                                        "array assignment, whose subscripts run code"))
                continue
            verdicts.append(_assignment(child, ctx))
            verdicts.extend(_substitutions_in_words(child, ctx))
        elif child.type == "variable_name":
            name = node_text(child)
            if keyword == "export" and not variable_is_safe(name) and name == name.upper():
                verdicts.append(unknown(f"exports {name} to the programs that follow"))
            else:
                verdicts.append(read(f"declares {name}"))
        elif child.type == "word" and node_text(child)[:1] in ("-", "+") and len(node_text(child)) > 1:
            letters = set(node_text(child)[1:])
            allowed = _DECLARE_FLAGS | ({"n", "f"} if keyword == "export" else set())
            if keyword == "export" and "f" in letters:
                verdicts.append(unknown("export -f exports a function, which runs in later shells"))
            elif not letters <= allowed:
                verdicts.append(unknown(f"{keyword} {node_text(child)}: a nameref (-n), a function (-f) or an "
                                        "option this classifier does not read"))
        else:
            verdicts.append(unknown(f"{keyword} {node_text(child)!r}: a quoted or optional form this classifier "
                                    "does not read (it may set any variable, or a nameref)"))
    return strongest(verdicts, read("declares variables"))


def _unset(node, ctx):
    """unset [-fvn] name...: a subscript in a name is evaluated (``unset 'a[$(cmd)]'`` runs cmd)."""
    from drygate.classifiers.bash_names import NO_FACTS, name_problem
    from drygate.classifiers.bash_parser import node_text, static_text

    for child in node.named_children:
        text = node_text(child) if child.type == "variable_name" else static_text(child)
        if text in ("-f", "-v", "-n"):
            continue
        why = name_problem(text, ctx.facts or NO_FACTS)
        if why:
            return unknown(f"unset {node_text(child)[:40]}: {why}")
    return read("unset removes shell variables")


__all__ = ["Verdict", "classify_command", "classify_command_verdict", "classify_script", "context_for"]
