"""Large transfers on top of the session primitives: multipart uploads, parallel downloads.

Nothing here speaks S3 or B2: uploads use the four ``_mpu_*`` primitives of
:class:`~s3func.session.BaseSession` and downloads use ``get_object`` with ranges, so every
backend gets the same engine.

Uploads (:func:`put_large`, :func:`upload_path`)
    * The input becomes a :class:`Source`: memory (``bytes``, ``bytearray``, ``memoryview``,
      ``BytesIO``) is sliced without copies; a regular file is read by offset (``pread``),
      one network block (1 MiB) at a time per connection, never whole; another seekable
      file is read by offset under a lock; anything else is a stream of unknown length.
    * Known size: a pre-pass computes the SHA-256 of the whole content (stored as the
      ``s3func-sha256`` user metadata, which must be known when the upload is created) and,
      on a second core at the same time, the per-part digests the backend needs (the SigV4
      payload hash over plain HTTP, B2's SHA-1) and per-part CRC-32s, combined into the
      stored ``s3func-crc32``, so that the upload itself hashes nothing.
    * Unknown size: parts are read into buffers one after the other (at most ``concurrency``
      buffers exist at once: memory is about ``concurrency * part_size``), hashed as they
      are read, and the SHA-256 is stored after completion with a server-side copy onto
      the object itself (objects up to 5 GiB, the copy limit).
    * Parts go up on ``concurrency`` threads, each retried on its own by the transport;
      on any failure (or Ctrl-C) the upload is aborted after the parts in flight end, so no
      parts are left behind.

Downloads (:func:`download`)
    A first ranged GET returns the size, ETag, version and metadata; the other ranges are
    fetched on threads, pinned to that version (``If-Match``/version id), and written with
    ``pwrite`` into a temporary file beside the target. A CRC-32 (the stored
    ``s3func-crc32``) is computed per range as the bytes arrive and the range values are
    combined; another checksum (stored SHA-256, B2's SHA-1, a single-part MD5) is computed
    on a thread that follows the contiguous written prefix. Only when size and checksum
    match is the file renamed over the target, so a failed download never touches an
    existing file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, cast

from ._localfs import copy_mode, create_temp, unlink_quietly
from .errors import (
    ConfigurationError,
    IncompleteBodyError,
    IntegrityError,
    InvalidRangeError,
    PreconditionFailedError,
    S3FuncError,
)
from .models import Response
from .progress import Meter, ProgressLike, Tracker, make_tracker
from .response import (
    CHECKSUM_PREFERENCE,
    CRC32_METADATA,
    SHA256_METADATA,
    ObjectResponse,
    crc32_concat,
    crc32_function,
    new_hasher,
)

if TYPE_CHECKING:
    from .session import BaseSession

__all__ = [
    "MAX_COPY_SIZE",
    "ContentHash",
    "PartReader",
    "Source",
    "as_source",
    "choose_part_size",
    "download",
    "is_seekable",
    "prepass",
    "put_large",
    "upload_path",
]

log = logging.getLogger("s3func")

MiB = 1 << 20
#: Objects up to this size can be copied server-side in one request (S3 and B2).
MAX_COPY_SIZE = 5 * 1024 * MiB
_BLOCK = MiB  # network block, pre-pass block, download buffer
_HASH_WINDOW = 4 * MiB  # download_file's checksum maps the file this much at a time
_Chunk = bytes | memoryview

# -- positional file I/O (os.pread/pwrite, or a lock + lseek where they do not exist) --------

_SEEK_LOCK = threading.Lock()


def _pread(fd: int, size: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    with _SEEK_LOCK:  # pragma: no cover - Windows
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, size)


def _pwrite(fd: int, data: memoryview, offset: int) -> None:
    while len(data):
        if hasattr(os, "pwrite"):
            n = os.pwrite(fd, data, offset)
        else:  # pragma: no cover - Windows
            with _SEEK_LOCK:
                os.lseek(fd, offset, os.SEEK_SET)
                n = os.write(fd, data)
        data = data[n:]
        offset += n


def _preadinto(fd: int, view: memoryview, offset: int) -> int:
    if hasattr(os, "preadv"):
        return os.preadv(fd, [view], offset)
    chunk = _pread(fd, len(view), offset)  # pragma: no cover - no preadv
    view[: len(chunk)] = chunk  # pragma: no cover
    return len(chunk)  # pragma: no cover


# -- part bodies -----------------------------------------------------------------------------


class PartReader(io.RawIOBase):
    """One upload body: a window of a :class:`Source`, read in network-sized blocks.

    Backends receive it as the ``body`` of ``_mpu_upload_part`` (and S3's ``put_object``
    for single-part uploads from ``upload_file``). It is seekable, so the transport can
    rewind it for a retry, and it reports the bytes it hands to the connection to the
    transfer's progress meter (a rewind starts a new attempt; only bytes past the best
    earlier attempt are counted).

    Attributes:
        size: The body length in bytes.
        digests: Hex digests of this body already computed (``{"sha256": ...}``), so a
            backend can sign or checksum it without another pass.
    """

    def __init__(
        self,
        fetch: Callable[[int, int], _Chunk],
        size: int,
        *,
        view: memoryview | None = None,
        digests: dict[str, str] | None = None,
        meter: Meter | None = None,
        release: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self._fetch = fetch
        self.size = size
        self._view = view
        self.digests: dict[str, str] = digests if digests is not None else {}
        self._meter = meter
        self._pos = 0
        self._pending = 0
        self._release = release

    @classmethod
    def from_view(cls, view: memoryview, **kwargs: Any) -> PartReader:
        """A body over bytes in memory (sliced, never copied)."""

        def fetch(pos: int, n: int) -> _Chunk:
            return view[pos : pos + n]

        return cls(fetch, len(view), view=view, **kwargs)

    def __len__(self) -> int:
        return self.size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence == io.SEEK_END:
            offset += self.size
        if offset < 0:
            raise ValueError("negative seek position")
        if offset < self._pos:
            # Sent again from here: a new attempt.
            self._pending = 0
            if self._meter is not None and offset == 0:
                self._meter.restart()
        self._pos = offset
        return offset

    def read(self, size: int | None = -1) -> _Chunk:
        """Return up to ``size`` bytes (a memoryview slice for in-memory sources)."""
        left = self.size - self._pos
        n = left if size is None or size < 0 else min(size, left)
        # The previous block went out: urllib3 asks for the next one after sendall().
        self._count()
        if n <= 0:
            return b""
        chunk = self._fetch(self._pos, n)
        if not chunk:
            raise IncompleteBodyError(
                f"the upload source ended {left} bytes early (file truncated while uploading?)",
                retryable=False,
            )
        self._pos += len(chunk)
        self._pending = len(chunk)
        return chunk

    def as_bytes(self, limit: int) -> bytes | None:
        """The whole body as ``bytes`` when it is in memory, unmetered and at most ``limit``.

        Lets a backend send a small body in one piece (and reuse :attr:`digests`) instead of
        streaming it block by block; ``None`` otherwise.
        """
        if self._view is None or self._meter is not None or self.size > limit:
            return None
        return bytes(self._view)

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(memoryview(buffer)))
        n = len(chunk)
        memoryview(buffer).cast("B")[:n] = chunk
        return n

    def _count(self) -> None:
        if self._pending and self._meter is not None:
            self._meter.sent(self._pending)
        self._pending = 0

    def finished(self) -> None:
        """The server acknowledged this body: count its last block."""
        self._count()

    def hexdigest(self, algorithm: str) -> str:
        """Return the hex digest of the whole body (cached), without counting progress."""
        known = self.digests.get(algorithm)
        if known is not None:
            return known
        hasher = new_hasher(algorithm)
        if self._view is not None:
            hasher.update(self._view)
        else:
            pos = 0
            while pos < self.size:
                chunk = self._fetch(pos, min(_BLOCK, self.size - pos))
                if not chunk:
                    raise IncompleteBodyError(
                        "the upload source ended early while hashing", retryable=False
                    )
                hasher.update(chunk)
                pos += len(chunk)
        value: str = hasher.hexdigest()
        self.digests[algorithm] = value
        return value

    def digest(self, algorithm: str) -> bytes:
        """Return the binary digest of the whole body (from :meth:`hexdigest`)."""
        return bytes.fromhex(self.hexdigest(algorithm))

    def close(self) -> None:
        release, self._release = self._release, None
        self._view = None
        if release is not None:
            release()
        super().close()


# -- sources ---------------------------------------------------------------------------------


class Source:
    """Where upload data comes from.

    Attributes:
        size: Bytes to upload, or ``None`` for a stream of unknown length.
    """

    size: int | None = None

    def fetch(self, offset: int, n: int) -> _Chunk:
        """Return up to ``n`` bytes at ``offset`` (relative to the start of the data)."""
        raise NotImplementedError

    def reader(self, offset: int, size: int, **kwargs: Any) -> PartReader:
        """Return a body for ``size`` bytes from ``offset``."""
        base = offset

        def fetch(pos: int, n: int) -> _Chunk:
            return self.fetch(base + pos, n)

        return PartReader(fetch, size, **kwargs)

    def read_part(self, size: int) -> bytearray:
        """Streams only: read the next ``size`` bytes (fewer at the end)."""
        raise NotImplementedError

    def fingerprint(self) -> tuple[int, int] | None:
        """(size, mtime_ns) of a local file, to detect a change during the upload."""
        return None

    def close(self) -> None:
        """Release buffers and locks (the caller's file stays open)."""


class MemorySource(Source):
    """Bytes in memory, sliced without copies."""

    def __init__(self, view: memoryview, release: Callable[[], None] | None = None) -> None:
        self._view = view
        self.size = len(view)
        self._release = release

    def fetch(self, offset: int, n: int) -> _Chunk:
        return self._view[offset : offset + n]

    def reader(self, offset: int, size: int, **kwargs: Any) -> PartReader:
        return PartReader.from_view(self._view[offset : offset + size], **kwargs)

    def close(self) -> None:
        self._view.release()
        if self._release is not None:
            self._release()


class FdSource(Source):
    """A regular file read by offset (``pread``): thread-safe, no shared position."""

    def __init__(self, fd: int, start: int, size: int, *, owned: bool = False) -> None:
        self._fd = fd
        self._start = start
        self.size = size
        self._owned = owned
        st = os.fstat(fd)
        self._stamp = (st.st_size, st.st_mtime_ns)

    def fetch(self, offset: int, n: int) -> _Chunk:
        return _pread(self._fd, n, self._start + offset)

    def fingerprint(self) -> tuple[int, int] | None:
        st = os.fstat(self._fd)
        return (st.st_size, st.st_mtime_ns)

    def changed(self) -> bool:
        """Whether the file's size or modification time changed since it was opened."""
        return self.fingerprint() != self._stamp

    def close(self) -> None:
        if self._owned:
            os.close(self._fd)
            self._owned = False


class LockedFileSource(Source):
    """A seekable file object without a usable descriptor: seek + read under a lock."""

    def __init__(self, f: Any, start: int, size: int) -> None:
        self._f = f
        self._start = start
        self.size = size
        self._lock = threading.Lock()

    def fetch(self, offset: int, n: int) -> _Chunk:
        with self._lock:
            self._f.seek(self._start + offset)
            return bytes(self._f.read(n))


class StreamSource(Source):
    """A non-seekable file object (or an iterable of bytes): read once, in order."""

    def __init__(self, f: Any) -> None:
        self._f = f
        self.size = None

    def read_part(self, size: int) -> bytearray:
        buf = bytearray(size)
        view = memoryview(buf)
        filled = 0
        readinto = getattr(self._f, "readinto", None)
        while filled < size:
            if readinto is not None:
                n = readinto(view[filled:])
            else:
                chunk = self._f.read(size - filled)
                n = len(chunk) if chunk else 0
                view[filled : filled + n] = chunk or b""
            if not n:
                break
            filled += n
        view.release()
        if filled < size:
            del buf[filled:]
        return buf


class _IterReader(io.RawIOBase):
    """A file object over an iterable of bytes chunks."""

    def __init__(self, chunks: Iterable[Any]) -> None:
        super().__init__()
        self._it = iter(chunks)
        self._left = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not len(self._left):
            try:
                chunk = next(self._it)
            except StopIteration:
                return 0
            if isinstance(chunk, str):
                chunk = chunk.encode("utf-8")
            self._left = memoryview(chunk).cast("B")
        n = min(len(view), len(self._left))
        view[:n] = self._left[:n]
        self._left = self._left[n:]
        return n


def as_source(data: Any) -> Source:
    """Wrap what ``put_object`` accepts into a :class:`Source`.

    Raises:
        ConfigurationError: ``data`` is not bytes, str, a binary file or an iterable.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return MemorySource(memoryview(data).cast("B"))
    if isinstance(data, io.BytesIO):
        start = data.tell()
        whole = data.getbuffer()
        view = whole[start:]

        def release() -> None:
            whole.release()
            data.seek(0, io.SEEK_END)

        return MemorySource(view, release)
    if hasattr(data, "read"):
        if is_seekable(data):
            start = data.tell()
            fd = _regular_fd(data)
            if fd is not None:
                with contextlib.suppress(AttributeError, OSError, ValueError):
                    data.flush()
                size = max(0, os.fstat(fd).st_size - start)
                return FdSource(fd, start, size)
            end = data.seek(0, io.SEEK_END)
            data.seek(start)
            return LockedFileSource(data, start, max(0, end - start))
        return StreamSource(data)
    if isinstance(data, Iterable):
        return StreamSource(_IterReader(data))
    raise ConfigurationError(
        f"upload data must be bytes, str, a binary file or an iterable of bytes, "
        f"not {type(data).__name__}"
    )


def is_seekable(f: Any) -> bool:
    """Whether a file object can seek (``False`` for objects that fail to say)."""
    try:
        return bool(f.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _regular_fd(f: Any) -> int | None:
    try:
        fd = int(f.fileno())
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return fd if stat.S_ISREG(mode) else None


# -- sizes -----------------------------------------------------------------------------------


def choose_part_size(
    size: int | None, requested: int | None, *, default: int, minimum: int, max_parts: int
) -> int:
    """Pick the part size: the requested (or default) one, grown to fit in ``max_parts``.

    Raises:
        ConfigurationError: the requested size is below the backend's minimum.
    """
    part = requested if requested is not None else default
    if part < minimum:
        if requested is not None:
            raise ConfigurationError(
                f"part_size {requested} is below this backend's minimum of {minimum} bytes"
            )
        part = minimum
    if size is not None and size > part * max_parts:
        part = -(-size // max_parts)
        part = -(-part // MiB) * MiB  # round up to whole MiB
    return part


def _concurrency(session: BaseSession, requested: int | None) -> int:
    n = requested if requested is not None else session.max_concurrency
    if n < 1:
        raise ConfigurationError("concurrency must be at least 1")
    return max(1, min(n, session.transport.max_connections))


# -- the pre-pass ----------------------------------------------------------------------------


class ContentHash:
    """The whole-content hashes s3func stores as metadata: SHA-256 and CRC-32.

    The SHA-256 (``s3func-sha256``) identifies the content for comparisons; the CRC-32
    (``s3func-crc32``) lets downloads verify it at a fraction of the cost.
    """

    def __init__(self, *, crc32: bool = True) -> None:
        self._sha256 = new_hasher("sha256")
        self._crc32 = new_hasher("crc32") if crc32 else None
        self.crc32: int | None = None  # set by the caller when ``crc32=False``

    def update(self, chunk: Any) -> None:
        self._sha256.update(chunk)
        if self._crc32 is not None:
            self._crc32.update(chunk)

    @property
    def sha256(self) -> str:
        """The hex SHA-256 so far."""
        value: str = self._sha256.hexdigest()
        return value

    def metadata(self) -> dict[str, str]:
        """The metadata entries to store."""
        crc = self._crc32.hexdigest() if self._crc32 is not None else f"{self.crc32:08x}"
        return {SHA256_METADATA: self.sha256, CRC32_METADATA: crc}



def prepass(
    source: Source, size: int, part: int, algorithms: tuple[str, ...], whole: bool
) -> tuple[ContentHash | None, list[dict[str, str]]]:
    """Hash the whole content (:class:`ContentHash`) and each part (``algorithms``) in one read.

    The per-part digests run on a helper thread, overlapping the whole-content hash
    (``hashlib`` releases the GIL), and are never counted as progress. When there is a
    helper, it also takes the CRC-32 (per part, combined at the end), which balances the
    two threads.
    """
    count = max(1, -(-size // part))
    digests: list[dict[str, str]] = [{} for _ in range(count)]
    split_crc = bool(whole and algorithms and size)
    whole_hasher = ContentHash(crc32=not split_crc) if whole else None
    part_algorithms = (*algorithms, "crc32") if split_crc else algorithms
    crcs: list[int] = [0] * count
    if not algorithms and whole_hasher is None:
        return None, digests
    blocks: queue.Queue[tuple[int, _Chunk] | None] = queue.Queue(maxsize=8)
    failure: list[BaseException] = []

    def done(index: int, hashers: list[Any]) -> None:
        for h in hashers:
            if split_crc and h.name == "crc32":
                crcs[index] = h.value
            else:
                digests[index][h.name] = h.hexdigest()

    def part_worker() -> None:
        try:
            current = -1
            hashers: list[Any] = []
            while True:
                item = blocks.get()
                if item is None:
                    break
                index, chunk = item
                if index != current:
                    if hashers:
                        done(current, hashers)
                    current = index
                    hashers = [new_hasher(a) for a in part_algorithms]
                for h in hashers:
                    h.update(chunk)
            if hashers:
                done(current, hashers)
        except BaseException as exc:  # pragma: no cover - hashing does not fail
            failure.append(exc)
            while blocks.get() is not None:
                pass

    helper = None
    if algorithms and size:
        helper = threading.Thread(target=part_worker, name="s3func-prepass", daemon=True)
        helper.start()
    pos = 0
    try:
        while pos < size:
            index = pos // part
            n = min(_BLOCK, size - pos, (index + 1) * part - pos)
            chunk = source.fetch(pos, n)
            if not chunk:
                raise IncompleteBodyError(
                    f"the upload source ended after {pos} of {size} bytes", retryable=False
                )
            if helper is not None:
                blocks.put((index, chunk))
            if whole_hasher is not None:
                whole_hasher.update(chunk)
            pos += len(chunk)
    finally:
        if helper is not None:
            blocks.put(None)
            helper.join()
    if failure:  # pragma: no cover
        raise failure[0]
    if algorithms and not size:
        digests[0] = {a: new_hasher(a).hexdigest() for a in algorithms}
    if split_crc and whole_hasher is not None:
        lengths = (min(part, size - index * part) for index in range(count))
        whole_hasher.crc32 = crc32_concat(zip(crcs, lengths, strict=True))
    return whole_hasher, digests


# -- uploads ---------------------------------------------------------------------------------


def put_large(
    session: BaseSession,
    key: str,
    source: Source,
    *,
    metadata: Mapping[str, str] | None,
    content_type: str | None,
    progress: ProgressLike = None,
    part_size: int | None = None,
    concurrency: int | None = None,
) -> Response:
    """Upload ``source`` as a multipart upload (or one PUT when a stream turns out small).

    ``metadata`` gets ``s3func-sha256`` (an ``s3func-sha256`` already in it is trusted).
    """
    meta = dict(metadata or {})
    tracker, done = make_tracker(progress, source.size, desc=key)
    try:
        if source.size is None:
            return _upload_stream(
                session, key, source, meta, content_type, tracker, part_size, concurrency
            )
        return _upload_known(
            session, key, source, source.size, meta, content_type, tracker, part_size,
            concurrency,
        )
    finally:
        done()


def _part_size(session: BaseSession, size: int | None, requested: int | None) -> int:
    return choose_part_size(
        size,
        requested,
        default=session.part_size,
        minimum=session._min_part_size,
        max_parts=session._max_parts,
    )


def _upload_known(
    session: BaseSession,
    key: str,
    source: Source,
    size: int,
    meta: dict[str, str],
    content_type: str | None,
    tracker: Tracker,
    part_size: int | None,
    concurrency: int | None,
) -> Response:
    part = _part_size(session, size, part_size)
    count = max(1, -(-size // part))
    provided = meta.get(SHA256_METADATA)
    content, digests = prepass(source, size, part, tuple(session._part_digests), not provided)
    if content is not None:
        meta.update(content.metadata())

    def jobs() -> Iterator[tuple[int, PartReader]]:
        for index in range(count):
            offset = index * part
            length = min(part, size - offset)
            reader = source.reader(offset, length, digests=digests[index], meter=tracker.meter())
            yield index + 1, reader

    upload_id = session._mpu_create(key, metadata=meta, content_type=content_type)
    try:
        parts = _run_parts(session, key, upload_id, jobs(), _concurrency(session, concurrency))
        if isinstance(source, FdSource) and source.changed():
            raise IntegrityError(
                f"upload of {key!r}: the file changed while it was being uploaded; "
                "nothing was stored",
                key=key,
            )
        resp = session._mpu_complete(key, upload_id, parts)
    except BaseException:
        _abort(session, key, upload_id)
        raise
    resp.content_length = size
    return resp


def _upload_stream(
    session: BaseSession,
    key: str,
    source: Source,
    meta: dict[str, str],
    content_type: str | None,
    tracker: Tracker,
    part_size: int | None,
    concurrency: int | None,
) -> Response:
    part = _part_size(session, None, part_size)
    whole = ContentHash()
    first = source.read_part(part)
    whole.update(first)
    if len(first) < part:
        # Small after all: one PUT, with the hashes in the metadata from the start.
        if not meta.get(SHA256_METADATA):
            meta.update(whole.metadata())
        reader = PartReader.from_view(memoryview(first), meter=tracker.meter())
        reader.digests["sha256"] = whole.sha256
        resp = session.put_object(key, reader, metadata=meta, content_type=content_type)
        reader.finished()
        tracker.finish(len(first))
        return resp
    total = [0]

    def jobs() -> Iterator[tuple[int, PartReader]]:
        number = 0
        buf: bytearray | None = first
        while buf is not None:
            number += 1
            if number > session._max_parts:
                raise ConfigurationError(
                    f"upload of {key!r}: the stream is longer than {session._max_parts} parts "
                    f"of {part} bytes; pass a larger part_size"
                )
            total[0] += len(buf)
            yield number, PartReader.from_view(memoryview(buf), meter=tracker.meter())
            if len(buf) < part:
                return
            buf = source.read_part(part)
            if not buf:
                return
            whole.update(buf)

    upload_id = session._mpu_create(key, metadata=meta, content_type=content_type)
    try:
        parts = _run_parts(session, key, upload_id, jobs(), _concurrency(session, concurrency))
        resp = session._mpu_complete(key, upload_id, parts)
    except BaseException:
        _abort(session, key, upload_id)
        raise
    size = total[0]
    tracker.finish(size)
    if meta.get(SHA256_METADATA):
        pass  # the caller supplied it up front
    elif size <= MAX_COPY_SIZE:
        meta.update(whole.metadata())
        resp = session._store_sha256(key, resp, meta, content_type)
    else:
        log.warning(
            "upload of %r: %d bytes of unknown length were uploaded; objects over 5 GiB "
            "cannot be copied onto themselves, so no %s metadata was stored",
            key, size, SHA256_METADATA,
        )
    resp.content_length = size
    return resp


def _run_parts(
    session: BaseSession,
    key: str,
    upload_id: str,
    jobs: Iterator[tuple[int, PartReader]],
    concurrency: int,
) -> list[tuple[int, str]]:
    """Upload parts on ``concurrency`` threads; the first failure stops the rest.

    A slot is taken before the next job is made, so a stream is never read more than
    ``concurrency`` parts ahead of the uploads.
    """
    results: list[tuple[int, str]] = []
    errors: list[BaseException] = []
    slots = threading.BoundedSemaphore(concurrency)
    stop = threading.Event()

    def work(number: int, reader: PartReader) -> None:
        try:
            if not stop.is_set():
                tag = session._mpu_upload_part(
                    key, upload_id, number, cast(IO[bytes], reader), reader.size
                )
                reader.finished()
                results.append((number, tag))
        except BaseException as exc:
            errors.append(exc)
            stop.set()
        finally:
            reader.close()
            slots.release()

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="s3func-up") as pool:
        try:
            while not stop.is_set():
                slots.acquire()
                if stop.is_set():
                    slots.release()
                    break
                try:
                    number, reader = next(jobs)
                except StopIteration:
                    slots.release()
                    break
                except BaseException:
                    slots.release()
                    raise
                pool.submit(work, number, reader)
        except BaseException:
            stop.set()
            raise
    if errors:
        raise errors[0]
    results.sort()
    return results


def _abort(session: BaseSession, key: str, upload_id: str) -> None:
    try:
        session._mpu_abort(key, upload_id)
    except S3FuncError as exc:
        log.warning(
            "could not abort the multipart upload %s of %r (%s); its parts stay stored "
            "until it is aborted (or a lifecycle rule removes them)",
            upload_id, key, exc,
        )


def upload_path(
    session: BaseSession,
    key: str,
    path: str | os.PathLike[str],
    *,
    metadata: Mapping[str, str] | None,
    content_type: str | None,
    progress: ProgressLike = None,
    part_size: int | None = None,
    concurrency: int | None = None,
) -> Response:
    """Upload a local file: one PUT up to the multipart threshold, multipart above it."""
    fd = os.open(os.fspath(path), os.O_RDONLY | getattr(os, "O_BINARY", 0))
    source = FdSource(fd, 0, os.fstat(fd).st_size, owned=True)
    try:
        size = source.size
        assert size is not None
        if size > session.multipart_threshold:
            return put_large(
                session, key, source, metadata=metadata, content_type=content_type,
                progress=progress, part_size=part_size, concurrency=concurrency,
            )
        meta = dict(metadata or {})
        algorithms = tuple(a for a in session._part_digests if a != "sha256")
        provided = meta.get(SHA256_METADATA)
        content, digests = prepass(source, size, max(size, 1), algorithms, not provided)
        if content is not None:
            meta.update(content.metadata())
            digests[0]["sha256"] = content.sha256
        tracker, done = make_tracker(progress, size, desc=key)
        try:
            reader = source.reader(0, size, digests=digests[0], meter=tracker.meter())
            resp = session.put_object(key, reader, metadata=meta, content_type=content_type)
            reader.finished()
        finally:
            done()
        if source.changed():
            raise IntegrityError(
                f"upload of {key!r}: {os.fspath(path)} changed while it was being uploaded; "
                "the stored object may not match it (upload it again)",
                key=key,
            )
        resp.content_length = size
        return resp
    finally:
        source.close()


# -- downloads -------------------------------------------------------------------------------


class _Frontier:
    """Which ranges are written; how far the contiguous written prefix reaches."""

    def __init__(self, count: int) -> None:
        self._done = [False] * count
        self.next = 0
        self.cond = threading.Condition()
        self.stopped = False

    def complete(self, index: int) -> None:
        with self.cond:
            self._done[index] = True
            while self.next < len(self._done) and self._done[self.next]:
                self.next += 1
            self.cond.notify_all()

    def wait_past(self, index: int) -> bool:
        """Wait until range ``index`` is written; False when the download stopped."""
        with self.cond:
            while self.next <= index and not self.stopped:
                self.cond.wait()
            return self.next > index

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()


def download(
    session: BaseSession,
    key: str,
    path: str | os.PathLike[str],
    *,
    version_id: str | None = None,
    progress: ProgressLike = None,
    part_size: int | None = None,
    concurrency: int | None = None,
    verify: bool = True,
) -> Response:
    """Download ``key`` to ``path`` through a verified temporary file (see module docs)."""
    target = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(target)
    if os.path.isdir(target):
        raise IsADirectoryError(f"download_file: {target} is a directory")
    part = part_size if part_size is not None else session.download_part_size
    if part < 1:
        raise ConfigurationError("part_size must be positive")
    workers = _concurrency(
        session, concurrency if concurrency is not None else session.download_concurrency
    )
    fd, tmp = create_temp(directory, f".{name[:100]}.", ".s3func-tmp")
    tracker: Tracker | None = None
    done: Callable[[], None] = _noop
    ok = False
    try:
        first = _first_range(session, key, version_id, part, verify)
        with first:
            size = first.object_size
            tracker, done = make_tracker(progress, size, desc=key)
            single = size is None or first.content_length is None or first.content_length >= size
            if single:
                written = _stream_to(first, fd, 0, tracker)
                size = written if size is None else size
            else:
                assert size is not None
                _parallel(session, key, first, fd, size, part, workers, tracker, verify)
        if os.fstat(fd).st_size != size:
            err = IntegrityError(
                f"download_file {key!r}: the file has {os.fstat(fd).st_size} bytes, "
                f"expected {size}",
                key=key,
            )
            err.algorithm, err.expected, err.actual = "size", str(size), "?"
            raise err
        copy_mode(fd, tmp, target)
        os.close(fd)
        fd = -1
        os.replace(tmp, target)
        ok = True
    finally:
        done()
        if not ok:
            if fd != -1:
                os.close(fd)
            unlink_quietly(tmp)
    return Response(
        status=200,
        headers=first.headers,
        key=key,
        etag=first.etag,
        version_id=first.version_id,
        content_length=size,
        content_type=first.content_type,
        last_modified=first.last_modified,
        metadata=first.metadata,
    )


def _noop() -> None:
    pass


def _first_range(
    session: BaseSession, key: str, version_id: str | None, part: int, verify: bool
) -> ObjectResponse:
    try:
        resp = session.get_object(key, version_id=version_id, offset=0, length=part)
    except InvalidRangeError:
        # An empty object has no byte 0: read it whole.
        resp = session.get_object(key, version_id=version_id)
    resp._set_verify(verify)
    return resp


def _stream_to(resp: ObjectResponse, fd: int, offset: int, tracker: Tracker) -> int:
    """Copy the rest of ``resp`` to ``fd`` at ``offset``; return the bytes written."""
    buf = bytearray(_BLOCK)
    view = memoryview(buf)
    written = 0
    while True:
        n = resp.readinto(view)
        if not n:
            return written
        _pwrite(fd, view[:n], offset + written)
        written += n
        tracker.add(n)


def _parallel(
    session: BaseSession,
    key: str,
    first: ObjectResponse,
    fd: int,
    size: int,
    part: int,
    workers: int,
    tracker: Tracker,
    verify: bool,
) -> None:
    os.ftruncate(fd, size)
    ranges = [(off, min(part, size - off)) for off in range(0, size, part)]
    frontier = _Frontier(len(ranges))
    stop = threading.Event()
    errors: list[BaseException] = []
    etag, version_id = first.etag, first.version_id
    check = _pick_checksum(first) if verify else None
    # A CRC-32 is computed per range while the bytes are hot in the cache, and the range
    # values are combined at the end; other checksums follow the written prefix instead.
    crcs: list[int] | None = [0] * len(ranges) if check and check[0] == "crc32" else None
    crc32 = crc32_function()
    local = threading.local()

    def fetch(index: int, resp: ObjectResponse | None = None) -> None:
        try:
            if stop.is_set():
                return
            offset, length = ranges[index]
            if resp is None:
                resp = session.get_object(
                    key, version_id=version_id, offset=offset, length=length, if_match=etag
                )
            with resp:
                if resp.object_size is not None and resp.object_size != size:
                    raise PreconditionFailedError(
                        f"download_file {key!r}: the object changed during the download "
                        f"(size {size} became {resp.object_size})",
                        key=key,
                    )
                view = getattr(local, "view", None)
                if view is None:
                    view = local.view = memoryview(bytearray(_BLOCK))
                pos, end = offset, offset + length
                crc = 0
                while pos < end:
                    if stop.is_set():
                        return
                    n = resp.readinto(view[: min(_BLOCK, end - pos)])
                    if not n:
                        raise IncompleteBodyError(
                            f"download_file {key!r}: range at {offset} ended at {pos}",
                            key=key,
                        )
                    if crcs is not None:
                        crc = crc32(view[:n], crc)
                    _pwrite(fd, view[:n], pos)
                    pos += n
                    tracker.add(n)
                if crcs is not None:
                    crcs[index] = crc
            frontier.complete(index)
        except BaseException as exc:
            errors.append(exc)
            stop.set()
            frontier.stop()

    hasher_thread = None
    result: list[str] = []
    if check is not None and crcs is None:
        hasher_thread = threading.Thread(
            target=_hash_written,
            args=(fd, ranges, frontier, check[0], result),
            name="s3func-verify",
            daemon=True,
        )
        hasher_thread.start()
    try:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3func-down") as pool:
            pool.submit(fetch, 0, first)
            for index in range(1, len(ranges)):
                pool.submit(fetch, index)
    except BaseException:
        stop.set()
        frontier.stop()
        raise
    finally:
        if hasher_thread is not None:
            if stop.is_set():
                frontier.stop()
            hasher_thread.join()
    if errors:
        raise errors[0]
    if check is not None:
        algorithm, expected = check
        if crcs is not None:
            total = crc32_concat(zip(crcs, (length for _, length in ranges), strict=True))
            result.append(f"{total:08x}")
        got = result[0] if result else ""
        if got != expected:
            err = IntegrityError(
                f"download_file {key!r}: the {algorithm} of the downloaded data is {got}, "
                f"expected {expected}: the data was corrupted in transit or at rest",
                key=key,
            )
            err.algorithm, err.expected, err.actual = algorithm, expected, got
            raise err


def _pick_checksum(resp: ObjectResponse) -> tuple[str, str] | None:
    known = resp.known_checksums
    for algorithm in CHECKSUM_PREFERENCE:
        if algorithm in known:
            return algorithm, known[algorithm]
    return None


def _hash_written(
    fd: int,
    ranges: list[tuple[int, int]],
    frontier: _Frontier,
    algorithm: str,
    result: list[str],
) -> None:
    """Hash the file in order, following the written prefix, straight from the page cache.

    Windows of the file are mapped (``mmap``) and hashed in place, which saves the copy a
    read would make; a window is unmapped before the next, so the resident set grows by
    one window at most.
    """
    import mmap

    hasher = new_hasher(algorithm)
    view = None
    for index, (offset, length) in enumerate(ranges):
        if not frontier.wait_past(index):
            return
        pos, end = offset, offset + length
        while pos < end:
            n = min(_HASH_WINDOW, end - pos)
            if pos % mmap.ALLOCATIONGRANULARITY == 0:
                with mmap.mmap(fd, n, offset=pos, access=mmap.ACCESS_READ) as window:
                    hasher.update(window)
            else:  # an odd part size: read the window instead
                if view is None:
                    view = memoryview(bytearray(_HASH_WINDOW))
                n = _preadinto(fd, view[:n], pos)
                if not n:
                    return
                hasher.update(view[:n])
            pos += n
    result.append(hasher.hexdigest())
