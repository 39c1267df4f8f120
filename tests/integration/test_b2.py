"""B2Session against the B2 emulator on loopback (b2sdk's RawSimulator behind a real HTTP server).

The emulator counts calls, injects failures (503, 429 with Retry-After, dropped connections...),
expires tokens on demand and records whether an upload token was ever used by two uploads at
once; the tests below use those controls instead of sleeping.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3

from b2emu import B2Emulator
from b2emu.fixtures import B2_MIN_PART_SIZE, make_b2_session, new_bucket_name
from s3func import (
    AccessDeniedError,
    AuthenticationError,
    B2Session,
    BaseSession,
    ConfigurationError,
    ConflictError,
    IncompleteBodyError,
    IntegrityError,
    InvalidRangeError,
    NotFoundError,
    NotSupportedError,
    PreconditionFailedError,
    S3Session,
    ServerError,
    ServiceError,
    ThrottledError,
)
from s3func._b2_auth import TOKENS, UPLOAD_URLS
from s3func.retry import NO_RETRY, RetryPolicy

VECTORS = Path(__file__).resolve().parents[1] / "data" / "b2-string-encoding-vectors.json"


class NonSeekable(io.RawIOBase):
    """A pipe-like reader: readable, not seekable."""

    def __init__(self, data: bytes, step: int = 7) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data[self._pos : self._pos + min(self._step, len(buffer))]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def calls(emu: B2Emulator, name: str) -> int:
    return emu.call_count(name)


@pytest.fixture
def fresh_key(b2_emulator: B2Emulator) -> tuple[str, str]:
    """An account-wide key never used before (its own token-cache entry)."""
    return b2_emulator.create_key()


def unfinished(session: B2Session) -> list[Any]:
    doc = session._call(
        "b2_list_unfinished_large_files", {"bucketId": session.bucket_id}, idempotent=True
    )
    files: list[Any] = doc["files"]
    return files


# -- construction -----------------------------------------------------------------------------


def test_same_api_as_s3session() -> None:
    assert issubclass(B2Session, BaseSession)
    for name in (
        "put_object",
        "get_object",
        "head_object",
        "delete_object",
        "delete_objects",
        "list_objects",
        "list_object_versions",
        "copy_object",
        "presigned_url",
        "exists",
    ):
        b2 = inspect.signature(getattr(B2Session, name))
        s3 = inspect.signature(getattr(S3Session, name))
        assert [(p.name, p.kind, p.default) for p in b2.parameters.values()] == [
            (p.name, p.kind, p.default) for p in s3.parameters.values()
        ], name
    first = list(inspect.signature(B2Session).parameters)[:4]
    assert first == ["access_key_id", "access_key", "bucket", "endpoint_url"]


def test_default_endpoint_and_no_io_in_constructor() -> None:
    session = B2Session(access_key_id="kid", access_key="secret", bucket="bucket-name")
    assert session.endpoint_url == "https://api.backblazeb2.com"
    assert "secret" not in repr(session)
    session.close()


def test_credentials_from_environment(
    b2_emulator: B2Emulator, b2_session: B2Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("B2_APPLICATION_KEY_ID", b2_emulator.key_id)
    monkeypatch.setenv("B2_APPLICATION_KEY", b2_emulator.key)
    with B2Session(bucket=b2_session.bucket, endpoint_url=b2_emulator.url) as session:
        assert session.credentials_source == "environment"
        session.put_object("env.txt", b"from env")
        assert b2_session.get_object("env.txt").data == b"from env"
    monkeypatch.delenv("B2_APPLICATION_KEY")
    with pytest.raises(ConfigurationError, match="B2_APPLICATION_KEY"):
        B2Session(bucket="bucket-name")
    monkeypatch.delenv("B2_APPLICATION_KEY_ID")
    with pytest.raises(ConfigurationError, match="no B2 credentials"):
        B2Session(bucket="bucket-name")
    with pytest.raises(ConfigurationError):
        B2Session(access_key_id="only-id", bucket="bucket-name")
    with pytest.raises(ConfigurationError):
        B2Session(access_key_id="a", access_key="b")  # no bucket


def test_wrong_key_is_an_authentication_error(b2_emulator: B2Emulator) -> None:
    session = make_b2_session(b2_emulator, "whatever", key_id=b2_emulator.key_id, key="nope")
    with pytest.raises(AuthenticationError) as info:
        session.put_object("x", b"x")
    assert info.value.operation == "b2_authorize_account"
    assert info.value.status == 401
    assert "nope" not in str(info.value)
    session.close()


# -- put / get / head -------------------------------------------------------------------------


def test_seed_flow(b2_session: B2Session) -> None:
    b2_session.put_object("hello.txt", b"Hello, B2!")
    assert b2_session.get_object("hello.txt").data == b"Hello, B2!"
    b2_session.put_object(
        "data.csv", b"col1,col2\n1,2", metadata={"processed": "false", "source": "sensor-1"}
    )
    head = b2_session.head_object("data.csv")
    assert head.metadata == {"processed": "false", "source": "sensor-1"}
    keys = [(o["key"], o["content_length"]) for o in b2_session.list_objects().iter_objects()]
    assert keys == [("data.csv", 13), ("hello.txt", 10)]


def test_put_returns_fields_and_they_agree(b2_session: B2Session) -> None:
    data = b"payload" * 100
    digest = hashlib.sha256(data).hexdigest()
    put = b2_session.put_object(
        "f.bin",
        data,
        metadata={"Color": "blue", "s3func-sha256": digest},
        content_type="application/x-test",
    )
    assert put.etag == sha1(data)  # the SHA-1, never an MD5
    assert put.version_id
    assert put.content_length == len(data)
    assert put.content_type == "application/x-test"
    assert put.metadata == {"color": "blue", "s3func-sha256": digest}
    assert put.last_modified is not None and put.last_modified.tzinfo is not None
    head = b2_session.head_object("f.bin")
    got = b2_session.get_object("f.bin")
    (listed,) = b2_session.list_objects().iter_objects()
    for r in (head, got):
        assert r.etag == put.etag
        assert r.version_id == put.version_id
        assert r.content_type == "application/x-test"
        assert r.metadata == put.metadata
        assert r.last_modified == put.last_modified
    assert head.content_length == len(data)
    assert got.data == data
    assert listed.etag == put.etag
    assert listed.version_id == put.version_id
    assert listed.last_modified == put.last_modified
    assert listed.content_type == "application/x-test"
    # the content-hash contract: sync sees it in the listing, without a HEAD
    assert listed.metadata["s3func-sha256"] == digest
    assert listed["metadata"] == put.metadata


@pytest.mark.parametrize(
    "make_body",
    [
        lambda d: d,
        lambda d: bytearray(d),
        lambda d: memoryview(d),
        lambda d: io.BytesIO(d),
        lambda d: NonSeekable(d),
        lambda d: iter([d[:5], d[5:]]),
    ],
    ids=["bytes", "bytearray", "memoryview", "seekable-file", "non-seekable-file", "iterable"],
)
def test_put_body_kinds(b2_session: B2Session, make_body: Any) -> None:
    data = bytes(range(256)) * 40
    resp = b2_session.put_object("body", make_body(data))
    assert resp.etag == sha1(data)
    assert b2_session.get_object("body").data == data


def test_put_str_and_file_from_its_position(b2_session: B2Session) -> None:
    b2_session.put_object("s", "héllo")
    assert b2_session.get_object("s").data == "héllo".encode()
    f = io.BytesIO(b"skip-this|keep-this")
    f.seek(10)
    assert b2_session.put_object("pos", f).content_length == 9
    assert b2_session.get_object("pos").data == b"keep-this"


def test_put_file_that_shrinks_while_uploading(
    b2_emulator: B2Emulator, b2_session: B2Session
) -> None:
    class Liar(io.RawIOBase):
        """Claims 100 bytes, has 5."""

        def __init__(self) -> None:
            self._inner = io.BytesIO(b"short")

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return True

        def tell(self) -> int:
            return self._inner.tell()

        def seek(self, pos: int, whence: int = 0) -> int:
            if whence == io.SEEK_END:
                self._inner.seek(0, io.SEEK_END)
                return 100
            return self._inner.seek(pos, whence)

        def readinto(self, buffer: Any) -> int:
            return self._inner.readinto(buffer)

    before = calls(b2_emulator, "b2_upload_file")
    with pytest.raises(IncompleteBodyError, match="ended"):
        b2_session.put_object("liar", Liar())
    assert calls(b2_emulator, "b2_upload_file") <= before + 1  # not retried
    assert not b2_session.exists("liar")


def test_default_content_type_is_guessed_by_b2(b2_session: B2Session) -> None:
    assert b2_session.put_object("page.html", b"<p>").content_type == "text/html"
    assert b2_session.head_object("page.html").content_type == "text/html"


def test_get_ranges_and_streaming(b2_session: B2Session) -> None:
    data = bytes(range(256)) * 8
    b2_session.put_object("r", data)
    assert b2_session.get_object("r", offset=10, length=5).data == data[10:15]
    with b2_session.get_object("r", offset=2000) as resp:
        assert resp.status == 206
        assert resp.offset == 2000
        assert resp.object_size == len(data)
        assert resp.read() == data[2000:]
    whole = b2_session.get_object("r", stream=False)
    assert whole.read(3) == data[:3]
    assert whole.data == data
    chunks = list(b2_session.get_object("r").iter_chunks(1000))
    assert b"".join(chunks) == data
    with pytest.raises(InvalidRangeError) as info:
        b2_session.get_object("r", offset=len(data))
    assert info.value.code == "range_not_satisfiable"
    with pytest.raises(ConfigurationError):
        b2_session.get_object("r", offset=-1)
    with pytest.raises(ConfigurationError):
        b2_session.get_object("r", length=0)


def test_get_and_head_by_version(b2_session: B2Session) -> None:
    v1 = b2_session.put_object("k", b"one", metadata={"n": "1"})
    v2 = b2_session.put_object("k", b"two", metadata={"n": "2"})
    other = b2_session.put_object("other", b"x")
    assert b2_session.get_object("k").data == b"two"
    assert b2_session.get_object("k", version_id=v1.version_id).data == b"one"
    assert b2_session.get_object("k", version_id=v1.version_id, offset=1).data == b"ne"
    head = b2_session.head_object("k", version_id=v1.version_id)
    assert head.version_id == v1.version_id
    assert head.etag == sha1(b"one")
    assert head.metadata == {"n": "1"}
    assert b2_session.head_object("k").version_id == v2.version_id
    assert other.version_id is not None
    with pytest.raises(NotFoundError):
        b2_session.get_object("k", version_id=other.version_id)
    with pytest.raises(NotFoundError):
        b2_session.head_object("k", version_id=other.version_id)


def test_missing_objects(b2_session: B2Session) -> None:
    with pytest.raises(NotFoundError) as info:
        b2_session.get_object("missing")
    assert isinstance(info.value, FileNotFoundError)
    assert info.value.status == 404
    assert info.value.provider == "b2"
    assert info.value.code == "not_found"
    with pytest.raises(NotFoundError):
        b2_session.head_object("missing")
    assert not b2_session.exists("missing")


def test_download_resumes_pinned_to_the_version(
    b2_emulator: B2Emulator, b2_session: B2Session
) -> None:
    data = bytes(range(256)) * 400
    put = b2_session.put_object("resume", data)
    by_id = calls(b2_emulator, "b2_download_file_by_id")
    b2_emulator.inject_failure("b2_download_file_by_name", mode="truncate")
    with b2_session.get_object("resume") as resp:
        assert resp.read() == data
        assert resp.resumes == 1
        assert resp.version_id == put.version_id
    assert calls(b2_emulator, "b2_download_file_by_id") == by_id + 1


# -- names and metadata -----------------------------------------------------------------------


def test_names_use_b2_string_encoding(b2_session: B2Session) -> None:
    cases = json.loads(VECTORS.read_text(encoding="utf-8"))["cases"]
    allowed = [c["string"] for c in cases if c["string"] != "\x7f"]  # DEL: no B2 name
    names = [f"v/{i:02d}{text}end" for i, text in enumerate(allowed)]
    names += ["a b+c", "100% & more?#", "ünï/cödé/名前", "trailing/"]
    for name in names:
        b2_session.put_object(name, name.encode(), metadata={"echo": name})
    listed = {o.key: o.metadata["echo"] for o in b2_session.list_objects()}
    assert listed == {name: name for name in names}
    for name in names:
        head = b2_session.head_object(name)
        assert head.metadata == {"echo": name}
        assert b2_session.get_object(name).data == name.encode()


@pytest.mark.parametrize("name", ["tab\there", "nul\x00", "del\x7f"])
def test_control_characters_are_rejected_before_sending(b2_session: B2Session, name: str) -> None:
    with pytest.raises(ConfigurationError, match="control characters"):
        b2_session.put_object(name, b"x")


def test_metadata_limits(b2_session: B2Session) -> None:
    ok = {f"k{i}": "v" for i in range(10)}
    assert b2_session.put_object("ten", b"", metadata=ok).metadata == ok
    with pytest.raises(ConfigurationError, match="at most 10"):
        b2_session.put_object("eleven", b"", metadata={f"k{i}": "v" for i in range(11)})
    with pytest.raises(ConfigurationError, match="7000"):
        b2_session.put_object("big", b"", metadata={"a": "x" * 4000, "b": "y" * 3000})
    with pytest.raises(ConfigurationError, match="invalid"):
        b2_session.put_object("dot", b"", metadata={"a.b": "v"})
    with pytest.raises(ConfigurationError, match="reserves"):
        b2_session.put_object("res", b"", metadata={"b2-custom": "v"})
    with pytest.raises(ConfigurationError, match="src_last_modified_millis"):
        b2_session.put_object("mt", b"", metadata={"src_last_modified_millis": "yesterday"})
    assert b2_session.list_objects().keys() == ["ten"]


def test_src_last_modified_millis_and_unicode_values(b2_session: B2Session) -> None:
    meta = {"src_last_modified_millis": "1700000000123", "note": "naïve café +1 100%"}
    b2_session.put_object("m", b"x", metadata=meta)
    assert b2_session.head_object("m").metadata == meta
    (item,) = b2_session.list_objects().iter_objects()
    assert item.metadata == meta


def test_b2_content_disposition_info(b2_session: B2Session) -> None:
    b2_session.put_object(
        "cd", b"x", metadata={"b2-content-disposition": "attachment; filename=x.txt"}
    )
    resp = b2_session.get_object("cd")
    assert resp.headers["content-disposition"] == "attachment; filename=x.txt"
    assert resp.data == b"x"


# -- conditions -------------------------------------------------------------------------------


def test_conditional_writes_are_not_supported(
    b2_emulator: B2Emulator, b2_session: B2Session
) -> None:
    before = calls(b2_emulator, "b2_upload_file")
    for kwargs in ({"if_none_match": "*"}, {"if_match": "abc"}):
        with pytest.raises(NotSupportedError) as info:
            b2_session.put_object("c", b"x", **kwargs)
        assert info.value.status == 501
        assert "conditional" in str(info.value)
    with pytest.raises(NotSupportedError):
        b2_session.delete_object("c", if_match="abc")
    assert calls(b2_emulator, "b2_upload_file") == before


def test_conditional_reads(b2_session: B2Session) -> None:
    put = b2_session.put_object("c", b"data")
    etag, vid = put.etag, put.version_id
    assert etag and vid
    assert b2_session.get_object("c", if_match=etag).data == b"data"
    assert b2_session.get_object("c", if_match=f'"{etag}"').data == b"data"
    assert b2_session.get_object("c", if_match=vid).data == b"data"
    assert b2_session.head_object("c", if_match="*").etag == etag
    assert b2_session.get_object("c", if_none_match="0" * 40).data == b"data"
    with pytest.raises(PreconditionFailedError) as info:
        b2_session.get_object("c", if_match="0" * 40)
    assert info.value.status == 412
    with pytest.raises(PreconditionFailedError) as info:
        b2_session.head_object("c", if_none_match=etag)
    assert info.value.status == 304
    with pytest.raises(PreconditionFailedError):
        b2_session.get_object("c", if_none_match="*")
    with pytest.raises(NotFoundError):
        b2_session.get_object("missing", if_match="*")
    # a failed condition leaves no connection stuck: the pool still works
    for _ in range(20):
        with pytest.raises(PreconditionFailedError):
            b2_session.get_object("c", if_match="nope")
    assert b2_session.get_object("c").data == b"data"


# -- deleting and hiding ----------------------------------------------------------------------


def test_delete_hides_like_an_s3_delete_marker(b2_session: B2Session) -> None:
    v1 = b2_session.put_object("d", b"one")
    v2 = b2_session.put_object("d", b"two")
    resp = b2_session.delete_object("d")
    assert resp.version_id  # the hide marker
    with pytest.raises(NotFoundError):
        b2_session.head_object("d")
    with pytest.raises(NotFoundError):
        b2_session.get_object("d")
    assert b2_session.list_objects().keys() == []
    versions = list(b2_session.list_object_versions().iter_objects())
    assert [(v.is_delete_marker, v.is_latest, v.version_id) for v in versions] == [
        (True, True, resp.version_id),
        (False, False, v2.version_id),
        (False, False, v1.version_id),
    ]
    assert versions[0].content_length == 0 and versions[0].etag == ""
    # old versions stay readable by id
    assert b2_session.get_object("d", version_id=v1.version_id).data == b"one"
    # deleting again, or a name that never existed, is not an error (as on S3)
    b2_session.delete_object("d")
    b2_session.delete_object("never-existed")
    b2_session.hide_object("never-existed")


def test_delete_one_version(b2_session: B2Session) -> None:
    v1 = b2_session.put_object("d", b"one")
    v2 = b2_session.put_object("d", b"two")
    b2_session.delete_object("d", version_id=v2.version_id)
    assert b2_session.get_object("d").data == b"one"
    assert [v.version_id for v in b2_session.list_object_versions()] == [v1.version_id]
    # a version that is gone already: success, as on S3
    assert b2_session.delete_object("d", version_id=v2.version_id).status == 204


def test_delete_objects_all_versions_exact_names(b2_session: B2Session) -> None:
    for key in ("a", "ab", "a/b", "b"):
        b2_session.put_object(key, b"1")
        b2_session.put_object(key, b"2")
    b2_session.delete_object("a")  # a hide marker must be purged too
    deleted = b2_session.delete_objects(["a", "b"], all_versions=True)
    assert sorted((d.key, d.is_delete_marker) for d in deleted) == [
        ("a", False),
        ("a", False),
        ("a", True),
        ("b", False),
        ("b", False),
    ]
    remaining = sorted(v.key for v in b2_session.list_object_versions())
    assert remaining == ["a/b", "a/b", "ab", "ab"]  # never matched by prefix


def test_delete_objects_by_prefix_and_keys(b2_session: B2Session) -> None:
    for i in range(12):
        b2_session.put_object(f"p/{i:02d}", b"x")
    b2_session.put_object("q", b"x")
    done = b2_session.delete_objects(prefix="p/")
    assert len(done) == 12
    assert b2_session.list_objects().keys() == ["q"]
    assert [d.key for d in b2_session.delete_objects(["q"])] == ["q"]
    assert b2_session.list_objects().keys() == []
    # the hidden versions remain until purged
    b2_session.delete_objects(prefix="", all_versions=True, allow_empty_prefix=True)
    assert list(b2_session.list_object_versions()) == []


# -- listings ---------------------------------------------------------------------------------


@pytest.fixture
def tree(b2_session: B2Session) -> B2Session:
    for key in ("a.txt", "dir/1", "dir/2", "dir/sub/3", "dis", "e/x", "z"):
        b2_session.put_object(key, key.encode())
    b2_session._page_size = 2  # force pagination everywhere
    return b2_session


def test_list_prefix_delimiter_start_after(tree: B2Session) -> None:
    assert tree.list_objects().keys() == ["a.txt", "dir/1", "dir/2", "dir/sub/3", "dis", "e/x", "z"]
    assert tree.list_objects(prefix="di").keys() == ["dir/1", "dir/2", "dir/sub/3", "dis"]
    top = tree.list_objects(delimiter="/")
    assert top.keys() == ["a.txt", "dis", "z"]
    assert top.common_prefixes == ["dir/", "e/"]
    inner = tree.list_objects(prefix="dir/", delimiter="/")
    assert inner.keys() == ["dir/1", "dir/2"]
    assert inner.common_prefixes == ["dir/sub/"]
    assert tree.list_objects(start_after="dir/2").keys() == ["dir/sub/3", "dis", "e/x", "z"]
    assert tree.list_objects(start_after="dir/1x").keys() == [
        "dir/2",
        "dir/sub/3",
        "dis",
        "e/x",
        "z",
    ]
    assert tree.list_objects(prefix="dir/", start_after="dir/1").keys() == ["dir/2", "dir/sub/3"]
    assert tree.list_objects(max_keys=3).keys() == ["a.txt", "dir/1", "dir/2"]
    assert tree.list_objects(start_after="dir/1", max_keys=1).keys() == ["dir/2"]
    limited = tree.list_objects(delimiter="/", max_keys=2)
    assert limited.keys() == ["a.txt"]
    assert limited.common_prefixes == ["dir/"]
    assert tree.list_objects(prefix="nothing").keys() == []


def test_list_is_lazy(b2_emulator: B2Emulator, tree: B2Session) -> None:
    before = calls(b2_emulator, "b2_list_file_names")
    it = tree.list_objects().iter_objects()
    assert next(it).key == "a.txt"
    assert calls(b2_emulator, "b2_list_file_names") == before + 1
    assert len(list(it)) == 6
    assert calls(b2_emulator, "b2_list_file_names") == before + 4


def test_list_versions_across_pages(tree: B2Session) -> None:
    ids = [tree.put_object("dir/1", f"v{i}".encode()).version_id for i in range(4)]
    tree.delete_object("z")
    versions = [
        (v.key, v.version_id, v.is_latest, v.is_delete_marker)
        for v in tree.list_object_versions(prefix="dir/1")
    ]
    assert [v[1] for v in versions[:4]] == ids[::-1]
    assert [v[2] for v in versions] == [True, False, False, False, False]
    zs = list(tree.list_object_versions(prefix="z"))
    assert [(z.is_latest, z.is_delete_marker) for z in zs] == [(True, True), (False, False)]
    grouped = tree.list_object_versions(delimiter="/")
    assert [v.key for v in grouped] == ["a.txt", "dis", "z", "z"]
    assert grouped.common_prefixes == ["dir/", "e/"]
    assert len(list(tree.list_object_versions(max_keys=3))) == 3


def test_unfinished_large_files_are_not_listed(b2_session: B2Session) -> None:
    b2_session.put_object("big", b"old")
    upload_id = b2_session._mpu_create("big", metadata={}, content_type=None)
    assert [v.key for v in b2_session.list_object_versions()] == ["big"]
    assert b2_session.get_object("big").data == b"old"
    b2_session._mpu_abort("big", upload_id)
    assert unfinished(b2_session) == []


# -- copy -------------------------------------------------------------------------------------


def test_copy_object(b2_session: B2Session) -> None:
    b2_session.put_object("src", b"data", metadata={"a": "1"}, content_type="text/x-src")
    copied = b2_session.copy_object("src", "dst")
    assert copied.etag == sha1(b"data")
    head = b2_session.head_object("dst")
    assert head.metadata == {"a": "1"}
    assert head.content_type == "text/x-src"
    assert copied.version_id == head.version_id
    b2_session.copy_object("src", "dst2", metadata={"b": "2"})
    assert b2_session.head_object("dst2").metadata == {"b": "2"}
    assert b2_session.head_object("dst2").content_type == "text/x-src"
    b2_session.copy_object("src", "dst3", content_type="text/plain")
    head3 = b2_session.head_object("dst3")
    assert (head3.content_type, head3.metadata) == ("text/plain", {"a": "1"})
    old = b2_session.head_object("src").version_id
    b2_session.put_object("src", b"newer")
    b2_session.copy_object("src", "dst4", source_version_id=old)
    assert b2_session.get_object("dst4").data == b"data"
    with pytest.raises(NotFoundError):
        b2_session.copy_object("missing", "x")


def test_copy_large_uses_copy_part(b2_emulator: B2Emulator, b2_session: B2Session) -> None:
    data = bytes(range(256)) * 55  # 14080 bytes
    b2_session.put_object("src", data, metadata={"keep": "me"}, content_type="text/x-big")
    b2_emulator.configure(max_copy_size=6000)
    b2_session._max_copy_size = 6000
    parts = calls(b2_emulator, "b2_copy_part")
    copied = b2_session.copy_object("src", "dst")
    assert calls(b2_emulator, "b2_copy_part") == parts + 3
    assert copied.content_length == len(data)
    head = b2_session.head_object("dst")
    assert head.metadata == {"keep": "me"}
    assert head.content_type == "text/x-big"
    assert b2_session.get_object("dst").data == data
    assert unfinished(b2_session) == []


# -- large files ------------------------------------------------------------------------------


def test_min_part_size_comes_from_the_authorization(b2_session: B2Session) -> None:
    assert b2_session._min_part_size == B2_MIN_PART_SIZE
    b2_session._min_part_size = 123
    assert b2_session._min_part_size == 123


def large_mode(session: B2Session) -> None:
    """Small thresholds so that a few kilobytes take the large-file path."""
    session.multipart_threshold = 10_000
    session.part_size = B2_MIN_PART_SIZE


def test_large_put_uploads_parts_in_parallel(
    b2_emulator: B2Emulator, b2_session: B2Session
) -> None:
    data = bytes(range(251)) * 100  # 25100 bytes -> 6 parts of 5000 (last 100)
    large_mode(b2_session)
    b2_emulator.reset_stats()
    # every part is held on the server for a moment so that uploads overlap
    b2_emulator.inject_failure("b2_upload_part", 6, mode="delay", delay=0.05)
    resp = b2_session.put_object("large", io.BytesIO(data), metadata={"m": "v"})
    stats = b2_emulator.stats()
    assert stats["calls"]["b2_start_large_file"] == 1
    assert stats["calls"]["b2_upload_part"] == 6
    assert 2 <= stats["calls"]["b2_get_upload_part_url"] <= 6  # parallel, one URL per upload
    assert stats["calls"]["b2_finish_large_file"] == 1
    assert not stats["upload_token_concurrent_use"]
    assert resp.content_length == len(data)
    assert resp.metadata == {
        "m": "v",
        "s3func-sha256": hashlib.sha256(data).hexdigest(),
        "s3func-crc32": f"{zlib.crc32(data):08x}",
    }
    assert resp.etag == resp.version_id  # no whole-file SHA-1: the file id, never an MD5
    with b2_session.get_object("large") as got:
        assert got.read() == data
        assert got.checksum is not None and got.checksum[0] == "crc32"
    assert b2_session.head_object("large").etag == resp.etag
    (item,) = b2_session.list_objects().iter_objects()
    assert (item.etag, item.content_length) == (resp.etag, len(data))
    assert unfinished(b2_session) == []


def test_large_put_of_a_stream_keeps_one_version(
    b2_emulator: B2Emulator, b2_session: B2Session
) -> None:
    data = bytes(range(256)) * 100  # 25600 bytes of unknown length
    large_mode(b2_session)
    before = calls(b2_emulator, "b2_upload_part")
    resp = b2_session.put_object("stream", NonSeekable(data, step=4096), metadata={"m": "v"})
    assert calls(b2_emulator, "b2_upload_part") == before + 6
    versions = list(b2_session.list_object_versions())
    assert [v.version_id for v in versions] == [resp.version_id]  # the copy; original deleted
    assert versions[0].metadata == {
        "m": "v",
        "s3func-sha256": hashlib.sha256(data).hexdigest(),
        "s3func-crc32": f"{zlib.crc32(data):08x}",
    }
    assert b2_session.get_object("stream").data == data


def test_small_stream_is_one_upload(b2_emulator: B2Emulator, b2_session: B2Session) -> None:
    large_mode(b2_session)
    data = b"a" * 3000 + b"b" * 1000
    before = calls(b2_emulator, "b2_start_large_file")
    b2_session.put_object("s", iter([data[:3000], data[3000:]]), metadata={"m": "v"})
    assert calls(b2_emulator, "b2_start_large_file") == before
    sha256 = hashlib.sha256(data).hexdigest()
    crc32 = f"{zlib.crc32(data):08x}"
    assert b2_session.head_object("s").metadata == {
        "m": "v", "s3func-sha256": sha256, "s3func-crc32": crc32
    }
    assert b2_session.get_object("s").data == data
    # content_sha256 asks for the same on a single upload of known size
    b2_session.put_object("t", data, content_sha256=True)
    assert b2_session.head_object("t").metadata == {
        "s3func-sha256": sha256, "s3func-crc32": crc32
    }
    got = b2_session.get_object("t")
    assert got.checksum == ("crc32", crc32) and got.data == data  # the cheap check is used


def test_large_put_part_retried_with_new_url(
    b2_emulator: B2Emulator, b2_session: B2Session
) -> None:
    data = b"x" * 12_000
    large_mode(b2_session)
    b2_emulator.reset_stats()
    b2_emulator.inject_failure("b2_upload_part", 1, status=503)
    b2_session.put_object("large", data)
    stats = b2_emulator.stats()["calls"]
    assert stats["b2_upload_part"] == 4
    assert b2_session.get_object("large").data == data


def test_large_put_cancelled_on_failure(b2_emulator: B2Emulator, b2_session: B2Session) -> None:
    large_mode(b2_session)
    cancels = calls(b2_emulator, "b2_cancel_large_file")
    b2_emulator.inject_failure("b2_upload_part", 1, status=400, code="bad_request")
    with pytest.raises(ServiceError) as info:
        b2_session.put_object("large", b"y" * 12_000)
    assert info.value.code == "bad_request"
    assert calls(b2_emulator, "b2_cancel_large_file") == cancels + 1
    assert unfinished(b2_session) == []
    assert list(b2_session.list_object_versions()) == []


def test_upload_and_download_file(
    b2_emulator: B2Emulator, b2_session: B2Session, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 100
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    mtime_ns = 1_700_000_000_123_456_789
    import os

    os.utime(src, ns=(mtime_ns, mtime_ns))
    small = b2_session.upload_file("small.bin", src)
    head = b2_session.head_object("small.bin")
    assert head.metadata["src_last_modified_millis"] == str(mtime_ns // 1_000_000)
    assert head.metadata["s3func-sha256"] == hashlib.sha256(data).hexdigest()
    assert small.etag == sha1(data)
    large_mode(b2_session)
    parts = calls(b2_emulator, "b2_upload_part")
    large = b2_session.upload_file("large.bin", src, metadata={"src_last_modified_millis": "5"})
    assert calls(b2_emulator, "b2_upload_part") == parts + 6
    assert b2_session.head_object("large.bin").metadata["src_last_modified_millis"] == "5"
    assert large.content_length == len(data)
    for key in ("small.bin", "large.bin"):
        dest = tmp_path / f"copy-{key}"
        got = b2_session.download_file(key, dest)
        assert dest.read_bytes() == data
        assert got.content_length == len(data)


def _foreign_large_file(b2_session: B2Session, key: str, data: bytes, info_sha1: str) -> None:
    """A large file as another tool writes it: no s3func hashes, ``large_file_sha1`` info."""
    upload_id = b2_session._mpu_create(
        key, metadata={"large_file_sha1": info_sha1}, content_type=None
    )
    half = len(data) // 2
    parts = [
        (1, b2_session._mpu_upload_part(key, upload_id, 1, data[:half], half)),
        (2, b2_session._mpu_upload_part(key, upload_id, 2, data[half:], len(data) - half)),
    ]
    b2_session._mpu_complete(key, upload_id, parts)


def test_download_file_verifies_b2_sha1_over_ranges(
    b2_session: B2Session, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 64  # 16 KiB, fetched as 4 ranges below
    # A small file written without s3func's hashes: B2's own SHA-1 is the check, and
    # ranged answers carry it too.
    b2_session.put_object("plain.bin", data)
    plain = b2_session.get_object("plain.bin", offset=0, length=10)
    assert plain.known_checksums.get("sha1") == sha1(data) and plain.checksum is None
    plain.close()
    b2_session.download_file("plain.bin", tmp_path / "plain", part_size=4096)
    assert (tmp_path / "plain").read_bytes() == data
    # A large file: B2 stores no SHA-1; the large_file_sha1 info is used instead.
    _foreign_large_file(b2_session, "big-ok.bin", data, sha1(data))
    b2_session.download_file("big-ok.bin", tmp_path / "ok", part_size=4096)
    assert (tmp_path / "ok").read_bytes() == data
    # A wrong large_file_sha1 stands in for corruption: it must be caught, and no file left.
    _foreign_large_file(b2_session, "big-bad.bin", data, "0" * 40)
    with pytest.raises(IntegrityError) as info:
        b2_session.download_file("big-bad.bin", tmp_path / "bad", part_size=4096)
    assert info.value.algorithm == "sha1"
    assert not (tmp_path / "bad").exists()


def test_multipart_primitives(b2_emulator: B2Emulator, b2_session: B2Session) -> None:
    p1 = bytes(range(256)) * 20  # 5120
    p2 = b"b" * 5000
    p3 = b"c" * 5000
    p4 = b"tail"
    whole = hashlib.sha256(p1 + p2 + p3 + p4).hexdigest()
    upload_id = b2_session._mpu_create(
        "mpu", metadata={"s3func-sha256": whole}, content_type="text/x-mpu"
    )
    done = [
        (4, b2_session._mpu_upload_part("mpu", upload_id, 4, NonSeekable(p4), len(p4))),
        (2, b2_session._mpu_upload_part("mpu", upload_id, 2, memoryview(p2), len(p2))),
        (1, b2_session._mpu_upload_part("mpu", upload_id, 1, p1, len(p1))),
    ]
    f = io.BytesIO(b"junk" + p3 + b"more")
    f.seek(4)
    done.append((3, b2_session._mpu_upload_part("mpu", upload_id, 3, f, len(p3))))
    assert dict(done) == {1: sha1(p1), 2: sha1(p2), 3: sha1(p3), 4: sha1(p4)}
    resp = b2_session._mpu_complete("mpu", upload_id, done)
    assert resp.key == "mpu"
    assert resp.version_id == upload_id
    assert resp.content_length == len(p1 + p2 + p3 + p4)
    assert resp.content_type == "text/x-mpu"
    assert resp.metadata == {"s3func-sha256": whole}
    assert b2_session.get_object("mpu").data == p1 + p2 + p3 + p4
    (item,) = b2_session.list_objects().iter_objects()
    assert item.metadata["s3func-sha256"] == whole
    # the part-URL pool of a finished file is dropped
    assert UPLOAD_URLS.size((*b2_session._cache_key, "part", upload_id)) == 0
    # aborting
    other = b2_session._mpu_create("gone", metadata={}, content_type=None)
    b2_session._mpu_upload_part("gone", other, 1, p1, len(p1))
    b2_session._mpu_abort("gone", other)
    b2_session._mpu_abort("gone", other)  # twice is fine
    assert unfinished(b2_session) == []
    assert not b2_session.exists("gone")


# -- sharing ----------------------------------------------------------------------------------


def test_presigned_url_and_download_authorization(b2_session: B2Session) -> None:
    b2_session.put_object("share/a b.txt", b"shared")
    b2_session.put_object("private.txt", b"secret")
    http = urllib3.PoolManager()
    try:
        url = b2_session.presigned_url("share/a b.txt", expires=60)
        assert "share/a%20b.txt?Authorization=" in url
        resp = http.request("GET", url)
        assert (resp.status, resp.data) == (200, b"shared")
        plain = b2_session.download_url("private.txt")
        assert http.request("GET", plain).status == 401  # private bucket: needs a token
        token = b2_session.get_download_authorization("share/", expires=60)
        ok = http.request(
            "GET", b2_session.download_url("share/a b.txt"), headers={"Authorization": token}
        )
        assert ok.data == b"shared"
        denied = http.request("GET", plain, headers={"Authorization": token})
        assert denied.status == 401
        assert json.loads(denied.data)["code"] == "unauthorized"
    finally:
        http.clear()
    with pytest.raises(NotSupportedError):
        b2_session.presigned_url("x", method="PUT")
    with pytest.raises(NotSupportedError):
        b2_session.presigned_url("x", version_id="4_z")
    with pytest.raises(ConfigurationError):
        b2_session.presigned_url("x", expires=604_801)


# -- buckets and restricted keys --------------------------------------------------------------


def test_key_restricted_to_the_bucket(b2_emulator: B2Emulator, b2_session: B2Session) -> None:
    key_id, key = b2_emulator.create_restricted_key(b2_session.bucket)
    bucket_id = b2_session.bucket_id
    lists = calls(b2_emulator, "b2_list_buckets")
    with make_b2_session(b2_emulator, b2_session.bucket, key_id=key_id, key=key) as restricted:
        restricted.put_object("r", b"restricted")
        assert restricted.get_object("r").data == b"restricted"
        assert restricted.list_objects().keys() == ["r"]
        restricted.delete_objects(["r"], all_versions=True)
        assert restricted.bucket_id == bucket_id
    assert calls(b2_emulator, "b2_list_buckets") == lists  # the bucket came from the authorization
    other = new_bucket_name("other")
    b2_emulator.create_bucket(other)
    wrong = make_b2_session(b2_emulator, other, key_id=key_id, key=key)
    with wrong, pytest.raises(AccessDeniedError) as info:
        wrong.put_object("r", b"x")
    assert info.value.code == "bucket_not_allowed"
    assert other in str(info.value) and b2_session.bucket in str(info.value)


def test_missing_capability_is_a_clear_error(
    b2_emulator: B2Emulator, b2_session: B2Session
) -> None:
    key_id, key = b2_emulator.create_restricted_key(
        b2_session.bucket, capabilities=["listBuckets", "listFiles", "readFiles"]
    )
    before = calls(b2_emulator, "b2_get_upload_url")
    with make_b2_session(b2_emulator, b2_session.bucket, key_id=key_id, key=key) as ro:
        with pytest.raises(AccessDeniedError) as info:
            ro.put_object("x", b"x")
        assert "writeFiles" in str(info.value)
        assert isinstance(info.value, PermissionError)
        with pytest.raises(AccessDeniedError, match="shareFiles"):
            ro.get_download_authorization("")
        assert ro.list_objects().keys() == []
    assert calls(b2_emulator, "b2_get_upload_url") == before


def test_name_prefix_restriction_from_the_server(
    b2_emulator: B2Emulator, b2_session: B2Session
) -> None:
    key_id, key = b2_emulator.create_restricted_key(b2_session.bucket, name_prefix="logs/")
    with make_b2_session(b2_emulator, b2_session.bucket, key_id=key_id, key=key) as s:
        s.put_object("logs/ok", b"x")
        with pytest.raises(AccessDeniedError) as info:
            s.put_object("other/no", b"x")
    assert info.value.code == "unauthorized"
    assert info.value.status == 401
    assert "'logs/'" in str(info.value)


def test_unrestricted_key_bucket_lookup(
    b2_emulator: B2Emulator, fresh_key: tuple[str, str]
) -> None:
    key_id, key = fresh_key
    missing = make_b2_session(b2_emulator, "no-such-bucket", key_id=key_id, key=key)
    with missing, pytest.raises(NotFoundError) as info:
        missing.list_objects().keys()
    assert info.value.code == "bucket_not_found"
    assert "no-such-bucket" in str(info.value)
    nolist_id, nolist = b2_emulator.create_key(capabilities=["listFiles", "readFiles"])
    nolist_session = make_b2_session(
        b2_emulator, b2_emulator.bucket_name, key_id=nolist_id, key=nolist
    )
    with nolist_session, pytest.raises(AccessDeniedError, match="listBuckets"):
        nolist_session.list_objects().keys()


# -- the token cache --------------------------------------------------------------------------


def test_sessions_share_one_authorization(
    b2_emulator: B2Emulator, b2_session: B2Session, fresh_key: tuple[str, str]
) -> None:
    key_id, key = fresh_key
    before = b2_emulator.authorize_count
    sessions = [
        make_b2_session(b2_emulator, b2_session.bucket, key_id=key_id, key=key) for _ in range(3)
    ]
    for i, s in enumerate(sessions):
        s.put_object(f"s{i}", b"x")
        s.close()
    assert b2_emulator.authorize_count == before + 1


def test_token_expiring_mid_run(
    b2_emulator: B2Emulator, b2_session: B2Session, fresh_key: tuple[str, str]
) -> None:
    key_id, key = fresh_key
    with make_b2_session(b2_emulator, b2_session.bucket, key_id=key_id, key=key) as s:
        s.put_object("a", b"1")
        before = b2_emulator.authorize_count
        old = TOKENS.peek(s._cache_key)
        assert b2_emulator.expire_account_tokens() >= 1
        # every kind of call recovers: JSON API, download, HEAD (no body), upload URL
        assert s.list_objects().keys() == ["a"]
        assert b2_emulator.authorize_count == before + 1
        b2_emulator.expire_account_tokens()
        assert s.get_object("a").data == b"1"
        b2_emulator.expire_account_tokens()
        assert s.head_object("a").content_length == 1
        b2_emulator.expire_account_tokens()
        b2_emulator.expire_upload_tokens()
        s.put_object("b", b"2")
        assert b2_emulator.authorize_count == before + 4
        new = TOKENS.peek(s._cache_key)
        assert old is not None and new is not None and new.token != old.token


def test_reauthorizes_only_once(b2_emulator: B2Emulator, b2_session: B2Session) -> None:
    b2_session.list_objects().keys()
    before = b2_emulator.authorize_count
    b2_emulator.inject_failure("b2_list_file_names", 2, status=401, code="expired_auth_token")
    with pytest.raises(AuthenticationError) as info:
        b2_session.list_objects().keys()
    assert info.value.code == "expired_auth_token"
    assert b2_emulator.authorize_count == before + 1
    b2_emulator.inject_failure("b2_list_file_names", 1, status=401, code="bad_auth_token")
    assert b2_session.list_objects().keys() == []
    assert b2_emulator.authorize_count == before + 2


class Rendezvous(io.RawIOBase):
    """An upload body that, on its first read, waits until every other upload is sending too.

    urllib3 sends the request headers before it reads the body, so when all uploads are parked
    here, B2 (the emulator) has seen every one of them start: each upload token is in flight.
    """

    def __init__(self, data: bytes, barrier: threading.Barrier) -> None:
        self._inner = io.BytesIO(data)
        self._barrier: threading.Barrier | None = barrier

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._inner.tell()

    def seek(self, pos: int, whence: int = 0) -> int:
        return self._inner.seek(pos, whence)

    def readinto(self, buffer: Any) -> int:
        barrier, self._barrier = self._barrier, None
        if barrier is not None:
            barrier.wait(timeout=30)
        return self._inner.readinto(buffer)


def test_eight_threads_upload_at_once(
    b2_emulator: B2Emulator, b2_session: B2Session, fresh_key: tuple[str, str]
) -> None:
    key_id, key = fresh_key
    b2_emulator.reset_stats()
    start = threading.Barrier(8)
    sending = threading.Barrier(8)  # reused for every round of eight uploads
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with make_b2_session(b2_emulator, b2_session.bucket, key_id=key_id, key=key) as s:
                start.wait(timeout=30)
                for i in range(4):
                    s.put_object(f"t{n}/{i}", Rendezvous(f"{n}-{i}".encode(), sending))
        except BaseException as exc:  # pragma: no cover - reported below
            sending.abort()
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    stats = b2_emulator.stats()
    assert stats["authorize_count"] == 1  # many threads starting together authorize once
    assert stats["upload_token_concurrent_use"] is False
    assert stats["auth_token_limit_errors"] == 0
    assert stats["calls"]["b2_upload_file"] == 32
    assert stats["calls"]["b2_get_upload_url"] == 8  # one URL per upload in flight, reused
    keys = b2_session.list_objects().keys()
    assert len(keys) == 32
    assert b2_session.get_object("t7/3").data == b"7-3"


# -- upload retries ---------------------------------------------------------------------------


def _upload_pool(session: B2Session) -> tuple[str, ...]:
    return (*session._cache_key, "file", session.bucket_id)


@pytest.mark.parametrize(
    ("status", "code", "mode"),
    [
        (503, "service_unavailable", "error"),
        (500, "internal_error", "error"),
        (408, "request_timeout", "error"),
        (401, "expired_auth_token", "error"),
        (400, "auth_token_limit", "error"),
        (503, None, "drop"),
    ],
    ids=["503", "500", "408", "401", "auth_token_limit", "connection-dropped"],
)
def test_failed_upload_gets_a_new_url(
    b2_emulator: B2Emulator,
    b2_session: B2Session,
    status: int,
    code: str | None,
    mode: str,
) -> None:
    b2_session.put_object("warm", b"x")  # one URL now in the pool
    assert UPLOAD_URLS.size(_upload_pool(b2_session)) == 1
    b2_emulator.reset_stats()
    b2_emulator.inject_failure("b2_upload_file", 1, status=status, code=code, mode=mode)
    put = b2_session.put_object("k", b"payload")
    stats = b2_emulator.stats()["calls"]
    assert stats["b2_upload_file"] == 2
    assert stats["b2_get_upload_url"] == 1  # the failed URL was thrown away
    assert put.etag == sha1(b"payload")
    assert b2_session.get_object("k").data == b"payload"
    assert UPLOAD_URLS.size(_upload_pool(b2_session)) == 1  # only the good one went back


def test_streamed_upload_is_rewound_for_the_retry(
    b2_emulator: B2Emulator, b2_session: B2Session
) -> None:
    data = bytes(range(256)) * 100
    b2_emulator.inject_failure("b2_upload_file", 2, status=503)
    put = b2_session.put_object("stream", io.BytesIO(data))
    assert put.etag == sha1(data)
    assert b2_session.get_object("stream").data == data


def test_upload_read_timeout_gets_a_new_url(b2_emulator: B2Emulator, b2_session: B2Session) -> None:
    with B2Session(
        access_key_id=b2_emulator.key_id,
        access_key=b2_emulator.key,
        bucket=b2_session.bucket,
        endpoint_url=b2_emulator.url,
        read_timeout=0.2,
        retry=RetryPolicy(base_delay=0.0),
    ) as s:
        s.put_object("warm", b"x")
        b2_emulator.reset_stats()
        # the server holds the first upload longer than the client waits for an answer
        b2_emulator.inject_failure("b2_upload_file", 1, mode="delay", delay=0.6)
        s.put_object("slow", b"payload")
        stats = b2_emulator.stats()
        assert stats["calls"]["b2_upload_file"] == 2
        assert stats["calls"]["b2_get_upload_url"] == 1  # the timed-out URL was dropped
        assert stats["upload_token_concurrent_use"] is False
    assert b2_session.get_object("slow").data == b"payload"


def test_upload_429_honours_retry_after(b2_emulator: B2Emulator, b2_session: B2Session) -> None:
    slept: list[float] = []
    b2_session._sleep = slept.append
    b2_emulator.inject_failure("b2_upload_file", 1, status=429, retry_after=7)
    b2_session.put_object("k", b"v")
    assert slept == [7.0]
    assert b2_session.get_object("k").data == b"v"


def test_upload_gives_up_after_the_policy_attempts(
    b2_emulator: B2Emulator, b2_session: B2Session
) -> None:
    b2_emulator.inject_failure("b2_upload_file", 10, status=503)
    before = calls(b2_emulator, "b2_upload_file")
    with pytest.raises(ServerError) as info:
        b2_session.put_object("k", b"v")
    assert info.value.attempts == 5
    assert info.value.code == "service_unavailable"
    assert calls(b2_emulator, "b2_upload_file") == before + 5


def test_upload_bad_request_is_not_retried(b2_emulator: B2Emulator, b2_session: B2Session) -> None:
    b2_emulator.inject_failure("b2_upload_file", 1, status=400, code="bad_request", message="no")
    before = calls(b2_emulator, "b2_upload_file")
    with pytest.raises(ServiceError) as info:
        b2_session.put_object("k", b"v")
    assert type(info.value) is ServiceError
    assert calls(b2_emulator, "b2_upload_file") == before + 1


# -- errors and retries of API calls ----------------------------------------------------------


def test_api_call_429_honours_retry_after(
    b2_emulator: B2Emulator, b2_session: B2Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(b2_session.transport, "_sleep", slept.append)
    b2_session.list_objects().keys()
    b2_emulator.inject_failure("b2_list_file_names", 1, status=429, retry_after=3)
    assert b2_session.list_objects().keys() == []
    assert slept == [3.0]
    b2_emulator.inject_failure("b2_list_file_names", 5, status=429, retry_after=1)
    with pytest.raises(ThrottledError) as info:
        b2_session.list_objects().keys()
    assert info.value.retry_after == 1.0
    assert info.value.code == "too_many_requests"
    assert info.value.attempts == 5


def test_server_errors_are_retried(b2_emulator: B2Emulator, b2_session: B2Session) -> None:
    b2_session.put_object("k", b"v")
    b2_emulator.inject_failure("b2_list_file_names", 2, status=503)
    assert b2_session.list_objects().keys() == ["k"]
    b2_emulator.inject_failure("b2_download_file_by_name", 2, status=500)
    assert b2_session.get_object("k").data == b"v"
    b2_emulator.inject_failure("b2_list_file_names", 1, mode="drop")
    assert b2_session.list_objects().keys() == ["k"]


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "bad_request", ServiceError),
        (400, "file_not_present", NotFoundError),
        (401, "unauthorized", AccessDeniedError),
        (401, "missing_auth_token", AuthenticationError),
        (403, "cap_exceeded", AccessDeniedError),
        (403, "access_denied", AccessDeniedError),
        (404, "not_found", NotFoundError),
        (408, "request_timeout", ServiceError),
        (409, "conflict", ConflictError),
        (416, "range_not_satisfiable", InvalidRangeError),
        (429, "too_many_requests", ThrottledError),
        (500, "internal_error", ServerError),
        (501, "not_implemented", NotSupportedError),
        (503, "service_unavailable", ServerError),
    ],
)
def test_error_mapping(
    b2_emulator: B2Emulator, b2_session: B2Session, status: int, code: str, cls: type
) -> None:
    b2_session.list_objects().keys()  # authorized and bucket resolved
    with make_b2_session(b2_emulator, b2_session.bucket, retry=NO_RETRY) as s:
        s.list_objects().keys()
        b2_emulator.inject_failure("b2_list_file_names", 1, status=status, code=code, message="m!")
        with pytest.raises(cls) as info:
            s.list_objects().keys()
    exc = info.value
    assert type(exc) is cls
    assert (exc.status, exc.code, exc.provider) == (status, code, "b2")
    assert exc.operation == "b2_list_file_names"
    assert "m!" in str(exc) and code in str(exc)
    assert exc.retryable == (status in (408, 429, 500, 503))


@pytest.fixture
def raw_error() -> Iterator[Any]:
    def make(status: int, body: bytes, headers: dict[str, str] | None = None) -> Any:
        return urllib3.HTTPResponse(body=body, status=status, headers=headers or {}, reason="R")

    yield make


def test_error_mapping_non_json_and_head(b2_session: B2Session, raw_error: Any) -> None:
    exc = b2_session._error("b2_list_file_names", None, raw_error(502, b"<html>"), b"<html>")
    assert type(exc) is ServerError and exc.code == "non_json_response" and exc.retryable
    head = b2_session._error("b2_download_file_by_name", "k", raw_error(404, b""), b"")
    assert type(head) is NotFoundError and head.code == "not_found"
    throttled = b2_session._error(
        "b2_upload_file", "k", raw_error(503, b"{}", {"Retry-After": "2"}), b"{}"
    )
    assert type(throttled) is ServerError and throttled.retry_after == 2.0


def test_retry_policy_is_respected(b2_emulator: B2Emulator, b2_session: B2Session) -> None:
    with make_b2_session(
        b2_emulator, b2_session.bucket, retry=RetryPolicy(max_attempts=2, base_delay=0.0)
    ) as s:
        s.list_objects().keys()
        b2_emulator.inject_failure("b2_list_file_names", 2, status=503)
        with pytest.raises(ServerError) as info:
            s.list_objects().keys()
        assert info.value.attempts == 2
