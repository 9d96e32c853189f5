"""Mask secrets before a plan is shown (the review page, a markdown plan).

Two lines, each alone enough to hide a value:

- **by key**: the value of any object key (any depth, any case, ``-`` and ``_`` alike) that
  names a credential (``password``, ``secret``, ``token``, ``api_key``, ``authorization``,
  ``cookie``, ``private_key``, ``credentials``..., :data:`SECRET_KEY_WORDS`) or that the
  policy lists in ``[review] secret_keys``;
- **by shape**, in every string (inputs, diffs, SQL, shell commands, reasons): text that
  looks like a credential (:data:`SECRET_PATTERNS`: AWS access keys, bearer and basic
  authorization, ``password=...`` assignments and ``--password`` flags, a password in a URL,
  PEM private keys, JWTs, GitHub, Slack, Stripe and OpenAI-style tokens) or matches the
  policy's ``[review] secret_patterns``.

Only what is shown is masked; the plan file keeps its values (apply needs them). What this
cannot see: a secret with no telling key and no telling shape (a bare random string under
a key named ``value``); name such keys in the policy.
"""

import re

MASK = "••••••"

#: Words that make an object key a credential (matched inside the normalised key).
SECRET_KEY_WORDS = ("password", "passwd", "passphrase", "secret", "token", "apikey", "api_key", "accesskey",
                    "access_key", "authorization", "auth_header", "cookie", "privatekey", "private_key",
                    "credential", "session_key", "client_secret", "signing_key", "pwd")

#: Shapes of credentials in free text: (regex, group to mask or 0 for the whole match).
SECRET_PATTERNS = (
    (r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", 0),
    (r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}\b", 0),
    (r"(?i)\b(?:bearer|basic|token)\s+([A-Za-z0-9\-._~+/]{8,}=*)", 1),
    (r"(?i)\b(?:x-api-key|api-key|authorization)\s*:\s*([^\s'\",]{4,}(?:\s+[^\s'\",]{8,})?)", 1),
    (r"(?i)(?:password|passwd|pwd|secret|token|api_?key|access_?key|private_?key|client_?secret)"
     r"[A-Za-z0-9_]*\s*[=:]\s*(\"[^\"]*\"|'[^']*'|[^\s'\",;&]+)", 1),
    (r"(?i)--(?:password|passwd|secret|token|api-key|access-key)(?:=|\s+)(\"[^\"]*\"|'[^']*'|[^\s'\"]+)", 1),
    (r"(?i)\bIDENTIFIED\s+BY\s+('[^']*'|\"[^\"]*\")", 1),
    (r"\b[a-z][a-z0-9+.\-]*://[^\s/:@'\"]*:([^\s/@'\"]+)@", 1),
    (r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}", 0),
    (r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})", 0),
    (r"\bxox[abprs]-[A-Za-z0-9\-]{10,}", 0),
    (r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,}", 0),
    (r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{20,}", 0),
    (r"\bAIza[0-9A-Za-z_\-]{30,}", 0),
)


class Masker:
    """Masks values for display. ``policy``: the compiled policy (``review_secret_keys``,
    ``review_secret_patterns``), or None for the built-in lists only.

    :meth:`value` masks a JSON value (returns a copy); :meth:`text` masks a string.
    ``masked``: how many values or spans were masked so far (int).
    """

    def __init__(self, policy=None):
        policy = policy or {}
        self.keys = tuple(SECRET_KEY_WORDS) + tuple(k.lower().replace("-", "_") for k in
                                                    policy.get("review_secret_keys", ()))
        self.patterns = [(re.compile(p), g) for p, g in SECRET_PATTERNS]
        self.patterns += [(re.compile(p), 0) for p in policy.get("review_secret_patterns", ())]
        self.masked = 0

    def is_secret_key(self, key):
        """True when an object key names a credential (str key)."""
        norm = str(key).lower().replace("-", "_")
        flat = norm.replace("_", "")
        return any(word in norm or word.replace("_", "") in flat for word in self.keys)

    def text(self, s):
        """``s`` with every span that looks like a credential replaced by :data:`MASK`."""
        if not isinstance(s, str) or not s:
            return s
        for pattern, group in self.patterns:
            s = pattern.sub(lambda m, g=group: self._replace(m, g), s)
        return s

    def _replace(self, m, group):
        if group == 0 or m.group(group) is None:
            self.masked += 1
            return MASK
        self.masked += 1
        start, end = m.span(group)
        base = m.start()
        whole = m.group(0)
        return whole[:start - base] + MASK + whole[end - base:]

    def value(self, v, key=None, hidden=False):
        """A copy of JSON value ``v`` with secrets masked (by key, then by shape). Under a
        credential key every scalar inside is masked, however deep (``{"credentials":
        {"user": ..., "pass": ...}}``); booleans and nulls stay."""
        hidden = hidden or (key is not None and self.is_secret_key(key))
        if hidden and not isinstance(v, (dict, list, bool)) and v not in (None, ""):
            self.masked += 1
            return MASK
        if isinstance(v, dict):
            return {k: self.value(item, k, hidden) for k, item in v.items()}
        if isinstance(v, list):
            return [self.value(item, None, hidden) for item in v]
        if isinstance(v, str):
            return self.text(v)
        return v
