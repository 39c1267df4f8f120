"""Loopback HTTP/1.1 server speaking the B2 native API, plus the :class:`B2Emulator` facade.

Routes (``vN`` is ``v2``, ``v3`` or ``v4``; ``b2_authorize_account`` only ``v3``/``v4``):

* ``GET|POST /b2api/vN/b2_authorize_account`` (Basic auth)
* ``GET|POST /b2api/vN/<b2_* JSON call>`` (see :data:`core.JSON_CALLS`)
* ``POST /b2api/vN/b2_upload_file/<bucketId>/<n>`` and ``.../b2_upload_part/<fileId>/<n>``
  (the ``uploadUrl`` values handed out, each with its own token)
* ``GET|HEAD /file/<bucketName>/<percent-encoded name>`` and
  ``GET|HEAD|POST /b2api/vN/b2_download_file_by_id?fileId=...``
* ``/_emu/<control>``: test controls, see :meth:`_Handler._control` and README.md.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import secrets
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from ._sim import B2Error, b2sdk_error_answer
from .core import (
    AUTHORIZE_CALL,
    JSON_CALLS,
    UPLOAD_CALLS,
    B2ApiError,
    EmulatorConfig,
    EmulatorCore,
    FailureRule,
    b2_decode,
)

__all__ = ["B2Emulator"]

_API_VERSIONS = frozenset({"v2", "v3", "v4"})
_AUTH_VERSIONS = frozenset({"v3", "v4"})
_SMALL_BODY = 64 * 1024
_MAX_LINE = 65536
_MAX_HEADERS = 200
_DRAIN_CHUNK = 1 << 20
_REASONS = {s.value: s.phrase for s in HTTPStatus}
_INT_QUERY_FIELDS = frozenset(
    {"maxFileCount", "maxPartCount", "startPartNumber", "validDurationInSeconds", "partNumber"}
)


class _Date:
    """``Date`` header value, formatted at most once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def get(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._value = email.utils.formatdate(now, usegmt=True)
            self._second = now
        return self._value


_DATE = _Date()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], core: EmulatorCore) -> None:
        super().__init__(address, _Handler)
        self.core = core
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return  # the client went away, or stop() shut the socket down
        self.core.record_internal_error()

    def close_connections(self) -> None:
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "b2emu"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _Server
    headers: dict[str, str]  # type: ignore[assignment]

    # -- plumbing ------------------------------------------------------------------------------

    def handle_one_request(self) -> None:
        """Read one request and dispatch it.

        Replaces the stdlib version, which parses headers with the ``email`` package (about
        half of the server's CPU time per small request). Headers end up in ``self.headers``,
        a plain dict keyed by lower-case names (a repeated header keeps its last value).
        """
        rfile = self.rfile
        try:
            line = rfile.readline(_MAX_LINE + 1)
            if not line:
                self.close_connection = True
                return
            if len(line) > _MAX_LINE:
                self._reject(414, "request line too long")
                return
            self.raw_requestline = line
            self.requestline = line.decode("latin-1").rstrip("\r\n")
            words = self.requestline.split()
            if len(words) != 3 or words[2] not in ("HTTP/1.1", "HTTP/1.0"):
                self._reject(400, f"bad request line {self.requestline!r}")
                return
            self.command, self.path, self.request_version = words
            headers: dict[str, str] = {}
            for _ in range(_MAX_HEADERS + 1):
                raw = rfile.readline(_MAX_LINE + 1)
                if raw in (b"\r\n", b"\n", b""):
                    break
                if len(raw) > _MAX_LINE:
                    self._reject(431, "header line too long")
                    return
                name, sep, value = raw.decode("latin-1").partition(":")
                if not sep:
                    self._reject(400, "malformed header line")
                    return
                headers[name.strip().lower()] = value.strip()
            else:
                self._reject(431, "too many headers")
                return
            self.headers = headers  # type: ignore[assignment]
            connection = headers.get("connection", "").lower()
            if self.request_version == "HTTP/1.0":
                self.close_connection = "keep-alive" not in connection
            else:
                self.close_connection = "close" in connection
            if headers.get("expect", "").lower() == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self._dispatch()
            self.wfile.flush()
        except TimeoutError:
            self.close_connection = True

    def _reject(self, status: int, message: str) -> None:
        self.close_connection = True
        self.command = self.command if hasattr(self, "command") else "GET"
        self._remaining = 0
        self._truncate = False
        self._send_json(status, {"status": status, "code": "bad_request", "message": message})

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging (it costs time and floods test output)."""

    def _read_body(self) -> bytes:
        n = self._remaining
        if n <= 0:
            return b""
        data = self.rfile.read(n)
        self._remaining = 0
        if len(data) != n:
            self.close_connection = True
            raise ConnectionError("client closed the connection mid-body")
        return data

    def _drain(self) -> None:
        while self._remaining > 0:
            chunk = self.rfile.read(min(self._remaining, _DRAIN_CHUNK))
            if not chunk:
                self.close_connection = True
                self._remaining = 0
                return
            self._remaining -= len(chunk)

    def _send(
        self,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes | memoryview = b"",
        *,
        with_body: bool = True,
    ) -> None:
        if self._remaining:
            self._drain()
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\nDate: {_DATE.get()}\r\n"]
        for name, value in headers:
            lines.append(f"{name}: {value}\r\n")
        send_body = with_body and self.command != "HEAD"
        length = len(body) if send_body or status < 300 else 0
        lines.append(f"Content-Length: {length}\r\n")
        if self.close_connection or self._truncate:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        text = "".join(lines)
        try:
            head = text.encode("latin-1")
        except UnicodeEncodeError:
            head = text.encode("utf-8")
        if not send_body:
            self.wfile.write(head)
        elif self._truncate:
            self.wfile.write(head)
            self.wfile.write(body[: len(body) // 2])
            self._hang_up()
        elif len(body) <= _SMALL_BODY:
            self.wfile.write(head + bytes(body))
        else:
            self.wfile.write(head)
            self.wfile.write(body)

    def _send_json(self, status: int, obj: Any, extra: dict[str, str] | None = None) -> None:
        body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = [("Content-Type", "application/json;charset=utf-8")]
        if extra:
            headers.extend(extra.items())
        self._send(status, headers, body)

    def _send_error(self, err: B2ApiError) -> None:
        if self.command == "HEAD":
            self._send(err.status, list(err.headers.items()), with_body=False)
        else:
            self._send_json(err.status, err.body(), err.headers)

    def _hang_up(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _apply_failure(self, rule: FailureRule | None) -> bool:
        """Act on an injected failure; True if the request has been answered (or dropped)."""
        if rule is None:
            return False
        if rule.delay > 0:
            time.sleep(rule.delay)
        if rule.mode == "delay":
            return False
        if rule.mode == "truncate":
            self._truncate = True
            return False
        if rule.mode == "drop":
            self._remaining = 0
            self._hang_up()
            return True
        self._send_error(rule.error())
        return True

    # -- dispatch ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        self._remaining = 0
        self._truncate = False
        core = self.server.core
        try:
            if self.headers.get("transfer-encoding"):
                self.close_connection = True
                raise B2ApiError(400, "bad_request", "chunked transfer encoding is not supported")
            length = self.headers.get("content-length")
            if length is not None:
                try:
                    self._remaining = int(length)
                except ValueError:
                    self.close_connection = True
                    raise B2ApiError(400, "bad_request", "invalid Content-Length") from None
                if self._remaining < 0:
                    self.close_connection = True
                    raise B2ApiError(400, "bad_request", "invalid Content-Length")
            raw_path, _, query_string = self.path.partition("?")
            if raw_path.startswith("/_emu/"):
                self._control(raw_path[len("/_emu/") :], query_string)
            elif raw_path.startswith("/file/"):
                self._download_by_name(raw_path[len("/file/") :], query_string)
            elif raw_path.startswith("/b2api/"):
                self._api(raw_path, query_string, length is not None)
            else:
                raise B2ApiError(404, "not_found", f"unknown path {raw_path}")
        except B2ApiError as err:
            self._send_error(err)
        except B2Error as exc:  # a simulator check the emulator did not anticipate
            self._send_error(B2ApiError(*b2sdk_error_answer(exc)))
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:
            core.record_internal_error()
            self.close_connection = True
            self._send_error(B2ApiError(500, "internal_error", "emulator bug, see stats()"))

    def _api(self, raw_path: str, query_string: str, has_length: bool) -> None:
        core = self.server.core
        parts = raw_path.split("/")  # ['', 'b2api', 'v3', 'b2_call', ...]
        if len(parts) < 4:
            raise B2ApiError(404, "not_found", f"unknown path {raw_path}")
        version, call = parts[2], parts[3]
        if version not in _API_VERSIONS:
            raise B2ApiError(400, "bad_request", f"unsupported API version {version}")
        method = self.command
        if call in UPLOAD_CALLS and len(parts) == 6:
            if method != "POST":
                raise B2ApiError(405, "method_not_allowed", f"{call} needs POST")
            self._upload(call, parts[4], has_length)
            return
        if len(parts) != 4:
            raise B2ApiError(404, "not_found", f"unknown path {raw_path}")
        if call == AUTHORIZE_CALL:
            if version not in _AUTH_VERSIONS:
                raise B2ApiError(400, "bad_request", f"{call} is only served on v3 and v4")
            if method not in ("GET", "POST"):
                raise B2ApiError(405, "method_not_allowed", f"{call} needs GET or POST")
            if self._apply_failure(core.begin_call(call)):
                return
            self._read_body()
            self._send_json(200, core.authorize_account(version, self.headers.get("authorization")))
            return
        if call == "b2_download_file_by_id":
            self._download_by_id(query_string)
            return
        if call not in JSON_CALLS:
            raise B2ApiError(404, "not_found", f"unknown API call {call}")
        if method not in ("GET", "POST"):
            raise B2ApiError(405, "method_not_allowed", f"{call} needs GET or POST")
        if self._apply_failure(core.begin_call(call)):
            return
        params = self._params(query_string)
        result = core.call_json(call, self.headers.get("authorization"), params, version)
        self._send_json(200, result)

    def _params(self, query_string: str) -> dict[str, Any]:
        body = self._read_body()
        if self.command == "POST" and body.strip():
            try:
                params = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise B2ApiError(400, "bad_json", f"invalid JSON body: {exc}") from exc
            if not isinstance(params, dict):
                raise B2ApiError(400, "bad_json", "JSON body must be an object")
            return params
        out: dict[str, Any] = {}
        for name, values in parse_qs(query_string, keep_blank_values=True).items():
            out[name] = (
                int(values[0]) if name in _INT_QUERY_FIELDS and values[0].isdigit() else values[0]
            )
        return out

    def _upload(self, call: str, target: str, has_length: bool) -> None:
        core = self.server.core
        if self._apply_failure(core.begin_call(call)):
            return
        if not has_length:
            raise B2ApiError(400, "bad_request", "Missing header: Content-Length")
        kind = "file" if call == "b2_upload_file" else "part"
        rec = core.begin_upload(kind, target, self.headers.get("authorization"))
        try:
            body = self._read_body()
            headers = self.headers
            if kind == "file":
                result = core.upload_file(rec, headers, body)
            else:
                result = core.upload_part(rec, headers, body)
        finally:
            # Release before answering: the client may reuse the token as soon as it has the
            # answer, possibly on another connection.
            core.end_upload(rec)
        self._send_json(200, result)

    def _download_by_name(self, rest: str, query_string: str) -> None:
        if self.command not in ("GET", "HEAD"):
            raise B2ApiError(405, "method_not_allowed", "downloads need GET or HEAD")
        bucket_name, sep, encoded = rest.partition("/")
        if not sep or not encoded:
            raise B2ApiError(404, "not_found", "missing file name")
        core = self.server.core
        if self._apply_failure(core.begin_call("b2_download_file_by_name")):
            return
        self._read_body()
        query = {k: v[0] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
        dl = core.download(
            token=self.headers.get("authorization") or query.get("Authorization"),
            range_header=self.headers.get("range"),
            query=query,
            bucket_name=bucket_name,
            file_name=b2_decode(encoded),
        )
        self._send(dl.status, dl.headers, dl.body)

    def _download_by_id(self, query_string: str) -> None:
        core = self.server.core
        if self.command not in ("GET", "HEAD", "POST"):
            raise B2ApiError(405, "method_not_allowed", "downloads need GET, HEAD or POST")
        if self._apply_failure(core.begin_call("b2_download_file_by_id")):
            return
        query = {k: v[0] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
        params = self._params(query_string)
        file_id = params.get("fileId")
        if not isinstance(file_id, str) or not file_id:
            raise B2ApiError(400, "bad_request", "required field fileId is missing")
        dl = core.download(
            token=self.headers.get("authorization") or query.get("Authorization"),
            range_header=self.headers.get("range"),
            query=query,
            file_id=file_id,
        )
        self._send(dl.status, dl.headers, dl.body)

    # -- controls ------------------------------------------------------------------------------

    def _control(self, name: str, query_string: str) -> None:
        """Serve ``/_emu/<name>``; JSON in (POST body or query), JSON out."""
        core = self.server.core
        emulator: B2Emulator = self.server.emulator  # type: ignore[attr-defined]
        body = self._read_body()
        try:
            params: dict[str, Any] = json.loads(body) if body.strip() else {}
            if not isinstance(params, dict):
                raise ValueError("JSON body must be an object")
            if not params and query_string:
                params = {k: v[0] for k, v in parse_qs(query_string).items()}
            result: Any
            if name == "info":
                result = emulator.info()
            elif name == "stats":
                result = core.get_stats()
            elif name == "failures":
                result = {"failures": core.pending_failures()}
            elif name == "reset":
                core.reset()
                result = emulator.info()
            elif name == "reset_stats":
                core.reset_stats()
                result = {}
            elif name == "fail":
                call = params.pop("call")
                core.inject_failure(call, **params)
                result = {"failures": core.pending_failures()}
            elif name == "clear_failures":
                core.clear_failures()
                result = {}
            elif name == "expire_account_tokens":
                result = {"expired": core.expire_account_tokens()}
            elif name == "expire_upload_tokens":
                result = {"expired": core.expire_upload_tokens()}
            elif name == "expire_download_authorizations":
                result = {"expired": core.expire_download_authorizations()}
            elif name == "config":
                result = core.configure(**params)
            elif name == "create_key":
                bucket_name = params.get("bucket_name")
                key_id, key = core.create_key(
                    bucket_names=params.get("bucket_names")
                    or ([bucket_name] if bucket_name else None),
                    capabilities=params.get("capabilities"),
                    name_prefix=params.get("name_prefix"),
                    valid_duration=params.get("valid_duration"),
                )
                result = {"key_id": key_id, "key": key}
            elif name == "create_bucket":
                bucket_name = params["bucket_name"]
                bucket_id = core.create_bucket(bucket_name, params.get("bucket_type", "allPrivate"))
                result = {"bucket_id": bucket_id, "bucket_name": bucket_name}
            else:
                raise B2ApiError(404, "not_found", f"unknown control {name!r}")
        except B2ApiError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise B2ApiError(400, "bad_request", f"{type(exc).__name__}: {exc}") from exc
        self._send_json(200, result)


class B2Emulator:
    """A B2 native-API server on loopback, for tests and benchmarks.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. After start:
    ``url`` (give it to the client as the realm / authorization base URL), ``key_id`` and ``key``
    (the master application key), ``account_id``, ``bucket_name`` and ``bucket_id`` (a private
    bucket created at start).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bucket_name: str = "b2emu-bucket",
        key_id: str | None = None,
        key: str | None = None,
        account_id: str | None = None,
        min_part_size: int = 5_000_000,
        recommended_part_size: int | None = None,
        max_copy_size: int = 5_000_000_000,
        token_lifetime: float = 86_400.0,
        upload_token_lifetime: float = 86_400.0,
    ) -> None:
        self.host = host
        self.port = port
        self.account_id = account_id or secrets.token_hex(6)
        self.key_id = key_id or f"000{self.account_id}0000000000"
        self.key = key or "K000" + secrets.token_urlsafe(22)
        self.core = EmulatorCore(
            account_id=self.account_id,
            key_id=self.key_id,
            key=self.key,
            bucket_name=bucket_name,
            config=EmulatorConfig(
                min_part_size=min_part_size,
                recommended_part_size=recommended_part_size,
                max_copy_size=max_copy_size,
                token_lifetime=token_lifetime,
                upload_token_lifetime=upload_token_lifetime,
            ),
        )
        self.url = ""
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> B2Emulator:
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), self.core)
        server.emulator = self  # type: ignore[attr-defined]
        self.port = server.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        self.core.base_url = self.url
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"b2emu-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> B2Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    # -- identity --------------------------------------------------------------------------------

    @property
    def bucket_name(self) -> str:
        return self.core.bucket_name

    @property
    def bucket_id(self) -> str:
        return self.core.bucket_id

    def info(self) -> dict[str, Any]:
        """What ``python -m tests.b2emu`` prints: url, credentials, default bucket."""
        return {
            "url": self.url,
            "key_id": self.key_id,
            "key": self.key,
            "account_id": self.account_id,
            "bucket_name": self.bucket_name,
            "bucket_id": self.bucket_id,
        }

    # -- keys and buckets ------------------------------------------------------------------------

    def create_restricted_key(
        self,
        bucket_name: str,
        capabilities: list[str] | None = None,
        name_prefix: str | None = None,
    ) -> tuple[str, str]:
        """Create a key limited to one bucket (and optionally a name prefix)."""
        return self.core.create_key(
            bucket_names=[bucket_name], capabilities=capabilities, name_prefix=name_prefix
        )

    def create_key(
        self,
        *,
        bucket_names: list[str] | None = None,
        capabilities: list[str] | None = None,
        name_prefix: str | None = None,
        valid_duration: float | None = None,
    ) -> tuple[str, str]:
        """Create any application key (no buckets = account-wide); returns (key_id, key)."""
        return self.core.create_key(
            bucket_names=bucket_names,
            capabilities=capabilities,
            name_prefix=name_prefix,
            valid_duration=valid_duration,
        )

    def create_bucket(self, bucket_name: str, bucket_type: str = "allPrivate") -> str:
        """Create a bucket (``allPrivate`` or ``allPublic``); returns its id."""
        return self.core.create_bucket(bucket_name, bucket_type)

    # -- test controls ---------------------------------------------------------------------------

    def inject_failure(
        self,
        call: str,
        count: int = 1,
        *,
        status: int = 503,
        code: str | None = None,
        message: str | None = None,
        retry_after: float | None = None,
        delay: float = 0.0,
        mode: str = "error",
    ) -> None:
        """Make the next ``count`` calls named ``call`` fail (see README for names and modes)."""
        self.core.inject_failure(
            call,
            count,
            status=status,
            code=code,
            message=message,
            retry_after=retry_after,
            delay=delay,
            mode=mode,
        )

    def clear_failures(self) -> None:
        self.core.clear_failures()

    def pending_failures(self) -> list[dict[str, Any]]:
        return self.core.pending_failures()

    def expire_account_tokens(self) -> int:
        """Expire every account token issued so far; returns how many were live."""
        return self.core.expire_account_tokens()

    def expire_upload_tokens(self) -> int:
        return self.core.expire_upload_tokens()

    def expire_download_authorizations(self) -> int:
        return self.core.expire_download_authorizations()

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change settings at run time (min_part_size, token_lifetime, ...); returns all."""
        return self.core.configure(**settings)

    def reset(self) -> None:
        """Drop all data, extra buckets and keys, tokens, failures and counters."""
        self.core.reset()

    def reset_stats(self) -> None:
        self.core.reset_stats()

    def stats(self) -> dict[str, Any]:
        return self.core.get_stats()

    def call_count(self, call: str) -> int:
        return int(self.core.get_stats()["calls"].get(call, 0))

    @property
    def authorize_count(self) -> int:
        return self.call_count(AUTHORIZE_CALL)

    @property
    def upload_token_concurrent_use(self) -> bool:
        return bool(self.core.get_stats()["upload_token_concurrent_use"])

    # -- direct data access (bypasses HTTP and authorization) ------------------------------------

    def put_file(
        self,
        name: str,
        data: bytes,
        *,
        bucket_name: str | None = None,
        content_type: str = "application/octet-stream",
        file_info: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        return self.core.put_file(
            name, data, bucket_name=bucket_name, content_type=content_type, file_info=file_info
        )

    def read_file(self, name: str, *, bucket_name: str | None = None) -> bytes | None:
        return self.core.read_file(name, bucket_name=bucket_name)

    def list_versions(self, *, bucket_name: str | None = None) -> list[dict[str, Any]]:
        return self.core.list_versions(bucket_name=bucket_name)
