"""``BaseSession``: the operations every storage backend offers, and helpers built on them.

Backends (:class:`~s3func.S3Session`, :class:`~s3func.B2Session`) implement the abstract
primitives; everything else here (batch deletes by prefix, ``exists``, locks, file transfers)
is written once on top of them, so code written against ``BaseSession`` runs unchanged on
either backend.
"""

from __future__ import annotations

import abc
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TypeVar

from ._http import Transport
from .errors import ConfigurationError, NotFoundError, S3FuncError, ServiceError
from .models import ListResult, ObjectInfo, Response
from .progress import ProgressLike
from .response import ObjectResponse
from .retry import RetryPolicy

if TYPE_CHECKING:
    from ._transfer import PartReader
    from .lock import ObjectLock

__all__ = ["BaseSession", "Data", "check_key", "check_metadata"]

#: What ``put_object`` accepts as a body.
Data = bytes | bytearray | memoryview | str | IO[bytes] | BinaryIO | Iterable[bytes]

T = TypeVar("T")
A = TypeVar("A")
R = TypeVar("R")
#: One small upload of ``_put_many``: key, in-memory body, user metadata, content type.
SmallPut = tuple[str, "PartReader", Mapping[str, str], "str | None"]

_MAX_KEY_BYTES = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
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
        if _CONTROL.search(value):
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

    # -- multipart primitives (the transfer engine in _transfer.py drives them) -------------

    #: The smallest part the backend accepts (every part but the last).
    _min_part_size: int = 5 * 1024 * 1024
    #: The most parts one multipart upload may have.
    _max_parts: int = 10_000
    #: Per-part digests the backend wants computed up front (``"sha256"`` for a SigV4
    #: payload hash, ``"sha1"`` for B2...): the engine computes them in its pre-pass over a
    #: file and hands them over in ``PartReader.digests``.
    _part_digests: tuple[str, ...] = ()

    @abc.abstractmethod
    def _mpu_create(
        self, key: str, *, metadata: Mapping[str, str], content_type: str | None
    ) -> str:
        """Start a multipart upload and return its upload id."""

    @abc.abstractmethod
    def _mpu_upload_part(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        body: bytes | memoryview | IO[bytes],
        size: int,
    ) -> str:
        """Upload part ``part_number`` (1-based) of ``size`` bytes; return its tag.

        The tag is what :meth:`_mpu_complete` needs (S3: the ETag; B2: the SHA-1). ``body``
        may be a ``_transfer.PartReader``: seekable, with precomputed ``digests``.
        """

    @abc.abstractmethod
    def _mpu_complete(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> Response:
        """Assemble the object from ``(part_number, tag)`` pairs (sorted by number)."""

    @abc.abstractmethod
    def _mpu_abort(self, key: str, upload_id: str) -> None:
        """Abort the upload and delete its parts (no error if it is already gone)."""

    def _store_sha256(
        self, key: str, completed: Response, metadata: Mapping[str, str], content_type: str | None
    ) -> Response:
        """Replace the metadata of a just-uploaded object (with ``s3func-sha256`` added).

        Used after an upload of unknown length, whose hash is known only at the end: a
        server-side copy of the object onto itself. Backends may override it to make the
        copy conditional on the ETag.
        """
        return self.copy_object(
            key,
            key,
            source_version_id=completed.version_id,
            metadata=metadata,
            content_type=content_type,
        )

    # -- many small objects (the sync engine drives them) ------------------------------------

    def _get_many(
        self, items: Iterable[tuple[T, str]], *, concurrency: int
    ) -> Iterator[tuple[T, ObjectResponse | S3FuncError]]:
        """GET small objects whole: ``(tag, key)`` in, ``(tag, outcome)`` out as each ends.

        Each outcome is what ``get_object(key, stream=False)`` returns or raises (an error
        is yielded, not raised). Up to ``concurrency`` run at once, on threads here;
        sessions whose transport can multiplex on one thread override this.
        """

        def get(key: str) -> ObjectResponse:
            return self.get_object(key, stream=False)

        return _on_threads(get, items, concurrency)

    def _put_many(
        self, items: Iterable[tuple[T, SmallPut]], *, concurrency: int
    ) -> Iterator[tuple[T, Response | S3FuncError]]:
        """PUT small in-memory bodies; ``(tag, outcome)`` as each ends (see :meth:`_get_many`).

        Each outcome is what ``put_object(key, body, metadata=..., content_type=...)``
        returns or raises. ``items`` is consumed lazily, a few ahead of the transfers.
        """

        def put(args: SmallPut) -> Response:
            key, body, metadata, content_type = args
            return self.put_object(key, body, metadata=metadata, content_type=content_type)

        return _on_threads(put, items, concurrency)

    # -- file transfers ----------------------------------------------------------------------

    #: ``put_object`` and ``upload_file`` switch to a multipart upload above this size.
    multipart_threshold: int = 16 * 1024 * 1024
    #: Upload part size and download range size (grown when 10,000 parts would not do).
    part_size: int = 8 * 1024 * 1024
    #: Threads (and connections) one upload uses at most.
    max_concurrency: int = 8
    #: Range size of ``download_file``: objects up to this size come in one GET.
    download_part_size: int = 16 * 1024 * 1024
    #: Threads (and connections) one ``download_file`` uses at most. A few streams already
    #: fill a fast link; on a small machine more threads only contend for the GIL (measured
    #: on 2 cores: 4 threads of 16 MiB ranges beat 8 threads of 8 MiB by about a third).
    download_concurrency: int = 4
    #: Verify the checksum of whole-object reads (``get_object`` bodies read to the end,
    #: ``download_file``). The length is always checked. Turning this off trades the
    #: end-to-end check for CPU (MD5 runs at ~0.8 GB/s, SHA-256 at ~1.8 GB/s per core).
    verify_checksums: bool = True

    def upload_file(
        self,
        key: str,
        path: str | os.PathLike[str],
        *,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        progress: ProgressLike = None,
        part_size: int | None = None,
        concurrency: int | None = None,
    ) -> Response:
        """Upload a local file, in parallel parts when it is large.

        Up to :attr:`multipart_threshold` bytes the file goes up in one PUT; above it as a
        multipart upload whose parts (:attr:`part_size`) are read by offset and sent on
        ``concurrency`` threads, each retried on its own; a failed upload is aborted, so no
        parts are left behind. The file is never read into memory whole.

        The object gets the user metadata ``s3func-sha256``: the hex SHA-256 of the
        content, computed in a fast pass before sending (one that is already in
        ``metadata`` is trusted as is). Later comparisons can rely on it even where the
        ETag of a multipart object is not an MD5.

        Args:
            key: The object key.
            path: The local file.
            metadata: User metadata.
            content_type: The content type to store.
            progress: ``progress(done, total)`` callable, or ``True`` for a terminal bar
                (see :mod:`s3func.progress`).
            part_size: Override :attr:`part_size` for this upload.
            concurrency: Override :attr:`max_concurrency` for this upload.

        Returns:
            The response of the final request (``etag``, ``version_id``), with
            ``content_length`` set to the file size.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            IntegrityError: the file changed while it was being uploaded (a multipart upload
                is then aborted before completing).
            ConfigurationError: bad key, metadata or part size.
        """
        from . import _transfer

        check_key(key)
        return _transfer.upload_path(
            self,
            key,
            path,
            metadata=metadata,
            content_type=content_type,
            progress=progress,
            part_size=part_size,
            concurrency=concurrency,
        )

    def download_file(
        self,
        key: str,
        path: str | os.PathLike[str],
        *,
        version_id: str | None = None,
        progress: ProgressLike = None,
        part_size: int | None = None,
        concurrency: int | None = None,
        verify: bool | None = None,
    ) -> Response:
        """Download an object to a local file, with parallel ranged GETs when it is large.

        The data goes to a temporary file in the target's directory, which replaces
        ``path`` only after the size and the checksum (the stored ``s3func-sha256``, else
        the MD5 of a single-part ETag, else B2's SHA-1) are verified; an interrupted or
        failed download leaves an existing file at ``path`` untouched. Every range is
        pinned to the version the first request saw (``If-Match`` on the ETag, and the
        version id): an object replaced mid-download raises
        :class:`~s3func.errors.PreconditionFailedError`. Broken connections are resumed.

        Args:
            key: The object key.
            path: The local file to create or replace (its directory must exist).
            version_id: Download this version.
            progress: ``progress(done, total)`` callable, or ``True`` for a terminal bar.
            part_size: Range size (default :attr:`download_part_size`); objects up to this
                size are fetched in one GET.
            concurrency: Override :attr:`download_concurrency` for this download.
            verify: Check the checksum (the size is always checked); default
                :attr:`verify_checksums`.

        Returns:
            The object's fields (``etag``, ``version_id``, ``content_length``, ``metadata``...).

        Raises:
            NotFoundError: the key (or version) does not exist.
            IntegrityError: size or checksum mismatch (nothing was written to ``path``).
            PreconditionFailedError: the object changed during the download.
        """
        from . import _transfer

        check_key(key)
        return _transfer.download(
            self,
            key,
            path,
            version_id=version_id,
            progress=progress,
            part_size=part_size,
            concurrency=concurrency,
            verify=self.verify_checksums if verify is None else verify,
        )

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


def _on_threads(
    fn: Callable[[A], R], items: Iterable[tuple[T, A]], workers: int
) -> Iterator[tuple[T, R | S3FuncError]]:
    """``(tag, fn(arg) or its S3FuncError)`` per item, ``workers`` at a time, in order.

    Items are taken lazily (at most twice ``workers`` ahead), so bodies read from files
    stay bounded in memory.
    """
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    def run(arg: A) -> R | S3FuncError:
        try:
            return fn(arg)
        except S3FuncError as exc:
            return exc

    pending: deque[tuple[T, Future[R | S3FuncError]]] = deque()
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="s3func-many") as pool:
        try:
            for tag, arg in items:
                pending.append((tag, pool.submit(run, arg)))
                if len(pending) >= 2 * workers:
                    tag, future = pending.popleft()
                    yield tag, future.result()
            while pending:
                tag, future = pending.popleft()
                yield tag, future.result()
        finally:
            for _, future in pending:  # abandoned early: do not start what is queued
                future.cancel()


def with_rejects(
    outcomes: Iterable[tuple[T, R]], rejects: list[tuple[T, R]]
) -> Iterator[tuple[T, R]]:
    """``outcomes``, each followed by what ``rejects`` gathered meanwhile, then the rest.

    For batches whose input generator turns some items away before sending them (a bad key,
    an unreadable file): the refusals are reported among the outcomes, not lost.
    """
    for outcome in outcomes:
        yield outcome
        while rejects:
            yield rejects.pop()
    while rejects:
        yield rejects.pop()
