"""The pure planning layer of s3func.sync, driven with synthetic listings and states."""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path

import pytest

from s3func.sync import (
    LocalFile,
    PlanItem,
    RemoteFile,
    StateEntry,
    SyncPlan,
    _State,
    content_matches,
    is_plain_md5,
    plan_sync,
    remote_entries,
)

MD5_A = hashlib.md5(b"a").hexdigest()
SHA_A = hashlib.sha256(b"a").hexdigest()
MULTIPART = "7cbb08aa3c3309d6882c18fcecc4bee7-2"


def rels(items: list[PlanItem]) -> list[str]:
    return sorted(i.rel for i in items)


def remote(**files: tuple[int, str]) -> dict[str, RemoteFile]:
    return {
        name.replace("__", "/"): RemoteFile("p/" + name.replace("__", "/"), s, e)
        for name, (s, e) in files.items()
    }


# -- hashes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("etag", "plain"),
    [
        (MD5_A, True),
        (MD5_A.upper(), True),
        (f'"{MD5_A}"', True),
        (MULTIPART, False),
        (MD5_A + "-1", False),
        ("", False),
        (None, False),
        ("a" * 40, False),  # a SHA-1, as some B2 tools report
    ],
)
def test_is_plain_md5(etag: str | None, plain: bool) -> None:
    assert is_plain_md5(etag) is plain


def test_content_matches_prefers_stored_sha256() -> None:
    assert content_matches(MD5_A, SHA_A, MULTIPART, SHA_A) is True
    assert content_matches(MD5_A, SHA_A, MD5_A, "0" * 64) is False  # stored hash wins
    assert content_matches(MD5_A, SHA_A, MD5_A, SHA_A.upper()) is True


def test_content_matches_plain_md5_etag() -> None:
    assert content_matches(MD5_A, SHA_A, MD5_A, None) is True
    assert content_matches(MD5_A, SHA_A, '"' + MD5_A + '"', None) is True
    assert content_matches(MD5_A, SHA_A, "0" * 32, None) is False


def test_multipart_etag_is_never_an_md5() -> None:
    # Even when the hex part happens to equal the content MD5, a -N ETag decides nothing.
    assert content_matches(MD5_A, SHA_A, MD5_A + "-2", None) is None
    assert content_matches(MD5_A, SHA_A, MULTIPART, None) is None
    assert content_matches(MD5_A, SHA_A, None, None) is None


def test_content_matches_b2_sha1_etags() -> None:
    sha1 = hashlib.sha1(b"a").hexdigest()

    def b2(etag: str, stored: str | None = None) -> bool | None:
        return content_matches(MD5_A, SHA_A, etag, stored, local_sha1=sha1, etag_is_sha1=True)

    assert b2(sha1) is True
    assert b2("1" * 40) is False
    assert b2("4_zabc_f1") is None  # a B2 large file's ETag may be its file id
    assert b2(MD5_A) is None  # on B2 a 32-hex ETag is not an MD5 either
    assert b2("1" * 40, SHA_A) is True  # the stored SHA-256 still wins


# -- remote_entries ------------------------------------------------------------------------


def test_remote_entries_strips_prefix_and_markers() -> None:
    objs = [
        RemoteFile("p/", 0, "x"),  # the prefix marker
        RemoteFile("p/dir/", 0, "x"),  # a directory marker
        RemoteFile("p/a", 1, "e1"),
        RemoteFile("p/dir/b", 2, "e2"),
        RemoteFile("other", 3, "e3"),  # outside the prefix
    ]
    entries, refused = remote_entries("p/", objs)
    assert sorted(entries) == ["a", "dir/b"]
    assert entries["dir/b"].key == "p/dir/b"
    assert refused == []


def test_remote_entries_refuses_unsafe_keys() -> None:
    bad = ["p/../escape", "p//abs", "p/a/../../b", "p/a\\b", "p/a\x00", "p/.", "p/x/", "p/a//b"]
    objs = [RemoteFile(k, 5, "e") for k in bad] + [RemoteFile("p/ok", 1, "e")]
    entries, refused = remote_entries("p/", objs)
    assert list(entries) == ["ok"]
    assert sorted(i.key for i in refused) == sorted(bad)
    assert all(i.reason for i in refused)
    # Uploads keep them (as deletion candidates only).
    entries, refused = remote_entries("p/", objs, check_safety=False)
    assert len(entries) == len(objs) and refused == []


# -- downloads -----------------------------------------------------------------------------


def test_download_new_changed_unchanged() -> None:
    r = remote(new=(1, "e1"), grown=(5, "e2"), same=(3, "e3"), samesize=(4, "e4"))
    local = {
        "grown": LocalFile(4, 10),
        "same": LocalFile(3, 20),
        "samesize": LocalFile(4, 30),
    }
    state = {
        "same": StateEntry(3, 20, "e3", SHA_A),
        "samesize": StateEntry(4, 30, "OLD", SHA_A),
    }
    plan = plan_sync("download", prefix="p/", remote=r, local=local, state=state)
    assert {i.rel: i.reason for i in plan.transfers} == {"new": "new", "grown": "size differs"}
    assert rels(plan.skipped) == ["same"]
    assert rels(plan.checks) == ["samesize"]
    assert plan.deletes == [] and plan.conflicts == [] and plan.blocked is None
    assert plan.transfers[0].key.startswith("p/")


@pytest.mark.parametrize(
    "entry",
    [
        None,
        StateEntry(3, 20, "e3", SHA_A, trusted=False),  # racy: recorded in the same tick
        StateEntry(3, 21, "e3", SHA_A),  # local mtime changed
        StateEntry(3, 20, "e0", SHA_A),  # remote replaced
        StateEntry(3, 20, None, SHA_A),  # etag unknown
    ],
)
def test_download_state_must_match_exactly(entry: StateEntry | None) -> None:
    state = {"f": entry} if entry else {}
    plan = plan_sync(
        "download",
        prefix="",
        remote={"f": RemoteFile("f", 3, "e3")},
        local={"f": LocalFile(3, 20)},
        state=state,
    )
    assert rels(plan.checks) == ["f"] and plan.skipped == []


def test_force_transfers_everything() -> None:
    r = remote(a=(1, "e"), b=(1, "e"))
    local = {"a": LocalFile(1, 1)}
    state = {"a": StateEntry(1, 1, "e", SHA_A)}
    plan = plan_sync("download", prefix="p/", remote=r, local=local, state=state, force=True)
    assert rels(plan.transfers) == ["a", "b"]
    assert {i.reason for i in plan.transfers} == {"forced"}


def test_mirror_deletes_extras_only_when_asked() -> None:
    r = remote(keep=(1, "e"))
    local = {"keep": LocalFile(1, 1), "extra": LocalFile(2, 2), "d/extra2": LocalFile(3, 3)}
    plan = plan_sync("download", prefix="p/", remote=r, local=local)
    assert plan.deletes == []
    plan = plan_sync("download", prefix="p/", remote=r, local=local, delete_extras=True)
    assert rels(plan.deletes) == ["d/extra2", "extra"]
    assert {i.reason for i in plan.deletes} == {"extra"}


def test_excludes_hide_from_transfer_and_deletion() -> None:
    r = remote(a=(1, "e"), b__tmp=(1, "e"))
    r["x.tmp"] = RemoteFile("p/x.tmp", 1, "e")
    local = {"y.tmp": LocalFile(1, 1), "gone": LocalFile(1, 1), "b/tmp": LocalFile(9, 9)}
    plan = plan_sync(
        "download",
        prefix="p/",
        remote=r,
        local=local,
        delete_extras=True,
        force=True,
        exclude=re.compile(r"\.tmp$|^b/"),
    )
    assert rels(plan.transfers) == ["a"]
    assert rels(plan.deletes) == ["gone"]  # y.tmp is hidden, b/tmp is hidden
    assert plan.excluded == 3


def test_empty_source_blocks_mirror() -> None:
    local = {"a": LocalFile(1, 1), "b": LocalFile(1, 1)}
    plan = plan_sync("download", prefix="p/", remote={}, local=local, delete_extras=True)
    assert plan.blocked and "allow_empty_source" in plan.blocked
    assert rels(plan.deletes) == ["a", "b"]  # listed, so a dry run shows them
    plan = plan_sync(
        "download", prefix="p/", remote={}, local=local, delete_extras=True, allow_empty_source=True
    )
    assert plan.blocked is None


def test_source_empty_after_excludes_also_blocks() -> None:
    r = remote(a=(1, "e"))
    plan = plan_sync(
        "download",
        prefix="p/",
        remote=r,
        local={"b": LocalFile(1, 1)},
        delete_extras=True,
        exclude=re.compile("^a$"),
    )
    assert plan.blocked


def test_empty_source_without_deletions_is_fine() -> None:
    plan = plan_sync("download", prefix="p/", remote={}, local={}, delete_extras=True)
    assert plan.blocked is None and plan.deletes == []


def test_file_and_prefix_conflict() -> None:
    r = remote(a=(1, "e"), a__b=(2, "e"), a__b__c=(3, "e"), z=(1, "e"))
    plan = plan_sync("download", prefix="p/", remote=r, local={})
    assert rels(plan.conflicts) == ["a", "a/b"]
    assert all("prefix" in i.reason for i in plan.conflicts)
    assert rels(plan.transfers) == ["a/b/c", "z"]


def test_conflicting_key_is_not_deleted_locally() -> None:
    # Remote has a and a/b; a local copy of a stays (it is not an extra).
    r = remote(a=(1, "e"), a__b=(2, "e"))
    plan = plan_sync(
        "download", prefix="p/", remote=r, local={"a": LocalFile(1, 1)}, delete_extras=True
    )
    assert plan.deletes == []
    assert rels(plan.conflicts) == ["a", "a/b"]  # a/b: the local file a is in the way


def test_local_directory_in_the_way() -> None:
    r = remote(d=(1, "e"))
    local = {"d/inner": LocalFile(1, 1)}
    plan = plan_sync("download", prefix="p/", remote=r, local=local, local_dirs={"d"})
    assert rels(plan.conflicts) == ["d"] and plan.transfers == []
    # When mirroring, the directory's files are extras: delete them, then write d.
    plan = plan_sync(
        "download", prefix="p/", remote=r, local=local, local_dirs={"d"}, delete_extras=True
    )
    assert plan.conflicts == [] and rels(plan.transfers) == ["d"]
    assert rels(plan.deletes) == ["d/inner"]


def test_excluded_file_keeps_directory_in_the_way() -> None:
    r = remote(d=(1, "e"))
    local = {"d/keep.tmp": LocalFile(1, 1)}
    plan = plan_sync(
        "download",
        prefix="p/",
        remote=r,
        local=local,
        local_dirs={"d"},
        delete_extras=True,
        exclude=re.compile(r"\.tmp$"),
    )
    assert rels(plan.conflicts) == ["d"] and plan.deletes == []


def test_local_file_in_the_way_of_directory() -> None:
    r = remote(f__x=(1, "e"))
    plan = plan_sync("download", prefix="p/", remote=r, local={"f": LocalFile(1, 1)})
    assert rels(plan.conflicts) == ["f/x"]
    plan = plan_sync(
        "download", prefix="p/", remote=r, local={"f": LocalFile(1, 1)}, delete_extras=True
    )
    assert rels(plan.transfers) == ["f/x"] and rels(plan.deletes) == ["f"]


def test_case_insensitive_collisions() -> None:
    r = remote(Readme=(1, "e"), README=(2, "e"), Dir__x=(1, "e"), dir=(1, "e"))
    plan = plan_sync("download", prefix="p/", remote=r, local={}, case_insensitive=True)
    assert rels(plan.conflicts) == ["Readme", "dir"]
    assert rels(plan.transfers) == ["Dir/x", "README"]
    plan = plan_sync("download", prefix="p/", remote=r, local={})
    assert plan.conflicts == []


def test_refused_remote_keys_are_never_deleted() -> None:
    plan = plan_sync(
        "download",
        prefix="p/",
        remote={},
        local={"x": LocalFile(1, 1)},
        delete_extras=True,
        allow_empty_source=True,
        unsafe_remote={"x"},
    )
    assert plan.deletes == []


# -- uploads -------------------------------------------------------------------------------


def test_upload_plan() -> None:
    local = {"new": LocalFile(1, 1), "same": LocalFile(2, 2), "chg": LocalFile(3, 3)}
    r = remote(same=(2, "e2"), chg=(3, "e3"), extra=(4, "e4"))
    state = {"same": StateEntry(2, 2, "e2", SHA_A)}
    plan = plan_sync("upload", prefix="p/", remote=r, local=local, state=state)
    assert rels(plan.transfers) == ["new"] and rels(plan.skipped) == ["same"]
    assert rels(plan.checks) == ["chg"] and plan.deletes == []
    plan = plan_sync("upload", prefix="p/", remote=r, local=local, state=state, delete_extras=True)
    assert [(i.rel, i.key) for i in plan.deletes] == [("extra", "p/extra")]


def test_upload_refuses_unsafe_local_names() -> None:
    local = {"ok": LocalFile(1, 1), "a\\b": LocalFile(1, 1), "x\ny": LocalFile(1, 1)}
    plan = plan_sync("upload", prefix="p/", remote={}, local=local)
    assert rels(plan.transfers) == ["ok"]
    assert rels(plan.refused) == ["a\\b", "x\ny"]


def test_upload_mirror_keeps_excluded_and_unsafe_remote_keys() -> None:
    r = remote(a=(1, "e"), b__log=(1, "e"))
    r["x/../y"] = RemoteFile("p/x/../y", 1, "e")
    plan = plan_sync(
        "upload",
        prefix="p/",
        remote=r,
        local={"c": LocalFile(1, 1)},
        delete_extras=True,
        exclude=re.compile(r"log$"),
        unsafe_remote={"x/../y"},
    )
    assert rels(plan.deletes) == ["a"]


def test_upload_empty_local_blocks_mirror() -> None:
    plan = plan_sync("upload", prefix="p/", remote=remote(a=(1, "e")), local={}, delete_extras=True)
    assert plan.blocked and "local directory" in plan.blocked


def test_single_object_plan() -> None:
    r = {"": RemoteFile("k", 3, MD5_A)}
    plan = plan_sync("download", prefix="k", remote=r, local={})
    assert [(i.rel, i.key, i.reason) for i in plan.transfers] == [("", "k", "new")]
    plan = plan_sync("upload", prefix="k", remote=r, local={"": LocalFile(3, 1)})
    assert [(i.rel, i.key) for i in plan.checks] == [("", "k")]


def test_plan_summary_and_bytes() -> None:
    items = [PlanItem("a", "a", 5, "new"), PlanItem("b", "b", 7, "new")]
    plan = SyncPlan("download", transfers=items)
    plan.blocked = "nope"
    assert plan.bytes_to_transfer == 12
    text = plan.summary()
    assert "2 to transfer" in text and "BLOCKED" in text


# -- the state file ------------------------------------------------------------------------


def test_state_roundtrip_and_racy_entries(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x")
    old = time.time_ns() - 3_600 * 10**9
    os.utime(f, ns=(old, old))
    g = tmp_path / "g"
    g.write_bytes(b"y")  # mtime is now: racy
    state = _State(tmp_path / "state" / "s.json")
    st_f, st_g = os.stat(f), os.stat(g)
    state.record("f", st_f.st_size, st_f.st_mtime_ns, "e1", SHA_A)
    state.record("g", st_g.st_size, st_g.st_mtime_ns, "e2", SHA_A)
    state.save()
    loaded = _State(tmp_path / "state" / "s.json").load()
    assert loaded.entries["f"] == StateEntry(1, old, "e1", SHA_A, True)
    assert loaded.entries["g"].trusted is False
    loaded.save(keep={"f"})  # prunes g
    assert list(_State(tmp_path / "state" / "s.json").load().entries) == ["f"]
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["s.json"]  # no temp left


@pytest.mark.parametrize("content", [b"", b"not json", b'{"version": 99, "files": {}}', b"[1]"])
def test_state_tolerates_bad_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "s.json"
    path.write_bytes(content)
    assert _State(path).load().entries == {}


def test_read_small_refuses_a_file_that_changed_size(tmp_path: Path) -> None:
    from s3func import SyncError
    from s3func.sync import _read_small

    f = tmp_path / "f"
    f.write_bytes(b"hello world")
    assert _read_small(str(f), 11) == b"hello world"
    with pytest.raises(SyncError, match="changed"):
        _read_small(str(f), 5)  # grew since the scan
    with pytest.raises(SyncError, match="changed"):
        _read_small(str(f), 20)  # shrank since the scan
    (tmp_path / "e").write_bytes(b"")
    assert _read_small(str(tmp_path / "e"), 0) == b""
