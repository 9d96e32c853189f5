"""The object-store overlay (kind ``objects``): a run's simulated puts and deletes over a real S3 bucket.

Roles and their tools' contract (the reference server's, examples/stack: ETags without
quotes, errors worded as it words them):

- ``put(bucket, key, body, if_match=None, if_none_match=None, encoding="utf-8",
  content_type=None)`` -> ``{bucket, key, etag, size, version_id}``;
- ``get(bucket, key)`` -> ``{bucket, key, etag, size, content_type, version_id, body, encoding}``;
- ``head(bucket, key)`` -> ``{bucket, key, exists, etag, size, content_type, last_modified,
  version_id}``, or ``{bucket, key, exists: false}``;
- ``list(bucket, prefix="")`` -> ``{bucket, prefix, objects: [{key, etag, size}], truncated}``
  (at most 1000 objects);
- ``delete(bucket, key, if_match=None)`` -> ``{bucket, key, deleted: true, version_id, delete_marker}``.

What the overlay computes as the store would: the ETag of a put is the MD5 hex of the body
(S3's ETag of a single PUT without SSE-KMS or SSE-C), its size, the content type
(``binary/octet-stream`` when none is given, S3's default), and the preconditions against
the run's view (the overlay's entry for the key, else the real object): ``if_none_match="*"``
fails when the key exists there, ``if_match`` fails with NoSuchKey when it does not and with
PreconditionFailed when its ETag differs; a put or delete into a bucket that does not exist
fails with NoSuchBucket. Version ids are null and ``delete_marker`` is null, as an
unversioned bucket answers; ``last_modified`` of a simulated object is the time of the
simulated put. Reads of keys the run did not touch are the real server's answers, unchanged.
A listing is the real listing with the run's puts added (or replacing the real entry) and its
deleted keys removed, in key order.
"""

import base64
import hashlib

from drygate.overlay.base import OverlayUnavailable
from drygate.overlay.stores import (
    ENTRY_OVERHEAD,
    Answer,
    OverlayStore,
    argument,
    need,
)

#: S3's default content type for an object put without one.
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
#: The most objects a listing returns (the reference server's limit).
LIST_LIMIT = 1000
PRECONDITION = "At least one of the pre-conditions you specified did not hold"
NO_SUCH_KEY = "no such object: NoSuchKey: The specified key does not exist."
NO_SUCH_BUCKET = "no such bucket: NoSuchBucket: The specified bucket does not exist"
NOTHING = "; nothing was changed"


def s3_etag(data):
    """The ETag S3 gives a single PUT of ``data`` (bytes) without SSE-KMS/SSE-C: its MD5 hex, unquoted."""
    return hashlib.md5(data).hexdigest()


def _plain_etag(etag):
    etag = etag.strip()
    etag = etag.removeprefix("W/")
    return etag.strip('"')


class ObjectOverlay(OverlayStore):
    """A run's overlay of an S3-compatible object store (module docstring)."""

    KIND = "objects"
    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS objects (bucket TEXT NOT NULL, key TEXT NOT NULL, deleted INTEGER NOT NULL, "
        "body BLOB, etag TEXT, size INTEGER, content_type TEXT, written_at REAL, PRIMARY KEY (bucket, key))",
        "CREATE TABLE IF NOT EXISTS buckets (bucket TEXT PRIMARY KEY)",
    )

    def has_entry(self, what):
        """``what``: ``(bucket, key)``."""
        bucket, key = what
        return self._entry(bucket, key, body=False) is not None

    def _entry(self, bucket, key, body=True):
        row = self.conn.execute(f"SELECT deleted, etag, size, content_type, written_at{', body' if body else ''} "
                                f"FROM objects WHERE bucket = ? AND key = ?", (bucket, key)).fetchone()
        if row is None:
            return None
        entry = {"deleted": bool(row[0]), "etag": row[1], "size": row[2], "content_type": row[3],
                 "written_at": row[4]}
        if body:
            entry["body"] = row[5]
        return entry

    def entries(self, bucket, prefix=""):
        """The run's entries under ``prefix`` in ``bucket``: ``{key: {"deleted", "etag", "size"}}``."""
        rows = self.conn.execute("SELECT key, deleted, etag, size FROM objects WHERE bucket = ? AND "
                                 "substr(key, 1, length(?)) = ?", (bucket, prefix, prefix))
        return {key: {"deleted": bool(deleted), "etag": etag, "size": size} for key, deleted, etag, size in rows}

    # -- reads ---------------------------------------------------------------------------------
    def op_get(self, arguments, real):
        """Read an object: the run's put, NoSuchKey for the run's delete, else the real object."""
        bucket = argument(arguments, "bucket", str, required=True)
        key = argument(arguments, "key", str, required=True)
        entry = self._entry(bucket, key)
        if entry is None:
            return Answer.passthrough(need(real, "get", arguments))
        if entry["deleted"]:
            return Answer.error(f"get s3://{bucket}/{key}: {NO_SUCH_KEY}{NOTHING}", reflects=True)
        data = entry["body"]
        value = {"bucket": bucket, "key": key, "etag": entry["etag"], "size": entry["size"],
                 "content_type": entry["content_type"], "version_id": None}
        try:
            value.update(body=data.decode("utf-8"), encoding="utf-8")
        except UnicodeDecodeError:
            value.update(body=base64.b64encode(data).decode("ascii"), encoding="base64")
        return Answer(True, value, reflects=True, values=_VALUES_READ)

    def op_head(self, arguments, real):
        """Whether an object exists: the run's put or delete, else the real object."""
        bucket = argument(arguments, "bucket", str, required=True)
        key = argument(arguments, "key", str, required=True)
        entry = self._entry(bucket, key, body=False)
        if entry is None:
            return Answer.passthrough(need(real, "head", arguments))
        if entry["deleted"]:
            return Answer(True, {"bucket": bucket, "key": key, "exists": False}, reflects=True)
        return Answer(True, {"bucket": bucket, "key": key, "exists": True, "etag": entry["etag"],
                             "size": entry["size"], "content_type": entry["content_type"],
                             "last_modified": _iso(entry["written_at"]), "version_id": None},
                      reflects=True, values=_VALUES_HEAD)

    def op_list(self, arguments, real):
        """The real listing merged with the run's puts and deletes (key order, at most 1000)."""
        bucket = argument(arguments, "bucket", str, required=True)
        prefix = argument(arguments, "prefix", str, default="")
        listing = need(real, "list", arguments)
        entries = self.entries(bucket, prefix)
        if not entries or not listing.ok or listing.value is None:
            return Answer.passthrough(listing)
        objects = listing.value.get("objects")
        if not isinstance(objects, list):
            raise OverlayUnavailable("the real server's listing has no objects list", "real_read_failed")
        truncated = bool(listing.value.get("truncated"))
        last = objects[-1].get("key") if truncated and objects and isinstance(objects[-1], dict) else None
        merged = {o.get("key"): o for o in objects if isinstance(o, dict)}
        for key, entry in entries.items():
            if entry["deleted"]:
                merged.pop(key, None)
            elif last is None or key <= last:  # past the real listing's last key, live would not show it either
                merged[key] = {"key": key, "etag": entry["etag"], "size": entry["size"]}
        keys = sorted(k for k in merged if isinstance(k, str))
        values = {}
        if truncated:
            values["truncated"] = ("the real listing was cut at its limit: keys past its last one are not known to "
                                   "the overlay, and a key the run deleted lets live show one more")
        value = dict(listing.value)
        value["objects"] = [merged[k] for k in keys[:LIST_LIMIT]]
        value["truncated"] = truncated or len(keys) > LIST_LIMIT
        return Answer(True, value, reflects=True, values=values)

    # -- writes --------------------------------------------------------------------------------
    def _state(self, bucket, key, real, what):
        """``(exists, etag, from_overlay)`` of ``key`` as the run sees it, or None when the bucket does not exist.

        Within a write transaction. Raises NeedRead, or OverlayUnavailable when a real read fails."""
        entry = self._entry(bucket, key, body=False)
        if entry is not None:
            return (not entry["deleted"], entry["etag"], True)
        head = need(real, "head", {"bucket": bucket, "key": key})
        if not head.ok or head.value is None:
            raise OverlayUnavailable(f"the real server could not say whether s3://{bucket}/{key} exists "
                                     f"({head.text or 'no structured answer'})", "real_read_failed")
        if head.value.get("exists"):
            self._bucket_exists(bucket)
            return (True, head.value.get("etag"), False)
        known = self.conn.execute("SELECT 1 FROM buckets WHERE bucket = ?", (bucket,)).fetchone()
        if known is None:
            # A HEAD of a key in a missing bucket is a plain 404 too: a listing tells them apart.
            listing = need(real, "list", {"bucket": bucket, "prefix": key})
            if not listing.ok:
                if "NoSuchBucket" in listing.text:
                    return None
                raise OverlayUnavailable(f"the real server could not list s3://{bucket}/ ({listing.text})",
                                         "real_read_failed")
            self._bucket_exists(bucket)
        return (False, None, False)

    def _bucket_exists(self, bucket):
        self.conn.execute("INSERT OR IGNORE INTO buckets VALUES (?)", (bucket,))

    def _old_size(self, bucket, key):
        row = self.conn.execute("SELECT deleted, size FROM objects WHERE bucket = ? AND key = ?",
                                (bucket, key)).fetchone()
        if row is None:
            return 0
        return ENTRY_OVERHEAD + len(key.encode("utf-8")) + (0 if row[0] else (row[1] or 0))

    def op_put(self, arguments, real):
        """Simulate a put: the server's argument checks, the bucket, the preconditions, then keep the object."""
        bucket = argument(arguments, "bucket", str, required=True)
        key = argument(arguments, "key", str, required=True)
        body = argument(arguments, "body", str, required=True)
        if_match = argument(arguments, "if_match", str)
        if_none_match = argument(arguments, "if_none_match", str, choices=("*",))
        encoding = argument(arguments, "encoding", str, default="utf-8", choices=("utf-8", "base64"))
        content_type = argument(arguments, "content_type", str)
        what = f"put s3://{bucket}/{key}"
        if if_match is not None and if_none_match is not None:
            return Answer.error(f"{what}: give if_match or if_none_match, not both{NOTHING}")
        if encoding == "utf-8":
            data = body.encode("utf-8")
        else:
            try:
                data = base64.b64decode(body, validate=True)
            except ValueError as exc:
                return Answer.error(f"{what}: body is not valid base64 ({exc}){NOTHING}")
        with self._transaction():
            state = self._state(bucket, key, real, what)
            if state is None:
                return Answer.error(f"{what}: {NO_SUCH_BUCKET}{NOTHING}")
            exists, etag, from_overlay = state
            failed = _precondition(what, exists, etag, if_match, if_none_match)
            if failed:
                return Answer.error(failed, reflects=from_overlay)
            new_etag = s3_etag(data)
            delta = ENTRY_OVERHEAD + len(key.encode("utf-8")) + len(data) - self._old_size(bucket, key)
            self._count_write(delta)
            self.conn.execute(
                "INSERT OR REPLACE INTO objects VALUES (?, ?, 0, ?, ?, ?, ?, ?)",
                (bucket, key, data, new_etag, len(data), content_type or DEFAULT_CONTENT_TYPE, self.clock()))
        value = {"bucket": bucket, "key": key, "etag": new_etag, "size": len(data), "version_id": None}
        return Answer(True, value, reflects=from_overlay, wrote=True, values=_VALUES_PUT)

    def op_delete(self, arguments, real):
        """Simulate a delete: the bucket and ``if_match`` against the run's view, then a deletion marker."""
        bucket = argument(arguments, "bucket", str, required=True)
        key = argument(arguments, "key", str, required=True)
        if_match = argument(arguments, "if_match", str)
        what = f"delete s3://{bucket}/{key}"
        with self._transaction():
            state = self._state(bucket, key, real, what)
            if state is None:
                return Answer.error(f"{what}: {NO_SUCH_BUCKET}{NOTHING}")
            exists, etag, from_overlay = state
            failed = _precondition(what, exists, etag, if_match, None)
            if failed:
                return Answer.error(failed, reflects=from_overlay)
            self._count_write(ENTRY_OVERHEAD + len(key.encode("utf-8")) - self._old_size(bucket, key))
            self.conn.execute("INSERT OR REPLACE INTO objects VALUES (?, ?, 1, NULL, NULL, NULL, NULL, ?)",
                              (bucket, key, self.clock()))
        value = {"bucket": bucket, "key": key, "deleted": True, "version_id": None, "delete_marker": None}
        return Answer(True, value, reflects=from_overlay, wrote=True, values=_VALUES_DELETE)


def _precondition(what, exists, etag, if_match, if_none_match):
    """The error message a conditional write gets on the run's view of the key, or None when it holds."""
    if if_none_match is not None and exists:
        return f"{what}: precondition failed (If-None-Match): PreconditionFailed: {PRECONDITION}{NOTHING}"
    if if_match is not None:
        if not exists:
            return f"{what}: {NO_SUCH_KEY}{NOTHING}"
        if _plain_etag(if_match) != _plain_etag(etag or ""):
            return f"{what}: precondition failed (If-Match): PreconditionFailed: {PRECONDITION}{NOTHING}"
    return None


def _iso(ts):
    import datetime

    return datetime.datetime.fromtimestamp(int(ts), datetime.UTC).isoformat()


_VERSION = "null, as an unversioned bucket answers (a versioned bucket gives an id when the write is applied)"
_VALUES_PUT = {"etag": "the MD5 of the body, as S3 computes it for a single PUT without SSE-KMS or SSE-C",
               "version_id": _VERSION}
_VALUES_READ = {"etag": _VALUES_PUT["etag"], "version_id": _VERSION}
_VALUES_HEAD = dict(_VALUES_READ, last_modified="the time of the run's simulated put, not a real write's")
_VALUES_DELETE = {"version_id": _VERSION, "delete_marker": "null, as an unversioned bucket answers"}
