"""Text that bash evaluates as code although it is not a command: arithmetic and names.

Source: the bash manual (bash 5.2), ARITHMETIC EVALUATION, Arrays, Parameter Expansion,
SHELL BUILTIN COMMANDS. Bash evaluates arithmetic in ``((...))``, ``$((...))``, ``$[...]``,
``for ((...))``, ``let``, the operands of ``[[ ... -eq/-ne/-lt/-le/-gt/-ge ... ]]``,
every indexed-array subscript (``a[...]`` in a word, an assignment or a name operand),
the offset and length of ``${x:off:len}``, and every value assigned to an integer
variable (``declare/typeset/local -i``). In all of them an identifier is replaced by
the *value* of that variable, which is evaluated again as an expression, and a
subscript in that text runs its command substitutions: ``let 'a[$(touch x)]=1'`` or
``x='a[$(touch x)]'; echo $((x))`` run ``touch``, whatever the quoting. Builtins that
take a variable name (``read``, ``printf -v``, ``wait -p``, ``unset``, ``test -v``,
``declare -n``...) evaluate a subscript in that name the same way.

So text in such a context passes only if it is made of numbers, operators and
*clean* variable names (:func:`arith_problem`); anything else (quotes, ``$(...)``,
brackets around unclean text, backslashes) makes the command unknown. A variable is
clean unless this script gives it text that could hold code (:class:`Facts`): an
assignment of anything but a number, an arithmetic result or another clean variable,
``read``/``mapfile``/``printf -v``/``getopts``/``select``, ``${x:=word}``. Variables the
script never assigns come from the environment the host set up and are taken as clean
(a limit, named in docs/classifiers.md); bash's own string variables (``BASH_REMATCH``,
``REPLY``, ``$_``, positional parameters...) are not.
"""

# Names are scanned by hand (this module imports nothing at load time; on the hook's Bash
# path `re` is loaded anyway, by tree-sitter's binding, about 7 ms).
_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_REST = _FIRST | frozenset("0123456789")


def ident_end(text, i=0):
    """The index after the variable name starting at ``i`` in ``text`` (``i`` if none)."""
    if i >= len(text) or text[i] not in _FIRST:
        return i
    j = i + 1
    while j < len(text) and text[j] in _REST:
        j += 1
    return j
#: Special parameters whose value is always a number.
NUMERIC_SPECIALS = frozenset("#?$!")
#: Variables bash itself fills with text (never clean in arithmetic).
BASH_TEXT_VARIABLES = frozenset((
    "BASH_REMATCH", "REPLY", "MAPFILE", "OPTARG", "BASH_COMMAND", "BASH_EXECUTION_STRING", "BASH_ARGV",
    "BASH_SOURCE", "FUNCNAME", "PWD", "OLDPWD", "READLINE_LINE", "COMP_LINE", "COMP_WORDS", "BASH_ARGV0",
    "PIPESTATUS", "DIRSTACK", "GROUPS", "HISTCMD", "_",
))
ARITH_TEST_OPERATORS = frozenset(("-eq", "-ne", "-lt", "-le", "-gt", "-ge"))
_OPERATOR_CHARS = frozenset("+-*/%<>=!&|^~?:,()")


def is_name(text):
    """True if ``text`` (str or None) is a plain shell variable name."""
    return bool(text) and ident_end(text) == len(text)


class Facts:
    """What a script does to its variables, for judging arithmetic contexts.

    ``tainted``: names the script gives text that may hold code; ``integers``: names
    declared ``-i`` (every assignment to them is arithmetic); ``deps``: {name: set of
    names its assigned text refers to} (a name is clean only if those are).
    """

    __slots__ = ("tainted", "integers", "deps", "src", "_clean", "_clean_tainted", "refs_seen")

    def __init__(self, src=b""):
        self.tainted = set(BASH_TEXT_VARIABLES)
        self.integers = set()
        self.deps = {}
        self.src = src
        self._clean = None

    def clean(self, name):
        """True if the value of variable ``name`` cannot hold code when evaluated as arithmetic."""
        if self._clean is None:
            self._settle()
        return name not in self._clean_tainted

    def _settle(self):
        tainted = set(self.tainted)
        changed = True
        while changed:
            changed = False
            for name, refs in self.deps.items():
                if name not in tainted and refs & tainted:
                    tainted.add(name)
                    changed = True
        self._clean_tainted = tainted
        self._clean = True

    def taint(self, name):
        self.tainted.add(name)
        self._clean = None

    def depend(self, name, refs):
        self.deps.setdefault(name, set()).update(refs)
        self._clean = None


#: Facts for words seen without their script (every variable taken as unclean).
class _NoFacts(Facts):
    def clean(self, name):
        return False


NO_FACTS = _NoFacts()


def arith_problem(text, facts, depth=0):
    """Why ``text`` is not safe to evaluate as a bash arithmetic expression, or None.

    Safe: numbers (``10``, ``0x1f``, ``2#101``), operators, parentheses, clean variable
    names, ``$name``/``${name}`` of clean names, ``$#``/``$?``/``$$``/``$!``, and
    ``name[...]`` whose subscript is itself safe and whose array is clean.
    """
    if text is None:
        return "its text is only known at run time"
    if depth > 8:
        return "nested too deeply"
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\n":
            i += 1
        elif c.isdigit():
            i += 1
            while i < n and (text[i].isalnum() or text[i] in "_@#"):
                i += 1
        elif c in _FIRST:
            end = ident_end(text, i)
            name = text[i:end]
            i = end
            if not facts.clean(name):
                return f"the variable {name} holds text this script set, which arithmetic evaluates as code"
            j = i
            while j < n and text[j] in " \t":
                j += 1
            if j < n and text[j] == "[":
                end = _matching_bracket(text, j)
                if end is None:
                    return "an unclosed subscript"
                why = arith_problem(text[j + 1:end], facts, depth + 1)
                if why:
                    return why
                i = end + 1
        elif c == "$":
            nxt = text[i + 1:i + 2]
            if nxt in NUMERIC_SPECIALS and nxt:
                i += 2
            elif nxt == "{":
                end = text.find("}", i)
                inner = text[i + 2:end] if end > 0 else ""
                if inner.startswith("#") and is_name(inner[1:]):
                    i = end + 1  # a length is a number
                elif is_name(inner) and facts.clean(inner):
                    i = end + 1
                else:
                    return f"the expansion {text[i:end + 1] or text[i:]!r} is not a plain variable"
            elif nxt and nxt in _FIRST:
                end = ident_end(text, i + 1)
                if not facts.clean(text[i + 1:end]):
                    return f"the variable {text[i + 1:end]} holds text this script set, which arithmetic evaluates as code"
                i = end
            else:
                return f"{text[i:i + 3]!r} (a substitution or special parameter) inside arithmetic"
        elif c in _OPERATOR_CHARS:
            i += 1
        else:
            return f"the character {c!r} inside arithmetic (quotes, brackets or escapes can hide code)"
    return None


def _matching_bracket(text, j):
    depth = 0
    for k in range(j, len(text)):
        if text[k] == "[":
            depth += 1
        elif text[k] == "]":
            depth -= 1
            if depth == 0:
                return k
    return None


def name_problem(text, facts):
    """Why ``text``, given to a builtin as a variable name, may run code; or None.

    A plain name is fine; ``name[subscript]`` is fine when the subscript is safe arithmetic."""
    if text is None:
        return "the name is only known at run time"
    if is_name(text):
        return None
    k = text.find("[")
    if k > 0 and text.endswith("]") and is_name(text[:k]):
        why = arith_problem(text[k + 1:-1], facts)
        return f"its subscript: {why}" if why else None
    return f"{text!r} is not a plain variable name (bash evaluates a subscript in it)"


# --------------------------------------------------------------------------- the script's facts

def collect_facts(root, src):
    """Walk the whole tree once and return its :class:`Facts`."""
    from drygate.classifiers.bash_parser import node_text, static_text

    facts = Facts(src)
    stack = [root]
    while stack:
        node = stack.pop()
        kind = node.type
        if kind == "variable_assignment":
            name_node = node.child_by_field_name("name") or (node.named_children[0] if node.named_children else None)
            if name_node is not None:
                base = _base_name(name_node)
                value = _assigned_value(node)
                _value_site(facts, base, value)
        elif kind == "for_statement":
            keyword = node.children[0].type if node.children else "for"
            var = node.child_by_field_name("variable")
            if var is not None:
                name = node_text(var)
                values = node.children_by_field_name("value")
                numbers = values and all((static_text(v) or "").isdigit() for v in values)
                if keyword == "select" or not numbers:
                    facts.taint(name)
        elif kind == "expansion":
            text = node_text(node)
            end = ident_end(text, 2)
            if text.startswith("${") and end > 2 and (text[end:end + 2] == ":=" or text[end:end + 1] == "="):
                facts.taint(text[2:end])
        elif kind == "declaration_command":
            flags = "".join(node_text(c)[1:] for c in node.named_children
                            if c.type == "word" and node_text(c).startswith("-"))
            if "i" in flags:
                for c in node.named_children:
                    if c.type == "variable_name":
                        facts.integers.add(node_text(c))
                    elif c.type == "variable_assignment":
                        n = c.child_by_field_name("name")
                        if n is not None:
                            facts.integers.add(_base_name(n))
        elif kind == "command":
            _command_sites(facts, node)
        stack.extend(node.children)
    return facts


def _base_name(name_node):
    from drygate.classifiers.bash_parser import node_text

    if name_node.type == "subscript":
        inner = name_node.child_by_field_name("name") or name_node.named_children[0]
        return node_text(inner)
    return node_text(name_node)


def _assigned_value(node):
    seen_eq = False
    for c in node.children:
        if seen_eq:
            return c
        if c.type in ("=", "+="):
            seen_eq = True
    return None


def _value_site(facts, name, value):
    """Record ``name = value`` (value: a node or None)."""
    refs = value_refs(value)
    if refs is None:
        facts.taint(name)
    elif refs:
        facts.depend(name, refs)


def value_refs(value):
    """The variable names an assigned value's text refers to (a set), or None if the
    value may hold code when evaluated as arithmetic."""
    from drygate.classifiers.bash_parser import node_text, static_text

    if value is None:
        return set()
    kind = value.type
    if kind == "number" or kind == "arithmetic_expansion":
        return set()
    if kind == "simple_expansion":
        inner = value.named_children[0] if value.named_children else None
        name = node_text(inner) if inner is not None else ""
        if name in NUMERIC_SPECIALS:
            return set()
        return {name} if inner is not None and inner.type == "variable_name" and is_name(name) else None
    if kind == "expansion":
        text = node_text(value)[2:-1]
        if text.startswith("#") and is_name(text[1:]):
            return set()
        return {text} if is_name(text) else None
    if kind == "string" and len(value.named_children) == 1 and value.named_children[0].type in (
            "simple_expansion", "expansion", "arithmetic_expansion"):
        return value_refs(value.named_children[0])
    text = static_text(value)
    if text is None:
        return None
    refs = set()
    if arith_problem(text, _Collect(refs)) is not None:
        return None
    return refs


class _Collect(Facts):
    """Facts that accept every name and remember which were asked about."""

    def __init__(self, refs):
        super().__init__()
        self.refs_seen = refs

    def clean(self, name):
        self.refs_seen.add(name)
        return True


def _command_sites(facts, node):
    """Names a builtin command assigns text to (read, mapfile, printf -v, getopts, wait -p)."""
    from drygate.classifiers.bash_parser import node_text, static_text

    name_node = node.child_by_field_name("name")
    if name_node is None:
        return
    program = node_text(name_node)
    words = [static_text(c) for c in node.children_by_field_name("argument")]
    names = []
    if program == "read":
        names = _operands(words, ("-a", "-d", "-i", "-n", "-N", "-p", "-t", "-u")) or ["REPLY"]
        names += [words[i + 1] for i, w in enumerate(words[:-1]) if w == "-a"]
    elif program in ("mapfile", "readarray"):
        names = _operands(words, ("-d", "-n", "-O", "-s", "-u", "-C", "-c")) or ["MAPFILE"]
    elif program == "printf" and "-v" in words:
        k = words.index("-v")
        names = words[k + 1:k + 2]
    elif program == "getopts":
        names = _operands(words, ())[1:2] + ["OPTARG"]
    elif program == "wait" and "-p" in words:
        k = words.index("-p")
        names = words[k + 1:k + 2]
    for name in names:
        if name is not None:
            facts.taint(name.split("[", 1)[0])


def _operands(words, with_value):
    out, skip = [], False
    for w in words:
        if skip:
            skip = False
        elif w is not None and w.startswith("-") and len(w) > 1 and not out:
            skip = w in with_value
        else:
            out.append(w)
    return out


# --------------------------------------------------------------------------- the contexts

def context_problems(root, facts):
    """Every arithmetic or name context in the tree that may run code: a list of reasons (str)."""
    from drygate.classifiers.bash_parser import node_text

    problems = []
    stack = [root]
    while stack:
        node = stack.pop()
        kind = node.type
        why = None
        if kind == "arithmetic_expansion":
            text = node_text(node)
            inner = text[3:-2] if text.startswith("$((") else text[2:-1]
            why = arith_problem(inner, facts)
            where = "an arithmetic expansion"
        elif kind == "compound_statement" and node.children and node.children[0].type == "((":
            why = arith_problem(_between(node, "((", "))", facts.src), facts)
            where = "(( ... ))"
        elif kind == "c_style_for_statement":
            why = arith_problem((_between(node, "((", "))", facts.src) or "").replace(";", ","), facts)
            where = "for (( ... ))"
        elif kind == "subscript":
            index = _between(node, "[", "]", facts.src)
            if not (index in ("@", "*") and node.parent is not None and node.parent.type == "expansion"):
                why = arith_problem(index, facts)
            where = "an array subscript"
        elif kind == "expansion":
            why = expansion_problem(node_text(node), facts)
            where = "a parameter expansion"
        elif kind == "test_command":
            why = _test_problem(node, facts)
            where = "a test"
        elif kind == "variable_assignment":
            why = _assignment_problem(node, facts)
            where = "an assignment"
        if why:
            problems.append(f"{where} ({node_text(node)[:60]!r}): {why}")
        stack.extend(node.children)
    return problems


def _between(node, left, right, src):
    start = end = None
    for c in node.children:
        if start is None and c.type == left:
            start = c.end_byte
        elif start is not None and c.type == right:
            end = c.start_byte
    if start is None or end is None:
        return None
    return src[start:end].decode("utf-8", "replace")


def expansion_problem(text, facts):
    """Why a ``${...}`` expansion (its text) may run code, or None."""
    body = text[2:-1]
    if body.startswith("!"):
        rest = body[1:]
        end = ident_end(rest)
        if end and rest[end:] in ("[@]", "[*]", "*", "@"):
            return None  # the keys of an array, or the names with a prefix
        return "indirection expands a name taken from a variable's text, and a subscript in it runs code"
    if body.startswith("#"):
        body = body[1:]
    end = ident_end(body)
    if not end:
        while end < len(body) and body[end].isdigit():
            end += 1
    if not end and body[:1] in ("@", "*", "#", "?", "$", "!", "-"):
        end = 1
    if not end:
        return None
    rest = body[end:]
    if rest.startswith("["):
        end = _matching_bracket(rest, 0)
        rest = rest[end + 1:] if end is not None else ""
    if rest.startswith("@"):
        if rest[1:2] == "P":
            return "${x@P} expands the value as a prompt, which runs its command substitutions"
        return None
    if rest.startswith(":") and rest[1:2] not in ("-", "=", "+", "?"):
        return arith_problem(rest[1:], facts)
    return None


def _test_problem(node, facts):
    from drygate.classifiers.bash_parser import node_text, static_text

    double = bool(node.children) and node.children[0].type == "[["
    stack = list(node.named_children)
    while stack:
        n = stack.pop()
        if n.type == "binary_expression":
            ops = [c for c in n.children if c.type == "test_operator"]
            if double and ops and node_text(ops[0]) in ARITH_TEST_OPERATORS:
                for operand in n.named_children:
                    if operand.type != "test_operator":
                        why = operand_problem(operand, facts)
                        if why:
                            return f"[[ {node_text(ops[0])} ]] evaluates its operands as arithmetic: {why}"
            stack.extend(n.named_children)
        elif n.type == "unary_expression":
            ops = [c for c in n.children if c.type == "test_operator"]
            if ops and node_text(ops[0]) in ("-v", "-R"):
                operand = [c for c in n.named_children if c.type != "test_operator"]
                why = name_problem(static_text(operand[0]) if operand else None, facts)
                if why:
                    return f"{node_text(ops[0])} takes a variable name: {why}"
            stack.extend(n.named_children)
        elif n.type in ("parenthesized_expression", "negated_expression"):
            stack.extend(n.named_children)
    return None


def operand_problem(node, facts):
    """Why a word evaluated as arithmetic (an operand, an integer's value) may run code."""
    from drygate.classifiers.bash_parser import static_text

    refs = value_refs(node)
    if refs is not None:
        bad = sorted(r for r in refs if not facts.clean(r))
        return f"the variable {bad[0]} holds text this script set" if bad else None
    text = static_text(node)
    return arith_problem(text, facts) if text is not None else "a value only known at run time"


def _assignment_problem(node, facts):
    name_node = node.child_by_field_name("name")
    if name_node is None:
        return None
    name = _base_name(name_node)
    if name in facts.integers:
        value = _assigned_value(node)
        if value is not None and value.type == "array":
            return f"{name} is an integer variable: an array assignment to it is evaluated"
        why = operand_problem(value, facts) if value is not None else None
        if why:
            return f"{name} is declared -i, so the value is evaluated as arithmetic: {why}"
    value = _assigned_value(node)
    if value is not None and value.type == "array":
        for element in value.named_children:
            from drygate.classifiers.bash_parser import node_text

            text = node_text(element)
            if text.startswith("["):
                end = _matching_bracket(text, 0)
                if end is None:
                    return "an array element with an unclosed subscript"
                why = arith_problem(text[1:end], facts)
                if why:
                    return f"the subscript of an array element: {why}"
    return None
