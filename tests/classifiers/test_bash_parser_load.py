"""Loading the Bash parser (drygate.classifiers.bash_parser) keeps re and enum out of a
hook process, and the tree-sitter binding it loads still works where it used them."""

import subprocess
import sys

from conftest import SRC


def _run(code):
    from drygate.enforcement.install import import_roots

    roots = [str(SRC)] + import_roots()
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", "import sys;sys.path[:0]=%r;" % roots + code],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_the_parser_loads_without_re_and_enum():
    out = _run("from drygate.classifiers import bash_parser as b;r=b.parse('ls | head');"
               "print(r.type, 're' in sys.modules, 'enum' in sys.modules)")
    assert out == ["program", "False", "False"]


def test_the_binding_still_compiles_match_predicates_and_logs():
    """The stubs' stand-ins: a query's #match? compiles with the real re, on first use;
    LogType is the real IntEnum on first access, and a parser logger gets its members."""
    out = _run("from drygate.classifiers import bash_parser as b;r=b.parse('ls | head');"
               "import tree_sitter._binding as ts, tree_sitter_bash._binding as tb;"
               "L=ts.Language(tb.language());q=ts.Query(L, '((command_name) @n (#match? @n \"^l\"))');"
               "c=ts.QueryCursor(q).captures(r);print(len(c['n']), 're' in sys.modules, int(ts.LogType.LEX));"
               "seen=[];p=ts.Parser(L);p.logger=lambda t, m: seen.append(t);p.parse(b'ls');"
               "print(bool(seen), all(isinstance(t, ts.LogType) for t in seen), seen[0].name in ('PARSE', 'LEX'))")
    assert out == ["1", "True", "1", "True", "True", "True"]


def test_log_type_is_tree_sitters_enum_after_the_parser_loads():
    """py-tree-sitter's API: ``LogType`` is an ``enum.IntEnum`` (PARSE, LEX); the enum stub
    leaves no other class behind, and no ``import enum`` until something asks for it."""
    out = _run("from drygate.classifiers import bash_parser as b;b.parse('ls');e='enum' in sys.modules;"
               "import enum, tree_sitter._binding as ts;T=ts.LogType;"
               "print(e, issubclass(T, enum.IntEnum), [m.name for m in T], T(1) is T.LEX, T.__module__)")
    assert out == ["False", "True", "['PARSE',", "'LEX']", "True", "tree_sitter"]


def test_the_real_tree_sitter_package_imports_after_the_parser_loads():
    """The bare package modules go after the bindings loaded: code of the same process that
    imports tree_sitter or tree_sitter_bash gets the packages, with the loaded bindings."""
    out = _run("from drygate.classifiers import bash_parser as b;b.parse('ls');"
               "import tree_sitter, tree_sitter_bash, tree_sitter._binding as tsb;"
               "p=tree_sitter.Parser(tree_sitter.Language(tree_sitter_bash.language()));"
               "print(p.parse(b'ls').root_node.type, tree_sitter.Parser is tsb.Parser, tree_sitter.LogType.PARSE.name)")
    assert out == ["program", "True", "PARSE"]


def test_no_stub_when_re_is_loaded_or_threads_are_used():
    out = _run("import re;from drygate.classifiers import bash_parser as b;b.parse('ls');"
               "print(sys.modules['re'] is re, 'enum' in sys.modules)")
    assert out == ["True", "True"]  # the real re was there; the binding imported the real enum
    out = _run("import threading;threading.Thread(target=lambda: None).start();"
               "from drygate.classifiers import bash_parser as b;b.parse('ls');"
               "print('re' in sys.modules and hasattr(sys.modules['re'], 'match'), 'enum' in sys.modules)")
    assert out == ["True", "True"]
