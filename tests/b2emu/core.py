"""The B2 native-API model behind the HTTP server: tokens, authorization, calls, controls.

Nothing here knows about sockets. :class:`EmulatorCore` takes already-parsed requests (call
name, token, JSON parameters, or upload headers and body) and returns JSON-ready dicts or
raises :class:`B2ApiError`, which the server turns into B2's ``{"status", "code", "message"}``
error body. All state lives behind one lock (``EmulatorCore.lock``); hashing of upload bodies and
writing of download bodies happen outside it.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import mimetypes
import secrets
import threading
import time
import traceback
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote, unquote_plus

from ._sim import (
    ALL_CAPABILITIES,
    SSE_B2_AES,
    EmuBucket,
    EmuSimulator,
    EncryptionMode,
    FileSimulator,
    IdSequence,
    KeySimulator,
    LegalHold,
    MillisClock,
    PartSimulator,
    sse_json,
)

# ---------------------------------------------------------------------------------------------
# Names of calls (used for routing, counters and failure injection)

JSON_CALLS = frozenset(
    {
        "b2_list_buckets",
        "b2_get_upload_url",
        "b2_start_large_file",
        "b2_get_upload_part_url",
        "b2_finish_large_file",
        "b2_cancel_large_file",
        "b2_list_parts",
        "b2_list_unfinished_large_files",
        "b2_list_file_names",
        "b2_list_file_versions",
        "b2_delete_file_version",
        "b2_hide_file",
        "b2_copy_file",
        "b2_copy_part",
        "b2_get_download_authorization",
        "b2_get_file_info",
    }
)
AUTHORIZE_CALL = "b2_authorize_account"
UPLOAD_CALLS = frozenset({"b2_upload_file", "b2_upload_part"})
DOWNLOAD_CALLS = frozenset({"b2_download_file_by_name", "b2_download_file_by_id"})
ALL_CALLS = JSON_CALLS | UPLOAD_CALLS | DOWNLOAD_CALLS | {AUTHORIZE_CALL}

#: Aliases accepted by :meth:`EmulatorCore.inject_failure` besides exact call names.
CALL_ALIASES: dict[str, frozenset[str]] = {
    "*": ALL_CALLS,
    "download": DOWNLOAD_CALLS,
    "upload": UPLOAD_CALLS,
}

DEFAULT_CODES = {
    400: "bad_request",
    401: "bad_auth_token",
    403: "access_denied",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    416: "range_not_satisfiable",
    429: "too_many_requests",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}

FAILURE_MODES = ("error", "drop", "truncate", "delay")

#: Capabilities given by default to a key restricted to one bucket (B2's "read and write" set).
DEFAULT_RESTRICTED_CAPABILITIES = (
    "listBuckets",
    "listAllBucketNames",
    "readBuckets",
    "readBucketEncryption",
    "listFiles",
    "readFiles",
    "shareFiles",
    "writeFiles",
    "deleteFiles",
    "readFileRetentions",
    "readFileLegalHolds",
)

MAX_FILE_INFO_ENTRIES = 10
MAX_NAME_AND_INFO_BYTES = 7000
MAX_PART_NUMBER = 10000
MAX_DOWNLOAD_AUTH_SECONDS = 604_800
#: ``contentMd5`` is reported only for bodies up to this size (B2 says "if known").
MD5_LIMIT = 16 * 1024 * 1024

_INFO_PREFIX = "x-bz-info-"
_SPECIAL_INFO_HEADERS = {
    "b2-content-disposition": "Content-Disposition",
    "b2-content-language": "Content-Language",
    "b2-expires": "Expires",
    "b2-cache-control": "Cache-Control",
    "b2-content-encoding": "Content-Encoding",
}
_QUERY_OVERRIDES = {
    "b2ContentDisposition": "Content-Disposition",
    "b2ContentLanguage": "Content-Language",
    "b2Expires": "Expires",
    "b2CacheControl": "Cache-Control",
    "b2ContentEncoding": "Content-Encoding",
    "b2ContentType": "Content-Type",
}
_HEX = frozenset("0123456789abcdef")


class B2ApiError(Exception):
    """An error answer: HTTP status, B2 error code, message and extra response headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"status": self.status, "code": self.code, "message": self.message}


def _bad(message: str, code: str = "bad_request") -> B2ApiError:
    return B2ApiError(400, code, message)


def _unauthorized(message: str) -> B2ApiError:
    return B2ApiError(401, "unauthorized", message)


def b2_encode(text: str) -> str:
    """Percent-encode a file name or info value the way B2 does (``/`` stays literal)."""
    return quote(text, safe="/!$'()*;=:@")


def b2_decode(text: str) -> str:
    """Decode a percent-encoded B2 string (``+`` means space); 400 on invalid input."""
    if not text.isascii():
        raise _bad(f"header values must be percent-encoded UTF-8, got {text!r}")
    try:
        return unquote_plus(text, errors="strict")
    except UnicodeDecodeError as exc:
        raise _bad(f"invalid percent-encoded UTF-8: {text!r}") from exc


# ---------------------------------------------------------------------------------------------
# Records


@dataclass
class EmulatorConfig:
    """Settings that tests may change while the emulator runs."""

    min_part_size: int = 5_000_000
    recommended_part_size: int | None = None
    max_copy_size: int = 5_000_000_000
    token_lifetime: float = 86_400.0
    upload_token_lifetime: float = 86_400.0

    @property
    def effective_recommended_part_size(self) -> int:
        if self.recommended_part_size is not None:
            return self.recommended_part_size
        return 20 * self.min_part_size


@dataclass
class AccountToken:
    token: str
    key: KeySimulator
    issued: float
    expired: bool = False


@dataclass
class UploadToken:
    token: str
    kind: str  # "file" or "part"
    target: str  # bucket id (file) or large file id (part)
    account_token: str
    key: KeySimulator
    issued: float
    expired: bool = False
    in_flight: int = 0


@dataclass
class DownloadAuth:
    token: str
    bucket_id: str
    prefix: str
    expires_at: float
    expired: bool = False


@dataclass
class FailureRule:
    """One injected failure rule: the next ``remaining`` matching calls fail."""

    call: str
    remaining: int
    status: int = 503
    code: str = "service_unavailable"
    message: str = "injected failure"
    retry_after: float | None = None
    delay: float = 0.0
    mode: str = "error"

    def matches(self, call: str) -> bool:
        alias = CALL_ALIASES.get(self.call)
        if alias is not None:
            return call in alias
        return call == self.call

    def error(self) -> B2ApiError:
        headers = {}
        if self.retry_after is not None:
            ra = self.retry_after
            headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
        return B2ApiError(self.status, self.code, self.message, headers)


@dataclass
class Download:
    """What the server sends for a successful download (body is a zero-copy view)."""

    status: int
    headers: list[tuple[str, str]]
    body: memoryview


@dataclass
class Stats:
    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    auth_token_limit_errors: int = 0
    upload_token_concurrent_use: bool = False
    injected_failures: int = 0


# ---------------------------------------------------------------------------------------------
# Parameter helpers


def _param_str(params: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise _bad(f"required field {name} is missing")
        return None
    if not isinstance(value, str):
        raise _bad(f"field {name} must be a string")
    return value


def _req_str(params: dict[str, Any], name: str) -> str:
    value = _param_str(params, name)
    assert value is not None
    return value


def _param_int(params: dict[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        raise _bad(f"field {name} must be an integer")
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError as exc:
            raise _bad(f"field {name} must be an integer") from exc
    if not isinstance(value, int):
        raise _bad(f"field {name} must be an integer")
    return value


def _count_param(params: dict[str, Any], name: str, default: int, maximum: int) -> int:
    value = _param_int(params, name)
    if value is None or value == 0:
        return default
    if value < 0 or value > maximum:
        raise B2ApiError(400, "out_of_range", f"{name} out of range: {value}")
    return value


def validate_file_name(name: str) -> None:
    """Apply B2's file-name rules: 1..1024 UTF-8 bytes, no control characters, no DEL."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise _bad("file name is not valid UTF-8") from exc
    if size == 0 or size > 1024:
        raise _bad(f"file name must be 1 to 1024 bytes of UTF-8, got {size}")
    if any(ord(c) < 0x20 or c == "\x7f" for c in name):
        raise _bad("file names must not contain control characters or DEL")


def validate_file_info(name: str, info: Any) -> dict[str, str]:
    if info is None:
        return {}
    if not isinstance(info, dict):
        raise _bad("fileInfo must be an object")
    if len(info) > MAX_FILE_INFO_ENTRIES:
        raise _bad(f"too many file info entries: {len(info)} (at most {MAX_FILE_INFO_ENTRIES})")
    size = len(name.encode("utf-8"))
    out: dict[str, str] = {}
    for key, value in info.items():
        if not isinstance(value, str):
            raise _bad(f"file info value for {key!r} must be a string")
        if not key or not all(c.isascii() and (c.isalnum() or c in "-_") for c in key):
            raise _bad(f"invalid file info name: {key!r}")
        size += len(key.encode()) + len(value.encode("utf-8"))
        out[key] = value
    if size > MAX_NAME_AND_INFO_BYTES:
        raise _bad(f"file name and file info exceed {MAX_NAME_AND_INFO_BYTES} bytes")
    return out


def resolve_content_type(content_type: str, name: str) -> str:
    if content_type == "b2/x-auto":
        guessed, _ = mimetypes.guess_type(name, strict=False)
        return guessed or "application/octet-stream"
    return content_type


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Parse a single ``bytes=`` range against ``size``; None means "send the whole body".

    Syntactically invalid or multi-range headers are ignored (whole body), as HTTP allows.
    A range that starts at or beyond the end raises 416 ``range_not_satisfiable``.
    """
    if not header:
        return None
    header = header.strip()
    if not header.lower().startswith("bytes=") or "," in header:
        return None
    spec = header[6:].strip()
    first, sep, last = spec.partition("-")
    if not sep:
        return None
    first, last = first.strip(), last.strip()
    try:
        if first == "":
            suffix = int(last)
            if suffix < 0:
                return None
            if suffix == 0 or size == 0:
                raise _range_error(size)
            return (max(0, size - suffix), size - 1)
        start = int(first)
        end = int(last) if last else None
    except ValueError:
        return None
    if start < 0 or (end is not None and end < start):
        return None
    if start >= size:
        raise _range_error(size)
    return (start, size - 1 if end is None else min(end, size - 1))


def _range_error(size: int) -> B2ApiError:
    return B2ApiError(
        416,
        "range_not_satisfiable",
        f"The range requested is outside the file (size {size})",
        {"Content-Range": f"bytes */{size}"},
    )


def parse_copy_range(value: str | None, size: int) -> tuple[int, int] | None:
    if value is None:
        return None
    text = value.strip()
    if not text.startswith("bytes="):
        raise _bad(f"invalid range: {value!r}")
    first, sep, last = text[6:].partition("-")
    try:
        start, end = int(first), int(last)
    except ValueError as exc:
        raise _bad(f"invalid range: {value!r}") from exc
    if not sep or start < 0 or end < start:
        raise _bad(f"invalid range: {value!r}")
    if start >= size:
        raise _range_error(size)
    return (start, min(end, size - 1))


# ---------------------------------------------------------------------------------------------
# The core


class EmulatorCore:
    """State and behaviour of one emulated B2 account (thread-safe)."""

    def __init__(
        self,
        *,
        account_id: str,
        key_id: str,
        key: str,
        bucket_name: str,
        config: EmulatorConfig,
    ) -> None:
        self.account_id = account_id
        self.key_id = key_id
        self.key = key
        self.bucket_name = bucket_name
        self.config = config
        self.base_url = "http://127.0.0.1:0"  # set by the server once bound
        self.lock = threading.Lock()
        self.id_sequence = IdSequence(account_id)
        self.clock = MillisClock()
        self._token_counter = 0
        self._upload_counter = 0
        self.failures: list[FailureRule] = []
        self.stats = Stats()
        self.internal_errors: list[str] = []
        self._build_state()
        self._handlers: dict[str, Callable[[AccountToken, dict[str, Any], str], dict[str, Any]]]
        self._handlers = {
            "b2_list_buckets": self._list_buckets,
            "b2_get_upload_url": self._get_upload_url,
            "b2_start_large_file": self._start_large_file,
            "b2_get_upload_part_url": self._get_upload_part_url,
            "b2_finish_large_file": self._finish_large_file,
            "b2_cancel_large_file": self._cancel_large_file,
            "b2_list_parts": self._list_parts,
            "b2_list_unfinished_large_files": self._list_unfinished_large_files,
            "b2_list_file_names": self._list_file_names,
            "b2_list_file_versions": self._list_file_versions,
            "b2_delete_file_version": self._delete_file_version,
            "b2_hide_file": self._hide_file,
            "b2_copy_file": self._copy_file,
            "b2_copy_part": self._copy_part,
            "b2_get_download_authorization": self._get_download_authorization,
            "b2_get_file_info": self._get_file_info,
        }

    # -- state -----------------------------------------------------------------------------

    def _build_state(self) -> None:
        """(Re)create the simulator with the master key and the default bucket."""
        self.sim = EmuSimulator(self.id_sequence, self.clock)
        master = KeySimulator(
            account_id=self.account_id,
            name="master",
            application_key_id=self.key_id,
            key=self.key,
            capabilities=list(ALL_CAPABILITIES),
            expiration_timestamp_or_none=None,
            buckets_or_none=None,
            name_prefix_or_none=None,
        )
        self.sim.add_key(master, self.account_id)
        self.admin_token = "admin_" + secrets.token_hex(16)
        self.sim.register_token(self.admin_token, master)
        self.account_tokens: dict[str, AccountToken] = {}
        self.upload_tokens: dict[str, UploadToken] = {}
        self.download_auths: dict[str, DownloadAuth] = {}
        self.bucket_id = self._create_bucket_locked(self.bucket_name, "allPrivate")

    def _create_bucket_locked(self, bucket_name: str, bucket_type: str) -> str:
        if bucket_type not in ("allPrivate", "allPublic"):
            raise _bad(f"invalid bucketType: {bucket_type!r}")
        if bucket_name in self.sim.bucket_name_to_bucket:
            raise B2ApiError(
                400, "duplicate_bucket_name", f"Bucket name is already in use: {bucket_name}"
            )
        if not (6 <= len(bucket_name) <= 63) or not all(
            c.isascii() and (c.isalnum() or c == "-") for c in bucket_name
        ):
            raise _bad(f"illegal bucket name: {bucket_name!r}")
        result = self.sim.create_bucket(
            self.sim.API_URL, self.admin_token, self.account_id, bucket_name, bucket_type
        )
        bucket_id: str = result["bucketId"]
        return bucket_id

    def reset(self) -> None:
        """Forget all files, buckets, keys, tokens, failures and counters (same credentials)."""
        with self.lock:
            self._build_state()
            self.failures.clear()
            self.stats = Stats()
            self.internal_errors.clear()

    def _new_token(self, prefix: str) -> str:
        self._token_counter += 1
        return f"{prefix}{self._token_counter:06d}{secrets.token_hex(12)}"

    # -- controls --------------------------------------------------------------------------

    def create_key(
        self,
        *,
        bucket_names: list[str] | None = None,
        capabilities: list[str] | None = None,
        name_prefix: str | None = None,
        valid_duration: float | None = None,
    ) -> tuple[str, str]:
        with self.lock:
            buckets = None
            if bucket_names is not None:
                buckets = []
                for name in bucket_names:
                    bucket = self.sim.bucket_name_to_bucket.get(name)
                    if bucket is None:
                        raise _bad(f"no such bucket: {name}")
                    buckets.append({"id": bucket.bucket_id, "name": name})
            if capabilities is None:
                caps = list(DEFAULT_RESTRICTED_CAPABILITIES if buckets else ALL_CAPABILITIES)
            else:
                caps = list(capabilities)
            unknown = [c for c in caps if c not in ALL_CAPABILITIES]
            if unknown:
                raise _bad(f"unknown capabilities: {unknown}")
            key_id = "005" + secrets.token_hex(12)
            secret = "K005" + secrets.token_urlsafe(22)
            expires = None if valid_duration is None else time.time() + valid_duration
            key_sim = KeySimulator(
                account_id=self.account_id,
                name="key-" + key_id[-6:],
                application_key_id=key_id,
                key=secret,
                capabilities=caps,
                expiration_timestamp_or_none=expires,
                buckets_or_none=buckets,
                name_prefix_or_none=name_prefix,
            )
            self.sim.add_key(key_sim)
            return key_id, secret

    def create_bucket(self, bucket_name: str, bucket_type: str = "allPrivate") -> str:
        with self.lock:
            return self._create_bucket_locked(bucket_name, bucket_type)

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
        if call not in ALL_CALLS and call not in CALL_ALIASES:
            raise ValueError(f"unknown call name {call!r}")
        if mode not in FAILURE_MODES:
            raise ValueError(f"mode must be one of {FAILURE_MODES}")
        if count < 1:
            raise ValueError("count must be >= 1")
        rule = FailureRule(
            call=call,
            remaining=count,
            status=int(status),
            code=code or DEFAULT_CODES.get(int(status), "unknown"),
            message=message or f"injected failure ({status})",
            retry_after=retry_after,
            delay=float(delay),
            mode=mode,
        )
        with self.lock:
            self.failures.append(rule)

    def clear_failures(self) -> None:
        with self.lock:
            self.failures.clear()

    def pending_failures(self) -> list[dict[str, Any]]:
        with self.lock:
            return [asdict(rule) for rule in self.failures]

    def expire_account_tokens(self) -> int:
        with self.lock:
            n = 0
            for rec in self.account_tokens.values():
                if not rec.expired:
                    rec.expired = True
                    n += 1
            return n

    def expire_upload_tokens(self) -> int:
        with self.lock:
            n = 0
            for rec in self.upload_tokens.values():
                if not rec.expired:
                    rec.expired = True
                    n += 1
            return n

    def expire_download_authorizations(self) -> int:
        with self.lock:
            n = 0
            for rec in self.download_auths.values():
                if not rec.expired:
                    rec.expired = True
                    n += 1
            return n

    def configure(self, **settings: Any) -> dict[str, Any]:
        with self.lock:
            for name, value in settings.items():
                if name not in EmulatorConfig.__dataclass_fields__:
                    raise ValueError(f"unknown setting {name!r}")
                if value is not None and name != "recommended_part_size":
                    value = type(getattr(EmulatorConfig(), name))(value)
                setattr(self.config, name, value)
            return asdict(self.config)

    def get_stats(self) -> dict[str, Any]:
        with self.lock:
            calls = dict(self.stats.calls)
            return {
                "calls": calls,
                "authorize_count": calls.get(AUTHORIZE_CALL, 0),
                "upload_token_concurrent_use": self.stats.upload_token_concurrent_use,
                "auth_token_limit_errors": self.stats.auth_token_limit_errors,
                "injected_failures": self.stats.injected_failures,
                "pending_failures": len(self.failures),
                "internal_errors": list(self.internal_errors),
            }

    def reset_stats(self) -> None:
        with self.lock:
            self.stats = Stats()
            self.internal_errors.clear()

    def record_internal_error(self) -> None:
        text = traceback.format_exc()
        with self.lock:
            if len(self.internal_errors) < 100:
                self.internal_errors.append(text)

    # -- request bookkeeping -----------------------------------------------------------------

    def begin_call(self, call: str) -> FailureRule | None:
        """Count one call and return the injected failure it must suffer, if any."""
        with self.lock:
            self.stats.calls[call] += 1
            for i, rule in enumerate(self.failures):
                if rule.matches(call):
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        del self.failures[i]
                    self.stats.injected_failures += 1
                    return FailureRule(**asdict(rule))
            return None

    # -- authorization ------------------------------------------------------------------------

    def authorize_account(self, version: str, authorization: str | None) -> dict[str, Any]:
        if not authorization or not authorization.startswith("Basic "):
            raise B2ApiError(401, "bad_auth_token", "missing or malformed Basic authorization")
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise B2ApiError(401, "bad_auth_token", "malformed Basic authorization") from exc
        key_id, sep, secret = decoded.partition(":")
        with self.lock:
            key_sim = self.sim.key_id_to_key.get(key_id)
            if (
                not sep
                or key_sim is None
                or not secrets.compare_digest(key_sim.key.encode(), secret.encode())
            ):
                raise _unauthorized("The applicationKeyId and/or the applicationKey are wrong.")
            expires = key_sim.expiration_timestamp_or_none
            if expires is not None and time.time() >= expires:
                raise _unauthorized("The application key has expired")
            buckets = key_sim.buckets_or_none
            if version == "v3" and buckets is not None and len(buckets) > 1:
                raise B2ApiError(401, "unsupported", "multi-bucket keys need b2api v4 or later")
            token = self._new_token("4_002")
            self.account_tokens[token] = AccountToken(token, key_sim, time.monotonic())
            self.sim.register_token(token, key_sim)
            storage: dict[str, Any] = {
                "infoType": "storageApi",
                "apiUrl": self.base_url,
                "downloadUrl": self.base_url,
                "s3ApiUrl": self.base_url,
                "absoluteMinimumPartSize": self.config.min_part_size,
                "recommendedPartSize": self.config.effective_recommended_part_size,
            }
            if version == "v3":
                storage["bucketId"] = buckets[0]["id"] if buckets else None
                storage["bucketName"] = self._bucket_name_of(buckets[0]) if buckets else None
                storage["capabilities"] = list(key_sim.capabilities)
                storage["namePrefix"] = key_sim.name_prefix_or_none
            else:
                storage["allowed"] = {
                    "buckets": (
                        None
                        if buckets is None
                        else [{"id": b["id"], "name": self._bucket_name_of(b)} for b in buckets]
                    ),
                    "capabilities": list(key_sim.capabilities),
                    "namePrefix": key_sim.name_prefix_or_none,
                }
            return {
                "accountId": self.account_id,
                "authorizationToken": token,
                "applicationKeyExpirationTimestamp": (
                    None if expires is None else int(expires * 1000)
                ),
                "apiInfo": {"storageApi": storage, "groupsApi": {"infoType": "groupsApi"}},
            }

    def _bucket_name_of(self, item: dict[str, Any]) -> str | None:
        bucket = self.sim.bucket_id_to_bucket.get(item["id"])
        return None if bucket is None else str(bucket.bucket_name)

    def _account(self, token: str | None) -> AccountToken:
        """Validate an account authorization token (caller holds the lock)."""
        if not token:
            raise B2ApiError(401, "missing_auth_token", "Authorization header is missing")
        rec = self.account_tokens.get(token)
        if rec is None:
            raise B2ApiError(401, "bad_auth_token", "Invalid authorization token")
        if rec.expired or time.monotonic() - rec.issued >= self.config.token_lifetime:
            rec.expired = True
            raise B2ApiError(401, "expired_auth_token", "Authorization token has expired")
        return rec

    @staticmethod
    def _check(
        key: KeySimulator,
        capability: str,
        bucket: EmuBucket | None = None,
        name: str | None = None,
    ) -> None:
        if capability not in key.capabilities:
            raise _unauthorized(f"application key does not have the {capability} capability")
        allowed = key.buckets_or_none
        if (
            allowed is not None
            and bucket is not None
            and all(item["id"] != bucket.bucket_id for item in allowed)
        ):
            raise _unauthorized(
                f"application key is not allowed to access bucket {bucket.bucket_name}"
            )
        prefix = key.name_prefix_or_none
        if prefix and name is not None and not name.startswith(prefix):
            raise _unauthorized(f"application key is restricted to names starting with {prefix!r}")

    def _bucket(self, bucket_id: str) -> EmuBucket:
        bucket = self.sim.bucket_id_to_bucket.get(bucket_id)
        if bucket is None:
            raise B2ApiError(400, "bad_bucket_id", f"Invalid bucketId: {bucket_id}")
        result: EmuBucket = bucket
        return result

    def _file(self, file_id: str, *, missing: B2ApiError) -> FileSimulator:
        if not self.id_sequence.looks_valid(file_id):
            raise _bad(f"Invalid fileId: {file_id}")
        fs = self.sim.files_by_id.get(file_id)
        if fs is None:
            raise missing
        return fs

    def _large_file(self, file_id: str) -> FileSimulator:
        no_upload = _bad(f"No active upload for: {file_id}")
        fs = self._file(file_id, missing=no_upload)
        if fs.action != "start":
            raise no_upload
        return fs

    # -- JSON shapes ----------------------------------------------------------------------------

    def file_json(self, fs: FileSimulator, key: KeySimulator) -> dict[str, Any]:
        caps = key.capabilities
        data = fs.data_bytes
        retention_ok = "readFileRetentions" in caps
        hold_ok = "readFileLegalHolds" in caps
        retention_value: Any = None
        if retention_ok:
            retention_value = (
                {"mode": None}
                if fs.file_retention is None
                else fs.file_retention.serialize_to_json_for_request()
            )
        return {
            "accountId": self.account_id,
            "action": fs.action,
            "bucketId": fs.bucket.bucket_id,
            "contentLength": 0 if data is None or fs.action == "start" else len(data),
            "contentMd5": getattr(fs, "content_md5", None),
            "contentSha1": fs.content_sha1,
            "contentType": fs.content_type,
            "fileId": fs.file_id,
            "fileInfo": fs.file_info,
            "fileName": fs.name,
            "fileRetention": {
                "isClientAuthorizedToRead": retention_ok,
                "value": retention_value,
            },
            "legalHold": {
                "isClientAuthorizedToRead": hold_ok,
                "value": (
                    (fs.legal_hold.value if fs.legal_hold is not LegalHold.UNSET else None)
                    if hold_ok
                    else None
                ),
            },
            "replicationStatus": None,
            "serverSideEncryption": sse_json(fs.server_side_encryption),
            "uploadTimestamp": fs.upload_timestamp,
        }

    def _folder_json(self, bucket: EmuBucket, name: str) -> dict[str, Any]:
        return {
            "accountId": self.account_id,
            "action": "folder",
            "bucketId": bucket.bucket_id,
            "contentLength": 0,
            "contentMd5": None,
            "contentSha1": None,
            "contentType": None,
            "fileId": None,
            "fileInfo": {},
            "fileName": name,
            "fileRetention": {"isClientAuthorizedToRead": False, "value": None},
            "legalHold": {"isClientAuthorizedToRead": False, "value": None},
            "replicationStatus": None,
            "serverSideEncryption": {"algorithm": None, "mode": None},
            "uploadTimestamp": 0,
        }

    def _bucket_json(self, bucket: EmuBucket, token: str) -> dict[str, Any]:
        d: dict[str, Any] = bucket.bucket_dict(token)
        d["options"] = sorted(d.get("options") or [])
        sse = d.get("defaultServerSideEncryption") or {}
        value = sse.get("value")
        if isinstance(value, dict) and value.get("mode") == "none":
            value["mode"] = None
        return d

    # -- JSON API calls ---------------------------------------------------------------------------

    def call_json(
        self, call: str, token: str | None, params: dict[str, Any], version: str = "v3"
    ) -> dict[str, Any]:
        handler = self._handlers[call]
        with self.lock:
            rec = self._account(token)
            return handler(rec, params, version)

    def _list_buckets(self, rec: AccountToken, params: dict[str, Any], _v: str) -> dict[str, Any]:
        account_id = _req_str(params, "accountId")
        if account_id != self.account_id:
            raise _unauthorized("accountId does not match the authorization token")
        bucket_id = _param_str(params, "bucketId", required=False)
        bucket_name = _param_str(params, "bucketName", required=False)
        types = params.get("bucketTypes") or ["all"]
        key = rec.key
        self._check(key, "listBuckets")
        allowed = key.buckets_or_none
        if allowed is not None:
            ids = {item["id"] for item in allowed}
            target = bucket_id
            if target is None and bucket_name is not None:
                b = self.sim.bucket_name_to_bucket.get(bucket_name)
                target = None if b is None else b.bucket_id
            if target not in ids:
                raise _unauthorized("this application key may only list its own bucket(s)")
        out = []
        for name in sorted(self.sim.bucket_name_to_bucket):
            bucket = self.sim.bucket_name_to_bucket[name]
            if bucket_id is not None and bucket.bucket_id != bucket_id:
                continue
            if bucket_name is not None and name != bucket_name:
                continue
            if "all" not in types and bucket.bucket_type not in types:
                continue
            out.append(self._bucket_json(bucket, rec.token))
        return {"buckets": out}

    def _issue_upload_token(
        self, rec: AccountToken, kind: str, target: str, version: str
    ) -> tuple[str, str]:
        self._upload_counter += 1
        token = self._new_token("4_u")
        self.upload_tokens[token] = UploadToken(
            token, kind, target, rec.token, rec.key, time.monotonic()
        )
        call = "b2_upload_file" if kind == "file" else "b2_upload_part"
        url = f"{self.base_url}/b2api/{version}/{call}/{target}/{self._upload_counter}"
        return url, token

    def _get_upload_url(self, rec: AccountToken, params: dict[str, Any], v: str) -> dict[str, Any]:
        bucket = self._bucket(_req_str(params, "bucketId"))
        self._check(rec.key, "writeFiles", bucket)
        url, token = self._issue_upload_token(rec, "file", bucket.bucket_id, v)
        return {"bucketId": bucket.bucket_id, "uploadUrl": url, "authorizationToken": token}

    def _get_upload_part_url(
        self, rec: AccountToken, params: dict[str, Any], v: str
    ) -> dict[str, Any]:
        fs = self._large_file(_req_str(params, "fileId"))
        self._check(rec.key, "writeFiles", fs.bucket, fs.name)
        url, token = self._issue_upload_token(rec, "part", fs.file_id, v)
        return {"fileId": fs.file_id, "uploadUrl": url, "authorizationToken": token}

    @staticmethod
    def _sse_param(params: dict[str, Any], name: str, bucket: EmuBucket) -> Any:
        value = params.get(name)
        if value is None:
            return bucket.default_server_side_encryption
        if not isinstance(value, dict):
            raise _bad(f"{name} must be an object")
        mode = value.get("mode")
        if mode in (None, "none"):
            return bucket.default_server_side_encryption
        if mode == "SSE-B2" and value.get("algorithm", "AES256") == "AES256":
            return SSE_B2_AES
        raise _bad(f"unsupported {name} in the emulator: {value!r}")

    def _start_large_file(
        self, rec: AccountToken, params: dict[str, Any], _v: str
    ) -> dict[str, Any]:
        bucket = self._bucket(_req_str(params, "bucketId"))
        name = _req_str(params, "fileName")
        validate_file_name(name)
        content_type = resolve_content_type(_req_str(params, "contentType"), name)
        info = validate_file_info(name, params.get("fileInfo"))
        self._check(rec.key, "writeFiles", bucket, name)
        sse = self._sse_param(params, "serverSideEncryption", bucket)
        result = bucket.start_large_file(rec.token, name, content_type, info, sse)
        fs = bucket.file_id_to_file[result["fileId"]]
        return self.file_json(fs, rec.key)

    def _finish_large_file(
        self, rec: AccountToken, params: dict[str, Any], _v: str
    ) -> dict[str, Any]:
        fs = self._large_file(_req_str(params, "fileId"))
        sha1s = params.get("partSha1Array")
        if not isinstance(sha1s, list) or not all(isinstance(s, str) for s in sha1s):
            raise _bad("partSha1Array must be a list of strings")
        self._check(rec.key, "writeFiles", fs.bucket, fs.name)
        parts: list[PartSimulator | None] = fs.parts
        numbers = [p.part_number for p in parts if p is not None]
        if not numbers:
            raise _bad(f"No parts uploaded for large file {fs.file_id}")
        last = max(numbers)
        for n in range(1, last + 1):
            if n >= len(parts) or parts[n] is None:
                raise B2ApiError(400, "missing_part", f"Part number {n} has not been uploaded")
        if len(sha1s) != last:
            raise _bad(f"partSha1Array has {len(sha1s)} entries but {last} parts were uploaded")
        for n in range(1, last + 1):
            part = parts[n]
            assert part is not None
            if part.content_sha1 != sha1s[n - 1].lower():
                raise B2ApiError(
                    400, "part_sha1_mismatch", f"Part number {n} has wrong SHA1 {sha1s[n - 1]}"
                )
            if n < last and part.content_length < self.config.min_part_size:
                raise _bad(
                    f"Part number {n} is smaller than the minimum part size "
                    f"({part.content_length} < {self.config.min_part_size})"
                )
        fs.finish([p.content_sha1 for p in parts[1 : last + 1] if p is not None])
        fs.parts = []
        return self.file_json(fs, rec.key)

    def _cancel_large_file(
        self, rec: AccountToken, params: dict[str, Any], _v: str
    ) -> dict[str, Any]:
        fs = self._large_file(_req_str(params, "fileId"))
        self._check(rec.key, "writeFiles", fs.bucket, fs.name)
        result: dict[str, Any] = fs.bucket.cancel_large_file(fs.file_id)
        return result

    def _list_parts(self, rec: AccountToken, params: dict[str, Any], _v: str) -> dict[str, Any]:
        fs = self._large_file(_req_str(params, "fileId"))
        start = _param_int(params, "startPartNumber") or 1
        count = _count_param(params, "maxPartCount", 100, 1000)
        self._check(rec.key, "writeFiles", fs.bucket, fs.name)
        parts = [p for p in fs.parts if p is not None and p.part_number >= start]
        page = parts[:count]
        return {
            "parts": [self._part_json(p) for p in page],
            "nextPartNumber": parts[count].part_number if len(parts) > count else None,
        }

    @staticmethod
    def _part_json(part: PartSimulator) -> dict[str, Any]:
        return {
            "fileId": part.file_id,
            "partNumber": part.part_number,
            "contentLength": part.content_length,
            "contentSha1": part.content_sha1,
            "contentMd5": getattr(part, "content_md5", None),
            "serverSideEncryption": {"algorithm": None, "mode": None},
            "uploadTimestamp": getattr(part, "upload_timestamp", 0),
        }

    def _list_unfinished_large_files(
        self, rec: AccountToken, params: dict[str, Any], _v: str
    ) -> dict[str, Any]:
        bucket = self._bucket(_req_str(params, "bucketId"))
        prefix = _param_str(params, "namePrefix", required=False) or ""
        start_id = _param_str(params, "startFileId", required=False) or ""
        count = _count_param(params, "maxFileCount", 100, 100)
        self._check(rec.key, "listFiles", bucket, prefix)
        ids = sorted(
            fid
            for fid, fs in bucket.file_id_to_file.items()
            if fs.action == "start" and fs.name.startswith(prefix)
        )
        ids = ids[bisect_left(ids, start_id) :]
        files = [self.file_json(bucket.file_id_to_file[fid], rec.key) for fid in ids[:count]]
        return {"files": files, "nextFileId": ids[count] if len(ids) > count else None}

    def _listing(
        self,
        bucket: EmuBucket,
        start_name: str,
        start_id: str | None,
        prefix: str,
        delimiter: str | None,
        versions: bool,
    ) -> Iterator[tuple[str, FileSimulator | None]]:
        """Yield ``(name, file or None for a folder)`` in B2 listing order."""
        keys = bucket.sorted_keys
        index = bucket.file_name_and_id_to_file
        if start_name < prefix:
            start_name, start_id = prefix, None
        i = bisect_left(keys, (start_name, start_id) if start_id else (start_name,))
        n = len(keys)
        plen = len(prefix)
        while i < n:
            name = keys[i][0]
            if not name.startswith(prefix):
                return
            if delimiter:
                cut = name.find(delimiter, plen)
                if cut >= 0:
                    folder = name[: cut + len(delimiter)]
                    # A folder exists if it holds at least one entry this listing would show.
                    j = i
                    shown = False
                    while j < n and keys[j][0].startswith(folder):
                        group_end = j
                        while group_end < n and keys[group_end][0] == keys[j][0]:
                            group_end += 1
                        if versions or _latest_visible(index, keys, j, group_end) is not None:
                            shown = True
                            break
                        j = group_end
                    if shown:
                        yield folder, None
                    # Skip everything inside the folder.
                    i = bisect_left(keys, (folder[:-1] + chr(ord(folder[-1]) + 1),))
                    continue
            group_end = i
            while group_end < n and keys[group_end][0] == name:
                group_end += 1
            if versions:
                for k in range(i, group_end):
                    yield name, index[keys[k]]
            else:
                fs = _latest_visible(index, keys, i, group_end)
                if fs is not None:
                    yield name, fs
            i = group_end

    def _list_common(
        self, rec: AccountToken, params: dict[str, Any], versions: bool
    ) -> dict[str, Any]:
        bucket = self._bucket(_req_str(params, "bucketId"))
        start_name = _param_str(params, "startFileName", required=False)
        start_id = _param_str(params, "startFileId", required=False) if versions else None
        prefix = _param_str(params, "prefix", required=False) or ""
        delimiter = _param_str(params, "delimiter", required=False) or None
        count = _count_param(params, "maxFileCount", 100, 10000)
        if start_id and start_name is None:
            raise _bad("startFileId requires startFileName")
        self._check(rec.key, "listFiles", bucket, prefix)
        files: list[dict[str, Any]] = []
        next_name: str | None = None
        next_id: str | None = None
        for name, fs in self._listing(
            bucket, start_name or "", start_id, prefix, delimiter, versions
        ):
            if len(files) == count:
                next_name = name
                next_id = None if fs is None else fs.file_id
                break
            files.append(
                self._folder_json(bucket, name) if fs is None else self.file_json(fs, rec.key)
            )
        out: dict[str, Any] = {"files": files, "nextFileName": next_name}
        if versions:
            out["nextFileId"] = next_id
        return out

    def _list_file_names(
        self, rec: AccountToken, params: dict[str, Any], _v: str
    ) -> dict[str, Any]:
        return self._list_common(rec, params, versions=False)

    def _list_file_versions(
        self, rec: AccountToken, params: dict[str, Any], _v: str
    ) -> dict[str, Any]:
        return self._list_common(rec, params, versions=True)

    def _delete_file_version(
        self, rec: AccountToken, params: dict[str, Any], _v: str
    ) -> dict[str, Any]:
        name = _req_str(params, "fileName")
        file_id = _req_str(params, "fileId")
        missing = _bad(f"File not present: {name} {file_id}", "file_not_present")
        fs = self._file(file_id, missing=missing)
        if fs.name != name:
            raise missing
        self._check(rec.key, "deleteFiles", fs.bucket, name)
        bypass = bool(params.get("bypassGovernance"))
        fs.bucket.delete_file_version(rec.token, file_id, name, bypass)
        return {"fileId": file_id, "fileName": name}

    def _hide_file(self, rec: AccountToken, params: dict[str, Any], _v: str) -> dict[str, Any]:
        bucket = self._bucket(_req_str(params, "bucketId"))
        name = _req_str(params, "fileName")
        self._check(rec.key, "writeFiles", bucket, name)
        latest = _latest_of_name(bucket, name)
        if latest is None:
            raise _bad(f"File not present: {name}", "no_such_file")
        if latest.action == "hide":
            raise _bad(f"File already hidden: {name}", "already_hidden")
        result = bucket.hide_file(rec.token, name)
        return self.file_json(bucket.file_id_to_file[result["fileId"]], rec.key)

    def _copy_source(
        self, rec: AccountToken, params: dict[str, Any]
    ) -> tuple[FileSimulator, bytes]:
        source_id = _req_str(params, "sourceFileId")
        src = self._file(
            source_id, missing=B2ApiError(404, "not_found", f"File not present: {source_id}")
        )
        if src.action != "upload" or src.data_bytes is None:
            raise _bad(f"copy source is not a finished file: {source_id}")
        if params.get("sourceServerSideEncryption") not in (None, {}, {"mode": None}):
            raise _bad("SSE-C copy sources are not supported by the emulator")
        self._check(rec.key, "readFiles", src.bucket, src.name)
        data: bytes = src.data_bytes
        rng = parse_copy_range(_param_str(params, "range", required=False), len(data))
        if rng is not None:
            data = data[rng[0] : rng[1] + 1]
        if len(data) > self.config.max_copy_size:
            raise _bad(f"Copy source too big: {len(data)}", "source_too_large")
        return src, data

    def _copy_file(self, rec: AccountToken, params: dict[str, Any], _v: str) -> dict[str, Any]:
        name = _req_str(params, "fileName")
        validate_file_name(name)
        directive = _param_str(params, "metadataDirective", required=False) or "COPY"
        content_type = params.get("contentType")
        file_info = params.get("fileInfo")
        if directive == "COPY":
            if content_type is not None or file_info is not None:
                raise _bad("contentType and fileInfo must not be set with metadataDirective COPY")
        elif directive == "REPLACE":
            if not isinstance(content_type, str):
                raise _bad("contentType is required with metadataDirective REPLACE")
        else:
            raise _bad(f"invalid metadataDirective: {directive!r}")
        src, data = self._copy_source(rec, params)
        dest_id = _param_str(params, "destinationBucketId", required=False)
        dest: EmuBucket = self._bucket(dest_id) if dest_id else src.bucket
        self._check(rec.key, "writeFiles", dest, name)
        if directive == "REPLACE":
            assert isinstance(content_type, str)
            ctype = resolve_content_type(content_type, name)
            info = validate_file_info(name, file_info)
        else:
            ctype = src.content_type
            info = dict(src.file_info)
        sse = self._sse_param(params, "destinationServerSideEncryption", dest)
        fs = FileSimulator(
            self.account_id,
            dest,
            self.id_sequence.next_id(),
            "upload",
            name,
            ctype,
            hashlib.sha1(data).hexdigest(),
            info,
            data,
            next(self.clock),
            server_side_encryption=sse,
            legal_hold=LegalHold.UNSET,
        )
        fs.content_md5 = _md5(data)
        dest.add_file(fs)
        result = self.file_json(fs, rec.key)
        result["action"] = "copy"
        return result

    def _copy_part(self, rec: AccountToken, params: dict[str, Any], _v: str) -> dict[str, Any]:
        fs = self._large_file(_req_str(params, "largeFileId"))
        part_number = _param_int(params, "partNumber")
        if part_number is None or not 1 <= part_number <= MAX_PART_NUMBER:
            raise _bad(f"partNumber must be 1 to {MAX_PART_NUMBER}")
        _src, data = self._copy_source(rec, params)
        self._check(rec.key, "writeFiles", fs.bucket, fs.name)
        part = self._add_part(fs, part_number, data, hashlib.sha1(data).hexdigest())
        return self._part_json(part)

    def _add_part(
        self, fs: FileSimulator, part_number: int, data: bytes, sha1: str
    ) -> PartSimulator:
        part = PartSimulator(fs.file_id, part_number, len(data), sha1, data)
        part.upload_timestamp = next(self.clock)
        part.content_md5 = None
        fs.add_part(part_number, part)
        return part

    def _get_download_authorization(
        self, rec: AccountToken, params: dict[str, Any], _v: str
    ) -> dict[str, Any]:
        bucket = self._bucket(_req_str(params, "bucketId"))
        prefix = params.get("fileNamePrefix")
        if not isinstance(prefix, str):
            raise _bad("required field fileNamePrefix is missing")
        duration = _param_int(params, "validDurationInSeconds")
        if duration is None or not 1 <= duration <= MAX_DOWNLOAD_AUTH_SECONDS:
            raise _bad(f"validDurationInSeconds must be 1 to {MAX_DOWNLOAD_AUTH_SECONDS}")
        self._check(rec.key, "shareFiles", bucket, prefix)
        token = self._new_token("3_d")
        self.download_auths[token] = DownloadAuth(
            token, bucket.bucket_id, prefix, time.monotonic() + duration
        )
        return {"bucketId": bucket.bucket_id, "fileNamePrefix": prefix, "authorizationToken": token}

    def _get_file_info(self, rec: AccountToken, params: dict[str, Any], _v: str) -> dict[str, Any]:
        file_id = _req_str(params, "fileId")
        fs = self._file(
            file_id, missing=B2ApiError(404, "not_found", f"File not present: {file_id}")
        )
        self._check(rec.key, "readFiles", fs.bucket, fs.name)
        return self.file_json(fs, rec.key)

    # -- uploads ------------------------------------------------------------------------------

    def begin_upload(self, kind: str, target: str, token: str | None) -> UploadToken:
        """Validate an upload token for the URL it is used on and mark it in flight."""
        with self.lock:
            if not token:
                raise B2ApiError(401, "missing_auth_token", "Authorization header is missing")
            rec = self.upload_tokens.get(token)
            if rec is None or rec.kind != kind or rec.target != target:
                raise B2ApiError(401, "bad_auth_token", "Invalid upload authorization token")
            if rec.expired or time.monotonic() - rec.issued >= self.config.upload_token_lifetime:
                rec.expired = True
                raise B2ApiError(
                    401, "expired_auth_token", "Upload authorization token has expired"
                )
            if rec.in_flight:
                self.stats.upload_token_concurrent_use = True
                self.stats.auth_token_limit_errors += 1
                raise _bad(f"more than one upload using auth token {token}", "auth_token_limit")
            rec.in_flight = 1
            return rec

    def end_upload(self, rec: UploadToken) -> None:
        with self.lock:
            rec.in_flight = 0

    @staticmethod
    def _checked_body(headers: dict[str, str], body: bytes) -> tuple[bytes, str, bool]:
        """Verify ``X-Bz-Content-Sha1``; return (data, sha1 hex, verified)."""
        claimed = headers.get("x-bz-content-sha1")
        if not claimed:
            raise _bad("Missing header: X-Bz-Content-Sha1")
        claimed = claimed.strip().lower()
        data = body
        if claimed == "hex_digits_at_end":
            if len(body) < 40:
                raise _bad("body too short for hex_digits_at_end")
            data = body[:-40]
            try:
                claimed = body[-40:].decode("ascii").lower()
            except UnicodeDecodeError as exc:
                raise _bad("Sha1 did not match data received") from exc
        actual = hashlib.sha1(data).hexdigest()
        if claimed == "do_not_verify":
            return data, actual, False
        if len(claimed) != 40 or not _HEX.issuperset(claimed):
            raise _bad(f"invalid X-Bz-Content-Sha1: {claimed!r}")
        if claimed != actual:
            raise _bad("Sha1 did not match data received")
        return data, actual, True

    def upload_file(self, rec: UploadToken, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        """Store an uploaded file (``headers`` keys are lower-case)."""
        raw_name = headers.get("x-bz-file-name")
        if raw_name is None:
            raise _bad("Missing header: X-Bz-File-Name")
        name = b2_decode(raw_name)
        validate_file_name(name)
        content_type = headers.get("content-type")
        if not content_type:
            raise _bad("Missing header: Content-Type")
        content_type = resolve_content_type(content_type, name)
        info = {}
        for hname, value in headers.items():
            if hname.startswith(_INFO_PREFIX):
                info[hname[len(_INFO_PREFIX) :]] = b2_decode(value)
        info = validate_file_info(name, info)
        sse_header = headers.get("x-bz-server-side-encryption")
        if sse_header not in (None, "AES256"):
            raise _bad(f"unsupported X-Bz-Server-Side-Encryption: {sse_header}")
        if any(h.startswith("x-bz-server-side-encryption-customer") for h in headers):
            raise _bad("SSE-C is not supported by the emulator")
        data, sha1, verified = self._checked_body(headers, body)
        md5 = _md5(data)
        with self.lock:
            bucket = self._bucket(rec.target)
            self._check(rec.key, "writeFiles", bucket, name)
            sse = SSE_B2_AES if sse_header else bucket.default_server_side_encryption
            fs = FileSimulator(
                self.account_id,
                bucket,
                self.id_sequence.next_id(),
                "upload",
                name,
                content_type,
                sha1,
                info,
                data,
                next(self.clock),
                server_side_encryption=sse,
                legal_hold=LegalHold.UNSET,
            )
            if not verified:
                fs.content_sha1 = "unverified:" + sha1
            fs.content_md5 = md5
            bucket.add_file(fs)
            return self.file_json(fs, rec.key)

    def upload_part(self, rec: UploadToken, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        raw_number = headers.get("x-bz-part-number")
        try:
            part_number = int(raw_number or "")
        except ValueError as exc:
            raise _bad("Missing or invalid header: X-Bz-Part-Number") from exc
        if not 1 <= part_number <= MAX_PART_NUMBER:
            raise _bad(f"X-Bz-Part-Number must be 1 to {MAX_PART_NUMBER}")
        data, sha1, _verified = self._checked_body(headers, body)
        md5 = _md5(data)
        with self.lock:
            fs = self._large_file(rec.target)
            self._check(rec.key, "writeFiles", fs.bucket, fs.name)
            part = self._add_part(fs, part_number, data, sha1)
            part.content_md5 = md5
            return self._part_json(part)

    # -- downloads ------------------------------------------------------------------------------

    def download(
        self,
        *,
        token: str | None,
        range_header: str | None,
        query: dict[str, str],
        bucket_name: str | None = None,
        file_name: str | None = None,
        file_id: str | None = None,
    ) -> Download:
        with self.lock:
            if file_id is not None:
                fs = self._file(
                    file_id, missing=B2ApiError(404, "not_found", f"File not present: {file_id}")
                )
                if fs.action != "upload":
                    raise B2ApiError(404, "not_found", f"File not present: {file_id}")
                self._check_download(token, fs.bucket, fs.name, by_name=False)
            else:
                assert bucket_name is not None and file_name is not None
                bucket = self.sim.bucket_name_to_bucket.get(bucket_name)
                if bucket is None:
                    raise B2ApiError(404, "not_found", f"Bucket does not exist: {bucket_name}")
                self._check_download(token, bucket, file_name, by_name=True)
                found = _latest_of_name(bucket, file_name)
                if found is None or found.action != "upload":
                    raise B2ApiError(
                        404, "not_found", f"File with such name does not exist: {file_name}"
                    )
                fs = found
            data: bytes = fs.data_bytes
            size = len(data)
            rng = parse_range(range_header, size)
            headers = [
                ("Content-Type", fs.content_type),
                ("Accept-Ranges", "bytes"),
                ("x-bz-file-id", fs.file_id),
                ("x-bz-file-name", b2_encode(fs.name)),
                ("x-bz-content-sha1", fs.content_sha1),
                ("x-bz-upload-timestamp", str(fs.upload_timestamp)),
            ]
            sse = fs.server_side_encryption
            if sse is not None and sse.mode == EncryptionMode.SSE_B2:
                headers.append(("X-Bz-Server-Side-Encryption", "AES256"))
            for info_key, value in fs.file_info.items():
                special = _SPECIAL_INFO_HEADERS.get(info_key.lower())
                if special is not None:
                    headers.append((special, value))
                else:
                    headers.append((f"x-bz-info-{info_key}", b2_encode(value)))
        for qname, hname in _QUERY_OVERRIDES.items():
            if qname in query:
                headers = [h for h in headers if h[0].lower() != hname.lower()]
                headers.append((hname, query[qname]))
        view = memoryview(data)
        if rng is None:
            return Download(200, headers, view)
        start, end = rng
        headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
        return Download(206, headers, view[start : end + 1])

    def _check_download(
        self, token: str | None, bucket: EmuBucket, name: str, *, by_name: bool
    ) -> None:
        if bucket.bucket_type == "allPublic":
            return
        if not token:
            raise B2ApiError(
                401, "missing_auth_token", "Authorization is required for a private bucket"
            )
        auth = self.download_auths.get(token)
        if auth is not None:
            if auth.expired or time.monotonic() >= auth.expires_at:
                auth.expired = True
                raise B2ApiError(401, "expired_auth_token", "Download authorization has expired")
            if not by_name:
                raise _unauthorized("download authorization tokens only work for downloads by name")
            if auth.bucket_id != bucket.bucket_id or not name.startswith(auth.prefix):
                raise _unauthorized("download authorization does not cover this file")
            return
        rec = self._account(token)
        self._check(rec.key, "readFiles", bucket, name)

    # -- direct access for tests ------------------------------------------------------------------

    def put_file(
        self,
        name: str,
        data: bytes,
        *,
        bucket_name: str | None = None,
        content_type: str = "application/octet-stream",
        file_info: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        validate_file_name(name)
        info = validate_file_info(name, file_info)
        sha1 = hashlib.sha1(data).hexdigest()
        md5 = _md5(data)
        with self.lock:
            bucket = self._bucket_by_name(bucket_name)
            fs = FileSimulator(
                self.account_id,
                bucket,
                self.id_sequence.next_id(),
                "upload",
                name,
                resolve_content_type(content_type, name),
                sha1,
                info,
                bytes(data),
                next(self.clock),
                server_side_encryption=bucket.default_server_side_encryption,
                legal_hold=LegalHold.UNSET,
            )
            fs.content_md5 = md5
            bucket.add_file(fs)
            return self.file_json(fs, self.sim.key_id_to_key[self.key_id])

    def read_file(self, name: str, *, bucket_name: str | None = None) -> bytes | None:
        with self.lock:
            bucket = self._bucket_by_name(bucket_name)
            fs = _latest_of_name(bucket, name)
            if fs is None or fs.action != "upload":
                return None
            data: bytes = fs.data_bytes
            return data

    def list_versions(self, *, bucket_name: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            bucket = self._bucket_by_name(bucket_name)
            master = self.sim.key_id_to_key[self.key_id]
            index = bucket.file_name_and_id_to_file
            return [self.file_json(index[k], master) for k in bucket.sorted_keys]

    def _bucket_by_name(self, bucket_name: str | None) -> EmuBucket:
        bucket = self.sim.bucket_name_to_bucket.get(bucket_name or self.bucket_name)
        if bucket is None:
            raise KeyError(f"no such bucket: {bucket_name}")
        result: EmuBucket = bucket
        return result


def _md5(data: bytes) -> str | None:
    """Hex MD5 for ``contentMd5``, skipped above :data:`MD5_LIMIT` bytes to save CPU."""
    if len(data) > MD5_LIMIT:
        return None
    return hashlib.md5(data).hexdigest()


def _latest_visible(
    index: dict[tuple[str, str], FileSimulator],
    keys: list[tuple[str, str]],
    begin: int,
    end: int,
) -> FileSimulator | None:
    """Newest version of one name (``keys[begin:end]``) if it is a visible upload."""
    for k in range(begin, end):
        fs = index[keys[k]]
        if fs.action == "start":
            continue  # unfinished large files do not shadow older versions
        return fs if fs.action == "upload" else None
    return None


def _latest_of_name(bucket: EmuBucket, name: str) -> FileSimulator | None:
    """Newest finished version (upload or hide marker) of ``name``, or None."""
    keys = bucket.sorted_keys
    index = bucket.file_name_and_id_to_file
    i = bisect_left(keys, (name,))
    while i < len(keys) and keys[i][0] == name:
        fs = index[keys[i]]
        if fs.action != "start":
            result: FileSimulator = fs
            return result
        i += 1
    return None
