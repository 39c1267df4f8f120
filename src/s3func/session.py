"""``BaseSession``: the operations every storage backend offers, and helpers built on them.

Backends (:class:`~s3func.S3Session`, :class:`~s3func.B2Session`) implement the abstract
primitives; everything else here (batch deletes by prefix, ``exists``, locks, file transfers)
is written once on top of them, so code written against ``BaseSession`` runs unchanged on
either backend.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from ._http import Transport
from .errors import ConfigurationError, NotFoundError, ServiceError
from .models import ListResult, ObjectInfo, Response
from .response import ObjectResponse
from .retry import RetryPolicy

if TYPE_CHECKING:
    from .lock import ObjectLock

__all__ = ["BaseSession", "Data", "check_key", "check_metadata"]

#: What ``put_object`` accepts as a body.
Data = bytes | bytearray | memoryview | str | IO[bytes] | BinaryIO | Iterable[bytes]

_MAX_KEY_BYTES = 1024
_TCHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def check_key(key: object) -> str:
    """Validate an object key (before any request is sent) and return it unchanged.

    Raises:
        ConfigurationError: the key is not a string, is empty or is over 1024 UTF-8 bytes.
    """
    if not isinstance(key, str):
        raise ConfigurationError(f"object key must be a str, not {type(key).__name__}")
    if not key:
        raise ConfigurationError("object key must not be empty")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ConfigurationError(f"object key {key!r} is not valid unicode text") from exc
    if size > _MAX_KEY_BYTES:
        raise ConfigurationError(
            f"object key is {size} bytes of UTF-8; the limit is {_MAX_KEY_BYTES}", key=key[:64]
        )
    return key


def check_metadata(metadata: Mapping[str, str] | None, *, limit: int = 2048) -> dict[str, str]:
    """Validate user metadata and return it with lower-case names.

    Names must be HTTP token characters; values must be strings without control characters.
    The UTF-8 size of all names and values together must not exceed ``limit`` bytes (S3's
    2 KB rule).

    Raises:
        ConfigurationError: the metadata is invalid.
    """
    if not metadata:
        return {}
    if not isinstance(metadata, Mapping):
        raise ConfigurationError("metadata must be a mapping of str to str")
    out: dict[str, str] = {}
    total = 0
    for name, value in metadata.items():
        if not isinstance(name, str) or not name or not set(name) <= _TCHARS:
            raise ConfigurationError(
                f"metadata name {name!r} is invalid: use ASCII letters, digits and -_.!#$&'*+^`|~"
            )
        if not isinstance(value, str):
            raise ConfigurationError(f"metadata value for {name!r} must be a str")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ConfigurationError(f"metadata value for {name!r} contains control characters")
        lower = name.lower()
        if lower in out:
            raise ConfigurationError(f"metadata name {name!r} is given twice (names ignore case)")
        out[lower] = value
        total += len(lower.encode()) + len(value.encode("utf-8"))
    if total > limit:
        raise ConfigurationError(
            f"user metadata is {total} bytes; the limit is {limit} bytes (names plus values)"
        )
    return out


class BaseSession(abc.ABC):
    """The abstract session shared by S3 and B2.

    Sessions are thread-safe: share one between threads. Close it (or use ``with``) to
    release its connections.

    Attributes:
        bucket: The bucket every operation works on.
        transport: The connection pools and retry policy.
    """

    provider: str = "?"
    bucket: str

    def __init__(
        self,
        *,
        bucket: str,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_connections: int = 16,
        pool_timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        ca_bundle: str | None = None,
        verify_tls: bool = True,
    ) -> None:
        if not bucket or not isinstance(bucket, str):
            raise ConfigurationError("bucket must be a non-empty string")
        self.bucket = bucket
        self.transport = Transport(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_connections=max_connections,
            pool_timeout=pool_timeout,
            retry=retry,
            ca_bundle=ca_bundle,
            verify_tls=verify_tls,
        )

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the session's pooled connections."""
        self.transport.close()

    def __enter__(self) -> BaseSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- primitives every backend implements ---------------------------------------------

    @abc.abstractmethod
    def put_object(
        self,
        key: str,
        data: Data,
        *,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> Response:
        """Store ``data`` under ``key``."""

    @abc.abstractmethod
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
        """Read an object (or a byte range of it)."""

    @abc.abstractmethod
    def head_object(
        self,
        key: str,
        *,
        version_id: str | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> Response:
        """Return an object's fields and metadata without its body."""

    @abc.abstractmethod
    def delete_object(
        self, key: str, *, version_id: str | None = None, if_match: str | None = None
    ) -> Response:
        """Delete an object (or one version of it)."""

    @abc.abstractmethod
    def list_objects(
        self,
        *,
        prefix: str = "",
        start_after: str | None = None,
        delimiter: str | None = None,
        max_keys: int | None = None,
    ) -> ListResult:
        """List objects lazily."""

    @abc.abstractmethod
    def list_object_versions(
        self,
        *,
        prefix: str = "",
        delimiter: str | None = None,
        max_keys: int | None = None,
    ) -> ListResult:
        """List object versions (and delete markers) lazily."""

    @abc.abstractmethod
    def copy_object(
        self,
        source_key: str,
        dest_key: str,
        *,
        source_version_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> Response:
        """Copy an object within the bucket, server-side."""

    @abc.abstractmethod
    def _delete_batch(
        self, items: list[tuple[str, str | None]]
    ) -> list[tuple[str, str | None, str]]:
        """Delete up to 1000 (key, version_id) pairs; return the failures as (key, version, why)."""

    # -- helpers built on the primitives ---------------------------------------------------

    def exists(self, key: str) -> bool:
        """Return whether ``key`` exists (a HEAD request)."""
        try:
            self.head_object(key)
        except NotFoundError:
            return False
        return True

    def delete_objects(
        self,
        keys: Iterable[str] | None = None,
        *,
        prefix: str | None = None,
        all_versions: bool = False,
        allow_empty_prefix: bool = False,
    ) -> list[ObjectInfo]:
        """Delete many objects, given as a list of keys or as a prefix, in batches of 1000.

        Args:
            keys: The keys to delete.
            prefix: Delete every object whose key starts with this prefix instead.
            all_versions: Also delete every old version and delete marker (purging the
                keys entirely in a versioned bucket).
            allow_empty_prefix: Must be true to allow ``prefix=""`` (the whole bucket).

        Returns:
            What was deleted (keys, and version ids when versions were purged).

        Raises:
            ServiceError: some keys could not be deleted; the message lists them and
                ``exc.failed`` holds ``(key, version_id, reason)`` tuples.
            ConfigurationError: neither or both of keys and prefix, or an empty prefix
                without ``allow_empty_prefix=True``.
        """
        if (keys is None) == (prefix is None):
            raise ConfigurationError("give either keys or prefix to delete_objects")
        if prefix is not None and prefix == "" and not allow_empty_prefix:
            raise ConfigurationError(
                "delete_objects(prefix='') would delete the whole bucket; "
                "pass allow_empty_prefix=True if that is what you want"
            )
        targets = self._delete_targets(keys, prefix, all_versions)
        done: list[ObjectInfo] = []
        failed: list[tuple[str, str | None, str]] = []
        batch: list[ObjectInfo] = []
        for info in targets:
            batch.append(info)
            if len(batch) == 1000:
                self._run_batch(batch, done, failed)
                batch = []
        if batch:
            self._run_batch(batch, done, failed)
        if failed:
            listed = ", ".join(
                f"{k!r}" + (f" ({v})" if v else "") + f": {why}" for k, v, why in failed[:20]
            )
            more = f" and {len(failed) - 20} more" if len(failed) > 20 else ""
            err = ServiceError(
                f"delete_objects could not delete {len(failed)} of {len(failed) + len(done)} "
                f"objects: {listed}{more}",
                provider=self.provider,
                operation="DeleteObjects",
                bucket=self.bucket,
            )
            err.failed = failed  # type: ignore[attr-defined]
            raise err
        return done

    def _delete_targets(
        self, keys: Iterable[str] | None, prefix: str | None, all_versions: bool
    ) -> Iterator[ObjectInfo]:
        if keys is not None:
            wanted = [check_key(k) for k in ([keys] if isinstance(keys, str) else keys)]
            if not all_versions:
                yield from (ObjectInfo(k) for k in wanted)
                return
            for key in wanted:
                for info in self.list_object_versions(prefix=key).iter_objects():
                    if info.key == key:
                        yield info
            return
        assert prefix is not None
        if all_versions:
            yield from self.list_object_versions(prefix=prefix).iter_objects()
        else:
            yield from self.list_objects(prefix=prefix).iter_objects()

    def _run_batch(
        self,
        batch: list[ObjectInfo],
        done: list[ObjectInfo],
        failed: list[tuple[str, str | None, str]],
    ) -> None:
        problems = self._delete_batch([(i.key, i.version_id) for i in batch])
        bad = {(k, v) for k, v, _ in problems}
        failed.extend(problems)
        done.extend(i for i in batch if (i.key, i.version_id) not in bad)

    def lock(self, key: str, lock_id: str | None = None, **options: Any) -> ObjectLock:
        """Return a distributed lock named ``key`` (see :class:`~s3func.lock.ObjectLock`).

        Example::

            with session.lock("nightly-job"):
                ...
        """
        from .lock import ObjectLock

        return ObjectLock(self, key, lock_id=lock_id, **options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bucket={self.bucket!r})"
