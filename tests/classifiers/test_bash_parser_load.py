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
    LogType is an int class with its members; a parser logger gets it."""
    out = _run("from drygate.classifiers import bash_parser as b;r=b.parse('ls | head');"
               "import tree_sitter._binding as ts, tree_sitter_bash._binding as tb;"
               "L=ts.Language(tb.language());q=ts.Query(L, '((command_name) @n (#match? @n \"^l\"))');"
               "c=ts.QueryCursor(q).captures(r);print(len(c['n']), 're' in sys.modules, int(ts.LogType.LEX));"
               "seen=[];p=ts.Parser(L);p.logger=lambda t, m: seen.append(t);p.parse(b'ls');"
               "print(bool(seen), all(isinstance(t, ts.LogType) for t in seen))")
    assert out == ["1", "True", "1", "True", "True"]


def test_no_stub_when_re_is_loaded_or_threads_are_used():
    out = _run("import re;from drygate.classifiers import bash_parser as b;b.parse('ls');"
               "print(sys.modules['re'] is re, 'enum' in sys.modules)")
    assert out == ["True", "True"]  # the real re was there; the binding imported the real enum
    out = _run("import threading;threading.Thread(target=lambda: None).start();"
               "from drygate.classifiers import bash_parser as b;b.parse('ls');"
               "print('re' in sys.modules and hasattr(sys.modules['re'], 'match'), 'enum' in sys.modules)")
    assert out == ["True", "True"]
