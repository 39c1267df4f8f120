"""Adapter around b2sdk's in-memory ``RawSimulator``.

This is the only module of the emulator that imports b2sdk internals (b2sdk is pinned to one
version in the dev dependencies because of this). It changes what the simulator gets wrong for
a long-running server:

* file ids come from one 64-bit sequence shared by all buckets (they never run out and never
  collide), encoded so that sorting ``(name, id)`` puts the newest version of a name first;
* upload timestamps are real milliseconds since the epoch (never decreasing);
* every bucket keeps its ``(name, id)`` keys in a sorted list, maintained on insert and delete,
  so listings start with a bisection instead of sorting the whole bucket on every call;
* one id -> file map covers all buckets, including copies into another bucket (which the
  simulator forgets to register);
* the upload-URL counter (200 per bucket) and the copy-size limit (200 bytes) are lifted;
* authorization is done by the emulator, so the simulator's own check (which refuses keys
  restricted to a bucket on most calls, and asserts on unknown tokens) is switched off.
"""

from __future__ import annotations

import itertools
import threading
import time
from bisect import bisect_left, insort
from typing import Any

from b2sdk._internal.encryption.setting import (
    SSE_B2_AES,
    SSE_NONE,
    EncryptionMode,
    EncryptionSetting,
)
from b2sdk._internal.exception import (
    AccessDenied,
    B2Error,
    BadJson,
    BadRequest,
    BadUploadUrl,
    ChecksumMismatch,
    Conflict,
    CopySourceTooBig,
    DuplicateBucketName,
    FileNotPresent,
    FileSha1Mismatch,
    InvalidAuthToken,
    InvalidMetadataDirective,
    MissingPart,
    NonExistentBucket,
    PartSha1Mismatch,
    ResourceNotFound,
    Unauthorized,
    UnsatisfiableRange,
)
from b2sdk._internal.file_lock import LegalHold
from b2sdk._internal.raw_api import ALL_CAPABILITIES
from b2sdk._internal.raw_simulator import (
    BucketSimulator,
    FileSimulator,
    KeySimulator,
    PartSimulator,
    RawSimulator,
)

__all__ = [
    "ALL_CAPABILITIES",
    "SSE_B2_AES",
    "SSE_NONE",
    "B2Error",
    "EmuBucket",
    "EmuSimulator",
    "EncryptionMode",
    "EncryptionSetting",
    "FileSimulator",
    "IdSequence",
    "KeySimulator",
    "LegalHold",
    "MillisClock",
    "PartSimulator",
    "b2sdk_error_answer",
    "sse_json",
]

_FILE_ID_SPACE = 1 << 64


class IdSequence:
    """Thread-safe source of file ids that sort newest first.

    Ids look like ``4_z<account>_f<16 hex digits>``; the hex part counts *down* from
    ``2**64 - 1``, so a newer id sorts before an older one under plain string comparison.
    The sequence survives :meth:`EmuSimulator` rebuilds (``reset``), so ids stay unique for the
    lifetime of the emulator.
    """

    def __init__(self, account_id: str) -> None:
        self._prefix = f"4_z{account_id}_f"
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def next_id(self) -> str:
        with self._lock:
            seq = next(self._counter)
        return f"{self._prefix}{_FILE_ID_SPACE - seq:016x}"

    def looks_valid(self, file_id: str) -> bool:
        """Return True if ``file_id`` has the shape of an id this emulator hands out."""
        if not file_id.startswith(self._prefix):
            return False
        tail = file_id[len(self._prefix) :]
        return len(tail) == 16 and all(c in "0123456789abcdef" for c in tail)


class MillisClock:
    """Upload timestamps: wall-clock milliseconds, never going backwards.

    Used as the simulator's ``upload_timestamp_counter`` (it calls ``next()`` on it).
    Two uploads in the same millisecond get the same timestamp, as they can on B2.
    """

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def __iter__(self) -> MillisClock:
        return self

    def __next__(self) -> int:
        now = time.time_ns() // 1_000_000
        with self._lock:
            if now < self._last:
                now = self._last
            self._last = now
        return now


class SortedFileIndex(dict):  # type: ignore[type-arg]
    """``(file_name, file_id) -> FileSimulator`` map that keeps its keys sorted.

    Replaces ``BucketSimulator.file_name_and_id_to_file``. The simulator only ever assigns,
    deletes and looks up keys in that map, which are the operations overridden here. Python
    compares strings by code point, which is the same order as comparing their UTF-8 bytes, the
    order B2 lists names in.
    """

    def __init__(self, registry: dict[str, FileSimulator]) -> None:
        super().__init__()
        self.sorted_keys: list[tuple[str, str]] = []
        self._registry = registry

    def __setitem__(self, key: tuple[str, str], value: FileSimulator) -> None:
        if key not in self:
            insort(self.sorted_keys, key)
        super().__setitem__(key, value)
        self._registry[key[1]] = value

    def __delitem__(self, key: tuple[str, str]) -> None:
        super().__delitem__(key)
        keys = self.sorted_keys
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            del keys[i]
        self._registry.pop(key[1], None)


class EmuBucket(BucketSimulator):  # type: ignore[misc]
    """Bucket with the fixes listed in the module docstring."""

    MAX_SIMPLE_COPY_SIZE = 1 << 62  # the emulator enforces its own, configurable, limit

    def __init__(self, api: EmuSimulator, *args: Any, **kwargs: Any) -> None:
        super().__init__(api, *args, **kwargs)
        self.file_name_and_id_to_file = SortedFileIndex(api.files_by_id)
        self.upload_timestamp_counter = api.clock
        self.upload_url_counter = itertools.count()
        # B2 buckets have no default encryption unless one is configured.
        self.default_server_side_encryption = SSE_NONE

    def _next_file_id(self) -> str:
        return str(self.api.id_sequence.next_id())

    @property
    def sorted_keys(self) -> list[tuple[str, str]]:
        index: SortedFileIndex = self.file_name_and_id_to_file
        return index.sorted_keys

    def add_file(self, file_sim: FileSimulator) -> None:
        """Insert a file version created by the emulator."""
        self.file_id_to_file[file_sim.file_id] = file_sim
        self.file_name_and_id_to_file[file_sim.sort_key()] = file_sim


class EmuSimulator(RawSimulator):  # type: ignore[misc]
    """RawSimulator whose buckets are :class:`EmuBucket`; authorization is left to the caller."""

    BUCKET_SIMULATOR_CLASS = EmuBucket

    def __init__(self, id_sequence: IdSequence, clock: MillisClock) -> None:
        super().__init__()
        self.id_sequence = id_sequence
        self.clock = clock
        self.files_by_id: dict[str, FileSimulator] = {}
        self.bucket_id_counter = itertools.count()

    def _assert_account_auth(self, *args: Any, **kwargs: Any) -> None:
        """No-op: the emulator checks tokens, capabilities and restrictions itself."""

    def add_key(self, key_sim: KeySimulator, *aliases: str) -> None:
        """Register an application key (under its id and any alias, e.g. the account id)."""
        self.key_id_to_key[key_sim.application_key_id] = key_sim
        for alias in aliases:
            self.key_id_to_key[alias] = key_sim
        if key_sim.name != "master":
            self.all_application_keys.append(key_sim)

    def register_token(self, token: str, key_sim: KeySimulator) -> None:
        """Make ``token`` known to the simulator's capability checks (used in JSON output)."""
        self.auth_token_to_key[token] = key_sim
        self.current_token = token


def sse_json(setting: EncryptionSetting | None) -> dict[str, Any]:
    """Server-side-encryption dict as B2 returns it for a file version."""
    if setting is None or setting.mode in (EncryptionMode.NONE, EncryptionMode.UNKNOWN):
        return {"algorithm": None, "mode": None}
    out: dict[str, Any] = setting.serialize_to_json_for_request()
    return out


# (status, code) answered for a b2sdk exception that escapes the simulator. Order matters:
# subclasses come before their bases. The emulator validates requests before calling the
# simulator, so these are a safety net rather than the normal path.
_ERROR_ANSWERS: list[tuple[type[BaseException], int, str]] = [
    (CopySourceTooBig, 400, "source_too_large"),
    (InvalidAuthToken, 401, "bad_auth_token"),
    (Unauthorized, 401, "unauthorized"),
    (AccessDenied, 403, "access_denied"),
    (FileNotPresent, 404, "not_found"),
    (NonExistentBucket, 400, "bad_bucket_id"),
    (ResourceNotFound, 404, "not_found"),
    (MissingPart, 400, "missing_part"),
    (PartSha1Mismatch, 400, "part_sha1_mismatch"),
    (FileSha1Mismatch, 400, "bad_request"),
    (ChecksumMismatch, 400, "bad_request"),
    (UnsatisfiableRange, 416, "range_not_satisfiable"),
    (InvalidMetadataDirective, 400, "bad_request"),
    (DuplicateBucketName, 400, "duplicate_bucket_name"),
    (BadJson, 400, "bad_json"),
    (BadUploadUrl, 400, "bad_request"),
    (Conflict, 409, "conflict"),
    (BadRequest, 400, "bad_request"),
]


def b2sdk_error_answer(exc: B2Error) -> tuple[int, str, str]:
    """Map a b2sdk exception raised by the simulator to B2's (status, code, message)."""
    message = str(exc) or type(exc).__name__
    for cls, status, code in _ERROR_ANSWERS:
        if isinstance(exc, cls):
            if cls is InvalidAuthToken and "expired" in (getattr(exc, "code", "") or ""):
                return 401, "expired_auth_token", message
            if cls is CopySourceTooBig:
                return status, code, f"Copy source too big: {getattr(exc, 'size', 0)}"
            return status, code, message
    return 500, "internal_error", message
