"""Key safety, URI parsing and cache directories (s3func._paths), with no network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from s3func import _paths
from s3func.errors import ConfigurationError, S3ObjectError
from s3func.sync import S3Object

# -- parse_uri -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "scheme", "bucket", "key", "is_prefix"),
    [
        ("s3://bkt/a/b.txt", "s3", "bkt", "a/b.txt", False),
        ("b2://bkt/a/b/", "b2", "bkt", "a/b/", True),
        ("s3://bkt", "s3", "bkt", "", True),
        ("s3://bkt/", "s3", "bkt", "", True),
        ("S3://bkt/x", "s3", "bkt", "x", False),
        ("s3://bkt//double", "s3", "bkt", "/double", False),
        ("s3://bkt/a b%20c", "s3", "bkt", "a b%20c", False),
    ],
)
def test_parse_uri(uri: str, scheme: str, bucket: str, key: str, is_prefix: bool) -> None:
    parsed = _paths.parse_uri(uri)
    assert (parsed.scheme, parsed.bucket, parsed.key) == (scheme, bucket, key)
    assert parsed.is_prefix is is_prefix


@pytest.mark.parametrize("uri", ["bkt/key", "http://bkt/key", "s3://", "s3:///key", "gs://b/k"])
def test_parse_uri_rejects(uri: str) -> None:
    with pytest.raises(ValueError):
        _paths.parse_uri(uri)


def test_parsed_uri_str_roundtrip() -> None:
    assert str(_paths.parse_uri("b2://bkt/a/b")) == "b2://bkt/a/b"


# -- key_problem ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rel", ["a", "a/b/c.txt", "ünïcødé/ファイル", "a:b", "con", ".hidden", "a..b", "...", "x y"]
)
def test_safe_keys(rel: str) -> None:
    assert _paths.key_problem(rel, windows=False) is None


@pytest.mark.parametrize(
    ("rel", "reason"),
    [
        ("", "empty name"),
        ("..", "'..' segment"),
        ("../etc/passwd", "'..' segment"),
        ("a/../../b", "'..' segment"),
        ("a/..", "'..' segment"),
        (".", "'.' segment"),
        ("a/./b", "'.' segment"),
        ("/etc/passwd", "absolute path"),
        ("a//b", "empty segment"),
        ("a/", "ends with '/'"),
        ("a\\b", "backslash"),
        ("..\\..\\win.ini", "backslash"),
        ("a\x00b", "NUL character"),
        ("a\nb", "control character"),
        ("a\x7fb", "control character"),
        ("x" * 256, "segment longer than 255 bytes"),
        ("é" * 128, "segment longer than 255 bytes"),
        ("a\udcffb", "not valid UTF-8"),
    ],
)
def test_unsafe_keys(rel: str, reason: str) -> None:
    assert _paths.key_problem(rel, windows=False) == reason
    # Every unsafe key stays unsafe under the stricter Windows rules.
    assert _paths.key_problem(rel, windows=True) is not None


@pytest.mark.parametrize(
    "rel", ["C:/x", "a:b", "CON", "con.txt", "dir/aux.tar.gz", "lpt1", "a.", "a ", "a<b", "q?"]
)
def test_windows_only_problems(rel: str) -> None:
    assert _paths.key_problem(rel, windows=True) is not None


def test_local_relpath_uses_os_separator() -> None:
    assert _paths.local_relpath("a/b/c") == os.path.join("a", "b", "c")


# -- is_within -----------------------------------------------------------------------------


def test_is_within(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "inner_link").symlink_to(root / "sub", target_is_directory=True)
    assert _paths.is_within(root, root)
    assert _paths.is_within(root, root / "sub")
    assert _paths.is_within(root, root / "sub" / "not-yet" / "created")
    assert _paths.is_within(root, root / "inner_link" / "x")
    assert not _paths.is_within(root, root / "link")
    assert not _paths.is_within(root, root / "link" / "x")
    assert not _paths.is_within(root, tmp_path / "rootsibling")
    assert not _paths.is_within(root, root / ".." / "outside")


def test_temp_names() -> None:
    assert _paths.is_temp_name(_paths.TEMP_PREFIX + "abc")
    assert _paths.is_temp_name(".file.txt.x1y2.s3func-tmp")
    assert not _paths.is_temp_name("file.txt")
    assert not _paths.is_temp_name("visible.s3func-tmp")


# -- cache directories ---------------------------------------------------------------------


@pytest.mark.parametrize("text", ["my-bucket", "bucket.name", "a_b", "127.0.0.1"])
def test_safe_component_keeps_safe_names(text: str) -> None:
    assert _paths.safe_component(text) == text


@pytest.mark.parametrize("text", ["127.0.0.1:8333", "..", ".", "", "a/b", "a\\b", "CON", "x" * 300])
def test_safe_component_sanitises(text: str) -> None:
    out = _paths.safe_component(text)
    assert out and out not in (".", "..")
    assert "/" not in out and "\\" not in out and ":" not in out
    assert _paths.key_problem(out, windows=True) is None


def test_safe_component_never_merges_inputs() -> None:
    names = ["a:b", "a_b", "a?b", "a/b", "A_B"]
    assert len({_paths.safe_component(n) for n in names}) == len(names)


def test_default_cache_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _paths.default_cache_root() == tmp_path / "xdg" / "s3func"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")
    assert _paths.default_cache_root() == tmp_path / "home" / ".cache" / "s3func"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert _paths.default_cache_root() == tmp_path / "home" / ".cache" / "s3func"


def test_cache_namespace() -> None:
    assert _paths.cache_namespace("s3", None, "bkt") == ("s3", "default", "bkt")
    s3, host, bucket = _paths.cache_namespace("s3", "http://127.0.0.1:8333/base", "bkt")
    assert (s3, bucket) == ("s3", "bkt")
    assert host.startswith("127.0.0.1_8333")
    other = _paths.cache_namespace("s3", "http://127.0.0.1:9000", "bkt")[1]
    assert other != host


# -- S3Object's default local path (no request is made by the constructor) ----------------


class _DummySession:
    def __init__(self, bucket: str, endpoint_url: str = "http://127.0.0.1:8333") -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url

    def close(self) -> None:
        pass


def _obj(uri: str, **kw: object) -> S3Object:
    bucket = _paths.parse_uri(uri).bucket
    return S3Object(uri, session=_DummySession(bucket), **kw)  # type: ignore[arg-type]


def test_default_local_path_in_xdg_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    obj = _obj("s3://bkt/dir/file.txt")
    ns = _paths.cache_namespace("s3", "http://127.0.0.1:8333", "bkt")
    expected = tmp_path.joinpath("s3func", *ns, "dir", "file.txt")
    assert obj.local_path == str(expected)
    assert os.fspath(obj) == str(expected)
    assert _obj("s3://bkt/dir/").local_path == str(expected.parent)
    assert _obj("s3://bkt").local_path == str(expected.parent.parent)
    assert _obj("b2://bkt/dir/file.txt").local_path != obj.local_path


def test_default_local_path_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    obj = _obj("s3://bkt/k")
    assert obj.local_path.startswith(str(tmp_path / ".cache" / "s3func") + os.sep)


def test_cache_dir_argument(tmp_path: Path) -> None:
    obj = _obj("s3://bkt/k", cache_dir=tmp_path)
    assert obj.local_path.startswith(str(tmp_path) + os.sep)


@pytest.mark.parametrize("key", ["../../escape", "a/../../b", "/abs", "a//b", "a\\..\\b", "a\x00"])
def test_unsafe_key_cannot_use_cache(tmp_path: Path, key: str) -> None:
    with pytest.raises(S3ObjectError):
        _obj(f"s3://bkt/{key}", cache_dir=tmp_path)
    # With an explicit local path the key is just a name on the remote side.
    obj = _obj(f"s3://bkt/{key}", local_path=tmp_path / "x")
    assert obj.local_path == str(tmp_path / "x")


def test_explicit_local_path_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert _obj("s3://bkt/k", local_path="rel/file").local_path == str(tmp_path / "rel" / "file")


def test_constructor_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        S3Object("https://bkt/k", session=_DummySession("bkt"))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="bucket"):
        S3Object("s3://other/k", session=_DummySession("bkt"))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        _obj("s3://bkt/k", max_workers=0)
