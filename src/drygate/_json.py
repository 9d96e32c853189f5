"""JSON for the hook path: the standard library's own C codec, without ``json``'s
Python wrapper.

``import json`` costs about 8 ms on the 2-core machine, nearly all of it ``re``
(imported by ``json.decoder`` for the pure-Python fallback scanner), which alone
is more than half of the hook's whole budget (bench/hook_startup.py: the hook must
stay within 1.5x of ``python -c pass``). The C scanner and encoder in ``_json`` need
no regular expressions, so this module drives them directly with the same
settings as ``json.loads``/``json.dumps`` (strict, no NaN in output). On any error
the standard ``json`` module is imported to raise its usual ``JSONDecodeError``.
Everything off the hook path uses ``json`` itself.
"""

import _json


class _Context:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo = None

    @staticmethod
    def parse_constant(name):
        raise ValueError(f"{name} is not valid JSON")


_scan_once = _json.make_scanner(_Context())
_WS = " \t\n\r"


def loads(text):
    """Parse a JSON document (str). Raises ValueError (``json.JSONDecodeError``)."""
    if not isinstance(text, str):
        raise TypeError("JSON text must be str")
    start = len(text) - len(text.lstrip(_WS))
    try:
        value, end = _scan_once(text, start)
    except StopIteration as e:
        import json

        raise json.JSONDecodeError("Expecting value", text, e.value) from None
    rest = len(text) - len(text.rstrip(_WS))
    if end != len(text) - rest:
        import json

        raise json.JSONDecodeError("Extra data", text, end)
    return value


def _default(obj):
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_encode = _json.make_encoder(
    None, _default, _json.encode_basestring_ascii, None, ":", ",", False, False, False)


def dumps(value):
    """Serialise ``value`` compactly as ASCII JSON (str). Raises TypeError/ValueError."""
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value)
    return "".join(_encode(value, 0))
