"""A loopback HTTP/1.1 proxy for tests: forwards requests verbatim, records them, injects faults.

:class:`FaultProxy` listens on a free port of ``127.0.0.1`` and relays every request to one
upstream server (SeaweedFS, the B2 emulator...). The request line, the raw request-target, the
header block and the body (``Content-Length`` or chunked) are sent upstream byte for byte as the
client wrote them, and the response is streamed back byte for byte. Both sides use keep-alive:
one upstream connection per client connection.

What a real server cannot do on demand, the proxy does through *rules*. A rule matches requests
by method, path regex, query substring and/or a predicate, fires for the next ``times`` matching
requests, and then does one of:

* ``reply``: answer with a given status, body and headers without forwarding
  (:meth:`FaultProxy.fail` builds S3 XML or B2 JSON error bodies, and ``Retry-After``);
* ``cut``: forward, then close the connection after ``after_bytes`` bytes of response body;
* ``stall``: forward, then stop sending for ``seconds`` (or until :meth:`Rule.release`) after
  ``after_bytes`` bytes of body, or before the response head, so the client's read timeout fires;
* ``drop``: read the request and close the connection without any response;
* ``rewrite``: forward, then change the response head (another status code, headers
  removed), to play servers that answer differently from SeaweedFS.

Example::

    with FaultProxy(server.endpoint_url) as proxy:
        proxy.fail(503, "SlowDown", method="PUT", times=2)
        session = server.session(endpoint_url=proxy.url)
        session.put_object("k", b"v")          # retried twice, then forwarded
        assert [r.status for r in proxy.records] == [503, 503, 200]

Byte counts for ``cut``/``stall`` are counted on the wire after the response head, so for a
chunked response they include the chunk framing.
"""

from __future__ import annotations

import contextlib
import http
import io
import json as _json
import re
import select
import selectors
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["FaultProxy", "Record", "Rule", "s3_error_body"]

_MAX_LINE = 65536
_MAX_HEADERS = 256
_CHUNK = 65536

_DEFAULT_MESSAGES = {
    "InternalError": "We encountered an internal error. Please try again.",
    "SlowDown": "Please reduce your request rate.",
    "ServiceUnavailable": "Service is unable to handle request.",
    "RequestTimeout": "Your socket connection to the server was not read from or written to.",
}


class _ProtocolError(Exception):
    """The peer sent something that is not HTTP/1.1 as we understand it."""


class _Closed(Exception):
    """The connection must be closed now (cut, drop, or peer gone)."""


def s3_error_body(code: str, message: str | None = None, request_id: str = "proxy") -> bytes:
    """Return an S3 XML error document with the given code and message."""
    text = message or _DEFAULT_MESSAGES.get(code, f"Injected {code} error.")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{_escape(code)}</Code><Message>{_escape(text)}</Message>"
        f"<RequestId>{_escape(request_id)}</RequestId></Error>"
    ).encode()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class Record:
    """One request as the proxy received it.

    Attributes:
        method: The request method, e.g. ``"PUT"``.
        target: The request-target exactly as received (latin-1 decoded, so byte for byte).
        raw_target: The same as bytes.
        version: ``"HTTP/1.1"``...
        headers: ``(name, value)`` pairs in arrival order, names as sent.
        body_length: Payload bytes received (decoded length for chunked bodies).
        body: The first ``record_body_limit`` bytes of the payload (chunk framing removed).
        chunked: Whether the body came with ``Transfer-Encoding: chunked``.
        status: The status sent back to the client (``None`` if none was, e.g. dropped).
        fault: The action of the rule that fired for this request, if any.
        forwarded: Whether the request was sent upstream.
        time: ``time.monotonic()`` when the request head arrived.
        connection: The sequence number (from 1) of the client connection it came on.
    """

    method: str
    target: str
    raw_target: bytes
    version: str
    headers: list[tuple[str, str]]
    time: float
    connection: int
    body_length: int = 0
    body: bytes = b""
    chunked: bool = False
    status: int | None = None
    fault: str | None = None
    forwarded: bool = False

    @property
    def path(self) -> str:
        """The target up to ``?``."""
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        """The raw query string after ``?`` (empty if none)."""
        parts = self.target.split("?", 1)
        return parts[1] if len(parts) == 2 else ""

    def header(self, name: str, default: str | None = None) -> str | None:
        """Return the first header called ``name`` (case-insensitive), or ``default``."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return default


@dataclass(eq=False)
class Rule:
    """A fault to inject into the next ``times`` matching requests (``None``: every one).

    Build rules with :meth:`FaultProxy.fail`, :meth:`~FaultProxy.cut`, :meth:`~FaultProxy.stall`
    and :meth:`~FaultProxy.drop`, or construct one and pass it to :meth:`FaultProxy.add_rule`.

    Attributes:
        action: ``"reply"``, ``"cut"``, ``"stall"``, ``"drop"`` or ``"rewrite"``.
        method: Match this method only (case-insensitive).
        path: Match when this regex is found (``re.search``) in the path (target before ``?``).
        query: Match when this substring is in the raw query string.
        when: Match when this predicate returns true for the :class:`Record`.
        times: How many more requests the rule fires for; ``None`` for no limit.
        status, body, headers: The reply of a ``reply`` rule; ``status`` is also the new
            status code of a ``rewrite`` rule.
        remove_headers: Response headers a ``rewrite`` rule removes (case-insensitive).
        after_bytes: Body bytes relayed before a ``cut`` or ``stall``.
        seconds: How long a ``stall`` lasts at most.
        before_headers: Stall before the response head instead of inside the body.
        hits: How many times the rule fired.
        triggered: Set when the rule fires (wait on it instead of sleeping).
        released: Set to end stalls early (:meth:`release`).
    """

    action: str
    method: str | None = None
    path: str | None = None
    query: str | None = None
    when: Callable[[Record], bool] | None = None
    times: int | None = 1
    status: int = 500
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    remove_headers: tuple[str, ...] = ()
    after_bytes: int = 0
    seconds: float = 60.0
    before_headers: bool = False
    hits: int = 0
    triggered: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        if self.action not in ("reply", "cut", "stall", "drop", "rewrite"):
            raise ValueError(f"unknown action {self.action!r}")
        if self.times is not None and self.times < 0:
            raise ValueError("times must be >= 0 or None")
        if self.after_bytes < 0:
            raise ValueError("after_bytes must be >= 0")
        self._path_re = re.compile(self.path) if self.path is not None else None

    @property
    def remaining(self) -> int | None:
        """Matching requests the rule will still fire for (``None``: unlimited)."""
        return self.times

    def matches(self, record: Record) -> bool:
        """Return whether the rule applies to ``record`` (ignoring its remaining count)."""
        if self.method is not None and record.method.upper() != self.method.upper():
            return False
        if self._path_re is not None and not self._path_re.search(record.path):
            return False
        if self.query is not None and self.query not in record.query:
            return False
        return self.when is None or bool(self.when(record))

    def release(self) -> None:
        """End current and future stalls of this rule at once."""
        self.released.set()

    def wait(self, timeout: float = 10.0) -> bool:
        """Wait until the rule has fired once; return whether it did within ``timeout``."""
        return self.triggered.wait(timeout)


class _Head:
    """A parsed request or response head, keeping the raw bytes."""

    __slots__ = ("first", "headers", "raw")

    def __init__(self, first: bytes, headers: list[tuple[bytes, bytes]], raw: bytes) -> None:
        self.first = first
        self.headers = headers
        self.raw = raw

    def get(self, name: bytes) -> list[bytes]:
        return [v.strip() for k, v in self.headers if k.strip().lower() == name]

    def tokens(self, name: bytes) -> list[bytes]:
        out: list[bytes] = []
        for value in self.get(name):
            out.extend(t.strip().lower() for t in value.split(b",") if t.strip())
        return out

    @property
    def chunked(self) -> bool:
        codings = self.tokens(b"transfer-encoding")
        return bool(codings) and codings[-1] == b"chunked"

    @property
    def content_length(self) -> int | None:
        values = self.get(b"content-length")
        if not values:
            return None
        try:
            n = int(values[0])
        except ValueError as exc:
            raise _ProtocolError("bad Content-Length") from exc
        if n < 0:
            raise _ProtocolError("negative Content-Length")
        return n


def _read_head(rfile: io.BufferedReader, *, skip_blank: bool) -> _Head | None:
    """Read a start line and header block; ``None`` on a clean EOF before any byte."""
    first = rfile.readline(_MAX_LINE + 1)
    while skip_blank and first in (b"\r\n", b"\n"):
        first = rfile.readline(_MAX_LINE + 1)
    if not first:
        return None
    if len(first) > _MAX_LINE or not first.endswith(b"\n"):
        raise _ProtocolError("start line too long or truncated")
    raw = [first]
    headers: list[tuple[bytes, bytes]] = []
    while True:
        line = rfile.readline(_MAX_LINE + 1)
        if not line or len(line) > _MAX_LINE or not line.endswith(b"\n"):
            raise _ProtocolError("header block truncated")
        raw.append(line)
        if line in (b"\r\n", b"\n"):
            break
        if len(headers) >= _MAX_HEADERS:
            raise _ProtocolError("too many headers")
        name, sep, value = line.partition(b":")
        if not sep:
            raise _ProtocolError("header line without a colon")
        headers.append((name, value.strip()))
    return _Head(first.rstrip(b"\r\n"), headers, b"".join(raw))


def _rewritten(head: _Head, version: bytes, status: int, remove: tuple[str, ...]) -> bytes:
    """A response head with another status code and without the ``remove`` headers."""
    drop = {name.lower().encode("latin-1") for name in remove}
    reason = http.HTTPStatus(status).phrase.encode("latin-1")
    lines = [b"%s %d %s" % (version, status, reason)]
    lines += [k + b": " + v for k, v in head.headers if k.strip().lower() not in drop]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _reader(sock: socket.socket) -> io.BufferedReader:
    return io.BufferedReader(socket.SocketIO(sock, "rb"), _CHUNK)


def _read_exact(rfile: io.BufferedReader, n: int) -> bytes:
    data = rfile.read(n)
    if len(data) != n:
        raise _Closed("peer closed mid-body")
    return data


class _BodyGate:
    """Sends response body bytes to the client, applying a ``cut`` or ``stall`` rule."""

    def __init__(self, proxy: FaultProxy, csock: socket.socket, rule: Rule | None) -> None:
        self.proxy = proxy
        self.csock = csock
        self.rule = rule if rule is not None and rule.action in ("cut", "stall") else None
        if self.rule is not None and self.rule.action == "stall" and self.rule.before_headers:
            self.rule = None  # handled before the head
        self.sent = 0

    def write(self, data: bytes) -> None:
        rule = self.rule
        if rule is None:
            self.csock.sendall(data)
            self.sent += len(data)
            return
        limit = rule.after_bytes
        if self.sent + len(data) <= limit:
            self.csock.sendall(data)
            self.sent += len(data)
            return
        head, tail = data[: limit - self.sent], data[limit - self.sent :]
        if head:
            self.csock.sendall(head)
        self.sent += len(head)
        if rule.action == "cut":
            raise _Closed("cut")
        self.rule = None  # stall once per response
        self.proxy._stall(rule)
        self.csock.sendall(tail)
        self.sent += len(tail)


class _Upstream:
    """One keep-alive connection to the upstream server."""

    def __init__(self, address: tuple[str, int], timeout: float, proxy: FaultProxy) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = _reader(self.sock)
        self.proxy = proxy
        with proxy._lock:
            if proxy._stopping.is_set():  # stop() has taken its snapshot of _active
                self.sock.close()
                raise OSError("proxy stopping")
            proxy._active.add(self.sock)  # so stop() can unblock a pending read

    def stale(self) -> bool:
        """Whether the idle connection was closed by the server (readable while idle)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        with self.proxy._lock:
            self.proxy._active.discard(self.sock)
        with contextlib.suppress(OSError):
            self.rfile.close()
        with contextlib.suppress(OSError):
            self.sock.close()


class FaultProxy:
    """A threaded loopback HTTP/1.1 proxy in front of one upstream server.

    Args:
        upstream: ``"http://host:port"`` (a path is ignored) or a ``(host, port)`` pair.
        host: The address to listen on.
        record_body_limit: Bytes of each request body to keep in :attr:`Record.body`.
        upstream_timeout: Socket timeout in seconds for the upstream connection.

    All public methods are thread-safe. The proxy starts on :meth:`start` or ``with``.
    """

    def __init__(
        self,
        upstream: str | tuple[str, int],
        *,
        host: str = "127.0.0.1",
        record_body_limit: int = 65536,
        upstream_timeout: float = 300.0,
    ) -> None:
        if isinstance(upstream, str):
            parts = urlsplit(upstream if "//" in upstream else f"http://{upstream}")
            if parts.scheme != "http" or not parts.hostname or parts.port is None:
                raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
            self.upstream: tuple[str, int] = (parts.hostname, parts.port)
        else:
            self.upstream = (upstream[0], int(upstream[1]))
        self.host = host
        self.port = 0
        self.record_body_limit = record_body_limit
        self.upstream_timeout = upstream_timeout
        self._lock = threading.Condition()
        self._records: list[Record] = []
        self._rules: list[Rule] = []
        self._forwarded = 0
        self._connections = 0
        self._active: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._listener: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://host:port`` of the proxy (valid once started)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> FaultProxy:
        """Bind a free port and start accepting connections; return ``self``."""
        if self._listener is not None:
            raise RuntimeError("proxy already started")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((self.host, 0))
        listener.listen(128)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"FaultProxy-accept-{self.port}", daemon=True
        )
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, end stalls, close every connection and join the threads."""
        if self._listener is None or self._stopping.is_set():
            return
        self._stopping.set()
        self.release_all()
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")
        if self._accept_thread is not None:
            self._accept_thread.join(10)
        with self._lock:
            active = list(self._active)
            threads = list(self._threads)
        for sock in active:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + 10
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for own in (self._listener, self._wake_r, self._wake_w):
            if own is not None:
                with contextlib.suppress(OSError):
                    own.close()
        if self._selector is not None:
            self._selector.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- controls ------------------------------------------------------------------------

    @property
    def records(self) -> list[Record]:
        """A copy of the list of requests received so far, in arrival order."""
        with self._lock:
            return list(self._records)

    @property
    def forwarded(self) -> int:
        """How many requests were forwarded upstream."""
        with self._lock:
            return self._forwarded

    @property
    def connections(self) -> int:
        """How many client connections were accepted (keep-alive reuse keeps this low)."""
        with self._lock:
            return self._connections

    @property
    def rules(self) -> list[Rule]:
        """A copy of the active rule list (first match wins)."""
        with self._lock:
            return list(self._rules)

    def clear_records(self) -> None:
        """Forget the recorded requests (counters are kept)."""
        with self._lock:
            self._records.clear()

    def clear_rules(self) -> None:
        """Remove every rule, releasing their stalls."""
        with self._lock:
            rules, self._rules = self._rules, []
        for rule in rules:
            rule.release()

    def reset(self) -> None:
        """Remove rules and records and zero the counters."""
        self.clear_rules()
        with self._lock:
            self._records.clear()
            self._forwarded = 0
            self._connections = 0

    def release_all(self) -> None:
        """End every current stall now."""
        with self._lock:
            rules = list(self._rules)
        for rule in rules:
            rule.release()

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until at least ``count`` requests were recorded; return whether they were."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._records) >= count, timeout)

    def add_rule(self, rule: Rule) -> Rule:
        """Append ``rule`` (rules are tried in order; the first matching one fires)."""
        with self._lock:
            self._rules.append(rule)
        return rule

    def fail(
        self,
        status: int = 500,
        code: str | None = None,
        message: str | None = None,
        *,
        body: bytes | None = None,
        json: object | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | str | None = None,
        method: str | None = None,
        path: str | None = None,
        query: str | None = None,
        when: Callable[[Record], bool] | None = None,
        times: int | None = 1,
    ) -> Rule:
        """Answer matching requests with an error instead of forwarding them.

        Args:
            status: The HTTP status.
            code: With no ``body``/``json``: an S3 XML error with this code (e.g. ``"SlowDown"``).
            message: The error message for ``code``.
            body: An exact body to send.
            json: A value sent as a JSON body (e.g. a B2 ``{"status", "code", "message"}``).
            headers: Extra response headers.
            retry_after: Adds a ``Retry-After`` header.
            method: Match filter (see :class:`Rule`).
            path: Match filter (see :class:`Rule`).
            query: Match filter (see :class:`Rule`).
            when: Match filter (see :class:`Rule`).
            times: Matching requests to fail; ``None`` for every one.

        Returns:
            The rule (see :meth:`Rule.wait`).
        """
        hdrs = dict(headers or {})
        if body is None and json is not None:
            body = _json.dumps(json).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif body is None and code is not None:
            body = s3_error_body(code, message)
            hdrs.setdefault("Content-Type", "application/xml")
        if retry_after is not None:
            value = retry_after if isinstance(retry_after, str) else f"{retry_after:g}"
            hdrs["Retry-After"] = value
        rule = Rule(
            "reply",
            method=method,
            path=path,
            query=query,
            when=when,
            times=times,
            status=status,
            body=body or b"",
            headers=hdrs,
        )
        return self.add_rule(rule)

    def cut(
        self,
        after_bytes: int = 0,
        *,
        method: str | None = None,
        path: str | None = None,
        query: str | None = None,
        when: Callable[[Record], bool] | None = None,
        times: int | None = 1,
    ) -> Rule:
        """Forward matching requests but close the connection after ``after_bytes`` of body."""
        rule = Rule(
            "cut",
            method=method,
            path=path,
            query=query,
            when=when,
            times=times,
            after_bytes=after_bytes,
        )
        return self.add_rule(rule)

    def stall(
        self,
        seconds: float = 60.0,
        *,
        after_bytes: int = 0,
        before_headers: bool = False,
        method: str | None = None,
        path: str | None = None,
        query: str | None = None,
        when: Callable[[Record], bool] | None = None,
        times: int | None = 1,
    ) -> Rule:
        """Forward matching requests but pause the response for up to ``seconds``.

        The pause comes after ``after_bytes`` bytes of body, or before the response head when
        ``before_headers`` is true. It ends early on :meth:`Rule.release`,
        :meth:`release_all` or :meth:`stop`; then the response continues normally.
        """
        rule = Rule(
            "stall",
            method=method,
            path=path,
            query=query,
            when=when,
            times=times,
            after_bytes=after_bytes,
            seconds=seconds,
            before_headers=before_headers,
        )
        return self.add_rule(rule)

    def drop(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        query: str | None = None,
        when: Callable[[Record], bool] | None = None,
        times: int | None = 1,
    ) -> Rule:
        """Read matching requests, then close the connection without answering."""
        rule = Rule("drop", method=method, path=path, query=query, when=when, times=times)
        return self.add_rule(rule)

    def rewrite(
        self,
        status: int,
        *,
        remove_headers: tuple[str, ...] = (),
        method: str | None = None,
        path: str | None = None,
        query: str | None = None,
        when: Callable[[Record], bool] | None = None,
        times: int | None = 1,
    ) -> Rule:
        """Forward matching requests, answer with ``status`` and without ``remove_headers``.

        The body is relayed unchanged (e.g. ``rewrite(200)`` on a ranged GET plays
        ``rclone serve s3``, which answers ranges with 200 and a ``Content-Range``).
        """
        rule = Rule(
            "rewrite", method=method, path=path, query=query, when=when, times=times,
            status=status, remove_headers=remove_headers,
        )
        return self.add_rule(rule)

    # -- internals -----------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._selector is not None and self._listener is not None
        while not self._stopping.is_set():
            try:
                events = self._selector.select()
            except OSError:
                return
            for key, _ in events:
                if key.fileobj is not self._listener:
                    return  # woken by stop()
                try:
                    csock, _addr = self._listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    return
                csock.setblocking(True)
                csock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with self._lock:
                    if self._stopping.is_set():
                        csock.close()
                        return
                    self._connections += 1
                    number = self._connections
                    self._active.add(csock)
                    thread = threading.Thread(
                        target=self._serve,
                        args=(csock, number),
                        name=f"FaultProxy-{self.port}-conn{number}",
                        daemon=True,
                    )
                    self._threads.add(thread)
                thread.start()

    def _serve(self, csock: socket.socket, number: int) -> None:
        rfile = _reader(csock)
        upstream: list[_Upstream | None] = [None]
        try:
            while not self._stopping.is_set():
                try:
                    head = _read_head(rfile, skip_blank=True)
                except _ProtocolError:
                    self._send_simple(csock, 400, b"bad request\n", close=True)
                    break
                if head is None:
                    break
                if not self._handle(csock, rfile, head, number, upstream):
                    break
        except (_Closed, _ProtocolError, OSError):
            pass
        finally:
            if upstream[0] is not None:
                upstream[0].close()
            with contextlib.suppress(OSError):
                rfile.close()
            with contextlib.suppress(OSError):
                csock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                csock.close()
            with self._lock:
                self._active.discard(csock)
                self._threads.discard(threading.current_thread())

    def _handle(
        self,
        csock: socket.socket,
        rfile: io.BufferedReader,
        head: _Head,
        number: int,
        upstream: list[_Upstream | None],
    ) -> bool:
        """Serve one request; return whether the client connection stays open."""
        parts = head.first.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            self._send_simple(csock, 400, b"bad request line\n", close=True)
            return False
        method_b, target_b, version_b = parts
        version = version_b.decode("latin-1")
        record = Record(
            method=method_b.decode("latin-1"),
            target=target_b.decode("latin-1"),
            raw_target=target_b,
            version=version,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers],
            time=time.monotonic(),
            connection=number,
            chunked=head.chunked,
        )
        conn_tokens = head.tokens(b"connection")
        if version == "HTTP/1.1":
            client_keep = b"close" not in conn_tokens
        else:
            client_keep = b"keep-alive" in conn_tokens
        expect = b"100-continue" in head.tokens(b"expect")
        length = None if head.chunked else (head.content_length or 0)

        rule = self._match(record)

        if rule is not None and rule.action in ("reply", "drop"):
            if expect and rule.action == "reply":
                # Answer without reading the body the client is holding back, then close.
                self._reply(csock, record, rule, close=True)
                return False
            self._read_body(rfile, record, length, None)
            if rule.action == "drop":
                return False
            self._reply(csock, record, rule, close=not client_keep)
            return client_keep

        up = upstream[0]
        if up is not None and up.stale():
            up.close()
            up = upstream[0] = None
        if up is None:
            try:
                up = upstream[0] = _Upstream(self.upstream, self.upstream_timeout, self)
            except OSError:
                self._read_body(rfile, record, length, None)
                record.status = 502
                self._send_simple(csock, 502, b"upstream unreachable\n", close=True)
                return False

        if expect:
            csock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        up_ok = True
        try:
            up.sock.sendall(head.raw)
        except OSError:
            up_ok = False
        with self._lock:
            self._forwarded += 1
        record.forwarded = True
        up_ok = self._read_body(rfile, record, length, up.sock if up_ok else None)

        if rule is not None and rule.action == "stall" and rule.before_headers:
            self._stall(rule)

        try:
            keep_up, keep_client = self._relay_response(
                csock, up, record, rule, drop_continue=expect
            )
        except (_ProtocolError, OSError) as exc:
            upstream[0] = None
            up.close()
            if isinstance(exc, _ProtocolError) or not up_ok:
                if record.status is None:
                    record.status = 502
                    self._send_simple(csock, 502, b"bad upstream response\n", close=True)
                return False
            raise
        except _Closed:
            upstream[0] = None
            up.close()
            raise
        if not keep_up:
            upstream[0] = None
            up.close()
        return client_keep and keep_client

    def _match(self, record: Record) -> Rule | None:
        """Record the request and return the first rule that fires for it."""
        chosen: Rule | None = None
        with self._lock:
            self._records.append(record)
            for rule in self._rules:
                if rule.times is not None and rule.times <= 0:
                    continue
                if rule.matches(record):
                    chosen = rule
                    if rule.times is not None:
                        rule.times -= 1
                    rule.hits += 1
                    record.fault = rule.action
                    break
            self._lock.notify_all()
        if chosen is not None:
            chosen.triggered.set()
        return chosen

    @staticmethod
    def _stall(rule: Rule) -> None:
        # stop(), clear_rules() and release_all() set the event of every rule they know.
        rule.released.wait(rule.seconds)

    def _read_body(
        self,
        rfile: io.BufferedReader,
        record: Record,
        length: int | None,
        sink: socket.socket | None,
    ) -> bool:
        """Read the request body, forwarding raw bytes to ``sink``; return whether it worked.

        ``length`` is ``None`` for a chunked body. A failing sink is dropped, the body is
        still read to the end so the client connection stays in sync.
        """
        ok = [sink is not None]

        def forward(data: bytes) -> None:
            if ok[0] and sink is not None:
                try:
                    sink.sendall(data)
                except OSError:
                    ok[0] = False

        def keep(data: bytes) -> None:
            record.body_length += len(data)
            room = self.record_body_limit - len(record.body)
            if room > 0:
                record.body += data[:room]

        if length is not None:
            left = length
            while left > 0:
                data = rfile.read(min(left, _CHUNK))
                if not data:
                    raise _Closed("client closed mid-body")
                left -= len(data)
                keep(data)
                forward(data)
            return ok[0]
        while True:
            line = rfile.readline(_MAX_LINE + 1)
            if not line.endswith(b"\n"):
                raise _ProtocolError("bad chunk size line")
            forward(line)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise _ProtocolError("bad chunk size") from exc
            if size == 0:
                while True:  # trailers, then the final CRLF
                    trailer = rfile.readline(_MAX_LINE + 1)
                    if not trailer.endswith(b"\n"):
                        raise _ProtocolError("bad trailer")
                    forward(trailer)
                    if trailer in (b"\r\n", b"\n"):
                        return ok[0]
            left = size
            while left > 0:
                data = rfile.read(min(left, _CHUNK))
                if not data:
                    raise _Closed("client closed mid-chunk")
                left -= len(data)
                keep(data)
                forward(data)
            forward(_read_exact(rfile, 2))

    def _relay_response(
        self,
        csock: socket.socket,
        up: _Upstream,
        record: Record,
        rule: Rule | None,
        *,
        drop_continue: bool,
    ) -> tuple[bool, bool]:
        """Stream the upstream response back; return (keep upstream, keep client)."""
        while True:
            head = _read_head(up.rfile, skip_blank=False)
            if head is None:
                raise _ProtocolError("upstream closed before responding")
            parts = head.first.split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
                raise _ProtocolError("bad status line")
            try:
                status = int(parts[1])
            except ValueError as exc:
                raise _ProtocolError("bad status code") from exc
            if 100 <= status < 200 and status != 101:
                if not (status == 100 and drop_continue):
                    csock.sendall(head.raw)
                continue
            break
        close = b"close" in head.tokens(b"connection") or parts[0] == b"HTTP/1.0"
        raw = head.raw
        if rule is not None and rule.action == "rewrite":
            status = rule.status
            raw = _rewritten(head, parts[0], status, rule.remove_headers)
        record.status = status  # before the client can see the answer
        csock.sendall(raw)
        gate = _BodyGate(self, csock, rule)
        if record.method.upper() == "HEAD" or status in (204, 304):
            return not close, not close
        if head.chunked:
            self._relay_chunked(up.rfile, gate)
            return not close, not close
        length = head.content_length
        if length is None:  # delimited by EOF
            while True:
                data = up.rfile.read1(_CHUNK)
                if not data:
                    return False, False
                gate.write(data)
        left = length
        while left > 0:
            data = up.rfile.read1(min(left, _CHUNK))
            if not data:
                raise _Closed("upstream closed mid-body")
            left -= len(data)
            gate.write(data)
        return not close, not close

    @staticmethod
    def _relay_chunked(rfile: io.BufferedReader, gate: _BodyGate) -> None:
        while True:
            line = rfile.readline(_MAX_LINE + 1)
            if not line.endswith(b"\n"):
                raise _Closed("upstream chunk size line truncated")
            gate.write(line)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise _Closed("bad upstream chunk size") from exc
            if size == 0:
                while True:
                    trailer = rfile.readline(_MAX_LINE + 1)
                    if not trailer.endswith(b"\n"):
                        raise _Closed("upstream trailer truncated")
                    gate.write(trailer)
                    if trailer in (b"\r\n", b"\n"):
                        return
            left = size + 2
            while left > 0:
                data = rfile.read1(min(left, _CHUNK))
                if not data:
                    raise _Closed("upstream closed mid-chunk")
                left -= len(data)
                gate.write(data)

    def _reply(self, csock: socket.socket, record: Record, rule: Rule, *, close: bool) -> None:
        record.status = rule.status
        headers = dict(rule.headers)
        lower = {k.lower() for k in headers}
        if "x-amz-request-id" not in lower:
            headers["x-amz-request-id"] = "proxy-injected"
        body = b"" if record.method.upper() == "HEAD" else rule.body
        self._send(csock, rule.status, headers, rule.body, body, close=close)

    def _send_simple(self, csock: socket.socket, status: int, body: bytes, *, close: bool) -> None:
        with contextlib.suppress(OSError):
            self._send(csock, status, {"Content-Type": "text/plain"}, body, body, close=close)

    @staticmethod
    def _send(
        csock: socket.socket,
        status: int,
        headers: Mapping[str, str],
        declared: bytes,
        body: bytes,
        *,
        close: bool,
    ) -> None:
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Injected"
        lines = [f"HTTP/1.1 {status} {reason}"]
        lower = {k.lower() for k in headers}
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        if "content-length" not in lower:
            lines.append(f"Content-Length: {len(declared)}")
        if close:
            lines.append("Connection: close")
        csock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
