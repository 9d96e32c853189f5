"""What a call's surroundings were when the gate decided it: its working folder and, for
shell commands, its environment. Journaled with the call (``context`` of a journal
entry), so that apply runs a step, and re-runs a read, where and as the agent's call ran
(drygate.plan.apply), never from what a plan file says.

Lean on purpose: the hook imports it on every Bash call. A call's context is built by
:func:`drygate.types.context_of` (every journal entry has one; only a Bash call needs this module).

Context (dict)::

    {"cwd": str | None, "env": {name: str | None} | None}

``env`` holds the environment the host gave the gate (the Bash tool's shell starts from
the same one), except names that change per process (:data:`DROPPED`). A value that may
be a secret is not journaled: its name maps to None (a name that looks like one,
:func:`secret_name`, or a value that carries credentials in a URL, ``scheme://user:pass@``),
and apply takes that variable from its own environment (:func:`environment_for`).
"""

#: Variables that change per process or per shell and say nothing about what a command reads.
DROPPED = frozenset(("_", "SHLVL", "PWD", "OLDPWD", "COLUMNS", "LINES", "TERM_SESSION_ID", "WINDOWID"))
#: Parts of a name (upper case) whose value is kept out of the journal, and name endings.
SECRET_PARTS = ("SECRET", "TOKEN", "PASSW", "PASSPHRASE", "CREDENTIAL", "COOKIE", "PRIVATE", "AUTH", "SESSION",
                "APIKEY", "API_KEY", "ACCESSKEY", "ACCESS_KEY", "SIGNATURE", "SALT", "PWD")
SECRET_ENDINGS = ("_KEY", "_PASS", "_PW")


def secret_name(name):
    """True when a variable's name says its value may be a secret (:data:`SECRET_PARTS`
    anywhere, :data:`SECRET_ENDINGS` at the end, or ``KEY``). Plain string tests: the hook
    journals a Bash call's environment on every such call, and ``re`` costs it more."""
    upper = name.upper()
    return upper == "KEY" or upper.endswith(SECRET_ENDINGS) or any(part in upper for part in SECRET_PARTS)


def url_credentials(value):
    """True when ``value`` holds a URL with a password (``scheme://user:pass@host``)."""
    start = value.find("://")
    while start >= 0:
        at = value.find("@", start + 3)
        if at < 0:
            return False
        userinfo = value[start + 3:at]
        if ":" in userinfo and "/" not in userinfo and not any(c.isspace() for c in userinfo):
            return True
        start = value.find("://", start + 3)
    return False


def journal_env(environ):
    """The environment as journaled (dict ``{name: value or None}``), see the module docstring."""
    out = {}
    for name, value in environ.items():
        if name in DROPPED:
            continue
        out[name] = None if secret_name(name) or url_credentials(value) else value
    return out


def environment_for(journaled, environ):
    """The environment to run a journaled shell command with: ``(env dict, missing names)``.

    ``journaled``: the call's journaled env (values, or None for withheld secrets);
    ``environ``: apply's own environment, which supplies the withheld values. Variables
    that only apply's environment has are left out: the command sees what the agent's
    saw. ``missing``: withheld names apply's environment does not have (list of str).
    """
    env, missing = {}, []
    for name, value in (journaled or {}).items():
        if value is not None:
            env[name] = value
        elif name in environ:
            env[name] = environ[name]
        else:
            missing.append(name)
    return env, sorted(missing)
