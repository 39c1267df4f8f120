"""Tests of the SigV4 signer against AWS's published vectors, plus focused unit tests.

The vectors live in ``tests/data/sigv4`` (see its README). The generic suites use the
placeholder service ``service``; their canonical-request rules are the ones S3 uses, except
path normalisation, which S3 never does: the few cases whose expected path is normalised are
skipped, and the aws-c-auth ``*-unnormalized`` twins check the literal S3 behaviour instead.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import json
import threading
import time
import unicodedata
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from s3func import _sigv4 as sigv4
from s3func._sigv4 import (
    EMPTY_SHA256,
    STREAMING_PAYLOAD,
    STREAMING_PAYLOAD_TRAILER,
    UNSIGNED_PAYLOAD,
    ChunkSigner,
    Signer,
    amz_date,
    aws_chunked_length,
    canonical_headers,
    canonical_query,
    canonical_request,
    canonical_trailer,
    chunk_string_to_sign,
    derive_signing_key,
    quote_component,
    quote_path,
    string_to_sign,
    trailer_string_to_sign,
)
from s3func.errors import ConfigurationError

DATA = Path(__file__).resolve().parent.parent / "data" / "sigv4"
SUITE = DATA / "aws-sig-v4-test-suite"
CRT = DATA / "aws-c-auth-v4"
S3_DOCS = json.loads((DATA / "s3-doc-examples.json").read_text(encoding="utf-8"))

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"
SERVICE = "service"
SUITE_TIME = "20150830T123600Z"
# The get-vanilla-with-session-token case signs with this token but its .req does not show it
# (the value is given in the suite's documentation and in the aws-c-auth context.json).
SUITE_SESSION_TOKEN = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"

NOT_S3 = "S3 never normalises paths"


# ---------------------------------------------------------------------------------------------
# Helpers: a tiny parser for the vectors' raw HTTP requests
# ---------------------------------------------------------------------------------------------


@dataclass
class RawRequest:
    method: str
    path: str  # unencoded, as in the request line
    params: list[tuple[str, str]]  # decoded
    headers: dict[str, str]  # lower-case names, repeated headers joined with ","
    body: bytes

    @property
    def host(self) -> str:
        return self.headers["host"]

    def headers_without(self, *names: str) -> dict[str, str]:
        return {k: v for k, v in self.headers.items() if k not in ("host", *names)}


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8").replace("\r\n", "\n")


def parse_request(text: str) -> RawRequest:
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    request_line = lines[0]
    method, _, rest = request_line.partition(" ")
    target = rest[: rest.rindex(" HTTP/")]  # the path may contain spaces
    path, _, query = target.partition("?")
    params = []
    for item in query.split("&"):
        if item:
            name, _, value = item.partition("=")
            params.append((unquote(name), unquote(value)))
    fields: list[list[str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and fields:  # obsolete line folding
            fields[-1][1] += "\n" + line
        elif line:
            name, _, value = line.partition(":")
            fields.append([name.lower(), value])
    headers: dict[str, str] = {}
    for name, value in fields:
        value = value.strip()
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return RawRequest(method, path, params, headers, body.encode("utf-8"))


def posix(amz: str) -> int:
    return calendar.timegm(time.strptime(amz, "%Y%m%dT%H%M%SZ"))


def needs_normalisation(path: str) -> bool:
    """True when generic SigV4 path normalisation would change this path (S3 never does)."""
    segments = path.split("/")[1:]
    return any(s in (".", "..") for s in segments) or "" in segments[:-1]


def recompute(
    method: str, host: str, path: str, query: str, headers: dict[str, str], payload: str
) -> str:
    block, signed = canonical_headers(host, headers)
    return canonical_request(method, path, query, block, signed, payload)


def signature_of(authorization: str) -> str:
    return authorization.rsplit("Signature=", 1)[1]


# ---------------------------------------------------------------------------------------------
# aws-sig-v4-test-suite (the botocore copy)
# ---------------------------------------------------------------------------------------------


def suite_cases() -> list[Any]:
    cases = []
    for req in sorted(SUITE.rglob("*.req")):
        name = req.relative_to(SUITE).parent.as_posix()
        path = parse_request(read_text(req)).path
        marks = [pytest.mark.skip(reason=NOT_S3)] if needs_normalisation(path) else []
        cases.append(pytest.param(req.with_suffix(""), id=name, marks=marks))
    return cases


@pytest.mark.parametrize("stem", suite_cases())
def test_aws_sig_v4_test_suite(stem: Path) -> None:
    req = parse_request(read_text(stem.with_suffix(".req")))
    expected_creq = read_text(stem.with_suffix(".creq"))
    expected_sts = read_text(stem.with_suffix(".sts"))
    expected_authz = read_text(stem.with_suffix(".authz"))

    timestamp = posix(req.headers["x-amz-date"])
    token = req.headers.get("x-amz-security-token")
    if stem.name == "get-vanilla-with-session-token":
        token = SUITE_SESSION_TOKEN
    signer = Signer(AKID, SECRET, token, region=REGION, service=SERVICE)
    headers = req.headers_without("x-amz-date", "x-amz-security-token")
    path = quote_path(req.path)
    query = canonical_query(req.params)
    payload = hashlib.sha256(req.body).hexdigest()

    signer.sign_headers(req.method, req.host, path, query, headers, payload, timestamp=timestamp)

    creq = recompute(req.method, req.host, path, query, headers, payload)
    assert creq == expected_creq
    assert headers["x-amz-date"] == SUITE_TIME
    assert string_to_sign(SUITE_TIME, signer.scope(SUITE_TIME[:8]), creq) == expected_sts
    # .authz, not .sreq: the session-token .sreq carries a stale signature (see the README).
    assert headers["authorization"] == expected_authz


# ---------------------------------------------------------------------------------------------
# aws-c-auth v4 suite: header and query (presigned) variants, honouring context.json
# ---------------------------------------------------------------------------------------------


@dataclass
class CrtCase:
    folder: Path
    context: dict[str, Any]
    request: RawRequest

    @property
    def timestamp(self) -> float:
        return datetime.fromisoformat(self.context["timestamp"].replace("Z", "+00:00")).timestamp()

    @property
    def token(self) -> str | None:
        token: str | None = self.context["credentials"].get("token")
        return token

    def signer(self, *, with_token: bool) -> Signer:
        creds = self.context["credentials"]
        return Signer(
            creds["access_key_id"],
            creds["secret_access_key"],
            self.token if with_token else None,
            region=self.context["region"],
            service=self.context["service"],
            content_sha256_header=self.context["sign_body"],
        )

    def expected(self, name: str) -> str:
        return read_text(self.folder / name)


def crt_cases() -> list[Any]:
    cases = []
    for folder in sorted(p for p in CRT.iterdir() if p.is_dir()):
        context = json.loads(read_text(folder / "context.json"))
        request = parse_request(read_text(folder / "request.txt"))
        marks = []
        if context["normalize"] and needs_normalisation(request.path):
            marks.append(pytest.mark.skip(reason=NOT_S3))
        cases.append(pytest.param(CrtCase(folder, context, request), id=folder.name, marks=marks))
    return cases


@pytest.mark.parametrize("case", crt_cases())
def test_aws_c_auth_header(case: CrtCase) -> None:
    req = case.request
    # omit_session_token: the token is added after signing, unsigned (not what S3 wants, but
    # it is what the vector describes): sign without it.
    signer = case.signer(with_token=not case.context.get("omit_session_token", False))
    headers = req.headers_without()
    path = quote_path(req.path)
    query = canonical_query(req.params)
    payload = hashlib.sha256(req.body).hexdigest()

    signer.sign_headers(
        req.method, req.host, path, query, headers, payload, timestamp=case.timestamp
    )

    creq = recompute(req.method, req.host, path, query, headers, payload)
    assert creq == case.expected("header-canonical-request.txt")
    sts = string_to_sign(headers["x-amz-date"], signer.scope(headers["x-amz-date"][:8]), creq)
    assert sts == case.expected("header-string-to-sign.txt")
    assert signature_of(headers["authorization"]) == case.expected("header-signature.txt")
    signed_request = case.expected("header-signed-request.txt")
    assert f"Authorization:{headers['authorization']}\n" in signed_request
    if case.context["sign_body"]:
        assert headers["x-amz-content-sha256"] == payload
    else:
        assert "x-amz-content-sha256" not in headers
    if case.context.get("omit_session_token"):
        assert "x-amz-security-token" not in headers
        assert f"X-Amz-Security-Token:{case.token}\n" in signed_request


@pytest.mark.parametrize("case", crt_cases())
def test_aws_c_auth_query(case: CrtCase) -> None:
    req = case.request
    omit_token = case.context.get("omit_session_token", False)
    signer = case.signer(with_token=not omit_token)
    headers = req.headers_without()
    path = quote_path(req.path)
    payload = hashlib.sha256(req.body).hexdigest()  # generic service: the body hash

    query = signer.presign(
        req.method,
        req.host,
        path,
        req.params,
        expires=case.context["expiration_in_seconds"],
        headers=headers,
        timestamp=case.timestamp,
        payload_hash=payload,
    )

    signed_query, _, signature = query.rpartition("&X-Amz-Signature=")
    assert "X-Amz-Signature" not in signed_query, "the signature must come last"
    creq = recompute(req.method, req.host, path, signed_query, headers, payload)
    assert creq == case.expected("query-canonical-request.txt")
    sts = string_to_sign(amz_date(case.timestamp), signer.scope(amz_date(case.timestamp)[:8]), creq)
    assert sts == case.expected("query-string-to-sign.txt")
    assert signature == case.expected("query-signature.txt")
    if omit_token:
        # The vector appends the token, unsigned, after signing.
        assert "X-Amz-Security-Token" not in signed_query
        token_param = f"X-Amz-Security-Token={quote_component(case.token or '')}&"
        assert token_param in case.expected("query-signed-request.txt")


# ---------------------------------------------------------------------------------------------
# S3 documentation examples
# ---------------------------------------------------------------------------------------------

COMMON = S3_DOCS["common"]
S3_EXAMPLES = {example["name"]: example for example in S3_DOCS["examples"]}
S3_TIME = posix(COMMON["amz_date"])


def s3_signer() -> Signer:
    return Signer(COMMON["access_key_id"], COMMON["secret_access_key"], region=COMMON["region"])


def doc_request(example: dict[str, Any]) -> tuple[str, str, str, str, dict[str, str]]:
    """(method, host, path, query, headers-to-sign without the signer-owned ones)."""
    request = example["request"]
    scheme_host, _, rest = request["url"].partition("://")[2].partition("/")
    target, _, raw_query = rest.partition("?")
    params = [(p.partition("=")[0], p.partition("=")[2]) for p in raw_query.split("&") if p]
    owned = {"host", "x-amz-date", "x-amz-content-sha256"}
    headers = {k.lower(): v for k, v in request["headers"].items() if k.lower() not in owned}
    return (
        request["method"],
        scheme_host,
        "/" + quote_path(unquote(target)),
        canonical_query(params),
        headers,
    )


def norm_authz(value: str) -> str:
    return value.replace(", ", ",")


def test_s3_docs_common_values() -> None:
    signer = s3_signer()
    assert COMMON["empty_sha256"] == EMPTY_SHA256
    assert amz_date(S3_TIME) == COMMON["amz_date"]
    assert signer.scope(COMMON["date"]) == COMMON["credential_scope"]
    assert signer.signing_key(COMMON["date"]).hex() == COMMON["signing_key_hex"]


@pytest.mark.parametrize(
    "name", ["get-object-range", "put-object", "get-bucket-lifecycle", "list-objects"]
)
def test_s3_docs_header_signing(name: str) -> None:
    example = S3_EXAMPLES[name]
    expected = example["expected"]
    method, host, path, query, headers = doc_request(example)
    body = example["request"].get("body", "").encode()
    payload = hashlib.sha256(body).hexdigest()
    assert payload == example["request"]["headers"]["x-amz-content-sha256"]

    s3_signer().sign_headers(method, host, path, query, headers, payload, timestamp=S3_TIME)

    creq = recompute(method, host, path, query, headers, payload)
    assert creq == expected["canonical_request"]
    assert (
        string_to_sign(COMMON["amz_date"], COMMON["credential_scope"], creq)
        == (expected["string_to_sign"])
    )
    assert headers["x-amz-content-sha256"] == payload
    assert headers["x-amz-date"] == COMMON["amz_date"]
    assert signature_of(headers["authorization"]) == expected["signature"]
    assert norm_authz(headers["authorization"]) == expected["authorization"]


def test_s3_docs_put_object_encodes_key_once() -> None:
    assert S3_EXAMPLES["put-object"]["request"]["url"].endswith("/test$file.text")
    assert quote_path("test$file.text") == "test%24file.text"
    assert quote_path("test%24file.text") == "test%2524file.text"  # a literal '%' in a key


def test_s3_docs_lifecycle_valueless_param() -> None:
    assert canonical_query([("lifecycle", "")]) == "lifecycle="


def test_s3_docs_presigned_get() -> None:
    example = S3_EXAMPLES["presigned-get-object"]
    expected = example["expected"]
    method, host, path, _, headers = doc_request(example)
    assert headers == {}

    query = s3_signer().presign(
        method, host, path, [], expires=example["request"]["expires_seconds"], timestamp=S3_TIME
    )

    assert f"https://{host}{path}?{query}" == expected["presigned_url"]
    signed_query = query.rpartition("&X-Amz-Signature=")[0]
    creq = recompute(method, host, path, signed_query, headers, UNSIGNED_PAYLOAD)
    assert creq == expected["canonical_request"]
    assert (
        string_to_sign(COMMON["amz_date"], COMMON["credential_scope"], creq)
        == (expected["string_to_sign"])
    )


def chunks_of(example: dict[str, Any]) -> list[bytes]:
    return [b"a" * size for size in example["request"]["chunk_sizes"]]


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("chunked-upload-aws-chunked", STREAMING_PAYLOAD),
        ("chunked-upload-with-signed-trailer", STREAMING_PAYLOAD_TRAILER),
    ],
)
def test_s3_docs_chunked_seed_and_chunks(name: str, payload: str) -> None:
    example = S3_EXAMPLES[name]
    expected = example["expected"]
    assert example["request"]["headers"]["x-amz-content-sha256"] == payload
    method, host, path, query, headers = doc_request(example)
    signer = s3_signer()

    signer.sign_headers(method, host, path, query, headers, payload, timestamp=S3_TIME)

    creq = recompute(method, host, path, query, headers, payload)
    assert creq == expected["seed_canonical_request"]
    assert (
        string_to_sign(COMMON["amz_date"], COMMON["credential_scope"], creq)
        == (expected["seed_string_to_sign"])
    )
    assert signature_of(headers["authorization"]) == expected["seed_signature"]
    if "authorization" in expected:
        assert norm_authz(headers["authorization"]) == expected["authorization"]

    chunk_signer = signer.chunk_signer(headers)
    assert chunk_signer.previous_signature == expected["seed_signature"]
    for data, want in zip(chunks_of(example), expected["chunks"], strict=True):
        assert len(data) == want["size"]
        sts = chunk_string_to_sign(
            COMMON["amz_date"],
            COMMON["credential_scope"],
            chunk_signer.previous_signature,
            hashlib.sha256(data).hexdigest(),
        )
        assert sts == want["string_to_sign"]
        assert chunk_signer.sign(data) == want["signature"]


def test_s3_docs_chunked_wire_format() -> None:
    example = S3_EXAMPLES["chunked-upload-aws-chunked"]
    expected = example["expected"]
    method, host, path, query, headers = doc_request(example)
    signer = s3_signer()
    signer.sign_headers(method, host, path, query, headers, STREAMING_PAYLOAD, timestamp=S3_TIME)
    chunk_signer = signer.chunk_signer(headers)

    body = bytearray()
    wire_headers = []
    for data in chunks_of(example):
        header = chunk_signer.chunk_header(data)
        wire_headers.append(header.decode().removesuffix("\r\n"))
        body += header + data + b"\r\n"

    assert wire_headers == expected["wire_chunk_headers"]
    assert len(body) == expected["encoded_content_length"]
    assert str(len(body)) == example["request"]["headers"]["Content-Length"]
    decoded = int(example["request"]["headers"]["x-amz-decoded-content-length"])
    assert aws_chunked_length(decoded, 65536) == expected["encoded_content_length"]


def test_s3_docs_signed_trailer() -> None:
    example = S3_EXAMPLES["chunked-upload-with-signed-trailer"]
    expected = example["expected"]
    method, host, path, query, headers = doc_request(example)
    assert "content-length" not in headers  # the published vector does not sign it
    signer = s3_signer()
    signer.sign_headers(
        method, host, path, query, headers, STREAMING_PAYLOAD_TRAILER, timestamp=S3_TIME
    )
    chunk_signer = signer.chunk_signer(headers)
    trailers = {"x-amz-checksum-crc32c": expected["crc32c_base64_of_body"]}
    assert headers["x-amz-trailer"] == "x-amz-checksum-crc32c"

    body = bytearray()
    for data in chunks_of(example):
        body += chunk_signer.chunk_header(data)
        if data:
            body += data + b"\r\n"
    final_signature = chunk_signer.previous_signature
    assert final_signature == expected["chunks"][-1]["signature"]

    assert canonical_trailer(trailers) == expected["trailer_canonical"]
    sts = trailer_string_to_sign(
        COMMON["amz_date"], COMMON["credential_scope"], final_signature, canonical_trailer(trailers)
    )
    assert sts == expected["trailer_string_to_sign"]
    body += chunk_signer.trailer_block(trailers)
    assert chunk_signer.previous_signature == expected["trailer_signature"]

    shown = (
        bytes(body).replace(b"a" * 65536, b"<65536 x 'a'>").replace(b"a" * 1024, b"<1024 x 'a'>")
    )
    assert shown.decode().replace("\r\n", "\\r\\n") == expected["wire_layout"]
    assert len(body) == expected["encoded_content_length_derived"]
    assert aws_chunked_length(66560, 65536, trailers=trailers) == len(body)


def test_s3_docs_unsigned_trailer_length_and_crc32() -> None:
    fmt = S3_DOCS["unsigned_trailer_format"]
    body = fmt["example_body_for_b'hello'_crc32"].replace("\\r\\n", "\r\n").encode()
    crc = base64.b64encode(zlib.crc32(b"hello").to_bytes(4, "big")).decode()
    assert body == b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:" + crc.encode() + b"\r\n\r\n"
    trailers = {"x-amz-checksum-crc32": crc}
    assert aws_chunked_length(5, 1 << 20, signed=False, trailers=trailers) == len(body)


@pytest.mark.parametrize(
    ("data", "algorithm"),
    [(d, a) for d in ("hello", "") for a in ("crc32", "sha1", "sha256", "md5_content_md5")],
)
def test_s3_docs_checksum_check_values(data: str, algorithm: str) -> None:
    # Header values are base64 of the big-endian digest (not hex as in x-amz-content-sha256).
    raw = data.encode()
    if algorithm == "crc32":
        digest = zlib.crc32(raw).to_bytes(4, "big")
    else:
        digest = hashlib.new(algorithm.removesuffix("_content_md5"), raw).digest()
    values = S3_DOCS["checksum_check_values"]
    assert base64.b64encode(digest).decode() == values["examples_base64"][data][algorithm]
    assert f"{zlib.crc32(b'123456789'):08x}" == values["crc32_123456789_hex"]


# ---------------------------------------------------------------------------------------------
# Focused unit tests
# ---------------------------------------------------------------------------------------------

NFC = unicodedata.normalize("NFC", "caf\u00e9")
NFD = unicodedata.normalize("NFD", "caf\u00e9")


@pytest.mark.parametrize(
    ("key", "encoded"),
    [
        pytest.param("photos/2024/a.jpg", "photos/2024/a.jpg", id="plain"),
        pytest.param("-._~AZaz09", "-._~AZaz09", id="unreserved"),
        pytest.param("a/../b", "a/../b", id="dot-dot-kept"),
        pytest.param("./a/.", "./a/.", id="dot-kept"),
        pytest.param("..", "..", id="dot-dot-alone"),
        pytest.param("a//b//", "a//b//", id="double-slash-kept"),
        pytest.param("/leading", "/leading", id="leading-slash-kept"),
        pytest.param("my file.txt", "my%20file.txt", id="space"),
        pytest.param("a  b", "a%20%20b", id="spaces-not-collapsed"),
        pytest.param("+", "%2B", id="plus"),
        pytest.param("%", "%25", id="percent"),
        pytest.param("%20", "%2520", id="pre-encoded-is-literal"),
        pytest.param("!", "%21", id="bang"),
        pytest.param("#", "%23", id="hash"),
        pytest.param("?", "%3F", id="question"),
        pytest.param("=", "%3D", id="equals"),
        pytest.param("&", "%26", id="ampersand"),
        pytest.param("~", "~", id="tilde"),
        pytest.param("'", "%27", id="quote"),
        pytest.param("*", "%2A", id="star"),
        pytest.param("(", "%28", id="lparen"),
        pytest.param(")", "%29", id="rparen"),
        pytest.param("$:@,;[]", "%24%3A%40%2C%3B%5B%5D", id="sub-delims"),
        pytest.param("temperature!0.0.40", "temperature%210.0.40", id="b2-bang"),
        pytest.param("\x00\n\x7f", "%00%0A%7F", id="controls"),
        pytest.param("\u1234", "%E1%88%B4", id="utf8-3-bytes"),
        pytest.param("\U0001f600", "%F0%9F%98%80", id="utf8-4-bytes"),
        pytest.param(NFC, "caf%C3%A9", id="nfc"),
        pytest.param(NFD, "cafe%CC%81", id="nfd"),
    ],
)
def test_quote_path(key: str, encoded: str) -> None:
    assert quote_path(key) == encoded


def test_quote_path_never_normalises_unicode() -> None:
    assert NFC != NFD
    assert quote_path(NFC) != quote_path(NFD)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        pytest.param("a/b", "a%2Fb", id="slash"),
        pytest.param("a b", "a%20b", id="space"),
        pytest.param("a+b=c&d", "a%2Bb%3Dc%26d", id="plus-equals-amp"),
        pytest.param("-._~", "-._~", id="unreserved"),
        pytest.param("\u1234", "%E1%88%B4", id="utf8"),
        pytest.param("", "", id="empty"),
    ],
)
def test_quote_component(value: str, encoded: str) -> None:
    assert quote_component(value) == encoded


@pytest.mark.parametrize("func", [quote_path, quote_component], ids=["path", "component"])
def test_lone_surrogate_is_a_configuration_error(func: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        func("bad\udcff")
    assert "udcff" not in str(info.value)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param([], "", id="empty"),
        pytest.param([("lifecycle", "")], "lifecycle=", id="valueless"),
        pytest.param([("b", "1"), ("a", "2")], "a=2&b=1", id="by-name"),
        pytest.param(
            [("Param-3", "x"), ("Param", "y")], "Param=y&Param-3=x", id="pairs-not-strings"
        ),
        pytest.param([("k", "value2"), ("k", "Value1")], "k=Value1&k=value2", id="repeated"),
        pytest.param(
            [("prefix", "a/b c"), ("delimiter", "/")],
            "delimiter=%2F&prefix=a%2Fb%20c",
            id="encoded",
        ),
        pytest.param(
            [("\u1234", "1"), ("Param", "2")], "%E1%88%B4=1&Param=2", id="sort-on-encoded"
        ),
    ],
)
def test_canonical_query(params: list[tuple[str, str]], expected: str) -> None:
    assert canonical_query(params) == expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        pytest.param("example.com:443", "example.com", id="https-default"),
        pytest.param("example.com:80", "example.com", id="http-default"),
        pytest.param("localhost:8333", "localhost:8333", id="custom"),
        pytest.param("example.com:4430", "example.com:4430", id="not-443"),
        pytest.param("[::1]:443", "[::1]", id="ipv6-default"),
        pytest.param("[::1]:9000", "[::1]:9000", id="ipv6-custom"),
    ],
)
def test_canonical_headers_host_port(host: str, expected: str) -> None:
    assert canonical_headers(host, {}) == (f"host:{expected}\n", "host")


def test_canonical_headers_rules() -> None:
    headers = {
        "X-Amz-Meta-A": "  one   two\t three ",
        "x-amz-meta-a": "four",
        "content-type": "text/plain",
        "host": "ignored.example",
        "authorization": "stale",
    }
    hop = [
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    ]
    headers.update({name: "x" for name in hop})
    block, signed = canonical_headers("h.example", headers)
    assert block == ("content-type:text/plain\nhost:h.example\nx-amz-meta-a:one two three,four\n")
    assert signed == "content-type;host;x-amz-meta-a"


def test_canonical_headers_keeps_non_ascii_whitespace() -> None:
    block, _ = canonical_headers("h", {"x-amz-meta-n": "a\u00a0\u00a0b"})
    assert "x-amz-meta-n:a\u00a0\u00a0b\n" in block


def test_amz_date() -> None:
    assert amz_date(0) == "19700101T000000Z"
    assert amz_date(1_369_353_600.9) == "20130524T000000Z"
    assert len(amz_date()) == 16


def make_signer(**kwargs: Any) -> Signer:
    return Signer(AKID, SECRET, region=REGION, **kwargs)


def test_repr_hides_secret_and_token() -> None:
    signer = Signer(AKID, SECRET, "TOKEN-SECRET-VALUE", region=REGION)
    for text in (repr(signer), str(signer), f"{signer}"):
        assert SECRET not in text
        assert "TOKEN-SECRET-VALUE" not in text
        assert AKID in text
    assert signer.has_session_token
    assert not make_signer().has_session_token


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("", SECRET), id="no-key-id"),
        pytest.param((AKID, ""), id="no-secret"),
    ],
)
def test_missing_credentials(args: tuple[str, str]) -> None:
    with pytest.raises(ConfigurationError) as info:
        Signer(*args, region=REGION)
    assert SECRET not in str(info.value)


def test_missing_region() -> None:
    with pytest.raises(ConfigurationError):
        Signer(AKID, SECRET, region="")


def test_signing_key_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str, str]] = []

    def counting(secret: str, datestamp: str, region: str, service: str) -> bytes:
        calls.append((datestamp, region, service))
        return derive_signing_key(secret, datestamp, region, service)

    monkeypatch.setattr(sigv4, "derive_signing_key", counting)
    signer = make_signer()
    day = posix("20240101T000000Z")
    for offset in (0, 60, 3600, 86399):
        signer.sign_headers("GET", "h", "/", "", {}, EMPTY_SHA256, timestamp=day + offset)
    signer.presign("GET", "h", "/k", [], expires=60, timestamp=day)
    assert calls == [("20240101", REGION, "s3")]

    signer.sign_headers("GET", "h", "/", "", {}, EMPTY_SHA256, timestamp=day + 86400)
    assert calls[-1] == ("20240102", REGION, "s3")
    assert len(calls) == 2
    assert signer.signing_key("20240101") is signer.signing_key("20240101")
    assert len(calls) == 2
    signer.signing_key("20240101", region="eu-west-1")
    assert calls[-1] == ("20240101", "eu-west-1", "s3")

    for n in range(40):  # the cache stays small
        signer.signing_key(f"2023{n:04d}")
    assert len(signer._keys) <= 8


def test_sign_headers_resigns_cleanly() -> None:
    signer = make_signer()
    headers = {"range": "bytes=0-9"}
    signer.sign_headers("GET", "h", "/k", "", headers, EMPTY_SHA256, timestamp=S3_TIME)
    first = dict(headers)
    signer.sign_headers("GET", "h", "/k", "", headers, EMPTY_SHA256, timestamp=S3_TIME)
    assert headers == first
    assert "authorization" not in first["authorization"].split("SignedHeaders=")[1]
    signer.sign_headers("GET", "h", "/k", "", headers, EMPTY_SHA256, timestamp=S3_TIME + 1)
    assert headers["authorization"] != first["authorization"]
    assert headers["x-amz-date"] != first["x-amz-date"]


def test_sign_headers_token_and_content_sha256() -> None:
    headers: dict[str, str] = {}
    Signer(AKID, SECRET, "tok", region=REGION).sign_headers(
        "GET", "h", "/", "", headers, UNSIGNED_PAYLOAD, timestamp=S3_TIME
    )
    assert headers["x-amz-security-token"] == "tok"
    assert headers["x-amz-content-sha256"] == UNSIGNED_PAYLOAD
    assert (
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"
        in (headers["authorization"])
    )
    # A signer without token removes a stale token header (e.g. after a credential refresh).
    make_signer().sign_headers("GET", "h", "/", "", headers, UNSIGNED_PAYLOAD, timestamp=S3_TIME)
    assert "x-amz-security-token" not in headers
    assert "x-amz-security-token" not in headers["authorization"]

    other: dict[str, str] = {}
    make_signer(service="sts").sign_headers(
        "GET", "h", "/", "", other, EMPTY_SHA256, timestamp=S3_TIME
    )
    assert "x-amz-content-sha256" not in other
    make_signer(service="sts", content_sha256_header=True).sign_headers(
        "GET", "h", "/", "", other, EMPTY_SHA256, timestamp=S3_TIME
    )
    assert other["x-amz-content-sha256"] == EMPTY_SHA256


def test_sign_headers_keeps_unsigned_headers_in_dict() -> None:
    headers = {"user-agent": "s3func", "expect": "100-continue", "content-length": "3"}
    make_signer().sign_headers("PUT", "h", "/k", "", headers, EMPTY_SHA256, timestamp=S3_TIME)
    assert headers["user-agent"] == "s3func"
    assert (
        "SignedHeaders=content-length;host;x-amz-content-sha256;x-amz-date,"
        in (headers["authorization"])
    )


def test_sign_headers_path_is_taken_literally() -> None:
    signer = make_signer()
    results = set()
    for key in ("a/../b", "b", "a//b", "a/b", "./b"):
        headers: dict[str, str] = {}
        signer.sign_headers(
            "GET", "h", "/" + quote_path(key), "", headers, EMPTY_SHA256, timestamp=S3_TIME
        )
        results.add(headers["authorization"])
    assert len(results) == 5


@pytest.mark.parametrize("expires", [0, -1, 604_801, 10**9, True, 1.5, "60"])
def test_presign_expires_out_of_range(expires: Any) -> None:
    with pytest.raises(ConfigurationError):
        make_signer().presign("GET", "h", "/k", [], expires=expires)


@pytest.mark.parametrize("expires", [1, 3600, 604_800])
def test_presign_expires_in_range(expires: int) -> None:
    query = make_signer().presign("GET", "h", "/k", [], expires=expires, timestamp=S3_TIME)
    assert f"&X-Amz-Expires={expires}&" in query


def test_presign_with_token_params_and_headers() -> None:
    signer = Signer(AKID, SECRET, "to/ken+=", region=REGION)
    query = signer.presign(
        "GET",
        "bucket.example:443",
        "/my%20key",
        [("versionId", "v/1"), ("response-content-type", "text/plain")],
        expires=600,
        headers={"range": "bytes=0-1", "user-agent": "never-signed"},
        timestamp=S3_TIME,
    )
    signed_query, _, signature = query.rpartition("&X-Amz-Signature=")
    names = [item.split("=")[0] for item in signed_query.split("&")]
    assert names == sorted(names)
    assert "X-Amz-Security-Token=to%2Fken%2B%3D" in signed_query
    assert "X-Amz-SignedHeaders=host%3Brange&" in signed_query
    assert "versionId=v%2F1" in signed_query
    creq = recompute(
        "GET", "bucket.example", "/my%20key", signed_query, {"range": "bytes=0-1"}, UNSIGNED_PAYLOAD
    )
    sts = string_to_sign(COMMON["amz_date"], signer.scope(COMMON["date"]), creq)
    key = derive_signing_key(SECRET, COMMON["date"], REGION, "s3")
    assert signature == hmac.new(key, sts.encode(), "sha256").hexdigest()


def test_chunk_signer_needs_signed_headers() -> None:
    with pytest.raises(ConfigurationError):
        make_signer().chunk_signer({})


def test_chunk_signer_accepts_memoryview_and_repr() -> None:
    signer = ChunkSigner(b"k" * 32, "20130524T000000Z", "20130524/r/s3/aws4_request", "0" * 64)
    other = ChunkSigner(b"k" * 32, "20130524T000000Z", "20130524/r/s3/aws4_request", "0" * 64)
    assert signer.sign(memoryview(b"abc")) == other.sign(b"abc")
    assert "k" * 32 not in repr(signer)


@pytest.mark.parametrize(
    ("decoded", "chunk", "expected"),
    [
        pytest.param(0, 65536, 1 + 81 + 2 + 2, id="empty"),
        pytest.param(65536, 65536, (5 + 81 + 2 + 65536 + 2) + (1 + 81 + 2 + 2), id="exact"),
        pytest.param(66560, 65536, 66824, id="doc-example"),
    ],
)
def test_aws_chunked_length(decoded: int, chunk: int, expected: int) -> None:
    assert aws_chunked_length(decoded, chunk) == expected


def test_aws_chunked_length_matches_built_body() -> None:
    signer = ChunkSigner(b"k" * 32, "20130524T000000Z", "20130524/r/s3/aws4_request", "0" * 64)
    data = bytes(range(256)) * 100  # 25600 bytes, chunks of 8192: 3 full + 1024
    body = bytearray()
    for start in range(0, len(data), 8192):
        part = data[start : start + 8192]
        body += signer.chunk_header(part) + part + b"\r\n"
    body += signer.chunk_header(b"") + b"\r\n"
    assert aws_chunked_length(len(data), 8192) == len(body)


def test_aws_chunked_length_rejects_bad_sizes() -> None:
    with pytest.raises(ConfigurationError):
        aws_chunked_length(-1, 10)
    with pytest.raises(ConfigurationError):
        aws_chunked_length(10, 0)


def test_concurrent_signing_is_consistent() -> None:
    signer = make_signer()
    times = [posix("20240101T000000Z") + n * 43_200 for n in range(6)]  # crosses days

    def sign(ts: float) -> str:
        headers: dict[str, str] = {}
        signer.sign_headers("GET", "h", "/k", "", headers, EMPTY_SHA256, timestamp=ts)
        return headers["authorization"]

    expected = {ts: sign(ts) for ts in times}
    fresh = make_signer()
    for ts in times:  # a fresh signer agrees: no state leaks between dates
        headers: dict[str, str] = {}
        fresh.sign_headers("GET", "h", "/k", "", headers, EMPTY_SHA256, timestamp=ts)
        assert headers["authorization"] == expected[ts]

    errors: list[str] = []

    def worker(offset: int) -> None:
        for n in range(300):
            ts = times[(n + offset) % len(times)]
            if sign(ts) != expected[ts]:
                errors.append(f"mismatch at {ts}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
