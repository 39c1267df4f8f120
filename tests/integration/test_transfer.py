"""Large uploads and downloads against SeaweedFS: multipart, parallel ranges, hashes, progress.

boto3 is the oracle: what s3func uploads, boto3 reads back byte for byte (and the other way
round). Sizes are kept small by lowering the session's part size to S3's 5 MiB minimum.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import pytest

from s3func import ConfigurationError, IntegrityError, NotFoundError, S3Session
from s3func.progress import ProgressBar

MiB = 1 << 20
PART = 5 * MiB


@pytest.fixture
def session(s3_session: S3Session) -> S3Session:
    s3_session.part_size = PART
    s3_session.multipart_threshold = 6 * MiB
    s3_session.max_concurrency = 4
    return s3_session


def blob(size: int, seed: int = 1) -> bytes:
    # Deterministic, incompressible enough, cheap to make.
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB
    reps = -(-size // len(block))
    data = bytearray(block * reps)[:size]
    for i in range(0, size, 4099):
        data[i] = (i * 7 + seed) & 0xFF
    return bytes(data)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hashes(data: bytes) -> dict[str, str]:
    """The metadata s3func stores for content it hashed: SHA-256 and CRC-32."""
    return {"s3func-sha256": sha(data), "s3func-crc32": f"{zlib.crc32(data):08x}"}


class Pipe(io.RawIOBase):
    """A non-seekable reader that records how far it has been read."""

    def __init__(self, data: bytes, step: int = 100_000) -> None:
        self.data = data
        self.pos = 0
        self.step = step
        self.reads: list[int] = []

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), self.step, len(self.data) - self.pos)
        b[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        self.reads.append(self.pos)
        return n


class Progress:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int | None]] = []
        self.threads: set[int] = set()
        self.lock = threading.Lock()
        self.concurrent = 0
        self.max_concurrent = 0

    def __call__(self, done: int, total: int | None) -> None:
        with self.lock:
            self.concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self.concurrent)
        self.calls.append((done, total))
        with self.lock:
            self.concurrent -= 1

    def check(self, size: int) -> None:
        dones = [d for d, _ in self.calls]
        assert dones == sorted(dones), "progress went backwards"
        assert dones[-1] == size
        assert max(dones) <= size
        assert self.calls[-1][1] == size
        assert self.max_concurrent == 1


def boto_get(client: Any, bucket: str, key: str) -> tuple[bytes, dict[str, Any]]:
    obj = client.get_object(Bucket=bucket, Key=key)
    return obj["Body"].read(), obj


# -- put_object -------------------------------------------------------------------------------


def test_put_object_bytes_goes_multipart(session: S3Session, boto3_client: Any) -> None:
    data = blob(12 * MiB + 5)
    progress = Progress()
    resp = session.put_object(
        "big.bin", data, metadata={"a": "1"}, content_type="x/y", progress=progress
    )
    assert resp.etag and resp.etag.endswith("-3")
    assert resp.content_length == len(data)
    progress.check(len(data))
    body, obj = boto_get(boto3_client, session.bucket, "big.bin")
    assert body == data
    assert obj["Metadata"] == {"a": "1", **hashes(data)}
    assert obj["ContentType"] == "x/y"


def test_put_object_small_stays_single(session: S3Session) -> None:
    data = blob(3 * MiB)
    resp = session.put_object("small.bin", data)
    assert resp.etag == hashlib.md5(data).hexdigest()
    assert session.head_object("small.bin").metadata == {}
    session.put_object("hashed.bin", data, content_sha256=True)
    assert session.head_object("hashed.bin").metadata == hashes(data)
    session.put_object("hashed-small.bin", b"abc", content_sha256=True)
    assert session.head_object("hashed-small.bin").metadata == hashes(b"abc")


@pytest.mark.parametrize("kind", ["bytesio", "file", "seekable-no-fd", "memoryview", "iterable"])
def test_put_object_sources(session: S3Session, tmp_path: Path, kind: str) -> None:
    data = blob(11 * MiB, seed=3)
    if kind == "bytesio":
        src: Any = io.BytesIO(b"skip" + data)
        src.read(4)
    elif kind == "file":
        (tmp_path / "f").write_bytes(b"skip" + data)
        src = open(tmp_path / "f", "rb")  # noqa: SIM115
        src.read(4)
    elif kind == "seekable-no-fd":
        src = io.BufferedReader(io.BytesIO(b"skip" + data))  # type: ignore[arg-type]
        src.read(4)
    elif kind == "memoryview":
        src = memoryview(bytearray(data))
    else:
        src = (data[i : i + 777_777] for i in range(0, len(data), 777_777))
    try:
        session.put_object("k", src)
    finally:
        if hasattr(src, "close"):
            src.close()
    got = session.get_object("k")
    assert got.checksum == ("crc32", hashes(data)["s3func-crc32"])
    assert got.data == data


def test_put_object_stream_of_unknown_length(session: S3Session, boto3_client: Any) -> None:
    data = blob(17 * MiB + 3, seed=5)
    pipe = Pipe(data)
    progress = Progress()
    resp = session.put_object(
        "stream.bin", pipe, metadata={"m": "v"}, content_type="text/x", progress=progress
    )
    assert resp.content_length == len(data)
    progress.check(len(data))
    body, obj = boto_get(boto3_client, session.bucket, "stream.bin")
    assert body == data
    # The hash, known only at the end, was added by a copy onto itself; the rest is kept.
    assert obj["Metadata"] == {"m": "v", **hashes(data)}
    assert obj["ContentType"] == "text/x"


def test_stream_memory_is_bounded(session: S3Session) -> None:
    concurrency = 2
    session.max_concurrency = concurrency
    data = blob(30 * MiB, seed=6)
    sent = [0]
    lag: list[int] = []

    def progress(done: int, total: int | None) -> None:
        sent[0] = done

    class Watched(Pipe):
        def readinto(self, b: Any) -> int:
            n = super().readinto(b)
            lag.append(self.pos - sent[0])
            return n

    session.put_object("bounded.bin", Watched(data, step=MiB), progress=progress)
    # At every read, what was read but not yet sent stays within the buffers allowed:
    # `concurrency` parts in flight plus the one being filled.
    assert max(lag) <= (concurrency + 1) * PART
    assert session.get_object("bounded.bin").data == data


def test_small_stream_is_one_put_with_hash(session: S3Session) -> None:
    data = blob(MiB, seed=7)
    resp = session.put_object("s.bin", Pipe(data))
    assert resp.etag == hashlib.md5(data).hexdigest()
    assert session.head_object("s.bin").metadata == hashes(data)


def test_conditional_put_stays_single_part(session: S3Session) -> None:
    data = blob(8 * MiB, seed=8)
    resp = session.put_object("c.bin", data, if_none_match="*")
    assert resp.etag == hashlib.md5(data).hexdigest()
    resp = session.put_object("c.bin", Pipe(data), if_match=resp.etag)
    assert resp.etag == hashlib.md5(data).hexdigest()


def test_part_size_below_minimum_is_refused(session: S3Session, tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(blob(7 * MiB))
    with pytest.raises(ConfigurationError, match="minimum"):
        session.upload_file("k", path, part_size=MiB)


# -- upload_file ------------------------------------------------------------------------------


def test_upload_file_large_and_small(session: S3Session, tmp_path: Path, boto3_client: Any) -> None:
    data = blob(16 * MiB + 1, seed=9)
    path = tmp_path / "big"
    path.write_bytes(data)
    progress = Progress()
    resp = session.upload_file("dir/big", path, metadata={"k": "v"}, progress=progress)
    progress.check(len(data))
    assert resp.etag and resp.etag.endswith("-4")
    body, obj = boto_get(boto3_client, session.bucket, "dir/big")
    assert body == data and obj["Metadata"] == {"k": "v", **hashes(data)}

    small = tmp_path / "small"
    small.write_bytes(b"hello")
    progress = Progress()
    resp = session.upload_file("dir/small", str(small), progress=progress)
    progress.check(5)
    assert session.head_object("dir/small").metadata == hashes(b"hello")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    session.upload_file("dir/empty", empty)
    assert session.get_object("dir/empty").data == b""
    assert session.head_object("dir/empty").metadata == hashes(b"")


def test_upload_file_trusts_given_hash(session: S3Session, tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"content")
    session.upload_file("k", path, metadata={"s3func-sha256": "ab" * 32})
    assert session.head_object("k").metadata["s3func-sha256"] == "ab" * 32


def test_upload_file_reads_by_offset_not_whole(session: S3Session, tmp_path: Path) -> None:
    data = blob(40 * MiB, seed=10)
    path = tmp_path / "f"
    path.write_bytes(data)
    del data
    tracemalloc.start()
    try:
        session.upload_file("k", path, concurrency=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Blocks of 1 MiB per connection and per pre-pass step, never parts or the file.
    assert peak < 16 * MiB, peak


def test_upload_file_missing_path(session: S3Session, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        session.upload_file("k", tmp_path / "nope")


# -- download_file ----------------------------------------------------------------------------


def test_download_file_parallel_verifies_stored_hash(session: S3Session, tmp_path: Path) -> None:
    data = blob(23 * MiB + 11, seed=11)
    session.put_object("obj", data)
    target = tmp_path / "out.bin"
    progress = Progress()
    resp = session.download_file("obj", target, progress=progress, part_size=4 * MiB)
    progress.check(len(data))
    assert target.read_bytes() == data
    assert resp.content_length == len(data) and resp.metadata["s3func-sha256"] == sha(data)
    assert sorted(os.listdir(tmp_path)) == ["out.bin"]


def test_download_file_md5_of_single_part_object(
    session: S3Session, tmp_path: Path, boto3_client: Any
) -> None:
    data = blob(9 * MiB, seed=12)
    boto3_client.put_object(Bucket=session.bucket, Key="plain", Body=data)
    target = tmp_path / "plain"
    session.download_file("plain", target, part_size=2 * MiB)
    assert target.read_bytes() == data


def test_download_file_small_empty_and_version(session: S3Session, tmp_path: Path) -> None:
    session.put_object("small", b"hello")
    session.put_object("empty", b"")
    session.download_file("small", tmp_path / "s")
    session.download_file("empty", tmp_path / "e")
    assert (tmp_path / "s").read_bytes() == b"hello"
    assert (tmp_path / "e").read_bytes() == b""
    session.put_bucket_versioning(True)
    first = session.put_object("v", b"one")
    session.put_object("v", b"two")
    session.download_file("v", tmp_path / "v", version_id=first.version_id)
    assert (tmp_path / "v").read_bytes() == b"one"


def test_download_file_bad_hash_leaves_existing_file(session: S3Session, tmp_path: Path) -> None:
    data = blob(12 * MiB, seed=13)
    # A wrong stored hash stands in for corrupted data: the check must catch it.
    session.put_object("bad", data, metadata={"s3func-sha256": "0" * 64, "s3func-crc32": "0" * 8})
    target = tmp_path / "t"
    target.write_bytes(b"precious")
    with pytest.raises(IntegrityError) as info:
        session.download_file("bad", target, part_size=4 * MiB)
    assert info.value.algorithm == "crc32"
    assert target.read_bytes() == b"precious"
    assert sorted(os.listdir(tmp_path)) == ["t"]
    with pytest.raises(IntegrityError):
        session.download_file("bad", target)  # one GET (the object fits a default range)
    assert target.read_bytes() == b"precious"
    session.download_file("bad", target, verify=False, part_size=4 * MiB)
    assert target.read_bytes() == data


def test_download_file_missing_key(session: S3Session, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        session.download_file("nope", tmp_path / "x")
    assert os.listdir(tmp_path) == []


def test_download_file_keeps_mode_of_existing_file(session: S3Session, tmp_path: Path) -> None:
    session.put_object("k", b"data")
    target = tmp_path / "t"
    target.write_bytes(b"old")
    target.chmod(0o640)
    session.download_file("k", target)
    assert target.stat().st_mode & 0o777 == 0o640


def test_progress_bar(session: S3Session, tmp_path: Path) -> None:
    pytest.importorskip("tqdm")
    path = tmp_path / "f"
    path.write_bytes(blob(7 * MiB))
    out = io.StringIO()
    with ProgressBar(desc="up", file=out, mininterval=0) as bar:
        session.upload_file("k", path, progress=bar)
    assert "100%" in out.getvalue()


# -- payload signing and checksums ------------------------------------------------------------


def _puts(proxy: Any) -> list[Any]:
    return [r for r in proxy.records if r.method == "PUT"]


def test_payload_is_signed_over_http_by_default(
    seaweedfs: Any, s3_session: S3Session, fault_proxy: Any, tmp_path: Path
) -> None:
    data = blob(11 * MiB, seed=20)
    path = tmp_path / "f"
    path.write_bytes(data)
    with seaweedfs.session(s3_session.bucket, endpoint_url=fault_proxy.url) as via:
        via.part_size = PART
        via.multipart_threshold = 6 * MiB
        via.upload_file("signed", path)
        via.put_object("signed-small", b"abc")
    parts = sorted(_puts(fault_proxy)[:-1], key=lambda r: r.query)
    expected = [sha(data[i : i + PART]) for i in range(0, len(data), PART)]
    assert [r.header("x-amz-content-sha256") for r in parts] == expected
    assert _puts(fault_proxy)[-1].header("x-amz-content-sha256") == sha(b"abc")
    assert not any(
        k.lower().startswith("x-amz-checksum") for r in fault_proxy.records for k, _ in r.headers
    )  # no flexible checksums on a non-AWS endpoint


def test_sync_uploads_sign_with_the_hash_they_store(
    seaweedfs: Any, s3_session: S3Session, fault_proxy: Any, tmp_path: Path
) -> None:
    # S3Object hashes each small file once and hands the SHA-256 to the session as the
    # payload hash; the server here does not check it, so the wire is checked instead.
    from s3func import S3Object

    files = {"a.txt": b"alpha", "b.bin": os.urandom(3000)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with seaweedfs.session(s3_session.bucket, endpoint_url=fault_proxy.url) as via:
        S3Object(f"s3://{s3_session.bucket}/sync/", local_path=tmp_path, session=via).upload()
    puts = {r.target.rsplit("/", 1)[1]: r for r in _puts(fault_proxy)}
    for name, data in files.items():
        record = puts[name]
        assert record.body == data
        assert record.header("x-amz-content-sha256") == sha(data)
        assert record.header("x-amz-meta-s3func-sha256") == sha(data)
    assert s3_session.get_object("sync/b.bin").data == files["b.bin"]


def test_unsigned_payload_and_crc32_checksums(
    seaweedfs: Any, s3_session: S3Session, fault_proxy: Any
) -> None:
    import base64
    import zlib

    data = blob(11 * MiB, seed=21)
    with seaweedfs.session(
        s3_session.bucket, endpoint_url=fault_proxy.url, payload_signing="never", checksum="crc32"
    ) as via:
        via.part_size = PART
        via.multipart_threshold = 6 * MiB
        via.put_object("crc", data)
        via.put_object("crc-small", b"hello")
    create = next(r for r in fault_proxy.records if r.method == "POST" and "uploads" in r.query)
    assert create.header("x-amz-checksum-algorithm") == "CRC32"
    puts = _puts(fault_proxy)
    assert {r.header("x-amz-content-sha256") for r in puts} == {"UNSIGNED-PAYLOAD"}

    def crc(b: bytes) -> str:
        return base64.b64encode(zlib.crc32(b).to_bytes(4, "big")).decode()

    parts = sorted(puts[:-1], key=lambda r: r.query)
    assert [r.header("x-amz-checksum-crc32") for r in parts] == [
        crc(data[i : i + PART]) for i in range(0, len(data), PART)
    ]
    assert puts[-1].header("x-amz-checksum-crc32") == crc(b"hello")
    # SeaweedFS checks these checksums: both objects were accepted and read back intact.
    assert s3_session.get_object("crc").data == data


def test_checksum_defaults_by_endpoint() -> None:
    aws = S3Session("AKIDEXAMPLE", "secret", bucket="b", region="us-east-1")
    assert aws._checksum == "crc32" and not aws._sign_payload  # HTTPS: unsigned payload
    other = S3Session("AKIDEXAMPLE", "secret", bucket="b", endpoint_url="http://127.0.0.1:9")
    assert other._checksum is None and other._sign_payload
    assert other._part_digests == ("sha256",)
    with pytest.raises(ConfigurationError):
        S3Session("AKIDEXAMPLE", "secret", bucket="b", checksum="md5")  # type: ignore[arg-type]
