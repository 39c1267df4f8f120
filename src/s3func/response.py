"""``ObjectResponse``: the body of a GET as a real, verified, resumable binary file object."""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from urllib3 import exceptions as u3e

from ._http import translate_exception
from .errors import IncompleteBodyError, IntegrityError, S3FuncError, TransportError
from .models import Response

if TYPE_CHECKING:
    import datetime as _dt

    import urllib3
    from _typeshed import WriteableBuffer

__all__ = ["ObjectResponse"]

log = logging.getLogger("s3func")

#: Reopen the object from a byte offset (absolute, in the object); returns an unread response.
Reopen = Callable[[int], "urllib3.HTTPResponse"]

_DRAIN_LIMIT = 64 * 1024
_CHUNK = 1 << 20


class ObjectResponse(io.BufferedIOBase):
    """The result of ``get_object``: a readable binary file object plus the object's fields.

    Use it as a context manager (or call :meth:`close`) so its connection goes back to the
    pool::

        with session.get_object("big.csv") as resp:
            for chunk in resp:          # chunks of bytes
                ...

    ``resp.data`` reads whatever is left and returns it (and is cached), so the seed's
    ``session.get_object(key).data`` works on streamed and preloaded responses alike.

    At the end of the stream the byte count is checked, and when the whole object was read
    its checksum is checked too (the MD5 of a single-part ETag, B2's SHA-1), raising
    :class:`~s3func.errors.IntegrityError` instead of returning corrupt data. A connection
    that breaks mid-body is resumed with a ranged request pinned to the same object version.

    Attributes:
        status, headers, key, etag, version_id, content_length, content_type, last_modified,
        metadata: As on :class:`~s3func.models.Response`. ``content_length`` is the length of
        this body (the range length for a ranged GET).
        object_size: The size of the whole object, when known.
        offset: The byte offset of this body within the object.
        bytes_read: Bytes delivered to the caller so far.
        resumes: How many times the download was resumed after a failure.
    """

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
        checksums: dict[str, str] | None = None,
        reopen: Reopen | None = None,
        max_resumes: int = 5,
        data: bytes | None = None,
    ) -> None:
        super().__init__()
        self._raw = raw
        self.status = status
        self.headers = headers
        self.key = key
        self.etag = etag
        self.version_id = version_id
        self.content_length = content_length
        self.content_type = content_type
        self.last_modified = last_modified
        self.metadata: dict[str, str] = metadata if metadata is not None else {}
        self.object_size = object_size
        self.offset = offset
        self.bytes_read = 0
        self.resumes = 0
        self._reopen = reopen
        self._max_resumes = max_resumes
        self._data: bytes | None = None
        self._hashers: list[tuple[str, Any, str]] = []
        for algorithm, expected in (checksums or {}).items():
            self._hashers.append((algorithm, hashlib.new(algorithm), expected.lower()))
        self._eof = False
        if data is not None:
            # A preloaded body: verify it at once.
            self._data = data
            self._raw = None
            self.bytes_read = len(data)
            self._update(data)
            self._finish()

    # -- fields --------------------------------------------------------------------------

    @property
    def data(self) -> bytes:
        """The whole (remaining) body as bytes; reads and closes the stream when needed."""
        if self._data is None:
            if self.closed:
                raise ValueError("I/O operation on closed file")
            self._data = self.read()
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

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left when ``size`` is negative or None)."""
        self._check_open()
        if self._data is not None:
            # Preloaded (or already drained through .data): serve from memory.
            start = self._served
            end = len(self._data) if size is None or size < 0 else start + size
            chunk = self._data[start:end]
            self._served = start + len(chunk)
            return chunk
        if size is None or size < 0:
            parts = []
            while True:
                chunk = self._read_some(_CHUNK)
                if not chunk:
                    break
                parts.append(chunk)
            return b"".join(parts)
        if size == 0:
            return b""
        return self._read_some(size)

    _served = 0

    def read1(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes with at most one read from the connection."""
        return self.read(_CHUNK if size is None or size < 0 else size)

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Read bytes into a writable buffer and return how many were read."""
        view = memoryview(buffer).cast("B")
        chunk = self.read(len(view))
        n = len(chunk)
        view[:n] = chunk
        return n

    readinto1 = readinto

    def __iter__(self) -> Iterator[bytes]:
        """Iterate over the body in chunks of up to 1 MiB (not lines)."""
        return self.iter_chunks()

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
        """Release the connection: back to the pool if fully read, else discard it."""
        if self.closed:
            return
        raw, self._raw = self._raw, None
        if raw is not None:
            _release(raw, fully_read=self._eof)
        super().close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    # -- internals -------------------------------------------------------------------------

    def _read_some(self, size: int) -> bytes:
        while True:
            raw = self._raw
            if raw is None or self._eof:
                return b""
            try:
                chunk = raw.read(size)
            except (u3e.HTTPError, OSError) as exc:
                err = translate_exception(exc, method="GET", url=self.key)
                self._resume_or_raise(err)
                continue
            if chunk:
                self.bytes_read += len(chunk)
                self._update(chunk)
                return chunk
            expected = self.content_length
            if expected is not None and self.bytes_read < expected:
                short = IncompleteBodyError(
                    f"GET {self.key}: body ended after {self.bytes_read} of {expected} bytes",
                    key=self.key,
                )
                short.expected, short.received = expected, self.bytes_read
                self._resume_or_raise(short)
                continue
            self._eof = True
            self._finish()
            return b""

    def _update(self, chunk: bytes) -> None:
        for _, hasher, _ in self._hashers:
            hasher.update(chunk)

    def _finish(self) -> None:
        expected = self.content_length
        if expected is not None and self.bytes_read != expected:
            err = IntegrityError(
                f"GET {self.key}: received {self.bytes_read} bytes, expected {expected}",
                key=self.key,
            )
            err.algorithm, err.expected, err.actual = "size", str(expected), str(self.bytes_read)
            raise err
        for algorithm, hasher, want in self._hashers:
            got = hasher.hexdigest()
            if got != want:
                err = IntegrityError(
                    f"GET {self.key}: {algorithm} of the received data is {got}, "
                    f"expected {want}: the data was corrupted in transit",
                    key=self.key,
                )
                err.algorithm, err.expected, err.actual = algorithm, want, got
                raise err

    def _resume_or_raise(self, err: S3FuncError) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            _release(raw, fully_read=False)
        if self._reopen is None or self.resumes >= self._max_resumes:
            if isinstance(err, TransportError) and self.resumes:
                err.message = f"{err.message} (after {self.resumes} resumes)"
            raise err
        self.resumes += 1
        position = self.offset + self.bytes_read
        log.info("resuming GET %s at byte %d after %s", self.key, position, type(err).__name__)
        self._raw = self._reopen(position)


def _release(raw: urllib3.HTTPResponse, *, fully_read: bool) -> None:
    """Return a connection to its pool, draining a small remainder or discarding it."""
    try:
        if not fully_read:
            remaining = raw.length_remaining
            if remaining is not None and remaining <= _DRAIN_LIMIT:
                raw.drain_conn()
            else:
                raw.close()
        raw.release_conn()
    except (u3e.HTTPError, OSError):  # pragma: no cover - best effort cleanup
        raw.close()
        raw.release_conn()
