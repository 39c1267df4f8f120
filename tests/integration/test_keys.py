"""Keys are sent exactly as given and round-trip exactly.

SeaweedFS refuses keys with ``.``/``..`` segments and folds ``//``, so those keys are checked
on the wire through a recording proxy in front of SeaweedFS and round-tripped on moto.
"""

from __future__ import annotations

import contextlib
import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest

from s3func import S3FuncError, S3Session
from s3func._sigv4 import quote_path

NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")

# Keys every S3 server must store and return verbatim.
PORTABLE_KEYS = [
    "with space",
    "  leading and trailing spaces  ",
    "plus+sign",
    "percent%20not-a-space",
    "percent%",
    "bang!",
    "hash#frag",
    "question?mark=1&x=2",
    "tilde~",
    "quote'",
    "star*",
    "(parens)",
    "all + % ! # ? = & ~ ' * ( )",
    "unicode/日本語/ファイル.txt",
    "emoji/🎉.bin",
    NFC,
    NFD,
    "semi;colon,comma:colon@at$dollar",
    'brackets[]{}<>|^`"',
    ("x" * 200 + "/") * 5 + "x" * 18,  # 1023 bytes (SeaweedFS caps one segment at 255)
]

# Keys that are legal in S3 but that SeaweedFS refuses or rewrites: checked on the wire
# against SeaweedFS and round-tripped on moto.
DOT_KEYS = [
    "a/./b",
    "a/../b",
    ".",
    "..",
    "x/..",
    "./x",
    "a//b",
    "//",
    "/leading-slash",
    "trailing/",
    "back\\slash",  # SeaweedFS lists it as back/slash
    "trailing-backslash\\",  # SeaweedFS stores it but serves an empty body
    "x" * 1024,  # SeaweedFS limits one path segment to 255 bytes
]


def test_nfc_and_nfd_are_different_keys() -> None:
    assert NFC != NFD
    assert quote_path(NFC) != quote_path(NFD)


@pytest.mark.parametrize("key", PORTABLE_KEYS, ids=lambda k: repr(k[:40]))
def test_portable_keys_round_trip(s3_session: S3Session, boto3_client: Any, key: str) -> None:
    body = key.encode("utf-8")
    s3_session.put_object(key, body, metadata={"k": "v"})
    assert s3_session.get_object(key).data == body
    assert s3_session.head_object(key).content_length == len(body)
    assert s3_session.list_objects().keys() == [key]
    assert s3_session.list_objects(prefix=key).keys() == [key]
    # boto3 agrees on what was stored under that exact key
    got = boto3_client.get_object(Bucket=s3_session.bucket, Key=key)
    assert got["Body"].read() == body
    s3_session.delete_object(key)
    assert s3_session.list_objects().keys() == []


def test_nfc_nfd_stored_separately(s3_session: S3Session) -> None:
    s3_session.put_object(NFC, b"composed")
    s3_session.put_object(NFD, b"decomposed")
    assert s3_session.get_object(NFC).data == b"composed"
    assert s3_session.get_object(NFD).data == b"decomposed"
    assert sorted(s3_session.list_objects().keys()) == sorted([NFC, NFD])


@pytest.mark.parametrize("key", DOT_KEYS)
def test_dot_keys_sent_verbatim_on_the_wire(
    proxied_s3_session: S3Session, fault_proxy: Any, key: str
) -> None:
    """The request target on the wire keeps ``.``, ``..`` and ``//`` exactly as in the key."""
    session = proxied_s3_session
    expected = f"/{session.bucket}/{quote_path(key)}"
    for call in (lambda: session.put_object(key, b"x"), lambda: session.head_object(key)):
        # SeaweedFS may refuse the key; what goes over the wire is what we test.
        with contextlib.suppress(S3FuncError):
            call()
    targets = [r.target.split("?", 1)[0] for r in fault_proxy.records]
    assert targets[-2:] == [expected, expected], targets


@pytest.fixture(scope="module")
def moto_session() -> Iterator[S3Session]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        port = server._server.server_port  # type: ignore[attr-defined]
        session = S3Session(
            access_key_id="moto",
            access_key="moto",
            bucket="keys-bucket",
            endpoint_url=f"http://127.0.0.1:{port}",
            region="us-east-1",
        )
        session.create_bucket()
        yield session
        session.close()
    finally:
        server.stop()


@pytest.mark.parametrize("key", DOT_KEYS + PORTABLE_KEYS[:13], ids=lambda k: repr(k[:40]))
def test_every_key_round_trips_on_moto(moto_session: S3Session, key: str) -> None:
    body = b"value of " + key.encode()
    moto_session.put_object(key, body)
    assert moto_session.get_object(key).data == body
    assert moto_session.head_object(key).content_length == len(body)
    assert key in moto_session.list_objects(prefix=key).keys()
    moto_session.delete_object(key)
    assert key not in moto_session.list_objects(prefix=key).keys()


def test_dot_keys_distinct_on_moto(moto_session: S3Session) -> None:
    """``a/../b`` must not be confused with ``b`` (no client-side normalisation)."""
    moto_session.put_object("b", b"plain b")
    moto_session.put_object("a/../b", b"dotted")
    moto_session.put_object("a//b", b"double")
    moto_session.put_object("a/b", b"single")
    assert moto_session.get_object("b").data == b"plain b"
    assert moto_session.get_object("a/../b").data == b"dotted"
    assert moto_session.get_object("a//b").data == b"double"
    assert moto_session.get_object("a/b").data == b"single"
    moto_session.delete_objects(["b", "a/../b", "a//b", "a/b"])
