"""The shared behaviour suite: what any BaseSession (S3 or B2) must do, run on every backend."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import pytest

from s3func import BaseSession, ConfigurationError, NotFoundError, ObjectResponse, Response

KEYS = ["plain.txt", "dir/with space.txt", "unicode/日本語.txt", "sym+bols%!=&'()*.bin"]


@pytest.mark.parametrize("key", KEYS)
def test_put_get_head_delete(any_session: BaseSession, key: str) -> None:
    body = b"payload for " + key.encode()
    put = any_session.put_object(
        key, body, metadata={"source": "suite", "unicode": "héllo"}, content_type="text/x-suite"
    )
    assert isinstance(put, Response) and put.etag
    head = any_session.head_object(key)
    assert head.content_length == len(body)
    assert head.content_type == "text/x-suite"
    assert head.metadata == {"source": "suite", "unicode": "héllo"}
    assert head.last_modified is not None and head.last_modified.tzinfo is not None
    got = any_session.get_object(key)
    assert isinstance(got, ObjectResponse)
    assert got.data == body and got.metadata == head.metadata
    assert any_session.exists(key)
    any_session.delete_object(key)
    assert not any_session.exists(key)
    with pytest.raises(NotFoundError):
        any_session.get_object(key)


def test_streams_and_ranges(any_session: BaseSession) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    any_session.put_object("stream.bin", io.BytesIO(data))
    with any_session.get_object("stream.bin") as resp:
        assert b"".join(resp) == data
    with any_session.get_object("stream.bin", offset=1000, length=24) as part:
        assert part.read() == data[1000:1024]
    assert any_session.get_object("stream.bin", offset=len(data) - 5).data == data[-5:]


def test_listing(any_session: BaseSession) -> None:
    keys = ["a/1", "a/2", "a/b/3", "c", "d/4"]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda k: any_session.put_object(k, k.encode()), keys))
    assert any_session.list_objects().keys() == keys
    assert [o["key"] for o in any_session.list_objects(prefix="a/").iter_objects()] == [
        "a/1",
        "a/2",
        "a/b/3",
    ]
    top = any_session.list_objects(delimiter="/")
    assert top.keys() == ["c"] and top.common_prefixes == ["a/", "d/"]
    assert any_session.list_objects(start_after="a/2").keys() == ["a/b/3", "c", "d/4"]
    assert any_session.list_objects(max_keys=2).keys() == ["a/1", "a/2"]
    item = next(iter(any_session.list_objects(prefix="c")))
    assert item["content_length"] == 1 and item.last_modified is not None


def test_pagination(any_session: BaseSession) -> None:
    keys = [f"p/{i:04d}" for i in range(1100)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: any_session.put_object(k, b""), keys))
    assert any_session.list_objects(prefix="p/").keys() == keys
    assert len(any_session.delete_objects(prefix="p/")) == 1100
    assert any_session.list_objects(prefix="p/").keys() == []


def test_delete_objects_rules(any_session: BaseSession) -> None:
    for key in ("x/1", "x/2", "y/1"):
        any_session.put_object(key, b"1")
    with pytest.raises(ConfigurationError):
        any_session.delete_objects(prefix="")
    any_session.delete_objects(["x/1"])
    any_session.delete_objects(prefix="x/")
    assert any_session.list_objects().keys() == ["y/1"]


def test_versions_listed_and_purged(any_session: BaseSession) -> None:
    any_session.put_object("v", b"1")
    any_session.put_object("v", b"2")
    any_session.put_object("v-other", b"keep")
    versions = [v for v in any_session.list_object_versions(prefix="v") if v.key == "v"]
    assert len([v for v in versions if not v.is_delete_marker]) in (1, 2)  # unversioned S3: 1
    any_session.delete_objects(["v"], all_versions=True)
    remaining = [v.key for v in any_session.list_object_versions(prefix="v")]
    assert remaining == ["v-other"]


def test_copy(any_session: BaseSession) -> None:
    any_session.put_object("src", b"copy me", metadata={"a": "1"}, content_type="text/plain")
    any_session.copy_object("src", "dst")
    head = any_session.head_object("dst")
    assert (head.metadata, head.content_type) == ({"a": "1"}, "text/plain")
    any_session.copy_object("src", "dst2", metadata={"b": "2"}, content_type="application/json")
    head2 = any_session.head_object("dst2")
    assert (head2.metadata, head2.content_type) == ({"b": "2"}, "application/json")
    assert any_session.get_object("dst2").data == b"copy me"


def test_invalid_input_rejected_before_requests(any_session: BaseSession) -> None:
    with pytest.raises(ConfigurationError):
        any_session.put_object("", b"x")
    with pytest.raises(ConfigurationError):
        any_session.put_object("k" * 1025, b"x")
    with pytest.raises(ConfigurationError):
        any_session.put_object("k", b"x", metadata={"bad name": "x"})
