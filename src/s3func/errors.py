"""The exceptions s3func raises.

Every exception derives from :class:`S3FuncError`. Classes are grouped by meaning, not by
service code; the raw code from S3 or B2 is always kept on ``exc.code``.

::

    S3FuncError
    ├── ConfigurationError (ValueError)      bad argument, endpoint or missing credentials
    ├── TransportError                       no usable HTTP response
    │   ├── ConnectError                     DNS, TCP or TLS connect failure
    │   ├── TransportTimeout (TimeoutError)  connect or read timeout
    │   │   └── PoolTimeoutError             every pooled connection stayed busy
    │   └── IncompleteBodyError              body ended early or broke mid-stream
    ├── ServiceError                         the server answered with an error
    │   ├── NotFoundError (FileNotFoundError)
    │   ├── AccessDeniedError (PermissionError)
    │   ├── AuthenticationError              bad key, signature, expired token, clock skew
    │   ├── PreconditionFailedError          412 (and 304 on conditional reads)
    │   ├── ConflictError                    409
    │   ├── InvalidRangeError                416
    │   ├── ThrottledError                   429, SlowDown, too_many_requests
    │   ├── ServerError                      other 5xx, or a 200 carrying an error body
    │   └── NotSupportedError                501: the server lacks the feature
    ├── IntegrityError                       size or checksum mismatch after a transfer
    ├── LockError
    │   ├── LockTimeoutError (TimeoutError)  could not acquire in time
    │   └── LockLostError                    our ticket or lease vanished
    └── S3ObjectError                        S3Object (local file/folder mirror) failures
        ├── HashMismatchError (IntegrityError)
        └── SyncError

No message is ever empty and no message contains a secret: messages are built only from the
operation, bucket, key, status, service code and service message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "AccessDeniedError",
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "ConnectError",
    "HashMismatchError",
    "IncompleteBodyError",
    "IntegrityError",
    "InvalidRangeError",
    "LockError",
    "LockLostError",
    "LockTimeoutError",
    "NotFoundError",
    "NotSupportedError",
    "PoolTimeoutError",
    "PreconditionFailedError",
    "S3FuncError",
    "S3ObjectError",
    "ServerError",
    "ServiceError",
    "SyncError",
    "ThrottledError",
    "TransportError",
    "TransportTimeout",
    "error_for_status",
]

_FIELDS = (
    "provider",
    "operation",
    "status",
    "code",
    "request_id",
    "host_id",
    "bucket",
    "key",
    "retry_after",
    "method",
    "url",
    "attempts",
)


def _rebuild(cls: type[S3FuncError], message: str, state: dict[str, Any]) -> S3FuncError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.__dict__.update(state)
    return exc


class S3FuncError(Exception):
    """Base of every exception raised by s3func.

    Attributes:
        message: The human-readable message (never empty).
        provider: ``"s3"`` or ``"b2"`` when a service was involved.
        operation: The operation that failed, e.g. ``"GetObject"`` or ``"b2_list_file_names"``.
        status: The HTTP status, when a response arrived.
        code: The raw service error code (``"NoSuchKey"``, ``"expired_auth_token"``...).
        request_id: The service request id, when the server sent one.
        host_id: S3's ``x-amz-id-2``, when sent.
        bucket: The bucket involved.
        key: The object key involved.
        retry_after: Seconds the server asked us to wait, when it did.
        headers: A copy of the response headers (never request headers).
        retryable: Whether retrying the same request may succeed.
    """

    retryable: bool = False

    message: str
    provider: str | None
    operation: str | None
    status: int | None
    code: str | None
    request_id: str | None
    host_id: str | None
    bucket: str | None
    key: str | None
    retry_after: float | None
    method: str | None
    url: str | None
    attempts: int | None
    headers: Mapping[str, str]

    def __init__(
        self,
        message: str = "",
        *,
        provider: str | None = None,
        operation: str | None = None,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        host_id: str | None = None,
        bucket: str | None = None,
        key: str | None = None,
        retry_after: float | None = None,
        method: str | None = None,
        url: str | None = None,
        attempts: int | None = None,
        headers: Mapping[str, str] | None = None,
        retryable: bool | None = None,
    ) -> None:
        if not message:
            message = _default_message(type(self), operation, status, code, bucket, key)
        Exception.__init__(self, message)
        self.message = message
        self.provider = provider
        self.operation = operation
        self.status = status
        self.code = code
        self.request_id = request_id
        self.host_id = host_id
        self.bucket = bucket
        self.key = key
        self.retry_after = retry_after
        self.method = method
        self.url = url
        self.attempts = attempts
        self.headers = dict(headers) if headers else {}
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        parts = [repr(self.message)]
        for name in ("status", "code", "bucket", "key"):
            value = getattr(self, name, None)
            if value is not None:
                parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _default_message(
    cls: type[S3FuncError],
    operation: str | None,
    status: int | None,
    code: str | None,
    bucket: str | None,
    key: str | None,
) -> str:
    what = operation or cls.__name__
    parts = [what, "failed"]
    if status is not None:
        parts.append(f"with HTTP {status}")
    if code:
        parts.append(f"({code})")
    if bucket is not None or key is not None:
        parts.append(f"for {bucket or ''}/{key or ''}")
    return " ".join(parts)


class ConfigurationError(S3FuncError, ValueError):
    """A bad argument, endpoint or missing credentials, raised before any request is sent."""


class TransportError(S3FuncError):
    """No usable HTTP response arrived (the cause is chained as ``__cause__``)."""

    retryable = True


class ConnectError(TransportError):
    """The TCP, TLS or DNS step of connecting failed."""


class TransportTimeout(TransportError, TimeoutError):
    """A connect or read timeout expired."""


class PoolTimeoutError(TransportTimeout):
    """Every connection of the pool stayed in use for the whole pool timeout.

    Usually a sign of streamed responses that were never closed.
    """

    retryable = False


class IncompleteBodyError(TransportError):
    """The response body ended early or the connection broke while reading it.

    Attributes:
        expected: Bytes that should have arrived, when known.
        received: Bytes that did arrive.
    """

    expected: int | None = None
    received: int | None = None


class ServiceError(S3FuncError):
    """The server answered with an error."""


class NotFoundError(ServiceError, FileNotFoundError):
    """The bucket, object or version does not exist (also for body-less HEAD 404s)."""


class AccessDeniedError(ServiceError, PermissionError):
    """The credentials are valid but not allowed to do this."""


class AuthenticationError(ServiceError):
    """The request was not authenticated: unknown key, bad signature, expired token, skew."""


class PreconditionFailedError(ServiceError):
    """A conditional request's condition did not hold (412, or 304 on a conditional read)."""


class ConflictError(ServiceError):
    """The request conflicts with the resource's state (409)."""


class InvalidRangeError(ServiceError):
    """The requested byte range is not satisfiable (416)."""


class ThrottledError(ServiceError):
    """The server asked us to slow down (429, ``SlowDown``, ``too_many_requests``)."""

    retryable = True


class ServerError(ServiceError):
    """The server failed (5xx, or an error document inside a 200 response)."""

    retryable = True


class NotSupportedError(ServiceError):
    """The server does not implement what the request asks for (501)."""


class IntegrityError(S3FuncError):
    """The size or checksum of transferred data does not match what was expected.

    Attributes:
        algorithm: ``"size"``, ``"md5"``, ``"sha1"``, ``"sha256"``...
        expected: The expected value.
        actual: The value computed from the data.
    """

    algorithm: str | None = None
    expected: str | None = None
    actual: str | None = None


class LockError(S3FuncError):
    """Base for distributed-lock failures."""


class LockTimeoutError(LockError, TimeoutError):
    """The lock could not be acquired within the timeout."""


class LockLostError(LockError):
    """Our lock ticket or lease vanished or was broken by someone else."""


class S3ObjectError(S3FuncError):
    """An :class:`~s3func.S3Object` operation failed."""


class HashMismatchError(S3ObjectError, IntegrityError):
    """Downloaded or uploaded content does not match its expected hash."""


class SyncError(S3ObjectError):
    """A download, upload or mirror of an :class:`~s3func.S3Object` failed."""


_BY_STATUS: dict[int, type[ServiceError]] = {
    304: PreconditionFailedError,
    401: AuthenticationError,
    403: AccessDeniedError,
    404: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    416: InvalidRangeError,
    429: ThrottledError,
    501: NotSupportedError,
}


def error_for_status(status: int) -> type[ServiceError]:
    """Return the exception class that matches an HTTP status alone.

    Providers refine this with their service codes (for example S3 ``SlowDown`` on a 503 is a
    :class:`ThrottledError`, and ``SignatureDoesNotMatch`` on a 403 an
    :class:`AuthenticationError`).
    """
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls
    if status >= 500:
        return ServerError
    return ServiceError
