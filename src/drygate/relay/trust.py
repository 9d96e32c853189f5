"""Trust in a server's tool annotations, recorded in drygate.toml on the server's first use.

The engine believes MCP tool annotations (``readOnlyHint: true`` makes a tool a read)
only for the servers in ``[mcp] trusted_servers``. Without that, every tool of a new
server is unknown, so a write: a dry run skips its reads too. Trust is therefore a
visible step: :func:`record_first_use` (called by ``drygate mcp`` at start and by
``drygate install claude-code --mcp`` for each server it wraps) writes the decision
into the policy with a comment, once per server, and returns a line that tells the user.

The ``[mcp]`` table it writes starts with :data:`HEADER`. Each server gets a line
``# drygate mcp: first use of "NAME" on DATE: trusted`` (or ``not trusted``), so a
server the user removed from ``trusted_servers`` is not added again. A policy whose
``[mcp]`` table the user wrote (no :data:`HEADER`) is left alone: its author manages
trust, and the returned line only says which servers' reads will be skipped.

The file is changed under an ``fcntl`` lock on ``.drygate/policy.lock`` next to the
policy and replaced atomically (a temporary file renamed over it), so
relays starting together (a client that starts one per call) and the hook reading the
policy never see half a file. The new text is parsed before it replaces the old one.
"""

import json
import os
import re
import time

#: First comment line of an ``[mcp]`` table drygate manages.
HEADER = "# Recorded by drygate mcp on each server's first use (drygate.relay.trust)."
_EXPLAIN = ("# A server in trusted_servers has its tool annotations believed: readOnlyHint: true makes a\n"
            "# tool a read, so its reads pass in dry runs. Remove a name to treat every tool of it as a write.\n")


def _seen(text, server):
    return f"first use of {json.dumps(server)} on " in text


def record_first_use(policy_path, servers, trusted=True, today=None, on_written=None):
    """Record the trust of each server in ``servers`` (names) the policy has never seen.

    Returns a message for the user (str) or None when there is nothing to say. Does
    nothing when the policy file does not exist (the gate then fails closed anyway and
    ``drygate init`` makes one). ``on_written()`` is called (under the lock) right after
    the file was replaced, e.g. :func:`bless_policy`. Raises OSError when the file cannot
    be written, and ValueError (from tomllib) never: an unparseable policy is left as it is.
    """
    import tomllib

    if not os.path.exists(policy_path):
        return None
    today = today or time.strftime("%Y-%m-%d")
    with _lock(policy_path):
        with open(policy_path, encoding="utf-8") as f:
            text = f.read()
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return None  # the gate reports the broken policy on every call
        mcp = doc.get("mcp") if isinstance(doc.get("mcp"), dict) else None
        listed = mcp.get("trusted_servers") if mcp else None
        listed = listed if isinstance(listed, list) else []
        new = [s for s in servers if s not in listed and not _seen(text, s)]
        if not new:
            return None
        if mcp is not None and HEADER not in text:
            return (f"drygate mcp: {', '.join(new)} not in [mcp] trusted_servers of {policy_path}: "
                    f"its tools are unknown (writes), so a dry run skips their reads too")
        marks = "".join(f"# drygate mcp: first use of {json.dumps(s)} on {today}: "
                        f"{'trusted' if trusted else 'not trusted'}\n" for s in new)
        names = listed + (new if trusted else [])
        assignment = f"trusted_servers = {json.dumps(names)}\n"
        if mcp is None:
            updated = text + ("" if text.endswith("\n") or not text else "\n") + \
                f"\n[mcp]\n{HEADER}\n{_EXPLAIN}{marks}{assignment}"
        else:
            pattern = re.compile(r"^trusted_servers\s*=\s*\[[^\]]*\][^\n]*\n?", re.M)
            found = pattern.search(text, text.index(HEADER))
            if found is None:
                return None  # reshaped by hand: leave it
            updated = text[:found.start()] + marks + assignment + text[found.end():]
        check = tomllib.loads(updated)
        if (check.get("mcp") or {}).get("trusted_servers") != names:
            return None  # the edit would not mean what it says: leave the file alone
        tmp = f"{policy_path}.drygate-tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(updated)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.chmod(tmp, os.stat(policy_path).st_mode & 0o7777)
        except OSError:
            pass
        os.replace(tmp, policy_path)
        if on_written is not None:
            on_written()
    if trusted:
        return (f"drygate mcp: first use of {', '.join(new)}: its tool annotations are now trusted "
                f"(readOnlyHint makes a tool a read), recorded in {policy_path} [mcp] trusted_servers; "
                f"remove the name there to treat its tools as writes")
    return (f"drygate mcp: first use of {', '.join(new)}: its tool annotations are NOT trusted (recorded in "
            f"{policy_path}); a dry run skips its reads too. Add it to [mcp] trusted_servers to trust them")


def bless_policy(settings, host="drygate-mcp"):
    """Record the policy as drygate's own write (drygate.integrity.bless), so a run in progress
    that fingerprinted it before takes the recorded trust instead of blocking as tampered.

    Best effort: a store that cannot be opened (none yet) has no run that saw the old policy.
    """
    from drygate import integrity
    from drygate.gate import Gate

    try:
        gate = Gate.open(settings, host)
    except Exception:
        return
    try:
        integrity.bless(gate.store, [(settings.policy_path, "f")])
    except Exception:
        pass
    finally:
        gate.close()


class _lock:
    """An exclusive ``fcntl`` lock on ``.drygate/policy.lock`` next to the policy."""

    def __init__(self, policy_path):
        self.path = os.path.join(os.path.dirname(os.path.abspath(policy_path)), ".drygate", "policy.lock")

    def __enter__(self):
        import fcntl

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        import fcntl

        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
