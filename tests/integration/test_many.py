"""Many small transfers at once: ``Transport.send_many`` and the sessions' ``_get_many`` /
``_put_many``, against SeaweedFS through the fault proxy.

S3 sessions multiplex the first attempts on the calling thread; anything ``send`` would retry
goes on through ``send``. These tests pin down both halves: that requests really overlap, and
that every fault ends as it would for a single call.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path
from typing import Any

import pytest

from s3func import (
    ConfigurationError,
    ConnectError,
    IntegrityError,
    NotFoundError,
    RetryPolicy,
    S3Session,
    ThrottledError,
    TransportTimeout,
)
from s3func._transfer import PartReader
from s3func.models import Response
from s3func.response import ObjectResponse
from s3func.sync import S3Object, SyncProgress

KEYS = [f"m/{i:02d}" for i in range(40)]


def _body(key: str) -> bytes:
    return key.encode() * 100


@pytest.fixture
def stored(s3_session: S3Session) -> S3Session:
    for key in KEYS:
        s3_session.put_object(key, _body(key))
    return s3_session


def _get_all(session: S3Session, keys: list[str], concurrency: int = 4) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tag, outcome in session._get_many(((k, k) for k in keys), concurrency=concurrency):
        assert tag not in out
        out[tag] = outcome
    return out


def test_get_many_fetches_every_object_on_a_few_connections(
    stored: S3Session, proxied_s3_session: S3Session, fault_proxy: Any
) -> None:
    got = _get_all(proxied_s3_session, KEYS, concurrency=4)
    assert set(got) == set(KEYS)
    for key, resp in got.items():
        assert isinstance(resp, ObjectResponse)
        assert resp.data == _body(key) and resp.content_length == len(_body(key))
    gets = [r for r in fault_proxy.records if r.method == "GET"]
    assert len(gets) == 40
    assert fault_proxy.connections == 4  # four in flight, each kept alive for the next


def test_get_many_answers_come_as_they_arrive(
    stored: S3Session, proxied_s3_session: S3Session, fault_proxy: Any
) -> None:
    # The first request stalls until every other one has been answered: one thread reads
    # whichever answer is ready instead of waiting in request order.
    rule = fault_proxy.stall(method="GET", path="/m/00$", before_headers=True, seconds=20)
    order = []
    for tag, outcome in proxied_s3_session._get_many(((k, k) for k in KEYS), concurrency=4):
        assert isinstance(outcome, ObjectResponse) and outcome.data == _body(tag)
        order.append(tag)
        if len(order) == len(KEYS) - 1:
            rule.release()
    assert rule.hits == 1
    assert order[-1] == "m/00" and sorted(order) == KEYS


def test_get_many_faults_end_as_for_get_object(
    stored: S3Session, proxied_s3_session: S3Session, fault_proxy: Any
) -> None:
    fault_proxy.fail(503, "SlowDown", method="GET", path="/m/03$", times=1)
    fault_proxy.fail(500, "InternalError", method="GET", path="/m/05$", times=2)
    fault_proxy.cut(after_bytes=10, method="GET", path="/m/07$", times=1)
    fault_proxy.drop(method="GET", path="/m/09$", times=1)
    fault_proxy.fail(503, "SlowDown", method="GET", path="/m/11$", times=None)
    got = _get_all(proxied_s3_session, [*KEYS[:12], "m/missing"])

    for key in KEYS[:12]:
        if key != "m/11":
            assert isinstance(got[key], ObjectResponse) and got[key].data == _body(key)
    statuses = {
        key: [r.status for r in fault_proxy.records if r.path.endswith(key)]
        for key in ("m/03", "m/05", "m/11", "m/missing")
    }
    assert statuses["m/03"] == [503, 200]
    assert statuses["m/05"] == [500, 500, 200]
    throttled = got["m/11"]
    assert isinstance(throttled, ThrottledError) and throttled.attempts == 5
    assert statuses["m/11"] == [503] * 5
    missing = got["m/missing"]
    assert isinstance(missing, NotFoundError) and missing.attempts == 1
    assert statuses["m/missing"] == [404]  # a client error is not tried again


def test_get_many_read_timeout_retried_then_typed(
    seaweedfs: Any, stored: S3Session, fault_proxy: Any
) -> None:
    session = seaweedfs.session(
        stored.bucket,
        endpoint_url=fault_proxy.url,
        read_timeout=0.3,
        retry=RetryPolicy(max_attempts=2, base_delay=0.0),
    )
    once = fault_proxy.stall(method="GET", path="/m/01$", before_headers=True, seconds=5)
    fault_proxy.stall(method="GET", path="/m/02$", before_headers=True, seconds=5, times=None)
    got = _get_all(session, KEYS[:6])
    assert once.hits == 1 and got["m/01"].data == _body("m/01")  # the second attempt answered
    timeout = got["m/02"]
    assert isinstance(timeout, TransportTimeout) and timeout.attempts == 2
    assert "read timeout" in str(timeout)
    assert all(got[k].data == _body(k) for k in KEYS[:6] if k != "m/02")
    fault_proxy.release_all()
    session.close()


def test_get_many_verifies_the_stored_checksum(s3_session: S3Session) -> None:
    s3_session.put_object("bad", b"payload", metadata={"s3func-sha256": "0" * 64})
    s3_session.put_object("good", b"payload", content_sha256=True)
    got = _get_all(s3_session, ["bad", "good"])
    assert isinstance(got["bad"], IntegrityError) and got["bad"].algorithm == "sha256"
    assert got["good"].data == b"payload"


def test_abandoned_many_gives_its_connections_back(seaweedfs: Any, stored: S3Session) -> None:
    session = seaweedfs.session(stored.bucket, max_connections=2, pool_timeout=0.3)
    many = session._get_many(((k, k) for k in KEYS), concurrency=2)
    next(many)
    many.close()  # one answer taken, one request still on the wire: that connection goes
    assert set(_get_all(session, KEYS, concurrency=2)) == set(KEYS)
    assert session.get_object("m/00").data == _body("m/00")
    session.close()


def _reader(data: bytes) -> PartReader:
    return PartReader.from_view(
        memoryview(data), digests={"sha256": hashlib.sha256(data).hexdigest()}
    )


def test_put_many_stores_bodies_and_retries_with_the_same_bytes(
    s3_session: S3Session, proxied_s3_session: S3Session, fault_proxy: Any
) -> None:
    fault_proxy.fail(500, "InternalError", method="PUT", path="/p/3$", times=1)
    items = [
        (i, (f"p/{i}", _reader(b"%d" % i * 3000), {"n": str(i)}, "text/plain")) for i in range(10)
    ]
    items.append((99, ("", _reader(b"x"), {}, None)))  # refused before any request
    got = dict(proxied_s3_session._put_many(iter(items), concurrency=3))
    assert isinstance(got.pop(99), ConfigurationError)
    for i, resp in got.items():
        data = b"%d" % i * 3000
        assert isinstance(resp, Response) and resp.etag == hashlib.md5(data).hexdigest()
        stored = s3_session.get_object(f"p/{i}")
        assert stored.data == data and stored.metadata == {"n": str(i)}
        assert stored.content_type == "text/plain"
    puts = [r for r in fault_proxy.records if r.path.endswith("/p/3")]
    assert [r.status for r in puts] == [500, 200]
    assert puts[0].body == puts[1].body == b"3" * 3000
    assert fault_proxy.connections == 4  # three in flight, and one the retry took from the pool


def test_sync_small_files_overlap(
    proxied_s3_session: S3Session, fault_proxy: Any, tmp_path: Path
) -> None:
    files = {f"f{i}.txt": b"%d" % i * 500 for i in range(10)}
    for rel, data in files.items():
        (tmp_path / "up" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "up" / rel).write_bytes(data)
    uri = f"s3://{proxied_s3_session.bucket}/ov/"

    for method, direction, local in (("PUT", "upload", "up"), ("GET", "download", "down")):
        rule = fault_proxy.stall(method=method, path="/ov/f0.txt$", before_headers=True, seconds=20)

        def progress(p: SyncProgress, rule: Any = rule) -> None:
            if p.files_done == len(files) - 1:  # every other file is done meanwhile
                rule.release()

        obj = S3Object(uri, local_path=tmp_path / local, session=proxied_s3_session)
        getattr(obj, direction)(progress=progress)
        assert rule.hits == 1, direction
        assert obj.last_result is not None
        assert obj.last_result.transferred[-1] == "f0.txt", direction
        assert sorted(obj.last_result.transferred) == sorted(files)
    assert {p.name: p.read_bytes() for p in (tmp_path / "down").iterdir()} == files


def test_unreachable_endpoint_fails_the_rest_fast() -> None:
    with socket.socket() as sock:  # a port nobody listens on: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    session = S3Session(
        access_key_id="AKIDEXAMPLE",
        access_key="not-a-secret",
        bucket="b",
        endpoint_url=f"http://127.0.0.1:{port}",
        region="us-east-1",
        retry=RetryPolicy(max_attempts=3, base_delay=0.01),
    )
    slept: list[float] = []
    session.transport._sleep = slept.append
    got = _get_all(session, KEYS[:20])
    assert all(isinstance(exc, ConnectError) for exc in got.values())
    tried = [exc for exc in got.values() if exc.attempts == 3]
    assert len(tried) == 1 and len(slept) == 2  # one request went through its retries
    rest = [exc for exc in got.values() if exc.attempts == 0]
    assert len(rest) == 19 and all("not sent" in str(exc) for exc in rest)
    session.close()
