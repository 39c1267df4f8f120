"""S3Session behaviour against a real SeaweedFS server (boto3 as the oracle)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import pickle
from typing import Any

import pytest
import urllib3

from s3func import (
    AccessDeniedError,
    AuthenticationError,
    ConfigurationError,
    ConnectError,
    InvalidRangeError,
    NotFoundError,
    PreconditionFailedError,
    S3FuncError,
    S3Session,
)


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


# -- put / get / head -----------------------------------------------------------------------


def test_seed_flow(s3_session: S3Session) -> None:
    s3_session.put_object("hello.txt", b"Hello, S3!")
    resp = s3_session.get_object("hello.txt")
    assert resp.data.decode() == "Hello, S3!"
    s3_session.put_object(
        "data.csv", b"col1,col2\n1,2", metadata={"processed": "false", "source": "sensor-1"}
    )
    head = s3_session.head_object("data.csv")
    assert head.metadata["processed"] == "false"
    assert head.metadata == {"processed": "false", "source": "sensor-1"}
    keys = [
        (o["key"], o["content_length"]) for o in s3_session.list_objects(prefix="").iter_objects()
    ]
    assert keys == [("data.csv", 13), ("hello.txt", 10)]


@pytest.mark.parametrize(
    "make_body",
    [
        lambda d: d,
        lambda d: bytearray(d),
        lambda d: io.BytesIO(d),
        lambda d: NonSeekable(d),
        lambda d: iter([d[:5], d[5:]]),
    ],
    ids=["bytes", "bytearray", "seekable-file", "non-seekable-file", "iterable"],
)
def test_put_body_kinds(s3_session: S3Session, make_body: Any) -> None:
    data = bytes(range(256)) * 40
    resp = s3_session.put_object("body", make_body(data))
    assert resp.etag
    assert s3_session.get_object("body").data == data


def test_put_from_file_position(s3_session: S3Session, tmp_path: Any) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"HEADER" + b"payload")
    with path.open("rb") as f:
        f.seek(6)
        s3_session.put_object("tail", f)
    assert s3_session.get_object("tail").data == b"payload"


def test_response_fields(s3_session: S3Session) -> None:
    put = s3_session.put_object(
        "f.json", b"{}", content_type="application/json", metadata={"etag": "user-value"}
    )
    head = s3_session.head_object("f.json")
    assert head.etag == put.etag == hashlib.md5(b"{}").hexdigest()
    assert head.content_length == 2
    assert head.content_type == "application/json"
    assert head.last_modified is not None and head.last_modified.tzinfo is not None
    assert abs(head.last_modified - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=5)
    # a user metadata name that looks like a system field never collides with it
    assert head.metadata == {"etag": "user-value"}
    assert head.status == 200 and head.headers["content-length"] == "2"
    get = s3_session.get_object("f.json")
    assert (get.etag, get.content_type, get.metadata) == (
        head.etag,
        head.content_type,
        head.metadata,
    )
    assert get.data == b"{}"


def test_get_ranges(s3_session: S3Session) -> None:
    s3_session.put_object("r", b"0123456789")
    with s3_session.get_object("r", offset=2, length=3) as r:
        assert r.status == 206 and r.read() == b"234"
    assert s3_session.get_object("r", offset=7).data == b"789"
    assert s3_session.get_object("r", offset=5, stream=False).data == b"56789"
    with pytest.raises(InvalidRangeError):
        s3_session.get_object("r", offset=100)
    with pytest.raises(ConfigurationError):
        s3_session.get_object("r", offset=-1)


def test_stream_and_preload(s3_session: S3Session) -> None:
    data = b"x" * 300_000
    s3_session.put_object("s", data)
    with s3_session.get_object("s") as stream:
        assert stream.readable()
        first = stream.read(1000)
        rest = b"".join(stream)
    assert first + rest == data
    preloaded = s3_session.get_object("s", stream=False)
    assert preloaded.data == data and preloaded.read(3) == b"xxx"


def test_not_found_is_typed(s3_session: S3Session) -> None:
    for call in (s3_session.head_object, s3_session.get_object):
        with pytest.raises(NotFoundError) as info:
            call("missing/key")
        exc = info.value
        assert isinstance(exc, FileNotFoundError)
        assert exc.status == 404 and exc.key == "missing/key" and exc.bucket == s3_session.bucket
        assert exc.code == "NoSuchKey" and str(exc)


def test_missing_bucket(seaweedfs: Any) -> None:
    session = seaweedfs.session(bucket="no-such-bucket-here")
    with pytest.raises(NotFoundError) as info:
        session.get_object("k")
    assert info.value.code == "NoSuchBucket"


# -- metadata ------------------------------------------------------------------------------


def test_metadata_round_trip_and_limits(s3_session: S3Session, boto3_client: Any) -> None:
    meta = {"Mixed-Case": "Value", "unicode": "héllo wörld ✓", "spaces": " a  b "}
    s3_session.put_object("m", b"1", metadata=meta)
    assert s3_session.head_object("m").metadata == {
        "mixed-case": "Value",
        "unicode": "héllo wörld ✓",
        "spaces": " a  b ",
    }
    with pytest.raises(ConfigurationError):
        s3_session.put_object("m2", b"1", metadata={"big": "x" * 2100})
    with pytest.raises(NotFoundError):
        s3_session.head_object("m2")


# -- delete --------------------------------------------------------------------------------


def test_delete_object_and_conditions(s3_session: S3Session) -> None:
    put = s3_session.put_object("d", b"1")
    with pytest.raises(PreconditionFailedError):
        s3_session.delete_object("d", if_match="0" * 32)
    assert s3_session.exists("d")
    s3_session.delete_object("d", if_match=put.etag)
    assert not s3_session.exists("d")


def test_delete_objects_by_keys_and_prefix(s3_session: S3Session) -> None:
    for key in ("a/1", "a/2", "a/3", "b/1"):
        s3_session.put_object(key, b"x")
    done = s3_session.delete_objects(["a/1", "a/2"])
    assert sorted(i.key for i in done) == ["a/1", "a/2"]
    assert s3_session.list_objects().keys() == ["a/3", "b/1"]
    s3_session.delete_objects(prefix="a/")
    assert s3_session.list_objects().keys() == ["b/1"]


def test_empty_prefix_guard(s3_session: S3Session) -> None:
    s3_session.put_object("keep", b"x")
    with pytest.raises(ConfigurationError):
        s3_session.delete_objects(prefix="")
    with pytest.raises(ConfigurationError):
        s3_session.delete_objects()
    assert s3_session.exists("keep")
    s3_session.delete_objects(prefix="", allow_empty_prefix=True)
    assert not s3_session.exists("keep")


def test_many_keys_batches_and_max_keys(s3_session: S3Session) -> None:
    keys = [f"k/{i:05d}" for i in range(1205)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3_session.put_object(k, b""), keys))
    listing = s3_session.list_objects(prefix="k/")
    assert listing.keys() == keys  # two pages
    assert [o.key for o in s3_session.list_objects(prefix="k/", max_keys=1003)] == keys[:1003]
    assert [o.key for o in s3_session.list_objects(prefix="k/", max_keys=5)] == keys[:5]
    assert s3_session.list_objects(prefix="k/", start_after="k/01200").keys() == keys[1201:]
    deleted = s3_session.delete_objects(prefix="k/")
    assert len(deleted) == 1205
    assert s3_session.list_objects(prefix="k/").keys() == []


def test_versions_and_purge(s3_session: S3Session) -> None:
    s3_session.put_bucket_versioning(True)
    assert s3_session.get_bucket_versioning() == "Enabled"
    v1 = s3_session.put_object("v", b"one").version_id
    v2 = s3_session.put_object("v", b"two").version_id
    assert v1 and v2 and v1 != v2
    assert s3_session.get_object("v", version_id=v1).data == b"one"
    s3_session.delete_object("v")
    with pytest.raises(NotFoundError):
        s3_session.head_object("v")
    versions = list(s3_session.list_object_versions(prefix="v"))
    markers = [v for v in versions if v.is_delete_marker]
    assert len(markers) == 1 and markers[0].is_latest
    assert {v.version_id for v in versions if not v.is_delete_marker} == {v1, v2}
    s3_session.put_object("v2", b"x")
    s3_session.delete_objects(["v"], all_versions=True)
    assert [v.key for v in s3_session.list_object_versions(prefix="v")] == ["v2"]
    s3_session.put_bucket_versioning(False)
    assert s3_session.get_bucket_versioning() == "Suspended"


# -- listing -------------------------------------------------------------------------------


def test_delimiter_and_common_prefixes(s3_session: S3Session) -> None:
    for key in ("top.txt", "dir1/a", "dir1/b", "dir2/c", "dir2/sub/d"):
        s3_session.put_object(key, b"x")
    result = s3_session.list_objects(delimiter="/")
    assert [o.key for o in result.iter_objects()] == ["top.txt"]
    assert result.common_prefixes == ["dir1/", "dir2/"]
    sub = s3_session.list_objects(prefix="dir2/", delimiter="/")
    assert sub.keys() == ["dir2/c"] and sub.common_prefixes == ["dir2/sub/"]


def test_list_items_have_typed_fields(s3_session: S3Session) -> None:
    s3_session.put_object("one", b"abc")
    (item,) = list(s3_session.list_objects())
    assert item.key == "one" and item.content_length == 3
    assert item.etag == hashlib.md5(b"abc").hexdigest()
    assert item.last_modified is not None and item.last_modified.tzinfo is not None


# -- copy ----------------------------------------------------------------------------------


def test_copy_object(s3_session: S3Session) -> None:
    s3_session.put_object("src", b"data", metadata={"a": "1"}, content_type="text/plain")
    s3_session.copy_object("src", "copy")
    head = s3_session.head_object("copy")
    assert (head.metadata, head.content_type) == ({"a": "1"}, "text/plain")
    s3_session.copy_object("src", "replaced", metadata={"b": "2"})
    assert s3_session.head_object("replaced").metadata == {"b": "2"}
    s3_session.copy_object("src", "typed", content_type="application/json")
    typed = s3_session.head_object("typed")
    assert (typed.metadata, typed.content_type) == ({"a": "1"}, "application/json")
    assert s3_session.get_object("typed").data == b"data"
    with pytest.raises(NotFoundError):
        s3_session.copy_object("nope", "x")


# -- conditional requests ------------------------------------------------------------------


def test_conditional_requests(s3_session: S3Session) -> None:
    first = s3_session.put_object("c", b"1", if_none_match="*")
    with pytest.raises(PreconditionFailedError) as info:
        s3_session.put_object("c", b"2", if_none_match="*")
    assert info.value.status == 412
    with pytest.raises(PreconditionFailedError):
        s3_session.put_object("c", b"2", if_match="0" * 32)
    second = s3_session.put_object("c", b"2", if_match=first.etag)
    assert s3_session.get_object("c", if_match=second.etag).data == b"2"
    with pytest.raises(PreconditionFailedError):
        s3_session.get_object("c", if_match=first.etag)
    with pytest.raises(PreconditionFailedError):  # 304 Not Modified
        s3_session.get_object("c", if_none_match=second.etag)
    assert s3_session.head_object("c", if_match=second.etag).etag == second.etag
    with pytest.raises(PreconditionFailedError):
        s3_session.head_object("c", if_none_match=second.etag)


# -- buckets -------------------------------------------------------------------------------


def test_bucket_lifecycle(seaweedfs: Any) -> None:
    session = seaweedfs.session(bucket="lifecycle-bucket")
    session.create_bucket()
    assert "lifecycle-bucket" in session.list_buckets()
    session.put_object("x", b"1")
    session.delete_objects(["x"])
    session.delete_bucket()
    assert "lifecycle-bucket" not in session.list_buckets()


def test_object_lock_configuration(seaweedfs: Any) -> None:
    session = seaweedfs.session(bucket="locked-bucket")
    session.create_bucket(object_lock=True)
    session.put_object_lock_configuration(mode="GOVERNANCE", days=1)
    config = session.get_object_lock_configuration()
    assert config == {"enabled": True, "mode": "GOVERNANCE", "days": 1, "years": None}
    with pytest.raises(ConfigurationError):
        session.put_object_lock_configuration(mode="GOVERNANCE")


# -- presigned URLs ------------------------------------------------------------------------


def test_presigned_get_and_put(s3_session: S3Session) -> None:
    http = urllib3.PoolManager()
    put_url = s3_session.presigned_url("pre sign/ü.txt", method="PUT", expires=60)
    resp = http.request("PUT", put_url, body=b"via presigned PUT")
    assert resp.status == 200, resp.data
    get_url = s3_session.presigned_url("pre sign/ü.txt", expires=60)
    resp = http.request("GET", get_url)
    assert resp.status == 200 and resp.data == b"via presigned PUT"
    tampered = get_url.replace("X-Amz-Expires=60", "X-Amz-Expires=61")
    assert http.request("GET", tampered).status == 403


# -- errors and credentials ----------------------------------------------------------------


def test_wrong_secret_is_authentication_error(seaweedfs: Any) -> None:
    secret = "totally-wrong-secret-value"
    session = S3Session(
        access_key_id=seaweedfs.access_key_id,
        access_key=secret,
        bucket=seaweedfs.bucket,
        endpoint_url=seaweedfs.endpoint_url,
    )
    with pytest.raises(AuthenticationError) as info:
        session.put_object("k", b"x")
    exc = info.value
    assert exc.code == "SignatureDoesNotMatch" and exc.status == 403
    for text in (str(exc), repr(exc), str(pickle.loads(pickle.dumps(exc))), str(exc.headers)):
        assert secret not in text and seaweedfs.access_key not in text


def test_unknown_key_id(seaweedfs: Any) -> None:
    session = S3Session(
        access_key_id="NOSUCHKEY",
        access_key="x",
        bucket=seaweedfs.bucket,
        endpoint_url=seaweedfs.endpoint_url,
    )
    with pytest.raises(AuthenticationError) as info:
        session.get_object("k")
    assert info.value.status == 403 and info.value.code == "InvalidAccessKeyId"
    with pytest.raises(AccessDeniedError) as head:  # HEAD has no body to say why
        session.head_object("k")
    assert "HEAD" in str(head.value) and "403" in str(head.value)


def test_connection_refused_is_typed() -> None:
    session = S3Session(
        access_key_id="a",
        access_key="b",
        bucket="b",
        endpoint_url="http://127.0.0.1:9",
        retry=__import__("s3func").RetryPolicy(max_attempts=2, base_delay=0.0),
    )
    with pytest.raises(ConnectError) as info:
        session.get_object("k")
    assert info.value.attempts == 2
    assert isinstance(info.value, S3FuncError)
    assert not isinstance(info.value, urllib3.exceptions.HTTPError)


def test_credentials_from_environment(
    seaweedfs: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.access_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", seaweedfs.endpoint_url)
    monkeypatch.setenv("AWS_REGION", seaweedfs.region)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    session = S3Session(bucket=seaweedfs.bucket)
    assert session.credentials_source == "environment"
    session.put_object("env", b"ok")
    assert session.get_object("env").data == b"ok"


def test_credentials_from_profile(
    seaweedfs: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    creds = tmp_path / "credentials"
    creds.write_text(
        f"[work]\naws_access_key_id = {seaweedfs.access_key_id}\n"
        f"aws_secret_access_key = {seaweedfs.access_key}\n"
    )
    config = tmp_path / "config"
    config.write_text(
        f"[profile work]\nregion = us-east-1\nendpoint_url = {seaweedfs.endpoint_url}\n"
    )
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "work")
    session = S3Session(bucket=seaweedfs.bucket)
    session.put_object("profile", b"ok")
    assert session.get_object("profile").data == b"ok"
    # explicit arguments always win over the profile
    with pytest.raises(AuthenticationError):
        S3Session(
            access_key_id=seaweedfs.access_key_id, access_key="wrong", bucket=seaweedfs.bucket
        ).get_object("profile")


# -- boto3 as the oracle -------------------------------------------------------------------


def test_boto3_reads_what_we_write(s3_session: S3Session, boto3_client: Any) -> None:
    data = bytes(range(256)) * 100
    s3_session.put_object(
        "oracle/ours.bin",
        data,
        metadata={"origin": "s3func", "Mixed": "Case"},
        content_type="application/x-test",
    )
    got = boto3_client.get_object(Bucket=s3_session.bucket, Key="oracle/ours.bin")
    assert got["Body"].read() == data
    assert got["Metadata"] == {"origin": "s3func", "mixed": "Case"}
    assert got["ContentType"] == "application/x-test"


def test_we_read_what_boto3_writes(s3_session: S3Session, boto3_client: Any) -> None:
    boto3_client.put_object(
        Bucket=s3_session.bucket,
        Key="oracle/theirs.txt",
        Body=b"from boto3",
        Metadata={"writer": "boto3"},
        ContentType="text/x-boto",
    )
    resp = s3_session.get_object("oracle/theirs.txt")
    assert resp.data == b"from boto3"
    assert resp.metadata == {"writer": "boto3"} and resp.content_type == "text/x-boto"
    listed = s3_session.list_objects(prefix="oracle/").keys()
    assert listed == ["oracle/theirs.txt"]


# -- temporary credentials from a credential_process are refreshed --------------------------


def _process_profile(
    seaweedfs: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, expiration: str
) -> Any:
    """A profile whose credential_process prints the server's keys and counts its runs.

    The helper fails (exit 3) once the file ``fail`` exists in ``tmp_path``.
    """
    import shlex
    import sys

    runs = tmp_path / "runs"
    helper = tmp_path / "helper.py"
    helper.write_text(
        "import json, pathlib, sys\n"
        f"base = pathlib.Path({str(tmp_path)!r})\n"
        "if (base / 'fail').exists():\n"
        "    sys.exit(3)\n"
        "with open(base / 'runs', 'a') as f:\n"
        "    f.write('x')\n"
        f"print(json.dumps({{'Version': 1, 'AccessKeyId': {seaweedfs.access_key_id!r},\n"
        f"    'SecretAccessKey': {seaweedfs.access_key!r}, 'Expiration': {expiration!r}}}))\n"
    )
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(helper))}"
    config = tmp_path / "config"
    config.write_text(
        f"[profile temp]\nregion = {seaweedfs.region}\nendpoint_url = {seaweedfs.endpoint_url}\n"
        f"credential_process = {command}\n"
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    return runs


def test_long_lived_process_credentials_are_fetched_once(
    seaweedfs: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    runs = _process_profile(seaweedfs, monkeypatch, tmp_path, "2099-01-01T00:00:00Z")
    session = S3Session(bucket=seaweedfs.bucket, profile="temp")
    for i in range(3):
        session.put_object(f"temp/{i}", b"x")
    assert runs.read_text() == "x"


def test_expiring_process_credentials_are_fetched_again(
    seaweedfs: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, caplog: Any
) -> None:
    # Credentials that are already expired when they arrive: every request fetches again
    # (each run prints the same past Expiration), and no request is signed with stale ones.
    runs = _process_profile(seaweedfs, monkeypatch, tmp_path, "2001-01-01T00:00:00Z")
    session = S3Session(bucket=seaweedfs.bucket, profile="temp")
    assert runs.read_text() == "x"
    with caplog.at_level("INFO", logger="s3func"):
        session.put_object("temp/a", b"a")
        assert session.get_object("temp/a").data == b"a"
    assert runs.read_text() == "xxx"
    assert "refreshed the temporary credentials" in caplog.text
    assert seaweedfs.access_key not in caplog.text
    # Expired and the process now fails: the failure is raised, typed, without secrets.
    (tmp_path / "fail").write_text("")
    with pytest.raises(ConfigurationError, match="credential_process") as info:
        session.head_object("temp/a")
    assert seaweedfs.access_key not in str(info.value)


def test_failed_refresh_keeps_valid_credentials(
    seaweedfs: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, caplog: Any
) -> None:
    import datetime as dt

    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=120)  # inside the margin
    runs = _process_profile(seaweedfs, monkeypatch, tmp_path, soon.isoformat())
    session = S3Session(bucket=seaweedfs.bucket, profile="temp")
    (tmp_path / "fail").write_text("")
    session._refresh_at = 0.0  # the refresh is due now (normally up to 30 s after creation)
    with caplog.at_level("WARNING", logger="s3func"):
        session.put_object("temp/b", b"b")  # signed with the still-valid credentials
    assert "could not refresh the temporary credentials" in caplog.text
    assert runs.read_text() == "x"
    assert session._refresh_at is not None and session._refresh_at > 0.0  # retried later
