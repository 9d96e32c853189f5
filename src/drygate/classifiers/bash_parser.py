"""Parse Bash with tree-sitter's Bash grammar (packages tree-sitter, tree-sitter-bash).

The parser is loaded on first use, only when a Bash command must be classified.
Both packages' ``__init__`` modules import what their C bindings do not need
(``typing`` in tree_sitter, ``importlib.resources`` in tree_sitter_bash), which
costs about 18 ms per hook process on the 2-core machine (bench/hook_startup.py:
about 25 ms to 7 ms). So the bindings are imported under bare package modules,
and the normal import is the fallback if that ever fails.

Words: :func:`static_text` gives a word's value as bash would see it after quote
removal, or None when it depends on run time (expansions, substitutions, ANSI-C
quoting), which classifiers must treat as "could be anything".
"""

import sys

_PARSER = None
_DYNAMIC = frozenset(("simple_expansion", "expansion", "command_substitution", "process_substitution",
                      "arithmetic_expansion", "ansi_c_string", "translated_string", "brace_expression"))


def _load():
    global _PARSER
    if _PARSER is not None:
        return _PARSER
    try:
        language, Language, Parser = _load_bare()
    except Exception:  # pragma: no cover - a layout change in the packages: pay the full import
        import tree_sitter
        import tree_sitter_bash

        language, Language, Parser = tree_sitter_bash.language, tree_sitter.Language, tree_sitter.Parser
    _PARSER = Parser(Language(language()))
    return _PARSER


def _load_bare():
    import os

    module_type = type(sys)
    created = []
    try:
        for name in ("tree_sitter", "tree_sitter_bash"):
            if name in sys.modules:
                continue
            for entry in sys.path:
                folder = os.path.join(entry or ".", name)
                if os.path.isdir(folder):
                    break
            else:
                raise ImportError(name)
            module = module_type(name)
            module.__path__ = [folder]
            sys.modules[name] = module
            created.append(name)
        with _lean_binding_init():
            from tree_sitter._binding import Language, Parser
        from tree_sitter_bash._binding import language

        return language, Language, Parser
    except Exception:
        for name in created:
            sys.modules.pop(name, None)
            sys.modules.pop(name + "._binding", None)
        raise


def _re_compile(pattern, flags=0):
    """``re.compile``, importing ``re`` on first use (tree-sitter's query predicates only)."""
    import re

    return re.compile(pattern, flags)


def _int_enum(name, members):
    """A stand-in for ``enum.IntEnum(name, members)``: an ``int`` subclass with each member
    as a class attribute (an instance); ``cls(value)`` gives an ``int`` of that class."""
    cls = type(name, (int,), {"__slots__": (), "__module__": "tree_sitter"})
    for key, value in members.items():
        setattr(cls, key, cls(value))
    return cls


class _lean_binding_init:
    """While tree-sitter's C binding initializes, ``re`` and ``enum`` are stubs.

    The binding's module init (py-tree-sitter's ``tree_sitter/binding/module.c``, 0.25
    and 0.26) takes ``re.compile`` for the ``#match?`` predicates of queries, which
    drygate never runs, and calls ``enum.IntEnum("LogType", {...})`` for the parser's
    logger, which drygate never sets. Importing ``re`` and ``enum`` for that costs about
    2 ms per hook process that reads a Bash command (``python -X importtime``: re 1.3 ms,
    enum 1.0 ms). The stubs give :func:`_re_compile` (the real ``re`` on first use) and
    :func:`_int_enum`. Only a module not yet loaded is stubbed, and only in a process
    that has not loaded ``threading`` and has no thread started by ``_thread`` alive
    (``_thread._count()``; a hook process starts its one, the latency record's watchdog,
    after its answer), so no other code can see a stub;
    the stubs are removed right after the binding's import, whatever happens. If a later
    binding needs more of either module its import fails, and :func:`_load` falls back
    to the normal import.
    """

    __slots__ = ("stubs",)

    def __enter__(self):
        import _thread

        self.stubs = {}
        count = getattr(_thread, "_count", None)  # no stubs where it is missing: the binding imports both
        if count is not None and count() == 0 and "threading" not in sys.modules:
            for name, attribute, value in (("re", "compile", _re_compile), ("enum", "IntEnum", _int_enum)):
                if name not in sys.modules:
                    stub = type(sys)(name)
                    setattr(stub, attribute, value)
                    sys.modules[name] = self.stubs[name] = stub
        return self

    def __exit__(self, *exc):
        for name, stub in self.stubs.items():
            if sys.modules.get(name) is stub:
                del sys.modules[name]
        return False


def parse(text):
    """Parse ``text`` (str); returns the tree's root node (``program``)."""
    return _load().parse(text.encode("utf-8")).root_node


def node_text(node):
    return node.text.decode("utf-8", "replace")


def _unescape_word(raw):
    out, i = [], 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and i + 1 < len(raw):
            if raw[i + 1] != "\n":
                out.append(raw[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _expands(raw):
    """True if an unquoted word has glob characters or a brace expansion (``{a,b}``, ``{1..3}``)."""
    i, brace = 0, -1
    while i < len(raw):
        c = raw[i]
        if c == "\\":
            i += 2
            continue
        if c in "*?[":
            return True
        if c == "{":
            brace = i
        elif c == "}" and brace >= 0 and ("," in raw[brace:i] or ".." in raw[brace:i]):
            return True
        i += 1
    return False


def static_text(node):
    """The word's value after quote removal, or None if it is only known at run time."""
    kind = node.type
    if kind in _DYNAMIC:
        return None
    if kind == "number":
        return node_text(node)
    if kind == "word":
        raw = node_text(node)
        if _expands(raw):
            return None  # a glob or brace expansion: the words bash passes are only known at run time
        return _unescape_word(raw)
    if kind == "raw_string":
        return node_text(node)[1:-1]
    if kind == "string":
        parts = []
        for child in node.children:
            if child.type == '"':
                continue
            if child.type == "string_content":
                text = node_text(child)
                parts.append(text.replace('\\"', '"').replace("\\\\", "\\").replace("\\$", "$")
                             .replace("\\`", "`").replace("\\\n", ""))
            else:
                return None
        return "".join(parts)
    if kind == "concatenation":
        if any(c.type == "word" and node_text(c) in ("{", "}") for c in node.children) and _expands(node_text(node)):
            return None  # a brace expansion split into parts by the grammar
        parts = []
        for child in node.children:
            value = static_text(child)
            if value is None:
                return None
            parts.append(value)
        return "".join(parts)
    return None
