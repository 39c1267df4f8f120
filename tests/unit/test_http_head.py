"""The transport's response-head parser gives what http.client's own parser gives."""

from __future__ import annotations

import http.client
import io

import pytest

from s3func._http import _read_head, _Response

HEADS = [
    b"Content-Length: 5\r\nETag: \"abc\"\r\nX-Amz-Meta-A: 1\r\n\r\n",
    b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nx-amz-meta-Empty:\r\nTrailing: spaces   \r\n\r\n",
    b"Folded: first\r\n  second\r\n\tthird\r\nNext:value\r\n\r\n",
    b"Latin: caf\xe9\r\nTab:\t\tleading tabs\r\n\r\n",
    b"Bare-LF: yes\nOther: too\n\n",
    b"Good: 1\r\nnot a header line\r\nAfter: 2\r\n\r\n",
    b"Bad Name: x\r\nOk: 1\r\n\r\n",
    b"\r\n",
    b"",
    b"Colon:: in value: here\r\n\r\n",
]


@pytest.mark.parametrize("raw", HEADS)
def test_head_matches_http_client(raw: bytes) -> None:
    ours = _read_head(io.BytesIO(raw + b"BODY"))
    theirs = http.client.parse_headers(io.BytesIO(raw + b"BODY"))
    assert ours.items() == theirs.items()
    assert ours.get_payload() == theirs.get_payload()
    assert ours.get_all("set-cookie") == theirs.get_all("set-cookie")
    assert [type(d) for d in ours.defects] == [type(d) for d in theirs.defects]
    assert isinstance(ours, http.client.HTTPMessage)


def test_head_reads_exactly_the_head() -> None:
    fp = io.BytesIO(b"A: 1\r\n\r\nbody bytes")
    _read_head(fp)
    assert fp.read() == b"body bytes"


def test_head_limits_match_http_client() -> None:
    with pytest.raises(http.client.LineTooLong):
        _read_head(io.BytesIO(b"A: " + b"x" * 70000 + b"\r\n\r\n"))
    many = b"".join(b"H%d: v\r\n" % i for i in range(101)) + b"\r\n"
    with pytest.raises(http.client.HTTPException, match="more than 100"):
        _read_head(io.BytesIO(many))


class _Sock:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(io.BytesIO(self.data))  # type: ignore[arg-type]


RESPONSES = [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", "GET"),
    (b"HTTP/1.1 100 Continue\r\nX: y\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", "PUT"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "GET"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nContent-Length: 9\r\n\r\n0\r\n\r\n", "GET"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", "HEAD"),
    (b"HTTP/1.1 204 No Content\r\n\r\n", "DELETE"),
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n", "GET"),
    (b"HTTP/1.0 200 OK\r\n\r\nuntil close", "GET"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\nx", "GET"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\nx", "GET"),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", "GET"),
    (b"HTTP/1.1 503 Slow Down  \r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n", "GET"),
]


@pytest.mark.parametrize(("raw", "method"), RESPONSES)
def test_response_framing_matches_http_client(raw: bytes, method: str) -> None:
    ours = _Response(_Sock(raw), method=method)  # type: ignore[arg-type]
    theirs = http.client.HTTPResponse(_Sock(raw), method=method)  # type: ignore[arg-type]
    ours.begin()
    theirs.begin()
    fields = ("status", "reason", "version", "chunked", "length", "will_close")
    assert {f: getattr(ours, f) for f in fields} == {f: getattr(theirs, f) for f in fields}
    assert ours.getheaders() == theirs.getheaders()
    assert ours.read() == theirs.read()


def test_unknown_protocol_is_refused_like_http_client() -> None:
    raw = b"HTTP/2.0 200 OK\r\n\r\n"
    with pytest.raises(http.client.UnknownProtocol):
        _Response(_Sock(raw), method="GET").begin()  # type: ignore[arg-type]
