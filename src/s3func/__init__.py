"""s3func: a small, fast, synchronous client for S3-compatible storage and Backblaze B2.

Example::

    from s3func import S3Session

    session = S3Session(access_key_id="...", access_key="...", bucket="my-bucket",
                        endpoint_url="https://s3.example.com")
    session.put_object("hello.txt", b"Hello, S3!")
    print(session.get_object("hello.txt").data)

Heavy modules load on first use, so ``import s3func`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    AccessDeniedError,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    ConnectError,
    HashMismatchError,
    IncompleteBodyError,
    IntegrityError,
    InvalidRangeError,
    LockError,
    LockLostError,
    LockTimeoutError,
    NotFoundError,
    NotSupportedError,
    PoolTimeoutError,
    PreconditionFailedError,
    S3FuncError,
    S3ObjectError,
    ServerError,
    ServiceError,
    SyncError,
    ThrottledError,
    TransportError,
    TransportTimeout,
)

if TYPE_CHECKING:
    from .b2 import B2Session
    from .lock import LockInfo, ObjectLock
    from .models import ListResult, ObjectInfo, Response
    from .response import ObjectResponse
    from .retry import RetryPolicy
    from .s3 import S3Session
    from .session import BaseSession
    from .sync import S3Object

__version__ = "0.10.0.dev0"

__all__ = [
    "AccessDeniedError",
    "AuthenticationError",
    "B2Session",
    "BaseSession",
    "ConfigurationError",
    "ConflictError",
    "ConnectError",
    "HashMismatchError",
    "IncompleteBodyError",
    "IntegrityError",
    "InvalidRangeError",
    "ListResult",
    "LockError",
    "LockInfo",
    "LockLostError",
    "LockTimeoutError",
    "NotFoundError",
    "NotSupportedError",
    "ObjectInfo",
    "ObjectLock",
    "ObjectResponse",
    "PoolTimeoutError",
    "PreconditionFailedError",
    "Response",
    "RetryPolicy",
    "S3FuncError",
    "S3Object",
    "S3ObjectError",
    "S3Session",
    "ServerError",
    "ServiceError",
    "SyncError",
    "ThrottledError",
    "TransportError",
    "TransportTimeout",
    "__version__",
]

_LAZY = {
    "B2Session": "b2",
    "BaseSession": "session",
    "ListResult": "models",
    "ObjectInfo": "models",
    "LockInfo": "lock",
    "ObjectLock": "lock",
    "ObjectResponse": "response",
    "Response": "models",
    "RetryPolicy": "retry",
    "S3Object": "sync",
    "S3Session": "s3",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 's3func' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
