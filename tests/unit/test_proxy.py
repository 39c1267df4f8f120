"""FaultProxy (tests/proxy.py) against a tiny local http.server upstream."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from proxy import FaultProxy, Record, Rule, s3_error_body


def _pattern(n: int) -> bytes:
    block = bytes(range(256))
    return (block * (n // 256 + 1))[:n]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Upstream

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _note(self) -> None:
        with self.server.lock:
            self.server.request_lines.append(self.requestline)
            self.server.peers.add(self.client_address)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n"):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.read(2)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._note()
        parts = self.path.split("?", 1)[0].split("/")
        kind = parts[1] if len(parts) > 1 else ""
        if kind == "bytes":
            self._send(200, _pattern(int(parts[2])), {"Content-Type": "application/octet-stream"})
        elif kind == "chunked":
            data = _pattern(int(parts[2]))
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(data), 1000):
                piece = data[i : i + 1000]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif kind == "eof":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(_pattern(int(parts[2])))
            self.close_connection = True
        elif kind == "hang":
            self.server.release.wait(30)
            self._send(200, b"late")
        elif kind == "status":
            self._send(int(parts[2]), b"")
        else:
            self._send(200, json.dumps({"target": self.path}).encode())

    do_HEAD = do_GET

    def do_PUT(self) -> None:
        self._note()
        body = self._read_body()
        echo = {
            "target": self.path,
            "length": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "headers": list(self.headers.items()),
        }
        self._send(200, json.dumps(echo).encode(), {"Content-Type": "application/json"})

    do_POST = do_PUT
    do_DELETE = do_GET


class _Upstream(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.request_lines: list[str] = []
        self.peers: set[Any] = set()
        self.release = threading.Event()


@pytest.fixture(scope="module")
def upstream() -> Iterator[_Upstream]:
    server = _Upstream()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def proxy(upstream: _Upstream) -> Iterator[FaultProxy]:
    with upstream.lock:
        upstream.request_lines.clear()
        upstream.peers.clear()
    host, port = upstream.server_address[:2]
    with FaultProxy(f"http://{host}:{port}") as p:
        yield p


def _conn(proxy: FaultProxy, timeout: float = 10.0) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(proxy.host, proxy.port, timeout=timeout)


def _raw_request(proxy: FaultProxy, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until the proxy closes."""
    with socket.create_connection((proxy.host, proxy.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


# -- forwarding ----------------------------------------------------------------------------


def test_request_target_forwarded_byte_for_byte(proxy: FaultProxy, upstream: _Upstream) -> None:
    target = "/bucket//a/./b/../c%2Fd%20e?list-type=2&prefix=%2F&x=a%20b"
    conn = _conn(proxy)
    conn.request("GET", target, headers={"X-Custom": "Value With  Spaces"})
    resp = conn.getresponse()
    assert json.loads(resp.read()) == {"target": target}
    conn.close()
    assert upstream.request_lines == [f"GET {target} HTTP/1.1"]
    (rec,) = proxy.records
    assert rec.method == "GET"
    assert rec.target == target
    assert rec.raw_target == target.encode()
    assert rec.path == "/bucket//a/./b/../c%2Fd%20e"
    assert rec.query == "list-type=2&prefix=%2F&x=a%20b"
    assert rec.header("x-custom") == "Value With  Spaces"
    assert rec.status == 200
    assert rec.forwarded and rec.fault is None
    assert proxy.forwarded == 1


def test_non_ascii_target_bytes_kept(proxy: FaultProxy, upstream: _Upstream) -> None:
    raw = b"/k\xc3\xa9y?q=\xff"
    out = _raw_request(proxy, b"GET " + raw + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200")
    assert proxy.records[0].raw_target == raw
    assert proxy.records[0].target == raw.decode("latin-1")


def test_keep_alive_on_both_sides(proxy: FaultProxy, upstream: _Upstream) -> None:
    conn = _conn(proxy)
    for n in (10, 0, 70_000):
        conn.request("GET", f"/bytes/{n}")
        assert conn.getresponse().read() == _pattern(n)
    conn.close()
    assert proxy.connections == 1
    assert len(upstream.peers) == 1
    assert [r.connection for r in proxy.records] == [1, 1, 1]
    assert proxy.forwarded == 3


def test_put_body_content_length(proxy: FaultProxy) -> None:
    data = _pattern(3 * 1024 * 1024 + 17)
    conn = _conn(proxy)
    conn.request("PUT", "/b/k", body=data, headers={"Content-Length": str(len(data))})
    echo = json.loads(conn.getresponse().read())
    assert echo["length"] == len(data)
    assert echo["sha256"] == hashlib.sha256(data).hexdigest()
    rec = proxy.records[0]
    assert rec.body_length == len(data)
    assert rec.body == data[: proxy.record_body_limit]
    assert not rec.chunked


def test_put_body_chunked(proxy: FaultProxy) -> None:
    pieces = [b"a" * 10, b"", b"b" * 70_000, b"c"]
    conn = _conn(proxy)
    conn.request("PUT", "/b/chunked", body=iter(pieces), encode_chunked=True)
    echo = json.loads(conn.getresponse().read())
    data = b"".join(pieces)
    assert echo["length"] == len(data)
    assert echo["sha256"] == hashlib.sha256(data).hexdigest()
    rec = proxy.records[0]
    assert rec.chunked
    assert rec.body_length == len(data)
    # keep-alive still works after a chunked body
    conn.request("GET", "/bytes/5")
    assert conn.getresponse().read() == _pattern(5)
    assert proxy.connections == 1


def test_chunked_with_extension_and_trailer_forwarded_raw(proxy: FaultProxy) -> None:
    body = b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"
    out = _raw_request(
        proxy,
        b"PUT /b/t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + body,
    )
    assert out.startswith(b"HTTP/1.1 200")
    echo = json.loads(out.split(b"\r\n\r\n", 1)[1])
    assert echo["length"] == 5
    assert proxy.records[0].body == b"hello"


def test_chunked_response_relayed(proxy: FaultProxy) -> None:
    conn = _conn(proxy)
    conn.request("GET", "/chunked/5555")
    resp = conn.getresponse()
    assert resp.getheader("Transfer-Encoding") == "chunked"
    assert resp.read() == _pattern(5555)
    conn.request("GET", "/bytes/3")
    assert conn.getresponse().read() == _pattern(3)
    assert proxy.connections == 1


def test_eof_delimited_response_closes(proxy: FaultProxy) -> None:
    conn = _conn(proxy)
    conn.request("GET", "/eof/1234")
    resp = conn.getresponse()
    assert resp.read() == _pattern(1234)
    assert resp.will_close


def test_head_and_204_have_no_body(proxy: FaultProxy) -> None:
    conn = _conn(proxy)
    conn.request("HEAD", "/bytes/500")
    resp = conn.getresponse()
    assert resp.getheader("Content-Length") == "500"
    assert resp.read() == b""
    conn.request("GET", "/status/204")
    resp = conn.getresponse()
    assert (resp.status, resp.read()) == (204, b"")
    conn.request("GET", "/bytes/4")
    assert conn.getresponse().read() == _pattern(4)
    assert proxy.connections == 1


def test_expect_100_continue(proxy: FaultProxy) -> None:
    with socket.create_connection((proxy.host, proxy.port), timeout=10) as sock:
        sock.sendall(
            b"PUT /b/e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            interim += sock.recv(1)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"abcd")
        rfile = sock.makefile("rb")
        status = rfile.readline()
        assert status.startswith(b"HTTP/1.1 200"), status  # upstream's own 100 dropped
        length = 0
        while (line := rfile.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        assert json.loads(rfile.read(length))["length"] == 4


def test_upstream_unreachable_gives_502() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    holder.close()  # nothing listens there now
    with FaultProxy(("127.0.0.1", port)) as proxy:
        conn = _conn(proxy)
        conn.request("GET", "/x")
        assert conn.getresponse().status == 502
        assert proxy.records[0].status == 502


def test_bad_request_line_gets_400(proxy: FaultProxy) -> None:
    out = _raw_request(proxy, b"NONSENSE\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400")


# -- injected replies -----------------------------------------------------------------------


def test_fail_slowdown_then_forward(proxy: FaultProxy) -> None:
    rule = proxy.fail(503, "SlowDown", method="PUT", times=2, retry_after=2)
    conn = _conn(proxy)
    for _ in range(2):
        conn.request("PUT", "/b/k", body=b"12345")
        resp = conn.getresponse()
        assert resp.status == 503
        assert resp.getheader("Retry-After") == "2"
        assert resp.getheader("Content-Type") == "application/xml"
        assert b"<Code>SlowDown</Code>" in resp.read()
    conn.request("GET", "/bytes/3")  # other methods are not matched
    assert conn.getresponse().read() == _pattern(3)
    conn.request("PUT", "/b/k", body=b"12345")
    assert json.loads(conn.getresponse().read())["length"] == 5
    assert rule.hits == 2 and rule.remaining == 0 and rule.wait(0)
    assert proxy.connections == 1  # injected replies keep the connection alive
    assert [r.status for r in proxy.records] == [503, 503, 200, 200]
    assert [r.fault for r in proxy.records] == ["reply", "reply", None, None]
    assert [r.forwarded for r in proxy.records] == [False, False, True, True]
    assert proxy.records[0].body_length == 5
    assert proxy.forwarded == 2


def test_fail_variants(proxy: FaultProxy) -> None:
    proxy.fail(500, "InternalError", times=1)
    proxy.fail(429, json={"status": 429, "code": "too_many_requests"}, retry_after=1.5)
    proxy.fail(418, body=b"teapot", headers={"X-A": "b"})
    conn = _conn(proxy)
    conn.request("GET", "/x")
    resp = conn.getresponse()
    assert resp.status == 500
    assert resp.read() == s3_error_body(
        "InternalError", "We encountered an internal error. Please try again."
    )
    conn.request("GET", "/x")
    resp = conn.getresponse()
    assert (resp.status, resp.getheader("Retry-After")) == (429, "1.5")
    assert json.loads(resp.read())["code"] == "too_many_requests"
    conn.request("HEAD", "/x")
    resp = conn.getresponse()
    assert (resp.status, resp.getheader("X-A"), resp.read()) == (418, "b", b"")
    assert resp.getheader("Content-Length") == "6"


def test_matching_by_path_query_and_predicate(proxy: FaultProxy) -> None:
    proxy.fail(500, "InternalError", path=r"^/b/only-this$", times=None)
    proxy.fail(501, "NotImplemented", query="uploads", times=None)
    proxy.fail(502, when=lambda r: r.header("X-Boom") == "1", times=None)
    conn = _conn(proxy)

    def status(method: str, target: str, headers: dict[str, str] | None = None) -> int:
        conn.request(method, target, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status

    assert status("GET", "/b/only-this") == 500
    assert status("GET", "/b/only-this?x=1") == 500
    assert status("GET", "/b/only-this-not") == 200
    assert status("POST", "/b/k?uploads") == 501
    assert status("GET", "/b/k?uploadId=1") == 200
    assert status("GET", "/b/k", {"X-Boom": "1"}) == 502
    assert status("GET", "/b/k", {"X-Boom": "0"}) == 200
    proxy.clear_rules()
    assert status("GET", "/b/only-this") == 200


def test_rule_validation() -> None:
    with pytest.raises(ValueError):
        Rule("explode")
    with pytest.raises(ValueError):
        Rule("cut", after_bytes=-1)


def test_drop_closes_without_answer(proxy: FaultProxy) -> None:
    rule = proxy.drop(method="GET")
    conn = _conn(proxy)
    conn.request("GET", "/bytes/3")
    with pytest.raises(http.client.RemoteDisconnected):
        conn.getresponse()
    conn.close()
    assert rule.wait(0)
    assert proxy.records[0].status is None and not proxy.records[0].forwarded
    conn = _conn(proxy)
    conn.request("GET", "/bytes/3")
    assert conn.getresponse().read() == _pattern(3)


# -- cut and stall -----------------------------------------------------------------------


def test_rewrite_status_and_headers(proxy: FaultProxy) -> None:
    rule = proxy.rewrite(206, remove_headers=("content-type",), path="^/bytes/")
    conn = _conn(proxy)
    conn.request("GET", "/bytes/5000")
    resp = conn.getresponse()
    assert (resp.status, resp.reason) == (206, "Partial Content")
    assert resp.getheader("Content-Type") is None
    assert resp.getheader("Content-Length") == "5000"
    assert resp.read() == _pattern(5000)
    conn.request("GET", "/bytes/10")  # same connection; the rule has fired once
    again = conn.getresponse()
    assert (again.status, again.getheader("Content-Type")) == (200, "application/octet-stream")
    assert again.read() == _pattern(10)
    assert rule.hits == 1
    assert [r.status for r in proxy.records] == [206, 200]


def test_cut_after_k_bytes(proxy: FaultProxy) -> None:
    proxy.cut(after_bytes=1000, path="^/bytes/")
    conn = _conn(proxy)
    conn.request("GET", "/bytes/100000")
    resp = conn.getresponse()
    assert resp.status == 200
    with pytest.raises(http.client.IncompleteRead) as info:
        resp.read()
    assert info.value.partial == _pattern(1000)
    conn.close()
    # the next request works (on a new connection)
    conn = _conn(proxy)
    conn.request("GET", "/bytes/100000")
    assert conn.getresponse().read() == _pattern(100000)
    assert proxy.forwarded == 2


def test_cut_at_zero_bytes_of_chunked(proxy: FaultProxy) -> None:
    proxy.cut(0)
    conn = _conn(proxy)
    conn.request("GET", "/chunked/3000")
    resp = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        resp.read()


def test_cut_beyond_body_is_harmless(proxy: FaultProxy) -> None:
    proxy.cut(after_bytes=10_000)
    conn = _conn(proxy)
    conn.request("GET", "/bytes/100")
    assert conn.getresponse().read() == _pattern(100)


def test_stall_makes_client_read_time_out(proxy: FaultProxy) -> None:
    rule = proxy.stall(seconds=30, after_bytes=512)
    conn = _conn(proxy, timeout=0.3)
    conn.request("GET", "/bytes/4096")
    resp = conn.getresponse()
    assert resp.read(512) == _pattern(512)
    with pytest.raises(TimeoutError):
        resp.read(1)
    conn.close()
    rule.release()  # frees the proxy thread
    conn = _conn(proxy)
    conn.request("GET", "/bytes/4096")
    assert conn.getresponse().read() == _pattern(4096)


def test_stall_released_early_delivers_everything(proxy: FaultProxy) -> None:
    rule = proxy.stall(seconds=60, after_bytes=100)
    results: list[bytes] = []

    def fetch() -> None:
        conn = _conn(proxy)
        conn.request("GET", "/bytes/1000")
        results.append(conn.getresponse().read())

    start = time.monotonic()
    thread = threading.Thread(target=fetch)
    thread.start()
    assert rule.wait(10)
    rule.release()
    thread.join(10)
    assert results == [_pattern(1000)]
    assert time.monotonic() - start < 30


def test_stall_before_headers(proxy: FaultProxy) -> None:
    rule = proxy.stall(seconds=30, before_headers=True)
    conn = _conn(proxy, timeout=0.3)
    conn.request("GET", "/bytes/10")
    with pytest.raises(TimeoutError):
        conn.getresponse()
    conn.close()
    assert rule.hits == 1
    assert proxy.forwarded == 1  # the request did reach the server


def test_stall_times_out_by_itself(proxy: FaultProxy) -> None:
    proxy.stall(seconds=0.05, after_bytes=10)
    conn = _conn(proxy)
    conn.request("GET", "/bytes/50")
    assert conn.getresponse().read() == _pattern(50)


# -- controls --------------------------------------------------------------------------------


def test_wait_for_requests_and_reset(proxy: FaultProxy) -> None:
    assert not proxy.wait_for_requests(1, timeout=0)
    conn = _conn(proxy)
    conn.request("GET", "/x")
    conn.getresponse().read()
    assert proxy.wait_for_requests(1, timeout=5)
    assert isinstance(proxy.records[0], Record)
    proxy.fail(500)
    proxy.reset()
    assert proxy.records == [] and proxy.rules == []
    assert proxy.forwarded == 0 and proxy.connections == 0
    conn.request("GET", "/x")
    assert conn.getresponse().status == 200
    proxy.clear_records()
    assert proxy.records == []


def test_concurrent_clients(proxy: FaultProxy) -> None:
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            conn = _conn(proxy)
            for j in range(5):
                n = 1000 * i + j
                conn.request("GET", f"/bytes/{n}")
                assert conn.getresponse().read() == _pattern(n)
            conn.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert proxy.forwarded == 40
    assert proxy.connections == 8


def test_stop_ends_stalls_and_closes(upstream: _Upstream) -> None:
    host, port = upstream.server_address[:2]
    proxy = FaultProxy((str(host), port)).start()
    rule = proxy.stall(seconds=120, after_bytes=10)
    conn = _conn(proxy)
    conn.request("GET", "/bytes/100")
    resp = conn.getresponse()
    assert rule.wait(10)
    start = time.monotonic()
    proxy.stop()
    assert time.monotonic() - start < 10
    # the stall ended: the rest of the body arrived, or the connection was closed (a reset
    # may discard bytes the client had not read yet, so an empty read is fine too)
    try:
        data = resp.read()
    except http.client.IncompleteRead as exc:
        data = exc.partial
    except ConnectionError:
        data = b""
    assert _pattern(100).startswith(data[:100])
    with pytest.raises(OSError):
        socket.create_connection((proxy.host, proxy.port), timeout=2).close()
    proxy.stop()  # idempotent


def test_stop_unblocks_a_pending_upstream_read(upstream: _Upstream) -> None:
    host, port = upstream.server_address[:2]
    proxy = FaultProxy((str(host), port)).start()
    outcome: list[object] = []

    def fetch() -> None:
        conn = _conn(proxy, timeout=30)
        conn.request("GET", "/hang")
        try:
            resp = conn.getresponse()
            resp.read()
            outcome.append(resp.status)
        except (OSError, http.client.HTTPException) as exc:
            outcome.append(exc)

    thread = threading.Thread(target=fetch)
    thread.start()
    try:
        assert proxy.wait_for_requests(1)
        start = time.monotonic()
        proxy.stop()
        assert time.monotonic() - start < 5
        thread.join(10)
        assert not thread.is_alive()
        # the client sees the connection fail, or a 502 if the proxy answered first
        assert len(outcome) == 1 and (outcome[0] == 502 or isinstance(outcome[0], Exception))
    finally:
        upstream.release.set()
