"""Result types shared by every session: object info, responses and listings."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

__all__ = [
    "FrozenValue",
    "ListResult",
    "ObjectInfo",
    "Response",
    "parse_http_date",
    "parse_iso_date",
]

_UTC = _dt.timezone.utc
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


class FrozenValue:
    """Base of small immutable value classes (cheaper to import than ``dataclasses``).

    Subclasses list their fields in ``__slots__``, set them in ``__init__`` with
    :meth:`_init_field`, and name secret fields in ``_hidden`` so ``repr`` leaves them out.
    Instances compare and hash by value; :meth:`replace` returns a modified copy.
    """

    __slots__ = ()
    _hidden: ClassVar[frozenset[str]] = frozenset()

    def _init_field(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def _names(self) -> tuple[str, ...]:
        names: tuple[str, ...] = type(self).__slots__
        return names

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._names())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; use replace()")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self).__name__, *self._values()))

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}" for name in self._names() if name not in self._hidden
        )
        return f"{type(self).__name__}({shown})"

    def replace(self, **changes: Any) -> Any:
        """Return a copy with ``changes`` applied (validated like a new instance)."""
        values: dict[str, Any] = {name: getattr(self, name) for name in self._names()}
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {sorted(unknown)[0]!r}")
        values.update(changes)
        return type(self)(**values)


def parse_http_date(value: str | None) -> _dt.datetime | None:
    """Parse an HTTP date (``Sat, 21 Nov 2026 06:38:28 GMT``) into an aware UTC datetime.

    Returns ``None`` for a missing or unparseable value.
    """
    if not value:
        return None
    try:
        _, day, mon, year, clock, _ = value.split(" ")
        hh, mm, ss = clock.split(":")
        return _dt.datetime(
            int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss), tzinfo=_UTC
        )
    except (ValueError, KeyError):
        from email.utils import parsedate_to_datetime

        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=_UTC)
        return parsed.astimezone(_UTC)


def parse_iso_date(value: str | None) -> _dt.datetime | None:
    """Parse an ISO-8601 timestamp as S3 listings send it into an aware UTC datetime."""
    if not value:
        return None
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        parsed = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=_UTC)
    return parsed.astimezone(_UTC)


class ObjectInfo:
    """One entry of a listing: an object, an object version or a delete marker.

    Attributes are typed; the seed's dictionary style also works: ``obj["key"]``,
    ``obj["content_length"]`` (any attribute name).

    Attributes:
        key: The object key, exactly as stored.
        content_length: Size in bytes (0 for delete markers).
        etag: The ETag without quotes ('' when the listing has none).
        last_modified: Aware UTC datetime (resolution depends on the server).
        version_id: The version id, when listing versions or on B2.
        is_latest: Whether this is the current version.
        is_delete_marker: True for S3 delete markers and B2 hide markers.
        storage_class: The storage class, when given.
        metadata: User metadata when the listing carries it (B2 does, S3 does not).
        content_type: The content type when the listing carries it (B2 does).
    """

    __slots__ = (
        "_last_modified",
        "_last_modified_raw",
        "content_length",
        "content_type",
        "etag",
        "is_delete_marker",
        "is_latest",
        "key",
        "metadata",
        "storage_class",
        "version_id",
    )

    def __init__(
        self,
        key: str,
        *,
        content_length: int = 0,
        etag: str = "",
        last_modified: _dt.datetime | str | None = None,
        version_id: str | None = None,
        is_latest: bool = True,
        is_delete_marker: bool = False,
        storage_class: str | None = None,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        self.key = key
        self.content_length = content_length
        self.etag = etag
        if isinstance(last_modified, str):
            self._last_modified_raw: str | None = last_modified
            self._last_modified: _dt.datetime | None = None
        else:
            self._last_modified_raw = None
            self._last_modified = last_modified
        self.version_id = version_id
        self.is_latest = is_latest
        self.is_delete_marker = is_delete_marker
        self.storage_class = storage_class
        self.metadata: Mapping[str, str] = metadata if metadata is not None else {}
        self.content_type = content_type

    @property
    def last_modified(self) -> _dt.datetime | None:
        """The modification time as an aware UTC datetime (parsed on first access)."""
        if self._last_modified is None and self._last_modified_raw is not None:
            self._last_modified = parse_iso_date(self._last_modified_raw)
            self._last_modified_raw = None
        return self._last_modified

    @property
    def size(self) -> int:
        """Alias of :attr:`content_length`."""
        return self.content_length

    def __getitem__(self, name: str) -> Any:
        if name.startswith("_") or name not in _INFO_NAMES:
            raise KeyError(name)
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        """Return attribute ``name`` like a dict would, or ``default``."""
        try:
            return self[name]
        except KeyError:
            return default

    def keys(self) -> tuple[str, ...]:
        """Return the names usable with ``obj[name]``."""
        return _INFO_NAMES

    def __repr__(self) -> str:
        extra = f", version_id={self.version_id!r}" if self.version_id else ""
        marker = ", delete_marker" if self.is_delete_marker else ""
        return f"ObjectInfo({self.key!r}, size={self.content_length}{extra}{marker})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ObjectInfo):
            return NotImplemented
        return all(self[n] == other[n] for n in _INFO_NAMES)

    __hash__ = None  # type: ignore[assignment]


_INFO_NAMES: tuple[str, ...] = (
    "key",
    "content_length",
    "etag",
    "last_modified",
    "version_id",
    "is_latest",
    "is_delete_marker",
    "storage_class",
    "metadata",
    "content_type",
)


class Response:
    """The result of a put, head, delete or copy (and the fields of a get).

    System fields are typed attributes; user metadata lives only in :attr:`metadata`, so a
    metadata name can never shadow a system field.

    Attributes:
        status: The HTTP status.
        headers: The response headers (case-insensitive mapping).
        key: The object key the request was about.
        etag: The ETag without quotes, or ``None``.
        version_id: The version id, or ``None``.
        content_length: The object size in bytes, when known.
        content_type: The object's content type, when known.
        last_modified: Aware UTC datetime, when known.
        metadata: User metadata (lower-case names).
        data: The body (``b''`` for HEAD and most writes).
    """

    __slots__ = (
        "content_length",
        "content_type",
        "data",
        "etag",
        "headers",
        "key",
        "last_modified",
        "metadata",
        "status",
        "version_id",
    )

    def __init__(
        self,
        *,
        status: int,
        headers: Mapping[str, str],
        key: str | None = None,
        etag: str | None = None,
        version_id: str | None = None,
        content_length: int | None = None,
        content_type: str | None = None,
        last_modified: _dt.datetime | None = None,
        metadata: dict[str, str] | None = None,
        data: bytes = b"",
    ) -> None:
        self.status = status
        self.headers = headers
        self.key = key
        self.etag = etag
        self.version_id = version_id
        self.content_length = content_length
        self.content_type = content_type
        self.last_modified = last_modified
        self.metadata: dict[str, str] = metadata if metadata is not None else {}
        self.data = data

    def __repr__(self) -> str:
        return (
            f"Response(status={self.status}, key={self.key!r}, etag={self.etag!r}, "
            f"content_length={self.content_length})"
        )


class ListResult:
    """A lazy listing. Iterate it (or :meth:`iter_objects`) to fetch pages on demand.

    Common prefixes (the "folders" when a delimiter is given) are collected as pages are
    read: :meth:`iter_common_prefixes` reads the whole listing if needed.
    """

    def __init__(self, pages: Callable[[], Iterator[tuple[list[ObjectInfo], list[str]]]]) -> None:
        self._pages = pages
        self._prefixes: list[str] = []
        self._done = False

    def iter_objects(self) -> Iterator[ObjectInfo]:
        """Yield every object (or version) of the listing, fetching pages lazily."""
        self._prefixes = []
        for objects, prefixes in self._pages():
            self._prefixes.extend(prefixes)
            yield from objects
        self._done = True

    __iter__ = iter_objects

    def iter_common_prefixes(self) -> Iterator[str]:
        """Yield the common prefixes, reading the listing first when needed."""
        if not self._done:
            for _ in self.iter_objects():
                pass
        yield from self._prefixes

    @property
    def common_prefixes(self) -> list[str]:
        """All common prefixes (reads the whole listing when it was not read yet)."""
        return list(self.iter_common_prefixes())

    def keys(self) -> list[str]:
        """Return the keys of all objects (reads the whole listing)."""
        return [o.key for o in self.iter_objects()]
