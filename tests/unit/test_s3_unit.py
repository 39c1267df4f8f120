"""S3Session pieces that need no server: addressing, validation, repr, metadata encoding."""

from __future__ import annotations

import pytest

from s3func import ConfigurationError, S3Session
from s3func.s3 import _decode_meta_value, _encode_meta_value, _xml_escape
from s3func.session import check_key, check_metadata

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def make(**kw: object) -> S3Session:
    args: dict[str, object] = {
        "access_key_id": "AKID",
        "access_key": SECRET,
        "bucket": "my-bucket",
        "region": "eu-west-1",
    }
    args.update(kw)
    return S3Session(**args)  # type: ignore[arg-type]


def test_auto_addressing() -> None:
    aws = make()
    assert aws.addressing_style == "virtual"
    assert aws.endpoint_url == "https://s3.eu-west-1.amazonaws.com"
    assert make(bucket="my.dotted.bucket").addressing_style == "path"
    assert make(endpoint_url="http://127.0.0.1:9000").addressing_style == "path"
    assert (
        make(endpoint_url="https://minio.local", addressing_style="virtual").addressing_style
        == "virtual"
    )


def test_secret_never_in_repr() -> None:
    session = make(session_token="TOKENVALUE")
    for text in (repr(session), str(session), repr(session._signer), repr(session.transport)):
        assert SECRET not in text and "TOKENVALUE" not in text


@pytest.mark.parametrize("key", ["", "x" * 1025, "é" * 513])
def test_bad_keys_rejected_before_any_request(key: str) -> None:
    # Port 9 (discard) on loopback: a request would fail with ConnectError, not ValueError.
    session = make(endpoint_url="http://127.0.0.1:9")
    with pytest.raises(ConfigurationError) as info:
        session.put_object(key, b"x")
    assert isinstance(info.value, ValueError)
    assert str(info.value)


def test_key_limits() -> None:
    assert check_key("x" * 1024) == "x" * 1024
    with pytest.raises(ConfigurationError):
        check_key(None)


def test_metadata_rules() -> None:
    assert check_metadata({"Source": "a"}) == {"source": "a"}
    bad_values = ({"a": "line\nbreak"}, {"a": "nul\x00"}, {"a": "del\x7f"}, {"a": "\x1f"})
    for bad in ({"bad name": "x"}, {"": "x"}, *bad_values, {"a": 1}, {"A": "1", "a": "2"}):
        with pytest.raises(ConfigurationError):
            check_metadata(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="2048"):
        check_metadata({"k": "v" * 2048})
    check_metadata({"k": "v" * 2047})


def test_metadata_too_big_rejected_before_request() -> None:
    session = make(endpoint_url="http://127.0.0.1:9")
    with pytest.raises(ConfigurationError):
        session.put_object("k", b"x", metadata={"k": "v" * 3000})


@pytest.mark.parametrize("value", ["plain", "héllo wörld", "日本語", "=?not encoded", "emoji 🎉"])
def test_non_ascii_metadata_round_trip(value: str) -> None:
    encoded = _encode_meta_value(value)
    assert encoded.isascii()
    assert _decode_meta_value(encoded) == value


def test_xml_escape() -> None:
    assert _xml_escape('a&b<c>"d"\r\n') == "a&amp;b&lt;c&gt;&quot;d&quot;&#13;&#10;"


def test_presign_expiry_bounds() -> None:
    session = make()
    url = session.presigned_url("a b/c", expires=604800)
    assert "X-Amz-Expires=604800" in url and "/a%20b/c?" in url
    with pytest.raises(ConfigurationError):
        session.presigned_url("k", expires=604801)
    with pytest.raises(ConfigurationError):
        session.presigned_url("k", expires=0)


def test_missing_bucket() -> None:
    with pytest.raises(ConfigurationError):
        S3Session(access_key_id="a", access_key="b")
