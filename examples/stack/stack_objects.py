"""The object store: boto3 against any S3 endpoint (``STACK_S3_URL``; AWS when unset).

Preconditions are S3's own conditional writes, checked by the store atomically with the
write (real S3; see README.md for what moto checks):

- ``put_object(..., if_match=ETAG)``: only if the object exists with that ETag;
- ``put_object(..., if_none_match="*")``: only if no object has that key;
- ``delete_object(..., if_match=ETAG)``: only if the object exists with that ETag.

ETags are returned and accepted without the surrounding quotes S3 puts on them.

Writes go through a client whose retries are off: when botocore retries a conditional
put whose first attempt was applied but whose answer was lost, the retry fails its own
precondition and reports "refused" for a write that happened. Without retries such a
failure is reported as "outcome unknown" instead, and the caller retries with its
idempotency key (see stack_idempotency.py).
"""

from __future__ import annotations

import base64
import os
from typing import Any

from stack_base import OutcomeUnknown, Refused

#: S3 error codes after which nothing was changed (the request was refused as a whole).
_REFUSALS = {
    "PreconditionFailed": "precondition failed",
    "ConditionalRequestConflict": "a concurrent write to the same key won",
    "NoSuchKey": "no such object",
    "NoSuchBucket": "no such bucket",
    "InvalidBucketName": "invalid bucket name",
    "BucketAlreadyExists": "the bucket name is taken by another account",
    "BucketAlreadyOwnedByYou": "you already own this bucket",
    "AccessDenied": "access denied",
    "NotImplemented": "not supported by this S3 endpoint",
    "InvalidArgument": "invalid argument",
    "KeyTooLongError": "key too long",
    "EntityTooLarge": "object too large",
    "404": "not found",
    "412": "precondition failed",
}
_LIST_LIMIT = 1000


def _translate(exc: Exception, what: str, write: bool) -> Exception:
    """A botocore error as the tool's error: Refused when S3 refused the request as a whole,
    OutcomeUnknown when a write may have been applied (a timeout, a 5xx)."""
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError

    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):  # never connected: nothing was sent
        return Refused(f"{what}: could not reach S3 ({exc}); nothing was changed")
    response = getattr(exc, "response", None)
    if response is None:  # sent, but no answer (read timeout, connection reset)
        if write:
            return OutcomeUnknown(f"{what}: {exc}; the write may or may not have been applied")
        return Refused(f"{what}: {exc}")
    error = response.get("Error", {})
    code, message = str(error.get("Code", "")), error.get("Message") or ""
    if code in _REFUSALS:
        detail = f" ({error['Condition']})" if error.get("Condition") else ""
        return Refused(f"{what}: {_REFUSALS[code]}{detail}: {code}: {message}; nothing was changed")
    if write:
        return OutcomeUnknown(f"{what}: S3 answered {code}: {message}; the write may or may not have been applied")
    return Refused(f"{what}: S3 answered {code}: {message}")


def _quoted(etag: str) -> str:
    etag = etag.strip()
    return etag if etag.startswith(('"', 'W/"')) else f'"{etag}"'


def _unquoted(etag: str | None) -> str | None:
    return etag.strip('"') if etag else etag


class ObjectStore:
    def __init__(self, url: str | None = None, region: str | None = None):
        self.url = url or os.environ.get("STACK_S3_URL") or None
        self.region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self._reader = self._writer = None

    def _clients(self):
        if self._writer is None:
            import boto3  # only when an object-store tool is used
            from botocore.config import Config

            session = boto3.session.Session()
            common = {"connect_timeout": 5, "read_timeout": 15}
            self._reader = session.client("s3", endpoint_url=self.url, region_name=self.region,
                                          config=Config(retries={"mode": "standard", "total_max_attempts": 3},
                                                        **common))
            self._writer = session.client("s3", endpoint_url=self.url, region_name=self.region,
                                          config=Config(retries={"total_max_attempts": 1}, **common))
        return self._reader, self._writer

    def _call(self, what: str, fn, write: bool, **kwargs) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, what, write) from exc

    # -- reads ----------------------------------------------------------------------------

    def get_object(self, bucket: str, key: str) -> dict[str, Any]:
        reader, _ = self._clients()
        response = self._call(f"get s3://{bucket}/{key}", reader.get_object, False, Bucket=bucket, Key=key)
        data = response["Body"].read()
        result = {"bucket": bucket, "key": key, "etag": _unquoted(response.get("ETag")), "size": len(data),
                  "content_type": response.get("ContentType"), "version_id": response.get("VersionId")}
        try:
            result.update(body=data.decode("utf-8"), encoding="utf-8")
        except UnicodeDecodeError:
            result.update(body=base64.b64encode(data).decode("ascii"), encoding="base64")
        return result

    def head_object(self, bucket: str, key: str) -> dict[str, Any]:
        reader, _ = self._clients()
        try:
            response = self._call(f"head s3://{bucket}/{key}", reader.head_object, False, Bucket=bucket, Key=key)
        except Refused as refused:
            if getattr(refused.__cause__, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return {"bucket": bucket, "key": key, "exists": False}
            raise
        return {"bucket": bucket, "key": key, "exists": True, "etag": _unquoted(response.get("ETag")),
                "size": response.get("ContentLength"), "content_type": response.get("ContentType"),
                "last_modified": response["LastModified"].isoformat() if response.get("LastModified") else None,
                "version_id": response.get("VersionId")}

    def list_objects(self, bucket: str, prefix: str = "") -> dict[str, Any]:
        reader, _ = self._clients()
        objects, token, truncated = [], None, False
        while True:
            kwargs = {"Bucket": bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(f"list s3://{bucket}/{prefix}", reader.list_objects_v2, False, **kwargs)
            for item in page.get("Contents", []):
                objects.append({"key": item["Key"], "etag": _unquoted(item.get("ETag")), "size": item.get("Size")})
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                break
            if len(objects) >= _LIST_LIMIT:
                truncated = True
                break
        return {"bucket": bucket, "prefix": prefix, "objects": objects[:_LIST_LIMIT],
                "truncated": truncated or len(objects) > _LIST_LIMIT}

    # -- writes ---------------------------------------------------------------------------

    def create_bucket(self, bucket: str) -> dict[str, Any]:
        _, writer = self._clients()
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._call(f"create bucket {bucket}", writer.create_bucket, True, **kwargs)
        except Refused as refused:
            # Outside us-east-1, S3 refuses to create a bucket you already own; the state
            # the caller asked for (the bucket exists and is yours) holds all the same.
            if "BucketAlreadyOwnedByYou" not in str(refused):
                raise
        return {"bucket": bucket, "region": self.region}

    def put_object(self, bucket: str, key: str, body: str, encoding: str, content_type: str | None,
                   if_match: str | None, if_none_match: str | None) -> dict[str, Any]:
        if if_none_match is not None and if_none_match != "*":
            raise Refused(f"put s3://{bucket}/{key}: if_none_match must be \"*\" (create only if absent), "
                          f"not {if_none_match!r}; nothing was changed")
        if if_match is not None and if_none_match is not None:
            raise Refused(f"put s3://{bucket}/{key}: give if_match or if_none_match, not both; nothing was changed")
        if encoding == "utf-8":
            data = body.encode("utf-8")
        elif encoding == "base64":
            try:
                data = base64.b64decode(body, validate=True)
            except ValueError as exc:
                raise Refused(f"put s3://{bucket}/{key}: body is not valid base64 ({exc}); nothing was changed") \
                    from exc
        else:
            raise Refused(f"put s3://{bucket}/{key}: encoding must be 'utf-8' or 'base64', not {encoding!r}; "
                          "nothing was changed")
        _, writer = self._clients()
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": data}
        if content_type:
            kwargs["ContentType"] = content_type
        if if_match is not None:
            kwargs["IfMatch"] = _quoted(if_match)
        if if_none_match is not None:
            kwargs["IfNoneMatch"] = "*"
        response = self._call(f"put s3://{bucket}/{key}", writer.put_object, True, **kwargs)
        return {"bucket": bucket, "key": key, "etag": _unquoted(response.get("ETag")), "size": len(data),
                "version_id": response.get("VersionId")}

    def delete_object(self, bucket: str, key: str, if_match: str | None) -> dict[str, Any]:
        _, writer = self._clients()
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if if_match is not None:
            kwargs["IfMatch"] = _quoted(if_match)
        response = self._call(f"delete s3://{bucket}/{key}", writer.delete_object, True, **kwargs)
        # S3 answers 204 whether or not the key existed: the result does not claim either.
        return {"bucket": bucket, "key": key, "deleted": True, "version_id": response.get("VersionId"),
                "delete_marker": response.get("DeleteMarker")}
