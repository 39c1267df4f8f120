"""Atomic-write helpers: temporary files get open()'s mode, unique names, copied modes."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from s3func._localfs import copy_mode, create_temp, unlink_quietly


def _mode(path: str | Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_temp_file_has_the_mode_open_would_give(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        fd, path = create_temp(str(tmp_path), ".x-", ".tmp")
        os.close(fd)
        with open(tmp_path / "by-open", "wb"):
            pass
    finally:
        os.umask(old)
    assert _mode(path) == _mode(tmp_path / "by-open") == 0o640
    name = os.path.basename(path)
    assert name.startswith(".x-") and name.endswith(".tmp")


def test_names_are_unique_across_threads(tmp_path: Path) -> None:
    def make(_: int) -> str:
        fd, path = create_temp(str(tmp_path), "t-")
        os.write(fd, b"x")
        assert os.pread(fd, 1, 0) == b"x"  # readable too (download checksums read it back)
        os.close(fd)
        return path

    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(make, range(400)))
    assert len(set(paths)) == 400 == len(os.listdir(tmp_path))


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_copy_mode_and_unlink_quietly(tmp_path: Path) -> None:
    like = tmp_path / "like"
    like.write_bytes(b"")
    like.chmod(0o600)
    fd, path = create_temp(str(tmp_path), "t-")
    copy_mode(fd, path, str(like))
    assert _mode(path) == 0o600
    copy_mode(fd, path, str(tmp_path / "missing"))  # nothing to copy: unchanged
    assert _mode(path) == 0o600
    os.close(fd)
    unlink_quietly(path)
    unlink_quietly(path)  # already gone: no error
    assert not os.path.exists(path)
