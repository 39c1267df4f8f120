"""``ObjectResponse``: the body of a GET as a real, verified, resumable binary file object.

What it guarantees, for every backend:

* **Length.** At the end of the stream the bytes received must equal ``Content-Length``;
  otherwise :class:`~s3func.errors.IntegrityError` (``algorithm="size"``).
* **Checksum.** When the whole object is read, one checksum of the content is verified: the
  cheapest of those known, in this order: the CRC-32 that s3func stores in the
  ``s3func-crc32`` user metadata (or a backend supplies), the SHA-256 of ``s3func-sha256``,
  the SHA-1 that B2 keeps, the MD5 that a single-part S3 ETag is. A mismatch raises
  :class:`~s3func.errors.IntegrityError` instead of returning the last chunk.
* **Resume.** A connection reset, a read timeout or a body that ends early is not an error
  yet: the rest is requested again from the first byte not received, with a ``Range`` pinned
  to the same object (``If-Match`` on the ETag, or the version id), at most ``max_resumes``
  times in a row without progress. An object replaced in the meantime raises
  :class:`~s3func.errors.PreconditionFailedError` saying so.
* **Connections.** A fully read body gives its connection back to the pool at once; closing
  a body with unread data discards the connection (never a drain that could hang on a
  stalled server).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import os
import queue
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from http.client import HTTPException
from typing import TYPE_CHECKING, Any, NoReturn

from urllib3 import exceptions as u3e

from .errors import (
    IncompleteBodyError,
    IntegrityError,
    NotFoundError,
    NotSupportedError,
    PreconditionFailedError,
    S3FuncError,
    ServiceError,
    TransportError,
    TransportTimeout,
)
from .models import Response

if TYPE_CHECKING:
    import datetime as _dt

    import urllib3
    from _typeshed import WriteableBuffer

__all__ = [
    "CHECKSUM_PREFERENCE",
    "CRC32_METADATA",
    "SHA256_METADATA",
    "ObjectResponse",
    "Reopen",
    "body_range",
    "crc32_combine",
    "crc32_concat",
    "crc32_function",
    "new_hasher",
]

log = logging.getLogger("s3func")

#: Reopen the object from a byte offset (absolute, in the object); returns an unread response.
Reopen = Callable[[int], "urllib3.HTTPResponse"]

#: The user-metadata name under which s3func stores the hex SHA-256 of an object's content.
SHA256_METADATA = "s3func-sha256"
#: The user-metadata name under which s3func stores the CRC-32 (8 hex digits) of the content:
#: verifying a download with it costs a fraction of a SHA-256 (~4 vs ~1.8 GB/s).
CRC32_METADATA = "s3func-crc32"

#: Checksums that can verify a whole object, cheapest first (only the first one known is used).
CHECKSUM_PREFERENCE = ("crc32", "sha256", "sha1", "md5")

_CHUNK = 1 << 20
_QUEUE = 8
#: Hash on a helper thread when the machine has at least this many CPUs and the body is at
#: least _BACKGROUND_MIN bytes. On the 2-core benchmark machine, with the server on the same
#: cores, a helper thread was slower than hashing inline (streamed 1 GiB GETs, quiet
#: machine, medians of 6 rounds: 589 vs 633 MB/s; no core is free to overlap with), so
#: small machines hash inline.
_BACKGROUND_MIN_CPUS = 4
_BACKGROUND_MIN = 16 << 20
_BODY_ERRORS = (OSError, HTTPException, u3e.HTTPError)


@functools.cache
def crc32_function() -> Callable[[Any, int], int]:
    """The fastest CRC-32 available: ``crc32(data, value) -> int``, same values as zlib's.

    ISA-L's (the ``fast`` extra, package ``isal``) uses the CPU's carry-less multiply and
    runs about 4x faster than zlib 1.2's here (12 vs 3 GB/s); without it, :func:`zlib.crc32`.
    Both release the GIL on large buffers. Looked up once, on first use.
    """
    try:
        from isal.isal_zlib import crc32
    except ImportError:
        return zlib.crc32
    return crc32


class _Crc32:
    """A CRC-32 behind the ``hashlib`` interface (``update``/``hexdigest``)."""

    __slots__ = ("_crc32", "value")
    name = "crc32"

    def __init__(self) -> None:
        self.value = 0
        self._crc32 = crc32_function()

    def update(self, data: Any) -> None:
        self.value = self._crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")

    def hexdigest(self) -> str:
        return f"{self.value:08x}"


@functools.lru_cache(maxsize=8)
def _crc32_shift(length: int) -> tuple[int, ...]:
    """The linear map "append ``length`` zero bytes" on CRC-32 registers, as 32 columns.

    Column ``i`` is the image of the register with only bit ``i`` set. The one-byte map is
    measured with ``zlib`` itself; longer ones are composed by repeated squaring, so the
    cost is logarithmic in ``length`` (a few milliseconds for any size, once per length).
    """
    zero = zlib.crc32(b"\0")
    step = tuple(zlib.crc32(b"\0", 1 << i) ^ zero for i in range(32))
    result = tuple(1 << i for i in range(32))  # identity
    while length:
        if length & 1:
            result = tuple(_gf2_apply(step, column) for column in result)
        length >>= 1
        if length:
            step = tuple(_gf2_apply(step, column) for column in step)
    return result


def _gf2_apply(columns: tuple[int, ...], vector: int) -> int:
    out = 0
    i = 0
    while vector:
        if vector & 1:
            out ^= columns[i]
        vector >>= 1
        i += 1
    return out


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """The CRC-32 of ``A + B`` from ``crc32(A)``, ``crc32(B)`` and ``len(B)`` (zlib's own).

    Lets ranges of one object be checksummed on separate threads as they arrive.
    """
    if length2 <= 0:
        return crc1
    return _gf2_apply(_crc32_shift(length2), crc1) ^ crc2


def crc32_concat(pieces: Iterable[tuple[int, int]]) -> int:
    """The CRC-32 of consecutive pieces from their ``(crc32, length)`` pairs, in order."""
    total = 0  # the CRC-32 of nothing
    for crc, length in pieces:
        total = crc32_combine(total, crc, length)
    return total


def new_hasher(algorithm: str) -> Any:
    """Return a fresh hasher (``update``, ``digest``, ``hexdigest``) for ``algorithm``.

    Args:
        algorithm: ``"crc32"`` or any :mod:`hashlib` name (``"md5"``, ``"sha1"``, ``"sha256"``).
    """
    if algorithm == "crc32":
        return _Crc32()
    return hashlib.new(algorithm)


class _BackgroundHasher:
    """Feeds a hasher from a helper thread, so hashing overlaps the network reads.

    ``hashlib`` releases the GIL on large updates, so on a machine with cores to spare the
    check costs little wall time. At most ``_QUEUE`` chunks wait (bounded memory); chunks
    must be immutable ``bytes``.
    """

    def __init__(self, hasher: Any) -> None:
        self.name = hasher.name
        self._hasher = hasher
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUE)
        self._thread = threading.Thread(target=self._run, name="s3func-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            self._hasher.update(chunk)

    def update(self, data: Any) -> None:
        self._queue.put(data if isinstance(data, bytes) else bytes(data))

    def hexdigest(self) -> str:
        self._queue.put(None)
        self._thread.join()
        value: str = self._hasher.hexdigest()
        return value

    def cancel(self) -> None:
        # Never blocks: the helper ends after the chunks already queued.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)


class ObjectResponse(io.BufferedIOBase):
    """The result of ``get_object``: a readable binary file object plus the object's fields.

    Use it as a context manager (or call :meth:`close`) so its connection goes back to the
    pool::

        with session.get_object("big.csv.gz") as resp:
            with gzip.open(resp, "rt", newline="") as text:
                for row in csv.reader(text):
                    ...

    Iterating yields chunks of bytes (up to 1 MiB), not lines; wrap it in
    :class:`io.TextIOWrapper` for lines. ``resp.data`` reads whatever is left and returns
    it (and keeps it), so ``session.get_object(key).data`` works on streamed and preloaded
    responses alike.

    Verification and resumption are described in the module documentation. Errors raised
    while reading: :class:`~s3func.errors.IntegrityError` (size or checksum mismatch, at the
    end of the body), :class:`~s3func.errors.PreconditionFailedError` (the object changed
    while it was being read), and the transport error that ended the last resume attempt
    when ``max_resumes`` attempts in a row made no progress.

    Not thread-safe (like any file object).

    Attributes:
        status: The HTTP status (200, or 206 for a range).
        headers: The response headers.
        key: The object key.
        etag: The ETag without quotes.
        version_id: The version id, when the backend has one.
        content_length: The length of this body (the range length for a ranged GET).
        content_type: The content type.
        last_modified: Aware UTC datetime.
        metadata: User metadata (lower-case names).
        object_size: The size of the whole object, when known.
        offset: The byte offset of this body within the object.
        bytes_read: Bytes delivered to the caller so far.
        resumes: How many times the body was re-requested after a failure.
        known_checksums: Checksums of the whole object known from the response, by
            algorithm (hex), whether or not this body is the whole object.
        checksum: ``(algorithm, expected hex)`` of the check that will run at the end of a
            whole-object read, or ``None`` (ranged reads, multipart objects without an
            ``s3func-sha256``, ``verify=False``).
    """

    _served = 0

    def __init__(
        self,
        raw: urllib3.HTTPResponse | None,
        *,
        status: int,
        headers: Any,
        key: str | None,
        etag: str | None = None,
        version_id: str | None = None,
        content_length: int | None = None,
        content_type: str | None = None,
        last_modified: _dt.datetime | None = None,
        metadata: dict[str, str] | None = None,
        object_size: int | None = None,
        offset: int = 0,
        checksums: Mapping[str, str] | None = None,
        reopen: Reopen | None = None,
        max_resumes: int = 5,
        data: bytes | None = None,
        verify: bool = True,
    ) -> None:
        super().__init__()
        self._raw = raw
        self._fp: Any = _body_of(raw)
        self.status = status
        self.headers = headers
        self.key = key
        self.etag = etag
        self.version_id = version_id
        self.content_length = content_length
        self.content_type = content_type
        self.last_modified = last_modified
        self.metadata: dict[str, str] = metadata if metadata is not None else {}
        self.object_size = object_size if object_size is not None else (
            content_length if offset == 0 and status == 200 else None
        )
        self.offset = offset
        self.bytes_read = 0
        self.resumes = 0
        self._stalls = 0
        self._reopen = reopen
        self._max_resumes = max_resumes
        self._data: bytes | None = None
        self._eof = False
        self._failed: S3FuncError | None = None
        self.checksum: tuple[str, str] | None = None
        self._hasher: Any = None
        known = {k: v.lower() for k, v in (checksums or {}).items() if v}
        sha256 = self.metadata.get(SHA256_METADATA)
        if sha256 and len(sha256) == 64:
            known.setdefault("sha256", sha256.lower())
        crc32 = self.metadata.get(CRC32_METADATA)
        if crc32 and len(crc32) == 8:
            known.setdefault("crc32", crc32.lower())
        self.known_checksums: dict[str, str] = known
        if verify:
            self._start_verification(background=data is None)
        if data is not None:
            # A preloaded body: verify it at once.
            self._raw = self._fp = None
            self._data = data
            self._account(data)
            if not self._eof:
                self._short_read()

    def _start_verification(self, *, background: bool = True) -> None:
        """Pick the checksum to verify (before the first byte is read)."""
        if self._hasher is not None or self.bytes_read or not self._whole_object():
            return
        for algorithm in CHECKSUM_PREFERENCE:
            expected = self.known_checksums.get(algorithm)
            if expected:
                self.checksum = (algorithm, expected)
                self._hasher = new_hasher(algorithm)
                if (
                    background
                    and (self.content_length or 0) >= _BACKGROUND_MIN
                    and (os.cpu_count() or 1) >= _BACKGROUND_MIN_CPUS
                ):
                    self._hasher = _BackgroundHasher(self._hasher)
                return

    def _set_verify(self, enabled: bool) -> None:
        """Turn the checksum on or off for this body (callers that decide themselves)."""
        if enabled:
            self._start_verification()
        else:
            self._no_verify()

    def _no_verify(self) -> None:
        """Skip the checksum (the length is still checked): for callers that verify."""
        hasher, self._hasher = self._hasher, None
        self.checksum = None
        if isinstance(hasher, _BackgroundHasher):
            hasher.cancel()

    def _whole_object(self) -> bool:
        if self.offset != 0 or self.status not in (200, 206):
            return False
        if self.object_size is None:  # no Content-Range: a 200 is the object
            return self.status == 200
        # Some servers (rclone serve s3) answer ranges with a 200 and a Content-Range.
        return self.content_length == self.object_size

    # -- fields --------------------------------------------------------------------------

    @property
    def data(self) -> bytes:
        """The whole (remaining) body as bytes; reads and closes the stream when needed."""
        if self._data is None:
            if self.closed:
                raise ValueError("I/O operation on closed file")
            try:
                self._data = self.read()
            finally:
                self.close()
        return self._data

    def to_response(self) -> Response:
        """Return the fields (and data) as a plain :class:`~s3func.models.Response`."""
        return Response(
            status=self.status,
            headers=self.headers,
            key=self.key,
            etag=self.etag,
            version_id=self.version_id,
            content_length=self.content_length,
            content_type=self.content_type,
            last_modified=self.last_modified,
            metadata=self.metadata,
            data=self.data,
        )

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.bytes_read} bytes read"
        return f"<ObjectResponse key={self.key!r} status={self.status} {state}>"

    # -- io protocol -----------------------------------------------------------------------

    def readable(self) -> bool:
        """Return True: the body can be read."""
        return True

    def seekable(self) -> bool:
        """Return False: a network body cannot seek (use ``get_object(offset=...)``)."""
        return False

    def tell(self) -> int:
        """Return how many bytes of this body were delivered so far."""
        self._check_open()
        return self._served if self._data is not None else self.bytes_read

    @property
    def remaining(self) -> int | None:
        """Bytes of this body not delivered yet, when the length is known."""
        if self._data is not None:
            return len(self._data) - self._served
        if self.content_length is None:
            return None if not self._eof else 0
        return self.content_length - self.bytes_read

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left when ``size`` is negative or None).

        Fewer bytes come back only at the end of the body.
        """
        self._check_open()
        if self._data is not None:
            return self._serve(size)
        if size is None or size < 0:
            return self._read_all()
        if size == 0:
            return b""
        return self._read_some(size, one_call=False)

    def read1(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes with at most one read from the connection."""
        self._check_open()
        if self._data is not None:
            return self._serve(_CHUNK if size is None or size < 0 else size)
        if size == 0:
            return b""
        return self._read_some(_CHUNK if size is None or size < 0 else size, one_call=True)

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Read bytes straight into a writable buffer and return how many were read.

        The buffer is filled completely unless the body ends first; no intermediate copy is
        made.
        """
        return self._readinto_buffer(buffer, one_call=False)

    def readinto1(self, buffer: WriteableBuffer) -> int:
        """Like :meth:`readinto`, with at most one read from the connection."""
        return self._readinto_buffer(buffer, one_call=True)

    def _readinto_buffer(self, buffer: WriteableBuffer, *, one_call: bool) -> int:
        self._check_open()
        view = memoryview(buffer).cast("B")
        if not len(view):
            return 0
        if self._data is not None:
            chunk = self._serve(len(view))
            view[: len(chunk)] = chunk
            return len(chunk)
        return self._readinto(view, one_call=one_call)

    def __iter__(self) -> Iterator[bytes]:
        """Iterate over the body in chunks of up to 1 MiB (not lines)."""
        return self.iter_chunks()

    def __next__(self) -> bytes:
        chunk = self.read(_CHUNK)
        if not chunk:
            raise StopIteration
        return chunk

    def iter_chunks(self, chunk_size: int = _CHUNK) -> Iterator[bytes]:
        """Yield the body in chunks of up to ``chunk_size`` bytes, then close."""
        try:
            while True:
                chunk = self.read(chunk_size)
                if not chunk:
                    return
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        """Release the connection: back to the pool if fully read, else discard it.

        Never waits for the server: unread data is not drained.
        """
        if self.closed:
            return
        self._drop_connection()
        hasher, self._hasher = self._hasher, None
        if isinstance(hasher, _BackgroundHasher):
            hasher.cancel()
        super().close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        if self._failed is not None:
            raise self._failed

    # -- internals -------------------------------------------------------------------------

    def _serve(self, size: int | None) -> bytes:
        assert self._data is not None
        start = self._served
        end = len(self._data) if size is None or size < 0 else start + size
        whole = start == 0 and end >= len(self._data)
        chunk = self._data if whole else self._data[start:end]
        self._served = start + len(chunk)
        return chunk

    def _want(self, size: int) -> int:
        """Clamp a read size to what is left of the body (0 at the end)."""
        if self._eof:
            return 0
        if self.content_length is not None:
            return min(size, self.content_length - self.bytes_read)
        return size

    def _read_all(self) -> bytes:
        left = self._want(1 << 62)
        if left == 0:
            self._at_end()
            return b""
        if self.content_length is not None:
            first = self._read_some(left, one_call=False)
            if not first or self._eof:
                return first
            parts = [first]
        else:
            parts = []
        while True:
            chunk = self._read_some(_CHUNK * 8, one_call=False)
            if not chunk:
                break
            parts.append(chunk)
        return b"".join(parts)

    def _read_some(self, size: int, *, one_call: bool) -> bytes:
        while True:
            want = self._want(size)
            if want == 0:
                self._at_end()
                return b""
            fp = self._fp
            try:
                chunk = fp.read1(want) if one_call else fp.read(want)
            except _BODY_ERRORS as exc:
                self._body_failed(exc)
                continue
            if chunk:
                self._account(chunk)
                return bytes(chunk) if not isinstance(chunk, bytes) else chunk
            self._short_read()

    def _readinto(self, view: memoryview, *, one_call: bool) -> int:
        while True:
            want = self._want(len(view))
            if want == 0:
                self._at_end()
                return 0
            target = view if want == len(view) else view[:want]
            fp = self._fp
            try:
                if one_call and hasattr(fp, "readinto1"):
                    n = fp.readinto1(target)
                else:
                    n = fp.readinto(target)
            except _BODY_ERRORS as exc:
                self._body_failed(exc)
                continue
            if n:
                self._account(target[:n])
                return int(n)
            self._short_read()

    def _account(self, chunk: Any) -> None:
        """Count and hash delivered bytes; finish the body when the last byte arrived."""
        self.bytes_read += len(chunk)
        self._stalls = 0
        if self._hasher is not None:
            self._hasher.update(chunk)
        if self.content_length is not None and self.bytes_read >= self.content_length:
            self._finish()

    def _at_end(self) -> None:
        """Handle an empty read: the natural end (unknown length) or nothing left."""
        if not self._eof:
            self._finish()

    def _short_read(self) -> None:
        """The body ended (an empty read) before its announced length."""
        expected = self.content_length
        if expected is None:
            self._finish()
            return
        err = IncompleteBodyError(
            f"GET {self.key}: body ended after {self.bytes_read} of {expected} bytes",
            key=self.key,
        )
        err.expected, err.received = expected, self.bytes_read
        self._resume_or_raise(err)

    def _body_failed(self, exc: BaseException) -> None:
        if isinstance(exc, (TimeoutError, u3e.ReadTimeoutError)):
            err: TransportError = TransportTimeout(
                f"GET {self.key}: read timeout after {self.bytes_read} bytes of the body "
                f"({type(exc).__name__})",
                key=self.key,
            )
        else:
            err = IncompleteBodyError(
                f"GET {self.key}: connection broken after {self.bytes_read} bytes of the body "
                f"({type(exc).__name__}: {exc})",
                key=self.key,
            )
            err.expected, err.received = self.content_length, self.bytes_read
        err.__cause__ = exc
        self._resume_or_raise(err)

    def _finish(self) -> None:
        """The last byte arrived: release the connection, then check size and checksum."""
        self._eof = True
        self._drop_connection()
        expected = self.content_length
        if expected is not None and self.bytes_read != expected:
            err = IntegrityError(
                f"GET {self.key}: received {self.bytes_read} bytes, expected {expected}",
                key=self.key,
            )
            err.algorithm, err.expected, err.actual = "size", str(expected), str(self.bytes_read)
            self._fail(err)
        if self._hasher is not None and self.checksum is not None:
            algorithm, want = self.checksum
            got = self._hasher.hexdigest()
            self._hasher = None
            if got != want:
                err = IntegrityError(
                    f"GET {self.key}: the {algorithm} of the {self.bytes_read} bytes received is "
                    f"{got}, expected {want}: the data was corrupted in transit or at rest",
                    key=self.key,
                )
                err.algorithm, err.expected, err.actual = algorithm, want, got
                self._fail(err)

    def _fail(self, err: S3FuncError) -> NoReturn:
        self._failed = err
        raise err

    def _drop_connection(self) -> None:
        raw, self._raw = self._raw, None
        self._fp = None
        if raw is not None:
            _release(raw, fully_read=self._eof)

    def _resume_or_raise(self, err: TransportError) -> None:
        self._drop_connection()
        if self._reopen is None or self._stalls >= self._max_resumes:
            if self.resumes:
                err.message = f"{err.message} (gave up after {self.resumes} resumes)"
                err.args = (err.message,)
            self._fail(err)
        self._stalls += 1
        self.resumes += 1
        position = self.offset + self.bytes_read
        log.info(
            "resuming GET %s at byte %d after %s (resume %d)",
            self.key, position, type(err).__name__, self.resumes,
        )
        try:
            raw = self._reopen(position)
        except (PreconditionFailedError, NotFoundError) as exc:
            self._fail(self._changed(exc, position))
        except TransportError as exc:
            # The reopen request itself exhausted its retries.
            exc.message = f"{exc.message} (while resuming GET {self.key} at byte {position})"
            exc.args = (exc.message,)
            self._fail(exc)
        problem = self._check_reopened(raw, position)
        if problem is not None:
            _release(raw, fully_read=False)
            self._fail(problem)
        self._raw = raw
        self._fp = _body_of(raw)

    def _changed(self, exc: ServiceError, position: int) -> ServiceError:
        what = "was deleted" if isinstance(exc, NotFoundError) else "changed"
        exc.message = (
            f"GET {self.key}: the object {what} while it was being read (ETag was "
            f"{self.etag!r}); {self.bytes_read} bytes were read, resuming at byte {position} "
            f"failed: {exc.message}"
        )
        exc.args = (exc.message,)
        return exc

    def _check_reopened(self, raw: urllib3.HTTPResponse, position: int) -> S3FuncError | None:
        h = raw.headers
        etag = (h.get("etag") or "").strip().strip('"') or None
        if self.etag and etag and etag != self.etag:
            return PreconditionFailedError(
                f"GET {self.key}: the object changed while it was being read (ETag "
                f"{self.etag!r} became {etag!r})",
                key=self.key,
                status=raw.status,
            )
        if raw.status == 206 or (raw.status == 200 and h.get("content-range")):
            start, total = _content_range(h.get("content-range"))
            if start is not None and start != position:
                return IncompleteBodyError(
                    f"GET {self.key}: the server resumed at byte {start}, not {position}",
                    key=self.key,
                    retryable=False,
                )
            if self.object_size is not None and total is not None and total != self.object_size:
                return PreconditionFailedError(
                    f"GET {self.key}: the object changed while it was being read (size "
                    f"{self.object_size} became {total})",
                    key=self.key,
                    status=raw.status,
                )
            return None
        if raw.status == 200 and position == 0:
            return None
        return IncompleteBodyError(
            f"GET {self.key}: the server answered a resume request with HTTP {raw.status} "
            "instead of a range (206); cannot resume",
            key=self.key,
            retryable=False,
        )


def _body_of(raw: Any) -> Any:
    """The object to read the body from: http.client's response under urllib3's wrapper.

    Reading from it directly (rather than through ``urllib3.HTTPResponse.read``) lets
    ``readinto`` fill the caller's buffer with no intermediate copy; the length accounting
    urllib3 would do is done here instead.
    """
    if raw is None:
        return None
    fp = getattr(raw, "_fp", None)
    if fp is not None and hasattr(fp, "readinto"):
        return fp
    return raw


def body_range(
    headers: Mapping[str, str], key: str, requested: int | None
) -> tuple[int | None, int, int | None]:
    """Where a GET's body lies in the object: ``(body length, offset, object size)``.

    The position comes from ``Content-Range`` whenever there is one: on a 206, and on the
    200 that some servers (``rclone serve s3``) send for a range. Without one the body is
    the object from its first byte.

    Raises:
        NotSupportedError: a range starting at ``requested`` was asked for and the body
            starts elsewhere (a server that ignores ``Range``).
    """
    text = headers.get("content-length")
    length = int(text) if text and text.isdigit() else None
    content_range = headers.get("content-range")
    if content_range:
        start, size = _content_range(content_range)
        offset = start or 0
    else:
        offset, size = 0, length
    if requested is not None and offset != requested:
        raise NotSupportedError(
            f"GET {key}: asked for bytes from {requested}, the server sent a body starting at "
            f"byte {offset} (it does not support ranges)",
            key=key,
        )
    return length, offset, size


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """Parse ``bytes START-END/TOTAL`` into (START, TOTAL) (``None`` for unknown parts)."""
    if not value or not value.startswith("bytes "):
        return None, None
    spec = value[6:]
    span, _, total = spec.partition("/")
    first = span.partition("-")[0]
    return (
        int(first) if first.isdigit() else None,
        int(total) if total.isdigit() else None,
    )


def _release(raw: urllib3.HTTPResponse, *, fully_read: bool) -> None:
    """Return a connection to its pool, or close it first when data is left unread."""
    try:
        if not fully_read:
            raw.close()
        raw.release_conn()
    except (u3e.HTTPError, OSError):  # pragma: no cover - best effort cleanup
        raw.close()
        raw.release_conn()
