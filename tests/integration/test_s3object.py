"""S3Object against real servers: SeaweedFS and the B2 emulator (``any_session``), moto for keys
SeaweedFS refuses to store (``..`` and ``.`` segments, ``//``), boto3 as the "someone else"
writer of multipart objects."""

from __future__ import annotations

import collections
import hashlib
import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3func import Response, S3FuncError
from s3func.errors import HashMismatchError, S3ObjectError, SyncError
from s3func.sync import SHA256_METADATA, S3Object, SyncPlan, SyncProgress

_MANY = {"_get_many": "get_object", "_put_many": "put_object"}
_OPS = {
    "get_object",
    "head_object",
    "put_object",
    "list_objects",
    "delete_objects",
    "delete_object",
    "upload_file",
    "download_file",
}


class Recording:
    """Wraps a session and counts the operations S3Object calls, and on which threads."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: collections.Counter[str] = collections.Counter()
        self.threads: set[str] = set()
        self.many_threads: set[str] = set()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in _MANY:  # many transfers in one call: count each as the single operation

            def many(*args: Any, **kwargs: Any) -> Iterator[Any]:
                for outcome in attr(*args, **kwargs):
                    with self._lock:
                        self.calls[_MANY[name]] += 1
                        self.many_threads.add(threading.current_thread().name)
                    yield outcome

            return many
        if name not in _OPS:
            return attr

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls[name] += 1
                self.threads.add(threading.current_thread().name)
            return attr(*args, **kwargs)

        return wrapper

    def reset(self) -> None:
        self.calls.clear()
        self.threads.clear()
        self.many_threads.clear()


def scheme(session: Any) -> str:
    return "b2" if getattr(session, "provider", "s3") == "b2" else "s3"


def uri(session: Any, key: str) -> str:
    return f"{scheme(session)}://{session.bucket}/{key}"


def make_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def read_tree(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out


def remote_tree(session: Any, prefix: str) -> dict[str, bytes]:
    out = {}
    for info in session.list_objects(prefix=prefix).iter_objects():
        with session.get_object(info.key) as body:
            out[info.key[len(prefix) :]] = body.read()
    return out


def tree(n: int, size: int = 100) -> dict[str, bytes]:
    return {f"d{i % 3}/f{i:03d}.bin": os.urandom(size) for i in range(n)}


@pytest.fixture(autouse=True)
def cache_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(path))
    return path


# -- 1. construction, local paths ----------------------------------------------------------


def test_single_object_roundtrip(any_session: Any, tmp_path: Path) -> None:
    src = tmp_path / "src.txt"
    src.write_bytes(b"hello object")
    target = uri(any_session, "dir/file.txt")
    obj = S3Object(target, local_path=src, session=any_session)
    assert obj.upload() == target
    head = any_session.head_object("dir/file.txt")
    assert head.metadata[SHA256_METADATA] == hashlib.sha256(b"hello object").hexdigest()

    other = S3Object(target, local_path=tmp_path / "copy.txt", session=any_session)
    assert other.download() == str(tmp_path / "copy.txt")
    assert (tmp_path / "copy.txt").read_bytes() == b"hello object"


def test_default_local_path_is_the_cache(any_session: Any, cache_home: Path) -> None:
    any_session.put_object("cached/k.txt", b"data")
    obj = S3Object(uri(any_session, "cached/k.txt"), session=any_session)
    path = obj.download()
    assert path == obj.local_path == os.fspath(obj)
    assert path.startswith(str(cache_home / "s3func") + os.sep)
    assert path.endswith(os.path.join(any_session.bucket, "cached", "k.txt"))
    with open(obj, "rb") as f:  # __fspath__
        assert f.read() == b"data"
    folder = S3Object(uri(any_session, "cached/"), session=any_session)
    assert folder.download() == os.path.dirname(path)


def test_session_built_from_environment(
    seaweedfs: Any, s3_session: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.access_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", seaweedfs.endpoint_url)
    s3_session.put_object("env/k", b"from env")
    with S3Object(f"s3://{s3_session.bucket}/env/k", region_name=seaweedfs.region) as obj:
        assert obj.session is not s3_session
        assert Path(obj.download()).read_bytes() == b"from env"
        assert "127.0.0.1" in obj.local_path  # namespaced by endpoint


def test_b2_session_built_from_environment(
    b2_emulator: Any, b2_session: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("B2_APPLICATION_KEY_ID", b2_emulator.key_id)
    monkeypatch.setenv("B2_APPLICATION_KEY", b2_emulator.key)
    b2_session.put_object("env/k", b"b2 from env")
    target = f"b2://{b2_session.bucket}/env/k"
    with S3Object(target, local_path=tmp_path / "k", endpoint_url=b2_emulator.url) as obj:
        assert obj.session is not b2_session and obj.session.bucket == b2_session.bucket
        assert Path(obj.download()).read_bytes() == b"b2 from env"


# -- 2. change detection -------------------------------------------------------------------


def test_prefix_upload_download_skip_unchanged(any_session: Any, tmp_path: Path) -> None:
    files = tree(20)
    make_tree(tmp_path / "up", files)
    rec = Recording(any_session)
    up = S3Object(uri(any_session, "tree"), local_path=tmp_path / "up", session=rec)
    assert up.upload() == uri(any_session, "tree")
    assert remote_tree(any_session, "tree/") == files
    assert up.last_result is not None and len(up.last_result.transferred) == 20

    rec.reset()
    up.upload()
    assert up.last_result.transferred == [] and len(up.last_result.plan.skipped) == 20
    assert rec.calls["put_object"] == 0

    down = S3Object(uri(any_session, "tree"), local_path=tmp_path / "down", session=rec)
    assert down.download() == str(tmp_path / "down")
    assert read_tree(tmp_path / "down") == files
    rec.reset()
    down.download()
    assert down.last_result is not None and down.last_result.transferred == []
    assert rec.calls["get_object"] == 0 and rec.calls["put_object"] == 0


def test_same_size_changes_are_detected(any_session: Any, tmp_path: Path) -> None:
    make_tree(tmp_path / "a", {"x.txt": b"aaaa", "y.txt": b"bbbb"})
    up = S3Object(uri(any_session, "ss/"), local_path=tmp_path / "a", session=any_session)
    up.upload()
    down = S3Object(uri(any_session, "ss/"), local_path=tmp_path / "b", session=any_session)
    down.download()

    # Local edit with the same size (and even the same mtime): detected by content.
    path = tmp_path / "a" / "x.txt"
    st = path.stat()
    path.write_bytes(b"AAAA")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    up.upload()
    assert up.last_result is not None and up.last_result.transferred == ["x.txt"]

    # Remote overwrite by someone else, same size, no s3func metadata.
    any_session.put_object("ss/y.txt", b"BBBB")
    down.download()
    assert down.last_result is not None
    assert sorted(down.last_result.transferred) == ["x.txt", "y.txt"]
    assert read_tree(tmp_path / "b") == {"x.txt": b"AAAA", "y.txt": b"BBBB"}


def test_single_part_objects_by_others_compare_by_etag(any_session: Any, tmp_path: Path) -> None:
    any_session.put_object("others/a.txt", b"same content")
    local = tmp_path / "a.txt"
    local.write_bytes(b"same content")  # no state recorded yet
    rec = Recording(any_session)
    obj = S3Object(uri(any_session, "others/a.txt"), local_path=local, session=rec)
    obj.download()
    assert obj.last_result is not None and obj.last_result.transferred == []
    assert rec.calls["get_object"] == 0
    obj.upload()
    assert obj.last_result.transferred == [] and rec.calls["put_object"] == 0


def _multipart(boto: Any, bucket: str, key: str, data: bytes, metadata: dict[str, str]) -> str:
    mpu = boto.create_multipart_upload(Bucket=bucket, Key=key, Metadata=metadata)
    part = 5 * 1024 * 1024
    parts = []
    for n, start in enumerate(range(0, len(data), part), 1):
        r = boto.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=mpu["UploadId"],
            PartNumber=n,
            Body=data[start : start + part],
        )
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    done = boto.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=mpu["UploadId"], MultipartUpload={"Parts": parts}
    )
    etag: str = done["ETag"].strip('"')
    assert etag.endswith("-2")
    return etag


def test_multipart_etag_is_never_taken_for_md5(
    s3_session: Any, boto3_client: Any, tmp_path: Path
) -> None:
    data = os.urandom(5 * 1024 * 1024) + b"tail bytes"
    _multipart(boto3_client, s3_session.bucket, "mp/plain.bin", data, {})
    target = f"s3://{s3_session.bucket}/mp/plain.bin"

    # No stored hash, multipart ETag: the download verifies the size only, never an "MD5".
    obj = S3Object(target, local_path=tmp_path / "one.bin", session=s3_session)
    obj.download(check_hash=True)
    assert (tmp_path / "one.bin").read_bytes() == data
    obj.download()  # the state file remembers the hash of what we downloaded
    assert obj.last_result is not None and obj.last_result.transferred == []

    # An identical local copy without state cannot be proven equal: it is fetched again.
    (tmp_path / "two.bin").write_bytes(data)
    obj2 = S3Object(target, local_path=tmp_path / "two.bin", session=s3_session)
    obj2.download()
    assert obj2.last_result is not None and obj2.last_result.transferred == [""]


def test_multipart_objects_compare_by_stored_hash(
    s3_session: Any, boto3_client: Any, tmp_path: Path
) -> None:
    data = os.urandom(5 * 1024 * 1024) + b"tail"
    sha = hashlib.sha256(data).hexdigest()
    _multipart(boto3_client, s3_session.bucket, "mp/hashed.bin", data, {SHA256_METADATA: sha})
    target = f"s3://{s3_session.bucket}/mp/hashed.bin"

    (tmp_path / "same.bin").write_bytes(data)
    rec = Recording(s3_session)
    obj = S3Object(target, local_path=tmp_path / "same.bin", session=rec)
    obj.download()
    assert obj.last_result is not None and obj.last_result.plan.skipped[0].reason == "same content"
    assert rec.calls["get_object"] == 0
    obj.upload()
    assert obj.last_result.transferred == [] and rec.calls["put_object"] == 0

    changed = bytearray(data)
    changed[100] ^= 0xFF
    (tmp_path / "changed.bin").write_bytes(bytes(changed))
    obj = S3Object(target, local_path=tmp_path / "changed.bin", session=s3_session)
    obj.download()
    assert obj.last_result is not None and obj.last_result.transferred == [""]
    assert (tmp_path / "changed.bin").read_bytes() == data

    # A multipart object whose stored hash is wrong is corrupt: refused, nothing left behind.
    _multipart(boto3_client, s3_session.bucket, "mp/bad.bin", data, {SHA256_METADATA: "0" * 64})
    bad = S3Object(
        f"s3://{s3_session.bucket}/mp/bad.bin",
        local_path=tmp_path / "bad.bin",
        session=s3_session,
    )
    with pytest.raises(HashMismatchError):
        bad.download()
    assert not (tmp_path / "bad.bin").exists()
    assert os.listdir(tmp_path) == sorted(os.listdir(tmp_path))  # (no temp files: below)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".s3func-tmp-")]


def test_progress_is_one_serialised_report(any_session: Any, tmp_path: Path) -> None:
    files = tree(30, size=1000)
    make_tree(tmp_path / "p", files)
    seen: list[SyncProgress] = []
    inside = threading.Lock()

    def progress(p: SyncProgress) -> None:
        assert inside.acquire(blocking=False), "progress callback entered twice at once"
        try:
            seen.append(p)
        finally:
            inside.release()

    rec = Recording(any_session)
    obj = S3Object(uri(any_session, "prog/"), local_path=tmp_path / "p", session=rec)
    obj.upload(progress=progress)
    assert len(seen) == 30
    assert [p.files_done for p in seen] == list(range(1, 31))
    assert all(p.files_total == 30 and p.bytes_total == 30_000 for p in seen)
    assert seen[-1].bytes_done == 30_000
    assert rec.calls["put_object"] == 30  # (in parallel: test_small_files_overlap below)

    seen.clear()
    rec.reset()
    down = S3Object(uri(any_session, "prog/"), local_path=tmp_path / "q", session=rec)
    down.download(progress=progress)
    assert seen[-1] == SyncProgress(30, 30, 30_000, 30_000)
    assert rec.calls["get_object"] == 30


def test_progress_true_uses_tqdm(
    any_session: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tqdm")
    make_tree(tmp_path / "t", tree(3))
    S3Object(uri(any_session, "tq/"), local_path=tmp_path / "t", session=any_session).upload(
        progress=True
    )
    assert "3/3 files" in capsys.readouterr().err


# -- 2. mirroring, excludes, empty sources, dry runs ---------------------------------------


def test_download_mirror(any_session: Any, tmp_path: Path) -> None:
    remote = {"a": b"1", "sub/b": b"2"}
    for rel, data in remote.items():
        any_session.put_object(f"m/{rel}", data)
    make_tree(
        tmp_path / "loc",
        {"extra": b"x", "sub/extra": b"y", "gone/deep/z": b"z", "keep.tmp": b"t", "a": b"old"},
    )
    obj = S3Object(uri(any_session, "m/"), local_path=tmp_path / "loc", session=any_session)
    obj.download()  # no mirror: extras stay
    assert read_tree(tmp_path / "loc")["extra"] == b"x"
    obj.download(force_sync=True, exclude_pattern=r"\.tmp$")
    assert read_tree(tmp_path / "loc") == {**remote, "keep.tmp": b"t"}
    assert not (tmp_path / "loc" / "gone").exists()  # emptied directories are pruned


def test_delete_extras_without_forcing_transfers(any_session: Any, tmp_path: Path) -> None:
    any_session.put_object("de/a", b"1")
    obj = S3Object(uri(any_session, "de/"), local_path=tmp_path / "l", session=any_session)
    obj.download()
    (tmp_path / "l" / "extra").write_bytes(b"x")
    obj.download(delete_extras=True)
    assert obj.last_result is not None
    assert obj.last_result.transferred == [] and obj.last_result.deleted == ["extra"]


def test_upload_mirror(any_session: Any, tmp_path: Path) -> None:
    for key in ("um/old", "um/dir/old", "um/keep.log", "um/a"):
        any_session.put_object(key, b"remote")
    make_tree(tmp_path / "u", {"a": b"local a", "new/b": b"b", "skip.log": b"local log"})
    obj = S3Object(uri(any_session, "um"), local_path=tmp_path / "u", session=any_session)
    obj.upload(exclude_pattern=r"\.log$", force_sync=True)
    assert remote_tree(any_session, "um/") == {
        "a": b"local a",
        "new/b": b"b",
        "keep.log": b"remote",
    }


def test_mirror_never_deletes_because_the_source_is_empty(any_session: Any, tmp_path: Path) -> None:
    make_tree(tmp_path / "l", {"a": b"1", "b/c": b"2"})
    obj = S3Object(uri(any_session, "empty/"), local_path=tmp_path / "l", session=any_session)
    with pytest.raises(SyncError, match="allow_empty_source"):
        obj.download(force_sync=True)
    assert read_tree(tmp_path / "l") == {"a": b"1", "b/c": b"2"}

    # A missing object/prefix (no trailing slash) is an error before anything is planned.
    missing = S3Object(uri(any_session, "nothing"), local_path=tmp_path / "l", session=any_session)
    with pytest.raises(S3ObjectError):
        missing.download(force_sync=True)
    assert read_tree(tmp_path / "l") == {"a": b"1", "b/c": b"2"}

    # Everything excluded counts as empty too.
    any_session.put_object("empty/x.tmp", b"x")
    with pytest.raises(SyncError):
        obj.download(force_sync=True, exclude_pattern=r"\.tmp$")
    assert read_tree(tmp_path / "l") == {"a": b"1", "b/c": b"2"}

    obj.download(force_sync=True, exclude_pattern=r"\.tmp$", allow_empty_source=True)
    assert read_tree(tmp_path / "l") == {}

    # Upload side: an empty local directory never wipes the remote prefix by accident.
    for key in ("up/a", "up/b"):
        any_session.put_object(key, b"keep me")
    (tmp_path / "empty").mkdir()
    up = S3Object(uri(any_session, "up/"), local_path=tmp_path / "empty", session=any_session)
    with pytest.raises(SyncError, match="allow_empty_source"):
        up.upload(force_sync=True)
    assert sorted(remote_tree(any_session, "up/")) == ["a", "b"]
    up.upload(force_sync=True, allow_empty_source=True)
    assert remote_tree(any_session, "up/") == {}


def test_dry_run_changes_nothing(any_session: Any, tmp_path: Path) -> None:
    any_session.put_object("dry/r1", b"remote 1")
    any_session.put_object("dry/same", b"same")
    make_tree(tmp_path / "d", {"l1": b"local 1", "same": b"same"})
    obj = S3Object(uri(any_session, "dry/"), local_path=tmp_path / "d", session=any_session)

    plan = obj.download(force_sync=False, delete_extras=True, dry_run=True)
    assert isinstance(plan, SyncPlan)
    assert [i.rel for i in plan.transfers] == ["r1"]
    assert [i.rel for i in plan.deletes] == ["l1"]
    assert [(i.rel, i.reason) for i in plan.skipped] == [("same", "same content")]
    assert plan.checks == []

    plan = obj.upload(delete_extras=True, dry_run=True)
    assert [i.rel for i in plan.transfers] == ["l1"] and [i.key for i in plan.deletes] == ["dry/r1"]

    assert read_tree(tmp_path / "d") == {"l1": b"local 1", "same": b"same"}
    assert remote_tree(any_session, "dry/") == {"r1": b"remote 1", "same": b"same"}
    assert obj.last_result is None

    # A blocked mirror is shown, not raised, by a dry run.
    empty = S3Object(uri(any_session, "none/"), local_path=tmp_path / "d", session=any_session)
    plan = empty.download(force_sync=True, dry_run=True)
    assert plan.blocked and len(plan.deletes) == 2


# -- 3. exceptions -------------------------------------------------------------------------


def test_exception_tree() -> None:
    for cls in (HashMismatchError, SyncError, S3ObjectError):
        assert issubclass(cls, S3FuncError)
    assert issubclass(HashMismatchError, S3ObjectError)
    assert issubclass(SyncError, S3ObjectError)


def test_hash_mismatch_keeps_the_previous_file(any_session: Any, tmp_path: Path) -> None:
    any_session.put_object("hm/bad", b"new data", metadata={SHA256_METADATA: "0" * 64})
    any_session.put_object("hm/good", b"fine")
    local = tmp_path / "bad"
    local.write_bytes(b"old")
    obj = S3Object(uri(any_session, "hm/bad"), local_path=local, session=any_session)
    with pytest.raises(HashMismatchError) as info:
        obj.download()
    assert info.value.algorithm == "sha256"
    assert local.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["bad"]  # no temporary file left

    obj.download(check_hash=False)  # the caller may opt out
    assert local.read_bytes() == b"new data"

    folder = S3Object(uri(any_session, "hm/"), local_path=tmp_path / "f", session=any_session)
    with pytest.raises(HashMismatchError, match="hm/bad"):
        folder.download()
    assert read_tree(tmp_path / "f") == {"good": b"fine"}
    assert folder.last_result is not None and list(folder.last_result.failed) == ["bad"]


class WrongETag(Recording):
    """Pretends the service stored other bytes: put_object answers with a wrong MD5 ETag."""

    def __getattr__(self, name: str) -> Any:
        attr = super().__getattr__(name)
        if name == "_put_many":

            def put_many(*args: Any, **kwargs: Any) -> Iterator[Any]:
                for tag, resp in attr(*args, **kwargs):
                    if isinstance(resp, Response):
                        resp.etag = "0" * 32
                    yield tag, resp

            return put_many
        if name != "put_object":
            return attr

        def put(*args: Any, **kwargs: Any) -> Any:
            resp = attr(*args, **kwargs)
            resp.etag = "0" * 32
            return resp

        return put


def test_upload_hash_mismatch_removes_the_object(s3_session: Any, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"payload")
    obj = S3Object(f"s3://{s3_session.bucket}/um/f", local_path=tmp_path / "f",
                   session=WrongETag(s3_session))
    with pytest.raises(HashMismatchError) as info:
        obj.upload()
    assert info.value.algorithm == "md5"
    assert not s3_session.exists("um/f")
    obj.upload(check_hash=False)  # opting out keeps what was stored
    assert s3_session.exists("um/f")


def test_upload_of_missing_local_path(any_session: Any, tmp_path: Path) -> None:
    obj = S3Object(uri(any_session, "x"), local_path=tmp_path / "nope", session=any_session)
    with pytest.raises(S3ObjectError, match="does not exist"):
        obj.upload()


# -- 4. open() -----------------------------------------------------------------------------


def test_open_modes(any_session: Any, tmp_path: Path) -> None:
    obj = S3Object(
        uri(any_session, "o/note.txt"), local_path=tmp_path / "n.txt", session=any_session
    )
    with obj.open("w") as f:
        f.write("héllo")
    assert remote_tree(any_session, "o/") == {"note.txt": "héllo".encode()}
    with obj.open("a") as f:
        f.write(" world")
    with obj.open("r") as f:
        assert f.read() == "héllo world"
    with obj.open("ab") as f:
        f.write(b"!")
    with obj.open("rb") as f:
        assert f.read() == "héllo world!".encode()
    with obj.open("wb") as f:
        f.write(b"\x00\x01")
    assert remote_tree(any_session, "o/") == {"note.txt": b"\x00\x01"}

    # Another copy sees remote changes on read.
    other = S3Object(
        uri(any_session, "o/note.txt"), local_path=tmp_path / "other.txt", session=any_session
    )
    with other.open("w", encoding="latin-1") as f:
        f.write("é")
    with obj.open("rb") as f:
        assert f.read() == b"\xe9"


def test_open_write_failure_uploads_nothing(any_session: Any, tmp_path: Path) -> None:
    obj = S3Object(
        uri(any_session, "o/keep.txt"), local_path=tmp_path / "k.txt", session=any_session
    )
    with obj.open("w") as f:
        f.write("version 1")
    for mode in ("w", "a", "wb"):
        with pytest.raises(RuntimeError), obj.open(mode) as f:  # type: ignore[call-overload]
            f.write("partial" if "b" not in mode else b"partial")
            raise RuntimeError("boom")
        assert remote_tree(any_session, "o/") == {"keep.txt": b"version 1"}
        assert (tmp_path / "k.txt").read_text() == "version 1"
        assert os.listdir(tmp_path) == ["k.txt"]


def test_open_append_to_missing_object_starts_empty(any_session: Any, tmp_path: Path) -> None:
    local = tmp_path / "log.txt"
    local.write_text("stale cache")  # not resurrected: the remote object does not exist
    obj = S3Object(uri(any_session, "o/log.txt"), local_path=local, session=any_session)
    with obj.open("a") as f:
        f.write("line 1\n")
    assert remote_tree(any_session, "o/") == {"log.txt": b"line 1\n"}


def test_open_errors(any_session: Any, tmp_path: Path) -> None:
    obj = S3Object(uri(any_session, "o/missing"), local_path=tmp_path / "m", session=any_session)
    with pytest.raises(S3ObjectError), obj.open("r"):
        pass
    with pytest.raises(ValueError):
        obj.open("r+")  # type: ignore[call-overload]
    folder = S3Object(uri(any_session, "o/"), local_path=tmp_path / "d", session=any_session)
    with pytest.raises(S3ObjectError):
        folder.open("r")


# -- 5. exists / delete --------------------------------------------------------------------


def test_exists_and_delete(any_session: Any, tmp_path: Path) -> None:
    any_session.put_object("ed/file", b"1")
    any_session.put_object("ed/dir/a", b"2")
    f = S3Object(uri(any_session, "ed/file"), local_path=tmp_path / "f", session=any_session)
    d = S3Object(uri(any_session, "ed/dir"), local_path=tmp_path / "d", session=any_session)
    n = S3Object(uri(any_session, "ed/none"), local_path=tmp_path / "n", session=any_session)
    assert f.exists() and d.exists() and not n.exists()
    assert f.delete() is True and not f.exists()
    assert d.delete() is True and not d.exists()
    assert n.delete() is False
    root = S3Object(uri(any_session, ""), local_path=tmp_path / "r", session=any_session)
    with pytest.raises(S3ObjectError):
        root.delete()


def test_delete_prefix_in_batches(any_session: Any, tmp_path: Path) -> None:
    files = {f"k{i:04d}": b"" for i in range(1005)}
    make_tree(tmp_path / "many", files)
    rec = Recording(any_session)
    obj = S3Object(uri(any_session, "many/"), local_path=tmp_path / "many", session=rec)
    obj.upload()
    assert len(remote_tree(any_session, "many/")) == 1005
    rec.reset()
    assert obj.delete() is True
    assert rec.calls["delete_objects"] == 2
    assert not obj.exists()


# -- 6. safety -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_session(moto_endpoint: str) -> Iterator[Any]:
    boto3 = pytest.importorskip("boto3")
    from s3func import S3Session

    name = "bkt-" + os.urandom(4).hex()
    boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="a",
        aws_secret_access_key="b",
        region_name="us-east-1",
    ).create_bucket(Bucket=name)
    with S3Session(
        access_key_id="a",
        access_key="b",
        bucket=name,
        endpoint_url=moto_endpoint,
        region="us-east-1",
    ) as session:
        yield session


UNSAFE = [
    "p/../escape",
    "p/a/../../escape2",
    "p/..",
    "p//abs",
    "p/.",
    "p/a/./b",
    "p/x\\..\\y",
    "p/a//b",
]


@pytest.fixture(params=["moto", "b2"])
def traversal_session(request: pytest.FixtureRequest) -> Any:
    """Servers that store keys with dot segments and empty segments (SeaweedFS does not)."""
    return request.getfixturevalue(f"{request.param}_session")


def test_unsafe_keys_are_refused_and_reported(traversal_session: Any, tmp_path: Path) -> None:
    session = traversal_session
    unsafe = list(UNSAFE)
    if scheme(session) == "s3":
        unsafe.append("p/ctl\x01")  # B2 refuses control characters itself
    for key in [*unsafe, "p/ok", "p/sub/ok2"]:
        session.put_object(key, b"payload")
    target = tmp_path / "deep" / "target"
    obj = S3Object(uri(session, "p/"), local_path=target, session=session)
    with pytest.raises(SyncError) as info:
        obj.download()
    for key in unsafe:
        assert repr(key) in str(info.value)
    assert read_tree(tmp_path) == {"deep/target/ok": b"payload", "deep/target/sub/ok2": b"payload"}
    assert obj.last_result is not None
    assert sorted(i.key for i in obj.last_result.plan.refused) == sorted(unsafe)

    obj.download(skip_unsafe=True)  # reported in last_result only
    assert len(obj.last_result.plan.refused) == len(unsafe)

    # A mirror upload leaves keys it cannot represent alone.
    obj.upload(force_sync=True)
    keys = {o.key for o in session.list_objects(prefix="p/").iter_objects()}
    assert set(unsafe) <= keys


def test_symlinked_directory_cannot_redirect_writes(any_session: Any, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (target / "link").symlink_to(outside, target_is_directory=True)
    any_session.put_object("sl/link/pwned", b"evil")
    any_session.put_object("sl/fine", b"ok")
    obj = S3Object(uri(any_session, "sl/"), local_path=target, session=any_session)
    with pytest.raises(SyncError, match="outside"):
        obj.download()
    assert list(outside.iterdir()) == []
    assert (target / "fine").read_bytes() == b"ok"


def test_control_characters_refused(s3_session: Any, tmp_path: Path) -> None:
    s3_session.put_object("cc/bad\x01name", b"x")
    s3_session.put_object("cc/good", b"y")
    obj = S3Object(uri(s3_session, "cc/"), local_path=tmp_path / "c", session=s3_session)
    obj.download(skip_unsafe=True)
    assert read_tree(tmp_path / "c") == {"good": b"y"}
    assert obj.last_result is not None
    assert [i.reason for i in obj.last_result.plan.refused] == ["control character"]


def test_file_and_prefix_conflict(any_session: Any, tmp_path: Path) -> None:
    any_session.put_object("cf/a", b"file a")
    any_session.put_object("cf/a/b", b"file a/b")
    any_session.put_object("cf/z", b"z")
    obj = S3Object(uri(any_session, "cf/"), local_path=tmp_path / "c", session=any_session)
    with pytest.raises(SyncError, match="conflict"):
        obj.download()
    assert read_tree(tmp_path / "c") == {"a/b": b"file a/b", "z": b"z"}
    assert obj.last_result is not None
    assert [i.key for i in obj.last_result.plan.conflicts] == ["cf/a"]
    obj.download(skip_unsafe=True)


def test_local_directory_in_the_way(any_session: Any, tmp_path: Path) -> None:
    any_session.put_object("lw/d", b"now a file")
    any_session.put_object("lw/x", b"x")
    make_tree(tmp_path / "l", {"d/inner/old": b"old", "x": b"x"})
    obj = S3Object(uri(any_session, "lw/"), local_path=tmp_path / "l", session=any_session)
    with pytest.raises(SyncError, match="conflict"):
        obj.download()
    assert read_tree(tmp_path / "l") == {"d/inner/old": b"old", "x": b"x"}
    obj.download(delete_extras=True)  # the directory only holds extras: it makes way
    assert read_tree(tmp_path / "l") == {"d": b"now a file", "x": b"x"}


def test_writes_are_atomic_renames(any_session: Any, tmp_path: Path) -> None:
    local = tmp_path / "f"
    local.write_bytes(b"old content")
    any_session.put_object("at/f", b"new content!")
    with open(local, "rb") as before:
        inode = os.fstat(before.fileno()).st_ino
        S3Object(uri(any_session, "at/f"), local_path=local, session=any_session).download()
        assert before.read() == b"old content"  # the old file was replaced, not rewritten
    assert local.read_bytes() == b"new content!"
    assert os.stat(local).st_ino != inode
    assert os.listdir(tmp_path) == ["f"]


def test_file_modes_look_like_open(any_session: Any, tmp_path: Path) -> None:
    any_session.put_object("fm/new", b"1")
    any_session.put_object("fm/old", b"2")
    old = tmp_path / "d" / "old"
    old.parent.mkdir()
    old.write_bytes(b"stale")
    old.chmod(0o640)
    umask = os.umask(0o022)
    os.umask(umask)
    S3Object(uri(any_session, "fm/"), local_path=tmp_path / "d", session=any_session).download()
    assert (tmp_path / "d" / "new").stat().st_mode & 0o777 == 0o666 & ~umask
    assert old.stat().st_mode & 0o777 == 0o640  # an existing file keeps its mode
    obj = S3Object(uri(any_session, "fm/old"), local_path=old, session=any_session)
    with obj.open("w") as f:
        f.write("x")
    assert old.stat().st_mode & 0o777 == 0o640


def test_local_mtime_comes_from_the_remote_object(any_session: Any, tmp_path: Path) -> None:
    any_session.put_object("mt/by-others", b"x")
    head = any_session.head_object("mt/by-others")
    obj = S3Object(uri(any_session, "mt/by-others"), local_path=tmp_path / "o", session=any_session)
    obj.download()
    assert int(os.stat(tmp_path / "o").st_mtime) == int(head.last_modified.timestamp())

    src = tmp_path / "src"
    src.write_bytes(b"y")
    when = 978_350_400_123_000_000  # 2001-01-01 12:00:00.123
    os.utime(src, ns=(when, when))
    S3Object(uri(any_session, "mt/ours"), local_path=src, session=any_session).upload()
    obj = S3Object(uri(any_session, "mt/ours"), local_path=tmp_path / "ours", session=any_session)
    obj.download()
    assert os.stat(tmp_path / "ours").st_mtime_ns == when


def test_large_file_roundtrip(any_session: Any, tmp_path: Path) -> None:
    data = os.urandom(17 * 1024 * 1024)
    (tmp_path / "big").write_bytes(data)
    S3Object(uri(any_session, "big/f"), local_path=tmp_path / "big", session=any_session).upload()
    head = any_session.head_object("big/f")
    assert head.metadata[SHA256_METADATA] == hashlib.sha256(data).hexdigest()
    obj = S3Object(uri(any_session, "big/f"), local_path=tmp_path / "copy", session=any_session)
    obj.download()
    assert (tmp_path / "copy").read_bytes() == data
    assert io.BytesIO(data).getbuffer().nbytes == os.path.getsize(tmp_path / "copy")


def test_file_grown_past_the_small_size_before_its_turn(any_session: Any, tmp_path: Path) -> None:
    files = {f"a{i:02d}.bin": b"%d" % i * 100 for i in range(30)}
    make_tree(tmp_path / "g", files)
    big = os.urandom(1024 * 1024 + 5)  # over 1 MiB: streamed from the file, not read whole
    grown = tmp_path / "g" / "z.bin"
    grown.write_bytes(b"small")

    def progress(p: SyncProgress) -> None:
        if p.files_done == 1:  # z.bin (last in the plan) has not been read yet
            grown.write_bytes(big)

    obj = S3Object(uri(any_session, "grow/"), local_path=tmp_path / "g", session=any_session)
    obj.upload(progress=progress)
    assert obj.last_result is not None and not obj.last_result.failed
    assert sorted(obj.last_result.transferred) == sorted([*files, "z.bin"])
    assert any_session.get_object("grow/z.bin").data == big
    assert remote_tree(any_session, "grow/") == {**files, "z.bin": big}
