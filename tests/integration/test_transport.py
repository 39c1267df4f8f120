"""The transport: pools, timeouts, the retry loop and error translation, through a fault proxy."""

from __future__ import annotations

import http.client
import io
import logging
import socket
import struct
import sys
import threading
import time
from typing import Any

import certifi
import pytest
import urllib3

from s3func import (
    ConnectError,
    PoolTimeoutError,
    RetryPolicy,
    S3Session,
    ServerError,
    ServiceError,
    ThrottledError,
    TransportTimeout,
)
from s3func._http import Transport, _KernelTimeoutSocket

# -- pools and timeouts --------------------------------------------------------------------


def test_one_pool_per_endpoint_and_connection_reuse(s3_session: S3Session) -> None:
    for i in range(20):
        s3_session.put_object(f"k{i}", b"x")
        s3_session.head_object(f"k{i}")
        assert s3_session.get_object(f"k{i}").data == b"x"
    pools = s3_session.transport._pools
    assert len(pools) == 1
    (pool,) = pools.values()
    assert pool.num_connections == 1  # one keep-alive connection served all 60 requests


def test_timeouts_are_connect_and_read_never_total(seaweedfs: Any) -> None:
    transport = Transport(connect_timeout=3, read_timeout=7)
    timeout = transport.pool("http", "127.0.0.1", 1).timeout
    assert isinstance(timeout, urllib3.Timeout)
    assert (timeout.connect_timeout, timeout.read_timeout, timeout.total) == (3, 7, None)
    # On the wire: the socket of a used connection carries the read (idle) timeout.
    session = seaweedfs.session(seaweedfs.bucket, connect_timeout=3, read_timeout=7)
    session.put_object("timeouts", b"x")
    (pool,) = session.transport._pools.values()
    (conn,) = [c for c in pool.pool.queue if c is not None]
    assert conn.sock.gettimeout() == 7
    session.delete_object("timeouts")
    session.close()


def test_ca_bundle_certifi_and_ssl_cert_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    assert Transport().pool("https", "example.invalid", 443).ca_certs == certifi.where()
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    assert Transport().pool("https", "example.invalid", 443).ca_certs == str(bundle)
    explicit = Transport(ca_bundle="/explicit.pem").pool("https", "example.invalid", 443)
    assert explicit.ca_certs == "/explicit.pem"


# -- the retry loop ------------------------------------------------------------------------


def test_5xx_retried_with_rewound_body(proxied_s3_session: S3Session, fault_proxy: Any) -> None:
    fault_proxy.fail(500, "InternalError", method="PUT", times=2)
    body = io.BytesIO(b"0123456789" * 1000)
    proxied_s3_session.put_object("retried", body)
    puts = [r for r in fault_proxy.records if r.method == "PUT"]
    assert [r.status for r in puts] == [500, 500, 200]
    # every attempt carried a complete, freshly signed request
    assert all(r.header("authorization") for r in puts)
    assert {r.header("content-length") for r in puts} == {"10000"}
    assert proxied_s3_session.get_object("retried").data == b"0123456789" * 1000


def test_slowdown_exhausts_attempts_as_throttled(
    proxied_s3_session: S3Session, fault_proxy: Any
) -> None:
    fault_proxy.fail(503, "SlowDown", method="GET", times=None)
    proxied_s3_session.put_object("k", b"x")
    with pytest.raises(ThrottledError) as info:
        proxied_s3_session.get_object("k")
    exc = info.value
    assert exc.code == "SlowDown" and exc.status == 503 and exc.attempts == 5
    assert len([r for r in fault_proxy.records if r.method == "GET"]) == 5


def test_retry_after_is_honoured_but_capped(
    proxied_s3_session: S3Session, fault_proxy: Any
) -> None:
    slept: list[float] = []
    proxied_s3_session.transport._sleep = slept.append
    proxied_s3_session.transport.retry = RetryPolicy(max_attempts=3, max_retry_after=0.25)
    fault_proxy.fail(429, "SlowDown", retry_after=30, method="HEAD", times=1)
    fault_proxy.fail(429, "SlowDown", retry_after=0.1, method="HEAD", times=1)
    proxied_s3_session.put_object("k", b"x")
    proxied_s3_session.head_object("k")
    assert slept == [0.25, 0.1]


def test_client_errors_are_not_retried(proxied_s3_session: S3Session, fault_proxy: Any) -> None:
    fault_proxy.fail(400, "InvalidArgument", method="PUT", times=1)
    with pytest.raises(ServiceError) as info:
        proxied_s3_session.put_object("k", b"x")
    assert info.value.code == "InvalidArgument" and info.value.attempts == 1
    assert len(fault_proxy.records) == 1


def test_dropped_connection_retried_for_idempotent(
    proxied_s3_session: S3Session, fault_proxy: Any
) -> None:
    proxied_s3_session.put_object("k", b"x")
    fault_proxy.drop(method="HEAD", times=2)
    assert proxied_s3_session.head_object("k").content_length == 1


def test_read_timeout_retried_then_typed(
    seaweedfs: Any, s3_session: S3Session, fault_proxy: Any
) -> None:
    session = seaweedfs.session(
        s3_session.bucket,
        endpoint_url=fault_proxy.url,
        read_timeout=0.3,
        retry=RetryPolicy(max_attempts=2, base_delay=0.0),
    )
    session.put_object("slow", b"x")
    rule = fault_proxy.stall(method="HEAD", before_headers=True, seconds=5, times=1)
    assert session.head_object("slow").content_length == 1  # second attempt answered
    assert rule.hits == 1
    fault_proxy.stall(method="HEAD", before_headers=True, seconds=5, times=None)
    start = time.monotonic()
    with pytest.raises(TransportTimeout) as info:
        session.head_object("slow")
    assert isinstance(info.value, TimeoutError) and info.value.attempts == 2
    assert time.monotonic() - start < 4  # two read timeouts, not the stall length
    assert "read timeout" in str(info.value)
    fault_proxy.release_all()


def test_plain_http_timeouts_kept_by_the_kernel(seaweedfs: Any, s3_session: S3Session) -> None:
    session = seaweedfs.session(s3_session.bucket, read_timeout=7.5)
    session.put_object("k", b"v")
    pool = next(iter(session.transport._pools.values()))
    conn = pool.pool.queue[-1]
    if sys.platform.startswith("linux"):
        # Blocking socket (no poll before each call), the limit set with SO_RCVTIMEO.
        assert isinstance(conn.sock, _KernelTimeoutSocket)
        raw = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)
        assert struct.unpack("ll", raw) == (7, 500000)
    assert conn.sock.gettimeout() == 7.5
    assert session.get_object("k").data == b"v"  # the connection is reused


def test_small_request_head_and_body_go_in_one_send(
    s3_session: S3Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    sends: list[int] = []
    real_send = http.client.HTTPConnection.send

    def counting_send(self: http.client.HTTPConnection, data: Any) -> None:
        sends.append(len(data))
        real_send(self, data)

    monkeypatch.setattr(http.client.HTTPConnection, "send", counting_send)
    body = bytes(range(256)) * 16
    s3_session.put_object("small", body)
    assert len(sends) == 1 and sends[0] > len(body)  # head + body
    sends.clear()
    big = bytes(200 << 10)  # above the limit: head, then body
    s3_session.put_object("bigger", big)
    assert len(sends) == 2 and sends[1] == len(big)
    sends.clear()
    assert s3_session.get_object("small").data == body  # no body: the head alone
    assert len(sends) == 1
    assert s3_session.get_object("bigger").data == big


def test_server_that_stops_reading_the_body_ends_in_timeout() -> None:
    # Accepts, then reads nothing: the socket buffers fill and the send stalls.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        held: list[socket.socket] = []
        accepted = threading.Thread(target=lambda: held.append(listener.accept()[0]))
        accepted.start()
        session = S3Session(
            access_key_id="a",
            access_key="b",
            bucket="b",
            endpoint_url=f"http://127.0.0.1:{listener.getsockname()[1]}",
            read_timeout=0.3,
            retry=RetryPolicy(max_attempts=1),
        )
        session.multipart_threshold = 1 << 30
        start = time.monotonic()
        try:
            with pytest.raises(TransportTimeout) as info:
                session.put_object("k", bytes(64 << 20))
        finally:
            accepted.join(5)
            for sock in held:
                sock.close()
        assert time.monotonic() - start < 10
        assert not isinstance(info.value, BlockingIOError)
        assert isinstance(info.value.__cause__, TimeoutError)


def test_connection_refused_and_no_raw_exceptions() -> None:
    session = S3Session(
        access_key_id="a",
        access_key="b",
        bucket="b",
        endpoint_url="http://127.0.0.1:9",
        retry=RetryPolicy(max_attempts=3, base_delay=0.0),
    )
    with pytest.raises(ConnectError) as info:
        session.head_object("k")
    assert info.value.attempts == 3
    assert isinstance(info.value.__cause__, urllib3.exceptions.HTTPError)
    assert not isinstance(info.value, urllib3.exceptions.HTTPError | OSError)


def test_many_open_streams_raise_pool_timeout(seaweedfs: Any, s3_session: S3Session) -> None:
    session = seaweedfs.session(s3_session.bucket, max_connections=2, pool_timeout=0.3)
    session.put_object("big", b"z" * 2_000_000)
    first = session.get_object("big")
    second = session.get_object("big")
    start = time.monotonic()
    with pytest.raises(PoolTimeoutError) as info:
        session.get_object("big")
    assert time.monotonic() - start < 3
    assert "close them" in str(info.value)
    first.close()  # discards the unread connection and frees a slot
    assert session.get_object("big").data == b"z" * 2_000_000
    second.close()


# -- error documents -----------------------------------------------------------------------

_COPY_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>copy failed late</Message><RequestId>R</RequestId></Error>"
)


def test_copy_200_with_error_body(proxied_s3_session: S3Session, fault_proxy: Any) -> None:
    proxied_s3_session.put_object("src", b"data")

    def is_copy(record: Any) -> bool:
        return record.header("x-amz-copy-source") is not None

    fault_proxy.fail(200, body=_COPY_ERROR, when=is_copy, times=1)
    proxied_s3_session.copy_object("src", "dst")  # retried once, then succeeds
    assert proxied_s3_session.get_object("dst").data == b"data"
    fault_proxy.fail(200, body=_COPY_ERROR, when=is_copy, times=None)
    with pytest.raises(ServerError) as info:
        proxied_s3_session.copy_object("src", "dst2")
    assert info.value.status == 200 and info.value.code == "InternalError"
    assert "copy failed late" in str(info.value)


def test_delete_objects_reports_failed_keys(
    proxied_s3_session: S3Session, fault_proxy: Any
) -> None:
    for key in ("ok", "locked-1", "locked-2"):
        proxied_s3_session.put_object(key, b"x")
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?><DeleteResult>'
        b"<Deleted><Key>ok</Key></Deleted>"
        b"<Error><Key>locked-1</Key><Code>AccessDenied</Code><Message>no</Message></Error>"
        b"<Error><Key>locked-2</Key><Code>AccessDenied</Code><Message>no</Message></Error>"
        b"</DeleteResult>"
    )
    fault_proxy.fail(200, body=body, query="delete", times=1)
    with pytest.raises(ServiceError) as info:
        proxied_s3_session.delete_objects(["ok", "locked-1", "locked-2"])
    assert "locked-1" in str(info.value) and "locked-2" in str(info.value)
    assert [k for k, _, _ in info.value.failed] == ["locked-1", "locked-2"]  # type: ignore[attr-defined]


def test_truncated_listing_without_token_never_loops(
    proxied_s3_session: S3Session, fault_proxy: Any
) -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult>'
        b"<Contents><Key>a</Key><Size>1</Size></Contents>"
        b"<IsTruncated>true</IsTruncated></ListBucketResult>"
    )
    fault_proxy.fail(200, body=body, query="list-type=2", times=None)
    listing = proxied_s3_session.list_objects().iter_objects()
    assert next(listing).key == "a"
    with pytest.raises(ServerError, match="continuation token"):
        next(listing)


def test_retry_logs_never_show_secrets(
    seaweedfs: Any,
    proxied_s3_session: S3Session,
    fault_proxy: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fault_proxy.fail(503, "ServiceUnavailable", times=2)
    with caplog.at_level(logging.DEBUG, logger="s3func"):
        proxied_s3_session.put_object("logged", b"x")
    assert "retrying PUT" in caplog.text
    assert seaweedfs.access_key not in caplog.text
    assert "Signature=" not in caplog.text and "X-Amz-Signature" not in caplog.text
