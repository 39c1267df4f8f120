"""Transport: connection pools, timeouts and the one retry loop.

This is the only module (with ``response.py``) that touches urllib3, and the only place where
urllib3 and socket exceptions become :mod:`s3func.errors` exceptions.
"""

from __future__ import annotations

import email.errors
import errno
import http.client
import logging
import os
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any, Generic, TypeVar, cast

import urllib3
import urllib3.connection
from urllib3 import exceptions as u3e

from .errors import (
    ConfigurationError,
    ConnectError,
    IncompleteBodyError,
    PoolTimeoutError,
    S3FuncError,
    TransportError,
    TransportTimeout,
)
from .retry import RetryPolicy

__all__ = ["Body", "HTTPResponse", "Request", "Transport", "translate_exception"]

log = logging.getLogger("s3func")

HTTPResponse = urllib3.HTTPResponse
Body = bytes | IO[bytes] | Iterable[bytes] | None
_SEND_BLOCKSIZE = 1 << 20


# -- responses: http.client's, with a lighter header parser ------------------------------------

_MAX_LINE = 65536
_MAX_HEADERS = 100
_NO_BODY = (http.client.NO_CONTENT, http.client.NOT_MODIFIED)


def _read_head(fp: Any) -> http.client.HTTPMessage:
    """Read a header block into an ``HTTPMessage``, without the ``email`` parser.

    ``http.client`` hands the block to ``email.parser``, which costs about ten times more
    than the rest of reading a small response. The result here is the same message: names
    as sent, values with leading blanks removed and folded lines kept as sent, limits as in
    ``http.client`` (65536 bytes a line, 100 lines). A line that is not a header ends up in
    the payload, where urllib3's header check reports it as before.
    """
    msg = http.client.HTTPMessage()
    lines = 0
    name: str | None = None
    value = ""
    junk: list[str] = []
    while True:
        raw = fp.readline(_MAX_LINE + 1)
        if len(raw) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        lines += 1
        if lines > _MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")
        if raw in (b"\r\n", b"\n", b""):
            if junk:
                junk.append(raw.decode("iso-8859-1"))
            break
        line = raw.decode("iso-8859-1")
        if junk:
            junk.append(line)
            continue
        if line[0] in " \t" and name is not None:  # a folded continuation line
            value += line
            continue
        head, sep, rest = line.partition(":")
        if not sep or not head or " " in head or "\t" in head:
            junk.append(line)
            continue
        if name is not None:
            msg.set_raw(name, value.rstrip("\r\n"))
        name, value = head, rest.lstrip(" \t")
    if name is not None:
        msg.set_raw(name, value.rstrip("\r\n"))
    msg.set_payload("".join(junk))
    if junk:
        msg.defects.append(email.errors.MissingHeaderBodySeparatorDefect())
    return msg


class _Response(http.client.HTTPResponse):
    """``http.client.HTTPResponse`` reading its head with :func:`_read_head`.

    The framing decisions (chunked, content length, bodies that cannot exist, whether the
    connection closes) are the standard library's, restated around the faster parser.
    """

    def begin(self) -> None:
        started: Any = self.headers  # None until the head is read (typeshed says otherwise)
        if started is not None:
            return
        while True:
            version, status, reason = self._read_status()  # type: ignore[attr-defined]
            if status != http.client.CONTINUE:
                break
            _read_head(self.fp)  # the head of an interim 100 answer is dropped
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.headers = self.msg = _read_head(self.fp)
        encoding = self.headers.get("transfer-encoding")
        self.chunked = encoding is not None and encoding.lower() == "chunked"
        if self.chunked:
            self.chunk_left = None
        self.will_close = self._check_close()  # type: ignore[attr-defined]
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            self.length = declared if declared >= 0 else None
        if status in _NO_BODY or 100 <= status < 200 or self._method == "HEAD":  # type: ignore[attr-defined]
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


# -- plain HTTP sockets: timeouts kept by the kernel ------------------------------------------

#: Linux keeps ``SO_RCVTIMEO``/``SO_SNDTIMEO`` as a ``struct timeval`` (two C longs).
_KERNEL_TIMEOUTS = sys.platform.startswith("linux")
_TIMEVAL = struct.Struct("ll")
_AGAIN = (errno.EAGAIN, errno.EWOULDBLOCK)


class _KernelTimeoutSocket(socket.socket):
    """A blocking socket whose timeouts the kernel enforces (``SO_RCVTIMEO``/``SO_SNDTIMEO``).

    A socket with a Python timeout polls before every send and receive, and each poll lets
    go of the GIL once more. With many threads each of those hand-offs costs far more than
    the call itself (GIL convoys: measured 10-20% of the CPU per small request under 8
    threads). Here a send or receive blocks in the kernel for at most the timeout, with the
    same meaning (an idle limit per call, never a total), and a call that runs out raises
    ``TimeoutError`` exactly as a Python timeout does.
    """

    _limit: float | None = None

    @classmethod
    def adopt(cls, sock: socket.socket, timeout: float | None) -> socket.socket:
        """Take over a connected socket (its file descriptor and options)."""
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            return sock  # no timeout or non-blocking: nothing to gain
        adopted = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        adopted.settimeout(timeout)
        return adopted

    def settimeout(self, value: float | None) -> None:
        if value == self._limit:
            return
        if value is not None and value <= 0:  # non-blocking: Python's own handling
            self._set_kernel_limit(0.0)
            self._limit = None
            super().settimeout(value)
            return
        self._set_kernel_limit(value or 0.0)
        self._limit = value
        super().settimeout(None)

    def gettimeout(self) -> float | None:
        return self._limit if self._limit is not None else super().gettimeout()

    def _set_kernel_limit(self, seconds: float) -> None:
        whole = int(seconds)
        micros = max(int((seconds - whole) * 1e6), 1 if seconds > 0 and not whole else 0)
        value = _TIMEVAL.pack(whole, micros)  # 0, 0: no limit
        self.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        self.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        try:
            return super().recv(bufsize, flags)
        except BlockingIOError as exc:
            raise self._timed_out(exc) from None

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        try:
            return super().recv_into(buffer, nbytes, flags)
        except BlockingIOError as exc:
            raise self._timed_out(exc) from None

    def send(self, data: Any, flags: int = 0) -> int:
        try:
            return super().send(data, flags)
        except BlockingIOError as exc:
            raise self._timed_out(exc) from None

    def sendall(self, data: Any, flags: int = 0) -> None:
        try:
            super().sendall(data, flags)
        except BlockingIOError as exc:
            raise self._timed_out(exc) from None

    def _timed_out(self, exc: BlockingIOError) -> OSError:
        if exc.errno in _AGAIN and self._limit is not None:
            return TimeoutError("timed out")
        return exc


#: Bodies up to this size go out in the same send as the request head.
_ONE_SEND_MAX = 64 << 10


class _OneSend(urllib3.connection.HTTPConnection):
    """Sends a small request's head and body with one system call instead of two.

    urllib3 writes the head (``endheaders``) and then each body chunk; under many threads
    every send is one more GIL hand-off (measured: 4 KiB PUTs on 8 threads, 15-20% less
    CPU per request in one send). The head is held back and prepended to the body.
    """

    response_class = _Response
    _hold_head = False
    _head: bytes | None = None

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        self._hold_head = (
            isinstance(body, (bytes, bytearray, memoryview))
            and 0 < len(body) <= _ONE_SEND_MAX
            and not options.get("chunked")
        )
        try:
            super().request(method, url, body=body, headers=headers, **options)
            if self._head is not None:  # no body chunk came after all: the head alone
                head, self._head = self._head, None
                super().send(head)
        finally:
            self._hold_head = False
            self._head = None

    def _send_output(self, message_body: Any = None, encode_chunked: bool = False) -> None:
        if self._hold_head and message_body is None:
            self._buffer.extend((b"", b""))  # type: ignore[attr-defined]
            self._head = b"\r\n".join(self._buffer)  # type: ignore[attr-defined]
            del self._buffer[:]  # type: ignore[attr-defined]
            return
        super()._send_output(message_body, encode_chunked)  # type: ignore[misc]

    def send(self, data: Any) -> None:
        head = self._head
        if head is not None:
            self._head = None
            data = head + data
        super().send(data)


class _Connection(_OneSend):
    def connect(self) -> None:
        super().connect()
        if _KERNEL_TIMEOUTS and self.sock is not None:
            self.sock = _KernelTimeoutSocket.adopt(self.sock, self.timeout)


class _TLSConnection(_OneSend, urllib3.connection.HTTPSConnection):
    pass


class Request:
    """One attempt of an HTTP request, ready to send (path already encoded and signed)."""

    __slots__ = ("body", "chunked", "headers", "host", "method", "path", "port", "scheme")

    def __init__(
        self,
        method: str,
        scheme: str,
        host: str,
        port: int,
        path: str,
        headers: dict[str, str],
        body: Body = None,
        *,
        chunked: bool = False,
    ) -> None:
        self.method = method
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path
        self.headers = headers
        self.body = body
        self.chunked = chunked

    @property
    def url(self) -> str:
        """The URL without its query string (safe to show: no signature in it)."""
        return f"{self.scheme}://{self.host}:{self.port}{self.path.split('?', 1)[0]}"


def translate_exception(exc: BaseException, *, method: str | None, url: str | None) -> S3FuncError:
    """Map a urllib3 or socket exception to the matching :class:`TransportError`."""
    reason: BaseException = exc
    if isinstance(exc, u3e.MaxRetryError) and exc.reason is not None:
        reason = exc.reason
    where = f"{method} {url}" if method else (url or "request")
    cls: type[TransportError]
    if isinstance(reason, u3e.EmptyPoolError):
        return PoolTimeoutError(
            f"{where}: no free connection in the pool within the pool timeout "
            "(are streamed responses being left open? close them or use `with`)",
            method=method,
            url=url,
        )
    # NewConnectionError subclasses ConnectTimeoutError in urllib3 2: test it first.
    if isinstance(reason, (u3e.NewConnectionError, u3e.NameResolutionError, ConnectionError)):
        cls, what = ConnectError, "could not connect"
    elif isinstance(reason, u3e.ConnectTimeoutError):
        cls, what = TransportTimeout, "connect timeout"
    elif isinstance(reason, (u3e.ReadTimeoutError, TimeoutError)):
        cls, what = TransportTimeout, "read timeout"
    elif isinstance(reason, u3e.SSLError):
        cls, what = ConnectError, "TLS error"
    elif isinstance(reason, (u3e.IncompleteRead, u3e.ProtocolError)):
        cls, what = IncompleteBodyError, "connection broken"
    else:
        cls, what = TransportError, "transport error"
    return _typed(cls, what, reason, method, url)


def _typed(
    cls: type[TransportError], what: str, reason: BaseException, method: str | None, url: str | None
) -> TransportError:
    where = f"{method} {url}" if method else (url or "request")
    detail = type(reason).__name__
    text = str(reason).strip()
    if text:
        detail = f"{detail}: {text}"
    return cls(f"{where}: {what} ({detail})", method=method, url=url)


def _translate_phase(exc: BaseException, sent: bool, req: Request) -> S3FuncError:
    """Map an exception raised while connecting, sending or reading a response head.

    urllib3's own exceptions keep their meaning; raw ``ssl``/socket/``http.client`` ones
    are classified by the phase they happened in (before the request was written, the
    server cannot have acted on it).
    """
    if isinstance(exc, u3e.HTTPError):
        return translate_exception(exc, method=req.method, url=req.url)
    cls: type[TransportError]
    if isinstance(exc, (ssl.SSLError, ssl.CertificateError)):
        cls, what = ConnectError, "TLS error"
    elif isinstance(exc, TimeoutError):
        cls, what = TransportTimeout, ("read timeout" if sent else "connect timeout")
    elif not sent:
        cls, what = ConnectError, "could not connect"
    else:  # reset, closed without an answer, a malformed status line: the exchange broke
        cls, what = IncompleteBodyError, "connection broken"
    return _typed(cls, what, exc, req.method, req.url)


def _rewind(body: Any, pos: int | None) -> bool:
    """Rewind a file-like body to ``pos``; False when it cannot be rewound."""
    if body is None or isinstance(body, (bytes, bytearray, memoryview)):
        return True
    if pos is None:
        return False
    try:
        body.seek(pos)
    except (AttributeError, OSError, ValueError):
        return False
    return True


def _tell(body: Any) -> int | None:
    if body is None or isinstance(body, (bytes, bytearray, memoryview)):
        return 0
    try:
        if not body.seekable():
            return None
        return int(body.tell())
    except (AttributeError, OSError, ValueError):
        return None


ErrorFactory = Callable[[Request, "urllib3.HTTPResponse", bytes], "S3FuncError | None"]
T = TypeVar("T")
Call = tuple[T, Callable[[int], Request], ErrorFactory]  # a tag, then as for Transport.send
Outcome = urllib3.HTTPResponse | S3FuncError
_Conn = urllib3.connection.HTTPConnection


class Transport:
    """Connection pools (one per endpoint) plus the retry loop shared by every session.

    Args:
        connect_timeout: Seconds to wait for a TCP/TLS connection.
        read_timeout: Seconds a read may stay idle (never a total deadline).
        max_connections: Connections kept per endpoint.
        pool_timeout: Seconds to wait for a free connection before raising
            :class:`~s3func.errors.PoolTimeoutError`.
        retry: The retry policy.
        ca_bundle: A CA bundle path; default ``SSL_CERT_FILE`` or certifi's bundle.
        verify_tls: Turn off to accept any certificate (never do this in production).
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_connections: int = 16,
        pool_timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        ca_bundle: str | None = None,
        verify_tls: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if connect_timeout <= 0 or read_timeout <= 0 or pool_timeout < 0:
            raise ConfigurationError("timeouts must be positive numbers of seconds")
        if max_connections < 1:
            raise ConfigurationError("max_connections must be at least 1")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self._ca_bundle = ca_bundle
        self._verify_tls = verify_tls
        self._sleep = sleep
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self._pools: dict[tuple[str, str, int], urllib3.HTTPConnectionPool] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def pool(self, scheme: str, host: str, port: int) -> urllib3.HTTPConnectionPool:
        """Return the connection pool of one endpoint (created on first use, rebuilt after fork)."""
        key = (scheme, host, port)
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._pools = {}
                    self._pid = os.getpid()
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._new_pool(scheme, host, port)
                self._pools[key] = pool
        return pool

    def _new_pool(self, scheme: str, host: str, port: int) -> urllib3.HTTPConnectionPool:
        common: dict[str, Any] = {
            "maxsize": self.max_connections,
            "block": True,
            "timeout": self._timeout,
            "retries": False,
            "blocksize": _SEND_BLOCKSIZE,
        }
        if scheme == "https":
            if self._verify_tls:
                ca = self._ca_bundle or os.environ.get("SSL_CERT_FILE")
                if not ca:
                    import certifi

                    ca = certifi.where()
                tls = urllib3.HTTPSConnectionPool(
                    host, port, cert_reqs="CERT_REQUIRED", ca_certs=ca, **common
                )
            else:
                tls = urllib3.HTTPSConnectionPool(host, port, cert_reqs="CERT_NONE", **common)
            tls.ConnectionCls = _TLSConnection
            return tls
        if scheme != "http":
            raise ConfigurationError(f"unsupported URL scheme {scheme!r} (use http or https)")
        plain = urllib3.HTTPConnectionPool(host, port, **common)
        plain.ConnectionCls = _Connection
        return plain

    def open(self, req: Request, *, read_timeout: float | None = None) -> urllib3.HTTPResponse:
        """Send one attempt and return the unread response (no retries, errors translated).

        The request goes straight onto a pooled connection (``_get_conn``, then the
        connection's ``request`` and ``getresponse``): the pool's ``urlopen`` would redo
        per request what this transport settles once (timeouts, retries, redirects, host
        checks), which costs more CPU than signing. Failures are classified by phase:
        before the request is written they are connect errors (always safe to retry),
        after it they are timeouts or broken connections (retried only when idempotent).
        """
        pool = self.pool(req.scheme, req.host, req.port)
        try:
            conn = cast(_Conn, pool._get_conn(timeout=self.pool_timeout))
        except (u3e.HTTPError, OSError) as exc:
            raise translate_exception(exc, method=req.method, url=req.url) from exc
        try:
            self._write(conn, req, read_timeout)
            resp = _answer(conn, req)
        except BaseException:
            pool._put_conn(None)  # frees the slot, as urllib3 does for a failed request
            raise
        resp._pool = pool  # release_conn() puts the connection back
        resp._connection = conn
        return resp

    def _write(self, conn: _Conn, req: Request, read_timeout: float | None) -> None:
        """Connect if needed and send ``req``; on failure close ``conn`` and raise typed."""
        sent = False
        try:
            if conn.is_closed:
                conn.timeout = self.connect_timeout
                conn.connect()
            conn.timeout = self.read_timeout if read_timeout is None else read_timeout
            sent = True
            try:
                conn.request(
                    req.method,
                    req.path,
                    body=req.body,
                    headers=req.headers,
                    chunked=req.chunked,
                    preload_content=False,
                    decode_content=False,
                )
            except OSError as exc:
                # The server may answer before reading the whole body (an early error for
                # a large upload): read that answer rather than report a broken pipe.
                if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.EPROTOTYPE):
                    raise
        except BaseException as exc:
            conn.close()
            if isinstance(exc, (u3e.HTTPError, OSError, http.client.HTTPException)):
                raise _translate_phase(exc, sent, req) from exc
            raise

    def send(
        self,
        prepare: Callable[[int], Request],
        *,
        error: ErrorFactory,
        idempotent: bool = True,
        stream: bool = False,
        check_ok: bool = False,
        read_timeout: float | None = None,
        failed: tuple[Request, S3FuncError] | None = None,
    ) -> urllib3.HTTPResponse:
        """Send a request with retries and return its response.

        Args:
            prepare: Builds the request for attempt ``n`` (1-based): it signs it afresh.
            error: Maps an error response (and its body) to an exception, or returns
                ``None`` when a response that looked like an error is fine.
            idempotent: Whether a request that may have reached the server can be repeated.
                Connect failures are retried either way; read timeouts and broken
                connections only when this is true.
            stream: Return a successful response unread (the caller must release it).
                Otherwise the body is read and available as ``resp.data``.
            check_ok: Also pass successful (2xx) bodies to ``error``, for operations that
                can answer 200 with an error document.
            read_timeout: Overrides the transport's read timeout for this request.
            failed: The first attempt, already made elsewhere (:meth:`send_many`), and its
                error: the loop goes on from the second attempt.

        Raises:
            S3FuncError: the mapped error once retries are exhausted or not allowed.
        """
        attempt = 0
        start_pos: int | None = None
        last: S3FuncError | None = None
        if failed is not None:
            attempt = 1
            last = failed[1]
            self._back_off(failed[0], last, attempt)
        while True:
            attempt += 1
            req = prepare(attempt)
            if attempt == 1:
                start_pos = _tell(req.body)
            elif last is not None and not _rewind(req.body, start_pos):
                raise last
            try:
                resp = self.open(req, read_timeout=read_timeout)
                status = resp.status
                if 200 <= status < 300 and not check_ok:
                    if not stream:
                        self._read_all(resp, req)
                    return resp
                data = self._read_all(resp, req)
                exc = error(req, resp, data)
                if exc is None:
                    return resp
            except (ConnectError, PoolTimeoutError) as caught:
                exc = caught
            except TransportError as caught:
                exc = caught
                if not idempotent:
                    exc.retryable = False
            self._back_off(req, exc, attempt)
            last = exc

    def _back_off(self, req: Request, exc: S3FuncError, attempt: int) -> None:
        """Raise ``exc`` when attempt ``attempt`` was the last one allowed; else wait."""
        policy = self.retry
        exc.attempts = attempt
        if not exc.retryable or attempt >= policy.max_attempts:
            raise exc
        delay = policy.delay(attempt, exc.retry_after)
        log.info(
            "retrying %s %s after %s (attempt %d of %d, sleeping %.2fs)",
            req.method,
            req.url,
            type(exc).__name__ + (f" {exc.code}" if exc.code else ""),
            attempt,
            policy.max_attempts,
            delay,
        )
        if delay > 0:
            self._sleep(delay)

    def send_many(
        self, calls: Iterable[Call[T]], *, connections: int
    ) -> Iterator[tuple[T, urllib3.HTTPResponse | S3FuncError]]:
        """Send many small, idempotent requests from this thread; yield each outcome.

        The first attempts are multiplexed: up to ``connections`` requests to one endpoint
        are in flight at once, and this thread reads whichever answer arrives first. Many
        threads would do the same with one system call per thread switch, each a hand-off
        of the GIL; one thread keeps the connections busy for about half the CPU
        per request. A first attempt that fails the way :meth:`send` would retry goes on
        through :meth:`send` (its second attempt onwards, in this thread) before the next
        outcome is yielded. Once one request has failed to connect through all its
        attempts, the rest are not sent: each gets a :class:`ConnectError` saying so, rather
        than every request waiting through its own retries against a dead endpoint.

        Args:
            calls: ``(tag, prepare, error)`` per request, as for :meth:`send`; taken lazily,
                one as a connection frees up. Bodies must be bytes (kept in memory).
            connections: Requests in flight at once (at most the pool's size).

        Yields:
            ``(tag, response)`` with the body read (``resp.data``), or ``(tag, error)``:
            the mapped error once retries are exhausted or not allowed. In the order the
            answers arrive.
        """
        mux = _Multiplexer[T](self, connections)
        for (tag, prepare, error), req, outcome in mux.run(calls):
            if not isinstance(outcome, S3FuncError):
                if 200 <= outcome.status < 300:
                    yield tag, outcome
                    continue
                exc = error(req, outcome, outcome.data)
                if exc is None:
                    yield tag, outcome
                    continue
                outcome = exc
            if outcome.attempts == 0:  # not sent (see mux.unreachable)
                yield tag, outcome
                continue
            try:
                resp = self.send(prepare, error=error, failed=(req, outcome))
            except ConnectError as final:
                mux.unreachable = final
                yield tag, final
            except S3FuncError as final:
                yield tag, final
            else:
                yield tag, resp

    @staticmethod
    def _read_all(resp: urllib3.HTTPResponse, req: Request) -> bytes:
        try:
            data = resp.read(cache_content=True)
        except (u3e.HTTPError, OSError) as exc:
            resp.release_conn()
            raise translate_exception(exc, method=req.method, url=req.url) from exc
        resp.release_conn()  # urllib3 already raised if the body was shorter than announced
        return data

    def close(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.close()


def _answer(conn: _Conn, req: Request) -> urllib3.HTTPResponse:
    """Read the response head of ``req``; on failure close ``conn`` and raise typed."""
    try:
        return conn.getresponse()
    except BaseException as exc:
        conn.close()
        if isinstance(exc, (u3e.HTTPError, OSError, http.client.HTTPException)):
            raise _translate_phase(exc, True, req) from exc
        raise


class _Flight(Generic[T]):
    """A first attempt on the wire: its connection, its call, and how long it has waited."""

    __slots__ = ("call", "conn", "req", "sock", "waited")

    def __init__(self, call: Call[T], conn: _Conn, req: Request) -> None:
        self.call = call
        self.conn = conn
        self.req = req
        self.sock = cast(socket.socket, conn.sock)
        self.waited = 0.0


class _Multiplexer(Generic[T]):
    """Runs first attempts on up to ``limit`` pooled connections, read by one thread.

    A request's read timeout counts only the time spent waiting for answers here, not the
    time the caller spends between outcomes (retrying another request, say).
    """

    def __init__(self, transport: Transport, limit: int) -> None:
        self._transport = transport
        self._limit = max(1, limit)
        #: Set when a request could not connect through all its attempts: later requests
        #: are answered with a ConnectError at once, without being sent.
        self.unreachable: S3FuncError | None = None

    def run(self, calls: Iterable[Call[T]]) -> Iterator[tuple[Call[T], Request, Outcome]]:
        import selectors

        transport = self._transport
        selector = selectors.DefaultSelector()
        pool: urllib3.HTTPConnectionPool | None = None
        conns: list[_Conn] = []  # checked out of the pool
        idle: list[_Conn] = []
        flights: dict[int, _Flight[T]] = {}
        source = iter(calls)
        endpoint: tuple[str, str, int] | None = None
        held: tuple[Call[T], Request] | None = None  # prepared, waiting for a connection
        more = True
        try:
            while True:
                while idle or len(conns) < self._limit:
                    if held is None:
                        call = next(source, None) if more else None
                        if call is None:
                            more = False
                            break
                        held = (call, call[1](1))
                    call, req = held
                    if pool is not None and (req.scheme, req.host, req.port) != endpoint:
                        raise ValueError("send_many: every request must go to one endpoint")
                    if self.unreachable is not None:
                        held = None
                        yield call, req, self._not_sent(req)
                        continue
                    if idle:
                        conn = idle.pop()
                    else:
                        if pool is None:
                            endpoint = (req.scheme, req.host, req.port)
                            pool = transport.pool(*endpoint)
                        try:
                            # Wait for the first connection only: then use what is free.
                            wait = 0 if conns else transport.pool_timeout
                            conn = cast(_Conn, pool._get_conn(timeout=wait))
                        except (u3e.HTTPError, OSError) as exc:
                            if conns:
                                self._limit = len(conns)
                                break
                            held = None
                            failure = translate_exception(exc, method=req.method, url=req.url)
                            yield call, req, failure
                            continue
                        conns.append(conn)
                    held = None
                    try:
                        transport._write(conn, req, None)
                    except S3FuncError as failure:
                        idle.append(conn)  # closed: it connects again on its next use
                        yield call, req, failure
                        continue
                    flight = _Flight(call, conn, req)
                    flights[id(conn)] = flight
                    selector.register(flight.sock, selectors.EVENT_READ, flight)
                if not flights:
                    if held is None and not more:
                        return
                    continue
                longest = max(f.waited for f in flights.values())
                started = time.monotonic()
                events = selector.select(max(0.0, transport.read_timeout - longest))
                waited = time.monotonic() - started
                for flight in flights.values():
                    flight.waited += waited
                done: list[tuple[_Flight[T], Outcome]] = []
                for key, _ in events:
                    flight = key.data
                    done.append((flight, self._receive(flight)))
                if not events:
                    for flight in flights.values():
                        if flight.waited >= transport.read_timeout:
                            flight.conn.close()
                            timeout = TimeoutError(f"no answer in {transport.read_timeout} s")
                            done.append((flight, _translate_phase(timeout, True, flight.req)))
                for flight, _ in done:
                    del flights[id(flight.conn)]
                    selector.unregister(flight.sock)
                    idle.append(flight.conn)
                for flight, outcome in done:
                    yield flight.call, flight.req, outcome
        finally:
            for flight in flights.values():  # abandoned mid-exchange: not reusable
                flight.conn.close()
            selector.close()
            if pool is not None:
                for conn in conns:
                    pool._put_conn(conn)

    def _not_sent(self, req: Request) -> ConnectError:
        exc = ConnectError(
            f"{req.method} {req.url}: not sent, the endpoint was unreachable ({self.unreachable})",
            method=req.method,
            url=req.url,
        )
        exc.attempts = 0
        exc.__cause__ = self.unreachable
        return exc

    @staticmethod
    def _receive(flight: _Flight[T]) -> Outcome:
        try:
            resp = _answer(flight.conn, flight.req)
            Transport._read_all(resp, flight.req)
        except S3FuncError as exc:
            flight.conn.close()  # a broken exchange: the connection is not reusable
            return exc
        return resp


def header_items(headers: Mapping[str, str]) -> dict[str, str]:
    """Copy response headers into a plain dict with lower-case names."""
    return {k.lower(): v for k, v in headers.items()}
