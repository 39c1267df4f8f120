"""``B2Session``: the Backblaze B2 native-API backend.

It owns the B2 JSON calls, upload URLs, downloads by name and by id, the string encoding of
file names, and the mapping of B2's JSON errors onto :mod:`s3func.errors`. Account tokens and
upload URLs are shared by every session of the process (``_b2_auth``).

How S3 concepts map onto B2 (see ``docs/b2.md``):

* ``version_id`` is B2's ``fileId``.
* ``etag`` is the hex SHA-1 of the content (B2's ``contentSha1``); for large files, where B2
  keeps no whole-file SHA-1, it is the ``large_file_sha1`` file info when present, else the
  ``fileId``. It is never an MD5, and listings, heads, gets and puts agree on it.
* user metadata is B2 file info (``X-Bz-Info-*``).
* ``delete_object(key)`` hides the name (a B2 hide marker, S3's delete marker);
  ``delete_object(key, version_id=...)`` deletes that version for good.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import IO, TYPE_CHECKING, Any, Literal, cast
from urllib.parse import quote, unquote_plus, urlsplit

from . import __version__, _transfer
from ._b2_auth import TOKENS, UPLOAD_URLS, B2Authorization, CacheKey
from ._config import resolve_b2_credentials, validate_endpoint_url
from ._http import Request, translate_exception
from ._transfer import PartReader
from .errors import (
    AccessDeniedError,
    AuthenticationError,
    ConfigurationError,
    IntegrityError,
    NotFoundError,
    NotSupportedError,
    PreconditionFailedError,
    S3FuncError,
    ServerError,
    ServiceError,
    TransportError,
    error_for_status,
)
from .models import ListResult, ObjectInfo, Response
from .progress import ProgressLike, make_tracker
from .response import ObjectResponse, body_range
from .retry import RetryPolicy, parse_retry_after
from .session import BaseSession, Data, check_key, check_metadata

if TYPE_CHECKING:
    import urllib3

__all__ = ["B2Session", "b2_decode", "b2_encode"]

log = logging.getLogger("s3func")

#: The production authorization endpoint.
DEFAULT_ENDPOINT = "https://api.backblazeb2.com"
_API = "/b2api/v4"
_USER_AGENT = (
    f"s3func/{__version__} python/{platform.python_version()} ({platform.system() or 'unknown'})"
)

_INFO = "x-bz-info-"
_MAX_INFO_ENTRIES = 10
_MAX_NAME_AND_INFO_BYTES = 7000
_INFO_NAME = re.compile(r"^[A-Za-z0-9_-]{1,50}$")
_RESERVED_INFO = frozenset(
    {
        "b2-content-disposition",
        "b2-content-language",
        "b2-expires",
        "b2-cache-control",
        "b2-content-encoding",
    }
)
_HEX40 = re.compile(r"^[0-9a-fA-F]{40}$")
_REAUTH_CODES = frozenset({"expired_auth_token", "bad_auth_token"})
_NOT_FOUND_CODES = frozenset({"not_found", "file_not_present", "no_such_file"})
_MAX_SIMPLE_UPLOAD = 5_000_000_000
_MAX_COPY = 5_000_000_000
_MAX_PARTS = 10_000
_MAX_DOWNLOAD_AUTH = 604_800
_COPY_READ_TIMEOUT = 1200.0
_DEFAULT_CONTENT_TYPE = "b2/x-auto"
_DELETE_WORKERS = 8
_SMALL_BODY = 1 << 20  # bodies up to this size are hashed and sent as bytes


def b2_encode(text: str) -> str:
    """Percent-encode a file name or file-info value as B2 expects (``/`` stays literal)."""
    return quote(text.encode("utf-8"), safe="/")


def b2_decode(text: str) -> str:
    """Decode a percent-encoded B2 string (``+`` is a space)."""
    return unquote_plus(text)


@lru_cache(maxsize=256)
def _split_url(url: str) -> tuple[str, str, int, str]:
    """Split an absolute URL B2 gave us into (scheme, host, port, path)."""
    parts = urlsplit(url)
    scheme, host, port, _ = validate_endpoint_url(f"{parts.scheme}://{parts.netloc}")
    return scheme, host, port, parts.path.rstrip("/")


def _millis(value: Any) -> _dt.datetime | None:
    try:
        ms = int(value)
    except (TypeError, ValueError):
        return None
    if ms <= 0:
        return None
    return _dt.datetime.fromtimestamp(ms / 1000.0, tz=_dt.timezone.utc)


def _etag(sha1: str | None, info: Mapping[str, str], file_id: str | None) -> str:
    """The entity tag s3func exposes for a B2 file version (see the module docstring)."""
    if sha1 and sha1 != "none":
        if sha1.startswith("unverified:"):
            sha1 = sha1[len("unverified:") :]
        return sha1.lower()
    large = info.get("large_file_sha1")
    if large:
        return large.lower()
    return file_id or ""


def _etag_matches(condition: str, etag: str | None, file_id: str | None) -> bool:
    wanted = condition.strip()
    if wanted == "*":
        return True
    wanted = wanted.removeprefix("W/").strip('"')
    return wanted != "" and (wanted.lower() == (etag or "").lower() or wanted == file_id)


def _doc_file_info(doc: Mapping[str, Any]) -> dict[str, str]:
    """The ``fileInfo`` of a B2 file document (a new dict; empty when absent)."""
    info = doc.get("fileInfo")
    return dict(info) if isinstance(info, dict) else {}


def _info_from_headers(headers: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith(_INFO):
            out[lower[len(_INFO) :]] = b2_decode(value)
    return out


def _check_file_name(key: str) -> str:
    check_key(key)
    if any(ord(c) < 0x20 or c == "\x7f" for c in key):
        raise ConfigurationError(
            f"B2 file names must not contain control characters or DEL: {key!r}", key=key[:64]
        )
    return key


def _file_info(key: str, metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Validate user metadata as B2 file info (10 entries; name plus info <= 7000 bytes)."""
    info = check_metadata(metadata, limit=_MAX_NAME_AND_INFO_BYTES)
    if len(info) > _MAX_INFO_ENTRIES:
        raise ConfigurationError(
            f"B2 allows at most {_MAX_INFO_ENTRIES} metadata entries (file info), got {len(info)}",
            key=key[:64],
        )
    total = len(key.encode("utf-8"))
    for name, value in info.items():
        if not _INFO_NAME.match(name):
            raise ConfigurationError(
                f"B2 metadata name {name!r} is invalid: use 1 to 50 ASCII letters, digits, "
                "'-' and '_'"
            )
        if name.startswith("b2-") and name not in _RESERVED_INFO:
            raise ConfigurationError(
                f"B2 reserves metadata names starting with 'b2-': {name!r} is not one of "
                + ", ".join(sorted(_RESERVED_INFO))
            )
        total += len(name) + len(value.encode("utf-8"))
    if total > _MAX_NAME_AND_INFO_BYTES:
        raise ConfigurationError(
            f"the file name and metadata take {total} bytes; B2 allows {_MAX_NAME_AND_INFO_BYTES}",
            key=key[:64],
        )
    millis = info.get("src_last_modified_millis")
    if millis is not None and not (millis.isascii() and millis.isdigit()):
        raise ConfigurationError(
            "metadata src_last_modified_millis must be a base-10 integer of milliseconds "
            f"since the epoch, not {millis!r}"
        )
    return info


class _HashingBody:
    """A file's next ``size`` bytes, hashed (SHA-1) while they are sent.

    With ``trailer`` the 40 hex digits of the SHA-1 follow the data (B2's
    ``hex_digits_at_end``), so a stream is read only once. ``rewind`` goes back to the starting
    position for another attempt.
    """

    def __init__(self, f: IO[bytes] | PartReader, size: int, *, trailer: bool = True) -> None:
        self._f = f
        self._start = f.tell()
        self.size = size
        self.trailer = trailer
        self.rewind()

    def rewind(self) -> None:
        self._f.seek(self._start)
        self._hash = hashlib.sha1()  # noqa: S324 - B2's integrity check is SHA-1
        self._left = self.size
        self._trailer = b""
        self._trailer_pos = -1

    @property
    def length(self) -> int:
        """Bytes on the wire: the data, plus 40 hex digits with a trailer."""
        return self.size + 40 if self.trailer else self.size

    def hexdigest(self) -> str:
        """Return the SHA-1 of the data sent so far."""
        return self._hash.hexdigest()

    def read(self, n: int | None = -1) -> bytes | memoryview:
        if self._left > 0:
            want = self._left if n is None or n < 0 else min(n, self._left)
            chunk: Any = self._f.read(want)
            if not chunk:
                done = self.size - self._left
                err = IntegrityError(
                    f"the file ended after {done} of the {self.size} bytes being uploaded "
                    "(was it truncated while uploading?)"
                )
                err.algorithm, err.expected, err.actual = "size", str(self.size), str(done)
                raise err
            if len(chunk) > self._left:  # a reader that ignores the size asked for
                chunk = memoryview(chunk)[: self._left]
            self._left -= len(chunk)
            self._hash.update(chunk)
            return chunk  # type: ignore[no-any-return]
        if not self.trailer:
            return b""
        if self._trailer_pos < 0:
            self._trailer = self._hash.hexdigest().encode("ascii")
            self._trailer_pos = 0
        start = self._trailer_pos
        end = len(self._trailer) if n is None or n < 0 else start + n
        out = self._trailer[start:end]
        self._trailer_pos = start + len(out)
        return out


UploadBody = bytes | _HashingBody


class B2Session(BaseSession):
    """A session on one Backblaze B2 bucket, through B2's native API.

    Same operations, arguments and results as :class:`~s3func.S3Session` wherever B2 has the
    operation, so code written against :class:`~s3func.BaseSession` runs on either.

    Example::

        session = B2Session(access_key_id="...", access_key="...", bucket="my-b2-bucket")
        session.put_object("data.json", b'{"status": "ok"}', content_type="application/json")
        with session.get_object("data.json") as resp:
            print(resp.read())

    Args:
        access_key_id: The application key id. With ``access_key``, the only credentials used;
            when both are omitted they come from ``B2_APPLICATION_KEY_ID`` and
            ``B2_APPLICATION_KEY``.
        access_key: The application key.
        bucket: The bucket name.
        endpoint_url: The authorization endpoint (default ``https://api.backblazeb2.com``);
            the API, upload and download hosts come from the authorization.
        connect_timeout: Seconds to wait for a connection.
        read_timeout: Seconds a read may stay idle (there is no total deadline).
        max_connections: Pooled connections per host.
        pool_timeout: Seconds to wait for a free pooled connection.
        retry: The retry policy (default: 5 attempts, full-jitter exponential backoff).
        ca_bundle: CA bundle path (default ``SSL_CERT_FILE`` or certifi).
        verify_tls: Verify server certificates (default true).

    No request is sent until the first operation, which authorizes the key (once per process,
    see :mod:`s3func._b2_auth`) and finds the bucket's id.

    Raises:
        ConfigurationError: bad arguments or no credentials found.
    """

    provider = "b2"
    #: The transfer engine computes each part's SHA-1 in its pre-pass (sent as a header).
    _part_digests: tuple[str, ...] = ("sha1",)

    def __init__(
        self,
        access_key_id: str | None = None,
        access_key: str | None = None,
        bucket: str | None = None,
        endpoint_url: str | None = None,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_connections: int = 16,
        pool_timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        ca_bundle: str | None = None,
        verify_tls: bool = True,
    ) -> None:
        if not bucket:
            raise ConfigurationError("B2Session needs a bucket")
        super().__init__(
            bucket=bucket,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_connections=max_connections,
            pool_timeout=pool_timeout,
            retry=retry,
            ca_bundle=ca_bundle,
            verify_tls=verify_tls,
        )
        creds = resolve_b2_credentials(key_id=access_key_id, key=access_key)
        self.credentials_source = creds.source
        self.access_key_id = creds.key_id
        endpoint = endpoint_url or DEFAULT_ENDPOINT
        scheme, host, port, base = validate_endpoint_url(endpoint)
        self.endpoint_url = endpoint.rstrip("/")
        self._realm = f"{scheme}://{host}:{port}{base}"
        self._auth_target = (scheme, host, port, f"{base}{_API}/b2_authorize_account")
        self._cache_key: CacheKey = TOKENS.key(self._realm, creds.key_id, creds.key)
        basic = base64.b64encode(f"{creds.key_id}:{creds.key}".encode()).decode("ascii")
        self._basic = f"Basic {basic}"
        self._bucket_id: str | None = None
        self._bucket_lock = threading.Lock()
        self._max_copy_size = _MAX_COPY
        self._min_part_size_override: int | None = None
        self._sleep: Callable[[float], None] = time.sleep
        self._page_size = 1000

    def __repr__(self) -> str:
        return f"B2Session(bucket={self.bucket!r}, endpoint_url={self.endpoint_url!r})"

    # -- authorization and buckets -----------------------------------------------------------

    def authorization(self) -> B2Authorization:
        """Return the key's authorization (from the process-wide cache; authorizes if needed).

        Raises:
            AuthenticationError: the key id or key is wrong.
        """
        return TOKENS.get(self._cache_key, self._authorize)

    def _authorize(self) -> Any:
        scheme, host, port, path = self._auth_target
        basic = self._basic

        def prepare(attempt: int) -> Request:
            headers = {"authorization": basic, "user-agent": _USER_AGENT}
            return Request("GET", scheme, host, port, path, headers)

        def error(req: Request, resp: urllib3.HTTPResponse, data: bytes) -> S3FuncError | None:
            return self._error("b2_authorize_account", None, resp, data, authorize=True)

        resp = self.transport.send(prepare, error=error, idempotent=True)
        return self._json(resp.data, "b2_authorize_account")

    @property
    def bucket_id(self) -> str:
        """The bucket's id (resolved once: from a restricted key, else by ``b2_list_buckets``).

        Raises:
            AccessDeniedError: the key is restricted to other buckets, or lacks listBuckets.
            NotFoundError: no bucket of that name is visible to the key.
        """
        bucket_id = self._bucket_id
        if bucket_id is not None:
            return bucket_id
        with self._bucket_lock:
            if self._bucket_id is None:
                self._bucket_id = self._resolve_bucket()
            return self._bucket_id

    def _resolve_bucket(self) -> str:
        auth = self.authorization()
        if auth.buckets is not None:
            for bucket_id, name in auth.buckets:
                if name == self.bucket:
                    return bucket_id
            raise AccessDeniedError(
                f"bucket {self.bucket!r} is not visible to this application key: the key is "
                f"restricted to {auth.describe_restrictions()}",
                provider="b2",
                operation="b2_list_buckets",
                code="bucket_not_allowed",
                bucket=self.bucket,
            )
        self._need("listBuckets", "b2_list_buckets", None)
        doc = self._call(
            "b2_list_buckets",
            {"accountId": auth.account_id, "bucketName": self.bucket},
            idempotent=True,
        )
        for item in doc.get("buckets") or []:
            if isinstance(item, Mapping) and item.get("bucketName") == self.bucket:
                return str(item["bucketId"])
        raise NotFoundError(
            f"bucket {self.bucket!r} does not exist or is not visible to this application key",
            provider="b2",
            operation="b2_list_buckets",
            code="bucket_not_found",
            bucket=self.bucket,
        )

    def _need(self, capability: str, operation: str, key: str | None) -> B2Authorization:
        """Return the authorization; raise AccessDeniedError if it lacks ``capability``."""
        auth = self.authorization()
        if not auth.allows(capability):
            raise AccessDeniedError(
                f"{operation} {self.bucket}/{key or ''}: the application key lacks the "
                f"{capability!r} capability (it is restricted to {auth.describe_restrictions()})",
                provider="b2",
                operation=operation,
                status=401,
                code="unauthorized",
                bucket=self.bucket,
                key=key,
            )
        return auth

    # -- errors --------------------------------------------------------------------------------

    def _error(
        self,
        operation: str,
        key: str | None,
        resp: urllib3.HTTPResponse,
        data: bytes,
        *,
        authorize: bool = False,
    ) -> S3FuncError:
        status = resp.status
        headers = resp.headers
        code: str | None = None
        message: str | None = None
        if data:
            try:
                doc = json.loads(data)
            except ValueError:
                doc = None
            if isinstance(doc, dict):
                code = doc.get("code") if isinstance(doc.get("code"), str) else None
                message = doc.get("message") if isinstance(doc.get("message"), str) else None
            else:
                code = "non_json_response"
        cls: type[ServiceError]
        if 200 <= status < 300:
            cls = ServerError
            message = message or "unexpected answer"
        elif code in _NOT_FOUND_CODES or status == 404:
            cls = NotFoundError
        elif status == 401:
            cls = AuthenticationError
            if code == "unauthorized" and not authorize:
                cls = AccessDeniedError
        elif status == 403:
            cls = AccessDeniedError
        elif status == 400:
            cls = ServiceError
        else:
            cls = error_for_status(status)
        if not message:
            if status == 404:
                message = "not found"
                code = code or "not_found"
            else:
                message = resp.reason or "error"
        where = f"{self.bucket}/{key}" if key is not None else self.bucket
        text = f"{operation} {where}: {message}"
        text += f" ({code}, HTTP {status})" if code else f" (HTTP {status})"
        if authorize and status == 401:
            text = (
                f"b2_authorize_account: the application key id or key is wrong, expired or "
                f"not usable here ({message}; {code or 'no code'}, HTTP {status})"
            )
        elif cls is AccessDeniedError and status == 401:
            auth = TOKENS.peek(self._cache_key)
            if auth is not None:
                text += f"; the key is restricted to {auth.describe_restrictions()}"
        exc = cls(
            text,
            provider="b2",
            operation=operation,
            status=status,
            code=code,
            bucket=self.bucket,
            key=key,
            retry_after=parse_retry_after(headers.get("retry-after")),
            headers=dict(headers.items()),
        )
        if status == 408:
            exc.retryable = True
        if status == 401 and code == "unauthorized":
            exc.retryable = False
        return exc

    @staticmethod
    def _json(data: bytes, operation: str) -> Any:
        try:
            return json.loads(data)
        except ValueError:
            raise ServerError(
                f"{operation}: the server's answer is not JSON",
                provider="b2",
                operation=operation,
                code="non_json_response",
            ) from None

    # -- request plumbing -------------------------------------------------------------------------

    def _with_reauth(self, run: Callable[[B2Authorization], Any]) -> Any:
        """Run ``run(auth)``; on 401 expired/bad token re-authorize once and run it again."""
        auth = self.authorization()
        try:
            return run(auth)
        except AuthenticationError as exc:
            if exc.code not in _REAUTH_CODES and not (exc.status == 401 and exc.code is None):
                raise
            TOKENS.invalidate(self._cache_key, auth.token)
        return run(self.authorization())

    def _call(
        self,
        call: str,
        params: Mapping[str, Any],
        *,
        idempotent: bool,
        key: str | None = None,
        read_timeout: float | None = None,
    ) -> Any:
        """POST one JSON API call and return the decoded answer (re-authorizing once)."""
        body = json.dumps(params, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

        def run(auth: B2Authorization) -> Any:
            scheme, host, port, base = _split_url(auth.api_url)
            path = f"{base}{_API}/{call}"
            token = auth.token

            def prepare(attempt: int) -> Request:
                headers = {
                    "authorization": token,
                    "content-type": "application/json",
                    "user-agent": _USER_AGENT,
                }
                return Request("POST", scheme, host, port, path, headers, body)

            def error(req: Request, resp: urllib3.HTTPResponse, data: bytes) -> S3FuncError:
                return self._error(call, key, resp, data)

            resp = self.transport.send(
                prepare, error=error, idempotent=idempotent, read_timeout=read_timeout
            )
            return self._json(resp.data, call)

        doc = self._with_reauth(run)
        if not isinstance(doc, dict):
            raise ServerError(
                f"{call}: the server's answer is not a JSON object",
                provider="b2",
                operation=call,
                code="non_json_response",
            )
        return doc

    def _download(
        self,
        method: str,
        key: str,
        *,
        file_id: str | None,
        headers: Mapping[str, str] | None = None,
        stream: bool = True,
    ) -> urllib3.HTTPResponse:
        """GET or HEAD a file by name (or by id), with the account token."""
        operation = "b2_download_file_by_id" if file_id else "b2_download_file_by_name"
        extra = dict(headers or {})

        def run(auth: B2Authorization) -> urllib3.HTTPResponse:
            scheme, host, port, base = _split_url(auth.download_url)
            if file_id:
                path = f"{base}{_API}/b2_download_file_by_id?fileId={quote(file_id, safe='')}"
            else:
                path = f"{base}/file/{quote(self.bucket, safe='')}/{b2_encode(key)}"
            token = auth.token

            def prepare(attempt: int) -> Request:
                h = {"authorization": token, "user-agent": _USER_AGENT}
                h.update(extra)
                return Request(method, scheme, host, port, path, h)

            def error(req: Request, resp: urllib3.HTTPResponse, data: bytes) -> S3FuncError:
                return self._error(operation, key, resp, data)

            return self.transport.send(prepare, error=error, idempotent=True, stream=stream)

        resp: urllib3.HTTPResponse = self._with_reauth(run)
        return resp

    def _upload(
        self,
        *,
        operation: str,
        key: str,
        pool_key: tuple[str, ...],
        fetch: Callable[[], tuple[str, str]],
        headers: Mapping[str, str],
        body: UploadBody,
    ) -> dict[str, Any]:
        """Send an upload to a pooled upload URL; on failure retry with a fresh URL.

        The HTTP layer sends each upload exactly once. After a connection failure, a timeout,
        408, 401, 429, any 5xx or B2's ``auth_token_limit``, the URL is thrown away and the
        upload is sent again to a new one (up to the retry policy's attempts).
        """
        policy = self.transport.retry
        attempt = 0
        while True:
            attempt += 1
            slot = UPLOAD_URLS.take(pool_key)
            obtained = None
            if slot is None:
                obtained = UPLOAD_URLS.now()
                slot = fetch()
            url, token = slot
            if isinstance(body, _HashingBody):
                body.rewind()
                length = body.length
            else:
                length = len(body)
            scheme, host, port, path = _split_url(url)
            h = {
                "authorization": token,
                "content-length": str(length),
                "user-agent": _USER_AGENT,
            }
            h.update(headers)
            wire = body if isinstance(body, bytes) else cast("IO[bytes]", body)
            req = Request("POST", scheme, host, port, path or "/", h, wire)
            err: S3FuncError
            try:
                resp = self.transport.open(req)
                data = self._read(resp, req)
            except TransportError as exc:
                err = exc
            else:
                if 200 <= resp.status < 300:
                    doc = self._json(data, operation)
                    if isinstance(doc, dict):
                        UPLOAD_URLS.put(pool_key, url, token, obtained)
                        return doc
                    err = ServerError(
                        f"{operation}: the answer is not a JSON object",
                        provider="b2",
                        operation=operation,
                        key=key,
                    )
                else:
                    err = self._error(operation, key, resp, data)
            err.attempts = attempt
            if not _upload_retryable(err) or attempt >= policy.max_attempts:
                raise err
            self._sleep(policy.delay(attempt, err.retry_after))

    @staticmethod
    def _read(resp: urllib3.HTTPResponse, req: Request) -> bytes:
        try:
            data = resp.read()
        except Exception as exc:  # urllib3 and socket errors: translated in _http's terms
            resp.release_conn()
            raise translate_exception(exc, method=req.method, url=req.url) from exc
        resp.release_conn()
        return bytes(data)

    @staticmethod
    def _response(doc: Mapping[str, Any]) -> Response:
        """The result of a JSON call that returns a file document (upload, copy, info...)."""
        info = _doc_file_info(doc)
        file_id = doc.get("fileId")
        length = doc.get("contentLength")
        return Response(
            status=200,
            headers={},
            key=doc.get("fileName"),
            etag=_etag(doc.get("contentSha1"), info, file_id),
            version_id=file_id,
            content_length=length if isinstance(length, int) else None,
            content_type=doc.get("contentType"),
            last_modified=_millis(doc.get("uploadTimestamp")),
            metadata=info,
        )

    @staticmethod
    def _no_conditional_writes(operation: str, key: str, *conditions: str | None) -> None:
        if any(c is not None for c in conditions):
            raise NotSupportedError(
                f"{operation} {key}: B2's native API has no conditional writes "
                "(if_match / if_none_match); check first with head_object (not atomic) or use "
                "session.lock()",
                provider="b2",
                operation=operation,
                status=501,
                code="not_implemented",
                key=key,
            )

    # -- objects -------------------------------------------------------------------------------

    def put_object(
        self,
        key: str,
        data: Data,
        *,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
        progress: ProgressLike = None,
        content_sha256: bool = False,
    ) -> Response:
        """Store ``data`` under ``key`` (a new version of the name).

        The SHA-1 is always sent: computed up front for bytes, appended after the data
        (``hex_digits_at_end``) for files, which are read only once. Bodies larger than
        :attr:`multipart_threshold` (and always those over B2's 5 GB limit for one upload),
        and streams that turn out longer than one part, go through the large-file API with
        parts sent in parallel (see ``upload_file``); such files always get the
        ``s3func-sha256`` metadata.

        Args:
            key: The file name, sent exactly as given.
            data: ``bytes`` (or ``str``, encoded as UTF-8), a binary file object (read from
                its current position; seekable files by offset, never whole into memory;
                non-seekable ones one part at a time) or an iterable of ``bytes``.
            metadata: User metadata, stored as B2 file info: at most 10 entries, names of
                letters, digits, ``-`` and ``_``; the name plus all entries at most 7000 bytes.
                ``src_last_modified_millis`` (the source file's mtime) must be an integer.
            content_type: The content type; default ``b2/x-auto`` (B2 picks it from the
                file name's extension).
            if_match: Not supported by B2 (raises :class:`NotSupportedError`).
            if_none_match: Not supported by B2 (raises :class:`NotSupportedError`).
            progress: ``progress(done, total)`` callable, or ``True`` for a terminal bar.
            content_sha256: Store ``s3func-sha256`` for a single upload too (one extra
                hashing pass over the body; large files always store it).

        Returns:
            The response, with ``etag`` (the SHA-1) and ``version_id`` (the file id).

        Raises:
            NotSupportedError: a condition was given.
            ConfigurationError: invalid key or metadata (raised before any request).
            AccessDeniedError: the key may not write here.
        """
        _check_file_name(key)
        self._no_conditional_writes("put_object", key, if_match, if_none_match)
        info = _file_info(key, metadata)
        if isinstance(data, PartReader):  # one body from the transfer engine
            return self._put_simple(key, data, data.size, info, content_type)
        threshold = min(self.multipart_threshold, _MAX_SIMPLE_UPLOAD)
        if (
            isinstance(data, (bytes, str))
            and len(data) <= min(_SMALL_BODY, threshold)
            and progress is None
            and not content_sha256
        ):
            body = data.encode("utf-8") if isinstance(data, str) else data
            if len(body) <= threshold:
                return self._put_simple(key, body, len(body), info, content_type)
            data = body
        source = _transfer.as_source(data)
        try:
            if source.size is None or source.size > threshold:
                return _transfer.put_large(
                    self,
                    key,
                    source,
                    metadata=info,
                    content_type=content_type,
                    progress=progress,
                )
            size = source.size
            digests: dict[str, str] = {}
            if content_sha256:
                content, parts = _transfer.prepass(source, size, max(size, 1), ("sha1",), True)
                assert content is not None
                digests = dict(parts[0])
                info = _file_info(key, {**info, **content.metadata()})
            tracker, done = make_tracker(progress, size, desc=key)
            try:
                reader = source.reader(0, size, digests=digests, meter=tracker.meter())
                resp = self._put_simple(key, reader, size, info, content_type)
                reader.finished()
            finally:
                done()
            return resp
        finally:
            source.close()

    def _put_simple(
        self,
        key: str,
        body: bytes | IO[bytes] | PartReader,
        size: int,
        info: Mapping[str, str],
        content_type: str | None,
    ) -> Response:
        self._need("writeFiles", "b2_upload_file", key)
        bucket_id = self.bucket_id
        headers = {
            "x-bz-file-name": b2_encode(key),
            "content-type": content_type or _DEFAULT_CONTENT_TYPE,
        }
        for name, value in info.items():
            headers[_INFO + name] = b2_encode(value)
        payload, sha1 = _upload_payload(body, size)
        headers["x-bz-content-sha1"] = sha1 or "hex_digits_at_end"

        def fetch() -> tuple[str, str]:
            doc = self._call("b2_get_upload_url", {"bucketId": bucket_id}, idempotent=True)
            return str(doc["uploadUrl"]), str(doc["authorizationToken"])

        doc = self._upload(
            operation="b2_upload_file",
            key=key,
            pool_key=(*self._cache_key, "file", bucket_id),
            fetch=fetch,
            headers=headers,
            body=payload,
        )
        out = self._response(doc)
        if isinstance(payload, _HashingBody) and out.etag and out.etag != payload.hexdigest():
            raise _sha1_mismatch(key, payload.hexdigest(), out.etag)
        return out

    def get_object(
        self,
        key: str,
        *,
        version_id: str | None = None,
        offset: int | None = None,
        length: int | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
        stream: bool = True,
    ) -> ObjectResponse:
        """Read a file, or ``length`` bytes of it from ``offset``.

        The result is a binary file object; close it (or use ``with``)::

            with session.get_object("big.csv") as resp:
                for chunk in resp:
                    ...

        ``resp.data`` reads the whole body. With ``stream=False`` the body is read before
        returning. A whole-file read is checked against B2's SHA-1; a broken connection is
        resumed from the same file version (by id).

        Args:
            key: The file name.
            version_id: A file id: read that version (it must belong to ``key``).
            offset: First byte to read.
            length: How many bytes to read.
            if_match: Only read if the ETag (SHA-1) or file id matches (checked on the
                response headers, before the body is read); ``"*"`` matches any file.
            if_none_match: Only read if neither the ETag nor the file id match.
            stream: Return before reading the body (default).

        Raises:
            NotFoundError: the name (or version) does not exist or is hidden.
            PreconditionFailedError: a condition did not hold.
            InvalidRangeError: the range starts beyond the end of the file.
        """
        _check_file_name(key)
        if offset is not None and offset < 0:
            raise ConfigurationError("offset must be >= 0")
        if length is not None and length <= 0:
            raise ConfigurationError("length must be > 0")
        self._need("readFiles", "get_object", key)
        start = offset or 0
        headers: dict[str, str] = {}
        ranged = offset is not None or length is not None
        end_text = ""
        if ranged:
            end_text = "" if length is None else str(start + length - 1)
            headers["range"] = f"bytes={start}-{end_text}"
        resp = self._download("GET", key, file_id=version_id, headers=headers, stream=True)
        try:
            h = resp.headers
            file_id = h.get("x-bz-file-id")
            if version_id is not None:
                self._check_version_name(key, version_id, h)
            info = _info_from_headers(h)
            etag = _etag(h.get("x-bz-content-sha1"), info, file_id)
            self._check_read_conditions("get_object", key, etag, file_id, if_match, if_none_match)
            body_length, body_offset, object_size = body_range(h, key, start if ranged else None)
        except BaseException:
            resp.close()
            resp.release_conn()
            raise
        checksums: dict[str, str] = {}
        # The header is the SHA-1 of the whole file, on ranged answers too (so download_file
        # can verify files that other tools uploaded); large files carry none, but b2sdk and
        # others keep theirs as the ``large_file_sha1`` file info.
        sha1 = h.get("x-bz-content-sha1") or ""
        if not _HEX40.match(sha1):
            sha1 = info.get("large_file_sha1") or ""
        if _HEX40.match(sha1):
            checksums["sha1"] = sha1.lower()
        pinned_id = file_id or version_id

        def reopen(position: int) -> urllib3.HTTPResponse:
            return self._download(
                "GET",
                key,
                file_id=pinned_id,
                headers={"range": f"bytes={position}-{end_text}"},
                stream=True,
            )

        fields: dict[str, Any] = {
            "status": resp.status,
            "headers": h,
            "key": key,
            "etag": etag,
            "version_id": file_id,
            "content_length": body_length,
            "content_type": h.get("content-type"),
            "last_modified": _millis(h.get("x-bz-upload-timestamp")),
            "metadata": info,
            "object_size": object_size,
            "offset": body_offset,
        }
        result = ObjectResponse(resp, checksums=checksums, reopen=reopen, **fields)
        if stream:
            return result
        with result:
            payload = result.read()
        return ObjectResponse(None, data=payload, verify=False, **fields)  # checked above

    @staticmethod
    def _check_version_name(key: str, version_id: str, headers: Any) -> None:
        raw = headers.get("x-bz-file-name")
        if raw is not None and b2_decode(raw) != key:
            raise NotFoundError(
                f"version {version_id} does not belong to {key!r}",
                provider="b2",
                operation="b2_download_file_by_id",
                status=404,
                code="not_found",
                key=key,
            )

    def _check_read_conditions(
        self,
        operation: str,
        key: str,
        etag: str | None,
        file_id: str | None,
        if_match: str | None,
        if_none_match: str | None,
    ) -> None:
        if if_match is not None and not _etag_matches(if_match, etag, file_id):
            raise PreconditionFailedError(
                f"{operation} {self.bucket}/{key}: if_match {if_match!r} does not match the "
                f"current version (etag {etag!r}, file id {file_id!r})",
                provider="b2",
                operation=operation,
                status=412,
                code="precondition_failed",
                bucket=self.bucket,
                key=key,
            )
        if if_none_match is not None and _etag_matches(if_none_match, etag, file_id):
            raise PreconditionFailedError(
                f"{operation} {self.bucket}/{key}: not modified (if_none_match matched)",
                provider="b2",
                operation=operation,
                status=304,
                code="not_modified",
                bucket=self.bucket,
                key=key,
            )

    def head_object(
        self,
        key: str,
        *,
        version_id: str | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> Response:
        """Return a file's fields and user metadata without its body.

        By name this is a HEAD request on the download URL; with ``version_id`` it is
        ``b2_get_file_info``.

        Raises:
            NotFoundError: the name does not exist or is hidden (or the version is not
                ``key``'s).
            PreconditionFailedError: a condition did not hold.
        """
        _check_file_name(key)
        self._need("readFiles", "head_object", key)
        if version_id is not None:
            out = self._head_version(key, version_id)
        else:
            resp = self._download("HEAD", key, file_id=None, stream=False)
            h = resp.headers
            info = _info_from_headers(h)
            file_id = h.get("x-bz-file-id")
            length = h.get("content-length")
            out = Response(
                status=resp.status,
                headers=h,
                key=key,
                etag=_etag(h.get("x-bz-content-sha1"), info, file_id),
                version_id=file_id,
                content_length=int(length) if length and length.isdigit() else None,
                content_type=h.get("content-type"),
                last_modified=_millis(h.get("x-bz-upload-timestamp")),
                metadata=info,
            )
        self._check_read_conditions(
            "head_object", key, out.etag, out.version_id, if_match, if_none_match
        )
        return out

    def _head_version(self, key: str, version_id: str) -> Response:
        try:
            doc = self._call("b2_get_file_info", {"fileId": version_id}, idempotent=True, key=key)
        except ServiceError as exc:
            if exc.status == 400 and exc.code == "bad_request":
                raise NotFoundError(
                    f"head_object {self.bucket}/{key}: no version {version_id!r} ({exc.message})",
                    provider="b2",
                    operation="b2_get_file_info",
                    status=404,
                    code="not_found",
                    bucket=self.bucket,
                    key=key,
                ) from exc
            raise
        if doc.get("fileName") != key or doc.get("action") not in ("upload", "copy"):
            raise NotFoundError(
                f"head_object {self.bucket}/{key}: version {version_id!r} is not a file of "
                "this name",
                provider="b2",
                operation="b2_get_file_info",
                status=404,
                code="not_found",
                bucket=self.bucket,
                key=key,
            )
        return self._response(doc)

    def delete_object(
        self, key: str, *, version_id: str | None = None, if_match: str | None = None
    ) -> Response:
        """Delete a file the way S3 deletes in a versioned bucket.

        Without ``version_id`` the name is *hidden* (``b2_hide_file``: a hide marker, S3's
        delete marker): it disappears from ``list_objects``, ``get_object`` and
        ``head_object``, and older versions stay (free them with
        ``delete_objects([key], all_versions=True)``). With ``version_id`` that one version is
        deleted for good (``b2_delete_file_version``). A missing name or version is not an
        error, as on S3.

        Args:
            key: The file name.
            version_id: The file id of the version to delete.
            if_match: Not supported by B2 (raises :class:`NotSupportedError`).

        Returns:
            The response; ``version_id`` is the hide marker's (or the deleted version's) id.

        Raises:
            NotSupportedError: ``if_match`` was given.
        """
        _check_file_name(key)
        self._no_conditional_writes("delete_object", key, if_match)
        if version_id is not None:
            self._need("deleteFiles", "b2_delete_file_version", key)
            try:
                doc = self._call(
                    "b2_delete_file_version",
                    {"fileName": key, "fileId": version_id},
                    idempotent=True,
                    key=key,
                )
            except NotFoundError as exc:
                return Response(status=204, headers=exc.headers, key=key, version_id=version_id)
            return Response(status=200, headers={}, key=key, version_id=doc.get("fileId"))
        return self.hide_object(key)

    def hide_object(self, key: str) -> Response:
        """Hide a name (``b2_hide_file``): a new hide-marker version; older versions remain.

        Hiding a name that is missing or already hidden is not an error.

        Returns:
            The response; ``version_id`` is the hide marker's file id (``None`` when nothing
            was hidden).
        """
        _check_file_name(key)
        self._need("writeFiles", "b2_hide_file", key)
        try:
            doc = self._call(
                "b2_hide_file",
                {"bucketId": self.bucket_id, "fileName": key},
                idempotent=True,
                key=key,
            )
        except ServiceError as exc:
            if isinstance(exc, NotFoundError) or exc.code == "already_hidden":
                return Response(status=204, headers=exc.headers, key=key)
            raise
        out = self._response(doc)
        out.status = 204
        out.etag = None
        return out

    def _delete_batch(
        self, items: list[tuple[str, str | None]]
    ) -> list[tuple[str, str | None, str]]:
        """Delete (hide, without a version) each item, several at a time; return failures."""

        def one(item: tuple[str, str | None]) -> tuple[str, str | None, str] | None:
            key, version = item
            try:
                self.delete_object(key, version_id=version)
            except S3FuncError as exc:
                return key, version, f"{exc.code or type(exc).__name__}: {exc.message}"
            return None

        if len(items) == 1:
            results = [one(items[0])]
        else:
            workers = max(1, min(_DELETE_WORKERS, len(items), self.transport.max_connections))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3func-b2") as pool:
                results = list(pool.map(one, items))
        return [r for r in results if r is not None]

    def copy_object(
        self,
        source_key: str,
        dest_key: str,
        *,
        source_version_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> Response:
        """Copy a file within the bucket, server-side (``b2_copy_file``).

        Sources over 5 GB are copied as a large file, part by part (``b2_copy_part``).

        Args:
            source_key: The name to copy from.
            dest_key: The name to copy to.
            source_version_id: Copy this version (file id) of the source.
            metadata: Replace the metadata with this; ``None`` copies the source's.
            content_type: Set this content type (the metadata is kept unless ``metadata`` is
                given too).

        Raises:
            NotFoundError: the source does not exist.
        """
        _check_file_name(source_key)
        _check_file_name(dest_key)
        self._need("writeFiles", "b2_copy_file", dest_key)
        source = self.head_object(source_key, version_id=source_version_id)
        source_id = source.version_id
        if not source_id:
            raise ServerError(
                f"copy_object {self.bucket}/{source_key}: the source has no file id",
                provider="b2",
                operation="b2_copy_file",
                key=source_key,
            )
        size = source.content_length or 0
        large = size > self._max_copy_size
        replace = metadata is not None or content_type is not None
        kept: Mapping[str, str] = source.metadata
        if metadata is None and (replace or large) and source_version_id is None:
            # Download headers turn the b2-* file info into real headers: read the file info
            # itself so that everything is kept.
            kept = self._head_version(source_key, source_id).metadata
        info: dict[str, str] = {}
        if replace or large:
            info = _file_info(dest_key, metadata if metadata is not None else kept)
        ctype = content_type or source.content_type or _DEFAULT_CONTENT_TYPE
        if large:
            return self._copy_large(source_id, source_key, dest_key, size, info, ctype)
        params: dict[str, Any] = {"sourceFileId": source_id, "fileName": dest_key}
        if replace:
            params.update(metadataDirective="REPLACE", contentType=ctype, fileInfo=info)
        doc = self._call(
            "b2_copy_file",
            params,
            idempotent=False,
            key=dest_key,
            read_timeout=max(self.transport.read_timeout, _COPY_READ_TIMEOUT),
        )
        return self._response(doc)

    def _copy_large(
        self,
        source_id: str,
        source_key: str,
        dest_key: str,
        size: int,
        info: Mapping[str, str],
        content_type: str,
    ) -> Response:
        part = max(self._min_part_size, min(self._max_copy_size, _MAX_COPY), -(-size // _MAX_PARTS))
        count = max(1, -(-size // part))
        upload_id = self._mpu_create(dest_key, metadata=info, content_type=content_type)

        def copy(number: int) -> tuple[int, str]:
            first = (number - 1) * part
            last = min(size, first + part) - 1
            doc = self._call(
                "b2_copy_part",
                {
                    "sourceFileId": source_id,
                    "largeFileId": upload_id,
                    "partNumber": number,
                    "range": f"bytes={first}-{last}",
                },
                idempotent=True,
                key=source_key,
                read_timeout=max(self.transport.read_timeout, _COPY_READ_TIMEOUT),
            )
            return number, str(doc.get("contentSha1"))

        try:
            workers = max(1, min(4, count, self.transport.max_connections))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3func-b2") as pool:
                parts = list(pool.map(copy, range(1, count + 1)))
            return self._mpu_complete(dest_key, upload_id, parts)
        except BaseException:
            with contextlib.suppress(S3FuncError):
                self._mpu_abort(dest_key, upload_id)
            raise

    def upload_file(
        self,
        key: str,
        path: str | os.PathLike[str],
        *,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        **options: Any,
    ) -> Response:
        """Upload a local file, as :meth:`BaseSession.upload_file` does.

        On B2 the file's modification time is also stored, as the file info
        ``src_last_modified_millis`` that the B2 command-line tool and rclone use (unless
        ``metadata`` already has it).

        Args:
            key: The file name.
            path: The local file.
            metadata: User metadata (file info).
            content_type: The content type; default ``b2/x-auto``.
            **options: ``progress``, ``part_size``, ``concurrency``: see
                :meth:`BaseSession.upload_file`.

        Raises:
            FileNotFoundError: ``path`` does not exist.
        """
        meta = dict(metadata or {})
        if not any(name.lower() == "src_last_modified_millis" for name in meta):
            meta["src_last_modified_millis"] = str(os.stat(path).st_mtime_ns // 1_000_000)
        return super().upload_file(key, path, metadata=meta, content_type=content_type, **options)

    # -- large files (the multipart primitives of BaseSession) ---------------------------------

    def _store_sha256(
        self, key: str, completed: Response, metadata: Mapping[str, str], content_type: str | None
    ) -> Response:
        """Give a just-uploaded file new metadata: copy it onto its name, drop the original.

        B2 keeps every version, so the version without the metadata is deleted (it would
        otherwise be stored, and billed, twice).
        """
        copied = super()._store_sha256(key, completed, metadata, content_type)
        old = completed.version_id
        if old and copied.version_id != old:
            try:
                self.delete_object(key, version_id=old)
            except S3FuncError as exc:
                log.warning("could not delete version %s of %r after copying it: %s", old, key, exc)
        return copied

    @property
    def _min_part_size(self) -> int:
        """The smallest part B2 accepts (``absoluteMinimumPartSize`` from the authorization)."""
        if self._min_part_size_override is not None:
            return self._min_part_size_override
        return self.authorization().absolute_minimum_part_size

    @_min_part_size.setter
    def _min_part_size(self, value: int) -> None:
        self._min_part_size_override = value

    def _mpu_create(
        self, key: str, *, metadata: Mapping[str, str], content_type: str | None
    ) -> str:
        """Start a large file (``b2_start_large_file``) and return its file id."""
        _check_file_name(key)
        info = _file_info(key, metadata)
        self._need("writeFiles", "b2_start_large_file", key)
        doc = self._call(
            "b2_start_large_file",
            {
                "bucketId": self.bucket_id,
                "fileName": key,
                "contentType": content_type or _DEFAULT_CONTENT_TYPE,
                "fileInfo": info,
            },
            idempotent=False,
            key=key,
        )
        return str(doc["fileId"])

    def _mpu_upload_part(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        body: bytes | memoryview | IO[bytes],
        size: int,
    ) -> str:
        """Upload one part (``b2_upload_part``, pooled part URLs) and return its SHA-1."""
        payload, sha1 = _upload_payload(body, size)
        headers = {
            "x-bz-content-sha1": sha1 or "hex_digits_at_end",
            "x-bz-part-number": str(part_number),
        }

        def fetch() -> tuple[str, str]:
            doc = self._call(
                "b2_get_upload_part_url", {"fileId": upload_id}, idempotent=True, key=key
            )
            return str(doc["uploadUrl"]), str(doc["authorizationToken"])

        doc = self._upload(
            operation="b2_upload_part",
            key=key,
            pool_key=(*self._cache_key, "part", upload_id),
            fetch=fetch,
            headers=headers,
            body=payload,
        )
        if isinstance(payload, _HashingBody):
            sent = payload.hexdigest()
            if sha1 and sent != sha1:
                raise _sha1_mismatch(key, sha1, sent)
            sha1 = sent
        answered = str(doc.get("contentSha1") or "")
        if answered and answered != "none" and answered.lower() != sha1:
            raise _sha1_mismatch(key, sha1, answered)
        return sha1

    def _mpu_complete(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> Response:
        """Finish a large file (``b2_finish_large_file``) from its parts' SHA-1s."""
        ordered = [sha1 for _, sha1 in sorted(parts)]
        try:
            doc = self._call(
                "b2_finish_large_file",
                {"fileId": upload_id, "partSha1Array": ordered},
                idempotent=False,
                key=key,
            )
        finally:
            UPLOAD_URLS.discard((*self._cache_key, "part", upload_id))
        return self._response(doc)

    def _mpu_abort(self, key: str, upload_id: str) -> None:
        """Cancel a large file (``b2_cancel_large_file``), deleting its uploaded parts."""
        UPLOAD_URLS.discard((*self._cache_key, "part", upload_id))
        try:
            self._call("b2_cancel_large_file", {"fileId": upload_id}, idempotent=True, key=key)
        except ServiceError as exc:
            if isinstance(exc, NotFoundError) or exc.status == 400:
                return  # already finished or cancelled
            raise

    # -- listings ------------------------------------------------------------------------------

    def _info(self, doc: Mapping[str, Any], *, is_latest: bool = True) -> ObjectInfo:
        info = _doc_file_info(doc)
        hidden = doc.get("action") == "hide"
        file_id = doc.get("fileId")
        length = doc.get("contentLength")
        return ObjectInfo(
            str(doc.get("fileName") or ""),
            content_length=0 if hidden or not isinstance(length, int) else length,
            etag="" if hidden else _etag(doc.get("contentSha1"), info, file_id),
            last_modified=_millis(doc.get("uploadTimestamp")),
            version_id=file_id,
            is_latest=is_latest,
            is_delete_marker=hidden,
            metadata=info,
            content_type=None if hidden else doc.get("contentType"),
        )

    def list_objects(
        self,
        *,
        prefix: str = "",
        start_after: str | None = None,
        delimiter: str | None = None,
        max_keys: int | None = None,
    ) -> ListResult:
        """List the visible files by name, lazily (``b2_list_file_names``).

        Items carry ``version_id`` (the file id), ``metadata`` (file info, so the
        ``s3func-sha256`` content hash is visible without a HEAD) and ``content_type``.

        Args:
            prefix: Only names that start with this.
            start_after: Only names after this one.
            delimiter: Group names by this separator; groups appear in ``common_prefixes``.
            max_keys: The most entries (objects plus common prefixes) to return in total.

        Example::

            for obj in session.list_objects(prefix="logs/").iter_objects():
                print(obj["key"], obj["content_length"])
        """
        if max_keys is not None and max_keys < 0:
            raise ConfigurationError("max_keys must be >= 0")

        def pages() -> Iterator[tuple[list[ObjectInfo], list[str]]]:
            self._need("listFiles", "b2_list_file_names", prefix or None)
            bucket_id = self.bucket_id
            page = self._page_size
            next_name: str | None = start_after
            skip = start_after
            remaining = max_keys
            while remaining is None or remaining > 0:
                count = page if remaining is None else min(page, remaining + 1)
                params = _list_params(bucket_id, count, prefix, delimiter)
                if next_name is not None:
                    params["startFileName"] = next_name
                doc = self._call("b2_list_file_names", params, idempotent=True)
                objects: list[ObjectInfo] = []
                prefixes: list[str] = []
                for item in doc.get("files") or []:
                    name = item.get("fileName")
                    if skip is not None and name == skip and item.get("action") != "folder":
                        continue
                    if item.get("action") == "folder":
                        prefixes.append(name)
                    else:
                        objects.append(self._info(item))
                if remaining is not None:
                    objects, prefixes = _cap_page(objects, prefixes, remaining)
                    remaining -= len(objects) + len(prefixes)
                yield objects, prefixes
                next_name = doc.get("nextFileName")
                skip = None
                if not next_name:
                    return

        return ListResult(pages)

    def list_object_versions(
        self,
        *,
        prefix: str = "",
        delimiter: str | None = None,
        max_keys: int | None = None,
    ) -> ListResult:
        """List every version and hide marker, lazily (``b2_list_file_versions``).

        Newest first within a name. Hide markers have ``is_delete_marker=True``; unfinished
        large files are left out.
        """
        if max_keys is not None and max_keys < 0:
            raise ConfigurationError("max_keys must be >= 0")

        def pages() -> Iterator[tuple[list[ObjectInfo], list[str]]]:
            self._need("listFiles", "b2_list_file_versions", prefix or None)
            bucket_id = self.bucket_id
            page = self._page_size
            next_name: str | None = None
            next_id: str | None = None
            last_name: str | None = None
            remaining = max_keys
            while remaining is None or remaining > 0:
                count = page if remaining is None else min(page, remaining)
                params = _list_params(bucket_id, count, prefix, delimiter)
                if next_name is not None:
                    params["startFileName"] = next_name
                    if next_id:
                        params["startFileId"] = next_id
                doc = self._call("b2_list_file_versions", params, idempotent=True)
                objects: list[ObjectInfo] = []
                prefixes: list[str] = []
                for item in doc.get("files") or []:
                    action = item.get("action")
                    if action == "folder":
                        prefixes.append(item.get("fileName"))
                        continue
                    if action == "start":
                        continue
                    name = item.get("fileName")
                    objects.append(self._info(item, is_latest=name != last_name))
                    last_name = name
                if remaining is not None:
                    objects, prefixes = _cap_page(objects, prefixes, remaining)
                    remaining -= len(objects) + len(prefixes)
                yield objects, prefixes
                new_name, new_id = doc.get("nextFileName"), doc.get("nextFileId")
                if not new_name:
                    return
                if (new_name, new_id) == (next_name, next_id):
                    raise ServerError(
                        "b2_list_file_versions: the listing did not advance",
                        provider="b2",
                        operation="b2_list_file_versions",
                        bucket=self.bucket,
                    )
                next_name, next_id = new_name, new_id

        return ListResult(pages)

    # -- sharing -------------------------------------------------------------------------------

    def download_url(self, key: str) -> str:
        """Return the plain download-by-name URL of ``key`` (works as is for public buckets)."""
        _check_file_name(key)
        base = self.authorization().download_url
        return f"{base}/file/{quote(self.bucket, safe='')}/{b2_encode(key)}"

    def get_download_authorization(self, prefix: str, *, expires: int = 3600) -> str:
        """Return a token that allows downloads by name of files starting with ``prefix``.

        Pass it as the ``Authorization`` header or query parameter of a download URL
        (:meth:`presigned_url` builds such a URL).

        Args:
            prefix: The file-name prefix the token covers (``""``: the whole bucket).
            expires: Lifetime in seconds, 1 to 604800 (7 days).

        Raises:
            ConfigurationError: bad expiry.
            AccessDeniedError: the key lacks the ``shareFiles`` capability.
        """
        if not isinstance(prefix, str):
            raise ConfigurationError("prefix must be a str")
        if not 1 <= int(expires) <= _MAX_DOWNLOAD_AUTH:
            raise ConfigurationError("expires must be between 1 second and 7 days (604800)")
        self._need("shareFiles", "b2_get_download_authorization", prefix)
        doc = self._call(
            "b2_get_download_authorization",
            {
                "bucketId": self.bucket_id,
                "fileNamePrefix": prefix,
                "validDurationInSeconds": int(expires),
            },
            idempotent=True,
        )
        return str(doc["authorizationToken"])

    def presigned_url(
        self,
        key: str,
        *,
        method: Literal["GET", "PUT", "HEAD", "DELETE"] = "GET",
        expires: int = 3600,
        version_id: str | None = None,
    ) -> str:
        """Return a URL that lets anyone holding it download ``key`` without credentials.

        It is the download-by-name URL with a ``b2_get_download_authorization`` token in its
        query. B2 download tokens cover a name *prefix*: this one also works for names that
        start with ``key``.

        Args:
            key: The file name.
            method: Only ``"GET"`` (and ``"HEAD"``) exist on B2.
            expires: Lifetime in seconds, 1 to 604800 (7 days).
            version_id: Not supported (B2 download tokens work by name only).

        Raises:
            NotSupportedError: another method or a version was asked for.
        """
        if method not in ("GET", "HEAD") or version_id is not None:
            raise NotSupportedError(
                "B2 authorized URLs only download the latest version by name (GET/HEAD)",
                provider="b2",
                operation="presigned_url",
                status=501,
                code="not_implemented",
                key=key,
            )
        url = self.download_url(key)
        token = self.get_download_authorization(key, expires=expires)
        return f"{url}?Authorization={quote(token, safe='')}"


def _upload_retryable(err: S3FuncError) -> bool:
    """Whether an upload may be sent again (to a fresh upload URL)."""
    if isinstance(err, TransportError):
        # connection failures and timeouts, not a pool timeout or a source that ran dry
        return err.retryable
    status = err.status or 0
    if status in (401, 408, 429) or status >= 500:
        return err.code != "unauthorized"
    if status == 400:
        return err.code in ("auth_token_limit", "bad_sha1_checksum") or (
            "more than one upload" in (err.message or "")
        )
    return False


def _sha1_mismatch(key: str, sent: str, stored: str) -> IntegrityError:
    err = IntegrityError(
        f"upload of {key!r}: B2 stored SHA-1 {stored}, but the data sent hashes to {sent}",
        provider="b2",
        key=key,
    )
    err.algorithm, err.expected, err.actual = "sha1", sent, stored
    return err


def _list_params(bucket_id: str, count: int, prefix: str, delimiter: str | None) -> dict[str, Any]:
    """The parameters shared by ``b2_list_file_names`` and ``b2_list_file_versions``."""
    params: dict[str, Any] = {"bucketId": bucket_id, "maxFileCount": count}
    if prefix:
        params["prefix"] = prefix
    if delimiter:
        params["delimiter"] = delimiter
    return params


def _cap_page(
    objects: list[ObjectInfo], prefixes: list[str], remaining: int
) -> tuple[list[ObjectInfo], list[str]]:
    """Keep at most ``remaining`` entries of a page, objects first (``max_keys``)."""
    n_obj = min(len(objects), remaining)
    return objects[:n_obj], prefixes[: max(0, remaining - n_obj)]


def _upload_payload(
    body: bytes | bytearray | memoryview | IO[bytes] | PartReader, size: int
) -> tuple[UploadBody, str]:
    """Return what to send for an upload body and its SHA-1 if known up front.

    Bytes are hashed now. A seekable file is sent as a :class:`_HashingBody`: with the SHA-1
    the transfer engine computed in its pre-pass when there is one, else with the SHA-1
    appended after the data (the SHA-1 returned is then ``""``: send ``hex_digits_at_end``).
    A non-seekable file's ``size`` bytes are read into memory and hashed.
    """
    if isinstance(body, PartReader):
        small = body.as_bytes(_SMALL_BODY)
        if small is not None:  # in memory and unmetered (the sync engine's small files)
            return small, body.hexdigest("sha1")
    if isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
        return data, hashlib.sha1(data).hexdigest()  # noqa: S324 - B2's check is SHA-1
    if _transfer.is_seekable(body):
        known = _known_sha1(body)
        return _HashingBody(body, size, trailer=not known), known or ""
    data = bytes(body.read(size))
    return data, hashlib.sha1(data).hexdigest()  # noqa: S324


def _known_sha1(body: Any) -> str | None:
    """The SHA-1 the transfer engine computed for a part body, if it did."""
    digests = getattr(body, "digests", None)
    value = digests.get("sha1") if isinstance(digests, Mapping) else None
    return value if isinstance(value, str) and _HEX40.match(value) else None
