"""Keep the compiled policy where the hook can load it cheaply.

The cache file (``<state dir>/policy.cache``) holds ``marshal`` data:
``(format, policy path, st_mtime_ns, st_size, st_ino, compiled policy)``. It is
valid only while the policy file's stat fields are unchanged and the compiled
policy's ``hash`` is the sha-256 of the file's bytes (a forged cache with a matching
stat key is not used); otherwise the policy is parsed again (``tomllib``) and the cache rewritten atomically. ``marshal`` and
``os.stat`` cost microseconds; ``tomllib`` costs about 15 ms per process
(bench/hook_startup.py). A cache that cannot be read or written is ignored: the
policy file is always the source of truth.
"""

import marshal
import os

CACHE_NAME = "policy.cache"
_FORMAT = 3  # 3: [python], [apply] and [review] (a cache of format 2 lacks them: parse again)


def _key(path, st):
    return (_FORMAT, str(path), st.st_mtime_ns, st.st_size, st.st_ino)


def load_policy(path, cache_dir=None):
    """Return the compiled policy for the file at ``path`` (see drygate.policy.load).

    ``cache_dir``: folder for the cache file, or None for no cache. Raises
    :class:`drygate.errors.ConfigError` when the policy is missing or invalid.
    """
    try:
        st = os.stat(path)
    except OSError as e:
        from drygate.errors import ConfigError  # only here: drygate.errors costs 0.3 ms to import

        raise ConfigError(f"no policy at {path} ({e.strerror}); run `drygate init` to create one") from e
    cache_path = os.path.join(cache_dir, CACHE_NAME) if cache_dir else None
    key = _key(path, st)
    if cache_path:
        try:
            with open(cache_path, "rb") as f:
                cached = marshal.load(f)
            if (isinstance(cached, tuple) and len(cached) == 2 and cached[0] == key and isinstance(cached[1], dict)
                    and cached[1].get("hash") == _file_hash(path)):
                return cached[1]
        except (OSError, EOFError, ValueError, TypeError):
            pass
    from drygate.policy.load import load_policy_file

    policy = load_policy_file(path)
    if cache_path:
        _write_cache(cache_path, key, policy)
    return policy


def _file_hash(path):
    """sha-256 (hex) of the policy file's bytes: a cache whose compiled policy was made from
    other bytes is not used, whatever its stat key says (the key is easy to forge: a cache
    written by anyone but drygate must not replace the policy). About 10 us for a policy."""
    try:
        from _sha256 import sha256
    except ImportError:  # pragma: no cover - Python 3.12 names it _sha2
        from _sha2 import sha256
    with open(path, "rb") as f:
        return sha256(f.read()).hexdigest()


def _write_cache(cache_path, key, policy):
    tmp = f"{cache_path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(cache_path), exist_ok=True)
        with open(tmp, "wb") as f:
            marshal.dump((key, {k: v for k, v in policy.items() if not k.startswith("_")}), f)
        os.replace(tmp, cache_path)
    except (OSError, ValueError):
        try:
            os.unlink(tmp)
        except OSError:
            pass
