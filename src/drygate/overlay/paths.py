"""Real state paths and their per-run copies: translation both ways, and the leak checks.

A shadow server runs on copies of the real state paths. Everything that goes to it is
translated real -> copy (its command line, its environment, its working folder, the
client's messages, such as tool arguments and the roots a client names), and
everything that comes back is translated copy -> real, so the agent sees the paths it
knows. A path matches only as a whole path component sequence: ``/srv/data`` matches in
``/srv/data``, ``/srv/data/x``, ``file:///srv/data`` and ``"/srv/data."``, not in
``/srv/data2`` or ``/srv/data.bak``.

Each path is matched in every spelling a process may use: as given (absolute), resolved
(``os.path.realpath``) and percent-encoded (in ``file://`` URIs).

The leak checks are stricter than the translation: after translation, any remaining
occurrence of a real spelling at the start of a path (``/srv/data2`` included) counts,
and so does a relative path that resolves, from the shadow's working folder, into a real
state path. What they cannot see is stated in drygate.overlay.shadow.
"""

import os
import re
from urllib.parse import quote

_BEFORE = r"(?<![\w.\-~+@%])"
_AFTER = r"(?![\w\-~+@%]|\.\w)"
_TOKEN_SPLIT = re.compile(r"[\s\"'`,;()\[\]{}<>=|&]+")


def spellings(path):
    """The spellings of an absolute path a process may use (list of str, longest first, no duplicates)."""
    found = []
    for p in (os.path.abspath(path), os.path.realpath(path)):
        for s in (p, quote(p)):
            if s not in found:
                found.append(s)
    return sorted(found, key=len, reverse=True)


class PathMap:
    """Translation between real paths and their copies.

    ``pairs``: ``[(real path, copy path)]`` (absolute). Methods take and return JSON values
    (str, list, dict, numbers...); strings are translated, everything else is kept.
    """

    def __init__(self, pairs, marker=None):
        self.pairs = [(os.path.abspath(r), os.path.abspath(c)) for r, c in pairs]
        to_copy, to_real = {}, {}
        for real, copy in self.pairs:
            for spelling in {real, os.path.realpath(real)}:
                to_copy[spelling] = copy
                if quote(spelling) != spelling:
                    to_copy[quote(spelling)] = quote(copy)
            for spelling in {copy, os.path.realpath(copy)}:
                to_real[spelling] = real
                if quote(spelling) != spelling:
                    to_real[quote(spelling)] = quote(real)
        self._to_copy = to_copy
        self._to_real = to_real
        self._copy_re = _alternation(to_copy, _AFTER)
        self._real_re = _alternation(to_real, _AFTER)
        self._leak_re = _alternation(to_copy, "")
        #: ASCII text every copy path holds (JSON encoders never escape it), for :meth:`mentions_copy`.
        self.marker = (marker or os.path.commonpath([c for _, c in self.pairs]) if self.pairs else "").encode(
            "ascii", "ignore") or None

    def to_copy(self, value):
        """``value`` with every real path replaced by its copy."""
        return _walk(value, lambda s: self._copy_re.sub(lambda m: self._to_copy[m.group(0)], s)
                     if self._copy_re is not None else s)

    def to_real(self, value):
        """``value`` with every copy path replaced by the real path it stands for."""
        return _walk(value, lambda s: self._real_re.sub(lambda m: self._to_real[m.group(0)], s)
                     if self._real_re is not None else s)

    def leaks(self, value, cwd=None):
        """The real paths ``value`` still names (list of str, empty when none).

        Counts an absolute spelling anywhere a path may start, and, with ``cwd`` (the
        shadow's working folder), a relative path among the words of a string that
        resolves into a real path (``../data/x``, ``meta.db`` from the folder holding it; a
        bare word without ``/`` or ``.`` is not taken for a path).
        """
        found = []

        def check(s):
            if self._leak_re is not None:
                found.extend(m.group(0) for m in self._leak_re.finditer(s))
            if cwd is not None:
                for token in _TOKEN_SPLIT.split(s):
                    if _path_like(token) and self.real_of(token, cwd):
                        found.append(token)
            return s

        _walk(value, check)
        return found

    def real_of(self, path, cwd):
        """The real state path ``path`` (relative to ``cwd``, ``~`` expanded) falls in, or None."""
        full = os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))
        for real, _ in self.pairs:
            if full == real or full.startswith(real.rstrip("/") + "/"):
                return real
        return None

    def copy_of(self, path):
        """The copy of an absolute ``path`` inside a real state path, or None."""
        full = os.path.normpath(path)
        for real, copy in self.pairs:
            for spelling in (real, os.path.realpath(real)):
                if full == spelling:
                    return copy
                if full.startswith(spelling.rstrip("/") + "/"):
                    return os.path.join(copy, os.path.relpath(full, spelling))
        return None

    def mentions_copy(self, data):
        """Cheap pre-check on raw bytes (a JSON line): might ``data`` hold a copy path (bool)?"""
        return self.marker is None or self.marker in data


def substitute(argv, env, cwd, pathmap):
    """The shadow's ``(argv, env, cwd, found)``: the real server's, with every real path replaced by its copy.

    ``argv``: list of str; ``env``: dict; ``cwd``: the real server's working folder.
    Whole words that are relative paths into a real path (``./data``, ``--db=meta.db``) are
    made absolute copies; when ``cwd`` itself is inside a real path, the shadow's working
    folder is its copy and relative words are kept. ``found``: ``{real path: occurrences}``. Pure; the caller checks.
    """
    found = {real: 0 for real, _ in pathmap.pairs}
    cwd_inside = pathmap.real_of(cwd, "/") is not None  # then relative words resolve in the copied folder

    def one(value):
        prefix, sep, rest = value.partition("=") if value.startswith("-") else ("", "", value)
        if not cwd_inside and _path_like(rest):
            real = pathmap.real_of(rest, cwd)
            if real is not None:
                found[real] += 1
                full = os.path.normpath(os.path.join(cwd, os.path.expanduser(rest)))
                return prefix + sep + pathmap.copy_of(full)
        new = pathmap.to_copy(value)
        if new != value:
            for real, _ in pathmap.pairs:
                if any(s in value for s in spellings(real)):
                    found[real] += 1
        return new

    new_argv = [one(a) for a in argv]
    new_env = {k: one(v) for k, v in env.items()}
    new_cwd = pathmap.copy_of(os.path.abspath(cwd)) or cwd
    if new_cwd != cwd:
        real = pathmap.real_of(cwd, "/")
        if real is not None:
            found[real] += 1
    return new_argv, new_env, new_cwd, found


def _path_like(token):
    return bool(token) and token[0] != "/" and "://" not in token and (
        "/" in token or "." in token or token[0] == "~")


def _alternation(mapping, after):
    if not mapping:
        return None
    keys = sorted(mapping, key=len, reverse=True)
    return re.compile(_BEFORE + "(?:" + "|".join(re.escape(k) for k in keys) + ")" + after)


def _walk(value, fn):
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [_walk(v, fn) for v in value]
    if isinstance(value, dict):
        return {(fn(k) if isinstance(k, str) else k): _walk(v, fn) for k, v in value.items()}
    return value
