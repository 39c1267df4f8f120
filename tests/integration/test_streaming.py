"""Streaming GETs on real servers: file-object behaviour, verification and pooled connections.

The ``any_session`` tests run on SeaweedFS (S3) and on the B2 emulator: streaming, upload_file
and download_file live in the shared base, so both backends must behave the same.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
from pathlib import Path
from typing import Any

import pytest

from s3func import BaseSession, IntegrityError, PoolTimeoutError, S3Session

MiB = 1 << 20


def blob(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 2048
    return (block * (-(-size // len(block))))[:size]


def csv_gz(rows: int) -> tuple[bytes, list[list[str]]]:
    table = [["id", "name", "note"], *[[str(i), f"name {i}", 'é, "quoted"'] for i in range(rows)]]
    text = io.StringIO(newline="")
    csv.writer(text).writerows(table)
    return gzip.compress(text.getvalue().encode("utf-8")), table


# -- file-object behaviour --------------------------------------------------------------------


def test_gzip_csv_and_text_on_top(any_session: BaseSession) -> None:
    packed, table = csv_gz(20_000)
    any_session.put_object("t.csv.gz", packed)
    with any_session.get_object("t.csv.gz") as resp:
        with gzip.GzipFile(fileobj=resp) as gz, io.TextIOWrapper(gz, "utf-8", newline="") as t:
            assert list(csv.reader(t)) == table
        assert resp.bytes_read == len(packed)
    any_session.put_object("lines.txt", "alpha\nbeta\ngamma\n")
    with any_session.get_object("lines.txt") as resp, io.TextIOWrapper(resp, "utf-8") as t:
        assert [line.strip() for line in t] == ["alpha", "beta", "gamma"]


def test_read_readinto_and_chunks(any_session: BaseSession) -> None:
    data = blob(3 * MiB + 17, seed=1)
    any_session.put_object("k", data)
    with any_session.get_object("k") as resp:
        assert resp.readable()
        head = resp.read(10)
        buf = bytearray(MiB)
        n = resp.readinto(buf)
        rest = b"".join(resp.iter_chunks(100_000))
        assert head + bytes(buf[:n]) + rest == data
        assert resp.closed  # iter_chunks closes the body at its end
    assert b"".join(any_session.get_object("k")) == data


def test_whole_reads_are_verified(any_session: BaseSession) -> None:
    data = blob(MiB, seed=2)
    any_session.put_object("k", data)
    resp = any_session.get_object("k")
    assert resp.checksum is not None
    assert resp.data == data
    ranged = any_session.get_object("k", offset=10, length=100)
    assert ranged.checksum is None and ranged.data == data[10:110]


def test_corrupt_data_raises_integrity_error(any_session: BaseSession) -> None:
    # A wrong stored SHA-256 makes the server-side content look corrupted to the client.
    data = blob(2 * MiB, seed=3)
    any_session.put_object("k", data, metadata={"s3func-sha256": "1" * 64})
    with pytest.raises(IntegrityError) as info:
        any_session.get_object("k").data  # noqa: B018
    assert info.value.algorithm == "sha256"
    assert info.value.actual == hashlib.sha256(data).hexdigest()
    with pytest.raises(IntegrityError):
        any_session.get_object("k", stream=False)


def test_single_part_etag_is_checked_as_md5(s3_session: S3Session) -> None:
    data = blob(MiB, seed=4)
    s3_session.put_object("k", data)
    resp = s3_session.get_object("k")
    assert resp.checksum == ("md5", hashlib.md5(data).hexdigest())
    assert resp.data == data


# -- connections ------------------------------------------------------------------------------


def test_connections_return_to_the_pool(seaweedfs: Any, s3_session: S3Session) -> None:
    data = blob(2 * MiB, seed=5)
    s3_session.put_object("k", data)
    with seaweedfs.session(s3_session.bucket, max_connections=1, pool_timeout=0.5) as one:
        # Fully read but never closed: the connection went back at the last byte.
        resp = one.get_object("k")
        assert resp.read() == data
        assert one.get_object("k").data == data
        # Partly read then closed: the connection is discarded at once, not drained.
        with one.get_object("k") as part:
            assert part.read(100) == data[:100]
        assert one.get_object("k").data == data
        # Partly read and left open: the only connection stays busy.
        left_open = one.get_object("k")
        left_open.read(100)
        with pytest.raises(PoolTimeoutError, match="close them"):
            one.head_object("k")
        left_open.close()
        assert one.head_object("k").content_length == len(data)


# -- file transfers on every backend ----------------------------------------------------------


def test_upload_and_download_file_on_any_backend(any_session: BaseSession, tmp_path: Path) -> None:
    part = max(any_session._min_part_size, 5 * MiB)
    any_session.part_size = part
    any_session.multipart_threshold = part + 1
    any_session.max_concurrency = 3
    data = blob(2 * part + 12345, seed=6)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    calls: list[tuple[int, int | None]] = []
    resp = any_session.upload_file(
        "dir/file.bin", src, metadata={"k": "v"}, progress=lambda d, t: calls.append((d, t))
    )
    assert calls[-1] == (len(data), len(data))
    head = any_session.head_object("dir/file.bin")
    assert head.content_length == len(data)
    assert head.metadata["s3func-sha256"] == hashlib.sha256(data).hexdigest()
    assert head.metadata["k"] == "v"
    assert resp.content_length == len(data)
    out = tmp_path / "out.bin"
    got = any_session.download_file("dir/file.bin", out, part_size=part // 2)
    assert out.read_bytes() == data
    assert got.content_length == len(data)
    assert sorted(os.listdir(tmp_path)) == ["out.bin", "src.bin"]


def test_verification_can_be_turned_off(s3_session: S3Session, tmp_path: Path) -> None:
    data = blob(MiB, seed=7)
    s3_session.put_object("k", data, metadata={"s3func-sha256": "1" * 64})
    s3_session.verify_checksums = False
    resp = s3_session.get_object("k")
    assert resp.checksum is None and resp.data == data
    s3_session.download_file("k", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    with pytest.raises(IntegrityError):
        s3_session.download_file("k", tmp_path / "out2", verify=True)
