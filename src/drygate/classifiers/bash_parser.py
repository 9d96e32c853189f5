"""Parse Bash with tree-sitter's Bash grammar (packages tree-sitter, tree-sitter-bash).

The parser is loaded on first use, only when a Bash command must be classified.
Both packages' ``__init__`` modules import what their C bindings do not need
(``typing`` in tree_sitter, ``importlib.resources`` in tree_sitter_bash), which
costs about 18 ms per hook process on the 2-core machine (bench/hook_startup.py:
about 25 ms to 7 ms). So the bindings are imported under bare package modules,
removed from ``sys.modules`` right after (so code of the same process that imports
``tree_sitter`` gets the real package, with the loaded binding), and the normal import
is the fallback if that ever fails.

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
            created.append((name, module))
        with _lean_binding_init():
            from tree_sitter._binding import Language, Parser
        from tree_sitter_bash._binding import language
    except Exception:
        for name, _ in created:
            sys.modules.pop(name, None)
            sys.modules.pop(name + "._binding", None)
        raise
    for name, module in created:  # the bare packages go, the bindings stay: a later `import tree_sitter`
        if sys.modules.get(name) is module:  # in the same process runs the real package (and uses them)
            del sys.modules[name]
    return language, Language, Parser


def _re_compile(pattern, flags=0):
    """``re.compile``, importing ``re`` on first use (tree-sitter's query predicates only)."""
    import re

    return re.compile(pattern, flags)


class _LazyIntEnum:
    """Base of the stand-ins :func:`_int_enum` gives: ``cls(value)`` is the member of the real
    ``enum.IntEnum`` of the same name and members (:meth:`real`, built on first use), so the
    binding's parser logger, which calls the class it was given for each message's type,
    passes the real ``tree_sitter.LogType`` member, as without the stub."""

    __slots__ = ()
    _members = {}
    _real = None

    def __new__(cls, value):
        return cls.real()(value)

    @classmethod
    def real(cls):
        """The real ``enum.IntEnum`` (importing ``enum`` on first use), module "tree_sitter"."""
        if cls._real is None:
            import enum

            cls._real = enum.IntEnum(cls.__name__, cls._members, module="tree_sitter")
        return cls._real


def _int_enum(name, members):
    """A stand-in for ``enum.IntEnum(name, members)`` (a :class:`_LazyIntEnum`); the binding's
    module attribute is made the real enum on first access (:func:`_real_log_type`)."""
    return type(name, (_LazyIntEnum,), {"__slots__": (), "_members": dict(members), "__module__": "tree_sitter"})


def _real_log_type(binding):
    """After the binding initialized under the enum stub: its ``LogType`` attribute becomes
    the real ``enum.IntEnum`` on first access (a module ``__getattr__``, PEP 562), so code of
    the same process that uses py-tree-sitter's logger (``LogType.PARSE.name``,
    ``list(LogType)``, ``isinstance(t, LogType)``) sees the enum its API documents, and a
    process that never asks pays no ``import enum``."""
    stand_in = binding.__dict__.get("LogType")
    if not (isinstance(stand_in, type) and issubclass(stand_in, _LazyIntEnum)):
        return

    def __getattr__(name):
        if name != "LogType":
            raise AttributeError(f"module {binding.__name__!r} has no attribute {name!r}")
        real = stand_in.real()
        binding.LogType = real
        binding.__dict__.pop("__getattr__", None)
        return real

    del binding.LogType
    binding.__getattr__ = __getattr__


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
        binding = sys.modules.get("tree_sitter._binding")
        if "enum" in self.stubs and binding is not None:
            _real_log_type(binding)
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
