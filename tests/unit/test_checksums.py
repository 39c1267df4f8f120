"""CRC-32 combination and the upload pre-pass: pure logic, no server."""

from __future__ import annotations

import hashlib
import os
import random
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3func._transfer import as_source, prepass
from s3func.response import crc32_combine, crc32_concat, crc32_function, new_hasher


@pytest.mark.parametrize("seed", range(5))
def test_crc32_combine_matches_zlib(seed: int) -> None:
    rng = random.Random(seed)
    data = rng.randbytes(rng.randint(0, 200_000))
    cuts = sorted(rng.randint(0, len(data)) for _ in range(rng.randint(0, 6)))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    total = zlib.crc32(pieces[0])
    for piece in pieces[1:]:
        total = crc32_combine(total, zlib.crc32(piece), len(piece))
    assert total == zlib.crc32(data)


@pytest.fixture
def no_fast_crc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Import as if the ``fast`` extra (isal) were not installed."""
    monkeypatch.setitem(sys.modules, "isal", None)
    monkeypatch.setitem(sys.modules, "isal.isal_zlib", None)
    crc32_function.cache_clear()
    yield
    crc32_function.cache_clear()


def test_crc32_fast_extra_matches_zlib() -> None:
    pytest.importorskip("isal")
    fast = crc32_function()
    assert fast is not zlib.crc32 and fast.__module__.startswith("isal")
    rng = random.Random(7)
    for size in (0, 1, 15, 16, 63, 64, 4095, 65_537, 1 << 20):
        data = rng.randbytes(size)
        assert fast(data, 0) == zlib.crc32(data)
        assert fast(memoryview(data)[1:], zlib.crc32(data[:1])) == zlib.crc32(data)


@pytest.mark.usefixtures("no_fast_crc")
def test_crc32_without_fast_extra_is_zlib() -> None:
    assert crc32_function() is zlib.crc32
    h = new_hasher("crc32")
    h.update(b"123456789")
    assert h.hexdigest() == "cbf43926"  # the CRC-32 check value


def test_crc32_concat_of_pieces() -> None:
    pieces = [b"", b"abc", b"\0" * 70_000, b"", b"xyz" * 333]
    assert crc32_concat((zlib.crc32(p), len(p)) for p in pieces) == zlib.crc32(b"".join(pieces))
    assert crc32_concat([]) == zlib.crc32(b"")


def test_crc32_combine_edges() -> None:
    assert crc32_combine(0x1234, 0, 0) == 0x1234
    assert crc32_combine(zlib.crc32(b"ab"), zlib.crc32(b"\0" * 5), 5) == zlib.crc32(b"ab\0\0\0\0\0")
    big = 8 << 20  # a typical part: the shift map is built by squaring, not byte by byte
    a, b = b"x" * 100, b"\0" * big
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), big) == zlib.crc32(a + b)


@pytest.mark.parametrize(
    ("size", "part", "algorithms"),
    [(0, 5, ("sha256",)), (1, 5, ("sha256",)), (23, 5, ("sha256",)), (25, 5, ("sha1",)),
     (23, 5, ())],
)
def test_prepass_whole_and_part_hashes(size: int, part: int, algorithms: tuple[str, ...]) -> None:
    data = random.Random(size).randbytes(size)
    content, digests = prepass(as_source(data), size, part, algorithms, True)
    assert content is not None
    assert content.metadata() == {
        "s3func-sha256": hashlib.sha256(data).hexdigest(),
        "s3func-crc32": f"{zlib.crc32(data):08x}",
    }
    chunks = [data[i : i + part] for i in range(0, size, part)] or [b""]
    for name in algorithms:
        assert [d[name] for d in digests] == [hashlib.new(name, c).hexdigest() for c in chunks]
    assert all("crc32" not in d for d in digests)


def test_part_reader_as_bytes_only_for_small_unmetered_memory(tmp_path: Path) -> None:
    from s3func._transfer import FdSource, PartReader

    data = b"0123456789"
    reader = PartReader.from_view(memoryview(data), digests={"sha256": "given"})
    assert reader.as_bytes(10) == data and reader.hexdigest("sha256") == "given"
    assert reader.as_bytes(9) is None  # over the limit: streamed instead
    metered = PartReader.from_view(memoryview(data), meter=lambda n: None)  # type: ignore[arg-type]
    assert metered.as_bytes(10) is None  # progress needs the block-by-block path
    (tmp_path / "f").write_bytes(data)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        assert FdSource(fd, 0, len(data)).reader(0, len(data)).as_bytes(10) is None
    finally:
        os.close(fd)
