"""AWS Signature Version 4 for S3, standard library only.

The S3 flavour of SigV4 differs from the generic algorithm in three ways, and this module
implements only the S3 one:

* the canonical URI is the object path percent-encoded **once** and **never normalised**
  (``//``, ``.`` and ``..`` segments are part of the key);
* an ``x-amz-content-sha256`` header carries the payload hash (or ``UNSIGNED-PAYLOAD`` /
  ``STREAMING-...``) and is signed;
* a session token travels in the signed ``x-amz-security-token`` header (or in the signed
  query of a presigned URL).

Everything is built directly as strings from parts the caller already has (the encoded path,
the canonical query, a dict of headers); nothing here parses a URL. The signing key is derived
once per (date, region, service) and cached on the :class:`Signer`.

Typical use (what ``s3.py`` does)::

    signer = Signer(akid, secret, token, region="us-east-1")
    path = "/" + quote_path(key)
    query = canonical_query([("versionId", vid)])
    headers = {"range": "bytes=0-9"}
    signer.sign_headers("GET", host, path, query, headers, EMPTY_SHA256)
    # send path + ("?" + query if query else "") with headers, exactly as signed

Streaming (``aws-chunked``) uploads sign the request with :data:`STREAMING_PAYLOAD`, then
sign each chunk with the :class:`ChunkSigner` from :meth:`Signer.chunk_signer`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping
from typing import Final

from .errors import ConfigurationError

__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "MAX_PRESIGN_EXPIRES",
    "STREAMING_PAYLOAD",
    "STREAMING_PAYLOAD_TRAILER",
    "STREAMING_UNSIGNED_PAYLOAD_TRAILER",
    "UNSIGNED_PAYLOAD",
    "ChunkSigner",
    "Signer",
    "amz_date",
    "aws_chunked_length",
    "canonical_headers",
    "canonical_query",
    "canonical_request",
    "canonical_trailer",
    "chunk_string_to_sign",
    "derive_signing_key",
    "quote_component",
    "quote_path",
    "string_to_sign",
    "trailer_string_to_sign",
]

ALGORITHM: Final[str] = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD: Final[str] = "UNSIGNED-PAYLOAD"
EMPTY_SHA256: Final[str] = hashlib.sha256(b"").hexdigest()
STREAMING_PAYLOAD: Final[str] = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_PAYLOAD_TRAILER: Final[str] = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_PAYLOAD_TRAILER: Final[str] = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
MAX_PRESIGN_EXPIRES: Final[int] = 604_800  # 7 days, the SigV4 limit

_CHUNK_ALGORITHM: Final[str] = "AWS4-HMAC-SHA256-PAYLOAD"
_TRAILER_ALGORITHM: Final[str] = "AWS4-HMAC-SHA256-TRAILER"
_SIGNATURE_HEX_LEN: Final[int] = 64
# ";chunk-signature=" + 64 hex digits, the extension every signed chunk carries.
_CHUNK_EXT_LEN: Final[int] = len(";chunk-signature=") + _SIGNATURE_HEX_LEN
_TRAILER_SIG_LINE_LEN: Final[int] = len("x-amz-trailer-signature:") + _SIGNATURE_HEX_LEN + 2

# ---------------------------------------------------------------------------------------------
# Percent-encoding (RFC 3986 unreserved set kept, everything else %XX with uppercase hex)
# ---------------------------------------------------------------------------------------------

_UNRESERVED: Final[bytes] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
_PATH_SAFE: Final[bytes] = _UNRESERVED + b"/"


def _byte_table(safe: bytes) -> tuple[str, ...]:
    return tuple(chr(b) if b in safe else f"%{b:02X}" for b in range(256))


_PATH_TABLE: Final[tuple[str, ...]] = _byte_table(_PATH_SAFE)
_COMPONENT_TABLE: Final[tuple[str, ...]] = _byte_table(_UNRESERVED)


def _encode(text: str, safe: bytes, table: tuple[str, ...], what: str) -> str:
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # Lone surrogates (e.g. from os.fsdecode) cannot be sent; never echo the text itself.
        raise ConfigurationError(
            f"cannot encode {what}: not valid Unicode (lone surrogate at index {exc.start})"
        ) from None
    if not raw.translate(None, safe):  # fast path: nothing to escape
        return text
    return "".join([table[b] for b in raw])


def quote_path(key: str) -> str:
    """Percent-encode an object key (or a whole path) for the canonical URI and the wire.

    Every byte of the UTF-8 key is encoded as ``%XX`` (uppercase hex) except the RFC 3986
    unreserved characters ``A-Z a-z 0-9 - . _ ~`` and the ``/`` separator. The key is encoded
    exactly once and never normalised: ``//``, ``.`` and ``..`` segments and Unicode
    normalisation forms are kept as given. No leading ``/`` is added.

    Args:
        key: The object key or path, as text.

    Returns:
        The encoded path, to be used both in the canonical request and on the wire.

    Raises:
        ConfigurationError: The key contains a lone surrogate and cannot be UTF-8 encoded.
    """
    return _encode(key, _PATH_SAFE, _PATH_TABLE, "path")


def quote_component(value: str) -> str:
    """Percent-encode one query-string name or value (``/`` is encoded too).

    Args:
        value: The raw name or value.

    Returns:
        The encoded text (RFC 3986 unreserved characters kept, uppercase hex, space as ``%20``).

    Raises:
        ConfigurationError: The text contains a lone surrogate and cannot be UTF-8 encoded.
    """
    return _encode(value, _UNRESERVED, _COMPONENT_TABLE, "query parameter")


def _join_query(pairs: list[tuple[str, str]]) -> str:
    pairs.sort()  # by encoded name, then encoded value (byte order: all ASCII here)
    return "&".join([f"{name}={value}" for name, value in pairs])


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """Build the canonical query string, which is also the query string to send.

    Each name and value is encoded with :func:`quote_component`; the pairs are sorted by
    encoded name, then encoded value (repeated names are allowed), and joined as
    ``name=value`` with ``&``. A parameter without value is given as ``(name, "")`` and
    becomes ``name=``.

    Args:
        params: ``(name, value)`` pairs, unencoded.

    Returns:
        The canonical query (empty string for no parameters), without a leading ``?``.
    """
    return _join_query([(quote_component(n), quote_component(v)) for n, v in params])


# ---------------------------------------------------------------------------------------------
# Canonical request
# ---------------------------------------------------------------------------------------------

# Hop-by-hop or proxy-rewritten headers that must never be signed, plus the two headers the
# signer owns: "authorization" (the result) and "host" (taken from the host argument).
_NEVER_SIGN: Final[frozenset[str]] = frozenset(
    {
        "authorization",
        "connection",
        "expect",
        "host",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
_WHITESPACE_RUN: Final[re.Pattern[str]] = re.compile(r"[ \t\r\n\f\v]+")


def _trim(value: str) -> str:
    # Fast path: printable text (no tab/CR/LF) without double spaces only needs its ends cut.
    if "  " in value or not value.isprintable():
        value = _WHITESPACE_RUN.sub(" ", value)
    return value.strip(" ")


def _host_value(host: str) -> str:
    # http.client omits the default port from the Host header; so must the signature.
    if host.endswith(":443"):
        return host[:-4]
    if host.endswith(":80"):
        return host[:-3]
    return host


def canonical_headers(host: str, headers: Mapping[str, str]) -> tuple[str, str]:
    """Build the canonical headers block and the signed-headers list.

    Names are lower-cased and sorted; values are trimmed and their internal whitespace runs
    collapsed to one space; names that appear twice (differing only in case) have their values
    joined with ``,`` in order. Hop-by-hop headers (``connection``, ``expect``, ``keep-alive``,
    ``proxy-authenticate``, ``proxy-authorization``, ``te``, ``trailer``,
    ``transfer-encoding``, ``upgrade``, ``user-agent``, ``x-amzn-trace-id``) and
    ``authorization`` are never signed. ``host`` always comes from the ``host`` argument, with
    a default port (``:80`` / ``:443``) removed.

    Args:
        host: The ``Host`` header value (``name`` or ``name:port``).
        headers: Header names to values. Repeated headers must already be joined with ``,``.

    Returns:
        ``(block, signed_headers)``: the block is one ``name:value`` line per header, each
        ending with a newline; ``signed_headers`` is the ``;``-joined list of names.
    """
    canon = {"host": _host_value(host)}
    for name, value in headers.items():
        name = name.lower()
        if name in _NEVER_SIGN:
            continue
        value = _trim(value)
        previous = canon.get(name)
        canon[name] = value if previous is None else f"{previous},{value}"
    names = sorted(canon)
    return "".join([f"{name}:{canon[name]}\n" for name in names]), ";".join(names)


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers_block: str,
    signed_headers: str,
    payload_hash: str,
) -> str:
    """Join the six parts of a canonical request.

    Args:
        method: The HTTP method, e.g. ``"GET"``.
        path: The encoded canonical URI (see :func:`quote_path`), with its leading ``/``.
        query: The canonical query (see :func:`canonical_query`), possibly empty.
        headers_block: The first result of :func:`canonical_headers`.
        signed_headers: The second result of :func:`canonical_headers`.
        payload_hash: Hex sha256 of the body, or one of the ``UNSIGNED``/``STREAMING`` literals.

    Returns:
        The canonical request (newline-separated, no final newline).
    """
    return f"{method}\n{path}\n{query}\n{headers_block}\n{signed_headers}\n{payload_hash}"


def string_to_sign(amz_date: str, scope: str, canonical_request: str) -> str:
    """Build the SigV4 string to sign for a canonical request.

    Args:
        amz_date: The request time, ``YYYYMMDDTHHMMSSZ``.
        scope: The credential scope, ``YYYYMMDD/region/service/aws4_request``.
        canonical_request: The result of :func:`canonical_request`.

    Returns:
        ``AWS4-HMAC-SHA256``, the date, the scope and the hex sha256 of the canonical request,
        joined with newlines.
    """
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def derive_signing_key(secret_access_key: str, datestamp: str, region: str, service: str) -> bytes:
    """Derive the SigV4 signing key (four chained HMAC-SHA256 steps).

    Args:
        secret_access_key: The secret key.
        datestamp: ``YYYYMMDD`` (UTC).
        region: The region of the scope, e.g. ``"us-east-1"``.
        service: The service of the scope, ``"s3"`` for S3.

    Returns:
        The 32-byte signing key.
    """
    key = hmac.digest(f"AWS4{secret_access_key}".encode(), datestamp.encode(), "sha256")
    key = hmac.digest(key, region.encode(), "sha256")
    key = hmac.digest(key, service.encode(), "sha256")
    return hmac.digest(key, b"aws4_request", "sha256")


# HMAC-SHA256 with the key's inner and outer pads hashed once: signing then costs two hash
# copies instead of setting up a new HMAC context (about 2.5x faster with OpenSSL 3). This is
# the RFC 2104 construction; the vectors in the tests check it bit for bit.
_IPAD: Final[bytes] = bytes(b ^ 0x36 for b in range(256))
_OPAD: Final[bytes] = bytes(b ^ 0x5C for b in range(256))
_SHA256_BLOCK: Final[int] = 64


class _Mac:
    """A prepared HMAC-SHA256 key; safe to share between threads (state is copied per use)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def hexdigest(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


_last_date: tuple[int, str] = (-1, "")


def amz_date(timestamp: float | None = None) -> str:
    """Format a POSIX time as the SigV4 ``x-amz-date`` value.

    Args:
        timestamp: Seconds since the epoch (fractions are dropped); now when ``None``.

    Returns:
        The UTC time as ``YYYYMMDDTHHMMSSZ``.
    """
    global _last_date
    second = int(time.time() if timestamp is None else timestamp)
    cached = _last_date  # one tuple read: consistent even with concurrent writers
    if cached[0] == second:
        return cached[1]
    text = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
    _last_date = (second, text)
    return text


# ---------------------------------------------------------------------------------------------
# aws-chunked (streaming) signatures
# ---------------------------------------------------------------------------------------------


def chunk_string_to_sign(
    amz_date: str, scope: str, previous_signature: str, chunk_sha256: str
) -> str:
    """Build the string to sign of one ``aws-chunked`` chunk.

    Args:
        amz_date: The ``x-amz-date`` of the seed request.
        scope: The credential scope of the seed request.
        previous_signature: The seed signature for the first chunk, then the previous chunk's.
        chunk_sha256: Hex sha256 of the chunk data (of ``b""`` for the final chunk).

    Returns:
        The string to sign.
    """
    return (
        f"{_CHUNK_ALGORITHM}\n{amz_date}\n{scope}\n{previous_signature}\n"
        f"{EMPTY_SHA256}\n{chunk_sha256}"
    )


def canonical_trailer(trailers: Mapping[str, str]) -> str:
    """Build the canonical form of trailing headers: ``name:value`` + LF each, sorted by name.

    Args:
        trailers: Trailer names (e.g. ``x-amz-checksum-crc32c``) to values.

    Returns:
        The canonical trailer text.
    """
    items = sorted((name.lower(), _trim(value)) for name, value in trailers.items())
    return "".join([f"{name}:{value}\n" for name, value in items])


def trailer_string_to_sign(
    amz_date: str, scope: str, previous_signature: str, canonical_trailer: str
) -> str:
    """Build the string to sign of the trailer of a signed ``aws-chunked`` upload.

    Args:
        amz_date: The ``x-amz-date`` of the seed request.
        scope: The credential scope of the seed request.
        previous_signature: The signature of the final (0-byte) chunk.
        canonical_trailer: The result of :func:`canonical_trailer`.

    Returns:
        The string to sign.
    """
    digest = hashlib.sha256(canonical_trailer.encode("utf-8")).hexdigest()
    return f"{_TRAILER_ALGORITHM}\n{amz_date}\n{scope}\n{previous_signature}\n{digest}"


def aws_chunked_length(
    decoded_length: int,
    chunk_size: int,
    *,
    signed: bool = True,
    trailers: Mapping[str, str] | None = None,
) -> int:
    """Compute the encoded ``Content-Length`` of an ``aws-chunked`` body.

    The body is ``decoded_length`` bytes cut into chunks of ``chunk_size`` (the last one
    shorter), then the 0-byte final chunk, then the trailers if any. Layout per chunk:
    ``hex(size)[;chunk-signature=<64 hex>] CRLF data CRLF``; the final chunk has no data
    line; the body ends with the trailer lines (``name:value`` CRLF each, plus
    ``x-amz-trailer-signature:<64 hex>`` CRLF when signed) and an empty line.

    Args:
        decoded_length: The raw object size (``x-amz-decoded-content-length``).
        chunk_size: Size of every chunk but the last (must be positive).
        signed: Whether chunks carry signatures (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD*``) or
            not (``STREAMING-UNSIGNED-PAYLOAD-TRAILER``).
        trailers: Trailing headers; only the lengths of names and values matter, so a
            placeholder of the right length may stand in for a checksum not yet computed.

    Returns:
        The number of bytes on the wire.

    Raises:
        ConfigurationError: ``decoded_length`` is negative or ``chunk_size`` not positive.
    """
    if decoded_length < 0 or chunk_size <= 0:
        raise ConfigurationError("aws-chunked sizes must be >= 0 (length) and > 0 (chunk size)")
    ext = _CHUNK_EXT_LEN if signed else 0
    full, rest = divmod(decoded_length, chunk_size)
    total = full * (len(f"{chunk_size:x}") + ext + chunk_size + 4)
    if rest:
        total += len(f"{rest:x}") + ext + rest + 4
    total += 1 + ext + 2  # "0" [ext] CRLF
    if trailers:
        total += sum(len(name) + len(value) + 3 for name, value in trailers.items())
        if signed:
            total += _TRAILER_SIG_LINE_LEN
    return total + 2  # the closing empty line


class ChunkSigner:
    """Signs the chunks (and the trailer) of one ``aws-chunked`` upload, in order.

    Each signature chains on the previous one, starting from the seed signature of the
    request, so one instance serves exactly one upload attempt: a retry re-signs the request
    and needs a new :class:`ChunkSigner`.

    Attributes:
        previous_signature: The last signature produced (the seed before the first chunk).
    """

    __slots__ = ("_amz_date", "_mac", "_scope", "previous_signature")

    def __init__(self, signing_key: bytes, amz_date: str, scope: str, seed_signature: str) -> None:
        self._mac = _Mac(signing_key)
        self._amz_date = amz_date
        self._scope = scope
        self.previous_signature = seed_signature

    def __repr__(self) -> str:
        return f"<ChunkSigner scope={self._scope!r} amz_date={self._amz_date!r}>"

    def sign(self, chunk: bytes | bytearray | memoryview) -> str:
        """Sign the next chunk (``b""`` for the final one) and return its signature.

        Args:
            chunk: The chunk data, exactly as sent.

        Returns:
            The hex signature, to send as ``;chunk-signature=<sig>``.
        """
        sts = chunk_string_to_sign(
            self._amz_date,
            self._scope,
            self.previous_signature,
            hashlib.sha256(chunk).hexdigest() if chunk else EMPTY_SHA256,
        )
        signature = self._mac.hexdigest(sts.encode())
        self.previous_signature = signature
        return signature

    def chunk_header(self, chunk: bytes | bytearray | memoryview) -> bytes:
        """Sign the next chunk and return its wire header ``hex(size);chunk-signature=<sig>``.

        The caller sends the header, the data, then CRLF. After the final 0-byte chunk comes
        either CRLF (no trailers) or :meth:`trailer_block`.

        Args:
            chunk: The chunk data.

        Returns:
            The header line, CRLF included.
        """
        signature = self.sign(chunk)
        return f"{len(chunk):x};chunk-signature={signature}\r\n".encode("ascii")

    def sign_trailer(self, trailers: Mapping[str, str]) -> str:
        """Sign the trailing headers; call after the final 0-byte chunk was signed.

        Args:
            trailers: Trailer names to values (e.g. ``{"x-amz-checksum-crc32c": "sOO8/Q=="}``).

        Returns:
            The hex trailer signature (``x-amz-trailer-signature``).
        """
        sts = trailer_string_to_sign(
            self._amz_date, self._scope, self.previous_signature, canonical_trailer(trailers)
        )
        signature = self._mac.hexdigest(sts.encode())
        self.previous_signature = signature
        return signature

    def trailer_block(self, trailers: Mapping[str, str]) -> bytes:
        """Sign the trailers and return the bytes that end the body after the final chunk.

        Args:
            trailers: Trailer names to values.

        Returns:
            ``name:value`` CRLF for each trailer, ``x-amz-trailer-signature:<sig>`` CRLF, CRLF.
        """
        signature = self.sign_trailer(trailers)
        lines = "".join([f"{name.lower()}:{value}\r\n" for name, value in trailers.items()])
        return f"{lines}x-amz-trailer-signature:{signature}\r\n\r\n".encode("ascii")


# ---------------------------------------------------------------------------------------------
# The signer
# ---------------------------------------------------------------------------------------------

_KEY_CACHE_SIZE: Final[int] = 8


class Signer:
    """Signs requests for one set of credentials, one region and one service.

    The signing key is derived once per (date, region, service) and cached; the instance is
    safe to share between threads. ``repr()`` never shows the secret key or the token.

    Args:
        access_key_id: The access key id.
        secret_access_key: The secret access key.
        session_token: The session token of temporary credentials, if any.
        region: The signing region (``"us-east-1"`` for most S3-compatible servers).
        service: The signing service name, ``"s3"`` unless signing for another service.
        content_sha256_header: Whether :meth:`sign_headers` adds the ``x-amz-content-sha256``
            header; ``None`` (the default) means only when ``service == "s3"``.

    Raises:
        ConfigurationError: A credential, the region or the service is empty.
    """

    __slots__ = (
        "_add_content_sha256",
        "_auth_prefix",
        "_current",
        "_keys",
        "_scope_tail",
        "_secret",
        "_token",
        "access_key_id",
        "region",
        "service",
    )

    access_key_id: str
    region: str
    service: str

    def __init__(
        self,
        access_key_id: str,
        secret_access_key: str,
        session_token: str | None = None,
        *,
        region: str,
        service: str = "s3",
        content_sha256_header: bool | None = None,
    ) -> None:
        if not access_key_id or not secret_access_key:
            raise ConfigurationError("SigV4 signing needs an access key id and a secret key")
        if not region or not service:
            raise ConfigurationError("SigV4 signing needs a region and a service name")
        self.access_key_id = access_key_id
        self.region = region
        self.service = service
        self._secret = secret_access_key
        self._token = session_token or None
        self._add_content_sha256 = (
            service == "s3" if content_sha256_header is None else content_sha256_header
        )
        self._scope_tail = f"/{region}/{service}/aws4_request"
        self._auth_prefix = f"{ALGORITHM} Credential={access_key_id}/"
        self._keys: dict[tuple[str, str, str], bytes] = {}
        # The most recent (datestamp, prepared key): one attribute, so never seen half-updated.
        self._current: tuple[str, _Mac | None] = ("", None)

    def __repr__(self) -> str:
        token = " session_token=<set>" if self._token else ""
        return (
            f"<Signer access_key_id={self.access_key_id!r} region={self.region!r}"
            f" service={self.service!r}{token}>"
        )

    __str__ = __repr__

    @property
    def has_session_token(self) -> bool:
        """Whether these credentials carry a session token."""
        return self._token is not None

    def scope(self, datestamp: str) -> str:
        """Return the credential scope for a ``YYYYMMDD`` date.

        Args:
            datestamp: The UTC date, ``YYYYMMDD``.

        Returns:
            ``datestamp/region/service/aws4_request``.
        """
        return datestamp + self._scope_tail

    def signing_key(
        self, datestamp: str, region: str | None = None, service: str | None = None
    ) -> bytes:
        """Return the signing key for a date (and region/service), derived once and cached.

        Args:
            datestamp: The UTC date, ``YYYYMMDD``.
            region: Another region than the signer's, if needed.
            service: Another service than the signer's, if needed.

        Returns:
            The 32-byte signing key.
        """
        cache_key = (datestamp, region or self.region, service or self.service)
        key = self._keys.get(cache_key)
        if key is None:
            key = derive_signing_key(self._secret, *cache_key)
            if len(self._keys) >= _KEY_CACHE_SIZE:
                self._keys.clear()  # a handful of dates at most; never grows unbounded
            self._keys[cache_key] = key
        return key

    def _mac_for(self, datestamp: str) -> _Mac:
        current = self._current
        if current[0] == datestamp and current[1] is not None:
            return current[1]
        mac = _Mac(self.signing_key(datestamp))
        self._current = (datestamp, mac)
        return mac

    def sign_headers(
        self,
        method: str,
        host: str,
        path: str,
        query: str,
        headers: dict[str, str],
        payload_hash: str,
        *,
        timestamp: float | None = None,
    ) -> None:
        """Sign a request with the ``Authorization`` header, updating ``headers`` in place.

        Sets ``x-amz-date``, ``x-amz-content-sha256`` (the payload hash; only for S3 unless
        configured otherwise), ``x-amz-security-token`` (when there is a token; a stale one is
        removed otherwise) and ``authorization``, after dropping any stale ``authorization``:
        call it again before each retry. Every header in ``headers`` is signed except the
        hop-by-hop ones (see :func:`canonical_headers`), so send exactly these headers, with
        ``Host`` equal to ``host`` (a default port is not signed, as http.client omits it).

        Args:
            method: The HTTP method, e.g. ``"PUT"``.
            host: The ``Host`` header value.
            path: The encoded path, as sent: ``"/" + quote_path(key)`` or similar.
            query: The canonical query, as sent: a :func:`canonical_query` result.
            headers: Lower-case header names to values (ASCII values: non-ASCII header values
                are hashed as UTF-8 but http.client sends them as Latin-1).
            payload_hash: Hex sha256 of the body, :data:`UNSIGNED_PAYLOAD`,
                :data:`EMPTY_SHA256` or a ``STREAMING-*`` literal.
            timestamp: The signing time (POSIX seconds); now when ``None``.
        """
        headers.pop("authorization", None)
        date = amz_date(timestamp)
        headers["x-amz-date"] = date
        if self._add_content_sha256:
            headers["x-amz-content-sha256"] = payload_hash
        if self._token is not None:
            headers["x-amz-security-token"] = self._token
        else:
            headers.pop("x-amz-security-token", None)
        block, signed = canonical_headers(host, headers)
        datestamp = date[:8]
        scope = datestamp + self._scope_tail
        sts = string_to_sign(
            date,
            scope,
            f"{method}\n{path}\n{query}\n{block}\n{signed}\n{payload_hash}",
        )
        signature = self._mac_for(datestamp).hexdigest(sts.encode())
        headers["authorization"] = (
            f"{self._auth_prefix}{scope}, SignedHeaders={signed}, Signature={signature}"
        )

    def presign(
        self,
        method: str,
        host: str,
        path: str,
        params: Iterable[tuple[str, str]],
        *,
        expires: int,
        headers: Mapping[str, str] | None = None,
        timestamp: float | None = None,
        payload_hash: str = UNSIGNED_PAYLOAD,
    ) -> str:
        """Sign a request in its query string (a presigned URL).

        Args:
            method: The HTTP method the URL is for.
            host: The ``Host`` of the URL.
            path: The encoded path (``"/" + quote_path(key)``).
            params: The request's own query parameters, unencoded (e.g. ``versionId``).
            expires: Validity in seconds, 1 to 604800 (7 days).
            headers: Extra headers to sign; whoever uses the URL must send them unchanged.
            timestamp: The signing time (POSIX seconds); now when ``None``.
            payload_hash: The payload line; S3 presigned URLs use :data:`UNSIGNED_PAYLOAD`.

        Returns:
            The query string to put after ``?``: the canonical query (which includes the
            ``X-Amz-*`` parameters and, with temporary credentials, ``X-Amz-Security-Token``)
            followed by ``&X-Amz-Signature=<sig>``.

        Raises:
            ConfigurationError: ``expires`` is out of range.
        """
        if (
            isinstance(expires, bool)
            or not isinstance(expires, int)
            or not 1 <= expires <= MAX_PRESIGN_EXPIRES
        ):
            raise ConfigurationError(
                f"presigned URL expiry must be 1 to {MAX_PRESIGN_EXPIRES} seconds, got {expires!r}"
            )
        date = amz_date(timestamp)
        datestamp = date[:8]
        scope = datestamp + self._scope_tail
        block, signed = canonical_headers(host, headers or {})
        pairs = [(quote_component(n), quote_component(v)) for n, v in params]
        pairs += [
            ("X-Amz-Algorithm", ALGORITHM),
            ("X-Amz-Credential", quote_component(f"{self.access_key_id}/{scope}")),
            ("X-Amz-Date", date),
            ("X-Amz-Expires", str(expires)),
            ("X-Amz-SignedHeaders", quote_component(signed)),
        ]
        if self._token is not None:
            pairs.append(("X-Amz-Security-Token", quote_component(self._token)))
        query = _join_query(pairs)
        sts = string_to_sign(
            date, scope, canonical_request(method, path, query, block, signed, payload_hash)
        )
        signature = self._mac_for(datestamp).hexdigest(sts.encode())
        return f"{query}&X-Amz-Signature={signature}"

    def chunk_signer(self, signed_headers: Mapping[str, str]) -> ChunkSigner:
        """Start signing the chunks of an ``aws-chunked`` body.

        Call after :meth:`sign_headers` signed the request with :data:`STREAMING_PAYLOAD` (or
        :data:`STREAMING_PAYLOAD_TRAILER`): the seed signature and the date are read from the
        ``authorization`` and ``x-amz-date`` headers it set.

        Args:
            signed_headers: The headers dict that :meth:`sign_headers` filled in.

        Returns:
            A :class:`ChunkSigner` for this request attempt.

        Raises:
            ConfigurationError: The headers were not signed by :meth:`sign_headers`.
        """
        authorization = signed_headers.get("authorization", "")
        date = signed_headers.get("x-amz-date", "")
        marker = authorization.rfind("Signature=")
        if marker < 0 or len(date) != 16:
            raise ConfigurationError("chunk_signer() needs headers signed by sign_headers()")
        seed = authorization[marker + len("Signature=") :]
        datestamp = date[:8]
        return ChunkSigner(self.signing_key(datestamp), date, self.scope(datestamp), seed)
