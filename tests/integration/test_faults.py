"""Faults injected by a loopback proxy in front of the real SeaweedFS (tests/proxy.py).

Bodies cut or stalled mid-stream are resumed with identical bytes, error statuses are
retried, a replaced object gives a clear error, and failed uploads leave no multipart
upload behind.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy import FaultProxy, Record
from s3func import (
    IncompleteBodyError,
    NotSupportedError,
    PreconditionFailedError,
    RetryPolicy,
    S3Session,
    ServerError,
    TransportError,
)

MiB = 1 << 20
FAST = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.05)


def blob(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 2048
    return (block * (-(-size // len(block))))[:size]


@pytest.fixture
def proxied(proxied_s3_session: S3Session) -> S3Session:
    proxied_s3_session.part_size = 5 * MiB
    proxied_s3_session.multipart_threshold = 6 * MiB
    proxied_s3_session.max_concurrency = 3
    return proxied_s3_session


@pytest.fixture
def impatient(
    seaweedfs: Any, s3_session: S3Session, fault_proxy: FaultProxy
) -> Iterator[S3Session]:
    """Through the proxy, with a short read timeout (stalls end in a timeout quickly)."""
    session = seaweedfs.session(
        s3_session.bucket, endpoint_url=fault_proxy.url, retry=FAST, read_timeout=0.5
    )
    try:
        yield session
    finally:
        fault_proxy.release_all()
        session.close()


def gets(proxy: FaultProxy) -> list[Record]:
    return [r for r in proxy.records if r.method == "GET"]


def uploads_left(s3_session: S3Session, boto3_client: Any) -> list[Any]:
    ours = s3_session.list_multipart_uploads()
    theirs = boto3_client.list_multipart_uploads(Bucket=s3_session.bucket).get("Uploads", [])
    assert len(ours) == len(theirs)
    return ours


# -- streaming GET ----------------------------------------------------------------------------


def test_cut_body_is_resumed_with_identical_bytes(
    s3_session: S3Session, proxied: S3Session, fault_proxy: FaultProxy
) -> None:
    data = blob(3 * MiB + 5, seed=1)
    etag = s3_session.put_object("k", data).etag
    cut = 1_000_003
    fault_proxy.cut(after_bytes=cut, method="GET", times=2)
    resp = proxied.get_object("k")
    assert resp.data == data
    assert resp.resumes == 2
    first, second, third = gets(fault_proxy)
    assert first.header("range") is None
    assert second.header("range") == f"bytes={cut}-"
    assert second.header("if-match") == f'"{etag}"'
    assert third.header("range") == f"bytes={2 * cut}-"


def test_stalled_body_times_out_and_is_resumed(
    s3_session: S3Session, impatient: S3Session, fault_proxy: FaultProxy
) -> None:
    data = blob(2 * MiB, seed=2)
    s3_session.put_object("k", data)
    stall = fault_proxy.stall(seconds=60, after_bytes=300_000, method="GET")
    with impatient.get_object("k") as resp:
        chunks = list(resp.iter_chunks(64 * 1024))
    assert stall.hits == 1
    assert b"".join(chunks) == data
    assert resp.resumes == 1
    # Resumed from the last byte delivered (a read cut short by the timeout is re-fetched).
    resumed_at = int((gets(fault_proxy)[1].header("range") or "").split("=")[1].rstrip("-"))
    assert 0 < resumed_at <= 300_000


def test_closing_a_stalled_body_does_not_hang(
    s3_session: S3Session, proxied: S3Session, fault_proxy: FaultProxy
) -> None:
    s3_session.put_object("k", blob(4 * MiB, seed=3))
    fault_proxy.stall(seconds=60, after_bytes=200_000, method="GET")
    resp = proxied.get_object("k")
    assert len(resp.read(1000)) == 1000
    started = time.monotonic()
    resp.close()
    assert time.monotonic() - started < 5  # no drain of a stalled body
    fault_proxy.release_all()
    assert proxied.head_object("k").content_length == 4 * MiB


def test_replaced_object_mid_stream_is_a_clear_error(
    s3_session: S3Session, proxied: S3Session, fault_proxy: FaultProxy
) -> None:
    s3_session.put_object("k", blob(3 * MiB, seed=4))
    fault_proxy.cut(after_bytes=MiB, method="GET")
    resp = proxied.get_object("k")
    assert len(resp.read(1000)) == 1000
    s3_session.put_object("k", blob(3 * MiB, seed=5))  # replaced while being read
    with pytest.raises(PreconditionFailedError, match="changed while it was being read"):
        resp.read()
    resp.close()
    assert gets(fault_proxy)[-1].status == 412


@pytest.mark.parametrize(
    ("status", "code", "retry_after"),
    [
        (500, "InternalError", None),
        (503, "SlowDown", None),
        (503, "ServiceUnavailable", None),
        (429, "TooManyRequests", 0),
    ],
)
def test_error_statuses_are_retried(
    s3_session: S3Session,
    proxied: S3Session,
    fault_proxy: FaultProxy,
    status: int,
    code: str,
    retry_after: float | None,
) -> None:
    fault_proxy.fail(status, code, method="PUT", times=2, retry_after=retry_after)
    proxied.put_object("k", b"payload")
    fault_proxy.fail(status, code, method="GET", times=2, retry_after=retry_after)
    assert proxied.get_object("k").data == b"payload"
    statuses = [(r.method, r.status) for r in fault_proxy.records]
    assert statuses == [("PUT", status)] * 2 + [("PUT", 200)] + [("GET", status)] * 2 + [
        ("GET", 200)
    ]


# -- multipart uploads ------------------------------------------------------------------------


def test_failed_upload_leaves_no_multipart_upload(
    s3_session: S3Session,
    proxied: S3Session,
    fault_proxy: FaultProxy,
    boto3_client: Any,
    tmp_path: Path,
) -> None:
    path = tmp_path / "f"
    path.write_bytes(blob(17 * MiB, seed=6))
    rule = fault_proxy.fail(500, "InternalError", method="PUT", query="partNumber=3", times=None)
    with pytest.raises(ServerError):
        proxied.upload_file("k", path)
    assert rule.hits == FAST.max_attempts  # part 3 was retried on its own
    assert uploads_left(s3_session, boto3_client) == []
    assert [r.method for r in fault_proxy.records if "uploadId=" in r.query][-1] == "DELETE"
    assert not s3_session.exists("k")
    # The same for a stream of unknown length, failing on its last part.
    fault_proxy.reset()

    def chunks() -> Iterator[bytes]:
        yield from (blob(MiB, seed=i) for i in range(12))

    fault_proxy.fail(500, "InternalError", method="PUT", query="partNumber=3", times=None)
    with pytest.raises(ServerError):
        proxied.put_object("k2", chunks())
    assert uploads_left(s3_session, boto3_client) == []


def test_failure_in_the_source_aborts_the_upload(
    s3_session: S3Session, proxied: S3Session, boto3_client: Any
) -> None:
    def chunks() -> Iterator[bytes]:
        for i in range(8):
            yield blob(MiB, seed=i)
        raise OSError("the producer died")

    with pytest.raises(OSError, match="producer died"):
        proxied.put_object("k", chunks())
    assert uploads_left(s3_session, boto3_client) == []


def test_complete_answered_200_with_error_is_retried(
    s3_session: S3Session, proxied: S3Session, fault_proxy: FaultProxy
) -> None:
    data = blob(11 * MiB, seed=7)
    fault_proxy.fail(200, "InternalError", method="POST", query="uploadId=")
    resp = proxied.put_object("k", data)
    completes = [r for r in fault_proxy.records if r.method == "POST" and "uploadId=" in r.query]
    assert [r.status for r in completes] == [200, 200]
    assert resp.etag == s3_session.head_object("k").etag
    assert s3_session.get_object("k").data == data


def test_complete_whose_answer_was_lost(
    s3_session: S3Session, proxied: S3Session, fault_proxy: FaultProxy
) -> None:
    data = blob(11 * MiB, seed=8)
    fault_proxy.cut(after_bytes=0, method="POST", query="uploadId=")
    resp = proxied.put_object("k", data)
    completes = [r for r in fault_proxy.records if r.method == "POST" and "uploadId=" in r.query]
    assert len(completes) == 2  # the retry found the upload completed
    assert resp.etag == s3_session.head_object("k").etag
    assert s3_session.get_object("k").data == data


def test_retried_parts_are_counted_once(
    proxied: S3Session, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    data = blob(16 * MiB, seed=9)
    path = tmp_path / "f"
    path.write_bytes(data)
    rule = fault_proxy.drop(method="PUT", query="partNumber=2", times=2)
    calls: list[int] = []
    proxied.upload_file("k", path, progress=lambda done, total: calls.append(done))
    assert rule.hits == 2
    assert calls == sorted(calls) and calls[-1] == len(data)
    assert max(calls) <= len(data)


# -- download_file ----------------------------------------------------------------------------


def test_download_file_resumes_cut_ranges(
    s3_session: S3Session, proxied: S3Session, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    data = blob(20 * MiB + 3, seed=10)
    s3_session.put_object("k", data)
    fault_proxy.cut(after_bytes=700_000, method="GET", times=4)
    target = tmp_path / "out"
    proxied.download_file("k", target, part_size=4 * MiB)
    assert target.read_bytes() == data
    resumed = [r for r in gets(fault_proxy) if r.header("if-match")]
    assert len(resumed) >= 4


def test_download_file_of_replaced_object_keeps_existing_file(
    s3_session: S3Session, proxied: S3Session, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    s3_session.put_object("k", blob(12 * MiB, seed=11))
    target = tmp_path / "out"
    target.write_bytes(b"precious")
    replaced: list[bool] = []

    def replace_on_third_range(record: Record) -> bool:
        if record.method == "GET" and len(gets(fault_proxy)) == 3 and not replaced:
            replaced.append(True)
            s3_session.put_object("k", blob(12 * MiB, seed=12))  # straight to the server
        return False

    fault_proxy.fail(500, when=replace_on_third_range, times=None)
    with pytest.raises(PreconditionFailedError):
        proxied.download_file("k", target, part_size=4 * MiB, concurrency=1)
    assert replaced
    assert target.read_bytes() == b"precious"
    assert os.listdir(tmp_path) == ["out"]


def test_download_file_failing_leaves_existing_file(
    s3_session: S3Session, proxied: S3Session, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    s3_session.put_object("k", blob(12 * MiB, seed=13))
    target = tmp_path / "out"
    target.write_bytes(b"precious")
    fault_proxy.fail(
        500,
        "InternalError",
        method="GET",
        times=None,
        when=lambda r: not (r.header("range") or "").startswith("bytes=0-"),
    )
    with pytest.raises(ServerError):
        proxied.download_file("k", target, part_size=4 * MiB)
    assert target.read_bytes() == b"precious"
    assert os.listdir(tmp_path) == ["out"]


def test_download_file_body_failures_exhausted(
    s3_session: S3Session, impatient: S3Session, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    s3_session.put_object("k", blob(6 * MiB, seed=14))
    target = tmp_path / "out"
    fault_proxy.cut(
        after_bytes=0, method="GET", times=None, when=lambda r: bool(r.header("if-match"))
    )
    fault_proxy.cut(after_bytes=100, method="GET", times=1)
    with pytest.raises((IncompleteBodyError, TransportError)):
        impatient.download_file("k", target)
    assert not target.exists() and os.listdir(tmp_path) == []


# -- servers that answer ranges their own way -------------------------------------------------


def ranged(record: Record) -> bool:
    return record.method == "GET" and record.header("range") is not None


def test_range_answered_200_with_content_range(
    s3_session: S3Session, proxied: S3Session, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    # rclone serve s3 answers a range with 200 and a correct Content-Range: the body is that
    # range, not the object, so it must not be checked against the whole-object checksum.
    data = blob(13 * MiB + 7, seed=20)
    s3_session.put_object("k", data)
    rule = fault_proxy.rewrite(200, when=ranged, times=None)
    with proxied.get_object("k", offset=0, length=1000) as head:
        assert (head.status, head.offset, head.object_size) == (200, 0, len(data))
        assert head.read() == data[:1000]
    with proxied.get_object("k", offset=5 * MiB, length=1000) as middle:
        assert (middle.offset, middle.read()) == (5 * MiB, data[5 * MiB : 5 * MiB + 1000])
    target = tmp_path / "out"
    proxied.download_file("k", target, part_size=4 * MiB)
    assert target.read_bytes() == data
    assert rule.hits == 2 + 4


def test_resume_answered_200_with_content_range(
    s3_session: S3Session, proxied: S3Session, fault_proxy: FaultProxy
) -> None:
    data = blob(3 * MiB, seed=21)
    s3_session.put_object("k", data)
    fault_proxy.cut(after_bytes=1_000_000, method="GET")
    rule = fault_proxy.rewrite(200, when=ranged, times=None)
    with proxied.get_object("k") as resp:
        assert resp.read() == data
        assert resp.resumes == 1
    assert rule.hits == 1


def test_server_ignoring_range_is_a_clear_error(
    s3_session: S3Session, proxied: S3Session, fault_proxy: FaultProxy
) -> None:
    s3_session.put_object("k", blob(MiB, seed=22))
    fault_proxy.rewrite(200, remove_headers=("Content-Range",), when=ranged)
    with pytest.raises(NotSupportedError, match="does not support ranges"):
        proxied.get_object("k", offset=1000, length=10)
    assert proxied.get_object("k", offset=1000, length=10).data == blob(MiB, seed=22)[1000:1010]
