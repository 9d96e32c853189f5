"""Mask secrets before a plan is shown (the review page, a markdown plan).

Two lines, each alone enough to hide a value:

- **by key**: the value of any object key (any depth, any case, ``-`` and ``_`` alike) that
  names a credential (``password``, ``secret``, ``token``, ``api_key``, ``authorization``,
  ``cookie``, ``private_key``, ``credentials``..., :data:`SECRET_KEY_WORDS`, or ends in
  ``_PASS``/``_PW``/``_AUTH``) or that the policy lists in ``[review] secret_keys``; in a
  name/value pair (``{"name": "X-Api-Key", "value": ...}``: HTTP header lists, Kubernetes
  env, tags) the value of a pair whose name is such a word; a string holding a JSON object
  or array is parsed and masked as a value;
- **by shape**, in every string (inputs, diffs, SQL, shell commands, reasons): text that
  looks like a credential (:data:`SECRET_PATTERNS`: AWS access keys, bearer and basic
  authorization, ``password=...`` and ``*_PASS=`` assignments, ``--*password``/``--*token``
  flags, the password options of mysql/mariadb (``-pPW``), curl/wget (``-u user:PW``),
  sshpass, redis-cli, mongosh, sqlcmd and ``docker login``, a password in a URL,
  PEM private keys, JWTs, GitHub, Slack, Stripe and OpenAI-style tokens) or matches the
  policy's ``[review] secret_patterns``.

Only what is shown is masked; the plan file keeps its values (apply needs them). What this
cannot see: a secret with no telling key and no telling shape (a bare random string under
a key named ``value``); name such keys in the policy.
"""

import json
import re

MASK = "••••••"

#: Words that make an object key a credential (matched inside the normalised key).
SECRET_KEY_WORDS = ("password", "passwd", "passphrase", "secret", "token", "apikey", "api_key", "accesskey",
                    "access_key", "authorization", "auth_header", "cookie", "privatekey", "private_key",
                    "credential", "session_key", "client_secret", "signing_key", "pwd")

#: Last parts of a name that make it a credential (``DB_PASS``, ``SSHPASS``, ``REDISCLI_AUTH``).
SECRET_NAME_ENDINGS = ("pass", "pw", "pwd", "auth", "apikey", "key_secret")

#: Keys that hold the name in a name/value pair list (HTTP headers, Kubernetes env, tags).
PAIR_NAME_KEYS = ("name", "key", "header", "variable", "var", "env", "parameter", "parametername", "field")

#: Shapes of credentials in free text: (regex, group to mask or 0 for the whole match).
SECRET_PATTERNS = (
    (r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", 0),
    (r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}\b", 0),
    (r"(?i)\b(?:bearer|basic|token)\s+([A-Za-z0-9\-._~+/]{8,}=*)", 1),
    (r"(?i)\b(?:x-api-key|api-key|authorization)\s*:\s*([^\s'\",]{4,}(?:\s+[^\s'\",]{8,})?)", 1),
    (r"(?i)(?:password|passwd|pwd|secret|token|api_?key|access_?key|private_?key|client_?secret)"
     r"[A-Za-z0-9_]*\\?[\"']?\s*[=:]\s*(\\?\"[^\"\\]*\\?\"|'[^']*'|[^\s'\",;&]+)", 1),
    # NAME_PASS=, SSHPASS=, REDISCLI_AUTH=, DB_PW=: a credential word as the last part of a name
    (r"(?i)\b(?:\w+_)?(?:pass|pw|pwd|sshpass|auth)\\?[\"']?\s*[=:]\s*(\\?\"[^\"\\]*\\?\"|'[^']*'|[^\s'\",;&{\[][^\s'\",;&]*)", 1),
    # long options ending in a credential word (mysql/psql/wget --password, --http-password,
    # --proxy-password, redis-cli --pass, --db-token, --api-key, --oauth2-bearer, --auth ...)
    (r"(?i)--(?!no-)(?:[a-z0-9]+-)*(?:password|passwd|pass|secret|token|api-?key|access-key|bearer|auth)"
     r"(?:=|\s+)(\"[^\"]*\"|'[^']*'|[^\s'\"]+)", 1),
    # user:password options (curl -u/--user/-U/--proxy-user, wget --user=, smbclient -U user%pw)
    (r"(?:\s-[uU]\s*|--(?:proxy-)?user(?:=|\s+))[\"']?[^\s:%'\"]*[:%]([^\s'\"]+)", 1),
    # short password options of tools whose manual defines them: mysql/mariadb -pPW (attached;
    # a separate word is a prompt), sshpass -p PW, mongo/mongosh -p PW, redis-cli -a PW,
    # sqlcmd/bcp -P PW, docker/podman/helm/oras login -p PW
    (r"\b(?:mysql\w*|mariadb[\w-]*)\b[^\n;|&]*?\s-p([^\s'\"]+|'[^']*'|\"[^\"]*\")", 1),
    (r"\b(?:sshpass|mongo|mongosh|mongodump|mongorestore|mongoexport|mongoimport)\b[^\n;|&]*?\s-p\s*"
     r"([^\s'\"-][^\s'\"]*|'[^']*'|\"[^\"]*\")", 1),
    (r"\bredis-cli\b[^\n;|&]*?\s-a\s*([^\s'\"]+|'[^']*'|\"[^\"]*\")", 1),
    (r"\b(?:sqlcmd|bcp|osql|isql)\b[^\n;|&]*?\s-P\s*([^\s'\"]+|'[^']*'|\"[^\"]*\")", 1),
    (r"\b(?:docker|podman|buildah|skopeo|helm|oras|nerdctl)\s+(?:\S+\s+)*?login\b[^\n;|&]*?\s-p\s*"
     r"([^\s'\"-][^\s'\"]*|'[^']*'|\"[^\"]*\")", 1),
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
        if any(word in norm or word.replace("_", "") in flat for word in self.keys):
            return True
        # a credential word as the last part of a name (DB_PASS, SSHPASS, REDISCLI_AUTH, x-pw)
        last = re.split(r"[^a-z0-9]+", norm.strip("_ .-"))[-1] if norm.strip("_ .-") else ""
        return last in SECRET_NAME_ENDINGS or last.endswith("pass")

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
            named = self._pair_name(v)
            return {k: self.value(item, k, hidden or (named is not None and k != named))
                    for k, item in v.items()}
        if isinstance(v, list):
            return [self.value(item, None, hidden) for item in v]
        if isinstance(v, str):
            return self._json_text(v)
        return v

    def _pair_name(self, d):
        """The key of ``d`` that names a credential in a name/value pair (HTTP header lists
        ``{"name": "X-Api-Key", "value": ...}``, Kubernetes env ``{"name": "DB_PASSWORD",
        "value": ...}``, ECS/CloudFormation ``{"Name"|"Key": ..., "Value": ...}``), or None."""
        if len(d) > 6:
            return None
        for k, item in d.items():
            if (str(k).lower() in PAIR_NAME_KEYS and isinstance(item, str) and len(d) > 1
                    and self.is_secret_key(item)):
                return k
        return None

    def _json_text(self, s):
        """A string masked as text, or, when it is a JSON object or array (a request body, a
        serialised config), parsed and masked as a value (by key and pair), then re-serialised."""
        stripped = s.strip()
        if stripped[:1] in ("{", "[") and len(stripped) < 1_000_000:
            try:
                parsed = json.loads(stripped)
            except ValueError:
                parsed = None
            if isinstance(parsed, (dict, list)):
                before = self.masked
                masked = self.value(parsed)
                if self.masked != before:
                    return json.dumps(masked, ensure_ascii=False)
        return self.text(s)
