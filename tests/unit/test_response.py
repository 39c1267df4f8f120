"""ObjectResponse as a file object: reads, verification and resumption, on in-memory bodies.

The bodies are real ``urllib3.HTTPResponse`` objects over in-memory streams (as urllib3's own
tests do); a stream that raises after K bytes stands in for a connection reset. The same
behaviour against a real server behind a fault-injecting proxy is in
``tests/integration/test_faults.py``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import zlib
from collections.abc import Callable
from typing import Any

import pytest
import urllib3

from s3func import IncompleteBodyError, IntegrityError, PreconditionFailedError, TransportTimeout
from s3func.response import ObjectResponse, new_hasher

DATA = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes
MD5 = hashlib.md5(DATA).hexdigest()


class Breaking(io.BytesIO):
    """An in-memory body that fails after ``limit`` bytes (a reset, or a read timeout)."""

    def __init__(self, data: bytes, limit: int, exc: type[BaseException] = ConnectionResetError):
        super().__init__(data)
        self.limit = limit
        self.exc = exc

    def _check(self, n: int) -> int:
        left = self.limit - self.tell()
        if left <= 0:
            raise self.exc("injected failure")
        return min(n, left) if n >= 0 else left

    def read(self, n: int | None = -1) -> bytes:
        return super().read(self._check(-1 if n is None else n))

    def read1(self, n: int = -1) -> bytes:
        return self.read(n)

    def readinto(self, b: Any) -> int:
        view = memoryview(b)
        n = self._check(len(view))
        return super().readinto(view[:n])


def raw(
    body: bytes | io.BytesIO,
    *,
    status: int = 200,
    length: int | None = None,
    headers: dict[str, str] | None = None,
) -> urllib3.HTTPResponse:
    stream = io.BytesIO(body) if isinstance(body, bytes) else body
    if length is None and isinstance(body, bytes):
        length = len(body)
    h = dict(headers or {})
    if length is not None:
        h["content-length"] = str(length)
    return urllib3.HTTPResponse(body=stream, headers=h, status=status, preload_content=False)


def make(
    data: bytes = DATA,
    *,
    body: io.BytesIO | None = None,
    checksums: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
    reopen: Callable[[int], urllib3.HTTPResponse] | None = None,
    etag: str | None = MD5,
    **kwargs: Any,
) -> ObjectResponse:
    r = raw(body if body is not None else data, length=len(data))
    return ObjectResponse(
        r,
        status=200,
        headers=r.headers,
        key="k",
        etag=etag,
        content_length=len(data),
        metadata=metadata,
        checksums=checksums if checksums is not None else {"md5": MD5},
        reopen=reopen,
        **kwargs,
    )


def ranged(
    data: bytes, *, etag: str | None = MD5, total: int | None = None
) -> Callable[[int], Any]:
    """A reopen function serving ``data`` from any position, recording the positions."""
    calls: list[int] = []

    def reopen(position: int) -> urllib3.HTTPResponse:
        calls.append(position)
        rest = data[position:]
        headers = {
            "content-range": f"bytes {position}-{len(data) - 1}/{total or len(data)}",
        }
        if etag:
            headers["etag"] = f'"{etag}"'
        return raw(rest, status=206, headers=headers)

    reopen.calls = calls  # type: ignore[attr-defined]
    return reopen


# -- the file-object protocol ---------------------------------------------------------------


def test_read_sizes_and_tell() -> None:
    with make() as r:
        assert r.readable() and not r.seekable()
        assert r.read(0) == b""
        assert r.read(10) == DATA[:10]
        assert r.tell() == 10
        assert r.read1(100) == DATA[10:110]
        rest = r.read()
        assert DATA[:110] + rest == DATA
        assert r.read() == b"" and r.read(5) == b""
        assert r.bytes_read == len(DATA)
    assert r.closed


def test_readinto_fills_buffer_without_copies() -> None:
    buf = bytearray(300_000)
    out = bytearray()
    with make() as r:
        while True:
            n = r.readinto(buf)
            if not n:
                break
            out += buf[:n]
    assert out == DATA


def test_iteration_yields_chunks_and_closes() -> None:
    r = make()
    chunks = list(r)
    assert b"".join(chunks) == DATA
    assert all(len(c) <= 1 << 20 for c in chunks)
    assert r.closed
    r2 = make()
    assert b"".join(r2.iter_chunks(1000)) == DATA


def test_data_reads_rest_and_closes() -> None:
    r = make()
    assert r.read(5) == DATA[:5]
    assert r.data == DATA[5:]
    assert r.closed
    assert r.data == DATA[5:]  # cached


def test_text_wrappers_gzip_and_csv() -> None:
    rows = [["id", "name"], *[[str(i), f"n{i}"] for i in range(5000)]]
    text = io.StringIO(newline="")
    csv.writer(text).writerows(rows)
    packed = gzip.compress(text.getvalue().encode())
    r = make(packed, checksums={"md5": hashlib.md5(packed).hexdigest()}, etag=None)
    with r, gzip.GzipFile(fileobj=r) as gz, io.TextIOWrapper(gz, newline="") as t:
        assert list(csv.reader(t)) == rows
    plain = "line one\nline two\nlast"
    r = make(plain.encode(), checksums={}, etag=None)
    with io.TextIOWrapper(r, encoding="utf-8") as t:
        assert t.readlines() == ["line one\n", "line two\n", "last"]


def test_preloaded_body_is_verified() -> None:
    r = ObjectResponse(
        None,
        status=200,
        headers={},
        key="k",
        content_length=4,
        checksums={"md5": hashlib.md5(b"abcd").hexdigest()},
        data=b"abcd",
    )
    assert r.read(2) == b"ab" and r.read() == b"cd" and r.data == b"abcd"
    with pytest.raises(IntegrityError):
        ObjectResponse(
            None,
            status=200,
            headers={},
            key="k",
            content_length=4,
            checksums={"md5": "0" * 32},
            data=b"abcd",
        )


# -- verification -----------------------------------------------------------------------------


def test_md5_checked_at_end() -> None:
    r = make()
    assert r.checksum == ("md5", MD5)
    assert r.data == DATA


def test_corrupt_body_raises_instead_of_returning_last_chunk() -> None:
    bad = DATA[:-1] + b"X"
    r = make(bad)
    got = r.read(len(DATA) - 4)
    assert got == bad[:-4]
    with pytest.raises(IntegrityError) as info:
        r.read(100)
    assert info.value.algorithm == "md5" and info.value.expected == MD5
    with pytest.raises(IntegrityError):  # and keeps failing
        r.read(1)
    r.close()


def test_cheapest_known_checksum_is_used() -> None:
    sha256 = hashlib.sha256(DATA).hexdigest()
    r = make(metadata={"s3func-sha256": sha256})
    assert r.checksum == ("sha256", sha256)
    assert r.known_checksums == {"md5": MD5, "sha256": sha256}
    assert r.data == DATA
    crc = new_hasher("crc32")
    crc.update(DATA)
    assert crc.hexdigest() == f"{zlib.crc32(DATA):08x}"
    r = make(checksums={"md5": MD5, "crc32": crc.hexdigest(), "sha1": "0" * 40})
    assert r.checksum is not None and r.checksum[0] == "crc32"
    assert r.data == DATA
    r = make(metadata={"s3func-sha256": hashlib.sha256(DATA).hexdigest(),
                       "s3func-crc32": f"{zlib.crc32(DATA):08x}"})
    assert r.checksum == ("crc32", f"{zlib.crc32(DATA):08x}")
    assert r.data == DATA
    # A wrong stored SHA-256 is caught even though the MD5 would have passed.
    r = make(metadata={"s3func-sha256": "0" * 64})
    with pytest.raises(IntegrityError) as info:
        r.read()
    assert info.value.algorithm == "sha256"


def test_verify_false_and_ranges_skip_checksum() -> None:
    assert make(DATA[:-1] + b"X", verify=False).data.endswith(b"X")
    part = DATA[10:20]
    r = raw(part, status=206)
    resp = ObjectResponse(
        r,
        status=206,
        headers=r.headers,
        key="k",
        content_length=10,
        object_size=len(DATA),
        offset=10,
        checksums={"md5": MD5},
    )
    assert resp.checksum is None and resp.known_checksums == {"md5": MD5}
    assert resp.data == part


def test_short_body_without_resume_raises() -> None:
    r = make(body=io.BytesIO(DATA[:1000]))
    with pytest.raises(IncompleteBodyError) as info:
        r.read()
    assert info.value.received == 1000 and info.value.expected == len(DATA)


# -- resumption -------------------------------------------------------------------------------


@pytest.mark.parametrize("exc", [ConnectionResetError, TimeoutError])
def test_broken_body_is_resumed_with_identical_bytes(exc: type[BaseException]) -> None:
    reopen = ranged(DATA)
    r = make(body=Breaking(DATA, 100_000, exc), reopen=reopen)
    assert r.data == DATA
    assert r.resumes == 1 and reopen.calls == [100_000]  # type: ignore[attr-defined]


def test_short_body_is_resumed() -> None:
    reopen = ranged(DATA)
    r = make(body=io.BytesIO(DATA[:5000]), reopen=reopen)
    buf = bytearray(len(DATA))
    view = memoryview(buf)
    got = 0
    while True:
        n = r.readinto(view[got:])
        if not n:
            break
        got += n
    assert bytes(buf[:got]) == DATA and reopen.calls == [5000]  # type: ignore[attr-defined]


def test_resumes_are_bounded_when_nothing_arrives() -> None:
    calls: list[int] = []

    def reopen(position: int) -> urllib3.HTTPResponse:
        calls.append(position)
        return raw(
            Breaking(DATA[position:], 0),
            status=206,
            length=len(DATA) - position,
            headers={"content-range": f"bytes {position}-{len(DATA) - 1}/{len(DATA)}"},
        )

    r = make(body=Breaking(DATA, 10, TimeoutError), reopen=reopen, max_resumes=3)
    with pytest.raises(IncompleteBodyError) as info:
        r.read()
    assert calls == [10, 10, 10]
    assert "gave up after 3 resumes" in str(info.value)


def test_resumes_that_make_progress_keep_going() -> None:
    step = 200_000

    def reopen(position: int) -> urllib3.HTTPResponse:
        rest = DATA[position:]
        return raw(
            Breaking(rest, step),
            status=206,
            length=len(rest),
            headers={"content-range": f"bytes {position}-{len(DATA) - 1}/{len(DATA)}"},
        )

    r = make(body=Breaking(DATA, step), reopen=reopen, max_resumes=2)
    assert r.data == DATA
    assert r.resumes == len(DATA) // step


def test_read_timeout_without_resume_is_a_timeout() -> None:
    r = make(body=Breaking(DATA, 10, TimeoutError))
    with pytest.raises(TransportTimeout):
        r.read()


def test_object_changed_412_gives_clear_error() -> None:
    def reopen(position: int) -> urllib3.HTTPResponse:
        raise PreconditionFailedError(
            "GetObject b/k: At least one precondition failed", status=412, code="PreconditionFailed"
        )

    r = make(body=Breaking(DATA, 500), reopen=reopen)
    with pytest.raises(PreconditionFailedError, match="changed while it was being read"):
        r.read()


def test_object_changed_other_etag_or_size_detected() -> None:
    r = make(body=Breaking(DATA, 500), reopen=ranged(DATA, etag="f" * 32))
    with pytest.raises(PreconditionFailedError, match="changed"):
        r.read()
    r = make(body=Breaking(DATA, 500), reopen=ranged(DATA, total=len(DATA) + 1))
    with pytest.raises(PreconditionFailedError, match="size"):
        r.read()


def test_checksum_spans_resumes() -> None:
    corrupt = DATA[:-1] + b"?"
    r = make(body=Breaking(DATA, 300_000), reopen=ranged(corrupt))
    with pytest.raises(IntegrityError):
        r.read()


# -- connections ------------------------------------------------------------------------------


def test_close_with_unread_data_discards_and_full_read_releases() -> None:
    r = make()
    raw_resp = r._raw
    assert raw_resp is not None
    r.read(10)
    r.close()
    assert raw_resp.closed  # discarded, not drained
    r = make()
    raw_resp = r._raw
    r.read(len(DATA))
    assert r._raw is None  # released at the last byte, before close()
    r.close()


# -- hashing on a helper thread ---------------------------------------------------------------


@pytest.fixture
def background(monkeypatch: pytest.MonkeyPatch) -> None:
    import s3func.response as response

    monkeypatch.setattr(response, "_BACKGROUND_MIN_CPUS", 1)
    monkeypatch.setattr(response, "_BACKGROUND_MIN", 0)


@pytest.mark.usefixtures("background")
def test_background_hashing_checks_the_same() -> None:
    from s3func.response import _BackgroundHasher

    r = make()
    assert isinstance(r._hasher, _BackgroundHasher)
    assert b"".join(r.iter_chunks(50_000)) == DATA
    r = make(DATA[:-1] + b"X")
    buf = bytearray(70_000)
    with pytest.raises(IntegrityError):
        while r.readinto(buf):
            pass
    r = make(body=Breaking(DATA, 123_456), reopen=ranged(DATA))
    assert r.read() == DATA
    r = make()
    r.read(10)
    r.close()  # the helper is told to stop; closing does not wait for it
