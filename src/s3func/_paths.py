"""Pure helpers for :mod:`s3func.sync`: URIs, key safety and cache directories.

Nothing here talks to the network. Only :func:`is_within` and :func:`default_cache_root` look at
the local machine (``os.path.realpath`` and the environment); everything else is a pure function
of its arguments, so the unit tests drive it directly.

Key safety is the heart of this module. An object key is untrusted input: written naively under a
download directory, ``../../.bashrc`` or ``/etc/passwd`` escapes it. :func:`key_problem` says why
a key (relative to the synced prefix) must not become a local path, and :func:`local_relpath`
turns a safe one into an OS path.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "TEMP_PREFIX",
    "ParsedURI",
    "cache_namespace",
    "default_cache_root",
    "is_temp_name",
    "is_within",
    "key_problem",
    "local_relpath",
    "parse_uri",
    "safe_component",
]

#: Every temporary file written by s3func.sync starts with this; scans ignore such names.
TEMP_PREFIX = ".s3func-tmp-"

_SCHEMES = ("s3", "b2")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(10)]
    + [f"LPT{i}" for i in range(10)]
    + ["COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³"]
)
_WINDOWS_BAD_CHARS = frozenset('<>:"|?*')
_MAX_SEGMENT_BYTES = 255


@dataclass(frozen=True)
class ParsedURI:
    """The parts of an ``s3://bucket/key`` or ``b2://bucket/key`` URI.

    Attributes:
        scheme: ``"s3"`` or ``"b2"``.
        bucket: The bucket name.
        key: The key or prefix, without a leading ``/`` (``""`` for the bucket root).
    """

    scheme: str
    bucket: str
    key: str

    @property
    def is_prefix(self) -> bool:
        """Whether the URI names a prefix explicitly (bucket root, or a key ending in ``/``)."""
        return self.key == "" or self.key.endswith("/")

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}"


def parse_uri(uri: str) -> ParsedURI:
    """Split ``s3://bucket/key`` or ``b2://bucket/key`` into its parts.

    The key is kept byte for byte (no normalisation, no percent-decoding), except that the one
    ``/`` separating bucket and key is dropped.

    Args:
        uri: The URI.

    Returns:
        The parsed URI.

    Raises:
        ValueError: The scheme is not ``s3``/``b2`` or the bucket is missing or malformed.
    """
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise ValueError(f"expected an s3://bucket/key or b2://bucket/key URI, got {uri!r}")
    bucket, _, key = rest.partition("/")
    if not bucket or _CONTROL.search(bucket) or "\\" in bucket:
        raise ValueError(f"the URI {uri!r} has no valid bucket name")
    return ParsedURI(scheme.lower(), bucket, key)


def key_problem(rel: str, *, windows: bool | None = None) -> str | None:
    """Say why a key (relative to the synced prefix) must not become a local path.

    A safe key is a ``/``-separated list of non-empty segments, none of which is ``.`` or
    ``..``, with no backslash, NUL or other control character, not starting with ``/``, and
    with every segment at most 255 bytes in UTF-8. On Windows, drive letters, the characters
    ``<>:"|?*``, reserved device names (``CON``, ``NUL``, ``COM1``...) and segments ending in a
    dot or a space are refused as well.

    Args:
        rel: The key with the synced prefix removed.
        windows: Apply the Windows rules; defaults to whether this is Windows.

    Returns:
        ``None`` when the key is safe, else a short reason such as ``"'..' segment"``.
    """
    if windows is None:
        windows = os.name == "nt"
    if rel == "":
        return "empty name"
    if "\x00" in rel:
        return "NUL character"
    if _CONTROL.search(rel):
        return "control character"
    if "\\" in rel:
        return "backslash"
    if rel.startswith("/"):
        return "absolute path"
    if rel.endswith("/"):
        return "ends with '/'"
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8"
    for segment in rel.split("/"):
        if segment == "":
            return "empty segment"
        if segment in (".", ".."):
            return f"{segment!r} segment"
        if len(segment.encode("utf-8")) > _MAX_SEGMENT_BYTES:
            return "segment longer than 255 bytes"
        if windows:
            problem = _windows_segment_problem(segment)
            if problem:
                return problem
    return None


def _windows_segment_problem(segment: str) -> str | None:
    if any(c in _WINDOWS_BAD_CHARS for c in segment):
        return "character not allowed on Windows"
    if segment.endswith((".", " ")):
        return "segment ends with a dot or space"
    stem = segment.split(".", 1)[0].rstrip(" ").upper()
    if stem in _WINDOWS_RESERVED:
        return "reserved device name on Windows"
    return None


def local_relpath(rel: str) -> str:
    """Turn a safe relative key into a relative OS path (``/`` becomes ``os.sep``).

    Args:
        rel: A key for which :func:`key_problem` returned ``None``.

    Returns:
        The relative path with the OS separator.
    """
    return rel if os.sep == "/" else rel.replace("/", os.sep)


def is_within(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """Whether ``path``, with symlinks resolved, is ``root`` or strictly inside it.

    Only the existing part of ``path`` can be resolved, so call it again after creating parent
    directories.

    Args:
        root: The directory that must contain ``path``.
        path: The candidate.

    Returns:
        True when ``path`` resolves inside ``root``.
    """
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real == real_root:
        return True
    prefix = real_root if real_root.endswith(os.sep) else real_root + os.sep
    return real.startswith(prefix)


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of our temporary files (ignored by directory scans).

    That is ours (``.s3func-tmp-*``) and those of ``download_file`` (``.<name>.*.s3func-tmp``).
    """
    return name.startswith(TEMP_PREFIX) or (name.startswith(".") and name.endswith(".s3func-tmp"))


_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def safe_component(text: str) -> str:
    """Make ``text`` usable as one directory name on every OS.

    Characters outside ``[A-Za-z0-9._-]`` become ``_``; when anything changed, or the result is
    empty, ``.``/``..``-like or reserved on Windows, a short hash of the original is appended so
    that two different inputs never share a directory.

    Args:
        text: Any string (an endpoint host, a bucket name).

    Returns:
        A non-empty name without separators.
    """
    cleaned = _SAFE_CHARS.sub("_", text).strip(".")
    changed = cleaned != text
    if not cleaned or _windows_segment_problem(cleaned) or len(cleaned) > 100:
        changed = True
        cleaned = (cleaned or "x")[:100]
    if changed:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        cleaned = f"{cleaned}-{digest}"
    return cleaned


def default_cache_root() -> Path:
    """Return the s3func cache directory: ``$XDG_CACHE_HOME/s3func``, else ``~/.cache/s3func``.

    A relative or empty ``XDG_CACHE_HOME`` is ignored, as the XDG specification asks.
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "s3func"


def cache_namespace(scheme: str, endpoint: str | None, bucket: str) -> tuple[str, str, str]:
    """Return the three directory names that hold one bucket's cached copy.

    The layout is ``<cache root>/<scheme>/<endpoint>/<bucket>/<key...>``, each name passed
    through :func:`safe_component`, so that the same bucket name on two endpoints never shares
    files.

    Args:
        scheme: ``"s3"`` or ``"b2"``.
        endpoint: The endpoint URL or host; ``None`` for the provider default.
        bucket: The bucket name.

    Returns:
        ``(scheme_dir, endpoint_dir, bucket_dir)``.
    """
    host = "default"
    if endpoint:
        _, sep, rest = endpoint.partition("://")
        host = (rest if sep else endpoint).split("/", 1)[0] or "default"
    return safe_component(scheme), safe_component(host), safe_component(bucket)
