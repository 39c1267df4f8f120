"""S3Object: remote objects and prefixes that behave like local files and folders.

The module has two halves:

* a **pure planning layer** (:func:`remote_entries`, :func:`plan_sync`, :func:`content_matches`,
  :class:`SyncPlan`): given local file states, listing entries, the saved sync state and the
  options, it decides what to upload, download, delete, skip, refuse or report as a conflict.
  It does no I/O, so unit tests drive it with synthetic listings;
* a thin **I/O layer** (:class:`S3Object`) that scans the local side, lists the remote side, asks
  the planner, then carries the plan out using only the session contract of
  ``docs/architecture.md``: small files many at a time through the session's ``_get_many`` /
  ``_put_many`` (multiplexed on the calling thread for S3), large ones on a thread pool.

Change detection compares size and content. The content hash of every object we upload is stored
in user metadata as ``s3func-sha256`` (:data:`SHA256_METADATA`, the hex SHA-256 of the whole
content), so multipart objects compare correctly; objects written by others compare by ETag only
when the ETag is a content hash (a plain MD5 on S3: 32 hex digits, no ``-N`` multipart suffix;
the SHA-1 on B2). A per-target state file remembers, for each synced file, its size,
``mtime_ns``, remote ETag and SHA-256, so an unchanged tree re-syncs with one listing, a
directory scan and no hashing. User guide: ``docs/s3object.md``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import json
import logging
import mimetypes
import os
import re
import stat as stat_mod
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import (
    IO,
    TYPE_CHECKING,
    Any,
    BinaryIO,
    Literal,
    NamedTuple,
    Protocol,
    TextIO,
    cast,
    overload,
)

from . import _paths
from ._localfs import copy_mode, create_temp, unlink_quietly
from ._transfer import PartReader
from .errors import (
    ConfigurationError,
    HashMismatchError,
    IntegrityError,
    NotFoundError,
    S3FuncError,
    S3ObjectError,
    SyncError,
)
from .response import SHA256_METADATA
from .session import BaseSession, SmallPut, with_rejects

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from .models import Response
    from .response import ObjectResponse

__all__ = [
    "MTIME_METADATA",
    "SHA256_METADATA",
    "LocalFile",
    "PlanItem",
    "RemoteFile",
    "S3Object",
    "StateEntry",
    "SyncPlan",
    "SyncProgress",
    "SyncResult",
    "content_matches",
    "is_plain_md5",
    "plan_sync",
    "remote_entries",
]

log = logging.getLogger("s3func.sync")

#: User-metadata name holding the source file's mtime in integer milliseconds since the epoch
#: (the spelling b2 CLI and rclone use on B2).
MTIME_METADATA = "src_last_modified_millis"

_RCLONE_MTIME = "mtime"
_SMALL_FILE = 1024 * 1024  # uploaded from memory in one PUT
_LARGE_FILE = 16 * 1024 * 1024  # downloaded with parallel ranges
_CHUNK = 1024 * 1024
_DELETE_BATCH = 1000
_RACY_NS = 2_000_000_000
_STATE_VERSION = 1
_MD5_RE = re.compile(r"[0-9a-f]{32}")
_SHA1_RE = re.compile(r"[0-9a-f]{40}")
_TEXT_MODES = frozenset({"r", "w", "a", "rt", "wt", "at"})
_BINARY_MODES = frozenset({"rb", "wb", "ab"})

Direction = Literal["download", "upload"]


# --------------------------------------------------------------------------------------------
# The object fields this module reads.
# --------------------------------------------------------------------------------------------


class _Upload(NamedTuple):
    """A file as it was sent: its stat and digests, the metadata and type stored with it."""

    st: os.stat_result
    md5: str
    sha: str
    metadata: dict[str, str]
    content_type: str | None


class _Fields(Protocol):
    """The object fields shared by :class:`Response` and :class:`ObjectResponse`."""

    @property
    def etag(self) -> str | None: ...
    @property
    def content_length(self) -> int | None: ...
    @property
    def last_modified(self) -> datetime | None: ...
    @property
    def metadata(self) -> Mapping[str, str]: ...


# --------------------------------------------------------------------------------------------
# Pure planning layer
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalFile:
    """A regular local file as seen by a scan.

    Attributes:
        size: Size in bytes.
        mtime_ns: Modification time in nanoseconds.
    """

    size: int
    mtime_ns: int


@dataclass(frozen=True)
class RemoteFile:
    """One object from a listing (or a HEAD).

    Attributes:
        key: The full object key.
        size: Size in bytes.
        etag: The ETag without quotes, when known.
        sha256: The stored ``s3func-sha256``, when the listing carries metadata (B2 does).
    """

    key: str
    size: int
    etag: str | None
    sha256: str | None = None


@dataclass(frozen=True)
class StateEntry:
    """What the state file remembers about one file that was last seen in sync.

    Attributes:
        size: Local size when recorded.
        mtime_ns: Local ``mtime_ns`` when recorded.
        etag: The remote ETag of the same content.
        sha256: Hex SHA-256 of the content.
        trusted: False when the mtime was too close to the recording time to prove that the
            file did not change afterwards within the same clock tick ("racy", as git calls it).
    """

    size: int
    mtime_ns: int
    etag: str | None
    sha256: str
    trusted: bool = True


@dataclass(frozen=True)
class PlanItem:
    """One decision of a plan.

    Attributes:
        rel: The path relative to the synced directory, ``/``-separated (``""`` for a single
            object).
        key: The remote key.
        size: Bytes the source holds (0 for deletes of unknown size).
        reason: Why: ``"new"``, ``"size differs"``, ``"content differs"``, ``"forced"``,
            ``"unchanged"``, ``"same content"``, ``"extra"``, or a safety or conflict reason.
    """

    rel: str
    key: str
    size: int
    reason: str


@dataclass
class SyncPlan:
    """What a download or upload will do (or, after a dry run, would do).

    Attributes:
        direction: ``"download"`` or ``"upload"``.
        transfers: Files to copy from source to destination.
        deletes: Destination files to delete (only when mirroring).
        skipped: Files that are already in sync.
        checks: Same-size files whose content still has to be compared; the I/O layer resolves
            them into ``transfers`` or ``skipped`` before acting, so returned plans have none.
        conflicts: Keys that cannot be synced because of a file/directory clash, such as a key
            ``a`` next to a key ``a/b``, or a local directory where a file should go.
        refused: Keys that are unsafe as local paths (``..``, absolute, backslash, empty segment,
            NUL...) or local names that are unsafe as keys; never written, never deleted.
        excluded: Number of source and destination entries hidden by the exclude pattern.
        blocked: When set, the plan would delete files although the source is empty; it is only
            carried out with ``allow_empty_source=True``.
    """

    direction: Direction
    transfers: list[PlanItem] = field(default_factory=list)
    deletes: list[PlanItem] = field(default_factory=list)
    skipped: list[PlanItem] = field(default_factory=list)
    checks: list[PlanItem] = field(default_factory=list)
    conflicts: list[PlanItem] = field(default_factory=list)
    refused: list[PlanItem] = field(default_factory=list)
    excluded: int = 0
    blocked: str | None = None

    @property
    def bytes_to_transfer(self) -> int:
        """Total size of the planned transfers."""
        return sum(item.size for item in self.transfers)

    def summary(self) -> str:
        """Return a one-line description of the plan."""
        parts = [
            f"{self.direction}: {len(self.transfers)} to transfer",
            f"{len(self.deletes)} to delete",
            f"{len(self.skipped)} unchanged",
        ]
        if self.checks:
            parts.append(f"{len(self.checks)} to compare")
        if self.conflicts:
            parts.append(f"{len(self.conflicts)} conflicts")
        if self.refused:
            parts.append(f"{len(self.refused)} refused")
        if self.excluded:
            parts.append(f"{self.excluded} excluded")
        if self.blocked:
            parts.append(f"BLOCKED ({self.blocked})")
        return ", ".join(parts)


def is_plain_md5(etag: str | None) -> bool:
    """Whether an ETag looks like the MD5 of the content (32 hex digits, no ``-N`` suffix).

    Multipart ETags (``<hex>-<parts>``) are never MD5s of the content. SSE-KMS and some other
    providers also produce ETags that are not MD5s; those still look plain, so a mismatch with
    such an ETag is treated as "changed", never as corruption of data we did not hash ourselves.
    """
    return etag is not None and _MD5_RE.fullmatch(etag.strip('"').lower()) is not None


def content_matches(
    local_md5: str,
    local_sha256: str,
    remote_etag: str | None,
    remote_sha256: str | None,
    *,
    local_sha1: str | None = None,
    etag_is_sha1: bool = False,
) -> bool | None:
    """Decide whether local and remote content are equal.

    The stored SHA-256 wins; otherwise the ETag is compared when it is a content hash: a plain
    MD5 on S3, the SHA-1 on B2 (``etag_is_sha1``). A multipart ETag alone proves nothing.

    Args:
        local_md5: Hex MD5 of the local content.
        local_sha256: Hex SHA-256 of the local content.
        remote_etag: The remote ETag, when known.
        remote_sha256: The ``s3func-sha256`` metadata, when present.
        local_sha1: Hex SHA-1 of the local content (needed when ``etag_is_sha1``).
        etag_is_sha1: The backend's ETags are content SHA-1s (B2), not MD5s.

    Returns:
        True or False when the hashes decide, ``None`` when they cannot (treat as changed).
    """
    if remote_sha256:
        return remote_sha256.strip().lower() == local_sha256
    if remote_etag is None:
        return None
    etag = remote_etag.strip('"').lower()
    if etag_is_sha1:
        if local_sha1 is not None and _SHA1_RE.fullmatch(etag):
            return etag == local_sha1
        return None
    if is_plain_md5(etag):
        return etag == local_md5
    return None


def remote_entries(
    prefix: str,
    objects: Iterable[RemoteFile],
    *,
    check_safety: bool = True,
    windows: bool | None = None,
) -> tuple[dict[str, RemoteFile], list[PlanItem]]:
    """Map listed objects to paths relative to ``prefix`` and refuse the unsafe ones.

    Directory markers (the prefix itself, or zero-byte keys ending in ``/``) are dropped.

    Args:
        prefix: The synced prefix: ``""`` or a string ending in ``/``.
        objects: The listing.
        check_safety: Refuse keys that are unsafe as local paths (downloads). Uploads pass
            False and keep every key, since unsafe ones are then only deletion candidates.
        windows: Apply the Windows naming rules (default: whether this is Windows).

    Returns:
        ``(entries by relative path, refused items)``.
    """
    entries: dict[str, RemoteFile] = {}
    refused: list[PlanItem] = []
    for obj in objects:
        if not obj.key.startswith(prefix):
            continue
        rel = obj.key[len(prefix) :]
        if rel == "" or (rel.endswith("/") and obj.size == 0):
            continue
        if check_safety:
            problem = _paths.key_problem(rel, windows=windows)
            if problem is not None:
                refused.append(PlanItem(rel, obj.key, obj.size, problem))
                continue
        entries[rel] = obj
    return entries, refused


def _ancestors(rel: str) -> Iterator[str]:
    pos = rel.find("/")
    while pos != -1:
        yield rel[:pos]
        pos = rel.find("/", pos + 1)


def plan_sync(
    direction: Direction,
    *,
    prefix: str,
    remote: Mapping[str, RemoteFile],
    local: Mapping[str, LocalFile],
    local_dirs: Collection[str] = (),
    state: Mapping[str, StateEntry] | None = None,
    force: bool = False,
    delete_extras: bool = False,
    exclude: re.Pattern[str] | None = None,
    allow_empty_source: bool = False,
    unsafe_remote: Collection[str] = (),
    case_insensitive: bool = False,
) -> SyncPlan:
    """Decide what a sync does, without any I/O.

    Args:
        direction: ``"download"`` (remote -> local) or ``"upload"`` (local -> remote).
        prefix: The remote prefix that relative paths are joined to (``rel`` -> ``prefix+rel``).
        remote: Remote files by relative path (from :func:`remote_entries`).
        local: Local regular files by relative path.
        local_dirs: Local directories by relative path (downloads check them for clashes).
        state: The saved state by relative path.
        force: Transfer every source file, even unchanged ones.
        delete_extras: Delete destination files that the source lacks (mirror).
        exclude: Relative paths matching this (``re.search``) are neither transferred nor
            deleted.
        allow_empty_source: Allow deletions although the (filtered) source is empty.
        unsafe_remote: Relative paths of remote keys that were refused; never deleted.
        case_insensitive: The local file system folds case (downloads report keys that differ
            only by case as conflicts).

    Returns:
        The plan; ``checks`` still holds same-size files to compare by content.
    """
    state = state or {}
    plan = SyncPlan(direction)
    downloading = direction == "download"
    src_all: Mapping[str, Any] = remote if downloading else local
    dst_all: Mapping[str, Any] = local if downloading else remote

    def hidden(rel: str) -> bool:
        return exclude is not None and exclude.search(rel) is not None

    source: dict[str, Any] = {}
    for rel in sorted(src_all):
        if hidden(rel):
            plan.excluded += 1
        else:
            source[rel] = src_all[rel]
    hidden_dst = {rel for rel in dst_all if rel not in src_all and hidden(rel)}
    plan.excluded += len(hidden_dst)

    if not downloading:
        for rel in list(source):
            if rel == "":
                continue
            problem = _paths.key_problem(rel, windows=False)
            if problem is not None:
                plan.refused.append(PlanItem(rel, prefix + rel, local[rel].size, problem))
                del source[rel]

    # Deletions: destination files the source lacks, unless hidden, unsafe or refused above.
    extras: dict[str, PlanItem] = {}
    if delete_extras:
        refused_rels = {item.rel for item in plan.refused}
        for rel in sorted(dst_all):
            if rel in src_all or rel in hidden_dst or rel in unsafe_remote or rel in refused_rels:
                continue
            size = dst_all[rel].size
            extras[rel] = PlanItem(rel, prefix + rel, size, "extra")

    if downloading:
        _download_conflicts(plan, source, local, local_dirs, extras, prefix, case_insensitive)

    for rel, src in source.items():
        dst = dst_all.get(rel)
        size = src.size
        key = prefix + rel
        if force:
            plan.transfers.append(PlanItem(rel, key, size, "forced"))
        elif dst is None:
            plan.transfers.append(PlanItem(rel, key, size, "new"))
        elif dst.size != size:
            plan.transfers.append(PlanItem(rel, key, size, "size differs"))
        elif _state_says_unchanged(
            state.get(rel), local.get(rel), remote[rel].etag if rel in remote else None
        ):
            plan.skipped.append(PlanItem(rel, key, size, "unchanged"))
        else:
            plan.checks.append(PlanItem(rel, key, size, "same size"))

    plan.deletes = list(extras.values())
    if plan.deletes and not source and not allow_empty_source:
        side = "remote prefix" if downloading else "local directory"
        plan.blocked = (
            f"the {side} is empty or missing (after excludes), so mirroring would delete "
            f"{len(plan.deletes)} file(s); pass allow_empty_source=True to confirm"
        )
    return plan


def _state_says_unchanged(
    entry: StateEntry | None, local: LocalFile | None, remote_etag: str | None
) -> bool:
    return (
        entry is not None
        and local is not None
        and entry.trusted
        and entry.etag is not None
        and entry.etag == remote_etag
        and entry.size == local.size
        and entry.mtime_ns == local.mtime_ns
    )


def _download_conflicts(
    plan: SyncPlan,
    source: dict[str, Any],
    local: Mapping[str, LocalFile],
    local_dirs: Collection[str],
    extras: dict[str, PlanItem],
    prefix: str,
    case_insensitive: bool,
) -> None:
    """Move source entries that cannot become local files into ``plan.conflicts``."""
    fold: Callable[[str], str] = str.casefold if case_insensitive else str
    needed_dirs: dict[str, str] = {}
    for rel in source:
        for anc in _ancestors(rel):
            needed_dirs.setdefault(fold(anc), rel)
    seen: dict[str, str] = {}
    for rel in list(source):
        folded = fold(rel)
        child = needed_dirs.get(folded)
        reason: str | None
        if child is not None:
            reason = f"key is also a prefix (clashes with {prefix + child!r})"
        elif folded in seen:
            reason = f"differs only by case from {prefix + seen[folded]!r}"
        else:
            seen[folded] = rel
            continue
        plan.conflicts.append(PlanItem(rel, prefix + rel, source[rel].size, reason))
        del source[rel]

    # The local side: a directory where a file must go, or a file where a directory must go.
    local_dir_set = set(local_dirs)
    for rel in list(source):
        reason = None
        if rel in local_dir_set:
            inner = [f for f in local if f.startswith(rel + "/")]
            if not all(f in extras for f in inner):
                reason = "a local directory is in the way"
        else:
            for anc in _ancestors(rel):
                if anc in local and anc not in extras:
                    reason = f"the local file {anc!r} is in the way"
                    break
        if reason is not None:
            plan.conflicts.append(PlanItem(rel, prefix + rel, source[rel].size, reason))
            del source[rel]


# --------------------------------------------------------------------------------------------
# State file
# --------------------------------------------------------------------------------------------


class _State:
    """The per-target state file: atomic writes, tolerant reads, thread-safe updates."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, StateEntry] = {}
        self._lock = threading.Lock()
        self.dirty = False

    def load(self) -> _State:
        try:
            with open(self.path, encoding="utf-8") as f:
                raw = json.load(f)
            if not isinstance(raw, dict) or raw.get("version") != _STATE_VERSION:
                return self
            for rel, value in raw["files"].items():
                size, mtime_ns, etag, sha256, trusted = value
                self.entries[rel] = StateEntry(
                    int(size), int(mtime_ns), etag, str(sha256), bool(trusted)
                )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self.entries = {}
        return self

    def record(self, rel: str, size: int, mtime_ns: int, etag: str | None, sha256: str) -> None:
        trusted = mtime_ns < time.time_ns() - _RACY_NS
        entry = StateEntry(size, mtime_ns, etag, sha256, trusted)
        with self._lock:
            self.entries[rel] = entry
            self.dirty = True

    def forget(self, rel: str) -> None:
        with self._lock:
            if self.entries.pop(rel, None) is not None:
                self.dirty = True

    def save(self, keep: Collection[str] | None = None) -> None:
        with self._lock:
            if keep is not None:
                stale = [rel for rel in self.entries if rel not in keep]
                for rel in stale:
                    del self.entries[rel]
                self.dirty = self.dirty or bool(stale)
            if not self.dirty:
                return
            files = {
                rel: [e.size, e.mtime_ns, e.etag, e.sha256, e.trusted]
                for rel, e in self.entries.items()
            }
            self.dirty = False
        payload = json.dumps({"version": _STATE_VERSION, "files": files}, separators=(",", ":"))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write_bytes(self.path, payload.encode("utf-8"))
        except OSError as exc:  # the state is only an accelerator
            log.warning("could not save sync state %s: %s", self.path, exc)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = create_temp(str(path.parent), _paths.TEMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        unlink_quietly(tmp)
        raise


@functools.lru_cache(maxsize=256)
def _content_type(extension: str) -> str | None:
    return mimetypes.guess_type("file" + extension, strict=False)[0]


def _read_small(path: str, size: int) -> bytes:
    """Read a file expected to hold ``size`` bytes with as few system calls as possible.

    (``open()`` adds an ``fstat`` and an ``ioctl``; with many transfer threads each call
    hands the GIL around.) A file that changed size since it was scanned raises
    :class:`SyncError`, so a half-written file is never uploaded as if complete.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        data = os.read(fd, size + 1)
        while len(data) < size:  # a short read (rare on regular files)
            more = os.read(fd, size + 1 - len(data))
            if not more:
                break
            data += more
    finally:
        os.close(fd)
    if len(data) != size:
        raise SyncError(f"{path} changed while it was uploaded (size {size} became {len(data)})")
    return data


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# --------------------------------------------------------------------------------------------
# Local helpers
# --------------------------------------------------------------------------------------------


def _scan_local(root: str) -> tuple[dict[str, LocalFile], set[str]]:
    """List the regular files (following file symlinks) and directories under ``root``.

    Symlinked directories are not entered, our temporary files are ignored, special files are
    skipped.
    """
    files: dict[str, LocalFile] = {}
    dirs: set[str] = set()
    stack = [("", root)]
    while stack:
        rel_dir, path = stack.pop()
        try:
            it = os.scandir(path)
        except FileNotFoundError:
            continue
        with it:
            for entry in it:
                name = entry.name
                if _paths.is_temp_name(name):
                    continue
                rel = f"{rel_dir}/{name}" if rel_dir else name
                if os.sep != "/":
                    rel = rel.replace(os.sep, "/")
                try:
                    if entry.is_dir(follow_symlinks=False):
                        dirs.add(rel)
                        stack.append((rel, entry.path))
                        continue
                    st = entry.stat()
                except OSError:
                    continue
                if stat_mod.S_ISREG(st.st_mode):
                    files[rel] = LocalFile(st.st_size, st.st_mtime_ns)
    return files, dirs


def _hash_file(path: str, with_sha1: bool = False) -> tuple[str, str, str | None]:
    """Return the hex MD5, SHA-256 and (when asked) SHA-1 of a file, in one pass."""
    hashers = [hashlib.md5(usedforsecurity=False), hashlib.sha256()]
    if with_sha1:
        hashers.append(hashlib.sha1(usedforsecurity=False))
    with open(path, "rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            for h in hashers:
                h.update(chunk)
    digests = [h.hexdigest() for h in hashers]
    return digests[0], digests[1], digests[2] if with_sha1 else None


def _remote_mtime_ns(resp: _Fields) -> int | None:
    meta = resp.metadata or {}
    raw = meta.get(MTIME_METADATA)
    if raw:
        with contextlib.suppress(ValueError):
            return int(raw.strip()) * 1_000_000
    raw = meta.get(_RCLONE_MTIME)
    if raw:
        with contextlib.suppress(ValueError):
            return int(float(raw.strip()) * 1e9)
    if resp.last_modified is not None:
        return int(resp.last_modified.timestamp() * 1_000_000) * 1000
    return None


def _bare_etag(etag: str | None) -> str | None:
    """An ETag without its quotes (``None`` when missing or empty)."""
    return etag.strip('"') if etag else None


def _stored_sha256(resp: _Fields) -> str | None:
    value = (resp.metadata or {}).get(SHA256_METADATA)
    return value.strip().lower() if value else None


def _mismatch(
    message: str, key: str, algorithm: str, expected: str, actual: str
) -> HashMismatchError:
    exc = HashMismatchError(message, key=key)
    exc.algorithm = algorithm
    exc.expected = expected
    exc.actual = actual
    return exc


# --------------------------------------------------------------------------------------------
# Progress and results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncProgress:
    """A snapshot of a running sync, passed to the ``progress`` callback.

    Attributes:
        files_done: Transfers finished (successfully or not).
        files_total: Transfers planned.
        bytes_done: Bytes of finished transfers.
        bytes_total: Bytes planned.
    """

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int


ProgressCallback = Callable[[SyncProgress], None]


class _Tracker:
    """Aggregates progress from worker threads; the callback is called under a lock."""

    def __init__(self, callback: ProgressCallback | None, files: int, nbytes: int) -> None:
        self._callback = callback
        self._lock = threading.Lock()
        self.files_total = files
        self.bytes_total = nbytes
        self.files_done = 0
        self.bytes_done = 0

    def add(self, nbytes: int, *, files: int = 0) -> None:
        with self._lock:
            self.files_done += files
            self.bytes_done += nbytes
            if self._callback is not None:
                self._callback(
                    SyncProgress(
                        self.files_done, self.files_total, self.bytes_done, self.bytes_total
                    )
                )


class _Meter:
    """The bytes of one file; a ``progress(done, total)`` callback for the session helpers."""

    def __init__(self, tracker: _Tracker) -> None:
        self._tracker = tracker
        self.reported = 0

    def __call__(self, done: int, total: int | None) -> None:
        if done > self.reported:
            self._tracker.add(done - self.reported)
            self.reported = done

    def finish(self, size: int) -> None:
        self._tracker.add(max(size - self.reported, 0), files=1)


class _TqdmProgress:
    def __init__(self, desc: str) -> None:
        try:
            tqdm: Any = importlib.import_module("tqdm").tqdm
        except ImportError as exc:
            raise ConfigurationError(
                "progress=True needs tqdm (pip install 's3func[progress]')"
            ) from exc
        self._bar: Any = tqdm(desc=desc, unit="B", unit_scale=True, unit_divisor=1024)
        self._last = 0

    def __call__(self, p: SyncProgress) -> None:
        if self._bar.total != p.bytes_total:
            self._bar.total = p.bytes_total
        self._bar.set_postfix_str(f"{p.files_done}/{p.files_total} files", refresh=False)
        self._bar.update(p.bytes_done - self._last)
        self._last = p.bytes_done

    def close(self) -> None:
        self._bar.close()


@dataclass
class SyncResult:
    """The outcome of the last :meth:`S3Object.download` or :meth:`S3Object.upload`.

    Attributes:
        plan: The plan that was carried out (checks resolved).
        transferred: Relative paths copied.
        deleted: Relative paths deleted at the destination.
        failed: Relative path -> error message, for transfers and deletes that failed.
        bytes_transferred: Bytes copied.
        seconds: Wall time of the whole operation.
    """

    plan: SyncPlan
    transferred: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    bytes_transferred: int = 0
    seconds: float = 0.0


# --------------------------------------------------------------------------------------------
# S3Object
# --------------------------------------------------------------------------------------------


def _session_from_uri(
    parsed: _paths.ParsedURI, region_name: str | None, endpoint_url: str | None
) -> BaseSession:
    # The providers live in higher layers; they are imported by name, lazily, and only when no
    # session was passed in, so sync.py itself depends on nothing but the session contract.
    module_name, class_name = {
        "s3": ("s3func.s3", "S3Session"),
        "b2": ("s3func.b2", "B2Session"),
    }[parsed.scheme]
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"{parsed.scheme}:// URIs need {module_name}.{class_name}, which is not available; "
            "pass session= explicitly"
        ) from exc
    kwargs: dict[str, Any] = {"bucket": parsed.bucket}
    if parsed.scheme == "s3" and region_name is not None:
        kwargs["region"] = region_name
    if endpoint_url is not None:
        kwargs["endpoint_url"] = endpoint_url
    return cast("BaseSession", cls(**kwargs))


def _session_endpoint(session: object) -> str | None:
    for name in ("endpoint_url", "endpoint", "api_url", "download_url"):
        value = getattr(session, name, None)
        if isinstance(value, str) and value:
            return value
    return None


class S3Object:
    """A remote object or prefix mirrored by a local file or directory.

    ``s3://bucket/key`` and ``b2://bucket/key`` are accepted. A URI ending in ``/`` (or naming
    the bucket root) is a prefix; otherwise the remote side decides: an existing object is a
    file, else the keys under ``key/`` form a directory. For uploads the local side decides.

    Example:
        >>> obj = S3Object("s3://my-bucket/reports/2024.csv")     # doctest: +SKIP
        >>> obj.download()                                         # doctest: +SKIP
        '/home/me/.cache/s3func/s3/default/my-bucket/reports/2024.csv'
        >>> with obj.open("a") as f:                               # doctest: +SKIP
        ...     f.write("one more row")

    Args:
        uri: ``s3://bucket/key`` or ``b2://bucket/key``.
        local_path: The local file or directory. Defaults to
            ``<cache>/<scheme>/<endpoint>/<bucket>/<key>`` where ``<cache>`` is
            ``$XDG_CACHE_HOME/s3func`` or ``~/.cache/s3func``.
        session: The session to use (its bucket must match the URI's). Without one, a session is
            built from the environment, as ``S3Session(bucket=..., region=region_name)`` or
            ``B2Session(bucket=...)``, and closed by :meth:`close`.
        region_name: The region for a session built here.
        endpoint_url: The endpoint for a session built here.
        cache_dir: Overrides the cache root (``$XDG_CACHE_HOME/s3func``); also where the sync
            state files live.
        max_workers: Transfers in flight at once (small files: requests on as many
            connections; large files: threads).

    Raises:
        ConfigurationError: Bad URI, session for another bucket, or no session available.
        S3ObjectError: The key cannot be stored in the cache directory safely.
    """

    def __init__(
        self,
        uri: str,
        local_path: str | os.PathLike[str] | None = None,
        session: BaseSession | None = None,
        region_name: str | None = None,
        *,
        endpoint_url: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        max_workers: int = 8,
    ) -> None:
        try:
            self._uri = _paths.parse_uri(uri)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        if max_workers < 1:
            raise ConfigurationError("max_workers must be at least 1")
        self._owns_session = session is None
        if session is None:
            session = _session_from_uri(self._uri, region_name, endpoint_url)
        elif getattr(session, "bucket", self._uri.bucket) != self._uri.bucket:
            raise ConfigurationError(
                f"the session is for bucket {session.bucket!r}, the URI for {self._uri.bucket!r}"
            )
        self._session: BaseSession = session
        self._max_workers = max_workers
        self._cache_root = Path(cache_dir) if cache_dir is not None else None
        self.last_result: SyncResult | None = None
        if local_path is not None:
            self._local = os.path.abspath(os.fspath(local_path))
        else:
            self._local = self._default_local_path()

    # -- identity ------------------------------------------------------------------------

    @property
    def uri(self) -> str:
        """The URI this object was created with (normalised)."""
        return str(self._uri)

    @property
    def bucket(self) -> str:
        """The bucket name."""
        return self._uri.bucket

    @property
    def key(self) -> str:
        """The key or prefix (``""`` for the bucket root)."""
        return self._uri.key

    @property
    def session(self) -> BaseSession:
        """The session in use."""
        return self._session

    @property
    def local_path(self) -> str:
        """The local file or directory path (absolute)."""
        return self._local

    def __fspath__(self) -> str:
        return self._local

    def __repr__(self) -> str:
        return f"S3Object({self.uri!r}, local_path={self._local!r})"

    def close(self) -> None:
        """Close the session if this object created it."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> S3Object:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _cache_root_dir(self) -> Path:
        return self._cache_root if self._cache_root is not None else _paths.default_cache_root()

    def _default_local_path(self) -> str:
        names = _paths.cache_namespace(
            self._uri.scheme, _session_endpoint(self._session), self._uri.bucket
        )
        base = self._cache_root_dir().joinpath(*names)
        key = self._uri.key.rstrip("/")
        if key == "":
            return str(base)
        problem = _paths.key_problem(key)
        if problem is not None:
            raise S3ObjectError(
                f"the key {key!r} cannot be stored under the cache directory ({problem}); "
                "pass local_path=",
                bucket=self._uri.bucket,
                key=key,
            )
        return str(base / _paths.local_relpath(key))

    def _state(self, remote: str) -> _State:
        ident = json.dumps(
            [
                self._uri.scheme,
                _session_endpoint(self._session),
                self._uri.bucket,
                remote,
                self._local,
            ]
        )
        digest = hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()[:40]
        return _State(self._cache_root_dir() / "state" / f"{digest}.json").load()

    # -- remote helpers ------------------------------------------------------------------

    def _head(self, key: str) -> _Fields | None:
        try:
            return self._session.head_object(key)
        except NotFoundError:
            return None

    def _any_under(self, prefix: str) -> bool:
        for _ in self._session.list_objects(prefix=prefix, max_keys=1).iter_objects():
            return True
        return False

    def _list(self, prefix: str) -> list[RemoteFile]:
        out = []
        for o in self._session.list_objects(prefix=prefix).iter_objects():
            meta = o.metadata
            sha = meta.get(SHA256_METADATA) if meta else None
            etag = _bare_etag(o.etag)
            out.append(RemoteFile(o.key, o.content_length, etag, sha.lower() if sha else None))
        return out

    def _etag_is_sha1(self) -> bool:
        return getattr(self._session, "provider", None) == "b2"

    def _dir_prefix(self) -> str:
        key = self._uri.key
        return key if key == "" or key.endswith("/") else key + "/"

    def exists(self) -> bool:
        """Whether the object, or any object under the prefix, exists remotely.

        Raises:
            ServiceError: The service failed (other than "not found").
        """
        if not self._uri.is_prefix and self._head(self._uri.key) is not None:
            return True
        return self._any_under(self._dir_prefix())

    def delete(self, *, allow_bucket_root: bool = False) -> bool:
        """Delete the remote object, or every object under the prefix (in batches of 1000).

        The local copy is left alone.

        Args:
            allow_bucket_root: Required to delete a whole bucket (``s3://bucket/``).

        Returns:
            True when something was deleted.

        Raises:
            S3ObjectError: The URI is the bucket root and ``allow_bucket_root`` is False.
            SyncError: Some deletions failed.
        """
        if not self._uri.is_prefix and self._head(self._uri.key) is not None:
            self._session.delete_object(self._uri.key)
            return True
        prefix = self._dir_prefix()
        if prefix == "" and not allow_bucket_root:
            raise S3ObjectError(
                "refusing to delete a whole bucket; pass allow_bucket_root=True",
                bucket=self._uri.bucket,
            )
        keys = [o.key for o in self._session.list_objects(prefix=prefix).iter_objects()]
        self._delete_remote(keys)
        return bool(keys)

    def _delete_remote(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), _DELETE_BATCH):
            try:
                self._session.delete_objects(list(keys[start : start + _DELETE_BATCH]))
            except S3FuncError as exc:
                raise SyncError(
                    f"deleting {len(keys)} objects under {self.uri} failed: {exc}",
                    bucket=self._uri.bucket,
                ) from exc

    # -- download ------------------------------------------------------------------------

    @overload
    def download(
        self,
        check_hash: bool = ...,
        force_sync: bool = ...,
        *,
        dry_run: Literal[False] = ...,
        exclude_pattern: str = ...,
        delete_extras: bool | None = ...,
        allow_empty_source: bool = ...,
        skip_unsafe: bool = ...,
        progress: ProgressCallback | bool | None = ...,
    ) -> str: ...

    @overload
    def download(
        self,
        check_hash: bool = ...,
        force_sync: bool = ...,
        *,
        dry_run: Literal[True],
        exclude_pattern: str = ...,
        delete_extras: bool | None = ...,
        allow_empty_source: bool = ...,
        skip_unsafe: bool = ...,
        progress: ProgressCallback | bool | None = ...,
    ) -> SyncPlan: ...

    def download(
        self,
        check_hash: bool = True,
        force_sync: bool = False,
        *,
        dry_run: bool = False,
        exclude_pattern: str = "",
        delete_extras: bool | None = None,
        allow_empty_source: bool = False,
        skip_unsafe: bool = False,
        progress: ProgressCallback | bool | None = None,
    ) -> str | SyncPlan:
        """Bring the local file or directory up to date with the remote side.

        Unchanged files (same size and content) are skipped. Every file is written to a
        temporary sibling and renamed into place, so readers never see a partial file, and its
        mtime is set from the remote object (the uploader's mtime when stored, else
        LastModified).

        For a prefix, keys that are unsafe as local paths are never written and keys that clash
        (``a`` next to ``a/b``) are not synced; both are listed in :attr:`last_result` and,
        unless ``skip_unsafe`` is True, raised as a :class:`SyncError` after every safe file
        was handled.

        Args:
            check_hash: Verify each downloaded file against the stored SHA-256, else against
                a plain-MD5 ETag (multipart ETags are never taken for MD5s).
            force_sync: Download every file, even unchanged ones, and delete local files that
                the remote side lacks.
            dry_run: Return the plan (changes resolved by comparing content) without writing or
                deleting anything.
            exclude_pattern: A regular expression (``re.search`` on the ``/``-separated
                relative path); matching files are neither downloaded nor deleted.
            delete_extras: Delete local extras (mirror); defaults to ``force_sync``.
            allow_empty_source: Let a mirror delete local files although the remote prefix is
                empty or missing.
            skip_unsafe: Only report refused and conflicting keys instead of raising.
            progress: A callable receiving :class:`SyncProgress` snapshots (called from one
                thread at a time), or True for a tqdm bar.

        Returns:
            The local path, or the :class:`SyncPlan` for a dry run.

        Raises:
            HashMismatchError: Downloaded content did not match its hash (nothing was left in
                place for that file).
            SyncError: Transfers failed, keys were refused or clashed, or a mirror would
                delete everything.
            S3ObjectError: Nothing exists at the URI, or the local path has the wrong type.
        """
        started = time.monotonic()
        exclude = _compile(exclude_pattern)
        mirror = force_sync if delete_extras is None else delete_extras
        head = None if self._uri.is_prefix else self._head(self._uri.key)
        if head is not None:
            plan, work = self._plan_download_object(head, force_sync)
        else:
            prefix = self._dir_prefix()
            listing = self._list(prefix)
            if not listing and not self._uri.is_prefix:
                raise S3ObjectError(
                    f"nothing exists at {self.uri}", bucket=self._uri.bucket, key=self._uri.key
                )
            plan, work = self._plan_download_prefix(
                prefix, listing, force_sync, mirror, exclude, allow_empty_source
            )
        return self._finish(
            plan, work, started, self._local, dry_run, check_hash, progress, skip_unsafe
        )

    def _finish(
        self,
        plan: SyncPlan,
        work: _Work,
        started: float,
        value: str,
        dry_run: bool,
        check_hash: bool,
        progress: ProgressCallback | bool | None,
        skip_unsafe: bool,
    ) -> str | SyncPlan:
        self._resolve_checks(plan, work)
        if dry_run:
            return plan
        if plan.blocked:
            raise SyncError(plan.blocked, bucket=self._uri.bucket, key=self._uri.key)
        result = SyncResult(plan)
        self.last_result = result
        errors = self._execute(plan, work, result, check_hash, progress)
        result.seconds = time.monotonic() - started
        self._raise_for(result, errors, skip_unsafe, work.prefix_mode)
        return value

    def _download_single(self, head: _Fields) -> None:
        plan, work = self._plan_download_object(head, False)
        self._finish(plan, work, time.monotonic(), self._local, False, True, None, False)

    def _plan_download_object(self, head: _Fields, force: bool) -> tuple[SyncPlan, _Work]:
        key = self._uri.key
        if os.path.isdir(self._local):
            raise S3ObjectError(
                f"{self._local} is a directory but {self.uri} is an object",
                bucket=self._uri.bucket,
                key=key,
            )
        etag = _bare_etag(head.etag)
        remote = {"": RemoteFile(key, head.content_length or 0, etag)}
        local: dict[str, LocalFile] = {}
        with contextlib.suppress(OSError):
            st = os.stat(self._local)
            local[""] = LocalFile(st.st_size, st.st_mtime_ns)
        state = self._state(key)
        plan = plan_sync(
            "download", prefix=key, remote=remote, local=local, state=state.entries, force=force
        )
        work = _Work("download", key, self._local, remote, local, state, heads={"": head})
        return plan, work

    def _plan_download_prefix(
        self,
        prefix: str,
        listing: list[RemoteFile],
        force: bool,
        mirror: bool,
        exclude: re.Pattern[str] | None,
        allow_empty_source: bool,
    ) -> tuple[SyncPlan, _Work]:
        if os.path.isfile(self._local):
            raise S3ObjectError(
                f"{self._local} is a file but {self.uri} is a prefix",
                bucket=self._uri.bucket,
                key=self._uri.key,
            )
        remote, refused = remote_entries(prefix, listing)
        local, dirs = _scan_local(self._local)
        state = self._state(prefix)
        plan = plan_sync(
            "download",
            prefix=prefix,
            remote=remote,
            local=local,
            local_dirs=dirs,
            state=state.entries,
            force=force,
            delete_extras=mirror,
            exclude=exclude,
            allow_empty_source=allow_empty_source,
            unsafe_remote={item.rel for item in refused},
            case_insensitive=_case_insensitive(self._local),
        )
        plan.refused[:0] = refused
        work = _Work("download", prefix, self._local, remote, local, state, prefix_mode=True)
        return plan, work

    # -- upload --------------------------------------------------------------------------

    @overload
    def upload(
        self,
        check_hash: bool = ...,
        exclude_pattern: str = ...,
        force_sync: bool = ...,
        *,
        dry_run: Literal[False] = ...,
        delete_extras: bool | None = ...,
        allow_empty_source: bool = ...,
        skip_unsafe: bool = ...,
        progress: ProgressCallback | bool | None = ...,
    ) -> str: ...

    @overload
    def upload(
        self,
        check_hash: bool = ...,
        exclude_pattern: str = ...,
        force_sync: bool = ...,
        *,
        dry_run: Literal[True],
        delete_extras: bool | None = ...,
        allow_empty_source: bool = ...,
        skip_unsafe: bool = ...,
        progress: ProgressCallback | bool | None = ...,
    ) -> SyncPlan: ...

    def upload(
        self,
        check_hash: bool = True,
        exclude_pattern: str = "",
        force_sync: bool = False,
        *,
        dry_run: bool = False,
        delete_extras: bool | None = None,
        allow_empty_source: bool = False,
        skip_unsafe: bool = False,
        progress: ProgressCallback | bool | None = None,
    ) -> str | SyncPlan:
        """Bring the remote object or prefix up to date with the local file or directory.

        Unchanged files are skipped. Every uploaded object carries ``s3func-sha256`` (the hex
        SHA-256 of its content) and ``src_last_modified_millis`` (the local mtime) in its user
        metadata.

        Args:
            check_hash: Verify the service's ETag against the MD5 of what was sent, when the
                ETag is a plain MD5.
            exclude_pattern: A regular expression (``re.search`` on the ``/``-separated
                relative path); matching files are neither uploaded nor deleted remotely.
            force_sync: Upload every file, even unchanged ones, and delete remote objects that
                the local directory lacks.
            dry_run: Return the plan without uploading or deleting anything.
            delete_extras: Delete remote extras (mirror); defaults to ``force_sync``.
            allow_empty_source: Let a mirror delete remote objects although the local directory
                is empty (after excludes).
            skip_unsafe: Only report refused local names instead of raising.
            progress: A callable receiving :class:`SyncProgress` snapshots, or True for tqdm.

        Returns:
            The URI, or the :class:`SyncPlan` for a dry run.

        Raises:
            S3ObjectError: The local file or directory does not exist.
            HashMismatchError: The service stored something other than what was sent (the bad
                object is deleted).
            SyncError: Uploads or deletes failed, local names were refused, or a mirror would
                delete everything.
        """
        started = time.monotonic()
        exclude = _compile(exclude_pattern)
        mirror = force_sync if delete_extras is None else delete_extras
        if os.path.isfile(self._local):
            if self._uri.is_prefix:
                raise S3ObjectError(
                    f"{self.uri} is a prefix but {self._local} is a file",
                    bucket=self._uri.bucket,
                    key=self._uri.key,
                )
            plan, work = self._plan_upload_object(force_sync)
        elif os.path.isdir(self._local):
            plan, work = self._plan_upload_prefix(force_sync, mirror, exclude, allow_empty_source)
        else:
            raise S3ObjectError(
                f"the local path {self._local} does not exist",
                bucket=self._uri.bucket,
                key=self._uri.key,
            )
        return self._finish(
            plan, work, started, self.uri, dry_run, check_hash, progress, skip_unsafe
        )

    def _plan_upload_object(self, force: bool) -> tuple[SyncPlan, _Work]:
        key = self._uri.key
        st = os.stat(self._local)
        local = {"": LocalFile(st.st_size, st.st_mtime_ns)}
        remote: dict[str, RemoteFile] = {}
        heads: dict[str, _Fields] = {}
        if not force:
            head = self._head(key)
            if head is not None:
                etag = _bare_etag(head.etag)
                remote[""] = RemoteFile(key, head.content_length or 0, etag)
                heads[""] = head
        state = self._state(key)
        plan = plan_sync(
            "upload", prefix=key, remote=remote, local=local, state=state.entries, force=force
        )
        work = _Work("upload", key, self._local, remote, local, state, heads=heads)
        return plan, work

    def _plan_upload_prefix(
        self,
        force: bool,
        mirror: bool,
        exclude: re.Pattern[str] | None,
        allow_empty_source: bool,
    ) -> tuple[SyncPlan, _Work]:
        prefix = self._dir_prefix()
        local, _ = _scan_local(self._local)
        remote, _ = remote_entries(prefix, self._list(prefix), check_safety=False)
        unsafe = {rel for rel in remote if _paths.key_problem(rel, windows=False) is not None}
        state = self._state(prefix)
        plan = plan_sync(
            "upload",
            prefix=prefix,
            remote=remote,
            local=local,
            state=state.entries,
            force=force,
            delete_extras=mirror,
            exclude=exclude,
            allow_empty_source=allow_empty_source,
            unsafe_remote=unsafe,
        )
        work = _Work("upload", prefix, self._local, remote, local, state, prefix_mode=True)
        return plan, work

    # -- open ----------------------------------------------------------------------------

    @overload
    def open(
        self,
        mode: Literal["r", "w", "a", "rt", "wt", "at"] = "r",
        encoding: str = "utf-8",
    ) -> AbstractContextManager[TextIO]: ...

    @overload
    def open(
        self, mode: Literal["rb", "wb", "ab"], encoding: str = "utf-8"
    ) -> AbstractContextManager[BinaryIO]: ...

    def open(
        self, mode: str = "r", encoding: str = "utf-8"
    ) -> AbstractContextManager[TextIO] | AbstractContextManager[BinaryIO]:
        """Open the object as a local file, syncing around the ``with`` block.

        * ``"r"``/``"rb"``: download (when changed), then read the local copy.
        * ``"w"``/``"wb"``: write a temporary file; on a clean exit it replaces the local copy
          and is uploaded. If the block raises, nothing is uploaded, the local copy and the
          remote object are left as they were.
        * ``"a"``/``"ab"``: download first (an object that does not exist starts empty), then
          append, then upload on a clean exit, as for ``"w"``.

        Example:
            >>> with S3Object("s3://bucket/notes.txt").open("w") as f:   # doctest: +SKIP
            ...     f.write("hello")

        Args:
            mode: One of ``r rb w wb a ab`` (``rt wt at`` are accepted as text).
            encoding: Text encoding (ignored for binary modes).

        Returns:
            A context manager yielding the open file.

        Raises:
            ValueError: Unsupported mode.
            S3ObjectError: The URI is a prefix.
            SyncError: The upload after the block failed (the local file keeps the new content).
        """
        if mode not in _TEXT_MODES and mode not in _BINARY_MODES:
            raise ValueError(f"unsupported mode {mode!r}; use r, rb, w, wb, a or ab")
        if self._uri.is_prefix:
            raise S3ObjectError(
                f"{self.uri} is a prefix and cannot be opened as a file", bucket=self._uri.bucket
            )
        return cast("AbstractContextManager[TextIO]", self._open(mode, encoding))

    @contextlib.contextmanager
    def _open(self, mode: str, encoding: str) -> Iterator[IO[Any]]:
        text = mode in _TEXT_MODES
        enc = encoding if text else None
        kind = mode[0]
        head = self._head(self._uri.key) if kind in "ra" else None
        if kind == "r":
            if head is None:
                raise S3ObjectError(
                    f"{self.uri} does not exist", bucket=self._uri.bucket, key=self._uri.key
                )
            self._download_single(head)
            with open(self._local, "r" if text else "rb", encoding=enc) as f:
                yield f
            return
        if head is not None:
            self._download_single(head)
        parent = os.path.dirname(self._local)
        os.makedirs(parent, exist_ok=True)
        fd, tmp = create_temp(parent, _paths.TEMP_PREFIX)
        try:
            copy_mode(fd, tmp, self._local)
            if head is not None:
                with open(self._local, "rb") as src, os.fdopen(os.dup(fd), "wb") as dst:
                    while chunk := src.read(_CHUNK):
                        dst.write(chunk)
            file_mode = ("a" if kind == "a" else "w") + ("" if text else "b")
            with os.fdopen(fd, file_mode, encoding=enc) as f:
                fd = -1
                yield f
            os.replace(tmp, self._local)
        except BaseException:
            if fd != -1:
                os.close(fd)
            unlink_quietly(tmp)
            raise
        self.upload(force_sync=True)

    # -- execution -----------------------------------------------------------------------

    def _resolve_checks(self, plan: SyncPlan, work: _Work) -> None:
        """Compare same-size files by content and move them to ``transfers`` or ``skipped``."""
        if not plan.checks:
            return
        checks, plan.checks = plan.checks, []

        sha1_etags = self._etag_is_sha1()

        def compare(item: PlanItem) -> tuple[PlanItem, bool]:
            try:
                return item, same_content(item)
            except (OSError, S3FuncError) as exc:  # the transfer will meet it and report it
                log.debug("cannot compare %s: %s", item.key, exc)
                return item, False

        def same_content(item: PlanItem) -> bool:
            path = work.local_file(item.rel)
            md5, sha, sha1 = _hash_file(path, sha1_etags)
            rf = work.remote[item.rel]
            head = work.heads.get(item.rel)
            remote_sha = _stored_sha256(head) if head is not None else rf.sha256
            etag = rf.etag
            known = work.state.entries.get(item.rel)
            if remote_sha is None and known is not None and etag and known.etag == etag:
                # We hashed this very remote version when we last synced it.
                remote_sha = known.sha256
            etag_decides = _SHA1_RE.fullmatch(etag or "") if sha1_etags else is_plain_md5(etag)
            if remote_sha is None and not etag_decides and head is None:
                head = self._head(item.key)
                if head is None:
                    return False
                remote_sha = _stored_sha256(head)
                etag = _bare_etag(head.etag)
            same = content_matches(
                md5, sha, etag, remote_sha, local_sha1=sha1, etag_is_sha1=sha1_etags
            )
            if same:
                with contextlib.suppress(OSError):
                    st = os.stat(path)
                    work.state.record(item.rel, st.st_size, st.st_mtime_ns, etag, sha)
            return bool(same)

        for item, same in self._map(compare, checks):
            if same:
                plan.skipped.append(PlanItem(item.rel, item.key, item.size, "same content"))
            else:
                plan.transfers.append(PlanItem(item.rel, item.key, item.size, "content differs"))
        work.state.save()

    def _map(
        self, fn: Callable[[PlanItem], tuple[PlanItem, bool]], items: list[PlanItem]
    ) -> Iterator[tuple[PlanItem, bool]]:
        if len(items) == 1 or self._max_workers == 1:
            yield from map(fn, items)
            return
        pool = ThreadPoolExecutor(self._max_workers, thread_name_prefix="s3func-sync")
        try:
            yield from pool.map(fn, items)
        except BaseException:  # Ctrl-C or an error: do not start the queued transfers
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)

    def _execute(
        self,
        plan: SyncPlan,
        work: _Work,
        result: SyncResult,
        check_hash: bool,
        progress: ProgressCallback | bool | None,
    ) -> dict[str, BaseException]:
        bar: _TqdmProgress | None = None
        callback: ProgressCallback | None
        if progress is True:
            bar = _TqdmProgress(f"{work.direction} {self.uri}")
            callback = bar
        else:
            callback = progress or None
        tracker = _Tracker(callback, len(plan.transfers), plan.bytes_to_transfer)
        errors: dict[str, BaseException] = {}
        try:
            if work.direction == "download":
                self._delete_local(plan.deletes, work, result, errors)
                if work.prefix_mode:
                    ready = self._prepare_dirs(plan.transfers, work, errors)
                else:
                    os.makedirs(os.path.dirname(self._local), exist_ok=True)
                    ready = plan.transfers
                self._run_transfers(ready, work, result, errors, tracker, check_hash)
            else:
                self._run_transfers(plan.transfers, work, result, errors, tracker, check_hash)
                self._delete_remote_items(plan.deletes, work, result, errors)
        finally:
            if bar is not None:
                bar.close()
            keep: set[str] | None = None
            if work.prefix_mode:
                keep = set(work.remote) | set(work.local)
                keep.difference_update(result.deleted)
            work.state.save(keep)
        result.failed = {rel: _describe(exc) for rel, exc in errors.items()}
        return errors

    def _prepare_dirs(
        self, items: list[PlanItem], work: _Work, errors: dict[str, BaseException]
    ) -> list[PlanItem]:
        """Create parent directories and drop items whose parent resolves outside the root."""
        root = self._local
        os.makedirs(root, exist_ok=True)
        ok: dict[str, bool] = {}
        ready = []
        for item in items:
            parent = os.path.dirname(work.local_file(item.rel))
            good = ok.get(parent)
            if good is None:
                good = False
                try:
                    # Check before creating anything (a symlinked ancestor may point outside),
                    # and again after, when every component exists and resolves.
                    if _paths.is_within(root, parent):
                        os.makedirs(parent, exist_ok=True)
                        good = _paths.is_within(root, parent)
                except OSError as exc:
                    errors[item.rel] = exc
                    ok[parent] = False
                    continue
                ok[parent] = good
            if good:
                ready.append(item)
            elif item.rel not in errors:
                errors[item.rel] = SyncError(
                    f"refused {item.key!r}: its directory resolves outside {root}",
                    bucket=self._uri.bucket,
                    key=item.key,
                )
        return ready

    def _run_transfers(
        self,
        items: list[PlanItem],
        work: _Work,
        result: SyncResult,
        errors: dict[str, BaseException],
        tracker: _Tracker,
        check_hash: bool,
    ) -> None:
        download = work.direction == "download"
        one = self._download_one if download else self._upload_one

        def run(item: PlanItem) -> tuple[PlanItem, bool]:
            meter = _Meter(tracker)
            try:
                one(item, work, check_hash, meter)
            except Exception as exc:
                with work.lock:
                    errors[item.rel] = exc
                return item, False
            finally:
                meter.finish(item.size)
            return item, True

        # Small files in memory, many at a time through the session (S3: on this thread,
        # multiplexed); large ones (and unverified downloads) on threads, one by one.
        small: list[PlanItem] = []
        large: list[PlanItem] = []
        for item in items:
            in_memory = item.size <= _SMALL_FILE and (check_hash or not download)
            (small if in_memory else large).append(item)
        late: list[PlanItem] = []  # uploads grown past the small size since the scan
        if download:
            outcomes = self._download_small(small, work)
        else:
            outcomes = self._upload_small(small, work, check_hash, late)
        for item, failure in outcomes:
            tracker.add(item.size, files=1)
            if failure is None:
                result.transferred.append(item.rel)
                result.bytes_transferred += item.size
            else:
                errors[item.rel] = failure
        for item, ok in self._map(run, large + late):
            if ok:
                result.transferred.append(item.rel)
                result.bytes_transferred += item.size

    def _download_small(
        self, items: list[PlanItem], work: _Work
    ) -> Iterator[tuple[PlanItem, Exception | None]]:
        """GET small objects whole (many at once), then write each like _download_one."""
        fetched = self._session._get_many(
            ((item, item.key) for item in items), concurrency=self._max_workers
        )
        for item, body in fetched:
            try:
                self._download_one(item, work, True, None, body)
            except Exception as exc:
                yield item, exc
            else:
                yield item, None

    def _upload_small(
        self, items: list[PlanItem], work: _Work, check_hash: bool, late: list[PlanItem]
    ) -> Iterator[tuple[PlanItem, Exception | None]]:
        """PUT small files from memory (many at once); checked and recorded like _upload_one."""
        unread: list[tuple[PlanItem, Exception | None]] = []

        def bodies() -> Iterator[tuple[tuple[PlanItem, _Upload], SmallPut]]:
            for item in items:
                try:
                    path = work.local_file(item.rel)
                    st = os.stat(path)
                    if st.st_size > _SMALL_FILE:
                        late.append(item)
                        continue
                    small, body = self._read_upload(path, st)
                except Exception as exc:
                    unread.append((item, exc))
                    continue
                yield (item, small), (item.key, body, small.metadata, small.content_type)

        def checked() -> Iterator[tuple[PlanItem, Exception | None]]:
            sent = self._session._put_many(bodies(), concurrency=self._max_workers)
            for (item, small), resp in sent:
                try:
                    if isinstance(resp, Exception):
                        raise resp
                    self._check_upload(item, work, small, resp, check_hash)
                except Exception as exc:
                    yield item, exc
                else:
                    yield item, None

        return with_rejects(checked(), unread)

    def _download_one(
        self,
        item: PlanItem,
        work: _Work,
        check_hash: bool,
        meter: _Meter | None,
        fetched: ObjectResponse | S3FuncError | None = None,
    ) -> None:
        """Download one object into place (atomically), verified; ``fetched``: its GET, done."""
        dest = work.local_file(item.rel)
        fd, tmp = create_temp(os.path.dirname(dest), _paths.TEMP_PREFIX)
        resp: _Fields
        try:
            if item.size >= _LARGE_FILE or not check_hash:
                # Parallel ranged GETs for large objects; and the way to skip verification.
                os.close(fd)
                fd = -1
                resp = self._session.download_file(item.key, tmp, progress=meter, verify=check_hash)
                md5, sha, _ = _hash_file(tmp)
                fd = os.open(tmp, os.O_RDONLY)
                size = os.fstat(fd).st_size
            else:
                if fetched is None:
                    fetched = self._session.get_object(item.key)
                elif isinstance(fetched, S3FuncError):
                    raise fetched
                resp, md5, sha, size = self._stream_to(fetched, fd)
            if resp.content_length is not None and resp.content_length != size:
                raise SyncError(
                    f"{item.key}: received {size} bytes, expected {resp.content_length}",
                    bucket=self._uri.bucket,
                    key=item.key,
                )
            etag = _bare_etag(resp.etag)
            if check_hash:
                self._verify_download(item.key, resp, etag, md5, sha)
            mtime_ns = _remote_mtime_ns(resp)
            if mtime_ns is not None:
                times = (time.time_ns(), mtime_ns)
                if os.utime in os.supports_fd:
                    os.utime(fd, ns=times)
                else:  # pragma: no cover - Windows
                    os.utime(tmp, ns=times)
            if item.rel in work.local:  # a new file already has open()'s default mode
                copy_mode(fd, tmp, dest)
            # Every system call lets the other transfer threads take the GIL, which costs far
            # more than the call itself with 8 threads: the state entry is built from what
            # was written and set rather than from another fstat. (A file system that stores
            # coarser times only makes the next scan hash this file once.)
            if mtime_ns is None:  # no remote time: the file keeps the time it was written
                mtime_ns = os.fstat(fd).st_mtime_ns
            os.close(fd)
            fd = -1
            os.replace(tmp, dest)
        except BaseException as exc:
            if fd != -1:
                os.close(fd)
            unlink_quietly(tmp)
            if isinstance(exc, IntegrityError) and not isinstance(exc, HashMismatchError):
                # The session's own end-of-body check (stored SHA-256, SHA-1, MD5, CRC32).
                if exc.algorithm == "size":
                    raise SyncError(str(exc), bucket=self._uri.bucket, key=item.key) from exc
                raise _mismatch(
                    str(exc),
                    item.key,
                    exc.algorithm or "",
                    exc.expected or "",
                    exc.actual or "",
                ) from exc
            raise
        work.state.record(item.rel, size, mtime_ns, etag, sha)

    def _stream_to(self, body: ObjectResponse, fd: int) -> tuple[_Fields, str, str, int]:
        """Copy ``body`` into the open file ``fd``; return the response, MD5, SHA-256, size.

        The SHA-256 is always computed (the state file keeps it). The MD5 only when a plain
        ETag is what :meth:`_verify_download` will compare. When that check covers the body,
        the response's own end-of-body check is switched off: one hash less per file.
        """
        sha = hashlib.sha256()
        md5: Any = None
        written = 0
        with body:
            stored = _stored_sha256(body)
            etag = _bare_etag(body.etag)
            if stored is None and not self._etag_is_sha1() and is_plain_md5(etag):
                md5 = hashlib.md5(usedforsecurity=False)
            if stored is not None or md5 is not None:
                body._set_verify(False)  # _verify_download checks the same content
            length = body.content_length
            # One read for small bodies: asking for a large chunk would allocate it.
            step = -1 if length is not None and length <= _CHUNK else _CHUNK
            while True:
                chunk = body.read(step)
                if chunk:
                    _write_all(fd, chunk)
                    if md5 is not None:
                        md5.update(chunk)
                    sha.update(chunk)
                    written += len(chunk)
                if step == -1 or not chunk:
                    break
        return body, (md5.hexdigest() if md5 is not None else ""), sha.hexdigest(), written

    def _verify_download(
        self, key: str, resp: _Fields, etag: str | None, md5: str, sha: str
    ) -> None:
        stored = _stored_sha256(resp)
        if stored is not None:
            if stored != sha:
                raise _mismatch(
                    f"{key}: SHA-256 {sha} does not match the stored {stored}",
                    key,
                    "sha256",
                    stored,
                    sha,
                )
        elif (
            etag is not None
            and not self._etag_is_sha1()
            and is_plain_md5(etag)
            and etag.lower() != md5
        ):
            raise _mismatch(
                f"{key}: MD5 {md5} does not match the ETag {etag}", key, "md5", etag, md5
            )

    def _upload_one(self, item: PlanItem, work: _Work, check_hash: bool, meter: _Meter) -> None:
        path = work.local_file(item.rel)
        st = os.stat(path)
        if st.st_size <= _SMALL_FILE:
            small, body = self._read_upload(path, st)
            resp = self._session.put_object(
                item.key, body, metadata=small.metadata, content_type=small.content_type
            )
            self._check_upload(item, work, small, resp, check_hash)
            return
        # Streamed from the file (in parallel parts when large).
        content_type = _content_type(os.path.splitext(path)[1].lower())
        metadata = {MTIME_METADATA: str(st.st_mtime_ns // 1_000_000)}
        md5, sha, _ = _hash_file(path)
        metadata[SHA256_METADATA] = sha
        resp = self._session.upload_file(
            item.key, path, metadata=metadata, content_type=content_type, progress=meter
        )
        after = os.stat(path)
        if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
            raise SyncError(
                f"{path} changed while it was uploaded; upload it again",
                bucket=self._uri.bucket,
                key=item.key,
            )
        sent = _Upload(st, md5, sha, metadata, content_type)
        self._check_upload(item, work, sent, resp, check_hash)

    @staticmethod
    def _read_upload(path: str, st: os.stat_result) -> tuple[_Upload, PartReader]:
        """Read and hash a small file (of the size ``st`` says) for one PUT from memory."""
        content_type = _content_type(os.path.splitext(path)[1].lower())
        data = _read_small(path, st.st_size)
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        sha = hashlib.sha256(data).hexdigest()
        metadata = {MTIME_METADATA: str(st.st_mtime_ns // 1_000_000), SHA256_METADATA: sha}
        # The SHA-256 doubles as the SigV4 payload hash: handed over, not computed again.
        body = PartReader.from_view(memoryview(data), digests={"sha256": sha})
        return _Upload(st, md5, sha, metadata, content_type), body

    def _check_upload(
        self, item: PlanItem, work: _Work, sent: _Upload, resp: Response, check_hash: bool
    ) -> None:
        """Compare the stored ETag with the MD5 sent (deleting a mismatch); record the file."""
        etag = _bare_etag(resp.etag)
        md5_etag = not self._etag_is_sha1() and is_plain_md5(etag)
        if check_hash and etag is not None and md5_etag and etag != sent.md5:
            with contextlib.suppress(S3FuncError):
                self._session.delete_object(item.key)
            raise _mismatch(
                f"{item.key}: the service stored ETag {etag}, but the MD5 sent was {sent.md5}",
                item.key,
                "md5",
                sent.md5,
                etag,
            )
        work.state.record(item.rel, sent.st.st_size, sent.st.st_mtime_ns, etag, sent.sha)

    def _delete_local(
        self,
        items: list[PlanItem],
        work: _Work,
        result: SyncResult,
        errors: dict[str, BaseException],
    ) -> None:
        parents: set[str] = set()
        for item in items:
            path = work.local_file(item.rel)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                errors[item.rel] = exc
                continue
            result.deleted.append(item.rel)
            work.state.forget(item.rel)
            parents.add(os.path.dirname(path))
        root = os.path.normpath(self._local)
        for parent in sorted(parents, key=len, reverse=True):
            current = os.path.normpath(parent)
            while current != root and current.startswith(root + os.sep):
                try:
                    os.rmdir(current)
                except OSError:
                    break
                current = os.path.dirname(current)

    def _delete_remote_items(
        self,
        items: list[PlanItem],
        work: _Work,
        result: SyncResult,
        errors: dict[str, BaseException],
    ) -> None:
        for start in range(0, len(items), _DELETE_BATCH):
            batch = items[start : start + _DELETE_BATCH]
            try:
                self._session.delete_objects([item.key for item in batch])
            except S3FuncError as exc:
                for item in batch:
                    errors[item.rel] = exc
                continue
            for item in batch:
                result.deleted.append(item.rel)
                work.state.forget(item.rel)

    def _raise_for(
        self,
        result: SyncResult,
        errors: Mapping[str, BaseException],
        skip_unsafe: bool,
        prefix_mode: bool,
    ) -> None:
        plan = result.plan
        if errors and not prefix_mode:
            exc = next(iter(errors.values()))
            if isinstance(exc, S3ObjectError):
                raise exc
            raise SyncError(
                f"{plan.direction} of {self.uri} failed: {_describe(exc)}",
                bucket=self._uri.bucket,
                key=self._uri.key,
            ) from exc
        if errors:
            mismatches = {r: e for r, e in errors.items() if isinstance(e, HashMismatchError)}
            chosen = mismatches or errors
            first = next(iter(chosen.values()))
            listing = _listing(list(chosen), {r: _describe(e) for r, e in chosen.items()})
            what = "hash mismatch" if mismatches else "failed"
            message = f"{len(chosen)} file(s) {what} in {plan.direction} of {self.uri}: "
            if isinstance(first, HashMismatchError):
                agg = _mismatch(
                    message + listing,
                    first.key or "",
                    first.algorithm or "",
                    first.expected or "",
                    first.actual or "",
                )
                agg.bucket = self._uri.bucket
                raise agg from first
            raise SyncError(message + listing, bucket=self._uri.bucket) from first
        if (plan.refused or plan.conflicts) and not skip_unsafe:
            bad = plan.refused + plan.conflicts
            reasons = {item.key: item.reason for item in bad}
            raise SyncError(
                f"{len(plan.refused)} key(s) refused and {len(plan.conflicts)} in conflict under "
                f"{self.uri} (everything else was synced): " + _listing(list(reasons), reasons),
                bucket=self._uri.bucket,
            )
        for item in plan.refused + plan.conflicts:
            log.warning("not synced: %r (%s)", item.key, item.reason)


@dataclass
class _Work:
    """The inputs a plan is executed against."""

    direction: Direction
    remote_root: str
    local_root: str
    remote: Mapping[str, RemoteFile]
    local: Mapping[str, LocalFile]
    state: _State
    heads: Mapping[str, _Fields] = field(default_factory=dict)
    prefix_mode: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def local_file(self, rel: str) -> str:
        if rel == "":
            return self.local_root
        return os.path.join(self.local_root, _paths.local_relpath(rel))


def _compile(pattern: str) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigurationError(f"bad exclude_pattern {pattern!r}: {exc}") from exc


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _listing(keys: list[str], reasons: Mapping[str, str], limit: int = 10) -> str:
    shown = [f"{k!r} ({reasons[k]})" for k in keys[:limit]]
    if len(keys) > limit:
        shown.append(f"... and {len(keys) - limit} more (see S3Object.last_result)")
    return "; ".join(shown)


def _case_insensitive(path: str) -> bool:
    """Guess whether the file system at ``path`` folds case (macOS and Windows defaults)."""
    return sys.platform in ("darwin", "win32")
