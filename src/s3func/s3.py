"""``S3Session``: the S3 (and S3-compatible) backend.

It owns addressing (path-style or virtual-hosted), SigV4 signing through ``_sigv4``, the XML
formats of S3 and the mapping of S3 errors onto :mod:`s3func.errors`.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, Literal, TypedDict, cast
from urllib.parse import unquote_plus

from . import _sigv4, _transfer
from ._config import S3Config, resolve_s3_config, validate_endpoint_url
from ._http import Call, ErrorFactory, Request
from ._transfer import PartReader
from .errors import (
    AccessDeniedError,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    NotSupportedError,
    PreconditionFailedError,
    S3FuncError,
    ServerError,
    ServiceError,
    ThrottledError,
    error_for_status,
)
from .models import ListResult, ObjectInfo, Response, parse_http_date
from .progress import ProgressLike, make_tracker
from .response import ObjectResponse, body_range
from .retry import RetryPolicy, parse_retry_after
from .session import (
    A,
    BaseSession,
    Data,
    R,
    SmallPut,
    T,
    check_key,
    check_metadata,
    with_rejects,
)

if TYPE_CHECKING:
    import urllib3
    from typing_extensions import Required, Unpack

__all__ = ["S3Session"]

log = logging.getLogger("s3func")

_META = "x-amz-meta-"
#: Temporary credentials are fetched again this many seconds before they expire...
_REFRESH_MARGIN = 300.0
#: ...but never more often than this (credentials that are always near their expiry, or a
#: failed refresh while the current ones are still valid).
_REFRESH_RETRY = 30.0


class _CallSpec(TypedDict, total=False):
    """The keywords of ``S3Session._call`` (``operation`` is required)."""

    operation: Required[str]
    query: list[tuple[str, str]] | None
    headers: dict[str, str] | None
    body: bytes | IO[bytes] | None
    payload_hash: str | None
    check_ok: bool
    bucket_level: bool


def _refresh_time(expires_at: float | None, now: float) -> float | None:
    """When to fetch credentials that expire at ``expires_at`` again (``None``: never).

    ``_REFRESH_MARGIN`` before the expiry; for credentials that are already that close,
    half-way to the expiry (at most ``_REFRESH_RETRY`` from now; at once when expired).
    """
    if expires_at is None:
        return None
    soon = now + min(_REFRESH_RETRY, max(expires_at - now, 0.0) / 2)
    return max(expires_at - _REFRESH_MARGIN, soon)


def _signer_for(config: S3Config) -> _sigv4.Signer:
    return _sigv4.Signer(
        config.access_key_id, config.secret_access_key, config.session_token, region=config.region
    )


_AUTH_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "RequestTimeTooSkewed",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AuthorizationHeaderMalformed",
        "InvalidSecurity",
        "MissingSecurityHeader",
    }
)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchUpload", "NoSuchVersion"})
_THROTTLE_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"}
)
_RETRY_CODES = frozenset({"RequestTimeout", "InternalError", "ServiceUnavailable", "BadDigest"})
_DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_MULTIPART_ETAG = re.compile(r"-\d+$")
_MAX_EXPIRES = 7 * 24 * 3600
_SMALL_BODY = 1 << 20  # bodies up to this size are sent as bytes, in one sendall()
_TAG_SEP = "\x00"  # separates the ETag from the part checksum in a part tag


def _xml(data: bytes) -> Any:
    from xml.etree import ElementTree

    try:
        return ElementTree.fromstring(data)  # noqa: S314 - responses from the configured server
    except ElementTree.ParseError:
        return None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _children(elem: Any) -> Iterator[tuple[str, Any]]:
    for child in elem:
        yield _local(child.tag), child


def _text(elem: Any, name: str) -> str | None:
    for child in elem:
        if _local(child.tag) == name:
            return child.text or ""
    return None


def _encode_meta_value(value: str) -> str:
    # HTTP cannot carry non-ASCII or edge whitespace in a header value: use an RFC 2047
    # encoded word (AWS decodes these itself; we decode them on read everywhere).
    if value.isascii() and value == value.strip() and not value.startswith("=?"):
        return value
    return "=?UTF-8?B?" + base64.b64encode(value.encode("utf-8")).decode("ascii") + "?="


def _decode_meta_value(value: str) -> str:
    if value.startswith("=?") and value.endswith("?="):
        try:
            from email.header import decode_header, make_header

            return str(make_header(decode_header(value)))
        except (ValueError, LookupError, UnicodeDecodeError):
            return value
    return value


def _metadata(headers: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in headers:  # iterating names is much cheaper than items() on urllib3 headers
        if name[:11].lower() == _META:
            out[name[11:].lower()] = _decode_meta_value(headers[name])
    return out


def _etag(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip().strip('"')


def _quote_etag(etag: str) -> str:
    if etag == "*" or etag.startswith('"') or etag.startswith("W/"):
        return etag
    return f'"{etag}"'


def _content_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")  # noqa: S324


def _multipart_etag(etags: list[str]) -> str:
    """The ETag S3 gives a multipart object: MD5 of the parts' binary MD5s, ``-N``."""
    joined = b"".join(bytes.fromhex(e) for e in etags if len(e) == 32)
    return hashlib.md5(joined).hexdigest() + f"-{len(etags)}"  # noqa: S324


def _xml_escape(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\r", "&#13;")
        .replace("\n", "&#10;")
    )


class S3Session(BaseSession):
    """A session on one S3 bucket (AWS or any S3-compatible server).

    Example::

        session = S3Session(access_key_id="...", access_key="...", bucket="my-bucket",
                            endpoint_url="https://s3.example.com")
        session.put_object("hello.txt", b"Hello, S3!", metadata={"source": "docs"})
        print(session.get_object("hello.txt").data)

    Args:
        access_key_id: The access key id. With ``access_key``, the only credentials used;
            when omitted, credentials come from the environment and the AWS shared files.
        access_key: The secret access key.
        bucket: The bucket to work on.
        endpoint_url: The server, e.g. ``http://127.0.0.1:8333``; default AWS for the region.
        region: The signing region (default from the environment or ``us-east-1``).
        session_token: A temporary-credentials session token.
        profile: The AWS profile to read credentials and settings from.
        addressing_style: ``"path"``, ``"virtual"`` or ``"auto"`` (virtual-hosted for AWS
            with DNS-compatible bucket names, path-style for everything else).
        payload_signing: ``"auto"`` (sign the payload hash over HTTP, ``UNSIGNED-PAYLOAD``
            over HTTPS), ``"always"`` or ``"never"``.
        checksum: A flexible checksum sent with every upload (``x-amz-checksum-*``,
            verified by the server): ``"crc32"``, ``"sha256"``, ``None`` (none), or
            ``"auto"``: CRC32 on AWS endpoints, none elsewhere (many S3-compatible servers
            reject these headers).
        connect_timeout: Seconds to wait for a connection.
        read_timeout: Seconds a read may stay idle (there is no total deadline).
        max_connections: Pooled connections per endpoint.
        pool_timeout: Seconds to wait for a free pooled connection.
        retry: The retry policy (default: 5 attempts, full-jitter exponential backoff).
        ca_bundle: CA bundle path (default ``SSL_CERT_FILE`` or certifi).
        verify_tls: Verify server certificates (default true).

    Raises:
        ConfigurationError: bad arguments or no credentials found.
    """

    provider = "s3"

    def __init__(
        self,
        access_key_id: str | None = None,
        access_key: str | None = None,
        bucket: str | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        *,
        session_token: str | None = None,
        profile: str | None = None,
        addressing_style: Literal["auto", "path", "virtual"] | None = None,
        payload_signing: Literal["auto", "always", "never"] = "auto",
        checksum: Literal["auto", "crc32", "sha256"] | None = "auto",
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_connections: int = 16,
        pool_timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        ca_bundle: str | None = None,
        verify_tls: bool = True,
    ) -> None:
        if not bucket:
            raise ConfigurationError("S3Session needs a bucket")
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

        def resolve() -> S3Config:
            return resolve_s3_config(
                access_key_id=access_key_id,
                secret_access_key=access_key,
                session_token=session_token,
                region=region,
                endpoint_url=endpoint_url,
                profile=profile,
                addressing_style=addressing_style,
            )

        config = resolve()
        self.region = config.region
        self.credentials_source = config.source
        self._signer = _signer_for(config)
        # Temporary credentials (a credential_process that reports an Expiration) are
        # fetched again shortly before they expire: see _current_signer.
        self._resolve = resolve
        self._expires_at = config.expires_at
        self._refresh_at = _refresh_time(config.expires_at, time.time())
        self._refresh_lock = threading.Lock()
        endpoint = config.endpoint_url or f"https://s3.{config.region}.amazonaws.com"
        scheme, host, port, base_path = validate_endpoint_url(endpoint)
        self.endpoint_url = endpoint.rstrip("/")
        self._scheme = scheme
        self._port = port
        aws = host.endswith(".amazonaws.com")
        style = config.addressing_style
        if style == "auto":
            dns_ok = bool(_DNS_BUCKET.match(bucket)) and "." not in bucket
            style = "virtual" if aws and dns_ok and not base_path else "path"
        if payload_signing not in ("auto", "always", "never"):
            raise ConfigurationError("payload_signing must be 'auto', 'always' or 'never'")
        self._sign_payload = payload_signing == "always" or (
            payload_signing == "auto" and scheme == "http"
        )
        if checksum not in ("auto", "crc32", "sha256", None):
            raise ConfigurationError("checksum must be 'auto', 'crc32', 'sha256' or None")
        self._checksum: str | None = ("crc32" if aws else None) if checksum == "auto" else checksum
        part_digests = ["sha256"] if self._sign_payload else []
        if self._checksum and self._checksum not in part_digests:
            part_digests.append(self._checksum)
        self._part_digests = tuple(part_digests)
        self.addressing_style = style
        default_port = 443 if scheme == "https" else 80
        self._service_host = host if port == default_port else f"{host}:{port}"
        self._base_path = base_path
        if style == "virtual":
            self._host = f"{bucket}.{host}"
            self._bucket_path = base_path
        else:
            self._host = host
            self._bucket_path = f"{base_path}/{_sigv4.quote_path(bucket)}"
        self._sign_host = self._host if port == default_port else f"{self._host}:{port}"
        self._clock_offset = 0.0

    def __repr__(self) -> str:
        return (
            f"S3Session(bucket={self.bucket!r}, endpoint_url={self.endpoint_url!r}, "
            f"region={self.region!r})"
        )

    # -- request plumbing ----------------------------------------------------------------

    def _request(
        self,
        method: str,
        key: str | None,
        *,
        stream: bool = False,
        idempotent: bool = True,
        **spec: Unpack[_CallSpec],
    ) -> urllib3.HTTPResponse:
        """Sign and send a request to the bucket (or, for key=None, the bucket itself)."""
        prepare, error = self._call(method, key, **spec)
        return self.transport.send(
            prepare,
            error=error,
            idempotent=idempotent,
            stream=stream,
            check_ok=spec.get("check_ok", False),
        )

    def _call(
        self,
        method: str,
        key: str | None,
        *,
        operation: str,
        query: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | IO[bytes] | None = None,
        payload_hash: str | None = None,
        check_ok: bool = False,
        bucket_level: bool = True,
    ) -> tuple[Callable[[int], Request], ErrorFactory]:
        """The request builder (signed afresh per attempt) and error mapper of one call."""
        if bucket_level:
            path = self._bucket_path + ("/" + _sigv4.quote_path(key) if key is not None else "/")
            host, sign_host = self._host, self._sign_host
        else:  # service level (ListBuckets)
            path = self._base_path + "/"
            host, sign_host = self._host_for_service()
        canonical_query = _sigv4.canonical_query(query) if query else ""
        target = f"{path}?{canonical_query}" if canonical_query else path
        if payload_hash is None:
            if body is None:
                payload_hash = _sigv4.EMPTY_SHA256
            elif isinstance(body, (bytes, bytearray)) and self._sign_payload:
                payload_hash = hashlib.sha256(body).hexdigest()
            else:
                payload_hash = _sigv4.UNSIGNED_PAYLOAD
        base_headers = headers or {}
        scheme, port = self._scheme, self._port

        def prepare(attempt: int) -> Request:
            h = dict(base_headers)
            h["host"] = sign_host
            self._current_signer().sign_headers(
                method,
                sign_host,
                path,
                canonical_query,
                h,
                payload_hash,
                timestamp=time.time() + self._clock_offset,
            )
            return Request(method, scheme, host, port, target, h, body)

        def error(req: Request, resp: urllib3.HTTPResponse, data: bytes) -> S3FuncError | None:
            return self._error(operation, key, method, resp, data, check_ok)

        return prepare, error

    def _current_signer(self) -> _sigv4.Signer:
        """The signer, with temporary credentials fetched again when they are about to expire.

        The refresh runs the credential resolution again (for example the profile's
        ``credential_process``) once, under a lock, from ``_REFRESH_MARGIN`` seconds before
        the expiry. If it fails while the old credentials are still valid, they stay in use
        (a warning is logged and the refresh is tried again later); once they have expired,
        the failure is raised.
        """
        refresh_at = self._refresh_at
        if refresh_at is None or time.time() < refresh_at:
            return self._signer
        with self._refresh_lock:
            now = time.time()
            if self._refresh_at is None or now < self._refresh_at:
                return self._signer  # another thread refreshed meanwhile
            try:
                config = self._resolve()
            except ConfigurationError as exc:
                if self._expires_at is not None and now < self._expires_at:
                    log.warning(
                        "could not refresh the temporary credentials (%s); the current ones "
                        "stay in use until they expire",
                        exc,
                    )
                    self._refresh_at = now + _REFRESH_RETRY
                    return self._signer
                raise
            self._signer = _signer_for(config)
            self._expires_at = config.expires_at
            self._refresh_at = _refresh_time(config.expires_at, now)
            log.info("refreshed the temporary credentials from %s", config.source)
            return self._signer

    def _host_for_service(self) -> tuple[str, str]:
        host = (
            self._service_host.rsplit(":", 1)[0]
            if ":" in self._service_host
            else self._service_host
        )
        return host, self._service_host

    def _error(
        self,
        operation: str,
        key: str | None,
        method: str,
        resp: urllib3.HTTPResponse,
        data: bytes,
        check_ok: bool,
    ) -> S3FuncError | None:
        status = resp.status
        headers = resp.headers
        code = message = request_id = host_id = region = None
        root = _xml(data) if data else None
        if root is not None and _local(root.tag) == "Error":
            code = _text(root, "Code")
            message = _text(root, "Message")
            request_id = _text(root, "RequestId")
            host_id = _text(root, "HostId")
            region = _text(root, "Region")
        elif 200 <= status < 300:
            return None  # check_ok and no error document: fine
        request_id = request_id or headers.get("x-amz-request-id")
        host_id = host_id or headers.get("x-amz-id-2")
        if 200 <= status < 300:
            cls: type[ServiceError] = ServerError  # an error document inside a 200
        elif code in _NOT_FOUND_CODES:
            cls = NotFoundError
        elif code in _AUTH_CODES:
            cls = AuthenticationError
        elif code in _THROTTLE_CODES:
            cls = ThrottledError
        elif code == "PreconditionFailed":
            cls = PreconditionFailedError
        elif code == "AccessDenied":
            cls = AccessDeniedError
        elif status == 400 and code != "RequestTimeout":
            cls = ServiceError
        else:
            cls = error_for_status(status)
            if status == 403 and not code:
                cls = AccessDeniedError
        if not message:
            if method == "HEAD" and status == 403:
                message = (
                    "forbidden or not found (HEAD responses carry no error body; without "
                    "s3:ListBucket, S3 answers 403 for a missing key)"
                )
            elif method == "HEAD" and status == 404:
                message = "not found"
                code = code or ("NoSuchKey" if key is not None else "NoSuchBucket")
            elif status == 304:
                message = "not modified (If-None-Match matched)"
            else:
                message = resp.reason or "error"
        where = f"{self.bucket}/{key}" if key is not None else self.bucket
        text = f"{operation} {where}: {message}"
        if code:
            text += f" ({code}, HTTP {status})"
        else:
            text += f" (HTTP {status})"
        if region and code in ("AuthorizationHeaderMalformed", "PermanentRedirect"):
            text += f"; the bucket is in region {region!r}"
        elif status == 301:
            hint = headers.get("x-amz-bucket-region")
            if hint:
                text += f"; the bucket is in region {hint!r}"
        retry_after = parse_retry_after(headers.get("retry-after"))
        amz_retry = headers.get("x-amz-retry-after")
        if retry_after is None and amz_retry and amz_retry.isdigit():
            retry_after = int(amz_retry) / 1000.0
        exc = cls(
            text,
            provider="s3",
            operation=operation,
            status=status,
            code=code,
            request_id=request_id,
            host_id=host_id,
            bucket=self.bucket,
            key=key,
            retry_after=retry_after,
            headers=dict(headers.items()),
        )
        if code in _RETRY_CODES:
            exc.retryable = True
        if code == "RequestTimeTooSkewed" and self._clock_offset == 0.0:
            server = parse_http_date(headers.get("date"))
            if server is not None:
                self._clock_offset = server.timestamp() - time.time()
                exc.retryable = True
        return exc

    def _response(self, resp: urllib3.HTTPResponse, key: str | None, data: bytes = b"") -> Response:
        headers = resp.headers
        length = headers.get("content-length")
        return Response(
            status=resp.status,
            headers=headers,
            key=key,
            etag=_etag(headers.get("etag")),
            version_id=headers.get("x-amz-version-id"),
            content_length=int(length) if length is not None and length.isdigit() else None,
            content_type=headers.get("content-type"),
            last_modified=parse_http_date(headers.get("last-modified")),
            metadata=_metadata(headers),
            data=data,
        )

    @staticmethod
    def _conditions(
        headers: dict[str, str], if_match: str | None, if_none_match: str | None
    ) -> None:
        if if_match is not None:
            headers["if-match"] = _quote_etag(if_match)
        if if_none_match is not None:
            headers["if-none-match"] = _quote_etag(if_none_match)

    @classmethod
    def _object_target(
        cls,
        key: str,
        version_id: str | None,
        if_match: str | None,
        if_none_match: str | None,
    ) -> tuple[list[tuple[str, str]] | None, dict[str, str]]:
        """Validate ``key`` and build the version query and conditional headers for it."""
        check_key(key)
        headers: dict[str, str] = {}
        cls._conditions(headers, if_match, if_none_match)
        return ([("versionId", version_id)] if version_id else None), headers

    # -- objects -------------------------------------------------------------------------

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
        """Store ``data`` under ``key``.

        Bodies larger than :attr:`multipart_threshold`, and streams that turn out longer
        than one part, go up as a multipart upload with parts sent in parallel (see
        ``upload_file``); such objects always get the ``s3func-sha256`` user metadata (the
        hex SHA-256 of the content). Conditional writes stay single PUTs (up to 5 GiB).

        Args:
            key: The object key, sent exactly as given.
            data: ``bytes`` (or ``str``, encoded as UTF-8), a binary file object (read from
                its current position; seekable files by offset, never whole into memory;
                non-seekable ones one part at a time) or an iterable of ``bytes``.
            metadata: User metadata (names are case-insensitive; at most 2 KB in all).
            content_type: The content type to store.
            if_match: Only overwrite when the current ETag matches (compare-and-swap).
            if_none_match: ``"*"``: only create, never overwrite.
            progress: ``progress(done, total)`` callable, or ``True`` for a terminal bar.
            content_sha256: Store ``s3func-sha256`` (and ``s3func-crc32``) for a single-part
                upload too (one extra hashing pass over the body; multipart uploads always
                store them).

        Returns:
            The response, with ``etag`` and ``version_id``.

        Raises:
            PreconditionFailedError: a condition did not hold.
            ConfigurationError: invalid key or metadata (raised before any request), or a
                conditional write over 5 GiB.
        """
        check_key(key)
        headers = self._put_headers(metadata, content_type)
        self._conditions(headers, if_match, if_none_match)
        if isinstance(data, PartReader):
            return self._put_single(key, data, data.size, headers)
        if (
            isinstance(data, (bytes, str))
            and len(data) <= _SMALL_BODY
            and progress is None
            and not content_sha256
        ):
            body = data.encode("utf-8") if isinstance(data, str) else data
            return self._put_single(key, body, len(body), headers)
        source = _transfer.as_source(data)
        try:
            conditional = if_match is not None or if_none_match is not None
            if not conditional and (source.size is None or source.size > self.multipart_threshold):
                return _transfer.put_large(
                    self,
                    key,
                    source,
                    metadata=metadata,
                    content_type=content_type,
                    progress=progress,
                )
            if source.size is None:
                whole = source.read_part(_transfer.MAX_COPY_SIZE + 1)
                source.close()
                source = _transfer.as_source(whole)
            size = source.size
            assert size is not None
            if size > _transfer.MAX_COPY_SIZE:
                raise ConfigurationError(
                    f"put_object {key!r}: a conditional write is one PUT, at most 5 GiB; "
                    f"this body has {size} bytes"
                )
            digests: dict[str, str] = {}
            if content_sha256:
                content, _ = _transfer.prepass(source, size, max(size, 1), (), True)
                assert content is not None
                digests["sha256"] = content.sha256
                for name, value in content.metadata().items():
                    headers[_META + name] = value
            tracker, done = make_tracker(progress, size, desc=key)
            try:
                reader = source.reader(0, size, digests=digests, meter=tracker.meter())
                resp = self._put_single(key, reader, size, headers)
                reader.finished()
            finally:
                done()
            return resp
        finally:
            source.close()

    def _put_single(
        self,
        key: str,
        body: bytes | PartReader,
        size: int,
        headers: dict[str, str],
    ) -> Response:
        prepare, error = self._put_call(key, body, size, headers)
        resp = self.transport.send(prepare, error=error)
        out = self._response(resp, key)
        out.content_length = size
        return out

    def _put_call(
        self,
        key: str,
        body: bytes | PartReader,
        size: int,
        headers: dict[str, str],
    ) -> tuple[Callable[[int], Request], ErrorFactory]:
        headers["content-length"] = str(size)
        payload, payload_hash = self._payload(body, size, headers)
        return self._call(
            "PUT",
            key,
            headers=headers,
            body=payload,
            payload_hash=payload_hash,
            operation="PutObject",
        )

    # -- many small objects (the sync engine's transfers) -----------------------------------

    def _get_many(
        self, items: Iterable[tuple[T, str]], *, concurrency: int
    ) -> Iterator[tuple[T, ObjectResponse | S3FuncError]]:
        """As :meth:`BaseSession._get_many`, with the first attempts multiplexed on this thread."""

        def call(key: str) -> tuple[Callable[[int], Request], ErrorFactory]:
            check_key(key)
            return self._call("GET", key, operation="GetObject")

        def result(resp: urllib3.HTTPResponse, key: str) -> ObjectResponse:
            return self._object_response(resp, key, None, {}, 0, False, False)

        return self._many(items, call, result, concurrency)

    def _put_many(
        self, items: Iterable[tuple[T, SmallPut]], *, concurrency: int
    ) -> Iterator[tuple[T, Response | S3FuncError]]:
        """As :meth:`BaseSession._put_many`, with the first attempts multiplexed on this thread."""

        def call(put: SmallPut) -> tuple[Callable[[int], Request], ErrorFactory]:
            key, body, metadata, content_type = put
            check_key(key)
            return self._put_call(key, body, body.size, self._put_headers(metadata, content_type))

        def result(resp: urllib3.HTTPResponse, put: SmallPut) -> Response:
            out = self._response(resp, put[0])
            out.content_length = put[1].size
            return out

        return self._many(items, call, result, concurrency)

    def _many(
        self,
        items: Iterable[tuple[T, A]],
        call: Callable[[A], tuple[Callable[[int], Request], ErrorFactory]],
        result: Callable[[urllib3.HTTPResponse, A], R],
        concurrency: int,
    ) -> Iterator[tuple[T, R | S3FuncError]]:
        """Send one request per item through ``send_many``; ``(tag, result or error)`` each.

        ``call`` builds an item's request (a ConfigurationError refuses the item unsent);
        ``result`` turns its response into the result (an S3FuncError it raises, such as a
        checksum mismatch, becomes the outcome).
        """
        refused: list[tuple[T, R | S3FuncError]] = []

        def calls() -> Iterator[Call[tuple[T, A]]]:
            for tag, arg in items:
                try:
                    prepare, error = call(arg)
                except ConfigurationError as exc:
                    refused.append((tag, exc))
                    continue
                yield (tag, arg), prepare, error

        def outcomes() -> Iterator[tuple[T, R | S3FuncError]]:
            for (tag, arg), outcome in self.transport.send_many(calls(), connections=concurrency):
                if isinstance(outcome, S3FuncError):
                    yield tag, outcome
                    continue
                try:
                    done: R | S3FuncError = result(outcome, arg)
                except S3FuncError as exc:
                    done = exc
                yield tag, done

        return with_rejects(outcomes(), refused)

    def _put_headers(
        self, metadata: Mapping[str, str] | None, content_type: str | None
    ) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, value in check_metadata(metadata).items():
            headers[_META + name] = _encode_meta_value(value)
        if content_type:
            headers["content-type"] = content_type
        return headers

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
        """Read an object, or ``length`` bytes of it from ``offset``.

        The result is a binary file object; close it (or use ``with``). ``resp.data`` reads
        the whole body. With ``stream=False`` the body is read before returning.

        Raises:
            NotFoundError: the key (or version) does not exist.
            PreconditionFailedError: a condition did not hold (412, or 304 for if_none_match).
            InvalidRangeError: the range starts beyond the end of the object.
        """
        query, headers = self._object_target(key, version_id, if_match, if_none_match)
        start = offset or 0
        if offset is not None and offset < 0:
            raise ConfigurationError("offset must be >= 0")
        if length is not None and length <= 0:
            raise ConfigurationError("length must be > 0")
        ranged = offset is not None or length is not None
        if ranged:
            end = "" if length is None else str(start + length - 1)
            headers["range"] = f"bytes={start}-{end}"
        resp = self._request(
            "GET", key, query=query, headers=headers, operation="GetObject", stream=stream
        )
        return self._object_response(resp, key, query, headers, start, ranged, stream)

    def _object_response(
        self,
        resp: urllib3.HTTPResponse,
        key: str,
        query: list[tuple[str, str]] | None,
        headers: dict[str, str],
        start: int,
        ranged: bool,
        stream: bool,
    ) -> ObjectResponse:
        h = resp.headers
        try:
            body_length, offset, object_size = body_range(h, key, start if ranged else None)
        except NotSupportedError:
            resp.close()
            resp.release_conn()
            raise
        etag = _etag(h.get("etag"))
        version_id = h.get("x-amz-version-id")
        checksums: dict[str, str] = {}
        sse = h.get("x-amz-server-side-encryption")
        if etag and len(etag) == 32 and sse in (None, "AES256"):
            # A single-part ETag is the MD5 of the whole content (ObjectResponse checks it
            # only when the whole object is read; download_file uses it for ranges too).
            checksums["md5"] = etag
        pinned = dict(headers)
        pinned.pop("if-none-match", None)
        if etag:
            pinned["if-match"] = _quote_etag(etag)
        resume_query = list(query) if query else []
        if version_id and not any(k == "versionId" for k, _ in resume_query):
            resume_query.append(("versionId", version_id))
        end_text = ""
        requested = headers.get("range")
        if requested:
            end_text = requested.rsplit("-", 1)[1]

        def reopen(position: int) -> urllib3.HTTPResponse:
            h2 = dict(pinned)
            h2["range"] = f"bytes={position}-{end_text}"
            return self._request(
                "GET",
                key,
                query=resume_query or None,
                headers=h2,
                operation="GetObject",
                stream=True,
            )

        data = None if stream else resp.data
        return ObjectResponse(
            None if data is not None else resp,
            status=resp.status,
            headers=h,
            key=key,
            etag=etag,
            version_id=version_id,
            content_length=body_length,
            content_type=h.get("content-type"),
            last_modified=parse_http_date(h.get("last-modified")),
            metadata=_metadata(h),
            object_size=object_size,
            offset=offset,
            checksums=checksums,
            reopen=reopen,
            data=data,
            verify=self.verify_checksums,
        )

    def head_object(
        self,
        key: str,
        *,
        version_id: str | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> Response:
        """Return an object's fields and user metadata without its body.

        Raises:
            NotFoundError: the key does not exist (also for S3's body-less 404).
            PreconditionFailedError: a condition did not hold.
        """
        query, headers = self._object_target(key, version_id, if_match, if_none_match)
        resp = self._request("HEAD", key, query=query, headers=headers, operation="HeadObject")
        return self._response(resp, key)

    def delete_object(
        self, key: str, *, version_id: str | None = None, if_match: str | None = None
    ) -> Response:
        """Delete an object, or one version of it (S3 answers success for a missing key).

        Raises:
            PreconditionFailedError: ``if_match`` did not match.
        """
        query, headers = self._object_target(key, version_id, if_match, None)
        resp = self._request("DELETE", key, query=query, headers=headers, operation="DeleteObject")
        return self._response(resp, key)

    def _delete_batch(
        self, items: list[tuple[str, str | None]]
    ) -> list[tuple[str, str | None, str]]:
        parts = ['<?xml version="1.0" encoding="UTF-8"?><Delete><Quiet>true</Quiet>']
        for key, version in items:
            parts.append(f"<Object><Key>{_xml_escape(key)}</Key>")
            if version:
                parts.append(f"<VersionId>{_xml_escape(version)}</VersionId>")
            parts.append("</Object>")
        parts.append("</Delete>")
        body = "".join(parts).encode("utf-8")
        headers = {"content-md5": _content_md5(body), "content-type": "application/xml"}
        resp = self._request(
            "POST",
            None,
            query=[("delete", "")],
            headers=headers,
            body=body,
            operation="DeleteObjects",
        )
        root = _xml(resp.data)
        failures: list[tuple[str, str | None, str]] = []
        if root is None:
            raise ServerError(
                "DeleteObjects: the server's answer is not XML",
                provider="s3",
                operation="DeleteObjects",
                bucket=self.bucket,
            )
        for name, elem in _children(root):
            if name == "Error":
                failures.append(
                    (
                        _text(elem, "Key") or "",
                        _text(elem, "VersionId") or None,
                        f"{_text(elem, 'Code')}: {_text(elem, 'Message')}",
                    )
                )
        return failures

    def copy_object(
        self,
        source_key: str,
        dest_key: str,
        *,
        source_version_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> Response:
        """Copy an object within the bucket, server-side.

        Args:
            source_key: The key to copy from.
            dest_key: The key to copy to.
            source_version_id: Copy this version of the source.
            metadata: Replace the user metadata with this; ``None`` copies the source's.
            content_type: Set this content type (the user metadata is kept unless
                ``metadata`` is given too).

        Raises:
            NotFoundError: the source does not exist.
            ServerError: the server answered 200 with an error document.
        """
        check_key(source_key)
        check_key(dest_key)
        source = f"/{_sigv4.quote_path(self.bucket)}/{_sigv4.quote_path(source_key)}"
        if source_version_id:
            source += "?versionId=" + _sigv4.quote_component(source_version_id)
        headers: dict[str, str] = {"x-amz-copy-source": source}
        if metadata is not None or content_type is not None:
            if metadata is None:
                head = self.head_object(source_key, version_id=source_version_id)
                metadata = head.metadata
            headers.update(self._put_headers(metadata, content_type))
            headers["x-amz-metadata-directive"] = "REPLACE"
        resp = self._request(
            "PUT", dest_key, headers=headers, operation="CopyObject", check_ok=True
        )
        root = _xml(resp.data)
        etag = _etag(_text(root, "ETag")) if root is not None else None
        out = self._response(resp, dest_key)
        out.etag = etag or out.etag
        return out

    # -- multipart uploads (driven by _transfer.py) --------------------------------------

    def _payload(
        self,
        body: bytes | bytearray | memoryview | IO[bytes] | PartReader,
        size: int,
        headers: dict[str, str],
    ) -> tuple[bytes | IO[bytes], str | None]:
        """Prepare an upload body: the payload hash to sign and the checksum header.

        Bodies over 1 MiB are sent as file objects in 1 MiB blocks (one ``sendall`` per
        block, so the write timeout is per block, not per body). Digests already computed
        by the transfer engine's pre-pass (``PartReader.digests``) are reused.
        """
        reader: PartReader | None
        if isinstance(body, PartReader):
            reader = body  # digests (the sync engine's SHA-256, a pre-pass's) are reused
        elif isinstance(body, (bytes, bytearray, memoryview)):
            view = memoryview(body).cast("B")
            if len(view) <= _SMALL_BODY and not self._checksum:
                data = bytes(view)
                payload = hashlib.sha256(data).hexdigest() if self._sign_payload else None
                return data, payload
            reader = PartReader.from_view(view)
        else:
            reader = None
        if reader is None:
            f = cast(IO[bytes], body)
            if not _transfer.is_seekable(f):
                data = f.read(size)
                return self._payload(data, len(data), headers)
            payload_hash = _hash_file(f) if self._sign_payload else None
            return f, payload_hash
        payload_hash = reader.hexdigest("sha256") if self._sign_payload else None
        if self._checksum:
            value = base64.b64encode(reader.digest(self._checksum)).decode("ascii")
            headers[f"x-amz-checksum-{self._checksum}"] = value
            headers["x-amz-sdk-checksum-algorithm"] = self._checksum.upper()
        small = reader.as_bytes(_SMALL_BODY)  # in memory: one piece, and repeatable as is
        return (small if small is not None else cast(IO[bytes], reader)), payload_hash

    def _mpu_create(
        self, key: str, *, metadata: Mapping[str, str], content_type: str | None
    ) -> str:
        """Start a multipart upload (CreateMultipartUpload) and return its upload id."""
        check_key(key)
        headers = self._put_headers(metadata, content_type)
        if self._checksum:
            headers["x-amz-checksum-algorithm"] = self._checksum.upper()
        resp = self._request(
            "POST",
            key,
            query=[("uploads", "")],
            headers=headers,
            operation="CreateMultipartUpload",
            idempotent=False,
        )
        root = _xml(resp.data)
        upload_id = _text(root, "UploadId") if root is not None else None
        if not upload_id:
            raise ServerError(
                f"CreateMultipartUpload {self.bucket}/{key}: no UploadId in the answer",
                provider="s3",
                operation="CreateMultipartUpload",
                bucket=self.bucket,
                key=key,
            )
        return upload_id

    def _mpu_upload_part(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        body: bytes | memoryview | IO[bytes],
        size: int,
    ) -> str:
        """Upload one part (UploadPart) and return its tag: the ETag (and checksum)."""
        headers = {"content-length": str(size)}
        payload, payload_hash = self._payload(body, size, headers)
        resp = self._request(
            "PUT",
            key,
            query=[("partNumber", str(part_number)), ("uploadId", upload_id)],
            headers=headers,
            body=payload,
            payload_hash=payload_hash,
            operation="UploadPart",
        )
        etag = _etag(resp.headers.get("etag"))
        if not etag:
            raise ServerError(
                f"UploadPart {self.bucket}/{key}: part {part_number} was answered without an ETag",
                provider="s3",
                operation="UploadPart",
                bucket=self.bucket,
                key=key,
            )
        if self._checksum:
            checksum = headers[f"x-amz-checksum-{self._checksum}"]
            return f"{etag}{_TAG_SEP}{checksum}"
        return etag

    def _mpu_complete(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> Response:
        """Assemble the object (CompleteMultipartUpload).

        A 200 answer that carries an ``<Error>`` is an error (retried). When a retry finds
        the upload gone (``NoSuchUpload``) because the first attempt did complete and only
        its answer was lost, the object's ETag is compared with the one these parts give.
        """
        items = []
        etags = []
        for number, tag in sorted(parts):
            etag, _, checksum = tag.partition(_TAG_SEP)
            etags.append(etag)
            extra = ""
            if checksum and self._checksum:
                name = "Checksum" + self._checksum.upper()
                extra = f"<{name}>{checksum}</{name}>"
            items.append(
                f"<Part><PartNumber>{number}</PartNumber><ETag>{_xml_escape(_quote_etag(etag))}"
                f"</ETag>{extra}</Part>"
            )
        body = (
            '<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            + "".join(items)
            + "</CompleteMultipartUpload>"
        ).encode()
        try:
            resp = self._request(
                "POST",
                key,
                query=[("uploadId", upload_id)],
                body=body,
                headers={"content-type": "application/xml"},
                operation="CompleteMultipartUpload",
                check_ok=True,
            )
        except NotFoundError as exc:
            if exc.code != "NoSuchUpload" or not exc.attempts or exc.attempts < 2:
                raise
            expected = _multipart_etag(etags)
            try:
                head = self.head_object(key)
            except NotFoundError:
                raise exc from None
            if head.etag != expected:
                raise
            return head
        root = _xml(resp.data)
        out = self._response(resp, key)
        if root is not None:
            out.etag = _etag(_text(root, "ETag")) or out.etag
        return out

    def _mpu_abort(self, key: str, upload_id: str) -> None:
        """Abort a multipart upload (AbortMultipartUpload); a missing upload is fine."""
        try:
            self._request(
                "DELETE",
                key,
                query=[("uploadId", upload_id)],
                operation="AbortMultipartUpload",
            )
        except NotFoundError:
            return

    def list_multipart_uploads(self, *, prefix: str = "") -> list[tuple[str, str]]:
        """Return the unfinished multipart uploads as ``(key, upload_id)`` pairs.

        Uploads that were neither completed nor aborted keep their parts stored (and billed);
        abort them with :meth:`abort_multipart_upload`.
        """
        out: list[tuple[str, str]] = []
        key_marker: str | None = None
        upload_marker: str | None = None
        while True:
            query = [("uploads", ""), ("encoding-type", "url")]
            if prefix:
                query.append(("prefix", prefix))
            if key_marker:
                query.append(("key-marker", key_marker))
                if upload_marker:
                    query.append(("upload-id-marker", upload_marker))
            resp = self._request("GET", None, query=query, operation="ListMultipartUploads")
            root = _xml(resp.data)
            if root is None:
                return out
            url_encoded = (_text(root, "EncodingType") or "") == "url"
            decode = unquote_plus if url_encoded else (lambda v: v)
            for name, elem in _children(root):
                if name == "Upload":
                    out.append((decode(_text(elem, "Key") or ""), _text(elem, "UploadId") or ""))
            truncated = (_text(root, "IsTruncated") or "").strip().lower() == "true"
            next_key = _text(root, "NextKeyMarker")
            next_upload = _text(root, "NextUploadIdMarker")
            stuck = (next_key, next_upload) == (key_marker, upload_marker)
            if not truncated or not next_key or stuck:
                return out
            key_marker, upload_marker = decode(next_key), next_upload

    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        """Abort one unfinished multipart upload, deleting its parts."""
        check_key(key)
        self._mpu_abort(key, upload_id)

    def _store_sha256(
        self, key: str, completed: Response, metadata: Mapping[str, str], content_type: str | None
    ) -> Response:
        """Copy the new object onto itself with ``s3func-sha256`` added to its metadata.

        The copy is conditional on the ETag the upload produced
        (``x-amz-copy-source-if-match``), so another writer's object is never stamped
        with our hash.
        """
        source = f"/{_sigv4.quote_path(self.bucket)}/{_sigv4.quote_path(key)}"
        if completed.version_id and completed.version_id != "null":
            source += "?versionId=" + _sigv4.quote_component(completed.version_id)
        headers = {"x-amz-copy-source": source, "x-amz-metadata-directive": "REPLACE"}
        headers.update(self._put_headers(metadata, content_type))
        if completed.etag:
            headers["x-amz-copy-source-if-match"] = _quote_etag(completed.etag)
        resp = self._request("PUT", key, headers=headers, operation="CopyObject", check_ok=True)
        root = _xml(resp.data)
        out = self._response(resp, key)
        if root is not None:
            out.etag = _etag(_text(root, "ETag")) or out.etag
        out.metadata = dict(metadata)
        return out

    # -- listings ------------------------------------------------------------------------

    def list_objects(
        self,
        *,
        prefix: str = "",
        start_after: str | None = None,
        delimiter: str | None = None,
        max_keys: int | None = None,
    ) -> ListResult:
        """List objects by key order, lazily (ListObjectsV2).

        Args:
            prefix: Only keys that start with this.
            start_after: Only keys after this one.
            delimiter: Group keys by this separator; groups appear in ``common_prefixes``.
            max_keys: The most objects to return in total (default: all).

        Example::

            for obj in session.list_objects(prefix="logs/").iter_objects():
                print(obj["key"], obj["content_length"])
        """
        if max_keys is not None and max_keys < 0:
            raise ConfigurationError("max_keys must be >= 0")

        def pages() -> Iterator[tuple[list[ObjectInfo], list[str]]]:
            token: str | None = None
            remaining = max_keys
            while remaining is None or remaining > 0:
                query = [("list-type", "2"), ("encoding-type", "url")]
                if prefix:
                    query.append(("prefix", prefix))
                if delimiter:
                    query.append(("delimiter", delimiter))
                if token:
                    query.append(("continuation-token", token))
                elif start_after:
                    query.append(("start-after", start_after))
                if remaining is not None and remaining < 1000:
                    query.append(("max-keys", str(remaining)))
                resp = self._request("GET", None, query=query, operation="ListObjectsV2")
                objects, prefixes, truncated, token = self._parse_list(resp.data)
                if remaining is not None:
                    objects = objects[:remaining]
                    remaining -= len(objects) + len(prefixes)
                yield objects, prefixes
                if not truncated:
                    return
                if not token:
                    raise ServerError(
                        "ListObjectsV2: the server said the listing is truncated but sent no "
                        "continuation token",
                        provider="s3",
                        operation="ListObjectsV2",
                        bucket=self.bucket,
                    )

        return ListResult(pages)

    def _parse_list(self, data: bytes) -> tuple[list[ObjectInfo], list[str], bool, str | None]:
        root = _xml(data)
        if root is None:
            raise ServerError(
                "ListObjectsV2: the server's answer is not XML",
                provider="s3",
                operation="ListObjectsV2",
                bucket=self.bucket,
            )
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        truncated = False
        token = None
        url_encoded = False
        for name, elem in _children(root):
            if name == "EncodingType":
                url_encoded = (elem.text or "") == "url"
        decode = unquote_plus if url_encoded else (lambda s: s)
        for name, elem in _children(root):
            if name == "Contents":
                key = size = etag = modified = storage = None
                for cname, child in _children(elem):
                    if cname == "Key":
                        key = child.text or ""
                    elif cname == "Size":
                        size = child.text
                    elif cname == "ETag":
                        etag = child.text
                    elif cname == "LastModified":
                        modified = child.text
                    elif cname == "StorageClass":
                        storage = child.text
                objects.append(
                    ObjectInfo(
                        decode(key or ""),
                        content_length=int(size or 0),
                        etag=(etag or "").strip('"'),
                        last_modified=modified,
                        storage_class=storage,
                    )
                )
            elif name == "CommonPrefixes":
                p = _text(elem, "Prefix")
                if p is not None:
                    prefixes.append(decode(p))
            elif name == "IsTruncated":
                truncated = (elem.text or "").strip().lower() == "true"
            elif name == "NextContinuationToken":
                token = elem.text
        return objects, prefixes, truncated, token

    def list_object_versions(
        self,
        *,
        prefix: str = "",
        delimiter: str | None = None,
        max_keys: int | None = None,
    ) -> ListResult:
        """List every version and delete marker, lazily (newest first within a key).

        Items have ``version_id``, ``is_latest`` and ``is_delete_marker``.
        """

        def pages() -> Iterator[tuple[list[ObjectInfo], list[str]]]:
            key_marker: str | None = None
            version_marker: str | None = None
            remaining = max_keys
            while remaining is None or remaining > 0:
                query = [("versions", ""), ("encoding-type", "url")]
                if prefix:
                    query.append(("prefix", prefix))
                if delimiter:
                    query.append(("delimiter", delimiter))
                if key_marker is not None:
                    query.append(("key-marker", key_marker))
                    if version_marker:
                        query.append(("version-id-marker", version_marker))
                if remaining is not None and remaining < 1000:
                    query.append(("max-keys", str(remaining)))
                resp = self._request("GET", None, query=query, operation="ListObjectVersions")
                objects, prefixes, truncated, next_key, next_version = self._parse_versions(
                    resp.data
                )
                if remaining is not None:
                    objects = objects[:remaining]
                    remaining -= len(objects) + len(prefixes)
                yield objects, prefixes
                if not truncated:
                    return
                if next_key is None or (next_key, next_version) == (key_marker, version_marker):
                    raise ServerError(
                        "ListObjectVersions: truncated listing without a usable marker",
                        provider="s3",
                        operation="ListObjectVersions",
                        bucket=self.bucket,
                    )
                key_marker, version_marker = next_key, next_version

        return ListResult(pages)

    def _parse_versions(
        self, data: bytes
    ) -> tuple[list[ObjectInfo], list[str], bool, str | None, str | None]:
        root = _xml(data)
        if root is None:
            raise ServerError(
                "ListObjectVersions: the server's answer is not XML",
                provider="s3",
                operation="ListObjectVersions",
                bucket=self.bucket,
            )
        url_encoded = (_text(root, "EncodingType") or "") == "url"
        decode = unquote_plus if url_encoded else (lambda s: s)
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        truncated = False
        next_key = next_version = None
        for name, elem in _children(root):
            if name in ("Version", "DeleteMarker"):
                fields = {cname: child.text for cname, child in _children(elem)}
                vid = fields.get("VersionId")
                objects.append(
                    ObjectInfo(
                        decode(fields.get("Key") or ""),
                        content_length=int(fields.get("Size") or 0),
                        etag=(fields.get("ETag") or "").strip('"'),
                        last_modified=fields.get("LastModified"),
                        version_id=vid if vid and vid != "null" else (vid or None),
                        is_latest=(fields.get("IsLatest") or "").lower() == "true",
                        is_delete_marker=name == "DeleteMarker",
                        storage_class=fields.get("StorageClass"),
                    )
                )
            elif name == "CommonPrefixes":
                p = _text(elem, "Prefix")
                if p is not None:
                    prefixes.append(decode(p))
            elif name == "IsTruncated":
                truncated = (elem.text or "").strip().lower() == "true"
            elif name == "NextKeyMarker":
                next_key = decode(elem.text or "")
            elif name == "NextVersionIdMarker":
                next_version = elem.text
        return objects, prefixes, truncated, next_key, next_version

    # -- buckets -------------------------------------------------------------------------

    def list_buckets(self) -> list[str]:
        """Return the names of the buckets these credentials can see."""
        resp = self._request("GET", None, operation="ListBuckets", bucket_level=False)
        root = _xml(resp.data)
        names: list[str] = []
        if root is None:
            return names
        for name, elem in _children(root):
            if name == "Buckets":
                for _, bucket in _children(elem):
                    n = _text(bucket, "Name")
                    if n:
                        names.append(n)
        return names

    def create_bucket(self, *, object_lock: bool = False, exist_ok: bool = False) -> Response:
        """Create the session's bucket.

        Args:
            object_lock: Create it with S3 Object Lock enabled (implies versioning).
            exist_ok: Do not raise when the bucket already exists and is ours.

        Raises:
            ConflictError: the bucket exists (and ``exist_ok`` is false or it is not ours).
        """
        headers: dict[str, str] = {}
        body = None
        if self.region != "us-east-1":
            body = (
                '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"<LocationConstraint>{self.region}</LocationConstraint>"
                "</CreateBucketConfiguration>"
            ).encode()
        if object_lock:
            headers["x-amz-bucket-object-lock-enabled"] = "true"
        try:
            resp = self._request("PUT", None, headers=headers, body=body, operation="CreateBucket")
        except ConflictError as exc:
            if exist_ok and exc.code == "BucketAlreadyOwnedByYou":
                return Response(status=exc.status or 409, headers=exc.headers)
            raise
        return self._response(resp, None)

    def delete_bucket(self) -> Response:
        """Delete the session's bucket (it must be empty).

        Raises:
            ConflictError: the bucket is not empty.
        """
        resp = self._request("DELETE", None, operation="DeleteBucket")
        return self._response(resp, None)

    def get_bucket_versioning(self) -> str | None:
        """Return ``"Enabled"``, ``"Suspended"`` or ``None`` (never enabled)."""
        resp = self._request(
            "GET", None, query=[("versioning", "")], operation="GetBucketVersioning"
        )
        root = _xml(resp.data)
        return _text(root, "Status") if root is not None else None

    def put_bucket_versioning(self, enabled: bool) -> Response:
        """Enable (``True``) or suspend (``False``) versioning on the bucket."""
        status = "Enabled" if enabled else "Suspended"
        return self._put_bucket_config(
            "versioning",
            "VersioningConfiguration",
            f"<Status>{status}</Status>",
            "PutBucketVersioning",
        )

    def _put_bucket_config(
        self, subresource: str, element: str, inner: str, operation: str
    ) -> Response:
        """PUT one bucket configuration document (with the Content-MD5 S3 requires)."""
        body = (
            f'<{element} xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</{element}>'
        ).encode()
        resp = self._request(
            "PUT",
            None,
            query=[(subresource, "")],
            body=body,
            headers={"content-md5": _content_md5(body)},
            operation=operation,
        )
        return self._response(resp, None)

    def get_object_lock_configuration(self) -> dict[str, Any]:
        """Return the bucket's Object Lock configuration.

        Returns:
            ``{"enabled": bool, "mode": "GOVERNANCE"|"COMPLIANCE"|None, "days": int|None,
            "years": int|None}``.

        Raises:
            NotFoundError: the bucket has no Object Lock configuration.
        """
        resp = self._request(
            "GET", None, query=[("object-lock", "")], operation="GetObjectLockConfiguration"
        )
        root = _xml(resp.data)
        out: dict[str, Any] = {"enabled": False, "mode": None, "days": None, "years": None}
        if root is None:
            return out
        out["enabled"] = (_text(root, "ObjectLockEnabled") or "") == "Enabled"
        for name, rule in _children(root):
            if name != "Rule":
                continue
            for _, retention in _children(rule):
                out["mode"] = _text(retention, "Mode")
                days, years = _text(retention, "Days"), _text(retention, "Years")
                out["days"] = int(days) if days else None
                out["years"] = int(years) if years else None
        return out

    def put_object_lock_configuration(
        self,
        *,
        mode: Literal["GOVERNANCE", "COMPLIANCE"] | None = None,
        days: int | None = None,
        years: int | None = None,
    ) -> Response:
        """Set the bucket's default Object Lock retention (or only enable Object Lock).

        Raises:
            ConfigurationError: both days and years, or a mode without a period.
        """
        if (days is not None) and (years is not None):
            raise ConfigurationError("give days or years, not both")
        if mode is not None and days is None and years is None:
            raise ConfigurationError("a retention mode needs days or years")
        if mode is not None and mode not in ("GOVERNANCE", "COMPLIANCE"):
            raise ConfigurationError("mode must be 'GOVERNANCE' or 'COMPLIANCE'")
        rule = ""
        if mode is not None:
            period = (
                f"<Days>{int(days)}</Days>"
                if days is not None
                else f"<Years>{int(years or 0)}</Years>"
            )
            rule = f"<Rule><DefaultRetention><Mode>{mode}</Mode>{period}</DefaultRetention></Rule>"
        return self._put_bucket_config(
            "object-lock",
            "ObjectLockConfiguration",
            f"<ObjectLockEnabled>Enabled</ObjectLockEnabled>{rule}",
            "PutObjectLockConfiguration",
        )

    # -- presigned URLs ------------------------------------------------------------------

    def presigned_url(
        self,
        key: str,
        *,
        method: Literal["GET", "PUT", "HEAD", "DELETE"] = "GET",
        expires: int = 3600,
        version_id: str | None = None,
    ) -> str:
        """Return a URL that lets anyone holding it run one request without credentials.

        Args:
            key: The object key.
            method: ``"GET"`` to download, ``"PUT"`` to upload (the uploader sends the raw
                body with no extra signed headers).
            expires: Lifetime in seconds, 1 to 604800 (7 days).
            version_id: For GET/HEAD, a specific version.

        Raises:
            ConfigurationError: bad key or expiry.
        """
        check_key(key)
        if not 1 <= int(expires) <= _MAX_EXPIRES:
            raise ConfigurationError("expires must be between 1 second and 7 days (604800)")
        path = self._bucket_path + "/" + _sigv4.quote_path(key)
        params = [("versionId", version_id)] if version_id else []
        query = self._current_signer().presign(
            method,
            self._sign_host,
            path,
            params,
            expires=int(expires),
            timestamp=time.time() + self._clock_offset,
        )
        return f"{self._scheme}://{self._sign_host}{path}?{query}"


def _hash_file(f: IO[bytes]) -> str:
    start = f.tell()
    digest = hashlib.sha256()
    while True:
        chunk = f.read(1 << 20)
        if not chunk:
            break
        digest.update(chunk)
    f.seek(start)
    return digest.hexdigest()
